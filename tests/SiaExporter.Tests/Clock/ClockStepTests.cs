using Microsoft.Extensions.Logging;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Storage;
using SiaExporter.Tests.Push;
using SiaExporter.Tests.Storage;
using Xunit;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Clock;

/// <summary>
/// The flush loop on an injected clock (never the machine's) whose wall time steps back 15 minutes,
/// then forward 2 hours, then forward 500 days, while the counters keep growing: every step is
/// logged, every byte is written once, no active client is evicted and retention deletes nothing.
/// </summary>
public sealed class ClockStepTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 30, 23, 40, 0, TimeSpan.Zero);
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task Steps_back_15m_forward_2h_and_forward_500d_lose_nothing_count_nothing_twice_evict_nothing_delete_nothing()
    {
        var time = new SteppingTime(Start);
        var logger = new RecordingLogger<HistoryFlushService>();
        using var history = _f.Open(time);
        ulong up = 0, other = 0;
        var evicted = new List<ClientAddress>();
        var options = new CollectorOptions { FlushInterval = TimeSpan.FromMinutes(1), ClientIdleTimeout = TimeSpan.FromHours(1) };
        var lifecycle = new ClientLifecycle(clients =>
        {
            evicted.AddRange(clients);
            return clients.Select(c => new EvictedClient(c, new Traffic[6])).ToList();
        }, options.ClientIdleTimeout, time);
        var service = new HistoryFlushService(history, () => Snap(Gen1, time.GetUtcNow(), ("10.0.0.1", [0, up, 0, 0, 0, 0]), ("10.0.0.2", [0, 0, 0, other, 0, 0])),
            lifecycle, options, time, logger);

        async Task MinutesAsync(int minutes)
        {
            for (var i = 0; i < minutes; i++)
            {
                time.Advance(TimeSpan.FromMinutes(1));
                up += 1000;
                if (i % 20 == 0) other += 7; // 10.0.0.2 moves now and then: active, never idle for an hour
                await service.FlushOnceAsync(time.GetUtcNow(), CancellationToken.None);
            }
        }

        await MinutesAsync(30);
        var before = _f.Scalar("SELECT count(*) FROM traffic_detail");
        time.Step(TimeSpan.FromMinutes(-15));
        await MinutesAsync(30);
        time.Step(TimeSpan.FromHours(2));
        await MinutesAsync(30);
        time.Step(TimeSpan.FromDays(500));
        await MinutesAsync(70); // past the next hourly retention pass

        Assert.Equal(1, logger.Count(LogLevel.Warning, "Wall clock stepped back 15m"));
        Assert.Equal(1, logger.Count(LogLevel.Warning, "Wall clock stepped forward 2h"));
        Assert.Equal(1, logger.Count(LogLevel.Warning, "Wall clock stepped forward 500d"));
        Assert.Empty(evicted);
        // every byte once, in every tier; nothing deleted by retention (the oldest rows are still there)
        foreach (var table in new[] { "traffic_detail", "traffic_hourly", "traffic_daily" })
        {
            Assert.Equal((long)up, _f.Scalar($"SELECT sum(up_bytes) FROM {table} WHERE client_ip = '10.0.0.1'"));
            Assert.Equal((long)other, _f.Scalar($"SELECT sum(up_bytes) FROM {table} WHERE client_ip = '10.0.0.2'"));
        }
        Assert.Equal((long)up, _f.Scalar("SELECT sum(up_9981) FROM traffic"));
        Assert.True(before > 0);
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM traffic_detail WHERE bucket = $b AND client_ip = '10.0.0.1'", ("$b", Buckets.Of(Start.AddMinutes(1)))));
    }
}
