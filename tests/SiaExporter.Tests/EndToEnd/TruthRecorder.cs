using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>One recorded run: the plan's traffic inside a capture, and the truth derived from it.</summary>
public sealed record TruthRun(PlanResult Sent, CaptureTruth Truth, PacketCapture.Stats Capture, string PcapPath)
{
    /// <summary>Starts tcpdump, runs the plan, stops tcpdump, decodes the capture. The pcap stays
    /// (in /tmp) when something throws, for a look with tshark; call <see cref="DeletePcap"/> when done.</summary>
    public static TruthRun Record(TestNetwork net, TrafficPlan plan, PortClassSet? classes = null)
    {
        var path = Path.Combine(Path.GetTempPath(), $"{net.Name}-{DateTime.UtcNow:HHmmssfff}.pcap");
        PlanResult sent;
        PacketCapture.Stats stats;
        using (var capture = PacketCapture.Start(net, path))
        {
            sent = plan.Run(net);
            stats = capture.Stop();
        }
        var truth = CaptureTruth.FromPcap(path, net, classes ?? PortClassSet.DefaultSet);
        return new TruthRun(sent, truth, stats, path);
    }

    public void DeletePcap()
    {
        try { File.Delete(PcapPath); } catch (IOException) { }
    }
}

/// <summary>The exact wire size of the plan's UDP datagrams at MTU 1500 (what the kernel's local
/// fragmentation produces), computed from the sizes alone.</summary>
public static class UdpWire
{
    /// <summary>Frames and bytes for one datagram with <paramref name="payload"/> bytes.</summary>
    public static Traffic Of(int payload, bool ipv6, int mtu = 1500)
    {
        var l4 = payload + 8;
        if (!ipv6)
        {
            // Each fragment: Ethernet 14 + IPv4 20, data in multiples of 8 up to 1480.
            var per = (mtu - 20) & ~7;
            var n = (l4 + per - 1) / per;
            return new Traffic((ulong)(l4 + n * 34), (ulong)n);
        }
        if (l4 <= mtu - 40) return new Traffic((ulong)(l4 + 54), 1);
        // Fragmented: Ethernet 14 + IPv6 40 + fragment header 8, data per fragment 1448.
        var per6 = ((mtu - 40) & ~7) - 8;
        var n6 = (l4 + per6 - 1) / per6;
        return new Traffic((ulong)(l4 + n6 * 62), (ulong)n6);
    }
}
