using System.Text;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Web;

public sealed class BasicAuthenticatorTests
{
    private static string Header(string user, string password) =>
        "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

    private sealed class FakeTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task A_success_is_remembered_for_its_lifetime_and_failures_never()
    {
        var time = new FakeTime();
        using var auth = new BasicAuthenticator(
            new Dictionary<string, string> { ["u"] = BCrypt.Net.BCrypt.HashPassword("pw", 4) }, TimeSpan.FromMinutes(2), time);

        Assert.True(await auth.CheckAsync(Header("u", "pw")));
        Assert.Equal(1, auth.BcryptVerifications);
        for (var i = 0; i < 10; i++) Assert.True(await auth.CheckAsync(Header("u", "pw")));
        Assert.Equal(1, auth.BcryptVerifications);

        // A wrong password is not let in by the remembered success, and is checked each time.
        Assert.False(await auth.CheckAsync(Header("u", "pw2")));
        Assert.False(await auth.CheckAsync(Header("u", "pw2")));
        Assert.Equal(3, auth.BcryptVerifications);

        time.Now += TimeSpan.FromMinutes(3);
        Assert.True(await auth.CheckAsync(Header("u", "pw")));
        Assert.Equal(4, auth.BcryptVerifications);
    }

    [Fact]
    public async Task Unknown_users_and_malformed_headers_are_refused()
    {
        using var auth = new BasicAuthenticator(new Dictionary<string, string> { ["u"] = BCrypt.Net.BCrypt.HashPassword("pw", 4) });
        Assert.False(await auth.CheckAsync(Header("v", "pw")));
        Assert.Equal(1, auth.BcryptVerifications); // a dummy hash is checked, so timing does not tell
        Assert.False(await auth.CheckAsync(null));
        Assert.False(await auth.CheckAsync("Basic"));
        Assert.False(await auth.CheckAsync("Basic %%%"));
        Assert.False(await auth.CheckAsync("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("no-colon"))));
        Assert.False(await auth.CheckAsync("Bearer " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:pw"))));
        Assert.True(await auth.CheckAsync("basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:pw"))));
    }

    [Fact]
    public async Task No_users_means_no_check()
    {
        using var auth = new BasicAuthenticator(new Dictionary<string, string>());
        Assert.False(auth.Enabled);
        Assert.True(await auth.CheckAsync(null));
    }
}
