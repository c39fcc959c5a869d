using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>The libbpf calls that shape how one program of an object is loaded (libbpf 1.0+).</summary>
internal static unsafe partial class LibBpf
{
    [LibraryImport(Lib, EntryPoint = "bpf_object__next_program")]
    public static partial nint ObjectNextProgram(SafeBpfObjectHandle bpfObject, nint previousProgram);

    /// <summary>false: bpf_object__load skips this program.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_program__set_autoload")]
    public static partial int ProgramSetAutoload(nint program, [MarshalAs(UnmanagedType.U1)] bool autoload);

    /// <summary>prog_ifindex of the load: with <see cref="ProgramFlags.XdpDevBoundOnly"/>, binds the program to that device.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_program__set_ifindex")]
    public static partial void ProgramSetIfIndex(nint program, uint ifIndex);

    [LibraryImport(Lib, EntryPoint = "bpf_program__set_flags")]
    public static partial int ProgramSetFlags(nint program, uint flags);

    [LibraryImport(Lib, EntryPoint = "bpf_program__flags")]
    public static partial uint ProgramFlags(nint program);
}

/// <summary>prog_flags of BPF_PROG_LOAD we use (linux/bpf.h).</summary>
internal static class ProgramFlags
{
    /// <summary>BPF_F_XDP_HAS_FRAGS: the XDP program handles multi-buffer frames (SEC("xdp.frags") sets it).</summary>
    public const uint XdpHasFrags = 1U << 5;
    /// <summary>BPF_F_XDP_DEV_BOUND_ONLY: a device-bound XDP program (may call XDP RX metadata kfuncs).</summary>
    public const uint XdpDevBoundOnly = 1U << 6;
}

/// <summary>Attaching tracing programs.</summary>
internal static partial class LibBpf
{
    /// <summary>BPF_RAW_TRACEPOINT_OPEN: attaches a tp_btf program (name null: the one it was loaded for).
    /// Returns a link fd the caller owns, or a negative errno.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_raw_tracepoint_open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int RawTracepointOpen(string? name, BpfProgram program);
}
