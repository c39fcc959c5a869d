using System.Runtime.InteropServices;

namespace SiaExporter.Native;

// Mirrors of libbpf 1.1.2's option structs (/usr/include/bpf/bpf.h, libbpf.h) on LP64.
// Each starts with `size_t sz`, which must hold the struct's size; offsets and sizes were
// taken with offsetof() against those headers (and are checked in tests/Native).

/// <summary>struct bpf_map_batch_opts (24 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct MapBatchOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public ulong ElementFlags;
    [FieldOffset(16)] public ulong Flags;

    public static MapBatchOptions Create() => new() { Size = 24 };
}

/// <summary>struct bpf_link_create_opts (64 bytes); only the fields we set are named.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct LinkCreateOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public uint Flags;

    public static LinkCreateOptions Create(uint flags) => new() { Size = 64, Flags = flags };
}

/// <summary>struct bpf_link_update_opts (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct LinkUpdateOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public uint OldProgramFd;
}

/// <summary>enum bpf_tc_attach_point.</summary>
internal enum TcAttachPoint : int
{
    Ingress = 1 << 0,
    Egress = 1 << 1,
}

/// <summary>struct bpf_tc_hook (24 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct TcHook
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public int IfIndex;
    [FieldOffset(12)] public TcAttachPoint AttachPoint;
    [FieldOffset(16)] public uint Parent;

    public static TcHook Create(int ifIndex, TcAttachPoint point) => new() { Size = 24, IfIndex = ifIndex, AttachPoint = point };
}

/// <summary>struct bpf_tc_opts (32 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct TcOptions
{
    /// <summary>BPF_TC_F_REPLACE: replace the filter at (handle, priority) instead of failing with EEXIST.</summary>
    public const uint FlagReplace = 1;

    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public int ProgramFd;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public uint ProgramId;
    [FieldOffset(20)] public uint Handle;
    [FieldOffset(24)] public uint Priority;

    public static TcOptions Create(uint handle, uint priority) => new() { Size = 32, Handle = handle, Priority = priority };
}

/// <summary>struct bpf_test_run_opts (80 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 80)]
internal unsafe struct TestRunOptions
{
    [FieldOffset(0)] public nuint Size;
    [FieldOffset(8)] public void* DataIn;
    [FieldOffset(16)] public void* DataOut;
    [FieldOffset(24)] public uint DataSizeIn;
    [FieldOffset(28)] public uint DataSizeOut;
    [FieldOffset(32)] public void* ContextIn;
    [FieldOffset(40)] public void* ContextOut;
    [FieldOffset(48)] public uint ContextSizeIn;
    [FieldOffset(52)] public uint ContextSizeOut;
    [FieldOffset(56)] public uint ReturnValue;
    [FieldOffset(60)] public int Repeat;
    [FieldOffset(64)] public uint Duration;
    [FieldOffset(68)] public uint Flags;
    [FieldOffset(72)] public uint Cpu;
    [FieldOffset(76)] public uint BatchSize;

    public static TestRunOptions Create() => new() { Size = 80 };
}
