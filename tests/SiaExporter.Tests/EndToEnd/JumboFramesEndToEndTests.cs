using System.Globalization;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// Jumbo frames on native XDP: a veth at MTU 9000 (veth refuses an XDP program that is not
/// multi-buffer aware once the peer's MTU exceeds a page), xdp_ingress attached in driver mode
/// (xdp.frags), jumbo TCP and UDP both ways, every frame counted whole as the capture saw it.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class JumboFramesEndToEndTests(ITestOutputHelper output)
{
    [KernelFact]
    public void Jumbo_frames_on_native_xdp_are_counted_whole()
    {
        using var net = TestNetwork.Create(offloads: false);
        Shell.Run("ip", "link", "set", net.HostInterface, "mtu", "9000");
        Shell.Run("ip", "-n", net.Namespace, "link", "set", net.PeerInterface, "mtu", "9000");
        using var collector = CollectorUnderTest.Start(net, XdpMode.Native);
        Assert.Equal(["xdp/native", "tc_egress/tcx"], collector.Attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        var before = collector.Read();

        var pcap = Path.Combine(Path.GetTempPath(), $"{net.Name}-jumbo.pcap");
        using (var capture = PacketCapture.Start(net, pcap))
        {
            SocketTraffic.TcpInbound(net.InNamespace, net.HostV4, net.ClientV4A, 9981, clientSends: 2_000_000, hostSends: 500_000);
            SocketTraffic.TcpInbound(net.InNamespace, net.HostV6, net.ClientV6, 9984, clientSends: 1_000_000, hostSends: 100_000);
            SocketTraffic.UdpExchange(net.InNamespace, net.HostV4, net.ClientV4B, 9984, datagrams: 30, maxSize: 8900);
            Thread.Sleep(300);
            capture.Stop();
        }
        var counted = IpCaptureTruth.Delta(before, collector.Read());
        var truth = IpCaptureTruth.FromPcap(pcap, [net.HostV4, net.HostV6], PortClassSet.DefaultSet);
        var largest = Shell.Run("tshark", "-r", pcap, "-T", "fields", "-e", "frame.len").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Max(l => int.Parse(l, CultureInfo.InvariantCulture));
        output.WriteLine($"largest frame {largest} B");
        foreach (var (key, t) in truth.OrderBy(k => k.Key.Client).ThenBy(k => k.Key.Slot))
            output.WriteLine($"{key.Client} slot {key.Slot}: capture {t.Bytes} B / {t.Packets} p, counted {counted.GetValueOrDefault(key).Bytes} B");

        Assert.Equal(9014, largest);
        var diffs = IpCaptureTruth.Differences(truth, counted);
        Assert.True(diffs.Count == 0, $"product vs capture (pcap {pcap}):\n" + string.Join('\n', diffs));
        Assert.Equal(6, truth.Count);
        File.Delete(pcap);
    }
}
