using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using SiaExporter.Counters;
using SiaExporter.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Dashboard;

/// <summary>
/// The dashboard of the real daemon (COLLECTOR_BIN, the shipped AOT build under make test) in a
/// real headless Chromium (Debian's chromium, driven by playwright-core from web/node_modules)
/// after real traffic in a test network: the numbers the page shows equal /metrics and SQLite,
/// the page logs no error and fetches nothing from elsewhere, and it fits a phone. Screenshots go
/// to build/dashboard/ (desktop light and dark, phone).
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    private static readonly string Screenshots = Path.Combine(Repository.Root, "build", "dashboard");

    [KernelFact]
    public void The_page_shows_what_metrics_and_sqlite_hold_and_logs_no_error()
    {
        using var net = TestNetwork.Create(offloads: true);
        var daemon = DaemonProcess.Start(net, extraArgs: ["--flush-interval", "5s"]);
        var database = Path.Combine(DaemonProcess.StateDirectoryOf(net), "traffic.db");
        try
        {
            var run = TruthRun.Record(net, TrafficPlan.Standard(net, scaleKb: 100));
            run.DeletePcap();
            var metrics = WaitUntilFlushed(daemon, database);
            output.WriteLine($"{net.Name}: traffic sent, flushed: {string.Join(", ", metrics.Select(m => $"{m.Key.Class} {m.Key.Direction.Label()} {m.Value.Bytes} B"))}");

            var root = Browser.Check(new Uri(daemon.MetricsUri, "/"), Screenshots);
            output.WriteLine(root.ToString());

            // Live: the kernel's host totals, as /metrics has them (no traffic since the flush).
            var after = DaemonProcess.HostSeries(daemon.Scrape());
            Assert.Equal(metrics, after);
            var live = root.GetProperty("live");
            foreach (var ((cls, direction), traffic) in metrics)
                Assert.Equal((long)traffic.Bytes, live.GetProperty(cls.ToString()).GetProperty(direction.Label()).GetInt64());

            // History: the range's host rows in SQLite, read here with SQL, not through the product.
            var range = root.GetProperty("range");
            var (from, to) = (range.GetProperty("from").GetInt64(), range.GetProperty("to").GetInt64());
            var host = Query(database, "SELECT port || '/' || proto, sum(down_bytes), sum(up_bytes) FROM traffic_host WHERE bucket >= $f AND bucket < $t GROUP BY 1", from, to);
            Assert.NotEmpty(host);
            var history = root.GetProperty("history");
            foreach (var (cls, down, up) in host)
            {
                Assert.Equal(down, history.GetProperty(cls).GetProperty("down").GetInt64());
                Assert.Equal(up, history.GetProperty(cls).GetProperty("up").GetInt64());
            }
            // ... and those equal /metrics: every byte of this daemon's life is flushed.
            foreach (var ((cls, direction), traffic) in metrics)
                Assert.Equal((long)traffic.Bytes, direction == Direction.Up ? host.Single(h => h.Class == cls.ToString()).Up : host.Single(h => h.Class == cls.ToString()).Down);

            // Top clients: each row equals the client's rows in SQLite, busiest first.
            var clientRows = Query(database, "SELECT client_ip, sum(down_bytes), sum(up_bytes) FROM traffic_detail WHERE bucket >= $f AND bucket < $t GROUP BY 1", from, to)
                .OrderByDescending(c => c.Down + c.Up).ThenBy(c => c.Class, StringComparer.Ordinal).ToList();
            var shown = root.GetProperty("clients").EnumerateArray().ToList();
            Assert.Equal(clientRows.Select(c => c.Class), shown.Select(c => c.GetProperty("client").GetString()));
            Assert.Equal(net.Clients.Select(c => ClientAddress.FromIPAddress(c).ToString()).Order(StringComparer.Ordinal), clientRows.Select(c => c.Class).Order(StringComparer.Ordinal));
            foreach (var (row, c) in clientRows.Zip(shown))
            {
                Assert.Equal(row.Down, c.GetProperty("down").GetInt64());
                Assert.Equal(row.Up, c.GetProperty("up").GetInt64());
                Assert.True(c.GetProperty("sparkline").GetInt32() >= 2, "a sparkline has a line");
            }

            // Drill-down of the first client: its classes equal its rows in SQLite.
            var drill = root.GetProperty("client");
            var first = clientRows[0].Class;
            Assert.Equal(first, drill.GetProperty("name").GetString());
            var perClass = Query(database, "SELECT port || '/' || proto, sum(down_bytes), sum(up_bytes) FROM traffic_detail WHERE bucket >= $f AND bucket < $t AND client_ip = '" + first + "' GROUP BY 1", from, to);
            foreach (var (cls, down, up) in perClass)
            {
                Assert.Equal(down, drill.GetProperty("totals").GetProperty(cls).GetProperty("down").GetInt64());
                Assert.Equal(up, drill.GetProperty("totals").GetProperty(cls).GetProperty("up").GetInt64());
            }

            Assert.True(root.GetProperty("livePoints").GetInt32() > 0, "the live chart has rates");
            Assert.All(root.GetProperty("liveNow").EnumerateArray(), r => Assert.All(r.EnumerateArray(), c => Assert.EndsWith("bit/s", c.GetString(), StringComparison.Ordinal)));
            Assert.Equal("dark", root.GetProperty("theme").GetString());
            Browser.AssertLayout(root, Screenshots);
            Assert.False(daemon.HasExited, "the daemon exited");
        }
        finally
        {
            daemon.Dispose();
            try { Directory.Delete(DaemonProcess.StateDirectoryOf(net), recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The seeded database (three days, one 9981 spike) in the browser: the spike is
    /// marked, the numbers equal the seeded rows, and the screenshots show a realistic page
    /// (build/dashboard/seeded/).</summary>
    [Fact]
    public async Task A_seeded_history_shows_its_spike_and_exact_numbers_in_the_browser()
    {
        await using var rig = await DashboardRig.StartAsync(realTime: true);
        var shots = Path.Combine(Screenshots, "seeded");
        var root = Browser.Check(new Uri($"http://127.0.0.1:{rig.Port}/"), shots);
        output.WriteLine(root.ToString());
        var (from, to) = (root.GetProperty("range").GetProperty("from").GetInt64(), root.GetProperty("range").GetProperty("to").GetInt64());
        var spikes = rig.Rows.Where(r => r.Client is null && r.Class == "9981/tcp" && r.DownBytes > 300L << 20).Select(r => r.Bucket).ToList();
        Assert.Single(spikes);
        Assert.InRange(spikes[0], from, to - 1);
        Assert.Equal(1, root.GetProperty("spikes").GetInt32());
        Assert.Contains("1 9981 spike(s) marked", root.GetProperty("historyMeta").GetString(), StringComparison.Ordinal);
        foreach (var cls in new[] { "9981/tcp", "9984/tcp", "9984/udp" })
            foreach (var direction in new[] { "down", "up" })
                Assert.Equal(rig.Rows.Where(r => r.Client is null && r.Class == cls && r.Bucket >= from && r.Bucket < to).Sum(r => r.Bytes(direction)),
                    root.GetProperty("history").GetProperty(cls).GetProperty(direction).GetInt64());
        var first = root.GetProperty("clients")[0];
        var own = rig.Rows.Where(r => r.Client == first.GetProperty("client").GetString() && r.Bucket >= from && r.Bucket < to).ToList();
        Assert.Equal(own.Sum(r => r.DownBytes), first.GetProperty("down").GetInt64());
        Assert.Equal(own.Sum(r => r.UpBytes), first.GetProperty("up").GetInt64());
        Assert.Equal(rig.Rows.Where(r => r.Client is not null && r.Bucket >= from && r.Bucket < to).Select(r => r.Client).Distinct().Count(),
            root.GetProperty("clients").GetArrayLength());
        Browser.AssertLayout(root, shots);
    }

    /// <summary>Waits until SQLite's host rows hold everything /metrics counted; returns /metrics' host totals.</summary>
    private static Dictionary<(PortClass Class, Direction Direction), Traffic> WaitUntilFlushed(DaemonProcess daemon, string database)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var metrics = DaemonProcess.HostSeries(daemon.Scrape()).Where(kv => kv.Value.Bytes > 0).ToDictionary();
            var stored = File.Exists(database)
                ? Query(database, "SELECT port || '/' || proto, sum(down_bytes), sum(up_bytes) FROM traffic_host WHERE bucket >= $f AND bucket < $t GROUP BY 1", 0, long.MaxValue)
                : [];
            var equal = metrics.Count > 0 && metrics.All(kv =>
                stored.Any(s => s.Class == kv.Key.Class.ToString() && (kv.Key.Direction == Direction.Up ? s.Up : s.Down) == (long)kv.Value.Bytes));
            if (equal) return DaemonProcess.HostSeries(daemon.Scrape());
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"SQLite did not catch up with /metrics: {string.Join(", ", stored)} vs {string.Join(", ", metrics)}\n{daemon.Log}");
            Thread.Sleep(500);
        }
    }

    private static List<(string Class, long Down, long Up)> Query(string database, string sql, long from, long to)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$f", from);
        cmd.Parameters.AddWithValue("$t", to);
        var rows = new List<(string, long, long)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) rows.Add((r.GetString(0), r.GetInt64(1), r.GetInt64(2)));
        return rows;
    }
}

/// <summary>Runs web/test/check-dashboard.mjs (playwright-core driving /usr/bin/chromium) on a page.</summary>
internal static class Browser
{
    private static readonly string Script = Path.Combine(Repository.Root, "web", "test", "check-dashboard.mjs");

    /// <summary>The script's JSON: numbers the page shows, range, clients, drill-down, layout; no problem reported.</summary>
    public static JsonElement Check(Uri page, string screenshots)
    {
        Assert.True(File.Exists("/usr/bin/chromium"), "Debian's chromium is not installed (make deps-test installs it)");
        Assert.True(File.Exists(Path.Combine(Repository.Root, "web", "node_modules", "playwright-core", "package.json")), "run make web first (npm ci in web/)");
        Directory.CreateDirectory(screenshots);
        var result = Shell.TryWithTimeout(TimeSpan.FromSeconds(120), "node", Script, page.ToString(), screenshots);
        Assert.True(result.Ok, $"the browser run failed ({result.ExitCode}):\n{result.Stderr}\n{result.Stdout}");
        using var json = JsonDocument.Parse(result.Stdout.Trim().Split('\n')[^1]);
        var root = json.RootElement.Clone();
        var problems = root.GetProperty("problems").EnumerateArray().Select(p => p.GetString()).ToList();
        Assert.True(problems.Count == 0, $"the page reported problems:\n{string.Join('\n', problems)}");
        return root;
    }

    public static void AssertLayout(JsonElement root, string screenshots)
    {
        Assert.True(root.GetProperty("charts").GetArrayLength() >= 3, "live, history and client charts are drawn");
        var phone = root.GetProperty("phone");
        Assert.True(phone.GetProperty("scrollWidth").GetInt32() <= 390, $"the page is wider than the phone: {phone}");
        foreach (var shot in new[] { "desktop-light.png", "desktop-dark.png", "phone.png" })
            Assert.True(new FileInfo(Path.Combine(screenshots, shot)).Length > 10_000, $"{shot} is missing or empty");
    }
}
