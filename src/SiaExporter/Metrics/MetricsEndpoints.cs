using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace SiaExporter.Metrics;

/// <summary>Routes for the host: <c>app.MapSiaMetrics(exporter)</c> and <c>app.MapSiaIndexPage(page)</c>.</summary>
public static class MetricsEndpoints
{
    /// <summary>
    /// /metrics from the exporter's own registry, in the Prometheus text format. Not
    /// prometheus-net.AspNetCore's MapMetrics: that handler lets two overlapping scrapes
    /// interleave (one could serialize half of the other's update, breaking sum == host total),
    /// and writes to the socket while collecting. Returns the route builder so auth can be added.
    /// </summary>
    public static IEndpointConventionBuilder MapSiaMetrics(this IEndpointRouteBuilder endpoints, MetricsExporter exporter, string pattern = "/metrics") =>
        endpoints.MapGet(pattern, async (HttpContext context) =>
        {
            context.Response.ContentType = MetricsExporter.ContentType;
            context.Response.Headers.CacheControl = "no-store";
            await exporter.WriteScrapeAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        });

    /// <summary>The small HTML page without script: the busiest clients now and a link to
    /// /metrics (at /now; the dashboard has /).</summary>
    public static IEndpointConventionBuilder MapSiaIndexPage(this IEndpointRouteBuilder endpoints, IndexPage page, string pattern = "/now") =>
        endpoints.MapGet(pattern, () => Results.Content(page.Render(), "text/html; charset=utf-8"));
}
