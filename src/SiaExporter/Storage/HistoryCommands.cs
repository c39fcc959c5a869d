using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace SiaExporter.Storage;

/// <summary>A bad command-line argument: one line for the operator, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Shared by <c>collector top</c> and <c>collector export</c>: flags and times (the rows come from <see cref="HistoryReader"/>).</summary>
public static partial class HistoryArguments
{
    /// <summary>Parses --name value / --name=value pairs; every flag must be in <paramref name="known"/>.</summary>
    public static Dictionary<string, string> Parse(IReadOnlyList<string> args, params string[] known)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
                throw new UsageException($"unexpected argument '{arg}'");
            string name, value;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                name = arg[2..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                name = arg[2..];
                if (!known.Contains(name)) throw new UsageException($"unknown option --{name} (known: {string.Join(", ", known.Select(k => "--" + k))})");
                if (i + 1 >= args.Count) throw new UsageException($"--{name} needs a value");
                value = args[++i];
            }
            if (!known.Contains(name)) throw new UsageException($"unknown option --{name} (known: {string.Join(", ", known.Select(k => "--" + k))})");
            values[name] = value;
        }
        return values;
    }

    /// <summary>A point in time: a duration back from now (90s, 30m, 1h, 7d, 2w), Unix seconds,
    /// or an RFC 3339 time (UTC when no offset is given).</summary>
    public static DateTimeOffset ParseTime(string option, string text, DateTimeOffset now)
    {
        var m = DurationPattern().Match(text);
        if (m.Success && long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            var unit = m.Groups[2].Value switch
            {
                "s" => TimeSpan.FromSeconds(1),
                "m" => TimeSpan.FromMinutes(1),
                "h" => TimeSpan.FromHours(1),
                "d" => TimeSpan.FromDays(1),
                _ => TimeSpan.FromDays(7),
            };
            if (n <= 36_500L * 86_400 / (long)unit.TotalSeconds) return now - unit * n;
        }
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var unix) && unix <= 253_402_300_799)
        {
            return DateTimeOffset.FromUnixTimeSeconds(unix);
        }
        else if (text.Length >= 10 && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture,
                     DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
        {
            return time;
        }
        throw new UsageException($"--{option} '{text}' is not a duration (1h, 7d), an RFC 3339 time (2025-01-31T12:00:00Z) or Unix seconds");
    }

    [GeneratedRegex("^([0-9]{1,12})([smhdw])$")]
    private static partial Regex DurationPattern();

    internal static int Fail(TextWriter stderr, string command, Exception e)
    {
        if (e is UsageException)
        {
            stderr.WriteLine($"collector {command}: {e.Message}");
            return 2;
        }
        stderr.WriteLine($"collector {command}: error: {e.Message}");
        return 1;
    }
}

/// <summary>What the history commands read besides the file: the tiers' retention (which tier serves
/// which part of a range) and the billing day (<c>--period month</c>, <c>report</c>).</summary>
public sealed record HistoryView(IReadOnlyList<HistoryTier> Tiers, int BillingDay)
{
    public static HistoryView Default { get; } = From(new Hosting.DatabaseOptions(), new Hosting.BillingOptions());

    public static HistoryView From(Hosting.DatabaseOptions database, Hosting.BillingOptions billing) =>
        new(HistoryTiers.From(database), billing.Day);
}

/// <summary>
/// <c>collector top [--since 1h | --period month|day|hour [--at T]] [--limit 20]</c>: the clients
/// with the most bytes in the history, as an aligned table: up and down per class, and the total.
/// The range is read across the tiers (<see cref="TierPlan"/>): <c>traffic</c> itself in the
/// 5-minute window (so history of the original collector counts too), hourly and daily rows
/// before it; the caption says the coarsest resolution read. --since selects the buckets starting
/// at or after the start of the bucket holding that time; --period the billing period (month from
/// BILLING_DAY, UTC day, hour) holding --at (default now).
/// </summary>
public static class TopCommand
{
    public static int Run(string databasePath, IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, TimeProvider? time = null, HistoryView? view = null)
    {
        view ??= HistoryView.Default;
        try
        {
            var values = HistoryArguments.Parse(args, "since", "limit", "period", "at");
            var now = (time ?? TimeProvider.System).GetUtcNow();
            var limit = 20;
            if (values.TryGetValue("limit", out var l) &&
                (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
                throw new UsageException($"--limit '{l}' is not a positive whole number");
            long from, until;
            string range;
            if (values.TryGetValue("period", out var periodText))
            {
                if (values.ContainsKey("since")) throw new UsageException("--since and --period do not go together");
                Billing.PeriodKind kind;
                try
                {
                    kind = Billing.BillingPeriod.ParseKind(periodText);
                }
                catch (FormatException e)
                {
                    throw new UsageException("--period " + e.Message);
                }
                var at = values.TryGetValue("at", out var atText) ? HistoryArguments.ParseTime("at", atText, now) : now;
                var period = Billing.BillingPeriod.Holding(kind, at, view.BillingDay);
                (from, until) = (period.Start.ToUnixTimeSeconds(), period.End.ToUnixTimeSeconds());
                range = $"in the {period}";
            }
            else
            {
                if (values.ContainsKey("at")) throw new UsageException("--at goes with --period");
                var since = HistoryArguments.ParseTime("since", values.GetValueOrDefault("since", "1h"), now);
                (from, until) = (Buckets.Of(since), long.MaxValue);
                range = $"since {Buckets.StartOf(from):yyyy-MM-dd HH:mm} UTC";
            }
            using var history = HistoryReader.OpenReadOnly(databasePath);
            var plan = TierPlan.For(view.Tiers, from, until, now);
            var seed = HistorySchema.SeedColumns;
            var rows = history.TopClients(plan, limit)
                .Select(c => (string[])[c.Client, .. c.SeedBytes.Select(HumanBytes), HumanBytes(c.Total)])
                .ToList();
            string[] header = ["CLIENT", .. seed.Select(c => $"{c.Class} {(c.Direction == Counters.Direction.Up ? "UP" : "DOWN")}"), "TOTAL"];
            stdout.WriteLine($"Top {rows.Count} clients {range}, resolution {TierPlan.Label(plan)} ({databasePath})");
            var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
            stdout.WriteLine(Line(header, widths));
            foreach (var row in rows) stdout.WriteLine(Line(row, widths));
            return 0;
        }
        catch (Exception e) when (e is UsageException or OperatorException or SqliteException)
        {
            return HistoryArguments.Fail(stderr, "top", e);
        }
    }

    /// <summary>Client left-aligned, numbers right-aligned, two spaces between columns.</summary>
    internal static string Line(string[] cells, int[] widths) =>
        string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd();

    /// <summary>Decimal units, as network traffic is counted: 999 B, 1.5 kB, 12.0 MB, 3.2 GB, 1.1 TB.</summary>
    public static string HumanBytes(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
        if (bytes < 1000) return $"{bytes} B";
        double value = bytes;
        var unit = 0;
        while (value >= 999.95 && unit < units.Length - 1)
        {
            value /= 1000;
            unit++;
        }
        return value.ToString("F1", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}

/// <summary>
/// <c>collector export --format csv|json [--since T] [--until T]</c>: rows in the <c>traffic</c>
/// table's shape in (timestamp, client_ip) order, read across the tiers (<see cref="TierPlan"/>):
/// 5-minute rows in the raw window, hourly and daily rows before it. Fields, in this order:
/// timestamp (bucket start, Unix seconds), client_ip, up_9981, down_9981, up_9984_tcp,
/// down_9984_tcp, up_9984_udp, down_9984_udp, resolution (the row's bucket: 5m, 1h or 1d). CSV has
/// a header line; JSON is one array of objects. --since takes buckets from the one holding that
/// time; --until excludes buckets starting at or after it. Default: the whole history, csv.
/// </summary>
public static class ExportCommand
{
    public static int Run(string databasePath, IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, TimeProvider? time = null, HistoryView? view = null)
    {
        view ??= HistoryView.Default;
        try
        {
            var values = HistoryArguments.Parse(args, "format", "since", "until");
            var now = (time ?? TimeProvider.System).GetUtcNow();
            var format = values.GetValueOrDefault("format", "csv");
            if (format is not ("csv" or "json")) throw new UsageException($"--format '{format}' is not csv or json");
            var since = values.TryGetValue("since", out var s) ? Buckets.Of(HistoryArguments.ParseTime("since", s, now)) : long.MinValue;
            var until = values.TryGetValue("until", out var u) ? HistoryArguments.ParseTime("until", u, now).ToUnixTimeSeconds() : long.MaxValue;
            if (until <= since) throw new UsageException("--until is not after --since");
            using var history = HistoryReader.OpenReadOnly(databasePath);
            var seed = HistorySchema.SeedColumns;
            var rows = history.SeedRows(TierPlan.For(view.Tiers, since, until, now));
            string[] fields = ["timestamp", "client_ip", .. seed.Select(c => c.Column), "resolution"];
            if (format == "csv")
            {
                stdout.WriteLine(string.Join(',', fields));
                var cells = new string[fields.Length];
                foreach (var row in rows)
                {
                    cells[0] = row.Timestamp.ToString(CultureInfo.InvariantCulture);
                    cells[1] = row.Client;
                    for (var i = 2; i < fields.Length - 1; i++) cells[i] = row.Bytes[i - 2].ToString(CultureInfo.InvariantCulture);
                    cells[^1] = row.Resolution;
                    stdout.WriteLine(string.Join(',', cells));
                }
            }
            else
            {
                using var buffer = new MemoryStream();
                using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
                {
                    json.WriteStartArray();
                    var written = 0;
                    foreach (var row in rows)
                    {
                        json.WriteStartObject();
                        json.WriteNumber(fields[0], row.Timestamp);
                        json.WriteString(fields[1], row.Client);
                        for (var i = 2; i < fields.Length - 1; i++) json.WriteNumber(fields[i], row.Bytes[i - 2]);
                        json.WriteString(fields[^1], row.Resolution);
                        json.WriteEndObject();
                        if (++written % 1000 == 0)
                        {
                            json.Flush();
                            stdout.Write(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
                            buffer.SetLength(0);
                        }
                    }
                    json.WriteEndArray();
                }
                stdout.Write(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
                stdout.WriteLine();
            }
            return 0;
        }
        catch (Exception e) when (e is UsageException or OperatorException or SqliteException)
        {
            return HistoryArguments.Fail(stderr, "export", e);
        }
    }
}
