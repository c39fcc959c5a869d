using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Storage;
using Xunit;
using static SiaExporter.Tests.Storage.StorageFixture;

namespace SiaExporter.Tests.Storage;

public sealed class HistoryCommandTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2025, 3, 10, 14, 0, 0, TimeSpan.Zero);
    private readonly StorageFixture _f = new();
    private readonly ManualTime _time = new(Now);

    public HistoryCommandTests()
    {
        using var h = _f.Open(_time);
        Directory.CreateDirectory(Path.GetDirectoryName(_f.DbPath)!);
        using var c = _f.Connect();
        using var cmd = c.CreateCommand();
        // three buckets: 2 h ago, 30 min ago, 5 min ago
        cmd.CommandText = """
            INSERT INTO traffic (client_ip, up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp, timestamp) VALUES
              ('10.0.0.1', 1, 2, 3000000000, 4, 5, 6, $t0),
              ('10.0.0.1', 10, 20, 1500000, 40, 50, 60, $t1),
              ('2001:db8::7', 0, 999, 0, 2500, 0, 0, $t1),
              ('10.0.0.2', 7, 0, 0, 0, 0, 0, $t2);
            """;
        cmd.Parameters.AddWithValue("$t0", Now.AddHours(-2).ToUnixTimeSeconds());
        cmd.Parameters.AddWithValue("$t1", Now.AddMinutes(-30).ToUnixTimeSeconds());
        cmd.Parameters.AddWithValue("$t2", Now.AddMinutes(-5).ToUnixTimeSeconds());
        cmd.ExecuteNonQuery();
    }

    public void Dispose() => _f.Dispose();

    private (int Code, string Out, string Err) Export(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = ExportCommand.Run(_f.DbPath, args, o, e, _time);
        return (code, o.ToString(), e.ToString());
    }

    private (int Code, string Out, string Err) Top(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = TopCommand.Run(_f.DbPath, args, o, e, _time);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void Export_csv_has_a_header_and_every_row_in_order()
    {
        var (code, output, err) = Export("--format", "csv");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        var t0 = Now.AddHours(-2).ToUnixTimeSeconds();
        var t1 = Now.AddMinutes(-30).ToUnixTimeSeconds();
        var t2 = Now.AddMinutes(-5).ToUnixTimeSeconds();
        Assert.Equal(
        [
            "timestamp,client_ip,up_9981,down_9981,up_9984_tcp,down_9984_tcp,up_9984_udp,down_9984_udp,resolution",
            $"{t0},10.0.0.1,1,2,3000000000,4,5,6,5m",
            $"{t1},10.0.0.1,10,20,1500000,40,50,60,5m",
            $"{t1},2001:db8::7,0,999,0,2500,0,0,5m",
            $"{t2},10.0.0.2,7,0,0,0,0,0,5m",
        ], output.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Export_json_has_stable_field_names_and_since_until_select_buckets()
    {
        var (code, output, _) = Export("--format=json", "--since", "1h", "--until", Now.AddMinutes(-10).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal(["timestamp", "client_ip", "up_9981", "down_9981", "up_9984_tcp", "down_9984_tcp", "up_9984_udp", "down_9984_udp", "resolution"],
            rows[0].EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal(Now.AddMinutes(-30).ToUnixTimeSeconds(), rows[0].GetProperty("timestamp").GetInt64());
        Assert.Equal("10.0.0.1", rows[0].GetProperty("client_ip").GetString());
        Assert.Equal(1500000, rows[0].GetProperty("up_9984_tcp").GetInt64());
        Assert.Equal(60, rows[0].GetProperty("down_9984_udp").GetInt64());
        Assert.Equal("2001:db8::7", rows[1].GetProperty("client_ip").GetString());
        Assert.Equal(999, rows[1].GetProperty("down_9981").GetInt64());
    }

    [Fact]
    public void Export_accepts_unix_seconds()
    {
        var (code, output, _) = Export("--since", Now.AddMinutes(-6).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, code);
        var lines = output.TrimEnd('\n').Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith($"{Now.AddMinutes(-5).ToUnixTimeSeconds()},10.0.0.2,7,", lines[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--format", "xml")]
    [InlineData("--since", "yesterday")]
    [InlineData("--since", "1h", "--until", "2h")]
    [InlineData("--frobnicate", "1")]
    [InlineData("--since")]
    public void Export_bad_arguments_give_one_line_and_exit_2(params string[] args)
    {
        var (code, output, err) = Export(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("collector export: ", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Top_ranks_clients_by_total_with_human_units()
    {
        var (code, output, err) = Top("--since", "3h", "--limit", "2");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        var lines = output.TrimEnd('\n').Split('\n');
        Assert.Equal(4, lines.Length); // caption, header, 2 clients
        Assert.Equal(["CLIENT", "9981/tcp", "UP", "9981/tcp", "DOWN", "9984/tcp", "UP", "9984/tcp", "DOWN", "9984/udp", "UP", "9984/udp", "DOWN", "TOTAL"],
            lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var first = lines[2].Split("  ", StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()).ToArray();
        Assert.Equal(["10.0.0.1", "11 B", "22 B", "3.0 GB", "44 B", "55 B", "66 B", "3.0 GB"], first);
        var second = lines[3].Split("  ", StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()).ToArray();
        Assert.Equal(["2001:db8::7", "0 B", "999 B", "0 B", "2.5 kB", "0 B", "0 B", "3.5 kB"], second);
        // aligned: every line of the table as wide as its cells, TOTAL column right-aligned
        Assert.Equal(lines[1].Length, lines[2].Length);
        Assert.Equal(lines[1].Length, lines[3].Length);
    }

    [Fact]
    public void Top_defaults_to_the_last_hour()
    {
        var (code, output, _) = Top();
        Assert.Equal(0, code);
        var clients = output.TrimEnd('\n').Split('\n').Skip(2).Select(l => l.Split(' ')[0]).ToArray();
        Assert.Equal(["10.0.0.1", "2001:db8::7", "10.0.0.2"], clients);
    }

    [Theory]
    [InlineData("--limit", "0")]
    [InlineData("--limit", "many")]
    [InlineData("extra")]
    public void Top_bad_arguments_give_one_line_and_exit_2(params string[] args)
    {
        var (code, _, err) = Top(args);
        Assert.Equal(2, code);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Top_without_a_database_says_so()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        Assert.Equal(1, TopCommand.Run(Path.Combine(_f.Directory, "missing.db"), [], o, e, _time));
        Assert.Contains("no history database", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Top_reads_while_the_daemon_holds_a_write_transaction()
    {
        using var h = _f.Open(_time);
        using var writer = _f.Connect();
        using var tx = writer.BeginTransaction(System.Data.IsolationLevel.Serializable);
        using (var cmd = writer.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "UPDATE traffic SET up_9981 = up_9981 + 1000000";
            cmd.ExecuteNonQuery();
        }
        var (code, output, _) = Top("--since", "3h");
        Assert.Equal(0, code);
        Assert.Contains("11 B", output, StringComparison.Ordinal); // the committed state, not blocked
        await Task.CompletedTask;
    }

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(999, "999 B")]
    [InlineData(1000, "1.0 kB")]
    [InlineData(1_234_567, "1.2 MB")]
    [InlineData(999_960, "1.0 MB")]
    [InlineData(5_000_000_000_000, "5.0 TB")]
    public void Human_units_are_decimal(long bytes, string text) => Assert.Equal(text, TopCommand.HumanBytes(bytes));
}

public sealed class HistoryFlushServiceTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2025, 3, 10, 14, 4, 30, TimeSpan.Zero);
    private readonly StorageFixture _f = new();
    private readonly ManualTime _time = new(Start);

    public void Dispose() => _f.Dispose();

    [Fact]
    public async Task Flushes_on_the_minute_into_the_bucket_before_it_then_a_final_flush_on_stop()
    {
        using var history = _f.Open(_time);
        ulong up = 1000;
        var reads = 0;
        CounterSnapshot Read()
        {
            reads++;
            return Snap(Gen1, _time.GetUtcNow(), ("10.0.0.1", [0, 0, 0, up]));
        }
        var options = new CollectorOptions { FlushInterval = TimeSpan.FromMinutes(1), ClientIdleTimeout = TimeSpan.FromHours(1), RetentionDays = 30 };
        var service = new HistoryFlushService(history, Read, null, options, _time, NullLogger<HistoryFlushService>.Instance);
        await service.StartAsync(CancellationToken.None);
        Assert.Equal(0, reads);

        // 14:05:00.020: the flush of the minute 14:04–14:05 belongs to the 14:00 bucket
        await AdvanceUntil(() => service.Flushes == 1, TimeSpan.FromSeconds(30.02));
        Assert.Equal([0L, 0, 1000, 0, 0, 0], _f.TrafficRow(Buckets.Of(Start), "10.0.0.1"));

        up = 1500;
        await AdvanceUntil(() => service.Flushes == 2, TimeSpan.FromMinutes(1));
        Assert.Equal([0L, 0, 500, 0, 0, 0], _f.TrafficRow(Buckets.Of(Start) + 300, "10.0.0.1"));

        up = 1600; // counted at 14:06:30, stopping
        _time.Advance(TimeSpan.FromSeconds(30));
        await service.StopAsync(CancellationToken.None);
        Assert.Equal([0L, 0, 600, 0, 0, 0], _f.TrafficRow(Buckets.Of(Start) + 300, "10.0.0.1"));
        Assert.Equal(3, reads);
    }

    [Fact]
    public async Task Evicts_idle_clients_after_a_committed_flush()
    {
        using var history = _f.Open(_time);
        var evicted = new List<ClientAddress>();
        var options = new CollectorOptions { FlushInterval = TimeSpan.FromMinutes(1), ClientIdleTimeout = TimeSpan.FromMinutes(2), RetentionDays = 30 };
        var service = new HistoryFlushService(history,
            () => Snap(Gen1, _time.GetUtcNow(), ("10.0.0.1", [0, 0, 0, 10])),
            new ClientLifecycle(clients =>
            {
                evicted.AddRange(clients);
                return clients.Select(c => new EvictedClient(c, [default, default, default, new Traffic(12, 1), default, default])).ToList();
            }, options.ClientIdleTimeout, _time),
            options, _time, NullLogger<HistoryFlushService>.Instance);
        var boundary = HistoryFlushService.NextBoundary(Start, options.FlushInterval);
        for (var i = 0; i < 4; i++)
        {
            _time.Set(boundary.AddMinutes(i).AddMilliseconds(5));
            await service.FlushOnceAsync(boundary.AddMinutes(i), CancellationToken.None);
        }
        Assert.Equal([ClientAddress.Parse("10.0.0.1")], evicted);
        Assert.Equal(12, _f.Sum("up_9984_tcp", "10.0.0.1"));
        Assert.Equal(0, _f.Scalar("SELECT count(*) FROM counter_baseline WHERE client = '10.0.0.1'"));
    }

    private async Task AdvanceUntil(Func<bool> done, TimeSpan by)
    {
        // ExecuteAsync runs on the thread pool (.NET 10): let it arm its timer first
        for (var i = 0; i < 500 && _time.PendingTimers == 0; i++) await Task.Delay(10);
        _time.Advance(by);
        for (var i = 0; i < 500 && !done(); i++) await Task.Delay(10);
        Assert.True(done(), "the flush did not happen");
    }
}
