using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Storage;
using Xunit;
using Xunit.Abstractions;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

/// <summary>24 hours (simulated) of a database that cannot be written, at 16,000 clients:
/// memory stays bounded (held buckets spill beside the database) and nothing is lost.</summary>
public sealed class HeldDeltaSpillTests(ITestOutputHelper output) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 0, 0, 30, TimeSpan.Zero);
    private const int Clients = 16_000;
    private static readonly int Rounds = int.Parse(Environment.GetEnvironmentVariable("SPILL_ROUNDS") ?? "288");
    private readonly StorageFixture _f = new();

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task A_day_of_unwritable_database_at_16k_clients_spills_keeps_memory_bounded_and_loses_nothing()
    {
        var time = new ManualTime(T0);
        var options = new HistoryOptions { RetryAttempts = 0, HeldBucketsInMemory = 2 };
        using var history = TrafficHistory.Open(_f.DbPath, Ports, NullLogger.Instance, time, options);
        var addresses = Enumerable.Range(0, Clients).Select(i => ClientAddress.Parse($"10.{i / 65536}.{i / 256 % 256}.{i % 256}")).ToArray();
        var slots = Ports.SlotCount;
        var counters = new Traffic[Clients * slots];
        ulong counted = 0;
        CounterSnapshot Next(int round)
        {
            // a sixteenth of the clients move each round, every slot
            for (var c = round % 16; c < Clients; c += 16)
                for (var s = 0; s < slots; s++)
                {
                    counters[c * slots + s] += new Traffic(1000 + (ulong)s, 2);
                    counted += 1000 + (ulong)s;
                }
            var totals = new Traffic[slots];
            for (var i = 0; i < counters.Length; i++) totals[i % slots] += counters[i];
            return new CounterSnapshot(Ports, Gen1, time.GetUtcNow(), addresses, [.. counters], totals, new Traffic[slots]);
        }

        Assert.True((await history.FlushAsync(Next(0))).Committed);
        // Every write fails before it touches the file, as on a read-only or full filesystem
        // (a lock would cost its busy timeout per flush: 24 simulated hours would take real minutes).
        history.BeforeWrite = () => throw new SqliteException("attempt to write a readonly database", 8);
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        for (var round = 1; round <= Rounds; round++) // 24 h of 5-minute flushes, every one refused
        {
            time.Advance(TimeSpan.FromMinutes(5));
            var result = await history.FlushAsync(Next(round));
            Assert.False(result.Committed);
        }
        var heapDuring = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"held {history.PendingBuckets} buckets, {history.SpilledBytes / 1e6:F1} MB spilled; heap {heapBefore / 1e6:F1} → {heapDuring / 1e6:F1} MB; RSS {Environment.WorkingSet / 1e6:F0} MB");
        Assert.Equal(288, history.PendingBuckets);
        Assert.True(history.SpilledBytes > 0);
        Assert.True(File.Exists(_f.DbPath + ".held"));
        // Unbounded, 288 buckets × 1,000 client rows would be ~80 MB of heap; bounded, two buckets.
        Assert.True(heapDuring - heapBefore < 16_000_000, $"heap grew {(heapDuring - heapBefore) / 1e6:F1} MB while the database was unwritable");

        history.BeforeWrite = null;
        time.Advance(TimeSpan.FromMinutes(5));
        var recovered = await history.FlushAsync(Next(289));
        Assert.True(recovered.Committed, recovered.Error?.ToString());
        Assert.Equal(0, history.PendingBuckets);
        Assert.False(File.Exists(_f.DbPath + ".held"));
        foreach (var table in new[] { "traffic_detail", "traffic_hourly", "traffic_daily", "traffic_host", "traffic_host_daily" })
            Assert.Equal((long)counted, _f.Scalar($"SELECT sum(up_bytes + down_bytes) FROM {table}"));
        // each 5-minute bucket kept its own rows: 288 held + the first + the last
        Assert.Equal(290, _f.Scalar("SELECT count(DISTINCT bucket) FROM traffic_host"));
    }

    [Fact]
    public void A_spill_file_left_by_an_earlier_run_is_deleted_not_replayed()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_f.DbPath)!);
        File.WriteAllBytes(_f.DbPath + ".held", [1, 2, 3]);
        using var history = _f.Open(new ManualTime(T0));
        Assert.False(File.Exists(_f.DbPath + ".held"));
        Assert.Equal(0, history.PendingBuckets);
    }
}
