using System.Globalization;
using System.Text.RegularExpressions;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Tests.Metrics;

/// <summary>A kernel stand-in: per-client entries and the total counter, both monotonic until an
/// entry is evicted (it restarts from zero) or the maps are recreated (new generation).</summary>
internal sealed class KernelModel
{
    private readonly Dictionary<ClientAddress, Traffic[]> _entries = new();
    private Traffic[] _totals;
    private Traffic[] _overflow;
    private uint _mapId = 1;

    public KernelModel(PortClassSet? classes = null, DateTimeOffset? start = null)
    {
        Classes = classes ?? PortClassSet.DefaultSet;
        _totals = new Traffic[Classes.SlotCount];
        _overflow = new Traffic[Classes.SlotCount];
        Now = start ?? new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    }

    public PortClassSet Classes { get; }
    public DateTimeOffset Now { get; set; }
    public MapGeneration Generation => new("boot-a", _mapId);
    public IReadOnlyDictionary<ClientAddress, DateTimeOffset> LastChanged => _lastChanged;
    private readonly Dictionary<ClientAddress, DateTimeOffset> _lastChanged = new();
    public IEnumerable<ClientAddress> Clients => _entries.Keys;

    public void Add(ClientAddress client, int slot, ulong bytes, ulong packets)
    {
        if (!_entries.TryGetValue(client, out var e)) _entries[client] = e = new Traffic[Classes.SlotCount];
        e[slot] += new Traffic(bytes, packets);
        _totals[slot] += new Traffic(bytes, packets);
        _lastChanged[client] = Now;
    }

    /// <summary>What bpf/qdiscdrops.h does for a frame a qdisc dropped after it was counted: takes it
    /// off the client's entry and the host totals (a read may have shown it already).</summary>
    public void TakeOff(ClientAddress client, int slot, ulong bytes, ulong packets)
    {
        var e = _entries[client];
        e[slot] = new Traffic(e[slot].Bytes - bytes, e[slot].Packets - packets);
        _totals[slot] = new Traffic(_totals[slot].Bytes - bytes, _totals[slot].Packets - packets);
    }

    /// <summary>Traffic of a client that found the map full: in the totals only.</summary>
    public void AddOverflow(int slot, ulong bytes, ulong packets)
    {
        _overflow[slot] += new Traffic(bytes, packets);
        _totals[slot] += new Traffic(bytes, packets);
    }

    public void Evict(ClientAddress client) => _entries.Remove(client);

    public void RecreateMaps()
    {
        _entries.Clear();
        _totals = new Traffic[Classes.SlotCount];
        _overflow = new Traffic[Classes.SlotCount];
        _mapId++;
    }

    public Traffic Total(int slot) => _totals[slot];

    public CounterSnapshot Snapshot()
    {
        var clients = _entries.Keys.ToArray();
        var slots = new Traffic[clients.Length * Classes.SlotCount];
        for (var i = 0; i < clients.Length; i++) _entries[clients[i]].CopyTo(slots, i * Classes.SlotCount);
        return new CounterSnapshot(Classes, Generation, Now, clients, slots, (Traffic[])_totals.Clone(), (Traffic[])_overflow.Clone());
    }
}

/// <summary>The parts of the text exposition the tests look at.</summary>
internal sealed class Exposition
{
    private static readonly Regex Sample = new(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$", RegexOptions.Compiled);
    private static readonly Regex Label = new(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""", RegexOptions.Compiled);

    public Dictionary<string, double> Values { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, (string Name, Dictionary<string, string> Labels)> Series { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Help { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);
    public string Text { get; }

    public Exposition(string text)
    {
        Text = text;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            if (line.StartsWith("# HELP ", StringComparison.Ordinal)) { Help.Add(line.Split(' ')[2]); continue; }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal)) { var p = line.Split(' '); Types[p[2]] = p[3]; continue; }
            if (line.StartsWith('#')) continue;
            var m = Sample.Match(line);
            if (!m.Success) throw new FormatException($"unparsable sample line '{line}'");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match l in Label.Matches(m.Groups[3].Value)) labels[l.Groups[1].Value] = l.Groups[2].Value;
            var key = m.Groups[1].Value + "{" + string.Join(",", labels.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key}={k.Value}")) + "}";
            Values[key] = double.Parse(m.Groups[4].Value, NumberStyles.Float, CultureInfo.InvariantCulture);
            Series[key] = (m.Groups[1].Value, labels);
        }
    }

    public IEnumerable<(string Key, Dictionary<string, string> Labels, double Value)> Of(string name) =>
        Series.Where(s => s.Value.Name == name).Select(s => (s.Key, s.Value.Labels, Values[s.Key]));

    public double Value(string name, params (string Label, string Value)[] labels) =>
        Of(name).Single(s => labels.All(l => s.Labels.TryGetValue(l.Label, out var v) && v == l.Value)).Value;

    public static ulong Exact(double value)
    {
        var u = (ulong)value;
        if (u != value) throw new InvalidOperationException($"{value} is not an exact integer");
        return u;
    }
}

internal static class TestOptions
{
    public static CollectorOptions For(string stateDirectory, int top = 1000, TimeSpan? idle = null) => new()
    {
        StateDirectory = stateDirectory,
        MetricsTopClients = top,
        ClientIdleTimeout = idle ?? TimeSpan.FromHours(1),
        SiaHostname = "host-1",
    };
}

internal sealed class TempDir : IDisposable
{
    // tmpfs when there is one: the state file is fsynced at every change of the published set.
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(
        Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath(), "sia-metrics-" + Guid.NewGuid().ToString("N")));

    public string Path { get; }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
