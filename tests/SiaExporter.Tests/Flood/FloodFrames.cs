using System.Buffers.Binary;
using SiaExporter.Counters;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// One reusable frame buffer per address family (Ethernet + IPv4/IPv6 + TCP to 9984, SYN-sized
/// header, zero payload), patched in place for every frame of a flood: the source address and
/// the length fields. No allocation per frame, so a million test-runs cost the kernel and not the GC.
/// </summary>
internal sealed class FloodFrames
{
    public const int MaxFrame = 1514;
    private const int Eth = 14;
    private const int Ipv4Header = 20;
    private const int Ipv6Header = 40;
    private const int TcpHeader = 20;
    public const int MinIpv4Frame = Eth + Ipv4Header + TcpHeader; // 54
    public const int MinIpv6Frame = Eth + Ipv6Header + TcpHeader; // 74

    private readonly byte[] _v4 = new byte[MaxFrame];
    private readonly byte[] _v6 = new byte[MaxFrame];

    public FloodFrames(ushort hostPort = 9984)
    {
        // IPv4: ethertype, version/ihl, ttl, proto, destination 192.0.2.1.
        BinaryPrimitives.WriteUInt16BigEndian(_v4.AsSpan(12), 0x0800);
        var ip = _v4.AsSpan(Eth);
        ip[0] = 0x45;
        ip[8] = 64;
        ip[9] = 6;
        new byte[] { 192, 0, 2, 1 }.CopyTo(ip[16..]);
        WriteTcp(ip[Ipv4Header..], hostPort);

        // IPv6: ethertype, version, next header TCP, hop limit, destination 2001:db8::1.
        BinaryPrimitives.WriteUInt16BigEndian(_v6.AsSpan(12), 0x86DD);
        var ip6 = _v6.AsSpan(Eth);
        ip6[0] = 0x60;
        ip6[6] = 6;
        ip6[7] = 64;
        ip6[24] = 0x20; ip6[25] = 0x01; ip6[26] = 0x0d; ip6[27] = 0xb8; ip6[39] = 1;
        WriteTcp(ip6[Ipv6Header..], hostPort);
    }

    private static void WriteTcp(Span<byte> tcp, ushort hostPort)
    {
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], hostPort);
        tcp[12] = 5 << 4; // data offset: 5 words
        tcp[13] = 0x10;   // ACK
    }

    /// <summary>The frame from <paramref name="source"/> of <paramref name="length"/> bytes (clamped
    /// to the family's minimum and 1514), valid until the next call for the same family.</summary>
    public ReadOnlySpan<byte> Frame(ClientAddress source, int length)
    {
        Span<byte> key = stackalloc byte[16];
        source.WriteKernelKey(key);
        if (source.IsIPv4)
        {
            length = Math.Clamp(length, MinIpv4Frame, MaxFrame);
            var ip = _v4.AsSpan(Eth);
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(length - Eth));
            key[12..].CopyTo(ip[12..]);
            return _v4.AsSpan(0, length);
        }
        length = Math.Clamp(length, MinIpv6Frame, MaxFrame);
        var ip6 = _v6.AsSpan(Eth);
        BinaryPrimitives.WriteUInt16BigEndian(ip6[4..], (ushort)(length - Eth - Ipv6Header));
        key.CopyTo(ip6[8..]);
        return _v6.AsSpan(0, length);
    }

    /// <summary>The length <see cref="Frame"/> really uses for this source and wish.</summary>
    public static int LengthFor(ClientAddress source, int length) =>
        Math.Clamp(length, source.IsIPv4 ? MinIpv4Frame : MinIpv6Frame, MaxFrame);
}

/// <summary>
/// A reproducible hostile stream: <see cref="DistinctSources"/> random sources (IPv4 and global
/// IPv6 mixed), with some frames repeating an earlier source (both one already in the map and
/// one that overflowed) and some frames sent as a burst (test-run repeat &gt; 1).
/// </summary>
internal sealed class FloodPlan
{
    public readonly record struct Step(ClientAddress Source, int Length, int Repeat);

    public FloodPlan(int distinctSources, int seed, double ipv6Share = 0.4, double repeatShare = 0.1)
    {
        var random = new Random(seed);
        var seen = new HashSet<ClientAddress>(distinctSources);
        var order = new List<ClientAddress>(distinctSources);
        var steps = new List<Step>((int)(distinctSources * (1 + repeatShare)) + 1);
        Span<byte> bytes = stackalloc byte[16];
        while (order.Count < distinctSources)
        {
            ClientAddress source;
            if (order.Count > 0 && random.NextDouble() < repeatShare)
            {
                source = order[random.Next(order.Count)];
            }
            else
            {
                bytes.Clear();
                if (random.NextDouble() < ipv6Share)
                {
                    random.NextBytes(bytes);
                    bytes[0] = 0x20; // 2000::/3, never v4-mapped
                }
                else
                {
                    bytes[10] = 0xFF; bytes[11] = 0xFF;
                    random.NextBytes(bytes[12..]);
                }
                source = ClientAddress.FromKernelKey(bytes);
                if (seen.Add(source)) order.Add(source);
            }
            var length = random.Next(10) == 0 ? 1514 : random.Next(54, 1515);
            var repeat = random.Next(50) == 0 ? random.Next(2, 9) : 1;
            steps.Add(new Step(source, FloodFrames.LengthFor(source, length), repeat));
        }
        Steps = steps;
        DistinctOrder = order;
    }

    public IReadOnlyList<Step> Steps { get; }

    /// <summary>Distinct sources in order of first appearance.</summary>
    public IReadOnlyList<ClientAddress> DistinctOrder { get; }

    public int DistinctSources => DistinctOrder.Count;

    public long Frames => Steps.Sum(s => (long)s.Repeat);
}
