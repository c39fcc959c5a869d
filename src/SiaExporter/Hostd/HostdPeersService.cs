using Polly;
using Polly.Retry;
using Polly.Timeout;
using SiaExporter.Hosting;

namespace SiaExporter.Hostd;

/// <summary>What the last read of hostd's syncer peers gave.</summary>
/// <param name="Peers">The connected peers; empty while hostd cannot be read.</param>
/// <param name="Reachable">The last read succeeded.</param>
public sealed record HostdPeersSnapshot(IReadOnlyList<HostdPeer> Peers, bool Reachable)
{
    public static HostdPeersSnapshot NotYetRead { get; } = new([], false);
}

/// <summary>
/// Reads hostd's syncer peers (GET {HOSTD_API_URL}/syncer/peers) every HOSTD_POLL_INTERVAL, each read
/// through a Polly pipeline (two retries with jittered backoff, 10 s per attempt), and keeps the
/// result for /metrics (sia_client_info). A hostd that is down or refuses the password is one log
/// line when it starts failing and one when it answers again, never an exception out of here.
/// </summary>
public sealed class HostdPeersService : BackgroundService
{
    private readonly HostdOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<HostdPeersService> _logger;
    private readonly HostdApiClient _client;
    private readonly ResiliencePipeline _pipeline;
    private HostdPeersSnapshot _current = HostdPeersSnapshot.NotYetRead;
    private bool? _lastReadOk;

    public HostdPeersService(HostdOptions options, TimeProvider time, ILogger<HostdPeersService> logger, HttpMessageHandler? handler = null,
        TimeSpan? retryDelay = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.Enabled) throw new ArgumentException("HOSTD_API_URL is not set", nameof(options));
        _options = options;
        _time = time;
        _logger = logger;
        _client = new HostdApiClient(options.ApiUrl!, options.ApiPassword, handler);
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<TimeoutRejectedException>(),
                MaxRetryAttempts = 2,
                Delay = retryDelay ?? TimeSpan.FromSeconds(1),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
            })
            .AddTimeout(TimeSpan.FromSeconds(10))
            .Build();
    }

    /// <summary>The peers of the last read (published whole; safe to read from any thread).</summary>
    public HostdPeersSnapshot Current => Volatile.Read(ref _current);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await ReadOnceAsync(stoppingToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(_options.PollInterval, _time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One read: updates <see cref="Current"/>; logs only when reading starts or stops working.</summary>
    public async Task ReadOnceAsync(CancellationToken cancel)
    {
        try
        {
            var peers = await _pipeline.ExecuteAsync(async ct => await _client.GetSyncerPeersAsync(ct).ConfigureAwait(false), cancel)
                .ConfigureAwait(false);
            Volatile.Write(ref _current, new HostdPeersSnapshot(peers, Reachable: true));
            if (_lastReadOk != true)
                _logger.LogInformation("hostd API {Uri}: {Count} syncer peer(s); they appear as sia_client_info{{role=\"syncer_peer\"}}",
                    _client.PeersUri, peers.Count);
            _lastReadOk = true;
        }
        catch (Exception e) when (!cancel.IsCancellationRequested && e is HttpRequestException or HostdApiException or TimeoutRejectedException)
        {
            Volatile.Write(ref _current, new HostdPeersSnapshot([], Reachable: false));
            if (_lastReadOk != false)
                _logger.LogWarning("hostd API {Uri} cannot be read: {Reason}; no syncer peers in sia_client_info until it answers (trying every {Interval})",
                    _client.PeersUri, Reason(e), DurationText.Format(_options.PollInterval));
            _lastReadOk = false;
        }
    }

    private static string Reason(Exception e) => e switch
    {
        TimeoutRejectedException => "no answer within 10 s",
        HttpRequestException { InnerException: { } inner } => inner.Message,
        _ => e.Message,
    };

    public override void Dispose()
    {
        _client.Dispose();
        base.Dispose();
    }
}
