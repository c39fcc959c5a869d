using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace SiaExporter.Storage;

/// <summary>
/// Schema version 0 → 1, inside <see cref="HistorySchema.Ensure"/>'s transaction: the hourly and
/// daily tiers are filled from the 5-minute rows already stored, once (user_version is set in the
/// same transaction, so a crash redoes it from scratch, never twice). Buckets that have
/// traffic_detail rows roll up from them (every class, packets); buckets of an older collector that
/// only has <c>traffic</c> rows roll up from its three byte columns (packets 0).
/// </summary>
internal static class HistoryMigration
{
    private const string AddOnConflict = """
        ON CONFLICT DO UPDATE SET up_bytes = up_bytes + excluded.up_bytes, down_bytes = down_bytes + excluded.down_bytes,
            up_packets = up_packets + excluded.up_packets, down_packets = down_packets + excluded.down_packets
        """;

    public static void FillTiers(SqliteConnection connection, SqliteTransaction tx, ILogger logger)
    {
        var seedOnly = SeedOnlyRows();
        foreach (var (seconds, clients, host) in new[] { (HistoryTiers.HourSeconds, "traffic_hourly", "traffic_host_hourly"), (HistoryTiers.DaySeconds, "traffic_daily", "traffic_host_daily") })
        {
            HistorySchema.Exec(connection, tx, $"""
                INSERT INTO {clients} (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                SELECT bucket - bucket % {seconds}, client_ip, port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
                FROM traffic_detail WHERE true GROUP BY 1, 2, 3, 4
                {AddOnConflict};
                INSERT INTO {clients} (bucket, client_ip, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                SELECT bucket - bucket % {seconds}, client_ip, port, proto, sum(up_bytes), sum(down_bytes), 0, 0
                FROM ({seedOnly}) WHERE true GROUP BY 1, 2, 3, 4
                {AddOnConflict};
                INSERT INTO {host} (bucket, port, proto, up_bytes, down_bytes, up_packets, down_packets)
                SELECT bucket - bucket % {seconds}, port, proto, sum(up_bytes), sum(down_bytes), sum(up_packets), sum(down_packets)
                FROM traffic_host WHERE true GROUP BY 1, 2, 3
                {AddOnConflict};
                """);
        }
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT (SELECT count(*) FROM traffic_hourly), (SELECT count(*) FROM traffic_daily)";
        using var r = cmd.ExecuteReader();
        r.Read();
        if (r.GetInt64(0) > 0)
            logger.LogWarning("SQLite: history migrated to schema version {Version}: {Hourly} hourly and {Daily} daily rows rolled up from the 5-minute rows",
                HistorySchema.Version, r.GetInt64(0), r.GetInt64(1));
    }

    /// <summary>The traffic rows of buckets without any traffic_detail row, one row per class, in traffic_detail's shape.</summary>
    private static string SeedOnlyRows()
    {
        var classes = HistorySchema.SeedColumns
            .GroupBy(c => c.Class)
            .Select(g => (g.Key, Up: g.Single(c => c.Direction == Counters.Direction.Up).Column, Down: g.Single(c => c.Direction == Counters.Direction.Down).Column));
        return string.Join(" UNION ALL ", classes.Select(c => $"""
            SELECT timestamp AS bucket, client_ip, {c.Key.Port} AS port, '{c.Key.ProtocolLabel}' AS proto,
                   coalesce({c.Up}, 0) AS up_bytes, coalesce({c.Down}, 0) AS down_bytes
            FROM traffic
            WHERE (coalesce({c.Up}, 0) != 0 OR coalesce({c.Down}, 0) != 0)
              AND NOT EXISTS (SELECT 1 FROM traffic_detail d WHERE d.bucket = traffic.timestamp)
            """));
    }
}
