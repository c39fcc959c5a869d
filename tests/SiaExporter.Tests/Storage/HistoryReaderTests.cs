using Xunit;
using SiaExporter.Counters;
using SiaExporter.Storage;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

/// <summary>The one read API, on what the writer stored.</summary>
public sealed class HistoryReaderTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 10, 14, 0, 30, TimeSpan.Zero);
    private static readonly long B0 = Buckets.Of(T0);
    private static readonly long B1 = B0 + Buckets.Seconds;
    private readonly StorageFixture _f = new();
    private readonly ManualTime _time = new(T0);

    public void Dispose() => _f.Dispose();

    private async Task WriteTwoBucketsAsync()
    {
        using var h = _f.Open(_time);
        // slots: 9981 down, up, 9984/tcp down, up, 9984/udp down, up
        Assert.True((await h.FlushAsync(Snap(Gen1, T0, [0, 0, 5, 0, 0, 0], ("10.0.0.1", [0, 0, 100, 1000, 0, 0]), ("10.0.0.2", [10, 20, 0, 0, 0, 0])))).Committed);
        Assert.True((await h.FlushAsync(Snap(Gen1, T0.AddMinutes(5), [0, 0, 5, 0, 0, 0], ("10.0.0.1", [0, 0, 100, 1000, 0, 0]), ("10.0.0.2", [10, 20, 0, 0, 0, 3000])))).Committed);
    }

    [Fact]
    public async Task Top_clients_sum_the_seed_columns_from_a_bucket_on_most_first()
    {
        await WriteTwoBucketsAsync();
        using var reader = HistoryReader.OpenReadOnly(_f.DbPath);
        var all = reader.TopClients(B0, 10);
        Assert.Equal(["10.0.0.2", "10.0.0.1", HistorySchema.OverflowClient], all.Select(c => c.Client));
        Assert.Equal([20L, 10, 0, 0, 3000, 0], all[0].SeedBytes); // up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp
        Assert.Equal(3030, all[0].Total);
        Assert.Equal(["10.0.0.2"], reader.TopClients(B1, 10).Select(c => c.Client));
        Assert.Single(reader.TopClients(B0, 1));
    }

    [Fact]
    public async Task Seed_rows_come_in_bucket_and_client_order_within_the_range()
    {
        await WriteTwoBucketsAsync();
        using var reader = HistoryReader.OpenReadOnly(_f.DbPath);
        var rows = reader.SeedRows(B0, B1).ToList();
        Assert.Equal([(B0, "10.0.0.1"), (B0, "10.0.0.2"), (B0, HistorySchema.OverflowClient)], rows.Select(r => (r.Timestamp, r.Client)));
        Assert.Equal([0L, 0, 1000, 100, 0, 0], rows[0].Bytes);
        Assert.Equal([(B1, "10.0.0.2")], reader.SeedRows(B1, long.MaxValue).Select(r => (r.Timestamp, r.Client)));
    }

    [Fact]
    public async Task A_bucket_reads_back_per_class_with_packets_and_host_totals()
    {
        await WriteTwoBucketsAsync();
        using var reader = HistoryReader.OpenReadOnly(_f.DbPath);
        Assert.True(reader.HasClassTables());
        var (clients, totals) = reader.Bucket(B1);
        Assert.Equal([new ClassRow("10.0.0.2", 9984, "udp", 3000, 0, 30, 0)], clients);
        Assert.Equal([new ClassRow(null, 9984, "udp", 3000, 0, 30, 0)], totals);
        var (first, _) = reader.Bucket(B0);
        Assert.Equal([
            new ClassRow("10.0.0.1", 9984, "tcp", 1000, 100, 10, 1),
            new ClassRow("10.0.0.2", 9981, "tcp", 20, 10, 0, 0),
            new ClassRow(HistorySchema.OverflowClient, 9984, "tcp", 0, 5, 0, 0),
        ], first);
    }

    [Fact]
    public void A_missing_database_is_an_operator_error()
    {
        var e = Assert.Throws<OperatorException>(() => HistoryReader.OpenReadOnly(_f.DbPath));
        Assert.Contains("no history database", e.Message);
    }
}
