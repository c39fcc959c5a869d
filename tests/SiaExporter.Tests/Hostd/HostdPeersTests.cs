using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Hostd;
using SiaExporter.Tests.Push;
using Xunit;

namespace SiaExporter.Tests.Hostd;

/// <summary>
/// The syncer peers reader against a loopback server that replays hostd's API (its JSON shape,
/// its basic auth): hostd itself cannot be installed here.
/// </summary>
public sealed class HostdPeersTests
{
    private const string Password = "hostd-api-password";

    private static readonly HostdReplay.Peer[] TwoPeers =
    [
        new("203.0.113.7:9981", Inbound: true, "2.0.0"),
        new("[2001:db8::5]:9981", Inbound: false, "1.5.9"),
    ];

    private static HostdReplay Replay(params HostdReplay.Peer[] peers) =>
        new(Password, new HostdReplay.PayloadRates(0, 0, 0, 0), peers);

    private static HostdPeersService Service(HostdReplay replay, RecordingLogger<HostdPeersService> log, string password = Password, string? url = null) =>
        new(new HostdOptions { ApiUrl = url ?? replay.ApiUrl, ApiPassword = password, PollInterval = TimeSpan.FromMilliseconds(200) },
            TimeProvider.System, log, retryDelay: TimeSpan.FromMilliseconds(10));

    [Fact]
    public void Hostds_json_parses_including_its_null_for_no_peers()
    {
        var peers = HostdApiClient.ParsePeers(System.Text.Encoding.UTF8.GetBytes(HostdReplay.PeersJson(TwoPeers)));
        Assert.Equal([new HostdPeer("203.0.113.7:9981", true, "2.0.0"), new HostdPeer("[2001:db8::5]:9981", false, "1.5.9")], peers);
        Assert.Empty(HostdApiClient.ParsePeers("null"u8));
        Assert.Throws<HostdApiException>(() => HostdApiClient.ParsePeers("{\"error\":1}"u8));
        Assert.Throws<HostdApiException>(() => HostdApiClient.ParsePeers("<html>"u8));
    }

    [Theory]
    [InlineData("203.0.113.7:9981", "203.0.113.7")]
    [InlineData("[2001:db8::5]:9981", "2001:db8::5")]
    [InlineData("[::ffff:198.51.100.2]:9981", "198.51.100.2")]
    [InlineData("seed.example.net:9981", null)]
    public void A_peers_address_gives_its_ip_as_a_client(string address, string? client) =>
        Assert.Equal(client, new HostdPeer(address, false, "2.0.0").Client?.ToString());

    [Fact]
    public async Task Reads_the_peers_with_the_password()
    {
        using var replay = Replay(TwoPeers);
        var log = new RecordingLogger<HostdPeersService>();
        using var service = Service(replay, log);
        Assert.False(service.Current.Reachable);
        await service.ReadOnceAsync(CancellationToken.None);
        Assert.True(service.Current.Reachable);
        Assert.Equal(["203.0.113.7", "2001:db8::5"], service.Current.Peers.Select(p => p.Client.ToString()));
        Assert.Equal(1, replay.PeerRequests);
        Assert.Equal(0, replay.Unauthorized);
        Assert.Equal(1, log.Count(LogLevel.Information, "2 syncer peer(s)"));

        replay.Peers = [];
        await service.ReadOnceAsync(CancellationToken.None);
        Assert.True(service.Current.Reachable);
        Assert.Empty(service.Current.Peers);
        Assert.Single(log.Entries); // still working: nothing more to say
    }

    [Fact]
    public async Task A_wrong_password_or_a_failing_hostd_is_one_line_and_no_peers_until_it_answers()
    {
        using var replay = Replay(TwoPeers);
        var log = new RecordingLogger<HostdPeersService>();
        using (var wrong = Service(replay, log, password: "not it"))
        {
            await wrong.ReadOnceAsync(CancellationToken.None);
            await wrong.ReadOnceAsync(CancellationToken.None);
            Assert.False(wrong.Current.Reachable);
            Assert.Equal(2, replay.Unauthorized);
            Assert.Equal(1, log.Count(LogLevel.Warning, "401 Unauthorized: HOSTD_API_PASSWORD is not hostd's API password"));
        }

        var log2 = new RecordingLogger<HostdPeersService>();
        using var service = Service(replay, log2);
        await service.ReadOnceAsync(CancellationToken.None);
        Assert.Equal(2, service.Current.Peers.Count);
        replay.Failing = true;
        await service.ReadOnceAsync(CancellationToken.None);
        await service.ReadOnceAsync(CancellationToken.None);
        Assert.False(service.Current.Reachable);
        Assert.Empty(service.Current.Peers); // what hostd is connected to is unknown now
        Assert.Equal(1, log2.Count(LogLevel.Warning, "HTTP 500"));
        replay.Failing = false;
        await service.ReadOnceAsync(CancellationToken.None);
        Assert.Equal(2, service.Current.Peers.Count);
        Assert.Equal(2, log2.Count(LogLevel.Information, "2 syncer peer(s)"));
        Assert.Equal(3, log2.Entries.Count);
    }

    [Fact]
    public async Task A_hostd_that_is_not_there_is_retried_then_one_line_and_the_service_keeps_running()
    {
        int port;
        using (var gone = Replay()) port = gone.Port; // a loopback port nobody listens on now
        using var replay = Replay(TwoPeers);
        var log = new RecordingLogger<HostdPeersService>();
        using var service = Service(replay, log, url: $"http://127.0.0.1:{port}/api");
        await service.StartAsync(CancellationToken.None);
        await Task.Delay(1500); // several polls, each with its retries
        Assert.False(service.Current.Reachable);
        Assert.Equal(1, log.Count(LogLevel.Warning, $"hostd API http://127.0.0.1:{port}/api/syncer/peers cannot be read"));
        Assert.Single(log.Entries);
        Assert.False(service.ExecuteTask!.IsCompleted); // still polling, no exception out of it
        await service.StopAsync(CancellationToken.None);
        Assert.True(service.ExecuteTask.IsCompletedSuccessfully);
    }
}
