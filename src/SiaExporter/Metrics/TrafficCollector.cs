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
/// The same snapshot, summed per subnet (<see cref="SubnetSnapshots"/>), is published under the
/// same rules as sia_traffic_subnet_bytes_total. Each set is a <see cref="Publication"/> whose
/// changes are saved off the scrape path; while a save fails, nothing joins or leaves that set.
/// </summary>
internal sealed class TrafficCollector
{
    private static readonly string[] TrafficLabels = ["client", "port", "proto", "direction"];
    private static readonly string[] HostLabels = ["port", "proto", "direction"];
    private static readonly string[] SubnetLabels = ["subnet", "port", "proto", "direction"];
    private const string OtherClient = "other";

    private readonly Func<CounterSnapshot> _snapshots;
    private readonly Publication _clientPublication;
    private readonly Publication? _subnetPublication;
    private readonly SubnetSnapshots? _subnets;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();

    private readonly Counter _bytes;
    private readonly Counter _subnetBytes;
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
    private readonly Dictionary<ClientAddress, Counter.Child[]> _subnetSeries = new();
    private Counter.Child[]? _otherSubnetSeries;

    private CounterSnapshot? _last;

    private sealed record ClientSeries(Counter.Child[] Bytes, Counter.Child[] Packets);

    private sealed record SlotSeries(Counter.Child HostBytes, Counter.Child HostPackets, Counter.Child OtherBytes, Counter.Child OtherPackets);

    /// <summary>Creates the traffic metrics on <paramref name="registry"/> and updates them before every collection.
    /// <paramref name="subnetSaver"/> null: no subnet series (METRICS_TOP_SUBNETS=0).</summary>
    public static TrafficCollector Register(CollectorRegistry registry, CollectorOptions options, Func<CounterSnapshot> snapshots,
        PublicationStateSaver saver, PublicationStateSaver? subnetSaver, ILogger logger)
    {
        var collector = new TrafficCollector(registry, options, snapshots, saver, subnetSaver, logger);
        registry.AddBeforeCollectCallback(collector.Update);
        return collector;
    }

    /// <summary>The prefix the subnet series use: SUBNET_PREFIX, or ANONYMIZE where it is coarser
    /// (clients arrive already merged into that prefix).</summary>
    public static Web.ClientPrefix EffectiveSubnetPrefix(CollectorOptions options) => new(
        Math.Min(options.Metrics.SubnetPrefix.IPv4Bits, options.Anonymize.IPv4Bits),
        Math.Min(options.Metrics.SubnetPrefix.IPv6Bits, options.Anonymize.IPv6Bits));

    private TrafficCollector(CollectorRegistry registry, CollectorOptions options, Func<CounterSnapshot> snapshots,
        PublicationStateSaver saver, PublicationStateSaver? subnetSaver, ILogger logger)
    {
        _snapshots = snapshots;
        _logger = logger;
        _clientPublication = new Publication("client", options.Ports, options.MetricsTopClients, options.ClientIdleTimeout, saver, logger);
        if (subnetSaver is not null && options.Metrics.TopSubnets > 0)
        {
            _subnetPublication = new Publication("subnet", options.Ports, options.Metrics.TopSubnets, options.ClientIdleTimeout, subnetSaver, logger,
                ofSubnets: true);
            _subnets = new SubnetSnapshots(EffectiveSubnetPrefix(options));
        }
        var f = Prometheus.Metrics.WithCustomRegistry(registry);

        _bytes = f.CreateCounter("sia_traffic_bytes_total",
            "Ethernet frame bytes exchanged with a client, per port class and direction (down = received by the host). " +
            "Only the top METRICS_TOP_CLIENTS clients have their own series, starting at zero when first shown; client=\"other\" holds the rest, so the sum over client equals sia_traffic_host_bytes_total.",
            TrafficLabels);
        _packets = f.CreateCounter("sia_traffic_packets_total",
            "Frames exchanged with a client, per port class and direction; same client rule as sia_traffic_bytes_total.",
            TrafficLabels);
        _subnetBytes = f.CreateCounter("sia_traffic_subnet_bytes_total",
            "Ethernet frame bytes exchanged with a subnet (SUBNET_PREFIX: /24 for IPv4, /48 for IPv6), per port class and direction. " +
            "Only the top METRICS_TOP_SUBNETS subnets have their own series, same rules as sia_traffic_bytes_total; subnet=\"other\" holds the rest, so the sum over subnet equals sia_traffic_host_bytes_total.",
            SubnetLabels);
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
            _stateWriteErrors.IncTo(_clientPublication.Saver.Failures + (_subnetPublication?.Saver.Failures ?? 0));
            LastUpdateDuration = Stopwatch.GetElapsedTime(started);
            _scrapeDuration.Set(LastUpdateDuration.TotalSeconds);
        }
    }

    private void Publish(CounterSnapshot snapshot)
    {
        _slotSeries ??= CreateSlotSeries(snapshot.Classes);
        var state = _clientPublication.Advance(snapshot);
        _last = snapshot;
        Serve(state, snapshot);
        if (_subnetPublication is not null)
        {
            var subnets = _subnets!.From(snapshot);
            ServeSubnets(_subnetPublication.Advance(subnets), subnets.Classes);
        }
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

    /// <summary>The subnet series: as for clients (series of subnets that left go first), bytes only.</summary>
    private void ServeSubnets(PublicationState state, PortClassSet classes)
    {
        _otherSubnetSeries ??= CreateSubnetSeries("other", classes);
        List<ClientAddress>? gone = null;
        foreach (var subnet in _subnetSeries.Keys)
            if (!state.Clients.ContainsKey(subnet)) (gone ??= []).Add(subnet);
        if (gone is not null)
            foreach (var subnet in gone)
            {
                foreach (var child in _subnetSeries[subnet]) child.Remove();
                _subnetSeries.Remove(subnet);
            }
        for (var s = 0; s < _otherSubnetSeries.Length; s++) _otherSubnetSeries[s].IncTo(state.Other[2 * s]);
        foreach (var subnet in state.Clients.Values)
        {
            if (!_subnetSeries.TryGetValue(subnet.Address, out var series))
            {
                series = CreateSubnetSeries(_subnets!.Prefix.Apply(subnet.Address), classes);
                _subnetSeries.Add(subnet.Address, series);
            }
            for (var s = 0; s < series.Length; s++) series[s].IncTo(subnet.Published[2 * s]);
        }
    }

    private Counter.Child[] CreateSubnetSeries(string label, PortClassSet classes)
    {
        var bytes = new Counter.Child[classes.SlotCount];
        for (var c = 0; c < classes.Count; c++)
        {
            var port = classes.Classes[c].Port.ToString(CultureInfo.InvariantCulture);
            var proto = classes.Classes[c].ProtocolLabel;
            foreach (var direction in new[] { Direction.Down, Direction.Up })
                bytes[PortClassSet.Slot(c, direction)] = _subnetBytes.WithLabels(label, port, proto, direction.Label());
        }
        return bytes;
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
