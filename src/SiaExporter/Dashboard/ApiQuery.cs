using System.Globalization;
using SiaExporter.Counters;
using SiaExporter.Storage;

namespace SiaExporter.Dashboard;

/// <summary>A query the API refuses: answered 400 with <see cref="Exception.Message"/>.</summary>
public sealed class BadQueryException(string message) : Exception(message);

/// <summary>A validated time range: steps of <see cref="Step"/> seconds from <see cref="From"/>
/// to before <see cref="To"/>, both multiples of the step (Unix seconds, UTC).</summary>
public readonly record struct TimeRange(long From, long To, long Step)
{
    public int Points => (int)((To - From) / Step);
}

/// <summary>
/// The API's query parameters, checked before anything is read: Unix-second <c>from</c>/<c>to</c>
/// (default: the last 24 h), a <c>step</c> that is a multiple of 300 s (default: the smallest of
/// <see cref="Steps"/> giving at most the endpoint's number of points), at most
/// <see cref="MaxSpan"/> and <see cref="MaxPoints"/>; unknown parameters are refused too.
/// </summary>
public static class ApiQuery
{
    public static readonly long[] Steps = [300, 900, 1800, 3600, 7200, 21600, 43200, 86400];
    public static readonly TimeSpan MaxSpan = TimeSpan.FromDays(400);
    public const int MaxPoints = 2000;
    public const int MaxClients = 100;
    public const int MaxClientLength = 64;

    /// <summary>Refuses any parameter not in <paramref name="known"/>.</summary>
    public static void OnlyKnown(IQueryCollection query, params string[] known)
    {
        ArgumentNullException.ThrowIfNull(query);
        foreach (var key in query.Keys)
        {
            if (!known.Contains(key, StringComparer.Ordinal))
                throw new BadQueryException($"unknown parameter '{Trim(key)}' (known: {string.Join(", ", known)})");
            if (query[key].Count != 1)
                throw new BadQueryException($"parameter '{key}' given {query[key].Count} times");
        }
    }

    public static TimeRange Range(IQueryCollection query, DateTimeOffset now, int targetPoints)
    {
        ArgumentNullException.ThrowIfNull(query);
        var nowSeconds = now.ToUnixTimeSeconds();
        var to = Integer(query, "to", nowSeconds, 0, nowSeconds + 86400);
        var from = Integer(query, "from", to - 86400, 0, long.MaxValue);
        if (from >= to) throw new BadQueryException($"from ({from}) must be before to ({to})");
        var span = to - from;
        if (span > (long)MaxSpan.TotalSeconds)
            throw new BadQueryException($"the range is {span} s; at most {(long)MaxSpan.TotalSeconds} s ({MaxSpan.TotalDays:0} days)");
        long step;
        if (query.ContainsKey("step"))
        {
            step = Integer(query, "step", 0, Buckets.Seconds, 7 * 86400);
            if (step % Buckets.Seconds != 0) throw new BadQueryException($"step ({step}) must be a multiple of {Buckets.Seconds} s");
        }
        else
        {
            step = Steps.FirstOrDefault(s => (span + s - 1) / s <= targetPoints, Steps[^1]);
        }
        var range = new TimeRange(from - from % step, to % step == 0 ? to : to - to % step + step, step);
        if (range.Points > MaxPoints)
            throw new BadQueryException($"{range.Points} points of {step} s; at most {MaxPoints}: choose a larger step");
        return range;
    }

    public static int Limit(IQueryCollection query, int fallback) => (int)Integer(query, "limit", fallback, 1, MaxClients);

    /// <summary>An address (v4 or v6, shown in its canonical form) or "overflow".</summary>
    public static string? Client(IQueryCollection query)
    {
        if (!query.TryGetValue("client", out var values)) return null;
        var text = values.ToString();
        if (text == HistorySchema.OverflowClient) return text;
        if (text.Length > MaxClientLength || !ClientAddress.TryParse(text, out var address))
            throw new BadQueryException($"client '{Trim(text)}' is not an IP address (or '{HistorySchema.OverflowClient}')");
        return address.ToString();
    }

    public static string Format(IQueryCollection query)
    {
        var format = query.TryGetValue("format", out var values) ? values.ToString() : "csv";
        return format is "csv" or "json" ? format : throw new BadQueryException($"format '{Trim(format)}' is not csv or json");
    }

    private static long Integer(IQueryCollection query, string name, long fallback, long min, long max)
    {
        if (!query.TryGetValue(name, out var values)) return fallback;
        var text = values.ToString();
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            throw new BadQueryException($"{name} '{Trim(text)}' is not an integer");
        if (value < min || value > max)
            throw new BadQueryException($"{name} ({value}) must be from {min} to {max}");
        return value;
    }

    private static string Trim(string text) => text.Length <= 40 ? text : text[..40] + "…";
}
