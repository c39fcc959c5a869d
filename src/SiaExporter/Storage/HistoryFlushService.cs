using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Storage;

/// <summary>
/// Flushes the counters to the SQLite history every <see cref="CollectorOptions.FlushInterval"/>,
/// on the boundary (every minute at :00 seconds by default), attributing each delta to the
/// bucket of the instant just before the boundary it woke for (a flush that wakes later than a
/// whole interval, after a suspend, uses the read's own time). After a committed flush: WAL
/// checkpoint, idle-client eviction, and once an hour retention of each tier in small batches,
/// within a quarter of the interval so the next flush is never late. On stop, one final flush.
/// A step of the wall clock is logged; retention's clock (<see cref="Clock.ClockWatch.Cautious"/>)
/// does not follow a forward step.
/// <para>
/// Wiring: <c>new HistoryFlushService(history, snapshots.Fresh, lifecycle, options, time, logger)</c>
/// with <see cref="SnapshotSource"/>; the <see cref="ClientLifecycle"/> (null: no eviction) is
/// shown every flushed snapshot and, after each committed flush, evicts the idle clients through
/// the history.
/// </para>
/// </summary>
public sealed class HistoryFlushService : BackgroundService
{
    private readonly TrafficHistory _history;
    private readonly Func<CounterSnapshot> _read;
    private readonly ClientLifecycle? _lifecycle;
    private readonly CollectorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Clock.ClockWatch _clock;
    private TimeSpan _nextRetention = TimeSpan.MinValue; // on the monotonic clock (_clock.Elapsed)

    public HistoryFlushService(
        TrafficHistory history,
        Func<CounterSnapshot> read,
        ClientLifecycle? lifecycle,
        CollectorOptions options,
        TimeProvider time,
        ILogger<HistoryFlushService> logger,
        Billing.BillingMeter? billing = null)
    {
        if (options.FlushInterval <= TimeSpan.Zero) throw new ArgumentException("FlushInterval must be positive", nameof(options));
        _history = history;
        _read = read;
        _lifecycle = lifecycle;
        _options = options;
        _time = time;
        _clock = new Clock.ClockWatch(time);
        _billing = billing;
        _logger = logger;
        _tiers = HistoryTiers.From(options.Database);
    }

    private readonly IReadOnlyList<HistoryTier> _tiers;
    private readonly Billing.BillingMeter? _billing;

    /// <summary>Flushes completed by the loop (committed or not).</summary>
    public long Flushes { get; private set; }

    /// <summary>The first boundary strictly after <paramref name="now"/>.</summary>
    public static DateTimeOffset NextBoundary(DateTimeOffset now, TimeSpan interval)
    {
        var ticks = now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        return DateTimeOffset.UnixEpoch.AddTicks((ticks / interval.Ticks + 1) * interval.Ticks);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = _options.FlushInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            var boundary = NextBoundary(_time.GetUtcNow(), interval);
            try
            {
                var wait = boundary - _time.GetUtcNow();
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            await FlushOnceAsync(boundary, stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One scheduled flush for <paramref name="boundary"/> and the upkeep after it.</summary>
    internal async Task FlushOnceAsync(DateTimeOffset boundary, CancellationToken cancellationToken)
    {
        var clock = _clock.Read();
        if (clock.Stepped)
            _logger.LogWarning("Wall clock stepped {Step} (monotonic time moved {Elapsed} less or more): deltas go to the bucket of the new wall time, " +
                "each counted once; idle eviction and retention measure elapsed time", Clock.ClockWatch.Describe(clock.Step), Hosting.DurationText.Format(clock.Step.Duration()));
        CounterSnapshot snapshot;
        try
        {
            snapshot = _read();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogWarning("Counter read for the SQLite flush failed: {Error}", e.Message);
            return;
        }
        var late = snapshot.TakenAt - boundary >= _options.FlushInterval;
        var countedAt = late ? snapshot.TakenAt : boundary - TimeSpan.FromMilliseconds(1);
        var result = await _history.FlushAsync(snapshot, countedAt, CancellationToken.None).ConfigureAwait(false);
        Flushes++;
        _lifecycle?.Observe(snapshot);
        if (!result.Committed) return;
        await _history.CheckpointAsync(cancellationToken).ConfigureAwait(false);
        if (_billing is not null)
        {
            var period = _billing.PeriodAt(clock.Wall);
            if (await _history.HostBytesAsync(period.Start, period.End, cancellationToken).ConfigureAwait(false) is var (up, down))
                _billing.Update(new Billing.BillingUsage(period, up, down));
        }
        if (_lifecycle is not null)
        {
            var eviction = await _lifecycle.EvictIdleAsync(_history, CancellationToken.None).ConfigureAwait(false);
            if (eviction.Evicted > 0)
                _logger.LogInformation("Evicted {Clients} clients idle for {Idle} from the kernel map", eviction.Evicted, _lifecycle.IdleTimeout);
        }
        if (_clock.Elapsed >= _nextRetention)
        {
            var retention = await _history.DeleteExpiredAsync(_tiers, _clock.Cautious, 1000, _options.FlushInterval / 4, cancellationToken).ConfigureAwait(false);
            // Done: next hour. Budget spent: carry on after the next flush.
            _nextRetention = retention.Complete ? _clock.Elapsed + TimeSpan.FromHours(1) : TimeSpan.MinValue;
        }
    }

    /// <summary>Stops the loop, then writes what was counted since the last flush.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        await FinalFlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The shutdown flush: a fresh read, attributed to its own time.</summary>
    public async Task<FlushResult?> FinalFlushAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var snapshot = _read();
            var result = await _history.FlushAsync(snapshot, snapshot.TakenAt, cancellationToken).ConfigureAwait(false);
            if (result.Committed) await _history.CheckpointAsync(cancellationToken).ConfigureAwait(false);
            else _logger.LogError("Final SQLite flush failed ({Error}); the stored baseline is older, so the next start counts the rest", result.Error?.Message);
            return result;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _logger.LogError("Final SQLite flush failed: {Error}", e.Message);
            return null;
        }
    }
}
