using SiaExporter.Hosting;

namespace SiaExporter.Billing;

/// <summary>The host's bytes (every class) in the billing month so far, as the history last stored them.</summary>
public sealed record BillingUsage(BillingPeriod Period, ulong UpBytes, ulong DownBytes);

/// <summary>
/// The current billing month's usage, refreshed by the flush loop after each committed flush from
/// the daily host tier, and read by /metrics with the quota (BILLING_DAY, QUOTA_UP, QUOTA_DOWN).
/// Thread-safe: one writer, any readers.
/// </summary>
public sealed class BillingMeter(BillingOptions options)
{
    private BillingUsage? _latest; // a reference swapped whole: readers never see half an update

    public BillingOptions Options { get; } = options;

    /// <summary>The last usage stored; null before the first committed flush.</summary>
    public BillingUsage? Latest => Volatile.Read(ref _latest);

    /// <summary>The billing month holding <paramref name="now"/>.</summary>
    public BillingPeriod PeriodAt(DateTimeOffset now) => BillingPeriod.Holding(PeriodKind.Month, now, Options.Day);

    public void Update(BillingUsage usage) => Volatile.Write(ref _latest, usage);
}
