namespace SiaExporter.Storage;

/// <summary>Part of a read range served by one tier: rows whose bucket starts in [From, Until).</summary>
public readonly record struct TierRange(HistoryTier Tier, long From, long Until);

/// <summary>
/// Which tier serves which part of a read range, so every part comes from the finest rows still kept
/// and no time is read twice: the daily tier before the first whole day the hourly tier still holds,
/// the hourly tier up to the first whole hour the 5-minute tier still holds, the 5-minute tier after.
/// A coarse row counts when its bucket starts in the range.
/// </summary>
public static class TierPlan
{
    /// <summary>The parts of [<paramref name="from"/>, <paramref name="until"/>) at <paramref name="now"/>, oldest first, empty parts left out.</summary>
    public static IReadOnlyList<TierRange> For(IReadOnlyList<HistoryTier> tiers, long from, long until, DateTimeOffset now)
    {
        // Where each tier starts: its cut-off rounded up to the next coarser tier's bucket, never after a finer tier's start.
        var starts = new long[tiers.Count];
        starts[^1] = long.MinValue;
        for (var i = tiers.Count - 2; i >= 0; i--)
        {
            var coarser = tiers[i + 1];
            var cutoff = tiers[i].Cutoff(now);
            var aligned = coarser.BucketOf(cutoff) == cutoff ? cutoff : coarser.BucketOf(cutoff) + coarser.BucketSeconds;
            starts[i] = Math.Max(aligned, starts[i + 1]);
        }
        var plan = new List<TierRange>();
        for (var i = tiers.Count - 1; i >= 0; i--)
        {
            var end = i == 0 ? long.MaxValue : starts[i - 1];
            var a = Math.Max(from, starts[i]);
            var b = Math.Min(until, end);
            if (a < b) plan.Add(new TierRange(tiers[i], a, b));
        }
        return plan;
    }

    /// <summary>Only the 5-minute tier, whatever its retention: what the seed's readers saw.</summary>
    public static IReadOnlyList<TierRange> RawOnly(long from, long until) =>
        [new TierRange(new HistoryTier(Resolution.FiveMinutes, Buckets.Seconds, "traffic_detail", "traffic_host", int.MaxValue), from, until)];

    /// <summary>The coarsest resolution in <paramref name="plan"/> ("5m" when empty): what an output says it holds.</summary>
    public static string Label(IReadOnlyList<TierRange> plan) =>
        plan.Count == 0 ? "5m" : plan.MaxBy(p => p.Tier.BucketSeconds).Tier.Label;
}
