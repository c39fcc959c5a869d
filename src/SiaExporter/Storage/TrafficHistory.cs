using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using SiaExporter.Counters;

namespace SiaExporter.Storage;

/// <summary>What one flush (or eviction write) did.</summary>
/// <param name="Committed">The transaction committed: every delta held so far is in the database.</param>
/// <param name="Bucket">The bucket this call's delta was attributed to (start, Unix seconds).</param>
/// <param name="ClientsChanged">Clients (with <c>overflow</c>) whose counters moved in this call.</param>
/// <param name="PendingBuckets">Buckets still held in memory after the call (0 when committed).</param>
/// <param name="Duration">Time spent, retries included.</param>
/// <param name="Error">The last error when not committed.</param>
public sealed record FlushResult(bool Committed, long Bucket, int ClientsChanged, int PendingBuckets, TimeSpan Duration, Exception? Error);

/// <summary>
/// The SQLite history writer: turns monotonic counter snapshots into per-bucket deltas, exactly once.
/// <para>
/// The counter values already accounted for (the baseline, kept by <see cref="HistoryLedger"/>)
/// are stored in the same transaction as the deltas (<see cref="HistoryStore"/>), so a crash
/// between flushes loses nothing and counts nothing twice. When a write fails (locked, read-only,
/// disk full, file deleted), it is retried with backoff; after that the deltas stay in memory,
/// per bucket, and go out with the next successful write. While failing, the stored baseline
/// stays old, so even a crash then loses nothing: the next run's first delta covers the gap and
/// lands in that read's bucket.
/// </para>
/// <para>
/// Bucket of a delta: the caller says which instant the delta belongs to (the flush service
/// passes the instant just before the minute boundary it woke for; a plain
/// <see cref="FlushAsync(CounterSnapshot, CancellationToken)"/> uses the snapshot time). A delta
/// that spans a downtime of the daemon (or of the database) lands whole in that one bucket.
/// </para>
/// Calls are serialized; any thread may call. Reading the history: <see cref="HistoryReader"/>.
/// </summary>
public sealed class TrafficHistory : IFinalValuesSink, IDisposable
{
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ResiliencePipeline _pipeline;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HistoryLedger _ledger;
    private readonly HistoryStore _store;
    private readonly HeldDeltaSpill _spill;
    private readonly int _heldInMemory;
    private bool _loaded;

    private TrafficHistory(string path, PortClassSet ports, ILogger logger, TimeProvider time, HistoryOptions options, Web.ClientPrefix anonymize)
    {
        _logger = logger;
        _time = time;
        _ledger = new HistoryLedger(ports, anonymize);
        _store = new HistoryStore(System.IO.Path.GetFullPath(path), ports, options, logger);
        _spill = new HeldDeltaSpill(_store.Path, ports.SlotCount);
        _heldInMemory = Math.Max(1, options.HeldBucketsInMemory);
        try
        {
            if (_spill.DiscardStale())
                logger.LogWarning("SQLite history: deleted {Spill} left by an earlier run (its deltas are counted again from the stored baseline)", _spill.Path);
        }
        catch (IOException e)
        {
            logger.LogWarning("SQLite history: cannot delete {Spill}: {Error}", _spill.Path, e.Message);
        }

        // Backoff waits are real time on purpose: bucket arithmetic follows the injected clock
        // (tests move it by hand), a retry delay must simply pass.
        var builder = new ResiliencePipelineBuilder { TimeProvider = TimeProvider.System };
        if (options.RetryAttempts > 0)
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<SqliteException>().Handle<IOException>().Handle<UnauthorizedAccessException>(),
                MaxRetryAttempts = options.RetryAttempts,
                Delay = options.RetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                OnRetry = args =>
                {
                    _logger.LogDebug("SQLite write attempt {Attempt} failed: {Error}", args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                    return ValueTask.CompletedTask;
                },
            });
        _pipeline = builder.Build();
    }

    /// <summary>
    /// Opens (creating the directory, the file, the schema and WAL mode) and loads the stored
    /// baseline. Never throws for an unusable database: the failure is logged and every flush
    /// tries again (no delta is computed before the stored baseline is known).
    /// </summary>
    /// <param name="anonymize">The ANONYMIZE mode of the snapshots this history is given; the stored
    /// baseline says which mode it was keyed by, and a change is converted (<see cref="HistoryLedger"/>).</param>
    public static TrafficHistory Open(string path, PortClassSet ports, ILogger logger, TimeProvider time, HistoryOptions? options = null,
        Web.ClientPrefix? anonymize = null)
    {
        var history = new TrafficHistory(path, ports, logger, time, options ?? HistoryOptions.Default, anonymize ?? Web.ClientPrefix.None);
        try
        {
            history.EnsureOpen();
        }
        catch (Exception e) when (IsStorageError(e))
        {
            history._store.Close();
            history.NoteFailure(e);
        }
        return history;
    }

    public string Path => _store.Path;

    public PortClassSet Ports => _ledger.Ports;

    /// <summary>When a write last committed (for sia_exporter_sqlite_last_success_timestamp_seconds).</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>Flushes (and eviction writes) that failed after every retry.</summary>
    public long FailureCount { get; private set; }

    /// <summary>The last write failed; deltas are held in memory.</summary>
    public bool IsFailing { get; private set; }

    /// <summary>Buckets held in memory or in the spill file, waiting for the database.</summary>
    public int PendingBuckets => _ledger.PendingBuckets + _spill.Buckets;

    /// <summary>Bytes of held deltas spilled beside the database.</summary>
    public long SpilledBytes => _spill.Bytes;

    /// <summary>Clients with a baseline (known to the history).</summary>
    public int TrackedClients => _ledger.TrackedClients;

    /// <summary>Test hook: called before a write touches the file; throw to play an unwritable database.</summary>
    internal Action? BeforeWrite { get; set; }

    /// <summary>Test hook: called inside the transaction, just before commit; throw to fail it.</summary>
    internal Action? BeforeCommit { get; set; }

    /// <summary>Adds the growth since the last flush to the bucket of <paramref name="snapshot"/>'s time.</summary>
    public Task<FlushResult> FlushAsync(CounterSnapshot snapshot, CancellationToken cancellationToken = default) =>
        FlushAsync(snapshot, snapshot.TakenAt, cancellationToken);

    /// <summary>Adds the growth since the last flush to the bucket holding <paramref name="countedAt"/>,
    /// in one transaction with everything still held from failed flushes.</summary>
    public async Task<FlushResult> FlushAsync(CounterSnapshot snapshot, DateTimeOffset countedAt, CancellationToken cancellationToken = default)
    {
        if (!snapshot.Classes.Equals(Ports))
            throw new ArgumentException($"snapshot classes {snapshot.Classes} differ from the history's {Ports}", nameof(snapshot));
        var bucket = Buckets.Of(countedAt);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var started = Stopwatch.GetTimestamp();
            if (!_loaded)
            {
                // The stored baseline must be known before any delta: without it every counter
                // would count again from zero.
                var opened = await TryAsync(EnsureOpen, cancellationToken).ConfigureAwait(false);
                if (opened is not null)
                    {
                SpillHeld();
                return new FlushResult(false, bucket, 0, PendingBuckets, Stopwatch.GetElapsedTime(started), opened);
            }
            }
            if (_ledger.Generation is { } old && old != snapshot.Generation)
                _logger.LogInformation("Counter maps changed ({Old} → {New}): counting from zero", old, snapshot.Generation);
            var changed = _ledger.Accumulate(snapshot, bucket);
            if (_ledger.TakeModeChange() is { } modeChange) _logger.LogWarning("SQLite history: {Change}", modeChange);
            var error = await TryAsync(Write, cancellationToken).ConfigureAwait(false);
            if (error is not null) SpillHeld();
            return new FlushResult(error is null, bucket, changed, PendingBuckets, Stopwatch.GetElapsedTime(started), error);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="evict"/> (the kernel eviction of <see cref="ClientLifecycle"/>) only
    /// when the history is healthy (the last write committed, nothing held), so the map is never
    /// emptied while the database is away. The evicted clients' final values minus the baseline
    /// (traffic counted since the last flush) become a delta of the bucket of now, and their
    /// baseline rows are dropped, in one transaction written right away (held in memory like any
    /// delta if that fails). No flush can run between the kernel delete and this accounting.
    /// </summary>
    public async Task<EvictionResult> TakeEvictedAsync(Func<IReadOnlyList<EvictedClient>> evict, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_loaded || IsFailing || _ledger.PendingBuckets > 0)
                return new EvictionResult(0, false, "the history is not written up to date");
            var evicted = evict();
            if (evicted.Count == 0) return new EvictionResult(0, true, null);
            _ledger.AddEvicted(evicted, Buckets.Of(_time.GetUtcNow()));
            var error = await TryAsync(Write, cancellationToken).ConfigureAwait(false);
            return new EvictionResult(evicted.Count, error is null, null);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Deletes rows older than <paramref name="retentionDays"/> days from every tier alike.</summary>
    public Task<RetentionResult> DeleteExpiredAsync(int retentionDays, int batchRows = 1000, TimeSpan? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retentionDays, 1);
        var days = new Hosting.DatabaseOptions { RetentionDays = retentionDays, HourlyRetentionDays = retentionDays, RawRetentionDays = retentionDays };
        return DeleteExpiredAsync(HistoryTiers.From(days), _time.GetUtcNow(), batchRows, budget, cancellationToken);
    }

    /// <summary>
    /// Deletes, per tier, rows of buckets older than the tier's retention back from <paramref name="now"/>
    /// (the flush service passes a time that a forward step of the wall clock cannot push ahead), at most
    /// <paramref name="batchRows"/> rows per statement, each batch its own short transaction,
    /// releasing the writer between batches so a flush waits for one batch at most. Stops after
    /// <paramref name="budget"/> (the rest goes next time). Errors are logged, not thrown.
    /// </summary>
    public async Task<RetentionResult> DeleteExpiredAsync(IReadOnlyList<HistoryTier> tiers, DateTimeOffset now, int batchRows = 1000, TimeSpan? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchRows, 1);
        var started = _time.GetTimestamp();
        long deleted = 0;
        foreach (var tier in tiers)
        {
            var cutoff = tier.Cutoff(now);
            foreach (var table in HistoryRetention.TablesOf(tier))
            {
                while (true)
                {
                    if (budget is { } b && _time.GetElapsedTime(started) > b) return new RetentionResult(deleted, false);
                    await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                    int rows;
                    try
                    {
                        if (!_loaded || IsFailing) return new RetentionResult(deleted, false);
                        EnsureOpen();
                        rows = _store.DeleteExpired(table, cutoff, batchRows);
                    }
                    catch (Exception e) when (IsStorageError(e))
                    {
                        _logger.LogWarning("SQLite retention stopped: {Error}", e.Message);
                        _store.Close();
                        return new RetentionResult(deleted, false);
                    }
                    finally
                    {
                        _gate.Release();
                    }
                    deleted += rows;
                    if (rows < batchRows) break;
                    await Task.Yield();
                }
            }
        }
        if (deleted > 0)
            _logger.LogInformation("SQLite retention: deleted {Rows} rows ({Tiers})", deleted,
                string.Join(", ", tiers.Select(t => $"{t.Label} rows older than {t.RetentionDays} days")));
        return new RetentionResult(deleted, true);
    }

    /// <summary>The host's bytes up and down, every class, in the UTC days of [<paramref name="from"/>,
    /// <paramref name="until"/>) (from the daily host tier, which holds today too); null when the
    /// database cannot be read now.</summary>
    public async Task<(ulong Up, ulong Down)?> HostBytesAsync(DateTimeOffset from, DateTimeOffset until, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_loaded || IsFailing) return null;
            return _store.HostBytes(from.ToUnixTimeSeconds(), until.ToUnixTimeSeconds());
        }
        catch (Exception e) when (IsStorageError(e))
        {
            _logger.LogDebug("SQLite billing read failed: {Error}", e.Message);
            return null;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Copies the write-ahead log back into the database (PASSIVE: never waits for readers).
    /// Call it after a flush, outside its latency: SQLite's own automatic checkpoint is pushed
    /// out to <see cref="HistoryStore.AutoCheckpointPages"/> pages so that it does not land inside a flush.
    /// </summary>
    public async Task CheckpointAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _store.Checkpoint();
        }
        catch (Exception e) when (IsStorageError(e))
        {
            _logger.LogDebug("SQLite checkpoint failed: {Error}", e.Message);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _gate.Wait();
        try
        {
            _store.Close();
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Exception?> TryAsync(Action action, CancellationToken cancellationToken)
    {
        try
        {
            await _pipeline.ExecuteAsync(static (a, _) =>
            {
                a();
                return ValueTask.CompletedTask;
            }, action, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (IsStorageError(e))
        {
            NoteFailure(e);
            return e;
        }
    }

    private void NoteFailure(Exception e)
    {
        FailureCount++;
        if (IsFailing) return;
        IsFailing = true;
        _logger.LogError("SQLite history at {Path} cannot be written ({Error}); holding the counts in memory and retrying every flush; check that the folder exists, is writable and the disk is not full (SQLITE_PATH)", Path, e.Message);
    }

    private static bool IsStorageError(Exception e) =>
        e is SqliteException or IOException or UnauthorizedAccessException or StorageException;

    /// <summary>Opens the connection when needed (reopening a deleted or replaced file, which
    /// gets a fresh schema and the whole baseline), and loads the stored baseline once.</summary>
    private void EnsureOpen()
    {
        if (_store.FileReplaced)
        {
            _logger.LogWarning("SQLite history file {Path} was deleted or replaced; recreating it", Path);
            _store.Close();
            _ledger.RewriteWholeBaseline();
        }
        if (_store.IsOpen) return;
        _store.EnsureOpen();
        if (_loaded) return;
        string? generation;
        try
        {
            (generation, var ports, var anonymize) = _store.ReadState();
            var unreadable = _ledger.Restore(generation, ports, _store.ReadBaseline, anonymize);
            if (unreadable.Count > 0)
                _logger.LogError("SQLite history {Path}: {Count} counter_baseline rows cannot be read (corrupt or hand-edited: {Keys}); " +
                    "their next counter values become the baseline, so those clients lose at most what they counted since the last flush and nothing is counted twice",
                    Path, unreadable.Count, string.Join(", ", unreadable.Take(5)) + (unreadable.Count > 5 ? ", …" : ""));
        }
        catch
        {
            _store.Close();
            throw;
        }
        _loaded = true;
        _logger.LogInformation("SQLite history {Path}: baseline of {Clients} clients loaded (maps {Generation})", Path, _ledger.TrackedClients, generation ?? "none");
    }

    /// <summary>While the database cannot be written, all but the newest pending buckets leave memory
    /// for the spill file beside it. When that cannot be written either (the disk is full), they stay in memory.</summary>
    private void SpillHeld()
    {
        if (_ledger.PendingBuckets <= _heldInMemory) return;
        var spilledBefore = _spill.Buckets;
        var taken = _ledger.TakeOldestPending(_heldInMemory).ToList();
        for (var i = 0; i < taken.Count; i++)
        {
            try
            {
                _spill.Append(taken[i].Key, taken[i].Value);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                for (var j = i; j < taken.Count; j++) _ledger.PutBack(taken[j].Key, taken[j].Value); // nothing lost
                _logger.LogWarning("SQLite history: cannot spill held deltas to {Spill} ({Error}); keeping them in memory", _spill.Path, e.Message);
                return;
            }
        }
        if (spilledBefore == 0 && _spill.Buckets > 0)
            _logger.LogWarning("SQLite history: holding deltas in {Spill} until the database can be written ({Buckets} buckets in memory at most)", _spill.Path, _heldInMemory);
    }

    /// <summary>One transaction: every spilled and pending bucket, the baseline changes, commit.</summary>
    private void Write()
    {
        BeforeWrite?.Invoke();
        EnsureOpen();
        _store.Write(_ledger, BeforeCommit, _spill.Buckets > 0 ? _spill.Read() : null);
        var heldBuckets = _ledger.HeldBuckets + _spill.Buckets;
        _ledger.Committed();
        _spill.Committed();
        LastSuccess = _time.GetUtcNow();
        if (IsFailing)
        {
            IsFailing = false;
            _logger.LogWarning("SQLite history at {Path} is writable again; wrote {Buckets} buckets held in memory", Path, heldBuckets);
        }
    }
}
