using System.Globalization;
using Microsoft.Data.Sqlite;
using SiaExporter.Billing;
using SiaExporter.Hosting;

namespace SiaExporter.Storage;

/// <summary>
/// <c>collector report [--month 2026-11] [--limit 5]</c>: one billing month (from BILLING_DAY;
/// default the current one). Per class and direction, and over every class: the bytes used, the
/// projection to the end of the month at the same average rate, and the quota (QUOTA_UP,
/// QUOTA_DOWN) for the whole; then the top clients of each class and direction. Host totals come
/// from the host tables, clients from the client tables, both across the tiers (<see cref="TierPlan"/>).
/// </summary>
public static class ReportCommand
{
    public static int Run(string databasePath, IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr,
        TimeProvider? time = null, HistoryView? view = null, BillingOptions? quota = null)
    {
        view ??= HistoryView.Default;
        quota ??= new BillingOptions();
        try
        {
            var values = HistoryArguments.Parse(args, "month", "limit");
            var now = (time ?? TimeProvider.System).GetUtcNow();
            var limit = 5;
            if (values.TryGetValue("limit", out var l) &&
                (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
                throw new UsageException($"--limit '{l}' is not a positive whole number");
            BillingPeriod period;
            if (values.TryGetValue("month", out var m))
            {
                try
                {
                    var (year, month) = BillingPeriod.ParseMonth(m);
                    period = BillingPeriod.Month(year, month, view.BillingDay);
                }
                catch (FormatException e)
                {
                    throw new UsageException("--month " + e.Message);
                }
            }
            else
            {
                period = BillingPeriod.Holding(PeriodKind.Month, now, view.BillingDay);
            }

            using var history = HistoryReader.OpenReadOnly(databasePath);
            var plan = TierPlan.For(view.Tiers, period.Start.ToUnixTimeSeconds(), period.End.ToUnixTimeSeconds(), now);
            var (clients, totals) = history.ClassBytes(plan);
            var elapsed = period.ElapsedAt(now);
            stdout.WriteLine($"Billing {period} (BILLING_DAY={view.BillingDay}), {elapsed.TotalDays:0.0} of {period.Length.TotalDays:0} days elapsed, resolution {TierPlan.Label(plan)} ({databasePath})");

            string[] header = ["CLASS", "DIRECTION", "USED", "PROJECTED", "QUOTA"];
            var rows = new List<string[]>();
            ulong allUp = 0, allDown = 0;
            foreach (var t in totals)
            {
                allUp += (ulong)t.UpBytes;
                allDown += (ulong)t.DownBytes;
            }
            rows.Add(Row("all", "up", allUp, period, now, quota.QuotaUpBytes));
            rows.Add(Row("all", "down", allDown, period, now, quota.QuotaDownBytes));
            foreach (var t in totals)
            {
                rows.Add(Row($"{t.Port}/{t.Proto}", "up", (ulong)t.UpBytes, period, now, null));
                rows.Add(Row($"{t.Port}/{t.Proto}", "down", (ulong)t.DownBytes, period, now, null));
            }
            var widths = header.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
            stdout.WriteLine(TopCommand.Line(header, widths));
            foreach (var row in rows) stdout.WriteLine(TopCommand.Line(row, widths));

            foreach (var t in totals)
                foreach (var up in new[] { true, false })
                {
                    var top = clients.Where(c => c.Port == t.Port && c.Proto == t.Proto)
                        .Select(c => (c.Client, Bytes: up ? c.UpBytes : c.DownBytes))
                        .Where(c => c.Bytes > 0)
                        .OrderByDescending(c => c.Bytes).ThenBy(c => c.Client, StringComparer.Ordinal)
                        .Take(limit).ToList();
                    if (top.Count == 0) continue;
                    stdout.WriteLine();
                    stdout.WriteLine($"Top clients {t.Port}/{t.Proto} {(up ? "up" : "down")}:");
                    var width = top.Max(c => c.Client.Length);
                    foreach (var (client, bytes) in top)
                        stdout.WriteLine($"  {client.PadRight(width)}  {TopCommand.HumanBytes(bytes),9}");
                }
            return 0;
        }
        catch (Exception e) when (e is UsageException or OperatorException or SqliteException)
        {
            return HistoryArguments.Fail(stderr, "report", e);
        }
    }

    private static string[] Row(string @class, string direction, ulong used, BillingPeriod period, DateTimeOffset now, long? quota) =>
    [
        @class, direction, TopCommand.HumanBytes((long)used), TopCommand.HumanBytes((long)period.Project(used, now)),
        quota is { } q ? TopCommand.HumanBytes(q) : "-",
    ];
}
