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
    /// <summary>`pending`: per-CPU counters of not yet confirmed sources (bpf/clients.h).</summary>
    public int PendingMapFd { get; private set; }
    /// <summary>`confirmed`: the prefilter bitmap of confirmed addresses (bpf/clients.h; not pinned).</summary>
    public int ConfirmedMapFd { get; private set; }
    /// <summary>Bytes of one `pending` value: struct pending_head + n_slots counters.</summary>
    public int PendingValueSize => KernelSizes.PendingHead + ValueSize;
    public int XdpIngressFd { get; private set; }
    public int TcEgressFd { get; private set; }
    public int TcIngressFd { get; private set; }

    /// <summary>Kernel memory of the per-CPU `clients` map: capacity × round_up(value, 8) × possible CPUs.</summary>
    public long ClientsMapBytes => (long)Capacity * KernelSizes.PerCpuStride(ValueSize) * PossibleCpus;
    /// <summary>Kernel memory of the per-CPU `pending` table of unconfirmed sources (bpf/clients.h).</summary>
    public long PendingMapBytes => (long)BpfConstants.PendingEntries * KernelSizes.PerCpuStride(PendingValueSize) * PossibleCpus;
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
        var pending = FindMap(BpfConstants.MapPending);
        var xdp = FindProgram(BpfConstants.ProgXdp);
        var tcEgress = FindProgram(BpfConstants.ProgTcEgress);
        var tcIngress = FindProgram(BpfConstants.ProgTcIngress);

        Check(LibBpf.MapSetValueSize(clients, (uint)ValueSize), "bpf_map__set_value_size(clients)");
        Check(LibBpf.MapSetValueSize(aggregates, (uint)ValueSize), "bpf_map__set_value_size(aggregates)");
        Check(LibBpf.MapSetMaxEntries(clients, (uint)Options.MaxClients), "bpf_map__set_max_entries(clients)");
        Check(LibBpf.MapSetValueSize(pending, (uint)PendingValueSize), "bpf_map__set_value_size(pending)");
        WriteSlotCount(path);

        if (Options.PinDirectory is { } pinDirectory)
            PrepareForPinnedMaps(pinDirectory, logger, (clients, aggregates, classes, pending));
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
        PendingMapFd = LibBpf.MapFd(pending);
        ConfirmedMapFd = LibBpf.MapFd(FindMap(BpfConstants.MapConfirmed));
        XdpIngressFd = LibBpf.ProgramFd(xdp);
        TcEgressFd = LibBpf.ProgramFd(tcEgress);
        TcIngressFd = LibBpf.ProgramFd(tcIngress);
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

    private unsafe void WriteSlotCount(string path)
    {
        nint rodata = 0;
        for (var map = LibBpf.ObjectNextMap(_object, 0); map != 0; map = LibBpf.ObjectNextMap(_object, map))
            if (LibBpf.MapName(map).EndsWith(".rodata", StringComparison.Ordinal)) rodata = map;
        if (rodata == 0)
            throw new OperatorException($"{path} has no .rodata (struct collector_config); it does not match this collector", "rebuild it with `make build`");
        nuint size;
        var image = LibBpf.MapInitialValue(rodata, &size);
        if (image == null || size < (nuint)sizeof(CollectorConfig))
            throw new OperatorException($"{path} has a .rodata of {size} bytes, too small for struct collector_config", "rebuild it with `make build`");
        ((CollectorConfig*)image)->NSlots = (uint)SlotCount;
    }

    private void PrepareForPinnedMaps(string pinDirectory, ILogger logger, (nint Clients, nint Aggregates, nint Classes, nint Pending) maps)
    {
        BpfFileSystem.EnsureMounted(logger, BpfFileSystem.MountPointOf(pinDirectory));
        Directory.CreateDirectory(pinDirectory);
        var wanted = new Dictionary<string, MapShape>(StringComparer.Ordinal)
        {
            [BpfConstants.MapClients] = MapShape.OfObjectMap(maps.Clients),
            [BpfConstants.MapAggregates] = MapShape.OfObjectMap(maps.Aggregates),
            [BpfConstants.MapClasses] = MapShape.OfObjectMap(maps.Classes),
            [BpfConstants.MapPending] = MapShape.OfObjectMap(maps.Pending),
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
            Check(LibBpf.MapReuseFd(maps.Pending, inspection.Reusable[BpfConstants.MapPending].Fd), "bpf_map__reuse_fd(pending)");
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
        Pin(PendingMapFd, pinDirectory, BpfConstants.MapPending);
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
        _ => throw new ArgumentException($"no program '{name}'", nameof(name)),
    };

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
