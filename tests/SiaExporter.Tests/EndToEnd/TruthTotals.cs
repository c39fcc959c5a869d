using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>The sum of several recorded runs' truths: what a counter that saw all of them must show.</summary>
public sealed class TruthTotals
{
    private readonly Dictionary<FlowKey, Traffic> _counted = new();

    public int Runs { get; private set; }

    public IReadOnlyDictionary<FlowKey, Traffic> Counted => _counted;

    public void Add(CaptureTruth truth)
    {
        foreach (var (key, value) in truth.Counted) _counted[key] = _counted.GetValueOrDefault(key) + value;
        Runs++;
    }

    public Traffic HostTotal(PortClass cls, Direction dir) =>
        _counted.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir).Aggregate(Traffic.Zero, (a, kv) => a + kv.Value);

    public Traffic Total => _counted.Values.Aggregate(Traffic.Zero, (a, t) => a + t);

    /// <summary>Bytes per client over every class and direction.</summary>
    public Dictionary<ClientAddress, ulong> BytesPerClient() =>
        _counted.GroupBy(kv => kv.Key.Client).ToDictionary(g => g.Key, g => g.Aggregate(0UL, (a, kv) => a + kv.Value.Bytes));

    public TruthTotals Copy()
    {
        var copy = new TruthTotals { Runs = Runs };
        foreach (var (k, v) in _counted) copy._counted[k] = v;
        return copy;
    }

    public override string ToString() => $"{Runs} runs, {_counted.Count} series, {Total.Bytes} B / {Total.Packets} frames";
}
