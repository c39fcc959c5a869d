using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Storage;
using SiaExporter.Tests.Clock;
using SiaExporter.Web;
using Xunit;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

/// <summary>
/// ANONYMIZE off → on → off → on across restarts over one database, the kernel counters running on:
/// after each run the sum over clients is the host total and the kernel's growth, never more
/// (the repro: turning it on doubled the history).
/// </summary>
public sealed class AnonymizeChangeTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 10, 0, 30, TimeSpan.Zero);
    private static readonly ClientPrefix Prefixes = new(24, 48);
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task Each_change_of_mode_keeps_the_sum_over_clients_equal_to_the_host_total()
    {
        var time = new SteppingTime(T0);
        // raw kernel counters (slot 1: 9981 up)
        var kernel = new Dictionary<string, ulong> { ["203.0.113.5"] = 1_000_000, ["203.0.113.9"] = 1_171_866, ["2001:db8:1::7"] = 500 };
        ulong Total() => kernel.Values.Aggregate(0UL, (a, b) => a + b);
        ulong pendingGrowth = 0;

        async Task RunAsync(ClientPrefix mode, ulong grow)
        {
            using var h = TrafficHistory.Open(_f.DbPath, Ports, NullLogger.Instance, time, FastOptions, mode);
            for (var i = 0; i < 2; i++)
            {
                time.Advance(TimeSpan.FromMinutes(1));
                var snapshot = mode.IsNone
                    ? Snap(Gen1, time.GetUtcNow(), kernel.Select(kv => (kv.Key, new ulong[] { 0, kv.Value, 0, 0, 0, 0 })).ToArray())
                    : Snap(Gen1, time.GetUtcNow(), kernel
                        .GroupBy(kv => mode.Mask(Counters.ClientAddress.Parse(kv.Key)).ToString())
                        .Select(g => (g.Key, new ulong[] { 0, g.Aggregate(0UL, (a, kv) => a + kv.Value), 0, 0, 0, 0 })).ToArray());
                Assert.True((await h.FlushAsync(snapshot)).Committed);
                kernel["203.0.113.5"] += grow; // traffic between flushes and across the restart
            }
        }

        void AssertSums(string when)
        {
            var clients = _f.Scalar("SELECT sum(up_bytes) FROM traffic_detail");
            var host = _f.Scalar("SELECT sum(up_bytes) FROM traffic_host");
            var seed = _f.Scalar("SELECT sum(up_9981) FROM traffic");
            var expected = (long)Total() - (long)pendingGrowth;
            Assert.True(clients == host && host == seed && host == expected, $"{when}: clients {clients}, host {host}, traffic {seed}, kernel {expected}");
            foreach (var tier in new[] { "traffic_hourly", "traffic_daily" })
                Assert.Equal(clients, _f.Scalar($"SELECT sum(up_bytes) FROM {tier}"));
        }

        await RunAsync(ClientPrefix.None, 0);
        AssertSums("off");
        Assert.Equal(2_171_866 + 500, _f.Scalar("SELECT sum(up_bytes) FROM traffic_detail")); // the figure, once

        await RunAsync(Prefixes, 0); // on, no new traffic: nothing more (the bug counted it all again)
        AssertSums("on");
        Assert.Equal(2_171_866 + 500, _f.Scalar("SELECT sum(up_bytes) FROM traffic_detail"));

        pendingGrowth = 300; // counted after the last flush of a run: written by the next one
        await RunAsync(Prefixes, 300);
        AssertSums("on, traffic");
        await RunAsync(ClientPrefix.None, 300); // off: the prefix's growth since its last flush goes under the prefix
        AssertSums("off again");
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '203.0.113.5'"));
        await RunAsync(Prefixes, 300); // on again
        AssertSums("on again");
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '203.0.113.5'"));
        Assert.Equal(1, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '203.0.113.0'"));
    }
}
