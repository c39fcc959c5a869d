namespace SiaExporter.Counters;

/// <summary>What an eviction pass did.</summary>
/// <param name="Evicted">Clients removed from the kernel map.</param>
/// <param name="Committed">Their final deltas and baseline removal are stored.</param>
/// <param name="Skipped">Why nothing was evicted (the history is not written up to date), else null.</param>
public sealed record EvictionResult(int Evicted, bool Committed, string? Skipped);

/// <summary>
/// Where the final values of evicted clients go (the SQLite history). It runs the eviction itself,
/// under its own lock, only when it is written up to date, and stores the final values in the
/// same step: no flush can come between the kernel delete and the accounting of what it removed.
/// </summary>
public interface IFinalValuesSink
{
    /// <summary>Runs <paramref name="evict"/> if the sink can take its result now, and stores it.</summary>
    Task<EvictionResult> TakeEvictedAsync(Func<IReadOnlyList<EvictedClient>> evict, CancellationToken cancellationToken = default);
}

/// <summary>
/// The one owner of a client's life in the kernel map: it watches the flushed snapshots (when each
/// client's counters last moved) and decides which clients are idle for longer than the idle
/// timeout; those are deleted from the kernel map through <c>evict</c>, the daemon's only write
/// back into the kernel (<see cref="SnapshotSource.Evict"/>: a lookup-and-delete that returns
/// each client's final values), and only through <see cref="IFinalValuesSink"/>, which accounts
/// for those final values in the same step. Not thread-safe: the flush loop calls it.
/// </summary>
public sealed class ClientLifecycle
{
    private readonly Func<IReadOnlyCollection<ClientAddress>, IReadOnlyList<EvictedClient>> _evict;
    private readonly TimeProvider _time;
    private readonly ClientActivity _activity = new();
    private readonly long _origin;

    /// <param name="evict">The kernel eviction: <see cref="SnapshotSource.Evict"/> (or <see cref="ICounterSource.Evict"/>).</param>
    /// <param name="idleTimeout">A client whose counters have not moved for this long is evicted.</param>
    /// <param name="time">The clock the idle time is measured on: its monotonic side (GetTimestamp), so a
    /// step of the wall clock (forward 2 h) does not make every client idle.</param>
    public ClientLifecycle(Func<IReadOnlyCollection<ClientAddress>, IReadOnlyList<EvictedClient>> evict, TimeSpan idleTimeout, TimeProvider time)
    {
        _evict = evict;
        IdleTimeout = idleTimeout;
        _time = time;
        _origin = time.GetTimestamp();
    }

    public TimeSpan IdleTimeout { get; }

    /// <summary>Clients known from the observed snapshots.</summary>
    public int Count => _activity.Count;

    /// <summary>Records a snapshot the history has been given; clients gone from it are forgotten.</summary>
    public void Observe(CounterSnapshot snapshot) => _activity.Observe(snapshot, Monotonic());

    /// <summary>Clients whose counters have not moved for longer than the idle timeout, now.</summary>
    public IReadOnlyList<ClientAddress> Idle() => _activity.IdleSince(Monotonic() - IdleTimeout);

    /// <summary>Elapsed monotonic time since this lifecycle started, on a DateTimeOffset scale.</summary>
    private DateTimeOffset Monotonic() => DateTimeOffset.UnixEpoch + _time.GetElapsedTime(_origin);

    /// <summary>
    /// Evicts the idle clients from the kernel map, handing their final values to
    /// <paramref name="sink"/>; nothing is evicted when the sink cannot take them now.
    /// </summary>
    public Task<EvictionResult> EvictIdleAsync(IFinalValuesSink sink, CancellationToken cancellationToken = default) =>
        sink.TakeEvictedAsync(() =>
        {
            var idle = Idle();
            if (idle.Count == 0) return [];
            var evicted = _evict(idle);
            foreach (var e in evicted) _activity.Forget(e.Client);
            return evicted;
        }, cancellationToken);
}
