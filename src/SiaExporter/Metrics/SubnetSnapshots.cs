using SiaExporter.Counters;
using SiaExporter.Web;

namespace SiaExporter.Metrics;

/// <summary>
/// Turns each client snapshot into a subnet snapshot (clients summed per /24 and /48, or
/// SUBNET_PREFIX) whose entries behave like the kernel's client entries, so the same
/// <see cref="PublicationEngine"/> publishes them: a subnet's value only grows while it has
/// clients in the map. A client entry that goes away (evicted) or restarts lower (evicted and
/// recreated between two scrapes) leaves its last value in its subnet, so the other clients of
/// the subnet do not make it go down. A subnet with no client left in the map is gone, like an
/// evicted client; when it comes back it starts from zero. Not thread-safe: the traffic collector
/// calls it under its lock, once per new snapshot.
/// </summary>
internal sealed class SubnetSnapshots(ClientPrefix prefix)
{
    private Dictionary<ClientAddress, Traffic[]> _lastByClient = new();
    private Dictionary<ClientAddress, Traffic[]> _retired = new();
    private MapGeneration? _generation;

    /// <summary>The prefix each client is summed into.</summary>
    public ClientPrefix Prefix => prefix;

    public CounterSnapshot From(CounterSnapshot clients)
    {
        var slots = clients.SlotCount;
        if (_generation != clients.Generation)
        {
            // New maps: every entry restarted from zero; so do the subnets.
            _lastByClient = new();
            _retired = new();
            _generation = clients.Generation;
        }

        var index = new Dictionary<ClientAddress, int>();
        var subnets = new List<ClientAddress>();
        var values = new List<Traffic>();
        var seen = new Dictionary<ClientAddress, Traffic[]>(clients.Clients.Length);
        for (var i = 0; i < clients.Clients.Length; i++)
        {
            var client = clients.Clients[i];
            var subnet = prefix.Mask(client);
            if (!index.TryGetValue(subnet, out var at))
            {
                at = subnets.Count;
                index.Add(subnet, at);
                subnets.Add(subnet);
                for (var s = 0; s < slots; s++) values.Add(Traffic.Zero);
            }
            var now = clients.SlotsOf(i).ToArray();
            if (_lastByClient.TryGetValue(client, out var before) && WentDown(before, now)) Retire(subnet, before);
            seen[client] = now;
            for (var s = 0; s < slots; s++) values[at * slots + s] += now[s];
        }
        foreach (var (client, before) in _lastByClient)
            if (!seen.ContainsKey(client)) Retire(prefix.Mask(client), before);
        _lastByClient = seen;

        // What left keeps counting for a subnet that is still there; a subnet with no client left is gone.
        var retired = new Dictionary<ClientAddress, Traffic[]>();
        foreach (var (subnet, sum) in _retired)
        {
            if (!index.TryGetValue(subnet, out var at)) continue;
            retired.Add(subnet, sum);
            for (var s = 0; s < slots; s++) values[at * slots + s] += sum[s];
        }
        _retired = retired;
        return new CounterSnapshot(clients.Classes, clients.Generation, clients.TakenAt, [.. subnets], [.. values], clients.Totals, clients.Overflow);
    }

    private void Retire(ClientAddress subnet, Traffic[] last)
    {
        if (!_retired.TryGetValue(subnet, out var sum)) _retired[subnet] = sum = new Traffic[last.Length];
        for (var s = 0; s < last.Length; s++) sum[s] += last[s];
    }

    private static bool WentDown(Traffic[] before, Traffic[] now)
    {
        for (var s = 0; s < before.Length; s++)
            if (now[s].Bytes < before[s].Bytes || now[s].Packets < before[s].Packets) return true;
        return false;
    }
}
