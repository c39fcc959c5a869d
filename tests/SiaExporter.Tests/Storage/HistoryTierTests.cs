using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Storage;
using SiaExporter.Tests.Clock;
using Xunit;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

/// <summary>The hourly and daily tiers: exact, never twice, migrated in place, read across.</summary>
public sealed class HistoryTierTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 21, 3, 0, TimeSpan.Zero);
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    /// <summary>Per (client, port, proto, bucket of <paramref name="seconds"/>): up, down bytes and packets, summed from <paramref name="table"/>.</summary>
    private Dictionary<(string, long, string, long), (long, long, long, long)> Sums(string table, long seconds, string client = "client_ip")
    {
        using var c = _f.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            SELECT {client}, port, proto, bucket - bucket % {seconds}, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
            FROM {table} GROUP BY 1, 2, 3, 4
            """;
        using var r = cmd.ExecuteReader();
        var sums = new Dictionary<(string, long, string, long), (long, long, long, long)>();
        while (r.Read())
            sums[(r.GetString(0), r.GetInt64(1), r.GetString(2), r.GetInt64(3))] = (r.GetInt64(4), r.GetInt64(5), r.GetInt64(6), r.GetInt64(7));
        return sums;
    }

    private void AssertTiersAgree()
    {
        // Every hour of the 5-minute rows is the hourly row; every day of the hourly rows is the daily row.
        Assert.Equal(Sums("traffic_detail", 3600).OrderBy(k => k.Key), Sums("traffic_hourly", 3600).OrderBy(k => k.Key));
        Assert.Equal(Sums("traffic_hourly", 86400).OrderBy(k => k.Key), Sums("traffic_daily", 86400).OrderBy(k => k.Key));
        Assert.Equal(Sums("traffic_host", 3600, "'host'").OrderBy(k => k.Key), Sums("traffic_host_hourly", 3600, "'host'").OrderBy(k => k.Key));
        Assert.Equal(Sums("traffic_host_hourly", 86400, "'host'").OrderBy(k => k.Key), Sums("traffic_host_daily", 86400, "'host'").OrderBy(k => k.Key));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Random_histories_roll_up_exactly_once_into_every_tier(int seed)
    {
        var random = new Random(seed);
        var time = new SteppingTime(T0);
        var clients = Enumerable.Range(0, 40).Select(i => i % 4 == 0 ? $"2001:db8::{i:x}" : $"10.0.{i / 200}.{i % 200 + 1}").ToArray();
        var counters = clients.ToDictionary(c => c, _ => new ulong[6]);
        var overflow = new ulong[6];
        var gen = Gen1;
        ulong counted = 0; // every byte the kernel counted, by the model
        var history = _f.Open(time);
        try
        {
            for (var step = 0; step < 300; step++)
            {
                // Time moves a minute or so, sometimes a lot; the wall clock sometimes steps either way.
                time.Advance(TimeSpan.FromSeconds(random.Next(1, 8) * 60 + random.Next(0, 3) * 1800));
                if (random.Next(30) == 0) time.Step(TimeSpan.FromMinutes(random.Next(-90, 180)));
                if (random.Next(60) == 0)
                {
                    // The maps are recreated right after a flush read them: counting restarts from zero.
                    gen = gen == Gen1 ? Gen2 : Gen1;
                    foreach (var c in clients) Array.Clear(counters[c]);
                    Array.Clear(overflow);
                }
                foreach (var c in clients)
                {
                    if (random.Next(3) != 0) continue;
                    var s = random.Next(6);
                    var add = (ulong)random.Next(1, 1_000_000);
                    counters[c][s] += add;
                    counted += add;
                }
                if (random.Next(5) == 0)
                {
                    var add = (ulong)random.Next(1, 5000);
                    overflow[random.Next(6)] += add;
                    counted += add;
                }
                history.BeforeCommit = random.Next(6) == 0 ? () => throw new SqliteException("injected", 10) : null;
                if (random.Next(40) == 0 && !history.IsFailing)
                {
                    history.Dispose(); // a restart: the baseline comes back from the file
                    history = _f.Open(time);
                }
                await history.FlushAsync(Snap(gen, time.GetUtcNow(), overflow.ToArray(), clients.Select(c => (c, counters[c].ToArray())).ToArray()));
            }
            history.BeforeCommit = null;
            await history.FlushAsync(Snap(gen, time.GetUtcNow(), overflow.ToArray(), clients.Select(c => (c, counters[c].ToArray())).ToArray()));
        }
        finally
        {
            history.Dispose();
        }
        AssertTiersAgree();
        foreach (var table in new[] { "traffic_detail", "traffic_hourly", "traffic_daily", "traffic_host", "traffic_host_hourly", "traffic_host_daily" })
            Assert.Equal((long)counted, _f.Scalar($"SELECT sum(up_bytes + down_bytes) FROM {table}"));
    }

    /// <summary>The schema of the collector before the tiers (user_version 0), with rows in it.</summary>
    private void WriteTodaysDatabase(long bucket)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_f.DbPath)!);
        using var c = _f.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"""
            CREATE TABLE traffic (client_ip TEXT NOT NULL, up_9981 INTEGER NOT NULL DEFAULT 0, down_9981 INTEGER NOT NULL DEFAULT 0,
                up_9984_tcp INTEGER NOT NULL DEFAULT 0, down_9984_tcp INTEGER NOT NULL DEFAULT 0, up_9984_udp INTEGER NOT NULL DEFAULT 0,
                down_9984_udp INTEGER NOT NULL DEFAULT 0, timestamp INTEGER NOT NULL);
            CREATE TABLE traffic_detail (bucket INTEGER NOT NULL, client_ip TEXT NOT NULL, port INTEGER NOT NULL, proto TEXT NOT NULL,
                up_bytes INTEGER NOT NULL, down_bytes INTEGER NOT NULL, up_packets INTEGER NOT NULL, down_packets INTEGER NOT NULL,
                PRIMARY KEY (bucket, client_ip, port, proto)) WITHOUT ROWID;
            CREATE TABLE traffic_host (bucket INTEGER NOT NULL, port INTEGER NOT NULL, proto TEXT NOT NULL, up_bytes INTEGER NOT NULL,
                down_bytes INTEGER NOT NULL, up_packets INTEGER NOT NULL, down_packets INTEGER NOT NULL, PRIMARY KEY (bucket, port, proto)) WITHOUT ROWID;
            CREATE TABLE counter_baseline (client TEXT NOT NULL PRIMARY KEY, slots BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE collector_state (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
            CREATE UNIQUE INDEX traffic_bucket_client ON traffic(timestamp, client_ip);
            -- two 5-minute buckets of one hour, written by today's collector (traffic + detail + host)
            INSERT INTO traffic VALUES ('10.0.0.1', 100, 200, 0, 0, 0, 0, {bucket}), ('10.0.0.1', 1, 2, 0, 0, 0, 0, {bucket + 300});
            INSERT INTO traffic_detail VALUES ({bucket}, '10.0.0.1', 9981, 'tcp', 100, 200, 1, 2), ({bucket + 300}, '10.0.0.1', 9981, 'tcp', 1, 2, 1, 1),
                ({bucket}, '10.0.0.1', 5000, 'udp', 7, 8, 1, 1);
            INSERT INTO traffic_host VALUES ({bucket}, 9981, 'tcp', 100, 200, 1, 2), ({bucket + 300}, 9981, 'tcp', 1, 2, 1, 1), ({bucket}, 5000, 'udp', 7, 8, 1, 1);
            -- a day earlier, the original collector: traffic rows only
            INSERT INTO traffic VALUES ('10.0.0.9', 0, 0, 50, 60, 0, 70, {bucket - 86400});
            """;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public async Task A_database_of_todays_version_migrates_in_place_once()
    {
        var bucket = Buckets.Of(T0) - Buckets.Of(T0) % 3600;
        WriteTodaysDatabase(bucket);
        var time = new SteppingTime(T0);
        using (var h = _f.Open(time)) await h.FlushAsync(Snap(Gen1, T0)); // opens, migrates
        using (var h = _f.Open(time)) await h.FlushAsync(Snap(Gen1, T0)); // opens again: nothing twice

        Assert.Equal(HistorySchema.Version, _f.Scalar("PRAGMA user_version"));
        Assert.Equal(101, _f.Scalar("SELECT up_bytes FROM traffic_hourly WHERE bucket = $b AND client_ip = '10.0.0.1' AND port = 9981", ("$b", bucket)));
        Assert.Equal(3, _f.Scalar("SELECT down_packets FROM traffic_hourly WHERE bucket = $b AND client_ip = '10.0.0.1' AND port = 9981", ("$b", bucket)));
        Assert.Equal(8, _f.Scalar("SELECT down_bytes FROM traffic_daily WHERE client_ip = '10.0.0.1' AND port = 5000"));
        Assert.Equal(202, _f.Scalar("SELECT down_bytes FROM traffic_host_daily WHERE port = 9981"));
        // the original collector's rows: its three columns, packets unknown (0)
        Assert.Equal(50, _f.Scalar("SELECT up_bytes FROM traffic_daily WHERE client_ip = '10.0.0.9' AND port = 9984 AND proto = 'tcp'"));
        Assert.Equal(70, _f.Scalar("SELECT down_bytes FROM traffic_hourly WHERE client_ip = '10.0.0.9' AND port = 9984 AND proto = 'udp'"));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM traffic_hourly WHERE client_ip = '10.0.0.9' AND port = 9981"));
        Assert.Equal(3, _f.Scalar("SELECT count(*) FROM traffic_detail")); // the 5-minute rows are untouched
    }

    [Fact]
    public async Task A_failed_migration_leaves_the_file_as_it_was()
    {
        var bucket = Buckets.Of(T0) - Buckets.Of(T0) % 3600;
        WriteTodaysDatabase(bucket);
        using (var c = _f.Connect())
        using (var cmd = c.CreateCommand())
        {
            // a table in the way of the migration (hand-made, wrong columns)
            cmd.CommandText = "CREATE TABLE traffic_daily (bucket INTEGER, note TEXT)";
            cmd.ExecuteNonQuery();
        }
        using (var h = _f.Open(new SteppingTime(T0)))
        {
            var result = await h.FlushAsync(Snap(Gen1, T0));
            Assert.False(result.Committed);
            Assert.True(h.IsFailing);
        }
        Assert.Equal(0, _f.Scalar("PRAGMA user_version"));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'traffic_hourly'"));
    }

    [Fact]
    public async Task Export_and_top_read_hourly_rows_where_the_5_minute_rows_expired_and_say_so()
    {
        var time = new SteppingTime(T0.AddDays(-10));
        using (var h = _f.Open(time))
        {
            await h.FlushAsync(Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, 1000, 0, 0, 0, 0])));
            time.Advance(TimeSpan.FromMinutes(20));
            await h.FlushAsync(Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, 3000, 0, 0, 0, 0])));
            time.Advance(TimeSpan.FromDays(10) - TimeSpan.FromMinutes(20));
            await h.FlushAsync(Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, 3500, 0, 0, 0, 0])));
            var tiers = HistoryTiers.From(new DatabaseOptions());
            Assert.True((await h.DeleteExpiredAsync(tiers, time.GetUtcNow())).Complete);
        }
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM traffic")); // only today's 5-minute row is left

        var output = new StringWriter();
        Assert.Equal(0, ExportCommand.Run(_f.DbPath, ["--format", "csv"], output, TextWriter.Null, new SteppingTime(T0)));
        var oldHour = T0.AddDays(-10).ToUnixTimeSeconds() / 3600 * 3600;
        Assert.Equal(
        [
            "timestamp,client_ip,up_9981,down_9981,up_9984_tcp,down_9984_tcp,up_9984_udp,down_9984_udp,resolution",
            $"{oldHour},10.0.0.1,3000,0,0,0,0,0,1h",
            $"{Buckets.Of(T0)},10.0.0.1,500,0,0,0,0,0,5m",
        ], output.ToString().TrimEnd('\n').Split('\n'));

        var top = new StringWriter();
        Assert.Equal(0, TopCommand.Run(_f.DbPath, ["--since", "11d"], top, TextWriter.Null, new SteppingTime(T0)));
        Assert.Contains("resolution 1h", top.ToString(), StringComparison.Ordinal);
        Assert.Contains("3.5 kB", top.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>A hand-edited row is a clear storage error, never a crash (and never a double count).</summary>
public sealed class CorruptRowTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 21, 3, 0, TimeSpan.Zero);
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task A_hand_edited_baseline_row_is_resynchronised_not_counted_again()
    {
        var time = new SteppingTime(T0);
        using (var h = _f.Open(time))
            Assert.True((await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", [0, 1000, 0, 0, 0, 0]), ("10.0.0.2", [0, 50, 0, 0, 0, 0])))).Committed);
        using (var c = _f.Connect())
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "UPDATE counter_baseline SET slots = 'hand edited' WHERE client = '10.0.0.1'; UPDATE counter_baseline SET slots = 42 WHERE client = 'totals'";
            cmd.ExecuteNonQuery();
        }
        time.Advance(TimeSpan.FromMinutes(5));
        using (var h = _f.Open(time))
        {
            var result = await h.FlushAsync(Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, 1300, 0, 0, 0, 0]), ("10.0.0.2", [0, 70, 0, 0, 0, 0])));
            Assert.True(result.Committed, result.Error?.ToString());
            time.Advance(TimeSpan.FromMinutes(5));
            Assert.True((await h.FlushAsync(Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, 1400, 0, 0, 0, 0]), ("10.0.0.2", [0, 70, 0, 0, 0, 0])))).Committed);
        }
        // 10.0.0.1: 1000, then its 300 since the edit are not known (resynchronised), then 100; never 1300 again.
        Assert.Equal(1100, _f.Sum("up_9981", "10.0.0.1"));
        Assert.Equal(70, _f.Sum("up_9981", "10.0.0.2"));
        Assert.Equal(16 * 6, _f.Scalar("SELECT length(slots) FROM counter_baseline WHERE client = '10.0.0.1'")); // rewritten
    }
}
