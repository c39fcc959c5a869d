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

    /// <summary>stat(2): 0, or -1 with errno set. <paramref name="buffer"/> holds a struct stat (512 bytes is enough).</summary>
    [LibraryImport(Lib, EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Stat(string path, byte* buffer);

    /// <summary>Only for <see cref="FileDescriptorHandle"/>'s release: every other call takes the handle.</summary>
    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>fcntl(fd, F_DUPFD_CLOEXEC, 0), declared with its one int argument (fcntl is
    /// variadic; an int passes the same way on x86-64 and arm64 Linux).</summary>
    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlInt(int fd, int command, int argument);

    /// <summary>A new descriptor (close-on-exec) for the same open file as <paramref name="fd"/>, or -1 with errno set.
    /// For descriptors libbpf owns and we want to keep.</summary>
    public static int DuplicateCloseOnExec(int fd)
    {
        const int FDupFdCloexec = 1030; // F_DUPFD_CLOEXEC
        return FcntlInt(fd, FDupFdCloexec, 0);
    }

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEffectiveUserId();

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(SafeFileDescriptorHandle fd, ulong request, void* argument);

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
            throw new BpfException($"statfs({path})", Errnos.Last());
        return buffer[0];
    }

    /// <summary>An AF_INET datagram socket for interface ioctls in this network namespace; null when none can be made.</summary>
    public static SafeFileDescriptorHandle? InterfaceQuerySocket()
    {
        const int AfInet = 2, SockDgram = 2, SockCloexec = 0x80000;
        var fd = Socket(AfInet, SockDgram | SockCloexec, 0);
        return fd < 0 ? null : new SafeFileDescriptorHandle(fd);
    }

    /// <summary>
    /// The driver and bus of an interface in this network namespace (ETHTOOL_GDRVINFO through
    /// SIOCETHTOOL), or null when the interface does not answer. Virtual devices (veth, bridge,
    /// bond, tun, dummy) report no bus.
    /// </summary>
    public static (string Driver, string BusInfo)? DriverInfo(string interfaceName)
    {
        const ulong SiocEthtool = 0x8946;
        const uint EthtoolGetDriverInfo = 3;
        using var socket = InterfaceQuerySocket();
        if (socket is null) return null;
        var info = stackalloc byte[196]; // struct ethtool_drvinfo
        new Span<byte>(info, 196).Clear();
        *(uint*)info = EthtoolGetDriverInfo;
        var request = stackalloc byte[40]; // struct ifreq: name[16], then the data pointer
        new Span<byte>(request, 40).Clear();
        var name = System.Text.Encoding.UTF8.GetBytes(interfaceName);
        if (name.Length > 15) return null;
        name.CopyTo(new Span<byte>(request, 16));
        *(byte**)(request + 16) = info;
        if (Ioctl(socket, SiocEthtool, request) != 0) return null;
        static string Text(byte* field) => Marshal.PtrToStringUTF8((nint)field) ?? "";
        return (Text(info + 4), Text(info + 4 + 32 * 3)); // driver[32], version[32], fw_version[32], bus_info[32]
    }
}
