namespace SiaExporter.Counters;

/// <summary>
/// Every kernel counter at one moment, summed over CPUs: the only thing metrics, SQLite and the
/// live log read. Client values are flattened: slot s of client i is at i * SlotCount + s.
/// Immutable once built.
/// </summary>
public sealed class CounterSnapshot
{
    public CounterSnapshot(
        PortClassSet classes,
        MapGeneration generation,
        DateTimeOffset takenAt,
        ClientAddress[] clients,
        Traffic[] clientSlots,
        Traffic[] totals,
        Traffic[] overflow)
    {
        if (clientSlots.Length != clients.Length * classes.SlotCount)
            throw new ArgumentException("client slots do not match clients × slots", nameof(clientSlots));
        if (totals.Length != classes.SlotCount || overflow.Length != classes.SlotCount)
            throw new ArgumentException("aggregate slots do not match the port classes");
        Classes = classes;
        Generation = generation;
        TakenAt = takenAt;
        Clients = clients;
        ClientSlots = clientSlots;
        Totals = totals;
        Overflow = overflow;
    }

    public PortClassSet Classes { get; }

    /// <summary>Which incarnation of the pinned maps was read; counters restart from zero
    /// when it changes (reboot, layout migration).</summary>
    public MapGeneration Generation { get; }

    public DateTimeOffset TakenAt { get; }

    public ClientAddress[] Clients { get; }

    public Traffic[] ClientSlots { get; }

    /// <summary>Exact host totals per slot, from the kernel's own total counter: every counted
    /// frame, whether its client is in the map, overflowed, or was evicted.</summary>
    public Traffic[] Totals { get; }

    /// <summary>Traffic of clients that found the map full, per slot.</summary>
    public Traffic[] Overflow { get; }

    /// <summary>Traffic of sources without an entry because they never proved they are real
    /// (bpf/clients.h); part of <see cref="Totals"/>, never of <see cref="Clients"/>.</summary>
    public UnconfirmedTraffic Unconfirmed
    {
        get => _unconfirmed ??= UnconfirmedTraffic.None(SlotCount);
        init => _unconfirmed = value;
    }

    private UnconfirmedTraffic? _unconfirmed;

    public int SlotCount => Classes.SlotCount;

    public ReadOnlySpan<Traffic> SlotsOf(int clientIndex) =>
        ClientSlots.AsSpan(clientIndex * SlotCount, SlotCount);

    public Traffic Get(int clientIndex, int slot) => ClientSlots[clientIndex * SlotCount + slot];

    /// <summary>All bytes of one client over every slot (for ranking).</summary>
    public ulong TotalBytesOf(int clientIndex)
    {
        ulong sum = 0;
        foreach (var t in SlotsOf(clientIndex)) sum += t.Bytes;
        return sum;
    }

    public ulong OverflowPackets
    {
        get
        {
            ulong sum = 0;
            foreach (var t in Overflow) sum += t.Packets;
            return sum;
        }
    }
}

/// <summary>Identity of one incarnation of the pinned counter maps: the boot and the kernel's
/// map id. Map ids restart after a reboot, so the boot id is part of it.</summary>
public readonly record struct MapGeneration(string BootId, uint MapId)
{
    public override string ToString() => $"{BootId}/{MapId}";

    public static MapGeneration Parse(string text)
    {
        var slash = text.LastIndexOf('/');
        if (slash <= 0 || !uint.TryParse(text.AsSpan(slash + 1), out var id))
            throw new FormatException($"'{text}' is not a map generation");
        return new MapGeneration(text[..slash], id);
    }
}
