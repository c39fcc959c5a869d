using System.Diagnostics;
using System.Globalization;
using System.Net;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Metrics;

namespace SiaExporter.Bench;

/// <summary>
/// `bench scrape [clients...]`: scrape cost of the /metrics publisher on snapshots built in
/// memory (no kernel): per size, the first scrape (every top client joins; the state is saved
/// off the scrape path, not measured here)
/// and steady scrapes (10% of clients moved since the last one), the exposition size and the
/// process RSS. Sizes run smallest first in one process, so the RSS column is cumulative.
/// Targets: 100,000 clients scrape &lt; 250 ms; RSS ≤ 60 MB at 10,000 clients (top 1000).
/// </summary>
public static class ScrapeBench
{
    public static int Run(string[] args)
    {
        var sizes = args.Length > 0 ? args.Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray() : [10_000, 100_000];
        var top = int.TryParse(Environment.GetEnvironmentVariable("METRICS_TOP_CLIENTS"), out var t) ? t : 1000;
        var results = new List<(int Clients, Result R)>();
        Console.WriteLine($"scrape bench: METRICS_TOP_CLIENTS={top}, ports {PortClassSet.Default}, RSS at start {Rss():0.0} MB");
        foreach (var clients in sizes.Order())
            results.Add((clients, Measure(clients, top)));

        static string Row(string name, IEnumerable<string> cells) => $"{name,-34}" + string.Concat(cells.Select(c => $"{c,16}"));
        Console.WriteLine(Row("clients in map", results.Select(r => r.Clients.ToString("N0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("first scrape (ms)", results.Select(r => r.R.FirstMs.ToString("0.0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("steady scrape median (ms)", results.Select(r => r.R.MedianMs.ToString("0.0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("steady scrape max (ms)", results.Select(r => r.R.MaxMs.ToString("0.0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("  of which update (ms, median)", results.Select(r => r.R.UpdateMs.ToString("0.0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("exposition (KiB)", results.Select(r => (r.R.Bytes / 1024.0).ToString("0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("series sia_traffic_*", results.Select(r => r.R.Series.ToString(CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("RSS after scrapes (MB)", results.Select(r => r.R.RssMb.ToString("0.0", CultureInfo.InvariantCulture))));
        Console.WriteLine(Row("managed heap after GC (MB)", results.Select(r => r.R.HeapMb.ToString("0.0", CultureInfo.InvariantCulture))));
        var big = results.LastOrDefault(r => r.Clients >= 100_000);
        var small = results.FirstOrDefault(r => r.Clients == 10_000);
        var ok = (big.R is null || big.R.MaxMs < 250) && (small.R is null || small.R.RssMb <= 60);
        Console.WriteLine(ok ? "targets met" : "TARGETS MISSED (100k scrape < 250 ms, RSS <= 60 MB at 10k)");
        return ok ? 0 : 1;
    }

    private sealed record Result(double FirstMs, double MedianMs, double MaxMs, double UpdateMs, long Bytes, int Series, double RssMb, double HeapMb);

    private static Result Measure(int count, int top)
    {
        var classes = PortClassSet.DefaultSet;
        var slots = classes.SlotCount;
        var random = new Random(count);
        var clients = new ClientAddress[count];
        var values = new Traffic[count * slots];
        for (var i = 0; i < count; i++)
        {
            clients[i] = i % 4 == 3
                ? ClientAddress.FromIPAddress(new IPAddress([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, (byte)(i >> 24), (byte)(i >> 16), (byte)(i >> 8), (byte)i]))
                : ClientAddress.FromIPAddress(new IPAddress([10, (byte)(i >> 16), (byte)(i >> 8), (byte)i]));
            var weight = 1e9 / Math.Pow(i + 1, 1.1); // Zipf-like: few big renters, many small peers
            for (var s = 0; s < slots; s++)
            {
                var bytes = (ulong)(weight * random.NextDouble()) + 60;
                values[i * slots + s] = new Traffic(bytes, bytes / 1400 + 1);
            }
        }
        var state = Path.Combine(Path.GetTempPath(), $"sia-scrape-bench-{Environment.ProcessId}-{count}");
        Directory.CreateDirectory(state);
        try
        {
            var now = DateTimeOffset.UtcNow;
            var generation = new MapGeneration("bench", 1);
            CounterSnapshot current = Build(classes, generation, now, clients, values);
            var options = new CollectorOptions { StateDirectory = state, MetricsTopClients = top, MaxClients = Math.Max(16384, count) };
            var exporter = new MetricsExporter(options, () => current, new MetricsSources { Version = "bench" });

            var watch = Stopwatch.StartNew();
            var text = exporter.ExportTextAsync().GetAwaiter().GetResult();
            var first = watch.Elapsed.TotalMilliseconds;

            var times = new List<double>();
            var updates = new List<double>();
            for (var round = 0; round < 15; round++)
            {
                now += TimeSpan.FromSeconds(15);
                for (var k = 0; k < count / 10; k++)
                {
                    var i = random.Next(count);
                    var s = random.Next(slots);
                    values[i * slots + s] += new Traffic((ulong)random.Next(60, 1_000_000), 10);
                }
                current = Build(classes, generation, now, clients, values);
                watch.Restart();
                // As the /metrics endpoint does: serialized into a buffer, then written out.
                exporter.WriteScrapeAsync(Stream.Null).GetAwaiter().GetResult();
                times.Add(watch.Elapsed.TotalMilliseconds);
                updates.Add(exporter.LastUpdateDuration.TotalMilliseconds);
            }
            text = exporter.ExportTextAsync().GetAwaiter().GetResult(); // same snapshot: for size and series
            times.Sort();
            updates.Sort();
            var series = text.Split('\n').Count(l => l.StartsWith("sia_traffic_", StringComparison.Ordinal) && !l.StartsWith("sia_traffic_host", StringComparison.Ordinal));
            var rss = Rss(); // before the collection below: what the daemon would show
            GC.Collect();
            var heap = GC.GetTotalMemory(true) / 1048576.0;
            GC.KeepAlive(exporter);
            return new Result(first, times[times.Count / 2], times[^1], updates[updates.Count / 2], System.Text.Encoding.UTF8.GetByteCount(text), series, rss, heap);
        }
        finally
        {
            Directory.Delete(state, recursive: true);
        }
    }

    private static CounterSnapshot Build(PortClassSet classes, MapGeneration generation, DateTimeOffset now, ClientAddress[] clients, Traffic[] values)
    {
        var totals = new Traffic[classes.SlotCount];
        for (var i = 0; i < values.Length; i++) totals[i % classes.SlotCount] += values[i];
        return new CounterSnapshot(classes, generation, now, clients, (Traffic[])values.Clone(), totals, new Traffic[classes.SlotCount]);
    }

    private static double Rss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }
}
