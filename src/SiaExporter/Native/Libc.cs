using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>The few libc calls the BPF layer needs.</summary>
internal static unsafe partial class Libc
{
    private const string Lib = NativeLibraryResolver.LibcName;

    static Libc() => NativeLibraryResolver.Register();

    /// <summary>0 when no interface has that name.</summary>
    [LibraryImport(Lib, EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial uint IfNameToIndex(string name);

    [LibraryImport(Lib, EntryPoint = "if_indextoname", SetLastError = true)]
    public static partial byte* IfIndexToName(uint ifIndex, byte* name);

    [LibraryImport(Lib, EntryPoint = "mount", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Mount(string source, string target, string fileSystemType, ulong flags, void* data);

    [LibraryImport(Lib, EntryPoint = "statfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int StatFs(string path, void* buffer);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEffectiveUserId();

    [LibraryImport(Lib, EntryPoint = "vsnprintf")]
    public static partial int VsnPrintf(byte* buffer, nuint size, byte* format, nint arguments);

    /// <summary>The name of interface <paramref name="ifIndex"/>, or null when there is none.</summary>
    public static string? InterfaceName(uint ifIndex)
    {
        var buffer = stackalloc byte[16]; // IF_NAMESIZE
        return IfIndexToName(ifIndex, buffer) == null ? null : Marshal.PtrToStringUTF8((nint)buffer);
    }

    /// <summary>f_type of statfs(2): the first (long) field of struct statfs on LP64.</summary>
    public static long FileSystemType(string path)
    {
        var buffer = stackalloc long[32]; // struct statfs is 120 bytes on x86-64 and arm64
        if (StatFs(path, buffer) != 0)
            throw new BpfException($"statfs({path})", Errno.Last());
        return buffer[0];
    }
}
