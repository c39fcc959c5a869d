using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>A file descriptor we own: closed once, when the last native call using it has returned.</summary>
internal abstract class FileDescriptorHandle : SafeHandle
{
    protected FileDescriptorHandle() : base(-1, ownsHandle: true)
    {
    }

    protected FileDescriptorHandle(int fd) : this() => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}

/// <summary>A plain descriptor (the BPF statistics switch, an ioctl socket).</summary>
internal sealed class SafeFileDescriptorHandle : FileDescriptorHandle
{
    public SafeFileDescriptorHandle()
    {
    }

    public SafeFileDescriptorHandle(int fd) : base(fd)
    {
    }
}

/// <summary>A libbpf struct bpf_object*: bpf_object__close on release (closes the object's own
/// map and program descriptors; duplicates taken from it live on).</summary>
internal sealed class SafeBpfObjectHandle : SafeHandle
{
    public SafeBpfObjectHandle() : base(0, ownsHandle: true)
    {
    }

    public SafeBpfObjectHandle(nint bpfObject) : base(0, ownsHandle: true) => SetHandle(bpfObject);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        LibBpf.ObjectClose(handle);
        return true;
    }
}
