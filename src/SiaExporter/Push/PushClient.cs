using System.Net;
using System.Net.Http.Headers;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace SiaExporter.Push;

/// <summary>How sending one bucket ended.</summary>
public enum SendOutcome
{
    /// <summary>2xx: acknowledged.</summary>
    Sent,
    /// <summary>Timeouts, connection errors, 5xx, 408, 429, still failing after the retries.</summary>
    Transient,
    /// <summary>The circuit breaker is open: not sent at all.</summary>
    BreakerOpen,
    /// <summary>401/403: the endpoint refuses this host's token, so every bucket would be refused.</summary>
    Unauthorized,
    /// <summary>Another 4xx (or a redirect): the endpoint refuses this bucket.</summary>
    Refused,
}

/// <param name="Status">The last HTTP status, when a response came back.</param>
/// <param name="Error">What went wrong, for the outbox's last_error and the log (null when sent).</param>
public sealed record SendResult(SendOutcome Outcome, int? Status, string? Error);

/// <summary>
/// POSTs one bucket through a Polly pipeline: retry (exponential backoff with jitter, honouring
/// a Retry-After up to <see cref="PushOptions.MaxRetryDelay"/>) around a circuit breaker around a
/// per-attempt timeout. Transient: connection errors, attempt timeouts, 5xx, 408, 429.
/// </summary>
public sealed class PushClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly PushOptions _options;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    public PushClient(PushOptions options, Action<CircuitState>? breakerChanged = null)
    {
        _options = options;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = options.RequestTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // the pipeline's attempt timeout rules
        };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sia-exporter", typeof(PushClient).Assembly.GetName().Version?.ToString(3) ?? "0"));

        var transient = new PredicateBuilder<HttpResponseMessage>()
            .Handle<HttpRequestException>()
            .Handle<TimeoutRejectedException>()
            .HandleResult(r => IsTransient(r.StatusCode));
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = options.ResilienceTime };
        if (options.RetryAttempts > 0)
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = transient,
                MaxRetryAttempts = options.RetryAttempts,
                Delay = options.RetryDelay,
                MaxDelay = options.MaxRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result, options.MaxRetryDelay)),
                OnRetry = args =>
                {
                    args.Outcome.Result?.Dispose();
                    return ValueTask.CompletedTask;
                },
            });
        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
        {
            ShouldHandle = transient,
            FailureRatio = 0.8,
            MinimumThroughput = options.BreakerMinimumThroughput,
            SamplingDuration = options.BreakerSamplingDuration,
            BreakDuration = options.BreakDuration,
            OnOpened = _ =>
            {
                breakerChanged?.Invoke(CircuitState.Open);
                return ValueTask.CompletedTask;
            },
            OnClosed = _ =>
            {
                breakerChanged?.Invoke(CircuitState.Closed);
                return ValueTask.CompletedTask;
            },
        });
        builder.AddTimeout(options.RequestTimeout);
        _pipeline = builder.Build();
    }

    /// <summary>Sends <paramref name="body"/> as bucket <paramref name="bucket"/> of <paramref name="host"/>.
    /// Throws <see cref="OperationCanceledException"/> only when <paramref name="cancellationToken"/> fires.</summary>
    /// <param name="revision">0 for a bucket's first send: Idempotency-Key HOST/BUCKET; N for its Nth revision: HOST/BUCKET/rN.</param>
    public async Task<SendResult> SendAsync(string host, long bucket, byte[] body, CancellationToken cancellationToken, long revision = 0)
    {
        var key = revision == 0 ? FormattableString.Invariant($"{host}/{bucket}") : FormattableString.Invariant($"{host}/{bucket}/r{revision}");
        HttpResponseMessage response;
        try
        {
            response = await _pipeline.ExecuteAsync(async token =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, _options.Endpoint);
                request.Content = new ByteArrayContent(body);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _options.Token);
                request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
                return await _http.SendAsync(request, token).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            return new SendResult(SendOutcome.BreakerOpen, null, "circuit open: endpoint failing, not sent");
        }
        catch (TimeoutRejectedException)
        {
            return new SendResult(SendOutcome.Transient, null, $"timed out after {_options.RequestTimeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException e)
        {
            return new SendResult(SendOutcome.Transient, null, Describe(e));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Cancelled from inside HttpClient without our token (connection torn down): transient.
            return new SendResult(SendOutcome.Transient, null, "request cancelled");
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode) return new SendResult(SendOutcome.Sent, status, null);
            var error = $"HTTP {status} {response.ReasonPhrase}{await BodyExcerptAsync(response, cancellationToken).ConfigureAwait(false)}";
            if (IsTransient(response.StatusCode)) return new SendResult(SendOutcome.Transient, status, error);
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                return new SendResult(SendOutcome.Unauthorized, status, error);
            return new SendResult(SendOutcome.Refused, status, error);
        }
    }

    public void Dispose() => _http.Dispose();

    internal static bool IsTransient(HttpStatusCode status) =>
        (int)status >= 500 || status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests;

    private static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeSpan cap)
    {
        var header = response?.Headers.RetryAfter;
        if (header is null) return null; // the strategy's own backoff
        var wait = header.Delta ?? (header.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        if (wait is null) return null;
        return wait < TimeSpan.Zero ? TimeSpan.Zero : wait > cap ? cap : wait;
    }

    private static string Describe(HttpRequestException e)
    {
        var inner = e.InnerException is { } i && i.Message != e.Message ? $" ({i.Message})" : "";
        return e.Message + inner;
    }

    private static async Task<string> BodyExcerptAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            text = text.Trim().ReplaceLineEndings(" ");
            if (text.Length == 0) return "";
            return ": " + (text.Length > 200 ? text[..200] + "…" : text);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return "";
        }
    }
}
