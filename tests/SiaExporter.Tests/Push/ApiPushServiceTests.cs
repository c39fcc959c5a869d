using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SiaExporter.Push;
using SiaExporter.Storage;
using SiaExporter.Tests.Storage;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Push;

public sealed class ApiPushServiceTests(ITestOutputHelper output) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly long B0 = T0.ToUnixTimeSeconds();
    private const string Host = "host-a";
    private const string Token = "secret-token";

    private readonly StorageFixture _fixture = new();
    private readonly ManualTime _time = new(T0);
    private readonly RecordingLogger<ApiPushService> _log = new();

    private string Db => _fixture.DbPath;

    /// <param name="requestTimeout">200 ms by default so the flaky-receiver test's hangs are quick; tests that
    /// assert "no duplicates" give a healthy endpoint more, since a slow CI machine can take 200 ms.</param>
    private PushOptions Options(Uri endpoint, int batch = 100, TimeSpan? requestTimeout = null) => new()
    {
        Endpoint = endpoint,
        Token = Token,
        Hostname = Host,
        SqlitePath = Db,
        Interval = TimeSpan.FromMinutes(1),
        BatchSize = batch,
        RequestTimeout = requestTimeout ?? TimeSpan.FromMilliseconds(200),
        RetryAttempts = 3,
        RetryDelay = TimeSpan.FromMilliseconds(5),
        MaxRetryDelay = TimeSpan.FromMilliseconds(50),
        BreakerMinimumThroughput = 4,
        BreakerSamplingDuration = TimeSpan.FromSeconds(1),
        BreakDuration = TimeSpan.FromMilliseconds(500), // Polly's minimum
        ShutdownTimeout = TimeSpan.FromSeconds(2),
        BusyTimeout = TimeSpan.FromSeconds(1),
    };

    private ApiPushService Service(PushOptions options) => new(options, _time, _log);

    /// <summary>Creates the history tables (as the daemon's TrafficHistory does).</summary>
    private void CreateHistory()
    {
        using var history = _fixture.Open(_time);
    }

    private static string Key(long bucket) => $"{Host}/{bucket}";

    /// <summary>Runs (a minute apart on the service clock) until nothing is due, or fails after <paramref name="limit"/>.</summary>
    private async Task<List<PushRunResult>> DrainAsync(ApiPushService service, TimeSpan? limit = null)
    {
        var runs = new List<PushRunResult>();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var run = await service.RunOnceAsync();
            runs.Add(run);
            if (service.Status.PendingBuckets == 0) return runs;
            Assert.True(deadline.Elapsed < (limit ?? TimeSpan.FromSeconds(20)), $"outbox not drained: {service.Status}");
            _time.Advance(TimeSpan.FromMinutes(1));
            if (run.Sent == 0) await Task.Delay(100); // circuit open: let real time pass its break
        }
    }

    [Fact]
    public async Task Sends_only_closed_buckets_as_json_with_bearer_token_and_idempotency_key_read_at_send_time()
    {
        await using var receiver = await PushReceiver.StartAsync();
        using var service = Service(Options(receiver.Endpoint));
        using (var history = _fixture.Open(_time))
        {
            _time.Set(T0 + TimeSpan.FromSeconds(100));
            await history.FlushAsync(StorageFixture.Snap(StorageFixture.Gen1, _time.GetUtcNow(), [5, 6, 0, 0, 0, 0],
                ("203.0.113.7", [100, 200, 300, 400, 500, 600]), ("2001:db8::1", [0, 0, 0, 0, 7000, 8000])));
            await service.RunOnceAsync(); // push enabled here: bucket T0 on

            // Not closed one second before start + 300 s + one interval; the flush at 00:05:00 adds a late delta.
            _time.Set(T0 + TimeSpan.FromSeconds(359));
            await history.FlushAsync(StorageFixture.Snap(StorageFixture.Gen1, _time.GetUtcNow(), [5, 6, 0, 0, 0, 0],
                ("203.0.113.7", [1100, 1200, 300, 400, 500, 600]), ("2001:db8::1", [0, 0, 0, 0, 7000, 8000])), T0 + TimeSpan.FromSeconds(299.999));
            var early = await service.RunOnceAsync();
            Assert.Equal(0, early.Seeded);
            Assert.Empty(receiver.Requests);
        }

        _time.Set(T0 + TimeSpan.FromSeconds(360));
        var run = await service.RunOnceAsync();
        Assert.Equal((1, 1), (run.Seeded, run.Sent));
        var request = Assert.Single(receiver.Requests);
        Assert.Equal("Bearer " + Token, request.Authorization);
        Assert.Equal(Key(B0), request.IdempotencyKey);
        Assert.Equal("application/json", request.ContentType);

        using var doc = JsonDocument.Parse(request.Body);
        var root = doc.RootElement;
        Assert.Equal(["host", "bucket", "bucket_end", "clients", "totals"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Host, root.GetProperty("host").GetString());
        Assert.Equal(B0, root.GetProperty("bucket").GetInt64());
        Assert.Equal(B0 + 300, root.GetProperty("bucket_end").GetInt64());
        var first = root.GetProperty("clients")[0];
        Assert.Equal(["client", "port", "proto", "up_bytes", "down_bytes", "up_packets", "down_packets"], first.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["port", "proto", "up_bytes", "down_bytes", "up_packets", "down_packets"], root.GetProperty("totals")[0].EnumerateObject().Select(p => p.Name));

        var parsed = PushDb.Parse(request.Body);
        Assert.Equal(PushDb.Clients(Db, B0), parsed.Clients);
        Assert.Equal(PushDb.Totals(Db, B0), parsed.Totals);
        // The late delta is in: 203.0.113.7 sent (up, slot 1) 200 + 1000 on 9981/tcp.
        Assert.Contains("203.0.113.7|9981|tcp|1200|1100|12|11", parsed.Clients);
        Assert.Contains(parsed.Clients, c => c.StartsWith("overflow|9981|tcp|", StringComparison.Ordinal));
        Assert.Contains(parsed.Clients, c => c.StartsWith("2001:db8::1|9984|udp|8000|7000", StringComparison.Ordinal));

        Assert.Equal(_time.GetUtcNow(), service.Status.LastSuccess);
        Assert.Equal((0L, 1L, PushHealth.Ok), (service.Status.PendingBuckets, service.Status.SentBuckets, service.Status.Health));
        Assert.Equal("sent", PushDb.Outbox(Db)[B0].State);

        // Acknowledged: never again.
        _time.Advance(TimeSpan.FromMinutes(1));
        await service.RunOnceAsync();
        Assert.Single(receiver.Requests);
    }

    [Fact]
    public async Task Flaky_endpoint_gets_every_bucket_exactly_once_per_key_with_the_sqlite_bytes()
    {
        var random = new Random(20250101);
        await using var receiver = await PushReceiver.StartAsync();
        receiver.Behaviour = i => i >= 80 ? Reply.Accept : random.Next(100) switch
        {
            < 30 => Reply.Accept,
            < 50 => Reply.Fail500,
            < 60 => Reply.TooMany,
            < 72 => Reply.Abort,
            < 88 => Reply.LateSuccess,
            _ => Reply.Hang,
        };
        using var service = Service(Options(receiver.Endpoint, batch: 10));
        await service.RunOnceAsync(); // enabled at T0

        // 24 buckets of real flushes: clients come and go, some overflow.
        const int buckets = 24;
        using (var history = _fixture.Open(_time))
        {
            ulong n = 0;
            for (var b = 0; b < buckets; b++)
                for (var f = 0; f < 3; f++)
                {
                    n++;
                    _time.Set(T0 + TimeSpan.FromSeconds(b * 300 + 60 * f + 10));
                    var clients = new List<(string, ulong[])>
                    {
                        ("203.0.113.7", [n * 1000, n * 2000, n * 30, n * 40, n * 5, n * 6]),
                        ("198.51.100.2", [n * 11, 0, n * 1300, n * 1400, 0, n * 16]),
                    };
                    if (b % 3 == 0) clients.Add(($"2001:db8::{b + 1:x}", [7, 8, 9, 10, 11, 12]));
                    var result = await history.FlushAsync(StorageFixture.Snap(StorageFixture.Gen1, _time.GetUtcNow(), [n * 3, n, 0, 0, n, 0], [.. clients]));
                    Assert.True(result.Committed);
                }
        }
        _time.Set(T0 + TimeSpan.FromSeconds(buckets * 300 + 60));

        var runs = await DrainAsync(service);

        var expected = PushDb.BucketsWithTraffic(Db);
        Assert.Equal(buckets, expected.Count);
        var stored = receiver.Stored;
        Assert.Equal(expected.Select(Key).Order(StringComparer.Ordinal), stored.Keys.Order(StringComparer.Ordinal));
        foreach (var bucket in expected)
        {
            var parsed = PushDb.Parse(stored[Key(bucket)]);
            Assert.Equal((Host, bucket, bucket + 300), (parsed.Host, parsed.Bucket, parsed.End));
            Assert.Equal(PushDb.Clients(Db, bucket), parsed.Clients);
            Assert.Equal(PushDb.Totals(Db, bucket), parsed.Totals);
        }
        // Every duplicate is a late success the client could not see; dedup by key makes it exactly once.
        var requests = receiver.Requests;
        var perKey = requests.Where(r => r.Status == 200).GroupBy(r => r.IdempotencyKey).ToDictionary(g => g.Key!, g => g.Count());
        Assert.Equal(receiver.Duplicates, perKey.Values.Sum() - perKey.Count);
        Assert.True(receiver.Duplicates <= requests.Count(r => r.Reply == Reply.LateSuccess));
        Assert.Contains(requests, r => r.Reply != Reply.Accept);
        Assert.All(PushDb.Outbox(Db).Values, o => Assert.Equal("sent", o.State));
        Assert.All(requests, r => Assert.Equal("Bearer " + Token, r.Authorization));
        output.WriteLine($"{requests.Count} requests over {runs.Count} runs for {buckets} buckets; " +
            string.Join(", ", requests.GroupBy(r => r.Reply).Select(g => $"{g.Key} {g.Count()}")) +
            $"; duplicates delivered (deduplicated by the receiver): {receiver.Duplicates}; failures counted: {service.Status.Failures}" +
            $"; logged: failing {_log.Count(LogLevel.Warning, "failing")}, recovered {_log.Count(LogLevel.Information, "recovered")}");
        // Logged per state change (each failing episode once, each recovery once), not per attempt.
        var episodes = _log.Count(LogLevel.Warning, "failing");
        // (Not bounded by Status.Failures: a run stopped by the open circuit breaker makes no request,
        // counts no failure, yet can be the first of a new failing episode.)
        Assert.True(episodes >= 1, "no failing episode was logged");
        Assert.Equal(episodes, _log.Count(LogLevel.Information, "recovered"));
        Assert.True(episodes < requests.Count(r => r.Status != 200) / 2, "logged per attempt");
    }

    [Fact]
    public async Task Endpoint_down_for_a_day_then_up_gets_all_288_buckets_oldest_first_in_batches()
    {
        var port = Web.TestPki.FreePort(); // nothing listens yet: connection refused
        using var service = Service(Options(new Uri($"http://127.0.0.1:{port}/push"), batch: 100, requestTimeout: TimeSpan.FromSeconds(10)));
        await service.RunOnceAsync(); // enabled at T0
        CreateHistory();
        var day = Enumerable.Range(0, 288).Select(i => B0 + 300L * i).ToList();
        PushDb.InsertBuckets(Db, day, clients: 3);
        _time.Set(T0 + TimeSpan.FromDays(1) + TimeSpan.FromSeconds(60));

        for (var i = 0; i < 6; i++)
        {
            var run = await service.RunOnceAsync();
            Assert.Equal(0, run.Sent);
            _time.Advance(TimeSpan.FromMinutes(1));
        }
        Assert.Equal(PushHealth.Failing, service.Status.Health);
        Assert.Equal(288, service.Status.PendingBuckets);
        Assert.True(service.Status.Failures >= 1);
        Assert.Equal(1, _log.Count(LogLevel.Warning, "failing"));
        Assert.All(PushDb.Outbox(Db).Values, o => Assert.Equal("pending", o.State));

        await using var receiver = await PushReceiver.StartAsync(port);
        var runs = await DrainAsync(service);

        Assert.Equal(day.Select(Key), receiver.StoredOrder); // oldest first
        Assert.Equal(288, receiver.Requests.Count);          // no duplicates on a healthy endpoint
        Assert.All(runs, r => Assert.True(r.Sent <= 100));
        Assert.Equal([100, 100, 88], runs.Where(r => r.Sent > 0).Select(r => r.Sent));
        foreach (var bucket in new[] { day[0], day[143], day[287] })
            Assert.Equal(PushDb.Clients(Db, bucket), PushDb.Parse(receiver.Stored[Key(bucket)]).Clients);
        Assert.Equal(1, _log.Count(LogLevel.Information, "recovered"));
        Assert.Equal((0L, PushHealth.Ok), (service.Status.PendingBuckets, service.Status.Health));
    }

    [Fact]
    public async Task Unauthorized_is_a_permanent_failure_logged_once_probed_hourly_and_sent_once_the_token_is_accepted()
    {
        await using var receiver = await PushReceiver.StartAsync();
        receiver.FixedStatus = 401;
        using var service = Service(Options(receiver.Endpoint));
        await service.RunOnceAsync();
        CreateHistory();
        var buckets = Enumerable.Range(0, 5).Select(i => B0 + 300L * i).ToList();
        PushDb.InsertBuckets(Db, buckets, clients: 2);
        _time.Set(T0 + TimeSpan.FromSeconds(5 * 300 + 60));

        for (var i = 0; i < 30; i++)
        {
            await service.RunOnceAsync();
            _time.Advance(TimeSpan.FromMinutes(1));
        }
        var request = Assert.Single(receiver.Requests); // no retries of a 401, no tight loop
        Assert.Equal("Bearer " + Token, request.Authorization);
        Assert.Equal(PushHealth.Rejected, service.Status.Health);
        var outbox = PushDb.Outbox(Db);
        Assert.Equal(("failed", 1L), (outbox[B0].State, outbox[B0].Attempts));
        Assert.StartsWith("HTTP 401", outbox[B0].Error);
        Assert.Contains("bad token", outbox[B0].Error);
        Assert.Equal(1, _log.Count(LogLevel.Error, "rejects the token"));
        Assert.Equal(5, service.Status.PendingBuckets);
        Assert.Equal(1, service.Status.FailedBuckets);

        _time.Advance(TimeSpan.FromHours(1)); // the hourly probe, refused again: not logged again
        await service.RunOnceAsync();
        Assert.Equal(2, receiver.Requests.Count);
        Assert.Equal(1, _log.Count(LogLevel.Error, "rejects the token"));

        receiver.FixedStatus = null; // token fixed on the receiver's side
        _time.Advance(TimeSpan.FromHours(1));
        await DrainAsync(service);
        Assert.Equal(buckets.Select(Key), receiver.StoredOrder);
        Assert.Equal(1, _log.Count(LogLevel.Information, "recovered"));
        Assert.All(PushDb.Outbox(Db).Values, o => Assert.Equal("sent", o.State));
    }

    [Fact]
    public async Task A_refused_bucket_is_kept_as_failed_without_blocking_the_others_and_retried_hourly()
    {
        await using var receiver = await PushReceiver.StartAsync();
        using var service = Service(Options(receiver.Endpoint));
        await service.RunOnceAsync();
        CreateHistory();
        var buckets = Enumerable.Range(0, 5).Select(i => B0 + 300L * i).ToList();
        PushDb.InsertBuckets(Db, buckets, clients: 2);
        receiver.Refuse.Add(buckets[2]);
        _time.Set(T0 + TimeSpan.FromSeconds(5 * 300 + 60));

        var run = await service.RunOnceAsync();
        Assert.Equal((4, 1), (run.Sent, run.Refused));
        Assert.Equal(5, receiver.Requests.Count);
        for (var i = 0; i < 10; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(1));
            await service.RunOnceAsync();
        }
        Assert.Equal(5, receiver.Requests.Count);
        var outbox = PushDb.Outbox(Db);
        Assert.Equal(("failed", 1L), (outbox[buckets[2]].State, outbox[buckets[2]].Attempts));
        Assert.StartsWith("HTTP 400", outbox[buckets[2]].Error);
        Assert.Equal((1L, 1L), (service.Status.PendingBuckets, service.Status.FailedBuckets));

        _time.Advance(TimeSpan.FromHours(1));
        await service.RunOnceAsync();
        Assert.Equal(6, receiver.Requests.Count);
        Assert.Equal(2, PushDb.Outbox(Db)[buckets[2]].Attempts);
        Assert.Equal(1, _log.Count(LogLevel.Warning, "refused bucket"));

        receiver.Refuse.Clear();
        _time.Advance(TimeSpan.FromHours(1));
        await service.RunOnceAsync();
        Assert.Equal("sent", PushDb.Outbox(Db)[buckets[2]].State);
        Assert.Equal(5, receiver.Stored.Count);
    }

    [Fact]
    public async Task Restart_in_the_middle_resends_nothing_acknowledged()
    {
        await using var receiver = await PushReceiver.StartAsync();
        var options = Options(receiver.Endpoint, batch: 5);
        CreateHistory();
        var buckets = Enumerable.Range(0, 12).Select(i => B0 + 300L * i).ToList();
        using (var first = Service(options))
        {
            await first.RunOnceAsync(); // enabled at T0
            PushDb.InsertBuckets(Db, buckets, clients: 2);
            _time.Set(T0 + TimeSpan.FromSeconds(12 * 300 + 60));
            var run = await first.RunOnceAsync();
            Assert.Equal(5, run.Sent);
        }

        using var second = Service(options);
        await DrainAsync(second);
        Assert.Equal(buckets.Select(Key), receiver.StoredOrder);
        Assert.Equal(12, receiver.Requests.Count); // each key exactly once across the restart
        Assert.Equal(0, receiver.Duplicates);

        using var third = Service(options);
        _time.Advance(TimeSpan.FromMinutes(1));
        var again = await third.RunOnceAsync();
        Assert.Equal((0, 0), (again.Seeded, again.Sent));
        Assert.Equal(12, receiver.Requests.Count);
        Assert.NotNull(third.Status.LastSuccess); // the metric survives the restart (outbox sent_at)
    }

    [Fact]
    public async Task An_unusable_database_is_logged_once_and_never_fatal()
    {
        await using var receiver = await PushReceiver.StartAsync();
        var blocker = Path.Combine(_fixture.Directory, "file");
        Directory.CreateDirectory(_fixture.Directory);
        await File.WriteAllTextAsync(blocker, "not a directory");
        using var service = Service(Options(receiver.Endpoint) with { SqlitePath = Path.Combine(blocker, "traffic.db") });
        for (var i = 0; i < 3; i++)
        {
            var run = await service.RunOnceAsync();
            Assert.StartsWith("database: ", run.Skipped);
        }
        Assert.Equal(1, _log.Count(LogLevel.Warning, "reading the outbox"));
        Assert.Empty(receiver.Requests);
    }

    [Fact]
    public async Task Enabling_push_over_old_history_sends_only_buckets_from_the_first_enablement_on()
    {
        CreateHistory();
        var old = Enumerable.Range(0, 50).Select(i => B0 - 400L * 86400 + 300L * i).ToList();
        PushDb.InsertBuckets(Db, old, clients: 2);
        await using var receiver = await PushReceiver.StartAsync();
        var options = Options(receiver.Endpoint);
        _time.Set(T0 + TimeSpan.FromSeconds(100)); // first enabled inside bucket T0
        using (var service = Service(options))
        {
            await service.RunOnceAsync();
            PushDb.InsertBuckets(Db, [B0, B0 + 300], clients: 2);
            _time.Set(T0 + TimeSpan.FromSeconds(660));
            await DrainAsync(service);
        }
        Assert.Equal([Key(B0), Key(B0 + 300)], receiver.StoredOrder);
        Assert.Equal([B0, B0 + 300], PushDb.Outbox(Db).Keys.Order());

        // Off for a day and on again: enabled_since is the first enablement, kept.
        PushDb.InsertBuckets(Db, [B0 + 600], clients: 1);
        _time.Set(T0 + TimeSpan.FromDays(1));
        using (var service = Service(options))
            await DrainAsync(service);
        Assert.Equal([Key(B0), Key(B0 + 300), Key(B0 + 600)], receiver.StoredOrder);
        Assert.Equal(B0.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _fixture.Scalar("SELECT value FROM push_meta WHERE key = 'enabled_since'").ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task The_hosted_loop_runs_on_its_schedule_and_stop_makes_a_final_attempt()
    {
        await using var receiver = await PushReceiver.StartAsync();
        CreateHistory();
        using var service = Service(Options(receiver.Endpoint));
        await service.RunOnceAsync(); // enabled at T0
        PushDb.InsertBuckets(Db, [B0], clients: 1);

        await service.StartAsync(CancellationToken.None);
        for (var i = 0; i < 500 && _time.PendingTimers == 0; i++) await Task.Delay(10); // the loop arms its timer on the thread pool
        _time.Set(T0 + TimeSpan.FromSeconds(390)); // the run at :30 after bucket T0 closed (T0 + 360 s)
        for (var i = 0; i < 500 && receiver.Stored.Count == 0; i++) await Task.Delay(10);
        Assert.Equal([Key(B0)], receiver.StoredOrder);

        // Closed after the last run: only the final attempt on stop sends it.
        PushDb.InsertBuckets(Db, [B0 + 300], clients: 1);
        for (var i = 0; i < 500 && _time.PendingTimers == 0; i++) await Task.Delay(10);
        await service.StopAsync(CancellationToken.None);
        Assert.Equal([Key(B0)], receiver.StoredOrder); // not closed yet at T0 + 390 s
        _time.Set(T0 + TimeSpan.FromSeconds(665)); // no loop any more: timers fire into a stopped service
        await service.StopAsync(CancellationToken.None);
        Assert.Equal([Key(B0), Key(B0 + 300)], receiver.StoredOrder);
    }

    [Fact]
    public void Closure_needs_the_flush_after_the_bucket_end()
    {
        var interval = TimeSpan.FromMinutes(1);
        Assert.Equal(B0 - 300, ApiPushService.LastClosedBucket(T0 + TimeSpan.FromSeconds(359), interval));
        Assert.Equal(B0, ApiPushService.LastClosedBucket(T0 + TimeSpan.FromSeconds(360), interval));
        Assert.Equal(T0 + TimeSpan.FromSeconds(30), ApiPushService.NextRun(T0, interval, TimeSpan.FromSeconds(30)));
        Assert.Equal(T0 + TimeSpan.FromSeconds(90), ApiPushService.NextRun(T0 + TimeSpan.FromSeconds(30), interval, TimeSpan.FromSeconds(30)));
    }

    public void Dispose() => _fixture.Dispose();
}
