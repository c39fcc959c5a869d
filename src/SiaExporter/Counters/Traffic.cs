namespace SiaExporter.Counters;

/// <summary>Bytes and packets: one counter slot, summed over CPUs.</summary>
public readonly record struct Traffic(ulong Bytes, ulong Packets)
{
    public static readonly Traffic Zero = default;

    public bool IsZero => Bytes == 0 && Packets == 0;

    public static Traffic operator +(Traffic a, Traffic b) => new(a.Bytes + b.Bytes, a.Packets + b.Packets);

    /// <summary>Growth from <paramref name="earlier"/>; a counter that went down (the kernel map was
    /// recreated) counts from zero, so a delta is never negative.</summary>
    public Traffic Since(Traffic earlier) => new(
        Bytes >= earlier.Bytes ? Bytes - earlier.Bytes : Bytes,
        Packets >= earlier.Packets ? Packets - earlier.Packets : Packets);
}
