using System.Diagnostics;
using System.Text.Json;
using SiaExporter.Web;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Web;

/// <summary>Runs only where a prometheus binary exists; with CI=true a missing one fails instead.</summary>
public sealed class PrometheusFactAttribute : FactAttribute
{
    public const string Binary = "/usr/bin/prometheus";

    public PrometheusFactAttribute()
    {
        if (!File.Exists(Binary) && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Skip = $"{Binary} is not installed (apt-get install prometheus); with CI=true this test fails instead";
    }
}

public sealed class PrometheusScrapeTests(ITestOutputHelper output) : IDisposable
{
    private const string User = "prometheus";
    private const string Password = "scrape-me";
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    [PrometheusFact]
    public async Task Real_prometheus_scrapes_over_tls_with_client_cert_and_basic_auth()
    {
        Assert.True(File.Exists(PrometheusFactAttribute.Binary), $"{PrometheusFactAttribute.Binary} is missing (CI=true): apt-get install prometheus");

        // Cost 10, as `htpasswd -nBC 10` makes it, in the $2y$ form htpasswd writes.
        var hash = "$2y$" + BCrypt.Net.BCrypt.HashPassword(Password, 10)[4..];
        var web = WebConfig.Load(_pki.Write("web.yml", $"""
            tls_server_config:
              cert_file: server.crt
              key_file: server.key
              client_auth_type: RequireAndVerifyClientCert
              client_ca_file: ca.pem
            basic_auth_users:
              {User}: '{hash}'
            """));
        await using var server = await TestServer.StartAsync(web);

        var promPort = TestPki.FreePort();
        var dataDir = Path.Combine(_pki.Dir, "prometheus-data");
        var configFile = _pki.Write("prometheus.yml", $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: sia
                scheme: https
                tls_config:
                  ca_file: {_pki.CaFile}
                  cert_file: {_pki.ClientCertFile}
                  key_file: {_pki.ClientKeyFile}
                basic_auth:
                  username: {User}
                  password: {Password}
                static_configs:
                  - targets: ['127.0.0.1:{server.Port}']
            """);
        var start = new ProcessStartInfo(PrometheusFactAttribute.Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     $"--config.file={configFile}", $"--storage.tsdb.path={dataDir}", $"--web.listen-address=127.0.0.1:{promPort}",
                     "--log.level=warn", "--storage.tsdb.retention.time=1h",
                 })
            start.ArgumentList.Add(arg);

        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var prometheus = Process.Start(start)!;
        prometheus.OutputDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue(e.Data); };
        prometheus.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue(e.Data); };
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var deadline = Stopwatch.StartNew();
            string? up = null, value = null, lastError = null;
            while (deadline.Elapsed < TimeSpan.FromSeconds(30) && !prometheus.HasExited)
            {
                try
                {
                    up = await Query(http, promPort, "up{job=\"sia\"}");
                    if (up == "1")
                    {
                        value = await Query(http, promPort, "sia_test_value");
                        break;
                    }
                    lastError = await LastScrapeError(http, promPort);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    lastError = e.Message; // not listening yet
                }
                await Task.Delay(250);
            }
            foreach (var line in log) output.WriteLine(line);
            Assert.False(prometheus.HasExited, $"prometheus exited: {string.Join('\n', log)}");
            Assert.True(up == "1", $"up={up ?? "(no sample)"} after {deadline.Elapsed.TotalSeconds:0}s; last scrape error: {lastError}");
            Assert.Equal("42", value);
        }
        finally
        {
            if (!prometheus.HasExited)
            {
                prometheus.Kill(entireProcessTree: true);
                await prometheus.WaitForExitAsync();
            }
        }
    }

    private static async Task<string?> Query(HttpClient http, int port, string query)
    {
        var json = await http.GetStringAsync($"http://127.0.0.1:{port}/api/v1/query?query={Uri.EscapeDataString(query)}");
        using var doc = JsonDocument.Parse(json);
        var result = doc.RootElement.GetProperty("data").GetProperty("result");
        return result.GetArrayLength() == 0 ? null : result[0].GetProperty("value")[1].GetString();
    }

    private static async Task<string?> LastScrapeError(HttpClient http, int port)
    {
        var json = await http.GetStringAsync($"http://127.0.0.1:{port}/api/v1/targets");
        using var doc = JsonDocument.Parse(json);
        foreach (var target in doc.RootElement.GetProperty("data").GetProperty("activeTargets").EnumerateArray())
            return $"{target.GetProperty("health").GetString()}: {target.GetProperty("lastError").GetString()}";
        return null;
    }
}
