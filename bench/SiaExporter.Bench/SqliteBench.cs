using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Storage;

namespace SiaExporter.Bench;

/// <summary>
/// `SiaExporter.Bench sqlite [--dir DIR] [--tiers]`: one flush of 10,000 and of 100,000 clients (every
/// slot moved: the worst case) into a database already holding 30 days of 5-minute history for
/// 1,000 clients; prints flush times (first flush of a bucket: inserts; later flush in the same
/// bucket: updates) and the database growth per day at that client count; then the steady-state
/// size of each tier with the default retention at 10,000 clients active all day (<see cref="TierSizes"/>).
/// </summary>
public static class SqliteBench
{
    private const int HistoryClients = 1000;
    private const int HistoryDays = 30;

    public static int Run(string[] args)
    {
        var dir = args.Length >= 2 && args[0] == "--dir" ? args[1] : Path.Combine(Path.GetTempPath(), "sia-sqlite-bench");
        Directory.CreateDirectory(dir);
        var ports = PortClassSet.DefaultSet;
        var now = DateTimeOffset.UtcNow;
        if (args.Contains("--tiers"))
        {
            TierSizes(dir, ports, now); // only the steady-state sizes (seconds, not minutes)
            return 0;
        }
        var seed = Path.Combine(dir, "history-30d.db");
        if (!File.Exists(seed)) BuildHistory(seed, ports, now);
        var seedSize = new FileInfo(seed).Length;
        Console.WriteLine($"history: {HistoryDays} days × 288 buckets × {HistoryClients:N0} clients, {seedSize / 1e6:F1} MB ({seedSize / 1e6 / HistoryDays:F2} MB/day)");
        WarmUp(dir, ports, now);
        Console.WriteLine();
        Console.WriteLine($"{"clients",10} {"1st flush (insert)",20} {"2nd flush (update)",20} {"idle flush",12} {"MB/day",10} {"checkpoint (after, max)",24}");
        foreach (var clients in new[] { 10_000, 100_000 })
        {
            var db = Path.Combine(dir, $"flush-{clients}.db");
            foreach (var f in new[] { db, db + "-wal", db + "-shm" }) File.Delete(f);
            File.Copy(seed, db);
            using var history = TrafficHistory.Open(db, ports, NullLogger.Instance, TimeProvider.System);
            var bucket = Buckets.Of(now);
            var addresses = Enumerable.Range(0, clients)
                .Select(i => ClientAddress.Parse($"10.{2 + i / 65536}.{i / 256 % 256}.{i % 256}")).ToArray();
            var first = Time(history, Snapshot(ports, addresses, 1, now), bucket);
            var second = Time(history, Snapshot(ports, addresses, 2, now), bucket);
            var idle = Time(history, Snapshot(ports, addresses, 2, now), bucket);
            var before = Checkpointed(db);
            Time(history, Snapshot(ports, addresses, 3, now), bucket + Buckets.Seconds);
            var perBucket = Checkpointed(db) - before;
            Console.WriteLine($"{clients,10:N0} {first.TotalMilliseconds,17:F0} ms {second.TotalMilliseconds,17:F0} ms {idle.TotalMilliseconds,9:F0} ms {perBucket * 288 / 1e6,10:F0} {Checkpoints.Max().TotalMilliseconds,12:F0} ms");
            Checkpoints.Clear();
        }
        Console.WriteLine();
        TierSizes(dir, ports, now);
        return 0;
    }

    private const int SteadyClients = 10_000;
    private const int SampleClients = 1000;

    /// <summary>
    /// The steady-state size of every tier at the default retention for <see cref="SteadyClients"/>
    /// clients active in every 5-minute bucket on two classes (9981/tcp and 9984/tcp, what a host
    /// mostly sees; the worst case of the figure in the issue): each table is filled alone, in key
    /// order as the daemon appends, with one day of <see cref="SampleClients"/> clients; its bytes
    /// per row times rows per day times the tier's days is its steady size.
    /// </summary>
    private static void TierSizes(string dir, PortClassSet ports, DateTimeOffset now)
    {
        var tiers = HistoryTiers.From(new Hosting.DatabaseOptions());
        var day = now.ToUnixTimeSeconds() / 86_400 * 86_400 - 86_400;
        Console.WriteLine($"steady state at {SteadyClients:N0} clients active all day, default retention:");
        Console.WriteLine($"{"table",-22} {"days",5} {"rows/day",12} {"B/row",7} {"MB",9}");
        double total = 0;
        foreach (var tier in tiers)
        {
            var tables = tier.Resolution == Resolution.FiveMinutes
                ? new[] { ("traffic", true), (tier.ClientTable, true), (tier.HostTable, false) }
                : [(tier.ClientTable, true), (tier.HostTable, false)];
            double tierBytes = 0;
            foreach (var (table, perClient) in tables)
            {
                var bucketsPerDay = 86_400 / tier.BucketSeconds;
                var classes = table == "traffic" ? 1 : 2;
                var sampleRows = bucketsPerDay * classes * (perClient ? SampleClients : 1);
                var bytesPerRow = (double)FilledSize(dir, ports, table, day, tier.BucketSeconds, perClient ? SampleClients : 1) / sampleRows;
                var rowsPerDay = bucketsPerDay * classes * (perClient ? SteadyClients : 1);
                var bytes = bytesPerRow * rowsPerDay * tier.RetentionDays;
                tierBytes += bytes;
                Console.WriteLine($"{table,-22} {tier.RetentionDays,5} {rowsPerDay,12:N0} {bytesPerRow,7:F1} {bytes / 1e6,9:F0}");
            }
            Console.WriteLine($"{"  tier " + tier.Label,-22} {tier.RetentionDays,5} {"",12} {"",7} {tierBytes / 1e6,9:F0}");
            total += tierBytes;
        }
        Console.WriteLine($"{"whole history",-22} {"",5} {"",12} {"",7} {total / 1e6,9:F0}  ({total / 1e9:F2} GB)");
    }

    /// <summary>The file growth of one day of rows of <paramref name="table"/> alone, in key order.</summary>
    private static long FilledSize(string dir, PortClassSet ports, string table, long day, long bucketSeconds, int clients)
    {
        var db = Path.Combine(dir, $"tier-{table}.db");
        foreach (var f in new[] { db, db + "-wal", db + "-shm" }) File.Delete(f);
        TrafficHistory.Open(db, ports, NullLogger.Instance, TimeProvider.System).Dispose();
        var empty = Checkpointed(db);
        using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            c.Open();
            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            var insert = table switch
            {
                "traffic" => """
                    INSERT INTO traffic (client_ip, up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp, timestamp)
                        SELECT ip, abs(random() % 1000000), abs(random() % 1000000), abs(random() % 100000000), abs(random() % 100000000), 0, 0, t
                        FROM b, c ORDER BY t, ip
                    """,
                "traffic_host" or "traffic_host_hourly" or "traffic_host_daily" => $"""
                    INSERT INTO {table} (bucket, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                        SELECT t, port, proto, abs(random() % 100000000000), abs(random() % 100000000000), abs(random() % 100000000), abs(random() % 100000000)
                        FROM b, k ORDER BY t, port, proto
                    """,
                _ => $"""
                    INSERT INTO {table} (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                        SELECT t, ip, port, proto, abs(random() % {100_000_000L * bucketSeconds / 300}), abs(random() % {100_000_000L * bucketSeconds / 300}),
                               abs(random() % {100_000L * bucketSeconds / 300}), abs(random() % {100_000L * bucketSeconds / 300})
                        FROM b, c, k ORDER BY t, ip, port, proto
                    """,
            };
            cmd.CommandText = $"""
                CREATE TEMP TABLE b AS WITH RECURSIVE b(t) AS (SELECT $start UNION ALL SELECT t + $step FROM b WHERE t + $step < $end) SELECT t FROM b;
                CREATE TEMP TABLE c AS WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < $clients)
                    SELECT '10.1.' || (i / 256) || '.' || (i % 256) AS ip FROM c;
                CREATE TEMP TABLE k(port, proto);
                INSERT INTO k VALUES (9981, 'tcp'), (9984, 'tcp');
                {insert};
                """;
            cmd.Parameters.AddWithValue("$start", day);
            cmd.Parameters.AddWithValue("$end", day + 86_400);
            cmd.Parameters.AddWithValue("$step", bucketSeconds);
            cmd.Parameters.AddWithValue("$clients", clients);
            cmd.ExecuteNonQuery();
            tx.Commit();
        }
        var size = Checkpointed(db) - empty;
        foreach (var f in new[] { db, db + "-wal", db + "-shm" }) File.Delete(f);
        return Math.Max(size, 4096);
    }

    private static readonly List<TimeSpan> Checkpoints = [];

    /// <summary>The daemon flushes every minute, so its flush code is tiered up; get there first.</summary>
    private static void WarmUp(string dir, PortClassSet ports, DateTimeOffset now)
    {
        var db = Path.Combine(dir, "warmup.db");
        foreach (var f in new[] { db, db + "-wal", db + "-shm" }) File.Delete(f);
        using var history = TrafficHistory.Open(db, ports, NullLogger.Instance, TimeProvider.System);
        var addresses = Enumerable.Range(0, 2000).Select(i => ClientAddress.Parse($"10.9.{i / 256}.{i % 256}")).ToArray();
        for (var round = 1; round <= 60; round++)
            Time(history, Snapshot(ports, addresses, round, now), Buckets.Of(now) + round * Buckets.Seconds);
        Checkpoints.Clear();
    }

    private static TimeSpan Time(TrafficHistory history, CounterSnapshot snapshot, long bucket)
    {
        var started = Stopwatch.GetTimestamp();
        var result = history.FlushAsync(snapshot, Buckets.StartOf(bucket)).GetAwaiter().GetResult();
        var elapsed = Stopwatch.GetElapsedTime(started);
        if (!result.Committed) throw new InvalidOperationException($"flush failed: {result.Error}");
        var checkpoint = Stopwatch.GetTimestamp();
        history.CheckpointAsync().GetAwaiter().GetResult();
        Checkpoints.Add(Stopwatch.GetElapsedTime(checkpoint));
        return elapsed;
    }

    private static long Checkpointed(string db)
    {
        using var c = new SqliteConnection($"Data Source={db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
        cmd.ExecuteNonQuery();
        return new FileInfo(db).Length;
    }

    /// <summary>Counters that grew by a few MB on every slot per round.</summary>
    private static CounterSnapshot Snapshot(PortClassSet ports, ClientAddress[] clients, int round, DateTimeOffset at)
    {
        var slots = new Traffic[clients.Length * ports.SlotCount];
        for (var i = 0; i < slots.Length; i++)
            slots[i] = new Traffic((ulong)(round * (1_000_000 + i % 7919)), (ulong)(round * (700 + i % 13)));
        var totals = new Traffic[ports.SlotCount];
        for (var i = 0; i < slots.Length; i++) totals[i % ports.SlotCount] += slots[i];
        return new CounterSnapshot(ports, new MapGeneration("bench", 1), at, clients, slots, totals, new Traffic[ports.SlotCount]);
    }

    /// <summary>30 days of buckets for 1,000 clients: traffic rows plus two detail rows each
    /// (9984/tcp and 9981/tcp: what a host mostly sees), written in bulk by SQL.</summary>
    private static void BuildHistory(string path, PortClassSet ports, DateTimeOffset now)
    {
        Console.WriteLine("building the 30-day history (once; kept for later runs) …");
        var tmp = path + ".tmp";
        foreach (var f in new[] { tmp, tmp + "-wal", tmp + "-shm" }) File.Delete(f);
        TrafficHistory.Open(tmp, ports, NullLogger.Instance, TimeProvider.System).Dispose();
        var end = Buckets.Of(now) - Buckets.Seconds;
        var start = end - HistoryDays * 86_400L;
        var started = Stopwatch.GetTimestamp();
        using (var c = new SqliteConnection($"Data Source={tmp};Pooling=False"))
        {
            c.Open();
            using var tx = c.BeginTransaction();
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = """
                CREATE TEMP TABLE b AS WITH RECURSIVE b(t) AS (SELECT $start UNION ALL SELECT t + 300 FROM b WHERE t + 300 < $end) SELECT t FROM b;
                CREATE TEMP TABLE c AS WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < $clients)
                    SELECT '10.1.' || (i / 256) || '.' || (i % 256) AS ip FROM c;
                CREATE TEMP TABLE k(port, proto);
                INSERT INTO k VALUES (9981, 'tcp'), (9984, 'tcp');
                INSERT INTO traffic (client_ip, up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp, timestamp)
                    SELECT ip, abs(random() % 1000000), abs(random() % 1000000), abs(random() % 100000000), abs(random() % 100000000), 0, 0, t
                    FROM b, c ORDER BY t, ip;
                INSERT INTO traffic_detail (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                    SELECT t, ip, port, proto, abs(random() % 100000000), abs(random() % 100000000), abs(random() % 100000), abs(random() % 100000)
                    FROM b, c, k ORDER BY t, ip, port, proto;
                """;
            cmd.Parameters.AddWithValue("$start", start);
            cmd.Parameters.AddWithValue("$end", end);
            cmd.Parameters.AddWithValue("$clients", HistoryClients);
            cmd.ExecuteNonQuery();
            tx.Commit();
            using var checkpoint = c.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            checkpoint.ExecuteNonQuery();
        }
        File.Move(tmp, path);
        Console.WriteLine($"built in {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
    }
}
