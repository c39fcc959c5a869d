using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SiaExporter.Tests;

/// <summary>
/// hostd's HTTP API as far as the exporter and Prometheus read it, on a free 127.0.0.1 port (hostd
/// itself cannot be installed here). It replays hostd's shapes, read in its source
/// (SiaFoundation/hostd v2.10+):
/// <list type="bullet">
/// <item>everything under <c>/api</c> behind HTTP basic auth where only the password counts
///   (jape.BasicAuth(cfg.HTTP.Password) in cmd/hostd/run.go);</item>
/// <item><c>GET /api/metrics?response=prometheus</c>: hostd's own encoder
///   (internal/prometheus/encoder.go): one <c>name value</c> per line, no HELP, no TYPE, no
///   newline after the last sample; the data counters are
///   <c>hostd_metrics_data_{rhp,syncer}_{ingress,egress}</c> (api/prometheus.go);</item>
/// <item><c>GET /api/syncer/peers</c>: a JSON array of api.Peer (address, inbound, version,
///   firstSeen, connectedSince, syncedBlocks, syncDuration), or <c>null</c> with no peer (a nil
///   Go slice).</item>
/// </list>
/// Payload counters grow with time at the given bytes per second.
/// </summary>
public sealed class HostdReplay : IDisposable
{
    /// <summary>Bytes per second hostd counts as payload.</summary>
    public sealed record PayloadRates(double RhpIngress, double RhpEgress, double SyncerIngress, double SyncerEgress);

    /// <summary>One connected syncer peer as hostd lists it.</summary>
    public sealed record Peer(string Address, bool Inbound, string Version);

    private readonly HttpListener _listener = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _loop;
    private readonly PayloadRates _rates;
    private readonly string _password;
    private int _peerRequests, _unauthorized;

    public HostdReplay(string password, PayloadRates rates, IEnumerable<Peer>? peers = null)
    {
        _password = password;
        _rates = rates;
        Peers = peers?.ToList() ?? [];
        for (var attempt = 0; ; attempt++)
        {
            Port = FreePort();
            try { _listener.Prefixes.Add($"http://127.0.0.1:{Port}/"); _listener.Start(); break; }
            catch (HttpListenerException) when (attempt < 5) { _listener.Prefixes.Clear(); }
        }
        _loop = Task.Run(ServeAsync);
    }

    public int Port { get; }

    /// <summary>host:port, as a Prometheus target.</summary>
    public string Target => $"127.0.0.1:{Port}";

    /// <summary>http://127.0.0.1:port/api, the HOSTD_API_URL.</summary>
    public string ApiUrl => $"http://127.0.0.1:{Port}/api";

    /// <summary>The peers /api/syncer/peers lists now; replace to change what the next request sees.</summary>
    public volatile IReadOnlyList<Peer> Peers;

    /// <summary>While true every request gets 500 (hostd up but failing).</summary>
    public volatile bool Failing;

    public int PeerRequests => Volatile.Read(ref _peerRequests);

    public int Unauthorized => Volatile.Read(ref _unauthorized);

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            try { await AnswerAsync(ctx); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or IOException) { }
        }
    }

    private async Task AnswerAsync(HttpListenerContext ctx)
    {
        var request = ctx.Request;
        var response = ctx.Response;
        var path = request.Url!.AbsolutePath;
        if (!path.StartsWith("/api/", StringComparison.Ordinal))
        {
            await WriteAsync(response, 404, "text/plain; charset=utf-8", "404 page not found\n");
            return;
        }
        if (!Authorized(request))
        {
            Interlocked.Increment(ref _unauthorized);
            response.AddHeader("WWW-Authenticate", "Basic");
            await WriteAsync(response, 401, "text/plain; charset=utf-8", "Unauthorized\n");
            return;
        }
        if (Failing)
        {
            await WriteAsync(response, 500, "text/plain; charset=utf-8", "internal error\n");
            return;
        }
        switch (path)
        {
            case "/api/syncer/peers":
                Interlocked.Increment(ref _peerRequests);
                await WriteAsync(response, 200, "application/json", PeersJson(Peers));
                return;
            case "/api/metrics" when request.QueryString["response"] == "prometheus":
                await WriteAsync(response, 200, "text/plain; charset=utf-8", MetricsText(_clock.Elapsed.TotalSeconds));
                return;
            default:
                await WriteAsync(response, 404, "text/plain; charset=utf-8", "404 page not found\n");
                return;
        }
    }

    private bool Authorized(HttpListenerRequest request)
    {
        var header = request.Headers["Authorization"];
        if (header is null || !header.StartsWith("Basic ", StringComparison.Ordinal)) return false;
        string decoded;
        try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..])); }
        catch (FormatException) { return false; }
        var colon = decoded.IndexOf(':');
        return colon >= 0 && decoded[(colon + 1)..] == _password;
    }

    private static async Task WriteAsync(HttpListenerResponse response, int status, string contentType, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes);
        response.Close();
    }

    /// <summary>hostd's JSON for /api/syncer/peers (api.PeerResp; encoding/json of a nil slice is null).</summary>
    public static string PeersJson(IReadOnlyList<Peer> peers)
    {
        if (peers.Count == 0) return "null\n";
        var sb = new StringBuilder("[");
        for (var i = 0; i < peers.Count; i++)
        {
            var p = peers[i];
            if (i > 0) sb.Append(',');
            sb.Append(CultureInfo.InvariantCulture,
                $"{{\"address\":\"{p.Address}\",\"inbound\":{(p.Inbound ? "true" : "false")},\"version\":\"{p.Version}\",\"firstSeen\":\"2026-11-30T08:12:45.123456789Z\",\"connectedSince\":\"2026-12-02T07:59:01.5Z\",\"syncedBlocks\":12,\"syncDuration\":3500000000}}");
        }
        return sb.Append("]\n").ToString();
    }

    /// <summary>hostd's /api/metrics?response=prometheus at <paramref name="seconds"/> after start:
    /// the samples of api.Metrics.PrometheusMetric in its order (a selection of the non-data ones).</summary>
    public string MetricsText(double seconds)
    {
        static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var samples = new (string Name, double Value)[]
        {
            ("hostd_metrics_accounts_active", 3),
            ("hostd_metrics_accounts_balance", 1.5),
            ("hostd_metrics_contracts_active", 42),
            ("hostd_metrics_storage_total_bytes", 4e12),
            ("hostd_metrics_storage_physical_used_bytes", 1.25e12),
            ("hostd_metrics_storage_sector_cache_hits", 10),
            ("hostd_metrics_storage_sector_cache_misses", 2),
            ("hostd_metrics_data_rhp_ingress", Math.Floor(5e9 + _rates.RhpIngress * seconds)),
            ("hostd_metrics_data_rhp_egress", Math.Floor(7e9 + _rates.RhpEgress * seconds)),
            ("hostd_metrics_data_syncer_ingress", Math.Floor(1e8 + _rates.SyncerIngress * seconds)),
            ("hostd_metrics_data_syncer_egress", Math.Floor(2e8 + _rates.SyncerEgress * seconds)),
            ("hostd_metrics_wallet_balance", 1234.5),
            ("hostd_metrics_wallet_immature_balance", 0),
        };
        return string.Join("\n", samples.Select(s => $"{s.Name} {F(s.Value)}"));
    }

    public void Dispose()
    {
        _listener.Close();
        try { _loop.Wait(2000); } catch (AggregateException) { }
    }
}
