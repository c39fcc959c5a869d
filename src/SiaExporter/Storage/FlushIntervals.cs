using SiaExporter.Hosting;

namespace SiaExporter.Storage;

/// <summary>
/// FLUSH_INTERVAL: a whole number of seconds that divides the 5-minute bucket (1s … 5m), so the
/// flushes on the clock's boundary are also bucket boundaries and no flush straddles two buckets.
/// </summary>
public static class FlushIntervals
{
    /// <summary>Every valid interval, in seconds.</summary>
    public static readonly IReadOnlyList<long> DivisorsOfBucket =
        Enumerable.Range(1, (int)Buckets.Seconds).Where(s => Buckets.Seconds % s == 0).Select(s => (long)s).ToArray();

    public static string Accepts { get; } =
        "a duration that divides 5m: " + string.Join(", ", DivisorsOfBucket.Select(s => DurationText.Format(TimeSpan.FromSeconds(s))));

    public static bool DividesBucket(TimeSpan interval) =>
        interval.Ticks % TimeSpan.TicksPerSecond == 0 && DivisorsOfBucket.Contains((long)interval.TotalSeconds);

    /// <summary>Parses a duration and rejects one that does not divide 300 s, saying which ones do.</summary>
    public static TimeSpan Parse(string text)
    {
        var interval = DurationText.Parse(text);
        return DividesBucket(interval)
            ? interval
            : throw new FormatException($"must divide the 5-minute bucket (300 s) so every flush falls on a bucket boundary; expected {Accepts}");
    }
}
