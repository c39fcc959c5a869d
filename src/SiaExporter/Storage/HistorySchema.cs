using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using SiaExporter.Counters;

namespace SiaExporter.Storage;

/// <summary>
/// The history tables. <c>traffic</c> keeps the original collector's columns (one row per client
/// per 5-minute bucket, bytes only, the three default classes); everything else sits beside it:
/// <list type="bullet">
/// <item><c>traffic_detail</c>: every port class, bytes and packets, one row per bucket, client
/// and class (long in the class, both directions in columns named like traffic's up_/down_: half
/// the rows of one row per direction, so half the statements per flush and a third less disk).</item>
/// <item><c>traffic_host</c>: the kernel's exact host totals per bucket and class, to check the
/// sum over clients (including <c>overflow</c>) against.</item>
/// <item><c>traffic_hourly</c>, <c>traffic_daily</c> and <c>traffic_host_hourly</c>,
/// <c>traffic_host_daily</c>: the same rows as traffic_detail and traffic_host over hours and UTC
/// days (<see cref="HistoryTiers"/>), written in the same transaction as the 5-minute rows.</item>
/// <item><c>counter_baseline</c>: the counter values already written, per client, stored in the
/// same transaction as the deltas (exactly once across crashes).</item>
/// <item><c>collector_state</c>: which map generation and port classes the baseline belongs to.</item>
/// <item><c>push_outbox</c>, <c>push_meta</c>: what the API push sent (created by <see cref="PushOutbox"/>).</item>
/// </list>
/// Traffic of clients that found the kernel map full is stored under client_ip
/// <see cref="OverflowClient"/> in <c>traffic</c> and <c>traffic_detail</c>, so the sum over
/// rows equals the host total.
/// </summary>
public static class HistorySchema
{
    /// <summary>client_ip of the traffic the kernel counted without a client entry (map full).</summary>
    public const string OverflowClient = "overflow";

    /// <summary>counter_baseline key of the host totals.</summary>
    internal const string TotalsKey = "totals";

    /// <summary>The original columns of <c>traffic</c> and the class each one holds, in order.</summary>
    public static readonly IReadOnlyList<(string Column, PortClass Class, Direction Direction)> SeedColumns =
    [
        ("up_9981", new PortClass(9981, Protocol.Tcp), Direction.Up),
        ("down_9981", new PortClass(9981, Protocol.Tcp), Direction.Down),
        ("up_9984_tcp", new PortClass(9984, Protocol.Tcp), Direction.Up),
        ("down_9984_tcp", new PortClass(9984, Protocol.Tcp), Direction.Down),
        ("up_9984_udp", new PortClass(9984, Protocol.Udp), Direction.Up),
        ("down_9984_udp", new PortClass(9984, Protocol.Udp), Direction.Down),
    ];

    /// <summary>One row per bucket, client and class: the 5-minute, hourly and daily tiers share it.</summary>
    private static string ClientTable(string name) => $"""
        CREATE TABLE IF NOT EXISTS {name} (
            bucket       INTEGER NOT NULL,
            client_ip    TEXT    NOT NULL,
            port         INTEGER NOT NULL,
            proto        TEXT    NOT NULL,
            up_bytes     INTEGER NOT NULL,
            down_bytes   INTEGER NOT NULL,
            up_packets   INTEGER NOT NULL,
            down_packets INTEGER NOT NULL,
            PRIMARY KEY (bucket, client_ip, port, proto)
        ) WITHOUT ROWID;

        """;

    /// <summary>The host totals per bucket and class, in every tier.</summary>
    private static string HostTable(string name) => $"""
        CREATE TABLE IF NOT EXISTS {name} (
            bucket       INTEGER NOT NULL,
            port         INTEGER NOT NULL,
            proto        TEXT    NOT NULL,
            up_bytes     INTEGER NOT NULL,
            down_bytes   INTEGER NOT NULL,
            up_packets   INTEGER NOT NULL,
            down_packets INTEGER NOT NULL,
            PRIMARY KEY (bucket, port, proto)
        ) WITHOUT ROWID;

        """;

    private static readonly string Tables =
        ClientTable("traffic_detail") + HostTable("traffic_host") +
        ClientTable("traffic_hourly") + ClientTable("traffic_daily") +
        HostTable("traffic_host_hourly") + HostTable("traffic_host_daily") + """
        CREATE TABLE IF NOT EXISTS traffic (
            client_ip     TEXT    NOT NULL,
            up_9981       INTEGER NOT NULL DEFAULT 0,
            down_9981     INTEGER NOT NULL DEFAULT 0,
            up_9984_tcp   INTEGER NOT NULL DEFAULT 0,
            down_9984_tcp INTEGER NOT NULL DEFAULT 0,
            up_9984_udp   INTEGER NOT NULL DEFAULT 0,
            down_9984_udp INTEGER NOT NULL DEFAULT 0,
            timestamp     INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS counter_baseline (
            client TEXT NOT NULL PRIMARY KEY,
            slots  BLOB NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS collector_state (
            key   TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        """;

    /// <summary>The API push's bookkeeping (<see cref="PushOutbox"/>).</summary>
    private const string OutboxTables = """
        CREATE TABLE IF NOT EXISTS push_outbox (
            bucket       INTEGER PRIMARY KEY,
            state        TEXT    NOT NULL DEFAULT 'pending',
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT,
            sent_at      INTEGER,
            next_attempt INTEGER
        );
        CREATE TABLE IF NOT EXISTS push_meta (
            key   TEXT NOT NULL PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        """;

    private const string UniqueIndex =
        "CREATE UNIQUE INDEX IF NOT EXISTS traffic_bucket_client ON traffic(timestamp, client_ip)";

    /// <summary>PRAGMA user_version of a database with the hourly and daily tiers (0: before them).</summary>
    public const int Version = 1;

    /// <summary>Creates what is missing and migrates in place, in one transaction (a failure leaves
    /// the file as it was). Version 0 → 1: the hourly and daily tiers are filled once from the rows
    /// already there (<see cref="HistoryMigration"/>), and user_version says so. A</summary>
    /// <remarks>A <c>traffic</c> table of the first Go collector (column
    /// <c>ip</c>, no <c>client_ip</c>) is renamed to <c>traffic_go_collector</c> and kept; one
    /// with client_ip but several rows per (timestamp, client_ip) has them summed into one, so
    /// the unique index the upsert needs can be built.</remarks>
    public static void Ensure(SqliteConnection connection, ILogger logger)
    {
        using var tx = connection.BeginTransaction();
        var version = UserVersion(connection, tx);
        if (version > Version)
            throw new StorageException($"the history database has schema version {version}, newer than this collector's {Version}: run the newer collector, or point SQLITE_PATH at another file");
        if (TableExists(connection, tx, "traffic") && !ColumnExists(connection, tx, "traffic", "client_ip"))
        {
            Exec(connection, tx, "ALTER TABLE traffic RENAME TO traffic_go_collector");
            logger.LogWarning("SQLite: the existing traffic table has no client_ip column (first Go collector); kept as traffic_go_collector");
        }
        Exec(connection, tx, Tables);
        try
        {
            Exec(connection, tx, UniqueIndex);
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 19 /* SQLITE_CONSTRAINT */)
        {
            var columns = string.Join(", ", SeedColumns.Select(c => $"SUM(coalesce({c.Column}, 0))"));
            var names = string.Join(", ", SeedColumns.Select(c => c.Column));
            Exec(connection, tx, $"""
                CREATE TEMP TABLE traffic_merged AS
                    SELECT client_ip, {columns}, timestamp
                    FROM traffic WHERE client_ip IS NOT NULL AND timestamp IS NOT NULL GROUP BY timestamp, client_ip;
                DELETE FROM traffic;
                INSERT INTO traffic (client_ip, {names}, timestamp) SELECT * FROM traffic_merged;
                DROP TABLE traffic_merged;
                """);
            Exec(connection, tx, UniqueIndex);
            logger.LogWarning("SQLite: traffic had several rows per client and bucket (older collector); merged them into one each");
        }
        if (version < 1) HistoryMigration.FillTiers(connection, tx, logger);
        if (version != Version) Exec(connection, tx, $"PRAGMA user_version = {Version}"); // no write (and no lock) when current
        tx.Commit();
    }

    /// <summary>Creates the API push's tables when missing: <c>push_outbox</c> and <c>push_meta</c>.</summary>
    public static void EnsureOutbox(SqliteConnection connection) => Exec(connection, null, OutboxTables);

    public static long UserVersion(SqliteConnection c, SqliteTransaction? tx)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "PRAGMA user_version";
        return (long)cmd.ExecuteScalar()!;
    }

    private static bool TableExists(SqliteConnection c, SqliteTransaction tx, string table)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $n";
        cmd.Parameters.AddWithValue("$n", table);
        return (long)cmd.ExecuteScalar()! > 0;
    }

    private static bool ColumnExists(SqliteConnection c, SqliteTransaction tx, string table, string column)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT count(*) FROM pragma_table_info($t) WHERE name = $c";
        cmd.Parameters.AddWithValue("$t", table);
        cmd.Parameters.AddWithValue("$c", column);
        return (long)cmd.ExecuteScalar()! > 0;
    }

    internal static void Exec(SqliteConnection c, SqliteTransaction? tx, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
