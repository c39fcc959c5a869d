using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Tests.Bpf;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A VLAN tag the NIC stripped: the namespace end pushes an 802.1Q tag into every IP frame's skb
/// metadata on its egress (bpf/vlan_push.bpf.c, the way rx-vlan-offload hands a frame over), so
/// the host end's XDP sees each frame 4 bytes shorter than it was on the wire. Counted on native
/// XDP (xdp_rx_vlan, device-bound, asking the driver) and on the skb path (skb->vlan_present),
/// both must equal the capture on the namespace end, which shows the tag.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class StrippedVlanEndToEndTests(ITestOutputHelper output)
{
    [KernelTheory]
    [InlineData(XdpMode.Native, "xdp/native")]
    [InlineData(XdpMode.Generic, "tc_ingress/tcx")]
    public void Frames_whose_tag_was_stripped_count_the_tag(XdpMode xdpMode, string ingress)
    {
        using var net = TestNetwork.Create(offloads: false);
        PushVlanTagsOnPeerEgress(net);
        using var collector = CollectorUnderTest.Start(net, xdpMode);
        Assert.Equal([ingress, "tc_egress/tcx"], collector.Attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        if (xdpMode == XdpMode.Native)
            Assert.True(collector.Log.Said(BpfConstants.ProgXdpRxVlan), string.Join('\n', collector.Log.Lines));
        var before = collector.Read();

        var pcap = Path.Combine(Path.GetTempPath(), $"{net.Name}-vlan.pcap");
        using (var capture = PacketCapture.Start(net, pcap))
        {
            SocketTraffic.TcpInbound(net.InNamespace, net.HostV4, net.ClientV4A, 9981, clientSends: 150_000, hostSends: 40_000);
            SocketTraffic.TcpInbound(net.InNamespace, net.HostV6, net.ClientV6, 9984, clientSends: 60_000, hostSends: 90_000);
            SocketTraffic.UdpExchange(net.InNamespace, net.HostV4, net.ClientV4B, 9984, datagrams: 40);
            Thread.Sleep(300);
            capture.Stop();
        }
        var counted = IpCaptureTruth.Delta(before, collector.Read());
        var truth = IpCaptureTruth.FromPcap(pcap, [net.HostV4, net.HostV6], PortClassSet.DefaultSet);
        var tagged = Shell.Run("tshark", "-r", pcap, "-Y", "vlan", "-T", "fields", "-e", "frame.number").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        output.WriteLine($"{tagged} tagged frames in the capture");
        foreach (var (key, t) in truth.OrderBy(k => k.Key.Client).ThenBy(k => k.Key.Slot))
            output.WriteLine($"{key.Client} slot {key.Slot}: capture {t.Bytes} B / {t.Packets} p, counted {counted.GetValueOrDefault(key).Bytes} B");

        Assert.True(tagged > 100, $"only {tagged} tagged frames: the tag push did not work");
        var diffs = IpCaptureTruth.Differences(truth, counted);
        Assert.True(diffs.Count == 0, $"product vs capture (pcap {pcap}):\n" + string.Join('\n', diffs));
        Assert.Equal(6, truth.Count);
        File.Delete(pcap);
    }

    /// <summary>Compiles bpf/vlan_push.bpf.c (beside this file) and attaches it to the namespace end's egress with tc.</summary>
    private static void PushVlanTagsOnPeerEgress(TestNetwork net)
    {
        var source = Path.Combine(TestObject.RepositoryRoot, "tests", "SiaExporter.Tests", "EndToEnd", "bpf", "vlan_push.bpf.c");
        var obj = Path.Combine(Path.GetTempPath(), $"{net.Name}-vlan_push.bpf.o");
        Shell.Run("clang", "-O2", "-g", "-target", "bpf", $"-I/usr/include/{System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
        {
            System.Runtime.InteropServices.Architecture.Arm64 => "aarch64",
            _ => "x86_64",
        }}-linux-gnu", "-c", source, "-o", obj);
        Shell.Run("ip", "netns", "exec", net.Namespace, "tc", "qdisc", "add", "dev", net.PeerInterface, "clsact");
        Shell.Run("ip", "netns", "exec", net.Namespace, "tc", "filter", "add", "dev", net.PeerInterface, "egress", "bpf", "direct-action", "obj", obj, "sec", "tc");
        File.Delete(obj);
    }
}
