using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Kernel;

/// <summary>
/// Exact counts of xdp_ingress, tc_egress and tc_ingress on frames built byte by byte, run with
/// BPF_PROG_TEST_RUN on a fresh unpinned load per test: every test asserts the exact bytes and
/// packets of the right client and slot, TOTAL, OVERFLOW, and that no other client or slot moved.
/// </summary>
public sealed class CountingTests
{
    internal const string Host4 = "192.0.2.1";
    internal const string Host6 = "2001:db8::1";
    internal const string Client4 = "198.51.100.7";
    internal const string Client6 = "2001:db8:c::7";
    internal const ushort Ephemeral = 50123;

    /// <summary>A frame between a client and the host's service on <paramref name="hostPort"/>, in
    /// the direction <paramref name="hook"/> sees: towards the host for ingress hooks (client =
    /// source), from the host for tc_egress (client = destination).</summary>
    internal static PacketBuilder ServiceFrame(Hook hook, bool v6, bool udp, ushort hostPort, int payload = 100,
        string? client = null, Action<PacketBuilder>? tags = null, Action<PacketBuilder>? extensions = null,
        byte[]? ipOptions = null, byte[]? tcpOptions = null)
    {
        client ??= v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var up = hook == Hook.TcEgress;
        var (src, dst) = up ? (host, client) : (client, host);
        var (sport, dport) = up ? (hostPort, Ephemeral) : (Ephemeral, hostPort);
        var b = new PacketBuilder().Ethernet();
        tags?.Invoke(b);
        if (v6) b.IPv6(src, dst);
        else b.IPv4(src, dst, options: ipOptions, dontFragment: true);
        extensions?.Invoke(b);
        if (udp) b.Udp(sport, dport);
        else b.Tcp(sport, dport, tcpOptions);
        return b.Payload(payload);
    }

    private static (bool Udp, ushort Port) ParseClass(string portClass)
    {
        var c = PortClass.Parse(portClass);
        return (c.Protocol == Protocol.Udp, c.Port);
    }

    public static TheoryData<Hook, bool, string> EveryHookFamilyAndClass()
    {
        var data = new TheoryData<Hook, bool, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var v6 in new[] { false, true })
        foreach (var portClass in new[] { "9981/tcp", "9984/tcp", "9984/udp" })
            data.Add(hook, v6, portClass);
        return data;
    }

    [KernelTheory]
    [MemberData(nameof(EveryHookFamilyAndClass))]
    public void A_client_of_each_class_is_counted_in_its_slot_only(Hook hook, bool v6, string portClass)
    {
        using var k = new KernelCounting();
        var (udp, port) = ParseClass(portClass);
        var frame = ServiceFrame(hook, v6, udp, port, payload: 333).Bytes();

        k.Run(hook, frame, repeat: 3);

        k.Expect(v6 ? Client6 : Client4, portClass, KernelCounting.DirectionOf(hook), 3 * frame.Length, 3);
        k.AssertExact();
    }

    public static TheoryData<Hook, string> TagStacks()
    {
        var data = new TheoryData<Hook, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var tags in new[] { "8100", "88a8", "88a8+8100", "8100+8100" })
            data.Add(hook, tags);
        return data;
    }

    [KernelTheory]
    [MemberData(nameof(TagStacks))]
    public void Vlan_tagged_frames_are_counted_with_their_tags(Hook hook, string tags)
    {
        using var k = new KernelCounting();
        var tpids = tags.Split('+').Select(t => Convert.ToUInt16(t, 16)).ToArray();
        void Tag(PacketBuilder b)
        {
            foreach (var tpid in tpids) b.Vlan(tpid, vid: 42);
        }
        var v4 = ServiceFrame(hook, v6: false, udp: false, 9984, tags: Tag).Bytes();
        var v6 = ServiceFrame(hook, v6: true, udp: true, 9984, tags: Tag).Bytes();

        k.Run(hook, v4);
        k.Run(hook, v6);

        var direction = KernelCounting.DirectionOf(hook);
        k.Expect(Client4, "9984/tcp", direction, v4.Length, 1);
        k.Expect(Client6, "9984/udp", direction, v6.Length, 1);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void Three_vlan_tags_are_not_parsed_and_not_counted(Hook hook)
    {
        using var k = new KernelCounting();
        var frame = ServiceFrame(hook, v6: false, udp: false, 9984, tags: b => b.Vlan().Vlan().Vlan()).Bytes();
        k.Run(hook, frame);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp, 4)]
    [InlineData(Hook.Xdp, 12)]
    [InlineData(Hook.Xdp, 40)]
    [InlineData(Hook.TcEgress, 4)]
    [InlineData(Hook.TcEgress, 40)]
    [InlineData(Hook.TcIngress, 40)]
    public void Ipv4_options_move_the_transport_header(Hook hook, int optionBytes)
    {
        using var k = new KernelCounting();
        // Record Route (7) as long as asked; the rest of the option space is NOPs.
        var options = new byte[optionBytes];
        Array.Fill(options, (byte)1);
        options[0] = 7;
        options[1] = (byte)Math.Min(optionBytes, 39);
        options[2] = 4;
        var frame = ServiceFrame(hook, v6: false, udp: true, 9984, ipOptions: options).Bytes();
        Assert.Equal(0x45 + optionBytes / 4, frame[14]);

        k.Run(hook, frame, repeat: 2);

        k.Expect(Client4, "9984/udp", KernelCounting.DirectionOf(hook), 2 * frame.Length, 2);
        k.AssertExact();
    }

    public static TheoryData<Hook, string> ExtensionChains()
    {
        var data = new TheoryData<Hook, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var chain in new[] { "hop", "routing", "routing0", "fragment", "dest", "auth", "hop+dest+routing+fragment+auth+dest", "hop2+dest3" })
            data.Add(hook, chain);
        return data;
    }

    internal static void AddExtensions(PacketBuilder b, string chain)
    {
        foreach (var name in chain.Split('+'))
        {
            switch (name)
            {
                case "hop": b.HopByHop(); break;
                case "hop2": b.HopByHop(units: 2); break;
                case "routing": b.Routing(segments: 2); break;
                case "routing0": b.Routing(segments: 0); break;
                case "fragment": b.Fragment(offset: 0, more: false); break; // atomic fragment: a whole packet
                case "dest": b.DestinationOptions(); break;
                case "dest3": b.DestinationOptions(units: 3); break;
                case "auth": b.AuthenticationHeader(); break;
                default: throw new ArgumentException(name);
            }
        }
    }

    [KernelTheory]
    [MemberData(nameof(ExtensionChains))]
    public void Ipv6_extension_headers_are_walked_to_the_transport_header(Hook hook, string chain)
    {
        using var k = new KernelCounting();
        var tcp = ServiceFrame(hook, v6: true, udp: false, 9981, extensions: b => AddExtensions(b, chain)).Bytes();
        var udp = ServiceFrame(hook, v6: true, udp: true, 9984, payload: 1200, extensions: b => AddExtensions(b, chain)).Bytes();

        k.Run(hook, tcp);
        k.Run(hook, udp, repeat: 4);

        var direction = KernelCounting.DirectionOf(hook);
        k.Expect(Client6, "9981/tcp", direction, tcp.Length, 1);
        k.Expect(Client6, "9984/udp", direction, 4 * udp.Length, 4);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    public void Eight_extension_headers_are_walked_and_a_ninth_is_not(Hook hook)
    {
        using var k = new KernelCounting();
        var eight = ServiceFrame(hook, v6: true, udp: true, 9984, extensions: b =>
        {
            for (var i = 0; i < BpfConstants.MaxIpv6ExtHeaders; i++) b.DestinationOptions();
        }).Bytes();
        var nine = ServiceFrame(hook, v6: true, udp: true, 9984, client: "2001:db8:c::9", extensions: b =>
        {
            for (var i = 0; i <= BpfConstants.MaxIpv6ExtHeaders; i++) b.DestinationOptions();
        }).Bytes();

        k.Run(hook, eight);
        k.Run(hook, nine);

        k.Expect(Client6, "9984/udp", KernelCounting.DirectionOf(hook), eight.Length, 1);
        k.AssertExact();
    }

    // ------------------------------------------------------------------ fragments

    [KernelTheory]
    [InlineData(Hook.Xdp, false)]
    [InlineData(Hook.Xdp, true)]
    [InlineData(Hook.TcEgress, false)]
    [InlineData(Hook.TcEgress, true)]
    [InlineData(Hook.TcIngress, false)]
    [InlineData(Hook.TcIngress, true)]
    public void Later_fragments_are_counted_in_the_class_of_their_first(Hook hook, bool v6)
    {
        using var k = new KernelCounting();
        var up = hook == Hook.TcEgress;
        var client = v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var (src, dst) = up ? (host, client) : (client, host);
        var (sport, dport) = up ? ((ushort)9984, Ephemeral) : (Ephemeral, (ushort)9984);

        // A 3000-byte UDP datagram to 9984/udp in three fragments of 1232/1232/544 payload bytes.
        PacketBuilder Ip(int offset, bool more)
        {
            var b = new PacketBuilder().Ethernet();
            if (v6) b.IPv6(src, dst).Fragment(offset, more, id: 0xABCDEF01, nextHeader: PacketBuilder.ProtoUdp);
            else b.IPv4(src, dst, id: 0x4242, moreFragments: more, fragmentOffset: offset, protocol: PacketBuilder.ProtoUdp);
            return b;
        }
        var first = Ip(0, more: true).Udp(sport, dport).Payload(1224).Bytes();
        var second = Ip(1232, more: true).Payload(1232).Bytes();
        var last = Ip(2464, more: false).Payload(544).Bytes();

        k.Run(hook, first);
        k.Run(hook, second);
        k.Run(hook, last);

        k.Expect(client, "9984/udp", KernelCounting.DirectionOf(hook), first.Length + second.Length + last.Length, 3);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp, false)]
    [InlineData(Hook.Xdp, true)]
    [InlineData(Hook.TcEgress, false)]
    [InlineData(Hook.TcEgress, true)]
    public void A_later_fragment_without_its_first_is_not_counted(Hook hook, bool v6)
    {
        using var k = new KernelCounting();
        var up = hook == Hook.TcEgress;
        var client = v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var (src, dst) = up ? (host, client) : (client, host);
        var (sport, dport) = up ? ((ushort)9981, Ephemeral) : (Ephemeral, (ushort)9981);
        PacketBuilder Ip(uint id, int offset, bool more, string source)
        {
            var b = new PacketBuilder().Ethernet();
            if (v6) b.IPv6(source, dst).Fragment(offset, more, id: id, nextHeader: PacketBuilder.ProtoTcp);
            else b.IPv4(source, dst, id: (ushort)id, moreFragments: more, fragmentOffset: offset, protocol: PacketBuilder.ProtoTcp);
            return b;
        }
        // The first fragment of datagram 7 is counted; a later fragment of datagram 8 (never
        // seen), and one of datagram 7 from another source, are not.
        var first = Ip(7, 0, more: true, src).Tcp(sport, dport).Payload(600).Bytes();
        var orphan = Ip(8, 640, more: false, src).Payload(100).Bytes();
        var otherSource = Ip(7, 640, more: false, up ? (v6 ? "2001:db8::2" : "192.0.2.2") : (v6 ? "2001:db8:c::8" : "198.51.100.8")).Payload(100).Bytes();

        k.Run(hook, first);
        k.Run(hook, orphan);
        k.Run(hook, otherSource);

        k.Expect(client, "9981/tcp", KernelCounting.DirectionOf(hook), first.Length, 1);
        k.AssertExact();
    }

    [KernelFact]
    public void A_first_fragment_of_an_uncounted_datagram_does_not_make_its_later_fragments_count()
    {
        using var k = new KernelCounting();
        var first = new PacketBuilder().Ethernet().IPv4(Client4, Host4, id: 9, moreFragments: true).Udp(Ephemeral, 53).Payload(600).Bytes();
        var later = new PacketBuilder().Ethernet().IPv4(Client4, Host4, id: 9, fragmentOffset: 608, protocol: PacketBuilder.ProtoUdp).Payload(100).Bytes();
        k.Run(Hook.Xdp, first);
        k.Run(Hook.Xdp, later);
        k.AssertExact();
    }

    // ------------------------------------------------------------------ truncation

    public static TheoryData<Hook, string> TruncatedKinds()
    {
        var data = new TheoryData<Hook, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var kind in new[] { "v4-tcp", "v4-options-2tags-udp", "v6-tcp-options", "v6-ext-chain-udp", "v6-2tags-auth-tcp" })
            data.Add(hook, kind);
        return data;
    }

    internal static BuiltFrame TruncationSubject(Hook hook, string kind) => kind switch
    {
        "v4-tcp" => ServiceFrame(hook, false, false, 9981, payload: 0).Build(),
        "v4-options-2tags-udp" => ServiceFrame(hook, false, true, 9984, payload: 0,
            tags: b => b.Vlan(PacketBuilder.EtherType8021AD).Vlan(), ipOptions: [1, 1, 1, 1, 1, 1, 1, 0]).Build(),
        "v6-tcp-options" => ServiceFrame(hook, true, false, 9984, payload: 0, tcpOptions: PacketBuilder.TypicalTcpOptions).Build(),
        "v6-ext-chain-udp" => ServiceFrame(hook, true, true, 9984, payload: 0,
            extensions: b => AddExtensions(b, "hop+routing+fragment+dest+auth")).Build(),
        "v6-2tags-auth-tcp" => ServiceFrame(hook, true, false, 9981, payload: 0,
            tags: b => b.Vlan().Vlan(), extensions: b => AddExtensions(b, "auth")).Build(),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>
    /// Every prefix of the headers from 14 bytes (a bare Ethernet header; shorter frames are
    /// refused by BPF_PROG_TEST_RUN itself with EINVAL) to one byte short of the end of the
    /// transport header is not counted: that covers a cut at each boundary (Ethernet, each tag, IP
    /// header, IPv4 options, each extension header, TCP/UDP header) and inside each. The whole
    /// headers with no payload are counted. TCP options are not needed for the ports: the frame
    /// ending after the 20 fixed TCP bytes is counted.
    /// </summary>
    [KernelTheory]
    [MemberData(nameof(TruncatedKinds))]
    public void A_frame_cut_anywhere_inside_its_headers_is_not_counted(Hook hook, string kind)
    {
        using var k = new KernelCounting();
        var built = TruncationSubject(hook, kind);
        var tcpOptionBytes = kind == "v6-tcp-options" ? PacketBuilder.TypicalTcpOptions.Length : 0;
        var portsEnd = built.HeadersLength - tcpOptionBytes;
        foreach (var boundary in built.HeaderEnds.Where(e => e < portsEnd))
            Assert.InRange(boundary, 14, portsEnd - 1); // each boundary is among the cuts below
        // For skb programs the test run itself refuses (EINVAL) an untagged IPv4/IPv6 frame shorter
        // than Ethernet + the fixed IP header: the kernel pulls the network header before the
        // program runs. Those cuts are covered for tc by the tagged kinds (EtherType 0x8100/0x88a8).
        var untagged = built.Bytes[12] is 0x08 or 0x86;
        var refusedBelow = hook != Hook.Xdp && untagged ? 14 + (built.Bytes[12] == 0x08 ? 20 : 40) : 14;
        for (var length = 14; length < portsEnd; length++)
        {
            if (length < refusedBelow)
            {
                Assert.Throws<BpfException>(() => BpfTestRun.Run(k.ProgramOf(hook), built.Bytes[..length]));
                continue;
            }
            k.Run(hook, built.Bytes[..length]);
            k.AssertExact();
        }

        k.Run(hook, built.Bytes[..portsEnd]);
        var direction = KernelCounting.DirectionOf(hook);
        var (v6, portClass) = kind switch
        {
            "v4-tcp" => (false, "9981/tcp"),
            "v4-options-2tags-udp" => (false, "9984/udp"),
            "v6-tcp-options" => (true, "9984/tcp"),
            "v6-ext-chain-udp" => (true, "9984/udp"),
            _ => (true, "9981/tcp"),
        };
        k.Expect(v6 ? Client6 : Client4, portClass, direction, portsEnd, 1);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void Frames_below_the_ethernet_header_are_refused_by_the_test_run_itself(Hook hook)
    {
        using var k = new KernelCounting();
        var frame = ServiceFrame(hook, false, false, 9984).Bytes();
        Assert.Throws<BpfException>(() => BpfTestRun.Run(k.ProgramOf(hook), frame[..13]));
        k.AssertExact();
    }

    // ------------------------------------------------------------------ not IP, not TCP/UDP, malformed IP

    public static TheoryData<Hook, string> NotCountedKinds()
    {
        var data = new TheoryData<Hook, string>();
        foreach (var hook in Enum.GetValues<Hook>())
        foreach (var kind in new[] { "arp", "lldp", "tagged-arp", "icmp", "icmpv6", "ipv4-ihl4", "ipv4-version6", "ipv6-version4", "ipv6-no-next", "v4-in-v6-ethertype", "tcp-doff4", "tcp6-doff4" })
            data.Add(hook, kind);
        return data;
    }

    internal static byte[] NotCounted(Hook hook, string kind)
    {
        var arp = new byte[28];
        arp[1] = 1; arp[2] = 8; arp[4] = 6; arp[5] = 4; arp[7] = 1;
        switch (kind)
        {
            case "arp": return new PacketBuilder().Ethernet(etherType: PacketBuilder.EtherTypeArp).Raw(arp).Payload(18).Bytes();
            case "lldp": return new PacketBuilder().Ethernet(etherType: 0x88CC).Payload(60).Bytes();
            case "tagged-arp": return new PacketBuilder().Ethernet().Vlan(etherType: PacketBuilder.EtherTypeArp).Raw(arp).Bytes();
            case "icmp":
                // ICMP echo whose first 4 bytes would read as ports 9984 -> 9984
                return new PacketBuilder().Ethernet().IPv4(Client4, Host4, protocol: PacketBuilder.ProtoIcmp).Raw([0x27, 0x00, 0x27, 0x00, 0, 0, 0, 0]).Payload(56).Bytes();
            case "icmpv6":
                return new PacketBuilder().Ethernet().IPv6(Client6, Host6, nextHeader: PacketBuilder.ProtoIcmpV6).Raw([0x27, 0x00, 0x27, 0x00, 0, 0, 0, 0]).Payload(56).Bytes();
            case "ipv6-no-next":
                return new PacketBuilder().Ethernet().IPv6(Client6, Host6).DestinationOptions().Raw([0x27, 0x00, 0x27, 0x00, 0, 0, 0, 0]).Payload(56).Bytes();
            case "ipv4-ihl4":
            {
                var f = ServiceFrame(hook, false, false, 9984).Bytes();
                f[14] = 0x44;
                return f;
            }
            case "ipv4-version6":
            {
                var f = ServiceFrame(hook, false, false, 9984).Bytes();
                f[14] = 0x65;
                return f;
            }
            case "ipv6-version4":
            {
                var f = ServiceFrame(hook, true, false, 9984).Bytes();
                f[14] = 0x40;
                return f;
            }
            case "v4-in-v6-ethertype":
            {
                // An IPv4 packet under the IPv6 EtherType: version 4 != 6
                var f = ServiceFrame(hook, false, false, 9984).Bytes();
                f[12] = 0x86; f[13] = 0xDD;
                return [.. f, .. new byte[40]];
            }
            case "tcp-doff4" or "tcp6-doff4":
            {
                // A TCP header claiming 16 bytes (data offset 4 < 5) is malformed, like IHL < 5.
                var v6 = kind == "tcp6-doff4";
                var f = ServiceFrame(hook, v6, false, 9984).Bytes();
                var doffAt = 14 + (v6 ? 40 : 20) + 12;
                f[doffAt] = (byte)(0x40 | (f[doffAt] & 0x0F));
                return f;
            }
            default: throw new ArgumentException(kind);
        }
    }

    [KernelTheory]
    [MemberData(nameof(NotCountedKinds))]
    public void Non_ip_non_tcp_udp_and_malformed_ip_frames_are_not_counted(Hook hook, string kind)
    {
        using var k = new KernelCounting();
        k.Run(hook, NotCounted(hook, kind), repeat: 2);
        k.AssertExact();
    }

    // ------------------------------------------------------------------ which port decides

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_host_dialing_out_to_a_peer_9981_is_counted_with_the_peer_as_client(bool v6)
    {
        using var k = new KernelCounting();
        var peer = v6 ? "2001:db8:9ee2::1" : "203.0.113.50";
        var host = v6 ? Host6 : Host4;
        PacketBuilder Ip(string src, string dst) => v6 ? new PacketBuilder().Ethernet().IPv6(src, dst) : new PacketBuilder().Ethernet().IPv4(src, dst);
        var syn = Ip(host, peer).Tcp(Ephemeral, 9981, PacketBuilder.TypicalTcpOptions, flags: 0x02).Bytes();
        var request = Ip(host, peer).Tcp(Ephemeral, 9981).Payload(400).Bytes();
        var answer = Ip(peer, host).Tcp(9981, Ephemeral).Payload(1400).Bytes();

        k.Run(Hook.TcEgress, syn);
        k.Run(Hook.TcEgress, request, repeat: 5);
        k.Run(Hook.Xdp, answer, repeat: 7);
        k.Run(Hook.TcIngress, answer);

        k.Expect(peer, "9981/tcp", Direction.Up, syn.Length + 5 * request.Length, 6);
        k.Expect(peer, "9981/tcp", Direction.Down, 8 * answer.Length, 8);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void The_hosts_own_port_decides_before_the_remote_port(Hook hook)
    {
        using var k = new KernelCounting();
        // Host 9984/tcp talking with a peer's 9981/tcp: the host's port (9984) wins in both directions.
        var up = hook == Hook.TcEgress;
        var frame = up
            ? new PacketBuilder().Ethernet().IPv4(Host4, Client4).Tcp(9984, 9981).Payload(10).Bytes()
            : new PacketBuilder().Ethernet().IPv4(Client4, Host4).Tcp(9981, 9984).Payload(10).Bytes();
        k.Run(hook, frame);
        k.Expect(Client4, "9984/tcp", KernelCounting.DirectionOf(hook), frame.Length, 1);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(Hook.Xdp)]
    [InlineData(Hook.TcEgress)]
    [InlineData(Hook.TcIngress)]
    public void Unknown_ports_on_both_sides_are_not_counted_and_create_no_client(Hook hook)
    {
        using var k = new KernelCounting(preConfirm: false);
        var ssh = new PacketBuilder().Ethernet().IPv4(Client4, Host4).Tcp(Ephemeral, 22).Payload(48).Bytes();
        var dns = new PacketBuilder().Ethernet().IPv6(Client6, Host6).Udp(53, Ephemeral).Payload(80).Bytes();
        var https = new PacketBuilder().Ethernet().IPv4(Host4, Client4).Tcp(443, Ephemeral).Payload(1000).Bytes();
        // The right port with the wrong protocol: 9981/udp and 9984 both ways on ICMP are no class.
        var wrongProto = new PacketBuilder().Ethernet().IPv4(Client4, Host4).Udp(9981, 9981).Payload(20).Bytes();
        foreach (var frame in new[] { ssh, dns, https, wrongProto })
            k.Run(hook, frame, repeat: 3);
        k.AssertExact();
        Assert.Empty(k.Read().Clients);
    }

    [KernelFact]
    public void An_ipv4_client_is_keyed_v4_mapped_and_shown_as_ipv4()
    {
        using var k = new KernelCounting(preConfirm: false);
        var frame = ServiceFrame(Hook.Xdp, v6: false, udp: true, 9984).Bytes();
        var shortHeader = ServiceFrame(Hook.TcEgress, v6: false, udp: true, 9984).Bytes(); // payload byte 0 = 3: 1-RTT
        k.Run(Hook.Xdp, frame);
        k.Run(Hook.TcEgress, shortHeader); // the kernel creates the entry

        var key = new byte[16];
        BpfErrors.Check(k.Collector.ClientsMap.GetNextKey([], key), "get_next_key");
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7 }, key);
        var snapshot = k.Read();
        var client = Assert.Single(snapshot.Clients);
        Assert.True(client.IsIPv4);
        Assert.Equal(Client4, client.ToString());
        k.Expect(Client4, "9984/udp", Direction.Down, frame.Length, 1);
        k.Expect(Client4, "9984/udp", Direction.Up, shortHeader.Length, 1);
        k.AssertExact();
    }

    // ------------------------------------------------------------------ GSO / GRO

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tc_egress_counts_a_gso_super_packet_as_its_segments_on_the_wire(bool v6)
    {
        using var k = new KernelCounting();
        // 3 × 1000-byte segments of 9984/tcp with timestamps (doff 8): the kernel's qdisc_pkt_len
        // (wire_len) adds the headers of the 2 extra segments.
        var frame = ServiceFrame(Hook.TcEgress, v6, udp: false, 9984, payload: 3000,
            tcpOptions: [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).Bytes();
        var headers = 14 + (v6 ? 40 : 20) + 32;
        var wire = frame.Length + 2 * headers;

        k.Run(Hook.TcEgress, frame, skb: new SkBuffFields(WireLength: (uint)wire, GsoSegments: 3, GsoSize: 1000));
        // Without GSO fields: one frame of skb->len.
        k.Run(Hook.TcEgress, frame);

        k.Expect(v6 ? Client6 : Client4, "9984/tcp", Direction.Up, wire + frame.Length, 4);
        k.AssertExact();
    }

    [KernelTheory]
    [InlineData(false, false, "")]
    [InlineData(true, false, "")]
    [InlineData(false, true, "")]
    [InlineData(true, true, "hop+dest")]
    [InlineData(true, false, "routing+auth")]
    public void Tc_ingress_adds_the_headers_of_every_extra_gro_segment(bool v6, bool udp, string chain)
    {
        using var k = new KernelCounting();
        byte[] timestamps = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        var built = ServiceFrame(Hook.TcIngress, v6, udp, 9984, payload: 2800, tcpOptions: udp ? null : timestamps,
            extensions: chain.Length > 0 ? b => AddExtensions(b, chain) : null).Build();
        var frame = built.Bytes;
        // Ethernet + IP + extension headers + TCP with 12 option bytes (doff 8) / UDP, counted
        // independently of the builder's own boundaries.
        var extensionBytes = chain.Length == 0 ? 0 : chain.Split('+').Sum(e => ExtensionSize[e]);
        var headerLength = 14 + (v6 ? 40 : 20) + extensionBytes + (udp ? 8 : 32);
        Assert.Equal(built.HeadersLength, headerLength);

        k.Run(Hook.TcIngress, frame, skb: new SkBuffFields(GsoSegments: 4, GsoSize: 700));

        k.Expect(v6 ? Client6 : Client4, udp ? "9984/udp" : "9984/tcp", Direction.Down, frame.Length + 3L * headerLength, 4);
        k.AssertExact();
    }

    private static readonly Dictionary<string, int> ExtensionSize = new()
    {
        ["hop"] = 8, ["dest"] = 8, ["routing"] = 8 + 2 * 16, ["auth"] = 24,
    };

    // ------------------------------------------------------------------ PORTS and MAX_CLIENTS

    [KernelFact]
    public void A_non_default_port_list_counts_each_class_in_its_own_slots()
    {
        const string ports = "443/tcp,9984/udp,9981/tcp,5353/udp";
        using var k = new KernelCounting(ports);
        Assert.Equal(8, k.Collector.SlotCount);
        var https = ServiceFrame(Hook.Xdp, false, false, 443, payload: 10).Bytes();
        var quic = ServiceFrame(Hook.TcEgress, true, true, 9984, payload: 20).Bytes();
        var consensus = ServiceFrame(Hook.TcEgress, false, false, 9981, payload: 30).Bytes();
        var mdns = ServiceFrame(Hook.TcIngress, true, true, 5353, payload: 40).Bytes();
        // 9984/tcp is no longer a class
        var oldClass = ServiceFrame(Hook.Xdp, false, false, 9984, client: "198.51.100.99").Bytes();

        k.Run(Hook.Xdp, https);
        k.Run(Hook.TcEgress, quic, repeat: 2);
        k.Run(Hook.TcEgress, consensus);
        k.Run(Hook.TcIngress, mdns);
        k.Run(Hook.Xdp, oldClass);

        Assert.Equal(0, k.Slot("443/tcp", Direction.Down));
        Assert.Equal(3, k.Slot("9984/udp", Direction.Up));
        Assert.Equal(7, k.Slot("5353/udp", Direction.Up));
        k.Expect(Client4, "443/tcp", Direction.Down, https.Length, 1);
        k.Expect(Client6, "9984/udp", Direction.Up, 2 * quic.Length, 2);
        k.Expect(Client4, "9981/tcp", Direction.Up, consensus.Length, 1);
        k.Expect(Client6, "5353/udp", Direction.Down, mdns.Length, 1);
        k.AssertExact();
    }

    [KernelFact]
    public void A_full_clients_map_sends_the_rest_to_overflow_and_total_keeps_everything()
    {
        // Each client sends, then the host answers (PSH|ACK: that confirms it). The 16 that fit get
        // an entry holding both; the host's answers to the other 4 overflow, and what those 4 sent
        // before stays with the unconfirmed traffic.
        using var k = new KernelCounting(maxClients: 16, preConfirm: false);
        for (var i = 0; i < 20; i++)
        {
            var client = $"198.51.100.{i + 1}";
            var frame = ServiceFrame(Hook.Xdp, false, false, 9984, payload: 100 + i, client: client).Bytes();
            var answer = ServiceFrame(Hook.TcEgress, false, false, 9984, payload: 1000 + i, client: client).Bytes();
            k.Run(Hook.Xdp, frame, repeat: 2);
            k.Run(Hook.TcEgress, answer);
            if (i < 16)
            {
                k.Expect(client, "9984/tcp", Direction.Down, 2 * frame.Length, 2);
                k.Expect(client, "9984/tcp", Direction.Up, answer.Length, 1);
            }
            else
            {
                k.ExpectUnconfirmed("9984/tcp", Direction.Down, 2 * frame.Length, 2);
                k.ExpectOverflow("9984/tcp", Direction.Up, answer.Length, 1);
            }
        }
        k.AssertExact();
        // A client with an entry keeps counting in it while the map is full.
        var again = ServiceFrame(Hook.Xdp, false, false, 9984, payload: 5, client: "198.51.100.1").Bytes();
        k.Run(Hook.Xdp, again);
        k.Expect("198.51.100.1", "9984/tcp", Direction.Down, again.Length, 1);
        k.AssertExact();
        Assert.Equal(16, k.Read().Clients.Length);
    }
}
