using SiaExporter.Bpf;
using SiaExporter.Native;

namespace SiaExporter.TestSupport;

/// <summary>BPF_PROG_QUERY on a TCX hook: the ids of every program attached there (what the
/// tests compare with the programs they expect on a hook).</summary>
internal static unsafe class TcxQuery
{
    public static uint[] ProgramIds(int ifIndex, Hook hook)
    {
        var ids = new uint[64];
        uint count = (uint)ids.Length;
        uint attachFlags = 0;
        fixed (uint* p = ids)
            BpfErrors.Check(LibBpf.ProgQuery(ifIndex, hook.TcxAttachType(), 0, &attachFlags, p, &count), "bpf_prog_query(tcx)");
        return ids[..(int)count];
    }
}
