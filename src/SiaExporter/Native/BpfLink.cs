namespace SiaExporter.Native;

/// <summary>
/// A bpf_link we hold a descriptor of (XDP, TCX or a tracepoint). Closing the descriptor of an unpinned link
/// detaches its program; a pinned link stays until <see cref="Detach"/> or its pin is removed.
/// </summary>
internal sealed unsafe class BpfLink : BpfDescriptor
{
    private BpfLink(int fd) : base(fd)
    {
    }

    /// <summary>BPF_LINK_CREATE of <paramref name="program"/> on interface <paramref name="ifIndex"/>
    /// (<paramref name="flags"/>: the XDP mode, 0 for TCX).</summary>
    public static Errno TryCreate(BpfProgram program, int ifIndex, uint attachType, uint flags, out BpfLink? link)
    {
        var options = LinkCreateOptions.Create(flags);
        var fd = LibBpf.LinkCreate(program, ifIndex, attachType, flags == 0 ? null : &options);
        link = fd >= 0 ? new BpfLink(fd) : null;
        return Errnos.FromReturn(fd);
    }

    /// <summary>BPF_RAW_TRACEPOINT_OPEN of a tp_btf <paramref name="program"/> on the tracepoint it was loaded for.</summary>
    public static Errno TryOpenTracepoint(BpfProgram program, out BpfLink? link)
    {
        var fd = LibBpf.RawTracepointOpen(null, program);
        link = fd >= 0 ? new BpfLink(fd) : null;
        return Errnos.FromReturn(fd);
    }

    /// <summary>The link pinned at <paramref name="path"/>, or null when nothing is pinned there.</summary>
    public static BpfLink? OpenPinned(string path)
    {
        var fd = OpenPinnedDescriptor(path);
        return fd < 0 ? null : new BpfLink(fd);
    }

    /// <summary>bpf_link_info: type, program id and the interface (0 once the interface is gone or the link detached).</summary>
    public BpfLinkInfo Info() => Info<BpfLinkInfo>("bpf_obj_get_info_by_fd(link)");

    /// <summary>bpf_link_update: swaps <paramref name="program"/> in atomically.</summary>
    public Errno Update(BpfProgram program) => Errnos.FromReturn(LibBpf.LinkUpdate(this, program, null));

    /// <summary>bpf_link_detach: takes the program off its hook (the descriptor stays open).</summary>
    public Errno Detach() => Errnos.FromReturn(LibBpf.LinkDetach(this));
}
