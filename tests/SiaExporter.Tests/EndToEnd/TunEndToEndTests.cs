using System.Net;
using System.Net.Sockets;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Tests.Bpf;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The product on a link without an Ethernet header: a tun device (what WireGuard and PPP look
/// like), real TCP and UDP on 9981 and 9984 in both directions over a <see cref="TunPair"/>,
/// counters compared with a capture on the same tun to the byte and the packet. Also the link
/// types the loader accepts there (TUNSETLINK to PPP and raw IP) and the one line it refuses with.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class TunEndToEndTests(ITestOutputHelper output)
{
    private sealed record Counting(CollectorObject Collector, HookAttachments Attachments, CounterReader Reader, ListLogger Log) : IDisposable
    {
        public static Counting Start(string interfaceName, XdpMode xdpMode = XdpMode.Auto)
        {
            var log = new ListLogger();
            var collector = CollectorObject.Load(TestObject.Options(), log);
            try
            {
                var attachments = HookAttachments.Attach(collector, [interfaceName], xdpMode, TcAttachMode.Auto, log);
                return new Counting(collector, attachments, new CounterReader(collector), log);
            }
            catch
            {
                collector.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Attachments.Dispose();
            Reader.Dispose();
            Collector.Dispose();
        }
    }

    [KernelFact]
    public void Tcp_and_udp_over_a_tun_are_counted_as_the_capture_on_it_saw()
    {
        using var tun = new TunPair();
        using var counting = Counting.Start(tun.HostInterface);
        Assert.Equal(["tc_ingress/tcx", "tc_egress/tcx"], counting.Attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        Assert.True(counting.Log.Said("link type none"), string.Join('\n', counting.Log.Lines));
        var before = counting.Reader.Read();

        var pcap = Path.Combine(Path.GetTempPath(), $"{tun.Namespace}.pcap");
        using (var capture = PacketCapture.Start(null, tun.HostInterface, pcap))
        {
            foreach (var (host, client) in new[] { (tun.HostV4, tun.ClientV4), (tun.HostV6, tun.ClientV6) })
            {
                SocketTraffic.TcpInbound(tun.InNamespace, host, client, 9981, clientSends: 200_000, hostSends: 300_000);
                SocketTraffic.TcpInbound(tun.InNamespace, host, client, 9984, clientSends: 50_000, hostSends: 20_000);
                SocketTraffic.TcpDialOut(tun.InNamespace, host, client, 9984, hostSends: 120_000, peerSends: 80_000);
                SocketTraffic.UdpExchange(tun.InNamespace, host, client, 9984, datagrams: 60);
            }
            Thread.Sleep(300);
            capture.Stop();
        }
        var counted = IpCaptureTruth.Delta(before, counting.Reader.Read());
        var truth = IpCaptureTruth.FromPcap(pcap, [tun.HostV4, tun.HostV6], PortClassSet.DefaultSet);

        foreach (var (key, t) in truth.OrderBy(k => k.Key.Client).ThenBy(k => k.Key.Slot))
            output.WriteLine($"{key.Client} slot {key.Slot}: capture {t.Bytes} B / {t.Packets} p");
        var diffs = IpCaptureTruth.Differences(truth, counted);
        Assert.True(diffs.Count == 0, $"product vs capture on {tun.HostInterface} (pcap {pcap}):\n" + string.Join('\n', diffs));
        // 2 clients × (9981/tcp, 9984/tcp, 9984/udp) × (down, up)
        Assert.Equal(12, truth.Count);
        File.Delete(pcap);
    }

    [KernelTheory]
    [InlineData(LinkType.Ppp, "ppp")]
    [InlineData(LinkType.RawIp, "rawip")]
    [InlineData(LinkType.None, "none")]
    public void An_l3_link_type_gets_the_l3_programs(ushort linkType, string name)
    {
        using var tun = new TunPair(linkType);
        Assert.Equal(name, LinkType.Require(tun.HostInterface).Name);
        using var counting = Counting.Start(tun.HostInterface);
        var ingress = TcxQuery.ProgramIds(Libc_IfIndex(tun.HostInterface), Hook.TcIngress);
        var egress = TcxQuery.ProgramIds(Libc_IfIndex(tun.HostInterface), Hook.TcEgress);
        Assert.Equal([counting.Collector.TcIngressL3.Id], ingress);
        Assert.Equal([counting.Collector.TcEgressL3.Id], egress);

        // one UDP exchange is counted in both directions
        var before = counting.Reader.Read();
        SocketTraffic.UdpExchange(tun.InNamespace, tun.HostV4, tun.ClientV4, 9984, datagrams: 3);
        var counted = IpCaptureTruth.Delta(before, counting.Reader.Read());
        var client = ClientAddress.Parse(tun.ClientV4.ToString());
        var udp = PortClassSet.DefaultSet.IndexOf(PortClass.Parse("9984/udp"));
        Assert.Equal(3UL, counted[(client, PortClassSet.Slot(udp, Direction.Down))].Packets);
        Assert.Equal(3UL, counted[(client, PortClassSet.Slot(udp, Direction.Up))].Packets);
    }

    [KernelFact]
    public void Native_xdp_on_an_l3_link_is_refused_in_one_line()
    {
        using var tun = new TunPair();
        var e = Assert.Throws<OperatorException>(() => Counting.Start(tun.HostInterface, XdpMode.Native));
        Assert.Contains("no Ethernet header", e.What);
        Assert.Contains("XDP_MODE=auto", e.WhatToDo);
    }

    [KernelFact]
    public void A_link_type_the_programs_cannot_parse_is_refused_in_one_line()
    {
        const ushort Gre = 778;
        using var tun = new TunPair(Gre);
        var e = Assert.Throws<OperatorException>(() => LinkType.Require(tun.HostInterface));
        Assert.Equal($"interface '{tun.HostInterface}' has link type 778 (gre), whose frames the collector cannot parse", e.What);
        var attach = Assert.Throws<OperatorException>(() => Counting.Start(tun.HostInterface));
        Assert.Equal(e.What, attach.What);
        Assert.Empty(TcxQuery.ProgramIds(Libc_IfIndex(tun.HostInterface), Hook.TcEgress));
    }

    private static int Libc_IfIndex(string name) => HookAttachments.IfIndexOf(name);
}
