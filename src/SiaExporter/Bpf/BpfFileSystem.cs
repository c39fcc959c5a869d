using Microsoft.Extensions.Logging;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>The BPF filesystem (bpffs) where maps and links are pinned.</summary>
internal static unsafe class BpfFileSystem
{
    public const string DefaultMountPoint = "/sys/fs/bpf";
    /// <summary>BPF_FS_MAGIC, f_type of a bpffs mount.</summary>
    public const long Magic = 0xcafe4a11;

    public static bool IsMounted(string mountPoint = DefaultMountPoint) =>
        Directory.Exists(mountPoint) && Libc.FileSystemType(mountPoint) == Magic;

    /// <summary>Mounts bpffs at <paramref name="mountPoint"/> unless it already is bpffs.</summary>
    public static void EnsureMounted(ILogger logger, string mountPoint = DefaultMountPoint)
    {
        if (IsMounted(mountPoint)) return;
        Directory.CreateDirectory(mountPoint);
        if (Libc.Mount("bpffs", mountPoint, "bpf", 0, null) != 0)
        {
            var errno = Errnos.Last();
            throw errno == Errno.EPERM
                ? new OperatorException($"cannot mount the BPF filesystem at {mountPoint} (EPERM)", "run as root, or mount it: mount -t bpf bpffs " + mountPoint)
                : new OperatorException($"cannot mount the BPF filesystem at {mountPoint} ({errno.Name()})", "mount it: mount -t bpf bpffs " + mountPoint);
        }
        logger.LogInformation("mounted the BPF filesystem at {MountPoint}", mountPoint);
    }

    /// <summary>Creates a pin directory, or says in one line why it cannot (a read-only bpffs under a
    /// hardened unit, a file in the way) instead of an unhandled exception.</summary>
    public static void CreatePinDirectory(string directory)
    {
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OperatorException($"cannot create the pin directory {directory}: {e.Message}",
                "make it writable (collector.service: ReadWritePaths=-/sys/fs/bpf/collector and its ExecStartPre mkdir; a drop-in must change both for another PIN_DIRECTORY), or set PIN_DIRECTORY to a directory on a writable bpffs", e);
        }
    }

    /// <summary>The bpffs mount a pin path lives on: /sys/fs/bpf for /sys/fs/bpf/collector.</summary>
    public static string MountPointOf(string pinDirectory)
    {
        var full = Path.GetFullPath(pinDirectory);
        return full.StartsWith(DefaultMountPoint + "/", StringComparison.Ordinal) || full == DefaultMountPoint
            ? DefaultMountPoint
            : Path.GetDirectoryName(full) ?? DefaultMountPoint;
    }
}
