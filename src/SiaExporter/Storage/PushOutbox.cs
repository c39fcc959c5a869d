using Microsoft.Data.Sqlite;

namespace SiaExporter.Storage;

/// <summary>A bucket due for sending, with what the outbox knows of it.</summary>
/// <param name="Revision">0 for the first send of a bucket; 1, 2, … when it got more data after it was sent.</param>
public sealed record OutboxEntry(long Bucket, string State, long Attempts, long Revision = 0);

/// <summary>
/// The durable record of what was pushed, in the history database itself:
/// <c>push_outbox(bucket INTEGER PRIMARY KEY, state, attempts, last_error, sent_at, next_attempt)</c>
/// with state <c>pending</c>, <c>sent</c> (a 2xx came back; never sent again) or <c>failed</c>
/// (the endpoint refused it with a 4xx other than 408/429; offered again at next_attempt), and
/// <c>push_meta(key, value)</c> holding <c>enabled_since</c>: the bucket in progress when push was
/// first enabled. Only buckets from then on are seeded, so turning push on over a year of history
/// does not upload the year.
/// <para>Revisions: a sent bucket remembers <c>sent_total</c>, the sum of its traffic_host bytes and
/// packets as sent. A bucket that later holds more (a delta written late: after a wall-clock step back,
/// or held while the database was unwritable) goes back to pending with <c>revision</c> + 1 and is sent
/// whole again; the endpoint replaces the bucket (Idempotency-Key <c>HOST/BUCKET</c> for revision 0,
/// <c>HOST/BUCKET/rN</c> for revision N; the payload carries <c>revision</c>).</para>
/// <para>Its own connection (WAL: the flush writer and this reader/writer coexist; busy timeout
/// for the short moments both write); the buckets' rows are read through <see cref="History"/> on
/// it. Tables: <see cref="HistorySchema.EnsureOutbox"/>. Not thread-safe: the push service calls
/// it from one loop.</para>
/// </summary>
public sealed class PushOutbox : IDisposable
{
    public const string Pending = "pending";
    public const string Sent = "sent";
    public const string Failed = "failed";

    private readonly SqliteConnection _connection;
    private bool _historyTables;

    private PushOutbox(SqliteConnection connection)
    {
        _connection = connection;
        History = new HistoryReader(connection);
    }

    /// <summary>The history, read on the outbox's connection (the payload of a bucket).</summary>
    public HistoryReader History { get; }

    /// <summary>Opens the database (created when missing) and the outbox tables, and records
    /// <paramref name="now"/>'s bucket as enabled_since unless an earlier enablement is recorded.</summary>
    public static PushOutbox Open(string path, TimeSpan busyTimeout, DateTimeOffset now)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = Math.Max(1, (int)Math.Ceiling(busyTimeout.TotalSeconds)),
        }.ToString());
        try
        {
            connection.Open();
            HistorySchema.Exec(connection, null, $"PRAGMA busy_timeout = {(long)busyTimeout.TotalMilliseconds}");
            HistorySchema.Exec(connection, null, "PRAGMA journal_mode = WAL");
            HistorySchema.EnsureOutbox(connection);
            AddColumnIfMissing(connection, "revision", "INTEGER NOT NULL DEFAULT 0");
            AddColumnIfMissing(connection, "sent_total", "INTEGER");
            using (var cmd = connection.CreateCommand())
            {
                cmd.CommandText = "INSERT OR IGNORE INTO push_meta (key, value) VALUES ('enabled_since', $b)";
                cmd.Parameters.AddWithValue("$b", Buckets.Of(now).ToString(System.Globalization.CultureInfo.InvariantCulture));
                cmd.ExecuteNonQuery();
            }
            return new PushOutbox(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Start of the first bucket ever pushed or to be pushed (the bucket in progress when push was first enabled).</summary>
    public long EnabledSince
    {
        get
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT value FROM push_meta WHERE key = 'enabled_since'";
            return long.Parse((string)cmd.ExecuteScalar()!, System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Adds the buckets with history rows, from enabled_since (or <paramref name="notBefore"/>,
    /// the prune cut-off, if later: a pruned row must not come back) up to <paramref name="lastClosed"/>,
    /// that are not yet in the outbox.</summary>
    /// <returns>Buckets added.</returns>
    public int Seed(long lastClosed, long notBefore = 0)
    {
        if (!_historyTables)
        {
            // The flush creates them; until it has, there is nothing to send.
            if (!History.HasClassTables()) return 0;
            _historyTables = true;
        }
        using var cmd = _connection.CreateCommand();
        // Both tables are keyed by bucket first: two range scans.
        cmd.CommandText = """
            INSERT OR IGNORE INTO push_outbox (bucket, state, attempts)
            SELECT bucket, 'pending', 0 FROM (
                SELECT DISTINCT bucket FROM traffic_detail WHERE bucket >= $from AND bucket <= $to
                UNION
                SELECT DISTINCT bucket FROM traffic_host WHERE bucket >= $from AND bucket <= $to)
            """;
        cmd.Parameters.AddWithValue("$from", Math.Max(EnabledSince, notBefore));
        cmd.Parameters.AddWithValue("$to", lastClosed);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>Sent buckets from <paramref name="from"/> on whose traffic_host now holds more than was sent
    /// go back to pending as their next revision.</summary>
    /// <returns>Buckets to send again.</returns>
    public int ReviseGrown(long from)
    {
        if (!_historyTables) return 0;
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = """
            UPDATE push_outbox SET state = 'pending', revision = revision + 1, attempts = 0
            WHERE state = 'sent' AND bucket >= $from AND sent_total IS NOT NULL
              AND sent_total < (SELECT coalesce(sum(up_bytes + down_bytes + up_packets + down_packets), 0)
                                FROM traffic_host h WHERE h.bucket = push_outbox.bucket)
            """;
        cmd.Parameters.AddWithValue("$from", from);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>The fingerprint <see cref="ReviseGrown"/> compares: bytes and packets of a bucket's host rows.</summary>
    public static long TotalOf(IReadOnlyList<ClassRow> totals) =>
        totals.Sum(t => t.UpBytes + t.DownBytes + t.UpPackets + t.DownPackets);

    /// <summary>Pending buckets and refused ones whose retry is due, oldest first.</summary>
    public IReadOnlyList<OutboxEntry> Due(DateTimeOffset now, int limit)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = """
            SELECT bucket, state, attempts, revision FROM push_outbox
            WHERE state = 'pending' OR (state = 'failed' AND coalesce(next_attempt, 0) <= $now)
            ORDER BY bucket LIMIT $limit
            """;
        cmd.Parameters.AddWithValue("$now", now.ToUnixTimeSeconds());
        cmd.Parameters.AddWithValue("$limit", limit);
        using var r = cmd.ExecuteReader();
        var due = new List<OutboxEntry>();
        while (r.Read()) due.Add(new OutboxEntry(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3)));
        return due;
    }

    /// <summary>The endpoint acknowledged the bucket (2xx) as it held <paramref name="sentTotal"/>
    /// (<see cref="TotalOf"/>): sent again only as a revision when it grows.</summary>
    public void MarkSent(long bucket, DateTimeOffset at, long? sentTotal = null) =>
        Update(bucket, "state = 'sent', attempts = attempts + 1, last_error = NULL, sent_at = $at, next_attempt = NULL, sent_total = $t",
            ("$at", at.ToUnixTimeSeconds()), ("$t", (object?)sentTotal ?? DBNull.Value));

    /// <summary>A transient failure: still pending, next run tries again.</summary>
    public void MarkAttemptFailed(long bucket, string error) =>
        Update(bucket, "attempts = attempts + 1, last_error = $e", ("$e", error));

    /// <summary>The endpoint refused the bucket: failed until <paramref name="retryAt"/>.</summary>
    public void MarkRefused(long bucket, string error, DateTimeOffset retryAt) =>
        Update(bucket, "state = 'failed', attempts = attempts + 1, last_error = $e, next_attempt = $n", ("$e", error), ("$n", retryAt.ToUnixTimeSeconds()));

    /// <summary>When a bucket was last acknowledged, if ever.</summary>
    public DateTimeOffset? LastSentAt()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT max(sent_at) FROM push_outbox WHERE state = 'sent'";
        return cmd.ExecuteScalar() is long at ? DateTimeOffset.FromUnixTimeSeconds(at) : null;
    }

    /// <summary>Every refused bucket is due now (the endpoint accepts this host again).</summary>
    public void MakeFailedDue()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "UPDATE push_outbox SET next_attempt = NULL WHERE state = 'failed'";
        cmd.ExecuteNonQuery();
    }

    /// <summary>Buckets not yet acknowledged: (pending, failed).</summary>
    public (long Pending, long Failed) Counts()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'failed'), 0) FROM push_outbox";
        using var r = cmd.ExecuteReader();
        r.Read();
        return (r.GetInt64(0), r.GetInt64(1));
    }

    /// <summary>Deletes acknowledged rows older than <paramref name="before"/> (their history is gone by then).</summary>
    public int Prune(long before)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "DELETE FROM push_outbox WHERE bucket < $b AND state = 'sent'";
        cmd.Parameters.AddWithValue("$b", before);
        return cmd.ExecuteNonQuery();
    }

    public void Dispose() => _connection.Dispose();

    private static void AddColumnIfMissing(SqliteConnection connection, string column, string type)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM pragma_table_info('push_outbox') WHERE name = $c";
        cmd.Parameters.AddWithValue("$c", column);
        if ((long)cmd.ExecuteScalar()! == 0) HistorySchema.Exec(connection, null, $"ALTER TABLE push_outbox ADD COLUMN {column} {type}");
    }

    private void Update(long bucket, string set, params (string Name, object Value)[] parameters)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"UPDATE push_outbox SET {set} WHERE bucket = $bucket";
        cmd.Parameters.AddWithValue("$bucket", bucket);
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        cmd.ExecuteNonQuery();
    }
}
