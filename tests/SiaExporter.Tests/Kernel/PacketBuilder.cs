using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SiaExporter.Tests.Kernel;

/// <summary>
/// Builds Ethernet frames byte by byte for the kernel tests, independent of product code:
/// Ethernet, 802.1Q/802.1ad tags, IPv4 (options, id, DF/MF/offset), IPv6 with extension headers,
/// TCP (options), UDP, raw payload. Each layer's "next protocol" field, every length field and the
/// IPv4/TCP/UDP checksums are filled in at <see cref="Build"/> unless set explicitly.
/// Checksums of fragments cover only the bytes present (the program never checks them).
/// </summary>
internal sealed class PacketBuilder
{
    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeIPv6 = 0x86DD;
    public const ushort EtherTypeArp = 0x0806;
    public const ushort EtherType8021Q = 0x8100;
    public const ushort EtherType8021AD = 0x88A8;
    public const ushort EtherTypePppoeDiscovery = 0x8863;
    public const ushort EtherTypePppoeSession = 0x8864;
    public const ushort PppIPv4 = 0x0021;
    public const ushort PppIPv6 = 0x0057;
    public const ushort PppLcp = 0xC021;
    public const byte ProtoTcp = 6;
    public const byte ProtoUdp = 17;
    public const byte ProtoIcmp = 1;
    public const byte ProtoIcmpV6 = 58;
    public const byte NextHeaderNone = 59;
    public const byte ExtHopByHop = 0;
    public const byte ExtRouting = 43;
    public const byte ExtFragment = 44;
    public const byte ExtAuth = 51;
    public const byte ExtDestination = 60;

    private readonly List<Layer> _layers = [];

    private abstract record Layer
    {
        /// <summary>What the previous layer's type field says about this one (EtherType or IP protocol).</summary>
        public abstract int TypeCode { get; }
    }

    private sealed record EthernetLayer(byte[] Destination, byte[] Source, ushort? EtherType) : Layer
    {
        public override int TypeCode => -1;
    }

    private sealed record VlanLayer(ushort Tpid, ushort Tci, ushort? EtherType) : Layer
    {
        public override int TypeCode => Tpid;
    }

    /// <summary>PPPoE session header (RFC 2516) and the 2-byte PPP protocol.</summary>
    private sealed record PppoeLayer(ushort SessionId, ushort? PppProtocol) : Layer
    {
        public override int TypeCode => EtherTypePppoeSession;
    }

    private sealed record IPv4Layer(byte[] Source, byte[] Destination, byte[] Options, ushort Id, bool DontFragment,
        bool MoreFragments, ushort FragmentOffset8, byte? Protocol, byte Ttl) : Layer
    {
        public override int TypeCode => EtherTypeIPv4;
    }

    private sealed record IPv6Layer(byte[] Source, byte[] Destination, byte? NextHeader) : Layer
    {
        public override int TypeCode => EtherTypeIPv6;
    }

    /// <summary>An IPv6 extension header: Kind is its protocol number; Body follows the 2 (or, for
    /// fragment, all 8) fixed bytes.</summary>
    private sealed record ExtensionLayer(byte Kind, byte[] Body, byte? NextHeader) : Layer
    {
        public override int TypeCode => Kind;
    }

    private sealed record TcpLayer(ushort SourcePort, ushort DestinationPort, byte[] Options, byte Flags) : Layer
    {
        public override int TypeCode => ProtoTcp;
    }

    private sealed record UdpLayer(ushort SourcePort, ushort DestinationPort) : Layer
    {
        public override int TypeCode => ProtoUdp;
    }

    private sealed record RawLayer(byte[] Bytes) : Layer
    {
        public override int TypeCode => -1;
    }

    public static readonly byte[] HostMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    public static readonly byte[] PeerMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

    public PacketBuilder Ethernet(byte[]? destination = null, byte[]? source = null, ushort? etherType = null)
    {
        _layers.Add(new EthernetLayer(destination ?? HostMac, source ?? PeerMac, etherType));
        return this;
    }

    /// <summary>A tag with TPID 0x8100 (802.1Q) or 0x88A8 (802.1ad).</summary>
    public PacketBuilder Vlan(ushort tpid = EtherType8021Q, ushort vid = 100, ushort? etherType = null)
    {
        _layers.Add(new VlanLayer(tpid, (ushort)(vid & 0x0fff), etherType));
        return this;
    }

    /// <summary>A PPPoE session header; the PPP protocol follows the next layer (IPv4 0x0021, IPv6 0x0057)
    /// unless given.</summary>
    public PacketBuilder PppoeSession(ushort sessionId = 0x2a, ushort? pppProtocol = null)
    {
        _layers.Add(new PppoeLayer(sessionId, pppProtocol));
        return this;
    }

    /// <summary>IPv4; <paramref name="options"/> (padded to 4 bytes with End-of-Options) raise IHL.
    /// <paramref name="fragmentOffset"/> is in bytes (a multiple of 8).</summary>
    public PacketBuilder IPv4(string source, string destination, byte[]? options = null, ushort id = 0x1234,
        bool dontFragment = false, bool moreFragments = false, int fragmentOffset = 0, byte? protocol = null, byte ttl = 64)
    {
        if (fragmentOffset % 8 != 0) throw new ArgumentException("offset must be a multiple of 8", nameof(fragmentOffset));
        var padded = options ?? [];
        if (padded.Length % 4 != 0) padded = [.. padded, .. new byte[4 - padded.Length % 4]];
        if (padded.Length > 40) throw new ArgumentException("at most 40 bytes of IPv4 options", nameof(options));
        _layers.Add(new IPv4Layer(V4(source), V4(destination), padded, id, dontFragment, moreFragments,
            (ushort)(fragmentOffset / 8), protocol, ttl));
        return this;
    }

    public PacketBuilder IPv6(string source, string destination, byte? nextHeader = null)
    {
        _layers.Add(new IPv6Layer(V6(source), V6(destination), nextHeader));
        return this;
    }

    /// <summary>Hop-by-hop options, <paramref name="units"/> × 8 bytes beyond the first 8 (PadN filled).</summary>
    public PacketBuilder HopByHop(int units = 0) => Options(ExtHopByHop, units);

    /// <summary>Destination options, <paramref name="units"/> × 8 bytes beyond the first 8.</summary>
    public PacketBuilder DestinationOptions(int units = 0) => Options(ExtDestination, units);

    /// <summary>Routing header type 4 (segment routing) with <paramref name="segments"/> addresses
    /// (0 segments = the 8-byte minimum).</summary>
    public PacketBuilder Routing(int segments = 1)
    {
        var body = new byte[6 + 16 * segments];
        body[0] = 4;                        // routing type: SRH
        body[1] = (byte)Math.Max(segments - 1, 0); // segments left
        for (var s = 0; s < segments; s++)
            V6($"2001:db8:5e6::{s + 1}").CopyTo(body, 6 + 16 * s);
        _layers.Add(new ExtensionLayer(ExtRouting, body, null));
        return this;
    }

    /// <summary>The fragment header: <paramref name="offset"/> in bytes (a multiple of 8).</summary>
    public PacketBuilder Fragment(int offset = 0, bool more = false, uint id = 0xC0FFEE, byte? nextHeader = null)
    {
        if (offset % 8 != 0) throw new ArgumentException("offset must be a multiple of 8", nameof(offset));
        var body = new byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(body, (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(2), id);
        _layers.Add(new ExtensionLayer(ExtFragment, body, nextHeader));
        return this;
    }

    /// <summary>Authentication header with <paramref name="icvWords"/> 32-bit words of ICV
    /// (its length field counts 4-byte units minus 2, unlike the other extension headers).</summary>
    public PacketBuilder AuthenticationHeader(int icvWords = 3, uint spi = 0x100)
    {
        var body = new byte[2 + 8 + 4 * icvWords];
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(2), spi);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(6), 1); // sequence number
        _layers.Add(new ExtensionLayer(ExtAuth, body, null));
        return this;
    }

    private PacketBuilder Options(byte kind, int units)
    {
        var body = new byte[6 + 8 * units];
        body[0] = 1; // PadN covering the rest
        body[1] = (byte)(body.Length - 2);
        _layers.Add(new ExtensionLayer(kind, body, null));
        return this;
    }

    /// <summary>TCP with <paramref name="options"/> (padded with NOPs... End-of-Options to 4 bytes).</summary>
    public PacketBuilder Tcp(ushort sourcePort, ushort destinationPort, byte[]? options = null, byte flags = 0x18)
    {
        var padded = options ?? [];
        if (padded.Length % 4 != 0) padded = [.. padded, .. new byte[4 - padded.Length % 4]];
        if (padded.Length > 40) throw new ArgumentException("at most 40 bytes of TCP options", nameof(options));
        _layers.Add(new TcpLayer(sourcePort, destinationPort, padded, flags));
        return this;
    }

    /// <summary>Typical SYN options: MSS, SACK permitted, timestamps, window scale (20 bytes).</summary>
    public static byte[] TypicalTcpOptions =>
        [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

    public PacketBuilder Udp(ushort sourcePort, ushort destinationPort)
    {
        _layers.Add(new UdpLayer(sourcePort, destinationPort));
        return this;
    }

    /// <summary><paramref name="length"/> payload bytes (a repeating pattern).</summary>
    public PacketBuilder Payload(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++) bytes[i] = (byte)(i * 7 + 3);
        _layers.Add(new RawLayer(bytes));
        return this;
    }

    public PacketBuilder Raw(byte[] bytes)
    {
        _layers.Add(new RawLayer(bytes));
        return this;
    }

    /// <summary>The frame and the offset where each header ends (the boundaries a truncation can hit).</summary>
    public BuiltFrame Build()
    {
        var parts = new byte[_layers.Count][];
        // Serialize back to front: lengths and checksums need what follows.
        for (var i = _layers.Count - 1; i >= 0; i--)
        {
            var next = i + 1 < _layers.Count ? _layers[i + 1] : null;
            var rest = Concat(parts.AsSpan(i + 1));
            parts[i] = Serialize(_layers[i], next, rest, FindIp(i));
        }
        var frame = Concat(parts);
        var ends = new List<int>();
        var offset = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            offset += parts[i].Length;
            if (_layers[i] is not RawLayer) ends.Add(offset);
        }
        return new BuiltFrame(frame, ends);
    }

    public byte[] Bytes() => Build().Bytes;

    /// <summary>The IP layer below layer <paramref name="index"/> (for the pseudo-header).</summary>
    private Layer? FindIp(int index)
    {
        for (var i = index - 1; i >= 0; i--)
            if (_layers[i] is IPv4Layer or IPv6Layer) return _layers[i];
        return null;
    }

    private static int NextCode(Layer? next, int fallback) => next is null || next.TypeCode < 0 ? fallback : next.TypeCode;

    private static byte[] Serialize(Layer layer, Layer? next, byte[] rest, Layer? ip)
    {
        switch (layer)
        {
            case EthernetLayer e:
            {
                var b = new byte[14];
                e.Destination.CopyTo(b, 0);
                e.Source.CopyTo(b, 6);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(12), e.EtherType ?? (ushort)NextCode(next, 0x88B5));
                return b;
            }
            case VlanLayer v:
            {
                var b = new byte[4];
                BinaryPrimitives.WriteUInt16BigEndian(b, v.Tci);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), v.EtherType ?? (ushort)NextCode(next, 0x88B5));
                return b;
            }
            case PppoeLayer pppoe:
            {
                var b = new byte[8];
                b[0] = 0x11; // version 1, type 1; code 0 = session data
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), pppoe.SessionId);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)(2 + rest.Length)); // PPP protocol + payload
                var ppp = pppoe.PppProtocol ?? NextCode(next, -1) switch
                {
                    EtherTypeIPv4 => PppIPv4,
                    EtherTypeIPv6 => PppIPv6,
                    _ => PppLcp,
                };
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), ppp);
                return b;
            }
            case IPv4Layer ip4:
            {
                var headerLength = 20 + ip4.Options.Length;
                var b = new byte[headerLength];
                b[0] = (byte)(0x40 | (headerLength / 4));
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)(headerLength + rest.Length));
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), ip4.Id);
                var flags = (ip4.DontFragment ? 0x4000 : 0) | (ip4.MoreFragments ? 0x2000 : 0) | ip4.FragmentOffset8;
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), (ushort)flags);
                b[8] = ip4.Ttl;
                b[9] = ip4.Protocol ?? (byte)NextCode(next, 253);
                ip4.Source.CopyTo(b, 12);
                ip4.Destination.CopyTo(b, 16);
                ip4.Options.CopyTo(b, 20);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum(b, 0));
                return b;
            }
            case IPv6Layer ip6:
            {
                var b = new byte[40];
                b[0] = 0x60;
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)rest.Length);
                b[6] = ip6.NextHeader ?? (byte)NextCode(next, NextHeaderNone);
                b[7] = 64;
                ip6.Source.CopyTo(b, 8);
                ip6.Destination.CopyTo(b, 24);
                return b;
            }
            case ExtensionLayer x:
            {
                var b = new byte[2 + x.Body.Length];
                b[0] = x.NextHeader ?? (byte)NextCode(next, NextHeaderNone);
                x.Body.CopyTo(b, 2);
                if (x.Kind == ExtAuth) b[1] = (byte)(b.Length / 4 - 2);
                else if (x.Kind != ExtFragment) b[1] = (byte)(b.Length / 8 - 1);
                // fragment: byte 1 is reserved (0)
                return b;
            }
            case TcpLayer t:
            {
                var headerLength = 20 + t.Options.Length;
                var b = new byte[headerLength + rest.Length];
                BinaryPrimitives.WriteUInt16BigEndian(b, t.SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), t.DestinationPort);
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 1000);
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), 2000);
                b[12] = (byte)((headerLength / 4) << 4);
                b[13] = t.Flags;
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(14), 65535);
                t.Options.CopyTo(b, 20);
                rest.CopyTo(b, headerLength);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(16), L4Checksum(ip, ProtoTcp, b));
                return b[..headerLength];
            }
            case UdpLayer u:
            {
                var b = new byte[8 + rest.Length];
                BinaryPrimitives.WriteUInt16BigEndian(b, u.SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), u.DestinationPort);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)b.Length);
                rest.CopyTo(b, 8);
                var sum = L4Checksum(ip, ProtoUdp, b);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), sum == 0 ? (ushort)0xFFFF : sum);
                return b[..8];
            }
            case RawLayer r:
                return r.Bytes;
            default:
                throw new InvalidOperationException(layer.ToString());
        }
    }

    private static ushort L4Checksum(Layer? ip, byte protocol, byte[] segment)
    {
        byte[] pseudo = ip switch
        {
            IPv4Layer v4 => [.. v4.Source, .. v4.Destination, 0, protocol, (byte)(segment.Length >> 8), (byte)segment.Length],
            IPv6Layer v6 => [.. v6.Source, .. v6.Destination, 0, 0, (byte)(segment.Length >> 8), (byte)segment.Length, 0, 0, 0, protocol],
            _ => [],
        };
        return Checksum([.. pseudo, .. segment], 0);
    }

    /// <summary>The Internet checksum (RFC 1071) of <paramref name="data"/>.</summary>
    public static ushort Checksum(ReadOnlySpan<byte> data, uint initial)
    {
        var sum = initial;
        var i = 0;
        for (; i + 1 < data.Length; i += 2) sum += (uint)(data[i] << 8 | data[i + 1]);
        if (i < data.Length) sum += (uint)(data[i] << 8);
        while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    private static byte[] Concat(ReadOnlySpan<byte[]> parts)
    {
        var length = 0;
        foreach (var p in parts) length += p?.Length ?? 0;
        var all = new byte[length];
        var at = 0;
        foreach (var p in parts)
        {
            if (p is null) continue;
            p.CopyTo(all, at);
            at += p.Length;
        }
        return all;
    }

    private static byte[] V4(string address)
    {
        var ip = IPAddress.Parse(address);
        if (ip.AddressFamily != AddressFamily.InterNetwork) throw new ArgumentException($"{address} is not IPv4");
        return ip.GetAddressBytes();
    }

    private static byte[] V6(string address)
    {
        var ip = IPAddress.Parse(address);
        if (ip.AddressFamily != AddressFamily.InterNetworkV6) throw new ArgumentException($"{address} is not IPv6");
        return ip.GetAddressBytes();
    }
}

/// <summary>A built frame and the offsets (from the frame start) where each of its headers ends.</summary>
internal sealed record BuiltFrame(byte[] Bytes, IReadOnlyList<int> HeaderEnds)
{
    public int Length => Bytes.Length;

    /// <summary>Where the last header ends: every shorter frame lacks part of a header.</summary>
    public int HeadersLength => HeaderEnds[^1];
}
