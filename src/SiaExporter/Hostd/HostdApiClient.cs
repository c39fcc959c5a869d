using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace SiaExporter.Hostd;

/// <summary>hostd answered, but not with what this reader understands (status, JSON shape).</summary>
public sealed class HostdApiException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads hostd's HTTP API: GET {HOSTD_API_URL}/syncer/peers with basic auth (hostd checks only the
/// password). One request per call; retries and timeouts belong to the caller.
/// </summary>
public sealed class HostdApiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly Uri _peers;

    public HostdApiClient(string apiUrl, string? password, HttpMessageHandler? handler = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(apiUrl);
        _peers = new Uri(apiUrl.TrimEnd('/') + "/syncer/peers");
        _http = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = Timeout.InfiniteTimeSpan, // the caller's pipeline times each attempt
        };
        if (!string.IsNullOrEmpty(password))
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes(":" + password)));
        _http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
    }

    /// <summary>Where the peers are read from (no credentials in it).</summary>
    public Uri PeersUri => _peers;

    /// <summary>The connected syncer peers. Throws <see cref="HttpRequestException"/> when hostd
    /// cannot be reached, <see cref="HostdApiException"/> when it answers something else than peers.</summary>
    public async Task<IReadOnlyList<HostdPeer>> GetSyncerPeersAsync(CancellationToken cancel)
    {
        using var response = await _http.GetAsync(_peers, HttpCompletionOption.ResponseContentRead, cancel).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new HostdApiException(response.StatusCode == System.Net.HttpStatusCode.Unauthorized
                ? "401 Unauthorized: HOSTD_API_PASSWORD is not hostd's API password"
                : $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        var body = await response.Content.ReadAsByteArrayAsync(cancel).ConfigureAwait(false);
        return ParsePeers(body);
    }

    /// <summary>hostd's JSON: an array of peers, or null when it has none (a nil Go slice).</summary>
    public static IReadOnlyList<HostdPeer> ParsePeers(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Null) return [];
            if (root.ValueKind != JsonValueKind.Array) throw new HostdApiException($"expected a JSON array of peers, got {root.ValueKind}");
            var peers = new List<HostdPeer>(root.GetArrayLength());
            foreach (var p in root.EnumerateArray())
            {
                if (p.ValueKind != JsonValueKind.Object || !p.TryGetProperty("address", out var address) || address.ValueKind != JsonValueKind.String)
                    throw new HostdApiException("a peer without an \"address\"");
                var inbound = p.TryGetProperty("inbound", out var i) && i.ValueKind == JsonValueKind.True;
                var version = p.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
                peers.Add(new HostdPeer(address.GetString()!, inbound, version));
            }
            return peers;
        }
        catch (JsonException e)
        {
            throw new HostdApiException("the answer is not JSON", e);
        }
    }

    public void Dispose() => _http.Dispose();
}
