using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Metrics;
using SiaExporter.Native;

namespace SiaExporter.Hosting;

/// <summary>
/// The BPF object and its hooks for the daemon's lifetime: loads (reusing the pinned maps),
/// attaches on start, detaches on stop (SIGTERM, Ctrl-C). Registered first, so it starts before
/// and stops after everything that reads the counters (the final flush still sees them).
/// </summary>
public sealed class KernelCounters(KernelOptions options, TimeProvider time, ILogger<KernelCounters> logger)
    : IHostedService, ICounterSource, IDisposable
{
    private CollectorObject? _collector;
    private HookAttachments? _attachments;
    private CounterReader? _reader;
    private BpfStats? _stats;
    private QdiscDropCounter? _qdiscDrops;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Privileges, libbpf, kernel features, interfaces and the object were checked by Preflight;
        // the loader routes libbpf's messages to the log and mounts bpffs for its pins.
        _collector = CollectorObject.Load(
            new CollectorObjectOptions(options.BpfObjectPath, options.Ports, options.MaxClients, options.PinDirectory), logger);
        logger.LogInformation(
            "clients map: {Capacity} entries × {ValueSize} B × {Cpus} CPUs = {MiB:0.0} MiB of kernel memory (pinned maps {Outcome}, generation {Generation})",
            _collector.Capacity, _collector.ValueSize, _collector.PossibleCpus, _collector.PerCpuMapBytes / 1048576.0,
            _collector.MapsOutcome, _collector.Generation);
        logger.LogInformation("pending table of unconfirmed sources: {Slots} slots × {ValueSize} B × {Cpus} CPUs = {MiB:0.0} MiB of kernel memory",
            BpfConstants.PendingEntries, _collector.PendingValueSize, _collector.PossibleCpus, _collector.PendingMapBytes / 1048576.0);
        _attachments = HookAttachments.Attach(_collector, options.Interfaces, options.XdpMode, TcAttachModeOf(options.TcAttach), logger);
        _reader = new CounterReader(_collector, time);
        _qdiscDrops = QdiscDropCounter.Start(_collector, _attachments.Items.Select(a => a.IfIndex).Distinct(), logger);
        if (options.BpfStats)
            EnableStats();
        else
            logger.LogInformation("BPF run-time statistics off (BPF_STATS=off): sia_exporter_bpf_run_time_seconds_total stays at 0");
        return Task.CompletedTask;
    }

    /// <summary>BPF_ENABLE_STATS for the daemon's lifetime (the fd keeps it on; closing it turns it off).</summary>
    private void EnableStats()
    {
        try
        {
            _stats = BpfStats.Enable();
        }
        catch (Exception e) when (e is BpfException or OperatorException)
        {
            logger.LogWarning("BPF run-time statistics are off ({Reason}): sia_exporter_bpf_run_time_seconds_total stays at 0. " +
                "To see them, run `sysctl kernel.bpf_stats_enabled=1` (costs ~20 ns per packet while on) or grant CAP_SYS_ADMIN.", e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (_attachments is not null)
        {
            _attachments.Detach();
            logger.LogInformation("detached from {Interfaces}; counters stay pinned under {PinDirectory}",
                string.Join(',', options.Interfaces), options.PinDirectory);
        }
        return Task.CompletedTask;
    }

    public CounterSnapshot Read() => Reader.Read();

    public IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients) => Reader.Evict(clients);

    /// <summary>Every hook we attached, and whether its program is still on it.</summary>
    public IEnumerable<BpfAttachment> Attachments()
    {
        if (_attachments is null) return [];
        var detached = _attachments.FindDetached().ToHashSet();
        return _attachments.Attached.Select(a => new BpfAttachment(a.Interface, a.Hook, !detached.Contains(a)));
    }

    /// <summary>The programs' run time and count from the kernel: they only grow while statistics are
    /// on (BPF_STATS=on, or `sysctl kernel.bpf_stats_enabled=1` by the operator), and read 0 otherwise.</summary>
    public IEnumerable<BpfProgramStats> ProgramStats() =>
        _collector is null
            ? []
            : BpfStats.Of(_collector).Select(s => new BpfProgramStats(s.Program, s.RunTimeNs, s.RunCount));

    /// <summary>Up traffic a qdisc dropped after it was counted, per slot; null when not counted here.</summary>
    public Traffic[]? QdiscDrops() => _qdiscDrops?.Read();

    private CounterReader Reader => _reader ?? throw new InvalidOperationException("the BPF programs are not loaded yet");

    internal static TcAttachMode TcAttachModeOf(string text) => text switch
    {
        "tcx" => TcAttachMode.Tcx,
        "netlink" => TcAttachMode.Netlink,
        _ => TcAttachMode.Auto,
    };

    public void Dispose()
    {
        _stats?.Dispose();
        _qdiscDrops?.Dispose();
        _reader?.Dispose();
        _attachments?.Dispose();
        _collector?.Dispose();
    }
}
