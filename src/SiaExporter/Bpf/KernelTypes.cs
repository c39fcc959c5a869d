using System.Runtime.InteropServices;

namespace SiaExporter.Bpf;

// C# mirrors of the structs of bpf/collector.h (checked against the object's BTF in
// tests/Bpf/KernelTypesLayoutTests).

/// <summary>struct client_key: the remote address, IPv4 as v4-mapped IPv6.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal unsafe struct ClientKey
{
    public fixed byte Addr[16];
}

/// <summary>struct counter: one slot of a per-CPU value.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
internal struct Counter
{
    public ulong Bytes;
    public ulong Packets;
}

/// <summary>struct class_info: entry i of `class_info` describes class i; 0/0 = unused.</summary>
[StructLayout(LayoutKind.Sequential, Size = 4)]
internal struct ClassInfo
{
    /// <summary>Host byte order.</summary>
    public ushort Port;
    /// <summary>IP protocol number (6 TCP, 17 UDP).</summary>
    public byte Proto;
    public byte Reserved;
}

/// <summary>struct frag_key: one fragmented datagram.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct FragKey
{
    [FieldOffset(0)] public fixed byte Saddr[16];
    [FieldOffset(16)] public fixed byte Daddr[16];
    [FieldOffset(32)] public uint Id;
    [FieldOffset(36)] public byte Proto;
    [FieldOffset(37)] public fixed byte Pad[3];
}

/// <summary>struct frag_value: the class (+1) decided by the first fragment.</summary>
[StructLayout(LayoutKind.Sequential, Size = 4)]
internal struct FragValue
{
    public uint ClassPlusOne;
}

/// <summary>struct pending_head: the head of a `pending` value, n_slots counters follow.</summary>
[StructLayout(LayoutKind.Sequential, Size = 24)]
internal unsafe struct PendingHead
{
    public fixed byte Addr[16];
    /// <summary>BpfConstants.Pending* (empty, used, confirmed).</summary>
    public uint State;
    public uint Reserved;
}

/// <summary>struct collector_config: the only variable of .rodata, at offset 0.</summary>
[StructLayout(LayoutKind.Sequential, Size = 4)]
internal struct CollectorConfig
{
    public uint NSlots;
}

/// <summary>Sizes derived from bpf/collector.h.</summary>
internal static class KernelSizes
{
    public const int ClientKey = 16;
    public const int Counter = 16;
    public const int ClassInfo = 4;
    public const int PendingHead = 24;
    /// <summary>struct port_table: class_of[PROTO_ROWS][PORTS_PER_ROW].</summary>
    public const int PortTable = BpfConstants.ProtoRows * BpfConstants.PortsPerRow;

    /// <summary>Bytes of one CPU's copy of a per-CPU value (the kernel rounds up to 8).</summary>
    public static int PerCpuStride(int valueSize) => (valueSize + 7) & ~7;
}
