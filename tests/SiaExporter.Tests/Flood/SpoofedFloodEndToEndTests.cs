using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Metrics;
using SiaExporter.Tests.EndToEnd;
using SiaExporter.Tests.Kernel;
using SiaExporter.Tests.Metrics;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// The product's programs on the host end of a veth with MAX_CLIENTS=256, while the test namespace
/// sends 60,000 spoofed sources (IPv4 and IPv6, UDP to 9984, over AF_PACKET) and real clients talk:
/// the standard TCP plan and a real QUIC download (Debian's ngtcp2: gtlsserver on the host,
/// gtlsclient in the namespace). Against the capture on the namespace end: every real client's
/// series equal to the byte and frame, the spoofed traffic all unconfirmed (no entry), the host
/// totals equal, and the flood visible in the metrics.
/// Every spoofed source lies in the namespace's on-link subnets (10.N.128.0/17, added to both ends
/// for this test, and fd00:N::/64), and UDP listeners hold 9984 on both host addresses, so the
/// host answers nothing and nothing leaves the sandbox.
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed class SpoofedFloodEndToEndTests(ITestOutputHelper output)
{
    private const int MaxClients = 256;
    private const int SpoofedV4 = 30_000;
    private const int SpoofedV6 = 30_000;
    private const int QuicDownloadBytes = 300_000;

    [KernelFact]
    public void A_spoofed_flood_leaves_every_real_client_its_own_exact_series()
    {
        RequireTool("gtlsserver", "ngtcp2-server");
        RequireTool("gtlsclient", "ngtcp2-client");
        for (var attempt = 1; ; attempt++)
        {
            var sw = Stopwatch.StartNew();
            // Offloads off: the QUIC server sends UDP GSO batches, which the capture (on the far end)
            // would see unsegmented; with gso off the host segments them after its tc egress program,
            // which counts them by wire_len/gso_segs, and the capture sees the wire frames.
            using var net = TestNetwork.Create(offloads: false);
            Shell.Run("ethtool", "-K", net.HostInterface, "tx-udp-segmentation", "off");
            // A wider on-link IPv4 subnet on both ends, for tens of thousands of spoofed IPv4 sources.
            var spoofNet4 = $"10.{net.Subnet}";
            Shell.Run("ip", "addr", "add", $"{spoofNet4}.255.254/17", "dev", net.HostInterface);
            Shell.Run("ip", "-n", net.Namespace, "addr", "add", $"{spoofNet4}.128.1/17", "dev", net.PeerInterface);
            using var collector = CollectorUnderTest.Start(net, XdpMode.Generic, maxClients: MaxClients);
            using var quic = QuicServer.Start(net.HostV4, QuicDownloadBytes);
            using var v6Listener = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
            v6Listener.Bind(new IPEndPoint(net.HostV6, 9984)); // no ICMP port unreachable for the IPv6 flood

            var plan = TrafficPlan.Standard(net);
            plan.Udp.RemoveAll(x => x.HostPort == 9984); // 9984/udp is the QUIC server's and the flood listener's
            var spoofed = SpoofedFrames(net, spoofNet4);
            var before = collector.Read();
            var dropsBefore = SoftnetDrops();
            var pcap = Path.Combine(Path.GetTempPath(), $"{net.Name}-flood-{DateTime.UtcNow:HHmmssfff}.pcap");
            PacketCapture.Stats stats;
            using (var capture = PacketCapture.Start(net, pcap))
            {
                var flood = Task.Factory.StartNew(() => net.InNamespace.Run(() => Send(net, spoofed)), TaskCreationOptions.LongRunning);
                var download = Task.Factory.StartNew(() => quic.Download(net), TaskCreationOptions.LongRunning);
                plan.Run(net);
                Assert.True(Task.WaitAll([flood, download], TimeSpan.FromMinutes(3)), "flood or QUIC download did not finish");
                Thread.Sleep(500);
                stats = capture.Stop();
            }
            var after = collector.Read();
            var truth = CaptureTruth.FromPcap(pcap, net, PortClassSet.DefaultSet);
            output.WriteLine($"{net.Name}: {sw.ElapsedMilliseconds} ms; capture {stats}; {truth.Counted.Count:N0} counted flows in the capture");

            var real = net.Clients.Select(a => ClientAddress.Parse(a.ToString())).ToHashSet();
            var counted = TruthComparison.Delta(before, after);
            var problems = new List<string>();
            // Every real client: each of its flows equal to the capture (handshakes included).
            foreach (var key in truth.Counted.Keys.Where(k => real.Contains(k.Client)).Union(counted.Keys))
            {
                var want = truth.Counted.GetValueOrDefault(key);
                var got = counted.GetValueOrDefault(key);
                if (!real.Contains(key.Client)) problems.Add($"{key}: {got} counted on an entry of a spoofed source");
                else if (want != got) problems.Add($"{key}: capture {want}, counted {got}");
            }
            // The spoofed sources: all their traffic is unconfirmed, none on an entry.
            var spoofedSources = truth.Counted.Keys.Where(k => !real.Contains(k.Client)).Select(k => k.Client).Distinct().Count();
            var unconfirmedBefore = before.Unconfirmed;
            var unconfirmedAfter = after.Unconfirmed;
            for (var c = 0; c < after.Classes.Count; c++)
                foreach (var dir in new[] { Direction.Down, Direction.Up })
                {
                    var slot = PortClassSet.Slot(c, dir);
                    var cls = after.Classes.Classes[c];
                    var spoofedTruth = truth.Counted.Where(kv => !real.Contains(kv.Key.Client) && kv.Key.Class == cls && kv.Key.Direction == dir)
                        .Aggregate(Traffic.Zero, (sum, kv) => sum + kv.Value);
                    var unconfirmed = (unconfirmedAfter.Held[slot] + unconfirmedAfter.Evicted[slot])
                        .Since(unconfirmedBefore.Held[slot] + unconfirmedBefore.Evicted[slot]);
                    if (unconfirmed != spoofedTruth) problems.Add($"unconfirmed {cls} {dir.Label()}: capture {spoofedTruth}, counted {unconfirmed}");
                    var total = after.Totals[slot].Since(before.Totals[slot]);
                    if (total != truth.HostTotal(cls, dir)) problems.Add($"host total {cls} {dir.Label()}: capture {truth.HostTotal(cls, dir)}, counted {total}");
                }
            var dropped = SoftnetDrops() - dropsBefore;
            if (problems.Count > 0 && dropped > 0 && attempt == 1)
            {
                // The host dropped frames before any program saw them (its backlog overflowed on a
                // loaded machine): the capture holds frames nothing could count. Once more.
                output.WriteLine($"attempt {attempt}: the host's backlog dropped {dropped} frames; again");
                File.Delete(pcap);
                continue;
            }
            if (problems.Count > 0) output.WriteLine($"pcap kept at {pcap}; backlog drops {dropped}");
            Assert.True(problems.Count == 0, "product vs capture:\n" + string.Join('\n', problems));
            Assert.True(spoofedSources >= 50_000, $"only {spoofedSources} spoofed sources in the capture");
            Assert.Equal(real.Count, after.Clients.Length);
            var quicKey = new FlowKey(ClientAddress.Parse(net.ClientV4A.ToString()), PortClass.Parse("9984/udp"), Direction.Up);
            Assert.True(counted.GetValueOrDefault(quicKey).Bytes > QuicDownloadBytes, $"QUIC download not on its client: {counted.GetValueOrDefault(quicKey)}");

            // The flood in the metrics: the pending table overflowed, the real clients have series.
            using var state = new TempDir();
            var exporter = new MetricsExporter(TestOptions.For(state.Path), collector.Read, new MetricsSources { MapCapacity = MaxClients });
            var exposition = new Exposition(exporter.ExportTextAsync().GetAwaiter().GetResult());
            var evicted = Exposition.Exact(exposition.Value("sia_exporter_unconfirmed_evicted_packets_total"));
            output.WriteLine($"{spoofedSources:N0} spoofed sources; sia_exporter_unconfirmed_evicted_packets_total {evicted:N0}, " +
                             $"sia_exporter_unconfirmed_sources {exposition.Value("sia_exporter_unconfirmed_sources")}");
            Assert.True(evicted > 40_000, $"evicted {evicted}");
            Assert.Equal(real.Count, exposition.Value("sia_exporter_clients"));
            foreach (var client in real)
                Assert.Contains(exposition.Of("sia_traffic_bytes_total"), s => s.Labels["client"] == client.ToString());
            File.Delete(pcap);
            return;
        }
    }

    /// <summary>UDP to 9984 from <see cref="SpoofedV4"/> + <see cref="SpoofedV6"/> distinct spoofed
    /// sources, each one a too-short QUIC Initial (a QUIC server drops it without answering).</summary>
    private static List<byte[]> SpoofedFrames(TestNetwork net, string spoofNet4)
    {
        var frames = new List<byte[]>(SpoofedV4 + SpoofedV6);
        var host = net.HostMac.GetAddressBytes();
        var peer = net.PeerMac.GetAddressBytes();
        byte[] payload = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, .. new byte[40]];
        for (var i = 0; i < Math.Max(SpoofedV4, SpoofedV6); i++)
        {
            if (i < SpoofedV4)
            {
                var n = i + 2; // 10.N.128.2 ..
                var source = $"{spoofNet4}.{128 + (n >> 8)}.{n & 255}";
                frames.Add(new PacketBuilder().Ethernet(host, peer).IPv4(source, net.HostV4.ToString()).Udp(40000, 9984).Raw(payload).Bytes());
            }
            if (i < SpoofedV6)
            {
                var source = $"fd00:{net.Subnet:x}::5:{i >> 16:x}:{i & 0xffff:x}";
                frames.Add(new PacketBuilder().Ethernet(host, peer).IPv6(source, net.HostV6.ToString()).Udp(40000, 9984).Raw(payload).Bytes());
            }
        }
        return frames;
    }

    /// <summary>Sends the frames out of the namespace end, paced so the host's backlog never
    /// overflows (a frame dropped before the programs would be in the capture only).</summary>
    private static void Send(TestNetwork net, List<byte[]> frames)
    {
        using var socket = new PacketSocket(net.PeerInterface);
        for (var i = 0; i < frames.Count; i++)
        {
            socket.Send(frames[i]);
            if (i % 16 == 15) Thread.Sleep(1);
        }
    }

    /// <summary>Frames the kernel dropped from its per-CPU input backlogs (softnet_stat column 2, all CPUs).</summary>
    private static long SoftnetDrops() => File.ReadAllLines("/proc/net/softnet_stat")
        .Sum(line => Convert.ToInt64(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], 16));

    private static void RequireTool(string tool, string package)
    {
        if (!Shell.Try("sh", "-c", $"command -v {tool}").Ok)
            Assert.Fail($"{tool} is missing: apt-get install {package}");
    }

    /// <summary>gtlsserver (ngtcp2 + GnuTLS, HTTP/3) on host:9984 with a fresh self-signed key,
    /// serving one file of the given size; <see cref="Download"/> fetches it with gtlsclient from
    /// the namespace. Killed by its pid on dispose.</summary>
    private sealed class QuicServer : IDisposable
    {
        private readonly Process _server;
        private readonly DirectoryInfo _dir;
        private readonly IPAddress _address;

        private QuicServer(Process server, DirectoryInfo dir, IPAddress address)
        {
            _server = server;
            _dir = dir;
            _address = address;
        }

        public static QuicServer Start(IPAddress address, int bytes)
        {
            var dir = Directory.CreateTempSubdirectory("sia-quic-");
            var key = Path.Combine(dir.FullName, "key.pem");
            var cert = Path.Combine(dir.FullName, "cert.pem");
            Shell.Run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", cert, "-subj", "/CN=sia-host", "-days", "1");
            var www = Directory.CreateDirectory(Path.Combine(dir.FullName, "www"));
            File.WriteAllBytes(Path.Combine(www.FullName, "blob"), Enumerable.Range(0, bytes).Select(i => (byte)(i * 13)).ToArray());
            var psi = new ProcessStartInfo("gtlsserver") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-q", "-d", www.FullName, address.ToString(), "9984", key, cert }) psi.ArgumentList.Add(a);
            var server = Process.Start(psi) ?? throw new InvalidOperationException("gtlsserver did not start");
            server.OutputDataReceived += (_, _) => { };
            server.ErrorDataReceived += (_, _) => { };
            server.BeginOutputReadLine();
            server.BeginErrorReadLine();
            Thread.Sleep(300);
            if (server.HasExited) throw new InvalidOperationException($"gtlsserver exited with {server.ExitCode}");
            return new QuicServer(server, dir, address);
        }

        /// <summary>One HTTP/3 GET of the file from the namespace (source ClientV4A, the first
        /// address of its subnet there), checked by size.</summary>
        public void Download(TestNetwork net)
        {
            var target = Directory.CreateDirectory(Path.Combine(_dir.FullName, "download"));
            var result = Shell.TryWithTimeout(TimeSpan.FromSeconds(60), "ip", "netns", "exec", net.Namespace, "gtlsclient", "-q",
                "--exit-on-all-streams-close", $"--download={target.FullName}", "--timeout=20s",
                _address.ToString(), "9984", $"https://{_address}:9984/blob");
            var got = Path.Combine(target.FullName, "blob");
            if (!File.Exists(got) || new FileInfo(got).Length != new FileInfo(Path.Combine(_dir.FullName, "www", "blob")).Length)
                throw new InvalidOperationException($"QUIC download failed (exit {result.ExitCode}): {result.Stderr}{result.Stdout}");
        }

        public void Dispose()
        {
            try
            {
                if (!_server.HasExited) _server.Kill();
                _server.WaitForExit(5000);
            }
            finally
            {
                _server.Dispose();
                _dir.Delete(recursive: true);
            }
        }
    }
}
