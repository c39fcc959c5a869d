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
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly byte[] Pattern = Enumerable.Range(0, 65536).Select(b => (byte)(b * 13 + 5)).ToArray();

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
        Assert.Equal(["tc_ingress/tcx", "tc/tcx"], counting.Attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        Assert.True(counting.Log.Said("link type none"), string.Join('\n', counting.Log.Lines));
        var before = counting.Reader.Read();

        var pcap = Path.Combine(Path.GetTempPath(), $"{tun.Namespace}.pcap");
        using (var capture = PacketCapture.Start(null, tun.HostInterface, pcap))
        {
            foreach (var (host, client) in new[] { (tun.HostV4, tun.ClientV4), (tun.HostV6, tun.ClientV6) })
            {
                TcpInbound(tun, host, client, 9981, clientSends: 200_000, hostSends: 300_000);
                TcpInbound(tun, host, client, 9984, clientSends: 50_000, hostSends: 20_000);
                TcpDialOut(tun, host, client, 9984, hostSends: 120_000, peerSends: 80_000);
                UdpExchange(tun, host, client, 9984, datagrams: 60);
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
        Assert.Equal([SiaExporter.Native.BpfInfo.OfProgram(counting.Collector.TcIngressL3Fd).Id], ingress);
        Assert.Equal([SiaExporter.Native.BpfInfo.OfProgram(counting.Collector.TcEgressL3Fd).Id], egress);

        // one UDP exchange is counted in both directions
        var before = counting.Reader.Read();
        UdpExchange(tun, tun.HostV4, tun.ClientV4, 9984, datagrams: 3);
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

    private static void TcpInbound(TunPair tun, IPAddress host, IPAddress client, int port, int clientSends, int hostSends)
    {
        using var listener = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(host, port));
        listener.Listen(1);
        using var c = tun.InNamespace.Run(() => new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        c.Connect(new IPEndPoint(host, port));
        using var s = listener.Accept();
        Exchange(c, s, clientSends, hostSends);
    }

    private static void TcpDialOut(TunPair tun, IPAddress host, IPAddress peer, int port, int hostSends, int peerSends)
    {
        using var listener = tun.InNamespace.Run(() =>
        {
            var l = new Socket(peer.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(peer, port));
            l.Listen(1);
            return l;
        });
        using var h = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        h.Bind(new IPEndPoint(host, 0));
        h.Connect(new IPEndPoint(peer, port));
        using var p = listener.Accept();
        Exchange(h, p, hostSends, peerSends);
    }

    /// <summary><paramref name="a"/> sends, then <paramref name="b"/> answers; both read to the end.</summary>
    private static void Exchange(Socket a, Socket b, int aSends, int bSends)
    {
        var first = Task.Run(() => { Send(a, aSends); a.Shutdown(SocketShutdown.Send); return ReadToEnd(a); });
        var second = Task.Run(() => { var got = ReadToEnd(b); Send(b, bSends); b.Shutdown(SocketShutdown.Send); return got; });
        Assert.True(Task.WaitAll([first, second], Timeout), "TCP exchange timed out");
        Assert.Equal(bSends, first.Result);
        Assert.Equal(aSends, second.Result);
    }

    private static void Send(Socket s, int count)
    {
        for (var left = count; left > 0;)
            left -= s.Send(Pattern, 0, Math.Min(left, Pattern.Length), SocketFlags.None);
    }

    private static int ReadToEnd(Socket s)
    {
        var buffer = new byte[65536];
        var total = 0;
        for (int n; (n = s.Receive(buffer)) > 0;) total += n;
        return total;
    }

    /// <summary>Lockstep request/reply datagrams (sizes 1..1200) from the client to the host's <paramref name="port"/>.</summary>
    private static void UdpExchange(TunPair tun, IPAddress host, IPAddress client, int port, int datagrams)
    {
        using var h = new Socket(host.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        h.Bind(new IPEndPoint(host, port));
        h.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        using var c = tun.InNamespace.Run(() =>
        {
            var s = new Socket(client.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(client, 0));
            return s;
        });
        c.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        var buffer = new byte[2048];
        for (var i = 0; i < datagrams; i++)
        {
            var request = 1 + i * 997 % 1200;
            var reply = 1 + i * 389 % 1200;
            c.SendTo(Pattern.AsSpan(0, request), new IPEndPoint(host, port));
            EndPoint from = new IPEndPoint(client.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            Assert.Equal(request, h.ReceiveFrom(buffer, ref from));
            h.SendTo(Pattern.AsSpan(0, reply), from);
            Assert.Equal(reply, c.Receive(buffer));
        }
    }
}
