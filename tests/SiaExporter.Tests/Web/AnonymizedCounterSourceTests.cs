using SiaExporter.Counters;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

public class AnonymizedCounterSourceTests
{
    private sealed class FakeCounters : ICounterSource
    {
        public Dictionary<ClientAddress, Traffic[]> Clients { get; } = new();
        public List<ClientAddress> Evicted { get; } = [];

        public CounterSnapshot Read()
        {
            var classes = PortClassSet.DefaultSet;
            var clients = Clients.Keys.ToArray();
            var slots = clients.SelectMany(c => Clients[c]).ToArray();
            var totals = new Traffic[classes.SlotCount];
            foreach (var v in Clients.Values)
                for (var s = 0; s < totals.Length; s++) totals[s] += v[s];
            return new CounterSnapshot(classes, new MapGeneration("boot", 1), DateTimeOffset.UnixEpoch, clients, slots, totals, new Traffic[classes.SlotCount]);
        }

        public IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients)
        {
            Evicted.AddRange(clients);
            return clients.Where(Clients.ContainsKey).Select(c => new EvictedClient(c, Clients[c])).ToList();
        }
    }

    private static Traffic[] Slots(ulong bytes) => Enumerable.Range(0, 6).Select(s => new Traffic(bytes * (ulong)(s + 1), (ulong)s + 1)).ToArray();

    [Fact]
    public void Clients_of_one_prefix_are_summed_and_totals_do_not_change()
    {
        var fake = new FakeCounters();
        fake.Clients[ClientAddress.Parse("203.0.113.7")] = Slots(100);
        fake.Clients[ClientAddress.Parse("203.0.113.200")] = Slots(50);
        fake.Clients[ClientAddress.Parse("198.51.100.1")] = Slots(1);
        fake.Clients[ClientAddress.Parse("2001:db8:1:2::5")] = Slots(7);
        fake.Clients[ClientAddress.Parse("2001:db8:1:ffff::9")] = Slots(3);
        var source = new AnonymizedCounterSource(fake, ClientPrefix.Parse("/24,/48"));

        var snapshot = source.Read();

        Assert.Equal(["203.0.113.0", "198.51.100.0", "2001:db8:1::"], snapshot.Clients.Select(c => c.ToString()));
        Assert.Equal(new Traffic(150, 1 + 1), snapshot.Get(0, 0));
        Assert.Equal(new Traffic(6 * 10, 6 + 6), snapshot.Get(2, 5));
        for (var s = 0; s < snapshot.SlotCount; s++)
        {
            var sum = Traffic.Zero;
            for (var i = 0; i < snapshot.Clients.Length; i++) sum += snapshot.Get(i, s);
            Assert.Equal(snapshot.Totals[s], sum);
        }
    }

    [Fact]
    public void Evicting_a_prefix_evicts_every_member_and_sums_their_final_values()
    {
        var fake = new FakeCounters();
        fake.Clients[ClientAddress.Parse("203.0.113.7")] = Slots(100);
        fake.Clients[ClientAddress.Parse("203.0.113.8")] = Slots(10);
        fake.Clients[ClientAddress.Parse("192.0.2.1")] = Slots(1);
        var source = new AnonymizedCounterSource(fake, ClientPrefix.Parse("/24,/48"));
        source.Read();

        var evicted = source.Evict([ClientAddress.Parse("203.0.113.0")]);

        Assert.Equal(["203.0.113.7", "203.0.113.8"], fake.Evicted.Select(c => c.ToString()).Order());
        var only = Assert.Single(evicted);
        Assert.Equal("203.0.113.0", only.Client.ToString());
        Assert.Equal(new Traffic(110, 2), only.FinalSlots[0]);
    }
}
