using System.Threading.RateLimiting;

namespace SiaExporter.Web;

/// <summary>
/// WEB_MAX_REQUESTS (exporter-toolkit's --web.max-requests): at most that many scrapes of the
/// telemetry path are served at once; one more is answered 503 Service Unavailable at once, not
/// queued. Other paths are not limited. 0 turns the limit off.
/// </summary>
public static class ScrapeLimit
{
    public static IApplicationBuilder UseScrapeLimit(this IApplicationBuilder app, string telemetryPath, int maxRequests)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (maxRequests <= 0) return app;
        var limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = maxRequests, QueueLimit = 0 });
        var path = new PathString(telemetryPath);
        return app.Use(async (context, next) =>
        {
            if (!context.Request.Path.Equals(path, StringComparison.Ordinal))
            {
                await next(context).ConfigureAwait(false);
                return;
            }
            using var lease = limiter.AttemptAcquire();
            if (!lease.IsAcquired)
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                context.Response.ContentType = "text/plain; charset=utf-8";
                await context.Response.WriteAsync(
                    $"Limit of concurrent requests reached ({maxRequests}), try again later.\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }
            await next(context).ConfigureAwait(false);
        });
    }
}
