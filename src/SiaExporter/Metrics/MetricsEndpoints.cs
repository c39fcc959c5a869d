using System.IO.Compression;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SiaExporter.Web;

namespace SiaExporter.Metrics;

/// <summary>Routes for the host: <c>app.MapSiaMetrics(exporter)</c> and <c>app.MapSiaIndexPage(page)</c>.</summary>
public static class MetricsEndpoints
{
    /// <summary>
    /// /metrics from the exporter's own registry: OpenMetrics text when the scraper prefers it
    /// (Accept), else the Prometheus text format; gzip when Accept-Encoding asks for it
    /// (<see cref="ScrapeNegotiation"/>). Not prometheus-net.AspNetCore's MapMetrics: that handler
    /// lets two overlapping scrapes interleave (one could serialize half of the other's update,
    /// breaking sum == host total), and writes to the socket while collecting. Returns the route
    /// builder so auth can be added.
    /// </summary>
    public static IEndpointConventionBuilder MapSiaMetrics(this IEndpointRouteBuilder endpoints, MetricsExporter exporter, string pattern = "/metrics") =>
        endpoints.MapGet(pattern, async (HttpContext context) =>
        {
            var format = ScrapeNegotiation.FormatFor(context.Request.Headers.Accept);
            var response = context.Response;
            response.ContentType = ScrapeNegotiation.ContentType(format);
            response.Headers.CacheControl = "no-store";
            response.Headers.Vary = "Accept, Accept-Encoding";
            if (!ScrapeNegotiation.WantsGzip(context.Request.Headers.AcceptEncoding))
            {
                await exporter.WriteScrapeAsync(response.Body, format, context.RequestAborted).ConfigureAwait(false);
                return;
            }
            response.Headers.ContentEncoding = "gzip";
            await using var gzip = new GZipStream(response.Body, CompressionLevel.Fastest, leaveOpen: true);
            await exporter.WriteScrapeAsync(gzip, format, context.RequestAborted).ConfigureAwait(false);
        });

    /// <summary>The small HTML page without script: the busiest clients now and a link to
    /// /metrics (at /now; the dashboard has /).</summary>
    public static IEndpointConventionBuilder MapSiaIndexPage(this IEndpointRouteBuilder endpoints, IndexPage page, string pattern = "/now") =>
        endpoints.MapGet(pattern, () => Results.Content(page.Render(), "text/html; charset=utf-8"));
}
