using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A shaping qdisc that drops: a tbf of 10 Mbit/s on the host end, UDP blasted from 9984 and TCP
/// served from 9981 through it, and fragmented IPv6 UDP. tc_egress counts before the qdisc; qdisc_drop takes what the tbf
/// then dropped off the client it was counted on and off the host totals, and counts it in the
/// drop self-metric. Checked against a capture beyond the qdisc (on the namespace end): per
/// client and class, and in the host totals, up equals what arrived, to the byte and the packet.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class ShaperEndToEndTests(ITestOutputHelper output)
{
    /// <remarks>On a heavily loaded 2-CPU VM (an AOT build beside it), about one run in five once
    /// counted 4 to 28 full-size TCP frames as up that neither a qdisc drop reason nor the capture saw
    /// (no veth drop, no recursion miss of qdisc_drop, no other drop reason in the kfree_skb trace).
    /// The test stopped its capture while the host's TCP could still retransmit: it now waits until
    /// no socket on 9981 can send again (6 of 6 runs under a load average of 5 passed since). In case
    /// a cause remains, the scenario runs once more from scratch before failing: a second miss in a
    /// row is a failure.</remarks>
    [KernelFact]
    public void Up_per_client_and_in_the_totals_is_what_left_the_host_not_what_the_qdisc_dropped()
    {
        var problems = Attempt();
        if (problems.Count > 0)
        {
            output.WriteLine("first attempt: " + string.Join("; ", problems) + " — once more from scratch");
            problems = Attempt();
        }
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    private List<string> Attempt()
    {
        using var net = TestNetwork.Create(offloads: false);
        using var collector = CollectorUnderTest.Start(net, XdpMode.Generic);
        using var drops = QdiscDropCounter.Start(collector.Object, [net.HostIfIndex], collector.Log)
            ?? throw new InvalidOperationException("qdisc drops are not counted on this kernel: " + string.Join('\n', collector.Log.Lines));
        Shell.Run("tc", "qdisc", "add", "dev", net.HostInterface, "root", "tbf", "rate", "10mbit", "burst", "16kb", "latency", "20ms");
        var before = collector.Read();
        var dropsBefore = drops.Read();
        var linkDropsBefore = LinkDrops(net);

        var pcap = Path.Combine(Path.GetTempPath(), $"{net.Name}-tbf.pcap");
        using (var capture = PacketCapture.Start(net, pcap))
        {
            BlastUdp(net, net.HostV4, net.ClientV4A, TimeSpan.FromSeconds(1.5), size: 1000);
            // IPv6 datagrams of 3000 B leave as fragments (a fragment header, later fragments
            // without a UDP header): each dropped one is taken off too.
            BlastUdp(net, net.HostV6, net.ClientV6, TimeSpan.FromSeconds(0.7), size: 3000);
            SocketTraffic.TcpInbound(net.InNamespace, net.HostV4, net.ClientV4B, 9981, clientSends: 2_000, hostSends: 1_500_000);
            // up counts a frame when the qdisc takes it: judge only once TCP has nothing left to
            // send (a retransmission after the capture stopped is counted, never captured), the
            // tbf has sent or dropped everything it holds (its backlog empty), and the capture has seen it.
            WaitForQuietTcp(9981, TimeSpan.FromSeconds(15));
            WaitForEmptyQueue(net, TimeSpan.FromSeconds(10));
            Thread.Sleep(300);
            capture.Stop();
        }
        var after = collector.Read();
        var counted = IpCaptureTruth.Delta(before, after);
        var dropped = drops.Read();
        var arrived = IpCaptureTruth.FromPcap(pcap, [net.HostV4, net.HostV6], PortClassSet.DefaultSet);
        output.WriteLine(Shell.Run("tc", "-s", "qdisc", "show", "dev", net.HostInterface));

        // Past the qdisc, a loaded machine can still lose a frame on the veth itself (the peer's
        // backlog full: the veth's tx_dropped). It left the qdisc, as it would have left on a wire,
        // but the capture beyond cannot see it: the difference may be those frames, and only them.
        var linkDrops = LinkDrops(net) - linkDropsBefore;
        output.WriteLine($"frames the veth dropped past the qdisc: {linkDrops}");
        output.WriteLine($"qdisc_drop runs skipped by the kernel (recursion misses): {collector.Object.QdiscDrop!.Info().RecursionMisses}");
        long unseen = 0;
        var problems = new List<string>();
        foreach (var portClass in new[] { "9984/udp", "9981/tcp" })
        {
            var slot = PortClassSet.Slot(PortClassSet.DefaultSet.IndexOf(PortClass.Parse(portClass)), Direction.Up);
            var gone = new Traffic(dropped[slot].Bytes - dropsBefore[slot].Bytes, dropped[slot].Packets - dropsBefore[slot].Packets);
            var host = after.Totals[slot].Since(before.Totals[slot]);
            var clients = counted.Where(kv => kv.Key.Slot == slot).Select(kv => kv.Key.Client)
                .Union(arrived.Where(kv => kv.Key.Slot == slot).Select(kv => kv.Key.Client));
            var left = Traffic.Zero;
            foreach (var client in clients)
            {
                var up = counted.GetValueOrDefault((client, slot));
                var truth = arrived.GetValueOrDefault((client, slot));
                left += truth;
                output.WriteLine($"{portClass} up {client}: {up.Bytes} B / {up.Packets} p, arrived {truth.Bytes} B / {truth.Packets} p");
                var missing = (long)up.Packets - (long)truth.Packets;
                if (missing > 0 && up.Bytes > truth.Bytes) unseen += missing;
                else if (up != truth) problems.Add($"{portClass} {client}: up {up.Bytes} B / {up.Packets} p, arrived {truth.Bytes} B / {truth.Packets} p");
            }
            output.WriteLine($"{portClass} host up {host.Bytes} B / {host.Packets} p, arrived {left.Bytes} B / {left.Packets} p, " +
                $"qdisc dropped {gone.Bytes} B / {gone.Packets} p (counted before the qdisc: {(double)(host.Bytes + gone.Bytes) / left.Bytes:0.00}× what left)");
            if (host.Packets < left.Packets || (host.Packets == left.Packets && host.Bytes != left.Bytes) || host.Packets - left.Packets > (ulong)linkDrops)
                problems.Add($"{portClass} host totals: up {host.Bytes} B / {host.Packets} p, arrived {left.Bytes} B / {left.Packets} p");
            if (portClass == "9984/udp" && gone.Packets == 0) problems.Add("the tbf dropped no UDP: the test shaped nothing");
            if (portClass == "9984/udp" && !counted.Keys.Any(k => k.Slot == slot && k.Client.ToString().Contains(':')))
                problems.Add("no IPv6 UDP was counted: the fragmented IPv6 blast did not run");
        }
        if (unseen > linkDrops)
            problems.Add($"{unseen} counted frames neither dropped by the qdisc nor captured, and the veth dropped only {linkDrops}");
        if (problems.Count == 0) File.Delete(pcap);
        else problems.Add($"(pcap {pcap})");
        return problems;
    }

    /// <summary>Waits until no host socket on <paramref name="port"/> can send again: each is gone or
    /// in TIME-WAIT (its FIN acknowledged), so no segment or retransmission is still to come.</summary>
    private void WaitForQuietTcp(int port, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var sockets = Shell.Run("ss", "-Htan", "state", "all", $"( sport = :{port} )")
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("TIME-WAIT", StringComparison.Ordinal) && !l.StartsWith("LISTEN", StringComparison.Ordinal))
                .ToList();
            if (sockets.Count == 0) return;
            if (clock.Elapsed > timeout)
            {
                output.WriteLine($"TCP on {port} still active after {timeout.TotalSeconds} s: {string.Join(" | ", sockets)}");
                return;
            }
            Thread.Sleep(50);
        }
    }

    /// <summary>Waits until the root qdisc of the host end holds no packet (tc's "backlog 0b 0p").</summary>
    private void WaitForEmptyQueue(TestNetwork net, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var stats = Shell.Run("tc", "-s", "qdisc", "show", "dev", net.HostInterface);
            var backlog = System.Text.RegularExpressions.Regex.Match(stats, @"backlog (\S+) (\d+)p");
            if (backlog.Success && backlog.Groups[2].Value == "0") return;
            if (clock.Elapsed > timeout)
            {
                output.WriteLine($"the tbf still holds {backlog.Value} after {timeout.TotalSeconds} s");
                return;
            }
            Thread.Sleep(50);
        }
    }

    /// <summary>Frames the host end of the veth dropped after the qdisc handed them over.</summary>
    private static long LinkDrops(TestNetwork net) =>
        long.Parse(File.ReadAllText($"/sys/class/net/{net.HostInterface}/statistics/tx_dropped").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>UDP from the host's 9984 to a reader in the namespace, as fast as the socket takes it.</summary>
    private static void BlastUdp(TestNetwork net, IPAddress host, IPAddress client, TimeSpan duration, int size)
    {
        using var reader = net.InNamespace.Run(() =>
        {
            var s = new Socket(client.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(client, 40000));
            return s;
        });
        var reading = Task.Run(() =>
        {
            var buffer = new byte[65536];
            try
            {
                while (true) reader.Receive(buffer);
            }
            catch (SocketException) { }
            catch (ObjectDisposedException) { }
        });
        using var sender = new Socket(host.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(host, 9984));
        var payload = new byte[size];
        var target = new IPEndPoint(client, 40000);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration) sender.SendTo(payload, target);
        Thread.Sleep(200); // the tbf drains its queue
        reader.Close();
        reading.Wait(TimeSpan.FromSeconds(5));
    }
}
