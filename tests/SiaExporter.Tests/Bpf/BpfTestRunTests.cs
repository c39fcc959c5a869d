using System.Buffers.Binary;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using Xunit;

namespace SiaExporter.Tests.Bpf;

public sealed class BpfTestRunTests
{
    private const uint XdpPass = 2;
    private const uint TcActOk = 0;
    /// <summary>TC_ACT_UNSPEC (-1): TCX_NEXT, let the next program/the stack decide.</summary>
    private const uint TcActUnspec = uint.MaxValue;
    private static readonly ClientAddress Source = ClientAddress.Parse("198.51.100.9");

    /// <summary>Ethernet + IPv4 + UDP from 198.51.100.9:40000 to 192.0.2.1:9984, padded to <paramref name="length"/>.</summary>
    private static byte[] UdpFrame(int length = 128)
    {
        var frame = new byte[length];
        frame[12] = 0x08; // EtherType IPv4
        var ip = frame.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(length - 14));
        ip[8] = 64;
        ip[9] = 17;
        new byte[] { 198, 51, 100, 9 }.CopyTo(ip[12..]);
        new byte[] { 192, 0, 2, 1 }.CopyTo(ip[16..]);
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 9984);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(length - 34));
        return frame;
    }

    [KernelFact]
    public void Xdp_test_run_counts_the_frame_and_stats_see_the_runs()
    {
        using var stats = BpfStats.Enable();
        using var collector = CollectorObject.Load(TestObject.Options(), new ListLogger());
        KernelMapWriter.PutConfirmedClient(collector, Source); // counted on its entry (bpf/clients.h)

        var result = BpfTestRun.Run(collector.XdpIngress, UdpFrame(), repeat: 10);

        Assert.Equal(XdpPass, result.ReturnValue);
        var snapshot = new CounterReader(collector).Read();
        var index = Array.IndexOf(snapshot.Clients, Source);
        Assert.True(index >= 0, "the source was not counted");
        Assert.Equal(new Traffic(1280, 10), snapshot.Get(index, PortClassSet.Slot(2, Direction.Down)));
        Assert.Equal(10UL, snapshot.Totals[PortClassSet.Slot(2, Direction.Down)].Packets);
        var run = BpfStats.Of(BpfConstants.ProgXdp, collector.XdpIngress);
        Assert.True(run.RunCount >= 10, $"run_cnt {run.RunCount}");
        Assert.True(run.RunTimeNs > 0);
        // Every program of the object is listed (this kernel has drop reasons: qdisc_drop loads).
        Assert.Equal(["xdp_ingress", "tc_ingress", "tc_egress", "tc_ingress_l3", "tc_egress_l3", "qdisc_drop"],
            BpfStats.Of(collector).Select(s => s.Program));
    }

    [KernelFact]
    public void Tc_test_run_accepts_gso_fields_in_the_skb_context()
    {
        using var collector = CollectorObject.Load(TestObject.Options(), new ListLogger());
        KernelMapWriter.PutConfirmedClient(collector, Source);
        var result = BpfTestRun.Run(collector.TcIngress, UdpFrame(), skb: new SkBuffFields(WireLength: 128, GsoSegments: 1));
        Assert.Contains(result.ReturnValue, new[] { TcActOk, TcActUnspec });
        var snapshot = new CounterReader(collector).Read();
        var index = Array.IndexOf(snapshot.Clients, Source);
        Assert.True(index >= 0, "the source was not counted");
        Assert.Equal(1UL, snapshot.Get(index, PortClassSet.Slot(2, Direction.Down)).Packets);
    }
}
