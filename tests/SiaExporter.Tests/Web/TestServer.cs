using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SiaExporter.Hosting;
using SiaExporter.Web;

namespace SiaExporter.Tests.Web;

/// <summary>
/// The demo of the wiring: a minimal WebApplication with a fixed /metrics, set up exactly as
/// the daemon does it (ConfigureCollectorEndpoint on the builder, nothing else).
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    public const string MetricsText = "# HELP sia_test_value A fixed value.\n# TYPE sia_test_value gauge\nsia_test_value 42\n";

    private readonly WebApplication _app;

    private TestServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public static async Task<TestServer> StartAsync(WebConfig? web, Action<WebApplicationBuilder>? tweak = null)
    {
        var port = TestPki.FreePort();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [], EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        tweak?.Invoke(builder);
        builder.ConfigureCollectorEndpoint(new ListenAddress("127.0.0.1", port), web);
        var app = builder.Build();
        app.MapGet("/metrics", () => Results.Text(MetricsText, "text/plain; version=0.0.4; charset=utf-8"));
        app.MapGet("/", () => Results.Text("sia-exporter: see /metrics\n"));
        await app.StartAsync();
        return new TestServer(app, port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
