using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SiaExporter.Counters;

/// <summary>
/// A client address as the kernel keys it: 16 bytes, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d).
/// Shown as dotted IPv4 or RFC 5952 IPv6, never in ::ffff: form for an IPv4 client.
/// </summary>
public readonly struct ClientAddress : IEquatable<ClientAddress>, IComparable<ClientAddress>
{
    private readonly ulong _high; // bytes 0..7, big-endian
    private readonly ulong _low;  // bytes 8..15, big-endian

    private ClientAddress(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    /// <summary>The all-zero address; never a real client.</summary>
    public static ClientAddress None => default;

    public static ClientAddress FromKernelKey(ReadOnlySpan<byte> key) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(key), BinaryPrimitives.ReadUInt64BigEndian(key[8..]));

    public static ClientAddress FromIPAddress(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        var v6 = address.AddressFamily == AddressFamily.InterNetwork ? address.MapToIPv6() : address;
        v6.TryWriteBytes(bytes, out _);
        return FromKernelKey(bytes);
    }

    public static ClientAddress Parse(string text) => FromIPAddress(IPAddress.Parse(text));

    public static bool TryParse(string text, out ClientAddress address)
    {
        if (IPAddress.TryParse(text, out var ip))
        {
            address = FromIPAddress(ip);
            return true;
        }
        address = default;
        return false;
    }

    public bool IsIPv4 => _high == 0 && (_low >> 32) == 0xFFFF;

    public void WriteKernelKey(Span<byte> key)
    {
        BinaryPrimitives.WriteUInt64BigEndian(key, _high);
        BinaryPrimitives.WriteUInt64BigEndian(key[8..], _low);
    }

    public IPAddress ToIPAddress()
    {
        if (IsIPv4)
        {
            Span<byte> v4 = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v4, (uint)_low);
            return new IPAddress(v4);
        }
        Span<byte> bytes = stackalloc byte[16];
        WriteKernelKey(bytes);
        return new IPAddress(bytes);
    }

    /// <summary>Dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run compressed).</summary>
    public override string ToString() => ToIPAddress().ToString();

    public bool Equals(ClientAddress other) => _high == other._high && _low == other._low;

    public override bool Equals(object? obj) => obj is ClientAddress other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_high, _low);

    public int CompareTo(ClientAddress other)
    {
        var c = _high.CompareTo(other._high);
        return c != 0 ? c : _low.CompareTo(other._low);
    }

    public static bool operator ==(ClientAddress a, ClientAddress b) => a.Equals(b);

    public static bool operator !=(ClientAddress a, ClientAddress b) => !a.Equals(b);
}
