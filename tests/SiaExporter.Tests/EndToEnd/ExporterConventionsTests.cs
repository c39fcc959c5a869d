using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SiaExporter.Counters;
using SiaExporter.Tests.Metrics;
using SiaExporter.Tests.Ops;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// What Prometheus users expect of an exporter, against the real daemon: exporter-toolkit's flags
/// (several listen addresses, a telemetry path, socket activation, no exporter metrics), content
/// negotiation (gzip, OpenMetrics, plain text; promtool clean on each), hostd's syncer peers
/// joined in and a hostd that goes away, and a real Prometheus scraping gzip + OpenMetrics.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class ExporterConventionsTests(ITestOutputHelper output)
{
    private const string OpenMetricsAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    private static readonly HttpClient Raw = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None })
    {
        Timeout = TimeSpan.FromSeconds(10),
    };

    private static async Task<HttpResponseMessage> GetAsync(Uri uri, string? accept = null, string? acceptEncoding = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (accept is not null) request.Headers.TryAddWithoutValidation("Accept", accept);
        if (acceptEncoding is not null) request.Headers.TryAddWithoutValidation("Accept-Encoding", acceptEncoding);
        return await Raw.SendAsync(request);
    }

    private (int Code, string Output) Promtool(string text)
    {
        var r = Shell.Exec(OpsTools.Require("promtool"), ["check", "metrics"], timeout: TimeSpan.FromSeconds(30), input: text);
        return (r.ExitCode, r.All.Trim());
    }

    /// <summary>A little traffic to the host's 9984/udp and a TCP exchange on 9981, so traffic, subnet
    /// and client series exist: the host's answer on 9981 confirms the client (bpf/clients.h: a source
    /// that never got a packet from the host has no entry of its own, only a share of "other").</summary>
    private static void SomeTraffic(TestNetwork net)
    {
        using var sink = new UdpClient(new IPEndPoint(net.HostV4, 9984)); // a listener: no ICMP port unreachable
        using var listener = new TcpListener(net.HostV4, 9981);
        listener.Start();
        var answer = Task.Run(() =>
        {
            using var connection = listener.AcceptTcpClient();
            connection.GetStream().Write("ok\n"u8);
        });
        net.RunInNamespace("bash", "-c",
            $"exec 3<>/dev/tcp/{net.HostV4}/9981 && echo sxt-conventions >&3 && head -c 3 <&3 >/dev/null; " +
            $"for i in 1 2 3 4 5; do echo sxt-conventions > /dev/udp/{net.HostV4}/9984; done");
        Assert.True(answer.Wait(TimeSpan.FromSeconds(10)), "the 9981 exchange did not complete");
    }

    [KernelFact]
    public async Task Toolkit_flags_content_negotiation_and_hostd_peers_against_the_real_daemon()
    {
        OpsTools.Require("promtool");
        using var net = TestNetwork.Create();
        var state = DaemonProcess.StateDirectoryOf(net);
        using var hostd = new HostdReplay("hostd-pw", new HostdReplay.PayloadRates(0, 0, 0, 0),
            [new HostdReplay.Peer($"{net.ClientV4A}:9981", Inbound: true, "2.0.0"), new HostdReplay.Peer("seed.example.net:9981", false, "2.0.0")]);
        var second = DashboardTests.FreePort();
        try
        {
            using var daemon = DaemonProcess.Start(net, telemetryPath: "/sia/metrics", extraArgs:
            [
                "--web.listen-address", $"127.0.0.1:{second}", "--web.disable-exporter-metrics", "--web.max-requests", "5",
                "--hostd-api-url", hostd.ApiUrl, "--hostd-api-password", "hostd-pw", "--hostd-poll-interval", "1s",
            ]);
            SomeTraffic(net);
            var secondUri = new Uri($"http://127.0.0.1:{second}/sia/metrics");
            var subnet = $"sia_traffic_subnet_bytes_total{{subnet=\"{string.Join('.', net.ClientV4A.ToString().Split('.')[..3])}.0/24\"";

            // Plain text by default, on both addresses; /metrics is not the telemetry path any more.
            string plain = "";
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(15))
            {
                plain = daemon.ScrapeText();
                if (plain.Contains($"sia_client_info{{client=\"{net.ClientV4A}\",role=\"syncer_peer\",version=\"2.0.0\"}} 1", StringComparison.Ordinal)
                    && plain.Contains(subnet, StringComparison.Ordinal)) break;
                await Task.Delay(200);
            }
            using (var r = await GetAsync(daemon.MetricsUri))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                Assert.Equal("text/plain; version=0.0.4; charset=utf-8", r.Content.Headers.ContentType!.ToString());
                Assert.Empty(r.Content.Headers.ContentEncoding);
            }
            Assert.Contains($"sia_client_info{{client=\"{net.ClientV4A}\",role=\"syncer_peer\",version=\"2.0.0\"}} 1", plain);
            Assert.Contains("sia_exporter_hostd_api_up 1", plain);
            Assert.Contains(subnet, plain);
            Assert.DoesNotContain("process_", plain);
            Assert.DoesNotContain("# EOF", plain);
            Assert.Equal((0, ""), Promtool(plain));
            using (var r = await GetAsync(new Uri($"http://127.0.0.1:{daemon.MetricsUri.Port}/metrics")))
                Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);

            // OpenMetrics when asked the way Prometheus asks, on the second address.
            string openMetrics;
            using (var r = await GetAsync(secondUri, accept: OpenMetricsAccept))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                Assert.Equal("application/openmetrics-text; version=1.0.0; charset=utf-8", r.Content.Headers.ContentType!.ToString());
                openMetrics = await r.Content.ReadAsStringAsync();
            }
            Assert.EndsWith("# EOF\n", openMetrics);
            Assert.Contains("# TYPE sia_traffic_host_bytes counter", openMetrics);
            Assert.Equal((0, ""), Promtool(ScrapeFormatTests.OpenMetricsAsText(openMetrics)));

            // gzip when asked: the same exposition, compressed.
            byte[] compressed;
            using (var r = await GetAsync(daemon.MetricsUri, acceptEncoding: "gzip"))
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                Assert.Equal(["gzip"], r.Content.Headers.ContentEncoding);
                Assert.Contains("Accept-Encoding", r.Headers.Vary);
                compressed = await r.Content.ReadAsByteArrayAsync();
            }
            using var gunzip = new StreamReader(new GZipStream(new MemoryStream(compressed), CompressionMode.Decompress), Encoding.UTF8);
            var unzipped = await gunzip.ReadToEndAsync();
            Assert.Contains("sia_traffic_host_bytes_total{", unzipped);
            Assert.Equal((0, ""), Promtool(unzipped));
            using (var r = await GetAsync(daemon.MetricsUri, accept: OpenMetricsAccept, acceptEncoding: "gzip"))
            {
                Assert.Equal(["gzip"], r.Content.Headers.ContentEncoding);
                using var both = new StreamReader(new GZipStream(await r.Content.ReadAsStreamAsync(), CompressionMode.Decompress));
                Assert.EndsWith("# EOF\n", await both.ReadToEndAsync());
            }
            output.WriteLine($"exposition {Encoding.UTF8.GetByteCount(unzipped)} B, gzip {compressed.Length} B");

            // hostd goes away: one log line, no peers, api_up 0, the daemon carries on.
            hostd.Failing = true;
            sw.Restart();
            while (sw.Elapsed < TimeSpan.FromSeconds(10) && !daemon.ScrapeText().Contains("sia_exporter_hostd_api_up 0", StringComparison.Ordinal))
                await Task.Delay(200);
            await Task.Delay(2500); // more polls that fail
            var after = daemon.ScrapeText();
            Assert.Contains("sia_exporter_hostd_api_up 0", after);
            Assert.DoesNotContain("sia_client_info{", after);
            Assert.False(daemon.HasExited);
            var lines = daemon.Log.Split('\n').Where(l => l.Contains("cannot be read", StringComparison.Ordinal)).ToList();
            Assert.True(lines.Count == 1, $"expected one line about hostd, got:\n{daemon.Log}");
            output.WriteLine(lines[0]);
            Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(15)));
            // Both publication states were saved at stop (the subnet saver runs as its own hosted service).
            Assert.True(File.Exists(Path.Combine(state, "metrics-state.bin")));
            Assert.True(File.Exists(Path.Combine(state, "metrics-subnets-24-48-state.bin")));
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    [KernelFact]
    public async Task Socket_activation_serves_on_the_socket_systemd_passes()
    {
        Assert.True(OpsTools.Find("systemd-socket-activate") is not null || !OpsTools.IsCi, "systemd-socket-activate is missing (package systemd)");
        if (OpsTools.Find("systemd-socket-activate") is null) return;
        using var net = TestNetwork.Create();
        var state = DaemonProcess.StateDirectoryOf(net);
        try
        {
            using var daemon = DaemonProcess.Start(net, systemdSocket: true);
            SomeTraffic(net);
            using var r = await GetAsync(daemon.MetricsUri);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Contains("sia_traffic_host_bytes_total{", await r.Content.ReadAsStringAsync());
            Assert.Contains("1 socket(s) from systemd", daemon.Log);
            output.WriteLine(string.Join('\n', daemon.Log.Split('\n').Where(l => l.Contains("socket", StringComparison.Ordinal))));
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }

        // Without sockets from systemd: one line, exit 1, nothing attached.
        var r2 = Shell.Exec(DaemonProcess.BinaryPath, ["run", "--config", "/dev/null", "--web.systemd-socket", "--interface", "lo"], timeout: TimeSpan.FromSeconds(30));
        Assert.Equal(1, r2.ExitCode);
        Assert.Contains("WEB_SYSTEMD_SOCKET is on but systemd passed no socket", r2.All);
    }

    [KernelFact]
    public async Task A_real_Prometheus_scrapes_gzip_and_OpenMetrics()
    {
        OpsTools.Require("prometheus");
        using var net = TestNetwork.Create();
        var state = DaemonProcess.StateDirectoryOf(net);
        try
        {
            using var daemon = DaemonProcess.Start(net);
            SomeTraffic(net);
            using var relay = new RecordingRelay(daemon.MetricsUri.Port);
            using var prometheus = await PrometheusServer.StartAsync($"127.0.0.1:{relay.Port}");
            await prometheus.WaitUntilAsync(async () => (await prometheus.VectorAsync($"up{{job=\"{PrometheusServer.Job}\"}} == 1")).Count == 1,
                TimeSpan.FromSeconds(20), () => $"no successful scrape through the relay:\n{prometheus.Log}");

            // What went over the wire: Prometheus asked for OpenMetrics and gzip, and got both.
            var (request, response) = relay.Exchanges.First(e => e.Request.StartsWith("GET /metrics", StringComparison.Ordinal));
            output.WriteLine(request);
            output.WriteLine(response);
            Assert.Contains("accept-encoding: gzip", request, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("application/openmetrics-text", request, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("content-encoding: gzip", response, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("content-type: application/openmetrics-text; version=1.0.0", response, StringComparison.OrdinalIgnoreCase);

            // Prometheus parsed it as OpenMetrics: the counter family is named without _total in its metadata.
            using var metadata = JsonDocument.Parse(await prometheus.Http.GetStringAsync("/api/v1/targets/metadata?metric=sia_traffic_host_bytes"));
            var entries = metadata.RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.True(entries.Count == 1 && entries[0].GetProperty("type").GetString() == "counter", metadata.RootElement.GetRawText());

            // And the values are the daemon's, exactly.
            await prometheus.WaitUntilAsync(async () =>
            {
                var stored = (await prometheus.VectorAsync("sia_traffic_host_bytes_total")).ToDictionary(
                    s => $"{s.Label("port")}/{s.Label("proto")} {s.Label("direction")}", s => s.Whole);
                var served = DaemonProcess.HostSeries(daemon.Scrape()).ToDictionary(h => $"{h.Key.Class.Port}/{h.Key.Class.ProtocolLabel} {h.Key.Direction.Label()}", h => h.Value.Bytes);
                return served.Count == 6 && served.All(kv => stored.GetValueOrDefault(kv.Key) == kv.Value) && served.Values.Any(v => v > 0);
            }, TimeSpan.FromSeconds(15), () => "Prometheus does not hold the daemon's host totals");
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>A loopback TCP relay in front of the daemon that keeps the head of every request
    /// and response (up to the blank line), to see what Prometheus and the daemon negotiated.</summary>
    private sealed class RecordingRelay : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly int _upstream;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<(string Request, string Response)> _exchanges = [];

        public RecordingRelay(int upstreamPort)
        {
            _upstream = upstreamPort;
            _listener.Start();
            _ = Task.Run(AcceptAsync);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public IReadOnlyList<(string Request, string Response)> Exchanges
        {
            get { lock (_exchanges) return [.. _exchanges]; }
        }

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
                _ = Task.Run(() => RelayAsync(client));
            }
        }

        private async Task RelayAsync(TcpClient client)
        {
            using (client)
            using (var server = new TcpClient())
            {
                try
                {
                    await server.ConnectAsync(IPAddress.Loopback, _upstream, _stop.Token);
                    var request = new StringBuilder();
                    var response = new StringBuilder();
                    var up = Pump(client.GetStream(), server.GetStream(), request, () => Record(request, response));
                    var down = Pump(server.GetStream(), client.GetStream(), response, () => Record(request, response));
                    await Task.WhenAny(up, down);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                {
                }
            }
        }

        private void Record(StringBuilder request, StringBuilder response)
        {
            lock (_exchanges)
            {
                var req = Head(request);
                var resp = Head(response);
                if (req is not null && resp is not null)
                {
                    _exchanges.Add((req, resp));
                    request.Clear();
                    response.Clear();
                }
            }
        }

        private static string? Head(StringBuilder text)
        {
            var s = text.ToString();
            var end = s.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            return end < 0 ? null : s[..end];
        }

        private async Task Pump(NetworkStream from, NetworkStream to, StringBuilder head, Action headSeen)
        {
            var buffer = new byte[16384];
            while (true)
            {
                var n = await from.ReadAsync(buffer, _stop.Token);
                if (n == 0) return;
                lock (_exchanges)
                    if (head.Length < 8192) head.Append(Encoding.Latin1.GetString(buffer, 0, Math.Min(n, 8192)));
                headSeen();
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
        }
    }
}
