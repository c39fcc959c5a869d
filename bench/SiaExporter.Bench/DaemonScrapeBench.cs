using System.Diagnostics;
using System.Globalization;
using System.Net;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using Microsoft.Extensions.Logging.Abstractions;

namespace SiaExporter.Bench;

/// <summary>
/// `bench scrape-daemon COLLECTOR [clients...]`: the real daemon over a real kernel map. For each
/// size, the pinned `clients` map is filled with that many clients (bpf_map_update_elem), the
/// map read is timed in this process (CounterReader, batched), then the installed-style binary
/// runs against those pins on a throwaway veth and is scraped over HTTP: scrape time, size, and
/// the daemon's own RSS after the scrapes and a flush to SQLite. Side by side in one run.
/// Targets: 100,000 clients scrape &lt; 250 ms; daemon RSS ≤ 60 MB at 10,000 clients.
/// </summary>
public static unsafe class DaemonScrapeBench
{
    private const string Veth = "bscr0";
    private const string PinDirectory = "/sys/fs/bpf/bench-scrape";

    public static int Run(string[] args)
    {
        if (args.Length < 1 || !File.Exists(args[0]))
        {
            Console.Error.WriteLine("usage: SiaExporter.Bench scrape-daemon <path to build/collector> [clients...]");
            return 2;
        }
        var collector = Path.GetFullPath(args[0]);
        var objectPath = Environment.GetEnvironmentVariable("BPF_OBJECT") ?? Path.Combine(Path.GetDirectoryName(collector)!, "collector.bpf.o");
        var sizes = args.Length > 1 ? args[1..].Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray() : [10_000, 100_000];
        var results = new List<(int Clients, Result R)>();
        try
        {
            Shell($"ip link add {Veth} type veth peer name {Veth}p");
            Shell($"ip link set {Veth} up");
            Shell($"ip link set {Veth}p up");
            foreach (var clients in sizes.Order())
                results.Add((clients, Measure(collector, objectPath, clients)));
        }
        finally
        {
            Shell($"ip link del {Veth}", check: false);
            if (Directory.Exists(PinDirectory)) Directory.Delete(PinDirectory, recursive: true);
        }

        static string Row(string name, IEnumerable<string> cells) => $"{name,-36}" + string.Concat(cells.Select(c => $"{c,14}"));
        static string F(double v, string format = "0.0") => v.ToString(format, CultureInfo.InvariantCulture);
        Console.WriteLine("daemon scrape bench: the real collector over a real kernel map (METRICS_TOP_CLIENTS 1000)");
        Console.WriteLine(Row("clients in map", results.Select(r => r.Clients.ToString("N0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("map read, batched (ms, median)", results.Select(r => F(r.R.ReadMs))));
        Console.WriteLine(Row("first scrape over HTTP (ms)", results.Select(r => F(r.R.FirstScrapeMs))));
        Console.WriteLine(Row("scrape over HTTP (ms, median)", results.Select(r => F(r.R.ScrapeMs))));
        Console.WriteLine(Row("scrape over HTTP (ms, max)", results.Select(r => F(r.R.ScrapeMaxMs))));
        Console.WriteLine(Row("exposition (KiB)", results.Select(r => F(r.R.Bytes / 1024.0, "0"))));
        Console.WriteLine(Row("daemon RSS after scrapes+flush (MB)", results.Select(r => F(r.R.RssMb))));
        Console.WriteLine(Row("  of which anonymous (heap) (MB)", results.Select(r => F(r.R.AnonMb))));
        Console.WriteLine(Row("  of which file/shmem (runtime) (MB)", results.Select(r => F(r.R.FileMb))));
        var big = results.LastOrDefault(r => r.Clients >= 100_000);
        var small = results.FirstOrDefault(r => r.Clients == 10_000);
        var ok = (big.R is null || big.R.ScrapeMaxMs < 250) && (small.R is null || small.R.RssMb <= 60);
        Console.WriteLine(ok ? "targets met" : "TARGETS MISSED (100k scrape < 250 ms, daemon RSS <= 60 MB at 10k)");
        return 0;
    }

    private sealed record Result(double ReadMs, double FirstScrapeMs, double ScrapeMs, double ScrapeMaxMs, long Bytes, double RssMb, double AnonMb, double FileMb);

    private static Result Measure(string collector, string objectPath, int count)
    {
        if (Directory.Exists(PinDirectory)) Directory.Delete(PinDirectory, recursive: true);
        var capacity = Math.Max(16384, count + count / 4);
        double readMs;
        using (var loaded = CollectorObject.Load(new CollectorObjectOptions(objectPath, PortClassSet.DefaultSet, capacity, PinDirectory), NullLogger.Instance))
        {
            Fill(loaded, count);
            using var reader = new CounterReader(loaded);
            var times = new List<double>();
            for (var i = 0; i < 7; i++)
            {
                var started = Stopwatch.GetTimestamp();
                var snapshot = reader.Read();
                times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (snapshot.Clients.Length != count) throw new InvalidOperationException($"read {snapshot.Clients.Length} of {count} clients");
            }
            readMs = Median(times);
        }

        var state = Directory.CreateTempSubdirectory("bench-scrape-");
        var port = FreePort();
        using var daemon = Process.Start(new ProcessStartInfo(collector)
        {
            ArgumentList =
            {
                "run", "--config", "/dev/null", "--interface", Veth, "--bpf-object", objectPath, "--pin-directory", PinDirectory,
                "--max-clients", capacity.ToString(CultureInfo.InvariantCulture), "--listen-address", $"127.0.0.1:{port}",
                "--sqlite-path", Path.Combine(state.FullName, "traffic.db"), "--state-directory", state.FullName,
                "--flush-interval", "10s", "--log-interval", "1h",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        daemon.OutputDataReceived += (_, _) => { };
        daemon.ErrorDataReceived += (_, _) => { };
        daemon.BeginOutputReadLine();
        daemon.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var url = $"http://127.0.0.1:{port}/metrics";
            var deadline = DateTime.UtcNow.AddSeconds(30);
            double first = -1;
            long bytes = 0;
            while (first < 0)
            {
                try
                {
                    var started = Stopwatch.GetTimestamp();
                    bytes = http.GetByteArrayAsync(url).GetAwaiter().GetResult().LongLength;
                    first = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                }
                catch (HttpRequestException) when (DateTime.UtcNow < deadline && !daemon.HasExited)
                {
                    Thread.Sleep(200);
                }
            }
            var scrapes = new List<double>();
            for (var i = 0; i < 15; i++)
            {
                Thread.Sleep(600); // the daemon coalesces reads younger than 500 ms: make each scrape read the map
                var started = Stopwatch.GetTimestamp();
                bytes = http.GetByteArrayAsync(url).GetAwaiter().GetResult().LongLength;
                scrapes.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            Thread.Sleep(TimeSpan.FromSeconds(11)); // at least one flush of every client to SQLite
            http.GetByteArrayAsync(url).GetAwaiter().GetResult();
            return new Result(readMs, first, Median(scrapes), scrapes.Max(), bytes,
                StatusMb(daemon.Id, "VmRSS:"), StatusMb(daemon.Id, "RssAnon:"), StatusMb(daemon.Id, "RssFile:") + StatusMb(daemon.Id, "RssShmem:"));
        }
        finally
        {
            Shell($"kill -TERM {daemon.Id}", check: false);
            if (!daemon.WaitForExit(10_000)) daemon.Kill();
            state.Delete(recursive: true);
        }
    }

    /// <summary>Writes <paramref name="count"/> clients (IPv4 and IPv6, Zipf-like sizes) into the map.</summary>
    private static void Fill(CollectorObject loaded, int count)
    {
        var stride = KernelSizes.PerCpuStride(loaded.ValueSize);
        var value = new byte[stride * loaded.PossibleCpus];
        var key = new byte[KernelSizes.ClientKey];
        for (var i = 0; i < count; i++)
        {
            var address = i % 4 == 3
                ? ClientAddress.FromIPAddress(new IPAddress([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, (byte)(i >> 24), (byte)(i >> 16), (byte)(i >> 8), (byte)i]))
                : ClientAddress.FromIPAddress(new IPAddress([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]));
            address.WriteKernelKey(key);
            var weight = (ulong)(1e9 / Math.Pow(i + 1, 1.1)) + 60;
            for (var s = 0; s < loaded.SlotCount; s++)
            {
                BitConverter.TryWriteBytes(value.AsSpan(s * 16), weight * (ulong)(s + 1));
                BitConverter.TryWriteBytes(value.AsSpan(s * 16 + 8), weight / 1000 + 1);
            }
            loaded.ClientsMap.Update(key, value);
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    private static double StatusMb(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void Shell(string command, bool check = true)
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", command]) { RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0) throw new InvalidOperationException($"{command}: {error.Trim()}");
    }
}
