using System.Text.Json;
using SiaExporter.Push;
using SiaExporter.Storage;
using SiaExporter.Tests.Storage;
using Xunit;

namespace SiaExporter.Tests.Push;

/// <summary>A bucket that gets more data after it was pushed (a wall-clock step back re-opens it) is pushed
/// again, whole, as its next revision, under its own Idempotency-Key.</summary>
public sealed class PushRevisionTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly long B0 = T0.ToUnixTimeSeconds();
    private readonly StorageFixture _fixture = new();
    private readonly ManualTime _time = new(T0);

    public void Dispose() => _fixture.Dispose();

    [Fact]
    public async Task A_sent_bucket_that_grows_is_sent_again_as_revision_1_and_then_left_alone()
    {
        await using var receiver = await PushReceiver.StartAsync();
        using var service = new ApiPushService(new PushOptions
        {
            Endpoint = receiver.Endpoint, Token = "t", Hostname = "host-a", SqlitePath = _fixture.DbPath,
            Interval = TimeSpan.FromMinutes(1), RequestTimeout = TimeSpan.FromSeconds(5), BusyTimeout = TimeSpan.FromSeconds(1),
        }, _time, new RecordingLogger<ApiPushService>());
        using var history = _fixture.Open(_time);
        _time.Set(T0 + TimeSpan.FromSeconds(100));
        await history.FlushAsync(StorageFixture.Snap(StorageFixture.Gen1, _time.GetUtcNow(), ("203.0.113.7", [100, 200, 0, 0, 0, 0])));
        await service.RunOnceAsync();
        _time.Set(T0 + TimeSpan.FromSeconds(400));
        await service.RunOnceAsync();
        Assert.Equal("host-a/" + B0, Assert.Single(receiver.Requests).IdempotencyKey);

        // The wall clock steps back into bucket B0: the next delta lands there, after it was sent.
        await history.FlushAsync(StorageFixture.Snap(StorageFixture.Gen1, _time.GetUtcNow(), ("203.0.113.7", [100, 250, 0, 0, 0, 0])), T0 + TimeSpan.FromSeconds(200));
        _time.Advance(TimeSpan.FromMinutes(1));
        await service.RunOnceAsync();
        Assert.Equal(2, receiver.Requests.Count);
        var revision = receiver.Requests[1];
        Assert.Equal("host-a/" + B0 + "/r1", revision.IdempotencyKey);
        using (var doc = JsonDocument.Parse(revision.Body))
        {
            Assert.Equal(1, doc.RootElement.GetProperty("revision").GetInt64());
            Assert.Contains(PushDb.Parse(revision.Body).Clients, c => c.StartsWith("203.0.113.7|9981|tcp|250|100", StringComparison.Ordinal));
        }

        _time.Advance(TimeSpan.FromMinutes(1));
        await service.RunOnceAsync();
        Assert.Equal(2, receiver.Requests.Count); // nothing new: not sent again
    }
}
