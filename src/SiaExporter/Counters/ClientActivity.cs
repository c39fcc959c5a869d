namespace SiaExporter.Counters;

/// <summary>
/// Remembers when each client's counters last changed, from successive snapshots, so idle
/// clients can be dropped from /metrics and evicted from the kernel map. Costs nothing in the
/// kernel (no timestamps per packet). After a daemon restart every client counts as active
/// from the first snapshot on. Not thread-safe: one owner calls <see cref="Observe"/>.
/// </summary>
public sealed class ClientActivity
{
    private readonly Dictionary<ClientAddress, (ulong Bytes, DateTimeOffset Changed)> _seen = new();

    public int Count => _seen.Count;

    /// <summary>Records a snapshot; clients gone from it are forgotten.</summary>
    public void Observe(CounterSnapshot snapshot)
    {
        var present = new HashSet<ClientAddress>(snapshot.Clients.Length);
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var client = snapshot.Clients[i];
            present.Add(client);
            ulong bytes = 0;
            foreach (var slot in snapshot.SlotsOf(i)) bytes += slot.Bytes + slot.Packets;
            if (!_seen.TryGetValue(client, out var last) || last.Bytes != bytes)
                _seen[client] = (bytes, snapshot.TakenAt);
        }
        if (present.Count != _seen.Count)
            foreach (var gone in _seen.Keys.Where(k => !present.Contains(k)).ToList())
                _seen.Remove(gone);
    }

    /// <summary>When the client's counters last changed, if it is known.</summary>
    public DateTimeOffset? LastChanged(ClientAddress client) =>
        _seen.TryGetValue(client, out var s) ? s.Changed : null;

    /// <summary>Clients whose counters have not changed since <paramref name="before"/>.</summary>
    public IReadOnlyList<ClientAddress> IdleSince(DateTimeOffset before) =>
        _seen.Where(kv => kv.Value.Changed < before).Select(kv => kv.Key).ToList();

    public void Forget(ClientAddress client) => _seen.Remove(client);
}
