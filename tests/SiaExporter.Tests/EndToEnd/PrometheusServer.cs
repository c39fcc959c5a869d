using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SiaExporter.Tests.Ops;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A real Prometheus (Debian's /usr/bin/prometheus) on a free 127.0.0.1 port, with a generated
/// config: one job "sia-exporter" scraping <c>targets</c> every second, the repository's
/// prometheus/rules.yml evaluated every second, TSDB in a temporary folder. Dispose kills it and
/// removes the folder. Queried through its HTTP API (/api/v1/query).
/// </summary>
internal sealed class PrometheusServer : IDisposable
{
    public const string Job = "sia-exporter";

    private readonly Process _process;
    private readonly StringBuilder _log;
    private readonly DirectoryInfo _directory;

    private PrometheusServer(Process process, StringBuilder log, DirectoryInfo directory, int port, string target)
    {
        _process = process;
        _log = log;
        _directory = directory;
        Target = target;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
    }

    /// <summary>host:port scraped.</summary>
    public string Target { get; }

    public HttpClient Http { get; }

    public bool HasExited => _process.HasExited;

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    /// <summary>The job name of hostd's API, as in prometheus/prometheus.yml.</summary>
    public const string HostdJob = "hostd";

    /// <summary>Starts Prometheus scraping <paramref name="target"/> (host:port, /metrics) and waits until /-/ready.
    /// With <paramref name="hostd"/>, a second job "hostd" scrapes it the way prometheus/prometheus.yml
    /// does (/api/metrics?response=prometheus, basic auth with the API password from a file).</summary>
    public static async Task<PrometheusServer> StartAsync(string target, TimeSpan? readyWithin = null, (string Target, string Password)? hostd = null)
    {
        var binary = OpsTools.Require("prometheus");
        var tmp = Directory.CreateTempSubdirectory("sia-prom-");
        var port = DashboardTests.FreePort();
        var config = Path.Combine(tmp.FullName, "prometheus.yml");
        var hostdJob = "";
        if (hostd is { } h)
        {
            var passwordFile = Path.Combine(tmp.FullName, "hostd-api.password");
            File.WriteAllText(passwordFile, h.Password);
            hostdJob = $"""

                  - job_name: {HostdJob}
                    metrics_path: /api/metrics
                    params:
                      response: [prometheus]
                    basic_auth:
                      username: prometheus
                      password_file: '{passwordFile}'
                    static_configs:
                      - targets: ['{h.Target}']
                """;
        }
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files:
              - '{Path.Combine(OpsTools.RepoRoot, "prometheus", "rules.yml")}'
            scrape_configs:
              - job_name: {Job}
                static_configs:
                  - targets: ['{target}']
            """ + hostdJob + "\n");
        var log = new StringBuilder();
        var process = Shell.Start(binary,
            [$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(tmp.FullName, "data")}", $"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            onLine: line => { lock (log) log.AppendLine(line); }, workingDirectory: tmp.FullName);
        var server = new PrometheusServer(process, log, tmp, port, target);
        try
        {
            await server.WaitUntilAsync(async () => (await server.Http.GetAsync("/-/ready")).IsSuccessStatusCode,
                readyWithin ?? TimeSpan.FromSeconds(20), () => $"Prometheus not ready:\n{server.Log}");
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 200 ms (HTTP errors count as false) until true;
    /// throws with <paramref name="why"/> on timeout or when Prometheus exits.</summary>
    public async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> why)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (_process.HasExited) throw new Xunit.Sdk.XunitException($"Prometheus exited with {_process.ExitCode}: {why()}");
            try { if (await condition()) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new Xunit.Sdk.XunitException(why());
    }

    /// <summary>An instant query: ("success", the number of series (1 for a scalar), "") or (status, 0, the error).</summary>
    public async Task<(string Status, int Count, string Error)> TryQueryAsync(string promQl)
    {
        using var resp = await Http.GetAsync($"/api/v1/query?query={Uri.EscapeDataString(promQl)}");
        using var json = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        var root = json.RootElement;
        var status = root.GetProperty("status").GetString()!;
        if (status != "success")
            return (status, 0, $"{root.GetProperty("errorType").GetString()}: {root.GetProperty("error").GetString()}");
        var data = root.GetProperty("data");
        var result = data.GetProperty("result");
        var count = data.GetProperty("resultType").GetString() is "vector" or "matrix" ? result.GetArrayLength() : 1;
        return (status, count, "");
    }

    public sealed record Series(IReadOnlyDictionary<string, string> Labels, double Value)
    {
        public string Label(string name) => Labels.GetValueOrDefault(name) ?? "";

        /// <summary>The value as a whole number (counters: exact below 2^53).</summary>
        public ulong Whole => Value >= 0 && Value == Math.Floor(Value) && Value < 9_007_199_254_740_992d
            ? (ulong)Value
            : throw new InvalidOperationException($"{this} is not a whole number below 2^53");

        public override string ToString() =>
            "{" + string.Join(",", Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "} " +
            Value.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>An instant query returning a vector; throws on a query error.</summary>
    public async Task<List<Series>> VectorAsync(string promQl)
    {
        using var resp = await Http.GetAsync($"/api/v1/query?query={Uri.EscapeDataString(promQl)}");
        var body = await resp.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        if (root.GetProperty("status").GetString() != "success")
            throw new Xunit.Sdk.XunitException($"{promQl}: {body}");
        var data = root.GetProperty("data");
        if (data.GetProperty("resultType").GetString() != "vector")
            throw new Xunit.Sdk.XunitException($"{promQl}: not a vector: {body}");
        return data.GetProperty("result").EnumerateArray().Select(r => new Series(
                r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)))
            .ToList();
    }

    public void Dispose()
    {
        Http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try { _directory.Delete(recursive: true); } catch (IOException) { }
    }
}
