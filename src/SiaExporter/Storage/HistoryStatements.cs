using Microsoft.Data.Sqlite;
using SQLitePCL;
using SiaExporter.Counters;

namespace SiaExporter.Storage;

/// <summary>The prepared statements, reused by every flush on one connection. Rows go out
/// <see cref="RowsPerStatement"/> to a statement (multi-row upserts), bound by index through
/// SQLitePCL: the driver's per-statement and per-parameter cost (parameters found by name),
/// not SQLite's b-tree work, dominated a 100,000-client flush.</summary>
internal sealed class HistoryStatements : IDisposable
{
    private const int RowsPerStatement = 32;
    private const string AddOnConflict = """
        ON CONFLICT DO UPDATE SET up_bytes = up_bytes + excluded.up_bytes, down_bytes = down_bytes + excluded.down_bytes,
            up_packets = up_packets + excluded.up_packets, down_packets = down_packets + excluded.down_packets
        """;

    private readonly SqliteBatch _traffic, _detail, _host, _baseline, _deleteBaseline, _state;
    private readonly SqliteBatch _hourly, _daily, _hostHourly, _hostDaily;

    public HistoryStatements(SqliteConnection c)
    {
        var seed = HistorySchema.SeedColumns.Select(s => s.Column).ToArray();
        _traffic = new SqliteBatch(c, $"INSERT INTO traffic (client_ip, {string.Join(", ", seed)}, timestamp) VALUES", seed.Length + 2,
            $"ON CONFLICT (timestamp, client_ip) DO UPDATE SET {string.Join(", ", seed.Select(n => $"{n} = coalesce({n}, 0) + excluded.{n}"))}",
            RowsPerStatement);
        _detail = ClientRows(c, "traffic_detail");
        _hourly = ClientRows(c, "traffic_hourly");
        _daily = ClientRows(c, "traffic_daily");
        _host = HostRows(c, "traffic_host");
        _hostHourly = HostRows(c, "traffic_host_hourly");
        _hostDaily = HostRows(c, "traffic_host_daily");
        _baseline = new SqliteBatch(c, "INSERT OR REPLACE INTO counter_baseline (client, slots) VALUES", 2, "", RowsPerStatement);
        _deleteBaseline = new SqliteBatch(c, "DELETE FROM counter_baseline WHERE client IN", 1, "", 1);
        _state = new SqliteBatch(c, "INSERT OR REPLACE INTO collector_state (key, value) VALUES", 2, "", 1);
    }

    private static SqliteBatch ClientRows(SqliteConnection c, string table) =>
        new(c, $"INSERT INTO {table} (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets) VALUES", 8, AddOnConflict, RowsPerStatement);

    private static SqliteBatch HostRows(SqliteConnection c, string table) =>
        new(c, $"INSERT INTO {table} (bucket, port, proto, up_bytes, down_bytes, up_packets, down_packets) VALUES", 7, AddOnConflict, 1);

    private SqliteBatch[] All => [_deleteBaseline, _state, _baseline, _traffic, _detail, _hourly, _daily, _host, _hostHourly, _hostDaily];

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

    /// <summary>Adds a client's class row to the 5-minute bucket and to the hour and UTC day holding it.</summary>
    public void UpsertDetail(long bucket, string ip, long port, string proto, Traffic up, Traffic down)
    {
        ClientRow(_detail, bucket, ip, port, proto, up, down);
        ClientRow(_hourly, bucket - bucket % HistoryTiers.HourSeconds, ip, port, proto, up, down);
        ClientRow(_daily, bucket - bucket % HistoryTiers.DaySeconds, ip, port, proto, up, down);
    }

    /// <summary>Adds a host class row to the 5-minute bucket and to the hour and UTC day holding it.</summary>
    public void UpsertHost(long bucket, long port, string proto, Traffic up, Traffic down)
    {
        HostRow(_host, bucket, port, proto, up, down);
        HostRow(_hostHourly, bucket - bucket % HistoryTiers.HourSeconds, port, proto, up, down);
        HostRow(_hostDaily, bucket - bucket % HistoryTiers.DaySeconds, port, proto, up, down);
    }

    private static void ClientRow(SqliteBatch batch, long bucket, string ip, long port, string proto, Traffic up, Traffic down)
    {
        batch.Long(bucket);
        batch.Text(ip);
        batch.Long(port);
        batch.Text(proto);
        Counters(batch, up, down);
    }

    private static void HostRow(SqliteBatch batch, long bucket, long port, string proto, Traffic up, Traffic down)
    {
        batch.Long(bucket);
        batch.Long(port);
        batch.Text(proto);
        Counters(batch, up, down);
    }

    /// <summary>The four counter columns every traffic table ends with, in schema order.</summary>
    private static void Counters(SqliteBatch batch, Traffic up, Traffic down)
    {
        batch.Long((long)up.Bytes);
        batch.Long((long)down.Bytes);
        batch.Long((long)up.Packets);
        batch.Long((long)down.Packets);
    }

    public void UpsertBaseline(string client, Traffic[] slots)
    {
        _baseline.Text(client);
        _baseline.Blob(SlotCodec.Encode(slots));
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
internal sealed class SqliteBatch : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _many, _one;
    private readonly int _columns, _rows;
    private readonly long[] _longs;
    private readonly object?[] _refs; // string or byte[]; null: use _longs
    private int _filled; // values in the buffer

    public SqliteBatch(SqliteConnection c, string head, int columns, string tail, int rows)
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
