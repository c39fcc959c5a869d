using System.Diagnostics;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Metrics;

/// <summary>Run time and run count of one BPF program, as the kernel reports them
/// (bpf_prog_info.run_time_ns / run_cnt, counted while BPF stats are enabled).</summary>
public readonly record struct BpfProgramStats(string Program, ulong RunTimeNs, ulong RunCount);

/// <summary>One expected attachment (interface × hook "xdp"/"tc") and whether it is in place now.</summary>
public readonly record struct BpfAttachment(string Interface, string Hook, bool Attached);

/// <summary>What the host provides besides the counters; every member is optional.</summary>
public sealed class MetricsSources
{
    /// <summary>The programs' kernel stats, read at scrape time.</summary>
    public Func<IEnumerable<BpfProgramStats>>? BpfPrograms { get; init; }

    /// <summary>Every expected attachment, read at scrape time (a hook that is gone shows 0).</summary>
    public Func<IEnumerable<BpfAttachment>>? Attachments { get; init; }

    /// <summary>How long the last kernel map read took (e.g. SnapshotSource.LastReadDuration);
    /// without it the time the snapshot provider took is shown.</summary>
    public Func<TimeSpan>? LastMapReadDuration { get; init; }

    /// <summary>The SQLite history's health: when the last flush committed, and how many failed.</summary>
    public Func<(DateTimeOffset? LastSuccess, long Failures)>? History { get; init; }

    /// <summary>The API push's state (only when API_ENDPOINT and API_TOKEN are set).</summary>
    public Func<Push.PushStatus>? Push { get; init; }

    /// <summary>The kernel map's capacity; default CollectorOptions.MaxClients.</summary>
    public int? MapCapacity { get; init; }

    /// <summary>Shown in sia_exporter_build_info; default the assembly's informational version.</summary>
    public string? Version { get; init; }
}

/// <summary>
/// The /metrics registry of the daemon. Everything is read at scrape time: a before-collect
/// callback takes ONE snapshot from the provider and publishes it (see
/// <see cref="PublicationEngine"/> for the rules). Scrapes are serialized on a lock; the provider
/// is called under it, so snapshots are taken in order. Each instance has its own
/// <see cref="CollectorRegistry"/>.
/// </summary>
public sealed class MetricsExporter
{
    private static readonly string[] TrafficLabels = ["client", "port", "proto", "direction"];
    private static readonly string[] HostLabels = ["port", "proto", "direction"];
    private const string OtherClient = "other";

    private readonly CollectorOptions _options;
    private readonly Func<CounterSnapshot> _snapshots;
    private readonly MetricsSources _sources;
    private readonly ILogger _logger;
    private readonly string _statePath;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _scrapeGate = new(1, 1);
    private int _lastSize;
    private readonly ClientActivity _activity = new();

    private readonly Counter _bytes;
    private readonly Counter _packets;
    private readonly Counter _hostBytes;
    private readonly Counter _hostPackets;
    private readonly Gauge _clients;
    private readonly Gauge _publishedClients;
    private readonly Gauge _mapCapacity;
    private readonly Counter _overflow;
    private readonly Gauge _attached;
    private readonly Counter _bpfRunTime;
    private readonly Counter _bpfRuns;
    private readonly Gauge _mapReadDuration;
    private readonly Gauge _scrapeDuration;
    private readonly Gauge _sqliteLastSuccess;
    private readonly Gauge _pushLastSuccess;
    private readonly Gauge _pushPending;
    private readonly Counter _pushFailures;
    private readonly Counter _sqliteFailures;
    private readonly Counter _errors;
    private readonly UnconfirmedMetrics _unconfirmed;

    private readonly Dictionary<ClientAddress, ClientSeries> _series = new();
    private readonly Dictionary<string, (ulong Kernel, ulong Published)> _bpfTime = new();
    private readonly Dictionary<string, (ulong Kernel, ulong Published)> _bpfCount = new();
    private readonly HashSet<(string Interface, string Hook)> _attachments = new();
    private SlotSeries[]? _slotSeries;

    private PublicationState? _state;
    private bool _restored; // _state came from the file and is not yet checked against a snapshot
    private CounterSnapshot? _last;

    private sealed record ClientSeries(Counter.Child[] Bytes, Counter.Child[] Packets);

    private sealed record SlotSeries(Counter.Child HostBytes, Counter.Child HostPackets, Counter.Child OtherBytes, Counter.Child OtherPackets);

    public MetricsExporter(CollectorOptions options, Func<CounterSnapshot> snapshots, MetricsSources? sources = null, ILogger? logger = null)
        : this(options, snapshots, sources, logger, processMetrics: true)
    {
    }

    /// <summary><paramref name="processMetrics"/> false leaves out process_* and dotnet_* (they cost
    /// a few milliseconds per scrape reading /proc; tests that scrape thousands of times skip them).</summary>
    internal MetricsExporter(CollectorOptions options, Func<CounterSnapshot> snapshots, MetricsSources? sources, ILogger? logger, bool processMetrics)
    {
        ConfigureDefaultRegistry();
        _options = options;
        _snapshots = snapshots;
        _sources = sources ?? new MetricsSources();
        _logger = logger ?? NullLogger.Instance;
        _statePath = PublicationStateFile.PathIn(options.StateDirectory);
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);

        _bytes = f.CreateCounter("sia_traffic_bytes_total",
            "Ethernet frame bytes exchanged with a client, per port class and direction (down = received by the host). " +
            "Only the top METRICS_TOP_CLIENTS clients have their own series, starting at zero when first shown; client=\"other\" holds the rest, so the sum over client equals sia_traffic_host_bytes_total.",
            TrafficLabels);
        _packets = f.CreateCounter("sia_traffic_packets_total",
            "Frames exchanged with a client, per port class and direction; same client rule as sia_traffic_bytes_total.",
            TrafficLabels);
        _hostBytes = f.CreateCounter("sia_traffic_host_bytes_total",
            "Ethernet frame bytes of every client, per port class and direction, from the kernel's own total counter.",
            HostLabels);
        _hostPackets = f.CreateCounter("sia_traffic_host_packets_total",
            "Frames of every client, per port class and direction, from the kernel's own total counter.",
            HostLabels);
        _clients = f.CreateGauge("sia_exporter_clients", "Clients in the kernel counter map now.");
        _publishedClients = f.CreateGauge("sia_exporter_published_clients", "Clients with their own sia_traffic_* series now (at most METRICS_TOP_CLIENTS).");
        _mapCapacity = f.CreateGauge("sia_exporter_map_capacity", "Capacity of the kernel counter map (MAX_CLIENTS).");
        _overflow = f.CreateCounter("sia_exporter_map_overflow_total",
            "Frames whose client found the kernel map full; they are still counted in the host totals and client=\"other\".");
        _attached = f.CreateGauge("sia_exporter_bpf_attached", "1 when the counting program is attached to the interface at the hook, 0 when it is expected but not attached.", "interface", "hook");
        _bpfRunTime = f.CreateCounter("sia_exporter_bpf_run_time_seconds_total", "Time the kernel spent running the BPF program (counted while BPF stats are enabled).", "program");
        _bpfRuns = f.CreateCounter("sia_exporter_bpf_runs_total", "Runs of the BPF program (counted while BPF stats are enabled).", "program");
        _mapReadDuration = f.CreateGauge("sia_exporter_map_read_duration_seconds", "Time the last read of the kernel counter maps took.");
        _scrapeDuration = f.CreateGauge("sia_exporter_scrape_duration_seconds",
            "Time the last scrape spent taking the snapshot, ranking clients, saving state and updating series (serialization excluded).");
        _errors = f.CreateCounter("sia_exporter_errors_total",
            "Failures while publishing: counter_read (the scrape served the previous values), state_write (no client joined or left /metrics in that scrape).",
            "operation");
        _sqliteLastSuccess = f.CreateGauge("sia_exporter_sqlite_last_success_timestamp_seconds",
            "Unix time of the last flush to the SQLite history that committed (0 until the first).");
        _sqliteFailures = f.CreateCounter("sia_exporter_sqlite_flush_failures_total",
            "Flushes to the SQLite history that failed after their retries; their deltas are kept and written by a later flush.");
        _pushLastSuccess = f.CreateGauge("sia_exporter_push_last_success_timestamp_seconds",
            "Unix time of the last bucket the API endpoint acknowledged (0 until the first; absent when push is off).");
        _pushPending = f.CreateGauge("sia_exporter_push_pending_buckets",
            "Closed 5-minute buckets not yet acknowledged by the API endpoint (including ones it refused).");
        _pushFailures = f.CreateCounter("sia_exporter_push_failures_total",
            "Failed requests to the API endpoint; the buckets stay in the outbox and are sent later.");
        _unconfirmed = new UnconfirmedMetrics(f);
        _errors.WithLabels("counter_read");
        _errors.WithLabels("state_write");
        _mapCapacity.Set(_sources.MapCapacity ?? options.MaxClients);
        f.CreateGauge("sia_exporter_build_info", "Version of the exporter and the host it runs on; always 1.", "version", "hostname")
            .WithLabels(_sources.Version ?? DefaultVersion, options.SiaHostname).Set(1);
        if (processMetrics) DotNetStats.Register(Registry);

        var saved = PublicationStateFile.TryRead(_statePath, out var problem);
        if (problem is not null)
            _logger.LogWarning("Ignoring the metrics state in {Path} ({Problem}); client series start afresh", _statePath, problem);
        if (saved is not null && saved.Ports == options.Ports.ToString() && saved.Lanes == PublicationState.LanesFor(options.Ports))
        {
            _state = saved;
            _restored = true;
        }

        Registry.AddBeforeCollectCallback(Update);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>What the last <see cref="Update"/> took (also sia_exporter_scrape_duration_seconds).</summary>
    public TimeSpan LastUpdateDuration { get; private set; }

    /// <summary>The assembly's informational version without the source revision suffix.</summary>
    public static string DefaultVersion
    {
        get
        {
            var version = typeof(MetricsExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            var plus = version.IndexOf('+');
            return plus > 0 ? version[..plus] : version;
        }
    }

    /// <summary>The published clients now, highest kernel bytes first (for the / page).</summary>
    internal IReadOnlyList<ClientAddress> PublishedClients
    {
        get
        {
            lock (_gate)
                return _state is null ? [] : _state.Clients.Values.OrderByDescending(c => c.RankBytes).Select(c => c.Address).ToList();
        }
    }

    /// <summary>Content type of what <see cref="WriteScrapeAsync"/> writes.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>
    /// One whole scrape (update and serialization) into <paramref name="to"/>. Scrapes are
    /// serialized and buffered: two overlapping scrapes cannot interleave, so every exposition
    /// shows one consistent state (sum over client == host total), and a slow reader does not
    /// hold up the next scrape.
    /// </summary>
    public async Task WriteScrapeAsync(Stream to, CancellationToken cancel = default)
    {
        using var buffer = new MemoryStream(_lastSize + 4096);
        await _scrapeGate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            await Registry.CollectAndExportAsTextAsync(buffer, ExpositionFormat.PrometheusText, cancel).ConfigureAwait(false);
        }
        finally
        {
            _scrapeGate.Release();
        }
        _lastSize = (int)Math.Min(buffer.Length, 64 << 20);
        buffer.Position = 0;
        await buffer.CopyToAsync(to, cancel).ConfigureAwait(false);
    }

    /// <summary>The exposition text of one scrape (what /metrics serves), without Kestrel.</summary>
    public async Task<string> ExportTextAsync(CancellationToken cancel = default)
    {
        using var stream = new MemoryStream();
        await WriteScrapeAsync(stream, cancel).ConfigureAwait(false);
        return Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>What every scrape does before serializing: one snapshot, published. Thread-safe.</summary>
    public void Update()
    {
        lock (_gate)
        {
            var started = Stopwatch.GetTimestamp();
            CounterSnapshot snapshot;
            try
            {
                snapshot = _snapshots();
            }
            catch (Exception e)
            {
                _errors.WithLabels("counter_read").Inc();
                _logger.LogWarning("Reading the counters for /metrics failed: {Error}", e.Message);
                return;
            }
            _mapReadDuration.Set((_sources.LastMapReadDuration?.Invoke() ?? Stopwatch.GetElapsedTime(started)).TotalSeconds);
            if (!ReferenceEquals(snapshot, _last)) Publish(snapshot);
            PublishSelfMetrics();
            LastUpdateDuration = Stopwatch.GetElapsedTime(started);
            _scrapeDuration.Set(LastUpdateDuration.TotalSeconds);
        }
    }

    private void Publish(CounterSnapshot snapshot)
    {
        var lanes = PublicationState.LanesFor(snapshot.Classes);
        var ports = snapshot.Classes.ToString();
        if (_state is not null && (_state.Lanes != lanes || _state.Ports != ports))
            throw new InvalidOperationException($"the counters' port classes ({ports}) differ from the published ones ({_state.Ports})");
        if (_state is not null && _restored && _state.Generation != snapshot.Generation)
        {
            _logger.LogInformation("The counter maps were recreated ({Old} -> {New}): client series start afresh", _state.Generation, snapshot.Generation);
            _state = null;
        }
        // After a restore the growth since the persisted state spans scrapes whose `other` the
        // previous process already served: no client may take its whole value back from it then.
        var growthIsSinceLastServed = !_restored;
        _restored = false;
        _state ??= new PublicationState(snapshot.Generation, ports, lanes);
        _slotSeries ??= CreateSlotSeries(snapshot.Classes);

        _activity.Observe(snapshot);
        var (next, structural) = PublicationEngine.Advance(_state, snapshot, _activity, _options.MetricsTopClients, _options.ClientIdleTimeout, allowStructural: true,
            growthIsSinceLastServed);
        if (structural)
        {
            try
            {
                PublicationStateFile.Write(_statePath, next);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _errors.WithLabels("state_write").Inc();
                _logger.LogWarning("Saving the metrics state to {Path} failed ({Error}); no client joins or leaves /metrics until it works", _statePath, e.Message);
                (next, _) = PublicationEngine.Advance(_state, snapshot, _activity, _options.MetricsTopClients, _options.ClientIdleTimeout, allowStructural: false,
                    growthIsSinceLastServed);
            }
        }
        _state = next;
        _last = snapshot;
        Serve(next, snapshot);
    }

    private SlotSeries[] CreateSlotSeries(PortClassSet classes)
    {
        var result = new SlotSeries[classes.SlotCount];
        for (var c = 0; c < classes.Count; c++)
        {
            var port = classes.Classes[c].Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var proto = classes.Classes[c].ProtocolLabel;
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var d = direction.Label();
                result[PortClassSet.Slot(c, direction)] = new SlotSeries(
                    _hostBytes.WithLabels(port, proto, d), _hostPackets.WithLabels(port, proto, d),
                    _bytes.WithLabels(OtherClient, port, proto, d), _packets.WithLabels(OtherClient, port, proto, d));
            }
        }
        return result;
    }

    private void Serve(PublicationState state, CounterSnapshot snapshot)
    {
        var slots = _slotSeries!;
        // Series of clients that left first, then the values: other grows by what they showed.
        if (_series.Count > 0)
        {
            List<ClientAddress>? gone = null;
            foreach (var address in _series.Keys)
                if (!state.Clients.ContainsKey(address)) (gone ??= []).Add(address);
            if (gone is not null)
                foreach (var address in gone)
                {
                    var series = _series[address];
                    foreach (var child in series.Bytes) child.Remove();
                    foreach (var child in series.Packets) child.Remove();
                    _series.Remove(address);
                }
        }
        for (var s = 0; s < slots.Length; s++)
        {
            slots[s].HostBytes.IncTo(state.HostPublished[2 * s]);
            slots[s].HostPackets.IncTo(state.HostPublished[2 * s + 1]);
            slots[s].OtherBytes.IncTo(state.Other[2 * s]);
            slots[s].OtherPackets.IncTo(state.Other[2 * s + 1]);
        }
        foreach (var client in state.Clients.Values)
        {
            if (!_series.TryGetValue(client.Address, out var series))
            {
                series = CreateClientSeries(client.Address, snapshot.Classes);
                _series.Add(client.Address, series);
            }
            for (var s = 0; s < slots.Length; s++)
            {
                series.Bytes[s].IncTo(client.Published[2 * s]);
                series.Packets[s].IncTo(client.Published[2 * s + 1]);
            }
        }
        _clients.Set(snapshot.Clients.Length);
        _publishedClients.Set(state.Clients.Count);
        _overflow.IncTo(state.OverflowPublished);
        _unconfirmed.Publish(snapshot);
    }

    private ClientSeries CreateClientSeries(ClientAddress address, PortClassSet classes)
    {
        var label = address.ToString();
        var bytes = new Counter.Child[classes.SlotCount];
        var packets = new Counter.Child[classes.SlotCount];
        for (var c = 0; c < classes.Count; c++)
        {
            var port = classes.Classes[c].Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var proto = classes.Classes[c].ProtocolLabel;
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var slot = PortClassSet.Slot(c, direction);
                bytes[slot] = _bytes.WithLabels(label, port, proto, direction.Label());
                packets[slot] = _packets.WithLabels(label, port, proto, direction.Label());
            }
        }
        return new ClientSeries(bytes, packets);
    }

    private void PublishSelfMetrics()
    {
        if (_sources.History is { } history)
        {
            var (lastSuccess, failures) = history();
            if (lastSuccess is { } at) _sqliteLastSuccess.Set(at.ToUnixTimeMilliseconds() / 1000.0);
            _sqliteFailures.IncTo(failures);
        }
        if (_sources.Push is { } push)
        {
            var status = push();
            if (status.LastSuccess is { } at) _pushLastSuccess.Set(at.ToUnixTimeMilliseconds() / 1000.0);
            _pushPending.Set(status.PendingBuckets);
            _pushFailures.IncTo(status.Failures);
        }
        if (_sources.BpfPrograms is { } programs)
        {
            try
            {
                foreach (var p in programs())
                {
                    _bpfRunTime.WithLabels(p.Program).IncTo(Accumulate(_bpfTime, p.Program, p.RunTimeNs) / 1e9);
                    _bpfRuns.WithLabels(p.Program).IncTo(Accumulate(_bpfCount, p.Program, p.RunCount));
                }
            }
            catch (Exception e)
            {
                _logger.LogDebug("Reading the BPF program stats failed: {Error}", e.Message);
            }
        }
        if (_sources.Attachments is { } attachments)
        {
            try
            {
                var now = new HashSet<(string, string)>();
                foreach (var a in attachments())
                {
                    now.Add((a.Interface, a.Hook));
                    _attached.WithLabels(a.Interface, a.Hook).Set(a.Attached ? 1 : 0);
                }
                foreach (var old in _attachments.Where(k => !now.Contains(k)).ToList())
                {
                    _attached.RemoveLabelled(old.Interface, old.Hook);
                    _attachments.Remove(old);
                }
                _attachments.UnionWith(now);
            }
            catch (Exception e)
            {
                _logger.LogDebug("Reading the BPF attachments failed: {Error}", e.Message);
            }
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

    private static int _defaultsConfigured;

    /// <summary>
    /// The static default registry is never served (each exporter has its own), but prometheus-net
    /// would start its EventCounter and Meter adapters if anything collected it (idle CPU, issue
    /// #392): switch them off once. Process metrics are registered on our own registry.
    /// </summary>
    public static void ConfigureDefaultRegistry()
    {
        if (Interlocked.Exchange(ref _defaultsConfigured, 1) != 0) return;
        Prometheus.Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
        {
            SuppressProcessMetrics = false,
            SuppressDebugMetrics = true,
            SuppressEventCounters = true,
            SuppressMeters = true,
        });
    }
}
