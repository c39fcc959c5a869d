using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Billing;
using SiaExporter.Hosting;
using SiaExporter.Metrics;
using SiaExporter.Storage;
using SiaExporter.Tests.Clock;
using SiaExporter.Tests.Metrics;
using SiaExporter.Tests.Storage;
using Xunit;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Billing;

/// <summary>The billing month's usage goes from the history to /metrics with the quota; `collector report` reads the same.</summary>
public sealed class BillingMetricsTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 14, 23, 50, 0, TimeSpan.Zero);
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task Usage_of_the_billing_month_reaches_metrics_with_the_quota_and_the_report_projects_it()
    {
        var time = new SteppingTime(Start);
        using var history = _f.Open(time);
        var billing = new BillingOptions { Day = 15, QuotaUpBytes = 2_000_000_000_000 };
        var meter = new BillingMeter(billing);
        ulong up = 0, down = 0;
        var options = new CollectorOptions { FlushInterval = TimeSpan.FromMinutes(1) };
        var service = new HistoryFlushService(history, () => Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [down, up, 0, 0, 0, 0]), ("10.0.0.2", [0, 0, 0, up / 2, 0, 0])),
            null, options, time, NullLogger<HistoryFlushService>.Instance, meter);
        for (var i = 0; i < 20; i++) // 23:51 … 00:10: the billing month starts at 00:00 on the 15th
        {
            time.Advance(TimeSpan.FromMinutes(1));
            up += 1000;
            down += 10;
            await service.FlushOnceAsync(time.GetUtcNow(), CancellationToken.None);
        }
        // Counted from 00:00 on: minutes 00:00 … 00:10 (the delta of 23:59–00:00 belongs to the old month).
        var usage = meter.Latest!;
        Assert.Equal(new DateTimeOffset(2026, 11, 15, 0, 0, 0, TimeSpan.Zero), usage.Period.Start);
        Assert.Equal(_f.Scalar("SELECT sum(up_bytes) FROM traffic_host WHERE bucket >= $b", ("$b", usage.Period.Start.ToUnixTimeSeconds())), (long)usage.UpBytes);
        Assert.Equal(10 * 1500UL, usage.UpBytes);
        Assert.Equal(10 * 10UL, usage.DownBytes);

        using var dir = new TempDir();
        var exporter = new MetricsExporter(TestOptions.For(dir.Path), new KernelModel().Snapshot, new MetricsSources { Billing = meter }, null, processMetrics: false);
        var e = new Exposition(await exporter.ExportTextAsync());
        Assert.Equal(15000, e.Value("sia_exporter_billing_period_bytes", ("direction", "up")));
        Assert.Equal(100, e.Value("sia_exporter_billing_period_bytes", ("direction", "down")));
        Assert.Equal(2e12, e.Value("sia_exporter_quota_bytes", ("direction", "up")));
        Assert.DoesNotContain(e.Series.Values, s => s.Name == "sia_exporter_quota_bytes" && s.Labels["direction"] == "down");
        Assert.Equal(usage.Period.End.ToUnixTimeSeconds(), e.Value("sia_exporter_billing_period_end_timestamp_seconds"));

        var report = new StringWriter();
        Assert.Equal(0, ReportCommand.Run(_f.DbPath, ["--month", "2026-11"], report, TextWriter.Null, time,
            HistoryView.From(new DatabaseOptions(), billing), billing));
        var lines = report.ToString().Split('\n');
        Assert.StartsWith("Billing month 2026-11-15 00:00–2026-12-15 00:00 UTC (BILLING_DAY=15)", lines[0], StringComparison.Ordinal);
        // 15 kB in the first 10 minutes of a 30-day month: 64.8 MB projected; quota 2 TB
        Assert.Equal(["all", "up", "15.0", "kB", "64.8", "MB", "2.0", "TB"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("Top clients 9981/tcp up:", report.ToString(), StringComparison.Ordinal);
        Assert.Contains("10.0.0.1", report.ToString(), StringComparison.Ordinal);

        var top = new StringWriter();
        Assert.Equal(0, TopCommand.Run(_f.DbPath, ["--period", "day", "--at", "2026-11-14T12:00:00Z"], top, TextWriter.Null, time,
            HistoryView.From(new DatabaseOptions(), billing)));
        Assert.Contains("day 2026-11-14 00:00–2026-11-15 00:00 UTC", top.ToString(), StringComparison.Ordinal);
        // The ten flushes of 23:51 … 00:00 count into the 14th: 10 kB up and 100 B down for 10.0.0.1.
        Assert.Equal(["10.0.0.1", "10.0", "kB", "100", "B", "0", "B", "0", "B", "0", "B", "0", "B", "10.1", "kB"],
            top.ToString().Split('\n')[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }
}
