using System.Text;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using SiaExporter.Tests.Bpf;
using Xunit;

namespace SiaExporter.Tests.Kernel;

/// <summary>The three programs of collector.bpf.o.</summary>
public enum Hook
{
    Xdp,
    TcEgress,
    TcIngress,
}

/// <summary>
/// One unpinned load of the collector (fresh private maps) plus the expected counters: tests run
/// frames through a hook with BPF_PROG_TEST_RUN, add what each should count to <see cref="Expect"/>,
/// and <see cref="AssertExact"/> compares every client, every slot, TOTAL, OVERFLOW and the
/// unconfirmed traffic with it. Unless told otherwise, the usual test clients
/// (<see cref="PreConfirmed"/>) start confirmed with an empty entry, so tests about parsing and
/// counting need no handshake; the confirmation rules have tests of their own (ConfirmationTests).
/// </summary>
internal sealed class KernelCounting : IDisposable
{
    public const uint XdpPass = 2;
    /// <summary>TC_ACT_UNSPEC (-1) as the test run reports it.</summary>
    public const uint TcUnspec = uint.MaxValue;

    public KernelCounting(string ports = PortClassSet.Default, int maxClients = BpfConstants.DefaultMaxClients,
        bool preConfirm = true)
    {
        Collector = CollectorObject.Load(TestObject.Options(ports: ports, maxClients: maxClients), new ListLogger());
        Reader = new CounterReader(Collector);
        Expected = new ExpectedCounters(Collector.SlotCount);
        if (preConfirm)
            foreach (var client in PreConfirmed.Take(maxClients)) Confirm(client);
    }

    /// <summary>Clients that start confirmed (empty entries) unless preConfirm is false.</summary>
    public static readonly string[] PreConfirmed = [CountingTests.Client4, CountingTests.Client6];

    /// <summary>Gives <paramref name="client"/> an empty entry, as a confirmation would.</summary>
    public void Confirm(string client)
    {
        var address = ClientAddress.Parse(client);
        KernelMapWriter.PutConfirmedClient(Collector, address);
        Expected.Declare(address);
    }

    public CollectorObject Collector { get; }
    public CounterReader Reader { get; }
    public ExpectedCounters Expected { get; }
    public PortClassSet Classes => Collector.Classes;

    public static Direction DirectionOf(Hook hook) => hook == Hook.TcEgress ? Direction.Up : Direction.Down;

    public BpfProgram ProgramOf(Hook hook) => hook switch
    {
        Hook.Xdp => Collector.XdpIngress,
        Hook.TcEgress => Collector.TcEgress,
        _ => Collector.TcIngress,
    };

    /// <summary>Runs <paramref name="frame"/> through <paramref name="hook"/> and checks the verdict
    /// (the program never drops: XDP_PASS, TC_ACT_UNSPEC).</summary>
    public void Run(Hook hook, byte[] frame, int repeat = 1, SkBuffFields? skb = null)
    {
        var result = BpfTestRun.Run(ProgramOf(hook), frame, repeat, hook == Hook.Xdp ? null : skb);
        Assert.Equal(hook == Hook.Xdp ? XdpPass : TcUnspec, result.ReturnValue);
    }

    /// <summary>Slot of class <paramref name="portClass"/> ("9984/udp") in <paramref name="direction"/>.</summary>
    public int Slot(string portClass, Direction direction)
    {
        var index = Classes.IndexOf(PortClass.Parse(portClass));
        Assert.True(index >= 0, $"{portClass} is not in {Classes}");
        return PortClassSet.Slot(index, direction);
    }

    public void Expect(string client, string portClass, Direction direction, long bytes, long packets) =>
        Expected.Add(ClientAddress.Parse(client), Slot(portClass, direction), (ulong)bytes, (ulong)packets);

    public void ExpectOverflow(string portClass, Direction direction, long bytes, long packets) =>
        Expected.AddOverflow(Slot(portClass, direction), (ulong)bytes, (ulong)packets);

    /// <summary>Frames of a source that has not proved it is real (held in `pending` or evicted from it).</summary>
    public void ExpectUnconfirmed(string portClass, Direction direction, long bytes, long packets) =>
        Expected.AddUnconfirmed(Slot(portClass, direction), (ulong)bytes, (ulong)packets);

    public CounterSnapshot Read() => Reader.Read();

    /// <summary>The kernel maps hold exactly what was expected: the same clients (no other entry),
    /// the same value in every slot, TOTAL and OVERFLOW.</summary>
    public void AssertExact() => Expected.AssertMatches(Read());

    public void Dispose()
    {
        Reader.Dispose();
        Collector.Dispose();
    }
}

/// <summary>Expected kernel counters: per client and slot, plus TOTAL (every add) and OVERFLOW.</summary>
internal sealed class ExpectedCounters(int slots)
{
    private readonly Dictionary<ClientAddress, Traffic[]> _clients = [];

    public int Slots { get; } = slots;
    public Traffic[] Totals { get; } = new Traffic[slots];
    public Traffic[] Overflow { get; } = new Traffic[slots];
    /// <summary>Held in `pending` plus evicted from it (UnconfirmedTraffic.Held + Evicted).</summary>
    public Traffic[] Unconfirmed { get; } = new Traffic[slots];
    public IReadOnlyDictionary<ClientAddress, Traffic[]> Clients => _clients;

    /// <summary>The client has an entry (possibly all zero).</summary>
    public void Declare(ClientAddress client)
    {
        if (!_clients.ContainsKey(client)) _clients[client] = new Traffic[Slots];
    }

    public void AddUnconfirmed(int slot, ulong bytes, ulong packets)
    {
        Unconfirmed[slot] += new Traffic(bytes, packets);
        Totals[slot] += new Traffic(bytes, packets);
    }

    public void Add(ClientAddress client, int slot, ulong bytes, ulong packets)
    {
        if (!_clients.TryGetValue(client, out var values)) _clients[client] = values = new Traffic[Slots];
        values[slot] += new Traffic(bytes, packets);
        Totals[slot] += new Traffic(bytes, packets);
    }

    public void AddOverflow(int slot, ulong bytes, ulong packets)
    {
        Overflow[slot] += new Traffic(bytes, packets);
        Totals[slot] += new Traffic(bytes, packets);
    }

    public void AssertMatches(CounterSnapshot snapshot)
    {
        var problems = new StringBuilder();
        var seen = new HashSet<ClientAddress>();
        for (var i = 0; i < snapshot.Clients.Length; i++)
        {
            var client = snapshot.Clients[i];
            seen.Add(client);
            var actual = snapshot.SlotsOf(i).ToArray();
            if (!_clients.TryGetValue(client, out var expected))
                problems.AppendLine($"unexpected client {client}: {Format(actual)}");
            else if (!actual.AsSpan().SequenceEqual(expected))
                problems.AppendLine($"client {client}: expected {Format(expected)}, got {Format(actual)}");
        }
        foreach (var (client, values) in _clients)
            if (!seen.Contains(client))
                problems.AppendLine($"missing client {client}: expected {Format(values)}");
        if (!snapshot.Totals.AsSpan().SequenceEqual(Totals))
            problems.AppendLine($"TOTAL: expected {Format(Totals)}, got {Format(snapshot.Totals)}");
        if (!snapshot.Overflow.AsSpan().SequenceEqual(Overflow))
            problems.AppendLine($"OVERFLOW: expected {Format(Overflow)}, got {Format(snapshot.Overflow)}");
        var unconfirmed = snapshot.Unconfirmed.Held.Zip(snapshot.Unconfirmed.Evicted, (h, e) => h + e).ToArray();
        if (!unconfirmed.AsSpan().SequenceEqual(Unconfirmed))
            problems.AppendLine($"UNCONFIRMED: expected {Format(Unconfirmed)}, got {Format(unconfirmed)}");
        Assert.True(problems.Length == 0, problems.ToString());
    }

    public static string Format(IEnumerable<Traffic> values) =>
        "[" + string.Join(" ", values.Select((t, s) => $"s{s}={t.Bytes}B/{t.Packets}p")) + "]";
}
