namespace SiaExporter.Counters;

/// <summary>
/// Gives each confirmed client the pending traffic it had before it proved it is real, and keeps
/// every client's values monotonic across snapshots.
/// <para>The kernel moves a client's pending counters into its `clients` entry (at confirmation on
/// the confirming CPU, later on the others), and the two maps are read one after the other: a move
/// between the two reads is seen in neither. `clients` is read first, so a read can only come out
/// lower than the truth, never higher. The kernel also takes a frame a shaping qdisc dropped off
/// the entry it was counted on (bpf/qdiscdrops.h), after a read may have shown it. Every client is
/// therefore shown as the maximum of what it reads now and what it showed at the last read, which
/// hides such a dip; the next traffic absorbs it. Sums are compared as signed values: a read that
/// sees a drop on one CPU before the count on another sums "below zero" (wrapped), and shows the
/// floor. A client absent from a read lost its entry (evicted): its memory goes with it.</para>
/// Not thread-safe: one per reader.
/// </summary>
public sealed class PendingMerge(int slots)
{
    /// <summary>What each client showed at the last read; <see cref="_next"/> is filled by the
    /// read under way, then the two swap (no new dictionary per read).</summary>
    private Dictionary<ClientAddress, Traffic[]> _shown = new();
    private Dictionary<ClientAddress, Traffic[]> _next = new();
    private MapGeneration? _generation;

    /// <summary>Adds to <paramref name="clientSlots"/> (flattened, in place) the pending slots of the
    /// confirmed <paramref name="clients"/>, applies the monotonic floor, and sums the rest.</summary>
    public UnconfirmedTraffic Merge(MapGeneration generation, ClientAddress[] clients, Traffic[] clientSlots,
        IReadOnlyList<PendingSlot> pending, Traffic[] evicted)
    {
        if (_generation != generation)
        {
            _shown.Clear();
            _generation = generation;
        }
        var byAddress = new Dictionary<ClientAddress, (Traffic[] Slots, int Count)>();
        foreach (var p in pending)
        {
            if (!byAddress.TryGetValue(p.Address, out var sum)) sum = (new Traffic[slots], 0);
            for (var s = 0; s < slots; s++) sum.Slots[s] += p.Slots[s];
            byAddress[p.Address] = (sum.Slots, sum.Count + 1);
        }

        var shown = _next;
        shown.Clear();
        for (var i = 0; i < clients.Length; i++)
        {
            var now = clientSlots.AsSpan(i * slots, slots);
            if (byAddress.Remove(clients[i], out var extra))
                for (var s = 0; s < slots; s++) now[s] += extra.Slots[s];
            if (_shown.Remove(clients[i], out var before))
            {
                Floor(now, before);
                now.CopyTo(before); // reuse the array
            }
            else
            {
                Floor(now, default);
                before = now.ToArray();
            }
            shown[clients[i]] = before;
        }
        (_shown, _next) = (shown, _shown);

        var held = new Traffic[slots];
        var sources = 0;
        foreach (var (_, rest) in byAddress)
        {
            sources += rest.Count;
            for (var s = 0; s < slots; s++) held[s] += rest.Slots[s];
        }
        Floor(held, default);
        return new UnconfirmedTraffic(sources, held, evicted);
    }

    /// <summary>The final value of an evicted client: its deleted entry plus the pending slots
    /// released with it, never less than it showed last. Forgets the client.</summary>
    public Traffic[] Final(ClientAddress client, Traffic[] deleted, IEnumerable<PendingSlot> released)
    {
        foreach (var p in released)
            if (p.Address == client)
                for (var s = 0; s < slots; s++) deleted[s] += p.Slots[s];
        Floor(deleted, _shown.Remove(client, out var before) ? before : default);
        return deleted;
    }

    /// <summary>Raises each value of <paramref name="now"/> to <paramref name="before"/> (empty: zero),
    /// comparing as signed 64-bit values (real counters stay far below 2^63).</summary>
    public static void Floor(Span<Traffic> now, ReadOnlySpan<Traffic> before)
    {
        for (var s = 0; s < now.Length; s++)
        {
            var b = before.IsEmpty ? Traffic.Zero : before[s];
            now[s] = new Traffic(
                (long)now[s].Bytes < (long)b.Bytes ? b.Bytes : now[s].Bytes,
                (long)now[s].Packets < (long)b.Packets ? b.Packets : now[s].Packets);
        }
    }
}
