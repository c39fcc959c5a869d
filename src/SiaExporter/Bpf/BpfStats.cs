using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>Run time and run count of one program since stats were enabled.</summary>
public readonly record struct ProgramRunStats(string Program, ulong RunTimeNs, ulong RunCount)
{
    public double NsPerRun => RunCount == 0 ? 0 : (double)RunTimeNs / RunCount;
}

/// <summary>
/// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME), held for the daemon's lifetime (the kernel keeps
/// per-program run time while the descriptor is open; ~20 ns per run), and the per-program
/// figures from bpf_prog_info.
/// </summary>
internal sealed class BpfStats : IDisposable
{
    private readonly SafeFileDescriptorHandle _enabled;

    private BpfStats(SafeFileDescriptorHandle enabled) => _enabled = enabled;

    public static BpfStats Enable() => new(LibBpf.EnableRunTimeStats());

    /// <summary>The figures of <paramref name="program"/>, named <paramref name="name"/>.</summary>
    public static ProgramRunStats Of(string name, BpfProgram program)
    {
        var info = program.Info();
        return new ProgramRunStats(name, info.RunTimeNs, info.RunCount);
    }

    /// <summary>Every program of the loaded collector: xdp_ingress, tc_ingress, tc_egress, their
    /// L3 pair (tun, WireGuard, PPP) and qdisc_drop (when the kernel has drop reasons). A program
    /// attached nowhere shows zero runs. (xdp_rx_vlan is loaded per interface, device-bound, and is
    /// not in this list.)</summary>
    public static IReadOnlyList<ProgramRunStats> Of(CollectorObject collector)
    {
        List<ProgramRunStats> stats =
        [
            Of(BpfConstants.ProgXdp, collector.XdpIngress),
            Of(BpfConstants.ProgTcIngress, collector.TcIngress),
            Of(BpfConstants.ProgTcEgress, collector.TcEgress),
            Of(BpfConstants.ProgTcIngressL3, collector.TcIngressL3),
            Of(BpfConstants.ProgTcEgressL3, collector.TcEgressL3),
        ];
        if (collector.QdiscDrop is { } qdiscDrop) stats.Add(Of(BpfConstants.ProgQdiscDrop, qdiscDrop));
        return stats;
    }

    public void Dispose() => _enabled.Dispose();
}
