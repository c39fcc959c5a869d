namespace SiaExporter.Storage;

/// <summary>Tuning of the SQLite history writer; the defaults suit the daemon.</summary>
public sealed record HistoryOptions
{
    public static HistoryOptions Default { get; } = new();

    /// <summary>How long one statement waits for another writer's lock (SQLite busy timeout).</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Retries within one flush after the first attempt failed (Polly, exponential backoff with jitter).</summary>
    public int RetryAttempts { get; init; } = 3;

    /// <summary>Buckets of held deltas kept in memory while the database cannot be written; older ones
    /// go to <see cref="HeldDeltaSpill"/> beside the database (about 3 MB per bucket at 16,000 clients).</summary>
    public int HeldBucketsInMemory { get; init; } = 2;

    /// <summary>Base delay of the retry backoff.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);
}
