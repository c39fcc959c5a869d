using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>A file descriptor we own (link, pinned object, stats fd): closed on release.</summary>
internal sealed class SafeFileDescriptorHandle : SafeHandle
{
    public SafeFileDescriptorHandle() : base(-1, ownsHandle: true)
    {
    }

    public SafeFileDescriptorHandle(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor number, for calls that take an int fd. Valid while this handle lives.</summary>
    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}

/// <summary>A libbpf struct bpf_object*: bpf_object__close on release (closes its map and program fds).</summary>
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
