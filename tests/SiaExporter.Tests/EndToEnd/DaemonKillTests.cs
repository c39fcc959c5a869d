using SiaExporter.Counters;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The real daemon (`collector run`) on the test network, read through /metrics: its counters equal
/// the capture truth, and a `kill -9` loses nothing and counts nothing twice — the orphaned programs
/// keep counting into the pinned maps, the next start adopts them, and /metrics shows the sum of
/// everything that crossed, with exactly one of our programs per hook throughout.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class DaemonKillTests(ITestOutputHelper output)
{
    [KernelFact]
    public void Kill_9_of_the_daemon_loses_nothing_and_counts_nothing_twice()
    {
        using var net = TestNetwork.Create(offloads: true);
        var plan = TrafficPlan.Standard(net, scaleKb: 100);
        var state = DaemonProcess.StateDirectoryOf(net);
        var truths = new List<CaptureTruth>();
        try
        {
            using (var first = DaemonProcess.Start(net))
            {
                AssertOnePerHook(net, "first start");
                truths.Add(Record(net, plan));
                AssertMetricsEqual(first, truths, "first run");
                first.Kill9();
                output.WriteLine($"killed pid {first.Pid} with SIGKILL");
            }
            AssertOnePerHook(net, "after kill -9 (programs keep counting)");
            truths.Add(Record(net, plan)); // nobody is reading: the pinned maps still count

            using (var second = DaemonProcess.Start(net))
            {
                AssertOnePerHook(net, "after the restart");
                AssertMetricsEqual(second, truths, "restart after kill -9");
                truths.Add(Record(net, plan));
                AssertMetricsEqual(second, truths, "traffic after the restart");
                Assert.Equal(0, second.Terminate(TimeSpan.FromSeconds(15)));
                output.WriteLine(LastLines(second.Log, 12));
            }
            var census = CollectorUnderTest.Census(net);
            Assert.True(census.IngressPrograms + census.EgressPrograms == 0, $"SIGTERM leaves programs attached: {census}");
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    private CaptureTruth Record(TestNetwork net, TrafficPlan plan)
    {
        var run = TruthRun.Record(net, plan);
        run.DeletePcap();
        return run.Truth;
    }

    private void AssertOnePerHook(TestNetwork net, string when)
    {
        var census = CollectorUnderTest.Census(net);
        output.WriteLine($"{when}: {census}");
        Assert.Equal("driver", Assert.Single(census.Xdp).Mode);
        Assert.Single(census.TcxEgress);
        Assert.Empty(census.TcxIngress);
        Assert.Empty(census.NetlinkTc);
    }

    /// <summary>/metrics equals the sum of every truth so far (polled for up to 5 s: scrapes share a
    /// snapshot up to 500 ms old).</summary>
    private void AssertMetricsEqual(DaemonProcess daemon, IReadOnlyList<CaptureTruth> truths, string phase)
    {
        var want = new Dictionary<FlowKey, Traffic>();
        foreach (var t in truths)
            foreach (var (k, v) in t.Counted) want[k] = want.GetValueOrDefault(k) + v;
        var wantHost = want.GroupBy(kv => (kv.Key.Class, kv.Key.Direction))
            .ToDictionary(g => g.Key, g => g.Aggregate(Traffic.Zero, (a, kv) => a + kv.Value));

        List<string> diffs = [];
        var deadline = DateTime.UtcNow.AddSeconds(5);
        do
        {
            var samples = daemon.Scrape();
            var clients = DaemonProcess.ClientSeries(samples);
            var host = DaemonProcess.HostSeries(samples);
            diffs = [];
            foreach (var key in want.Keys.Union(clients.Keys).OrderBy(k => k.ToString()))
                if (want.GetValueOrDefault(key) != clients.GetValueOrDefault(key))
                    diffs.Add($"{key}: truth {want.GetValueOrDefault(key)}, /metrics {clients.GetValueOrDefault(key)}");
            foreach (var key in wantHost.Keys.Union(host.Keys.Where(k => !host[k].IsZero)))
                if (wantHost.GetValueOrDefault(key) != host.GetValueOrDefault(key))
                    diffs.Add($"host {key.Item1} {key.Item2.Label()}: truth {wantHost.GetValueOrDefault(key)}, /metrics {host.GetValueOrDefault(key)}");
            if (diffs.Count == 0) break;
            Thread.Sleep(200);
        } while (DateTime.UtcNow < deadline);
        output.WriteLine($"{phase}: {want.Count} series, {want.Values.Aggregate(Traffic.Zero, (a, t) => a + t)}; {diffs.Count} differences");
        Assert.True(diffs.Count == 0, $"{phase}:\n{string.Join('\n', diffs)}\n--- daemon log ---\n{LastLines(daemon.Log, 30)}");
    }

    private static string LastLines(string log, int n) => string.Join('\n', log.Split('\n').TakeLast(n));
}
