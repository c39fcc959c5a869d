using SiaExporter.Counters;

namespace SiaExporter.Web;

/// <summary>
/// ANONYMIZE for every reader at once: clients are merged into their prefix (203.0.113.57 →
/// 203.0.113.0 for /24) before any snapshot leaves the kernel layer, so /metrics, SQLite, the API
/// push and the live log never see a full address. Slots are summed, so per-prefix values are
/// exact and host totals do not change. Eviction of a prefix evicts every member address seen in
/// the last read. Thread-safe through <see cref="SnapshotSource"/>, which serializes calls.
/// </summary>
public sealed class AnonymizedCounterSource(ICounterSource inner, ClientPrefix prefix) : ICounterSource
{
    private Dictionary<ClientAddress, List<ClientAddress>> _members = new();

    public ClientPrefix Prefix => prefix;

    public CounterSnapshot Read()
    {
        var raw = inner.Read();
        var slots = raw.SlotCount;
        var index = new Dictionary<ClientAddress, int>(raw.Clients.Length);
        var members = new Dictionary<ClientAddress, List<ClientAddress>>(raw.Clients.Length);
        var clients = new List<ClientAddress>(raw.Clients.Length);
        var values = new List<Traffic>(raw.ClientSlots.Length);
        for (var i = 0; i < raw.Clients.Length; i++)
        {
            var masked = prefix.Mask(raw.Clients[i]);
            if (!index.TryGetValue(masked, out var at))
            {
                at = clients.Count;
                index.Add(masked, at);
                members.Add(masked, []);
                clients.Add(masked);
                for (var s = 0; s < slots; s++) values.Add(Traffic.Zero);
            }
            members[masked].Add(raw.Clients[i]);
            var own = raw.SlotsOf(i);
            for (var s = 0; s < slots; s++) values[at * slots + s] += own[s];
        }
        _members = members;
        return new CounterSnapshot(raw.Classes, raw.Generation, raw.TakenAt, [.. clients], [.. values], raw.Totals, raw.Overflow) { Unconfirmed = raw.Unconfirmed };
    }

    public IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients)
    {
        var byPrefix = new Dictionary<ClientAddress, ClientAddress>();
        foreach (var masked in clients)
            if (_members.TryGetValue(masked, out var list))
                foreach (var member in list) byPrefix[member] = masked;
        var evicted = inner.Evict(byPrefix.Keys);
        return evicted
            .GroupBy(e => byPrefix[e.Client])
            .Select(g =>
            {
                var sum = new Traffic[g.First().FinalSlots.Length];
                foreach (var e in g)
                    for (var s = 0; s < sum.Length; s++) sum[s] += e.FinalSlots[s];
                return new EvictedClient(g.Key, sum);
            })
            .ToList();
    }
}
