namespace SiaExporter.Native;

/// <summary>
/// Device and inode of a path, to notice a database file deleted or replaced under the daemon
/// (an open SQLite handle keeps writing into the unlinked inode, silently, otherwise).
/// </summary>
internal readonly record struct FileIdentity(ulong Device, ulong Inode)
{
    /// <summary>The identity of <paramref name="path"/>, or null when it does not exist.</summary>
    public static unsafe FileIdentity? Of(string path)
    {
        // struct stat starts with st_dev (8 bytes) then st_ino (8 bytes) on x86-64 and arm64 glibc;
        // the buffer is larger than the struct on both.
        var buffer = stackalloc byte[512];
        if (Libc.Stat(path, buffer) != 0) return null;
        return new FileIdentity(*(ulong*)buffer, *(ulong*)(buffer + 8));
    }
}
