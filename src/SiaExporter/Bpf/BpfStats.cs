using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>Run time and run count of one program since stats were enabled.</summary>
public readonly record struct ProgramRunStats(string Program, ulong RunTimeNs, ulong RunCount)
{
    public double NsPerRun => RunCount == 0 ? 0 : (double)RunTimeNs / RunCount;
}

/// <summary>
/// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME), held for the daemon's lifetime (the kernel keeps
/// per-program run time while the fd is open; ~20 ns per run), and the per-program figures from
/// bpf_prog_info.
/// </summary>
internal sealed class BpfStats : IDisposable
{
    private const int StatsRunTime = 0; // BPF_STATS_RUN_TIME
    private readonly SafeFileDescriptorHandle _enabled;

    private BpfStats(SafeFileDescriptorHandle enabled) => _enabled = enabled;

    public static BpfStats Enable()
    {
        var fd = LibBpf.EnableStats(StatsRunTime);
        return new BpfStats(new SafeFileDescriptorHandle(BpfErrors.Check(fd, "bpf_enable_stats(BPF_STATS_RUN_TIME)")));
    }

    /// <summary>The figures of the program behind <paramref name="programFd"/>.</summary>
    public static ProgramRunStats Of(string program, int programFd)
    {
        var info = BpfInfo.OfProgram(programFd);
        return new ProgramRunStats(program, info.RunTimeNs, info.RunCount);
    }

    /// <summary>xdp_ingress, tc_ingress and tc_egress of the loaded collector.</summary>
    public static IReadOnlyList<ProgramRunStats> Of(CollectorObject collector) =>
    [
        Of(BpfConstants.ProgXdp, collector.XdpIngressFd),
        Of(BpfConstants.ProgTcIngress, collector.TcIngressFd),
        Of(BpfConstants.ProgTcEgress, collector.TcEgressFd),
    ];

    public void Dispose() => _enabled.Dispose();
}
