using System.Globalization;

namespace SiaExporter.Billing;

/// <summary>The length of a billing period: a billing month (from BILLING_DAY), a UTC day or an hour.</summary>
public enum PeriodKind
{
    Month,
    Day,
    Hour,
}

/// <summary>
/// One billing period, [Start, End) in UTC. A month starts on <c>BILLING_DAY</c> (1–28, so every
/// month has it) at 00:00 UTC and ends on the same day of the next month; days and hours are UTC.
/// Every period is made of whole UTC days or hours, so the daily and hourly tiers sum it exactly.
/// </summary>
public readonly record struct BillingPeriod(PeriodKind Kind, DateTimeOffset Start, DateTimeOffset End)
{
    public TimeSpan Length => End - Start;

    /// <summary>The period of <paramref name="kind"/> that holds <paramref name="at"/>.</summary>
    public static BillingPeriod Holding(PeriodKind kind, DateTimeOffset at, int billingDay)
    {
        at = at.ToUniversalTime();
        switch (kind)
        {
            case PeriodKind.Hour:
                var hour = new DateTimeOffset(at.Year, at.Month, at.Day, at.Hour, 0, 0, TimeSpan.Zero);
                return new(kind, hour, hour.AddHours(1));
            case PeriodKind.Day:
                var day = new DateTimeOffset(at.Year, at.Month, at.Day, 0, 0, 0, TimeSpan.Zero);
                return new(kind, day, day.AddDays(1));
            default:
                CheckBillingDay(billingDay);
                var start = new DateTimeOffset(at.Year, at.Month, billingDay, 0, 0, 0, TimeSpan.Zero);
                if (start > at) start = start.AddMonths(-1);
                return new(kind, start, start.AddMonths(1));
        }
    }

    /// <summary>The billing month named by the calendar month its start falls in ("2026-11": from 2026-11-BILLING_DAY).</summary>
    public static BillingPeriod Month(int year, int month, int billingDay)
    {
        CheckBillingDay(billingDay);
        var start = new DateTimeOffset(year, month, billingDay, 0, 0, 0, TimeSpan.Zero);
        return new(PeriodKind.Month, start, start.AddMonths(1));
    }

    /// <summary>"2026-11" → (2026, 11).</summary>
    public static (int Year, int Month) ParseMonth(string text) =>
        DateTime.TryParseExact(text.Trim(), "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d)
            ? (d.Year, d.Month)
            : throw new FormatException($"'{text}' is not a month like 2026-11");

    public static PeriodKind ParseKind(string text) => text.Trim().ToLowerInvariant() switch
    {
        "month" => PeriodKind.Month,
        "day" => PeriodKind.Day,
        "hour" => PeriodKind.Hour,
        _ => throw new FormatException($"'{text}' is not a period: month, day or hour"),
    };

    /// <summary>How much of the period has passed at <paramref name="now"/> (0 before it starts, its length after it ends).</summary>
    public TimeSpan ElapsedAt(DateTimeOffset now) =>
        now <= Start ? TimeSpan.Zero : now >= End ? Length : now - Start;

    /// <summary>
    /// <paramref name="used"/> bytes so far, extended at the same average rate to the period's end. A closed
    /// period projects to what it used; a period that has not started projects to 0.
    /// </summary>
    public ulong Project(ulong used, DateTimeOffset now)
    {
        var elapsed = ElapsedAt(now);
        if (elapsed <= TimeSpan.Zero) return used;
        if (elapsed >= Length) return used;
        var projected = (decimal)used * Length.Ticks / elapsed.Ticks;
        return projected >= ulong.MaxValue ? ulong.MaxValue : (ulong)decimal.Round(projected);
    }

    public override string ToString() =>
        $"{Kind.ToString().ToLowerInvariant()} {Start:yyyy-MM-dd HH:mm}–{End:yyyy-MM-dd HH:mm} UTC";

    private static void CheckBillingDay(int billingDay)
    {
        if (billingDay is < 1 or > 28) throw new ArgumentOutOfRangeException(nameof(billingDay), billingDay, "BILLING_DAY is 1 to 28");
    }
}
