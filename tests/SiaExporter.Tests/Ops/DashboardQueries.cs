using System.Text.Json;
using System.Text.RegularExpressions;

namespace SiaExporter.Tests.Ops;

/// <summary>Every PromQL expression of grafana/dashboards/sia-traffic.json, with Grafana's
/// variables replaced by concrete values so Prometheus itself can parse and run it.</summary>
internal static partial class DashboardQueries
{
    public static string DashboardPath => Path.Combine(OpsTools.RepoRoot, "grafana", "dashboards", "sia-traffic.json");

    /// <summary>Grafana's built-in interval variables, and the value every dashboard variable
    /// ($instance, $hostname, $client, ...) takes: "all".</summary>
    private static readonly Dictionary<string, string> Builtins = new()
    {
        ["__rate_interval"] = "1m",
        ["__interval"] = "15s",
        ["__range"] = "1h",
        ["__range_s"] = "3600",
        ["__range_ms"] = "3600000",
        ["__interval_ms"] = "15000",
    };

    [GeneratedRegex(@"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)")]
    private static partial Regex VariableRx();

    [GeneratedRegex(@"^\s*label_values\((?:(?<sel>.+),\s*)?(?<label>\w+)\s*\)\s*$", RegexOptions.Singleline)]
    private static partial Regex LabelValuesRx();

    [GeneratedRegex(@"^\s*query_result\((?<q>.+)\)\s*$", RegexOptions.Singleline)]
    private static partial Regex QueryResultRx();

    public static string Substitute(string expr) =>
        VariableRx().Replace(expr, m =>
        {
            var name = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
            return Builtins.TryGetValue(name, out var v) ? v : ".*";
        });

    /// <summary>(where in the dashboard, PromQL after substitution, the raw text).</summary>
    public static List<(string Where, string PromQl, string Raw)> Load(JsonDocument doc)
    {
        var list = new List<(string, string, string)>();
        void Panels(JsonElement panels)
        {
            foreach (var p in panels.EnumerateArray())
            {
                var title = p.TryGetProperty("title", out var t) ? t.GetString() : "?";
                if (p.TryGetProperty("targets", out var targets))
                    foreach (var target in targets.EnumerateArray())
                        if (target.TryGetProperty("expr", out var e) && e.GetString() is { Length: > 0 } expr)
                            list.Add(($"panel \"{title}\" ref {target.GetProperty("refId").GetString()}", Substitute(expr), expr));
                if (p.TryGetProperty("panels", out var nested)) Panels(nested);
            }
        }
        Panels(doc.RootElement.GetProperty("panels"));

        foreach (var v in doc.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (v.GetProperty("type").GetString() != "query") continue;
            var q = v.TryGetProperty("definition", out var d) && d.GetString() is { Length: > 0 } def ? def
                : v.GetProperty("query") is { ValueKind: JsonValueKind.String } s ? s.GetString()!
                : v.GetProperty("query").GetProperty("query").GetString()!;
            list.Add(($"variable ${v.GetProperty("name").GetString()}", Substitute(ToPromQl(q)), q));
        }
        return list;
    }

    /// <summary>Grafana's variable functions as the PromQL that returns the same label values.</summary>
    public static string ToPromQl(string variableQuery)
    {
        var lv = LabelValuesRx().Match(variableQuery);
        if (lv.Success)
        {
            var label = lv.Groups["label"].Value;
            var sel = lv.Groups["sel"].Success ? lv.Groups["sel"].Value : $"{{{label}=~\".+\"}}";
            return $"count by ({label}) ({sel})";
        }
        var qr = QueryResultRx().Match(variableQuery);
        return qr.Success ? qr.Groups["q"].Value : variableQuery;
    }

    [GeneratedRegex(@"\b(sia_[a-z0-9_]+|sia:[a-z0-9_:]+|up)\b(?!\s*\()")]
    private static partial Regex MetricRx();

    /// <summary>Metric names an expression reads (sia_*, recording rules sia:*, up).</summary>
    public static IEnumerable<string> Metrics(string promQl) =>
        MetricRx().Matches(promQl).Select(m => m.Value).Distinct();
}
