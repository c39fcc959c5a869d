using System.Text.Json.Serialization;

namespace SiaExporter.Dashboard;

// The JSON the dashboard API answers with (docs/reference.md, "Dashboard API"). Times are Unix
// seconds, volumes bytes, rates bytes per second. Serialized by the source generator below
// (Native AOT: no reflection).

/// <summary>Bytes and packets of one class and direction.</summary>
public sealed record ClassTraffic(string Class, string Direction, long Bytes, long Packets);

/// <summary>One line of the live chart: bytes/s per point, null where the counters restarted.</summary>
public sealed record LiveSeries(string Class, string Direction, double?[] Values);

public sealed record LiveView(long Step, long[] T, IReadOnlyList<LiveSeries> Series);

public sealed record Period(long From, long To);

/// <summary>GET /api/v1/summary.</summary>
public sealed record Summary(
    string Host, string Version, long Now, string? Anonymize, IReadOnlyList<string> Classes,
    Period Billing, LiveView Live, IReadOnlyList<ClassTraffic> Totals);

/// <summary>One line of a history chart: bytes per step.</summary>
public sealed record HistorySeries(string Class, string Direction, long[] Values);

/// <summary>A step whose 9981 rate went over the spike threshold (see <see cref="SpikeDetector"/>).</summary>
public sealed record Spike(long T, string Direction, double Rate, double Threshold);

/// <summary>GET /api/v1/history: the host, or one client when <c>Client</c> is set.</summary>
public sealed record HistoryView(
    long From, long To, long Step, long Resolution, string? Client, IReadOnlyList<string> Classes,
    long[] T, IReadOnlyList<HistorySeries> Series, IReadOnlyList<ClassTraffic> Totals, IReadOnlyList<Spike> Spikes);

/// <summary>One client of GET /api/v1/clients, with bytes per step for its sparkline.</summary>
public sealed record ClientSummary(string Client, long Down, long Up, long Total, IReadOnlyList<ClassTraffic> Classes, long[] Spark);

/// <summary>GET /api/v1/clients.</summary>
public sealed record ClientsView(long From, long To, long Step, IReadOnlyList<ClientSummary> Clients);

/// <summary>Every non-2xx answer of the API.</summary>
public sealed record ApiError(string Error);

/// <summary>One row of GET /api/v1/export?format=json: a bucket, a client, a class.</summary>
public sealed record ExportRow(long Bucket, string Client, string Class, long UpBytes, long DownBytes, long UpPackets, long DownPackets);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(Summary))]
[JsonSerializable(typeof(HistoryView))]
[JsonSerializable(typeof(ClientsView))]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(ExportRow))]
public sealed partial class DashboardJsonContext : JsonSerializerContext;
