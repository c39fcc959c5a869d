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

    /// <summary>The link kinds whose L4 header is not right after a plain Ethernet header: an L3
    /// link (none), PPPoE (8 more bytes) and PPPoE behind a tag (12 more).</summary>
    public enum ConfirmingLink
    {
        L3,
        Pppoe,
        TaggedPppoe,
    }

    public static TheoryData<ConfirmingLink, bool> LinksAndFamilies()
    {
        var data = new TheoryData<ConfirmingLink, bool>();
        foreach (var link in Enum.GetValues<ConfirmingLink>())
        foreach (var v6 in new[] { false, true })
            data.Add(link, v6);
        return data;
    }

    /// <summary>A packet between the client and the host's <paramref name="hostPort"/> on
    /// <paramref name="link"/>: TCP with <paramref name="tcpFlags"/>, or UDP whose payload starts with
    /// <paramref name="quicFirstByte"/>.</summary>
    private static byte[] LinkPacket(ConfirmingLink link, bool v6, bool fromHost, ushort hostPort, byte tcpFlags = 0, byte? quicFirstByte = null)
    {
        var client = v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var (src, dst) = fromHost ? (host, client) : (client, host);
        var (sport, dport) = fromHost ? (hostPort, CountingTests.Ephemeral) : (CountingTests.Ephemeral, hostPort);
        var b = new PacketBuilder();
        if (link != ConfirmingLink.L3) b.Ethernet();
        if (link == ConfirmingLink.TaggedPppoe) b.Vlan(vid: 7);
        if (link != ConfirmingLink.L3) b.PppoeSession();
        if (v6) b.IPv6(src, dst);
        else b.IPv4(src, dst, dontFragment: true);
        if (quicFirstByte is { } first) return b.Udp(sport, dport).Raw([first, .. new byte[299]]).Bytes();
        return b.Tcp(sport, dport, flags: tcpFlags).Payload(200).Bytes();
    }

    private static void RunOn(KernelCounting k, ConfirmingLink link, bool fromHost, byte[] packet)
    {
        if (link == ConfirmingLink.L3) RunL3(k, fromHost ? L3Hook.Egress : L3Hook.Ingress, packet);
        else k.Run(fromHost ? Hook.TcEgress : Hook.Xdp, packet);
    }

    /// <summary>
    /// flood's rule on every link kind (bpf/clients.h reads the TCP flags and the QUIC header at
    /// l4_off, which the link front end moves): the host's SYN-ACK and a QUIC long header leave the
    /// client unconfirmed, the host's ACK and a QUIC short header confirm it, and what it sent before
    /// lands on its entry. An l4_off off by the link header would read the wrong byte for both.
    /// </summary>
    [KernelTheory]
    [MemberData(nameof(LinksAndFamilies))]
    public void The_hosts_answer_confirms_a_client_on_every_link_kind(ConfirmingLink link, bool v6)
    {
        using var k = new KernelCounting(preConfirm: false);
        const byte syn = 0x02, ack = 0x10, synAck = syn | ack;
        var request = LinkPacket(link, v6, fromHost: false, 9984, tcpFlags: syn);
        var handshake = LinkPacket(link, v6, fromHost: true, 9984, tcpFlags: synAck);
        var quicRequest = LinkPacket(link, v6, fromHost: false, 9984, quicFirstByte: 0xc0);
        var quicLong = LinkPacket(link, v6, fromHost: true, 9984, quicFirstByte: 0xc0);

        RunOn(k, link, fromHost: false, request);
        RunOn(k, link, fromHost: true, handshake);
        RunOn(k, link, fromHost: false, quicRequest);
        RunOn(k, link, fromHost: true, quicLong);
        k.ExpectUnconfirmed("9984/tcp", Direction.Down, request.Length, 1);
        k.ExpectUnconfirmed("9984/tcp", Direction.Up, handshake.Length, 1);
        k.ExpectUnconfirmed("9984/udp", Direction.Down, quicRequest.Length, 1);
        k.ExpectUnconfirmed("9984/udp", Direction.Up, quicLong.Length, 1);
        k.AssertExact();

        var answer = LinkPacket(link, v6, fromHost: true, 9984, tcpFlags: ack);
        RunOn(k, link, fromHost: true, answer);
        var client = ClientAddress.Parse(v6 ? Client6 : Client4);
        var expected = new ExpectedCounters(k.Collector.SlotCount);
        expected.Add(client, k.Slot("9984/tcp", Direction.Down), (ulong)request.Length, 1);
        expected.Add(client, k.Slot("9984/tcp", Direction.Up), (ulong)(handshake.Length + answer.Length), 2);
        expected.Add(client, k.Slot("9984/udp", Direction.Down), (ulong)quicRequest.Length, 1);
        expected.Add(client, k.Slot("9984/udp", Direction.Up), (ulong)quicLong.Length, 1);
        expected.AssertMatches(k.Read());

        // The QUIC rule on its own, on a fresh load: a short header from the host alone confirms.
        using var q = new KernelCounting(preConfirm: false);
        var shortHeader = LinkPacket(link, v6, fromHost: true, 9984, quicFirstByte: 0x40);
        RunOn(q, link, fromHost: false, quicRequest);
        RunOn(q, link, fromHost: true, shortHeader);
        var quic = new ExpectedCounters(q.Collector.SlotCount);
        quic.Add(client, q.Slot("9984/udp", Direction.Down), (ulong)quicRequest.Length, 1);
        quic.Add(client, q.Slot("9984/udp", Direction.Up), (ulong)shortHeader.Length, 1);
        quic.AssertMatches(q.Read());
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
