using Prometheus;
using SiaExporter.Push;

namespace SiaExporter.Metrics;

/// <summary>The API push's state, read at scrape time; registered only when the push is on.</summary>
internal sealed class PushCollector
{
    private readonly Func<PushStatus> _status;
    private readonly Gauge _lastSuccess;
    private readonly Gauge _pending;
    private readonly Counter _failures;

    /// <summary>Creates the push metrics on <paramref name="registry"/> and updates them before every collection.</summary>
    public static void Register(CollectorRegistry registry, Func<PushStatus> status)
    {
        var collector = new PushCollector(registry, status);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private PushCollector(CollectorRegistry registry, Func<PushStatus> status)
    {
        _status = status;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        _lastSuccess = f.CreateGauge("sia_exporter_push_last_success_timestamp_seconds",
            "Unix time of the last bucket the API endpoint acknowledged (0 until the first; absent when push is off).");
        _pending = f.CreateGauge("sia_exporter_push_pending_buckets",
            "Closed 5-minute buckets not yet acknowledged by the API endpoint (including ones it refused).");
        _failures = f.CreateCounter("sia_exporter_push_failures_total",
            "Failed requests to the API endpoint; the buckets stay in the outbox and are sent later.");
    }

    private void Update()
    {
        var status = _status();
        if (status.LastSuccess is { } at) _lastSuccess.Set(at.ToUnixTimeMilliseconds() / 1000.0);
        _pending.Set(status.PendingBuckets);
        _failures.IncTo(status.Failures);
    }
}
