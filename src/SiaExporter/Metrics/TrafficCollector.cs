using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Prometheus;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Metrics;

/// <summary>
/// The traffic series: per client (the top METRICS_TOP_CLIENTS, the rest in client="other") and
/// per host, plus the kernel map's client count and overflow, and the publishing's own health.
/// At every scrape it takes ONE snapshot and publishes it (see <see cref="PublicationEngine"/> for
/// the rules). Updates are serialized on a lock, so snapshots are taken and published in order.
/// A change of the published set is handed to <see cref="PublicationStateSaver"/>, which saves it
/// off the scrape path; while a save fails, no client joins or leaves /metrics.
/// </summary>
internal sealed class TrafficCollector
{
    private static readonly string[] TrafficLabels = ["client", "port", "proto", "direction"];
    private static readonly string[] HostLabels = ["port", "proto", "direction"];
    private const string OtherClient = "other";

    private readonly CollectorOptions _options;
    private readonly Func<CounterSnapshot> _snapshots;
    private readonly PublicationStateSaver _saver;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly ClientActivity _activity = new();

    private readonly Counter _bytes;
    private readonly Counter _packets;
    private readonly Counter _hostBytes;
    private readonly Counter _hostPackets;
    private readonly Gauge _clients;
    private readonly Gauge _publishedClients;
    private readonly Counter _overflow;
    private readonly Gauge _scrapeDuration;
    private readonly Counter.Child _counterReadErrors;
    private readonly Counter.Child _stateWriteErrors;

    private readonly Dictionary<ClientAddress, ClientSeries> _series = new();
    private SlotSeries[]? _slotSeries;

    private PublicationState? _state;
    private bool _restored; // _state came from the file and is not yet checked against a snapshot
    private CounterSnapshot? _last;

    private sealed record ClientSeries(Counter.Child[] Bytes, Counter.Child[] Packets);

    private sealed record SlotSeries(Counter.Child HostBytes, Counter.Child HostPackets, Counter.Child OtherBytes, Counter.Child OtherPackets);

    /// <summary>Creates the traffic metrics on <paramref name="registry"/> and updates them before every collection.</summary>
    public static TrafficCollector Register(CollectorRegistry registry, CollectorOptions options, Func<CounterSnapshot> snapshots,
        PublicationStateSaver saver, ILogger logger)
    {
        var collector = new TrafficCollector(registry, options, snapshots, saver, logger);
        registry.AddBeforeCollectCallback(collector.Update);
        return collector;
    }

    private TrafficCollector(CollectorRegistry registry, CollectorOptions options, Func<CounterSnapshot> snapshots,
        PublicationStateSaver saver, ILogger logger)
    {
        _options = options;
        _snapshots = snapshots;
        _saver = saver;
        _logger = logger;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);

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
        _overflow = f.CreateCounter("sia_exporter_map_overflow_total",
            "Frames whose client found the kernel map full; they are still counted in the host totals and client=\"other\".");
        _scrapeDuration = f.CreateGauge("sia_exporter_scrape_duration_seconds",
            "Time the last scrape spent taking the snapshot, ranking clients and updating series (serialization excluded).");
        var errors = f.CreateCounter("sia_exporter_errors_total",
            "Failures while publishing: counter_read (the scrape served the previous values), " +
            "state_write (saving the publication state failed; no client joins or leaves /metrics until a save works).",
            "operation");
        _counterReadErrors = errors.WithLabels("counter_read");
        _stateWriteErrors = errors.WithLabels("state_write");

        var saved = PublicationStateFile.TryRead(saver.Path, out var problem);
        if (problem is not null)
            _logger.LogWarning("Ignoring the metrics state in {Path} ({Problem}); client series start afresh", saver.Path, problem);
        if (saved is not null && saved.Ports == options.Ports.ToString() && saved.Lanes == PublicationState.LanesFor(options.Ports))
        {
            _state = saved;
            _restored = true;
        }
    }

    /// <summary>Every snapshot this collector publishes, in order, under its update lock: what the
    /// collectors of the same snapshot (<see cref="UnconfirmedCollector"/>) publish from.</summary>
    public event Action<CounterSnapshot>? Published;

    /// <summary>What the last <see cref="Update"/> took (also sia_exporter_scrape_duration_seconds).</summary>
    public TimeSpan LastUpdateDuration { get; private set; }

    /// <summary>What the last call of the snapshot provider took.</summary>
    public TimeSpan LastSnapshotDuration { get; private set; }

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
                _counterReadErrors.Inc();
                _logger.LogWarning("Reading the counters for /metrics failed: {Error}", e.Message);
                return;
            }
            LastSnapshotDuration = Stopwatch.GetElapsedTime(started);
            if (!ReferenceEquals(snapshot, _last)) Publish(snapshot);
            _stateWriteErrors.IncTo(_saver.Failures);
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

        // Until the last change of the published set is on disk, the set stays as it is: what is
        // served must stay restorable from what was saved.
        var saving = _saver.LastSaveFailed;
        _activity.Observe(snapshot);
        var (next, structural) = PublicationEngine.Advance(_state, snapshot, _activity, _options.MetricsTopClients, _options.ClientIdleTimeout,
            allowStructural: !saving, growthIsSinceLastServed);
        if (structural || saving) _saver.Offer(next);
        _state = next;
        _last = snapshot;
        Serve(next, snapshot);
        Published?.Invoke(snapshot);
    }

    private SlotSeries[] CreateSlotSeries(PortClassSet classes)
    {
        var result = new SlotSeries[classes.SlotCount];
        for (var c = 0; c < classes.Count; c++)
        {
            var port = classes.Classes[c].Port.ToString(CultureInfo.InvariantCulture);
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
    }

    private ClientSeries CreateClientSeries(ClientAddress address, PortClassSet classes)
    {
        var label = address.ToString();
        var bytes = new Counter.Child[classes.SlotCount];
        var packets = new Counter.Child[classes.SlotCount];
        for (var c = 0; c < classes.Count; c++)
        {
            var port = classes.Classes[c].Port.ToString(CultureInfo.InvariantCulture);
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
}
