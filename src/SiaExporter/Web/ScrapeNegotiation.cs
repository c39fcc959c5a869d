using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Prometheus;

namespace SiaExporter.Web;

/// <summary>
/// What a scrape asks for: the exposition format from Accept (OpenMetrics text 1.0.0 when the
/// client prefers it, as Prometheus does; else the Prometheus text format 0.0.4) and gzip from
/// Accept-Encoding.
/// </summary>
public static class ScrapeNegotiation
{
    public const string PrometheusTextType = "text/plain; version=0.0.4; charset=utf-8";
    public const string OpenMetricsType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// <summary>OpenMetrics when Accept offers application/openmetrics-text (version 1.0.0 or none)
    /// with a quality above zero and at least that of text/plain; otherwise the text format.</summary>
    public static ExpositionFormat FormatFor(StringValues accept)
    {
        if (!MediaTypeHeaderValue.TryParseList(accept, out var ranges)) return ExpositionFormat.PrometheusText;
        double openMetrics = 0, text = 0;
        foreach (var range in ranges)
        {
            var q = range.Quality ?? 1.0;
            if (range.MediaType.Equals("application/openmetrics-text", StringComparison.OrdinalIgnoreCase))
            {
                var version = range.Parameters.FirstOrDefault(p => p.Name.Equals("version", StringComparison.OrdinalIgnoreCase))?.Value;
                if (version is null || version.Value.Equals("1.0.0", StringComparison.Ordinal)) openMetrics = Math.Max(openMetrics, q);
            }
            else if (range.MediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase))
            {
                text = Math.Max(text, q);
            }
        }
        return openMetrics > 0 && openMetrics >= text ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText;
    }

    /// <summary>gzip when Accept-Encoding lists it (or *) with a quality above zero.</summary>
    public static bool WantsGzip(StringValues acceptEncoding)
    {
        if (!StringWithQualityHeaderValue.TryParseList(acceptEncoding, out var codings)) return false;
        var gzip = codings.FirstOrDefault(c => c.Value.Equals("gzip", StringComparison.OrdinalIgnoreCase))
            ?? codings.FirstOrDefault(c => c.Value.Equals("*", StringComparison.Ordinal));
        return gzip is not null && (gzip.Quality ?? 1.0) > 0;
    }

    public static string ContentType(ExpositionFormat format) =>
        format == ExpositionFormat.OpenMetricsText ? OpenMetricsType : PrometheusTextType;
}
