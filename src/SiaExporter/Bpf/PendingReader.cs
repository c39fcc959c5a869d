using System.Runtime.InteropServices;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// Reads the `pending` per-CPU array (bpf/clients.h): every slot, on every CPU, that holds an
/// address not yet confirmed (or confirmed on another CPU and not yet folded), with its counters.
/// One BPF_MAP_LOOKUP_BATCH pass over the array; buffers are kept between calls.
/// Not thread-safe: one reader per caller.
/// </summary>
internal sealed class PendingReader
{
    private const int KeysPerBatch = 256;

    private readonly BpfMap _pending;
    private readonly int _slots;
    private readonly int _cpus;
    private readonly int _stride;
    private readonly byte[] _keys = new byte[KeysPerBatch * sizeof(uint)];
    private readonly byte[] _values;
    private readonly byte[] _element;

    /// <param name="pending">The `pending` map, kept open by its owner for this reader's lifetime.</param>
    public PendingReader(BpfMap pending, int slots, int possibleCpus)
    {
        _pending = pending;
        _slots = slots;
        _cpus = possibleCpus;
        _stride = KernelSizes.PerCpuStride(KernelSizes.PendingHead + slots * KernelSizes.Counter);
        _values = new byte[KeysPerBatch * _cpus * _stride];
        _element = new byte[_cpus * _stride];
    }

    public List<PendingSlot> Read()
    {
        var found = new List<PendingSlot>();
        Span<byte> tokenIn = stackalloc byte[sizeof(uint)];
        Span<byte> tokenOut = stackalloc byte[sizeof(uint)];
        var first = true;
        while (true)
        {
            var wanted = (uint)KeysPerBatch;
            var errno = _pending.LookupBatch(first ? [] : tokenIn, tokenOut, _keys, _values, ref wanted);
            if (errno is Errno.EINTR or Errno.EAGAIN) continue; // nothing consumed; same in_batch again
            if (errno is not (Errno.None or Errno.ENOENT))
                throw BpfErrors.Exception("bpf_map_lookup_batch(pending)", errno);
            for (var i = 0; i < (int)wanted; i++)
                Collect(_values.AsSpan(i * _cpus * _stride, _cpus * _stride), found);
            if (errno == Errno.ENOENT) return found; // end of map
            tokenOut.CopyTo(tokenIn);
            first = false;
        }
    }

    /// <summary>
    /// Frees the pending slots (every CPU) that still hold <paramref name="client"/> and returns what
    /// they held. The client's entry was just deleted: what these slots held was shown as the
    /// client's, so it goes with its final value and must not reach a later entry of the same address.
    /// The element is rewritten for every CPU at once; a frame counted into another address's slot
    /// between the read and the write would be lost to that address's view (never to the totals).
    /// Only the eviction (<see cref="CounterReader.Evict"/>) calls it: it is part of the one write
    /// back into the kernel.
    /// </summary>
    public List<PendingSlot> Release(ClientAddress client)
    {
        Span<byte> key = stackalloc byte[KernelSizes.ClientKey];
        client.WriteKernelKey(key);
        var index = PendingIndex.Of(key);
        _pending.Lookup(index, _element);
        var released = new List<PendingSlot>();
        for (var cpu = 0; cpu < _cpus; cpu++)
        {
            var value = _element.AsSpan(cpu * _stride, _stride);
            var head = MemoryMarshal.Read<PendingHead>(value);
            if (head.State == BpfConstants.PendingEmpty || !value[..KernelSizes.ClientKey].SequenceEqual(key)) continue;
            released.Add(SlotOf(value));
            head.State = BpfConstants.PendingEmpty;
            MemoryMarshal.Write(value, in head);
        }
        if (released.Count > 0) _pending.Update(index, _element, MapUpdate.Exist);
        return released;
    }

    private void Collect(ReadOnlySpan<byte> perCpu, List<PendingSlot> into)
    {
        for (var cpu = 0; cpu < _cpus; cpu++)
        {
            var value = perCpu.Slice(cpu * _stride, _stride);
            if (MemoryMarshal.Read<PendingHead>(value).State != BpfConstants.PendingEmpty) into.Add(SlotOf(value));
        }
    }

    /// <summary>One CPU's value: address + counters.</summary>
    private PendingSlot SlotOf(ReadOnlySpan<byte> value)
    {
        var counters = MemoryMarshal.Cast<byte, Counter>(value.Slice(KernelSizes.PendingHead, _slots * KernelSizes.Counter));
        var slots = new Traffic[_slots];
        for (var s = 0; s < _slots; s++) slots[s] = new Traffic(counters[s].Bytes, counters[s].Packets);
        return new PendingSlot(ClientAddress.FromKernelKey(value[..KernelSizes.ClientKey]), slots);
    }
}

/// <summary>The kernel's address hash of bpf/clients.h (addr_hash): the pending slot is its low
/// bits, the `confirmed` prefilter bit its high ones.</summary>
internal static class PendingIndex
{
    public static uint Hash(ReadOnlySpan<byte> kernelKey)
    {
        unchecked
        {
            var h = (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(kernelKey) * 0x9e3779b1u)
                    ^ (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(kernelKey[4..]) * 0x85ebca77u)
                    ^ (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(kernelKey[8..]) * 0xc2b2ae3du)
                    ^ (System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(kernelKey[12..]) * 0x27d4eb2fu);
            h ^= h >> 15;
            h *= 0x2c1b3c6du;
            h ^= h >> 12;
            return h;
        }
    }

    /// <summary>pending_index: the address's slot in `pending`.</summary>
    public static uint Of(ReadOnlySpan<byte> kernelKey) => Hash(kernelKey) & (BpfConstants.PendingEntries - 1);

    /// <summary>confirmed_bit: the address's bit in the `confirmed` prefilter.</summary>
    public static uint ConfirmedBit(ReadOnlySpan<byte> kernelKey) => (Hash(kernelKey) >> 13) & (BpfConstants.ConfirmedBits - 1);
}
