using System.Diagnostics;
using System.Globalization;
using System.Net.Http;
using Microsoft.Data.Sqlite;
using SiaExporter.Counters;
using SiaExporter.Tests.Bpf;
using SiaExporter.Tests.EndToEnd;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// The daemon (`collector run`, COLLECTOR_BIN or the one built beside the tests) counting real traffic on a veth while it is
/// SIGKILLed at random moments and restarted, and SIGTERMed (once mid-way during a pause in the
/// traffic, and at the end). Whatever the kills hit (a flush, a start-up, an idle moment), the
/// SQLite history must in the end hold exactly what a packet capture in the peer namespace saw
/// (EndToEnd.CaptureTruth: GSO super-packets expanded to wire frames), per client, port class and
/// direction, in bytes and frames.
///
/// SOAK_KILLS (default 3, ~25 s; 10 ≈ 80 s) sets the number of SIGKILLs (make soak: SOAK_KILLS=10);
/// SOAK_SEED fixes the random moments (printed, to replay a failure).
/// </summary>
[Trait("Category", "Soak")]
public sealed class SoakTests(ITestOutputHelper output)
{
    private const int MetricsPort = 19985;
    private static readonly PortClassSet Classes = PortClassSet.DefaultSet; // 9981/tcp, 9984/tcp, 9984/udp
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>COLLECTOR_BIN (make soak: the published build/collector), else the apphost built
    /// beside the tests (always the code under test; `make test` has no publish step).</summary>
    private static string DaemonPath =>
        Environment.GetEnvironmentVariable("COLLECTOR_BIN") is { Length: > 0 } bin ? bin : Path.Combine(AppContext.BaseDirectory, "collector");

    private static int Kills => int.TryParse(Environment.GetEnvironmentVariable("SOAK_KILLS"), out var n) && n >= 0 ? n : 3;

    [KernelFact]
    public void Sqlite_totals_equal_the_capture_across_random_kills_and_restarts()
    {
        var daemonPath = DaemonPath;
        if (!File.Exists(daemonPath)) throw new InvalidOperationException($"no daemon at {daemonPath} (COLLECTOR_BIN): run `make build`");
        if (!File.Exists(TestObject.Path)) throw new InvalidOperationException($"no {TestObject.Path} (BPF_OBJECT): run `make bpf`");
        output.WriteLine($"daemon {daemonPath}, object {TestObject.Path}");
        var seed = int.TryParse(Environment.GetEnvironmentVariable("SOAK_SEED"), out var s) ? s : Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"soak: {Kills} SIGKILLs, seed {seed} (SOAK_SEED to replay)");
        var clock = Stopwatch.StartNew();

        var work = Directory.CreateTempSubdirectory("fld-soak-");
        Process? capture = null;
        Daemon? daemon = null;
        using var network = new SoakNetwork();
        try
        {
            var pcap = Path.Combine(work.FullName, "truth.pcap");
            var captureLog = new OutputLog();
            // as EndToEnd.PacketCapture: --immediate-mode (else frames in the ring at SIGINT are never
            // written), snap 2048 (immediate mode's ring slots are snap-sized), everything on the pair
            capture = Shell.Start("ip", ["netns", "exec", network.Network.Namespace, "tcpdump", "-i", network.Network.PeerInterface, "-n", "-U",
                "--immediate-mode", "-s", "2048", "-B", "65536", "-Z", "root", "-w", pcap], null, captureLog.Add);
            SoakNetwork.WaitFor(() => captureLog.Contains("listening on"), TimeSpan.FromSeconds(10), "tcpdump did not start: " + captureLog);

            daemon = Daemon.Start(daemonPath, work.FullName, network.Network, output);
            using (var traffic = new TrafficLoop(random.Next(), network.PeerAddress))
            {
                var sigtermAt = Kills / 2;
                for (var kill = 0; kill <= Kills; kill++)
                {
                    if (kill == sigtermAt)
                    {
                        // SIGTERM detaches the hooks: do it while no traffic flows, as an operator's restart would be
                        traffic.Pause();
                        Thread.Sleep(500); // the last FINs and ACKs
                        daemon.Terminate();
                        output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  SIGTERM (exit {daemon.ExitCode}), traffic paused");
                        daemon = Daemon.Start(daemonPath, work.FullName, network.Network, output);
                        traffic.Resume();
                    }
                    if (kill == Kills) break;
                    Thread.Sleep(TimeSpan.FromMilliseconds(random.Next(1000, 7000)));
                    daemon.Kill();
                    output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  SIGKILL #{kill + 1}");
                    Thread.Sleep(TimeSpan.FromMilliseconds(random.Next(0, 2000)));
                    daemon = Daemon.Start(daemonPath, work.FullName, network.Network, output);
                }
                Thread.Sleep(TimeSpan.FromMilliseconds(random.Next(1000, 3000)));
                traffic.Pause();
                output.WriteLine($"traffic: {traffic.Runs} iperf3 runs");
            }
            Thread.Sleep(500); // the last FINs and ACKs
            daemon.Terminate();
            output.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  final SIGTERM (exit {daemon.ExitCode})");
            Assert.Equal(0, daemon.ExitCode);
            Assert.True(daemon.Log.Contains("detached"), "the daemon did not detach on SIGTERM:\n" + daemon.Log);

            // tcpdump may lag behind the kernel's capture buffer on a busy host: let it drain (the
            // pcap stops growing) before SIGINT, or the last frames are "received by filter" but not captured
            var size = -1L;
            SoakNetwork.WaitFor(() =>
            {
                var now = new FileInfo(pcap).Length;
                var settled = now == size;
                size = now;
                if (!settled) Thread.Sleep(900);
                return settled;
            }, TimeSpan.FromSeconds(30), "the capture file kept growing for 30 s after the traffic stopped");
            Shell.Signal(capture, Libc.SIGINT);
            capture.WaitForExit(10_000);
            Assert.True(capture.HasExited, "tcpdump did not stop");
            var dropped = captureLog.Lines.FirstOrDefault(l => l.Contains("dropped by kernel", StringComparison.Ordinal));
            output.WriteLine("tcpdump: " + string.Join(", ", captureLog.Lines.Where(l => l.Contains("packets", StringComparison.Ordinal))));
            Assert.StartsWith("0 packets dropped by kernel", dropped);
            var captured = Count(captureLog, "packets captured");
            Assert.True(captured == Count(captureLog, "packets received by filter"), "tcpdump did not write every frame it received: " + captureLog);

            var truth = CaptureTruth.FromPcap(pcap, network.Network.HostMac, network.Network.PeerMac, Classes, mtu: 1500);
            var history = HistoryOf(Path.Combine(work.FullName, "traffic.db"));
            output.WriteLine($"capture: {truth.CapturedFrames:N0} skbs, {truth.SuperPackets:N0} GSO super-packets = {truth.SuperPacketSegments:N0} wire frames");
            foreach (var cls in Classes.Classes)
                foreach (var direction in new[] { Direction.Up, Direction.Down })
                {
                    var expected = truth.HostTotal(cls, direction);
                    output.WriteLine($"  {cls} {direction.Label(),-4}: capture {expected.Packets,9:N0} frames {expected.Bytes,13:N0} B | " +
                                     $"traffic_host {history.Host.GetValueOrDefault((cls, direction)).Packets,9:N0} frames {history.Host.GetValueOrDefault((cls, direction)).Bytes,13:N0} B");
                    Assert.Equal((cls, direction, expected), (cls, direction, history.Host.GetValueOrDefault((cls, direction))));
                    Assert.Equal((cls, direction, expected.Bytes), (cls, direction, history.Legacy.GetValueOrDefault((cls, direction))));
                }
            Assert.Empty(truth.Uncounted);
            foreach (var key in truth.Counted.Keys.Union(history.Detail.Keys))
                Assert.Equal((key, truth.Counted.GetValueOrDefault(key)), (key, history.Detail.GetValueOrDefault(key)));
            foreach (var (cls, direction) in new[] { (Classes.Classes[0], Direction.Up), (Classes.Classes[0], Direction.Down),
                         (Classes.Classes[1], Direction.Up), (Classes.Classes[1], Direction.Down), (Classes.Classes[2], Direction.Up) })
                Assert.True(truth.HostTotal(cls, direction).Packets > 0, $"no {cls} {direction.Label()} traffic in the capture");
            Assert.True(truth.SuperPackets > 0, "no GSO super-packet crossed the pair: the wire_len/gso_segs path was not exercised");
            output.WriteLine($"soak took {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            daemon?.Dispose();
            if (capture is not null) Shell.Stop(capture);
            if (Environment.GetEnvironmentVariable("SOAK_KEEP") == "1") output.WriteLine("kept " + work.FullName);
            else work.Delete(recursive: true);
        }
    }

    private static long Count(OutputLog log, string what) =>
        long.Parse(log.Lines.First(l => l.EndsWith(what, StringComparison.Ordinal)).Split(' ')[0], CultureInfo.InvariantCulture);

    private sealed record History(
        Dictionary<(PortClass, Direction), Traffic> Host,
        Dictionary<FlowKey, Traffic> Detail,
        Dictionary<(PortClass, Direction), ulong> Legacy);

    /// <summary>Sums over every bucket: traffic_host (bytes and frames per class and direction),
    /// traffic_detail (the same per client) and the original traffic table's byte columns.</summary>
    private static History HistoryOf(string path)
    {
        using var connection = new SqliteConnection($"Data Source={path};Mode=ReadOnly;Pooling=False");
        connection.Open();
        var host = new Dictionary<(PortClass, Direction), Traffic>();
        foreach (var row in Rows(connection, "SELECT port, proto, SUM(up_bytes), SUM(down_bytes), SUM(up_packets), SUM(down_packets) FROM traffic_host GROUP BY port, proto"))
        {
            var cls = PortClass.Parse($"{row[0]}/{row[1]}");
            Add(host, (cls, Direction.Up), new Traffic(U(row[2]), U(row[4])));
            Add(host, (cls, Direction.Down), new Traffic(U(row[3]), U(row[5])));
        }
        var detail = new Dictionary<FlowKey, Traffic>();
        foreach (var row in Rows(connection, "SELECT client_ip, port, proto, SUM(up_bytes), SUM(down_bytes), SUM(up_packets), SUM(down_packets) FROM traffic_detail GROUP BY client_ip, port, proto"))
        {
            var client = ClientAddress.Parse((string)row[0]);
            var cls = PortClass.Parse($"{row[1]}/{row[2]}");
            Add(detail, new FlowKey(client, cls, Direction.Up), new Traffic(U(row[3]), U(row[5])));
            Add(detail, new FlowKey(client, cls, Direction.Down), new Traffic(U(row[4]), U(row[6])));
        }
        var legacy = new Dictionary<(PortClass, Direction), ulong>();
        var sums = Rows(connection, "SELECT SUM(up_9981), SUM(down_9981), SUM(up_9984_tcp), SUM(down_9984_tcp), SUM(up_9984_udp), SUM(down_9984_udp) FROM traffic").Single();
        for (var i = 0; i < 6; i++)
            legacy[(Classes.Classes[i / 2], i % 2 == 0 ? Direction.Up : Direction.Down)] = sums[i] is DBNull ? 0 : U(sums[i]);
        return new History(host, detail, legacy);

        static ulong U(object value) => (ulong)Convert.ToInt64(value, CultureInfo.InvariantCulture);

        static void Add<TKey>(Dictionary<TKey, Traffic> into, TKey key, Traffic traffic) where TKey : notnull
        {
            if (traffic.IsZero) return; // a class or direction without traffic is no entry in the truth either
            into[key] = into.GetValueOrDefault(key) + traffic;
        }

        static List<object[]> Rows(SqliteConnection connection, string sql)
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            using var reader = command.ExecuteReader();
            var rows = new List<object[]>();
            while (reader.Read())
            {
                var row = new object[reader.FieldCount];
                reader.GetValues(row);
                rows.Add(row);
            }
            return rows;
        }
    }

    /// <summary>build/collector run on the soak network's host end with its history, state and pins in the soak's folders.</summary>
    private sealed class Daemon : IDisposable
    {
        private readonly Process _process;

        private Daemon(Process process, OutputLog log)
        {
            _process = process;
            Log = log;
        }

        public OutputLog Log { get; }

        public int ExitCode => _process.ExitCode;

        public static Daemon Start(string path, string directory, TestNetwork network, ITestOutputHelper output)
        {
            var log = new OutputLog();
            var process = Shell.Start(path, ["run"], new Dictionary<string, string>
            {
                ["INTERFACE"] = network.HostInterface,
                ["LISTEN_ADDRESS"] = $"127.0.0.1:{MetricsPort}",
                ["SQLITE_PATH"] = Path.Combine(directory, "traffic.db"),
                ["STATE_DIRECTORY"] = directory,
                ["PIN_DIRECTORY"] = network.PinDirectory,
                ["FLUSH_INTERVAL"] = "5s",
                ["BPF_OBJECT"] = TestObject.Path,
            }, log.Add);
            var daemon = new Daemon(process, log);
            try
            {
                SoakNetwork.WaitFor(() =>
                {
                    if (process.HasExited) throw new IOException($"the daemon exited ({process.ExitCode}) during start-up:\n{log}");
                    return Http.GetStringAsync($"http://127.0.0.1:{MetricsPort}/metrics").GetAwaiter().GetResult()
                        .Contains($"sia_exporter_bpf_attached{{interface=\"{network.HostInterface}\",hook=\"tc_egress\"}} 1", StringComparison.Ordinal);
                }, TimeSpan.FromSeconds(20), "the daemon served no /metrics with its hooks attached within 20 s:\n" + log);
            }
            catch
            {
                daemon.Dispose();
                throw;
            }
            return daemon;
        }

        public void Kill()
        {
            _process.Kill(); // SIGKILL
            _process.WaitForExit();
        }

        public void Terminate()
        {
            Shell.Signal(_process, Libc.SIGTERM);
            if (!_process.WaitForExit(15_000))
                throw new TimeoutException("the daemon did not stop within 15 s of SIGTERM:\n" + Log);
            _process.WaitForExit();
        }

        public void Dispose() => Shell.Stop(_process);
    }

    /// <summary>iperf3 sessions one after another from the host to the netns: TCP up, TCP down
    /// (-R), UDP up to 9984 and TCP to 9981 (the host dialing a peer), 1–3 s each, rate-limited
    /// so the veth never drops.</summary>
    private sealed class TrafficLoop : IDisposable
    {
        private readonly Random _random;
        private readonly string _peerAddress;
        private readonly Thread _thread;
        private readonly ManualResetEventSlim _running = new(true);
        private readonly ManualResetEventSlim _idle = new(false);
        private volatile bool _stop;
        private Exception? _failure;

        public TrafficLoop(int seed, string peerAddress)
        {
            _peerAddress = peerAddress;
            _random = new Random(seed);
            _thread = new Thread(Loop) { IsBackground = true, Name = "soak traffic" };
            _thread.Start();
        }

        public int Runs { get; private set; }

        private void Loop()
        {
            string[][] kinds =
            [
                ["-p", "9984", "-b", "200M"],
                ["-p", "9984", "-b", "200M", "-R"],
                ["-p", "9984", "-u", "-b", "50M", "-l", "1200"],
                ["-p", "9981", "-b", "100M"],
            ];
            try
            {
                while (!_stop)
                {
                    if (!_running.IsSet)
                    {
                        _idle.Set();
                        _running.Wait();
                        _idle.Reset();
                        continue;
                    }
                    var kind = kinds[Runs % kinds.Length];
                    var seconds = _random.Next(1, 4).ToString(CultureInfo.InvariantCulture);
                    for (var attempt = 1; ; attempt++)
                    {
                        try
                        {
                            Shell.Run("iperf3", ["-c", _peerAddress, "-t", seconds, .. kind]);
                            break;
                        }
                        catch (InvalidOperationException e) when (attempt < 20 && e.Message.Contains("unable to", StringComparison.Ordinal))
                        {
                            // the iperf3 server re-opens its listener between tests: refused or busy for a moment
                            Thread.Sleep(100);
                        }
                    }
                    Runs++;
                }
            }
            catch (Exception e)
            {
                _failure = e;
            }
            finally
            {
                _idle.Set();
            }
        }

        /// <summary>Lets the current iperf3 run finish and starts no other until <see cref="Resume"/>.</summary>
        public void Pause()
        {
            _running.Reset();
            _idle.Wait(TimeSpan.FromSeconds(30));
            if (_failure is not null) throw new InvalidOperationException("the traffic loop failed", _failure);
        }

        public void Resume() => _running.Set();

        public void Dispose()
        {
            _stop = true;
            _running.Set();
            _thread.Join(TimeSpan.FromSeconds(30));
        }
    }
}
