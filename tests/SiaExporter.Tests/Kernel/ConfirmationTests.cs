using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Tests.Flood;
using Xunit;
using static SiaExporter.Tests.Kernel.CountingTests;

namespace SiaExporter.Tests.Kernel;

/// <summary>
/// The confirmation rules of bpf/clients.h under BPF_PROG_TEST_RUN, byte-exact: an address gets
/// its own entry only when the host's egress shows it is real (TCP: ACK without SYN or RST; QUIC:
/// a short-header packet), its earlier frames (the handshake) then land on that entry, and until
/// then everything it sent or got counts as unconfirmed: in the totals, never as a client.
/// </summary>
public sealed class ConfirmationTests
{
    private const byte Syn = 0x02, Rst = 0x04, Ack = 0x10, Psh = 0x08, Fin = 0x01;
    private const ushort Peer9981 = 9981;

    private static byte[] Tcp(bool v6, bool fromHost, ushort hostPort, ushort remotePort, byte flags, int payload = 0,
        string? client = null)
    {
        client ??= v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var (src, dst) = fromHost ? (host, client) : (client, host);
        var (sport, dport) = fromHost ? (hostPort, remotePort) : (remotePort, hostPort);
        var b = new PacketBuilder().Ethernet();
        if (v6) b.IPv6(src, dst);
        else b.IPv4(src, dst, dontFragment: true);
        return b.Tcp(sport, dport, flags: flags).Payload(payload).Bytes();
    }

    /// <summary>A UDP datagram on 9984 whose payload starts with <paramref name="firstByte"/> (QUIC:
    /// 0x80 set = long header, clear = short header).</summary>
    private static byte[] Quic(bool v6, bool fromHost, byte? firstByte, int payload = 1200, string? client = null)
    {
        client ??= v6 ? Client6 : Client4;
        var host = v6 ? Host6 : Host4;
        var (src, dst) = fromHost ? (host, client) : (client, host);
        var (sport, dport) = fromHost ? ((ushort)9984, Ephemeral) : (Ephemeral, (ushort)9984);
        var b = new PacketBuilder().Ethernet();
        if (v6) b.IPv6(src, dst);
        else b.IPv4(src, dst, dontFragment: true);
        b.Udp(sport, dport);
        if (firstByte is { } first) b.Raw([first, .. new byte[payload - 1]]);
        return b.Bytes();
    }

    public static TheoryData<bool, Hook> FamiliesAndIngressHooks() => new()
    {
        { false, Hook.Xdp }, { true, Hook.Xdp }, { false, Hook.TcIngress }, { true, Hook.TcIngress },
    };

    [KernelTheory]
    [MemberData(nameof(FamiliesAndIngressHooks))]
    public void A_renter_dialing_in_is_confirmed_by_the_hosts_first_ack_and_keeps_its_handshake(bool v6, Hook ingress)
    {
        using var k = new KernelCounting(preConfirm: false);
        var client = v6 ? Client6 : Client4;
        var syn = Tcp(v6, fromHost: false, 9984, Ephemeral, Syn);
        var synAck = Tcp(v6, fromHost: true, 9984, Ephemeral, Syn | Ack);
        var ack = Tcp(v6, fromHost: false, 9984, Ephemeral, Ack);
        var request = Tcp(v6, fromHost: false, 9984, Ephemeral, Psh | Ack, payload: 300);
        var answer = Tcp(v6, fromHost: true, 9984, Ephemeral, Psh | Ack, payload: 1400);

        k.Run(ingress, syn);
        k.Run(Hook.TcEgress, synAck);
        k.Run(ingress, ack);
        k.Run(ingress, request);
        // Handshake done on the renter's side, but nothing from the host proved it yet.
        k.ExpectUnconfirmed("9984/tcp", Direction.Down, syn.Length + ack.Length + request.Length, 3);
        k.ExpectUnconfirmed("9984/tcp", Direction.Up, synAck.Length, 1);
        k.AssertExact();
        Assert.Equal(1, k.Read().Unconfirmed.Sources);

        k.Run(Hook.TcEgress, answer);
        var expected = new ExpectedCounters(k.Collector.SlotCount);
        expected.Add(ClientAddress.Parse(client), k.Slot("9984/tcp", Direction.Down), (ulong)(syn.Length + ack.Length + request.Length), 3);
        expected.Add(ClientAddress.Parse(client), k.Slot("9984/tcp", Direction.Up), (ulong)(synAck.Length + answer.Length), 2);
        expected.AssertMatches(k.Read());
        Assert.Equal(0, k.Read().Unconfirmed.Sources);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_host_dialing_a_peers_9981_confirms_it_with_its_ack_of_the_peers_syn_ack(bool v6)
    {
        using var k = new KernelCounting(preConfirm: false);
        var peer = v6 ? Client6 : Client4;
        var syn = Tcp(v6, fromHost: true, Ephemeral, Peer9981, Syn);
        var synAck = Tcp(v6, fromHost: false, Ephemeral, Peer9981, Syn | Ack);
        var ack = Tcp(v6, fromHost: true, Ephemeral, Peer9981, Ack);
        var reply = Tcp(v6, fromHost: false, Ephemeral, Peer9981, Psh | Ack, payload: 200);

        k.Run(Hook.TcEgress, syn);
        k.Run(Hook.Xdp, synAck);
        k.ExpectUnconfirmed("9981/tcp", Direction.Up, syn.Length, 1);
        k.ExpectUnconfirmed("9981/tcp", Direction.Down, synAck.Length, 1);
        k.AssertExact();

        k.Run(Hook.TcEgress, ack);
        k.Run(Hook.Xdp, reply);
        var expected = new ExpectedCounters(k.Collector.SlotCount);
        expected.Add(ClientAddress.Parse(peer), k.Slot("9981/tcp", Direction.Up), (ulong)(syn.Length + ack.Length), 2);
        expected.Add(ClientAddress.Parse(peer), k.Slot("9981/tcp", Direction.Down), (ulong)(synAck.Length + reply.Length), 2);
        expected.AssertMatches(k.Read());
    }

    [KernelTheory]
    [InlineData(false, Syn | Ack)]
    [InlineData(true, Syn | Ack)]
    [InlineData(false, Rst | Ack)]
    [InlineData(true, Rst)]
    [InlineData(false, Syn)]
    [InlineData(false, Psh | Fin)] // no ACK flag: not a segment of an established connection
    public void What_the_host_sends_to_a_spoofed_source_never_confirms_it(bool v6, byte hostFlags)
    {
        using var k = new KernelCounting(preConfirm: false);
        var spoofed = Tcp(v6, fromHost: false, 9984, Ephemeral, Syn);
        var reply = Tcp(v6, fromHost: true, 9984, Ephemeral, hostFlags);

        k.Run(Hook.Xdp, spoofed, repeat: 5);
        k.Run(Hook.TcEgress, reply, repeat: 5);

        k.ExpectUnconfirmed("9984/tcp", Direction.Down, 5 * spoofed.Length, 5);
        k.ExpectUnconfirmed("9984/tcp", Direction.Up, 5 * reply.Length, 5);
        k.AssertExact();
        Assert.Empty(k.Read().Clients);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Quic_is_confirmed_by_the_hosts_first_short_header_packet_and_keeps_its_handshake(bool v6)
    {
        using var k = new KernelCounting(preConfirm: false);
        var client = v6 ? Client6 : Client4;
        var initial = Quic(v6, fromHost: false, 0xc3);            // long header, Initial
        var serverInitial = Quic(v6, fromHost: true, 0xc1);       // long header, Initial
        var serverHandshake = Quic(v6, fromHost: true, 0xe1, 600); // long header, Handshake
        var clientHandshake = Quic(v6, fromHost: false, 0xe1, 300);
        var oneRtt = Quic(v6, fromHost: true, 0x41, 900);         // short header: bit 7 clear

        k.Run(Hook.Xdp, initial);
        k.Run(Hook.TcEgress, serverInitial);
        k.Run(Hook.TcEgress, serverHandshake);
        k.Run(Hook.Xdp, clientHandshake);
        k.ExpectUnconfirmed("9984/udp", Direction.Down, initial.Length + clientHandshake.Length, 2);
        k.ExpectUnconfirmed("9984/udp", Direction.Up, serverInitial.Length + serverHandshake.Length, 2);
        k.AssertExact();

        k.Run(Hook.TcEgress, oneRtt);
        var expected = new ExpectedCounters(k.Collector.SlotCount);
        expected.Add(ClientAddress.Parse(client), k.Slot("9984/udp", Direction.Down), (ulong)(initial.Length + clientHandshake.Length), 2);
        expected.Add(ClientAddress.Parse(client), k.Slot("9984/udp", Direction.Up), (ulong)(serverInitial.Length + serverHandshake.Length + oneRtt.Length), 3);
        expected.AssertMatches(k.Read());
    }

    [KernelTheory]
    [InlineData(false, (byte)0xc0)] // Initial
    [InlineData(true, (byte)0xf0)]  // Retry
    [InlineData(false, (byte)0x80)] // Version Negotiation (any long form)
    [InlineData(true, null)]        // empty datagram
    public void Quic_long_headers_and_empty_datagrams_from_the_host_never_confirm(bool v6, byte? first)
    {
        using var k = new KernelCounting(preConfirm: false);
        var fromHost = Quic(v6, fromHost: true, first, 200);
        var fromSource = Quic(v6, fromHost: false, 0x41, 100); // a short header from the source proves nothing

        k.Run(Hook.TcEgress, fromHost, repeat: 3);
        k.Run(Hook.Xdp, fromSource, repeat: 2);

        k.ExpectUnconfirmed("9984/udp", Direction.Up, 3 * fromHost.Length, 3);
        k.ExpectUnconfirmed("9984/udp", Direction.Down, 2 * fromSource.Length, 2);
        k.AssertExact();
        Assert.Empty(k.Read().Clients);
    }

    [KernelFact]
    public void A_handshake_counted_on_one_cpu_and_confirmed_on_another_lands_on_the_entry_also_after_its_slot_is_reused()
    {
        if (Environment.ProcessorCount < 2) Assert.Fail("needs 2 CPUs");
        using var k = new KernelCounting(preConfirm: false);
        var syn = Tcp(false, fromHost: false, 9984, Ephemeral, Syn);
        var synAck = Tcp(false, fromHost: true, 9984, Ephemeral, Syn | Ack);
        var ack = Tcp(false, fromHost: true, 9984, Ephemeral, Ack);
        CpuPin.On(0, () => k.Run(Hook.Xdp, syn));           // RX on CPU 0
        CpuPin.On(1, () => k.Run(Hook.TcEgress, synAck));   // TX on CPU 1
        CpuPin.On(1, () => k.Run(Hook.TcEgress, ack));      // confirmed on CPU 1: CPU 0's slot is marked

        var client = ClientAddress.Parse(Client4);
        k.Expected.Add(client, k.Slot("9984/tcp", Direction.Down), (ulong)syn.Length, 1);
        k.Expected.Add(client, k.Slot("9984/tcp", Direction.Up), (ulong)(synAck.Length + ack.Length), 2);
        k.AssertExact(); // CPU 0's pending slot is merged by the reader

        // Another source whose slot is the same takes CPU 0's slot over: the kernel folds the
        // marked slot into the client's entry, and the newcomer is unconfirmed.
        var rival = CollidingAddress(client);
        var spoof = Tcp(false, fromHost: false, 9984, Ephemeral, Syn, client: rival.ToString());
        CpuPin.On(0, () => k.Run(Hook.Xdp, spoof));
        k.ExpectUnconfirmed("9984/tcp", Direction.Down, spoof.Length, 1);
        k.AssertExact();
        Assert.Equal(1, k.Read().Unconfirmed.Sources);
    }

    [KernelFact]
    public void A_source_that_loses_its_slot_to_another_is_folded_into_the_evicted_unconfirmed_traffic()
    {
        using var k = new KernelCounting(preConfirm: false);
        var first = ClientAddress.Parse("198.51.100.20");
        var rival = CollidingAddress(first);
        var a = Tcp(false, fromHost: false, 9984, Ephemeral, Syn, payload: 10, client: first.ToString());
        var b = Tcp(false, fromHost: false, 9984, Ephemeral, Syn, payload: 20, client: rival.ToString());
        CpuPin.On(0, () =>
        {
            k.Run(Hook.Xdp, a, repeat: 4);
            k.Run(Hook.Xdp, b, repeat: 2);
        });
        var snapshot = k.Read();
        var slot = k.Slot("9984/tcp", Direction.Down);
        Assert.Equal(new Traffic(4 * (ulong)a.Length, 4), snapshot.Unconfirmed.Evicted[slot]);
        Assert.Equal(new Traffic(2 * (ulong)b.Length, 2), snapshot.Unconfirmed.Held[slot]);
        Assert.Equal(1, snapshot.Unconfirmed.Sources);
        Assert.Equal(snapshot.Totals[slot], snapshot.Unconfirmed.Evicted[slot] + snapshot.Unconfirmed.Held[slot]);
    }

    [KernelFact]
    public void A_flood_of_spoofed_sources_neither_pushes_confirmed_clients_out_nor_keeps_a_new_one_out()
    {
        using var k = new KernelCounting(maxClients: 4, preConfirm: false);
        var early = Tcp(false, fromHost: true, 9984, Ephemeral, Ack, payload: 10);
        k.Run(Hook.TcEgress, early);
        k.Expect(Client4, "9984/tcp", Direction.Up, early.Length, 1);

        var frames = new FloodFrames();
        var rng = new Random(11);
        ulong floodBytes = 0, floodPackets = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var source = i % 2 == 0
                ? ClientAddress.Parse($"10.{rng.Next(256)}.{rng.Next(256)}.{rng.Next(1, 255)}")
                : ClientAddress.Parse($"fd00:{rng.Next(65536):x}::{rng.Next(1, 65536):x}");
            var length = FloodFrames.MinIpv6Frame + rng.Next(200);
            BpfTestRun.Run(k.Collector.XdpIngress, frames.Frame(source, length));
            floodBytes += (ulong)length;
            floodPackets++;
        }
        k.ExpectUnconfirmed("9984/tcp", Direction.Down, (long)floodBytes, (long)floodPackets);

        // A new renter after the flood: handshake, then the host's answer.
        var syn = Tcp(true, fromHost: false, 9984, Ephemeral, Syn);
        var synAck = Tcp(true, fromHost: true, 9984, Ephemeral, Syn | Ack);
        var ack = Tcp(true, fromHost: false, 9984, Ephemeral, Ack);
        var data = Tcp(true, fromHost: true, 9984, Ephemeral, Psh | Ack, payload: 1000);
        foreach (var (hook, frame) in new[] { (Hook.Xdp, syn), (Hook.TcEgress, synAck), (Hook.Xdp, ack), (Hook.TcEgress, data) })
            k.Run(hook, frame);
        k.Expect(Client6, "9984/tcp", Direction.Down, syn.Length + ack.Length, 2);
        k.Expect(Client6, "9984/tcp", Direction.Up, synAck.Length + data.Length, 2);

        k.AssertExact(); // exactly the two real clients, the flood all unconfirmed, totals exact
        var snapshot = k.Read();
        Assert.Equal(2, snapshot.Clients.Length);
        Assert.InRange(snapshot.Unconfirmed.Sources, 1, BpfConstants.PendingEntries * k.Collector.PossibleCpus);
        Assert.True(snapshot.Unconfirmed.EvictedSum.Packets > 0, "the flood churned the pending table");
    }

    [KernelFact]
    public void Evicting_a_client_releases_its_pending_slots_with_its_final_value()
    {
        if (Environment.ProcessorCount < 2) Assert.Fail("needs 2 CPUs");
        using var k = new KernelCounting(preConfirm: false);
        var syn = Tcp(false, fromHost: false, 9984, Ephemeral, Syn);
        var ack = Tcp(false, fromHost: true, 9984, Ephemeral, Ack);
        CpuPin.On(0, () => k.Run(Hook.Xdp, syn));
        CpuPin.On(1, () => k.Run(Hook.TcEgress, ack));
        var client = ClientAddress.Parse(Client4);
        var before = k.Read();
        var index = Array.IndexOf(before.Clients, client);

        var evicted = Assert.Single(k.Reader.Evict([client]));
        Assert.Equal(before.SlotsOf(index).ToArray(), evicted.FinalSlots);
        var after = k.Read();
        Assert.Empty(after.Clients);
        Assert.Equal(0, after.Unconfirmed.Sources); // the slot went with the client
        // The client comes back: its new entry starts from what it sends now, not the old handshake.
        CpuPin.On(0, () => k.Run(Hook.TcEgress, ack));
        var again = k.Read();
        Assert.Equal(new Traffic((ulong)ack.Length, 1), again.Get(Array.IndexOf(again.Clients, client), k.Slot("9984/tcp", Direction.Up)));
        Assert.Equal(Traffic.Zero, again.Get(Array.IndexOf(again.Clients, client), k.Slot("9984/tcp", Direction.Down)));
    }

    /// <summary>An IPv4 address (198.18.x.y) whose pending slot is the one of <paramref name="address"/>.</summary>
    private static ClientAddress CollidingAddress(ClientAddress address)
    {
        Span<byte> key = stackalloc byte[16];
        address.WriteKernelKey(key);
        var target = PendingIndex.Of(key);
        for (var i = 1; i < 1 << 20; i++)
        {
            var candidate = ClientAddress.Parse($"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}");
            candidate.WriteKernelKey(key);
            if (candidate != address && PendingIndex.Of(key) == target) return candidate;
        }
        throw new InvalidOperationException("no colliding address found");
    }
}
