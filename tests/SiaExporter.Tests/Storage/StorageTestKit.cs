using Xunit;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using SiaExporter.Counters;
using SiaExporter.Storage;

namespace SiaExporter.Tests.Storage;

/// <summary>A clock moved by hand; timers fire when it passes their due time.</summary>
internal sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate) return _now;
    }

    public override long GetTimestamp() => GetUtcNow().UtcTicks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Set(DateTimeOffset now) => Advance(now - GetUtcNow());

    public void Advance(TimeSpan by)
    {
        List<ManualTimer> due;
        lock (_gate)
        {
            _now += by;
            due = _timers.Where(t => t.Due <= _now).ToList();
            foreach (var t in due) _timers.Remove(t);
        }
        foreach (var t in due) t.Fire();
    }

    public int PendingTimers
    {
        get
        {
            lock (_gate) return _timers.Count;
        }
    }

    private sealed class ManualTimer(ManualTime owner, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset Due { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._gate)
            {
                owner._timers.Remove(this);
                if (dueTime == Timeout.InfiniteTimeSpan) return true;
                Due = owner._now + dueTime;
                owner._timers.Add(this);
            }
            if (dueTime <= TimeSpan.Zero) owner.Advance(TimeSpan.Zero);
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner._gate) owner._timers.Remove(this);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>Builds snapshots and reads the database back.</summary>
internal sealed class StorageFixture : IDisposable
{
    public static readonly PortClassSet Ports = PortClassSet.DefaultSet; // 9981/tcp, 9984/tcp, 9984/udp
    public static readonly MapGeneration Gen1 = new("boot-a", 7);
    public static readonly MapGeneration Gen2 = new("boot-b", 3);

    public StorageFixture()
    {
        Directory = Path.Combine(Path.GetTempPath(), "sia-storage-tests", Guid.NewGuid().ToString("N"));
        DbPath = Path.Combine(Directory, "sub", "traffic.db");
    }

    public string Directory { get; }
    public string DbPath { get; }

    public static readonly HistoryOptions FastOptions = new()
    {
        BusyTimeout = TimeSpan.FromMilliseconds(50),
        RetryAttempts = 1,
        RetryDelay = TimeSpan.FromMilliseconds(1),
    };

    public TrafficHistory Open(TimeProvider time, HistoryOptions? options = null) =>
        TrafficHistory.Open(DbPath, Ports, NullLogger.Instance, time, options ?? FastOptions);

    /// <summary>slot index: 9981 down=0 up=1, 9984/tcp down=2 up=3, 9984/udp down=4 up=5.</summary>
    public static CounterSnapshot Snap(MapGeneration gen, DateTimeOffset at, params (string Ip, ulong[] Bytes)[] clients) =>
        Snap(gen, at, null, clients);

    public static CounterSnapshot Snap(MapGeneration gen, DateTimeOffset at, ulong[]? overflow, params (string Ip, ulong[] Bytes)[] clients)
    {
        var slots = Ports.SlotCount;
        var addresses = clients.Select(c => ClientAddress.Parse(c.Ip)).ToArray();
        var values = new Traffic[clients.Length * slots];
        var totals = new Traffic[slots];
        var over = new Traffic[slots];
        for (var i = 0; i < clients.Length; i++)
            for (var s = 0; s < slots; s++)
            {
                var b = s < clients[i].Bytes.Length ? clients[i].Bytes[s] : 0;
                values[i * slots + s] = new Traffic(b, b / 100); // packets: bytes / 100
                totals[s] += values[i * slots + s];
            }
        if (overflow is not null)
            for (var s = 0; s < slots; s++)
            {
                over[s] = new Traffic(overflow[s], overflow[s] / 100);
                totals[s] += over[s];
            }
        return new CounterSnapshot(Ports, gen, at, addresses, values, totals, over);
    }

    public SqliteConnection Connect()
    {
        var c = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        c.Open();
        return c;
    }

    public long Scalar(string sql, params (string Name, object Value)[] parameters)
    {
        using var c = Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in parameters) cmd.Parameters.AddWithValue(n, v);
        var result = cmd.ExecuteScalar();
        return result is null or DBNull ? 0 : Convert.ToInt64(result, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The traffic row (6 byte columns in seed order), or empty; read through the history's read API.</summary>
    public long[] TrafficRow(long bucket, string ip)
    {
        using var reader = HistoryReader.OpenReadOnly(DbPath);
        var rows = reader.SeedRows(bucket, bucket + Buckets.Seconds).Where(r => r.Client == ip).ToList();
        Assert.True(rows.Count <= 1, "one row per bucket and client");
        return rows.Count == 0 ? [] : rows[0].Bytes;
    }

    /// <summary>Sum over all buckets of one seed column for one client.</summary>
    public long Sum(string column, string ip)
    {
        var index = HistorySchema.SeedColumns.Select(c => c.Column).ToList().IndexOf(column);
        Assert.True(index >= 0, $"{column} is not a traffic column");
        using var reader = HistoryReader.OpenReadOnly(DbPath);
        return reader.SeedRows(long.MinValue, long.MaxValue).Where(r => r.Client == ip).Sum(r => r.Bytes[index]);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            System.IO.Directory.Delete(Directory, true);
        }
        catch (IOException)
        {
        }
    }
}
