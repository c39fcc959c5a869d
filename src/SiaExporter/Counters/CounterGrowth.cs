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
/// Down counters are never taken off, so only a down lane that went lower means a new entry. Aggregates
/// (host totals, overflow) live as long as the map generation: they never restart, they only hold.
/// </summary>
public static class CounterGrowth
{
    /// <summary>True when a down slot of <paramref name="now"/> is below <paramref name="baseline"/>:
    /// the entry was created again.</summary>
    public static bool Restarted(ReadOnlySpan<Traffic> now, ReadOnlySpan<Traffic> baseline)
    {
        for (var s = (int)Direction.Down; s < now.Length && s < baseline.Length; s += 2)
            if (now[s].Bytes < baseline[s].Bytes || now[s].Packets < baseline[s].Packets)
                return true;
        return false;
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
