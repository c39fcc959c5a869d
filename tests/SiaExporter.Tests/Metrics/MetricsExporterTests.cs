using System.Diagnostics;
using SiaExporter.Counters;
using SiaExporter.Metrics;
using Xunit;

namespace SiaExporter.Tests.Metrics;

public sealed class MetricsExporterTests
{
    private static readonly ClientAddress A = ClientAddress.Parse("192.0.2.1");
    private static readonly ClientAddress B = ClientAddress.Parse("192.0.2.2");
    private static readonly ClientAddress C = ClientAddress.Parse("2001:db8::c");

    private static MetricsExporter Exporter(KernelModel kernel, string dir, int top = 1000, TimeSpan? idle = null, MetricsSources? sources = null) =>
        new(TestOptions.For(dir, top, idle), kernel.Snapshot, sources, null, processMetrics: false);

    private static async Task<Exposition> Scrape(MetricsExporter exporter) => new(await exporter.ExportTextAsync());

    private static double Client(Exposition e, string client, int slot = 0, string metric = "sia_traffic_bytes_total")
    {
        var (port, proto, direction) = slot switch { 0 => ("9981", "tcp", "down"), 1 => ("9981", "tcp", "up"), _ => throw new ArgumentOutOfRangeException(nameof(slot)) };
        return e.Value(metric, ("client", client), ("port", port), ("proto", proto), ("direction", direction));
    }

    private static bool Shown(Exposition e, string client) => e.Of("sia_traffic_bytes_total").Any(s => s.Labels["client"] == client);

    [Theory]
    [InlineData("::ffff:1.2.3.4", "1.2.3.4")]
    [InlineData("1.2.3.4", "1.2.3.4")]
    [InlineData("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1")]
    [InlineData("2001:0DB8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1")]
    [InlineData("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1")]
    [InlineData("fe80::1", "fe80::1")]
    [InlineData("::1", "::1")]
    public async Task Client_label_is_dotted_IPv4_or_RFC_5952(string address, string label)
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        kernel.Add(ClientAddress.Parse(address), 0, 100, 1);
        var e = await Scrape(Exporter(kernel, dir.Path));
        Assert.Equal(100, Client(e, label)); // a client new since the last scrape shows its whole traffic
        kernel.Add(ClientAddress.Parse(address), 0, 50, 1);
        Assert.Equal(150, Client(await Scrape(Exporter(kernel, dir.Path)), label));
    }

    [Fact]
    public async Task Exposition_has_every_SPEC_metric_with_help_and_no_timestamps()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        kernel.Add(A, 0, 1000, 2);
        kernel.AddOverflow(1, 60, 1);
        var exporter = new MetricsExporter(TestOptions.For(dir.Path), kernel.Snapshot, new MetricsSources
        {
            Version = "1.2.3",
            MapCapacity = 16384,
            BpfPrograms = () => [new("count_ingress", 2_000_000_000, 1000), new("count_egress", 500, 10)],
            Attachments = () => [new("eth0", "xdp", true), new("eth0", "tc_egress", false)],
        });
        var e = await Scrape(exporter);
        foreach (var name in new[]
                 {
                     "sia_traffic_bytes_total", "sia_traffic_packets_total", "sia_traffic_host_bytes_total", "sia_traffic_host_packets_total",
                     "sia_exporter_clients", "sia_exporter_map_capacity", "sia_exporter_map_overflow_total", "sia_exporter_bpf_attached",
                     "sia_exporter_build_info", "sia_exporter_bpf_run_time_seconds_total", "sia_exporter_bpf_runs_total",
                     "sia_exporter_map_read_duration_seconds", "sia_exporter_scrape_duration_seconds", "process_cpu_seconds_total",
                 })
            Assert.True(e.Series.Values.Any(s => s.Name == name), $"{name} missing");
        foreach (var (_, (name, _)) in e.Series)
        {
            var family = e.Types.ContainsKey(name) ? name : name[..name.LastIndexOf('_')];
            Assert.True(e.Help.Contains(family) && e.Types.ContainsKey(family), $"{name} has no HELP/TYPE");
        }
        Assert.Equal(1, e.Value("sia_exporter_build_info", ("version", "1.2.3"), ("hostname", "host-1")));
        Assert.Equal(16384, e.Value("sia_exporter_map_capacity"));
        Assert.Equal(1, e.Value("sia_exporter_clients"));
        Assert.Equal(1, e.Value("sia_exporter_map_overflow_total"));
        Assert.Equal(2.0, e.Value("sia_exporter_bpf_run_time_seconds_total", ("program", "count_ingress")));
        Assert.Equal(10, e.Value("sia_exporter_bpf_runs_total", ("program", "count_egress")));
        Assert.Equal(1, e.Value("sia_exporter_bpf_attached", ("interface", "eth0"), ("hook", "xdp")));
        Assert.Equal(0, e.Value("sia_exporter_bpf_attached", ("interface", "eth0"), ("hook", "tc_egress")));
        Assert.Equal(1000, e.Value("sia_traffic_host_bytes_total", ("port", "9981"), ("proto", "tcp"), ("direction", "down")));
        Assert.Equal(60, e.Value("sia_traffic_host_bytes_total", ("port", "9984"), ("proto", "tcp"), ("direction", "down")) +
                         e.Value("sia_traffic_host_bytes_total", ("port", "9981"), ("proto", "tcp"), ("direction", "up")));
        Assert.Equal(0, Client(e, "other")); // A is new: its whole traffic is its own series
        Assert.Equal(1000, Client(e, "192.0.2.1"));
        Assert.DoesNotContain(e.Series.Keys, k => k.StartsWith("prometheus_net_", StringComparison.Ordinal) || k.StartsWith("microsoft_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task History_and_push_collectors_show_their_sources_and_push_is_absent_when_off()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var flushed = DateTimeOffset.FromUnixTimeSeconds(1_767_225_600);
        var failures = 2L;
        var withPush = new MetricsExporter(TestOptions.For(dir.Path), kernel.Snapshot, new MetricsSources
        {
            History = () => new HistoryHealth(flushed, failures),
            Push = () => new SiaExporter.Push.PushStatus(flushed.AddMinutes(5), 3, 1, 4, 10, SiaExporter.Push.PushHealth.Ok),
        }, null, processMetrics: false);
        var e = await Scrape(withPush);
        Assert.Equal(1_767_225_600, e.Value("sia_exporter_sqlite_last_success_timestamp_seconds"));
        Assert.Equal(2, e.Value("sia_exporter_sqlite_flush_failures_total"));
        Assert.Equal(1_767_225_900, e.Value("sia_exporter_push_last_success_timestamp_seconds"));
        Assert.Equal(3, e.Value("sia_exporter_push_pending_buckets"));
        Assert.Equal(4, e.Value("sia_exporter_push_failures_total"));
        failures = 5;
        Assert.Equal(5, (await Scrape(withPush)).Value("sia_exporter_sqlite_flush_failures_total"));

        var pushOff = new MetricsExporter(TestOptions.For(dir.Path), kernel.Snapshot, new MetricsSources
        {
            History = () => new HistoryHealth(null, 0),
        }, null, processMetrics: false);
        e = await Scrape(pushOff);
        Assert.Equal(0, e.Value("sia_exporter_sqlite_last_success_timestamp_seconds"));
        Assert.DoesNotContain(e.Series.Values, s => s.Name.StartsWith("sia_exporter_push_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Large_values_are_exported_exactly()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        kernel.Add(A, 0, 1, 1);
        var exporter = Exporter(kernel, dir.Path);
        await Scrape(exporter);
        const ulong big = (1UL << 52) + 12345; // 4.5 PB: exact in a double, 16 digits
        kernel.Add(A, 0, big, 3_000_000_000_123);
        var e = await Scrape(exporter);
        Assert.Equal(big + 1, Exposition.Exact(Client(e, "192.0.2.1")));
        Assert.Equal(3_000_000_000_124UL, Exposition.Exact(Client(e, "192.0.2.1", 0, "sia_traffic_packets_total")));
    }

    [Fact]
    public async Task Only_top_N_get_series_and_a_challenger_needs_a_quarter_more_bytes()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var exporter = Exporter(kernel, dir.Path, top: 1);
        kernel.Add(A, 0, 1000, 1);
        kernel.Add(B, 0, 400, 1);
        var e = await Scrape(exporter);
        Assert.True(Shown(e, "192.0.2.1") && !Shown(e, "192.0.2.2"));

        kernel.Add(A, 0, 100, 1);  // A 1100
        kernel.Add(B, 0, 900, 1);  // B 1300: more, but not 1.25 × 1100
        e = await Scrape(exporter);
        Assert.True(Shown(e, "192.0.2.1") && !Shown(e, "192.0.2.2"));
        Assert.Equal(1100, Client(e, "192.0.2.1"));
        var otherBefore = Client(e, "other");

        kernel.Add(B, 0, 200, 1);  // B 1500 > 1375
        e = await Scrape(exporter);
        Assert.True(!Shown(e, "192.0.2.1") && Shown(e, "192.0.2.2"));
        Assert.Equal(0, Client(e, "192.0.2.2")); // B's earlier traffic was already shown in other
        Assert.Equal(otherBefore + 200 + 1100, Client(e, "other")); // B's growth and A's shown 1100 move to other
        Assert.Equal(1, e.Value("sia_exporter_published_clients"));
    }

    [Fact]
    public async Task Idle_client_leaves_and_evicted_client_coming_back_from_zero_keeps_growing()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var exporter = Exporter(kernel, dir.Path, idle: TimeSpan.FromMinutes(10));
        kernel.Add(A, 0, 5000, 5);
        kernel.Add(B, 0, 5000, 5);
        await Scrape(exporter);
        kernel.Now += TimeSpan.FromMinutes(1);
        kernel.Add(A, 0, 3000, 3);
        kernel.Add(B, 0, 1, 1);
        var e = await Scrape(exporter);
        Assert.Equal(8000, Client(e, "192.0.2.1")); // shown whole at the first scrape, then its growth

        // A evicted and back with a new entry (smaller than before) between two scrapes.
        kernel.Evict(A);
        kernel.Add(A, 0, 700, 1);
        kernel.Now += TimeSpan.FromMinutes(5);
        e = await Scrape(exporter);
        Assert.Equal(8700, Client(e, "192.0.2.1"));
        Assert.True(Shown(e, "192.0.2.2"));

        kernel.Now += TimeSpan.FromMinutes(6); // B idle for 11 min, A for 6
        e = await Scrape(exporter);
        Assert.False(Shown(e, "192.0.2.2"));
        Assert.True(Shown(e, "192.0.2.1"));
        kernel.Now += TimeSpan.FromMinutes(5);
        e = await Scrape(exporter);
        Assert.False(Shown(e, "192.0.2.1"));
        PublicationPropertyTests.CheckSums(e, kernel.Classes, null, "after idle");
    }

    [Fact]
    public async Task A_second_exporter_over_the_same_state_dir_continues_and_a_new_generation_starts_afresh()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var first = Exporter(kernel, dir.Path, top: 1);
        kernel.Add(A, 0, 1000, 1);
        await Scrape(first);
        kernel.Add(A, 0, 500, 1);
        kernel.Add(B, 0, 4000, 4); // B displaces A: A's 500 goes to other
        var last = await Scrape(first);
        Assert.True(Shown(last, "192.0.2.2"));
        kernel.Add(B, 0, 300, 1);
        kernel.Add(C, 0, 10, 1);
        last = await Scrape(first); // B shows 300: only values grew, nothing written

        kernel.Add(B, 0, 50, 1);
        await first.StateSaver.StopAsync(CancellationToken.None); // the host stops: the last change is saved
        var second = Exporter(kernel, dir.Path, top: 1);
        var e = await Scrape(second);
        PublicationPropertyTests.CheckNothingWentDown(last, e, "restart");
        Assert.Equal(4350, Client(e, "192.0.2.2")); // B was new when it displaced A: shown whole
        Assert.Equal(Client(last, "other"), Client(e, "other")); // C's 10 went to other before the restart

        // Maps recreated while the daemon was down: counters restart, the state is not used.
        kernel.RecreateMaps();
        kernel.Add(C, 0, 80, 1);
        var third = Exporter(kernel, dir.Path, top: 1);
        e = await Scrape(third);
        Assert.Equal(80, e.Value("sia_traffic_host_bytes_total", ("port", "9981"), ("proto", "tcp"), ("direction", "down")));
        Assert.Equal(0, Client(e, "2001:db8::c"));
        Assert.Equal(80, Client(e, "other"));
    }

    [Fact]
    public async Task Up_taken_off_for_a_qdisc_drop_after_it_was_served_is_not_a_restarted_entry_across_a_restart()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var first = Exporter(kernel, dir.Path);
        kernel.Add(A, 0, 200, 2);
        kernel.Add(A, 1, 1000, 10); // slot 1: 9981/tcp up
        var last = await Scrape(first);
        Assert.Equal(1000, Client(last, "192.0.2.1", slot: 1));
        kernel.TakeOff(A, 1, 40, 1); // the qdisc dropped a frame already served
        Assert.Equal(1000, Client(await Scrape(first), "192.0.2.1", slot: 1));
        await first.StateSaver.StopAsync(CancellationToken.None);
        await first.SubnetStateSaver!.StopAsync(CancellationToken.None);

        // A restarted daemon reads the entry lower than its saved state: its down lane says it is the same entry.
        var second = Exporter(kernel, dir.Path);
        var e = await Scrape(second);
        PublicationPropertyTests.CheckNothingWentDown(last, e, "restart after a drop");
        Assert.Equal(1000, Client(e, "192.0.2.1", slot: 1));
        Assert.Equal(200, Client(e, "192.0.2.1", slot: 0));
        kernel.Add(A, 1, 50, 1);
        e = await Scrape(second);
        Assert.Equal(1010, Client(e, "192.0.2.1", slot: 1)); // only the growth past what it showed
    }

    [Fact]
    public async Task Maps_recreated_under_a_running_exporter_carry_on_without_going_down()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var exporter = Exporter(kernel, dir.Path);
        kernel.Add(A, 0, 1000, 1);
        await Scrape(exporter);
        kernel.Add(A, 0, 1000, 1);
        var before = await Scrape(exporter);
        kernel.RecreateMaps();
        kernel.Add(A, 0, 10, 1);
        var after = await Scrape(exporter);
        PublicationPropertyTests.CheckNothingWentDown(before, after, "recreated");
        Assert.Equal(2010, Client(after, "192.0.2.1"));
        Assert.Equal(2010, after.Value("sia_traffic_host_bytes_total", ("port", "9981"), ("proto", "tcp"), ("direction", "down")));
    }

    [Fact]
    public async Task The_state_is_saved_off_the_scrape_path_soon_after_a_change_and_at_stop()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var exporter = Exporter(kernel, dir.Path, top: 1);
        var file = Path.Combine(dir.Path, PublicationStateFile.FileName);
        kernel.Add(A, 0, 1000, 1);
        await Scrape(exporter); // A joins
        Assert.False(File.Exists(file)); // no write inside the scrape

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await exporter.StateSaver.StartAsync(stop.Token);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!File.Exists(file) && DateTime.UtcNow < deadline) await Task.Delay(10);
        Assert.True(File.Exists(file), "the running saver did not save the change");

        kernel.Add(B, 0, 5000, 5); // B displaces A
        var last = await Scrape(exporter);
        await exporter.StateSaver.StopAsync(stop.Token);
        kernel.Add(B, 0, 5, 1);
        var e = await Scrape(Exporter(kernel, dir.Path, top: 1));
        PublicationPropertyTests.CheckNothingWentDown(last, e, "restart");
        Assert.False(Shown(e, "192.0.2.1"));
        Assert.Equal(Client(last, "192.0.2.2") + 5, Client(e, "192.0.2.2"));
    }

    [Fact]
    public async Task While_the_state_cannot_be_saved_no_client_joins_or_leaves_and_the_error_is_counted()
    {
        using var dir = new TempDir();
        var blocked = Path.Combine(dir.Path, "state");
        var kernel = new KernelModel();
        var exporter = Exporter(kernel, blocked, idle: TimeSpan.FromMinutes(10));
        kernel.Add(A, 0, 1000, 1);
        await Scrape(exporter); // A joins; its save comes after
        await File.WriteAllTextAsync(blocked, "not a directory");
        Assert.False(exporter.StateSaver.SavePending());

        kernel.Now += TimeSpan.FromMinutes(11); // A idle: it would leave
        kernel.Add(B, 0, 700, 1); // B new: it would join
        var e = await Scrape(exporter);
        Assert.True(Shown(e, "192.0.2.1"));
        Assert.False(Shown(e, "192.0.2.2"));
        Assert.Equal(700, Client(e, "other"));
        Assert.Equal(1, e.Value("sia_exporter_errors_total", ("operation", "state_write")));
        PublicationPropertyTests.CheckSums(e, kernel.Classes, null, "unsaved");

        File.Delete(blocked);
        Assert.True(exporter.StateSaver.SavePending()); // retried with the state the last scrape offered
        kernel.Add(B, 0, 10, 1);
        e = await Scrape(exporter);
        Assert.False(Shown(e, "192.0.2.1"));
        Assert.True(Shown(e, "192.0.2.2")); // its earlier traffic was shown in other: starts at zero
        Assert.Equal(0, Client(e, "192.0.2.2"));
        Assert.Equal(1, e.Value("sia_exporter_errors_total", ("operation", "state_write")));
        PublicationPropertyTests.CheckSums(e, kernel.Classes, null, "saved again");
    }

    [Fact]
    public async Task Read_failure_is_counted_and_the_previous_values_stay()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var fail = false;
        var exporter = new MetricsExporter(TestOptions.For(dir.Path), () => fail ? throw new IOException("map gone") : kernel.Snapshot(), null, null, processMetrics: false);
        kernel.Add(A, 0, 1000, 1);
        await Scrape(exporter);
        fail = true;
        var e = await Scrape(exporter);
        Assert.Equal(1, e.Value("sia_exporter_errors_total", ("operation", "counter_read")));
        Assert.Equal(1000, Client(e, "192.0.2.1"));
        Assert.Equal(0, Client(e, "other"));
    }

    [Fact]
    public async Task Overlapping_scrapes_each_show_one_consistent_state()
    {
        using var dir = new TempDir();
        var kernel = new KernelModel();
        var random = new Random(7);
        var gate = new Lock();
        CounterSnapshot Next()
        {
            lock (gate)
            {
                kernel.Now += TimeSpan.FromSeconds(1);
                for (var i = 0; i < 20; i++)
                    kernel.Add(ClientAddress.Parse($"198.51.100.{random.Next(1, 60)}"), random.Next(6), (ulong)random.Next(1, 100000), 1);
                return kernel.Snapshot();
            }
        }
        var exporter = new MetricsExporter(TestOptions.For(dir.Path, top: 10), Next, null, null, processMetrics: false);
        for (var round = 0; round < 10; round++)
        {
            var texts = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => exporter.ExportTextAsync())));
            foreach (var text in texts) PublicationPropertyTests.CheckSums(new Exposition(text), kernel.Classes, null, $"round {round}");
        }
    }

    [Fact]
    public async Task Index_page_lists_top_clients_links_metrics_and_escapes_everything()
    {
        var kernel = new KernelModel();
        kernel.Add(A, 0, 9000, 9);
        kernel.Add(C, 1, 100, 1);
        var hostile = new Hosting.CollectorOptions { SiaHostname = "<script>alert('x')</script>&" };
        var page = new IndexPage(kernel.Snapshot, hostile, version: "1\"<b>");
        var html = page.Render();
        Assert.Contains("href=\"metrics\"", html);
        Assert.DoesNotContain("<script>", html);
        Assert.Contains("&lt;script&gt;", html);
        Assert.DoesNotContain("1\"<b>", html);
        Assert.True(html.IndexOf("192.0.2.1", StringComparison.Ordinal) < html.IndexOf("2001:db8::c", StringComparison.Ordinal));
        kernel.Now += TimeSpan.FromSeconds(20);
        kernel.Add(C, 1, 1_000_000, 1000);
        html = page.Render();
        Assert.Contains("last 20 s", html);
        Assert.True(html.IndexOf("2001:db8::c", StringComparison.Ordinal) < html.IndexOf("192.0.2.1", StringComparison.Ordinal) || !html.Contains("192.0.2.1"));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Promtool_check_metrics_prints_nothing()
    {
        const string promtool = "/usr/bin/promtool";
        var path = File.Exists(promtool) ? promtool : Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(p => Path.Combine(p, "promtool")).FirstOrDefault(File.Exists);
        if (path is null)
        {
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", "promtool is missing (Debian package prometheus); CI must run this check");
            return; // developer machine without promtool
        }
        using var dir = new TempDir();
        var kernel = new KernelModel();
        for (var i = 1; i < 30; i++) kernel.Add(ClientAddress.Parse($"203.0.113.{i}"), i % 6, (ulong)(i * 1000), (ulong)i);
        kernel.Add(ClientAddress.Parse("2001:db8::1:0:0:1"), 3, 5000, 5);
        kernel.AddOverflow(2, 1500, 1);
        var exporter = new MetricsExporter(TestOptions.For(dir.Path, top: 10), kernel.Snapshot, new MetricsSources
        {
            BpfPrograms = () => [new("count_ingress", 123456, 10)],
            Attachments = () => [new("eth0", "xdp", true), new("eth0", "tc_egress", true)],
        });
        await exporter.ExportTextAsync();
        kernel.Add(ClientAddress.Parse("203.0.113.5"), 0, 10, 1);
        var text = await exporter.ExportTextAsync();

        var start = new ProcessStartInfo(path, "check metrics") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(text);
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        var output = (await stdout) + (await stderr);
        Assert.True(process.ExitCode == 0 && output.Length == 0, $"promtool check metrics (exit {process.ExitCode}):\n{output}");
    }
}
