namespace SiaExporter.Counters;

/// <summary>
/// How a client's counters grew since the values last accounted for (a baseline), when a read can
/// come out lower for two reasons:
/// <list type="bullet">
/// <item>its kernel entry was evicted and created again (after a restart that missed the eviction):
/// everything it holds is new;</item>
/// <item>the kernel took frames a shaping qdisc dropped off its <b>up</b> counters after they were
/// accounted for (bpf/qdiscdrops.h): nothing is new until the lane passes the baseline again.</item>
/// </list>
/// Down counters are never taken off, so a down lane that went lower means a new entry, and up lanes
/// that went lower alone are held. An entry without down traffic has nothing to tell the two apart:
/// there any lower lane means a new entry, as it always did. (In the kernel every client entry has
/// down traffic: the frames its confirmation answered.) Aggregates (host totals, overflow) live as
/// long as the map generation: they never restart, they only hold.
/// </summary>
public static class CounterGrowth
{
    /// <summary>True when the entry behind <paramref name="now"/> was created again since
    /// <paramref name="baseline"/> (see the class).</summary>
    public static bool Restarted(ReadOnlySpan<Traffic> now, ReadOnlySpan<Traffic> baseline)
    {
        bool anyLower = false, downSeen = false, downLower = false;
        for (var s = 0; s < now.Length && s < baseline.Length; s++)
        {
            var lower = now[s].Bytes < baseline[s].Bytes || now[s].Packets < baseline[s].Packets;
            anyLower |= lower;
            if ((s & 1) != (int)Direction.Down) continue;
            downSeen |= !baseline[s].IsZero;
            downLower |= lower;
        }
        return downSeen ? downLower : anyLower;
    }

    /// <summary><see cref="Restarted(ReadOnlySpan{Traffic}, ReadOnlySpan{Traffic})"/> against a baseline kept
    /// as lanes (bytes, then packets, of each slot in turn), as the publication engine keeps it.</summary>
    public static bool Restarted(ReadOnlySpan<Traffic> now, ReadOnlySpan<ulong> baselineLanes)
    {
        Span<Traffic> baseline = stackalloc Traffic[now.Length];
        for (var s = 0; s < now.Length && 2 * s + 1 < baselineLanes.Length; s++)
            baseline[s] = new Traffic(baselineLanes[2 * s], baselineLanes[2 * s + 1]);
        return Restarted(now, baseline);
    }

    /// <summary>What <paramref name="now"/> adds over <paramref name="baseline"/>: all of it for a
    /// restarted entry, else what exceeds the baseline (a lane held lower grows by nothing).</summary>
    public static Traffic Growth(Traffic now, Traffic baseline, bool restarted) => restarted ? now : new(
        now.Bytes > baseline.Bytes ? now.Bytes - baseline.Bytes : 0,
        now.Packets > baseline.Packets ? now.Packets - baseline.Packets : 0);

    /// <summary>The baseline after accounting for <paramref name="now"/>: now for a restarted entry,
    /// else the higher of the two, so frames taken off are not counted again when the lane regrows.</summary>
    public static Traffic Next(Traffic now, Traffic baseline, bool restarted) => restarted ? now : new(
        Math.Max(now.Bytes, baseline.Bytes), Math.Max(now.Packets, baseline.Packets));
}
