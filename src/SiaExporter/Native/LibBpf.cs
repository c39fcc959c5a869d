using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>
/// The libbpf entry points the daemon uses, one declaration each, as libbpf 1.1 declares them
/// (/usr/include/bpf/libbpf.h and bpf.h). Low-level bpf_* calls return a negative errno on
/// failure (libbpf 1.x) and also set errno; object/map/program accessors return NULL and set errno.
/// Pointers to libbpf's own objects (bpf_object, bpf_map, bpf_program) are plain <see cref="nint"/>s
/// owned by the <see cref="SafeBpfObjectHandle"/> they came from, and never leave
/// <see cref="BpfObjectFile"/>. Kernel descriptors are passed as the SafeHandle that owns them
/// (<see cref="BpfMap"/>, <see cref="BpfProgram"/>, <see cref="BpfLink"/>): the marshaller holds a
/// reference for the length of the call, so a concurrent Dispose cannot close the descriptor under it.
/// Calls that create a descriptor return its number as an int; only the class that wraps it sees it.
/// </summary>
internal static unsafe partial class LibBpf
{
    private const string Lib = NativeLibraryResolver.LibBpfName;

    static LibBpf() => NativeLibraryResolver.Register();

    // --- library ---------------------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "libbpf_major_version")]
    public static partial uint MajorVersion();

    [LibraryImport(Lib, EntryPoint = "libbpf_minor_version")]
    public static partial uint MinorVersion();

    [LibraryImport(Lib, EntryPoint = "libbpf_version_string")]
    private static partial byte* VersionStringNative();

    public static string VersionString() => Marshal.PtrToStringUTF8((nint)VersionStringNative()) ?? "";

    /// <summary>libbpf_set_print: fn(level, fmt, va_list); returns the previous function.</summary>
    [LibraryImport(Lib, EntryPoint = "libbpf_set_print")]
    public static partial nint SetPrint(delegate* unmanaged<int, byte*, nint, int> printFunction);

    [LibraryImport(Lib, EntryPoint = "libbpf_strerror")]
    public static partial int StrError(int error, byte* buffer, nuint size);

    [LibraryImport(Lib, EntryPoint = "libbpf_num_possible_cpus")]
    public static partial int NumPossibleCpus();

    // --- objects -----------------------------------------------------------------------------

    /// <summary>Returns a bpf_object* or NULL with errno set.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_object__open_file", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint ObjectOpenFile(string path, void* openOptions);

    [LibraryImport(Lib, EntryPoint = "bpf_object__load", SetLastError = true)]
    public static partial int ObjectLoad(SafeBpfObjectHandle bpfObject);

    [LibraryImport(Lib, EntryPoint = "bpf_object__close")]
    public static partial void ObjectClose(nint bpfObject);

    [LibraryImport(Lib, EntryPoint = "bpf_object__find_map_by_name", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint ObjectFindMapByName(SafeBpfObjectHandle bpfObject, string name);

    [LibraryImport(Lib, EntryPoint = "bpf_object__next_map")]
    public static partial nint ObjectNextMap(SafeBpfObjectHandle bpfObject, nint previousMap);

    [LibraryImport(Lib, EntryPoint = "bpf_object__find_program_by_name", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint ObjectFindProgramByName(SafeBpfObjectHandle bpfObject, string name);

    // --- maps of an object --------------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "bpf_map__name")]
    private static partial byte* MapNameNative(nint map);

    public static string MapName(nint map) => Marshal.PtrToStringUTF8((nint)MapNameNative(map)) ?? "";

    [LibraryImport(Lib, EntryPoint = "bpf_map__type")]
    public static partial uint MapType(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__key_size")]
    public static partial uint MapKeySize(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__value_size")]
    public static partial uint MapValueSize(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__max_entries")]
    public static partial uint MapMaxEntries(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__map_flags")]
    public static partial uint MapFlags(nint map);

    [LibraryImport(Lib, EntryPoint = "bpf_map__set_value_size")]
    public static partial int MapSetValueSize(nint map, uint size);

    [LibraryImport(Lib, EntryPoint = "bpf_map__set_max_entries")]
    public static partial int MapSetMaxEntries(nint map, uint maxEntries);

    /// <summary>Makes the map use an existing kernel map (dups its descriptor) instead of creating one at load.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_map__reuse_fd")]
    public static partial int MapReuseFd(nint map, BpfMap existing);

    /// <summary>The map's descriptor, owned by the bpf_object (dup it to keep it).</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_map__fd")]
    public static partial int MapFd(nint map);

    /// <summary>The writable initial image of a global-data map (.rodata/.data/.bss) before load.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_map__initial_value")]
    public static partial void* MapInitialValue(nint map, nuint* size);

    [LibraryImport(Lib, EntryPoint = "bpf_program__name")]
    private static partial byte* ProgramNameNative(nint program);

    public static string ProgramName(nint program) => Marshal.PtrToStringUTF8((nint)ProgramNameNative(program)) ?? "";

    /// <summary>The program's descriptor, owned by the bpf_object (dup it to keep it).</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_program__fd")]
    public static partial int ProgramFd(nint program);

    // --- maps --------------------------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "bpf_map_lookup_batch", SetLastError = true)]
    public static partial int MapLookupBatch(BpfMap map, void* inBatch, void* outBatch, void* keys, void* values, uint* count, MapBatchOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_map_get_next_key", SetLastError = true)]
    public static partial int MapGetNextKey(BpfMap map, void* key, void* nextKey);

    [LibraryImport(Lib, EntryPoint = "bpf_map_lookup_elem", SetLastError = true)]
    public static partial int MapLookupElem(BpfMap map, void* key, void* value);

    [LibraryImport(Lib, EntryPoint = "bpf_map_update_elem", SetLastError = true)]
    public static partial int MapUpdateElem(BpfMap map, void* key, void* value, ulong flags);

    [LibraryImport(Lib, EntryPoint = "bpf_map_lookup_and_delete_elem", SetLastError = true)]
    public static partial int MapLookupAndDeleteElem(BpfMap map, void* key, void* value);

    // --- bpffs and info ----------------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "bpf_obj_pin", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int ObjPin(BpfDescriptor descriptor, string path);

    /// <summary>Opens a pinned object; returns a new descriptor the caller owns, or a negative errno.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_obj_get", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int ObjGet(string path);

    [LibraryImport(Lib, EntryPoint = "bpf_obj_get_info_by_fd", SetLastError = true)]
    public static partial int ObjGetInfoByFd(BpfDescriptor descriptor, void* info, uint* infoLength);

    // --- links -------------------------------------------------------------------------------

    /// <summary>BPF_LINK_CREATE; returns a link descriptor the caller owns, or a negative errno.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_link_create", SetLastError = true)]
    public static partial int LinkCreate(BpfProgram program, int target, uint attachType, LinkCreateOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_link_update", SetLastError = true)]
    public static partial int LinkUpdate(BpfLink link, BpfProgram newProgram, LinkUpdateOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_link_detach", SetLastError = true)]
    public static partial int LinkDetach(BpfLink link);

    // --- netlink tc (clsact) -----------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "bpf_tc_hook_create", SetLastError = true)]
    public static partial int TcHookCreate(TcHook* hook);

    /// <summary>The program goes in <see cref="TcOptions.ProgramFd"/>: see <see cref="NetlinkTc"/>.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_tc_attach", SetLastError = true)]
    public static partial int TcAttach(TcHook* hook, TcOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_tc_detach", SetLastError = true)]
    public static partial int TcDetach(TcHook* hook, TcOptions* options);

    [LibraryImport(Lib, EntryPoint = "bpf_tc_query", SetLastError = true)]
    public static partial int TcQuery(TcHook* hook, TcOptions* options);

    // --- programs ------------------------------------------------------------------------------

    [LibraryImport(Lib, EntryPoint = "bpf_prog_test_run_opts", SetLastError = true)]
    public static partial int ProgTestRunOpts(BpfProgram program, TestRunOptions* options);

    /// <summary>BPF_PROG_QUERY on an interface (<paramref name="ifIndex"/>) and attach type.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_prog_query", SetLastError = true)]
    public static partial int ProgQuery(int ifIndex, uint attachType, uint queryFlags, uint* attachFlags, uint* programIds, uint* programCount);

    /// <summary>BPF_ENABLE_STATS: returns a descriptor; statistics stay on while it is open.</summary>
    [LibraryImport(Lib, EntryPoint = "bpf_enable_stats", SetLastError = true)]
    private static partial int EnableStatsNative(int statsType);

    /// <summary>BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): run time and count are kept while the returned handle is open.</summary>
    public static SafeFileDescriptorHandle EnableRunTimeStats()
    {
        const int StatsRunTime = 0; // BPF_STATS_RUN_TIME
        return new SafeFileDescriptorHandle(BpfErrors.Check(EnableStatsNative(StatsRunTime), "bpf_enable_stats(BPF_STATS_RUN_TIME)"));
    }
}
