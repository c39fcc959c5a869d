using SiaExporter.Counters;

namespace SiaExporter.Dashboard;

/// <summary>
/// The dashboard's "now" chart: the kernel's host totals sampled every <see cref="Step"/> from
/// the snapshot source, the last <see cref="Window"/> kept in memory (a ring of
/// Window / Step + 1 samples, a few KiB), and rates between consecutive samples. Reads the
/// snapshot source only (no write back). Thread-safe.
/// </summary>
public sealed class LiveRates(Func<CounterSnapshot> snapshots, TimeProvider time, ILogger<LiveRates> logger) : BackgroundService
{
    public static readonly TimeSpan Step = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(15);
    private static readonly int Capacity = (int)(Window / Step) + 1;

    private readonly Lock _gate = new();
    private readonly Queue<Sample> _samples = new(Capacity);

    private sealed record Sample(DateTimeOffset At, MapGeneration Generation, PortClassSet Classes, Traffic[] Totals);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Step, time);
        do
        {
            try
            {
                Add(snapshots());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("dashboard: reading the counters for the live chart failed: {Error}", e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Adds one sample (the service does this every <see cref="Step"/>).</summary>
    public void Add(CounterSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_gate)
        {
            if (_samples.Count == Capacity) _samples.Dequeue();
            _samples.Enqueue(new Sample(snapshot.TakenAt, snapshot.Generation, snapshot.Classes, (Traffic[])snapshot.Totals.Clone()));
        }
    }

    /// <summary>Bytes per second per class and direction between consecutive samples, for
    /// <paramref name="classes"/>; time of each point = the later sample (Unix seconds). A point
    /// is null where the counters restarted or the classes changed between the two samples.</summary>
    public LiveView Read(PortClassSet classes)
    {
        ArgumentNullException.ThrowIfNull(classes);
        Sample[] samples;
        lock (_gate) samples = _samples.ToArray();
        var points = Math.Max(0, samples.Length - 1);
        var t = new long[points];
        var series = new List<LiveSeries>();
        var values = new double?[classes.SlotCount][];
        for (var s = 0; s < values.Length; s++) values[s] = new double?[points];
        for (var p = 0; p < points; p++)
        {
            var (before, after) = (samples[p], samples[p + 1]);
            t[p] = after.At.ToUnixTimeSeconds();
            var seconds = (after.At - before.At).TotalSeconds;
            var comparable = before.Generation == after.Generation && before.Classes.Equals(classes) && after.Classes.Equals(classes) && seconds > 0;
            for (var s = 0; s < values.Length; s++)
                values[s][p] = comparable ? after.Totals[s].Since(before.Totals[s]).Bytes / seconds : null;
        }
        for (var c = 0; c < classes.Count; c++)
            foreach (var direction in new[] { Direction.Down, Direction.Up })
                series.Add(new LiveSeries(classes.Classes[c].ToString(), direction.Label(), values[PortClassSet.Slot(c, direction)]));
        return new LiveView((long)Step.TotalSeconds, t, series);
    }
}
