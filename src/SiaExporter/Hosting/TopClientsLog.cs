using System.Globalization;
using System.Text;
using SiaExporter.Counters;

namespace SiaExporter.Hosting;

/// <summary>
/// The live view in the journal: every LOG_INTERVAL, the busiest clients of the last interval
/// per class and direction, with their rates (addresses only, no DNS look-ups).
/// </summary>
public sealed class TopClientsLog(SnapshotSource source, LogOptions options, TimeProvider time, ILogger<TopClientsLog> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        CounterSnapshot? previous = null;
        using var timer = new PeriodicTimer(options.Interval, time);
        do
        {
            try
            {
                var current = source.Current();
                if (previous is not null) Log(previous, current);
                previous = current;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("Reading the counters for the live log failed: {Error}", e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private void Log(CounterSnapshot previous, CounterSnapshot current)
    {
        var seconds = Math.Max((current.TakenAt - previous.TakenAt).TotalSeconds, 0.001);
        foreach (var line in Describe(previous, current, options.Top, seconds))
            logger.LogInformation("{TopClients}", line);
    }

    /// <summary>One line per class and direction that saw traffic in the interval.</summary>
    public static IEnumerable<string> Describe(CounterSnapshot previous, CounterSnapshot current, int top, double seconds)
    {
        var earlier = new Dictionary<ClientAddress, int>(previous.Clients.Length);
        for (var i = 0; i < previous.Clients.Length; i++) earlier[previous.Clients[i]] = i;
        var sameMaps = previous.Generation == current.Generation && previous.Classes.Equals(current.Classes);

        for (var c = 0; c < current.Classes.Count; c++)
        {
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var slot = PortClassSet.Slot(c, direction);
                var hostDelta = sameMaps ? current.Totals[slot].Since(previous.Totals[slot]) : current.Totals[slot];
                if (hostDelta.IsZero) continue;
                var busiest = new List<(ClientAddress Client, Traffic Delta)>();
                for (var i = 0; i < current.Clients.Length; i++)
                {
                    var now = current.Get(i, slot);
                    var before = sameMaps && earlier.TryGetValue(current.Clients[i], out var j) ? previous.Get(j, slot) : Traffic.Zero;
                    var delta = now.Since(before);
                    if (!delta.IsZero) busiest.Add((current.Clients[i], delta));
                }
                busiest.Sort((a, b) => b.Delta.Bytes.CompareTo(a.Delta.Bytes));
                var text = new StringBuilder();
                text.Append(CultureInfo.InvariantCulture,
                    $"{current.Classes.Classes[c]} {direction.Label()}: {Rate(hostDelta.Bytes, seconds)} from {busiest.Count} client(s)");
                foreach (var (client, delta) in busiest.Take(top))
                    text.Append(CultureInfo.InvariantCulture, $" | {client} {Rate(delta.Bytes, seconds)} {delta.Packets / seconds:0.#} pkt/s");
                yield return text.ToString();
            }
        }
    }

    public static string Rate(ulong bytes, double seconds) => HumanBytes(bytes * 8 / seconds, "bit/s", 1000);

    public static string HumanBytes(double value, string unit, double step)
    {
        string[] prefixes = ["", "k", "M", "G", "T", "P"];
        var i = 0;
        while (value >= step && i < prefixes.Length - 1)
        {
            value /= step;
            i++;
        }
        return string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {prefixes[i]}{unit}");
    }
}
