using System.Globalization;

namespace SiaExporter.Counters;

public enum Protocol : byte
{
    Tcp = 6,
    Udp = 17,
}

/// <summary>One counted port class, e.g. 9984/udp.</summary>
public readonly record struct PortClass(ushort Port, Protocol Protocol)
{
    public string ProtocolLabel => Protocol == Protocol.Udp ? "udp" : "tcp";

    public override string ToString() => $"{Port}/{ProtocolLabel}";

    /// <summary>Parses "9984/udp" (protocol defaults to tcp when omitted).</summary>
    public static PortClass Parse(string text)
    {
        var trimmed = text.Trim();
        var parts = trimmed.Split('/');
        if (parts.Length > 2 || parts[0].Length == 0)
            throw new FormatException($"'{trimmed}' is not PORT/PROTO (for example 9984/udp)");
        if (!ushort.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port == 0)
            throw new FormatException($"'{parts[0]}' in '{trimmed}' is not a port between 1 and 65535");
        var protocol = parts.Length == 1 ? "tcp" : parts[1].Trim().ToLowerInvariant();
        return protocol switch
        {
            "tcp" => new PortClass(port, Protocol.Tcp),
            "udp" => new PortClass(port, Protocol.Udp),
            _ => throw new FormatException($"'{parts[1]}' in '{trimmed}' is not tcp or udp"),
        };
    }
}
