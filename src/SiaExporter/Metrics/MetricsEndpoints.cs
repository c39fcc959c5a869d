using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;

namespace SiaExporter.Metrics;

/// <summary>Routes for the host: <c>app.MapSiaMetrics(exporter)</c> serves /metrics and /.</summary>
public static class MetricsEndpoints
{
    /// <summary>/metrics from the exporter's own registry (prometheus-net's handler: text format,
    /// OpenMetrics when asked for). Returns the route builder so auth can be required on it.</summary>
    public static IEndpointConventionBuilder MapSiaMetrics(this IEndpointRouteBuilder endpoints, MetricsExporter exporter, string pattern = "/metrics") =>
        endpoints.MapMetrics(settings => settings.Registry = exporter.Registry, pattern);

    /// <summary>The small HTML page: the busiest clients now and a link to /metrics.</summary>
    public static IEndpointConventionBuilder MapSiaIndexPage(this IEndpointRouteBuilder endpoints, IndexPage page, string pattern = "/") =>
        endpoints.MapGet(pattern, () => Results.Content(page.Render(), "text/html; charset=utf-8"));
}
