using Prometheus;
using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// sia_exporter_qdisc_dropped_{bytes,packets}_total{port,proto}: up traffic a qdisc on a counted
/// interface (a tbf, fq_codel or cake shaper) dropped after tc_egress had counted it. The up
/// series count before the qdisc; up minus these is what left the host. From zero at each start.
/// </summary>
internal static class QdiscDropMetrics
{
    /// <param name="read">Dropped traffic per slot, or null when drops are not counted here.</param>
    public static void Register(CollectorRegistry registry, PortClassSet classes, Func<Traffic[]?> read)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        var bytes = f.CreateCounter("sia_exporter_qdisc_dropped_bytes_total",
            "Up bytes (as counted in sia_traffic_host_bytes_total) that a qdisc of a counted interface dropped after they were counted: up minus this is what left the host.",
            "port", "proto");
        var packets = f.CreateCounter("sia_exporter_qdisc_dropped_packets_total",
            "Up frames that a qdisc of a counted interface dropped after they were counted.", "port", "proto");
        foreach (var c in classes.Classes)
        {
            bytes.WithLabels(c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), c.ProtocolLabel);
            packets.WithLabels(c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), c.ProtocolLabel);
        }
        registry.AddBeforeCollectCallback(() =>
        {
            if (read() is not { } dropped) return;
            for (var i = 0; i < classes.Count; i++)
            {
                var c = classes.Classes[i];
                var up = dropped[PortClassSet.Slot(i, Direction.Up)];
                var port = c.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
                bytes.WithLabels(port, c.ProtocolLabel).IncTo(up.Bytes);
                packets.WithLabels(port, c.ProtocolLabel).IncTo(up.Packets);
            }
        });
    }
}
