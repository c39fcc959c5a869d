using Microsoft.Data.Sqlite;

namespace SiaExporter.Storage;

/// <summary>A client's bytes summed over buckets, per <see cref="HistorySchema.SeedColumns"/> column, and their total.</summary>
public sealed record TopClient(string Client, long[] SeedBytes, long Total);

/// <summary>One row in <c>traffic</c>'s shape: bucket start, client_ip and the bytes of each
/// <see cref="HistorySchema.SeedColumns"/> column, and the bucket's length ("5m", "1h", "1d").</summary>
public sealed record SeedRow(long Timestamp, string Client, long[] Bytes, string Resolution = "5m");

/// <summary>A client's bytes in one class, summed over a range.</summary>
public readonly record struct ClientClassBytes(string Client, long Port, string Proto, long UpBytes, long DownBytes);

/// <summary>One row of a bucket per port class, as stored in traffic_detail (Client set) or
/// traffic_host (Client null).</summary>
public readonly record struct ClassRow(string? Client, long Port, string Proto, long UpBytes, long DownBytes, long UpPackets, long DownPackets);

/// <summary>One class's traffic summed over one step of a series (Time = the step's start, Unix
/// seconds); Client is null for host totals (traffic_host).</summary>
public readonly record struct SeriesPoint(long Time, string? Client, long Port, string Proto, long UpBytes, long DownBytes, long UpPackets, long DownPackets);

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
    private string _clientColumn = "client_ip";

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
    public IReadOnlyList<TopClient> TopClients(long sinceBucket, int limit) =>
        TopClients(TierPlan.RawOnly(sinceBucket, long.MaxValue), limit);

    /// <summary>The clients with the most bytes over the tiers of <paramref name="plan"/> (<see cref="TierPlan"/>),
    /// in the seed columns, most first (ties by client), at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<TopClient> TopClients(IReadOnlyList<TierRange> plan, int limit)
    {
        var seed = HistorySchema.SeedColumns;
        if (plan.Count == 0) return [];
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"""
            SELECT client_ip, {string.Join(", ", seed.Select(c => $"sum({c.Column})"))},
                   sum({string.Join(" + ", seed.Select(c => c.Column))}) AS total
            FROM ({SeedShaped(plan)})
            GROUP BY client_ip ORDER BY total DESC, client_ip LIMIT $limit
            """;
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
    /// <paramref name="until"/> (Unix seconds), in (timestamp, client_ip) order.</summary>
    public IEnumerable<SeedRow> SeedRows(long sinceBucket, long until) => SeedRows(TierPlan.RawOnly(sinceBucket, until));

    /// <summary>Rows in <c>traffic</c>'s shape over the tiers of <paramref name="plan"/>, in (timestamp, client_ip)
    /// order, each saying its resolution. The query runs now (a bad database fails here, before any output);
    /// rows are read as they are enumerated, once.</summary>
    public IEnumerable<SeedRow> SeedRows(IReadOnlyList<TierRange> plan)
    {
        if (plan.Count == 0) return [];
        var seed = HistorySchema.SeedColumns;
        var cmd = _connection.CreateCommand();
        try
        {
            cmd.CommandText = $"""
                SELECT bucket, client_ip, {string.Join(", ", seed.Select(c => c.Column))}, resolution
                FROM ({SeedShaped(plan)})
                ORDER BY bucket, client_ip
                """;
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
                    yield return new SeedRow(r.GetInt64(0), r.GetString(1), bytes, r.GetString(columns + 2));
                }
        }
    }

    /// <summary>Every client's bytes per class over the tiers of <paramref name="plan"/> (every port class,
    /// <c>overflow</c> included), and the host totals per class from the host tables.</summary>
    public (List<ClientClassBytes> Clients, List<ClassRow> Totals) ClassBytes(IReadOnlyList<TierRange> plan)
    {
        var clients = new List<ClientClassBytes>();
        var totals = new List<ClassRow>();
        if (plan.Count == 0) return (clients, totals);
        using var tx = _connection.BeginTransaction(deferred: true);
        using (var cmd = _connection.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = $"""
                SELECT client_ip, port, proto, sum(up_bytes), sum(down_bytes) FROM (
                {string.Join(" UNION ALL ", plan.Select(p => $"SELECT client_ip, port, proto, up_bytes, down_bytes FROM {p.Tier.ClientTable} WHERE bucket >= {p.From} AND bucket < {p.Until}"))}
                ) GROUP BY client_ip, port, proto
                """;
            using var r = cmd.ExecuteReader();
            while (r.Read())
                clients.Add(new ClientClassBytes(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4)));
        }
        using (var cmd = _connection.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = $"""
                SELECT port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets) FROM (
                {string.Join(" UNION ALL ", plan.Select(p => $"SELECT port, proto, up_bytes, down_bytes, up_packets, down_packets FROM {p.Tier.HostTable} WHERE bucket >= {p.From} AND bucket < {p.Until}"))}
                ) GROUP BY port, proto ORDER BY port, proto
                """;
            using var r = cmd.ExecuteReader();
            while (r.Read())
                totals.Add(new ClassRow(null, r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5)));
        }
        tx.Commit();
        return (clients, totals);
    }

    /// <summary>The host's bytes up and down over every class, from the host tables of <paramref name="plan"/>.</summary>
    public (long Up, long Down) HostBytes(IReadOnlyList<TierRange> plan)
    {
        if (plan.Count == 0) return (0, 0);
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"""
            SELECT coalesce(sum(up_bytes), 0), coalesce(sum(down_bytes), 0) FROM (
            {string.Join(" UNION ALL ", plan.Select(p => $"SELECT up_bytes, down_bytes FROM {p.Tier.HostTable} WHERE bucket >= {p.From} AND bucket < {p.Until}"))})
            """;
        using var r = cmd.ExecuteReader();
        r.Read();
        return (r.GetInt64(0), r.GetInt64(1));
    }

    /// <summary>
    /// One SELECT of (bucket, client_ip, seed columns…, resolution) over the plan: the 5-minute part
    /// from <c>traffic</c> itself (so an older collector's rows count), the coarser parts from their
    /// tier, the seed classes' bytes pivoted into the seed columns (rows with none left out, as in traffic).
    /// </summary>
    private static string SeedShaped(IReadOnlyList<TierRange> plan)
    {
        var seed = HistorySchema.SeedColumns;
        return string.Join(" UNION ALL ", plan.Select(p => p.Tier.Resolution == Resolution.FiveMinutes
            ? $"""
              SELECT timestamp AS bucket, client_ip, {string.Join(", ", seed.Select(c => $"coalesce({c.Column}, 0) AS {c.Column}"))}, '{p.Tier.Label}' AS resolution
              FROM traffic WHERE timestamp >= {p.From} AND timestamp < {p.Until}
              """
            : $"""
              SELECT bucket, client_ip, {string.Join(", ", seed.Select(c =>
                  $"sum(CASE WHEN port = {c.Class.Port} AND proto = '{c.Class.ProtocolLabel}' THEN {(c.Direction == Counters.Direction.Up ? "up_bytes" : "down_bytes")} ELSE 0 END) AS {c.Column}"))},
                  '{p.Tier.Label}' AS resolution
              FROM {p.Tier.ClientTable} WHERE bucket >= {p.From} AND bucket < {p.Until}
              GROUP BY bucket, client_ip
              HAVING {string.Join(" + ", seed.Select(c => c.Column))} > 0
              """));
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

    /// <summary>
    /// Shows every stored client_ip as <paramref name="label"/> makes it (ANONYMIZE: an address
    /// becomes its network, so rows written before ANONYMIZE was set merge into it) in the series
    /// and class reads below: they group, filter and order by the label.
    /// </summary>
    public void ShowClientsAs(Func<string, string> label)
    {
        ArgumentNullException.ThrowIfNull(label);
        _connection.CreateFunction("client_label", label, isDeterministic: true);
        _clientColumn = "client_label(client_ip)";
    }

    /// <summary>
    /// The stored resolution a series with steps of <paramref name="step"/> seconds is read from:
    /// the 5-minute buckets today. Hourly and daily tiers slot in here: a step that is a multiple
    /// of a tier's resolution reads that tier, and the series methods below do not change.
    /// </summary>
    public static long ResolutionFor(long step)
    {
        if (step < Buckets.Seconds || step % Buckets.Seconds != 0)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"a step is a multiple of {Buckets.Seconds} s");
        return Buckets.Seconds;
    }

    /// <summary>The host totals (traffic_host) of buckets from <paramref name="from"/> to before
    /// <paramref name="to"/>, summed per step of <paramref name="step"/> seconds (steps start at
    /// multiples of it) and class, in (time, port, proto) order.</summary>
    public List<SeriesPoint> HostSeries(long from, long to, long step)
    {
        ResolutionFor(step);
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = """
            SELECT bucket - bucket % $step AS t, port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
            FROM traffic_host WHERE bucket >= $from AND bucket < $to
            GROUP BY t, port, proto ORDER BY t, port, proto
            """;
        AddRange(cmd, from, to, step);
        var points = new List<SeriesPoint>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
            points.Add(new SeriesPoint(r.GetInt64(0), null, r.GetInt64(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6)));
        return points;
    }

    /// <summary>The clients with the most bytes (all classes, traffic_detail) in buckets from
    /// <paramref name="from"/> to before <paramref name="to"/>, most first (ties by client), at
    /// most <paramref name="limit"/>; <see cref="HistorySchema.OverflowClient"/> is one of them.</summary>
    public List<(string Client, long Bytes)> BusiestClients(long from, long to, int limit)
    {
        using var cmd = _connection.CreateCommand();
        cmd.CommandText = $"""
            SELECT {_clientColumn} AS client, sum(up_bytes + down_bytes) AS total
            FROM traffic_detail WHERE bucket >= $from AND bucket < $to
            GROUP BY client ORDER BY total DESC, client LIMIT $limit
            """;
        cmd.Parameters.AddWithValue("$from", from);
        cmd.Parameters.AddWithValue("$to", to);
        cmd.Parameters.AddWithValue("$limit", limit);
        var top = new List<(string, long)>();
        using var r = cmd.ExecuteReader();
        while (r.Read()) top.Add((r.GetString(0), r.GetInt64(1)));
        return top;
    }

    /// <summary>What <see cref="HostSeries"/> is for the host, for each of <paramref name="clients"/>
    /// (traffic_detail), in one pass: (client, time, port, proto) order.</summary>
    public List<SeriesPoint> ClientSeries(IReadOnlyCollection<string> clients, long from, long to, long step)
    {
        ArgumentNullException.ThrowIfNull(clients);
        ResolutionFor(step);
        var points = new List<SeriesPoint>();
        if (clients.Count == 0) return points;
        using var cmd = _connection.CreateCommand();
        var names = clients.Select((_, i) => $"$c{i}").ToList();
        cmd.CommandText = $"""
            SELECT {_clientColumn} AS client, bucket - bucket % $step AS t, port, proto,
                   sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
            FROM traffic_detail WHERE bucket >= $from AND bucket < $to AND client IN ({string.Join(", ", names)})
            GROUP BY client, t, port, proto ORDER BY client, t, port, proto
            """;
        AddRange(cmd, from, to, step);
        var k = 0;
        foreach (var client in clients) cmd.Parameters.AddWithValue(names[k++], client);
        using var r = cmd.ExecuteReader();
        while (r.Read())
            points.Add(new SeriesPoint(r.GetInt64(1), r.GetString(0), r.GetInt64(2), r.GetString(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7)));
        return points;
    }

    /// <summary>Every client row of buckets from <paramref name="from"/> to before <paramref name="to"/>
    /// (traffic_detail, one per bucket, client and class; clients as labelled), in (bucket, client,
    /// port, proto) order. The query runs now; rows are read as they are enumerated, once.</summary>
    public IEnumerable<SeriesPoint> ClassRows(long from, long to)
    {
        var cmd = _connection.CreateCommand();
        try
        {
            cmd.CommandText = $"""
                SELECT bucket, {_clientColumn} AS client, port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
                FROM traffic_detail WHERE bucket >= $from AND bucket < $to
                GROUP BY bucket, client, port, proto ORDER BY bucket, client, port, proto
                """;
            cmd.Parameters.AddWithValue("$from", from);
            cmd.Parameters.AddWithValue("$to", to);
            return Rows(cmd, cmd.ExecuteReader());
        }
        catch
        {
            cmd.Dispose();
            throw;
        }

        static IEnumerable<SeriesPoint> Rows(SqliteCommand cmd, SqliteDataReader r)
        {
            using (cmd)
            using (r)
                while (r.Read())
                    yield return new SeriesPoint(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetString(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7));
        }
    }

    private static void AddRange(SqliteCommand cmd, long from, long to, long step)
    {
        cmd.Parameters.AddWithValue("$from", from);
        cmd.Parameters.AddWithValue("$to", to);
        cmd.Parameters.AddWithValue("$step", step);
    }

    public void Dispose()
    {
        if (_ownsConnection) _connection.Dispose();
    }
}
