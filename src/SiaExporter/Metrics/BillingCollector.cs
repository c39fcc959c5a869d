using Prometheus;
using SiaExporter.Billing;

namespace SiaExporter.Metrics;

/// <summary>
/// The billing month and its quota, read at scrape time from <see cref="BillingMeter"/>:
/// sia_exporter_billing_period_bytes{direction} (every class, from the history), the period's start
/// and end, and sia_exporter_quota_bytes{direction} for each quota that is set. prometheus/rules.yml
/// projects the month from these and alerts when it exceeds the quota.
/// </summary>
internal sealed class BillingCollector
{
    private readonly BillingMeter _meter;
    private readonly Gauge _used, _start, _end;

    public static void Register(CollectorRegistry registry, BillingMeter meter)
    {
        var collector = new BillingCollector(registry, meter);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private BillingCollector(CollectorRegistry registry, BillingMeter meter)
    {
        _meter = meter;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        _used = f.CreateGauge("sia_exporter_billing_period_bytes",
            "Bytes of every class in the current billing month so far (BILLING_DAY), as stored in the history.", "direction");
        _start = f.CreateGauge("sia_exporter_billing_period_start_timestamp_seconds", "Unix time the current billing month started (BILLING_DAY, 00:00 UTC).");
        _end = f.CreateGauge("sia_exporter_billing_period_end_timestamp_seconds", "Unix time the current billing month ends.");
        var quota = f.CreateGauge("sia_exporter_quota_bytes", "Monthly quota of the billing period (QUOTA_UP, QUOTA_DOWN); absent when not set.", "direction");
        if (meter.Options.QuotaUpBytes is { } up) quota.WithLabels("up").Set(up);
        if (meter.Options.QuotaDownBytes is { } down) quota.WithLabels("down").Set(down);
    }

    private void Update()
    {
        if (_meter.Latest is not { } usage) return;
        _used.WithLabels("up").Set(usage.UpBytes);
        _used.WithLabels("down").Set(usage.DownBytes);
        _start.Set(usage.Period.Start.ToUnixTimeSeconds());
        _end.Set(usage.Period.End.ToUnixTimeSeconds());
    }
}
