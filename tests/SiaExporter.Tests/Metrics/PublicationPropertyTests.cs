using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Metrics;
using Xunit;

namespace SiaExporter.Tests.Metrics;

/// <summary>
/// Random histories (clients appearing, growing, going idle, evicted and back from zero, maps
/// recreated, daemon restarts over the same state directory, the state saved after some scrapes
/// and at every stop) checked after every scrape against a simple model: (1) sum over client == host total, exactly; (2) no series went down since the
/// previous scrape, across restarts too; (3) no idle client is shown; at most N are.
/// </summary>
public sealed class PublicationPropertyTests
{
    private static readonly string[] Monotonic =
        ["sia_traffic_bytes_total", "sia_traffic_packets_total", "sia_traffic_host_bytes_total", "sia_traffic_host_packets_total", "sia_exporter_map_overflow_total",
         "sia_traffic_subnet_bytes_total"];

    /// <summary>Subnets small enough that several pool clients share one (/22 of 10.x.y.z, /124 of 2001:db8::i).</summary>
    private static readonly SiaExporter.Web.ClientPrefix Subnet = new(22, 124);
    private const int TopSubnets = 6;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Random_histories_keep_every_invariant(int seed)
    {
        var random = new Random(seed);
        var saverKeepsUp = new Random(seed + 1000);
        using var dir = new TempDir();
        var idle = TimeSpan.FromSeconds(300);
        var basic = TestOptions.For(dir.Path, top: 8, idle: idle);
        var options = new CollectorOptions
        {
            SiaHostname = basic.SiaHostname,
            Clients = basic.Clients,
            Metrics = basic.Metrics with { TopSubnets = TopSubnets, SubnetPrefix = Subnet },
        };
        var kernel = new KernelModel();
        var pool = Enumerable.Range(0, 400).Select(i => i % 3 == 0
            ? ClientAddress.Parse($"2001:db8::{i:x}")
            : ClientAddress.Parse($"10.{i / 250}.{i % 250}.{1 + i % 7}")).ToArray();
        var host = new ulong[kernel.Classes.SlotCount * 2]; // what the host series must show
        var exporter = new MetricsExporter(options, kernel.Snapshot, null, null, processMetrics: false);
        var activeSince = kernel.Now; // the exporter knows no activity from before its start
        Exposition? previous = null;
        var freshStart = true;
        int restarts = 0, recreations = 0, evictions = 0, returns = 0, maxPublished = 0, maxSubnets = 0, subnetGrowthChecked = 0;
        var evicted = new HashSet<ClientAddress>();

        for (var step = 0; step < 400; step++)
        {
            kernel.Now += TimeSpan.FromSeconds(random.Next(1, 30));
            var added = new Dictionary<ClientAddress, ulong[]>();
            var evictedNow = new HashSet<ClientAddress>();
            // Maps recreated before this step's traffic (traffic counted before it is lost with them).
            var restart = random.NextDouble() < 0.03;
            if (random.NextDouble() < 0.01 || step == 200)
            {
                kernel.RecreateMaps(); // counters restart from zero; a running exporter carries on
                evicted.Clear();
                recreations++;
                if (restart) freshStart = true; // recreated while the daemon was down: a new start
            }
            // A window of active clients drifts through the pool, so clients go idle and new ones come.
            if (random.NextDouble() < 0.05 && previous?.Of("sia_traffic_bytes_total").Select(s => s.Labels["client"]).FirstOrDefault(c => c != "other") is { } busy)
            {
                // Evicted and back within one scrape interval: the exporter never sees it absent,
                // only an entry that restarted from zero (or, if it already caught up, nothing).
                kernel.Evict(ClientAddress.Parse(busy));
                evictedNow.Add(ClientAddress.Parse(busy));
                evictions++;
            }
            var window = step / 3;
            var active = random.Next(3, 25);
            for (var k = 0; k < active; k++)
            {
                var skew = random.NextDouble();
                var client = pool[(window + (int)(skew * skew * 40)) % pool.Length];
                var slot = random.Next(kernel.Classes.SlotCount);
                var bytes = (ulong)random.Next(60, 1_500_000) * (ulong)(1 + (client.GetHashCode() & 3));
                var packets = 1 + bytes / 1400;
                if (evicted.Remove(client)) returns++;
                kernel.Add(client, slot, bytes, packets);
                if (!added.TryGetValue(client, out var lanes)) added[client] = lanes = new ulong[kernel.Classes.SlotCount * 2];
                lanes[2 * slot] += bytes;
                lanes[2 * slot + 1] += packets;
                host[2 * slot] += bytes;
                host[2 * slot + 1] += packets;
            }
            if (random.NextDouble() < 0.1)
            {
                var slot = random.Next(kernel.Classes.SlotCount);
                kernel.AddOverflow(slot, 1500, 1);
                host[2 * slot] += 1500;
                host[2 * slot + 1] += 1;
            }
            if (random.NextDouble() < 0.08 && kernel.Clients.Any())
            {
                // Evict one, often a published (busy) one: it may come back from zero.
                var victim = previous?.Of("sia_traffic_bytes_total").Select(s => s.Labels["client"]).FirstOrDefault(c => c != "other") is { } shown && random.Next(2) == 0
                    ? ClientAddress.Parse(shown)
                    : kernel.Clients.ElementAt(random.Next(kernel.Clients.Count()));
                kernel.Evict(victim);
                evicted.Add(victim);
                evictedNow.Add(victim);
                evictions++;
            }
            if (restart)
            {
                await exporter.StateSaver.StopAsync(CancellationToken.None); // the host stops them: the final saves
                await exporter.SubnetStateSaver!.StopAsync(CancellationToken.None);
                exporter = new MetricsExporter(options, kernel.Snapshot, null, null, processMetrics: false);
                activeSince = kernel.Now;
                restarts++;
            }
            if (freshStart)
            {
                for (var s = 0; s < kernel.Classes.SlotCount; s++)
                {
                    host[2 * s] = kernel.Total(s).Bytes;
                    host[2 * s + 1] = kernel.Total(s).Packets;
                }
            }

            var now = new Exposition(await exporter.ExportTextAsync());
            if (saverKeepsUp.Next(3) > 0) exporter.StateSaver.SavePending(); // else the changes pile up until the stop
            if (saverKeepsUp.Next(3) > 0) exporter.SubnetStateSaver!.SavePending();
            CheckSums(now, kernel.Classes, host, $"seed {seed} step {step}");
            CheckSubnetSums(now, kernel.Classes, $"seed {seed} step {step}");
            var shownSubnets = now.Of("sia_traffic_subnet_bytes_total").Select(s => s.Labels["subnet"]).Where(c => c != "other").Distinct().Count();
            Assert.True(shownSubnets <= TopSubnets, $"step {step}: {shownSubnets} subnets shown");
            maxSubnets = Math.Max(maxSubnets, shownSubnets);
            if (previous is not null && !freshStart) CheckNothingWentDown(previous, now, $"seed {seed} step {step}");
            var shownClients = now.Of("sia_traffic_bytes_total").Select(s => s.Labels["client"]).Where(c => c != "other").Distinct().ToList();
            Assert.True(shownClients.Count <= options.MetricsTopClients, $"step {step}: {shownClients.Count} clients shown");
            foreach (var client in shownClients)
            {
                var last = kernel.LastChanged[ClientAddress.Parse(client)];
                if (last < activeSince) last = activeSince;
                Assert.True(last >= kernel.Now - idle, $"seed {seed} step {step}: {client} is idle since {kernel.Now - last} but still shown");
            }
            // A client shown before and now grew by exactly its traffic of the step (also across a
            // restart or a map recreation); only one evicted in this step lost what it did before.
            if (previous is not null && !freshStart)
            {
                foreach (var (key, labels, value) in now.Of("sia_traffic_bytes_total").Concat(now.Of("sia_traffic_packets_total")))
                {
                    if (labels["client"] == "other" || !previous.Values.TryGetValue(key, out var before)) continue;
                    var client = ClientAddress.Parse(labels["client"]);
                    if (evictedNow.Contains(client)) continue;
                    var slot = PortClassSet.Slot(kernel.Classes.IndexOf(PortClass.Parse(labels["port"] + "/" + labels["proto"])), labels["direction"] == "up" ? Direction.Up : Direction.Down);
                    var lane = 2 * slot + (key.StartsWith("sia_traffic_bytes", StringComparison.Ordinal) ? 0 : 1);
                    var expected = added.TryGetValue(client, out var l) ? l[lane] : 0;
                    Assert.True(Exposition.Exact(value) - Exposition.Exact(before) == expected,
                        $"seed {seed} step {step}: {key} grew by {value - before}, the client sent {expected}");
                }
            }
            // A subnet shown before and now grew by exactly its clients' traffic of the step, unless
            // one of its clients was evicted in this step (that client's last traffic is lost, as
            // for a client) or the exporter restarted (it re-bases what it cannot know).
            if (previous is not null && !freshStart && !restart)
            {
                var touched = evictedNow.Select(Subnet.Apply).ToHashSet();
                foreach (var (key, labels, value) in now.Of("sia_traffic_subnet_bytes_total"))
                {
                    if (labels["subnet"] == "other" || touched.Contains(labels["subnet"]) || !previous.Values.TryGetValue(key, out var before)) continue;
                    var slot = PortClassSet.Slot(kernel.Classes.IndexOf(PortClass.Parse(labels["port"] + "/" + labels["proto"])), labels["direction"] == "up" ? Direction.Up : Direction.Down);
                    var expected = added.Where(a => Subnet.Apply(a.Key) == labels["subnet"]).Aggregate(0UL, (sum, a) => sum + a.Value[2 * slot]);
                    Assert.True(Exposition.Exact(value) - Exposition.Exact(before) == expected,
                        $"seed {seed} step {step}: {key} grew by {value - before}, its clients sent {expected}");
                    subnetGrowthChecked++;
                }
            }
            maxPublished = Math.Max(maxPublished, shownClients.Count);
            previous = now;
            freshStart = false;
        }

        // The history must have exercised what it claims to.
        Assert.True(restarts >= 3 && recreations >= 1 && evictions >= 10 && returns >= 1 && maxPublished == options.MetricsTopClients
                && maxSubnets == TopSubnets && subnetGrowthChecked > 500,
            $"restarts {restarts}, recreations {recreations}, evictions {evictions}, returns {returns}, max shown {maxPublished}, " +
            $"max subnets {maxSubnets}, subnet growths checked {subnetGrowthChecked}");
    }

    /// <summary>Σ over subnet (with "other") of sia_traffic_subnet_bytes_total == sia_traffic_host_bytes_total, per class and direction.</summary>
    internal static void CheckSubnetSums(Exposition e, PortClassSet classes, string where)
    {
        for (var c = 0; c < classes.Count; c++)
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var labels = new[] { ("port", classes.Classes[c].Port.ToString()), ("proto", classes.Classes[c].ProtocolLabel), ("direction", direction.Label()) };
                var hostValue = Exposition.Exact(e.Value("sia_traffic_host_bytes_total", labels));
                ulong sum = 0;
                foreach (var s in e.Of("sia_traffic_subnet_bytes_total").Where(s => labels.All(l => s.Labels[l.Item1] == l.Item2)))
                    sum += Exposition.Exact(s.Value);
                Assert.True(sum == hostValue, $"{where}: Σ sia_traffic_subnet_bytes_total {classes.Classes[c]} {direction.Label()} = {sum}, host = {hostValue}");
            }
    }

    internal static void CheckSums(Exposition e, PortClassSet classes, ulong[]? expectedHost, string where)
    {
        for (var c = 0; c < classes.Count; c++)
        {
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var slot = PortClassSet.Slot(c, direction);
                var labels = new[] { ("port", classes.Classes[c].Port.ToString()), ("proto", classes.Classes[c].ProtocolLabel), ("direction", direction.Label()) };
                foreach (var (metric, hostMetric, lane) in new[] { ("sia_traffic_bytes_total", "sia_traffic_host_bytes_total", 0), ("sia_traffic_packets_total", "sia_traffic_host_packets_total", 1) })
                {
                    var hostValue = Exposition.Exact(e.Value(hostMetric, labels));
                    ulong sum = 0;
                    foreach (var s in e.Of(metric).Where(s => labels.All(l => s.Labels[l.Item1] == l.Item2)))
                        sum += Exposition.Exact(s.Value);
                    Assert.True(sum == hostValue, $"{where}: Σ {metric} {labels[0].Item2}/{labels[1].Item2} {labels[2].Item2} = {sum}, host = {hostValue}");
                    if (expectedHost is not null)
                        Assert.True(hostValue == expectedHost[2 * slot + lane], $"{where}: {hostMetric} {classes.Classes[c]} {direction.Label()} = {hostValue}, expected {expectedHost[2 * slot + lane]}");
                }
            }
        }
    }

    internal static void CheckNothingWentDown(Exposition before, Exposition after, string where)
    {
        foreach (var (key, (name, _)) in before.Series)
        {
            if (!Monotonic.Contains(name) || !after.Values.TryGetValue(key, out var now)) continue;
            Assert.True(now >= before.Values[key], $"{where}: {key} went down from {before.Values[key]} to {now}");
        }
    }
}
