using System.Globalization;
using SiaExporter.Counters;

namespace SiaExporter.Web;

/// <summary>
/// ANONYMIZE: the client label shows a network instead of an address, e.g. "/24,/48" turns
/// 203.0.113.57 into "203.0.113.0/24" and 2001:db8:1:2::5 into "2001:db8:1::/48". Pure: the
/// caller groups clients by <see cref="Mask"/> and sums them, so totals do not change.
/// "/32,/128" (or <see cref="None"/>) leaves addresses as they are.
/// </summary>
public readonly record struct ClientPrefix(int IPv4Bits, int IPv6Bits)
{
    /// <summary>No anonymization: the full address, without a suffix.</summary>
    public static ClientPrefix None => new(32, 128);

    public bool IsNone => IPv4Bits == 32 && IPv6Bits == 128;

    /// <summary>
    /// "/V4,/V6" (the slashes optional, spaces allowed): IPv4 prefix 0–32, IPv6 prefix 0–128.
    /// Empty, "off", "none" or "false" mean <see cref="None"/>. Throws FormatException.
    /// </summary>
    public static ClientPrefix Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t.Length == 0 || t.Equals("off", StringComparison.OrdinalIgnoreCase) || t.Equals("none", StringComparison.OrdinalIgnoreCase)
            || t.Equals("false", StringComparison.OrdinalIgnoreCase) || t == "0")
            return None;
        var parts = t.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 2)
            throw new FormatException($"'{text}': expected an IPv4 and an IPv6 prefix length, like /24,/48");
        return new ClientPrefix(Bits(parts[0], 32, text), Bits(parts[1], 128, text));
    }

    public static bool TryParse(string text, out ClientPrefix prefix)
    {
        try
        {
            prefix = Parse(text);
            return true;
        }
        catch (FormatException)
        {
            prefix = None;
            return false;
        }
    }

    private static int Bits(string part, int max, string text)
    {
        var p = part.StartsWith('/') ? part[1..] : part;
        if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > max)
            throw new FormatException($"'{text}': '{part}' is not a prefix length from /0 to /{max}");
        return n;
    }

    /// <summary>The network address of <paramref name="address"/> (host bits zeroed); IPv4 stays v4-mapped.</summary>
    public ClientAddress Mask(ClientAddress address)
    {
        Span<byte> key = stackalloc byte[16];
        address.WriteKernelKey(key);
        // IPv4 lives in the last 4 bytes of its v4-mapped form: keep the 96-bit ::ffff: prefix.
        var bits = address.IsIPv4 ? 96 + IPv4Bits : IPv6Bits;
        for (var i = 0; i < 16; i++)
        {
            var keep = Math.Clamp(bits - (i * 8), 0, 8);
            key[i] &= (byte)(0xFF00 >> keep);
        }
        return ClientAddress.FromKernelKey(key);
    }

    /// <summary>The client label: "203.0.113.0/24", "2001:db8:1::/48", or the address itself for a full-length prefix.</summary>
    public string Apply(ClientAddress address)
    {
        var bits = address.IsIPv4 ? IPv4Bits : IPv6Bits;
        var full = address.IsIPv4 ? 32 : 128;
        return bits == full ? address.ToString() : $"{Mask(address)}/{bits.ToString(CultureInfo.InvariantCulture)}";
    }

    public override string ToString() => $"/{IPv4Bits},/{IPv6Bits}";
}
