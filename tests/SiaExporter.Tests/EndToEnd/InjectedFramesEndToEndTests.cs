using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Tests.Kernel;
using Xunit;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// PPPoE session frames and in-frame VLAN tags, written byte by byte and sent with AF_PACKET over
/// a veth: from the namespace end (the host end's XDP or tc ingress counts them) and from the
/// host end (its tc egress counts them). Each counted frame at exactly its length; PPPoE
/// discovery and non-IP PPP not at all. The frames are not IP to either stack (no PPPoE or
/// 802.1Q module, VID 42 is nobody's), so they are dropped there and nothing answers.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class InjectedFramesEndToEndTests
{
    [KernelTheory]
    [InlineData(XdpMode.Native)]
    [InlineData(XdpMode.Generic)]
    public void Pppoe_and_tagged_frames_count_at_their_frame_length_in_both_directions(XdpMode xdpMode)
    {
        using var net = TestNetwork.Create(offloads: false);
        using var collector = CollectorUnderTest.Start(net, xdpMode);
        var expected = new ExpectedCounters(collector.Object.SlotCount);
        var classes = collector.Object.Classes;
        int Slot(string portClass, Direction direction) => PortClassSet.Slot(classes.IndexOf(PortClass.Parse(portClass)), direction);
        var host = net.HostMac.GetAddressBytes();
        var peer = net.PeerMac.GetAddressBytes();

        // down: from the namespace end to the host
        var down = new List<byte[]>();
        void Down(string portClass, string client, string hostAddress, Action<PacketBuilder> link, bool counted = true, int payload = 300)
        {
            var c = PortClass.Parse(portClass);
            var b = new PacketBuilder().Ethernet(host, peer);
            link(b);
            if (client.Contains(':')) b.IPv6(client, hostAddress); else b.IPv4(client, hostAddress, dontFragment: true);
            if (c.Protocol == Protocol.Udp) b.Udp(40000, c.Port); else b.Tcp(40000, c.Port);
            var frame = b.Payload(payload).Bytes();
            down.Add(frame);
            if (counted) expected.Add(ClientAddress.Parse(client), Slot(portClass, Direction.Down), (ulong)frame.Length, 1);
        }
        // up: from the host to the namespace end
        var up = new List<byte[]>();
        void Up(string portClass, string client, string hostAddress, Action<PacketBuilder> link, bool counted = true, int payload = 300)
        {
            var c = PortClass.Parse(portClass);
            var b = new PacketBuilder().Ethernet(peer, host);
            link(b);
            if (client.Contains(':')) b.IPv6(hostAddress, client); else b.IPv4(hostAddress, client, dontFragment: true);
            if (c.Protocol == Protocol.Udp) b.Udp(c.Port, 40000); else b.Tcp(c.Port, 40000);
            var frame = b.Payload(payload).Bytes();
            up.Add(frame);
            if (counted) expected.Add(ClientAddress.Parse(client), Slot(portClass, Direction.Up), (ulong)frame.Length, 1);
        }
        string v4 = net.ClientV4A.ToString(), v4b = net.ClientV4B.ToString(), v6 = net.ClientV6.ToString();
        string h4 = net.HostV4.ToString(), h6 = net.HostV6.ToString();
        void Pppoe(PacketBuilder b) => b.PppoeSession();
        void TaggedPppoe(PacketBuilder b) => b.Vlan(vid: 42).PppoeSession();
        void Tagged(PacketBuilder b) => b.Vlan(vid: 42);

        foreach (var send in new Action<string, string, string, Action<PacketBuilder>, bool, int>[] { Down, Up })
        {
            send("9981/tcp", v4, h4, Pppoe, true, 1200);
            send("9984/udp", v6, h6, Pppoe, true, 80);
            send("9984/tcp", v4b, h4, TaggedPppoe, true, 500);
            send("9984/udp", v4, h4, Tagged, true, 64);
            send("9981/tcp", v6, h6, Tagged, true, 700);
            // LCP inside a session: not IP, not counted
            send("9981/tcp", v4, h4, b => b.PppoeSession(pppProtocol: PacketBuilder.PppLcp), false, 100);
        }
        // PPPoE discovery (PADI), both ways: not counted
        var discovery = new PacketBuilder().Ethernet(host, peer, PacketBuilder.EtherTypePppoeDiscovery)
            .Raw([0x11, 0x09, 0, 0, 0, 4, 0x01, 0x01, 0, 0]).Payload(30).Bytes();
        down.Add(discovery);

        using (var fromPeer = net.InNamespace.Run(() => new RawFrameSocket(net.PeerInterface)))
            foreach (var frame in down) fromPeer.Send(frame);
        using (var fromHost = new RawFrameSocket(net.HostInterface))
            foreach (var frame in up) fromHost.Send(frame);
        Thread.Sleep(200);

        expected.AssertMatches(collector.Read());
    }
}
