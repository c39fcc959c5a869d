using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Metrics;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Metrics;

/// <summary>sia_traffic_subnet_bytes_total: clients summed per /24 and /48, published with the client series' rules.</summary>
public sealed class SubnetSeriesTests
{
    private static readonly ClientPrefix Default = new(24, 48);

    private static ulong Bytes(CounterSnapshot s, string subnet, int slot = 0)
    {
        var i = Array.IndexOf(s.Clients, ClientAddress.Parse(subnet));
        return i < 0 ? 0 : s.Get(i, slot).Bytes;
    }

    [Fact]
    public void A_subnet_sums_its_clients_and_keeps_what_an_evicted_member_did()
    {
        var kernel = new KernelModel();
        var subnets = new SubnetSnapshots(Default);
        kernel.Add(ClientAddress.Parse("203.0.113.7"), 0, 1000, 1);
        kernel.Add(ClientAddress.Parse("203.0.113.9"), 0, 500, 1);
        kernel.Add(ClientAddress.Parse("2001:db8:1:2::5"), 0, 70, 1);
        kernel.Add(ClientAddress.Parse("2001:db8:1:3::5"), 0, 30, 1); // same /48
        var s = subnets.From(kernel.Snapshot());
        Assert.Equal(["2001:db8:1::", "203.0.113.0"], s.Clients.Select(c => c.ToString()).Order(StringComparer.Ordinal));
        Assert.Equal(1500UL, Bytes(s, "203.0.113.0"));
        Assert.Equal(100UL, Bytes(s, "2001:db8:1::"));
        Assert.Equal(kernel.Total(0), s.Totals[0]);

        // .7 goes idle and is evicted while .9 keeps talking: the subnet keeps .7's 1000 B.
        kernel.Evict(ClientAddress.Parse("203.0.113.7"));
        kernel.Add(ClientAddress.Parse("203.0.113.9"), 0, 200, 1);
        Assert.Equal(1700UL, Bytes(subnets.From(kernel.Snapshot()), "203.0.113.0"));

        // .9 evicted and back between two reads, smaller than before: counted as a new entry.
        kernel.Evict(ClientAddress.Parse("203.0.113.9"));
        kernel.Add(ClientAddress.Parse("203.0.113.9"), 0, 50, 1);
        Assert.Equal(1750UL, Bytes(subnets.From(kernel.Snapshot()), "203.0.113.0"));

        // Every member gone: the subnet is gone, and comes back from zero, like an evicted client.
        kernel.Evict(ClientAddress.Parse("203.0.113.9"));
        Assert.Equal(0UL, Bytes(subnets.From(kernel.Snapshot()), "203.0.113.0"));
        kernel.Add(ClientAddress.Parse("203.0.113.200"), 0, 5, 1);
        Assert.Equal(5UL, Bytes(subnets.From(kernel.Snapshot()), "203.0.113.0"));

        // New maps: everything restarts.
        kernel.RecreateMaps();
        kernel.Add(ClientAddress.Parse("203.0.113.7"), 0, 3, 1);
        Assert.Equal(3UL, Bytes(subnets.From(kernel.Snapshot()), "203.0.113.0"));
    }

    [Fact]
    public async Task Subnet_series_are_labelled_by_prefix_sum_to_the_host_and_other_takes_the_rest()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var basic = TestOptions.For(dir.Path);
        var options = new CollectorOptions { SiaHostname = basic.SiaHostname, Clients = basic.Clients, Metrics = basic.Metrics with { TopSubnets = 2 } };
        var exporter = new MetricsExporter(options, kernel.Snapshot, null, null, processMetrics: false);
        kernel.Add(ClientAddress.Parse("203.0.113.7"), 0, 9000, 9);
        kernel.Add(ClientAddress.Parse("203.0.113.99"), 0, 1000, 1);
        kernel.Add(ClientAddress.Parse("198.51.100.1"), 1, 5000, 5);
        kernel.Add(ClientAddress.Parse("2001:db8:5:6::1"), 0, 100, 1);
        var e = new Exposition(await exporter.ExportTextAsync());
        var series = e.Of("sia_traffic_subnet_bytes_total").Where(s => s.Value > 0)
            .Select(s => $"{s.Labels["subnet"]} {s.Labels["port"]}/{s.Labels["proto"]} {s.Labels["direction"]} {s.Value}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["198.51.100.0/24 9981/tcp up 5000", "203.0.113.0/24 9981/tcp down 10000", "other 9981/tcp down 100"], series);
        PublicationPropertyTests.CheckSubnetSums(e, kernel.Classes, "first scrape");

        // The state file's name carries the prefix: another SUBNET_PREFIX starts afresh.
        Assert.EndsWith("metrics-subnets-24-48-state.bin", MetricsExporter.SubnetStatePath(options));
        await exporter.SubnetStateSaver!.StopAsync(CancellationToken.None);
        Assert.True(File.Exists(MetricsExporter.SubnetStatePath(options)));
    }

    [Fact]
    public async Task No_subnet_series_with_METRICS_TOP_SUBNETS_0_and_ANONYMIZE_coarser_wins()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        kernel.Add(ClientAddress.Parse("203.0.113.7"), 0, 9000, 9);
        var basic = TestOptions.For(dir.Path);
        var off = new CollectorOptions { SiaHostname = basic.SiaHostname, Clients = basic.Clients, Metrics = basic.Metrics with { TopSubnets = 0 } };
        var exporter = new MetricsExporter(off, kernel.Snapshot, null, null, processMetrics: false);
        Assert.DoesNotContain("sia_traffic_subnet_bytes_total{", await exporter.ExportTextAsync());
        Assert.Null(exporter.SubnetStateSaver);

        var coarse = new CollectorOptions { SiaHostname = basic.SiaHostname, Clients = basic.Clients with { Anonymize = new ClientPrefix(16, 32) }, Metrics = basic.Metrics };
        Assert.Equal(new ClientPrefix(16, 32), TrafficCollector.EffectiveSubnetPrefix(coarse));
        Assert.Equal(new ClientPrefix(24, 48), TrafficCollector.EffectiveSubnetPrefix(basic));
    }
}
