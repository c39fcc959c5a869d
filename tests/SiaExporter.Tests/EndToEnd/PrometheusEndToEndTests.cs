using System.Diagnostics;
using SiaExporter.Counters;
using SiaExporter.Tests.Ops;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The whole monitoring path: real traffic on a veth → the real daemon (`collector run`) → a real
/// Prometheus scraping it every second with prometheus/rules.yml loaded → PromQL over its HTTP API.
/// What Prometheus stores equals, to the byte and the frame, what the capture says crossed the
/// wire, per client, class and direction; the host totals equal the sum over clients and the
/// truth; the live exposition passes `promtool check metrics`; every dashboard expression runs
/// against this Prometheus and returns data.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class PrometheusEndToEndTests(ITestOutputHelper output)
{
    [KernelFact]
    public async Task Prometheus_scraping_the_daemon_holds_exactly_the_traffic_that_crossed()
    {
        OpsTools.Require("prometheus");
        var promtool = OpsTools.Require("promtool");
        var sw = Stopwatch.StartNew();
        using var net = TestNetwork.Create(offloads: true);
        var state = DaemonProcess.StateDirectoryOf(net);
        try
        {
            // hostd's API replayed beside it: the "hostd vs wire" rules and panels get a payload side,
            // and the daemon reads its syncer peers (set once the traffic's clients are known).
            using var hostd = new HostdReplay(DashboardTests.HostdPassword, DashboardTests.FakeHostdRates);
            using var daemon = DaemonProcess.Start(net, extraArgs: ["--flush-interval", "5s", "--log-interval", "2s",
                "--hostd-api-url", hostd.ApiUrl, "--hostd-api-password", DashboardTests.HostdPassword, "--hostd-poll-interval", "1s"]);
            using var prometheus = await PrometheusServer.StartAsync($"127.0.0.1:{daemon.MetricsUri.Port}",
                hostd: (hostd.Target, DashboardTests.HostdPassword));
            await prometheus.WaitUntilAsync(async () => (await prometheus.VectorAsync($"up{{job=\"{PrometheusServer.Job}\"}} == 1")).Count == 1,
                TimeSpan.FromSeconds(15), () => $"no successful scrape of {prometheus.Target}:\n{prometheus.Log}");
            output.WriteLine($"{net.Name}: daemon pid {daemon.Pid} on {daemon.MetricsUri}, Prometheus up after {sw.Elapsed.TotalSeconds:F1} s");

            var truth = new TruthTotals();
            var run = TruthRun.Record(net, TrafficPlan.Standard(net, scaleKb: 100));
            truth.Add(run.Truth);
            run.DeletePcap();
            hostd.Peers = truth.Counted.Keys.Where(k => k.Class.Port == 9981).Select(k => k.Client).Distinct()
                .Select(c => new HostdReplay.Peer(c.IsIPv4 ? $"{c}:9981" : $"[{c}]:9981", Inbound: true, "2.0.0")).ToList();
            output.WriteLine($"traffic done after {sw.Elapsed.TotalSeconds:F1} s: {truth}");
            output.WriteLine(TruthComparison.Table(truth.Counted));

            // Scrapes every second, the daemon's snapshot is up to 500 ms old: equal within 15 s.
            List<string> diffs = [];
            var deadline = DateTime.UtcNow.AddSeconds(15);
            do
            {
                await Task.Delay(500);
                diffs = await DifferencesAsync(prometheus, truth);
            } while (diffs.Count > 0 && DateTime.UtcNow < deadline);
            Assert.True(diffs.Count == 0, $"Prometheus vs capture truth:\n{string.Join('\n', diffs)}\n--- daemon log ---\n{Tail(daemon.Log, 20)}");
            output.WriteLine($"PromQL equals the truth after {sw.Elapsed.TotalSeconds:F1} s: {truth.Counted.Count} series x bytes and packets, 6 host totals, up == 1");
            foreach (var (label, value) in Summary(truth)) output.WriteLine($"  {label}: {value}");

            // promtool on a live scrape of the real daemon: no lint finding at all.
            var exposition = daemon.ScrapeText();
            var check = Shell.Exec(promtool, ["check", "metrics"], timeout: TimeSpan.FromSeconds(30), input: exposition);
            var (code, lint) = (check.ExitCode, check.All);
            output.WriteLine($"promtool check metrics: exit {code}, {exposition.Split('\n').Length} lines checked, output '{lint.Trim()}'");
            Assert.True(code == 0 && lint.Trim().Length == 0, $"promtool check metrics (exit {code}):\n{lint}");

            // Every dashboard expression (panels and variables) against this Prometheus scraping
            // this daemon: all parse, all return data (the traffic panels, the recording rules over
            // them, and the daemon's self-metrics alike), every rule healthy.
            await DashboardTests.CheckEveryExpressionAsync(prometheus, output, _ => true,
                minimum: TimeSpan.FromSeconds(3), deadline: TimeSpan.FromSeconds(30));

            // The values did not move while the dashboard ran (nothing else was counted).
            Assert.Empty(await DifferencesAsync(prometheus, truth));
            output.WriteLine($"done after {sw.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Everything PromQL must say about the traffic, as a list of differences.</summary>
    private static async Task<List<string>> DifferencesAsync(PrometheusServer prometheus, TruthTotals truth)
    {
        var diffs = new List<string>();
        // 1. Each series by its labels: the exact selector an operator would type.
        foreach (var (key, want) in truth.Counted.OrderBy(kv => kv.Key.ToString()))
        {
            var selector = $"{{client=\"{key.Client}\",port=\"{key.Class.Port}\",proto=\"{key.Class.ProtocolLabel}\",direction=\"{key.Direction.Label()}\"}}";
            foreach (var (metric, value) in new[] { ("sia_traffic_bytes_total", want.Bytes), ("sia_traffic_packets_total", want.Packets) })
            {
                var got = await prometheus.VectorAsync(metric + selector);
                if (got.Count != 1 || got[0].Whole != value)
                    diffs.Add($"{metric}{selector}: truth {value}, Prometheus {(got.Count == 0 ? "no series" : string.Join(", ", got.Select(g => g.Value)))}");
            }
        }
        // 2. No other client series carries anything (non-Sia ports, other clients, "other").
        foreach (var metric in new[] { "sia_traffic_bytes_total", "sia_traffic_packets_total" })
            foreach (var s in await prometheus.VectorAsync($"{metric} > 0"))
            {
                var key = KeyOf(s);
                if (key is null || !truth.Counted.ContainsKey(key.Value))
                    diffs.Add($"unexpected series {metric}{s}");
            }
        // 3. sum by class and direction == the host series == the truth's host totals.
        foreach (var (clientMetric, hostMetric, pick) in new (string, string, Func<Traffic, ulong>)[]
                 {
                     ("sia_traffic_bytes_total", "sia_traffic_host_bytes_total", t => t.Bytes),
                     ("sia_traffic_packets_total", "sia_traffic_host_packets_total", t => t.Packets),
                 })
        {
            var sums = (await prometheus.VectorAsync($"sum by (port, proto, direction) ({clientMetric})")).ToDictionary(ClassKey, s => s.Whole);
            var hosts = (await prometheus.VectorAsync(hostMetric)).ToDictionary(ClassKey, s => s.Whole);
            foreach (var cls in PortClassSet.DefaultSet.Classes)
                foreach (var dir in new[] { Direction.Up, Direction.Down })
                {
                    var k = $"{cls.Port}/{cls.ProtocolLabel} {dir.Label()}";
                    var want = pick(truth.HostTotal(cls, dir));
                    if (sums.GetValueOrDefault(k) != want || hosts.GetValueOrDefault(k) != want)
                        diffs.Add($"{k}: truth {want}, sum by (port,proto,direction) ({clientMetric}) {sums.GetValueOrDefault(k)}, {hostMetric} {hosts.GetValueOrDefault(k)}");
                }
            var extra = hosts.Where(h => h.Value != 0 && !PortClassSet.DefaultSet.Classes.Any(c => h.Key.StartsWith($"{c.Port}/{c.ProtocolLabel} ", StringComparison.Ordinal)));
            diffs.AddRange(extra.Select(h => $"unexpected host series {hostMetric} {h.Key} = {h.Value}"));
        }
        // 4. The target is up.
        var up = await prometheus.VectorAsync($"up{{job=\"{PrometheusServer.Job}\"}}");
        if (up.Count != 1 || up[0].Value != 1) diffs.Add($"up: {string.Join(", ", up)}");
        return diffs;
    }

    private static string ClassKey(PrometheusServer.Series s) => $"{s.Label("port")}/{s.Label("proto")} {s.Label("direction")}";

    private static FlowKey? KeyOf(PrometheusServer.Series s)
    {
        if (!ClientAddress.TryParse(s.Label("client"), out var client)) return null;
        return new FlowKey(client, PortClass.Parse($"{s.Label("port")}/{s.Label("proto")}"), s.Label("direction") == "up" ? Direction.Up : Direction.Down);
    }

    private static IEnumerable<(string, string)> Summary(TruthTotals truth)
    {
        foreach (var cls in PortClassSet.DefaultSet.Classes)
            foreach (var dir in new[] { Direction.Up, Direction.Down })
                yield return ($"sia_traffic_host_*_total{{port=\"{cls.Port}\",proto=\"{cls.ProtocolLabel}\",direction=\"{dir.Label()}\"}}",
                    $"{truth.HostTotal(cls, dir).Bytes} B, {truth.HostTotal(cls, dir).Packets} packets");
    }

    private static string Tail(string log, int n) => string.Join('\n', log.Split('\n').TakeLast(n));
}
