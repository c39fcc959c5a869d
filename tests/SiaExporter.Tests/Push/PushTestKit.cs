using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SiaExporter.Push;
using SiaExporter.Storage;

namespace SiaExporter.Tests.Push;

/// <summary>What the receiver does with one request.</summary>
internal enum Reply
{
    Accept,
    /// <summary>500, not stored.</summary>
    Fail500,
    /// <summary>429 with Retry-After: 0, not stored.</summary>
    TooMany,
    /// <summary>Connection torn down, not stored.</summary>
    Abort,
    /// <summary>Stored, then answers 200 after the client's timeout: the client retries, a duplicate is delivered.</summary>
    LateSuccess,
    /// <summary>Hangs past the client's timeout, then 500; not stored.</summary>
    Hang,
}

/// <summary>One request as the receiver saw it.</summary>
internal sealed record ReceivedRequest(int Index, string? Authorization, string? IdempotencyKey, string? ContentType, byte[] Body, Reply Reply, int Status);

/// <summary>
/// The remote API on 127.0.0.1 (a minimal Kestrel app): records every request and keeps the
/// first accepted body per Idempotency-Key, as a deduplicating receiver would; later ones for
/// the same key count as duplicates.
/// </summary>
internal sealed class PushReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly List<ReceivedRequest> _requests = [];
    private readonly Dictionary<string, byte[]> _stored = new(StringComparer.Ordinal);
    private readonly List<string> _storedOrder = [];
    private int _duplicates;

    private PushReceiver(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public Uri Endpoint => new($"http://127.0.0.1:{Port}/push");

    /// <summary>Decides each request's reply (index from 0); Accept when null.</summary>
    public Func<int, Reply>? Behaviour { get; set; }

    /// <summary>A status to answer instead of storing (e.g. 401), when set.</summary>
    public int? FixedStatus { get; set; }

    /// <summary>Buckets to refuse with 400 (bad request), by bucket number.</summary>
    public HashSet<long> Refuse { get; } = [];

    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromMilliseconds(400);

    public static async Task<PushReceiver> StartAsync(int port = 0)
    {
        if (port == 0) port = Web.TestPki.FreePort();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var receiver = new PushReceiver(app, port);
        app.MapPost("/push", receiver.HandleAsync);
        await app.StartAsync();
        return receiver;
    }

    public IReadOnlyList<ReceivedRequest> Requests
    {
        get
        {
            lock (_gate) return _requests.ToList();
        }
    }

    /// <summary>Accepted bodies per Idempotency-Key (the first of each).</summary>
    public IReadOnlyDictionary<string, byte[]> Stored
    {
        get
        {
            lock (_gate) return new Dictionary<string, byte[]>(_stored);
        }
    }

    /// <summary>Keys in the order they were first stored.</summary>
    public IReadOnlyList<string> StoredOrder
    {
        get
        {
            lock (_gate) return _storedOrder.ToList();
        }
    }

    /// <summary>Deliveries of a key already stored (deduplicated away).</summary>
    public int Duplicates
    {
        get
        {
            lock (_gate) return _duplicates;
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        var key = context.Request.Headers["Idempotency-Key"].ToString();
        Reply reply;
        int index;
        lock (_gate)
        {
            index = _requests.Count;
            reply = Behaviour?.Invoke(index) ?? Reply.Accept;
        }
        var status = reply switch
        {
            Reply.Accept or Reply.LateSuccess => FixedStatus ?? (Refuse.Contains(BucketOf(body)) ? 400 : 200),
            Reply.Fail500 or Reply.Hang => 500,
            Reply.TooMany => 429,
            _ => 0,
        };
        lock (_gate)
        {
            _requests.Add(new ReceivedRequest(index, context.Request.Headers.Authorization.ToString(), key,
                context.Request.ContentType, body, reply, status));
            if (status == 200)
            {
                if (_stored.TryAdd(key, body)) _storedOrder.Add(key);
                else _duplicates++;
            }
        }
        switch (reply)
        {
            case Reply.Abort:
                context.Abort();
                return;
            case Reply.LateSuccess or Reply.Hang:
                try
                {
                    await Task.Delay(SlowDelay, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                break;
            case Reply.TooMany:
                context.Response.Headers.RetryAfter = "0";
                break;
        }
        context.Response.StatusCode = status;
        if (status == 400) await context.Response.WriteAsync("bucket rejected by test");
        if (status == 401) await context.Response.WriteAsync("bad token");
    }

    private static long BucketOf(byte[] body)
    {
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("bucket").GetInt64();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A logger that keeps what was logged.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public IReadOnlyList<(LogLevel Level, string Message)> Entries => _entries.ToList();

    public int Count(LogLevel level, string contains) =>
        _entries.Count(e => e.Level == level && e.Message.Contains(contains, StringComparison.Ordinal));

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel)) _entries.Enqueue((logLevel, formatter(state, exception)));
    }
}

/// <summary>Reads what a bucket holds straight from SQLite, as the receiver should have it.</summary>
internal static class PushDb
{
    public static SqliteConnection Connect(string path)
    {
        var c = new SqliteConnection($"Data Source={path};Pooling=False");
        c.Open();
        return c;
    }

    /// <summary>Rows of traffic_detail ("client|port|proto|ub|db|up|dp") for one bucket, sorted.</summary>
    public static List<string> Clients(string path, long bucket) =>
        Rows(path, "SELECT client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets FROM traffic_detail WHERE bucket = $b", bucket);

    public static List<string> Totals(string path, long bucket) =>
        Rows(path, "SELECT port, proto, up_bytes, down_bytes, up_packets, down_packets FROM traffic_host WHERE bucket = $b", bucket);

    public static List<long> BucketsWithTraffic(string path)
    {
        using var c = Connect(path);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT bucket FROM traffic_detail UNION SELECT bucket FROM traffic_host ORDER BY 1";
        using var r = cmd.ExecuteReader();
        var list = new List<long>();
        while (r.Read()) list.Add(r.GetInt64(0));
        return list;
    }

    public static Dictionary<long, (string State, long Attempts, string? Error)> Outbox(string path)
    {
        using var c = Connect(path);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT bucket, state, attempts, last_error FROM push_outbox";
        using var r = cmd.ExecuteReader();
        var map = new Dictionary<long, (string, long, string?)>();
        while (r.Read()) map[r.GetInt64(0)] = (r.GetString(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetString(3));
        return map;
    }

    /// <summary>The same strings from a received JSON body.</summary>
    public static (string Host, long Bucket, long End, List<string> Clients, List<string> Totals) Parse(byte[] body)
    {
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        static string Nums(JsonElement e) => string.Join('|',
            e.GetProperty("up_bytes").GetInt64(), e.GetProperty("down_bytes").GetInt64(),
            e.GetProperty("up_packets").GetInt64(), e.GetProperty("down_packets").GetInt64());
        var clients = root.GetProperty("clients").EnumerateArray()
            .Select(e => $"{e.GetProperty("client").GetString()}|{e.GetProperty("port").GetInt64()}|{e.GetProperty("proto").GetString()}|{Nums(e)}")
            .Order(StringComparer.Ordinal).ToList();
        var totals = root.GetProperty("totals").EnumerateArray()
            .Select(e => $"{e.GetProperty("port").GetInt64()}|{e.GetProperty("proto").GetString()}|{Nums(e)}")
            .Order(StringComparer.Ordinal).ToList();
        return (root.GetProperty("host").GetString()!, root.GetProperty("bucket").GetInt64(), root.GetProperty("bucket_end").GetInt64(), clients, totals);
    }

    /// <summary>Writes history rows directly (fast, for big backlogs): per bucket, each client on 9984/udp and the host total.</summary>
    public static void InsertBuckets(string path, IEnumerable<long> buckets, int clients)
    {
        using var c = Connect(path);
        using var tx = c.BeginTransaction();
        foreach (var bucket in buckets)
        {
            long sumUp = 0, sumDown = 0;
            for (var i = 0; i < clients; i++)
            {
                long up = bucket / 300 % 1000 + i, down = 7 * i + 1;
                sumUp += up;
                sumDown += down;
                Exec(c, tx, "INSERT INTO traffic_detail VALUES ($b, $ip, 9984, 'udp', $u, $d, 1, 2)", bucket, $"203.0.113.{i + 1}", up, down);
            }
            Exec(c, tx, "INSERT INTO traffic_host VALUES ($b, 9984, 'udp', $u, $d, $up, $dp)", bucket, null, sumUp, sumDown, clients, 2L * clients);
        }
        tx.Commit();
    }

    private static void Exec(SqliteConnection c, SqliteTransaction tx, string sql, long bucket, string? ip, long up, long down, long upPackets = 0, long downPackets = 0)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$b", bucket);
        if (ip is not null) cmd.Parameters.AddWithValue("$ip", ip);
        cmd.Parameters.AddWithValue("$u", up);
        cmd.Parameters.AddWithValue("$d", down);
        if (sql.Contains("$up", StringComparison.Ordinal)) cmd.Parameters.AddWithValue("$up", upPackets);
        if (sql.Contains("$dp", StringComparison.Ordinal)) cmd.Parameters.AddWithValue("$dp", downPackets);
        cmd.ExecuteNonQuery();
    }

    private static List<string> Rows(string path, string sql, long bucket)
    {
        using var c = Connect(path);
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$b", bucket);
        using var r = cmd.ExecuteReader();
        var rows = new List<string>();
        while (r.Read())
            rows.Add(string.Join('|', Enumerable.Range(0, r.FieldCount).Select(i => Convert.ToString(r.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        rows.Sort(StringComparer.Ordinal);
        return rows;
    }
}
