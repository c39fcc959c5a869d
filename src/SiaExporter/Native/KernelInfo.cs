using System.Runtime.InteropServices;
using System.Text;

namespace SiaExporter.Native;

// Mirrors of the info structs of linux/bpf.h that we read with bpf_obj_get_info_by_fd, and of
// struct __sk_buff for BPF_PROG_TEST_RUN. Only leading fields are named; a shorter buffer than
// the kernel's is fine (the kernel copies min(ours, its own)).

/// <summary>Kernel map types we compare (enum bpf_map_type).</summary>
internal enum BpfMapType : uint
{
    Hash = 1,
    Array = 2,
    PerCpuHash = 5,
    PerCpuArray = 6,
    LruHash = 9,
}

/// <summary>enum bpf_link_type values we recognise.</summary>
internal enum BpfLinkType : uint
{
    Xdp = 6,
    Tcx = 11,
}

/// <summary>enum bpf_attach_type values we use.</summary>
internal static class BpfAttachType
{
    public const uint Xdp = 37;
    public const uint TcxIngress = 46;
    public const uint TcxEgress = 47;
}

/// <summary>struct bpf_map_info (88 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 88)]
internal unsafe struct BpfMapInfo
{
    [FieldOffset(0)] public BpfMapType Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public uint KeySize;
    [FieldOffset(12)] public uint ValueSize;
    [FieldOffset(16)] public uint MaxEntries;
    [FieldOffset(20)] public uint MapFlags;
    [FieldOffset(24)] public fixed byte NameBytes[16];
    [FieldOffset(40)] public uint IfIndex;

    public readonly string Name
    {
        get
        {
            fixed (byte* p = NameBytes) return ObjectName(p);
        }
    }

    internal static string ObjectName(byte* name)
    {
        var span = new ReadOnlySpan<byte>(name, 16);
        var end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }
}

/// <summary>struct bpf_prog_info (232 bytes on 6.x; the fields up to verified_insns).</summary>
[StructLayout(LayoutKind.Explicit, Size = 232)]
internal unsafe struct BpfProgramInfo
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(64)] public fixed byte NameBytes[16];
    [FieldOffset(192)] public ulong RunTimeNs;
    [FieldOffset(200)] public ulong RunCount;
    [FieldOffset(208)] public ulong RecursionMisses;

    public readonly string Name
    {
        get
        {
            fixed (byte* p = NameBytes) return BpfMapInfo.ObjectName(p);
        }
    }
}

/// <summary>struct bpf_link_info: type, id, prog_id and the xdp/tcx member of the union
/// (xdp: ifindex at 16; tcx: ifindex at 16, attach_type at 20). 0 ifindex = detached.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct BpfLinkInfo
{
    [FieldOffset(0)] public BpfLinkType Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public uint ProgramId;
    [FieldOffset(16)] public uint IfIndex;
    [FieldOffset(20)] public uint TcxAttachType;
}

/// <summary>struct __sk_buff (192 bytes) as ctx_in of a tc program test run. The kernel only
/// accepts a few fields non-zero there (mark, priority, ifindex, cb, tstamp, wire_len, gso_segs,
/// gso_size, hwtstamp).</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct SkBuffContext
{
    [FieldOffset(0)] public uint Length;
    [FieldOffset(8)] public uint Mark;
    [FieldOffset(32)] public uint Priority;
    [FieldOffset(36)] public uint IngressIfIndex;
    [FieldOffset(40)] public uint IfIndex;
    [FieldOffset(152)] public ulong Timestamp;
    [FieldOffset(160)] public uint WireLength;
    [FieldOffset(164)] public uint GsoSegments;
    [FieldOffset(176)] public uint GsoSize;
}
