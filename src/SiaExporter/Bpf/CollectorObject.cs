using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>What the loader needs: the object file, the port classes, the map capacity and
/// where to pin (null: no pinning, every map is fresh and private to this process). The values
/// come from the settings, which validated them; the loader has no defaults of its own.</summary>
internal sealed record CollectorObjectOptions(string ObjectPath, PortClassSet Classes, int MaxClients, string? PinDirectory);

/// <summary>How the counter maps of this run came to be.</summary>
internal enum PinnedMapsOutcome
{
    /// <summary>No pinning asked for: private maps.</summary>
    NotPinned,
    /// <summary>Nothing was pinned: fresh maps, now pinned.</summary>
    Created,
    /// <summary>The pinned maps matched and are used: counters continue.</summary>
    Reused,
    /// <summary>The pinned maps did not match (PORTS/MAX_CLIENTS changed): replaced, counters restart at zero.</summary>
    Recreated,
}

/// <summary>
/// The loaded collector.bpf.o: maps sized for the port classes and capacity, n_slots in .rodata,
/// counter maps pinned (and reused across restarts when they still fit), class and port tables
/// written. Owns a descriptor of each map and program it hands out; libbpf's object is closed
/// once they are loaded.
/// <para>It checks nothing about the host beforehand (privileges, libbpf, kernel, the file being
/// there: <c>Hosting.Preflight</c> does, once); it reports what goes wrong while loading.</para>
/// </summary>
internal sealed unsafe class CollectorObject : IDisposable
{
    private readonly Dictionary<string, BpfMap> _maps;

    private CollectorObject(CollectorObjectOptions options, Dictionary<string, BpfMap> maps, LoadedPrograms programs, PinnedMapsDecision pinned)
    {
        Options = options;
        Classes = options.Classes;
        _maps = maps;
        ClientsMap = Map(BpfConstants.MapClients);
        AggregatesMap = Map(BpfConstants.MapAggregates);
        ClassesMap = Map(BpfConstants.MapClasses);
        PortsMap = Map(BpfConstants.MapPorts);
        PendingMap = Map(BpfConstants.MapPending);
        ConfirmedMap = Map(BpfConstants.MapConfirmed);
        QdiscDropsMap = Map(BpfConstants.MapQdiscDrops);
        CountedIfindexMap = Map(BpfConstants.MapCountedIfindex);
        XdpIngress = programs.XdpIngress;
        TcEgress = programs.TcEgress;
        TcIngress = programs.TcIngress;
        TcEgressL3 = programs.TcEgressL3;
        TcIngressL3 = programs.TcIngressL3;
        QdiscDrop = programs.QdiscDrop;
        MapsOutcome = pinned.Outcome;
        RecreateReasons = pinned.Reasons;
    }

    public CollectorObjectOptions Options { get; }
    public PortClassSet Classes { get; }
    /// <summary>Counter slots of one value: (class, direction) pairs.</summary>
    public int SlotCount => Classes.SlotCount;
    /// <summary>Bytes of one value of `clients`/`aggregates` (n_slots × 16).</summary>
    public int ValueSize => SlotCount * KernelSizes.Counter;
    /// <summary>max_entries of `clients` (MAX_CLIENTS).</summary>
    public int Capacity { get; private set; }
    public int PossibleCpus { get; private set; }
    public PinnedMapsOutcome MapsOutcome { get; }
    /// <summary>Why the pinned maps were replaced (empty unless <see cref="PinnedMapsOutcome.Recreated"/>).</summary>
    public IReadOnlyList<string> RecreateReasons { get; }
    public MapGeneration Generation { get; private set; }

    public BpfMap ClientsMap { get; }
    public BpfMap AggregatesMap { get; }
    public BpfMap ClassesMap { get; }
    public BpfMap PortsMap { get; }
    /// <summary>`pending`: per-CPU counters of not yet confirmed sources (bpf/clients.h).</summary>
    public BpfMap PendingMap { get; }
    /// <summary>`confirmed`: the prefilter bitmap of confirmed addresses (bpf/clients.h; not pinned).</summary>
    public BpfMap ConfirmedMap { get; }
    /// <summary>Bytes of one `pending` value: struct pending_head + n_slots counters.</summary>
    public int PendingValueSize => KernelSizes.PendingHead + ValueSize;
    /// <summary>Per slot, what a shaping qdisc dropped after tc_egress counted it (qdisc_drop's output).</summary>
    public BpfMap QdiscDropsMap { get; }
    /// <summary>The interfaces qdisc_drop watches (ifindex → 1).</summary>
    public BpfMap CountedIfindexMap { get; }
    public BpfProgram XdpIngress { get; }
    public BpfProgram TcEgress { get; }
    public BpfProgram TcIngress { get; }
    /// <summary>tc_egress for links without a link header (tun, WireGuard, PPP, raw IP).</summary>
    public BpfProgram TcEgressL3 { get; }
    /// <summary>tc_ingress for links without a link header.</summary>
    public BpfProgram TcIngressL3 { get; }
    /// <summary>qdisc_drop (tp_btf/kfree_skb); null on a kernel without drop reasons (&lt; 5.17), where it is not loaded.</summary>
    public BpfProgram? QdiscDrop { get; }

    /// <summary>Kernel memory of the per-CPU `clients` map: capacity × round_up(value, 8) × possible CPUs.</summary>
    public long ClientsMapBytes => (long)Capacity * KernelSizes.PerCpuStride(ValueSize) * PossibleCpus;
    /// <summary>Kernel memory of the per-CPU `pending` table of unconfirmed sources (bpf/clients.h).</summary>
    public long PendingMapBytes => (long)BpfConstants.PendingEntries * KernelSizes.PerCpuStride(PendingValueSize) * PossibleCpus;
    /// <summary>Both per-CPU maps (clients + aggregates).</summary>
    public long PerCpuMapBytes => (long)(Capacity + BpfConstants.AggEntries) * KernelSizes.PerCpuStride(ValueSize) * PossibleCpus;

    private sealed record LoadedPrograms(BpfProgram XdpIngress, BpfProgram TcEgress, BpfProgram TcIngress,
        BpfProgram TcEgressL3, BpfProgram TcIngressL3, BpfProgram? QdiscDrop);

    private sealed record PinnedMapsDecision(PinnedMapsOutcome Outcome, IReadOnlyList<string> Reasons);

    /// <summary>Opens, sizes, pins and loads the object. Throws <see cref="OperatorException"/> for
    /// anything the operator must fix (missing or corrupt file, privileges, a kernel that refuses it).</summary>
    public static CollectorObject Load(CollectorObjectOptions options, ILogger logger)
    {
        LibBpfLog.Route(logger);
        var path = options.ObjectPath;
        using var file = Open(path);
        var clients = RequireMap(file, BpfConstants.MapClients);
        var aggregates = RequireMap(file, BpfConstants.MapAggregates);
        var classes = RequireMap(file, BpfConstants.MapClasses);
        var ports = RequireMap(file, BpfConstants.MapPorts);
        var pending = RequireMap(file, BpfConstants.MapPending);
        RequireMap(file, BpfConstants.MapConfirmed);
        var xdp = RequireProgram(file, BpfConstants.ProgXdp);
        var tcEgress = RequireProgram(file, BpfConstants.ProgTcEgress);
        var tcIngress = RequireProgram(file, BpfConstants.ProgTcIngress);
        var tcEgressL3 = RequireProgram(file, BpfConstants.ProgTcEgressL3);
        var tcIngressL3 = RequireProgram(file, BpfConstants.ProgTcIngressL3);
        var qdiscDrop = RequireProgram(file, BpfConstants.ProgQdiscDrop);
        var qdiscDrops = RequireMap(file, BpfConstants.MapQdiscDrops);
        RequireMap(file, BpfConstants.MapCountedIfindex);

        var valueSize = (uint)(options.Classes.SlotCount * KernelSizes.Counter);
        clients.SetValueSize(valueSize);
        aggregates.SetValueSize(valueSize);
        qdiscDrops.SetValueSize(valueSize);
        clients.SetMaxEntries((uint)options.MaxClients);
        pending.SetValueSize((uint)(KernelSizes.PendingHead + valueSize));
        WriteSlotCount(file, options.Classes.SlotCount);
        // Loaded per interface, device-bound, by DeviceBoundXdp; here it would be refused.
        file.FindProgram(BpfConstants.ProgXdpRxVlan)?.SetAutoload(false);
        var features = KernelFeatures.Probe();
        // qdisc_drop reads the kfree_skb tracepoint's drop reason (kernel 5.17); older: not loaded
        if (!features.HasDropReasons) qdiscDrop.SetAutoload(false);
        // A kernel without multi-buffer XDP refuses the flag: load single-buffer (no jumbo frames on native XDP)
        if (!features.HasXdpFrags) xdp.SetFlags(xdp.Flags & ~ProgramFlags.XdpHasFrags);

        var pinned = options.PinDirectory is { } pinDirectory
            ? PrepareForPinnedMaps(pinDirectory, options.Classes, logger, clients, aggregates, classes, pending)
            : new PinnedMapsDecision(PinnedMapsOutcome.NotPinned, []);

        try
        {
            file.Load();
        }
        catch (BpfException e) when (e.Errno == Errno.EPERM)
        {
            throw new OperatorException("permission denied loading eBPF", BpfErrors.PrivilegeHint, e);
        }
        catch (BpfException e)
        {
            throw new OperatorException($"the kernel rejected {path} ({e.ErrnoName})",
                "see the libbpf messages logged above; rebuild with `make build` for this kernel", e);
        }

        // Our own descriptors, taken one by one so a failure half-way closes those already taken.
        var owned = new List<IDisposable>();
        T Own<T>(T descriptor) where T : IDisposable
        {
            owned.Add(descriptor);
            return descriptor;
        }
        try
        {
            var maps = new Dictionary<string, BpfMap>(StringComparer.Ordinal);
            foreach (var map in file.Maps())
                if (!IsGlobalData(map.Name)) maps[map.Name] = Own(map.Descriptor());
            var loaded = new CollectorObject(options, maps,
                new LoadedPrograms(Own(xdp.Descriptor()), Own(tcEgress.Descriptor()), Own(tcIngress.Descriptor()),
                    Own(tcEgressL3.Descriptor()), Own(tcIngressL3.Descriptor()), features.HasDropReasons ? Own(qdiscDrop.Descriptor()) : null),
                pinned);
            loaded.Initialize(clients.MaxEntries);
            return loaded;
        }
        catch
        {
            foreach (var descriptor in owned) descriptor.Dispose();
            throw;
        }
    }

    /// <summary>After load: the tables, the pins of fresh maps, and what identifies this incarnation of the maps.</summary>
    private void Initialize(uint capacity)
    {
        Capacity = (int)capacity;
        PossibleCpus = BpfErrors.Check(LibBpf.NumPossibleCpus(), "libbpf_num_possible_cpus");
        PortTable.Write(PortsMap, Classes);
        if (MapsOutcome != PinnedMapsOutcome.Reused)
        {
            ClassTable.Write(ClassesMap, Classes);
            if (Options.PinDirectory is { } dir) PinFreshMaps(dir);
        }
        Generation = new MapGeneration(BootId(), ClientsMap.Info().Id);
    }

    private static BpfObjectFile Open(string path)
    {
        try
        {
            return BpfObjectFile.Open(path);
        }
        catch (BpfException e) when (e.Errno == Errno.ENOENT)
        {
            throw new OperatorException($"the eBPF object {path} does not exist", "build it with `make build` (or point BPF_OBJECT at it)", e);
        }
        catch (BpfException e)
        {
            throw new OperatorException($"{path} is not a valid eBPF object ({e.ErrnoName})", "rebuild it with `make build`", e);
        }
    }

    /// <summary>n_slots into the .rodata image of <paramref name="file"/> (before its load).</summary>
    internal static void WriteSlotCount(BpfObjectFile file, int slotCount)
    {
        ObjectMap? rodata = null;
        foreach (var map in file.Maps())
            if (map.Name.EndsWith(".rodata", StringComparison.Ordinal)) rodata = map;
        if (rodata is not { } found)
            throw new OperatorException($"{file.Path} has no .rodata (struct collector_config); it does not match this collector", "rebuild it with `make build`");
        var image = found.InitialValue();
        if (image.Length < sizeof(CollectorConfig))
            throw new OperatorException($"{file.Path} has a .rodata of {image.Length} bytes, too small for struct collector_config", "rebuild it with `make build`");
        System.Runtime.InteropServices.MemoryMarshal.AsRef<CollectorConfig>(image).NSlots = (uint)slotCount;
    }

    private static PinnedMapsDecision PrepareForPinnedMaps(string pinDirectory, PortClassSet classes, ILogger logger,
        ObjectMap clients, ObjectMap aggregates, ObjectMap classInfo, ObjectMap pending)
    {
        BpfFileSystem.EnsureMounted(logger, BpfFileSystem.MountPointOf(pinDirectory));
        BpfFileSystem.CreatePinDirectory(pinDirectory);
        var wanted = new Dictionary<string, MapShape>(StringComparer.Ordinal)
        {
            [BpfConstants.MapClients] = MapShape.Of(clients),
            [BpfConstants.MapAggregates] = MapShape.Of(aggregates),
            [BpfConstants.MapClasses] = MapShape.Of(classInfo),
            [BpfConstants.MapPending] = MapShape.Of(pending),
        };
        using var inspection = PinnedMaps.Inspect(pinDirectory, wanted, classes);
        if (inspection.NothingPinned)
        {
            logger.LogInformation("no counter maps pinned under {PinDirectory}: creating them", pinDirectory);
            return new PinnedMapsDecision(PinnedMapsOutcome.Created, []);
        }
        if (inspection.CanReuse)
        {
            clients.Reuse(inspection.Reusable[BpfConstants.MapClients]);
            aggregates.Reuse(inspection.Reusable[BpfConstants.MapAggregates]);
            classInfo.Reuse(inspection.Reusable[BpfConstants.MapClasses]);
            pending.Reuse(inspection.Reusable[BpfConstants.MapPending]);
            logger.LogInformation("reusing the counter maps pinned under {PinDirectory}: counters continue", pinDirectory);
            return new PinnedMapsDecision(PinnedMapsOutcome.Reused, []);
        }
        var reasons = inspection.Differences.ToArray();
        logger.LogWarning(
            "the counter maps pinned under {PinDirectory} do not fit this configuration ({Changes}); replacing them: every counter restarts at zero",
            pinDirectory, string.Join("; ", reasons));
        PinnedMaps.Unpin(pinDirectory);
        return new PinnedMapsDecision(PinnedMapsOutcome.Recreated, reasons);
    }

    private void PinFreshMaps(string pinDirectory)
    {
        Pin(ClientsMap, pinDirectory);
        Pin(AggregatesMap, pinDirectory);
        Pin(ClassesMap, pinDirectory);
        Pin(PendingMap, pinDirectory);
    }

    private static void Pin(BpfMap map, string pinDirectory)
    {
        var path = PinnedMaps.PathOf(pinDirectory, map.Name);
        if (File.Exists(path)) File.Delete(path); // a partial leftover; the complete set was not reusable
        map.Pin(path);
    }

    /// <summary>The program called <paramref name="name"/> (xdp_ingress, tc_egress, tc_ingress, tc_egress_l3, tc_ingress_l3).</summary>
    public BpfProgram Program(string name) => name switch
    {
        BpfConstants.ProgXdp => XdpIngress,
        BpfConstants.ProgTcEgress => TcEgress,
        BpfConstants.ProgTcIngress => TcIngress,
        BpfConstants.ProgTcEgressL3 => TcEgressL3,
        BpfConstants.ProgTcIngressL3 => TcIngressL3,
        _ => throw new ArgumentException($"no program '{name}'", nameof(name)),
    };

    /// <summary>This object's map called <paramref name="name"/> (global-data maps excepted), valid while the object lives.</summary>
    public BpfMap Map(string name) =>
        _maps.TryGetValue(name, out var map) ? map : throw new ArgumentException($"no map '{name}'", nameof(name));

    /// <summary>Every map but the global-data ones (.rodata, .bss), by name: what a second load of this
    /// object file reuses (<see cref="DeviceBoundXdp"/>).</summary>
    public IReadOnlyDictionary<string, BpfMap> Maps => _maps;

    /// <summary>A map libbpf made for global data (&lt;object&gt;.rodata, .bss, .data): each load has its own.</summary>
    internal static bool IsGlobalData(string mapName) => mapName.Contains('.', StringComparison.Ordinal);

    private static ObjectMap RequireMap(BpfObjectFile file, string name) =>
        file.FindMap(name) ?? throw new OperatorException(
            $"{file.Path} has no map '{name}'; it does not match this collector", "rebuild it with `make build`");

    private static ObjectProgram RequireProgram(BpfObjectFile file, string name) =>
        file.FindProgram(name) ?? throw new OperatorException(
            $"{file.Path} has no program '{name}'; it does not match this collector", "rebuild it with `make build`");

    private static string BootId() => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();

    public void Dispose()
    {
        foreach (var map in _maps.Values) map.Dispose();
        XdpIngress.Dispose();
        TcEgress.Dispose();
        TcIngress.Dispose();
        TcEgressL3.Dispose();
        TcIngressL3.Dispose();
        QdiscDrop?.Dispose();
    }
}
