using SiaExporter.Storage;

namespace SiaExporter.Dashboard;

/// <summary>
/// Routes of the dashboard on the /metrics listener (so behind the same TLS and basic auth):
/// <c>/</c> and <c>/assets/*</c> from the embedded files, <c>/api/v1/summary</c>,
/// <c>/api/v1/history</c>, <c>/api/v1/clients</c> and <c>/api/v1/export</c> (GET only).
/// </summary>
public static class DashboardEndpoints
{
    /// <summary>The page may load only what the daemon serves: no CDN, no inline script.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder endpoints, DashboardApi api, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(api);
        // RequestDelegates only (each writes its IResult itself): nothing for the run-time
        // delegate factory to bind by reflection under Native AOT.
        endpoints.MapGet("/", context => Asset(context, "index.html").ExecuteAsync(context));
        endpoints.MapGet("/assets/{name}", context => Asset(context, (string)context.Request.RouteValues["name"]!).ExecuteAsync(context));

        endpoints.MapGet("/api/v1/summary", Api(context => Summary(context, api)));
        endpoints.MapGet("/api/v1/history", Api(async context =>
        {
            var query = context.Request.Query;
            ApiQuery.OnlyKnown(query, "from", "to", "step", "client");
            var view = await api.HistoryAsync(ApiQuery.Range(query, time.GetUtcNow(), DashboardApi.ChartPoints), ApiQuery.Client(query), context.RequestAborted);
            return Json(view, DashboardJsonContext.Default.HistoryView);
        }));
        endpoints.MapGet("/api/v1/clients", Api(async context =>
        {
            var query = context.Request.Query;
            ApiQuery.OnlyKnown(query, "from", "to", "step", "limit");
            var view = await api.ClientsAsync(ApiQuery.Range(query, time.GetUtcNow(), DashboardApi.SparkPoints), ApiQuery.Limit(query, 20), context.RequestAborted);
            return Json(view, DashboardJsonContext.Default.ClientsView);
        }));
        endpoints.MapGet("/api/v1/export", Api(async context =>
        {
            var query = context.Request.Query;
            ApiQuery.OnlyKnown(query, "from", "to", "format");
            var range = ApiQuery.Range(query, time.GetUtcNow(), ApiQuery.MaxPoints);
            var format = ApiQuery.Format(query);
            await api.ExportAsync(range with { Step = Buckets.Seconds }, format, context.Response, context.RequestAborted);
            return Results.Empty;
        }));
        return endpoints;
    }

    private static Task<IResult> Summary(HttpContext context, DashboardApi api)
    {
        ApiQuery.OnlyKnown(context.Request.Query);
        return Task.FromResult(Json(api.Summary(), DashboardJsonContext.Default.Summary));
    }

    private static IResult Asset(HttpContext context, string name)
    {
        if (!DashboardAssets.All.TryGetValue(name, out var asset)) return Results.NotFound();
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch == asset.ETag) return Results.StatusCode(StatusCodes.Status304NotModified);
        return Results.Bytes(asset.Content, asset.ContentType);
    }

    private static IResult Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        Results.Json(value, type);

    private static RequestDelegate Api(Func<HttpContext, Task<IResult>> handler) => context => Answer(context, handler);

    /// <summary>Runs a handler and writes its result, or the API's answers for refused queries
    /// (400), a busy history (503) and a history that does not exist yet (503); no-store on every answer.</summary>
    private static async Task Answer(HttpContext context, Func<HttpContext, Task<IResult>> handler)
    {
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        IResult result;
        try
        {
            result = await handler(context).ConfigureAwait(false);
        }
        catch (BadQueryException e)
        {
            result = Error(StatusCodes.Status400BadRequest, e.Message);
        }
        catch (BusyException e)
        {
            context.Response.Headers.RetryAfter = "5";
            result = Error(StatusCodes.Status503ServiceUnavailable, e.Message);
        }
        catch (OperatorException e)
        {
            result = Error(StatusCodes.Status503ServiceUnavailable, e.Message);
        }
        await result.ExecuteAsync(context).ConfigureAwait(false);
    }

    private static IResult Error(int status, string message) =>
        Results.Json(new ApiError(message), DashboardJsonContext.Default.ApiError, statusCode: status);
}
