using System.Runtime.InteropServices;

namespace SiaExporter.Counters;

/// <summary>
/// Remembers when each client's counters last changed, from successive snapshots, so idle
/// clients can be dropped from /metrics and evicted from the kernel map. Costs nothing in the
/// kernel (no timestamps per packet) and no allocation per snapshot (mark and sweep by epoch),
/// which matters at 100,000 clients. After a daemon restart every client counts as active from
/// the first snapshot on. Not thread-safe: one owner calls <see cref="Observe"/>.
/// </summary>
public sealed class ClientActivity
{
    private struct Entry
    {
        public ulong Sum;
        public DateTimeOffset Changed;
        public int Epoch;
        public int Index;
    }

    private readonly Dictionary<ClientAddress, Entry> _seen = new();
    private int _epoch;

    public int Count => _seen.Count;

    /// <summary>Records a snapshot at its own (wall) time; clients gone from it are forgotten.</summary>
    public void Observe(CounterSnapshot snapshot) => Observe(snapshot, snapshot.TakenAt);

    /// <summary>Records a snapshot as taken at <paramref name="at"/> on the caller's clock (a monotonic
    /// one for eviction, so a wall-clock step never makes every client look idle).</summary>
    public void Observe(CounterSnapshot snapshot, DateTimeOffset at)
    {
        _epoch++;
        var clients = snapshot.Clients;
        for (var i = 0; i < clients.Length; i++)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(_seen, clients[i], out var existed);
            if (existed && entry.Epoch == _epoch) continue; // a duplicate key in one read: keep the first
            ulong sum = 0;
            foreach (var slot in snapshot.SlotsOf(i)) sum += slot.Bytes + slot.Packets;
            if (!existed || entry.Sum != sum)
            {
                entry.Sum = sum;
                entry.Changed = at;
            }
            entry.Epoch = _epoch;
            entry.Index = i;
        }
        if (_seen.Count != clients.Length)
        {
            List<ClientAddress>? gone = null;
            foreach (var (address, entry) in _seen)
                if (entry.Epoch != _epoch) (gone ??= []).Add(address);
            if (gone is not null)
                foreach (var address in gone) _seen.Remove(address);
        }
    }

    /// <summary>The client's index in the last observed snapshot, or -1 when it is not in it.</summary>
    public int IndexOf(ClientAddress client) =>
        _seen.TryGetValue(client, out var entry) && entry.Epoch == _epoch ? entry.Index : -1;

    /// <summary>When the client's counters last changed, if it is known.</summary>
    public DateTimeOffset? LastChanged(ClientAddress client) =>
        _seen.TryGetValue(client, out var s) ? s.Changed : null;

    /// <summary>Clients whose counters have not changed since <paramref name="before"/>.</summary>
    public IReadOnlyList<ClientAddress> IdleSince(DateTimeOffset before) =>
        _seen.Where(kv => kv.Value.Changed < before).Select(kv => kv.Key).ToList();

    public void Forget(ClientAddress client) => _seen.Remove(client);

    public void Clear() => _seen.Clear();
}
