using System.Text.Json;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Tests.Bpf;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The product's kernel side on a <see cref="TestNetwork"/>'s host end, through its own loader,
/// attacher and reader (CollectorObject, HookAttachments, CounterReader), with maps and links
/// pinned under the network's pin directory (/sys/fs/bpf/e2eXXXX, removed with the network).
/// </summary>
internal sealed class CollectorUnderTest : IDisposable
{
    private CounterReader? _reader;
    private bool _released;

    private CollectorUnderTest(TestNetwork net, CollectorObject collector, HookAttachments attachments, ListLogger log)
    {
        Network = net;
        Object = collector;
        Attachments = attachments;
        Log = log;
        _reader = new CounterReader(collector);
    }

    public TestNetwork Network { get; }
    public CollectorObject Object { get; }
    public HookAttachments Attachments { get; }
    public ListLogger Log { get; }

    /// <summary>Loads the object ($BPF_OBJECT or build/collector.bpf.o) and attaches to the host end.</summary>
    public static CollectorUnderTest Start(TestNetwork net, XdpMode xdpMode, PortClassSet? classes = null,
        int maxClients = BpfConstants.DefaultMaxClients)
    {
        var log = new ListLogger();
        var options = new CollectorObjectOptions(TestObject.Path, classes ?? PortClassSet.DefaultSet, maxClients, net.PinDirectory);
        var collector = CollectorObject.Load(options, log);
        try
        {
            var attachments = HookAttachments.Attach(collector, [net.HostInterface], xdpMode, TcAttachMode.Auto, log);
            return new CollectorUnderTest(net, collector, attachments, log);
        }
        catch
        {
            collector.Dispose();
            throw;
        }
    }

    public CounterSnapshot Read() => (_reader ?? throw new ObjectDisposedException(nameof(CollectorUnderTest))).Read();

    /// <summary>As a SIGKILL would leave it: our fds closed, programs attached, links and maps pinned.</summary>
    public void Crash()
    {
        _released = true;
        Attachments.ReleaseWithoutDetaching();
        _reader?.Dispose();
        _reader = null;
        Object.Dispose();
    }

    /// <summary>A clean stop (SIGTERM): programs detached, links unpinned, maps stay pinned.</summary>
    public void Dispose()
    {
        if (_released) return;
        _released = true;
        Attachments.Dispose();
        _reader?.Dispose();
        _reader = null;
        Object.Dispose();
    }

    /// <summary>What is on the host end's hooks, from outside the product: `bpftool net show dev`
    /// (native XDP, netlink tc filters) and BPF_PROG_QUERY for TCX (bpftool 7.1 does not list TCX).</summary>
    public static HookCensus Census(TestNetwork net)
    {
        using var json = JsonDocument.Parse(Shell.Run("bpftool", "-j", "net", "show", "dev", net.HostInterface));
        var xdp = new List<(string Mode, uint Id)>();
        var tc = new List<(string Kind, uint Id)>();
        foreach (var entry in json.RootElement.EnumerateArray())
        {
            if (entry.TryGetProperty("xdp", out var xdps))
                foreach (var x in xdps.EnumerateArray())
                    xdp.Add((x.GetProperty("mode").GetString()!, x.GetProperty("id").GetUInt32()));
            if (entry.TryGetProperty("tc", out var tcs))
                foreach (var t in tcs.EnumerateArray())
                    tc.Add((t.GetProperty("kind").GetString()!, t.GetProperty("id").GetUInt32()));
        }
        return new HookCensus(xdp, tc,
            TcxQuery.ProgramIds(net.HostIfIndex, Hook.TcIngress), TcxQuery.ProgramIds(net.HostIfIndex, Hook.TcEgress));
    }
}

internal sealed record HookCensus(
    IReadOnlyList<(string Mode, uint Id)> Xdp,
    IReadOnlyList<(string Kind, uint Id)> NetlinkTc,
    IReadOnlyList<uint> TcxIngress,
    IReadOnlyList<uint> TcxEgress)
{
    /// <summary>Programs counting ingress: XDP (any mode) + tc ingress (TCX or netlink).</summary>
    public int IngressPrograms => Xdp.Count + TcxIngress.Count + NetlinkTc.Count(t => t.Kind.EndsWith("ingress", StringComparison.Ordinal));

    public int EgressPrograms => TcxEgress.Count + NetlinkTc.Count(t => t.Kind.EndsWith("egress", StringComparison.Ordinal));

    public override string ToString() =>
        $"xdp [{string.Join(", ", Xdp.Select(x => $"{x.Mode}:{x.Id}"))}] netlink tc [{string.Join(", ", NetlinkTc.Select(t => $"{t.Kind}:{t.Id}"))}] " +
        $"tcx ingress [{string.Join(", ", TcxIngress)}] tcx egress [{string.Join(", ", TcxEgress)}]";
}
