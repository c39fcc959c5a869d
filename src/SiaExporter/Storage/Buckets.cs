namespace SiaExporter.Storage;

/// <summary>
/// The 5-minute history buckets: a bucket is named by its start, Unix seconds UTC, a multiple
/// of 300 (:00, :05, :10 …). Time before the epoch is not a valid bucket.
/// </summary>
public static class Buckets
{
    public const long Seconds = 300;

    /// <summary>Start of the bucket holding <paramref name="instant"/> (xx:04:59.999 → xx:00, xx:05:00 → xx:05).</summary>
    public static long Of(DateTimeOffset instant)
    {
        var seconds = instant.ToUnixTimeSeconds(); // floors toward −∞ only for negative values, which are invalid anyway
        return seconds - (seconds % Seconds);
    }

    public static DateTimeOffset StartOf(long bucket) => DateTimeOffset.FromUnixTimeSeconds(bucket);
}
