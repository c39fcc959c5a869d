using System.Diagnostics;

namespace SiaExporter.Counters;

/// <summary>
/// The one door to the kernel counters for metrics, SQLite and the live log: reads the maps
/// once and hands the same snapshot to every caller that asks within <see cref="MaxAge"/>, so
/// overlapping scrapes and a flush landing together cost one batch read, not three.
/// Thread-safe.
/// </summary>
public sealed class SnapshotSource
{
    private readonly ICounterSource _counters;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private CounterSnapshot? _last;
    private long _lastReadTimestamp;

    public SnapshotSource(ICounterSource counters, TimeProvider time, TimeSpan? maxAge = null)
    {
        _counters = counters;
        _time = time;
        MaxAge = maxAge ?? TimeSpan.FromMilliseconds(500);
    }

    public TimeSpan MaxAge { get; }

    /// <summary>How long the last map read took.</summary>
    public TimeSpan LastReadDuration { get; private set; }

    /// <summary>Map reads done so far (each one a batch read of every map).</summary>
    public long Reads { get; private set; }

    /// <summary>A snapshot no older than <see cref="MaxAge"/>.</summary>
    public CounterSnapshot Current() => Get(fresh: false);

    /// <summary>A snapshot read now (used where the moment matters: a flush on the minute, shutdown).</summary>
    public CounterSnapshot Fresh() => Get(fresh: true);

    private CounterSnapshot Get(bool fresh)
    {
        lock (_gate)
        {
            if (!fresh && _last is not null && _time.GetElapsedTime(_lastReadTimestamp) < MaxAge)
                return _last;
            var started = Stopwatch.GetTimestamp();
            var snapshot = _counters.Read();
            LastReadDuration = Stopwatch.GetElapsedTime(started);
            Reads++;
            _last = snapshot;
            _lastReadTimestamp = _time.GetTimestamp();
            return snapshot;
        }
    }

    /// <summary>Evicts clients through the same door, so no read overlaps a delete.</summary>
    public IReadOnlyList<EvictedClient> Evict(IReadOnlyCollection<ClientAddress> clients)
    {
        lock (_gate)
        {
            _last = null;
            return _counters.Evict(clients);
        }
    }
}
