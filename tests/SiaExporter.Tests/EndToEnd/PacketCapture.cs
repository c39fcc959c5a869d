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
    private readonly StringBuilder _stderr;
    private readonly TaskCompletionSource _listening;
    private bool _stopped;

    private PacketCapture(Process process, string path, StringBuilder stderr, TaskCompletionSource listening)
    {
        _process = process;
        Path = path;
        _stderr = stderr;
        _listening = listening;
    }

    public string Path { get; }

    public const int SnapLength = 2048;

    public sealed record Stats(long Captured, long ReceivedByFilter, long DroppedByKernel);

    public static PacketCapture Start(TestNetwork net, string path) => Start(net.Namespace, net.PeerInterface, path);

    /// <summary>tcpdump on <paramref name="interfaceName"/> in <paramref name="netns"/> (null: this namespace).</summary>
    public static PacketCapture Start(string? netns, string interfaceName, string path)
    {
        var stderr = new StringBuilder();
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // `ip netns exec` execs tcpdump in place: the pid we hold is tcpdump's. -Z root: Debian's
        // tcpdump otherwise drops to user tcpdump and may not write the file. It writes frames to the
        // file, so every line of output is its stderr.
        string[] tcpdump = ["-i", interfaceName, "-w", path,
            "-U", "--immediate-mode", "-s", SnapLength.ToString(System.Globalization.CultureInfo.InvariantCulture), "-B", "65536", "-n", "-Z", "root"];
        var p = netns is null
            ? Shell.Start("tcpdump", tcpdump, onLine: OnLine)
            : Shell.Start("ip", ["netns", "exec", netns, "tcpdump", .. tcpdump], onLine: OnLine);
        void OnLine(string line)
        {
            lock (stderr) stderr.Append(line).Append('\n');
            if (line.Contains("listening on", StringComparison.Ordinal)) listening.TrySetResult();
        }
        var capture = new PacketCapture(p, path, stderr, listening);
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
        Shell.Signal(_process, Libc.SIGINT);
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
            Shell.Signal(_process, Libc.SIGINT);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(5))) _process.Kill();
        }
        _process.Dispose();
    }
}
