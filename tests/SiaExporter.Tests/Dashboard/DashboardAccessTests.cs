using System.Net;
using System.Net.Http.Headers;
using System.Text;
using SiaExporter.Tests.Web;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Dashboard;

/// <summary>The page, its assets and the API sit behind the same TLS and basic auth as /metrics.</summary>
public sealed class DashboardAccessTests : IDisposable
{
    private const string User = "operator";
    private const string Password = "dash board";
    private static readonly string Hash = BCrypt.Net.BCrypt.HashPassword(Password, 4);
    private static readonly string[] Paths =
        ["/", "/assets/app.js", "/assets/app.css", "/api/v1/summary", "/api/v1/history", "/api/v1/clients", "/api/v1/export?format=json"];

    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    [Fact]
    public async Task Every_dashboard_path_needs_tls_and_the_password()
    {
        var web = WebConfig.Load(_pki.Write("web.yml", $"""
            tls_server_config:
              cert_file: server.crt
              key_file: server.key
            basic_auth_users:
              {User}: {Hash}
            """));
        await using var rig = await DashboardRig.StartAsync(web: web);
        using var client = _pki.HttpClient();
        foreach (var path in Paths)
        {
            var url = $"https://127.0.0.1:{rig.Port}{path}";
            foreach (var auth in new[] { null, Basic(User, "wrong"), Basic("nobody", Password) })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url) { Headers = { Authorization = auth } };
                using var refused = await client.SendAsync(request);
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
                Assert.DoesNotContain("203.0.113", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            using (var request = new HttpRequestMessage(HttpMethod.Get, url) { Headers = { Authorization = Basic(User, Password) } })
            using (var ok = await client.SendAsync(request))
                Assert.True(ok.StatusCode == HttpStatusCode.OK, $"{path}: {ok.StatusCode}");

            // Plain HTTP on the TLS port gets no page and no data.
            using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            using var plainRequest = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{rig.Port}{path}") { Headers = { Authorization = Basic(User, Password) } };
            HttpResponseMessage? answer = null;
            try
            {
                answer = await plain.SendAsync(plainRequest);
                Assert.NotEqual(HttpStatusCode.OK, answer.StatusCode);
                Assert.DoesNotContain("203.0.113", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
            catch (HttpRequestException)
            {
                // the connection was refused at the TLS layer: as good
            }
            finally
            {
                answer?.Dispose();
            }
        }
    }
}
