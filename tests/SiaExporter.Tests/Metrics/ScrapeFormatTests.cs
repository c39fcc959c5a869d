using Prometheus;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Hostd;
using SiaExporter.Metrics;
using SiaExporter.Tests.Ops;
using SiaExporter.Web;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Metrics;

/// <summary>The two exposition formats, content negotiation, exporter metrics on/off and hostd's peers.</summary>
public sealed class ScrapeFormatTests(ITestOutputHelper output)
{
    // What Prometheus 2.42 sends (scrape.go: scrapeAcceptHeader) and what curl sends by default.
    private const string PrometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    [Theory]
    [InlineData(PrometheusAccept, true)]
    [InlineData("application/openmetrics-text", true)]
    [InlineData("application/openmetrics-text; version=1.0.0; q=0.4, text/plain; q=0.5", false)]
    [InlineData("application/openmetrics-text;version=0.0.1", false)]
    [InlineData("text/plain;version=0.0.4;q=1,*/*;q=0.1", false)]
    [InlineData("*/*", false)]
    [InlineData("", false)]
    [InlineData("garbage;;;", false)]
    public void Accept_picks_OpenMetrics_only_when_preferred(string accept, bool openMetrics) =>
        Assert.Equal(openMetrics ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText, ScrapeNegotiation.FormatFor(accept));

    [Theory]
    [InlineData("gzip", true)]
    [InlineData("gzip, deflate, br", true)]
    [InlineData("identity, gzip;q=0", false)]
    [InlineData("*", true)]
    [InlineData("br", false)]
    [InlineData("", false)]
    public void Accept_encoding_asks_for_gzip(string acceptEncoding, bool gzip) =>
        Assert.Equal(gzip, ScrapeNegotiation.WantsGzip(acceptEncoding));

    private static (MetricsExporter Exporter, KernelModel Kernel) Exporter(TempDir dir, bool disableExporterMetrics = false,
        Func<HostdPeersSnapshot>? peers = null, string anonymize = "off")
    {
        var kernel = new KernelModel();
        for (var i = 1; i < 30; i++) kernel.Add(ClientAddress.Parse($"203.0.113.{i}"), i % 6, (ulong)(i * 1000), (ulong)i);
        kernel.Add(ClientAddress.Parse("2001:db8::1:0:0:1"), 3, 5000, 5);
        var options = TestOptions.For(dir.Path, top: 10);
        options = new CollectorOptions
        {
            SiaHostname = options.SiaHostname,
            Metrics = options.Metrics,
            Clients = options.Clients with { Anonymize = ClientPrefix.Parse(anonymize) },
            Web = options.Web with { DisableExporterMetrics = disableExporterMetrics },
        };
        var exporter = new MetricsExporter(options, kernel.Snapshot, new MetricsSources
        {
            Attachments = () => [new("eth0", "xdp", true), new("eth0", "tc_egress", true)],
            HostdPeers = peers,
        });
        return (exporter, kernel);
    }

    private (int Code, string Output) Promtool(string text)
    {
        var r = Shell.Exec(OpsTools.Require("promtool"), ["check", "metrics"], timeout: TimeSpan.FromSeconds(30), input: text);
        output.WriteLine($"promtool check metrics: exit {r.ExitCode} '{r.All.Trim()}'");
        return (r.ExitCode, r.All.Trim());
    }

    [RequiresToolsFact("promtool")]
    public async Task Both_formats_pass_promtool_and_OpenMetrics_ends_with_EOF()
    {
        using var dir = new TempDir();
        var (exporter, _) = Exporter(dir, peers: () => new HostdPeersSnapshot([new HostdPeer("203.0.113.7:9981", true, "2.0.0")], true));
        var text = await exporter.ExportTextAsync(ExpositionFormat.PrometheusText);
        var openMetrics = await exporter.ExportTextAsync(ExpositionFormat.OpenMetricsText);
        output.WriteLine(openMetrics[..Math.Min(openMetrics.Length, 1500)]);

        Assert.DoesNotContain("# EOF", text);
        Assert.EndsWith("# EOF\n", openMetrics);
        Assert.Contains("# TYPE sia_traffic_bytes counter", openMetrics);
        Assert.Contains("sia_traffic_bytes_total{", openMetrics);
        Assert.Contains("process_cpu_seconds", text);
        Assert.Equal((0, ""), Promtool(text));
        Assert.Equal((0, ""), Promtool(OpenMetricsAsText(openMetrics)));
    }

    /// <summary>
    /// promtool 2.42's `check metrics` reads only the text format 0.0.4: given OpenMetrics as is, it
    /// reports every counter as "no help text", since OpenMetrics declares the family without
    /// _total (# TYPE sia_traffic_bytes counter) while its samples carry it. This is the same
    /// exposition with the counter families named as their samples, `unknown` as `untyped`, and no
    /// `# EOF`, so promtool's lints (names, units, HELP, TYPE) run on exactly what OpenMetrics
    /// declares. (That the OpenMetrics itself parses is proved by a real Prometheus scraping it:
    /// ExporterConventionsTests.)
    /// </summary>
    internal static string OpenMetricsAsText(string openMetrics)
    {
        var lines = openMetrics.Split('\n').ToList();
        var counters = lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal) && l.EndsWith(" counter", StringComparison.Ordinal))
            .Select(l => l.Split(' ')[2]).ToHashSet(StringComparer.Ordinal);
        var result = new System.Text.StringBuilder();
        foreach (var line in lines)
        {
            if (line.Length == 0 || line == "# EOF" || line.StartsWith("# UNIT ", StringComparison.Ordinal)) continue;
            var parts = line.Split(' ', 4);
            if (parts.Length >= 3 && parts[0] == "#" && parts[1] is "HELP" or "TYPE")
            {
                var name = counters.Contains(parts[2]) ? parts[2] + "_total" : parts[2];
                var rest = parts.Length > 3 ? parts[3] : "";
                if (parts[1] == "TYPE" && rest == "unknown") rest = "untyped";
                result.Append($"# {parts[1]} {name} {rest}".TrimEnd()).Append('\n');
            }
            else
            {
                result.Append(line).Append('\n');
            }
        }
        return result.ToString();
    }

    [Fact]
    public async Task Disable_exporter_metrics_leaves_out_process_metrics_only()
    {
        using var dir = new TempDir();
        var with = await Exporter(dir).Exporter.ExportTextAsync();
        using var dir2 = new TempDir();
        var without = await Exporter(dir2, disableExporterMetrics: true).Exporter.ExportTextAsync();
        Assert.Contains("\nprocess_cpu_seconds_total ", with);
        Assert.DoesNotContain("process_", without);
        Assert.DoesNotContain("dotnet_", without);
        foreach (var name in new[] { "sia_traffic_bytes_total{", "sia_traffic_host_bytes_total{", "sia_exporter_build_info{", "sia_exporter_clients " })
            Assert.Contains(name, without);
    }

    [Fact]
    public async Task Hostds_syncer_peers_are_client_info_with_the_traffic_client_label()
    {
        using var dir = new TempDir();
        var snapshot = new HostdPeersSnapshot(
        [
            new HostdPeer("203.0.113.7:9981", true, "2.0.0"),
            new HostdPeer("203.0.113.7:9981", false, "2.0.0"),           // the same peer twice: one series
            new HostdPeer("[2001:db8::1:0:0:1]:9981", false, "1.5.9"),
            new HostdPeer("seed.example.net:9981", false, "2.0.0"),      // a host name: no client label
        ], Reachable: true);
        var (exporter, _) = Exporter(dir, peers: () => snapshot);
        var e = new Exposition(await exporter.ExportTextAsync());
        var info = e.Of("sia_client_info").Select(s => $"{s.Labels["client"]} {s.Labels["role"]} {s.Labels["version"]}").Order().ToList();
        Assert.Equal(["2001:db8::1:0:0:1 syncer_peer 1.5.9", "203.0.113.7 syncer_peer 2.0.0"], info);
        Assert.Equal(1, e.Value("sia_exporter_hostd_api_up"));
        // The same client label as the traffic series, so `* on (client) group_left(version)` joins.
        Assert.Contains(e.Of("sia_traffic_bytes_total"), s => s.Labels["client"] == "203.0.113.7" || s.Labels["client"] == "other");

        snapshot = new HostdPeersSnapshot([], Reachable: false); // hostd went down: no peers, up 0
        e = new Exposition(await exporter.ExportTextAsync());
        Assert.Empty(e.Of("sia_client_info"));
        Assert.Equal(0, e.Value("sia_exporter_hostd_api_up"));
    }

    [Fact]
    public async Task Client_info_follows_ANONYMIZE_like_the_traffic_series()
    {
        using var dir = new TempDir();
        var (exporter, _) = Exporter(dir, peers: () => new HostdPeersSnapshot([new HostdPeer("203.0.113.7:9981", true, "2.0.0")], true), anonymize: "/24,/48");
        var e = new Exposition(await exporter.ExportTextAsync());
        Assert.Equal(["203.0.113.0"], e.Of("sia_client_info").Select(s => s.Labels["client"]));
    }
}
