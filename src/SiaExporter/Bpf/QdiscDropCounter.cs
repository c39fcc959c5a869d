using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// qdisc_drop on the kfree_skb tracepoint, watching the counted interfaces: what a shaping qdisc
/// (tbf, fq_codel, cake...) dropped after tc_egress had counted it as up, per slot. Its link is
/// not pinned: it counts while the daemon runs, from zero at each start.
/// </summary>
internal sealed unsafe class QdiscDropCounter : IDisposable
{
    private readonly CollectorObject _collector;
    private readonly SafeFileDescriptorHandle _link;
    private readonly int _mapFd;

    private QdiscDropCounter(CollectorObject collector, SafeFileDescriptorHandle link)
    {
        _collector = collector;
        _link = link;
        _mapFd = collector.MapFd(BpfConstants.MapQdiscDrops);
    }

    /// <summary>Watches <paramref name="ifIndexes"/>; null (with a warning) where the kernel lacks
    /// drop reasons or refuses the tracing program.</summary>
    public static QdiscDropCounter? Start(CollectorObject collector, IEnumerable<int> ifIndexes, ILogger logger)
    {
        if (collector.QdiscDropFd < 0)
        {
            logger.LogWarning("this kernel has no drop reasons (kernel < {Version}): up also counts what a shaping qdisc drops",
                KernelFeatures.DropReasonsKernel);
            return null;
        }
        var watched = collector.MapFd(BpfConstants.MapCountedIfindex);
        byte one = 1;
        foreach (var ifIndex in ifIndexes)
        {
            var key = (uint)ifIndex;
            BpfErrors.Check(LibBpf.MapUpdateElem(watched, &key, &one, 0), "bpf_map_update_elem(counted_ifindex)");
        }
        var fd = LibBpf.RawTracepointOpen(null, collector.QdiscDropFd);
        if (fd < 0)
        {
            logger.LogWarning("qdisc drops are not counted ({Errno}): up also counts what a shaping qdisc drops", Errno.Name(Errno.Of(fd)));
            return null;
        }
        return new QdiscDropCounter(collector, new SafeFileDescriptorHandle(fd));
    }

    /// <summary>Dropped bytes and packets per slot, summed over the CPUs.</summary>
    public Traffic[] Read()
    {
        var slots = _collector.SlotCount;
        var stride = KernelSizes.PerCpuStride(_collector.ValueSize);
        var buffer = new byte[stride * _collector.PossibleCpus];
        uint key = 0;
        fixed (byte* values = buffer)
            BpfErrors.Check(LibBpf.MapLookupElem(_mapFd, &key, values), "bpf_map_lookup_elem(qdisc_drops)");
        var totals = new Traffic[slots];
        for (var cpu = 0; cpu < _collector.PossibleCpus; cpu++)
        {
            var counters = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(buffer.AsSpan(cpu * stride, slots * 16));
            for (var s = 0; s < slots; s++)
                totals[s] += new Traffic(counters[2 * s], counters[2 * s + 1]);
        }
        return totals;
    }

    public void Dispose() => _link.Dispose();
}
