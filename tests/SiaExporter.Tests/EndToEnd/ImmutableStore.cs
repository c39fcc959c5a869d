namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A small ext4 file system (a 32 MB image in /tmp, loop-mounted at /tmp/&lt;network&gt;-sqlitefs) for
/// a history database that the test can make really unwritable while the daemon has it open, as
/// root: <c>chattr +i</c> on the database, its WAL and the folder. ext4 refuses every write to an
/// immutable inode, even through a descriptor opened before (EPERM), and opening it for writing;
/// root's capabilities do not bypass it.
/// <para>Why not the obvious ways: chmod does not stop root; <c>mount -o remount,ro</c> (of a
/// tmpfs, a loop file system or a bind mount) fails with EBUSY while the daemon holds the files
/// open for writing, which it always does; tmpfs checks the immutable flag only at open, so an
/// open descriptor keeps writing. The -shm file is left alone: SQLite maps it shared, and a write
/// fault on an immutable ext4 page is SIGBUS, not an error (a test artefact, not a real-world
/// read-only disk).</para>
/// <para>Removed on Dispose (flags cleared, unmounted, image deleted) and, for a crashed run, by
/// <see cref="TestNetwork"/>'s leftover clean-up (<see cref="Remove"/>).</para>
/// </summary>
internal sealed class ImmutableStore : IDisposable
{
    private readonly string _stem;
    private bool _disposed;

    private ImmutableStore(string stem)
    {
        _stem = stem;
    }

    public string MountPoint => MountPointOf(_stem);

    public string DatabasePath => Path.Combine(MountPoint, "traffic.db");

    private static string MountPointOf(string stem) => Path.Combine(Path.GetTempPath(), stem + "-sqlitefs");

    private static string ImageOf(string stem) => Path.Combine(Path.GetTempPath(), stem + "-sqlitefs.img");

    public static ImmutableStore Create(TestNetwork net)
    {
        var store = new ImmutableStore(net.Name);
        try
        {
            var image = ImageOf(net.Name);
            using (var f = File.Create(image)) f.SetLength(32L << 20);
            Shell.Run("mkfs.ext4", "-q", "-F", image);
            Directory.CreateDirectory(store.MountPoint);
            Shell.Run("mount", "-o", "loop", image, store.MountPoint);
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>chattr +i (or -i) on the database, its WAL and the folder (no file can be written,
    /// created, renamed or deleted there).</summary>
    public void SetImmutable(bool immutable)
    {
        var paths = new[] { DatabasePath, DatabasePath + "-wal" }.Where(File.Exists).Append(MountPoint).ToArray();
        Shell.Run("chattr", [immutable ? "+i" : "-i", .. paths]);
    }

    /// <summary>lsattr of the mount point's entries, for the test log.</summary>
    public string Attributes() => Shell.Try("lsattr", "-a", MountPoint).Stdout.Trim();

    /// <summary>Clears the flags, unmounts (the loop device goes with it) and deletes mount point and image.</summary>
    public static void Remove(string stem)
    {
        var mountPoint = MountPointOf(stem);
        if (Directory.Exists(mountPoint))
        {
            if (IsMountPoint(mountPoint))
            {
                Shell.Try("chattr", "-R", "-i", mountPoint);
                if (!Shell.Try("umount", mountPoint).Ok) Shell.Try("umount", "-l", mountPoint);
            }
            try { Directory.Delete(mountPoint, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        try { File.Delete(ImageOf(stem)); } catch (IOException) { }
    }

    private static bool IsMountPoint(string path) =>
        File.ReadLines("/proc/self/mounts").Any(l => l.Split(' ') is { Length: > 2 } f && f[1] == path);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Remove(_stem);
    }
}
