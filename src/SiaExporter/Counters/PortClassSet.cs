using SiaExporter.Bpf;

namespace SiaExporter.Counters;

/// <summary>
/// The ordered list of counted port classes (the PORTS setting). Class i owns counter slots
/// i * 2 + direction in every kernel value, so the order is part of the pinned maps' meaning.
/// </summary>
public sealed class PortClassSet : IEquatable<PortClassSet>
{
    public const string Default = "9981/tcp,9984/tcp,9984/udp";

    public PortClassSet(IReadOnlyList<PortClass> classes)
    {
        if (classes.Count == 0)
            throw new FormatException("no port class given (for example 9981/tcp,9984/tcp,9984/udp)");
        if (classes.Count > BpfConstants.MaxClasses)
            throw new FormatException($"{classes.Count} port classes given; at most {BpfConstants.MaxClasses} are supported");
        var duplicate = classes.GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new FormatException($"{duplicate.Key} is listed twice");
        Classes = classes;
    }

    public IReadOnlyList<PortClass> Classes { get; }

    public int Count => Classes.Count;

    /// <summary>Counter slots per value: two directions per class.</summary>
    public int SlotCount => Classes.Count * BpfConstants.Directions;

    public static int Slot(int classIndex, Direction direction) => classIndex * BpfConstants.Directions + (int)direction;

    public static PortClassSet DefaultSet { get; } = Parse(Default);

    /// <summary>Parses "9981/tcp,9984/tcp,9984/udp".</summary>
    public static PortClassSet Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new FormatException("PORTS is empty (for example 9981/tcp,9984/tcp,9984/udp)");
        return new PortClassSet(text.Split(',', StringSplitOptions.TrimEntries).Select(PortClass.Parse).ToArray());
    }

    public int IndexOf(PortClass portClass)
    {
        for (var i = 0; i < Classes.Count; i++)
            if (Classes[i] == portClass) return i;
        return -1;
    }

    public bool Equals(PortClassSet? other) => other is not null && Classes.SequenceEqual(other.Classes);

    public override bool Equals(object? obj) => Equals(obj as PortClassSet);

    public override int GetHashCode() => Classes.Aggregate(0, HashCode.Combine);

    public override string ToString() => string.Join(',', Classes);
}
