namespace SiaExporter.Counters;

/// <summary>The kernel counters, as the rest of the daemon sees them.</summary>
public interface ICounterSource
{
    /// <summary>One read of every map (batched), summed over CPUs.</summary>
    CounterSnapshot Read();

    /// <summary>
    /// Deletes idle clients from the kernel map and returns each one's final per-slot values
    /// (read and deleted in one step, so traffic counted after the last <see cref="Read"/> is in
    /// them). A client that is not in the map is left out of the result. If a deleted client
    /// sends again, its counters restart from zero in a new entry.
    /// </summary>
    IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients);
}

/// <summary>A client removed from the kernel map, with its last values (one per slot).</summary>
public sealed record EvictedClient(ClientAddress Client, Traffic[] FinalSlots);
