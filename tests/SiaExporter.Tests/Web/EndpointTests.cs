using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

public sealed class EndpointTests : IDisposable
{
    private const string User = "prometheus";
    private const string Password = "s3cret: with colon";
    private static readonly string Hash = BCrypt.Net.BCrypt.HashPassword(Password, 4);
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private WebConfig Config(string clientAuth = "NoClientCert", bool users = true, string extra = "")
    {
        var ca = clientAuth == "NoClientCert" ? "" : "  client_ca_file: ca.pem\n";
        return WebConfig.Load(_pki.Write("web.yml", $"""
            tls_server_config:
              cert_file: server.crt
              key_file: server.key
              client_auth_type: {clientAuth}
            {ca}http_server_config:
              headers:
                X-Content-Type-Options: nosniff
                Strict-Transport-Security: max-age=63072000
            {(users ? $"basic_auth_users:\n  {User}: {Hash}\n" : "")}{extra}
            """));
    }

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    private static async Task<HttpResponseMessage> Get(HttpClient client, string url, AuthenticationHeaderValue? auth)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = auth;
        return await client.SendAsync(request);
    }

    [Fact]
    public async Task Scrape_over_tls_needs_the_right_password_on_every_path()
    {
        await using var server = await TestServer.StartAsync(Config());
        using var client = _pki.HttpClient();
        var url = $"https://127.0.0.1:{server.Port}/metrics";

        using (var ok = await Get(client, url, Basic(User, Password)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal(TestServer.MetricsText, await ok.Content.ReadAsStringAsync());
            Assert.Equal("nosniff", ok.Headers.GetValues("X-Content-Type-Options").Single());
        }
        using (var byName = await Get(client, $"https://localhost:{server.Port}/metrics", Basic(User, Password)))
            Assert.Equal(HttpStatusCode.OK, byName.StatusCode);

        foreach (var (auth, path) in new (AuthenticationHeaderValue?, string)[]
                 {
                     (Basic(User, "wrong"), "/metrics"), (null, "/metrics"), (Basic("nobody", Password), "/metrics"),
                     (new AuthenticationHeaderValue("Bearer", "x"), "/metrics"), (new AuthenticationHeaderValue("Basic", "!!notbase64"), "/metrics"),
                     (null, "/"), (Basic(User, "wrong"), "/"), (null, "/nothing-here"),
                 })
        {
            using var denied = await Get(client, $"https://127.0.0.1:{server.Port}{path}", auth);
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
            Assert.Equal("Basic realm=\"collector\"", denied.Headers.WwwAuthenticate.Single().ToString());
            Assert.Equal("max-age=63072000", denied.Headers.GetValues("Strict-Transport-Security").Single());
            Assert.DoesNotContain("sia_test_value", await denied.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Plain_http_to_the_tls_port_gets_no_metrics()
    {
        await using var server = await TestServer.StartAsync(Config(users: false));

        // HttpClient speaking plain HTTP: the connection fails or gets an error, never the metrics.
        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await plain.GetAsync($"http://127.0.0.1:{server.Port}/metrics");
            Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
            Assert.DoesNotContain("sia_test_value", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        catch (HttpRequestException)
        {
        }

        // The same on a raw socket, reading whatever comes back until the server closes.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, server.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0) received.Write(buffer, 0, n);
        }
        catch (IOException)
        {
        }
        var text = Encoding.ASCII.GetString(received.ToArray());
        Assert.DoesNotContain("sia_test_value", text, StringComparison.Ordinal);
        Assert.DoesNotContain("200 OK", text, StringComparison.Ordinal);

        // While TLS on the same port serves it (no basic auth configured here).
        using var client = _pki.HttpClient();
        Assert.Equal(TestServer.MetricsText, await client.GetStringAsync($"https://127.0.0.1:{server.Port}/metrics"));
    }

    [Fact]
    public async Task Require_and_verify_client_cert_refuses_without_one_and_with_a_foreign_one()
    {
        await using var server = await TestServer.StartAsync(Config("RequireAndVerifyClientCert"));
        var url = $"https://127.0.0.1:{server.Port}/metrics";

        using (var none = _pki.HttpClient())
            await AssertRefused(none, url);
        using (var rogue = _pki.HttpClient(_pki.RogueClient))
            await AssertRefused(rogue, url);
        using (var withCert = _pki.HttpClient(_pki.Client))
        {
            using var ok = await Get(withCert, url, Basic(User, Password));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal(TestServer.MetricsText, await ok.Content.ReadAsStringAsync());
            // The certificate alone is not enough while basic_auth_users is set.
            using var noPassword = await Get(withCert, url, null);
            Assert.Equal(HttpStatusCode.Unauthorized, noPassword.StatusCode);
        }
    }

    [Fact]
    public async Task Verify_client_cert_if_given_accepts_none_but_not_a_foreign_one()
    {
        await using var server = await TestServer.StartAsync(Config("VerifyClientCertIfGiven", users: false));
        var url = $"https://127.0.0.1:{server.Port}/metrics";
        using (var none = _pki.HttpClient())
            Assert.Equal(TestServer.MetricsText, await none.GetStringAsync(url));
        using (var good = _pki.HttpClient(_pki.Client))
            Assert.Equal(TestServer.MetricsText, await good.GetStringAsync(url));
        using (var rogue = _pki.HttpClient(_pki.RogueClient))
            await AssertRefused(rogue, url);
    }

    [Fact]
    public async Task Require_any_client_cert_takes_any_but_needs_one()
    {
        await using var server = await TestServer.StartAsync(Config("RequireAnyClientCert", users: false));
        var url = $"https://127.0.0.1:{server.Port}/metrics";
        using (var none = _pki.HttpClient())
            await AssertRefused(none, url);
        using (var rogue = _pki.HttpClient(_pki.RogueClient))
            Assert.Equal(TestServer.MetricsText, await rogue.GetStringAsync(url));
    }

    [Fact]
    public async Task Without_a_web_config_plain_http_is_served()
    {
        await using var server = await TestServer.StartAsync(null);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        Assert.Equal(TestServer.MetricsText, await client.GetStringAsync($"http://127.0.0.1:{server.Port}/metrics"));
    }

    [Fact]
    public async Task Basic_auth_without_tls_still_asks_for_the_password()
    {
        var web = WebConfig.Load(_pki.Write("auth.yml", $"basic_auth_users:\n  {User}: {Hash}\n"));
        await using var server = await TestServer.StartAsync(web);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var url = $"http://127.0.0.1:{server.Port}/metrics";
        using (var denied = await Get(client, url, null))
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        using (var ok = await Get(client, url, Basic(User, Password)))
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Tls13_minimum_refuses_a_tls12_client()
    {
        await using var server = await TestServer.StartAsync(Config(users: false, extra: ""));
        var web = WebConfig.Load(_pki.Write("tls13.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"));
        await using var strict = await TestServer.StartAsync(web);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        using var tls12 = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        Assert.Equal(TestServer.MetricsText, await tls12.GetStringAsync($"https://127.0.0.1:{server.Port}/metrics"));
        await AssertRefused(tls12, $"https://127.0.0.1:{strict.Port}/metrics");
    }

    private static async Task AssertRefused(HttpClient client, string url)
    {
        try
        {
            using var response = await client.GetAsync(url);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Fail($"expected the TLS handshake or connection to be refused, got {(int)response.StatusCode}: {body}");
        }
        catch (HttpRequestException)
        {
        }
    }

    [Fact]
    public async Task Urls_and_kestrel_endpoints_from_configuration_open_no_other_port()
    {
        var leakPort = TestPki.FreePort();
        var urlsPort = TestPki.FreePort();
        await using var server = await TestServer.StartAsync(Config(users: false), builder =>
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Kestrel:Endpoints:Leak:Url"] = $"http://127.0.0.1:{leakPort}",
                ["urls"] = $"http://127.0.0.1:{urlsPort}",
            });
            builder.WebHost.UseUrls($"http://127.0.0.1:{urlsPort}");
        });
        foreach (var port in new[] { leakPort, urlsPort })
        {
            using var tcp = new TcpClient();
            await Assert.ThrowsAsync<SocketException>(async () => await tcp.ConnectAsync(IPAddress.Loopback, port));
        }
        using var client = _pki.HttpClient();
        Assert.Equal(TestServer.MetricsText, await client.GetStringAsync($"https://127.0.0.1:{server.Port}/metrics"));
    }
}
