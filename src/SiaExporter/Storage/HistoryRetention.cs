using Microsoft.Data.Sqlite;

namespace SiaExporter.Storage;

/// <summary>What a retention pass did.</summary>
/// <param name="RowsDeleted">Rows deleted over every history table.</param>
/// <param name="Complete">Nothing older than the cut-off is left (false: budget ran out or an error).</param>
public sealed record RetentionResult(long RowsDeleted, bool Complete);

/// <summary>
/// Which history rows expire: per tier, those of buckets older than the tier's retention, deleted a batch of rows
/// at a time per table (<see cref="TrafficHistory.DeleteExpiredAsync"/> runs the batches, each its
/// own short transaction, so a flush waits for one batch at most).
/// </summary>
public static class HistoryRetention
{
    /// <summary>The tables of a tier retention deletes from, in order (<c>traffic</c> expires with the 5-minute tier).</summary>
    public static IReadOnlyList<string> TablesOf(HistoryTier tier) => tier.Resolution == Resolution.FiveMinutes
        ? ["traffic", tier.ClientTable, tier.HostTable]
        : [tier.ClientTable, tier.HostTable];

    /// <summary>The first bucket kept after <paramref name="retentionDays"/> days back from <paramref name="now"/>.</summary>
    public static long Cutoff(DateTimeOffset now, int retentionDays) => Buckets.Of(now - TimeSpan.FromDays(retentionDays));

    /// <summary>Deletes at most <paramref name="rows"/> rows of <paramref name="table"/> older than <paramref name="cutoff"/>.</summary>
    public static int DeleteBatch(SqliteConnection connection, SqliteTransaction tx, string table, long cutoff, int rows)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = table switch
        {
            "traffic" => "DELETE FROM traffic WHERE rowid IN (SELECT rowid FROM traffic WHERE timestamp < $cut LIMIT $n)",
            "traffic_detail" or "traffic_hourly" or "traffic_daily" =>
                $"DELETE FROM {table} WHERE (bucket, client_ip, port, proto) IN (SELECT bucket, client_ip, port, proto FROM {table} WHERE bucket < $cut LIMIT $n)",
            "traffic_host" or "traffic_host_hourly" or "traffic_host_daily" =>
                $"DELETE FROM {table} WHERE (bucket, port, proto) IN (SELECT bucket, port, proto FROM {table} WHERE bucket < $cut LIMIT $n)",
            _ => throw new ArgumentException($"no retention for table {table}", nameof(table)),
        };
        cmd.Parameters.AddWithValue("$cut", cutoff);
        cmd.Parameters.AddWithValue("$n", rows);
        return cmd.ExecuteNonQuery();
    }
}
