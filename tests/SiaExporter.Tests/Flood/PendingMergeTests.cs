using SiaExporter.Counters;
using Xunit;

namespace SiaExporter.Tests.Flood;

/// <summary>How the reader combines `clients` and `pending` (PendingMerge): confirmed clients get
/// their pending slots, the rest is unconfirmed, and a client's values never go down between reads
/// although a kernel move between the two map reads hides bytes from one read.</summary>
public sealed class PendingMergeTests
{
    private const int Slots = 2;
    private static readonly MapGeneration Generation = new("boot", 1);
    private static readonly ClientAddress A = ClientAddress.Parse("198.51.100.1");
    private static readonly ClientAddress B = ClientAddress.Parse("2001:db8::b");
    private static readonly ClientAddress Spoofed = ClientAddress.Parse("203.0.113.9");

    private static Traffic[] T(ulong bytes0, ulong bytes1) => [new(bytes0, bytes0 == 0 ? 0UL : 1), new(bytes1, bytes1 == 0 ? 0UL : 1)];

    [Fact]
    public void Pending_slots_of_confirmed_clients_are_added_to_them_and_the_rest_is_unconfirmed()
    {
        var merge = new PendingMerge(Slots);
        ClientAddress[] clients = [A, B];
        var values = new[] { T(100, 0), T(0, 50) }.SelectMany(x => x).ToArray();
        PendingSlot[] pending = [new(A, T(10, 0)), new(A, T(0, 5)), new(Spoofed, T(7, 0)), new(Spoofed, T(3, 0))];

        var unconfirmed = merge.Merge(Generation, clients, values, pending, T(1000, 0));

        Assert.Equal(new Traffic(110, 2), values[0]);
        Assert.Equal(new Traffic(5, 1), values[1]);
        Assert.Equal(T(0, 50), values[2..]);
        Assert.Equal(2, unconfirmed.Sources);
        Assert.Equal(new Traffic(10, 2), unconfirmed.Held[0]);
        Assert.Equal(new Traffic(1000, 1), unconfirmed.EvictedSum);
    }

    [Fact]
    public void A_move_missed_between_the_two_map_reads_does_not_make_a_client_go_down()
    {
        var merge = new PendingMerge(Slots);
        var first = T(100, 0);
        merge.Merge(Generation, [A], first, [new PendingSlot(A, T(40, 0))], T(0, 0));
        Assert.Equal(140UL, first[0].Bytes);

        // The kernel moved the 40 pending bytes into the entry after `clients` was read and before
        // `pending` was: this read sees neither.
        var second = T(100, 0);
        merge.Merge(Generation, [A], second, [], T(0, 0));
        Assert.Equal(140UL, second[0].Bytes);

        // The next read sees the moved bytes in the entry, and new growth.
        var third = T(150, 0);
        merge.Merge(Generation, [A], third, [], T(0, 0));
        Assert.Equal(150UL, third[0].Bytes);
    }

    [Fact]
    public void An_evicted_client_ends_with_its_released_pending_slots_and_never_below_what_it_showed()
    {
        var merge = new PendingMerge(Slots);
        var shown = T(100, 0);
        merge.Merge(Generation, [A], shown, [new PendingSlot(A, T(40, 0))], T(0, 0));

        var final = merge.Final(A, T(100, 0), [new PendingSlot(A, T(40, 0))]);
        Assert.Equal(140UL, final[0].Bytes);
        // Had the slot been folded into the entry already, the entry holds it: same final value.
        var merge2 = new PendingMerge(Slots);
        merge2.Merge(Generation, [A], T(100, 0), [new PendingSlot(A, T(40, 0))], T(0, 0));
        Assert.Equal(140UL, merge2.Final(A, T(140, 0), [])[0].Bytes);
        // A missed move (neither in the deleted entry nor released) cannot lower it either.
        var merge3 = new PendingMerge(Slots);
        merge3.Merge(Generation, [A], T(100, 0), [new PendingSlot(A, T(40, 0))], T(0, 0));
        Assert.Equal(140UL, merge3.Final(A, T(100, 0), [])[0].Bytes);
    }

    [Fact]
    public void A_qdisc_drop_taken_off_after_a_read_showed_it_holds_the_client_until_it_grows_past()
    {
        var merge = new PendingMerge(Slots);
        merge.Merge(Generation, [A], T(0, 1000), [], T(0, 0));
        var dipped = T(0, 960); // 40 bytes the qdisc dropped after the read, taken off
        merge.Merge(Generation, [A], dipped, [], T(0, 0));
        Assert.Equal(1000UL, dipped[1].Bytes);
        var grown = T(0, 1010);
        merge.Merge(Generation, [A], grown, [], T(0, 0));
        Assert.Equal(1010UL, grown[1].Bytes);
    }

    [Fact]
    public void A_sum_below_zero_from_a_drop_read_before_its_count_shows_the_floor_not_a_wrapped_value()
    {
        var merge = new PendingMerge(Slots);
        // One CPU's count not read yet, another CPU's drop read: the per-CPU sum wraps below zero.
        Traffic[] wrapped = [Traffic.Zero, new(unchecked(0UL - 1514), unchecked(0UL - 1))];
        merge.Merge(Generation, [A], wrapped, [], T(0, 0));
        Assert.Equal(Traffic.Zero, wrapped[1]);
        var unconfirmed = merge.Merge(Generation, [B], T(0, 0), [new PendingSlot(Spoofed, [Traffic.Zero, new(unchecked(0UL - 100), unchecked(0UL - 1))])], T(0, 0));
        Assert.Equal(Traffic.Zero, unconfirmed.Held[1]);
    }

    [Fact]
    public void A_new_map_generation_forgets_what_clients_showed()
    {
        var merge = new PendingMerge(Slots);
        merge.Merge(Generation, [A], T(100, 0), [new PendingSlot(A, T(40, 0))], T(0, 0));
        var fresh = T(5, 0);
        merge.Merge(new MapGeneration("boot", 2), [A], fresh, [], T(0, 0));
        Assert.Equal(5UL, fresh[0].Bytes);
    }
}
