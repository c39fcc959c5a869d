using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>What the loader needs: the object file, the port classes, the map capacity and
/// where to pin (null: no pinning, every map is fresh and private to this process).</summary>
internal sealed record CollectorObjectOptions(
    string ObjectPath,
    PortClassSet Classes,
    int MaxClients = BpfConstants.DefaultMaxClients,
    string? PinDirectory = CollectorObjectOptions.DefaultPinDirectory)
{
    public const string DefaultPinDirectory = "/sys/fs/bpf/collector";
}

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
/// written. Owns the libbpf object; every fd it hands out lives as long as it does.
/// </summary>
internal sealed unsafe class CollectorObject : IDisposable
{
    private readonly SafeBpfObjectHandle _object;

    private CollectorObject(SafeBpfObjectHandle bpfObject, CollectorObjectOptions options)
    {
        _object = bpfObject;
        Options = options;
        Classes = options.Classes;
    }

    public CollectorObjectOptions Options { get; }
    public PortClassSet Classes { get; }
    public int SlotCount => Classes.SlotCount;
    /// <summary>Bytes of one value of `clients`/`aggregates` (n_slots × 16).</summary>
    public int ValueSize => SlotCount * KernelSizes.Counter;
    /// <summary>max_entries of `clients` (MAX_CLIENTS).</summary>
    public int Capacity { get; private set; }
    public int PossibleCpus { get; private set; }
    public PinnedMapsOutcome MapsOutcome { get; private set; }
    /// <summary>Why the pinned maps were replaced (empty unless <see cref="PinnedMapsOutcome.Recreated"/>).</summary>
    public IReadOnlyList<string> RecreateReasons { get; private set; } = [];
    public MapGeneration Generation { get; private set; }

    public int ClientsMapFd { get; private set; }
    public int AggregatesMapFd { get; private set; }
    public int ClassesMapFd { get; private set; }
    public int PortsMapFd { get; private set; }
    public int XdpIngressFd { get; private set; }
    public int TcEgressFd { get; private set; }
    public int TcIngressFd { get; private set; }
    /// <summary>tc_egress for links without a link header (tun, WireGuard, PPP, raw IP).</summary>
    public int TcEgressL3Fd { get; private set; }
    /// <summary>tc_ingress for links without a link header.</summary>
    public int TcIngressL3Fd { get; private set; }
    /// <summary>qdisc_drop (tp_btf/kfree_skb); -1 on a kernel without drop reasons (&lt; 5.17), where it is not loaded.</summary>
    public int QdiscDropFd { get; private set; } = -1;

    /// <summary>Kernel memory of the per-CPU `clients` map: capacity × round_up(value, 8) × possible CPUs.</summary>
    public long ClientsMapBytes => (long)Capacity * KernelSizes.PerCpuStride(ValueSize) * PossibleCpus;
    /// <summary>Both per-CPU maps (clients + aggregates).</summary>
    public long PerCpuMapBytes => (long)(Capacity + BpfConstants.AggEntries) * KernelSizes.PerCpuStride(ValueSize) * PossibleCpus;

    /// <summary>Opens, sizes, pins and loads the object. Throws <see cref="OperatorException"/> for
    /// anything the operator must fix (missing or corrupt file, privileges, old kernel).</summary>
    public static CollectorObject Load(CollectorObjectOptions options, ILogger logger)
    {
        NativeLibraryResolver.EnsureLibBpf();
        LibBpfLog.Route(logger);
        KernelFeatures.Probe().RequireForLoad();
        if (options.MaxClients < 1)
            throw new OperatorException($"MAX_CLIENTS {options.MaxClients} is too small", "set MAX_CLIENTS to 1 or more (default 16384)");

        var loaded = new CollectorObject(Open(options.ObjectPath), options);
        try
        {
            loaded.LoadIntoKernel(logger);
            return loaded;
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    private static SafeBpfObjectHandle Open(string path)
    {
        if (!File.Exists(path))
            throw new OperatorException($"the eBPF object {path} does not exist", "build it with `make build` (or point BPF_OBJECT at it)");
        var bpfObject = LibBpf.ObjectOpenFile(path, null);
        if (bpfObject == 0)
        {
            var errno = Errno.Last();
            throw new OperatorException($"{path} is not a valid eBPF object ({Errno.Name(errno)})", "rebuild it with `make build`");
        }
        return new SafeBpfObjectHandle(bpfObject);
    }

    private void LoadIntoKernel(ILogger logger)
    {
        var path = Options.ObjectPath;
        var clients = FindMap(BpfConstants.MapClients);
        var aggregates = FindMap(BpfConstants.MapAggregates);
        var classes = FindMap(BpfConstants.MapClasses);
        var ports = FindMap(BpfConstants.MapPorts);
        var xdp = FindProgram(BpfConstants.ProgXdp);
        var tcEgress = FindProgram(BpfConstants.ProgTcEgress);
        var tcIngress = FindProgram(BpfConstants.ProgTcIngress);
        var tcEgressL3 = FindProgram(BpfConstants.ProgTcEgressL3);
        var tcIngressL3 = FindProgram(BpfConstants.ProgTcIngressL3);

        Check(LibBpf.MapSetValueSize(clients, (uint)ValueSize), "bpf_map__set_value_size(clients)");
        Check(LibBpf.MapSetValueSize(aggregates, (uint)ValueSize), "bpf_map__set_value_size(aggregates)");
        Check(LibBpf.MapSetMaxEntries(clients, (uint)Options.MaxClients), "bpf_map__set_max_entries(clients)");
        WriteSlotCount(_object, path, SlotCount);
        // Loaded per interface, device-bound, by DeviceBoundXdp; here it would be refused.
        var rxVlan = LibBpf.ObjectFindProgramByName(_object, BpfConstants.ProgXdpRxVlan);
        if (rxVlan != 0) Check(LibBpf.ProgramSetAutoload(rxVlan, false), "bpf_program__set_autoload(xdp_rx_vlan)");
        // qdisc_drop reads the kfree_skb tracepoint's drop reason (kernel 5.17); older: not loaded
        var qdiscDrop = FindProgram(BpfConstants.ProgQdiscDrop);
        if (!KernelFeatures.Probe().HasDropReasons) Check(LibBpf.ProgramSetAutoload(qdiscDrop, false), "bpf_program__set_autoload(qdisc_drop)");
        Check(LibBpf.MapSetValueSize(FindMap(BpfConstants.MapQdiscDrops), (uint)ValueSize), "bpf_map__set_value_size(qdisc_drops)");
        // A kernel without multi-buffer XDP refuses the flag: load single-buffer (no jumbo frames on native XDP)
        if (!KernelFeatures.Probe().HasXdpFrags)
            Check(LibBpf.ProgramSetFlags(xdp, LibBpf.ProgramFlags(xdp) & ~ProgramFlags.XdpHasFrags), "bpf_program__set_flags(xdp_ingress)");

        if (Options.PinDirectory is { } pinDirectory)
            PrepareForPinnedMaps(pinDirectory, logger, (clients, aggregates, classes));
        else
            MapsOutcome = PinnedMapsOutcome.NotPinned;

        var result = LibBpf.ObjectLoad(_object.DangerousGetHandle());
        if (result < 0)
        {
            var errno = Errno.Of(result);
            if (errno == Errno.EPERM)
                throw new OperatorException("permission denied loading eBPF", BpfErrors.PrivilegeHint);
            throw new OperatorException($"the kernel rejected {path} ({Errno.Name(errno)})",
                "see the libbpf messages logged above; rebuild with `make build` for this kernel");
        }

        ClientsMapFd = LibBpf.MapFd(clients);
        AggregatesMapFd = LibBpf.MapFd(aggregates);
        ClassesMapFd = LibBpf.MapFd(classes);
        PortsMapFd = LibBpf.MapFd(ports);
        XdpIngressFd = LibBpf.ProgramFd(xdp);
        TcEgressFd = LibBpf.ProgramFd(tcEgress);
        TcIngressFd = LibBpf.ProgramFd(tcIngress);
        TcEgressL3Fd = LibBpf.ProgramFd(tcEgressL3);
        TcIngressL3Fd = LibBpf.ProgramFd(tcIngressL3);
        QdiscDropFd = KernelFeatures.Probe().HasDropReasons ? LibBpf.ProgramFd(qdiscDrop) : -1;
        Capacity = (int)LibBpf.MapMaxEntries(clients);
        PossibleCpus = BpfErrors.Check(LibBpf.NumPossibleCpus(), "libbpf_num_possible_cpus");

        PortTable.Write(PortsMapFd, Classes);
        if (MapsOutcome != PinnedMapsOutcome.Reused)
        {
            ClassTable.Write(ClassesMapFd, Classes);
            if (Options.PinDirectory is { } dir) PinFreshMaps(dir);
        }
        Generation = new MapGeneration(BootId(), BpfInfo.OfMap(ClientsMapFd).Id);
    }

    /// <summary>n_slots into the .rodata image of <paramref name="bpfObject"/> (before its load).</summary>
    internal static unsafe void WriteSlotCount(SafeBpfObjectHandle bpfObject, string path, int slotCount)
    {
        nint rodata = 0;
        for (var map = LibBpf.ObjectNextMap(bpfObject, 0); map != 0; map = LibBpf.ObjectNextMap(bpfObject, map))
            if (LibBpf.MapName(map).EndsWith(".rodata", StringComparison.Ordinal)) rodata = map;
        if (rodata == 0)
            throw new OperatorException($"{path} has no .rodata (struct collector_config); it does not match this collector", "rebuild it with `make build`");
        nuint size;
        var image = LibBpf.MapInitialValue(rodata, &size);
        if (image == null || size < (nuint)sizeof(CollectorConfig))
            throw new OperatorException($"{path} has a .rodata of {size} bytes, too small for struct collector_config", "rebuild it with `make build`");
        ((CollectorConfig*)image)->NSlots = (uint)slotCount;
    }

    private void PrepareForPinnedMaps(string pinDirectory, ILogger logger, (nint Clients, nint Aggregates, nint Classes) maps)
    {
        BpfFileSystem.EnsureMounted(logger, BpfFileSystem.MountPointOf(pinDirectory));
        Directory.CreateDirectory(pinDirectory);
        var wanted = new Dictionary<string, MapShape>(StringComparer.Ordinal)
        {
            [BpfConstants.MapClients] = MapShape.OfObjectMap(maps.Clients),
            [BpfConstants.MapAggregates] = MapShape.OfObjectMap(maps.Aggregates),
            [BpfConstants.MapClasses] = MapShape.OfObjectMap(maps.Classes),
        };
        using var inspection = PinnedMaps.Inspect(pinDirectory, wanted, Classes);
        if (inspection.NothingPinned)
        {
            logger.LogInformation("no counter maps pinned under {PinDirectory}: creating them", pinDirectory);
            MapsOutcome = PinnedMapsOutcome.Created;
            return;
        }
        if (inspection.CanReuse)
        {
            Check(LibBpf.MapReuseFd(maps.Clients, inspection.Reusable[BpfConstants.MapClients].Fd), "bpf_map__reuse_fd(clients)");
            Check(LibBpf.MapReuseFd(maps.Aggregates, inspection.Reusable[BpfConstants.MapAggregates].Fd), "bpf_map__reuse_fd(aggregates)");
            Check(LibBpf.MapReuseFd(maps.Classes, inspection.Reusable[BpfConstants.MapClasses].Fd), "bpf_map__reuse_fd(class_info)");
            logger.LogInformation("reusing the counter maps pinned under {PinDirectory}: counters continue", pinDirectory);
            MapsOutcome = PinnedMapsOutcome.Reused;
            return;
        }
        RecreateReasons = inspection.Differences.ToArray();
        logger.LogWarning(
            "the counter maps pinned under {PinDirectory} do not fit this configuration ({Changes}); replacing them: every counter restarts at zero",
            pinDirectory, string.Join("; ", RecreateReasons));
        PinnedMaps.Unpin(pinDirectory);
        MapsOutcome = PinnedMapsOutcome.Recreated;
    }

    private void PinFreshMaps(string pinDirectory)
    {
        Pin(ClientsMapFd, pinDirectory, BpfConstants.MapClients);
        Pin(AggregatesMapFd, pinDirectory, BpfConstants.MapAggregates);
        Pin(ClassesMapFd, pinDirectory, BpfConstants.MapClasses);
    }

    private static void Pin(int fd, string pinDirectory, string name)
    {
        var path = PinnedMaps.PathOf(pinDirectory, name);
        if (File.Exists(path)) File.Delete(path); // a partial leftover; the complete set was not reusable
        BpfErrors.Check(LibBpf.ObjPin(fd, path), $"bpf_obj_pin({path})");
    }

    public int ProgramFd(string name) => name switch
    {
        BpfConstants.ProgXdp => XdpIngressFd,
        BpfConstants.ProgTcEgress => TcEgressFd,
        BpfConstants.ProgTcIngress => TcIngressFd,
        BpfConstants.ProgTcEgressL3 => TcEgressL3Fd,
        BpfConstants.ProgTcIngressL3 => TcIngressL3Fd,
        _ => throw new ArgumentException($"no program '{name}'", nameof(name)),
    };

    /// <summary>The fd of this object's map <paramref name="name"/> (valid while the object lives).</summary>
    public int MapFd(string name) => LibBpf.MapFd(FindMap(name));

    private nint FindMap(string name)
    {
        var map = LibBpf.ObjectFindMapByName(_object, name);
        return map != 0 ? map : throw new OperatorException(
            $"{Options.ObjectPath} has no map '{name}'; it does not match this collector", "rebuild it with `make build`");
    }

    private nint FindProgram(string name)
    {
        var program = LibBpf.ObjectFindProgramByName(_object, name);
        return program != 0 ? program : throw new OperatorException(
            $"{Options.ObjectPath} has no program '{name}'; it does not match this collector", "rebuild it with `make build`");
    }

    private static void Check(int result, string operation) => BpfErrors.Check(result, operation);

    private static string BootId() => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();

    public void Dispose() => _object.Dispose();
}
