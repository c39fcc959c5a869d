using Xunit;
using SiaExporter.Counters;
using SiaExporter.Storage;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

/// <summary>The delta accounting alone, without SQLite: baselines in, per-bucket deltas out.</summary>
public sealed class HistoryLedgerTests
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 10, 14, 0, 30, TimeSpan.Zero);
    private static readonly long B0 = Buckets.Of(T0);
    private static readonly long B1 = B0 + Buckets.Seconds;

    // slot index: 9981 down=0 up=1, 9984/tcp down=2 up=3, 9984/udp down=4 up=5 (packets: bytes / 100)
    private static ulong[] Slots(ulong d9981, ulong u9981, ulong d9984, ulong u9984) => [d9981, u9981, d9984, u9984, 0, 0];

    private static ulong[] Bytes(HistoryLedger ledger, long bucket, string ip)
    {
        var pending = ledger.Pending.Single(p => p.Key == bucket).Value;
        return pending.Clients.TryGetValue(ip, out var row) ? row.Select(t => t.Bytes).ToArray() : [];
    }

    [Fact]
    public void The_first_snapshot_is_all_delta_then_only_the_growth()
    {
        var ledger = new HistoryLedger(Ports);
        Assert.Equal(1, ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))), B0));
        Assert.Equal([0UL, 0, 100, 1000, 0, 0], Bytes(ledger, B0, "10.0.0.1"));
        Assert.True(ledger.RewriteBaseline); // first generation: the whole baseline goes out
        ledger.Committed();
        Assert.Equal(0, ledger.PendingBuckets);
        Assert.False(ledger.RewriteBaseline);

        Assert.Equal(1, ledger.Accumulate(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 150, 1000))), B0));
        Assert.Equal([0UL, 0, 50, 0, 0, 0], Bytes(ledger, B0, "10.0.0.1"));
        Assert.Equal(["10.0.0.1"], ledger.ChangedBaseline().Select(r => r.Key).Where(k => k != HistorySchema.OverflowClient && k != HistorySchema.TotalsKey));
        Assert.Equal(150UL, ledger.ChangedBaseline().Single(r => r.Key == "10.0.0.1").Slots[2].Bytes);
    }

    [Fact]
    public void Uncommitted_deltas_stay_in_their_own_buckets_and_sum_exactly()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 0))), B0);
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(5), ("10.0.0.1", Slots(0, 0, 130, 0))), B1); // the write of B0 failed
        Assert.Equal(2, ledger.PendingBuckets);
        Assert.Equal(100UL, Bytes(ledger, B0, "10.0.0.1")[2]);
        Assert.Equal(30UL, Bytes(ledger, B1, "10.0.0.1")[2]);
        Assert.Equal(130L, ledger.Pending.Sum(p => (long)p.Value.Host[2].Bytes));
    }

    [Fact]
    public void A_client_gone_from_the_map_loses_its_baseline_and_comes_back_from_zero()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 0)), ("10.0.0.2", Slots(1, 0, 0, 0))), B0);
        ledger.Committed();
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.2", Slots(1, 0, 0, 0))), B0);
        Assert.Equal(["10.0.0.1"], ledger.DeletedBaselines);
        Assert.Equal(1, ledger.TrackedClients);
        ledger.Committed();
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 7, 0)), ("10.0.0.2", Slots(1, 0, 0, 0))), B0);
        Assert.Equal(7UL, Bytes(ledger, B0, "10.0.0.1")[2]);
    }

    [Fact]
    public void Up_taken_off_for_a_qdisc_drop_after_a_flush_holds_and_only_growth_past_it_counts()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))), B0);
        ledger.Committed();
        // The kernel took 40 dropped bytes off up after the flush (as a restarted daemon reads it too).
        Assert.Equal(0, ledger.Accumulate(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 100, 960))), B0));
        Assert.Empty(Bytes(ledger, B0, "10.0.0.1"));
        Assert.True(ledger.Pending.Single().Value.Host.All(t => t.IsZero));
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 110, 1010))), B0);
        Assert.Equal([0UL, 0, 10, 10, 0, 0], Bytes(ledger, B0, "10.0.0.1"));
        Assert.Equal(new Traffic(10, 0), ledger.Pending.Single().Value.Host[3]); // the host total held too
    }

    [Fact]
    public void A_down_lane_that_went_lower_is_an_entry_created_again_and_counts_whole()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))), B0);
        ledger.Committed();
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 30, 1200))), B0);
        Assert.Equal([0UL, 0, 30, 1200, 0, 0], Bytes(ledger, B0, "10.0.0.1"));
    }

    [Fact]
    public void An_entry_without_down_traffic_that_went_lower_is_created_again_and_counts_whole()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 0, 1000))), B0);
        ledger.Committed();
        // Nothing tells a qdisc dip from a new entry without down traffic: it is a new entry, as before.
        ledger.Accumulate(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 0, 300))), B0);
        Assert.Equal([0UL, 0, 0, 300, 0, 0], Bytes(ledger, B0, "10.0.0.1"));
    }

    [Fact]
    public void A_new_map_generation_counts_from_zero_and_rewrites_the_baseline()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 0))), B0);
        ledger.Committed();
        ledger.Accumulate(Snap(Gen2, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 40, 0))), B0);
        Assert.Equal(Gen2, ledger.Generation);
        Assert.True(ledger.RewriteBaseline);
        Assert.Equal(40UL, Bytes(ledger, B0, "10.0.0.1")[2]);
        Assert.Equal(["10.0.0.1", HistorySchema.OverflowClient, HistorySchema.TotalsKey], ledger.WholeBaseline().Select(r => r.Key));
    }

    [Fact]
    public void Overflow_and_host_totals_are_accounted_beside_the_clients()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, [0, 0, 900, 400, 0, 0], ("10.0.0.1", Slots(0, 0, 100, 0))), B0);
        Assert.Equal([0UL, 0, 900, 400, 0, 0], Bytes(ledger, B0, HistorySchema.OverflowClient));
        var host = ledger.Pending.Single().Value.Host;
        Assert.Equal(new Traffic(1000, 10), host[2]); // the kernel's host total: overflow plus clients
        Assert.True(ledger.AggregatesChanged);
    }

    [Fact]
    public void An_evicted_client_adds_its_final_values_minus_the_baseline_and_drops_the_baseline()
    {
        var ledger = new HistoryLedger(Ports);
        ledger.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))), B0);
        ledger.Committed();
        var final = new Traffic[Ports.SlotCount];
        final[2] = new Traffic(120, 2);
        final[3] = new Traffic(1000, 10);
        ledger.AddEvicted([new EvictedClient(ClientAddress.Parse("10.0.0.1"), final)], B1);
        Assert.Equal([0UL, 0, 20, 0, 0, 0], Bytes(ledger, B1, "10.0.0.1"));
        Assert.Equal(new Traffic(20, 1), ledger.Pending.Single().Value.Clients["10.0.0.1"][2]);
        Assert.Equal(["10.0.0.1"], ledger.DeletedBaselines);
        Assert.Equal(0, ledger.TrackedClients);
    }

    [Fact]
    public void A_restored_baseline_counts_nothing_twice_unless_the_ports_differ()
    {
        var stored = new[] { ("10.0.0.1", SlotCodec.Encode([default, default, new Traffic(100, 1), default, default, default])) };
        var same = new HistoryLedger(Ports);
        same.Restore(Gen1.ToString(), Ports.ToString(), () => stored);
        Assert.Equal(1, same.TrackedClients);
        same.Accumulate(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 130, 0))), B0);
        Assert.Equal(30UL, Bytes(same, B0, "10.0.0.1")[2]);
        Assert.False(same.RewriteBaseline);

        var other = new HistoryLedger(Ports);
        other.Restore(Gen1.ToString(), "9981/tcp", () => stored);
        Assert.Equal(0, other.TrackedClients);
        Assert.Null(other.Generation);

        var unreadable = new HistoryLedger(Ports);
        unreadable.Restore("not a generation", Ports.ToString(), () => stored);
        Assert.Null(unreadable.Generation);
    }

    [Fact]
    public void Slot_codec_round_trips_and_rejects_another_slot_count()
    {
        Traffic[] slots = [new(1, 2), new(ulong.MaxValue, 3), default, default, default, new(5, 6)];
        Assert.Equal(slots, SlotCodec.Decode(SlotCodec.Encode(slots), 6));
        Assert.Null(SlotCodec.Decode(SlotCodec.Encode(slots), 4));
    }
}
