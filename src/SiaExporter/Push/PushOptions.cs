using SiaExporter.Hosting;

namespace SiaExporter.Push;

/// <summary>
/// Settings of the remote API push. <see cref="From(CollectorOptions)"/> takes the daemon's
/// (API_ENDPOINT, API_TOKEN, SIA_HOSTNAME, SQLITE_PATH, FLUSH_INTERVAL, RETENTION_DAYS); the rest
/// are tuning with defaults for the daemon, made short by tests.
/// </summary>
public sealed record PushOptions
{
    public required Uri Endpoint { get; init; }
    public required string Token { get; init; }
    /// <summary>"host" in the payload and the first half of the Idempotency-Key.</summary>
    public required string Hostname { get; init; }
    public required string SqlitePath { get; init; }

    /// <summary>How often the outbox is worked (the flush interval): a bucket is closed once
    /// now ≥ start + 300 s + this, i.e. the flush after its end has committed.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Where in the interval a run happens: half-way, away from the flush on the boundary.</summary>
    public TimeSpan RunOffset { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Most buckets sent in one run (one request each, oldest first): a day's backlog (288) drains in three runs.</summary>
    public int BatchSize { get; init; } = 100;

    /// <summary>Timeout of one HTTP attempt.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Retries of one bucket within a run after the first attempt (transient failures only).</summary>
    public int RetryAttempts { get; init; } = 3;

    /// <summary>Base of the exponential backoff (with jitter) between attempts.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between attempts, also the cap on an honoured Retry-After.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Circuit breaker: this many attempts in <see cref="BreakerSamplingDuration"/>, all failed, open it.</summary>
    public int BreakerMinimumThroughput { get; init; } = 4;

    public TimeSpan BreakerSamplingDuration { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How long an open breaker rejects requests without sending them.</summary>
    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a bucket the endpoint refused (4xx other than 408/429) is offered again.</summary>
    public TimeSpan PermanentFailureRetry { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Bound of the last attempt on shutdown.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>SQLite busy timeout of the push's own connection.</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Sent outbox rows older than this are deleted (the history rows are gone by then).</summary>
    public TimeSpan OutboxRetention { get; init; } = TimeSpan.FromDays(401);

    /// <summary>Clock of the Polly strategies (backoff, timeout, breaker). Real time by default:
    /// bucket closure and the run schedule follow the service's injected clock, a backoff must simply pass.</summary>
    public TimeProvider ResilienceTime { get; init; } = TimeProvider.System;

    /// <summary>The push settings of the daemon, or null when push is off (API_ENDPOINT or API_TOKEN empty).</summary>
    public static PushOptions? From(CollectorOptions options)
    {
        if (!options.ApiPushEnabled) return null;
        if (!Uri.TryCreate(options.ApiEndpoint, UriKind.Absolute, out var endpoint) || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
            throw new SettingsException([$"API_ENDPOINT '{options.ApiEndpoint}' is not an http:// or https:// URL"]);
        return new PushOptions
        {
            Endpoint = endpoint,
            Token = options.ApiToken!,
            Hostname = options.SiaHostname,
            SqlitePath = options.SqlitePath,
            Interval = options.FlushInterval,
            RunOffset = options.FlushInterval / 2,
            OutboxRetention = TimeSpan.FromDays(options.RetentionDays + 1),
        };
    }
}
