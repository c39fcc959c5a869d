namespace SiaExporter.Native;

/// <summary>
/// An eBPF object file opened with libbpf (bpf_object__open_file): its maps can be sized and
/// pointed at pinned maps before <see cref="Load"/>; after it, <see cref="ObjectMap.Descriptor"/>
/// and <see cref="ObjectProgram.Descriptor"/> give descriptors of our own that outlive this object.
/// </summary>
internal sealed class BpfObjectFile : IDisposable
{
    private readonly SafeBpfObjectHandle _object;

    private BpfObjectFile(SafeBpfObjectHandle bpfObject, string path)
    {
        _object = bpfObject;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Opens (parses, not loads) <paramref name="path"/>; throws <see cref="BpfException"/>
    /// with the errno (ENOENT: no such file; EINVAL, LIBBPF_ERRNO_*: not a usable object).</summary>
    public static unsafe BpfObjectFile Open(string path)
    {
        var bpfObject = LibBpf.ObjectOpenFile(path, null);
        if (bpfObject == 0) throw new BpfException($"bpf_object__open_file({path})", Errnos.Last());
        return new BpfObjectFile(new SafeBpfObjectHandle(bpfObject), path);
    }

    /// <summary>The map called <paramref name="name"/>, or null.</summary>
    public ObjectMap? FindMap(string name)
    {
        var map = LibBpf.ObjectFindMapByName(_object, name);
        return map == 0 ? null : new ObjectMap(this, map);
    }

    /// <summary>Every map, global-data maps (.rodata, .bss...) included.</summary>
    public IEnumerable<ObjectMap> Maps()
    {
        for (var map = LibBpf.ObjectNextMap(_object, 0); map != 0; map = LibBpf.ObjectNextMap(_object, map))
            yield return new ObjectMap(this, map);
    }

    /// <summary>The program called <paramref name="name"/>, or null.</summary>
    public ObjectProgram? FindProgram(string name)
    {
        var program = LibBpf.ObjectFindProgramByName(_object, name);
        return program == 0 ? null : new ObjectProgram(this, program);
    }

    /// <summary>Every program.</summary>
    public IEnumerable<ObjectProgram> Programs()
    {
        for (var program = LibBpf.ObjectNextProgram(_object, 0); program != 0; program = LibBpf.ObjectNextProgram(_object, program))
            yield return new ObjectProgram(this, program);
    }

    /// <summary>bpf_object__load: creates the maps and loads the programs; throws
    /// <see cref="BpfException"/> with the errno (EPERM: privileges; others: the verifier or the kernel refused).</summary>
    public void Load()
    {
        var errno = Errnos.FromReturn(LibBpf.ObjectLoad(_object));
        if (errno != Errno.None) throw new BpfException($"bpf_object__load({Path})", errno);
    }

    internal void ThrowIfClosed() => ObjectDisposedException.ThrowIf(_object.IsClosed, this);

    public void Dispose() => _object.Dispose();
}

/// <summary>A map of a <see cref="BpfObjectFile"/>; valid while the object is open.</summary>
internal readonly unsafe struct ObjectMap
{
    private readonly BpfObjectFile _owner;
    private readonly nint _map;

    internal ObjectMap(BpfObjectFile owner, nint map)
    {
        _owner = owner;
        _map = map;
    }

    private nint Map
    {
        get
        {
            _owner.ThrowIfClosed();
            return _map;
        }
    }

    public string Name => LibBpf.MapName(Map);
    public uint Type => LibBpf.MapType(Map);
    public uint KeySize => LibBpf.MapKeySize(Map);
    public uint ValueSize => LibBpf.MapValueSize(Map);
    public uint MaxEntries => LibBpf.MapMaxEntries(Map);
    public uint Flags => LibBpf.MapFlags(Map);

    public void SetValueSize(uint size) => BpfErrors.Check(LibBpf.MapSetValueSize(Map, size), $"bpf_map__set_value_size({Name})");

    public void SetMaxEntries(uint maxEntries) => BpfErrors.Check(LibBpf.MapSetMaxEntries(Map, maxEntries), $"bpf_map__set_max_entries({Name})");

    /// <summary>bpf_map__reuse_fd: the load uses <paramref name="existing"/> (libbpf keeps its own
    /// copy of the descriptor) instead of creating the map.</summary>
    public void Reuse(BpfMap existing) => BpfErrors.Check(LibBpf.MapReuseFd(Map, existing), $"bpf_map__reuse_fd({Name})");

    /// <summary>The writable initial image of a global-data map before load; empty when it has none.</summary>
    public Span<byte> InitialValue()
    {
        nuint size;
        var image = LibBpf.MapInitialValue(Map, &size);
        return image == null ? [] : new Span<byte>(image, (int)size);
    }

    /// <summary>After load: a descriptor of our own for the map.</summary>
    public BpfMap Descriptor() => BpfMap.Duplicate(BpfErrors.Check(LibBpf.MapFd(Map), $"bpf_map__fd({Name})"), Name);
}

/// <summary>A program of a <see cref="BpfObjectFile"/>; valid while the object is open.</summary>
internal readonly struct ObjectProgram
{
    private readonly BpfObjectFile _owner;
    private readonly nint _program;

    internal ObjectProgram(BpfObjectFile owner, nint program)
    {
        _owner = owner;
        _program = program;
    }

    private nint Program
    {
        get
        {
            _owner.ThrowIfClosed();
            return _program;
        }
    }

    public string Name => LibBpf.ProgramName(Program);

    /// <summary>prog_flags of its load (<see cref="ProgramFlags"/>).</summary>
    public uint Flags => LibBpf.ProgramFlags(Program);

    public void SetFlags(uint flags) => BpfErrors.Check(LibBpf.ProgramSetFlags(Program, flags), $"bpf_program__set_flags({Name})");

    /// <summary>false: the load leaves this program out.</summary>
    public void SetAutoload(bool autoload) => BpfErrors.Check(LibBpf.ProgramSetAutoload(Program, autoload), $"bpf_program__set_autoload({Name})");

    /// <summary>Loads it for interface <paramref name="ifIndex"/> (with <see cref="ProgramFlags.XdpDevBoundOnly"/>: device-bound).</summary>
    public void SetIfIndex(int ifIndex) => LibBpf.ProgramSetIfIndex(Program, (uint)ifIndex);

    /// <summary>After load: a descriptor of our own for the program.</summary>
    public BpfProgram Descriptor() => BpfProgram.Duplicate(BpfErrors.Check(LibBpf.ProgramFd(Program), $"bpf_program__fd({Name})"), Name);
}
