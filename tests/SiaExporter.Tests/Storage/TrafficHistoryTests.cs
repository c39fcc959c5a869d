using Xunit;
using Microsoft.Data.Sqlite;
using SiaExporter.Counters;
using SiaExporter.Storage;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

public sealed class BucketTests
{
    [Theory]
    [InlineData("2025-03-10T14:04:59.999Z", "2025-03-10T14:00:00Z")]
    [InlineData("2025-03-10T14:05:00.000Z", "2025-03-10T14:05:00Z")]
    [InlineData("2025-03-10T14:05:00.001Z", "2025-03-10T14:05:00Z")]
    [InlineData("2025-03-10T23:59:59.999Z", "2025-03-10T23:55:00Z")]
    [InlineData("2025-03-11T00:00:00.000Z", "2025-03-11T00:00:00Z")]
    [InlineData("2024-12-31T23:59:59.999Z", "2024-12-31T23:55:00Z")]
    [InlineData("2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00Z")]
    [InlineData("2025-03-10T16:04:59.999+02:00", "2025-03-10T14:00:00Z")] // offsets do not matter: UTC buckets
    public void Bucket_is_the_utc_five_minute_start(string instant, string expected)
    {
        var bucket = Buckets.Of(DateTimeOffset.Parse(instant, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeSeconds(), bucket);
        Assert.Equal(0, bucket % 300);
    }

    [Theory]
    [InlineData("2025-03-10T14:04:59.999Z", "2025-03-10T14:05:00Z")]
    [InlineData("2025-03-10T14:05:00Z", "2025-03-10T14:06:00Z")]
    [InlineData("2024-12-31T23:59:30Z", "2025-01-01T00:00:00Z")]
    public void Next_flush_boundary_is_the_next_whole_minute(string now, string expected)
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        Assert.Equal(DateTimeOffset.Parse(expected, c), HistoryFlushService.NextBoundary(DateTimeOffset.Parse(now, c), TimeSpan.FromMinutes(1)));
    }
}

public sealed class TrafficHistoryTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 10, 14, 0, 30, TimeSpan.Zero); // bucket 14:00
    private static readonly long B0 = Buckets.Of(T0);
    private readonly StorageFixture _f = new();
    private readonly ManualTime _time = new(T0);

    public void Dispose() => _f.Dispose();

    private static ulong[] Slots(ulong d9981, ulong u9981, ulong d9984, ulong u9984, ulong dUdp = 0, ulong uUdp = 0) =>
        [d9981, u9981, d9984, u9984, dUdp, uUdp];

    [Fact]
    public async Task Open_creates_directory_schema_and_wal()
    {
        using var h = _f.Open(_time);
        Assert.True(File.Exists(_f.DbPath));
        using var c = _f.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string)cmd.ExecuteScalar()!);
        cmd.CommandText = "SELECT group_concat(name || ':' || type, ',') FROM (SELECT name, type FROM pragma_table_info('traffic') ORDER BY cid)";
        Assert.Equal("client_ip:TEXT,up_9981:INTEGER,down_9981:INTEGER,up_9984_tcp:INTEGER,down_9984_tcp:INTEGER,up_9984_udp:INTEGER,down_9984_udp:INTEGER,timestamp:INTEGER",
            (string)cmd.ExecuteScalar()!);
        cmd.CommandText = "SELECT count(*) FROM pragma_index_list('traffic') WHERE \"unique\" = 1 AND name = 'traffic_bucket_client'";
        Assert.Equal(1L, (long)cmd.ExecuteScalar()!);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Upserts_add_deltas_over_several_flushes_and_buckets()
    {
        using var h = _f.Open(_time);
        Assert.True((await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(100, 200, 1000, 2000, 5, 6)), ("2001:db8::1", Slots(0, 0, 300, 0))))).Committed);
        Assert.True((await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(150, 200, 1500, 2600, 5, 6)), ("2001:db8::1", Slots(0, 0, 300, 0))))).Committed);
        Assert.True((await h.FlushAsync(Snap(Gen1, T0.AddMinutes(5), ("10.0.0.1", Slots(160, 210, 1500, 2600, 5, 9)), ("2001:db8::1", Slots(0, 0, 300, 0))))).Committed);

        // traffic columns: up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp
        Assert.Equal([200L, 150, 2600, 1500, 6, 5], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal([10L, 10, 0, 0, 3, 0], _f.TrafficRow(B0 + 300, "10.0.0.1"));
        Assert.Equal([0L, 0, 0, 300, 0, 0], _f.TrafficRow(B0, "2001:db8::1"));
        // unchanged since the last flush: no row at all in the later bucket
        Assert.Empty(_f.TrafficRow(B0 + 300, "2001:db8::1"));
        Assert.Equal(3, _f.Scalar("SELECT count(*) FROM traffic"));

        // detail: packets too (bytes / 100 in these snapshots), one row per class
        Assert.Equal(26, _f.Scalar("SELECT up_packets FROM traffic_detail WHERE bucket = $b AND client_ip = '10.0.0.1' AND port = 9984 AND proto = 'tcp'", ("$b", B0)));
        Assert.Equal(15, _f.Scalar("SELECT down_packets FROM traffic_detail WHERE bucket = $b AND client_ip = '10.0.0.1' AND port = 9984 AND proto = 'tcp'", ("$b", B0)));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM traffic_detail WHERE bucket = $b AND client_ip = '2001:db8::1'", ("$b", B0 + 300)));

        // host totals = sum over clients, per bucket
        Assert.Equal(_f.Scalar("SELECT sum(up_9984_tcp) FROM traffic WHERE timestamp = $b", ("$b", B0)),
            _f.Scalar("SELECT up_bytes FROM traffic_host WHERE bucket = $b AND port = 9984 AND proto = 'tcp'", ("$b", B0)));
        Assert.Equal(15, _f.Scalar("SELECT sum(up_9981 + down_9981 + up_9984_udp) FROM traffic WHERE timestamp = $b", ("$b", B0 + 300)) - 8);
    }

    [Fact]
    public async Task A_map_generation_change_counts_from_zero_and_never_negative()
    {
        using var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 1000, 300))));
        // new maps (reboot): one counter restarted lower, one already higher than the old baseline
        var r = await h.FlushAsync(Snap(Gen2, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 40, 900))));
        Assert.True(r.Committed);
        Assert.Equal([0L, 0, 300 + 900, 1000 + 40, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal(Gen2.ToString(), ReadState("generation"));
        // a down counter lower within one generation: the entry was created again (an eviction a
        // restart missed), so all of it is new; never negative
        await h.FlushAsync(Snap(Gen2, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 10, 950))));
        Assert.Equal([0L, 0, 1200 + 950, 1040 + 10, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        // an up counter lower alone: frames a qdisc dropped, taken off; it holds until it regrows
        await h.FlushAsync(Snap(Gen2, T0.AddMinutes(3), ("10.0.0.1", Slots(0, 0, 10, 900))));
        Assert.Equal([0L, 0, 1200 + 950, 1040 + 10, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        await h.FlushAsync(Snap(Gen2, T0.AddMinutes(4), ("10.0.0.1", Slots(0, 0, 20, 960))));
        Assert.Equal([0L, 0, 1200 + 950 + 10, 1040 + 10 + 10, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
    }

    [Fact]
    public async Task A_failed_transaction_writes_nothing_and_the_next_one_writes_everything_once()
    {
        using var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))));
        h.BeforeCommit = () => throw new SqliteException("injected: attempt to write a readonly database", 8);
        var f1 = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 150, 1500))));
        var f2 = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(5), ("10.0.0.1", Slots(0, 0, 170, 1800)), ("10.0.0.2", Slots(7, 0, 0, 0))));
        Assert.False(f1.Committed);
        Assert.False(f2.Committed);
        Assert.True(h.IsFailing);
        Assert.Equal(2, h.FailureCount);
        Assert.Equal(2, h.PendingBuckets);
        // nothing of the failed flushes reached the database, not even the baseline
        Assert.Equal([0L, 0, 1000, 100, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM traffic"));
        var success = h.LastSuccess;

        h.BeforeCommit = null;
        _time.Advance(TimeSpan.FromMinutes(6));
        var ok = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(6), ("10.0.0.1", Slots(0, 0, 171, 1800)), ("10.0.0.2", Slots(7, 0, 0, 0))));
        Assert.True(ok.Committed);
        Assert.False(h.IsFailing);
        Assert.Equal(0, h.PendingBuckets);
        Assert.True(h.LastSuccess > success);
        // each delta in the bucket it was counted in, exactly once
        Assert.Equal([0L, 0, 1500, 150, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal([0L, 0, 300, 21, 0, 0], _f.TrafficRow(B0 + 300, "10.0.0.1"));
        Assert.Equal([0L, 7, 0, 0, 0, 0], _f.TrafficRow(B0 + 300, "10.0.0.2"));
        Assert.Equal(1800, _f.Sum("up_9984_tcp", "10.0.0.1"));
        Assert.Equal(171, _f.Sum("down_9984_tcp", "10.0.0.1"));
    }

    [Fact]
    public async Task A_retry_within_one_flush_does_not_count_twice()
    {
        using var h = _f.Open(_time);
        var attempts = 0;
        h.BeforeCommit = () =>
        {
            if (++attempts == 1) throw new SqliteException("injected: database is locked", 5);
        };
        var r = await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))));
        Assert.True(r.Committed);
        Assert.Equal(2, attempts);
        Assert.Equal(0, h.FailureCount);
        Assert.Equal([0L, 0, 1000, 100, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
    }

    [Fact]
    public async Task A_crash_after_failed_flushes_loses_nothing_and_counts_nothing_twice()
    {
        var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000)), ("10.0.0.9", Slots(5, 5, 0, 0))));
        await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 200, 2000)), ("10.0.0.9", Slots(5, 5, 0, 0))));
        h.BeforeCommit = () => throw new SqliteException("injected: disk I/O error", 10);
        await h.FlushAsync(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 300, 3000)), ("10.0.0.9", Slots(5, 5, 0, 0))));
        h.Dispose(); // the process dies: no final flush, the held delta is gone from memory

        // restart: the maps (and their counters) lived on
        using var again = _f.Open(_time);
        Assert.Equal(2, again.TrackedClients);
        var r = await again.FlushAsync(Snap(Gen1, T0.AddMinutes(7), ("10.0.0.1", Slots(0, 0, 350, 3500)), ("10.0.0.9", Slots(5, 5, 0, 0))));
        Assert.True(r.Committed);
        Assert.Equal(3500, _f.Sum("up_9984_tcp", "10.0.0.1"));
        Assert.Equal(350, _f.Sum("down_9984_tcp", "10.0.0.1"));
        Assert.Equal(5, _f.Sum("up_9981", "10.0.0.9"));
        // the gap landed in the bucket of the read after the restart
        Assert.Equal([0L, 0, 1500, 150, 0, 0], _f.TrafficRow(B0 + 300, "10.0.0.1"));
        Assert.Empty(_f.TrafficRow(B0 + 300, "10.0.0.9"));
    }

    [Fact]
    public async Task A_locked_database_holds_the_deltas_until_it_is_released()
    {
        using var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))));
        using (var locker = _f.Connect())
        {
            using var tx = locker.BeginTransaction(System.Data.IsolationLevel.Serializable); // BEGIN IMMEDIATE
            using (var cmd = locker.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = "INSERT INTO collector_state (key, value) VALUES ('lock', 'held')";
                cmd.ExecuteNonQuery();
            }
            var locked = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 150, 1500))));
            Assert.False(locked.Committed);
            Assert.IsType<SqliteException>(locked.Error);
            tx.Rollback();
        }
        var ok = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 160, 1600))));
        Assert.True(ok.Committed);
        Assert.Equal([0L, 0, 1600, 160, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal(1, h.FailureCount);
    }

    [Fact]
    public async Task A_deleted_database_file_is_recreated_with_the_whole_baseline()
    {
        var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000))));
        foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(_f.DbPath + suffix);
        var r = await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.1", Slots(0, 0, 150, 1500))));
        Assert.True(r.Committed);
        Assert.True(File.Exists(_f.DbPath));
        Assert.Equal([0L, 0, 500, 50, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        h.Dispose();
        // the new file carries the baseline: a restart on it counts on from there
        using var again = _f.Open(_time);
        await again.FlushAsync(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 151, 1600))));
        Assert.Equal([0L, 0, 600, 51, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
    }

    [Fact]
    public async Task Overflow_and_host_totals_are_stored_so_clients_sum_to_the_host()
    {
        using var h = _f.Open(_time);
        ulong[] overflow = [0, 0, 40_000, 90_000, 0, 0];
        await h.FlushAsync(Snap(Gen1, T0, overflow, ("10.0.0.1", Slots(0, 0, 100, 1000))));
        Assert.Equal([0L, 0, 90_000, 40_000, 0, 0], _f.TrafficRow(B0, HistorySchema.OverflowClient));
        Assert.Equal(400, _f.Scalar("SELECT down_packets FROM traffic_detail WHERE client_ip = 'overflow' AND port = 9984 AND proto = 'tcp'"));
        Assert.Equal(_f.Scalar("SELECT up_bytes FROM traffic_host WHERE port = 9984 AND proto = 'tcp'"), _f.Sum("up_9984_tcp", "10.0.0.1") + _f.Sum("up_9984_tcp", "overflow"));
        Assert.Equal(91_000, _f.Scalar("SELECT up_bytes FROM traffic_host WHERE port = 9984 AND proto = 'tcp'"));
    }

    [Fact]
    public async Task Other_port_classes_go_to_the_detail_table_only()
    {
        var ports = PortClassSet.Parse("9984/tcp,9982/udp");
        using var h = TrafficHistory.Open(_f.DbPath, ports, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, _time, FastOptions);
        var snapshot = new CounterSnapshot(ports, Gen1, T0, [ClientAddress.Parse("10.0.0.1")],
            [new Traffic(10, 1), new Traffic(20, 2), new Traffic(30, 3), new Traffic(40, 4)],
            [new Traffic(10, 1), new Traffic(20, 2), new Traffic(30, 3), new Traffic(40, 4)], new Traffic[4]);
        Assert.True((await h.FlushAsync(snapshot)).Committed);
        Assert.Equal([0L, 0, 20, 10, 0, 0], _f.TrafficRow(B0, "10.0.0.1"));
        Assert.Equal(40, _f.Scalar("SELECT up_bytes FROM traffic_detail WHERE port = 9982 AND proto = 'udp'"));
        Assert.Equal(3, _f.Scalar("SELECT down_packets FROM traffic_detail WHERE port = 9982 AND proto = 'udp'"));
    }

    [Fact]
    public async Task Eviction_writes_the_final_values_and_drops_the_baseline()
    {
        using var h = _f.Open(_time);
        IReadOnlyCollection<ClientAddress>? asked = null;
        var lifecycle = new ClientLifecycle(clients =>
        {
            asked = clients;
            // the kernel counted a little more since the last read
            return [new EvictedClient(ClientAddress.Parse("10.0.0.1"), [default, default, new Traffic(120, 1), new Traffic(1000, 10), default, default])];
        }, TimeSpan.FromHours(1), _time);
        var first = Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000)), ("10.0.0.2", Slots(0, 0, 5, 5)));
        await h.FlushAsync(first);
        lifecycle.Observe(first);
        _time.Advance(TimeSpan.FromMinutes(30));
        var later = Snap(Gen1, _time.GetUtcNow(), ("10.0.0.1", Slots(0, 0, 100, 1000)), ("10.0.0.2", Slots(0, 0, 9, 9)));
        await h.FlushAsync(later);
        lifecycle.Observe(later);
        _time.Advance(TimeSpan.FromMinutes(31)); // 10.0.0.1 idle for 61 min; 10.0.0.2 for 31

        var result = await lifecycle.EvictIdleAsync(h);
        Assert.Equal(1, result.Evicted);
        Assert.True(result.Committed);
        Assert.Equal([ClientAddress.Parse("10.0.0.1")], asked);
        var now = Buckets.Of(_time.GetUtcNow());
        Assert.Equal([0L, 0, 0, 20, 0, 0], _f.TrafficRow(now, "10.0.0.1"));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '10.0.0.1'"));
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '10.0.0.2'"));

        // it comes back: a new kernel entry from zero
        await h.FlushAsync(Snap(Gen1, _time.GetUtcNow().AddMinutes(1), ("10.0.0.1", Slots(0, 0, 7, 70)), ("10.0.0.2", Slots(0, 0, 9, 9))));
        Assert.Equal(1070, _f.Sum("up_9984_tcp", "10.0.0.1"));
        Assert.Equal(127, _f.Sum("down_9984_tcp", "10.0.0.1"));
    }

    [Fact]
    public async Task No_eviction_while_the_database_is_failing()
    {
        using var h = _f.Open(_time);
        var called = false;
        var lifecycle = new ClientLifecycle(_ => { called = true; return []; }, TimeSpan.FromHours(1), _time);
        var snapshot = Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000)));
        lifecycle.Observe(snapshot);
        h.BeforeCommit = () => throw new SqliteException("injected: disk full", 13);
        await h.FlushAsync(snapshot);
        _time.Advance(TimeSpan.FromHours(2));
        var result = await lifecycle.EvictIdleAsync(h);
        Assert.False(called);
        Assert.NotNull(result.Skipped);
    }

    [Fact]
    public async Task Retention_deletes_old_rows_in_batches_and_keeps_the_rest()
    {
        using (var h = _f.Open(_time)) await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(1, 1, 1, 1))));
        var now = T0;
        var old = Buckets.Of(now - TimeSpan.FromDays(11));
        using (var c = _f.Connect())
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2499)
                INSERT INTO traffic (client_ip, up_9981, timestamp) SELECT '10.1.' || (i / 256) || '.' || (i % 256), 1, $old FROM n;
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2499)
                INSERT INTO traffic_detail SELECT $old, '10.1.' || (i / 256) || '.' || (i % 256), 9981, 'tcp', 1, 1, 1, 1 FROM n;
                INSERT INTO traffic_host VALUES ($old, 9981, 'tcp', 1, 1, 1, 1);
                INSERT INTO traffic (client_ip, up_9981, timestamp) VALUES ('10.2.0.1', 1, $young);
                """;
            cmd.Parameters.AddWithValue("$old", old);
            cmd.Parameters.AddWithValue("$young", Buckets.Of(now - TimeSpan.FromDays(9)));
            cmd.ExecuteNonQuery();
        }
        using var history = _f.Open(_time);
        var result = await history.DeleteExpiredAsync(retentionDays: 10, batchRows: 1000);
        Assert.True(result.Complete);
        Assert.Equal(2500 + 2500 + 1, result.RowsDeleted);
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM traffic WHERE timestamp < $c", ("$c", Buckets.Of(now - TimeSpan.FromDays(10)))));
        Assert.Equal(2, _f.Scalar("SELECT count(*) FROM traffic")); // the young row and this flush's
        // what remains is this flush's: one row per class that moved (9981/tcp, 9984/tcp)
        Assert.Equal(2, _f.Scalar("SELECT count(*) FROM traffic_host WHERE bucket = $b", ("$b", B0)));
        Assert.Equal(2, _f.Scalar("SELECT count(*) FROM traffic_host"));
        Assert.Equal(2, _f.Scalar("SELECT count(*) FROM traffic_detail"));
    }

    [Fact]
    public async Task An_old_collector_table_with_duplicate_rows_is_merged_for_the_upsert()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_f.DbPath)!);
        using (var c = _f.Connect())
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE traffic (client_ip TEXT, up_9981 INTEGER, down_9981 INTEGER, up_9984_tcp INTEGER, down_9984_tcp INTEGER, up_9984_udp INTEGER, down_9984_udp INTEGER, timestamp INTEGER);
                INSERT INTO traffic VALUES ('10.0.0.1', 1, 2, 3, 4, 5, 6, 600), ('10.0.0.1', 10, 20, 30, 40, 50, NULL, 600), ('10.0.0.2', 1, 1, 1, 1, 1, 1, 600);
                """;
            cmd.ExecuteNonQuery();
        }
        using var h = _f.Open(_time);
        Assert.True((await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(1, 1, 1, 1))))).Committed);
        Assert.Equal([11L, 22, 33, 44, 55, 6], _f.TrafficRow(600, "10.0.0.1"));
        Assert.Equal(3, _f.Scalar("SELECT count(*) FROM traffic"));
    }

    [Fact]
    public async Task A_client_gone_from_the_map_loses_its_baseline()
    {
        using var h = _f.Open(_time);
        await h.FlushAsync(Snap(Gen1, T0, ("10.0.0.1", Slots(0, 0, 100, 1000)), ("10.0.0.2", Slots(1, 1, 1, 1))));
        await h.FlushAsync(Snap(Gen1, T0.AddMinutes(1), ("10.0.0.2", Slots(1, 1, 1, 1))));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '10.0.0.1'"));
        // back, from zero, with more than before: all of it counts
        await h.FlushAsync(Snap(Gen1, T0.AddMinutes(2), ("10.0.0.1", Slots(0, 0, 500, 5000)), ("10.0.0.2", Slots(1, 1, 1, 1))));
        Assert.Equal(6000, _f.Sum("up_9984_tcp", "10.0.0.1"));
    }

    private string ReadState(string key)
    {
        using var c = _f.Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT value FROM collector_state WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        return (string)cmd.ExecuteScalar()!;
    }
}
