using System.Diagnostics;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The product's programs on the host end of a veth, real traffic through them, and their counters
/// compared with the capture truth to the byte and the frame, per client, class and direction,
/// with host totals equal to the sums and nothing else counted.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class CountersMatchTruthTests(ITestOutputHelper output)
{
    [KernelTheory]
    [InlineData(XdpMode.Native, true, false)]
    [InlineData(XdpMode.Native, false, false)]
    [InlineData(XdpMode.Generic, true, false)]
    [InlineData(XdpMode.Generic, false, false)]
    [InlineData(XdpMode.Native, true, true)]
    [InlineData(XdpMode.Generic, true, true)]
    public void Counters_equal_the_capture_truth(XdpMode xdpMode, bool offloads, bool concurrentTcp)
    {
        var sw = Stopwatch.StartNew();
        using var net = TestNetwork.Create(offloads);
        using var collector = CollectorUnderTest.Start(net, xdpMode);
        var expectedIngress = xdpMode == XdpMode.Native ? "xdp/native" : "tc_ingress/tcx";
        Assert.Equal([expectedIngress, "tc_egress/tcx"], collector.Attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        var before = collector.Read();

        var plan = TrafficPlan.Standard(net);
        plan = concurrentTcp ? plan.WithConcurrentTcp() : plan;
        var run = TruthRun.Record(net, plan);
        var after = collector.Read();

        var counted = TruthComparison.Delta(before, after);
        output.WriteLine($"{net.Name} {xdpMode} offloads {(offloads ? "on" : "off")}{(concurrentTcp ? ", concurrent TCP" : "")}, {sw.ElapsedMilliseconds} ms; capture {run.Capture}");
        output.WriteLine(run.Truth.Describe());
        output.WriteLine("host side (peer) offloads: " + OffloadSummary(net));
        var diffs = TruthComparison.Differences(run.Truth, counted, after, before);
        if (diffs.Count > 0)
        {
            output.WriteLine("counted by the product:");
            output.WriteLine(TruthComparison.Table(counted));
            output.WriteLine($"pcap kept at {run.PcapPath}");
        }
        Assert.True(diffs.Count == 0, "product vs capture truth:\n" + string.Join('\n', diffs));
        Assert.Equal(18, counted.Count);
        run.DeletePcap();
    }

    private static string OffloadSummary(TestNetwork net)
    {
        static string Pick(string ethtool) => string.Join(' ', ethtool.Split('\n')
            .Where(l => l.StartsWith("tcp-segmentation-offload", StringComparison.Ordinal) || l.StartsWith("generic-segmentation-offload", StringComparison.Ordinal)
                || l.StartsWith("generic-receive-offload", StringComparison.Ordinal))
            .Select(l => l.Replace("-offload", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal)));
        return $"host {Pick(net.OffloadState(true))}; namespace {Pick(net.OffloadState(false))}";
    }
}
