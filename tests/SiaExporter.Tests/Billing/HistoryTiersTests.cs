using SiaExporter.Hosting;
using SiaExporter.Storage;
using Xunit;

namespace SiaExporter.Tests.Billing;

public sealed class HistoryTiersTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 9, 37, 12, TimeSpan.Zero);

    [Fact]
    public void Defaults_are_two_days_raw_62_hourly_and_retention_days_daily()
    {
        var tiers = HistoryTiers.From(new DatabaseOptions());
        Assert.Equal([2, 62, 400], tiers.Select(t => t.RetentionDays));
        Assert.Equal([300L, 3600L, 86400L], tiers.Select(t => t.BucketSeconds));
        Assert.Equal(["traffic_detail", "traffic_hourly", "traffic_daily"], tiers.Select(t => t.ClientTable));
        Assert.Equal(["traffic_host", "traffic_host_hourly", "traffic_host_daily"], tiers.Select(t => t.HostTable));
    }

    [Fact]
    public void A_finer_tier_never_outlives_retention_days()
    {
        var tiers = HistoryTiers.From(new DatabaseOptions { RetentionDays = 1 });
        Assert.Equal([1, 1, 1], tiers.Select(t => t.RetentionDays));
    }

    [Fact]
    public void A_range_is_read_from_the_finest_tier_that_still_holds_its_start()
    {
        var tiers = HistoryTiers.From(new DatabaseOptions());
        long Ago(TimeSpan d) => (Now - d).ToUnixTimeSeconds();
        Assert.Equal(Resolution.FiveMinutes, HistoryTiers.ForRange(tiers, Ago(TimeSpan.FromHours(1)), Now).Resolution);
        Assert.Equal(Resolution.FiveMinutes, HistoryTiers.ForRange(tiers, Ago(TimeSpan.FromDays(2)), Now).Resolution);
        Assert.Equal(Resolution.Hourly, HistoryTiers.ForRange(tiers, Ago(TimeSpan.FromDays(3)), Now).Resolution);
        Assert.Equal(Resolution.Daily, HistoryTiers.ForRange(tiers, Ago(TimeSpan.FromDays(63)), Now).Resolution);
        Assert.Equal(Resolution.Daily, HistoryTiers.ForRange(tiers, Ago(TimeSpan.FromDays(4000)), Now).Resolution);
    }

    [Fact]
    public void Buckets_and_alignment_of_each_tier()
    {
        var tiers = HistoryTiers.From(new DatabaseOptions());
        var t = Now.ToUnixTimeSeconds();
        Assert.Equal(new DateTimeOffset(2026, 12, 2, 9, 35, 0, TimeSpan.Zero).ToUnixTimeSeconds(), tiers[0].BucketOf(t));
        Assert.Equal(new DateTimeOffset(2026, 12, 2, 9, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), tiers[1].BucketOf(t));
        Assert.Equal(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), tiers[2].BucketOf(t));
        var (from, until) = HistoryTiers.Align(tiers[1], t - 7200, t);
        Assert.Equal(tiers[1].BucketOf(t - 7200), from);
        Assert.Equal(tiers[1].BucketOf(t) + 3600, until);
        Assert.Equal(tiers[0].BucketOf(t - 2 * 86400), tiers[0].Cutoff(Now));
    }
}
