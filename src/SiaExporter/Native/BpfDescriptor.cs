namespace SiaExporter.Native;

/// <summary>
/// A descriptor of a kernel BPF object (map, program, link) that we own. Subclasses are what the
/// <c>[LibraryImport]</c> declarations take, so the descriptor cannot be closed while a call uses
/// it, and a call after <see cref="System.Runtime.InteropServices.SafeHandle.Dispose()"/> fails
/// with <see cref="ObjectDisposedException"/> instead of reaching a closed (or reused) number.
/// </summary>
internal abstract unsafe class BpfDescriptor : FileDescriptorHandle
{
    protected BpfDescriptor(int fd) : base(fd)
    {
    }

    /// <summary>bpf_obj_pin: makes the object outlive this process at <paramref name="path"/> on bpffs.</summary>
    public Errno TryPin(string path) => Errnos.FromReturn(LibBpf.ObjPin(this, path));

    public void Pin(string path) => BpfErrors.Check(TryPin(path), $"bpf_obj_pin({path})");

    /// <summary>bpf_obj_get_info_by_fd into <typeparamref name="TInfo"/> (a shorter struct than the
    /// kernel's is fine: the kernel copies what fits).</summary>
    protected TInfo Info<TInfo>(string operation) where TInfo : unmanaged
    {
        TInfo info = default;
        var length = (uint)sizeof(TInfo);
        BpfErrors.Check(LibBpf.ObjGetInfoByFd(this, &info, &length), operation);
        return info;
    }

    /// <summary>The descriptor of the object pinned at <paramref name="path"/> (bpf_obj_get), or
    /// -1 when nothing is pinned there. For the subclasses' OpenPinned, which own it at once.</summary>
    protected static int OpenPinnedDescriptor(string path)
    {
        if (!File.Exists(path)) return -1;
        var fd = LibBpf.ObjGet(path);
        if (fd >= 0) return fd;
        var errno = Errnos.FromReturn(fd);
        if (errno == Errno.ENOENT) return -1;
        throw BpfErrors.Exception($"bpf_obj_get({path})", errno);
    }

    /// <summary>A duplicate (F_DUPFD_CLOEXEC) of a descriptor libbpf owns, so ours outlives the bpf_object.</summary>
    protected static int DuplicateDescriptor(int fd, string operation)
    {
        var copy = Libc.DuplicateCloseOnExec(fd);
        return copy >= 0 ? copy : throw BpfErrors.Exception(operation, Errnos.Last());
    }
}
