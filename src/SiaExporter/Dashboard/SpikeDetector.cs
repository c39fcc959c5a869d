namespace SiaExporter.Dashboard;

/// <summary>
/// 9981 spikes as the SiaConsensusTrafficSpike alert (prometheus/rules.yml) defines them, on the
/// stored 5-minute buckets: a bucket's 9981 rate (one direction) is a spike when it is above the
/// larger of 4 × the average of the preceding day's buckets and that average + 3 standard
/// deviations, and never below <see cref="MinimumRate"/> (1 MiB/s). Buckets without a row count
/// as 0. Pure.
/// </summary>
public static class SpikeDetector
{
    public const double MinimumRate = 1024 * 1024;
    public const long Bucket = 300;
    public const long Baseline = 86400;
    private const int BaselineBuckets = (int)(Baseline / Bucket);

    /// <summary>The spikes of buckets from <paramref name="from"/> to before <paramref name="to"/>;
    /// <paramref name="bytesByBucket"/> holds the 9981 bytes of one direction per bucket start and
    /// should cover the day before <paramref name="from"/> too.</summary>
    public static List<Spike> Find(IReadOnlyDictionary<long, long> bytesByBucket, long from, long to, string direction)
    {
        ArgumentNullException.ThrowIfNull(bytesByBucket);
        var spikes = new List<Spike>();
        double sum = 0, squares = 0;
        var window = new Queue<double>(BaselineBuckets + 1);
        for (var b = from - from % Bucket - Baseline; b < to; b += Bucket)
        {
            var rate = bytesByBucket.GetValueOrDefault(b) / (double)Bucket;
            if (b >= from && window.Count == BaselineBuckets)
            {
                var average = sum / window.Count;
                var deviation = Math.Sqrt(Math.Max(0, squares / window.Count - average * average));
                var threshold = Math.Max(MinimumRate, Math.Max(4 * average, average + 3 * deviation));
                if (rate > threshold) spikes.Add(new Spike(b, direction, rate, threshold));
            }
            window.Enqueue(rate);
            sum += rate;
            squares += rate * rate;
            if (window.Count > BaselineBuckets)
            {
                var old = window.Dequeue();
                sum -= old;
                squares -= old * old;
            }
        }
        return spikes;
    }
}
