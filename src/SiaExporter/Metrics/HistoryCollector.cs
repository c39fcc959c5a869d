using Prometheus;

namespace SiaExporter.Metrics;

/// <summary>The SQLite history's health: when a flush last committed, and how many failed.</summary>
public readonly record struct HistoryHealth(DateTimeOffset? LastSuccess, long Failures);

/// <summary>The SQLite history's health, read at scrape time.</summary>
internal sealed class HistoryCollector
{
    private readonly Func<HistoryHealth> _health;
    private readonly Gauge _lastSuccess;
    private readonly Counter _failures;

    /// <summary>Creates the history metrics on <paramref name="registry"/> and updates them before every collection.</summary>
    public static void Register(CollectorRegistry registry, Func<HistoryHealth> health)
    {
        var collector = new HistoryCollector(registry, health);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private HistoryCollector(CollectorRegistry registry, Func<HistoryHealth> health)
    {
        _health = health;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        _lastSuccess = f.CreateGauge("sia_exporter_sqlite_last_success_timestamp_seconds",
            "Unix time of the last flush to the SQLite history that committed (0 until the first).");
        _failures = f.CreateCounter("sia_exporter_sqlite_flush_failures_total",
            "Flushes to the SQLite history that failed after their retries; their deltas are kept and written by a later flush.");
    }

    private void Update()
    {
        var health = _health();
        if (health.LastSuccess is { } at) _lastSuccess.Set(at.ToUnixTimeMilliseconds() / 1000.0);
        _failures.IncTo(health.Failures);
    }
}
