using System.Diagnostics;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Metrics;
using SiaExporter.Tests.Bpf;
using SiaExporter.Tests.Metrics;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// Hostile traffic through the real xdp_ingress (BPF_PROG_TEST_RUN): a million random sources
/// against a small clients map. The map must fill to exactly its capacity and stop, every later
/// source must land in the overflow aggregate, the host totals must stay exact, and a scrape over
/// the full map must still add up, quickly and in bounded memory.
/// </summary>
[Trait("Category", "Flood")]
public sealed class FloodTests(ITestOutputHelper output)
{
    private const uint XdpPass = 2;
    private const int Capacity = 4096;
    /// <summary>How much the flood may grow this process (the plan of a million addresses included);
    /// measured as growth because the test host has run hundreds of other tests before.</summary>
    private const long RssGrowthBoundBytes = 200L << 20;
    private static readonly int Slot = PortClassSet.Slot(1, Direction.Down); // 9984/tcp, received

    /// <summary>Sources in the flood; FLOOD_SOURCES overrides (e.g. a quick local run).</summary>
    private static int Sources =>
        int.TryParse(Environment.GetEnvironmentVariable("FLOOD_SOURCES"), out var n) && n > Capacity ? n : 1_000_000;

    [KernelFact]
    public async Task A_million_random_sources_fill_the_map_to_capacity_and_the_rest_overflows_exactly()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var (rssBefore, _) = Rss();
        var setup = Stopwatch.StartNew();
        var plan = new FloodPlan(Sources, seed: 20261125);
        var expected = Expect(plan, Capacity);
        output.WriteLine($"plan: {plan.Steps.Count:N0} test-runs, {plan.Frames:N0} frames, {plan.DistinctSources:N0} distinct sources " +
                         $"({plan.DistinctOrder.Count(a => !a.IsIPv4):N0} IPv6), built in {setup.Elapsed.TotalSeconds:F1} s");

        using var collector = CollectorObject.Load(TestObject.Options(maxClients: Capacity), new ListLogger());
        Assert.Equal(Capacity, collector.Capacity);
        using var warm = Environment.GetEnvironmentVariable("FLOOD_NO_DISPATCHER") == "1" ? null : XdpDispatcherHold.Attach(collector);
        var frames = new FloodFrames();

        using var reader = new CounterReader(collector);
        var run = Stopwatch.StartNew();
        var checkpoints = TimeSpan.Zero;
        var distinctSoFar = new HashSet<ClientAddress>();
        for (var i = 0; i < plan.Steps.Count; i++)
        {
            var step = plan.Steps[i];
            var result = BpfTestRun.Run(collector.XdpIngress, frames.Frame(step.Source, step.Length), step.Repeat);
            if (result.ReturnValue != XdpPass)
                Assert.Fail($"xdp_ingress returned {result.ReturnValue} for {step.Source} ({step.Length} B): a flood must never drop");
            if (distinctSoFar.Count <= Capacity) distinctSoFar.Add(step.Source);
            if (i % 100_000 == 99_999)
            {
                // never more than the capacity, and full as soon as that many distinct sources came
                var started = Stopwatch.GetTimestamp();
                var entries = reader.Read().Clients.Length;
                checkpoints += Stopwatch.GetElapsedTime(started);
                Assert.Equal(Math.Min(distinctSoFar.Count, Capacity), entries);
            }
        }
        run.Stop();
        var calls = run.Elapsed - checkpoints;
        output.WriteLine($"test-runs: {calls.TotalSeconds:F2} s, {calls.TotalMicroseconds / plan.Steps.Count:F2} µs per call " +
                         $"(+ {checkpoints.TotalMilliseconds:F0} ms of map reads at 11 checkpoints)");

        // The kernel's view, read the way the daemon reads it.
        var read = Stopwatch.StartNew();
        var snapshot = reader.Read();
        output.WriteLine($"map read: {read.Elapsed.TotalMilliseconds:F1} ms for {snapshot.Clients.Length:N0} clients");

        Assert.Equal(Capacity, snapshot.Clients.Length);
        Assert.Equal(expected.InMap.Count, snapshot.Clients.Length);
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var client = snapshot.Clients[i];
            if (!expected.InMap.TryGetValue(client, out var traffic))
                Assert.Fail($"{client} is in the map but was not among the first {Capacity} distinct sources");
            Assert.Equal(traffic, snapshot.Get(i, Slot));
            for (var s = 0; s < snapshot.SlotCount; s++)
                if (s != Slot) Assert.Equal(default, snapshot.Get(i, s));
        }
        Assert.Equal(expected.Overflow, snapshot.Overflow[Slot]);
        Assert.Equal(expected.Total, snapshot.Totals[Slot]);
        Assert.Equal((ulong)plan.Frames, snapshot.Totals[Slot].Packets);
        for (var s = 0; s < snapshot.SlotCount; s++)
            if (s != Slot) Assert.Equal(default, snapshot.Totals[s]);
        output.WriteLine($"overflow: {expected.Overflow.Packets:N0} frames / {expected.Overflow.Bytes:N0} B; " +
                         $"host total: {expected.Total.Packets:N0} frames / {expected.Total.Bytes:N0} B");

        // One more new source while full: overflow grows, the map does not.
        var late = ClientAddress.Parse("2001:db8:ffff::1");
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(late, 100));
        var after = reader.Read();
        Assert.Equal(Capacity, after.Clients.Length);
        Assert.DoesNotContain(late, after.Clients);
        Assert.Equal(expected.Overflow + new Traffic(100, 1), after.Overflow[Slot]);
        Assert.Equal(expected.Total + new Traffic(100, 1), after.Totals[Slot]);

        // A scrape over the full map adds up to the host totals.
        using var state = new TempDir();
        var exporter = new MetricsExporter(TestOptions.For(state.Path), reader.Read, new MetricsSources { MapCapacity = Capacity });
        var scrape = Stopwatch.StartNew();
        var text = await exporter.ExportTextAsync();
        var firstScrape = scrape.Elapsed;
        scrape.Restart();
        var text2 = await exporter.ExportTextAsync();
        var secondScrape = scrape.Elapsed;
        output.WriteLine($"scrape: first {firstScrape.TotalMilliseconds:F1} ms, second {secondScrape.TotalMilliseconds:F1} ms, {text2.Length / 1024.0:F0} KiB");
        Assert.True(firstScrape < TimeSpan.FromSeconds(5), $"first scrape took {firstScrape}");
        Assert.True(secondScrape < TimeSpan.FromSeconds(2), $"second scrape took {secondScrape}");
        foreach (var body in new[] { text, text2 })
        {
            var exposition = new Exposition(body);
            var labels = new[] { ("port", "9984"), ("proto", "tcp"), ("direction", "down") };
            var hostBytes = Exposition.Exact(exposition.Value("sia_traffic_host_bytes_total", labels));
            var hostPackets = Exposition.Exact(exposition.Value("sia_traffic_host_packets_total", labels));
            Assert.Equal(after.Totals[Slot], new Traffic(hostBytes, hostPackets));
            var series = exposition.Of("sia_traffic_bytes_total").Where(s => labels.All(l => s.Labels[l.Item1] == l.Item2)).ToList();
            Assert.Contains(series, s => s.Labels["client"] == "other");
            Assert.Equal(hostBytes, series.Aggregate(0UL, (sum, s) => sum + Exposition.Exact(s.Value)));
            var packets = exposition.Of("sia_traffic_packets_total").Where(s => labels.All(l => s.Labels[l.Item1] == l.Item2));
            Assert.Equal(hostPackets, packets.Aggregate(0UL, (sum, s) => sum + Exposition.Exact(s.Value)));
            Assert.Equal(Capacity, exposition.Value("sia_exporter_clients"));
            Assert.Equal(Capacity, exposition.Value("sia_exporter_map_capacity"));
            Assert.Equal(after.Overflow[Slot].Packets, Exposition.Exact(exposition.Value("sia_exporter_map_overflow_total")));
        }

        var (rss, peak) = Rss();
        output.WriteLine($"RSS: {rssBefore / 1048576.0:F0} MiB before, {rss / 1048576.0:F0} MiB after (growth bound {RssGrowthBoundBytes >> 20} MiB), process peak {peak / 1048576.0:F0} MiB");
        Assert.True(rss - rssBefore < RssGrowthBoundBytes, $"RSS grew by {(rss - rssBefore) >> 20} MiB during the flood");
    }

    [KernelFact]
    public void A_source_seen_again_after_the_map_filled_keeps_its_entry_and_a_late_one_stays_in_overflow()
    {
        // The repeat rules on a scale where every case is spelled out.
        using var collector = CollectorObject.Load(TestObject.Options(maxClients: 2), new ListLogger());
        var frames = new FloodFrames();
        var a = ClientAddress.Parse("198.51.100.1");
        var b = ClientAddress.Parse("2001:db8::b");
        var c = ClientAddress.Parse("198.51.100.3");
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(a, 100));
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(c, 200));                // a and c fill the map
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(b, 300), repeat: 3);     // full: overflow
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(a, 400));                // in the map: counted on a
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(b, 500));                // still overflow

        using var reader = new CounterReader(collector);
        var snapshot = reader.Read();
        Assert.Equal(2, snapshot.Clients.Length);
        Assert.Equal(new Traffic(500, 2), snapshot.Get(Array.IndexOf(snapshot.Clients, a), Slot));
        Assert.Equal(new Traffic(200, 1), snapshot.Get(Array.IndexOf(snapshot.Clients, c), Slot));
        Assert.Equal(new Traffic(300 * 3 + 500, 4), snapshot.Overflow[Slot]);
        Assert.Equal(new Traffic(100 + 200 + 900 + 400 + 500, 7), snapshot.Totals[Slot]);
    }

    private sealed record Expected(Dictionary<ClientAddress, Traffic> InMap, Traffic Overflow, Traffic Total);

    /// <summary>What a sequential kernel must hold: the first <paramref name="capacity"/> distinct
    /// sources own an entry with all their frames (also those sent after the map filled); every
    /// frame of any later source is overflow.</summary>
    private static Expected Expect(FloodPlan plan, int capacity)
    {
        var inMap = new Dictionary<ClientAddress, Traffic>(capacity);
        foreach (var source in plan.DistinctOrder.Take(capacity)) inMap[source] = default;
        Traffic overflow = default, total = default;
        foreach (var step in plan.Steps)
        {
            var traffic = new Traffic((ulong)step.Length * (ulong)step.Repeat, (ulong)step.Repeat);
            total += traffic;
            if (inMap.TryGetValue(step.Source, out var sum)) inMap[step.Source] = sum + traffic;
            else overflow += traffic;
        }
        return new Expected(inMap, overflow, total);
    }

    private static (long Rss, long Peak) Rss()
    {
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) peak = Kb(line);
        }
        return (rss, peak);

        static long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
}
