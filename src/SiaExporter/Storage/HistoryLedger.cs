using System.Buffers.Binary;
using SiaExporter.Counters;
using SiaExporter.Web;

namespace SiaExporter.Storage;

/// <summary>One counter_baseline row: a client (or <see cref="HistorySchema.OverflowClient"/>,
/// <see cref="HistorySchema.TotalsKey"/>) and the counter values already accounted for.</summary>
public readonly record struct BaselineRow(string Key, Traffic[] Slots);

/// <summary>Deltas of one bucket not yet in the database: per client_ip, and the host totals.</summary>
public sealed class PendingBucket(int slotCount)
{
    public Dictionary<string, Traffic[]> Clients { get; } = new(StringComparer.Ordinal);
    public Traffic[] Host { get; } = new Traffic[slotCount];

    public bool IsEmpty => Clients.Count == 0 && Array.TrueForAll(Host, t => t.IsZero);

    public Traffic[] Client(string ip, int slots)
    {
        if (!Clients.TryGetValue(ip, out var row)) Clients[ip] = row = new Traffic[slots];
        return row;
    }
}

/// <summary>
/// The delta accounting of the history, without a database: the counter values already accounted
/// for (the baseline) per client, and the deltas (current − baseline) waiting for the database,
/// per bucket. The store writes the pending deltas and the baseline changes in one transaction
/// and then calls <see cref="Committed"/>; until then everything stays here, so a failed write
/// loses nothing. Not thread-safe: <see cref="TrafficHistory"/> serializes the calls.
/// </summary>
public sealed class HistoryLedger
{
    private readonly int _slotCount;
    private readonly Dictionary<ClientAddress, ClientState> _clients = new();
    private Traffic[] _overflowBase;
    private Traffic[] _totalsBase;
    private int _epoch;

    private readonly SortedDictionary<long, PendingBucket> _pending = new();
    private readonly HashSet<ClientAddress> _baselineDirty = new();
    private readonly HashSet<string> _baselineDeleted = new(StringComparer.Ordinal);
    // Keys whose stored baseline was unreadable: their next value becomes the baseline, counted never.
    private readonly HashSet<string> _resync = new(StringComparer.Ordinal);

    // Client baselines stored under another ANONYMIZE mode, converted by the first snapshot.
    private Dictionary<ClientAddress, Traffic[]>? _legacy;
    private ClientPrefix _legacyMode;
    private string? _modeChange;

    public HistoryLedger(PortClassSet ports, ClientPrefix? mode = null)
    {
        Ports = ports;
        Mode = mode ?? ClientPrefix.None;
        _slotCount = ports.SlotCount;
        _overflowBase = new Traffic[_slotCount];
        _totalsBase = new Traffic[_slotCount];
    }

    public PortClassSet Ports { get; }

    /// <summary>The ANONYMIZE mode of the snapshots, and so of the baseline's keys.</summary>
    public ClientPrefix Mode { get; }

    /// <summary>collector_state's text of a mode: "" for none.</summary>
    public static string ModeText(ClientPrefix mode) => mode.IsNone ? "" : mode.ToString();

    /// <summary>What the last conversion of a stored baseline of another ANONYMIZE mode did (once), for the log.</summary>
    public string? TakeModeChange()
    {
        var change = _modeChange;
        _modeChange = null;
        return change;
    }

    /// <summary>The map generation the baseline belongs to (null: none yet).</summary>
    public MapGeneration? Generation { get; private set; }

    /// <summary>Clients with a baseline.</summary>
    public int TrackedClients => _clients.Count;

    /// <summary>Buckets with deltas not yet in the database.</summary>
    public int PendingBuckets => _pending.Count;

    /// <summary>Pending buckets that hold a delta (a flush with no change opens an empty one).</summary>
    public int HeldBuckets => _pending.Values.Count(p => !p.IsEmpty);

    /// <summary>The whole baseline must be rewritten (new map generation, or a recreated file).</summary>
    public bool RewriteBaseline { get; private set; }

    /// <summary>The overflow entry or the host totals moved since the last commit.</summary>
    public bool AggregatesChanged { get; private set; }

    /// <summary>The pending deltas, oldest bucket first.</summary>
    public IEnumerable<KeyValuePair<long, PendingBucket>> Pending => _pending;

    /// <summary>Baseline rows to delete (clients gone from the kernel map).</summary>
    public IReadOnlyCollection<string> DeletedBaselines => _baselineDeleted;

    /// <summary>
    /// Restores the baseline stored with <paramref name="generation"/> for <paramref name="ports"/>
    /// (the text of collector_state). A baseline of other port classes, or an unreadable
    /// generation, is not used: counting starts from zero, as after a map change. A row whose slots
    /// cannot be read (a hand-edited or corrupt value) is returned: that client's next value becomes
    /// its baseline without a delta, so it loses at most what it counted since the last flush and is
    /// never counted twice.
    /// </summary>
    /// <param name="mode">The ANONYMIZE mode the stored baseline is keyed by (collector_state; absent: none). When it is not
    /// <see cref="Mode"/>, the client baselines are kept aside and converted by the next snapshot (<see cref="ConvertMode"/>).</param>
    public IReadOnlyList<string> Restore(string? generation, string? ports, Func<IEnumerable<(string Key, byte[] Slots)>> rows, string? mode = null)
    {
        var unreadable = new List<string>();
        Generation = null;
        MapGeneration? stored = null;
        try
        {
            if (!string.IsNullOrEmpty(generation) && ports == Ports.ToString()) stored = MapGeneration.Parse(generation);
        }
        catch (FormatException)
        {
            // An unreadable state row: count from zero, as after a map change.
        }
        if (stored is null) return unreadable;
        foreach (var (key, bytes) in rows())
        {
            var slots = SlotCodec.Decode(bytes, _slotCount);
            if (slots is null)
            {
                unreadable.Add(key);
                _resync.Add(key);
                continue;
            }
            if (key == HistorySchema.OverflowClient) _overflowBase = slots;
            else if (key == HistorySchema.TotalsKey) _totalsBase = slots;
            else if (ClientAddress.TryParse(key, out var client)) _clients[client] = new ClientState(key, slots);
        }
        Generation = stored;
        var storedMode = string.IsNullOrEmpty(mode) ? ClientPrefix.None : ClientPrefix.TryParse(mode, out var m) ? m : ClientPrefix.None;
        if (storedMode != Mode)
        {
            _legacy = _clients.ToDictionary(kv => kv.Key, kv => kv.Value.Base);
            _legacyMode = storedMode;
            _clients.Clear();
            RewriteBaseline = true; // the whole baseline and its mode are written with the next commit
        }
        return unreadable;
    }

    /// <summary>The next commit writes the whole baseline (the database file was recreated).</summary>
    public void RewriteWholeBaseline() => RewriteBaseline = true;

    /// <summary>Adds the growth since the baseline to <paramref name="bucket"/> and moves the
    /// baseline; returns the clients (with overflow) whose counters moved. A snapshot of another
    /// map generation starts the baseline from zero.</summary>
    public int Accumulate(CounterSnapshot snapshot, long bucket)
    {
        if (Generation != snapshot.Generation)
        {
            _clients.Clear();
            _baselineDirty.Clear();
            _baselineDeleted.Clear();
            _overflowBase = new Traffic[_slotCount];
            _totalsBase = new Traffic[_slotCount];
            _resync.Clear();
            _legacy = null; // counting starts from zero anyway
            Generation = snapshot.Generation;
            RewriteBaseline = true;
        }
        var epoch = ++_epoch;
        var pending = PendingFor(bucket);
        var changed = 0;
        if (_legacy is not null) ConvertMode(snapshot, pending);
        var clients = snapshot.Clients;
        for (var i = 0; i < clients.Length; i++)
        {
            var slots = snapshot.SlotsOf(i);
            if (!_clients.TryGetValue(clients[i], out var state))
            {
                state = new ClientState(clients[i].ToString(), new Traffic[_slotCount]);
                _clients.Add(clients[i], state);
                if (_resync.Count > 0 && _resync.Remove(state.Ip)) slots.CopyTo(state.Base);
            }
            state.Seen = epoch;
            if (AddDelta(slots, state.Base, pending, state.Ip, CounterGrowth.Restarted(slots, state.Base)))
            {
                _baselineDirty.Add(clients[i]);
                changed++;
            }
        }
        // A client absent from a complete snapshot has no kernel entry any more: should it
        // come back, it starts from zero, so its baseline goes.
        if (_clients.Count > clients.Length)
            foreach (var (client, state) in _clients.Where(kv => kv.Value.Seen != epoch).ToList())
            {
                _clients.Remove(client);
                _baselineDirty.Remove(client);
                _baselineDeleted.Add(state.Ip);
            }
        if (_resync.Count > 0 && _resync.Remove(HistorySchema.OverflowClient))
        {
            snapshot.Overflow.CopyTo(_overflowBase);
            AggregatesChanged = true;
        }
        if (_resync.Count > 0 && _resync.Remove(HistorySchema.TotalsKey))
        {
            snapshot.Totals.CopyTo(_totalsBase);
            AggregatesChanged = true;
        }
        if (AddDelta(snapshot.Overflow, _overflowBase, pending, HistorySchema.OverflowClient, restarted: false))
        {
            AggregatesChanged = true;
            changed++;
        }
        for (var s = 0; s < _slotCount; s++)
        {
            var current = snapshot.Totals[s];
            if (current == _totalsBase[s]) continue;
            pending.Host[s] += CounterGrowth.Growth(current, _totalsBase[s], restarted: false);
            _totalsBase[s] = CounterGrowth.Next(current, _totalsBase[s], restarted: false);
            AggregatesChanged = true;
        }
        return changed;
    }

    /// <summary>
    /// The stored baseline was keyed by another ANONYMIZE mode: per address family, a finer stored mode
    /// is summed into the snapshot's coarser keys (exact: a prefix's value is the sum of its members');
    /// a coarser stored mode cannot be split, so each stored group's growth since the last flush is
    /// written once under the group's old key, and its members' baselines start at their current values.
    /// Nothing is counted twice and the sum over clients stays the host total.
    /// </summary>
    private void ConvertMode(CounterSnapshot snapshot, PendingBucket pending)
    {
        var legacy = _legacy!;
        _legacy = null;
        var groups = new Dictionary<ClientAddress, Traffic[]>();
        int merged = 0, split = 0;
        var clients = snapshot.Clients;
        for (var i = 0; i < clients.Length; i++)
        {
            var client = clients[i];
            if (_clients.ContainsKey(client)) continue;
            var current = snapshot.SlotsOf(i);
            var oldFiner = client.IsIPv4 ? _legacyMode.IPv4Bits > Mode.IPv4Bits : _legacyMode.IPv6Bits > Mode.IPv6Bits;
            var baseline = new Traffic[_slotCount];
            if (oldFiner || _legacyMode == Mode)
            {
                foreach (var (key, slots) in legacy)
                {
                    if (key.IsIPv4 != client.IsIPv4 || Mode.Mask(key) != client) continue;
                    for (var s = 0; s < _slotCount; s++) baseline[s] += slots[s];
                    merged++;
                }
            }
            else
            {
                var group = _legacyMode.Mask(client);
                if (!groups.TryGetValue(group, out var sum)) groups[group] = sum = new Traffic[_slotCount];
                for (var s = 0; s < _slotCount; s++) sum[s] += current[s];
                current.CopyTo(baseline);
            }
            _clients[client] = new ClientState(client.ToString(), baseline);
            _baselineDirty.Add(client);
        }
        foreach (var (group, sum) in groups)
        {
            var old = legacy.GetValueOrDefault(group) ?? new Traffic[_slotCount];
            Traffic[]? row = null;
            for (var s = 0; s < _slotCount; s++)
            {
                var d = sum[s].Since(old[s]);
                if (d.IsZero) continue;
                row ??= pending.Client(group.ToString(), _slotCount);
                row[s] += d;
            }
            split++;
        }
        _modeChange = $"ANONYMIZE changed from '{ModeText(_legacyMode)}' to '{ModeText(Mode)}': " +
            (merged > 0 ? $"{merged} stored baselines summed into the new prefixes (exact). " : "") +
            (split > 0 ? $"{split} stored prefixes cannot be split: what each counted since the last flush is written once under the prefix, and its members count from now. " : "") +
            "Nothing is counted twice; totals are unchanged.";
    }

    /// <summary>Clients deleted from the kernel map: their final values minus the baseline (what
    /// was counted since the last flush) go to <paramref name="bucket"/>, and their baselines go.</summary>
    public void AddEvicted(IReadOnlyList<EvictedClient> evicted, long bucket)
    {
        var pending = PendingFor(bucket);
        foreach (var e in evicted)
        {
            if (e.FinalSlots.Length != _slotCount) continue;
            var ip = e.Client.ToString();
            Traffic[] baseline = [];
            if (_clients.Remove(e.Client, out var state))
            {
                ip = state.Ip;
                baseline = state.Base;
                _baselineDirty.Remove(e.Client);
                _baselineDeleted.Add(ip);
            }
            Traffic[]? delta = null;
            var restarted = baseline.Length == 0 || CounterGrowth.Restarted(e.FinalSlots, baseline);
            for (var s = 0; s < _slotCount; s++)
            {
                var d = CounterGrowth.Growth(e.FinalSlots[s], baseline.Length > 0 ? baseline[s] : Traffic.Zero, restarted);
                if (d.IsZero) continue;
                delta ??= pending.Client(ip, _slotCount);
                delta[s] += d;
            }
        }
    }

    /// <summary>Every baseline row: clients, overflow, totals (for a rewrite).</summary>
    public IEnumerable<BaselineRow> WholeBaseline()
    {
        foreach (var state in _clients.Values) yield return new BaselineRow(state.Ip, state.Base);
        yield return new BaselineRow(HistorySchema.OverflowClient, _overflowBase);
        yield return new BaselineRow(HistorySchema.TotalsKey, _totalsBase);
    }

    /// <summary>Baseline rows that moved since the last commit, in key order (appends to the
    /// b-tree instead of random page writes), the aggregates last when they moved.</summary>
    public List<BaselineRow> ChangedBaseline()
    {
        var dirty = new List<BaselineRow>(_baselineDirty.Count + 2);
        foreach (var client in _baselineDirty)
            if (_clients.TryGetValue(client, out var state)) dirty.Add(new BaselineRow(state.Ip, state.Base));
        dirty.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        if (AggregatesChanged)
        {
            dirty.Add(new BaselineRow(HistorySchema.OverflowClient, _overflowBase));
            dirty.Add(new BaselineRow(HistorySchema.TotalsKey, _totalsBase));
        }
        return dirty;
    }

    /// <summary>Takes the oldest pending buckets out (to <see cref="HeldDeltaSpill"/>) until at most
    /// <paramref name="keep"/> remain in memory.</summary>
    public IEnumerable<KeyValuePair<long, PendingBucket>> TakeOldestPending(int keep)
    {
        while (_pending.Count > keep)
        {
            var oldest = _pending.First();
            _pending.Remove(oldest.Key);
            yield return oldest;
        }
    }

    /// <summary>Puts back a bucket <see cref="TakeOldestPending"/> took (the spill failed): added to what is pending there now.</summary>
    public void PutBack(long bucket, PendingBucket taken)
    {
        var pending = PendingFor(bucket);
        foreach (var (ip, slots) in taken.Clients)
        {
            var row = pending.Client(ip, _slotCount);
            for (var s = 0; s < _slotCount; s++) row[s] += slots[s];
        }
        for (var s = 0; s < _slotCount; s++) pending.Host[s] += taken.Host[s];
    }

    /// <summary>Everything pending is in the database now.</summary>
    public void Committed()
    {
        _pending.Clear();
        _baselineDirty.Clear();
        _baselineDeleted.Clear();
        AggregatesChanged = false;
        RewriteBaseline = false;
    }

    /// <summary>Adds the growth of current over the baseline (<see cref="CounterGrowth"/>) to the pending
    /// row of <paramref name="ip"/> and moves the baseline; true when the baseline moved.</summary>
    private bool AddDelta(ReadOnlySpan<Traffic> current, Traffic[] baseline, PendingBucket pending, string ip, bool restarted)
    {
        var moved = false;
        Traffic[]? row = null;
        for (var s = 0; s < current.Length; s++)
        {
            var next = CounterGrowth.Next(current[s], baseline[s], restarted);
            if (next == baseline[s]) continue;
            var delta = CounterGrowth.Growth(current[s], baseline[s], restarted);
            baseline[s] = next;
            moved = true;
            if (delta.IsZero) continue;
            row ??= pending.Client(ip, _slotCount);
            row[s] += delta;
        }
        return moved;
    }

    private PendingBucket PendingFor(long bucket)
    {
        if (!_pending.TryGetValue(bucket, out var pending))
            _pending[bucket] = pending = new PendingBucket(_slotCount);
        return pending;
    }

    private sealed class ClientState(string ip, Traffic[] baseline)
    {
        public string Ip { get; } = ip;
        public Traffic[] Base { get; } = baseline;
        public int Seen { get; set; }
    }
}

/// <summary>counter_baseline.slots: per slot, bytes then packets, unsigned 64-bit little endian.</summary>
public static class SlotCodec
{
    public static byte[] Encode(Traffic[] slots)
    {
        var bytes = new byte[slots.Length * 16];
        for (var s = 0; s < slots.Length; s++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(s * 16), slots[s].Bytes);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(s * 16 + 8), slots[s].Packets);
        }
        return bytes;
    }

    /// <summary>The slots, or null when <paramref name="bytes"/> is not <paramref name="slotCount"/> slots long.</summary>
    public static Traffic[]? Decode(byte[] bytes, int slotCount)
    {
        if (bytes.Length != slotCount * 16) return null;
        var slots = new Traffic[slotCount];
        for (var s = 0; s < slotCount; s++)
            slots[s] = new Traffic(
                BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(s * 16)),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(s * 16 + 8)));
        return slots;
    }
}
