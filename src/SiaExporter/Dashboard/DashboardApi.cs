using System.Globalization;
using System.Text;
using System.Text.Json;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Storage;
using SiaExporter.Web;

namespace SiaExporter.Dashboard;

/// <summary>
/// The read-only JSON API behind the dashboard. Kernel numbers come from the snapshot source
/// and <see cref="LiveRates"/>; history only through <see cref="HistoryReader"/>, opened
/// read-only per request (a WAL reader: it never blocks the flush), at most
/// <see cref="ConcurrentReads"/> at a time. Clients are shown as ANONYMIZE says, stored rows
/// included. Thread-safe.
/// </summary>
public sealed class DashboardApi(
    CollectorOptions options,
    Func<CounterSnapshot> snapshots,
    LiveRates live,
    TimeProvider time,
    string? version = null)
{
    public const int ConcurrentReads = 2;
    public static readonly TimeSpan QueueTimeout = TimeSpan.FromSeconds(10);
    /// <summary>Points of the history chart and of a client's sparkline.</summary>
    public const int ChartPoints = 400;
    public const int SparkPoints = 60;
    private const int MaxSpikes = 1000;

    private readonly SemaphoreSlim _reads = new(ConcurrentReads, ConcurrentReads);
    private readonly PortClass _consensus = new(9981, Protocol.Tcp);

    public Summary Summary()
    {
        var snapshot = snapshots();
        var now = time.GetUtcNow();
        var totals = new List<ClassTraffic>();
        for (var c = 0; c < snapshot.Classes.Count; c++)
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var t = snapshot.Totals[PortClassSet.Slot(c, direction)];
                totals.Add(new ClassTraffic(snapshot.Classes.Classes[c].ToString(), direction.Label(), (long)t.Bytes, (long)t.Packets));
            }
        var month = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return new Summary(options.SiaHostname, version ?? Metrics.MetricsExporter.DefaultVersion, now.ToUnixTimeSeconds(),
            options.Anonymize.IsNone ? null : options.Anonymize.ToString(),
            snapshot.Classes.Classes.Select(c => c.ToString()).ToList(),
            new Period(month.ToUnixTimeSeconds(), month.AddMonths(1).ToUnixTimeSeconds()),
            live.Read(snapshot.Classes), totals);
    }

    /// <summary>The host's (or with <paramref name="client"/> one client's) bytes per step and
    /// class, their totals, and the 9981 spikes of the host.</summary>
    public Task<HistoryView> HistoryAsync(TimeRange range, string? client, CancellationToken cancel) => ReadAsync(reader =>
    {
        var resolution = HistoryReader.ResolutionFor(range.Step);
        var points = client is null
            ? reader.HostSeries(range.From, range.To, range.Step)
            : reader.ClientSeries([client], range.From, range.To, range.Step);
        var classes = ClassesOf(points);
        var t = new long[range.Points];
        for (var i = 0; i < t.Length; i++) t[i] = range.From + i * range.Step;
        var series = new List<HistorySeries>();
        var totals = new List<ClassTraffic>();
        foreach (var name in classes)
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var values = new long[t.Length];
                long bytes = 0, packets = 0;
                foreach (var p in points)
                {
                    if (Class(p) != name) continue;
                    var (b, k) = direction == Direction.Up ? (p.UpBytes, p.UpPackets) : (p.DownBytes, p.DownPackets);
                    values[(p.Time - range.From) / range.Step] += b;
                    bytes += b;
                    packets += k;
                }
                series.Add(new HistorySeries(name, direction.Label(), values));
                totals.Add(new ClassTraffic(name, direction.Label(), bytes, packets));
            }
        var spikes = client is null ? Spikes(reader, range) : [];
        return new HistoryView(range.From, range.To, range.Step, resolution, client, classes, t, series, totals, spikes);
    }, cancel);

    /// <summary>The busiest <paramref name="limit"/> clients of the range, per class, with bytes per step.</summary>
    public Task<ClientsView> ClientsAsync(TimeRange range, int limit, CancellationToken cancel) => ReadAsync(reader =>
    {
        var top = reader.BusiestClients(range.From, range.To, limit);
        var points = reader.ClientSeries(top.Select(c => c.Client).ToList(), range.From, range.To, range.Step);
        var byClient = points.GroupBy(p => p.Client!).ToDictionary(g => g.Key, g => g.ToList());
        var clients = new List<ClientSummary>();
        foreach (var (name, _) in top)
        {
            var own = byClient.GetValueOrDefault(name) ?? [];
            var spark = new long[range.Points];
            foreach (var p in own) spark[(p.Time - range.From) / range.Step] += p.UpBytes + p.DownBytes;
            var classes = new List<ClassTraffic>();
            foreach (var cls in ClassesOf(own))
            {
                var of = own.Where(p => Class(p) == cls).ToList();
                classes.Add(new ClassTraffic(cls, "down", of.Sum(p => p.DownBytes), of.Sum(p => p.DownPackets)));
                classes.Add(new ClassTraffic(cls, "up", of.Sum(p => p.UpBytes), of.Sum(p => p.UpPackets)));
            }
            var down = own.Sum(p => p.DownBytes);
            var up = own.Sum(p => p.UpBytes);
            clients.Add(new ClientSummary(name, down, up, down + up, classes, spark));
        }
        return new ClientsView(range.From, range.To, range.Step, clients);
    }, cancel);

    /// <summary>Every client row of the range (bucket, client, class), as CSV or a JSON array, streamed.</summary>
    public async Task ExportAsync(TimeRange range, string format, HttpResponse response, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(response);
        await EnterAsync(cancel).ConfigureAwait(false);
        try
        {
            using var reader = Open();
            var rows = reader.ClassRows(range.From, range.To);
            response.ContentType = format == "csv" ? "text/csv; charset=utf-8" : "application/json; charset=utf-8";
            response.Headers.ContentDisposition = $"attachment; filename=\"traffic-{range.From}-{range.To}.{format}\"";
            await using var body = new StreamWriter(response.Body, new UTF8Encoding(false), 1 << 16);
            if (format == "csv") await body.WriteAsync("bucket,client,class,up_bytes,down_bytes,up_packets,down_packets\n").ConfigureAwait(false);
            else await body.WriteAsync('[').ConfigureAwait(false);
            var first = true;
            foreach (var p in rows)
            {
                cancel.ThrowIfCancellationRequested();
                if (format == "csv")
                {
                    await body.WriteAsync(string.Create(CultureInfo.InvariantCulture,
                        $"{p.Time},{p.Client},{Class(p)},{p.UpBytes},{p.DownBytes},{p.UpPackets},{p.DownPackets}\n")).ConfigureAwait(false);
                }
                else
                {
                    if (!first) await body.WriteAsync(',').ConfigureAwait(false);
                    await body.WriteAsync(JsonSerializer.Serialize(
                        new ExportRow(p.Time, p.Client!, Class(p), p.UpBytes, p.DownBytes, p.UpPackets, p.DownPackets),
                        DashboardJsonContext.Default.ExportRow)).ConfigureAwait(false);
                }
                first = false;
            }
            if (format == "json") await body.WriteAsync("]\n").ConfigureAwait(false);
        }
        finally
        {
            _reads.Release();
        }
    }

    private List<Spike> Spikes(HistoryReader reader, TimeRange range)
    {
        var from = range.From - SpikeDetector.Baseline;
        var down = new Dictionary<long, long>();
        var up = new Dictionary<long, long>();
        foreach (var p in reader.HostSeries(from, range.To, Buckets.Seconds))
        {
            if (p.Port != _consensus.Port || p.Proto != _consensus.ProtocolLabel) continue;
            down[p.Time] = p.DownBytes;
            up[p.Time] = p.UpBytes;
        }
        var spikes = SpikeDetector.Find(down, range.From, range.To, "down");
        spikes.AddRange(SpikeDetector.Find(up, range.From, range.To, "up"));
        spikes.Sort((a, b) => a.T != b.T ? a.T.CompareTo(b.T) : string.CompareOrdinal(a.Direction, b.Direction));
        return spikes.Count <= MaxSpikes ? spikes : spikes.OrderByDescending(s => s.Rate / s.Threshold).Take(MaxSpikes).OrderBy(s => s.T).ToList();
    }

    /// <summary>The configured classes first, then any other class found in the rows (an earlier PORTS).</summary>
    private List<string> ClassesOf(IEnumerable<SeriesPoint> points)
    {
        var names = options.Ports.Classes.Select(c => c.ToString()).ToList();
        foreach (var p in points)
        {
            var name = Class(p);
            if (!names.Contains(name)) names.Add(name);
        }
        return names;
    }

    private static string Class(SeriesPoint p) => string.Create(CultureInfo.InvariantCulture, $"{p.Port}/{p.Proto}");

    private HistoryReader Open()
    {
        var reader = HistoryReader.OpenReadOnly(options.SqlitePath);
        if (!options.Anonymize.IsNone)
        {
            var prefix = options.Anonymize;
            reader.ShowClientsAs(stored => ClientAddress.TryParse(stored, out var address) ? prefix.Mask(address).ToString() : stored);
        }
        return reader;
    }

    private async Task<T> ReadAsync<T>(Func<HistoryReader, T> read, CancellationToken cancel)
    {
        await EnterAsync(cancel).ConfigureAwait(false);
        try
        {
            return await Task.Run(() =>
            {
                using var reader = Open();
                return read(reader);
            }, cancel).ConfigureAwait(false);
        }
        finally
        {
            _reads.Release();
        }
    }

    private async Task EnterAsync(CancellationToken cancel)
    {
        if (!await _reads.WaitAsync(QueueTimeout, cancel).ConfigureAwait(false))
            throw new BusyException();
    }
}

/// <summary>Too many history reads at once: answered 503.</summary>
public sealed class BusyException() : Exception("the history is busy with other requests; retry in a few seconds");
