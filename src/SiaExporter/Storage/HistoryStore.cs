using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Native;

namespace SiaExporter.Storage;

/// <summary>
/// The writer's side of the SQLite file: the connection (WAL, busy timeout, the schema), the
/// prepared statements, and the one transaction that writes a <see cref="HistoryLedger"/>'s
/// pending deltas with its baseline changes. Any failure closes the connection, so a broken
/// handle (file gone, disk full, read-only) is reopened by the next call. Not thread-safe:
/// <see cref="TrafficHistory"/> serializes the calls.
/// </summary>
internal sealed class HistoryStore : IDisposable
{
    /// <summary>Safety net for a caller that never checkpoints (about 160 MB of log).</summary>
    public const int AutoCheckpointPages = 40_000;

    private readonly ILogger _logger;
    private readonly HistoryOptions _options;
    private readonly int[] _seedSlot;               // traffic column i ← slot, or -1
    private readonly (long Port, string Proto, int Up, int Down)[] _classes;
    private SqliteConnection? _connection;
    private HistoryStatements? _statements;
    private FileIdentity? _fileIdentity;

    public HistoryStore(string path, PortClassSet ports, HistoryOptions options, ILogger logger)
    {
        Path = path;
        _options = options;
        _logger = logger;
        _seedSlot = HistorySchema.SeedColumns
            .Select(c => ports.IndexOf(c.Class) is var i and >= 0 ? PortClassSet.Slot(i, c.Direction) : -1)
            .ToArray();
        _classes = ports.Classes
            .Select((c, i) => ((long)c.Port, c.ProtocolLabel, PortClassSet.Slot(i, Direction.Up), PortClassSet.Slot(i, Direction.Down)))
            .ToArray();
    }

    public string Path { get; }

    public bool IsOpen => _connection is not null;

    /// <summary>The open file was deleted or replaced under us (an open handle would keep writing
    /// into the unlinked inode, silently).</summary>
    public bool FileReplaced => _connection is not null && FileIdentity.Of(Path) != _fileIdentity;

    /// <summary>Opens the connection when it is closed: creates the directory, the file, WAL mode and the schema.</summary>
    public void EnsureOpen()
    {
        if (_connection is not null) return;
        try
        {
            var directory = System.IO.Path.GetDirectoryName(Path);
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            var connection = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = Path,
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
            _fileIdentity = FileIdentity.Of(Path);
            _statements = new HistoryStatements(connection);
        }
        catch
        {
            Close();
            throw;
        }
    }

    /// <summary>collector_state's generation, ports and the ANONYMIZE mode the baseline is keyed by (null when absent).</summary>
    public (string? Generation, string? Ports, string? Anonymize) ReadState()
    {
        string? generation = null, ports = null, anonymize = null;
        using var cmd = Connection.CreateCommand();
        cmd.CommandText = "SELECT key, CAST(value AS TEXT) FROM collector_state WHERE key IN ('generation', 'ports', 'anonymize')";
        using var r = cmd.ExecuteReader();
        while (r.Read())
            switch (r.GetString(0))
            {
                case "generation": generation = r.IsDBNull(1) ? null : r.GetString(1); break;
                case "ports": ports = r.IsDBNull(1) ? null : r.GetString(1); break;
                default: anonymize = r.IsDBNull(1) ? null : r.GetString(1); break;
            }
        return (generation, ports, anonymize);
    }

    /// <summary>Every counter_baseline row, as stored; a hand-edited value that is not a blob comes
    /// back empty (the ledger treats it as unreadable), a key that is not text as its text form.</summary>
    public IEnumerable<(string Key, byte[] Slots)> ReadBaseline()
    {
        using var cmd = Connection.CreateCommand();
        cmd.CommandText = "SELECT CAST(client AS TEXT), slots FROM counter_baseline WHERE client IS NOT NULL";
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return (r.GetString(0), r.GetValue(1) as byte[] ?? []);
    }

    /// <summary>One transaction: every pending bucket of <paramref name="ledger"/>, its baseline
    /// changes, commit. <paramref name="beforeCommit"/> runs just before the commit (a test hook).</summary>
    public void Write(HistoryLedger ledger, Action? beforeCommit, IEnumerable<KeyValuePair<long, PendingBucket>>? spilled = null)
    {
        EnsureOpen();
        var connection = _connection!;
        var st = _statements!;
        try
        {
            using var tx = connection.BeginTransaction();
            st.Reset();
            if (ledger.RewriteBaseline)
            {
                HistorySchema.Exec(connection, tx, "DELETE FROM counter_baseline");
                foreach (var row in ledger.WholeBaseline()) st.UpsertBaseline(row.Key, row.Slots);
                st.SetState("generation", ledger.Generation?.ToString() ?? "");
                st.SetState("ports", ledger.Ports.ToString());
                st.SetState("anonymize", HistoryLedger.ModeText(ledger.Mode));
            }
            else
            {
                foreach (var ip in ledger.DeletedBaselines) st.DeleteBaseline(ip);
                foreach (var row in ledger.ChangedBaseline()) st.UpsertBaseline(row.Key, row.Slots);
            }
            foreach (var (bucket, pending) in spilled is null ? ledger.Pending : spilled.Concat(ledger.Pending))
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
            beforeCommit?.Invoke();
            tx.Commit();
        }
        catch
        {
            Close();
            throw;
        }
    }

    /// <summary>Host bytes up and down of the daily host tier's days in [from, until).</summary>
    public (ulong Up, ulong Down) HostBytes(long from, long until)
    {
        using var cmd = Connection.CreateCommand();
        cmd.CommandText = "SELECT coalesce(sum(up_bytes), 0), coalesce(sum(down_bytes), 0) FROM traffic_host_daily WHERE bucket >= $f AND bucket < $u";
        cmd.Parameters.AddWithValue("$f", from);
        cmd.Parameters.AddWithValue("$u", until);
        using var r = cmd.ExecuteReader();
        r.Read();
        return ((ulong)r.GetInt64(0), (ulong)r.GetInt64(1));
    }

    /// <summary>Copies the write-ahead log back into the database (PASSIVE: never waits for readers).</summary>
    public void Checkpoint()
    {
        if (_connection is null) return;
        HistorySchema.Exec(_connection, null, "PRAGMA wal_checkpoint(PASSIVE)");
    }

    /// <summary>One retention batch (<see cref="HistoryRetention"/>) in its own short transaction.</summary>
    public int DeleteExpired(string table, long cutoff, int rows)
    {
        EnsureOpen();
        try
        {
            using var tx = Connection.BeginTransaction();
            var deleted = HistoryRetention.DeleteBatch(Connection, tx, table, cutoff, rows);
            tx.Commit();
            return deleted;
        }
        catch
        {
            Close();
            throw;
        }
    }

    public void Close()
    {
        _statements?.Dispose();
        _statements = null;
        _connection?.Dispose();
        _connection = null;
    }

    public void Dispose() => Close();

    private SqliteConnection Connection => _connection ?? throw new InvalidOperationException("the history database is not open");
}
