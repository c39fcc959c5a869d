using System.Globalization;
using SiaExporter.Counters;
using SiaExporter.Storage;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The daemon's SQLite history as an operator reads it: the sqlite3 command-line tool, read-only,
/// beside the running daemon (WAL: never blocks it). Sums every bucket of <c>traffic_detail</c>
/// (per client, class, direction: bytes and packets), of the seed table <c>traffic</c> (per client
/// and original column: bytes) and of <c>traffic_host</c> (per class and direction).
/// </summary>
internal sealed class HistoryReader(string databasePath)
{
    public string DatabasePath { get; } = databasePath;

    public sealed record View(
        IReadOnlyDictionary<FlowKey, Traffic> Detail,
        IReadOnlyDictionary<(string Client, string Column), ulong> Seed,
        IReadOnlyDictionary<(PortClass Class, Direction Direction), Traffic> Host,
        long Rows,
        IReadOnlyList<string> Problems)
    {
        public Traffic DetailTotal => Detail.Values.Aggregate(Traffic.Zero, (a, t) => a + t);

        public override string ToString() => $"{Rows} rows, detail {DetailTotal.Bytes} B / {DetailTotal.Packets} frames";
    }

    /// <summary>Runs one query with sqlite3 -readonly, as an operator would, with a busy timeout: a
    /// reader that opens the database while the daemon rebuilds the WAL index after a crash or a
    /// read-only spell gets SQLITE_BUSY without one. Rows of '|'-separated cells.</summary>
    public List<string[]> Query(string sql)
    {
        var r = Shell.TryWithTimeout(TimeSpan.FromSeconds(20), "sqlite3", "-readonly", "-cmd", ".timeout 5000", "-batch", "-noheader", "-separator", "|", DatabasePath, sql);
        if (!r.Ok) throw new InvalidOperationException($"sqlite3 {DatabasePath} \"{sql}\" failed ({r.ExitCode}): {r.Stderr.Trim()}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('|')).ToList();
    }

    public View Read()
    {
        var problems = new List<string>();
        var detail = new Dictionary<FlowKey, Traffic>();
        foreach (var row in Query("""
                     SELECT client_ip, port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
                     FROM traffic_detail GROUP BY client_ip, port, proto
                     """))
        {
            var client = Client(row[0]);
            var cls = PortClass.Parse($"{row[1]}/{row[2]}");
            var up = new Traffic(U(row[3]), U(row[5]));
            var down = new Traffic(U(row[4]), U(row[6]));
            if (!up.IsZero) detail[new FlowKey(client, cls, Direction.Up)] = up;
            if (!down.IsZero) detail[new FlowKey(client, cls, Direction.Down)] = down;
        }
        var columns = HistorySchema.SeedColumns.Select(c => c.Column).ToArray();
        var seed = new Dictionary<(string, string), ulong>();
        foreach (var row in Query($"SELECT client_ip, {string.Join(", ", columns.Select(c => $"sum({c})"))} FROM traffic GROUP BY client_ip"))
            for (var i = 0; i < columns.Length; i++)
                if (U(row[i + 1]) != 0) seed[(row[0], columns[i])] = U(row[i + 1]);
        var host = new Dictionary<(PortClass, Direction), Traffic>();
        foreach (var row in Query("SELECT port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets) FROM traffic_host GROUP BY port, proto"))
        {
            var cls = PortClass.Parse($"{row[0]}/{row[1]}");
            host[(cls, Direction.Up)] = new Traffic(U(row[2]), U(row[4]));
            host[(cls, Direction.Down)] = new Traffic(U(row[3]), U(row[5]));
        }
        // Buckets are 5-minute starts, one traffic row per client and bucket.
        var shape = Query("""
            SELECT (SELECT count(*) FROM traffic),
                   (SELECT count(*) FROM traffic WHERE timestamp % 300 != 0),
                   (SELECT count(*) FROM traffic_detail WHERE bucket % 300 != 0),
                   (SELECT count(*) FROM (SELECT 1 FROM traffic GROUP BY timestamp, client_ip HAVING count(*) > 1))
            """)[0];
        if (shape[1] != "0") problems.Add($"{shape[1]} traffic rows with a timestamp that is not a multiple of 300");
        if (shape[2] != "0") problems.Add($"{shape[2]} traffic_detail rows with a bucket that is not a multiple of 300");
        if (shape[3] != "0") problems.Add($"{shape[3]} (timestamp, client_ip) pairs with more than one traffic row");
        return new View(detail, seed, host, long.Parse(shape[0], CultureInfo.InvariantCulture), problems);
    }

    /// <summary>Every difference between the history and the truth (empty when they agree): per
    /// client/class/direction in traffic_detail (bytes and frames), per client and seed column in
    /// traffic (bytes), per class/direction in traffic_host, and the sum over clients vs the host rows.</summary>
    public static List<string> Differences(View view, TruthTotals truth)
    {
        var diffs = new List<string>(view.Problems);
        foreach (var key in truth.Counted.Keys.Union(view.Detail.Keys).OrderBy(k => k.ToString()))
            if (truth.Counted.GetValueOrDefault(key) != view.Detail.GetValueOrDefault(key))
                diffs.Add($"traffic_detail {key}: truth {truth.Counted.GetValueOrDefault(key)}, sqlite {view.Detail.GetValueOrDefault(key)}");
        var wantSeed = new Dictionary<(string, string), ulong>();
        foreach (var (column, cls, dir) in HistorySchema.SeedColumns)
            foreach (var (key, t) in truth.Counted.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir && kv.Value.Bytes != 0))
                wantSeed[(key.Client.ToString(), column)] = t.Bytes;
        foreach (var key in wantSeed.Keys.Union(view.Seed.Keys).OrderBy(k => k))
            if (wantSeed.GetValueOrDefault(key) != view.Seed.GetValueOrDefault(key))
                diffs.Add($"traffic {key.Item1} {key.Item2}: truth {wantSeed.GetValueOrDefault(key)} B, sqlite {view.Seed.GetValueOrDefault(key)} B");
        foreach (var cls in PortClassSet.DefaultSet.Classes)
            foreach (var dir in new[] { Direction.Up, Direction.Down })
            {
                var want = truth.HostTotal(cls, dir);
                var got = view.Host.GetValueOrDefault((cls, dir));
                if (want != got) diffs.Add($"traffic_host {cls} {dir.Label()}: truth {want}, sqlite {got}");
                var sum = view.Detail.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir).Aggregate(Traffic.Zero, (a, kv) => a + kv.Value);
                if (sum != got) diffs.Add($"traffic_host {cls} {dir.Label()} {got} is not the sum over clients {sum}");
            }
        return diffs;
    }

    /// <summary>Polls until the history equals <paramref name="truth"/>; returns the last view and
    /// its differences (empty on success).</summary>
    public (View View, List<string> Differences) WaitUntilEqual(TruthTotals truth, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var view = Read();
            var diffs = Differences(view, truth);
            if (diffs.Count == 0 || DateTime.UtcNow >= deadline) return (view, diffs);
            Thread.Sleep(250);
        }
    }

    private static ClientAddress Client(string text) =>
        text == HistorySchema.OverflowClient ? ClientAddress.None : ClientAddress.Parse(text);

    private static ulong U(string text) => ulong.Parse(text.Length == 0 ? "0" : text, CultureInfo.InvariantCulture);
}
