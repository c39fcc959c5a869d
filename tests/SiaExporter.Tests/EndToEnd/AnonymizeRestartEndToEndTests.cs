using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Xunit;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>ANONYMIZE off → on → off → on across restarts of the real daemon over one database and
/// its pinned counters: each time the sum over clients equals the host totals and the capture truth
/// (the repro doubled the history when it was turned on).</summary>
public sealed partial class HistoryEndToEndTests
{
    [KernelFact]
    public void Anonymize_on_off_on_across_restarts_keeps_the_sum_over_clients_equal_to_the_host_totals()
    {
        var sw = Stopwatch.StartNew();
        using var net = TestNetwork.Create(offloads: true);
        var database = Path.Combine(DaemonProcess.StateDirectoryOf(net), "traffic.db");
        var plan = TrafficPlan.Standard(net, scaleKb: 50);
        var truth = new TruthTotals();
        try
        {
            foreach (var (mode, traffic) in new[] { ("", true), ("/24,/48", false), ("/24,/48", true), ("", true), ("/24,/48", true) })
            {
                string[] args = ["--flush-interval", "5s", "--log-interval", "2s", .. (mode.Length > 0 ? ["--anonymize", mode] : Array.Empty<string>())];
                using (var daemon = DaemonProcess.Start(net, extraArgs: args))
                {
                    if (traffic) Record(net, plan, truth);
                    WaitForFlushAt(daemon);
                    Assert.Equal(0, daemon.Terminate(TimeSpan.FromSeconds(5)));
                    if (mode.Length > 0 || traffic) output.WriteLine($"[{sw.Elapsed.TotalSeconds,5:F1} s] ANONYMIZE='{mode}': {Tail(daemon.Log, 3)}");
                }
                using var c = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = """
                    SELECT (SELECT coalesce(sum(up_bytes + down_bytes), 0) FROM traffic_detail),
                           (SELECT coalesce(sum(up_bytes + down_bytes), 0) FROM traffic_host),
                           (SELECT coalesce(sum(up_bytes + down_bytes), 0) FROM traffic_daily)
                    """;
                using var r = cmd.ExecuteReader();
                r.Read();
                var (clients, host, daily) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2));
                output.WriteLine($"ANONYMIZE='{mode}', traffic {traffic}: clients {clients} B, host {host} B, daily {daily} B, truth {truth.Total.Bytes} B");
                Assert.True(clients == host && host == daily, $"ANONYMIZE='{mode}': sum over clients {clients} B, host totals {host} B, daily tier {daily} B");
                Assert.Equal((long)truth.Total.Bytes, host);
            }
        }
        finally
        {
            try { Directory.Delete(DaemonProcess.StateDirectoryOf(net), recursive: true); } catch (IOException) { }
        }
    }
}
