using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Kernel;

/// <summary>
/// The link-layer front end (bpf/linktypes.h) through BPF_PROG_TEST_RUN: IP packets on the L3
/// programs (tun, WireGuard, PPP, raw IP: no link header, IP packet bytes), and PPPoE session
/// frames on the Ethernet programs (counted at their frame bytes; discovery and non-IP PPP not).
/// </summary>
public sealed class LinkTypeCountingTests
{
    private const string Host4 = CountingTests.Host4;
    private const string Host6 = CountingTests.Host6;
    private const string Client4 = CountingTests.Client4;
    private const string Client6 = CountingTests.Client6;

    /// <summary>The L3 programs as the loader attaches them on a link without a link header.</summary>
    public enum L3Hook
    {
        Ingress,
        Egress,
    }

    private static BpfProgram ProgramOf(KernelCounting k, L3Hook hook) =>
        hook == L3Hook.Egress ? k.Collector.TcEgressL3 : k.Collector.TcIngressL3;

    private static Direction DirectionOf(L3Hook hook) => hook == L3Hook.Egress ? Direction.Up : Direction.Down;

    /// <summary>An IP packet with no link header, between a client and the host's <paramref name="hostPort"/>.</summary>
    private static byte[] IpPacket(L3Hook hook, bool v6, bool udp, ushort hostPort, int payload = 200)
    {
        var client = v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var up = hook == L3Hook.Egress;
        var (src, dst) = up ? (host, client) : (client, host);
        var (sport, dport) = up ? (hostPort, CountingTests.Ephemeral) : (CountingTests.Ephemeral, hostPort);
        var b = new PacketBuilder();
        if (v6) b.IPv6(src, dst);
        else b.IPv4(src, dst, dontFragment: true);
        if (udp) b.Udp(sport, dport);
        else b.Tcp(sport, dport);
        return b.Payload(payload).Bytes();
    }

    private static void RunL3(KernelCounting k, L3Hook hook, byte[] packet, int repeat = 1)
    {
        var result = BpfTestRun.Run(ProgramOf(k, hook), packet, repeat, new SkBuffFields());
        Assert.Equal(KernelCounting.TcUnspec, result.ReturnValue);
    }

    public static TheoryData<L3Hook, bool, string> EveryL3HookFamilyAndClass()
    {
        var data = new TheoryData<L3Hook, bool, string>();
        foreach (var hook in Enum.GetValues<L3Hook>())
        foreach (var v6 in new[] { false, true })
        foreach (var portClass in new[] { "9981/tcp", "9984/tcp", "9984/udp" })
            data.Add(hook, v6, portClass);
        return data;
    }

    [KernelTheory]
    [MemberData(nameof(EveryL3HookFamilyAndClass))]
    public void An_ip_packet_on_an_l3_link_is_counted_at_its_ip_bytes(L3Hook hook, bool v6, string portClass)
    {
        using var k = new KernelCounting();
        var c = PortClass.Parse(portClass);
        var packet = IpPacket(hook, v6, c.Protocol == Protocol.Udp, c.Port, payload: 321);

        RunL3(k, hook, packet, repeat: 3);

        k.Expect(v6 ? Client6 : Client4, portClass, DirectionOf(hook), 3 * packet.Length, 3);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(L3Hook.Ingress)]
    [InlineData(L3Hook.Egress)]
    public void The_l3_programs_count_no_ethernet_frame_and_no_other_protocol(L3Hook hook)
    {
        using var k = new KernelCounting();
        // an Ethernet frame: its first nibble (of the destination MAC) is no IP version
        RunL3(k, hook, CountingTests.ServiceFrame(hook == L3Hook.Egress ? Hook.TcEgress : Hook.TcIngress, false, false, 9984).Bytes());
        // ICMP, and a version nibble that is neither 4 nor 6
        RunL3(k, hook, new PacketBuilder().IPv4(Client4, Host4, protocol: PacketBuilder.ProtoIcmp).Payload(40).Bytes());
        var bogus = IpPacket(hook, v6: false, udp: true, 9984);
        bogus[0] = 0x55;
        RunL3(k, hook, bogus);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(L3Hook.Ingress, false)]
    [InlineData(L3Hook.Ingress, true)]
    [InlineData(L3Hook.Egress, false)]
    [InlineData(L3Hook.Egress, true)]
    public void An_l3_packet_cut_inside_its_headers_is_not_counted(L3Hook hook, bool v6)
    {
        using var k = new KernelCounting();
        var packet = IpPacket(hook, v6, udp: false, 9981);
        var headers = (v6 ? 40 : 20) + 20;
        // the test run needs at least 14 bytes (it reads an Ethernet header it then ignores)
        for (var length = 14; length < headers; length += 3)
            RunL3(k, hook, packet[..length]);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void The_ethernet_programs_do_not_read_a_bare_ip_packet(Hook hook)
    {
        using var k = new KernelCounting();
        var l3 = hook == Hook.TcEgress ? L3Hook.Egress : L3Hook.Ingress;
        k.Run(hook, IpPacket(l3, v6: false, udp: true, 9984), skb: hook == Hook.Xdp ? null : new SkBuffFields());
        k.Run(hook, IpPacket(l3, v6: true, udp: false, 9981), skb: hook == Hook.Xdp ? null : new SkBuffFields());
        k.AssertExact();
    }

    public static TheoryData<Hook, bool, string> PppoeCases()
    {
        var data = new TheoryData<Hook, bool, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var v6 in new[] { false, true })
        foreach (var tags in new[] { "", "8100" })
            data.Add(hook, v6, tags);
        return data;
    }

    [KernelTheory]
    [MemberData(nameof(PppoeCases))]
    public void A_pppoe_session_frame_is_counted_at_its_frame_bytes(Hook hook, bool v6, string tags)
    {
        using var k = new KernelCounting();
        void Session(PacketBuilder b)
        {
            if (tags.Length > 0) b.Vlan(Convert.ToUInt16(tags, 16), vid: 7);
            b.PppoeSession();
        }
        var tcp = CountingTests.ServiceFrame(hook, v6, udp: false, 9981, payload: 500, tags: Session).Bytes();
        var udp = CountingTests.ServiceFrame(hook, v6, udp: true, 9984, payload: 77, tags: Session).Bytes();
        var etherType = tags.Length > 0 ? 16 : 12; // behind the tag, if any
        Assert.Equal(PacketBuilder.EtherTypePppoeSession, tcp[etherType] << 8 | tcp[etherType + 1]);

        k.Run(hook, tcp, repeat: 2);
        k.Run(hook, udp);

        var client = v6 ? Client6 : Client4;
        var direction = KernelCounting.DirectionOf(hook);
        k.Expect(client, "9981/tcp", direction, 2 * tcp.Length, 2);
        k.Expect(client, "9984/udp", direction, udp.Length, 1);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void Pppoe_discovery_and_non_ip_ppp_frames_are_not_counted(Hook hook)
    {
        using var k = new KernelCounting();
        // PADI-like discovery frame (0x8863), even with an IP-looking body
        var discovery = new PacketBuilder().Ethernet(etherType: PacketBuilder.EtherTypePppoeDiscovery)
            .Raw([0x11, 0x09, 0, 0, 0, 4, 0x01, 0x01, 0, 0]).Payload(40).Bytes();
        // a session frame carrying LCP, and one whose PPP protocol claims IPv6 over an IPv4 packet
        var lcp = CountingTests.ServiceFrame(hook, false, false, 9981, tags: b => b.PppoeSession(pppProtocol: PacketBuilder.PppLcp)).Bytes();
        var mismatched = CountingTests.ServiceFrame(hook, false, true, 9984, tags: b => b.PppoeSession(pppProtocol: PacketBuilder.PppIPv6)).Bytes();
        // a session frame whose PPPoE version/type is not 0x11
        var badVersion = CountingTests.ServiceFrame(hook, false, true, 9984, tags: b => b.PppoeSession()).Bytes();
        badVersion[14] = 0x21;

        foreach (var frame in new[] { discovery, lcp, mismatched, badVersion })
            k.Run(hook, frame);

        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void A_pppoe_frame_cut_inside_its_headers_is_not_counted(Hook hook)
    {
        using var k = new KernelCounting();
        var frame = CountingTests.ServiceFrame(hook, false, false, 9981, tags: b => b.PppoeSession()).Build();
        for (var length = 14; length < frame.HeadersLength; length++)
            k.Run(hook, frame.Bytes[..length]);
        k.AssertExact();
    }

    [KernelFact]
    public void The_loader_hands_out_the_l3_programs()
    {
        using var k = new KernelCounting();
        Assert.Equal(BpfConstants.ProgTcEgressL3, k.Collector.TcEgressL3.Name);
        Assert.Equal(BpfConstants.ProgTcIngressL3, k.Collector.TcIngressL3.Name);
        Assert.NotEqual(0u, k.Collector.TcEgressL3.Id);
        Assert.NotEqual(k.Collector.TcEgressL3.Id, k.Collector.TcIngressL3.Id);
        Assert.Same(k.Collector.TcEgressL3, k.Collector.Program(BpfConstants.ProgTcEgressL3));
        Assert.Same(k.Collector.TcIngressL3, k.Collector.Program(BpfConstants.ProgTcIngressL3));
    }
}
