using System.Diagnostics;
using System.Net.Sockets;
using SiaExporter.Counters;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The end-to-end truth checked against itself, before any product code is involved: the capture of
/// the standard plan must account for exactly the payload the plan sent, with exactly the header
/// overhead TCP/IP puts around it, with offloads on (GSO super-packets expanded) and off.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class TruthSelfCheckTests(ITestOutputHelper output)
{
    [KernelFact]
    public void Truth_matches_the_plan_with_offloads_on() => CheckTruth(offloads: true);

    [KernelFact]
    public void Truth_matches_the_plan_with_offloads_off() => CheckTruth(offloads: false);

    private void CheckTruth(bool offloads)
    {
        var sw = Stopwatch.StartNew();
        string name;
        TruthRun run;
        using (var net = TestNetwork.Create(offloads))
        {
            name = net.Name;
            Assert.NotEqual(RootNamespaceIdentity(), net.InNamespace.NamespaceIdentity());
            run = TruthRun.Record(net, TrafficPlan.Standard(net));
            output.WriteLine($"{net.Name} offloads {(offloads ? "on" : "off")}: plan + capture + tshark in {sw.ElapsedMilliseconds} ms, capture {run.Capture}");
            output.WriteLine(run.Truth.Describe());
        }
        var truth = run.Truth;
        var sent = run.Sent;
        var classes = PortClassSet.DefaultSet;

        foreach (var (key, bytes) in truth.RetransmittedPayload)
            output.WriteLine($"retransmitted: {key} {bytes} B payload (counted: it crossed the veth)");
        foreach (var (key, bytes) in truth.ExtraOptionBytes)
            output.WriteLine($"extra TCP options: {key} {bytes} B");
        Assert.Equal(0, truth.UnresolvedFragments);
        Assert.True(truth.Fragments > 0, "the plan sends datagrams above the MTU");
        Assert.Subset(new SortedSet<int> { 1448, 1428 }, new SortedSet<int>(truth.SegmentSizes));
        if (offloads)
            Assert.True(truth.SuperPackets > 0, "with TSO/GSO on, the host's egress reaches the namespace as super-packets");
        else
        {
            Assert.Equal(0, truth.SuperPackets);
            Assert.True(truth.LargestCapturedFrame <= 1514, $"largest frame {truth.LargestCapturedFrame} with offloads off");
        }

        // Payload: exactly what the plan sent, per client, class and direction; nothing else counted.
        var siaSent = sent.Payload.Where(kv => classes.IndexOf(kv.Key.Class) >= 0).ToDictionary();
        var otherSent = sent.Payload.Where(kv => classes.IndexOf(kv.Key.Class) < 0).ToDictionary();
        // (Application payload: retransmitted bytes once; the counted payload has them as often as they crossed.)
        Assert.Equal(sent.Payload.OrderBy(kv => kv.Key.ToString()), truth.ApplicationPayload.OrderBy(kv => kv.Key.ToString()));
        Assert.Equal(siaSent.Keys.OrderBy(k => k.ToString()), truth.CountedPayload.Keys.OrderBy(k => k.ToString()));
        Assert.Equal(otherSent.Keys.OrderBy(k => k.ToString()), truth.UncountedPayload.Keys.OrderBy(k => k.ToString()));
        foreach (var (key, payload) in truth.CountedPayload)
            Assert.True(payload >= siaSent[key], $"{key}: {payload} B crossed, {siaSent[key]} B sent");
        Assert.Equal(siaSent.Keys.OrderBy(k => k.ToString()), truth.Counted.Keys.OrderBy(k => k.ToString()));
        // 3 clients × (9981/tcp, 9984/tcp, 9984/udp) × 2 directions; the dial-outs land in 9981/tcp keys.
        Assert.Equal(18, truth.Counted.Count);

        // Header overhead, exactly: every TCP segment carries Ethernet + IP + 32 B of TCP header
        // (timestamps), the SYN or SYN-ACK of each connection 8 B more (MSS, SACK-permitted, window scale).
        foreach (var (key, traffic) in truth.Counted.Where(kv => kv.Key.Class.Protocol == Protocol.Tcp))
        {
            var perSegment = 14 + (key.Client.IsIPv4 ? 20 : 40) + 32;
            var expected = (long)traffic.Packets * perSegment + 8L * sent.TcpConnections[key] + truth.ExtraOptionBytes.GetValueOrDefault(key);
            Assert.True(expected == (long)traffic.Bytes - truth.CountedPayload[key],
                $"{key}: {traffic.Bytes} B − payload {truth.CountedPayload[key]} = {(long)traffic.Bytes - truth.CountedPayload[key]} B of headers over {traffic.Packets} frames; expected {expected}");
            var mss = key.Client.IsIPv4 ? 1448 : 1428;
            var minimum = (truth.CountedPayload[key] + mss - 1) / mss;
            Assert.True((long)traffic.Packets >= minimum, $"{key}: {traffic.Packets} frames for {truth.CountedPayload[key]} B");
        }
        // UDP: frames and bytes follow from the datagram sizes alone.
        foreach (var group in sent.Datagrams.Where(d => classes.IndexOf(d.Key.Class) >= 0).GroupBy(d => d.Key))
        {
            var expected = group.Aggregate(Traffic.Zero, (t, d) => t + UdpWire.Of(d.Size, !d.Key.Client.IsIPv4));
            Assert.Equal(expected, truth.Counted[group.Key]);
        }
        // Host totals are the sums over clients (as the product must report them).
        foreach (var cls in classes.Classes)
            foreach (var dir in new[] { Direction.Down, Direction.Up })
                Assert.Equal(
                    truth.Counted.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir).Aggregate(Traffic.Zero, (a, kv) => a + kv.Value),
                    truth.HostTotal(cls, dir));

        // Cleanup: nothing of this network is left.
        Assert.DoesNotContain(name, TestNetwork.ListNamespaces());
        Assert.DoesNotContain(TestNetwork.ListHostLinks(), l => l.StartsWith(name, StringComparison.Ordinal));
        run.DeletePcap();
    }

    [KernelFact]
    public void Leftovers_of_a_crashed_run_are_removed()
    {
        Root.Require();
        // Named for a process that has exited: as if the test run that made them had been killed.
        var stem = OwnedNames.StemFor(ExitedProcessId());
        MakeLeftovers(stem);
        var removed = TestNetwork.RemoveLeftovers();
        Assert.Contains(stem, removed);
        Assert.DoesNotContain(stem, TestNetwork.ListNamespaces());
        Assert.False(Directory.Exists($"/sys/class/net/{stem}h"));
        Assert.False(Directory.Exists(OwnedNames.PinDirectoryOf(stem)));
    }

    [KernelFact]
    public void Leftover_cleanup_leaves_alone_what_a_live_concurrent_run_owns()
    {
        Root.Require();
        using var otherRun = Shell.Start("sleep", ["60"]);
        var stem = OwnedNames.StemFor(otherRun.Id);
        try
        {
            MakeLeftovers(stem);
            Assert.DoesNotContain(stem, TestNetwork.RemoveLeftovers());
            Assert.Contains(stem, TestNetwork.ListNamespaces());
            Assert.True(Directory.Exists($"/sys/class/net/{stem}h"));
            Assert.True(Directory.Exists(OwnedNames.PinDirectoryOf(stem)));

            Shell.Stop(otherRun);
            Assert.Contains(stem, TestNetwork.RemoveLeftovers());
            Assert.DoesNotContain(stem, TestNetwork.ListNamespaces());
        }
        finally
        {
            TestNetwork.Remove(stem);
        }
    }

    /// <summary>A namespace, a veth pair into it and a pin directory, named for <paramref name="stem"/>'s owner.</summary>
    private static void MakeLeftovers(string stem)
    {
        Shell.Run("ip", "netns", "add", stem);
        Shell.Run("ip", "link", "add", stem + "h", "type", "veth", "peer", "name", stem + "n", "netns", stem);
        Directory.CreateDirectory(OwnedNames.PinDirectoryOf(stem));
    }

    private static int ExitedProcessId()
    {
        using var process = Shell.Start("true", []);
        process.WaitForExit();
        var pid = process.Id;
        Assert.False(Directory.Exists($"/proc/{pid}"), $"pid {pid} was reused at once");
        return pid;
    }

    [KernelFact]
    public void A_live_network_survives_leftover_cleanup_and_sockets_made_inside_stay_inside()
    {
        using var net = TestNetwork.Create();
        TestNetwork.RemoveLeftovers();
        Assert.Contains(net.Name, TestNetwork.ListNamespaces());
        // A socket made in the namespace can bind the namespace's address; the root namespace cannot.
        using var inside = net.InNamespace.Run(() => new Socket(SocketType.Dgram, ProtocolType.Udp));
        inside.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Any, 0));
        using var v4 = net.InNamespace.Run(() => new Socket(System.Net.Sockets.AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        v4.Bind(new System.Net.IPEndPoint(net.ClientV4B, 0));
        using var outside = new Socket(System.Net.Sockets.AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Assert.Throws<SocketException>(() => outside.Bind(new System.Net.IPEndPoint(net.ClientV4B, 0)));
    }

    private static string RootNamespaceIdentity() => new FileInfo("/proc/1/ns/net").LinkTarget ?? "?";
}
