using Microsoft.Data.Sqlite;

namespace SiaExporter.Storage;

/// <summary>A client's bytes summed over buckets, per <see cref="HistorySchema.SeedColumns"/> column, and their total.</summary>
public sealed record TopClient(string Client, long[] SeedBytes, long Total);

/// <summary>One <c>traffic</c> row: bucket start, client_ip and the bytes of each <see cref="HistorySchema.SeedColumns"/> column.</summary>
public sealed record SeedRow(long Timestamp, string Client, long[] Bytes);

/// <summary>One row of a bucket per port class, as stored in traffic_detail (Client set) or
/// traffic_host (Client null).</summary>
public readonly record struct ClassRow(string? Client, long Port, string Proto, long UpBytes, long DownBytes, long UpPackets, long DownPackets);

/// <summary>
/// The one read API of the history: what <c>collector top</c>, <c>collector export</c> and the API
/// push read, and what further readers (a dashboard, rollups) build on. Reads never block the
/// daemon's writer (WAL). Owns its connection when opened with <see cref="OpenReadOnly"/>; borrows
/// it when given one. Not thread-safe.
/// </summary>
public sealed class HistoryReader : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly bool _ownsConnection;

    /// <summary>Reads through <paramref name="connection"/> (not disposed with the reader).</summary>
    public HistoryReader(SqliteConnection connection) : this(connection, ownsConnection: false)
    {
    }

    private HistoryReader(SqliteConnection connection, bool ownsConnection)
    {
        _connection = connection;
        _ownsConnection = ownsConnection;
    }

    /// <summary>A reader beside the running daemon: read-only, never blocks the writer (WAL).</summary>
    public static HistoryReader OpenReadOnly(string path)
    {
        if (!File.Exists(path))
            throw new OperatorException($"no history database at {path}", "start the daemon first, or set SQLITE_PATH / --sqlite-path");
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        try
        {
            connection.Open();
            HistorySchema.Exec(connection, null, "PRAGMA busy_timeout = 5000");
            return new HistoryReader(connection, ownsConnection: true);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The clients with the most bytes in <c>traffic</c> from bucket <paramref name="sinceBucket"/>
    /// on, most first (ties by client), at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<TopClient> TopClients(long sinceBucket, int limit)
    {
        var seed = HistorySchema.SeedColumns;
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"""
            SELECT client_ip, {string.Join(", ", seed.Select(c => $"sum(coalesce({c.Column}, 0))"))},
                   sum({string.Join(" + ", seed.Select(c => $"coalesce({c.Column}, 0)"))}) AS total
            FROM traffic WHERE timestamp >= $since
            GROUP BY client_ip ORDER BY total DESC, client_ip LIMIT $limit
            """;
        cmd.Parameters.AddWithValue("$since", sinceBucket);
        cmd.Parameters.AddWithValue("$limit", limit);
        var rows = new List<TopClient>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var bytes = new long[seed.Count];
            for (var i = 0; i < seed.Count; i++) bytes[i] = r.GetInt64(i + 1);
            rows.Add(new TopClient(r.GetString(0), bytes, r.GetInt64(seed.Count + 1)));
        }
        return rows;
    }

    /// <summary><c>traffic</c> rows of buckets from <paramref name="sinceBucket"/> to before
    /// <paramref name="until"/> (Unix seconds), in (timestamp, client_ip) order. The query runs
    /// now (a bad database fails here, before any output); rows are read as they are enumerated,
    /// once.</summary>
    public IEnumerable<SeedRow> SeedRows(long sinceBucket, long until)
    {
        var seed = HistorySchema.SeedColumns;
        var cmd = _connection.CreateCommand();
        try
        {
            cmd.CommandText = $"""
                SELECT timestamp, client_ip, {string.Join(", ", seed.Select(c => $"coalesce({c.Column}, 0)"))}
                FROM traffic WHERE timestamp >= $since AND timestamp < $until
                ORDER BY timestamp, client_ip
                """;
            cmd.Parameters.AddWithValue("$since", sinceBucket);
            cmd.Parameters.AddWithValue("$until", until);
            return Rows(cmd, cmd.ExecuteReader(), seed.Count);
        }
        catch
        {
            cmd.Dispose();
            throw;
        }

        static IEnumerable<SeedRow> Rows(SqliteCommand cmd, SqliteDataReader r, int columns)
        {
            using (cmd)
            using (r)
                while (r.Read())
                {
                    var bytes = new long[columns];
                    for (var i = 0; i < columns; i++) bytes[i] = r.GetInt64(i + 2);
                    yield return new SeedRow(r.GetInt64(0), r.GetString(1), bytes);
                }
        }
    }

    /// <summary>The per-class tables exist (the daemon's first open creates them).</summary>
    public bool HasClassTables()
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('traffic_detail', 'traffic_host')";
        return (long)cmd.ExecuteScalar()! == 2;
    }

    /// <summary>One bucket as stored now, in one read snapshot: client rows (traffic_detail, by
    /// client, port, proto) and host totals (traffic_host, by port, proto).</summary>
    public (List<ClassRow> Clients, List<ClassRow> Totals) Bucket(long bucket)
    {
        var clients = new List<ClassRow>();
        var totals = new List<ClassRow>();
        using var tx = _connection.BeginTransaction(deferred: true); // one snapshot for both tables
        using (var cmd = _connection.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                SELECT client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets
                FROM traffic_detail WHERE bucket = $b ORDER BY client_ip, port, proto
                """;
            cmd.Parameters.AddWithValue("$b", bucket);
            using var r = cmd.ExecuteReader();
            while (r.Read())
                clients.Add(new ClassRow(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6)));
        }
        using (var cmd = _connection.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                SELECT port, proto, up_bytes, down_bytes, up_packets, down_packets
                FROM traffic_host WHERE bucket = $b ORDER BY port, proto
                """;
            cmd.Parameters.AddWithValue("$b", bucket);
            using var r = cmd.ExecuteReader();
            while (r.Read())
                totals.Add(new ClassRow(null, r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5)));
        }
        tx.Commit();
        return (clients, totals);
    }

    public void Dispose()
    {
        if (_ownsConnection) _connection.Dispose();
    }
}
