using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using SiaExporter.Counters;
using SiaExporter.Storage;
using Xunit;
using Xunit.Abstractions;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// The real daemon's SQLite history against the capture truth, read with the sqlite3 tool and with
/// the daemon's own `collector top` / `collector export` while it runs: exact after a flush, after a
/// `kill -9` between flushes and a restart on the same pins and database, after two flushes against
/// a database the kernel refuses to write, and after a SIGTERM (the final flush).
/// </summary>
[Trait("Category", "EndToEnd")]
public sealed partial class HistoryEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(5);

    /// <summary>A flush is due every 5 s and may retry for ~3.5 s (3 attempts, exponential backoff).</summary>
    private static readonly TimeSpan FlushWithin = TimeSpan.FromSeconds(15);

    [KernelFact]
    public void History_stays_exact_across_kill_9_and_a_read_only_database_and_top_and_export_agree()
    {
        var sw = Stopwatch.StartNew();
        using var net = TestNetwork.Create(offloads: true);
        using var store = ImmutableStore.Create(net);
        string[] flags = ["--sqlite-path", store.DatabasePath, "--flush-interval", "5s", "--log-interval", "2s"];
        var history = new HistoryReader(store.DatabasePath);
        var plan = TrafficPlan.Standard(net, scaleKb: 100);
        var truth = new TruthTotals();
        DaemonProcess? daemon = null;
        try
        {
            // 1. Traffic, then a flush: the history equals the truth.
            daemon = DaemonProcess.Start(net, extraArgs: flags);
            output.WriteLine($"{net.Name}: daemon pid {daemon.Pid}, history {store.DatabasePath} (ext4 on loop), flush every 5 s");
            Record(net, plan, truth);
            AssertHistory("first flush", history, truth, daemon, sw);

            // 2. kill -9 between two flushes, with traffic counted but not yet flushed.
            var boundary = WaitForFlushAt(daemon);
            var flushed = truth.Copy();
            Record(net, plan, truth);
            var killedAt = DateTimeOffset.UtcNow;
            daemon.Kill9();
            var log = daemon.Log;
            daemon.Dispose();
            daemon = null;
            var atKill = history.Read();
            if (killedAt < boundary + FlushInterval)
            {
                // The usual case: traffic counted but not flushed when the daemon dies.
                var notYet = HistoryReader.Differences(atKill, flushed);
                Assert.True(notYet.Count == 0, $"at the kill the history should hold exactly the flushed traffic:\n{string.Join('\n', notYet)}");
                output.WriteLine($"killed with SIGKILL {(killedAt - boundary).TotalSeconds:F2} s after the flush at {boundary:HH:mm:ss}; history then: {atKill}; unflushed: {truth.Total.Bytes - flushed.Total.Bytes} B");
            }
            else
            {
                // A slow machine: the traffic outlasted a flush, so part of it may be written. The
                // end state below must still be exact (nothing lost, nothing doubled).
                output.WriteLine($"the traffic took until {killedAt:HH:mm:ss.fff}, past the flush at {boundary + FlushInterval:HH:mm:ss.fff}; history at the kill: {atKill}");
            }

            // Traffic while no daemon runs: the attached programs count into the pinned maps.
            Record(net, plan, truth);
            daemon = DaemonProcess.Start(net, extraArgs: flags); // same pins, same database
            Record(net, plan, truth);
            AssertHistory("kill -9, traffic while down, restart, traffic", history, truth, daemon, sw);

            // 3. The database unwritable for two flushes, then writable again.
            WaitForFlushAt(daemon);
            var failuresBefore = Metric(daemon, "sia_exporter_sqlite_flush_failures_total");
            var written = truth.Copy();
            store.SetImmutable(true);
            output.WriteLine($"read-only from {DateTimeOffset.UtcNow:HH:mm:ss.fff}:\n{store.Attributes()}");
            Record(net, plan, truth);
            var deadline = DateTime.UtcNow + FlushInterval * 2 + FlushWithin;
            double failures;
            while ((failures = Metric(daemon, "sia_exporter_sqlite_flush_failures_total")) < failuresBefore + 2 && DateTime.UtcNow < deadline)
                Thread.Sleep(250);
            var whileReadOnly = history.Read();
            store.SetImmutable(false);
            output.WriteLine($"writable again at {DateTimeOffset.UtcNow:HH:mm:ss.fff}: sia_exporter_sqlite_flush_failures_total {failuresBefore} -> {failures}; history while read-only: {whileReadOnly}");
            Assert.True(failures >= failuresBefore + 2, $"fewer than two failed flushes while read-only ({failuresBefore} -> {failures}):\n{Tail(daemon.Log, 20)}");
            var leaked = HistoryReader.Differences(whileReadOnly, written);
            Assert.True(leaked.Count == 0, $"the read-only database changed:\n{string.Join('\n', leaked)}");
            AssertHistory("two failed flushes, then writable again", history, truth, daemon, sw);
            Assert.Contains("cannot be written", daemon.Log, StringComparison.Ordinal);
            Assert.Contains("is writable again", daemon.Log, StringComparison.Ordinal);

            // 4. top and export on the live database while the daemon keeps flushing: twice, with a
            // flush of the daemon in between.
            for (var round = 1; round <= 2; round++)
            {
                if (round == 2) WaitForFlushAt(daemon);
                AssertTopAndExport(net, store.DatabasePath, truth, round);
            }
            Assert.False(daemon.HasExited, "the daemon exited");
            output.WriteLine($"--- daemon log (last lines) ---\n{Tail(daemon.Log, 12)}\n--- before the kill ---\n{Tail(log, 6)}");
            output.WriteLine($"done after {sw.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            daemon?.Dispose();
            store.Dispose();
            try { Directory.Delete(DaemonProcess.StateDirectoryOf(net), recursive: true); } catch (IOException) { }
        }
    }

    [KernelFact]
    public void Sigterm_stops_within_5_s_with_a_final_flush_and_leaves_no_program_attached()
    {
        var sw = Stopwatch.StartNew();
        using var net = TestNetwork.Create(offloads: true);
        var state = DaemonProcess.StateDirectoryOf(net);
        var history = new HistoryReader(Path.Combine(state, "traffic.db"));
        var plan = TrafficPlan.Standard(net, scaleKb: 100);
        var truth = new TruthTotals();
        try
        {
            using var daemon = DaemonProcess.Start(net, extraArgs: ["--flush-interval", "5s", "--log-interval", "2s"]);
            Record(net, plan, truth);
            AssertHistory("periodic flush", history, truth, daemon, sw);

            // Traffic right after a flush, SIGTERM before the next one: only the final flush can write it.
            // On a loaded machine the traffic can outlast the interval; then that run is flushed
            // periodically and the partial interval is tried again after the next flush.
            DateTimeOffset boundary, stopAt;
            TruthTotals flushed;
            var attempts = 0;
            do
            {
                boundary = WaitForFlushAt(daemon);
                flushed = truth.Copy();
                Record(net, plan, truth);
                stopAt = DateTimeOffset.UtcNow;
            }
            while (stopAt >= boundary + FlushInterval && ++attempts < 3);
            var before = history.Read();
            Assert.True(stopAt < boundary + FlushInterval, $"the traffic took until {stopAt:HH:mm:ss.fff}, past the next flush, {attempts} times: not a partial interval");
            var notYet = HistoryReader.Differences(before, flushed);
            Assert.True(notYet.Count == 0, $"before SIGTERM the history should hold only the flushed traffic:\n{string.Join('\n', notYet)}");

            var stop = Stopwatch.StartNew();
            var code = daemon.Terminate(TimeSpan.FromSeconds(5));
            stop.Stop();
            output.WriteLine($"SIGTERM {(stopAt - boundary).TotalSeconds:F2} s after the flush at {boundary:HH:mm:ss}: exit {code} after {stop.ElapsedMilliseconds} ms; unflushed then: {truth.Total.Bytes - flushed.Total.Bytes} B");
            Assert.Equal(0, code);
            Assert.True(stop.Elapsed < TimeSpan.FromSeconds(5), $"exit took {stop.Elapsed}");

            var after = history.Read();
            var diffs = HistoryReader.Differences(after, truth);
            Assert.True(diffs.Count == 0, $"after SIGTERM (final flush) vs truth ({truth}):\n{string.Join('\n', diffs)}\n--- daemon log ---\n{Tail(daemon.Log, 20)}");
            Assert.DoesNotContain("Final SQLite flush failed", daemon.Log, StringComparison.Ordinal);
            output.WriteLine($"history after the final flush: {after}; truth {truth}");

            // Nothing on the hooks (bpftool, and TCX by BPF_PROG_QUERY), no link left pinned (a pinned
            // link would keep its program attached); the counter maps stay pinned for the next start.
            var census = CollectorUnderTest.Census(net);
            var pins = Directory.Exists(net.PinDirectory)
                ? Directory.GetFileSystemEntries(net.PinDirectory, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(net.PinDirectory, p)).Order().ToList()
                : [];
            output.WriteLine($"hooks after exit: {census}; pins left: {string.Join(", ", pins)}");
            Assert.True(census.IngressPrograms + census.EgressPrograms == 0, $"programs still attached after SIGTERM: {census}");
            Assert.True(!pins.Any(p => p.StartsWith("links/", StringComparison.Ordinal)), $"links still pinned after SIGTERM: {string.Join(", ", pins)}");
            output.WriteLine($"--- daemon log (last lines) ---\n{Tail(daemon.Log, 8)}");
            output.WriteLine($"done after {sw.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            try { Directory.Delete(state, recursive: true); } catch (IOException) { }
        }
    }

    private void Record(TestNetwork net, TrafficPlan plan, TruthTotals truth)
    {
        var run = TruthRun.Record(net, plan);
        truth.Add(run.Truth);
        run.DeletePcap();
    }

    private void AssertHistory(string phase, HistoryReader history, TruthTotals truth, DaemonProcess daemon, Stopwatch sw)
    {
        var (view, diffs) = history.WaitUntilEqual(truth, FlushWithin);
        output.WriteLine($"[{sw.Elapsed.TotalSeconds,5:F1} s] {phase}: truth {truth}; sqlite {view}; {diffs.Count} differences");
        Assert.True(diffs.Count == 0, $"{phase}: SQLite vs capture truth:\n{string.Join('\n', diffs)}\n--- daemon log ---\n{Tail(daemon.Log, 25)}");
    }

    /// <summary>Waits for the next flush boundary and until that flush committed (its time on
    /// /metrics); returns the boundary. The next flush is <see cref="FlushInterval"/> later.</summary>
    private static DateTimeOffset WaitForFlushAt(DaemonProcess daemon)
    {
        var boundary = HistoryFlushService.NextBoundary(DateTimeOffset.UtcNow, FlushInterval);
        var wait = boundary - DateTimeOffset.UtcNow;
        if (wait > TimeSpan.Zero) Thread.Sleep(wait);
        var deadline = DateTime.UtcNow + FlushWithin;
        while (Metric(daemon, "sia_exporter_sqlite_last_success_timestamp_seconds") < boundary.ToUnixTimeMilliseconds() / 1000.0)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no flush committed after {boundary:HH:mm:ss}:\n{Tail(daemon.Log, 20)}");
            Thread.Sleep(50);
        }
        return boundary;
    }

    private static double Metric(DaemonProcess daemon, string name) =>
        daemon.Scrape().Where(s => s.Name == name).Select(s => s.Value).DefaultIfEmpty(double.NaN).First();

    /// <summary>`collector top` and `collector export --format csv|json` against the live database:
    /// their numbers are the truth, per client and seed column.</summary>
    private void AssertTopAndExport(TestNetwork net, string database, TruthTotals truth, int round)
    {
        var want = new Dictionary<(string Client, string Column), ulong>();
        foreach (var (column, cls, dir) in HistorySchema.SeedColumns)
            foreach (var (key, t) in truth.Counted.Where(kv => kv.Key.Class == cls && kv.Key.Direction == dir))
                want[(key.Client.ToString(), column)] = t.Bytes;
        var clients = want.Keys.Select(k => k.Client).Distinct().ToList();
        var columns = HistorySchema.SeedColumns.Select(c => c.Column).ToArray();

        // export --format csv: header, then one line per bucket and client.
        var csv = Cli(net, database, "export", "--format", "csv");
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(string.Join(',', ["timestamp", "client_ip", .. columns, "resolution"]), lines[0]);
        var fromCsv = new Dictionary<(string, string), ulong>();
        foreach (var line in lines.Skip(1))
        {
            var cells = line.Split(',');
            Assert.Equal(0, long.Parse(cells[0], CultureInfo.InvariantCulture) % 300);
            for (var i = 0; i < columns.Length; i++)
                fromCsv[(cells[1], columns[i])] = fromCsv.GetValueOrDefault((cells[1], columns[i])) + ulong.Parse(cells[i + 2], CultureInfo.InvariantCulture);
        }
        AssertSame($"export csv (round {round})", want, fromCsv);

        // export --format json: one array of objects named like the columns.
        var fromJson = new Dictionary<(string, string), ulong>();
        using (var doc = JsonDocument.Parse(Cli(net, database, "export", "--format", "json")))
        {
            Assert.Equal(lines.Length - 1, doc.RootElement.GetArrayLength());
            foreach (var row in doc.RootElement.EnumerateArray())
            {
                var client = row.GetProperty("client_ip").GetString()!;
                Assert.Equal(0, row.GetProperty("timestamp").GetInt64() % 300);
                foreach (var c in columns)
                    fromJson[(client, c)] = fromJson.GetValueOrDefault((client, c)) + row.GetProperty(c).GetUInt64();
            }
        }
        AssertSame($"export json (round {round})", want, fromJson);

        // top: one row per client, the six columns and the total in the tool's units, largest first.
        var top = Cli(net, database, "top", "--since", "1h", "--limit", "20");
        var rows = top.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(2).Select(l => TopCells().Split(l.Trim())).ToList();
        var expected = clients
            .Select(c => (Client: c, Cells: columns.Select(col => want.GetValueOrDefault((c, col))).ToArray()))
            .OrderByDescending(r => r.Cells.Aggregate(0UL, (a, b) => a + b)).ThenBy(r => r.Client, StringComparer.Ordinal)
            .Select(r => (string[])[r.Client, .. r.Cells.Select(b => TopCommand.HumanBytes((long)b)), TopCommand.HumanBytes((long)r.Cells.Aggregate(0UL, (a, b) => a + b))])
            .ToList();
        Assert.True(expected.Count == rows.Count && expected.Zip(rows).All(p => p.First.SequenceEqual(p.Second)),
            $"collector top (round {round}):\n{top}\nexpected rows:\n{string.Join('\n', expected.Select(r => string.Join(" | ", r)))}");
        if (round == 1) output.WriteLine($"collector top / export csv / export json agree with the truth ({lines.Length - 1} rows):\n{top}");
    }

    private void AssertSame(string what, Dictionary<(string Client, string Column), ulong> want, Dictionary<(string, string), ulong> got)
    {
        var diffs = want.Keys.Union(got.Keys).Where(k => want.GetValueOrDefault(k) != got.GetValueOrDefault(k))
            .Select(k => $"{k.Item1} {k.Item2}: truth {want.GetValueOrDefault(k)} B, {what} {got.GetValueOrDefault(k)} B").ToList();
        Assert.True(diffs.Count == 0, $"{what} vs truth:\n{string.Join('\n', diffs)}");
    }

    /// <summary>Runs `collector COMMAND ARGS --sqlite-path DB` with the test's empty settings file; its stdout.</summary>
    private static string Cli(TestNetwork net, string database, params string[] args)
    {
        var r = Shell.TryWithTimeout(TimeSpan.FromSeconds(30), DaemonProcess.BinaryPath,
            [.. args, "--config", DaemonProcess.ConfigFileOf(net), "--sqlite-path", database]);
        Assert.True(r.Ok, $"collector {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr}");
        Assert.True(r.Stderr.Trim().Length == 0, $"collector {string.Join(' ', args)} wrote to stderr: {r.Stderr}");
        return r.Stdout;
    }

    [GeneratedRegex(@"\s{2,}")]
    private static partial Regex TopCells();

    private static string Tail(string log, int n) => string.Join('\n', log.Split('\n').TakeLast(n));
}
