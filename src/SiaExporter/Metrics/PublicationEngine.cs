using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// Turns one snapshot into the next <see cref="PublicationState"/>. The rules that keep /metrics
/// truthful:
/// <list type="bullet">
/// <item>The host series grow by the growth of the kernel's total counter (exact totals).</item>
/// <item>A published client's series grow by the growth of its kernel entry; an entry that went
/// down was evicted and recreated, so all of its new value is growth. When first published its
/// series start at its whole value if that traffic is new since the last scrape, else at zero.</item>
/// <item><c>other</c> is the rest: host growth minus the published clients' growth, plus the whole
/// value of a client that stops being published. So <c>other + Σ clients == host</c> exactly, and
/// nothing goes down.</item>
/// </list>
/// <para><b>Who gets a series (top-N rule).</b> Clients are ranked by the bytes their kernel entry
/// holds (all classes and directions; cumulative since the entry was created, and entries of idle
/// clients are evicted, so this is "traffic of the current activity period"). Idle clients (no
/// change for the idle timeout) are never eligible and published ones are dropped. Free places go
/// to the highest ranked. When all N places are taken, an outsider replaces the weakest member only
/// if it holds more than 1.25 × the member's bytes: that hysteresis keeps two clients of similar
/// size from swapping places at every scrape (each swap restarts a series at zero).</para>
/// </summary>
internal static class PublicationEngine
{
    /// <summary>An outsider must exceed a member's bytes by this fraction (1/4) to take its place.</summary>
    public const int HysteresisDivisor = 4;

    public static ulong Lane(ReadOnlySpan<Traffic> slots, int lane)
    {
        var t = slots[lane >> 1];
        return (lane & 1) == 0 ? t.Bytes : t.Packets;
    }

    /// <summary>True when <paramref name="challenger"/> exceeds <paramref name="member"/> by more than a quarter.</summary>
    public static bool Displaces(ulong challenger, ulong member) =>
        challenger > member && challenger - member > member / HysteresisDivisor;

    /// <summary>
    /// The state after <paramref name="snapshot"/>. <paramref name="entriesRestartOnDrop"/>: a kernel
    /// client entry that went down was evicted and recreated, so all of its value is new; a subnet
    /// (false) that went down lost a member, and its other members' traffic is not new.
    /// <paramref name="allowStructural"/> false means
    /// the new state must be restorable from the last persisted one (the state file could not be
    /// written): no client joins or leaves, no restarted entry or new map generation is taken in;
    /// values only grow. <paramref name="activity"/> must have observed the snapshot already.
    /// <paramref name="growthIsSinceLastServed"/> false (first scrape after a restore) keeps new
    /// clients' series at zero, since part of the growth was already served as <c>other</c>.
    /// </summary>
    public static (PublicationState State, bool Structural) Advance(
        PublicationState previous,
        CounterSnapshot snapshot,
        ClientActivity activity,
        int topClients,
        TimeSpan idleTimeout,
        bool allowStructural,
        bool growthIsSinceLastServed = true,
        bool entriesRestartOnDrop = true)
    {
        var lanes = previous.Lanes;
        if (lanes != PublicationState.LanesFor(snapshot.Classes))
            throw new InvalidOperationException("the snapshot's port classes differ from the published ones");
        var state = previous.Clone();
        var structural = false;
        var now = snapshot.TakenAt;
        var idleBefore = idleTimeout == TimeSpan.MaxValue ? DateTimeOffset.MinValue : now - idleTimeout;

        if (state.Empty)
        {
            state.Generation = snapshot.Generation;
            state.Empty = false;
        }
        else if (state.Generation != snapshot.Generation)
        {
            // The maps were recreated under a running daemon: every kernel counter restarted at
            // zero. Carry on from the published values so that nothing goes down.
            if (!allowStructural) return (previous, false);
            structural = true;
            state.Generation = snapshot.Generation;
            Array.Clear(state.HostKernel);
            state.OverflowKernel = 0;
            foreach (var member in state.Clients.Values)
            {
                Array.Clear(member.Kernel);
                Array.Clear(member.Pending);
            }
        }

        // Host totals. Within one generation the kernel total never goes down; a lower value can
        // only be a stale read, which is ignored.
        var totals = snapshot.Totals.AsSpan();
        Span<ulong> hostGrowth = stackalloc ulong[lanes];
        for (var l = 0; l < lanes; l++)
        {
            var t = Lane(totals, l);
            if (t > state.HostKernel[l])
            {
                hostGrowth[l] = t - state.HostKernel[l];
                state.HostKernel[l] = t;
                state.HostPublished[l] += hostGrowth[l];
            }
        }
        var overflow = snapshot.OverflowPackets;
        if (overflow > state.OverflowKernel)
        {
            state.OverflowPublished += overflow - state.OverflowKernel;
            state.OverflowKernel = overflow;
        }

        // Published clients: growth of their entries goes to Pending first.
        foreach (var member in state.Clients.Values)
        {
            var index = activity.IndexOf(member.Address);
            if (index < 0)
            {
                // Evicted: a comeback starts from zero in a new entry, so forget the old value.
                if (allowStructural && member.Kernel.AsSpan().ContainsAnyExcept(0UL))
                {
                    Array.Clear(member.Kernel);
                    structural = true;
                }
                continue;
            }
            var slots = snapshot.SlotsOf(index);
            // Up lanes also go lower when the kernel takes qdisc-dropped frames off them; those
            // hold. CounterGrowth tells the two apart.
            var restarted = entriesRestartOnDrop && CounterGrowth.Restarted(slots, member.Kernel);
            if (restarted && !allowStructural) continue; // frozen until the state can be written
            structural |= restarted;
            var changed = false;
            for (var l = 0; l < lanes; l++)
            {
                var k = Lane(slots, l);
                // An entry that does not restart on a drop (a subnet losing a member) is re-based:
                // a lane that went down grows by nothing this time.
                var growth = restarted ? k : k > member.Kernel[l] ? k - member.Kernel[l] : 0;
                member.Kernel[l] = restarted || !entriesRestartOnDrop ? k : Math.Max(k, member.Kernel[l]);
                member.Pending[l] += growth;
                changed |= growth != 0;
            }
            if (changed || restarted) member.LastChanged = now;
        }

        // Share the host growth: clients first (all of it in a consistent read), the rest to other.
        Span<ulong> otherGrowth = stackalloc ulong[lanes];
        for (var l = 0; l < lanes; l++)
        {
            ulong owed = 0;
            foreach (var member in state.Clients.Values) owed += member.Pending[l];
            if (owed <= hostGrowth[l])
            {
                foreach (var member in state.Clients.Values)
                {
                    member.Published[l] += member.Pending[l];
                    member.Pending[l] = 0;
                }
                state.Other[l] += hostGrowth[l] - owed;
                if (growthIsSinceLastServed) otherGrowth[l] = hostGrowth[l] - owed;
            }
            else
            {
                var budget = hostGrowth[l];
                foreach (var member in state.Clients.Values)
                {
                    var give = Math.Min(member.Pending[l], budget);
                    member.Published[l] += give;
                    member.Pending[l] -= give;
                    budget -= give;
                }
            }
        }

        if (!allowStructural) return (state, false);

        // Idle clients leave /metrics.
        List<PublishedClient>? idle = null;
        foreach (var member in state.Clients.Values)
            if (member.LastChanged < idleBefore) (idle ??= []).Add(member);
        // A client whose series were removed in this scrape must not get new ones in the same
        // scrape: the series would be seen going from its value back to zero.
        var left = new HashSet<ClientAddress>();
        if (idle is not null)
        {
            foreach (var member in idle) Demote(state, member, left);
            structural = true;
        }

        structural |= Rank(state, snapshot, activity, Math.Max(0, topClients), idleBefore, left, otherGrowth);
        return (state, structural);
    }

    private static bool Rank(PublicationState state, CounterSnapshot snapshot, ClientActivity activity, int top, DateTimeOffset idleBefore,
        HashSet<ClientAddress> left, Span<ulong> otherGrowth)
    {
        var changed = false;
        var members = state.Clients.Values.ToList();
        members.Sort(static (a, b) =>
        {
            var c = a.RankBytes.CompareTo(b.RankBytes);
            return c != 0 ? c : b.Address.CompareTo(a.Address);
        });
        var weakest = 0;
        while (state.Clients.Count > top) // METRICS_TOP_CLIENTS was lowered
        {
            Demote(state, members[weakest++], left);
            changed = true;
        }

        // Outsiders that could get a place: when every place is taken, only those that would
        // displace the weakest member (cheap filter before sorting 100,000 clients).
        var full = state.Clients.Count >= top;
        if (top == 0) return changed;
        var floor = full ? members[weakest].RankBytes : 0UL;
        var candidates = new List<(ulong Bytes, int Index)>();
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var bytes = snapshot.TotalBytesOf(i);
            if (bytes == 0 || (full && !Displaces(bytes, floor))) continue;
            var client = snapshot.Clients[i];
            if (state.Clients.ContainsKey(client) || left.Contains(client) || activity.IndexOf(client) != i) continue;
            if ((activity.LastChanged(client) ?? DateTimeOffset.MinValue) < idleBefore) continue;
            candidates.Add((bytes, i));
        }
        if (candidates.Count == 0) return changed;
        candidates.Sort((a, b) =>
        {
            var c = b.Bytes.CompareTo(a.Bytes);
            return c != 0 ? c : snapshot.Clients[a.Index].CompareTo(snapshot.Clients[b.Index]);
        });

        var next = 0;
        while (state.Clients.Count < top && next < candidates.Count)
        {
            Promote(state, snapshot, activity, candidates[next++].Index, otherGrowth);
            changed = true;
        }
        while (next < candidates.Count && weakest < members.Count && Displaces(candidates[next].Bytes, members[weakest].RankBytes))
        {
            Demote(state, members[weakest++], left);
            Promote(state, snapshot, activity, candidates[next++].Index, otherGrowth);
            changed = true;
        }
        return changed;
    }

    /// <summary>
    /// Gives the client its own series. When what <c>other</c> gained in this scrape covers the
    /// client's whole kernel entry (a client that appeared since the last scrape, or every client at
    /// the first scrape of a fresh start), its series start at that value, taken back from
    /// <c>other</c>: per-client series then show the client's real traffic and <c>other</c> still
    /// does not go down. Otherwise its earlier traffic was already shown in <c>other</c> and its
    /// series start at zero.
    /// </summary>
    private static void Promote(PublicationState state, CounterSnapshot snapshot, ClientActivity activity, int index, Span<ulong> otherGrowth)
    {
        var address = snapshot.Clients[index];
        var member = new PublishedClient(address, state.Lanes) { LastChanged = activity.LastChanged(address) ?? DateTimeOffset.MinValue };
        var slots = snapshot.SlotsOf(index);
        var covered = true;
        for (var l = 0; l < state.Lanes; l++)
        {
            member.Kernel[l] = Lane(slots, l);
            covered &= member.Kernel[l] <= otherGrowth[l];
        }
        if (covered)
        {
            for (var l = 0; l < state.Lanes; l++)
            {
                member.Published[l] = member.Kernel[l];
                state.Other[l] -= member.Kernel[l];
                otherGrowth[l] -= member.Kernel[l];
            }
        }
        state.Clients.Add(address, member);
    }

    /// <summary>The client's series go away; what they showed moves to other, which so only grows.</summary>
    private static void Demote(PublicationState state, PublishedClient member, HashSet<ClientAddress> left)
    {
        left.Add(member.Address);
        for (var l = 0; l < state.Lanes; l++) state.Other[l] += member.Published[l];
        state.Clients.Remove(member.Address);
    }
}
