using System.Runtime.InteropServices;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>The tests' one libc binding: the few calls the fixtures need that the product does not
/// (the product's own are in SiaExporter.Native, reached through InternalsVisibleTo).</summary>
internal static partial class Libc
{
    public const int CLONE_NEWNET = 0x40000000;
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;
    public const int SIGINT = 2;
    public const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    /// <summary>Moves the calling thread (only it) into the namespace behind fd.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);
}
