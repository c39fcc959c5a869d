using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Tests.Bpf;

/// <summary>Writes per-CPU counter values straight into the maps, as the programs would.</summary>
internal static class KernelMapWriter
{
    /// <summary>Sets <paramref name="client"/>'s value: slot s = (bytes, packets) on every CPU, so the
    /// summed value is cpus × that.</summary>
    public static void PutClient(CollectorObject collector, ClientAddress client, ulong bytes, ulong packets)
    {
        var value = PerCpuValue(collector, bytes, packets);
        var key = new byte[KernelSizes.ClientKey];
        client.WriteKernelKey(key);
        collector.ClientsMap.Update(key, value);
    }

    /// <summary>Gives <paramref name="client"/> an empty entry, as if it had been confirmed before
    /// the test (bpf/clients.h): its frames then count on its entry from the first one.</summary>
    public static void PutConfirmedClient(CollectorObject collector, ClientAddress client)
    {
        var value = new byte[KernelSizes.PerCpuStride(collector.ValueSize) * collector.PossibleCpus];
        var key = new byte[KernelSizes.ClientKey];
        client.WriteKernelKey(key);
        collector.ClientsMap.Update(key, value, MapUpdate.NoExist);
        // ... and its bit in the `confirmed` prefilter, as the kernel's admit() sets it.
        var bit = PendingIndex.ConfirmedBit(key);
        var bits = new byte[BpfConstants.ConfirmedBits / 8];
        collector.ConfirmedMap.Lookup(0u, bits);
        bits[bit >> 3] |= (byte)(1 << (int)(bit & 7));
        collector.ConfirmedMap.Update(0u, bits);
    }

    public static void PutAggregate(CollectorObject collector, int index, ulong bytes, ulong packets)
    {
        var value = PerCpuValue(collector, bytes, packets);
        collector.AggregatesMap.Update((uint)index, value);
    }

    private static byte[] PerCpuValue(CollectorObject collector, ulong bytes, ulong packets)
    {
        var stride = KernelSizes.PerCpuStride(collector.ValueSize);
        var value = new byte[stride * collector.PossibleCpus];
        for (var cpu = 0; cpu < collector.PossibleCpus; cpu++)
            for (var s = 0; s < collector.SlotCount; s++)
            {
                BitConverter.TryWriteBytes(value.AsSpan(cpu * stride + s * 16), bytes + (ulong)s);
                BitConverter.TryWriteBytes(value.AsSpan(cpu * stride + s * 16 + 8), packets + (ulong)s);
            }
        return value;
    }
}
