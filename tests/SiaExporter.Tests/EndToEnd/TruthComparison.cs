using System.Globalization;
using System.Text;
using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>Compares what the product counted (a <see cref="CounterSnapshot"/>) with the capture truth,
/// to the byte and the frame.</summary>
public static class TruthComparison
{
    /// <summary>Every non-zero client slot of a snapshot, keyed like the truth.</summary>
    public static Dictionary<FlowKey, Traffic> Flatten(CounterSnapshot snapshot)
    {
        var result = new Dictionary<FlowKey, Traffic>();
        for (var i = 0; i < snapshot.Clients.Length; i++)
            for (var c = 0; c < snapshot.Classes.Count; c++)
                foreach (var dir in new[] { Direction.Down, Direction.Up })
                {
                    var t = snapshot.Get(i, PortClassSet.Slot(c, dir));
                    if (!t.IsZero) result[new FlowKey(snapshot.Clients[i], snapshot.Classes.Classes[c], dir)] = t;
                }
        return result;
    }

    /// <summary>Growth of every counter from <paramref name="before"/> (null: from zero) to <paramref name="after"/>.</summary>
    public static Dictionary<FlowKey, Traffic> Delta(CounterSnapshot? before, CounterSnapshot after)
    {
        var a = Flatten(after);
        if (before is null) return a;
        var b = Flatten(before);
        foreach (var (key, earlier) in b)
        {
            var now = a.GetValueOrDefault(key);
            if (now.Bytes < earlier.Bytes || now.Packets < earlier.Packets)
                throw new InvalidOperationException($"{key} went down: {earlier} -> {now}");
        }
        return a.Select(kv => (kv.Key, Value: new Traffic(kv.Value.Bytes - b.GetValueOrDefault(kv.Key).Bytes, kv.Value.Packets - b.GetValueOrDefault(kv.Key).Packets)))
            .Where(kv => !kv.Value.IsZero).ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    /// <summary>
    /// Every difference between <paramref name="counted"/> and the truth (empty when they agree):
    /// per client, class and direction, keys missing on either side, and — with a snapshot — host
    /// totals that are not the sum over clients, or any overflow.
    /// </summary>
    public static IReadOnlyList<string> Differences(CaptureTruth truth, IReadOnlyDictionary<FlowKey, Traffic> counted,
        CounterSnapshot? snapshot = null, CounterSnapshot? before = null)
    {
        var diffs = new List<string>();
        foreach (var key in truth.Counted.Keys.Union(counted.Keys).OrderBy(k => k.ToString()))
        {
            var want = truth.Counted.GetValueOrDefault(key);
            var got = counted.GetValueOrDefault(key);
            if (want != got)
                diffs.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{key}: truth {want.Bytes} B / {want.Packets} frames, counted {got.Bytes} B / {got.Packets} frames (Δ {(long)got.Bytes - (long)want.Bytes} B, {(long)got.Packets - (long)want.Packets} frames)"));
        }
        if (snapshot is not null)
        {
            for (var c = 0; c < snapshot.Classes.Count; c++)
                foreach (var dir in new[] { Direction.Down, Direction.Up })
                {
                    var slot = PortClassSet.Slot(c, dir);
                    var cls = snapshot.Classes.Classes[c];
                    var total = snapshot.Totals[slot];
                    if (before is not null) total = total.Since(before.Totals[slot]);
                    var want = truth.HostTotal(cls, dir);
                    if (total != want)
                        diffs.Add($"host total {cls} {dir.Label()}: truth {want}, counted {total}");
                    var sum = Enumerable.Range(0, snapshot.Clients.Length).Aggregate(Traffic.Zero, (a, i) => a + snapshot.Get(i, slot)) + snapshot.Overflow[slot]
                        + snapshot.Unconfirmed.Held[slot] + snapshot.Unconfirmed.Evicted[slot];
                    if (sum != snapshot.Totals[slot])
                        diffs.Add($"host total {cls} {dir.Label()}: {snapshot.Totals[slot]} is not the sum over clients {sum}");
                }
            if (snapshot.OverflowPackets != 0) diffs.Add($"overflow: {snapshot.OverflowPackets} packets");
        }
        return diffs;
    }

    public static string Table(IReadOnlyDictionary<FlowKey, Traffic> counted)
    {
        var sb = new StringBuilder();
        foreach (var kv in counted.OrderBy(kv => kv.Key.Client).ThenBy(kv => kv.Key.Class.Port).ThenBy(kv => kv.Key.Class.Protocol).ThenBy(kv => kv.Key.Direction))
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {kv.Key.Client,-12} {kv.Key.Class,-9} {kv.Key.Direction.Label(),-4} {kv.Value.Bytes,10} B {kv.Value.Packets,6} frames");
        return sb.ToString();
    }
}
