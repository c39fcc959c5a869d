using SiaExporter.Hosting;

namespace SiaExporter.Storage;

/// <summary>The resolution of a history tier.</summary>
public enum Resolution
{
    /// <summary>5-minute buckets: traffic, traffic_detail, traffic_host.</summary>
    FiveMinutes,
    /// <summary>Hourly buckets: traffic_hourly, traffic_host_hourly.</summary>
    Hourly,
    /// <summary>Daily buckets (UTC days): traffic_daily, traffic_host_daily.</summary>
    Daily,
}

/// <summary>
/// One tier of the history: its bucket length, its client and host tables and how long it is kept.
/// Every delta is added to the bucket that holds it in every tier, in the flush's one transaction,
/// so a closed hour or day holds the same sum in every tier and no row is rolled up twice.
/// </summary>
public sealed record HistoryTier(Resolution Resolution, long BucketSeconds, string ClientTable, string HostTable, int RetentionDays)
{
    /// <summary>Start (Unix seconds UTC) of this tier's bucket holding <paramref name="unixSeconds"/>.</summary>
    public long BucketOf(long unixSeconds) => unixSeconds - (((unixSeconds % BucketSeconds) + BucketSeconds) % BucketSeconds);

    /// <summary>The first bucket kept at <paramref name="now"/>: whole buckets only, the one holding the cut-off stays.</summary>
    public long Cutoff(DateTimeOffset now) => BucketOf((now - TimeSpan.FromDays(RetentionDays)).ToUnixTimeSeconds());

    /// <summary>"5m", "1h", "1d": how the commands label a resolution.</summary>
    public string Label => Resolution switch
    {
        Resolution.FiveMinutes => "5m",
        Resolution.Hourly => "1h",
        _ => "1d",
    };
}

/// <summary>
/// The three tiers and their retention. Defaults, from bench-sqlite's figure of 631 MB of 5-minute
/// rows per day at 10,000 clients active all day (288 buckets): an hourly row set is about 1/12 of
/// that and a daily one 1/288, so 2 days raw (as vnstat keeps 48 h), 62 days hourly (the previous
/// billing month whole and the current one) and 400 days daily. `make bench-sqlite` measured the
/// steady state at 10,000 clients on two classes: 5m 976 MB, 1h 1,509 MB, 1d 444 MB, 2.93 GB in all,
/// under the 5 GB budget with room for a third class or busier days.
/// </summary>
public static class HistoryTiers
{
    public const int DefaultRawDays = 2;
    public const int DefaultHourlyDays = 62;

    public const long HourSeconds = 3600;
    public const long DaySeconds = 86_400;

    /// <summary>The tiers, finest first. A finer tier never outlives a coarser one: RAW_RETENTION_DAYS and
    /// HOURLY_RETENTION_DAYS are capped by RETENTION_DAYS (RETENTION_DAYS=7 keeps 7 days in every tier).</summary>
    public static IReadOnlyList<HistoryTier> From(DatabaseOptions options)
    {
        var daily = options.RetentionDays;
        var hourly = Math.Min(options.HourlyRetentionDays, daily);
        var raw = Math.Min(options.RawRetentionDays, hourly);
        return
        [
            new(Resolution.FiveMinutes, Buckets.Seconds, "traffic_detail", "traffic_host", raw),
            new(Resolution.Hourly, HourSeconds, "traffic_hourly", "traffic_host_hourly", hourly),
            new(Resolution.Daily, DaySeconds, "traffic_daily", "traffic_host_daily", daily),
        ];
    }

    /// <summary>The finest tier that still holds the bucket of <paramref name="from"/> at <paramref name="now"/>
    /// (the daily tier when none does); <see cref="Align"/> widens a range to its buckets.</summary>
    public static HistoryTier ForRange(IReadOnlyList<HistoryTier> tiers, long from, DateTimeOffset now)
    {
        foreach (var tier in tiers)
            if (from >= tier.Cutoff(now)) return tier;
        return tiers[^1];
    }

    /// <summary>[from, until) widened to whole buckets of <paramref name="tier"/>.</summary>
    public static (long From, long Until) Align(HistoryTier tier, long from, long until)
    {
        var start = tier.BucketOf(from);
        var end = tier.BucketOf(until);
        if (end < until) end += tier.BucketSeconds;
        return (start, end);
    }
}
