using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SiaExporter.Hosting;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

/// <summary>WEB_MAX_REQUESTS: scrapes beyond the limit get 503 at once; other paths are not limited.</summary>
public sealed class ScrapeLimitTests
{
    [Fact]
    public async Task One_scrape_more_than_the_limit_gets_503_and_the_next_after_one_ends_is_served()
    {
        var port = TestPki.FreePort();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.ConfigureCollectorEndpoint(new ListenAddress("127.0.0.1", port), web: null);
        await using var app = builder.Build();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inside = 0;
        app.UseScrapeLimit("/sia/metrics", maxRequests: 2);
        app.MapGet("/sia/metrics", async () =>
        {
            Interlocked.Increment(ref inside);
            await release.Task;
            return Results.Text("sia_test_value 1\n");
        });
        app.MapGet("/", () => Results.Text("index\n"));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };

        var first = http.GetAsync("/sia/metrics");
        var second = http.GetAsync("/sia/metrics");
        while (Volatile.Read(ref inside) < 2) await Task.Delay(10);
        using (var third = await http.GetAsync("/sia/metrics"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
            Assert.Contains("Limit of concurrent requests reached (2)", await third.Content.ReadAsStringAsync());
        }
        using (var index = await http.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, index.StatusCode);

        release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await second).StatusCode);
        using var fourth = await http.GetAsync("/sia/metrics");
        Assert.Equal(HttpStatusCode.OK, fourth.StatusCode);
        await app.StopAsync();
    }
}
