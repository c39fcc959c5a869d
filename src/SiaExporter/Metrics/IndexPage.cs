using System.Globalization;
using System.Net;
using System.Text;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Metrics;

/// <summary>
/// The page at /: the busiest clients now (rates since the page's previous baseline, at least
/// <see cref="MinWindow"/> old; cumulative bytes when there is none yet), the host totals per
/// class and a link to /metrics. Every text that reaches the page is HTML-encoded. Thread-safe.
/// </summary>
public sealed class IndexPage(Func<CounterSnapshot> snapshots, CollectorOptions options, string? version = null, int limit = 25)
{
    public static readonly TimeSpan MinWindow = TimeSpan.FromSeconds(10);

    private readonly Lock _gate = new();
    private CounterSnapshot? _baseline;

    public string Render()
    {
        var current = snapshots();
        CounterSnapshot? baseline;
        lock (_gate)
        {
            baseline = _baseline;
            if (baseline is null || baseline.Generation != current.Generation || current.TakenAt - baseline.TakenAt >= MinWindow)
                _baseline = current;
            if (baseline is not null && (baseline.Generation != current.Generation || !baseline.Classes.Equals(current.Classes) || current.TakenAt <= baseline.TakenAt))
                baseline = null;
        }
        return Render(current, baseline, options.SiaHostname, version ?? MetricsExporter.DefaultVersion, limit, options.Web.TelemetryPath);
    }

    /// <summary>The page for <paramref name="current"/>; rates against <paramref name="baseline"/> when given.</summary>
    public static string Render(CounterSnapshot current, CounterSnapshot? baseline, string hostname, string version, int limit,
        string telemetryPath = "/metrics")
    {
        var classes = current.Classes;
        var seconds = baseline is null ? 0 : (current.TakenAt - baseline.TakenAt).TotalSeconds;
        var earlier = new Dictionary<ClientAddress, int>();
        if (baseline is not null)
            for (var i = 0; i < baseline.Clients.Length; i++) earlier.TryAdd(baseline.Clients[i], i);

        // Per client: bytes down/up in the window (or in total without a baseline).
        var rows = new List<(ClientAddress Client, ulong Down, ulong Up, ulong Total)>(current.Clients.Length);
        for (var i = 0; i < current.Clients.Length; i++)
        {
            ulong down = 0, up = 0, total = 0;
            var hasBefore = earlier.TryGetValue(current.Clients[i], out var j);
            for (var c = 0; c < classes.Count; c++)
                foreach (var direction in new[] { Direction.Down, Direction.Up })
                {
                    var slot = PortClassSet.Slot(c, direction);
                    var now = current.Get(i, slot);
                    total += now.Bytes;
                    var moved = baseline is null ? now.Bytes : now.Since(hasBefore ? baseline.Get(j, slot) : Traffic.Zero).Bytes;
                    if (direction == Direction.Down) down += moved; else up += moved;
                }
            if (down + up > 0) rows.Add((current.Clients[i], down, up, total));
        }
        rows.Sort((a, b) =>
        {
            var c = (b.Down + b.Up).CompareTo(a.Down + a.Up);
            return c != 0 ? c : a.Client.CompareTo(b.Client);
        });

        var html = new StringBuilder(4096);
        var title = $"sia-exporter on {hostname}";
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title>\n")
            .Append("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}</style>\n")
            .Append("</head><body>\n<h1>").Append(E(title)).Append("</h1>\n<p>version ").Append(E(version))
            .Append(" · <a href=\"").Append(E(telemetryPath.TrimStart('/'))).Append("\">").Append(E(telemetryPath)).Append("</a> · ").Append(current.Clients.Length.ToString(CultureInfo.InvariantCulture))
            .Append(" client(s) in the kernel map · counters read ").Append(E(current.TakenAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture)))
            .Append("</p>\n<h2>Host totals</h2>\n<table><tr><th>class</th><th>direction</th><th>bytes</th><th>packets</th></tr>\n");
        for (var c = 0; c < classes.Count; c++)
            foreach (var direction in new[] { Direction.Down, Direction.Up })
            {
                var t = current.Totals[PortClassSet.Slot(c, direction)];
                html.Append("<tr><td>").Append(E(classes.Classes[c].ToString())).Append("</td><td>").Append(direction.Label())
                    .Append("</td><td>").Append(E(TopClientsLog.HumanBytes(t.Bytes, "B", 1024)))
                    .Append("</td><td>").Append(t.Packets.ToString(CultureInfo.InvariantCulture)).Append("</td></tr>\n");
            }
        html.Append("</table>\n<h2>");
        html.Append(baseline is null
            ? "Top clients by bytes in the kernel map"
            : E(string.Create(CultureInfo.InvariantCulture, $"Top clients over the last {seconds:0} s")));
        html.Append("</h2>\n<table><tr><th>#</th><th>client</th><th>down</th><th>up</th><th>bytes in map</th></tr>\n");
        var rank = 0;
        foreach (var row in rows.Take(limit))
        {
            html.Append("<tr><td>").Append((++rank).ToString(CultureInfo.InvariantCulture)).Append("</td><td>").Append(E(row.Client.ToString()))
                .Append("</td><td>").Append(E(Amount(row.Down, seconds))).Append("</td><td>").Append(E(Amount(row.Up, seconds)))
                .Append("</td><td>").Append(E(TopClientsLog.HumanBytes(row.Total, "B", 1024))).Append("</td></tr>\n");
        }
        if (rank == 0) html.Append("<tr><td colspan=\"5\">no traffic</td></tr>\n");
        html.Append("</table>\n</body></html>\n");
        return html.ToString();
    }

    private static string Amount(ulong bytes, double seconds) =>
        seconds > 0 ? TopClientsLog.Rate(bytes, seconds) : TopClientsLog.HumanBytes(bytes, "B", 1024);

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
