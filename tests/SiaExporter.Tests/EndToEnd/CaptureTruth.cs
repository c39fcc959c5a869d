using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Text;
using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// What the product should have counted, derived from a capture on the namespace end of the veth by
/// an independent decoder (tshark), not by the product's code.
///
/// <para><b>Direction</b> by Ethernet source: frames from the namespace end are "down" (the host
/// receives them), frames from the host end are "up". <b>Client</b> = the namespace-side address
/// (source on down, destination on up). <b>Class</b> by the host's port first (destination port on
/// down, source port on up), else by the remote port; a TCP/UDP frame in neither class is recorded
/// as uncounted under the host's port. ICMP (even quoting a Sia datagram), ARP, NDP: not counted.</para>
///
/// <para><b>IP fragments</b> belong to their datagram: fragments are grouped by (source, destination,
/// IP id); tshark reassembles the datagram and decodes UDP on the fragment that completes it, and
/// that class is given to every fragment of the group. Payload = UDP length − 8, once per datagram.</para>
///
/// <para><b>Wire frames.</b> tcpdump sees skbs. With TSO/GSO on, the host's egress skbs reach the
/// namespace unsegmented (veth passes them through), so the capture holds GSO super-packets
/// (frame.len up to ~64 KiB). On a wire each is <c>segments = ceil(tcp.len / mss)</c> frames, every
/// one carrying the same headers again: <c>bytes = tcp.len + segments × (frame.len − tcp.len)</c>.
/// <c>mss</c> is what the segmentation uses (the kernel's gso_size = mss_cache): the MSS the receiver
/// announced in its SYN / SYN-ACK (capped by the MTU) minus the TCP option bytes present on the data
/// segments (12 with timestamps: 1460 − 12 = 1448 for IPv4 at MTU 1500, 1440 − 12 = 1428 for IPv6).
/// This is the same figure as the kernel's qdisc_pkt_len_init / __sk_buff.wire_len. A frame whose
/// tcp.len exceeds that mss is treated as a super-packet; any other frame longer than MTU + 14 is an
/// error (nothing else may be merged).</para>
/// </summary>
public sealed class CaptureTruth
{
    private readonly Dictionary<FlowKey, Traffic> _counted = new();
    private readonly Dictionary<FlowKey, long> _countedPayload = new();
    private readonly Dictionary<FlowKey, Traffic> _uncounted = new();
    private readonly Dictionary<FlowKey, long> _uncountedPayload = new();
    private readonly SortedSet<int> _segmentSizes = new();
    private readonly Dictionary<FlowKey, long> _retransmittedPayload = new();
    private readonly Dictionary<FlowKey, long> _extraOptionBytes = new();
    private readonly Dictionary<(string Stream, bool FromPeer), (FlowKey Key, long End)> _streamEnds = new();
    private readonly Dictionary<FlowKey, long> _udpPayload = new();

    /// <summary>Wire bytes and frames per client, class and direction: what the product must show.</summary>
    public IReadOnlyDictionary<FlowKey, Traffic> Counted => _counted;

    /// <summary>L4 payload (TCP stream bytes incl. retransmissions, UDP payloads) behind <see cref="Counted"/>.</summary>
    public IReadOnlyDictionary<FlowKey, long> CountedPayload => _countedPayload;

    /// <summary>TCP/UDP traffic outside the classes, keyed by the host's port: must not be counted.</summary>
    public IReadOnlyDictionary<FlowKey, Traffic> Uncounted => _uncounted;

    public IReadOnlyDictionary<FlowKey, long> UncountedPayload => _uncountedPayload;

    /// <summary>Frames that are neither TCP nor UDP (ARP, ICMP, NDP, MLD...).</summary>
    public Traffic Other { get; private set; }

    /// <summary>Captured frames (skbs), before expanding super-packets.</summary>
    public int CapturedFrames { get; private set; }

    public int SuperPackets { get; private set; }

    /// <summary>Wire frames the super-packets stand for.</summary>
    public long SuperPacketSegments { get; private set; }

    public int LargestCapturedFrame { get; private set; }

    /// <summary>The segment sizes (mss) found on data segments.</summary>
    public IReadOnlySet<int> SegmentSizes => _segmentSizes;

    public int Retransmissions { get; private set; }

    /// <summary>TCP payload that tshark marks as retransmitted (e.g. a tail-loss probe), per key: these
    /// frames did cross the veth and are counted; the plan sent their bytes only once.</summary>
    public IReadOnlyDictionary<FlowKey, long> RetransmittedPayload => _retransmittedPayload;

    /// <summary>
    /// Payload as the applications sent it, per key (counted or not): for TCP the sequence space each
    /// stream direction covered (highest relative seq + len − 1), for UDP the datagram payloads. Unlike
    /// <see cref="CountedPayload"/> it does not grow with retransmissions, and unlike tshark's
    /// retransmission flags it is not fooled by frames the capture saw reordered (two CPUs' backlogs).
    /// </summary>
    public IReadOnlyDictionary<FlowKey, long> ApplicationPayload
    {
        get
        {
            var result = new Dictionary<FlowKey, long>(_udpPayload);
            foreach (var (key, end) in _streamEnds.Values)
                result[key] = result.GetValueOrDefault(key) + end - 1;
            return result;
        }
    }

    /// <summary>TCP option bytes beyond the usual (timestamps = 12 on every segment, 20 on SYN and
    /// SYN-ACK), per key, counted once per wire frame: SACK / D-SACK blocks after a loss or a spurious
    /// retransmission. Zero in a clean run.</summary>
    public IReadOnlyDictionary<FlowKey, long> ExtraOptionBytes => _extraOptionBytes;

    public int Fragments { get; private set; }

    public int UnresolvedFragments { get; private set; }

    /// <summary>Host totals per class and direction, summed over clients.</summary>
    public Traffic HostTotal(PortClass cls, Direction dir) =>
        _counted.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir).Aggregate(Traffic.Zero, (a, kv) => a + kv.Value);

    private static readonly string[] Fields =
    [
        "frame.number", "frame.len", "eth.src", "frame.protocols",
        "ip.src", "ip.dst", "ip.id", "ip.flags.mf", "ip.frag_offset", "ip.hdr_len",
        "ipv6.src", "ipv6.dst", "ipv6.fraghdr.ident",
        "tcp.srcport", "tcp.dstport", "tcp.seq", "tcp.len", "tcp.hdr_len", "tcp.flags.syn", "tcp.options.mss_val", "tcp.stream",
        "tcp.analysis.retransmission",
        "udp.srcport", "udp.dstport", "udp.length",
    ];

    private enum F
    {
        Number, Len, EthSrc, Protocols, IpSrc, IpDst, IpId, IpMf, IpFragOffset, IpHdrLen, Ip6Src, Ip6Dst, Ip6FragId,
        TcpSrc, TcpDst, TcpSeq, TcpLen, TcpHdrLen, TcpSyn, TcpMss, TcpStream, TcpRetrans, UdpSrc, UdpDst, UdpLen,
    }

    /// <summary>Decodes <paramref name="pcap"/> with tshark and builds the truth.</summary>
    public static CaptureTruth FromPcap(string pcap, TestNetwork net, PortClassSet classes) =>
        FromPcap(pcap, net.HostMac, net.PeerMac, classes, mtu: 1500);

    public static CaptureTruth FromPcap(string pcap, PhysicalAddress hostMac, PhysicalAddress peerMac, PortClassSet classes, int mtu)
    {
        var args = new List<string> { "-r", pcap, "-n", "-o", "tcp.relative_sequence_numbers:TRUE", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f", "-E", "header=n" };
        foreach (var f in Fields) { args.Add("-e"); args.Add(f); }
        var r = Shell.TryWithTimeout(TimeSpan.FromSeconds(60), "tshark", args.ToArray());
        if (!r.Ok) throw new InvalidOperationException($"tshark failed ({r.ExitCode}): {r.Stderr}");
        var truth = new CaptureTruth();
        truth.Decode(r.Stdout, hostMac, peerMac, classes, mtu);
        return truth;
    }

    private sealed record Frame(long Bytes, long Packets, FlowKey? Key, long Payload);

    private void Decode(string tsv, PhysicalAddress hostMac, PhysicalAddress peerMac, PortClassSet classes, int mtu)
    {
        var host = hostMac.ToString();
        var peer = peerMac.ToString();
        // MSS announced by each endpoint of a stream: (stream, announcer is the namespace side) -> mss.
        var announced = new Dictionary<(string Stream, bool FromPeer), int>();
        // Fragments waiting for the frame that completes their datagram.
        var pending = new Dictionary<(string Src, string Dst, string Id), List<(long Bytes, Direction Dir, ClientAddress Client)>>();

        foreach (var line in tsv.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var c = line.Split('\t');
            if (c.Length < Fields.Length) Array.Resize(ref c, Fields.Length);
            string V(F f) => c[(int)f] ?? "";
            CapturedFrames++;
            var frameLen = int.Parse(V(F.Len), CultureInfo.InvariantCulture);
            LargestCapturedFrame = Math.Max(LargestCapturedFrame, frameLen);
            var src = PhysicalAddress.Parse(V(F.EthSrc).Replace(':', '-').ToUpperInvariant()).ToString();
            bool fromPeer = src == peer;
            if (!fromPeer && src != host)
                throw new InvalidOperationException($"frame {V(F.Number)} from unknown MAC {V(F.EthSrc)}");
            var dir = fromPeer ? Direction.Down : Direction.Up;
            var protocols = V(F.Protocols).Split(':');
            var v6 = V(F.Ip6Src).Length > 0;
            var v4 = !v6 && V(F.IpSrc).Length > 0;
            if (!v4 && !v6 || protocols.Contains("icmp") || protocols.Contains("icmpv6"))
            {
                if (frameLen > mtu + 14) throw new InvalidOperationException($"frame {V(F.Number)}: {frameLen} bytes, not TCP");
                Other += new Traffic((ulong)frameLen, 1);
                continue;
            }
            var ipSrc = v6 ? V(F.Ip6Src) : V(F.IpSrc);
            var ipDst = v6 ? V(F.Ip6Dst) : V(F.IpDst);
            var client = ClientAddress.Parse(fromPeer ? ipSrc : ipDst);
            var isFragment = v6 ? V(F.Ip6FragId).Length > 0 : V(F.IpMf) is "1" or "True" || (V(F.IpFragOffset).Length > 0 && V(F.IpFragOffset) != "0");
            if (isFragment) Fragments++;
            var tcp = protocols.Contains("tcp");
            var udp = !tcp && protocols.Contains("udp");
            if (!tcp && !udp)
            {
                if (isFragment)
                {
                    // A fragment whose datagram is decoded later (on the fragment completing it).
                    if (frameLen > mtu + 14) throw new InvalidOperationException($"fragment {V(F.Number)} of {frameLen} bytes");
                    var fk = (ipSrc, ipDst, v6 ? V(F.Ip6FragId) : V(F.IpId));
                    if (!pending.TryGetValue(fk, out var list)) pending[fk] = list = [];
                    list.Add((frameLen, dir, client));
                    continue;
                }
                if (frameLen > mtu + 14) throw new InvalidOperationException($"frame {V(F.Number)}: {frameLen} bytes, not TCP");
                Other += new Traffic((ulong)frameLen, 1);
                continue;
            }

            var proto = tcp ? Protocol.Tcp : Protocol.Udp;
            var sport = ushort.Parse(tcp ? V(F.TcpSrc) : V(F.UdpSrc), CultureInfo.InvariantCulture);
            var dport = ushort.Parse(tcp ? V(F.TcpDst) : V(F.UdpDst), CultureInfo.InvariantCulture);
            var hostPort = fromPeer ? dport : sport;
            var remotePort = fromPeer ? sport : dport;
            var cls = new PortClass(hostPort, proto);
            var counted = true;
            if (classes.IndexOf(cls) < 0)
            {
                var remote = new PortClass(remotePort, proto);
                if (classes.IndexOf(remote) >= 0) cls = remote;
                else counted = false;
            }
            var key = new FlowKey(client, cls, dir);

            long bytes = frameLen, packets = 1, payload;
            if (tcp)
            {
                var tcpLen = int.Parse(V(F.TcpLen), CultureInfo.InvariantCulture);
                var tcpHdr = int.Parse(V(F.TcpHdrLen), CultureInfo.InvariantCulture);
                var stream = V(F.TcpStream);
                payload = tcpLen;
                var syn = V(F.TcpSyn) is "1" or "True";
                if (syn && V(F.TcpMss).Length > 0)
                    announced[(stream, fromPeer)] = int.Parse(V(F.TcpMss), CultureInfo.InvariantCulture);
                if (V(F.TcpRetrans).Length > 0)
                {
                    Retransmissions++;
                    _retransmittedPayload[key] = _retransmittedPayload.GetValueOrDefault(key) + tcpLen;
                }
                if (tcpLen > 0)
                {
                    var end = long.Parse(V(F.TcpSeq), CultureInfo.InvariantCulture) + tcpLen;
                    if (!_streamEnds.TryGetValue((stream, fromPeer), out var seen) || seen.End < end)
                        _streamEnds[(stream, fromPeer)] = (key, end);
                    // The receiver's MSS, capped by the MTU, minus the options this segment carries.
                    var ipHdr = v6 ? 40 : int.Parse(V(F.IpHdrLen), CultureInfo.InvariantCulture);
                    if (!announced.TryGetValue((stream, !fromPeer), out var receiverMss))
                        throw new InvalidOperationException($"frame {V(F.Number)}: no SYN with an MSS for tcp.stream {stream} in the capture");
                    var mss = Math.Min(receiverMss, mtu - ipHdr - 20) - (tcpHdr - 20);
                    _segmentSizes.Add(mss);
                    if (tcpLen > mss)
                    {
                        packets = (tcpLen + mss - 1) / mss;
                        bytes = tcpLen + packets * (frameLen - tcpLen);
                        SuperPackets++;
                        SuperPacketSegments += packets;
                    }
                    else if (frameLen > mtu + 14)
                        throw new InvalidOperationException($"frame {V(F.Number)}: {frameLen} bytes but tcp.len {tcpLen} <= mss {mss}");
                }
                var extra = tcpHdr - (syn ? 40 : 32);
                if (extra != 0) _extraOptionBytes[key] = _extraOptionBytes.GetValueOrDefault(key) + extra * packets;
            }
            else
            {
                if (frameLen > mtu + 14) throw new InvalidOperationException($"UDP frame {V(F.Number)} of {frameLen} bytes");
                payload = int.Parse(V(F.UdpLen), CultureInfo.InvariantCulture) - 8;
                _udpPayload[key] = _udpPayload.GetValueOrDefault(key) + payload;
                if (isFragment)
                {
                    var fk = (ipSrc, ipDst, v6 ? V(F.Ip6FragId) : V(F.IpId));
                    if (pending.Remove(fk, out var earlier))
                        foreach (var (b, d, cl) in earlier)
                        {
                            if (d != dir || cl != client) throw new InvalidOperationException($"fragment group {fk} mixes directions");
                            Add(counted, key, new Traffic((ulong)b, 1), 0);
                        }
                }
            }
            Add(counted, key, new Traffic((ulong)bytes, (ulong)packets), payload);
        }
        foreach (var (_, list) in pending)
        {
            UnresolvedFragments += list.Count;
            foreach (var (b, _, _) in list) Other += new Traffic((ulong)b, 1);
        }
    }

    private void Add(bool counted, FlowKey key, Traffic t, long payload)
    {
        var traffic = counted ? _counted : _uncounted;
        var payloads = counted ? _countedPayload : _uncountedPayload;
        traffic[key] = traffic.GetValueOrDefault(key) + t;
        payloads[key] = payloads.GetValueOrDefault(key) + payload;
    }

    /// <summary>A table for test output.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"captured {CapturedFrames} skbs, largest {LargestCapturedFrame} B; {SuperPackets} super-packets = {SuperPacketSegments} wire frames; " +
            $"{Fragments} fragments ({UnresolvedFragments} unresolved); {Retransmissions} retransmissions; mss {string.Join('/', SegmentSizes)}; other {Other.Packets} frames / {Other.Bytes} B");
        foreach (var (name, table, payloads) in new[] { ("counted", _counted, _countedPayload), ("not counted", _uncounted, _uncountedPayload) })
            foreach (var kv in table.OrderBy(kv => kv.Key.Client).ThenBy(kv => kv.Key.Class.Port).ThenBy(kv => kv.Key.Class.Protocol).ThenBy(kv => kv.Key.Direction))
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"  {name,-11} {kv.Key.Client,-12} {kv.Key.Class,-9} {kv.Key.Direction.Label(),-4} {kv.Value.Bytes,10} B {kv.Value.Packets,6} frames  payload {payloads[kv.Key],9}");
        return sb.ToString();
    }
}
