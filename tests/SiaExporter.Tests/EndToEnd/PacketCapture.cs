using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// tcpdump on the namespace end of the veth: every frame that crossed the pair, both directions,
/// written as it arrives (-U, --immediate-mode: without it frames still sitting in the TPACKET_V3
/// ring when SIGINT arrives are never written). Immediate mode makes libpcap use TPACKET_V2, whose
/// ring slots are sized by the snap length: at -s 0 (256 KiB) a 64 MiB ring holds ~250 frames and a
/// burst of concurrent flows overflowed it. So the snap length is 2048: every real frame (≤ 1514 B,
/// IP fragments included) is captured whole; only GSO super-packets are cut, and for those the
/// decoder uses frame.len and the IP header's lengths (tcp.len), never the captured bytes. Stopped with SIGINT; <see cref="Stop"/>
/// waits for the file to be flushed and fails if the kernel dropped anything.
/// </summary>
public sealed partial class PacketCapture : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _stopped;

    private PacketCapture(Process process, string path)
    {
        _process = process;
        Path = path;
    }

    public string Path { get; }

    public const int SnapLength = 2048;

    public sealed record Stats(long Captured, long ReceivedByFilter, long DroppedByKernel);

    public static PacketCapture Start(TestNetwork net, string path) => Start(net.Namespace, net.PeerInterface, path);

    /// <summary>tcpdump on <paramref name="interfaceName"/> in <paramref name="netns"/> (null: this namespace).</summary>
    public static PacketCapture Start(string? netns, string interfaceName, string path)
    {
        var psi = new ProcessStartInfo(netns is null ? "tcpdump" : "ip")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        // `ip netns exec` execs tcpdump in place: the pid we hold is tcpdump's. -Z root: Debian's
        // tcpdump otherwise drops to user tcpdump and may not write the file.
        if (netns is not null)
            foreach (var a in new[] { "netns", "exec", netns, "tcpdump" }) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "-i", interfaceName, "-w", path,
                     "-U", "--immediate-mode", "-s", SnapLength.ToString(System.Globalization.CultureInfo.InvariantCulture), "-B", "65536", "-n", "-Z", "root" })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start tcpdump");
        var capture = new PacketCapture(p, path);
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (capture._stderr) capture._stderr.Append(e.Data).Append('\n');
            if (e.Data.Contains("listening on", StringComparison.Ordinal)) capture._listening.TrySetResult();
        };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        var ready = Task.WhenAny(capture._listening.Task, p.WaitForExitAsync()).WaitAsync(TimeSpan.FromSeconds(10));
        try
        {
            ready.GetAwaiter().GetResult();
        }
        catch (TimeoutException)
        {
            capture.Dispose();
            throw new TimeoutException("tcpdump did not start listening within 10 s");
        }
        if (!capture._listening.Task.IsCompleted)
        {
            capture.Dispose();
            throw new InvalidOperationException($"tcpdump exited: {capture.StandardError}");
        }
        return capture;
    }

    public string StandardError
    {
        get { lock (_stderr) return _stderr.ToString(); }
    }

    /// <summary>SIGINT, wait for tcpdump to write its last frames and exit, check nothing was dropped.</summary>
    public Stats Stop()
    {
        if (_stopped) throw new InvalidOperationException("already stopped");
        _stopped = true;
        Libc.kill(_process.Id, Libc.SIGINT);
        if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
        {
            _process.Kill();
            throw new TimeoutException("tcpdump did not exit within 15 s of SIGINT");
        }
        _process.WaitForExit();
        var err = StandardError;
        var stats = new Stats(Count(err, "captured"), Count(err, "received by filter"), Count(err, "dropped by kernel"));
        if (stats.DroppedByKernel != 0 || stats.Captured != stats.ReceivedByFilter)
            throw new InvalidOperationException($"tcpdump lost frames: {err}");
        return stats;
    }

    private static long Count(string stderr, string what)
    {
        var m = Regex.Match(stderr, @"(\d+) packets? " + Regex.Escape(what));
        if (!m.Success) throw new InvalidOperationException($"tcpdump did not report '{what}': {stderr}");
        return long.Parse(m.Groups[1].Value);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Libc.kill(_process.Id, Libc.SIGINT);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(5))) _process.Kill();
        }
        _process.Dispose();
    }
}
