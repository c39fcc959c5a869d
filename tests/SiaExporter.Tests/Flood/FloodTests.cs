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
/// Hostile traffic through the real xdp_ingress (BPF_PROG_TEST_RUN): a million random spoofed
/// sources against a small clients map, with real clients confirmed by the host's egress in
/// between. No spoofed source may take an entry (bpf/clients.h): the map holds exactly the real
/// clients, each with exactly its own frames, every spoofed frame is unconfirmed traffic (held in
/// the bounded pending table or evicted from it), the host totals stay exact, and a scrape still
/// adds up, quickly and in bounded memory.
/// </summary>
[Trait("Category", "Flood")]
public sealed class FloodTests(ITestOutputHelper output)
{
    private const uint XdpPass = 2;
    private const int Capacity = 4096;
    /// <summary>A real client is confirmed every this many steps of the flood.</summary>
    private const int RealClientEvery = 50_000;
    /// <summary>How much the flood may grow this process (the plan of a million addresses included);
    /// measured as growth because the test host has run hundreds of other tests before.</summary>
    private const long RssGrowthBoundBytes = 200L << 20;
    private static readonly int Slot = PortClassSet.Slot(1, Direction.Down); // 9984/tcp, received
    private static readonly int UpSlot = PortClassSet.Slot(1, Direction.Up);

    /// <summary>Sources in the flood; FLOOD_SOURCES overrides (e.g. a quick local run).</summary>
    private static int Sources =>
        int.TryParse(Environment.GetEnvironmentVariable("FLOOD_SOURCES"), out var n) && n > Capacity ? n : 1_000_000;

    /// <summary>Real client number <paramref name="i"/>: outside the flood's random ranges' likely hits.</summary>
    private static ClientAddress RealClient(int i) =>
        i % 2 == 0 ? ClientAddress.Parse($"198.51.100.{i / 2 + 1}") : ClientAddress.Parse($"2001:db8:c::{i + 1:x}");

    /// <summary>The host's ACK with data to <paramref name="client"/> from 9984: confirms it.</summary>
    private static byte[] HostAck(ClientAddress client)
    {
        var b = new Kernel.PacketBuilder().Ethernet();
        if (client.IsIPv4) b.IPv4("192.0.2.1", client.ToString(), dontFragment: true);
        else b.IPv6("2001:db8::1", client.ToString());
        return b.Tcp(9984, 40000, flags: 0x18).Payload(200).Bytes();
    }

    [KernelFact]
    public async Task A_million_spoofed_sources_take_no_entry_and_every_real_client_confirmed_meanwhile_gets_its_own()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var (rssBefore, _) = Rss();
        var setup = Stopwatch.StartNew();
        var plan = new FloodPlan(Sources, seed: 20261125);
        output.WriteLine($"plan: {plan.Steps.Count:N0} test-runs, {plan.Frames:N0} frames, {plan.DistinctSources:N0} distinct sources " +
                         $"({plan.DistinctOrder.Count(a => !a.IsIPv4):N0} IPv6), built in {setup.Elapsed.TotalSeconds:F1} s");

        using var collector = CollectorObject.Load(TestObject.Options(maxClients: Capacity), new ListLogger());
        Assert.Equal(Capacity, collector.Capacity);
        using var warm = Environment.GetEnvironmentVariable("FLOOD_NO_DISPATCHER") == "1" ? null : XdpDispatcherHold.Attach(collector);
        var frames = new FloodFrames();

        using var reader = new CounterReader(collector);
        var real = new Dictionary<ClientAddress, (Traffic Down, Traffic Up)>();
        Traffic spoofed = default, total = default;
        var run = Stopwatch.StartNew();
        var checkpoints = TimeSpan.Zero;
        for (var i = 0; i < plan.Steps.Count; i++)
        {
            var step = plan.Steps[i];
            var result = BpfTestRun.Run(collector.XdpIngress, frames.Frame(step.Source, step.Length), step.Repeat);
            if (result.ReturnValue != XdpPass)
                Assert.Fail($"xdp_ingress returned {result.ReturnValue} for {step.Source} ({step.Length} B): a flood must never drop");
            var frame = new Traffic((ulong)step.Length * (ulong)step.Repeat, (ulong)step.Repeat);
            spoofed += frame;
            total += frame;
            if (i % RealClientEvery == RealClientEvery / 2)
            {
                // A real client in the middle of the flood: it sends (unconfirmed), the host answers
                // (confirmed): its entry holds both.
                var client = RealClient(real.Count);
                var hello = frames.Frame(client, 300).ToArray();
                var ack = HostAck(client);
                BpfTestRun.Run(collector.XdpIngress, hello);
                BpfTestRun.Run(collector.TcEgress, ack);
                real[client] = (new Traffic((ulong)hello.Length, 1), new Traffic((ulong)ack.Length, 1));
                total += new Traffic((ulong)(hello.Length + ack.Length), 2);
            }
            if (i % 100_000 == 99_999)
            {
                // Only real clients have entries, however many sources the flood brought.
                var started = Stopwatch.GetTimestamp();
                var seen = reader.Read();
                checkpoints += Stopwatch.GetElapsedTime(started);
                Assert.Equal(real.Count, seen.Clients.Length);
                Assert.InRange(seen.Unconfirmed.Sources, 1, BpfConstants.PendingEntries * collector.PossibleCpus);
            }
        }
        run.Stop();
        var calls = run.Elapsed - checkpoints;
        output.WriteLine($"test-runs: {calls.TotalSeconds:F2} s, {calls.TotalMicroseconds / plan.Steps.Count:F2} µs per call " +
                         $"(+ {checkpoints.TotalMilliseconds:F0} ms of map reads at the checkpoints)");
        Assert.True(real.Count >= Sources / RealClientEvery, $"{real.Count} real clients");
        foreach (var client in real.Keys) Assert.DoesNotContain(client, plan.DistinctOrder);

        // The kernel's view, read the way the daemon reads it.
        var read = Stopwatch.StartNew();
        var snapshot = reader.Read();
        output.WriteLine($"map read: {read.Elapsed.TotalMilliseconds:F1} ms for {snapshot.Clients.Length:N0} clients, " +
                         $"{snapshot.Unconfirmed.Sources:N0} pending slots");

        Assert.Equal(real.Count, snapshot.Clients.Length);
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var client = snapshot.Clients[i];
            if (!real.TryGetValue(client, out var traffic))
                Assert.Fail($"{client} has an entry but never proved it is real");
            Assert.Equal(traffic.Down, snapshot.Get(i, Slot));
            Assert.Equal(traffic.Up, snapshot.Get(i, UpSlot));
        }
        Assert.Equal(spoofed, snapshot.Unconfirmed.Held[Slot] + snapshot.Unconfirmed.Evicted[Slot]);
        Assert.Equal(Traffic.Zero, snapshot.Overflow[Slot]);
        Assert.Equal(total.Packets, snapshot.Totals[Slot].Packets + snapshot.Totals[UpSlot].Packets);
        Assert.Equal(total.Bytes, snapshot.Totals[Slot].Bytes + snapshot.Totals[UpSlot].Bytes);
        Assert.Equal(spoofed.Packets + (ulong)real.Count, snapshot.Totals[Slot].Packets);
        output.WriteLine($"unconfirmed: {spoofed.Packets:N0} frames / {spoofed.Bytes:N0} B, of which evicted from pending " +
                         $"{snapshot.Unconfirmed.Evicted[Slot].Packets:N0} frames; host total: {total.Packets:N0} frames / {total.Bytes:N0} B");

        // A scrape adds up to the host totals; the flood is visible in the unconfirmed metrics.
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
        var after = reader.Read();
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
            Assert.Equal(real.Count, exposition.Value("sia_exporter_clients"));
            Assert.Equal(Capacity, exposition.Value("sia_exporter_map_capacity"));
            Assert.Equal(0UL, Exposition.Exact(exposition.Value("sia_exporter_map_overflow_total")));
            Assert.Equal(after.Unconfirmed.EvictedSum.Packets, Exposition.Exact(exposition.Value("sia_exporter_unconfirmed_evicted_packets_total")));
            Assert.Equal(after.Unconfirmed.Sources, exposition.Value("sia_exporter_unconfirmed_sources"));
        }

        var (rss, peak) = Rss();
        output.WriteLine($"RSS: {rssBefore / 1048576.0:F0} MiB before, {rss / 1048576.0:F0} MiB after (growth bound {RssGrowthBoundBytes >> 20} MiB), process peak {peak / 1048576.0:F0} MiB");
        Assert.True(rss - rssBefore < RssGrowthBoundBytes, $"RSS grew by {(rss - rssBefore) >> 20} MiB during the flood");
    }

    [KernelFact]
    public void Confirmed_clients_fill_the_map_and_a_late_one_overflows_while_a_known_one_keeps_its_entry()
    {
        // The overflow rules, now for confirmed clients, on a scale where every case is spelled out.
        using var collector = CollectorObject.Load(TestObject.Options(maxClients: 2), new ListLogger());
        var a = ClientAddress.Parse("198.51.100.1");
        var b = ClientAddress.Parse("2001:db8::b");
        var c = ClientAddress.Parse("198.51.100.3");
        BpfTestRun.Run(collector.TcEgress, HostAck(a));                       // a confirmed
        BpfTestRun.Run(collector.TcEgress, HostAck(c));                       // c confirmed: the map is full
        BpfTestRun.Run(collector.TcEgress, HostAck(b), repeat: 3);            // b confirmed, no room: overflow
        var frames = new FloodFrames();
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(a, 400));           // in the map: counted on a
        BpfTestRun.Run(collector.XdpIngress, frames.Frame(b, 500));           // no entry: unconfirmed

        using var reader = new CounterReader(collector);
        var snapshot = reader.Read();
        var ack = (ulong)HostAck(a).Length;
        var ack6 = (ulong)HostAck(b).Length;
        Assert.Equal(2, snapshot.Clients.Length);
        Assert.Equal(new Traffic(400, 1), snapshot.Get(Array.IndexOf(snapshot.Clients, a), Slot));
        Assert.Equal(new Traffic(ack, 1), snapshot.Get(Array.IndexOf(snapshot.Clients, a), UpSlot));
        Assert.Equal(new Traffic(ack, 1), snapshot.Get(Array.IndexOf(snapshot.Clients, c), UpSlot));
        Assert.Equal(new Traffic(3 * ack6, 3), snapshot.Overflow[UpSlot]);
        Assert.Equal(new Traffic(500, 1), snapshot.Unconfirmed.Held[Slot] + snapshot.Unconfirmed.Evicted[Slot]);
        Assert.Equal(new Traffic(900, 2), snapshot.Totals[Slot]);
        Assert.Equal(new Traffic(2 * ack + 3 * ack6, 5), snapshot.Totals[UpSlot]);
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
