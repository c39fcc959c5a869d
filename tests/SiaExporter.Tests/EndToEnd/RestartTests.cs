using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// Counters across restarts of the daemon's kernel side, with the same pins: a crash (fds closed,
/// programs left attached, as after SIGKILL) and a clean stop, each followed by a new load + attach.
/// Every phase's traffic is checked against its own capture truth: no reset, no double count,
/// nothing lost while no daemon ran, exactly one of our programs per hook.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class RestartTests(ITestOutputHelper output)
{
    [KernelTheory]
    [InlineData(XdpMode.Native)]
    [InlineData(XdpMode.Generic)]
    public void Counters_survive_a_crash_and_a_clean_restart_without_reset_or_double_count(XdpMode xdpMode)
    {
        using var net = TestNetwork.Create(offloads: true);
        var plan = TrafficPlan.Standard(net, scaleKb: 100);

        // 1. First run counts its traffic.
        var first = CollectorUnderTest.Start(net, xdpMode);
        var census = CollectorUnderTest.Census(net);
        AssertOnePerHook(census, xdpMode, first);
        var run1 = TruthRun.Record(net, plan);
        var s1 = first.Read();
        AssertMatches("first run", run1.Truth, TruthComparison.Delta(null, s1), s1, null);

        // 2. Crash: the programs stay attached and keep counting into the pinned maps.
        first.Crash();
        census = CollectorUnderTest.Census(net);
        output.WriteLine($"after the crash: {census}");
        Assert.Equal(1, census.IngressPrograms);
        Assert.Equal(1, census.EgressPrograms);
        var run2 = TruthRun.Record(net, plan);

        // 3. Restart on the same pins: maps reused, links adopted (program swapped in place).
        CounterSnapshot s3;
        using (var second = CollectorUnderTest.Start(net, xdpMode))
        {
            Assert.Equal(PinnedMapsOutcome.Reused, second.Object.MapsOutcome);
            Assert.All(second.Attachments.Items, a => Assert.True(a.Adopted, $"{a.Hook} was not adopted"));
            AssertOnePerHook(CollectorUnderTest.Census(net), xdpMode, second);
            var s2 = second.Read();
            Assert.Equal(s1.Generation, s2.Generation);
            AssertMatches("traffic while no daemon ran", run2.Truth, TruthComparison.Delta(s1, s2), s2, s1);

            var run3 = TruthRun.Record(net, plan);
            s3 = second.Read();
            AssertMatches("after the restart", run3.Truth, TruthComparison.Delta(s2, s3), s3, s2);
            run3.DeletePcap();
        } // 4. Clean stop: detached, links unpinned, maps stay.

        census = CollectorUnderTest.Census(net);
        Assert.Equal(0, census.IngressPrograms + census.EgressPrograms);
        Assert.True(File.Exists(Path.Combine(net.PinDirectory, BpfConstants.MapClients)), "maps stay pinned after a clean stop");

        using (var third = CollectorUnderTest.Start(net, xdpMode))
        {
            Assert.Equal(PinnedMapsOutcome.Reused, third.Object.MapsOutcome);
            AssertOnePerHook(CollectorUnderTest.Census(net), xdpMode, third);
            var s4 = third.Read();
            Assert.Empty(TruthComparison.Delta(s3, s4)); // nothing counted while detached, nothing lost or doubled
            Assert.Equal(s3.Totals, s4.Totals);
            var run4 = TruthRun.Record(net, plan);
            var s5 = third.Read();
            AssertMatches("after the clean restart", run4.Truth, TruthComparison.Delta(s4, s5), s5, s4);
            run4.DeletePcap();
        }
        run1.DeletePcap();
        run2.DeletePcap();
    }

    private void AssertMatches(string phase, CaptureTruth truth, IReadOnlyDictionary<FlowKey, Traffic> counted, CounterSnapshot after, CounterSnapshot? before)
    {
        var diffs = TruthComparison.Differences(truth, counted, after, before);
        output.WriteLine($"{phase}: {counted.Count} keys, {counted.Values.Aggregate(Traffic.Zero, (a, t) => a + t)} counted; {diffs.Count} differences");
        Assert.True(diffs.Count == 0, $"{phase}:\n" + string.Join('\n', diffs));
        Assert.Equal(18, counted.Count);
    }

    private static void AssertOnePerHook(HookCensus census, XdpMode xdpMode, CollectorUnderTest under)
    {
        var collector = under.Object;
        uint Id(SiaExporter.Native.BpfProgram program) => program.Id;
        if (xdpMode == XdpMode.Native)
        {
            // the veth strips VLAN tags (rx-vlan-offload): XDP runs xdp_rx_vlan, loaded for it
            var xdp = under.Attachments.Items.Single(a => a.Hook == Hook.Xdp).ProgramId;
            Assert.Equal([("driver", xdp)], census.Xdp);
            Assert.Empty(census.TcxIngress);
        }
        else
        {
            Assert.Empty(census.Xdp);
            Assert.Equal([Id(collector.TcIngress)], census.TcxIngress);
        }
        Assert.Equal([Id(collector.TcEgress)], census.TcxEgress);
        Assert.Empty(census.NetlinkTc);
    }
}
