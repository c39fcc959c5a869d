using System.Diagnostics;
using System.Net;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Kernel;

/// <summary>
/// 100,000+ frames, each run through xdp_ingress and then tc_egress of one load: random bytes,
/// mutated frames (bit flips, truncations, lying length fields, overwritten ranges, swapped type
/// fields, inserted/deleted bytes) and a known set of valid frames interleaved with them.
///
/// Design (why the valid frames' counts can be asserted exactly although the mutated frames
/// may legitimately count too): every address of a valid frame lies in a reserved range R,
/// 100.77.0.0/16 for IPv4 and fd77::/16 for IPv6. Mutated frames are derived from templates with
/// addresses outside R, and any random or mutated frame that contains the byte pair 100,77 or
/// 0xfd,0x77 anywhere is drawn again. A client key in R needs its address bytes in the frame
/// (4 bytes for IPv4, 16 for IPv6, and a v4-mapped IPv6 address holds the 4 IPv4 bytes), so no
/// random or mutated frame can touch an R client. The fragment table is keyed by both addresses,
/// so they cannot touch an R fragment either, and each valid fragmented datagram is sent as an
/// uninterrupted group, so no insert can evict its entry from the LRU between its fragments.
/// A small model (class by the host's port, else the remote port; later fragments by the class
/// remembered from the first, in run order) gives each R client's exact counts; R clients that the
/// model does not count (unknown ports, orphan later fragments) must have nothing on their
/// (pre-confirmed, empty) entry. For everything else the check is conservation: TOTAL = Σ clients
/// + OVERFLOW + unconfirmed in every slot, and with MAX_CLIENTS 65536 nothing overflows.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    /// <summary>KERNEL_FUZZ_FRAMES / KERNEL_FUZZ_SEED override both for a longer or different run.</summary>
    private static readonly int Frames = EnvInt("KERNEL_FUZZ_FRAMES") ?? 100_000;
    private static readonly int Seed = EnvInt("KERNEL_FUZZ_SEED") ?? 20240611;

    private static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : null;

    private static readonly byte[] ReservedV4Prefix = [100, 77];
    private static readonly byte[] ReservedV6Prefix = [0xfd, 0x77];
    private static readonly Dictionary<(byte Proto, ushort Port), int> ClassOf = new()
    {
        [(PacketBuilder.ProtoTcp, 9981)] = 0,
        [(PacketBuilder.ProtoTcp, 9984)] = 1,
        [(PacketBuilder.ProtoUdp, 9984)] = 2,
    };

    private enum FragKind { Whole, First, Later }

    /// <summary>One generated frame: its bytes, what the model needs, and the offsets of fields
    /// worth lying about.</summary>
    private sealed record Generated(byte[] Bytes, string Src, string Dst, byte Proto, ushort Sport, ushort Dport,
        FragKind Kind, uint FragId, List<(int Offset, int Size)> Fields);

    private sealed class AddressPool(string[] v4, string[] v6)
    {
        public string[] V4 { get; } = v4;
        public string[] V6 { get; } = v6;
    }

    private static readonly AddressPool Reserved = new(
        Enumerable.Range(1, 24).Select(i => $"100.77.0.{i}").Append("100.77.1.1").ToArray(),
        Enumerable.Range(1, 24).Select(i => $"fd77::{i:x}").Append("fd77::ffff").ToArray());

    private static readonly AddressPool Outside = new(
        Enumerable.Range(1, 24).Select(i => $"203.0.113.{i}").Append("192.0.2.1").ToArray(),
        Enumerable.Range(1, 24).Select(i => $"2001:db8:f::{i:x}").Append("2001:db8::1").ToArray());

    private static readonly ushort[] InterestingPorts = [9981, 9984, 9982, 9983, 22, 53, 443, 80, 0, 65535];

    private static ushort Port(Random rng) => rng.Next(3) switch
    {
        0 => InterestingPorts[rng.Next(InterestingPorts.Length)],
        1 => (ushort)rng.Next(32768, 61000),
        _ => rng.Next(2) == 0 ? (ushort)9984 : (ushort)9981,
    };

    /// <summary>A datagram as one whole frame, or as a first fragment plus 1–2 later fragments, or
    /// (rarely) later fragments only.</summary>
    private static List<Generated> Datagram(Random rng, AddressPool pool, ref uint nextFragId)
    {
        var v6 = rng.Next(2) == 1;
        var addrs = v6 ? pool.V6 : pool.V4;
        var src = addrs[rng.Next(addrs.Length)];
        string dst;
        do dst = addrs[rng.Next(addrs.Length)]; while (dst == src);
        var proto = rng.Next(2) == 0 ? PacketBuilder.ProtoTcp : PacketBuilder.ProtoUdp;
        var sport = Port(rng);
        var dport = Port(rng);
        var tags = rng.Next(10) switch { < 6 => 0, < 9 => 1, _ => 2 };
        var tpids = Enumerable.Range(0, tags).Select(_ => rng.Next(2) == 0 ? PacketBuilder.EtherType8021Q : PacketBuilder.EtherType8021AD).ToArray();
        byte[]? ipOptions = !v6 && rng.Next(4) == 0 ? Enumerable.Repeat((byte)1, 4 * rng.Next(1, 11)).ToArray() : null;
        var extensions = v6 && rng.Next(3) == 0
            ? Enumerable.Range(0, rng.Next(1, 4)).Select(_ => rng.Next(4)).ToArray()
            : [];
        var shape = rng.Next(10) switch { < 7 => 0, < 9 => 1, _ => 2 }; // whole, fragmented, orphan later fragments
        var payload = rng.Next(0, shape == 0 ? 1400 : 1200);
        var id = nextFragId++;

        Generated Build(FragKind kind, int offset, bool more, int payloadLength)
        {
            var b = new PacketBuilder().Ethernet();
            foreach (var t in tpids) b.Vlan(t, (ushort)rng.Next(4096));
            var fragmented = kind != FragKind.Whole;
            if (v6)
            {
                b.IPv6(src, dst);
                foreach (var e in extensions)
                {
                    switch (e)
                    {
                        case 0: b.HopByHop(rng.Next(2)); break;
                        case 1: b.DestinationOptions(rng.Next(2)); break;
                        case 2: b.Routing(rng.Next(3)); break;
                        default: b.AuthenticationHeader(); break;
                    }
                }
                if (fragmented) b.Fragment(offset, more, id, nextHeader: proto);
            }
            else
            {
                b.IPv4(src, dst, options: ipOptions, id: (ushort)id, dontFragment: !fragmented && rng.Next(2) == 0,
                    moreFragments: more, fragmentOffset: offset, protocol: proto);
            }
            if (kind != FragKind.Later)
            {
                if (proto == PacketBuilder.ProtoTcp) b.Tcp(sport, dport, rng.Next(3) == 0 ? PacketBuilder.TypicalTcpOptions : null);
                else b.Udp(sport, dport);
            }
            b.Payload(payloadLength);
            var built = b.Build();
            return new Generated(built.Bytes, src, dst, proto, sport, dport, kind, v6 ? id : (ushort)id,
                Fields(built, tags, v6, extensions.Length + (fragmented ? 1 : 0), kind != FragKind.Later, proto));
        }

        if (shape == 0) return [Build(FragKind.Whole, 0, false, payload)];
        var later = Enumerable.Range(1, rng.Next(1, 3)).Select(i => Build(FragKind.Later, 1504 * i, i < 2 && rng.Next(2) == 0, rng.Next(8, 1000))).ToList();
        if (shape == 2) return later;
        return [Build(FragKind.First, 0, true, payload), .. later];
    }

    /// <summary>Offsets of the type and length fields of a built frame: EtherTypes, IHL, total and
    /// payload lengths, fragment fields, next headers, extension lengths, TCP data offset, UDP length.</summary>
    private static List<(int, int)> Fields(BuiltFrame built, int tags, bool v6, int extensions, bool hasL4, byte proto)
    {
        var fields = new List<(int, int)> { (12, 2) };
        for (var t = 0; t < tags; t++) fields.Add((14 + 4 * t + 2, 2));
        var ip = 14 + 4 * tags;
        if (v6) fields.AddRange([(ip + 4, 2), (ip + 6, 1), (ip, 1)]);
        else fields.AddRange([(ip, 1), (ip + 2, 2), (ip + 6, 2), (ip + 9, 1)]);
        var layer = 1 + tags + 1; // index into HeaderEnds of the first layer after IP
        for (var e = 0; e < extensions; e++, layer++)
        {
            var start = built.HeaderEnds[layer - 1];
            fields.AddRange([(start, 1), (start + 1, 1), (start + 2, 2)]);
        }
        if (hasL4)
        {
            var l4 = built.HeaderEnds[layer - 1];
            fields.AddRange([(l4, 2), (l4 + 2, 2)]);
            fields.Add(proto == PacketBuilder.ProtoTcp ? (l4 + 12, 1) : (l4 + 4, 2));
        }
        return fields;
    }

    private static readonly ushort[] TypeValues = [0x0800, 0x86DD, 0x8100, 0x88A8, 0x0806, 0, 6, 17, 0, 43, 44, 51, 59, 60, 0xFFFF, 0x45, 0x4F, 0x60];

    private static byte[] Mutate(Random rng, Generated template)
    {
        var frame = template.Bytes.ToArray();
        var operations = rng.Next(1, 4);
        for (var op = 0; op < operations; op++)
        {
            switch (rng.Next(7))
            {
                case 0: // bit flips
                    for (var i = rng.Next(1, 17); i > 0; i--)
                    {
                        var at = rng.Next(frame.Length);
                        frame[at] ^= (byte)(1 << rng.Next(8));
                    }
                    break;
                case 1: // truncation (the test run needs 14 bytes)
                    if (frame.Length > 14) frame = frame[..rng.Next(14, frame.Length)];
                    break;
                case 2: // a length or type field lies
                case 3:
                {
                    var (offset, size) = template.Fields[rng.Next(template.Fields.Count)];
                    if (offset + size > frame.Length) break;
                    var value = rng.Next(2) == 0 ? TypeValues[rng.Next(TypeValues.Length)] : rng.Next(65536);
                    if (size == 1) frame[offset] = (byte)value;
                    else { frame[offset] = (byte)(value >> 8); frame[offset + 1] = (byte)value; }
                    break;
                }
                case 4: // overwrite a range with random bytes
                {
                    var at = rng.Next(frame.Length);
                    var span = frame.AsSpan(at, Math.Min(rng.Next(1, 64), frame.Length - at));
                    rng.NextBytes(span);
                    break;
                }
                case 5: // insert bytes
                {
                    var at = rng.Next(frame.Length);
                    var extra = new byte[rng.Next(1, 24)];
                    rng.NextBytes(extra);
                    frame = [.. frame[..at], .. extra, .. frame[at..]];
                    break;
                }
                default: // delete bytes
                {
                    var at = rng.Next(frame.Length);
                    var count = Math.Min(rng.Next(1, 24), frame.Length - at);
                    if (frame.Length - count >= 14) frame = [.. frame[..at], .. frame[(at + count)..]];
                    break;
                }
            }
        }
        return frame;
    }

    private static byte[] RandomFrame(Random rng)
    {
        var frame = new byte[rng.Next(14, 1515)];
        rng.NextBytes(frame);
        // Half of them claim to be IP (or tagged), so they reach the parser's deeper paths.
        if (rng.Next(2) == 0)
        {
            var type = TypeValues[rng.Next(4)];
            frame[12] = (byte)(type >> 8);
            frame[13] = (byte)type;
            if (frame.Length > 14 && rng.Next(2) == 0) frame[14] = rng.Next(2) == 0 ? (byte)0x45 : (byte)0x60;
        }
        return frame;
    }

    private static bool TouchesReserved(ReadOnlySpan<byte> frame) =>
        frame.IndexOf(ReservedV4Prefix) >= 0 || frame.IndexOf(ReservedV6Prefix) >= 0;

    private static bool IsReserved(ClientAddress client)
    {
        Span<byte> key = stackalloc byte[16];
        client.WriteKernelKey(key);
        return client.IsIPv4 ? key[12] == 100 && key[13] == 77 : key[0] == 0xfd && key[1] == 0x77;
    }

    [KernelFact]
    public void Random_and_mutated_frames_never_fail_or_drop_and_valid_frames_among_them_count_exactly()
    {
        var rng = new Random(Seed);
        using var k = new KernelCounting(maxClients: 65536, preConfirm: false);
        // Every R client starts confirmed, so its frames count on its entry from the first one
        // whatever the order of the generated frames (the confirmation rules: ConfirmationTests).
        foreach (var a in Reserved.V4.Concat(Reserved.V6)) k.Confirm(a);
        var frags = new Dictionary<(string, string, uint, byte), int>();
        uint nextValidId = 1, nextOutsideId = 1;
        int frames = 0, valid = 0, mutated = 0, random = 0, refusedByTestRun = 0;
        var watch = Stopwatch.StartNew();

        void RunBoth(byte[] frame)
        {
            frames++;
            k.Run(Hook.Xdp, frame);
            try
            {
                k.Run(Hook.TcEgress, frame);
            }
            catch (BpfException e) when (e.Errno == Errno.EINVAL && RefusedBeforeTheProgram(frame))
            {
                refusedByTestRun++;
            }
        }

        void Model(Generated f, Direction direction)
        {
            int? cls = null;
            var key = (f.Src, f.Dst, f.FragId, f.Proto);
            if (f.Kind == FragKind.Later)
            {
                if (frags.TryGetValue(key, out var remembered)) cls = remembered;
            }
            else
            {
                var (local, remote) = direction == Direction.Down ? (f.Dport, f.Sport) : (f.Sport, f.Dport);
                if (ClassOf.TryGetValue((f.Proto, local), out var c) || ClassOf.TryGetValue((f.Proto, remote), out c)) cls = c;
                if (cls is { } found && f.Kind == FragKind.First) frags[key] = found;
            }
            if (cls is { } counted)
                k.Expected.Add(ClientAddress.Parse(direction == Direction.Down ? f.Src : f.Dst),
                    PortClassSet.Slot(counted, direction), (ulong)f.Bytes.Length, 1);
        }

        while (frames < Frames)
        {
            var pick = rng.Next(100);
            if (pick < 15)
            {
                foreach (var f in Datagram(rng, Reserved, ref nextValidId))
                {
                    RunBoth(f.Bytes);
                    Model(f, Direction.Down); // in run order: xdp, then tc_egress
                    Model(f, Direction.Up);
                    valid++;
                }
            }
            else if (pick < 30)
            {
                byte[] frame;
                do frame = RandomFrame(rng); while (TouchesReserved(frame));
                RunBoth(frame);
                random++;
            }
            else
            {
                var templates = Datagram(rng, Outside, ref nextOutsideId);
                foreach (var template in templates)
                {
                    if (TouchesReserved(template.Bytes)) continue; // e.g. a checksum reading 100,77
                    byte[] frame;
                    do frame = Mutate(rng, template); while (TouchesReserved(frame));
                    RunBoth(frame);
                    mutated++;
                }
            }
        }
        var elapsed = watch.Elapsed;

        var snapshot = k.Read();
        output.WriteLine($"seed {Seed}: {frames} frames ({valid} valid, {mutated} mutated, {random} random) x 2 hooks in {elapsed.TotalSeconds:0.0} s; " +
            $"{snapshot.Clients.Length} clients, {refusedByTestRun} refused by the tc test run before the program");

        // Valid frames: every reserved client exactly as modelled, and none the model did not count.
        var problems = new List<string>();
        var reservedSeen = new HashSet<ClientAddress>();
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var client = snapshot.Clients[i];
            if (!IsReserved(client)) continue;
            reservedSeen.Add(client);
            var actual = snapshot.SlotsOf(i).ToArray();
            if (!k.Expected.Clients.TryGetValue(client, out var expected))
                problems.Add($"unexpected reserved client {client}: {ExpectedCounters.Format(actual)}");
            else if (!actual.AsSpan().SequenceEqual(expected))
                problems.Add($"{client}: expected {ExpectedCounters.Format(expected)}, got {ExpectedCounters.Format(actual)}");
        }
        foreach (var client in k.Expected.Clients.Keys.Where(c => !reservedSeen.Contains(c)))
            problems.Add($"missing reserved client {client}");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        var counted = k.Expected.Clients.Count(c => c.Value.Any(t => !t.IsZero));
        Assert.True(counted >= 40, $"only {counted} valid clients were counted");

        // Everything: conservation, no overflow at this capacity, and the valid traffic within TOTAL.
        for (var s = 0; s < snapshot.SlotCount; s++)
        {
            var sum = snapshot.Overflow[s] + snapshot.Unconfirmed.Held[s] + snapshot.Unconfirmed.Evicted[s];
            for (var i = 0; i < snapshot.Clients.Length; i++) sum += snapshot.Get(i, s);
            Assert.Equal(snapshot.Totals[s], sum);
            Assert.Equal(Traffic.Zero, snapshot.Overflow[s]);
            Assert.True(snapshot.Totals[s].Bytes >= k.Expected.Totals[s].Bytes && snapshot.Totals[s].Packets >= k.Expected.Totals[s].Packets);
        }
        Assert.True(refusedByTestRun < frames / 100, $"{refusedByTestRun} frames refused by the tc test run");
    }

    /// <summary>The skb test run refuses, before the program runs, an untagged IPv4/IPv6 frame
    /// too short for the fixed IP header (seen on 6.18: EINVAL below 14+20 / 14+40 bytes).</summary>
    private static bool RefusedBeforeTheProgram(byte[] frame)
    {
        var type = frame[12] << 8 | frame[13];
        return (type == 0x0800 && frame.Length < 34) || (type == 0x86DD && frame.Length < 54);
    }

    [KernelFact]
    public void The_reserved_range_guard_is_sound_for_both_families()
    {
        // The guard looks for the 2-byte prefix; every reserved key's source bytes contain it.
        foreach (var a in Reserved.V4.Concat(Reserved.V6))
        {
            var bytes = IPAddress.Parse(a).GetAddressBytes();
            Assert.True(TouchesReserved(bytes), a);
            Assert.True(IsReserved(ClientAddress.Parse(a)), a);
            Assert.True(TouchesReserved(IPAddress.Parse(a).MapToIPv6().GetAddressBytes()), a);
        }
        foreach (var a in Outside.V4.Concat(Outside.V6))
            Assert.False(TouchesReserved(IPAddress.Parse(a).GetAddressBytes()), a);
    }
}
