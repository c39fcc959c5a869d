using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using SiaExporter.Counters;
using SiaExporter.Tests.Bpf;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A real `collector run` process (the apphost built beside the tests) counting on a
/// <see cref="TestNetwork"/>'s host end, with its pins, SQLite and state under the network's
/// names, /metrics on a free loopback port. Every setting is a flag, and --config points at an
/// empty file, so nothing of the machine's /etc/collector.env leaks in.
/// </summary>
internal sealed partial class DaemonProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log;

    private DaemonProcess(Process process, StringBuilder log, Uri metrics)
    {
        _process = process;
        _log = log;
        MetricsUri = metrics;
    }

    public Uri MetricsUri { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    public static string StateDirectoryOf(TestNetwork net) => Path.Combine(Path.GetTempPath(), net.Name + "-daemon");

    /// <summary>COLLECTOR_BIN (make test sets it to the shipped Native AOT build/collector, so the
    /// end-to-end tests prove that binary, SQLite and prometheus-net included), else the apphost
    /// built beside the tests.</summary>
    public static string BinaryPath =>
        Environment.GetEnvironmentVariable("COLLECTOR_BIN") is { Length: > 0 } bin ? bin : Path.Combine(AppContext.BaseDirectory, "collector");

    /// <summary>The empty settings file every run passes as --config (so /etc/collector.env never leaks in).</summary>
    public static string ConfigFileOf(TestNetwork net)
    {
        var state = StateDirectoryOf(net);
        Directory.CreateDirectory(state);
        var config = Path.Combine(state, "collector.env");
        if (!File.Exists(config)) File.WriteAllText(config, "# empty: every setting is a flag\n");
        return config;
    }

    /// <param name="extraArgs">More flags after the standard ones; a repeated flag overrides
    /// (e.g. --sqlite-path elsewhere, --flush-interval 5s), except --listen-address, which adds.</param>
    /// <param name="telemetryPath">Passed as --web.telemetry-path when not /metrics; <see cref="MetricsUri"/> uses it.</param>
    /// <param name="systemdSocket">Started by systemd-socket-activate listening on the port, with
    /// --web.systemd-socket: the daemon serves on the socket it is handed.</param>
    public static DaemonProcess Start(TestNetwork net, string xdpMode = "native", TimeSpan? readyWithin = null,
        IReadOnlyList<string>? extraArgs = null, string telemetryPath = "/metrics", bool systemdSocket = false)
    {
        var state = StateDirectoryOf(net);
        var config = ConfigFileOf(net);
        var port = FreeLoopbackPort();
        var binary = BinaryPath;
        var log = new StringBuilder();
        string[] daemonArgs =
        [
            "run", "--config", config, "--interface", net.HostInterface, "--pin-directory", net.PinDirectory,
            "--sqlite-path", Path.Combine(state, "traffic.db"), "--state-directory", state,
            "--bpf-object", TestObject.Path, "--xdp-mode", xdpMode,
            .. systemdSocket ? ["--web.systemd-socket"] : new[] { "--listen-address", $"127.0.0.1:{port}" },
            .. telemetryPath == "/metrics" ? [] : new[] { "--web.telemetry-path", telemetryPath },
            .. extraArgs ?? [],
        ];
        var process = systemdSocket
            ? Shell.Start("systemd-socket-activate", ["-l", $"127.0.0.1:{port}", binary, .. daemonArgs], onLine: line => { lock (log) log.AppendLine(line); })
            : Shell.Start(binary, daemonArgs, onLine: line => { lock (log) log.AppendLine(line); });
        var daemon = new DaemonProcess(process, log, new Uri($"http://127.0.0.1:{port}{telemetryPath}"));
        try
        {
            daemon.WaitUntilAttached(net, readyWithin ?? TimeSpan.FromSeconds(30));
        }
        catch
        {
            daemon.Dispose();
            throw;
        }
        return daemon;
    }

    private void WaitUntilAttached(TestNetwork net, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        string? last = null;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"collector exited with {_process.ExitCode}:\n{Log}");
            try
            {
                var m = Scrape();
                last = "scraped";
                var attached = m.Where(s => s.Name == "sia_exporter_bpf_attached" && s.Labels.GetValueOrDefault("interface") == net.HostInterface).ToList();
                if (attached.Count >= 2 && attached.All(s => s.Value == 1)) return;
                last = string.Join(", ", attached.Select(a => $"{a.Labels.GetValueOrDefault("hook")}={a.Value}"));
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException e) // the request timed out (a socket-activated daemon still starting)
            {
                last = e.Message;
            }
            Thread.Sleep(100);
        }
        throw new TimeoutException($"collector not attached and serving within {within} ({last}):\n{Log}");
    }

    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>GET /metrics as served.</summary>
    public string ScrapeText() => Http.GetStringAsync(MetricsUri).GetAwaiter().GetResult();

    /// <summary>GET /metrics, parsed (text exposition format: name{labels} value).</summary>
    public List<Sample> Scrape()
    {
        var text = ScrapeText();
        var samples = new List<Sample>();
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var m = SampleLine().Match(line);
            if (!m.Success) continue;
            var labels = LabelPair().Matches(m.Groups[2].Value).ToDictionary(l => l.Groups[1].Value, l => Regex.Unescape(l.Groups[2].Value));
            samples.Add(new Sample(m.Groups[1].Value, labels, double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    /// <summary>sia_traffic_{bytes,packets}_total per client, class and direction (the "other" row kept
    /// under the client None).</summary>
    public static Dictionary<FlowKey, Traffic> ClientSeries(IEnumerable<Sample> samples)
    {
        var result = new Dictionary<FlowKey, Traffic>();
        foreach (var s in samples.Where(s => s.Name is "sia_traffic_bytes_total" or "sia_traffic_packets_total"))
        {
            var client = s.Labels["client"] == "other" ? ClientAddress.None : ClientAddress.Parse(s.Labels["client"]);
            var key = new FlowKey(client, PortClass.Parse($"{s.Labels["port"]}/{s.Labels["proto"]}"), s.Labels["direction"] == "up" ? Direction.Up : Direction.Down);
            var t = result.GetValueOrDefault(key);
            var v = checked((ulong)s.Value);
            result[key] = s.Name == "sia_traffic_bytes_total" ? t with { Bytes = v } : t with { Packets = v };
        }
        return result.Where(kv => !kv.Value.IsZero).ToDictionary();
    }

    /// <summary>sia_traffic_host_{bytes,packets}_total per class and direction.</summary>
    public static Dictionary<(PortClass Class, Direction Direction), Traffic> HostSeries(IEnumerable<Sample> samples)
    {
        var result = new Dictionary<(PortClass, Direction), Traffic>();
        foreach (var s in samples.Where(s => s.Name is "sia_traffic_host_bytes_total" or "sia_traffic_host_packets_total"))
        {
            var key = (PortClass.Parse($"{s.Labels["port"]}/{s.Labels["proto"]}"), s.Labels["direction"] == "up" ? Direction.Up : Direction.Down);
            var t = result.GetValueOrDefault(key);
            var v = checked((ulong)s.Value);
            result[key] = s.Name == "sia_traffic_host_bytes_total" ? t with { Bytes = v } : t with { Packets = v };
        }
        return result;
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill9()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>SIGTERM and wait for a clean exit; returns the exit code.</summary>
    public int Terminate(TimeSpan within)
    {
        Shell.Signal(_process, Libc.SIGTERM);
        if (!_process.WaitForExit(within))
        {
            _process.Kill();
            throw new TimeoutException($"collector did not stop within {within} of SIGTERM:\n{Log}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    private static int FreeLoopbackPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(5000);
        }
        _process.Dispose();
    }

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();
}
