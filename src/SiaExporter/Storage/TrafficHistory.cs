using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using SQLitePCL;
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

/// <summary>What an eviction pass did.</summary>
/// <param name="Evicted">Clients removed from the kernel map.</param>
/// <param name="Committed">Their final deltas and baseline removal are in the database.</param>
/// <param name="Skipped">Why nothing was evicted (history failing or not loaded), else null.</param>
public sealed record EvictionResult(int Evicted, bool Committed, string? Skipped);

/// <summary>What a retention pass did.</summary>
/// <param name="RowsDeleted">Rows deleted over every history table.</param>
/// <param name="Complete">Nothing older than the cut-off is left (false: budget ran out or an error).</param>
public sealed record RetentionResult(long RowsDeleted, bool Complete);

/// <summary>
/// The SQLite history: turns monotonic counter snapshots into per-bucket deltas, exactly once.
/// <para>
/// The counter values already accounted for (the baseline) are stored in the same transaction
/// as the deltas, so a crash between flushes loses nothing and counts nothing twice. When a
/// write fails (locked, read-only, disk full, file deleted), it is retried with backoff; after
/// that the deltas stay in memory, per bucket, and go out with the next successful write. While
/// failing, the stored baseline stays old, so even a crash then loses nothing: the next run's
/// first delta covers the gap and lands in that read's bucket.
/// </para>
/// <para>
/// Bucket of a delta: the caller says which instant the delta belongs to (the flush service
/// passes the instant just before the minute boundary it woke for; a plain
/// <see cref="FlushAsync(CounterSnapshot, CancellationToken)"/> uses the snapshot time). A delta
/// that spans a downtime of the daemon (or of the database) lands whole in that one bucket.
/// </para>
/// Calls are serialized; any thread may call.
/// </summary>
public sealed class TrafficHistory : IDisposable
{
    private static readonly Traffic[] NoSlots = [];

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly HistoryOptions _options;
    private readonly ResiliencePipeline _pipeline;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly int _slotCount;
    private readonly int[] _seedSlot;               // traffic column i ← slot, or -1
    private readonly (long Port, string Proto, int Up, int Down)[] _classes;

    // The database side.
    private SqliteConnection? _connection;
    private Statements? _statements;
    private FileIdentity? _fileIdentity;
    private bool _loaded;

    // Counter values accounted for (written, or held in _pending), per client.
    private readonly Dictionary<ClientAddress, ClientState> _clients = new();
    private Traffic[] _overflowBase;
    private Traffic[] _totalsBase;
    private MapGeneration? _generation;
    private int _epoch;

    // Not yet in the database.
    private readonly SortedDictionary<long, PendingBucket> _pending = new();
    private readonly HashSet<ClientAddress> _baselineDirty = new();
    private readonly HashSet<string> _baselineDeleted = new(StringComparer.Ordinal);
    private bool _aggregatesDirty;
    private bool _rewriteBaseline;

    private TrafficHistory(string path, PortClassSet ports, ILogger logger, TimeProvider time, HistoryOptions options)
    {
        _path = System.IO.Path.GetFullPath(path);
        Ports = ports;
        _logger = logger;
        _time = time;
        _options = options;
        _slotCount = ports.SlotCount;
        _overflowBase = new Traffic[_slotCount];
        _totalsBase = new Traffic[_slotCount];
        _seedSlot = HistorySchema.SeedColumns
            .Select(c => ports.IndexOf(c.Class) is var i and >= 0 ? PortClassSet.Slot(i, c.Direction) : -1)
            .ToArray();
        _classes = ports.Classes
            .Select((c, i) => ((long)c.Port, c.ProtocolLabel, PortClassSet.Slot(i, Direction.Up), PortClassSet.Slot(i, Direction.Down)))
            .ToArray();

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
    public static TrafficHistory Open(string path, PortClassSet ports, ILogger logger, TimeProvider time, HistoryOptions? options = null)
    {
        var history = new TrafficHistory(path, ports, logger, time, options ?? HistoryOptions.Default);
        try
        {
            history.EnsureOpen();
        }
        catch (Exception e) when (IsStorageError(e))
        {
            history.CloseConnection();
            history.NoteFailure(e);
        }
        return history;
    }

    public string Path => _path;

    public PortClassSet Ports { get; }

    /// <summary>When a write last committed (for sia_exporter_sqlite_last_success_timestamp_seconds).</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>Flushes (and eviction writes) that failed after every retry.</summary>
    public long FailureCount { get; private set; }

    /// <summary>The last write failed; deltas are held in memory.</summary>
    public bool IsFailing { get; private set; }

    /// <summary>Buckets held in memory, waiting for the database.</summary>
    public int PendingBuckets => _pending.Count;

    /// <summary>Clients with a baseline (known to the history).</summary>
    public int TrackedClients => _clients.Count;

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
                    return new FlushResult(false, bucket, 0, _pending.Count, Stopwatch.GetElapsedTime(started), opened);
            }
            var changed = Accumulate(snapshot, bucket);
            var error = await TryAsync(Write, cancellationToken).ConfigureAwait(false);
            return new FlushResult(error is null, bucket, changed, _pending.Count, Stopwatch.GetElapsedTime(started), error);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>See <see cref="RunEvictionAsync(Func{IReadOnlyCollection{ClientAddress}, IReadOnlyList{EvictedClient}}, ClientActivity, TimeSpan, CancellationToken)"/>.</summary>
    public Task<EvictionResult> RunEvictionAsync(ICounterSource source, ClientActivity activity, TimeSpan idleTimeout, CancellationToken cancellationToken = default) =>
        RunEvictionAsync(source.Evict, activity, idleTimeout, cancellationToken);

    /// <summary>
    /// Removes clients idle for longer than <paramref name="idleTimeout"/> from the kernel map
    /// (<paramref name="evict"/>: <c>ICounterSource.Evict</c> or <c>SnapshotSource.Evict</c>). Their
    /// final values minus the baseline (traffic counted since the last flush) become a delta of
    /// the bucket of now, and their baseline rows are dropped, in one transaction written right
    /// away (held in memory like any delta if that fails). Runs only when the history is healthy
    /// (the last write committed), so the map is never emptied while the database is away.
    /// </summary>
    public async Task<EvictionResult> RunEvictionAsync(
        Func<IReadOnlyCollection<ClientAddress>, IReadOnlyList<EvictedClient>> evict,
        ClientActivity activity,
        TimeSpan idleTimeout,
        CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_loaded || IsFailing || _pending.Count > 0)
                return new EvictionResult(0, false, "the history is not written up to date");
            var now = _time.GetUtcNow();
            var idle = activity.IdleSince(now - idleTimeout);
            if (idle.Count == 0) return new EvictionResult(0, true, null);
            var evicted = evict(idle);
            if (evicted.Count == 0) return new EvictionResult(0, true, null);
            var pending = PendingFor(Buckets.Of(now));
            foreach (var e in evicted)
            {
                activity.Forget(e.Client);
                if (e.FinalSlots.Length != _slotCount) continue;
                var ip = e.Client.ToString();
                Traffic[] baseline = NoSlots;
                if (_clients.Remove(e.Client, out var state))
                {
                    ip = state.Ip;
                    baseline = state.Base;
                    _baselineDirty.Remove(e.Client);
                    _baselineDeleted.Add(ip);
                }
                Traffic[]? delta = null;
                for (var s = 0; s < _slotCount; s++)
                {
                    var d = e.FinalSlots[s].Since(baseline.Length > 0 ? baseline[s] : Traffic.Zero);
                    if (d.IsZero) continue;
                    delta ??= pending.Client(ip, _slotCount);
                    delta[s] += d;
                }
            }
            var error = await TryAsync(Write, cancellationToken).ConfigureAwait(false);
            return new EvictionResult(evicted.Count, error is null, null);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Deletes rows of buckets older than <paramref name="retentionDays"/> days, at most
    /// <paramref name="batchRows"/> rows per statement, each batch its own short transaction,
    /// releasing the writer between batches so a flush waits for one batch at most. Stops after
    /// <paramref name="budget"/> (the rest goes next time). Errors are logged, not thrown.
    /// </summary>
    public async Task<RetentionResult> DeleteExpiredAsync(int retentionDays, int batchRows = 1000, TimeSpan? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retentionDays, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchRows, 1);
        var cutoff = Buckets.Of(_time.GetUtcNow() - TimeSpan.FromDays(retentionDays));
        var started = _time.GetTimestamp();
        long deleted = 0;
        string[] batches =
        [
            "DELETE FROM traffic WHERE rowid IN (SELECT rowid FROM traffic WHERE timestamp < $cut LIMIT $n)",
            "DELETE FROM traffic_detail WHERE (bucket, client_ip, port, proto) IN (SELECT bucket, client_ip, port, proto FROM traffic_detail WHERE bucket < $cut LIMIT $n)",
            "DELETE FROM traffic_host WHERE (bucket, port, proto) IN (SELECT bucket, port, proto FROM traffic_host WHERE bucket < $cut LIMIT $n)",
        ];
        foreach (var sql in batches)
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
                    using var tx = _connection!.BeginTransaction();
                    using var cmd = _connection.CreateCommand();
                    cmd.Transaction = tx;
                    cmd.CommandText = sql;
                    cmd.Parameters.AddWithValue("$cut", cutoff);
                    cmd.Parameters.AddWithValue("$n", batchRows);
                    rows = cmd.ExecuteNonQuery();
                    tx.Commit();
                }
                catch (Exception e) when (IsStorageError(e))
                {
                    _logger.LogWarning("SQLite retention stopped: {Error}", e.Message);
                    CloseConnection();
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
        if (deleted > 0) _logger.LogInformation("SQLite retention: deleted {Rows} rows older than {Days} days", deleted, retentionDays);
        return new RetentionResult(deleted, true);
    }

    public void Dispose()
    {
        _gate.Wait();
        try
        {
            CloseConnection();
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---- deltas --------------------------------------------------------------------------

    private int Accumulate(CounterSnapshot snapshot, long bucket)
    {
        if (_generation != snapshot.Generation)
        {
            if (_generation is { } old)
                _logger.LogInformation("Counter maps changed ({Old} → {New}): counting from zero", old, snapshot.Generation);
            _clients.Clear();
            _baselineDirty.Clear();
            _baselineDeleted.Clear();
            _overflowBase = new Traffic[_slotCount];
            _totalsBase = new Traffic[_slotCount];
            _generation = snapshot.Generation;
            _rewriteBaseline = true;
        }
        var epoch = ++_epoch;
        var pending = PendingFor(bucket);
        var changed = 0;
        var clients = snapshot.Clients;
        for (var i = 0; i < clients.Length; i++)
        {
            var slots = snapshot.SlotsOf(i);
            if (!_clients.TryGetValue(clients[i], out var state))
            {
                state = new ClientState(clients[i].ToString(), new Traffic[_slotCount]);
                _clients.Add(clients[i], state);
            }
            state.Seen = epoch;
            if (AddDelta(slots, state.Base, pending, state.Ip))
            {
                _baselineDirty.Add(clients[i]);
                changed++;
            }
        }
        // A client absent from a complete snapshot has no kernel entry any more: should it
        // come back, it starts from zero, so its baseline goes.
        if (_clients.Count > clients.Length)
            foreach (var (client, state) in _clients.Where(kv => kv.Value.Seen != epoch).ToList())
            {
                _clients.Remove(client);
                _baselineDirty.Remove(client);
                _baselineDeleted.Add(state.Ip);
            }
        if (AddDelta(snapshot.Overflow, _overflowBase, pending, HistorySchema.OverflowClient))
        {
            _aggregatesDirty = true;
            changed++;
        }
        for (var s = 0; s < _slotCount; s++)
        {
            var current = snapshot.Totals[s];
            if (current == _totalsBase[s]) continue;
            pending.Host[s] += current.Since(_totalsBase[s]);
            _totalsBase[s] = current;
            _aggregatesDirty = true;
        }
        return changed;
    }

    /// <summary>Adds current − baseline to the pending row of <paramref name="ip"/> and moves the
    /// baseline; true when the baseline moved.</summary>
    private bool AddDelta(ReadOnlySpan<Traffic> current, Traffic[] baseline, PendingBucket pending, string ip)
    {
        var moved = false;
        Traffic[]? row = null;
        for (var s = 0; s < current.Length; s++)
        {
            if (current[s] == baseline[s]) continue;
            var delta = current[s].Since(baseline[s]);
            baseline[s] = current[s];
            moved = true;
            if (delta.IsZero) continue;
            row ??= pending.Client(ip, _slotCount);
            row[s] += delta;
        }
        return moved;
    }

    private PendingBucket PendingFor(long bucket)
    {
        if (!_pending.TryGetValue(bucket, out var pending))
            _pending[bucket] = pending = new PendingBucket(_slotCount);
        return pending;
    }

    // ---- database ------------------------------------------------------------------------

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
        _logger.LogError("SQLite history at {Path} cannot be written ({Error}); holding the counts in memory and retrying every flush; check that the folder exists, is writable and the disk is not full (SQLITE_PATH)", _path, e.Message);
    }

    private static bool IsStorageError(Exception e) =>
        e is SqliteException or IOException or UnauthorizedAccessException;

    /// <summary>Opens the connection when needed (reopening a deleted or replaced file, which
    /// gets a fresh schema and the whole baseline), and loads the stored baseline once.</summary>
    private void EnsureOpen()
    {
        if (_connection is not null && FileIdentity.Of(_path) != _fileIdentity)
        {
            _logger.LogWarning("SQLite history file {Path} was deleted or replaced; recreating it", _path);
            CloseConnection();
            _rewriteBaseline = true;
        }
        if (_connection is not null) return;
        try
        {
            var directory = System.IO.Path.GetDirectoryName(_path);
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            var connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = _path,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Pooling = false,
                DefaultTimeout = (int)Math.Ceiling(_options.BusyTimeout.TotalSeconds),
            }.ToString());
            _connection = connection;
            connection.Open();
            HistorySchema.Exec(connection, null, $"""
                PRAGMA busy_timeout = {(long)_options.BusyTimeout.TotalMilliseconds};
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = NORMAL;
                PRAGMA cache_size = -8192;
                PRAGMA wal_autocheckpoint = {AutoCheckpointPages};
                """);
            HistorySchema.Ensure(connection, _logger);
            _fileIdentity = FileIdentity.Of(_path);
            if (!_loaded) LoadBaseline(connection);
            _statements = new Statements(connection);
        }
        catch
        {
            CloseConnection();
            throw;
        }
    }

    private void LoadBaseline(SqliteConnection connection)
    {
        string? generation = null, ports = null;
        using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = "SELECT key, value FROM collector_state WHERE key IN ('generation', 'ports')";
            using var r = cmd.ExecuteReader();
            while (r.Read())
                if (r.GetString(0) == "generation") generation = r.GetString(1);
                else ports = r.GetString(1);
        }
        _generation = null;
        MapGeneration? stored = null;
        try
        {
            if (!string.IsNullOrEmpty(generation) && ports == Ports.ToString()) stored = MapGeneration.Parse(generation);
        }
        catch (FormatException)
        {
            // An unreadable state row: count from zero, as after a map change.
        }
        if (stored is not null)
        {
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT client, slots FROM counter_baseline";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                var key = r.GetString(0);
                var slots = Decode((byte[])r.GetValue(1));
                if (slots is null) continue;
                if (key == HistorySchema.OverflowClient) _overflowBase = slots;
                else if (key == HistorySchema.TotalsKey) _totalsBase = slots;
                else if (ClientAddress.TryParse(key, out var client)) _clients[client] = new ClientState(key, slots);
            }
            _generation = stored;
        }
        _loaded = true;
        _logger.LogInformation("SQLite history {Path}: baseline of {Clients} clients loaded (maps {Generation})", _path, _clients.Count, generation ?? "none");
    }

    /// <summary>One transaction: every pending bucket, the baseline changes, commit.</summary>
    private void Write()
    {
        EnsureOpen();
        var connection = _connection!;
        var st = _statements!;
        try
        {
            using var tx = connection.BeginTransaction();
            st.Reset();
            if (_rewriteBaseline)
            {
                HistorySchema.Exec(connection, tx, "DELETE FROM counter_baseline");
                foreach (var state in _clients.Values) st.UpsertBaseline(state.Ip, state.Base);
                st.UpsertBaseline(HistorySchema.OverflowClient, _overflowBase);
                st.UpsertBaseline(HistorySchema.TotalsKey, _totalsBase);
                st.SetState("generation", _generation?.ToString() ?? "");
                st.SetState("ports", Ports.ToString());
            }
            else
            {
                foreach (var ip in _baselineDeleted) st.DeleteBaseline(ip);
                // In key order: appends to the b-tree instead of random page writes.
                var dirty = new List<ClientState>(_baselineDirty.Count);
                foreach (var client in _baselineDirty)
                    if (_clients.TryGetValue(client, out var state)) dirty.Add(state);
                dirty.Sort(static (a, b) => string.CompareOrdinal(a.Ip, b.Ip));
                foreach (var state in dirty) st.UpsertBaseline(state.Ip, state.Base);
                if (_aggregatesDirty)
                {
                    st.UpsertBaseline(HistorySchema.OverflowClient, _overflowBase);
                    st.UpsertBaseline(HistorySchema.TotalsKey, _totalsBase);
                }
            }
            foreach (var (bucket, pending) in _pending)
            {
                var rows = pending.Clients.ToArray();
                Array.Sort(rows, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
                foreach (var (ip, delta) in rows)
                {
                    var seedBytes = false;
                    foreach (var s in _seedSlot)
                        if (s >= 0 && delta[s].Bytes != 0) seedBytes = true;
                    if (seedBytes) st.UpsertTraffic(bucket, ip, delta, _seedSlot);
                    foreach (var c in _classes)
                        if (!delta[c.Up].IsZero || !delta[c.Down].IsZero) st.UpsertDetail(bucket, ip, c.Port, c.Proto, delta[c.Up], delta[c.Down]);
                }
                foreach (var c in _classes)
                    if (!pending.Host[c.Up].IsZero || !pending.Host[c.Down].IsZero)
                        st.UpsertHost(bucket, c.Port, c.Proto, pending.Host[c.Up], pending.Host[c.Down]);
            }
            st.Complete();
            BeforeCommit?.Invoke();
            tx.Commit();
        }
        catch
        {
            // A broken handle (file gone, disk full, read-only) is reopened on the next attempt.
            CloseConnection();
            throw;
        }
        var heldBuckets = _pending.Values.Count(p => !p.IsEmpty); // a flush with no change opens an empty one
        _pending.Clear();
        _baselineDirty.Clear();
        _baselineDeleted.Clear();
        _aggregatesDirty = false;
        _rewriteBaseline = false;
        LastSuccess = _time.GetUtcNow();
        if (IsFailing)
        {
            IsFailing = false;
            _logger.LogWarning("SQLite history at {Path} is writable again; wrote {Buckets} buckets held in memory", _path, heldBuckets);
        }
    }

    /// <summary>
    /// Copies the write-ahead log back into the database (PASSIVE: never waits for readers).
    /// Call it after a flush, outside its latency: SQLite's own automatic checkpoint is pushed
    /// out to <see cref="AutoCheckpointPages"/> pages so that it does not land inside a flush.
    /// </summary>
    public async Task CheckpointAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connection is null) return;
            HistorySchema.Exec(_connection, null, "PRAGMA wal_checkpoint(PASSIVE)");
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

    /// <summary>Safety net for a caller that never checkpoints (about 160 MB of log).</summary>
    public const int AutoCheckpointPages = 40_000;

    private void CloseConnection()
    {
        _statements?.Dispose();
        _statements = null;
        _connection?.Dispose();
        _connection = null;
    }

    internal static byte[] Encode(Traffic[] slots)
    {
        var bytes = new byte[slots.Length * 16];
        for (var s = 0; s < slots.Length; s++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(s * 16), slots[s].Bytes);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(s * 16 + 8), slots[s].Packets);
        }
        return bytes;
    }

    private Traffic[]? Decode(byte[] bytes)
    {
        if (bytes.Length != _slotCount * 16) return null;
        var slots = new Traffic[_slotCount];
        for (var s = 0; s < _slotCount; s++)
            slots[s] = new Traffic(
                BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(s * 16)),
                BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(s * 16 + 8)));
        return slots;
    }

    private sealed class ClientState(string ip, Traffic[] baseline)
    {
        public string Ip { get; } = ip;
        public Traffic[] Base { get; } = baseline;
        public int Seen { get; set; }
    }

    private sealed class PendingBucket(int slotCount)
    {
        public Dictionary<string, Traffic[]> Clients { get; } = new(StringComparer.Ordinal);
        public Traffic[] Host { get; } = new Traffic[slotCount];

        public bool IsEmpty => Clients.Count == 0 && Array.TrueForAll(Host, t => t.IsZero);

        public Traffic[] Client(string ip, int slots)
        {
            if (!Clients.TryGetValue(ip, out var row)) Clients[ip] = row = new Traffic[slots];
            return row;
        }
    }

    /// <summary>The prepared statements, reused by every flush on one connection. Rows go out
    /// <see cref="RowsPerStatement"/> to a statement (multi-row upserts), bound by index through
    /// SQLitePCL: the driver's per-statement and per-parameter cost (parameters found by name),
    /// not SQLite's b-tree work, dominated a 100,000-client flush.</summary>
    private sealed class Statements : IDisposable
    {
        private const int RowsPerStatement = 32;
        private readonly Batch _traffic, _detail, _host, _baseline, _deleteBaseline, _state;

        public Statements(SqliteConnection c)
        {
            var seed = HistorySchema.SeedColumns.Select(s => s.Column).ToArray();
            _traffic = new Batch(c, $"INSERT INTO traffic (client_ip, {string.Join(", ", seed)}, timestamp) VALUES", seed.Length + 2,
                $"ON CONFLICT (timestamp, client_ip) DO UPDATE SET {string.Join(", ", seed.Select(n => $"{n} = coalesce({n}, 0) + excluded.{n}"))}",
                RowsPerStatement);
            _detail = new Batch(c, "INSERT INTO traffic_detail (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets) VALUES", 8,
                """
                ON CONFLICT DO UPDATE SET up_bytes = up_bytes + excluded.up_bytes, down_bytes = down_bytes + excluded.down_bytes,
                    up_packets = up_packets + excluded.up_packets, down_packets = down_packets + excluded.down_packets
                """, RowsPerStatement);
            _host = new Batch(c, "INSERT INTO traffic_host (bucket, port, proto, up_bytes, down_bytes, up_packets, down_packets) VALUES", 7,
                """
                ON CONFLICT DO UPDATE SET up_bytes = up_bytes + excluded.up_bytes, down_bytes = down_bytes + excluded.down_bytes,
                    up_packets = up_packets + excluded.up_packets, down_packets = down_packets + excluded.down_packets
                """, 1);
            _baseline = new Batch(c, "INSERT OR REPLACE INTO counter_baseline (client, slots) VALUES", 2, "", RowsPerStatement);
            _deleteBaseline = new Batch(c, "DELETE FROM counter_baseline WHERE client IN", 1, "", 1);
            _state = new Batch(c, "INSERT OR REPLACE INTO collector_state (key, value) VALUES", 2, "", 1);
        }

        private Batch[] All => [_deleteBaseline, _state, _baseline, _traffic, _detail, _host];

        /// <summary>Writes the rows still waiting for a full statement.</summary>
        public void Complete()
        {
            foreach (var b in All) b.Complete();
        }

        /// <summary>Forgets rows buffered by a failed attempt.</summary>
        public void Reset()
        {
            foreach (var b in All) b.Reset();
        }

        public void UpsertTraffic(long bucket, string ip, Traffic[] delta, int[] seedSlot)
        {
            _traffic.Text(ip);
            foreach (var slot in seedSlot) _traffic.Long(slot >= 0 ? (long)delta[slot].Bytes : 0L);
            _traffic.Long(bucket);
        }

        public void UpsertDetail(long bucket, string ip, long port, string proto, Traffic up, Traffic down)
        {
            _detail.Long(bucket);
            _detail.Text(ip);
            _detail.Long(port);
            _detail.Text(proto);
            _detail.Long((long)up.Bytes);
            _detail.Long((long)down.Bytes);
            _detail.Long((long)up.Packets);
            _detail.Long((long)down.Packets);
        }

        public void UpsertHost(long bucket, long port, string proto, Traffic up, Traffic down)
        {
            _host.Long(bucket);
            _host.Long(port);
            _host.Text(proto);
            _host.Long((long)up.Bytes);
            _host.Long((long)down.Bytes);
            _host.Long((long)up.Packets);
            _host.Long((long)down.Packets);
        }

        public void UpsertBaseline(string client, Traffic[] slots)
        {
            _baseline.Text(client);
            _baseline.Blob(Encode(slots));
        }

        /// <summary>Deletes go out at once, before any baseline upsert of the same flush.</summary>
        public void DeleteBaseline(string client) => _deleteBaseline.Text(client);

        public void SetState(string key, string value)
        {
            _state.Text(key);
            _state.Text(value);
        }

        public void Dispose()
        {
            foreach (var b in All) b.Dispose();
        }
    }

    /// <summary>A statement of up to N rows: values are buffered row by row (no boxing) and
    /// written N rows at a time; the rest one row at a time on <see cref="Complete"/>.</summary>
    private sealed class Batch : IDisposable
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _many, _one;
        private readonly int _columns, _rows;
        private readonly long[] _longs;
        private readonly object?[] _refs; // string or byte[]; null: use _longs
        private int _filled; // values in the buffer

        public Batch(SqliteConnection c, string head, int columns, string tail, int rows)
        {
            _db = c.Handle!;
            _columns = columns;
            _rows = rows;
            _longs = new long[columns * rows];
            _refs = new object?[columns * rows];
            _many = Prepare($"{head} {Rows(columns, rows)} {tail}");
            _one = rows == 1 ? _many : Prepare($"{head} {Rows(columns, 1)} {tail}");
        }

        public void Long(long value)
        {
            _longs[_filled] = value;
            _refs[_filled] = null;
            Next();
        }

        public void Text(string value)
        {
            _refs[_filled] = value;
            Next();
        }

        public void Blob(byte[] value)
        {
            _refs[_filled] = value;
            Next();
        }

        private void Next()
        {
            if (++_filled < _longs.Length) return;
            Run(_many, 0, _longs.Length);
            _filled = 0;
        }

        public void Complete()
        {
            for (var start = 0; start + _columns <= _filled; start += _columns) Run(_one, start, _columns);
            _filled = 0;
        }

        public void Reset() => _filled = 0;

        private void Run(sqlite3_stmt stmt, int start, int count)
        {
            for (var i = 0; i < count; i++)
            {
                var rc = _refs[start + i] switch
                {
                    null => raw.sqlite3_bind_int64(stmt, i + 1, _longs[start + i]),
                    string text => BindText(stmt, i + 1, text),
                    byte[] blob => raw.sqlite3_bind_blob(stmt, i + 1, blob),
                    _ => raw.SQLITE_MISUSE,
                };
                if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, _db);
            }
            var step = raw.sqlite3_step(stmt);
            raw.sqlite3_reset(stmt);
            if (step != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(step, _db);
        }

        /// <summary>Binds as UTF-8 through a reused buffer: no allocation per value.</summary>
        private int BindText(sqlite3_stmt stmt, int index, string text)
        {
            var length = System.Text.Encoding.UTF8.GetByteCount(text);
            if (length > _utf8.Length) _utf8 = new byte[Math.Max(length, _utf8.Length * 2)];
            System.Text.Encoding.UTF8.GetBytes(text, _utf8);
            return raw.sqlite3_bind_text(stmt, index, _utf8.AsSpan(0, length));
        }

        private byte[] _utf8 = new byte[64];

        public void Dispose()
        {
            _many.Dispose();
            if (!ReferenceEquals(_one, _many)) _one.Dispose();
        }

        private sqlite3_stmt Prepare(string sql)
        {
            var rc = raw.sqlite3_prepare_v2(_db, sql, out var stmt);
            if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, _db);
            return stmt;
        }

        private static string Rows(int columns, int rows) =>
            string.Join(", ", Enumerable.Range(0, rows).Select(_ => "(" + string.Join(", ", Enumerable.Repeat("?", columns)) + ")"));
    }
}
