using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>
/// A BPF map we hold a descriptor of. Element calls take keys and values as byte spans of the
/// map's key and value sizes (per-CPU maps: one value per possible CPU, each rounded up to 8
/// bytes). Calls that may fail by design (no such key, end of map) return the <see cref="Errno"/>;
/// the rest throw.
/// </summary>
internal sealed unsafe class BpfMap : BpfDescriptor
{
    private BpfMap(int fd, string name) : base(fd) => Name = name;

    /// <summary>The map's name, for error messages ("bpf_map_update_elem(class_info)").</summary>
    public string Name { get; }

    /// <summary>Takes ownership of a copy of a descriptor libbpf owns.</summary>
    internal static BpfMap Duplicate(int fd, string name) => new(DuplicateDescriptor(fd, $"dup(map {name})"), name);

    /// <summary>The map pinned at <paramref name="path"/>, or null when nothing is pinned there.</summary>
    public static BpfMap? OpenPinned(string path)
    {
        var fd = OpenPinnedDescriptor(path);
        return fd < 0 ? null : new BpfMap(fd, Path.GetFileName(path));
    }

    public BpfMapInfo Info() => Info<BpfMapInfo>($"bpf_obj_get_info_by_fd(map {Name})");

    public Errno Lookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
            return Errnos.FromReturn(LibBpf.MapLookupElem(this, k, v));
    }

    /// <summary>The value of <paramref name="key"/>; throws when there is none.</summary>
    public TValue Lookup<TKey, TValue>(in TKey key) where TKey : unmanaged where TValue : unmanaged
    {
        TValue value = default;
        BpfErrors.Check(Lookup(AsBytes(in key), MemoryMarshal.AsBytes(new Span<TValue>(ref value))), $"bpf_map_lookup_elem({Name})");
        return value;
    }

    /// <summary>Looks <paramref name="key"/> up into <paramref name="value"/>; throws when there is none.</summary>
    public void Lookup<TKey>(in TKey key, Span<byte> value) where TKey : unmanaged =>
        BpfErrors.Check(Lookup(AsBytes(in key), value), $"bpf_map_lookup_elem({Name})");

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdate flags = MapUpdate.Any)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
            BpfErrors.Check(LibBpf.MapUpdateElem(this, k, v, (ulong)flags), $"bpf_map_update_elem({Name})");
    }

    public void Update<TKey, TValue>(in TKey key, in TValue value) where TKey : unmanaged where TValue : unmanaged =>
        Update(AsBytes(in key), AsBytes(in value));

    public void Update<TKey>(in TKey key, ReadOnlySpan<byte> value, MapUpdate flags = MapUpdate.Any) where TKey : unmanaged =>
        Update(AsBytes(in key), value, flags);

    /// <summary>Puts <paramref name="program"/> at <paramref name="index"/> of a program array (a tail-call
    /// target; the element's value is the program's descriptor, which never leaves this room).</summary>
    public void SetProgram(uint index, BpfProgram program)
    {
        var fd = program.DangerousGetHandle().ToInt32();
        var added = false;
        try
        {
            program.DangerousAddRef(ref added);
            Update(AsBytes(in index), AsBytes(in fd));
        }
        finally
        {
            if (added) program.DangerousRelease();
        }
    }

    /// <summary>Removes <paramref name="key"/> and returns its last value in <paramref name="value"/>.</summary>
    public Errno LookupAndDelete(ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
            return Errnos.FromReturn(LibBpf.MapLookupAndDeleteElem(this, k, v));
    }

    /// <summary>The key after <paramref name="key"/> (the first key when it is empty); ENOENT at the end.</summary>
    public Errno GetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        fixed (byte* k = key)
        fixed (byte* n = nextKey)
            return Errnos.FromReturn(LibBpf.MapGetNextKey(this, k, n));
    }

    /// <summary>BPF_MAP_LOOKUP_BATCH: up to <paramref name="count"/> entries from where
    /// <paramref name="inBatch"/> left off (from the start when it is empty); <paramref name="count"/>
    /// becomes the number read and <paramref name="outBatch"/> the position to continue from.
    /// ENOENT: the map ended (entries of this call were still read).</summary>
    public Errno LookupBatch(ReadOnlySpan<byte> inBatch, Span<byte> outBatch, Span<byte> keys, Span<byte> values, ref uint count)
    {
        var options = MapBatchOptions.Create();
        fixed (byte* i = inBatch)
        fixed (byte* o = outBatch)
        fixed (byte* k = keys)
        fixed (byte* v = values)
        fixed (uint* n = &count)
            return Errnos.FromReturn(LibBpf.MapLookupBatch(this, i, o, k, v, n, &options));
    }

    private static ReadOnlySpan<byte> AsBytes<T>(in T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value));
}

/// <summary>bpf_map_update_elem flags (uapi/linux/bpf.h BPF_ANY, BPF_NOEXIST, BPF_EXIST).</summary>
internal enum MapUpdate : ulong
{
    /// <summary>Create or replace.</summary>
    Any = 0,
    /// <summary>Create only; EEXIST when the key is there.</summary>
    NoExist = 1,
    /// <summary>Replace only; ENOENT when the key is not there.</summary>
    Exist = 2,
}
