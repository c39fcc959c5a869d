using Microsoft.Extensions.Logging;
using Prometheus;

namespace SiaExporter.Metrics;

/// <summary>Run time and run count of one BPF program, as the kernel reports them
/// (bpf_prog_info.run_time_ns / run_cnt, counted while BPF stats are enabled).</summary>
public readonly record struct BpfProgramStats(string Program, ulong RunTimeNs, ulong RunCount);

/// <summary>One expected attachment (interface × hook "xdp"/"tc_ingress"/"tc_egress") and whether it is in place now.</summary>
public readonly record struct BpfAttachment(string Interface, string Hook, bool Attached);

/// <summary>
/// The kernel side of counting: whether each expected hook has our program, what the programs
/// cost the kernel, the counter map's capacity and how long reading it takes. Every value is read
/// at scrape time from the given sources; a source that fails leaves its series as they were.
/// </summary>
internal sealed class BpfCollector
{
    private readonly Func<IEnumerable<BpfProgramStats>>? _programs;
    private readonly Func<IEnumerable<BpfAttachment>>? _attachments;
    private readonly Func<TimeSpan> _lastMapReadDuration;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();

    private readonly Gauge _attached;
    private readonly Counter _runTime;
    private readonly Counter _runs;
    private readonly Gauge _mapReadDuration;

    private readonly Dictionary<string, (ulong Kernel, ulong Published)> _runTimeNs = new();
    private readonly Dictionary<string, (ulong Kernel, ulong Published)> _runCount = new();
    private readonly HashSet<(string Interface, string Hook)> _shownAttachments = new();

    /// <summary>Creates the BPF metrics on <paramref name="registry"/> and updates them before every collection.</summary>
    public static void Register(CollectorRegistry registry, Func<IEnumerable<BpfProgramStats>>? programs, Func<IEnumerable<BpfAttachment>>? attachments,
        Func<TimeSpan> lastMapReadDuration, int mapCapacity, ILogger logger)
    {
        var collector = new BpfCollector(registry, programs, attachments, lastMapReadDuration, mapCapacity, logger);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private BpfCollector(CollectorRegistry registry, Func<IEnumerable<BpfProgramStats>>? programs, Func<IEnumerable<BpfAttachment>>? attachments,
        Func<TimeSpan> lastMapReadDuration, int mapCapacity, ILogger logger)
    {
        _programs = programs;
        _attachments = attachments;
        _lastMapReadDuration = lastMapReadDuration;
        _logger = logger;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        f.CreateGauge("sia_exporter_map_capacity", "Capacity of the kernel counter map (MAX_CLIENTS).").Set(mapCapacity);
        _attached = f.CreateGauge("sia_exporter_bpf_attached",
            "1 when the counting program is attached to the interface at the hook (xdp or tc_ingress: received; tc_egress: sent), 0 when it is expected but not attached.",
            "interface", "hook");
        _runTime = f.CreateCounter("sia_exporter_bpf_run_time_seconds_total", "Time the kernel spent running the BPF program (counted while BPF stats are enabled).", "program");
        _runs = f.CreateCounter("sia_exporter_bpf_runs_total", "Runs of the BPF program (counted while BPF stats are enabled).", "program");
        _mapReadDuration = f.CreateGauge("sia_exporter_map_read_duration_seconds", "Time the last read of the kernel counter maps took.");
    }

    private void Update()
    {
        lock (_gate)
        {
            _mapReadDuration.Set(_lastMapReadDuration().TotalSeconds);
            UpdateProgramStats();
            UpdateAttachments();
        }
    }

    private void UpdateProgramStats()
    {
        if (_programs is null) return;
        try
        {
            foreach (var p in _programs())
            {
                _runTime.WithLabels(p.Program).IncTo(Accumulate(_runTimeNs, p.Program, p.RunTimeNs) / 1e9);
                _runs.WithLabels(p.Program).IncTo(Accumulate(_runCount, p.Program, p.RunCount));
            }
        }
        catch (Exception e)
        {
            _logger.LogDebug("Reading the BPF program stats failed: {Error}", e.Message);
        }
    }

    private void UpdateAttachments()
    {
        if (_attachments is null) return;
        try
        {
            var now = new HashSet<(string, string)>();
            foreach (var a in _attachments())
            {
                now.Add((a.Interface, a.Hook));
                _attached.WithLabels(a.Interface, a.Hook).Set(a.Attached ? 1 : 0);
            }
            foreach (var old in _shownAttachments.Where(k => !now.Contains(k)).ToList())
            {
                _attached.RemoveLabelled(old.Interface, old.Hook);
                _shownAttachments.Remove(old);
            }
            _shownAttachments.UnionWith(now);
        }
        catch (Exception e)
        {
            _logger.LogDebug("Reading the BPF attachments failed: {Error}", e.Message);
        }
    }

    /// <summary>Kernel program stats restart when a program is reloaded; the published counter
    /// carries on from where it was.</summary>
    private static ulong Accumulate(Dictionary<string, (ulong Kernel, ulong Published)> seen, string program, ulong kernel)
    {
        seen.TryGetValue(program, out var last);
        var growth = kernel >= last.Kernel ? kernel - last.Kernel : kernel;
        var next = (kernel, last.Published + growth);
        seen[program] = next;
        return next.Item2;
    }
}
