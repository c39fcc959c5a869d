namespace SiaExporter.Bpf;

/// <summary>What the running kernel offers the collector, from its version and /sys.</summary>
internal sealed record KernelFeatures(Version KernelVersion, bool HasBtf)
{
    /// <summary>bpf_link for XDP (5.9); per-CPU hash lookup-and-delete (5.14) is needed for eviction.</summary>
    public static readonly Version MinimumKernel = new(5, 14);
    /// <summary>TCX links (BPF_TCX_INGRESS/EGRESS).</summary>
    public static readonly Version TcxKernel = new(6, 6);

    public bool HasTcx => KernelVersion >= TcxKernel;

    /// <summary>Multi-buffer XDP programs (BPF_F_XDP_HAS_FRAGS, SEC("xdp.frags")).</summary>
    public static readonly Version XdpFragsKernel = new(5, 18);

    public bool HasXdpFrags => KernelVersion >= XdpFragsKernel;

    /// <summary>The kfree_skb tracepoint with a drop reason (qdisc drops are told apart).</summary>
    public static readonly Version DropReasonsKernel = new(5, 17);

    public bool HasDropReasons => KernelVersion >= DropReasonsKernel;

    public static KernelFeatures Probe() =>
        new(Environment.OSVersion.Version, File.Exists("/sys/kernel/btf/vmlinux"));

    /// <summary>Throws an <see cref="OperatorException"/> naming what this kernel lacks.</summary>
    public void RequireForLoad()
    {
        if (KernelVersion < MinimumKernel)
            throw new OperatorException(
                $"kernel {KernelVersion} lacks bpf_link XDP attachment and per-CPU map lookup-and-delete (kernel {MinimumKernel} or newer is needed)",
                "upgrade the kernel");
        if (!HasBtf)
            throw new OperatorException("kernel without BTF (/sys/kernel/btf/vmlinux is missing)",
                "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every current distribution kernel is)");
    }

    public override string ToString() =>
        $"kernel {KernelVersion}, BTF {(HasBtf ? "yes" : "no")}, bpf_link XDP {(KernelVersion >= MinimumKernel ? "yes" : "no")}, TCX {(HasTcx ? "yes" : "no")}";
}
