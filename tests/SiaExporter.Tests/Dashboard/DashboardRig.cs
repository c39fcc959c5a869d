using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Dashboard;
using SiaExporter.Hosting;
using SiaExporter.Storage;
using SiaExporter.Tests.Storage;
using SiaExporter.Tests.Web;
using SiaExporter.Web;

namespace SiaExporter.Tests.Dashboard;

/// <summary>One seeded row of traffic_detail (Client set) or traffic_host (Client null).</summary>
internal sealed record SeedDetail(long Bucket, string? Client, string Class, long UpBytes, long DownBytes, long UpPackets, long DownPackets)
{
    public long Bytes(string direction) => direction == "up" ? UpBytes : DownBytes;
    public long Packets(string direction) => direction == "up" ? UpPackets : DownPackets;
}

/// <summary>
/// A history database seeded with known rows (three days of 5-minute buckets, clients v4 and v6,
/// overflow, a class of an earlier PORTS, one 9981 spike) and the dashboard served on it exactly
/// as the daemon wires it (ConfigureCollectorEndpoint + MapDashboard) on a loopback port.
/// </summary>
internal sealed class DashboardRig : IAsyncDisposable
{
    public static readonly DateTimeOffset Now = new(2026, 3, 14, 12, 2, 0, TimeSpan.Zero);
    public static readonly long Start = StartOf(Now);
    public static readonly long SpikeBucket = SpikeOf(Start);

    /// <summary>The seeded rows cover the three days before <paramref name="now"/>'s bucket.</summary>
    public static long StartOf(DateTimeOffset now) => now.ToUnixTimeSeconds() - now.ToUnixTimeSeconds() % 300 - 3 * 86400;

    /// <summary>The one 9981 spike: a day and three hours after a full day of baseline.</summary>
    public static long SpikeOf(long start) => start + 2 * 86400 + 36 * 300;
    public static readonly string[] Clients = ["203.0.113.7", "203.0.113.99", "198.51.100.4", "2001:db8:1:2::5", "2001:db8:1:3::9", HistorySchema.OverflowClient];

    private readonly WebApplication _app;
    private readonly StorageFixture _storage;

    private DashboardRig(WebApplication app, StorageFixture storage, List<SeedDetail> rows, int port, LiveRates live, CounterSnapshot snapshot)
    {
        _app = app;
        _storage = storage;
        Rows = rows;
        Port = port;
        Live = live;
        Snapshot = snapshot;
    }

    public List<SeedDetail> Rows { get; }
    public int Port { get; }
    public LiveRates Live { get; }
    public CounterSnapshot Snapshot { get; }
    public string DatabasePath => _storage.DbPath;

    /// <param name="realTime">Seed the three days before now and serve on the system clock (for a
    /// browser, whose ranges follow its own clock), with two live samples 10 s apart.</param>
    public static async Task<DashboardRig> StartAsync(ClientPrefix? anonymize = null, WebConfig? web = null, bool seed = true, bool realTime = false)
    {
        var now = realTime ? DateTimeOffset.UtcNow : Now;
        var storage = new StorageFixture();
        var rows = new List<SeedDetail>();
        Directory.CreateDirectory(Path.GetDirectoryName(storage.DbPath)!);
        using (var connection = storage.Connect())
        {
            connection.Execute("PRAGMA journal_mode=WAL");
            HistorySchema.Ensure(connection, NullLogger.Instance);
            if (seed) Seed(connection, rows, StartOf(now));
        }
        var options = new CollectorOptions { SqlitePath = storage.DbPath, SiaHostname = "seeded", Anonymize = anonymize ?? ClientPrefix.None };
        var snapshot = StorageFixture.Snap(StorageFixture.Gen1, now, ("203.0.113.7", [5000, 6000, 7000, 8000, 9000, 10000]));
        TimeProvider time = realTime ? TimeProvider.System : new ManualTime(now);
        var live = new LiveRates(() => snapshot, time, NullLogger<LiveRates>.Instance);
        if (realTime)
        {
            live.Add(StorageFixture.Snap(StorageFixture.Gen1, now.AddSeconds(-10), ("203.0.113.7", [1000, 2000, 3000, 4000, 5000, 6000])));
            live.Add(snapshot);
        }
        var api = new DashboardApi(options, () => snapshot, live, time, version: "test");
        var port = TestPki.FreePort();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.ConfigureCollectorEndpoint(new ListenAddress("127.0.0.1", port), web);
        var app = builder.Build();
        app.MapDashboard(api, time);
        await app.StartAsync();
        return new DashboardRig(app, storage, rows, port, live, snapshot);
    }

    private static void Seed(SqliteConnection connection, List<SeedDetail> rows, long start)
    {
        var spikeBucket = SpikeOf(start);
        var random = new Random(13);
        string[] classes = ["9981/tcp", "9984/tcp", "9984/udp"];
        using var tx = connection.BeginTransaction();
        for (var bucket = start; bucket < start + 3 * 86400; bucket += 300)
        {
            var host = new Dictionary<string, (long Up, long Down, long UpP, long DownP)>();
            foreach (var client in Clients)
            {
                if (random.Next(3) == 0 && !(bucket == spikeBucket && client == Clients[0])) continue; // idle in this bucket
                foreach (var cls in classes)
                {
                    if (random.Next(4) == 0 && !(bucket == spikeBucket && client == Clients[0] && cls == "9981/tcp")) continue;
                    var row = new SeedDetail(bucket, client, cls, random.Next(0, 2_000_000), random.Next(0, 3_000_000), random.Next(0, 2000), random.Next(0, 3000));
                    // The 9981 spike: 3 GiB more down in one bucket (over 1 MiB/s and 4 x the day's average).
                    if (bucket == spikeBucket && client == Clients[0] && cls == "9981/tcp")
                        row = row with { DownBytes = row.DownBytes + (3L << 30), DownPackets = row.DownPackets + 2_000_000 };
                    Insert(connection, tx, row);
                    var h = host.GetValueOrDefault(cls);
                    host[cls] = (h.Up + row.UpBytes, h.Down + row.DownBytes, h.UpP + row.UpPackets, h.DownP + row.DownPackets);
                }
            }
            // A class of an earlier PORTS, for one client, in the first hours.
            if (bucket < start + 4 * 3600)
            {
                var legacy = new SeedDetail(bucket, Clients[2], "8080/tcp", 1000, 2000, 10, 20);
                Insert(connection, tx, legacy);
                host["8080/tcp"] = (1000, 2000, 10, 20);
            }
            // Host totals hold traffic of evicted clients too: more than the sum of the client rows.
            foreach (var (cls, h) in host)
            {
                var extra = random.Next(0, 5000);
                var row = new SeedDetail(bucket, null, cls, h.Up + extra, h.Down + extra, h.UpP + 1, h.DownP + 1);
                Insert(connection, tx, row);
            }
        }
        tx.Commit();

        void Insert(SqliteConnection c, SqliteTransaction t, SeedDetail row)
        {
            rows.Add(row);
            using var cmd = c.CreateCommand();
            cmd.Transaction = t;
            var (port, proto) = (long.Parse(row.Class.Split('/')[0], System.Globalization.CultureInfo.InvariantCulture), row.Class.Split('/')[1]);
            cmd.CommandText = row.Client is null
                ? "INSERT INTO traffic_host VALUES ($b, $port, $proto, $ub, $db, $up, $dp)"
                : "INSERT INTO traffic_detail VALUES ($b, $c, $port, $proto, $ub, $db, $up, $dp)";
            cmd.Parameters.AddWithValue("$b", row.Bucket);
            if (row.Client is not null) cmd.Parameters.AddWithValue("$c", row.Client);
            cmd.Parameters.AddWithValue("$port", port);
            cmd.Parameters.AddWithValue("$proto", proto);
            cmd.Parameters.AddWithValue("$ub", row.UpBytes);
            cmd.Parameters.AddWithValue("$db", row.DownBytes);
            cmd.Parameters.AddWithValue("$up", row.UpPackets);
            cmd.Parameters.AddWithValue("$dp", row.DownPackets);
            cmd.ExecuteNonQuery();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _storage.Dispose();
    }
}

internal static class SqliteConnectionExtensions
{
    public static void Execute(this SqliteConnection connection, string sql)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
