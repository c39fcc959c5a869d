using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>What a map of the object will look like once loaded: what a pinned map must match to be reused.</summary>
internal readonly record struct MapShape(uint Type, uint KeySize, uint ValueSize, uint MaxEntries, uint Flags)
{
    public static MapShape Of(ObjectMap map) => new(map.Type, map.KeySize, map.ValueSize, map.MaxEntries, map.Flags);

    public static MapShape OfKernelMap(in BpfMapInfo info) =>
        new((uint)info.Type, info.KeySize, info.ValueSize, info.MaxEntries, info.MapFlags);

    /// <summary>"max_entries 16384 → 32768, value_size 96 → 64"; empty when equal.</summary>
    public string DescribeChange(MapShape wanted)
    {
        var changes = new List<string>();
        if (Type != wanted.Type) changes.Add($"type {Type} → {wanted.Type}");
        if (KeySize != wanted.KeySize) changes.Add($"key_size {KeySize} → {wanted.KeySize}");
        if (ValueSize != wanted.ValueSize) changes.Add($"value_size {ValueSize} → {wanted.ValueSize} (PORTS changed)");
        if (MaxEntries != wanted.MaxEntries) changes.Add($"max_entries {MaxEntries} → {wanted.MaxEntries} (MAX_CLIENTS changed)");
        if (Flags != wanted.Flags) changes.Add($"flags {Flags:x} → {wanted.Flags:x}");
        return string.Join(", ", changes);
    }
}

/// <summary>
/// The counter maps pinned under the pin directory (clients, aggregates, class_info, pending): found,
/// compared with what this run would create, and either reused or removed so fresh ones are
/// created. All of them are kept or replaced together, so totals and per-client counters always
/// belong to the same incarnation (<see cref="MapGeneration"/>).
/// </summary>
internal static class PinnedMaps
{
    public static readonly string[] Names = [BpfConstants.MapClients, BpfConstants.MapAggregates, BpfConstants.MapClasses, BpfConstants.MapPending];

    public static string PathOf(string pinDirectory, string mapName) => Path.Combine(pinDirectory, mapName);

    /// <summary>Outcome of <see cref="Inspect"/>: the pinned maps found (by name), or why they cannot be reused.</summary>
    public sealed class Inspection : IDisposable
    {
        public Dictionary<string, BpfMap> Reusable { get; } = new(StringComparer.Ordinal);
        /// <summary>What differs from the pinned maps (empty when reusable or when nothing was pinned).</summary>
        public List<string> Differences { get; } = [];
        public bool NothingPinned { get; set; }
        public bool CanReuse => !NothingPinned && Differences.Count == 0;

        public void Dispose()
        {
            foreach (var map in Reusable.Values) map.Dispose();
        }
    }

    public static Inspection Inspect(string pinDirectory, IReadOnlyDictionary<string, MapShape> wanted, PortClassSet classes)
    {
        var inspection = new Inspection();
        var found = 0;
        foreach (var name in Names)
        {
            var map = BpfMap.OpenPinned(PathOf(pinDirectory, name));
            if (map is null)
            {
                inspection.Differences.Add($"{name} is not pinned");
                continue;
            }
            found++;
            inspection.Reusable[name] = map;
            var info = map.Info();
            var change = MapShape.OfKernelMap(info).DescribeChange(wanted[name]);
            if (change.Length > 0) inspection.Differences.Add($"{name}: {change}");
        }
        if (found == 0)
        {
            inspection.NothingPinned = true;
            inspection.Differences.Clear();
            return inspection;
        }
        if (inspection.Reusable.TryGetValue(BpfConstants.MapClasses, out var classInfo) &&
            !inspection.Differences.Any(d => d.StartsWith(BpfConstants.MapClasses, StringComparison.Ordinal)))
        {
            var pinned = ClassTable.Read(classInfo);
            if (!pinned.SequenceEqual(ClassTable.From(classes)))
                inspection.Differences.Add($"class_info: {ClassTable.Describe(pinned)} → {classes} (PORTS changed)");
        }
        return inspection;
    }

    /// <summary>Unpins the counter maps (the kernel frees them once no program uses them).</summary>
    public static void Unpin(string pinDirectory)
    {
        foreach (var name in Names)
        {
            var path = PathOf(pinDirectory, name);
            if (File.Exists(path)) File.Delete(path);
        }
    }
}

/// <summary>The `class_info` array: entry i = class i (port, proto), 0/0 after the last class.</summary>
internal static class ClassTable
{
    public static ClassInfo[] From(PortClassSet classes)
    {
        var table = new ClassInfo[BpfConstants.MaxClasses];
        for (var i = 0; i < classes.Count; i++)
            table[i] = new ClassInfo { Port = classes.Classes[i].Port, Proto = (byte)classes.Classes[i].Protocol };
        return table;
    }

    public static ClassInfo[] Read(BpfMap classInfo)
    {
        var table = new ClassInfo[BpfConstants.MaxClasses];
        for (uint i = 0; i < table.Length; i++)
            table[i] = classInfo.Lookup<uint, ClassInfo>(i);
        return table;
    }

    public static void Write(BpfMap classInfo, PortClassSet classes)
    {
        var table = From(classes);
        for (uint i = 0; i < table.Length; i++)
            classInfo.Update(i, table[i]);
    }

    /// <summary>"9981/tcp,9984/tcp" for a table read from the kernel.</summary>
    public static string Describe(ClassInfo[] table) => string.Join(',', table
        .TakeWhile(e => e.Port != 0)
        .Select(e => e.Proto switch { 6 => $"{e.Port}/tcp", 17 => $"{e.Port}/udp", _ => $"{e.Port}/proto{e.Proto}" }));
}

/// <summary>The `port_classes` table: class_of[row][port] = class index + 1, 0 = not counted.</summary>
internal static class PortTable
{
    public static byte[] From(PortClassSet classes)
    {
        var table = new byte[KernelSizes.PortTable];
        for (var i = 0; i < classes.Count; i++)
        {
            var c = classes.Classes[i];
            var row = c.Protocol == Protocol.Udp ? BpfConstants.ProtoRowUdp : BpfConstants.ProtoRowTcp;
            table[row * BpfConstants.PortsPerRow + c.Port] = (byte)(i + 1);
        }
        return table;
    }

    public static void Write(BpfMap portClasses, PortClassSet classes) => portClasses.Update(0u, From(classes));
}
