using SiaExporter.Billing;
using Xunit;

namespace SiaExporter.Tests.Billing;

public sealed class BillingPeriodTests
{
    private static DateTimeOffset Utc(int y, int mo, int d, int h = 0, int mi = 0) => new(y, mo, d, h, mi, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1, "2026-11-15T10:00:00Z", "2026-11-01", "2026-12-01")]
    [InlineData(15, "2026-11-15T00:00:00Z", "2026-11-15", "2026-12-15")]
    [InlineData(15, "2026-11-14T23:59:59Z", "2026-10-15", "2026-11-15")]
    [InlineData(28, "2026-03-01T00:00:00Z", "2026-02-28", "2026-03-28")]
    [InlineData(5, "2027-01-02T00:00:00Z", "2026-12-05", "2027-01-05")]
    [InlineData(1, "2026-11-15T10:00:00+05:00", "2026-11-01", "2026-12-01")]
    public void A_billing_month_starts_on_the_billing_day_at_midnight_utc(int billingDay, string at, string start, string end)
    {
        var period = BillingPeriod.Holding(PeriodKind.Month, DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture), billingDay);
        Assert.Equal(DateTimeOffset.Parse(start + "T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture), period.Start);
        Assert.Equal(DateTimeOffset.Parse(end + "T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture), period.End);
    }

    [Fact]
    public void Random_instants_fall_in_exactly_one_period_of_each_kind_made_of_whole_utc_days_or_hours()
    {
        var random = new Random(12);
        for (var i = 0; i < 5000; i++)
        {
            var at = Utc(2020, 1, 1).AddSeconds(random.NextInt64(0, 10L * 365 * 86400));
            var day = random.Next(1, 29);
            foreach (var kind in new[] { PeriodKind.Month, PeriodKind.Day, PeriodKind.Hour })
            {
                var p = BillingPeriod.Holding(kind, at, day);
                Assert.True(p.Start <= at && at < p.End, $"{at:o} not in {p}");
                Assert.Equal(0, p.Start.ToUnixTimeSeconds() % (kind == PeriodKind.Hour ? 3600 : 86400));
                Assert.Equal(0, p.End.ToUnixTimeSeconds() % (kind == PeriodKind.Hour ? 3600 : 86400));
                // Consecutive periods tile time: the next one starts where this one ends.
                Assert.Equal(p.End, BillingPeriod.Holding(kind, p.End, day).Start);
                Assert.Equal(p, BillingPeriod.Holding(kind, p.End.AddTicks(-1), day));
            }
        }
    }

    [Fact]
    public void A_named_month_and_the_projection_to_its_end()
    {
        var (year, month) = BillingPeriod.ParseMonth("2026-11");
        var november = BillingPeriod.Month(year, month, 1);
        Assert.Equal(Utc(2026, 11, 1), november.Start);
        Assert.Equal(TimeSpan.FromDays(30), november.Length);
        // 3 days in, 300 GB used: the same rate over 30 days is 3 TB.
        Assert.Equal(3_000_000_000_000UL, november.Project(300_000_000_000UL, Utc(2026, 11, 4)));
        Assert.Equal(123UL, november.Project(123, Utc(2026, 12, 9)));   // closed: what it used
        Assert.Equal(0UL, november.Project(0, Utc(2026, 11, 1)));       // not started
        Assert.Throws<FormatException>(() => BillingPeriod.ParseMonth("2026-13"));
        Assert.Throws<FormatException>(() => BillingPeriod.ParseKind("week"));
        Assert.Throws<ArgumentOutOfRangeException>(() => BillingPeriod.Month(2026, 2, 29));
    }
}
