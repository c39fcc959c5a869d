using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SiaExporter.Storage;

namespace SiaExporter.Push;

/// <summary>What the push service last knew of the endpoint.</summary>
public enum PushHealth
{
    /// <summary>Nothing sent yet.</summary>
    Unknown,
    /// <summary>The last request was acknowledged.</summary>
    Ok,
    /// <summary>Transient failures (down, timing out, 5xx, 429), retried every run; the breaker may be open.</summary>
    Failing,
    /// <summary>401/403: the token is refused; buckets wait as failed, offered again hourly.</summary>
    Rejected,
}

/// <summary>For /metrics (the lead wires them): a consistent snapshot, replaced after every change.</summary>
/// <param name="LastSuccess">When a bucket was last acknowledged (from the outbox at start, so it survives restarts).</param>
/// <param name="PendingBuckets">Closed buckets not acknowledged yet (pending + failed).</param>
/// <param name="FailedBuckets">Of those, refused by the endpoint (4xx), waiting for their hourly retry.</param>
/// <param name="Failures">Bucket sends that failed after the retries, or were refused (this process).</param>
/// <param name="SentBuckets">Buckets acknowledged (this process).</param>
public sealed record PushStatus(DateTimeOffset? LastSuccess, long PendingBuckets, long FailedBuckets, long Failures, long SentBuckets, PushHealth Health);

/// <summary>What one run did.</summary>
/// <param name="Skipped">Why nothing was attempted (history holding deltas, database error), else null.</param>
public sealed record PushRunResult(int Seeded, int Sent, int Refused, int Failed, string? Skipped);

/// <summary>
/// Pushes every closed 5-minute bucket to API_ENDPOINT (see <see cref="PushPayload"/> for the
/// JSON, <see cref="PushOutbox"/> for the bookkeeping). Every interval, half-way between two
/// flushes: seed the outbox with newly closed buckets, then send the due ones oldest first, at
/// most <see cref="PushOptions.BatchSize"/> per run, one POST each, content read from SQLite at
/// send time. A bucket is marked sent only after a 2xx; a transient failure ends the run (the
/// next run starts again from the oldest); 401/403 ends it too (every bucket would be refused);
/// another 4xx marks just that bucket failed, offered again hourly. Logs once per change of the
/// endpoint's state, not per attempt. On stop, one last run bounded by <see cref="PushOptions.ShutdownTimeout"/>.
/// </summary>
public sealed class ApiPushService : BackgroundService
{
    private readonly PushOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<bool>? _historyHoldsDeltas;
    private readonly PushClient _client;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private PushOutbox? _outbox;
    private bool _databaseFailing;
    private DateTimeOffset _rejectedUntil = DateTimeOffset.MinValue;
    private PushStatus _status = new(null, 0, 0, 0, 0, PushHealth.Unknown);

    /// <param name="historyHoldsDeltas">True while the history writer holds deltas in memory after
    /// failed writes (e.g. <c>() =&gt; history.PendingBuckets &gt; 0</c>): they may belong to a
    /// closed bucket, so the run waits for them.</param>
    public ApiPushService(PushOptions options, TimeProvider time, ILogger<ApiPushService> logger, Func<bool>? historyHoldsDeltas = null)
    {
        if (options.Interval <= TimeSpan.Zero) throw new ArgumentException("Interval must be positive", nameof(options));
        if (options.BatchSize <= 0) throw new ArgumentException("BatchSize must be positive", nameof(options));
        _options = options;
        _time = time;
        _logger = logger;
        _historyHoldsDeltas = historyHoldsDeltas;
        _client = new PushClient(options, state => _logger.LogDebug("API push circuit breaker {State}", state));
    }

    public PushStatus Status => Volatile.Read(ref _status);

    /// <summary>Start of the newest bucket that is closed at <paramref name="now"/>: start + 300 s + interval ≤ now.</summary>
    public static long LastClosedBucket(DateTimeOffset now, TimeSpan interval) =>
        Buckets.Of(now - TimeSpan.FromSeconds(Buckets.Seconds) - interval);

    /// <summary>The next run: the first instant k·interval + offset strictly after <paramref name="now"/>.</summary>
    public static DateTimeOffset NextRun(DateTimeOffset now, TimeSpan interval, TimeSpan offset) =>
        HistoryFlushService.NextBoundary(now - offset, interval) + offset;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _logger.LogInformation("API push to {Endpoint} as {Host}: closed 5-minute buckets, every {Interval}", _options.Endpoint, _options.Hostname, _options.Interval);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var wait = NextRun(_time.GetUtcNow(), _options.Interval, TimeSpan.FromTicks(_options.RunOffset.Ticks % _options.Interval.Ticks)) - _time.GetUtcNow();
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, stoppingToken).ConfigureAwait(false);
                await RunOnceAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>Stops the loop, then one last run within <see cref="PushOptions.ShutdownTimeout"/>.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(_options.ShutdownTimeout);
        try
        {
            await RunOnceAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _logger.LogInformation("API push: final attempt cut short after {Timeout}; {Pending} buckets wait for the next start",
                _options.ShutdownTimeout, Status.PendingBuckets);
        }
    }

    /// <summary>One run: seed, then send what is due. Throws only <see cref="OperationCanceledException"/>.</summary>
    public async Task<PushRunResult> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_historyHoldsDeltas?.Invoke() == true)
            {
                _logger.LogDebug("API push waits: the history writer holds unwritten deltas");
                return new PushRunResult(0, 0, 0, 0, "history holds unwritten deltas");
            }
            try
            {
                return await RunAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // SQLite (locked past the busy timeout, unreadable, deleted) or anything unforeseen:
                // never fatal to the daemon (a BackgroundService exception would stop the host).
                if (!_databaseFailing)
                    _logger.LogWarning("API push: reading the outbox in {Path} failed ({Error}); retrying every run", _options.SqlitePath, e.Message);
                _databaseFailing = true;
                _outbox?.Dispose();
                _outbox = null;
                return new PushRunResult(0, 0, 0, 0, "database: " + e.Message);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>How far back a sent bucket is checked for late data (the 5-minute rows it is read from are kept 2 days by default).</summary>
    public static readonly TimeSpan RevisionWindow = TimeSpan.FromDays(1);

    private async Task<PushRunResult> RunAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_outbox is null)
        {
            _outbox = PushOutbox.Open(_options.SqlitePath, _options.BusyTimeout, now);
            _logger.LogInformation("API push: outbox in {Path}; buckets from {Since:u} on (when push was first enabled)",
                _options.SqlitePath, Buckets.StartOf(_outbox.EnabledSince));
            if (Status.LastSuccess is null && _outbox.LastSentAt() is { } last) Publish(s => s with { LastSuccess = last });
        }
        var outbox = _outbox;
        var pruneBefore = Buckets.Of(now - _options.OutboxRetention);
        var seeded = outbox.Seed(LastClosedBucket(now, _options.Interval), pruneBefore);
        var revised = outbox.ReviseGrown(Math.Max(pruneBefore, Buckets.Of(now - RevisionWindow)));
        if (revised > 0)
            _logger.LogInformation("API push: {Buckets} sent buckets got more data since (a late write, a clock step); sending them again as revisions", revised);
        outbox.Prune(pruneBefore);
        if (_databaseFailing) _logger.LogInformation("API push: outbox in {Path} readable again", _options.SqlitePath);
        _databaseFailing = false;

        int sent = 0, refused = 0, failed = 0;
        try
        {
            // Token refused: one probe per PermanentFailureRetry, not one bucket per run.
            if (Status.Health == PushHealth.Rejected && now < _rejectedUntil) return Done();
            foreach (var entry in outbox.Due(now, _options.BatchSize))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (clients, totals) = outbox.History.Bucket(entry.Bucket);
                var body = PushPayload.Serialize(_options.Hostname, entry.Bucket, clients, totals, entry.Revision);
                var result = await _client.SendAsync(_options.Hostname, entry.Bucket, body, cancellationToken, entry.Revision).ConfigureAwait(false);
                var at = _time.GetUtcNow();
                switch (result.Outcome)
                {
                    case SendOutcome.Sent:
                        outbox.MarkSent(entry.Bucket, at, PushOutbox.TotalOf(totals));
                        sent++;
                        Publish(s => s with { LastSuccess = at, SentBuckets = s.SentBuckets + 1 });
                        // The token is accepted again: what was refused for it goes with the backlog.
                        if (Status.Health == PushHealth.Rejected) outbox.MakeFailedDue();
                        SetHealth(PushHealth.Ok, entry.Bucket, result);
                        break;
                    case SendOutcome.Refused:
                        outbox.MarkRefused(entry.Bucket, result.Error!, at + _options.PermanentFailureRetry);
                        refused++;
                        Publish(s => s with { Failures = s.Failures + 1 });
                        if (entry.State == PushOutbox.Pending) // once per bucket, not per hourly retry
                            _logger.LogWarning("API push: endpoint refused bucket {Bucket:u} ({Error}); kept as failed, offered again every {Retry}",
                                Buckets.StartOf(entry.Bucket), result.Error, _options.PermanentFailureRetry);
                        break;
                    case SendOutcome.Unauthorized:
                        outbox.MarkRefused(entry.Bucket, result.Error!, at + _options.PermanentFailureRetry);
                        refused++;
                        Publish(s => s with { Failures = s.Failures + 1 });
                        SetHealth(PushHealth.Rejected, entry.Bucket, result);
                        _rejectedUntil = at + _options.PermanentFailureRetry;
                        return Done();
                    case SendOutcome.Transient:
                        outbox.MarkAttemptFailed(entry.Bucket, result.Error!);
                        failed++;
                        Publish(s => s with { Failures = s.Failures + 1 });
                        SetHealth(PushHealth.Failing, entry.Bucket, result);
                        return Done();
                    case SendOutcome.BreakerOpen:
                        SetHealth(PushHealth.Failing, entry.Bucket, result);
                        return Done();
                }
            }
            return Done();
        }
        finally
        {
            // Counts after whatever happened, cancellation included.
            var (pending, failedBuckets) = outbox.Counts();
            Publish(s => s with { PendingBuckets = pending + failedBuckets, FailedBuckets = failedBuckets });
        }

        PushRunResult Done()
        {
            if (sent > 0) _logger.LogDebug("API push: {Sent} buckets sent, {Pending} waiting", sent, Status.PendingBuckets);
            return new PushRunResult(seeded, sent, refused, failed, null);
        }
    }

    private void SetHealth(PushHealth health, long bucket, SendResult result)
    {
        var before = Status.Health;
        if (before == health) return;
        Publish(s => s with { Health = health });
        switch (health)
        {
            case PushHealth.Ok when before != PushHealth.Unknown:
                _logger.LogInformation("API push: endpoint {Endpoint} recovered; sending the backlog oldest first", _options.Endpoint);
                break;
            case PushHealth.Failing:
                _logger.LogWarning("API push: endpoint {Endpoint} failing ({Error}) at bucket {Bucket:u}; buckets stay in the outbox, retried with backoff",
                    _options.Endpoint, result.Error, Buckets.StartOf(bucket));
                break;
            case PushHealth.Rejected:
                _logger.LogError("API push: endpoint {Endpoint} rejects the token ({Error}); buckets kept as failed, offered again every {Retry}",
                    _options.Endpoint, result.Error, _options.PermanentFailureRetry);
                break;
        }
    }

    private void Publish(Func<PushStatus, PushStatus> change)
    {
        // One writer at a time (the gate); readers see whole snapshots.
        Volatile.Write(ref _status, change(_status));
    }

    public override void Dispose()
    {
        base.Dispose();
        _client.Dispose();
        _outbox?.Dispose();
        _outbox = null;
    }
}
