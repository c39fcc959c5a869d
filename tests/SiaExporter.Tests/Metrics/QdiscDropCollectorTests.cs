using System.Text;
using Prometheus;
using SiaExporter.Counters;
using SiaExporter.Metrics;
using Xunit;

namespace SiaExporter.Tests.Metrics;

public sealed class QdiscDropCollectorTests
{
    private static async Task<string> Scrape(CollectorRegistry registry)
    {
        using var buffer = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(buffer);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    [Fact]
    public async Task The_up_drops_of_each_class_are_shown_and_only_grow()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var classes = PortClassSet.DefaultSet;
        var dropped = new Traffic[classes.SlotCount];
        dropped[PortClassSet.Slot(2, Direction.Up)] = new Traffic(5000, 5);
        dropped[PortClassSet.Slot(2, Direction.Down)] = new Traffic(777, 7); // never a qdisc drop: not shown
        QdiscDropCollector.Register(registry, classes, () => dropped);

        var text = await Scrape(registry);
        Assert.Contains("sia_exporter_qdisc_dropped_bytes_total{port=\"9984\",proto=\"udp\"} 5000", text);
        Assert.Contains("sia_exporter_qdisc_dropped_packets_total{port=\"9984\",proto=\"udp\"} 5", text);
        Assert.Contains("sia_exporter_qdisc_dropped_bytes_total{port=\"9981\",proto=\"tcp\"} 0", text);
        Assert.DoesNotContain("777", text);

        dropped[PortClassSet.Slot(2, Direction.Up)] = new Traffic(6000, 6);
        Assert.Contains("sia_exporter_qdisc_dropped_bytes_total{port=\"9984\",proto=\"udp\"} 6000", await Scrape(registry));
    }

    [Fact]
    public async Task Without_drop_counting_the_series_stay_at_zero()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        QdiscDropCollector.Register(registry, PortClassSet.DefaultSet, () => null);
        Assert.Contains("sia_exporter_qdisc_dropped_packets_total{port=\"9981\",proto=\"tcp\"} 0", await Scrape(registry));
    }
}
