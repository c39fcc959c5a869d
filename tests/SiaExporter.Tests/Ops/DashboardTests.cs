using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SiaExporter.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Ops;

/// <summary>The Grafana dashboard reads only metrics the exporter publishes (or our recording
/// rules), and every one of its expressions parses and returns data in a real Prometheus that
/// scrapes an exposition shaped like the exporter's, with rules.yml loaded.</summary>
public sealed partial class DashboardTests(ITestOutputHelper output)
{
    /// <summary>/metrics names of SPEC.md plus the exporter's self-metrics, and Prometheus' up.</summary>
    private static readonly HashSet<string> ExporterMetrics =
    [
        "sia_traffic_bytes_total", "sia_traffic_packets_total", "sia_traffic_host_bytes_total", "sia_traffic_host_packets_total",
        "sia_exporter_clients", "sia_exporter_map_capacity", "sia_exporter_map_overflow_total", "sia_exporter_bpf_attached",
        "sia_exporter_build_info", "sia_exporter_sqlite_last_success_timestamp_seconds", "sia_exporter_sqlite_flush_failures_total",
        "sia_exporter_scrape_duration_seconds", "sia_exporter_bpf_run_time_seconds_total", "sia_exporter_bpf_runs_total", "up",
        "sia_exporter_unconfirmed_sources", "sia_exporter_unconfirmed_evicted_packets_total", "sia_exporter_unconfirmed_evicted_bytes_total",
        "sia_traffic_subnet_bytes_total", "sia_client_info", "sia_exporter_hostd_api_up",
        "sia_exporter_qdisc_dropped_bytes_total", "sia_exporter_qdisc_dropped_packets_total",
    ];

    [GeneratedRegex(@"^\s*-\s*record:\s*(\S+)", RegexOptions.Multiline)]
    private static partial Regex RecordRx();

    private static HashSet<string> RecordingRules() =>
        RecordRx().Matches(File.ReadAllText(Path.Combine(OpsTools.RepoRoot, "prometheus", "rules.yml")))
            .Select(m => m.Groups[1].Value).ToHashSet();

    [Fact]
    public void Dashboard_uses_only_exporter_metrics_and_recording_rules()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(DashboardQueries.DashboardPath));
        var root = doc.RootElement;
        Assert.Equal("sia-traffic", root.GetProperty("uid").GetString());
        var vars = root.GetProperty("templating").GetProperty("list").EnumerateArray()
            .ToDictionary(v => v.GetProperty("name").GetString()!, v => v.GetProperty("type").GetString());
        Assert.Equal("datasource", vars["DS_PROMETHEUS"]);
        foreach (var name in new[] { "instance", "hostname", "client" }) Assert.Equal("query", vars[name]);

        var allowed = RecordingRules();
        allowed.UnionWith(ExporterMetrics);
        var queries = DashboardQueries.Load(doc);
        Assert.True(queries.Count >= 20, $"only {queries.Count} expressions found");
        foreach (var (where, promQl, _) in queries)
        {
            var used = DashboardQueries.Metrics(promQl).ToList();
            Assert.True(used.Count > 0, $"{where}: reads no known metric: {promQl}");
            foreach (var m in used) Assert.True(allowed.Contains(m), $"{where}: unknown metric {m} in {promQl}");
        }
        // Every panel query goes through the datasource variable.
        foreach (var ds in Regex.Matches(root.GetRawText(), "\"uid\":\\s*\"([^\"]*)\"").Select(m => m.Groups[1].Value))
            Assert.True(ds is "${DS_PROMETHEUS}" or "-- Grafana --" or "sia-traffic", $"hard-coded datasource uid {ds}");
    }

    [Fact]
    public void Requires_lists_grafana_the_datasource_and_every_panel_type_used()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(DashboardQueries.DashboardPath));
        var requires = doc.RootElement.GetProperty("__requires").EnumerateArray()
            .Select(r => $"{r.GetProperty("type").GetString()}:{r.GetProperty("id").GetString()}").ToHashSet();
        Assert.Contains("grafana:grafana", requires);
        Assert.Contains("datasource:prometheus", requires);
        var used = doc.RootElement.GetProperty("panels").EnumerateArray().Select(p => p.GetProperty("type").GetString()!)
            .Where(t => t != "row").ToHashSet();
        foreach (var type in used) Assert.Contains($"panel:{type}", requires);
        // The fleet overview row is there, with one line per instance.
        var titles = doc.RootElement.GetProperty("panels").EnumerateArray().Select(p => p.GetProperty("title").GetString()!).ToList();
        Assert.Contains(titles, t => t.StartsWith("Fleet overview", StringComparison.Ordinal));
        Assert.Contains("hostd vs wire", titles);
    }

    /// <summary>SIA_OPS_SCRAPE_TARGET=host:port scrapes a real daemon instead of the fake exposition;
    /// then empty results are only reported unless SIA_OPS_REQUIRE_DATA=1. (The end-to-end
    /// PrometheusEndToEndTests runs the same check against a real daemon counting real traffic.)</summary>
    [RequiresToolsFact("prometheus")]
    public async Task Every_dashboard_expression_parses_and_returns_data_in_a_real_prometheus()
    {
        var realTarget = Environment.GetEnvironmentVariable("SIA_OPS_SCRAPE_TARGET");
        var requireData = string.IsNullOrEmpty(realTarget) || Environment.GetEnvironmentVariable("SIA_OPS_REQUIRE_DATA") == "1";
        using var exposition = string.IsNullOrEmpty(realTarget) ? new FakeExporter() : null;
        using var hostd = new HostdReplay(HostdPassword, FakeHostdRates);
        using var prometheus = await PrometheusServer.StartAsync(realTarget ?? $"127.0.0.1:{exposition!.Port}", hostd: (hostd.Target, HostdPassword));
        await CheckEveryExpressionAsync(prometheus, output, _ => requireData);
    }

    /// <summary>
    /// Runs every dashboard expression (panels and variables) against <paramref name="prometheus"/>
    /// once a second until each one that <paramref name="requireData"/> selects returns series (at
    /// least <paramref name="minimum"/>, default 5 s; at most <paramref name="deadline"/>, default
    /// 40 s, counted from the call): none may fail to parse or evaluate, the selected ones must have
    /// data, and the recording and alerting rules of rules.yml must all be loaded and healthy.
    /// Returns the series count per expression.
    /// </summary>
    internal static async Task<Dictionary<string, (string Status, int Count, string Error)>> CheckEveryExpressionAsync(
        PrometheusServer prometheus, ITestOutputHelper output, Func<(string Where, string PromQl), bool> requireData,
        TimeSpan? minimum = null, TimeSpan? deadline = null)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(DashboardQueries.DashboardPath));
        var queries = DashboardQueries.Load(doc);
        var required = queries.Where(q => requireData((q.Where, q.PromQl))).Select(q => q.Where).ToHashSet();
        var started = Stopwatch.StartNew();
        Dictionary<string, (string Status, int Count, string Error)> results = [];
        while (true)
        {
            await Task.Delay(1000);
            if (prometheus.HasExited) throw new Xunit.Sdk.XunitException($"Prometheus exited:\n{prometheus.Log}");
            results = [];
            foreach (var (where, promQl, _) in queries)
                results[where] = await prometheus.TryQueryAsync(promQl);
            var parseErrors = results.Where(r => r.Value.Status != "success").ToList();
            Assert.True(parseErrors.Count == 0, string.Join("\n", parseErrors.Select(r =>
                $"{r.Key}: {r.Value.Error}\n    {queries.First(q => q.Where == r.Key).PromQl}")));
            if (started.Elapsed >= (minimum ?? TimeSpan.FromSeconds(5)) && required.All(w => results[w].Count > 0)) break;
            if (started.Elapsed >= (deadline ?? TimeSpan.FromSeconds(40))) break;
        }
        output.WriteLine($"{queries.Count} expressions checked after {started.Elapsed.TotalSeconds:F1} s against {prometheus.Target} ({required.Count} must have data)");
        foreach (var (where, promQl, _) in queries)
            output.WriteLine($"{results[where].Count,4} series {(required.Contains(where) ? "*" : " ")} {where}: {promQl}");

        var empty = results.Where(r => r.Value.Count == 0 && required.Contains(r.Key)).Select(r => r.Key).ToList();
        Assert.True(empty.Count == 0, $"no data for:\n{string.Join("\n", empty)}\nPrometheus log:\n{prometheus.Log}");

        // The rules loaded and evaluate without error.
        using var rules = JsonDocument.Parse(await prometheus.Http.GetStringAsync("/api/v1/rules"));
        var all = rules.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray()).ToList();
        Assert.True(all.Count >= 15, $"only {all.Count} rules loaded");
        var bad = all.Where(r => r.GetProperty("health").GetString() == "err")
            .Select(r => $"{r.GetProperty("name").GetString()}: {r.GetProperty("lastError").GetString()}").ToList();
        Assert.True(bad.Count == 0, string.Join("\n", bad));
        return results;
    }

    internal const string HostdPassword = "hostd api password";

    /// <summary>hostd payload a little below the fake exporter's wire rates (about 1.06 wire bytes
    /// per payload byte, as bulk TCP measures): 9981 carries 360,000 B/s down and twice that up,
    /// 9984 tcp+udp 1,016,000 B/s down and twice that up.</summary>
    internal static readonly HostdReplay.PayloadRates FakeHostdRates = new(
        RhpIngress: 960_000, RhpEgress: 1_920_000, SyncerIngress: 340_000, SyncerEgress: 680_000);

    internal static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>A text exposition shaped like the exporter's: two named clients plus "other",
    /// three port classes, both directions; counters grow with time so rates are non-zero.</summary>
    private sealed class FakeExporter : IDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly Task _loop;
        public int Port { get; }

        private static readonly (string Port, string Proto)[] Classes = [("9981", "tcp"), ("9984", "tcp"), ("9984", "udp")];
        // Bytes per second per client: 9981 is dominated by the first client, 9984 by the second.
        private static readonly (string Client, double[] Rate)[] Clients =
        [
            ("203.0.113.7", [300_000, 20_000, 5_000]),
            ("2001:db8::5", [50_000, 900_000, 60_000]),
            ("other", [10_000, 30_000, 1_000]),
        ];

        public FakeExporter()
        {
            for (var attempt = 0; ; attempt++)
            {
                Port = FreePort();
                try { _listener.Prefixes.Add($"http://127.0.0.1:{Port}/"); _listener.Start(); break; }
                catch (HttpListenerException) when (attempt < 5) { _listener.Prefixes.Clear(); }
            }
            _loop = Task.Run(ServeAsync);
        }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await _listener.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
                var body = Encoding.UTF8.GetBytes(Render(_clock.Elapsed.TotalSeconds));
                ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                ctx.Response.ContentLength64 = body.Length;
                try { await ctx.Response.OutputStream.WriteAsync(body); ctx.Response.Close(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { }
            }
        }

        private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

        internal static string Render(double t)
        {
            var sb = new StringBuilder();
            void Family(string name, string type, string help)
                => sb.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var (metric, perByte) in new[] { ("bytes", 1.0), ("packets", 1.0 / 1000) })
            {
                Family($"sia_traffic_{metric}_total", "counter", $"Sia traffic {metric} per client, port class and direction.");
                for (var c = 0; c < Classes.Length; c++)
                    foreach (var dir in new[] { "down", "up" })
                        foreach (var (client, rate) in Clients)
                            sb.Append($"sia_traffic_{metric}_total{{client=\"{client}\",port=\"{Classes[c].Port}\",proto=\"{Classes[c].Proto}\",direction=\"{dir}\"}} {F(Math.Floor((1e9 + rate[c] * (dir == "up" ? 2 : 1) * t) * perByte))}\n");
                Family($"sia_traffic_host_{metric}_total", "counter", $"Sia traffic {metric} of the host per port class and direction.");
                for (var c = 0; c < Classes.Length; c++)
                    foreach (var dir in new[] { "down", "up" })
                        sb.Append($"sia_traffic_host_{metric}_total{{port=\"{Classes[c].Port}\",proto=\"{Classes[c].Proto}\",direction=\"{dir}\"}} {F(Clients.Sum(x => Math.Floor((1e9 + x.Rate[c] * (dir == "up" ? 2 : 1) * t) * perByte)))}\n");
            }
            // Subnets: the two named clients' /24 and /48, and other, summing to the host totals.
            Family("sia_traffic_subnet_bytes_total", "counter", "Sia traffic bytes per subnet, port class and direction.");
            for (var c = 0; c < Classes.Length; c++)
                foreach (var dir in new[] { "down", "up" })
                    foreach (var ((client, rate), subnet) in Clients.Zip(new[] { "203.0.113.0/24", "2001:db8::/48", "other" }))
                        sb.Append($"sia_traffic_subnet_bytes_total{{subnet=\"{subnet}\",port=\"{Classes[c].Port}\",proto=\"{Classes[c].Proto}\",direction=\"{dir}\"}} {F(Math.Floor(1e9 + rate[c] * (dir == "up" ? 2 : 1) * t))}\n");
            // hostd (HOSTD_API_URL) lists the first client as a syncer peer.
            Family("sia_client_info", "gauge", "Clients hostd lists as syncer peers.");
            sb.Append("sia_client_info{client=\"203.0.113.7\",role=\"syncer_peer\",version=\"2.0.0\"} 1\n");
            Family("sia_exporter_hostd_api_up", "gauge", "1 when hostd's API could be read.");
            sb.Append("sia_exporter_hostd_api_up 1\n");
            Family("sia_exporter_clients", "gauge", "Clients in the kernel map.");
            sb.Append("sia_exporter_clients 2\n");
            Family("sia_exporter_map_capacity", "gauge", "Kernel map capacity.");
            sb.Append("sia_exporter_map_capacity 16384\n");
            Family("sia_exporter_map_overflow_total", "counter", "Clients that found the map full.");
            sb.Append("sia_exporter_map_overflow_total 0\n");
            Family("sia_exporter_unconfirmed_sources", "gauge", "Pending slots held by unconfirmed sources.");
            sb.Append("sia_exporter_unconfirmed_sources 12\n");
            Family("sia_exporter_unconfirmed_evicted_packets_total", "counter", "Frames of unconfirmed sources evicted from the pending table.");
            sb.Append($"sia_exporter_unconfirmed_evicted_packets_total {F(Math.Floor(t * 3))}\n");
            Family("sia_exporter_qdisc_dropped_bytes_total", "counter", "Up bytes a qdisc dropped after they were counted.");
            sb.Append($"sia_exporter_qdisc_dropped_bytes_total{{port=\"9984\",proto=\"udp\"}} {F(Math.Floor(t * 1500))}\n");
            Family("sia_exporter_qdisc_dropped_packets_total", "counter", "Up frames a qdisc dropped after they were counted.");
            sb.Append($"sia_exporter_qdisc_dropped_packets_total{{port=\"9984\",proto=\"udp\"}} {F(Math.Floor(t))}\n");
            Family("sia_exporter_bpf_attached", "gauge", "1 when the program is attached.");
            sb.Append("sia_exporter_bpf_attached{interface=\"lo\",hook=\"xdp\"} 1\nsia_exporter_bpf_attached{interface=\"lo\",hook=\"tc_egress\"} 1\n");
            Family("sia_exporter_build_info", "gauge", "Version and hostname.");
            sb.Append("sia_exporter_build_info{version=\"0.1.0\",hostname=\"ops-test\"} 1\n");
            Family("sia_exporter_sqlite_last_success_timestamp_seconds", "gauge", "Last successful SQLite flush.");
            sb.Append($"sia_exporter_sqlite_last_success_timestamp_seconds {F(Math.Floor(DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60.0) * 60)}\n");
            Family("sia_exporter_sqlite_flush_failures_total", "counter", "Failed SQLite flushes.");
            sb.Append("sia_exporter_sqlite_flush_failures_total 0\n");
            Family("sia_exporter_scrape_duration_seconds", "gauge", "Time to read the maps at the last scrape.");
            sb.Append("sia_exporter_scrape_duration_seconds 0.0021\n");
            var programs = new[] { ("xdp_count", 20_000.0), ("tc_count", 15_000.0) };
            Family("sia_exporter_bpf_runs_total", "counter", "BPF program runs.");
            foreach (var (program, pps) in programs)
                sb.Append($"sia_exporter_bpf_runs_total{{program=\"{program}\"}} {F(Math.Floor(1e6 + pps * t))}\n");
            Family("sia_exporter_bpf_run_time_seconds_total", "counter", "BPF program run time.");
            foreach (var (program, pps) in programs)
                sb.Append($"sia_exporter_bpf_run_time_seconds_total{{program=\"{program}\"}} {F(Math.Floor(1e6 + pps * t) * 45e-9)}\n");
            return sb.ToString();
        }

        public void Dispose()
        {
            _listener.Close();
            try { _loop.Wait(2000); } catch (AggregateException) { }
        }
    }
}
