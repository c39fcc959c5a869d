using System.Reflection;
using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>
/// Maps the library names of our P/Invoke declarations ("libbpf", "libc") onto the sonames a
/// Debian/Ubuntu/Fedora host has: libbpf.so.1, else libbpf.so.0, else libbpf.so (dev symlink);
/// libc.so.6 (plain "libc.so" is a linker script and cannot be loaded).
/// Registered once for this assembly from the static constructors of <see cref="LibBpf"/> and <see cref="Libc"/>.
/// </summary>
internal static class NativeLibraryResolver
{
    public const string LibBpfName = "libbpf";
    public const string LibcName = "libc";

    private static readonly string[] LibBpfCandidates = ["libbpf.so.1", "libbpf.so.0", "libbpf.so"];
    private static readonly Lock Gate = new();
    private static bool _registered;
    private static nint _libbpf;
    private static string? _libbpfVersion;

    public static void Register()
    {
        lock (Gate)
        {
            if (_registered) return;
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraryResolver).Assembly, Resolve);
            _registered = true;
        }
    }

    /// <summary>Loads libbpf and checks it is at least 1.0; returns its version string.
    /// Throws <see cref="OperatorException"/> when it is missing or too old.</summary>
    public static string EnsureLibBpf()
    {
        lock (Gate)
        {
            if (_libbpfVersion is not null) return _libbpfVersion;
            nint handle = 0;
            foreach (var candidate in LibBpfCandidates)
                if (NativeLibrary.TryLoad(candidate, out handle)) break;
            if (handle == 0)
                throw new OperatorException("libbpf is not installed", "install it: apt-get install libbpf1");
            _libbpfVersion = CheckVersion(handle);
            _libbpf = handle;
            return _libbpfVersion;
        }
    }

    private static unsafe string CheckVersion(nint handle)
    {
        if (!NativeLibrary.TryGetExport(handle, "libbpf_major_version", out var majorExport) ||
            !NativeLibrary.TryGetExport(handle, "libbpf_minor_version", out var minorExport))
            throw new OperatorException("libbpf older than 0.6 found (it has no libbpf_major_version)",
                "install libbpf 1.0 or newer: apt-get install libbpf1");
        var major = ((delegate* unmanaged<uint>)majorExport)();
        var minor = ((delegate* unmanaged<uint>)minorExport)();
        var version = $"{major}.{minor}";
        if (major < 1)
            throw new OperatorException($"libbpf {version} found; 1.0 or newer is needed",
                "install libbpf 1.0 or newer: apt-get install libbpf1");
        return version;
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        switch (libraryName)
        {
            case LibBpfName:
                EnsureLibBpf();
                return _libbpf;
            case LibcName:
                return NativeLibrary.TryLoad("libc.so.6", out var libc) ? libc : 0;
            default:
                return 0; // default probing for every other library
        }
    }
}
