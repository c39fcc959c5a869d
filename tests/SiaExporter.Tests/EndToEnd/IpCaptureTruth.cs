using System.Globalization;
using System.Net;
using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The truth of a capture whose frames are all at most one MTU (no GSO super-packets): bytes
/// (frame.len: the IP packet on a tun, the Ethernet frame on a veth) and frames per client and
/// slot, the direction told by the IP addresses (source = one of the host's: up). Classified as the
/// programs do: the host's port, else the remote port. IP fragments are read as they are (tshark
/// without reassembly): a first fragment carries the ports; a later one takes the class of its
/// datagram's first fragment (same addresses and IP id), or, where a shaper dropped that first
/// fragment before the capture, the one class seen between the same two addresses (the counting
/// programs remember the class from before the qdisc; a capture beyond it cannot).
/// </summary>
internal static class IpCaptureTruth
{
    public static Dictionary<(ClientAddress Client, int Slot), Traffic> FromPcap(string pcap, IReadOnlyCollection<IPAddress> hostAddresses, PortClassSet classes)
    {
        string[] fields = ["frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
            "ip.flags.mf", "ip.frag_offset", "ipv6.fraghdr.ident", "ip.id"];
        var args = new List<string> { "-r", pcap, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f" };
        foreach (var f in fields) { args.Add("-e"); args.Add(f); }
        var r = Shell.TryWithTimeout(TimeSpan.FromSeconds(60), "tshark", args.ToArray());
        if (!r.Ok) throw new InvalidOperationException($"tshark failed ({r.ExitCode}): {r.Stderr}");
        var hosts = hostAddresses.Select(a => a.ToString()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var truth = new Dictionary<(ClientAddress, int), Traffic>();
        var datagramClass = new Dictionary<(string Src, string Dst, string Id), (ClientAddress, int)>();
        var pairClasses = new Dictionary<(string Src, string Dst), HashSet<(ClientAddress, int)>>();
        var laterFragments = new List<(string Src, string Dst, string Id, ulong Bytes)>();
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var c = line.Split('\t');
            if (c.Length < fields.Length) Array.Resize(ref c, fields.Length);
            string V(int i) => c[i] ?? "";
            var src = V(1).Length > 0 ? V(1) : V(3);
            var dst = V(1).Length > 0 ? V(2) : V(4);
            if (src.Length == 0) continue;
            var fragment = V(9) is "1" or "True" || (V(10).Length > 0 && V(10) != "0") || V(11).Length > 0;
            var datagram = (src, dst, V(1).Length > 0 ? V(12) : V(11));
            var bytes = ulong.Parse(V(0), CultureInfo.InvariantCulture);
            var tcp = V(5).Length > 0;
            var udp = V(7).Length > 0;
            if (!tcp && !udp)
            {
                if (fragment) laterFragments.Add((src, dst, datagram.Item3, bytes));
                continue;
            }
            var up = hosts.Contains(src);
            var sport = ushort.Parse(tcp ? V(5) : V(7), CultureInfo.InvariantCulture);
            var dport = ushort.Parse(tcp ? V(6) : V(8), CultureInfo.InvariantCulture);
            var protocol = tcp ? Protocol.Tcp : Protocol.Udp;
            var (hostPort, remotePort) = up ? (sport, dport) : (dport, sport);
            var index = classes.IndexOf(new PortClass(hostPort, protocol));
            if (index < 0) index = classes.IndexOf(new PortClass(remotePort, protocol));
            if (index < 0) continue;
            var key = (ClientAddress.Parse(up ? dst : src), PortClassSet.Slot(index, up ? Direction.Up : Direction.Down));
            truth[key] = truth.GetValueOrDefault(key) + new Traffic(bytes, 1);
            if (fragment) datagramClass[datagram] = key;
            if (!pairClasses.TryGetValue((src, dst), out var seen)) pairClasses[(src, dst)] = seen = [];
            seen.Add(key);
        }
        foreach (var (src, dst, id, bytes) in laterFragments)
        {
            if (!datagramClass.TryGetValue((src, dst, id), out var key))
            {
                if (!pairClasses.TryGetValue((src, dst), out var seen)) continue; // no counted traffic between them
                if (seen.Count != 1)
                    throw new InvalidOperationException($"a fragment {src} -> {dst} (id {id}) in {pcap} whose first fragment is missing, between addresses with {seen.Count} classes");
                key = seen.Single();
            }
            truth[key] = truth.GetValueOrDefault(key) + new Traffic(bytes, 1);
        }
        return truth;
    }

    /// <summary>What the counters gained between two snapshots, per client and slot (zeros left out).</summary>
    public static Dictionary<(ClientAddress Client, int Slot), Traffic> Delta(CounterSnapshot before, CounterSnapshot after)
    {
        var delta = new Dictionary<(ClientAddress, int), Traffic>();
        var earlier = new Dictionary<ClientAddress, int>();
        for (var i = 0; i < before.Clients.Length; i++) earlier[before.Clients[i]] = i;
        for (var i = 0; i < after.Clients.Length; i++)
            for (var slot = 0; slot < after.SlotCount; slot++)
            {
                var now = after.Get(i, slot);
                var then = earlier.TryGetValue(after.Clients[i], out var j) ? before.Get(j, slot) : Traffic.Zero;
                if (now != then) delta[(after.Clients[i], slot)] = new Traffic(now.Bytes - then.Bytes, now.Packets - then.Packets);
            }
        return delta;
    }

    /// <summary>Every difference between the truth and what was counted, one line each.</summary>
    public static List<string> Differences(Dictionary<(ClientAddress Client, int Slot), Traffic> truth,
        Dictionary<(ClientAddress Client, int Slot), Traffic> counted)
    {
        var diffs = new List<string>();
        foreach (var key in truth.Keys.Union(counted.Keys).OrderBy(k => k.Client).ThenBy(k => k.Slot))
        {
            var t = truth.GetValueOrDefault(key);
            var c = counted.GetValueOrDefault(key);
            if (t != c) diffs.Add($"{key.Client} slot {key.Slot}: capture {t.Bytes} B / {t.Packets} p, counted {c.Bytes} B / {c.Packets} p");
        }
        return diffs;
    }
}
