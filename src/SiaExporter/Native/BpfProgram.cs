namespace SiaExporter.Native;

/// <summary>A loaded BPF program we hold a descriptor of.</summary>
internal sealed class BpfProgram : BpfDescriptor
{
    private uint _id;

    private BpfProgram(int fd, string name) : base(fd) => Name = name;

    public string Name { get; }

    /// <summary>Takes ownership of a copy of a descriptor libbpf owns.</summary>
    internal static BpfProgram Duplicate(int fd, string name) => new(DuplicateDescriptor(fd, $"dup(program {name})"), name);

    /// <summary>bpf_prog_info: id, name, run time and count (while statistics are on).</summary>
    public BpfProgramInfo Info() => Info<BpfProgramInfo>($"bpf_obj_get_info_by_fd(program {Name})");

    /// <summary>The kernel's id of the program (what bpftool and link info show).</summary>
    public uint Id => _id != 0 ? _id : _id = Info().Id;
}
