namespace SiaExporter.Counters;

/// <summary>One slot of the kernel's `pending` table on one CPU: an address that has not (yet)
/// proved it is real, or one confirmed since, whose counters are not yet folded into its entry.</summary>
public readonly record struct PendingSlot(ClientAddress Address, Traffic[] Slots);

/// <summary>
/// Traffic of sources that have no `clients` entry because they never proved they are real
/// (spoofed floods, scans, handshakes never completed). Part of the host totals and of
/// client="other"; never a client of its own.
/// </summary>
/// <param name="Sources">Pending slots (summed over CPUs) held by unconfirmed addresses now.</param>
/// <param name="Held">Per slot: what those pending slots hold now (moves to a client when it is confirmed).</param>
/// <param name="Evicted">Per slot: frames of unconfirmed sources whose pending slot was taken by
/// another source (the kernel's aggregates[UNCONFIRMED]; only grows).</param>
public sealed record UnconfirmedTraffic(int Sources, Traffic[] Held, Traffic[] Evicted)
{
    public static UnconfirmedTraffic None(int slots) => new(0, new Traffic[slots], new Traffic[slots]);

    public Traffic EvictedSum => Sum(Evicted);

    public Traffic HeldSum => Sum(Held);

    private static Traffic Sum(Traffic[] slots)
    {
        Traffic sum = default;
        foreach (var t in slots) sum += t;
        return sum;
    }
}
