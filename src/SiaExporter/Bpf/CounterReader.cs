using System.Runtime.InteropServices;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// Reads the kernel counters: every `clients` entry with BPF_MAP_LOOKUP_BATCH (falling back to
/// get_next_key + lookup on kernels without batch ops for the map), plus aggregates[TOTAL] and
/// [OVERFLOW], summed over CPUs into one <see cref="CounterSnapshot"/>, with the `pending` slots of
/// unconfirmed sources (<see cref="PendingReader"/>, <see cref="PendingMerge"/>). The raw key/value buffers
/// are kept between calls; only the snapshot's own arrays are allocated per read.
/// Not thread-safe: one reader per caller (SnapshotSource coalesces scrapes).
/// </summary>
internal sealed class CounterReader : ICounterSource, IDisposable
{
    /// <summary>Upper bound of the per-call values buffer.</summary>
    private const int BatchBufferBytes = 1 << 20;

    private readonly BpfMap _clients;
    private readonly BpfMap _aggregates;
    private readonly PortClassSet _classes;
    private readonly MapGeneration _generation;
    private readonly TimeProvider _time;
    private readonly int _slots;
    private readonly int _cpus;
    /// <summary>Bytes of one CPU's value (round_up(value_size, 8)).</summary>
    private readonly int _stride;
    /// <summary>Bytes of one key's per-CPU value: cpus × stride.</summary>
    private readonly int _perKeyBytes;

    private int _batchCount;
    private byte[] _keys = [];
    private byte[] _values = [];
    private readonly byte[] _oneValue;
    private ClientAddress[] _readClients;
    private Traffic[] _readSlots;
    private bool _batchUnsupported;

    // Unconfirmed sources (bpf/clients.h): their pending slots, and how they join their client once confirmed.
    private readonly PendingReader _pending;
    private readonly PendingMerge _merge;
    // What the aggregates showed at the last read (this reader's maps are one generation).
    private readonly Traffic[] _totalsShown;
    private readonly Traffic[] _overflowShown;
    private readonly Traffic[] _unconfirmedShown;

    /// <summary>Reads the maps of <paramref name="collector"/>, which owns them for this reader's lifetime.</summary>
    public CounterReader(CollectorObject collector, TimeProvider? time = null)
    {
        _clients = collector.ClientsMap;
        _aggregates = collector.AggregatesMap;
        _classes = collector.Classes;
        _generation = collector.Generation;
        _time = time ?? TimeProvider.System;
        _slots = _classes.SlotCount;
        _cpus = collector.PossibleCpus;
        var capacity = collector.Capacity;
        _stride = KernelSizes.PerCpuStride(_slots * KernelSizes.Counter);
        _perKeyBytes = _stride * _cpus;
        _batchCount = Math.Clamp(BatchBufferBytes / _perKeyBytes, 64, Math.Max(64, capacity));
        _oneValue = new byte[_perKeyBytes];
        _readClients = new ClientAddress[Math.Min(capacity, 1024)];
        _readSlots = new Traffic[_readClients.Length * _slots];
        _pending = new PendingReader(collector.PendingMap, _slots, _cpus);
        _merge = new PendingMerge(_slots);
        _totalsShown = new Traffic[_slots];
        _overflowShown = new Traffic[_slots];
        _unconfirmedShown = new Traffic[_slots];
    }

    /// <summary>Forces the get_next_key path (tests; kernels without batch lookups).</summary>
    internal bool BatchDisabled
    {
        get => _batchUnsupported;
        init => _batchUnsupported = value;
    }

    public CounterSnapshot Read()
    {
        var count = _batchUnsupported ? ReadOneByOne() : ReadBatched();
        var clients = _readClients.AsSpan(0, count).ToArray();
        var slots = _readSlots.AsSpan(0, count * _slots).ToArray();
        var totals = Floored(ReadAggregate(BpfConstants.AggTotal), _totalsShown);
        var overflow = Floored(ReadAggregate(BpfConstants.AggOverflow), _overflowShown);
        // `pending` after `clients`: see PendingMerge for why that order.
        var unconfirmed = _merge.Merge(_generation, clients, slots, _pending.Read(),
            Floored(ReadAggregate(BpfConstants.AggUnconfirmed), _unconfirmedShown));
        return new CounterSnapshot(_classes, _generation, _time.GetUtcNow(), clients, slots, totals, overflow) { Unconfirmed = unconfirmed };
    }

    public IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients)
    {
        var evicted = new List<EvictedClient>(clients.Count);
        Span<byte> key = stackalloc byte[KernelSizes.ClientKey];
        foreach (var client in clients)
        {
            client.WriteKernelKey(key);
            var errno = _clients.LookupAndDelete(key, _oneValue);
            if (errno == Errno.ENOENT) continue;
            BpfErrors.Check(errno, "bpf_map_lookup_and_delete_elem(clients)");
            var final = new Traffic[_slots];
            SumOverCpus(_oneValue, final);
            // The same write path frees the client's pending slots: what they held was shown as its own.
            final = _merge.Final(client, final, _pending.Release(client));
            evicted.Add(new EvictedClient(client, final));
        }
        return evicted;
    }

    private int ReadBatched()
    {
        EnsureBatchBuffers();
        var count = 0;
        Span<byte> tokenIn = stackalloc byte[16];
        Span<byte> tokenOut = stackalloc byte[16];
        var first = true;
        while (true)
        {
            var wanted = (uint)_batchCount;
            var errno = _clients.LookupBatch(first ? [] : tokenIn, tokenOut, _keys, _values, ref wanted);
            if (errno is Errno.EINTR or Errno.EAGAIN) continue; // nothing consumed; same in_batch again
            if (errno == Errno.ENOSPC && wanted == 0)
            {
                // a hash bucket holds more entries than fit: retry with room for more
                _batchCount *= 2;
                EnsureBatchBuffers();
                continue;
            }
            if (first && errno is Errno.EINVAL or Errno.ENOTSUPP or Errno.EOPNOTSUPP)
            {
                _batchUnsupported = true;
                return ReadOneByOne();
            }
            if (errno is not (Errno.None or Errno.ENOENT))
                throw BpfErrors.Exception("bpf_map_lookup_batch(clients)", errno);

            for (var i = 0; i < (int)wanted; i++)
                Store(count++, _keys.AsSpan(i * KernelSizes.ClientKey, KernelSizes.ClientKey), _values.AsSpan(i * _perKeyBytes, _perKeyBytes));
            if (errno == Errno.ENOENT) return count; // end of map
            tokenOut.CopyTo(tokenIn);
            first = false;
        }
    }

    private int ReadOneByOne()
    {
        var count = 0;
        Span<byte> key = stackalloc byte[KernelSizes.ClientKey];
        Span<byte> next = stackalloc byte[KernelSizes.ClientKey];
        var hasKey = false;
        while (true)
        {
            var errno = _clients.GetNextKey(hasKey ? key : [], next);
            if (errno == Errno.ENOENT) return count;
            BpfErrors.Check(errno, "bpf_map_get_next_key(clients)");
            next.CopyTo(key);
            hasKey = true;
            errno = _clients.Lookup(key, _oneValue);
            if (errno == Errno.ENOENT) continue; // deleted meanwhile
            BpfErrors.Check(errno, "bpf_map_lookup_elem(clients)");
            Store(count++, key, _oneValue);
        }
    }

    private void Store(int index, ReadOnlySpan<byte> key, ReadOnlySpan<byte> perCpuValue)
    {
        if (index >= _readClients.Length)
        {
            var size = Math.Max(_readClients.Length * 2, index + 1);
            Array.Resize(ref _readClients, size);
            Array.Resize(ref _readSlots, size * _slots);
        }
        _readClients[index] = ClientAddress.FromKernelKey(key);
        SumOverCpus(perCpuValue, _readSlots.AsSpan(index * _slots, _slots));
    }

    private void SumOverCpus(ReadOnlySpan<byte> perCpuValue, Span<Traffic> into)
    {
        into.Clear();
        for (var cpu = 0; cpu < _cpus; cpu++)
        {
            var counters = MemoryMarshal.Cast<byte, Counter>(perCpuValue.Slice(cpu * _stride, _slots * KernelSizes.Counter));
            for (var s = 0; s < _slots; s++)
                into[s] = new Traffic(into[s].Bytes + counters[s].Bytes, into[s].Packets + counters[s].Packets);
        }
    }

    /// <summary>An aggregate never below what it showed: the kernel takes qdisc-dropped frames off
    /// it (bpf/qdiscdrops.h), possibly after a read showed them (see PendingMerge).</summary>
    private static Traffic[] Floored(Traffic[] now, Traffic[] shown)
    {
        PendingMerge.Floor(now, shown);
        now.CopyTo(shown, 0);
        return now;
    }

    private Traffic[] ReadAggregate(int index)
    {
        _aggregates.Lookup((uint)index, _oneValue);
        var slots = new Traffic[_slots];
        SumOverCpus(_oneValue, slots);
        return slots;
    }

    private void EnsureBatchBuffers()
    {
        if (_keys.Length < _batchCount * KernelSizes.ClientKey)
        {
            _keys = new byte[_batchCount * KernelSizes.ClientKey];
            _values = new byte[(long)_batchCount * _perKeyBytes is var n && n <= Array.MaxLength ? (int)n : throw new OutOfMemoryException()];
        }
    }

    public void Dispose()
    {
        _keys = [];
        _values = [];
    }
}
