using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// qdisc_drop on the kfree_skb tracepoint, watching the counted interfaces: what a shaping qdisc
/// (tbf, fq_codel, cake...) dropped after tc_egress had counted it as up, per slot. Its link is
/// not pinned: it counts while the daemon runs, from zero at each start.
/// </summary>
internal sealed class QdiscDropCounter : IDisposable
{
    private readonly CollectorObject _collector;
    private readonly BpfLink _link;

    private QdiscDropCounter(CollectorObject collector, BpfLink link)
    {
        _collector = collector;
        _link = link;
    }

    /// <summary>Watches <paramref name="ifIndexes"/>; null (with a warning) where the kernel lacks
    /// drop reasons or refuses the tracing program.</summary>
    public static QdiscDropCounter? Start(CollectorObject collector, IEnumerable<int> ifIndexes, ILogger logger)
    {
        if (collector.QdiscDrop is not { } program)
        {
            logger.LogWarning("this kernel has no drop reasons (kernel < {Version}): up also counts what a shaping qdisc drops",
                KernelFeatures.DropReasonsKernel);
            return null;
        }
        foreach (var ifIndex in ifIndexes)
            collector.CountedIfindexMap.Update((uint)ifIndex, (byte)1);
        var opened = BpfLink.TryOpenTracepoint(program, out var link);
        if (link is null)
        {
            logger.LogWarning("qdisc drops are not counted ({Errno}): up also counts what a shaping qdisc drops", opened.Name());
            return null;
        }
        return new QdiscDropCounter(collector, link);
    }

    /// <summary>Dropped bytes and packets per slot, summed over the CPUs.</summary>
    public Traffic[] Read()
    {
        var slots = _collector.SlotCount;
        var stride = KernelSizes.PerCpuStride(_collector.ValueSize);
        var buffer = new byte[stride * _collector.PossibleCpus];
        _collector.QdiscDropsMap.Lookup(0u, buffer);
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
