using System.Globalization;
using Prometheus;
using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// sia_exporter_qdisc_dropped_{bytes,packets}_total{port,proto}: up traffic a qdisc on a counted
/// interface (a tbf, fq_codel or cake shaper) dropped after tc_egress had counted it. The up
/// series count before the qdisc; up minus these is what left the host. From zero at each start.
/// </summary>
internal sealed class QdiscDropCollector
{
    private readonly PortClassSet _classes;
    private readonly Func<Traffic[]?> _read;
    private readonly Counter _bytes;
    private readonly Counter _packets;

    /// <summary>Creates the qdisc drop metrics on <paramref name="registry"/> and updates them before every collection.</summary>
    /// <param name="read">Dropped traffic per slot, or null when drops are not counted here.</param>
    public static void Register(CollectorRegistry registry, PortClassSet classes, Func<Traffic[]?> read)
    {
        var collector = new QdiscDropCollector(registry, classes, read);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private QdiscDropCollector(CollectorRegistry registry, PortClassSet classes, Func<Traffic[]?> read)
    {
        _classes = classes;
        _read = read;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        _bytes = f.CreateCounter("sia_exporter_qdisc_dropped_bytes_total",
            "Up bytes (as counted in sia_traffic_host_bytes_total) that a qdisc of a counted interface dropped after they were counted: up minus this is what left the host.",
            "port", "proto");
        _packets = f.CreateCounter("sia_exporter_qdisc_dropped_packets_total",
            "Up frames that a qdisc of a counted interface dropped after they were counted.", "port", "proto");
        foreach (var c in classes.Classes)
        {
            _bytes.WithLabels(PortLabel(c), c.ProtocolLabel);
            _packets.WithLabels(PortLabel(c), c.ProtocolLabel);
        }
    }

    private static string PortLabel(PortClass c) => c.Port.ToString(CultureInfo.InvariantCulture);

    private void Update()
    {
        if (_read() is not { } dropped) return;
        for (var i = 0; i < _classes.Count; i++)
        {
            var c = _classes.Classes[i];
            var up = dropped[PortClassSet.Slot(i, Direction.Up)];
            _bytes.WithLabels(PortLabel(c), c.ProtocolLabel).IncTo(up.Bytes);
            _packets.WithLabels(PortLabel(c), c.ProtocolLabel).IncTo(up.Packets);
        }
    }
}
