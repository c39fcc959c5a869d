using System.Diagnostics;
using System.Globalization;
using System.Net.NetworkInformation;
using System.Text.Json;
using SiaExporter.Tests.Bpf;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// The soak's network: veth fld-sh (host, 10.250.98.1/30) &lt;-&gt; fld-sp (netns fldsoak,
/// 10.250.98.2/30) with the veth's default offloads (TSO/GSO on: the host's egress reaches the
/// capture as GSO super-packets, which EndToEnd.CaptureTruth expands to wire frames). iperf3
/// servers on 9984 and 9981 in the netns. Everything named fld*; leftovers of an earlier run are
/// removed first.
/// </summary>
internal sealed class SoakNetwork : IDisposable
{
    public const string Namespace = "fldsoak";
    public const string Host = "fld-sh";
    public const string Peer = "fld-sp";
    public const string HostAddress = "10.250.98.1";
    public const string PeerAddress = "10.250.98.2";
    public const string PinDirectory = "/sys/fs/bpf/fld-soak";

    private readonly List<Process> _servers = [];

    public SoakNetwork()
    {
        RemoveLeftovers();
        try
        {
            Shell.Run("ip", "netns", "add", Namespace);
            Shell.Run("ip", "link", "add", Host, "type", "veth", "peer", "name", Peer, "netns", Namespace);
            Shell.Run("ip", "addr", "add", HostAddress + "/30", "dev", Host);
            Shell.Run("ip", "link", "set", Host, "up");
            InNamespace("ip", "addr", "add", PeerAddress + "/30", "dev", Peer);
            InNamespace("ip", "link", "set", Peer, "up");
            InNamespace("ip", "link", "set", "lo", "up");
            HostMac = MacOf(Shell.Run("ip", "-j", "link", "show", "dev", Host));
            PeerMac = MacOf(InNamespace("ip", "-j", "link", "show", "dev", Peer));
            foreach (var port in new[] { 9984, 9981 })
                _servers.Add(Background.Start("ip", "netns", "exec", Namespace, "iperf3", "-s", "-p", port.ToString(CultureInfo.InvariantCulture)));
            WaitFor(() => InNamespace("ss", "-Hltn").Contains(":9981") && InNamespace("ss", "-Hltn").Contains(":9984"),
                TimeSpan.FromSeconds(10), "the iperf3 servers in the netns did not listen");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public PhysicalAddress HostMac { get; } = PhysicalAddress.None;
    public PhysicalAddress PeerMac { get; } = PhysicalAddress.None;

    private static PhysicalAddress MacOf(string ipJson)
    {
        using var doc = JsonDocument.Parse(ipJson);
        return PhysicalAddress.Parse(doc.RootElement[0].GetProperty("address").GetString()!.Replace(':', '-').ToUpperInvariant());
    }

    public static string InNamespace(string file, params string[] arguments) =>
        Shell.Run("ip", ["netns", "exec", Namespace, file, .. arguments]);

    public static void RemoveLeftovers()
    {
        Shell.TryRun("ip", "link", "del", Host);
        Shell.TryRun("ip", "netns", "del", Namespace);
        RemovePins();
    }

    public static void RemovePins()
    {
        if (!Directory.Exists(PinDirectory)) return;
        // unpinning a link detaches it (nothing else holds it once the daemon is gone)
        Directory.Delete(PinDirectory, recursive: true);
    }

    public static void WaitFor(Func<bool> condition, TimeSpan timeout, string failure)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            try
            {
                if (condition()) return;
            }
            catch (Exception e) when (e is InvalidOperationException or System.Net.Http.HttpRequestException or TaskCanceledException)
            {
                // not yet (a command failed, nothing listens yet)
            }
            Thread.Sleep(100);
        }
        throw new TimeoutException(failure);
    }

    public void Dispose()
    {
        foreach (var server in _servers) Background.Stop(server);
        RemoveLeftovers();
    }
}

/// <summary>Background processes with their output drained into a log.</summary>
internal static class Background
{
    public static Process Start(string file, params string[] arguments) => Start(file, arguments, null, null);

    public static Process Start(string file, string[] arguments, IDictionary<string, string>? environment, StringWriterLog? log)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (key, value) in environment) start.Environment[key] = value;
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) log?.Add(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) log?.Add(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    public static void Signal(Process process, string signal) => Shell.TryRun("kill", "-" + signal, process.Id.ToString(CultureInfo.InvariantCulture));

    public static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
    }
}

/// <summary>Thread-safe lines of a process' output.</summary>
internal sealed class StringWriterLog
{
    private readonly List<string> _lines = [];

    public void Add(string line)
    {
        lock (_lines) _lines.Add(line);
    }

    public string[] Lines
    {
        get
        {
            lock (_lines) return _lines.ToArray();
        }
    }

    public bool Contains(string fragment) => Lines.Any(l => l.Contains(fragment, StringComparison.Ordinal));

    public override string ToString() => string.Join('\n', Lines);
}
