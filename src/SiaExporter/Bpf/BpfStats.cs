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

    /// <summary>xdp_ingress, tc_ingress and tc_egress of the loaded collector.</summary>
    public static IReadOnlyList<ProgramRunStats> Of(CollectorObject collector) =>
    [
        Of(BpfConstants.ProgXdp, collector.XdpIngress),
        Of(BpfConstants.ProgTcIngress, collector.TcIngress),
        Of(BpfConstants.ProgTcEgress, collector.TcEgress),
    ];

    public void Dispose() => _enabled.Dispose();
}
