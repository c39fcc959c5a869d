using SiaExporter.Counters;
using SiaExporter.Web;
using S = SiaExporter.Hosting.SettingsTable;

namespace SiaExporter.Hosting;

/// <summary>How an XDP program is attached for ingress (XDP_MODE).</summary>
public enum XdpMode
{
    /// <summary>Native (driver) XDP, else the skb path (TC ingress), which counts GRO-merged packets exactly.</summary>
    Auto,
    Native,
    /// <summary>The skb path: counted by a TC ingress program, like generic XDP but GRO-exact.</summary>
    Generic,
}

/// <summary>What the kernel side loads and where it attaches: the object, its maps, its hooks.</summary>
public sealed record KernelOptions
{
    public IReadOnlyList<string> Interfaces { get; init; } = S.Interface.Default;
    public PortClassSet Ports { get; init; } = S.Ports.Default;
    public int MaxClients { get; init; } = S.MaxClients.Default;
    public XdpMode XdpMode { get; init; } = S.XdpMode.Default;
    /// <summary>auto (TCX link, else a netlink clsact filter), tcx, netlink.</summary>
    public string TcAttach { get; init; } = S.TcAttach.Default;
    public string BpfObjectPath { get; init; } = S.BpfObject.Default;
    public string PinDirectory { get; init; } = S.PinDirectory.Default;
    /// <summary>Keep BPF run-time statistics on for the daemon's lifetime (two clock reads per packet; needs CAP_SYS_ADMIN).</summary>
    public bool BpfStats { get; init; } = S.BpfStats.Default;
}

/// <summary>How clients are seen by every reader of the counters (metrics, history, log, push).</summary>
public sealed record ClientOptions
{
    /// <summary>Clients reported by prefix instead of address; totals unchanged.</summary>
    public ClientPrefix Anonymize { get; init; } = S.Anonymize.Default;
    /// <summary>A client whose counters have not moved for this long leaves /metrics and, once flushed, the kernel map.</summary>
    public TimeSpan IdleTimeout { get; init; } = S.ClientIdleTimeout.Default;
}

/// <summary>Where and how /metrics and / are served.</summary>
public sealed record WebOptions
{
    /// <summary>One or more [HOST]:PORT, comma separated (<see cref="Hosting.ListenAddress.ParseList"/>).</summary>
    public string ListenAddress { get; init; } = S.ListenAddress.Default;
    /// <summary>Exporter-toolkit web config (TLS, basic auth); null: plain HTTP, no auth.</summary>
    public string? ConfigFile { get; init; } = S.WebConfigFile.Default;
    /// <summary>Where the metrics are served (/metrics).</summary>
    public string TelemetryPath { get; init; } = S.WebTelemetryPath.Default;
    /// <summary>Listen on the sockets systemd passed (LISTEN_FDS) instead of <see cref="ListenAddress"/>.</summary>
    public bool SystemdSocket { get; init; } = S.WebSystemdSocket.Default;
    /// <summary>Scrapes served at once; beyond, 503. 0: no limit.</summary>
    public int MaxRequests { get; init; } = S.WebMaxRequests.Default;
    /// <summary>No process_* metrics about the exporter itself.</summary>
    public bool DisableExporterMetrics { get; init; } = S.WebDisableExporterMetrics.Default;
}

/// <summary>hostd's API, read for its syncer peers (sia_client_info); off without <see cref="ApiUrl"/>.</summary>
public sealed record HostdOptions
{
    /// <summary>http://127.0.0.1:9980/api: the base that /syncer/peers is appended to.</summary>
    public string? ApiUrl { get; init; } = S.HostdApiUrl.Default;
    public string? ApiPassword { get; init; } = S.HostdApiPassword.Default;
    public TimeSpan PollInterval { get; init; } = S.HostdPollInterval.Default;
    public bool Enabled => !string.IsNullOrEmpty(ApiUrl);
}

/// <summary>What /metrics publishes and where its publication state survives restarts.</summary>
public sealed record MetricsOptions
{
    public int TopClients { get; init; } = S.MetricsTopClients.Default;
    /// <summary>Subnets with their own sia_traffic_subnet_bytes_total series; 0: none at all.</summary>
    public int TopSubnets { get; init; } = S.MetricsTopSubnets.Default;
    /// <summary>The prefix lengths of a subnet (/24, /48).</summary>
    public ClientPrefix SubnetPrefix { get; init; } = S.SubnetPrefix.Default;
    public string StateDirectory { get; init; } = S.StateDirectory.Default;
}

/// <summary>The SQLite history the daemon writes (its tuning is <see cref="Storage.HistoryOptions"/>).</summary>
public sealed record DatabaseOptions
{
    public string SqlitePath { get; init; } = S.SqlitePath.Default;
    /// <summary>Days the daily tier keeps: the whole history.</summary>
    public int RetentionDays { get; init; } = S.RetentionDays.Default;
    /// <summary>Days the 5-minute rows are kept.</summary>
    public int RawRetentionDays { get; init; } = S.RawRetentionDays.Default;
    /// <summary>Days the hourly rows are kept.</summary>
    public int HourlyRetentionDays { get; init; } = S.HourlyRetentionDays.Default;
    /// <summary>How often counters are flushed, on the boundary.</summary>
    public TimeSpan FlushInterval { get; init; } = S.FlushInterval.Default;
}

/// <summary>Billing periods and the optional monthly quota.</summary>
public sealed record BillingOptions
{
    /// <summary>Day of the month (1–28) a billing month starts, 00:00 UTC.</summary>
    public int Day { get; init; } = S.BillingDay.Default;
    /// <summary>Upload quota per billing month, every class; null: none.</summary>
    public long? QuotaUpBytes { get; init; } = S.QuotaUp.Default;
    /// <summary>Download quota per billing month, every class; null: none.</summary>
    public long? QuotaDownBytes { get; init; } = S.QuotaDown.Default;
}

/// <summary>The live view of the busiest clients in the journal.</summary>
public sealed record LogOptions
{
    public TimeSpan Interval { get; init; } = S.LogInterval.Default;
    public int Top { get; init; } = S.LogTop.Default;
}

/// <summary>The remote push; <see cref="Push.PushOptions.From"/> turns it into the push's own record.</summary>
public sealed record ApiOptions
{
    public string? Endpoint { get; init; } = S.ApiEndpoint.Default;
    public string? Token { get; init; } = S.ApiToken.Default;
    public bool Enabled => !string.IsNullOrEmpty(Endpoint) && !string.IsNullOrEmpty(Token);
}

/// <summary>
/// Every setting of the daemon (docs/reference.md), parsed and validated by <see cref="CollectorSettings"/>
/// from <see cref="SettingsTable"/>: one record per component, plus the host's name that several show.
/// Defaults come from the table alone.
/// </summary>
public sealed class CollectorOptions
{
    /// <summary>Shown in sia_exporter_build_info, on / and in API pushes.</summary>
    public string SiaHostname { get; init; } = S.SiaHostname.Default;
    public KernelOptions Kernel { get; init; } = new();
    public ClientOptions Clients { get; init; } = new();
    public WebOptions Web { get; init; } = new();
    public MetricsOptions Metrics { get; init; } = new();
    public DatabaseOptions Database { get; init; } = new();
    public LogOptions Log { get; init; } = new();
    public ApiOptions Api { get; init; } = new();
    public BillingOptions Billing { get; init; } = new();
    public HostdOptions Hostd { get; init; } = new();

    // Shorthands for the component values that Metrics, Storage, Push, the hosted services and the
    // tests read by their flat name. Each reads (and, in an initializer, writes) the component record:
    // no value and no default lives here.
    public IReadOnlyList<string> Interfaces { get => Kernel.Interfaces; init => Kernel = Kernel with { Interfaces = value }; }
    public PortClassSet Ports { get => Kernel.Ports; init => Kernel = Kernel with { Ports = value }; }
    public int MaxClients { get => Kernel.MaxClients; init => Kernel = Kernel with { MaxClients = value }; }
    public XdpMode XdpMode { get => Kernel.XdpMode; init => Kernel = Kernel with { XdpMode = value }; }
    public string TcAttach { get => Kernel.TcAttach; init => Kernel = Kernel with { TcAttach = value }; }
    public string BpfObjectPath { get => Kernel.BpfObjectPath; init => Kernel = Kernel with { BpfObjectPath = value }; }
    public string PinDirectory { get => Kernel.PinDirectory; init => Kernel = Kernel with { PinDirectory = value }; }
    public bool BpfStats { get => Kernel.BpfStats; init => Kernel = Kernel with { BpfStats = value }; }
    public ClientPrefix Anonymize { get => Clients.Anonymize; init => Clients = Clients with { Anonymize = value }; }
    public TimeSpan ClientIdleTimeout { get => Clients.IdleTimeout; init => Clients = Clients with { IdleTimeout = value }; }
    public string ListenAddress { get => Web.ListenAddress; init => Web = Web with { ListenAddress = value }; }
    public string? WebConfigFile { get => Web.ConfigFile; init => Web = Web with { ConfigFile = value }; }
    public int MetricsTopClients { get => Metrics.TopClients; init => Metrics = Metrics with { TopClients = value }; }
    public string StateDirectory { get => Metrics.StateDirectory; init => Metrics = Metrics with { StateDirectory = value }; }
    public string SqlitePath { get => Database.SqlitePath; init => Database = Database with { SqlitePath = value }; }
    public int RetentionDays { get => Database.RetentionDays; init => Database = Database with { RetentionDays = value }; }
    public TimeSpan FlushInterval { get => Database.FlushInterval; init => Database = Database with { FlushInterval = value }; }
    public TimeSpan LogInterval { get => Log.Interval; init => Log = Log with { Interval = value }; }
    public int LogTop { get => Log.Top; init => Log = Log with { Top = value }; }
    public string? ApiEndpoint { get => Api.Endpoint; init => Api = Api with { Endpoint = value }; }
    public string? ApiToken { get => Api.Token; init => Api = Api with { Token = value }; }
    public bool ApiPushEnabled => Api.Enabled;

    /// <summary>Default /metrics port. 9981–9984 are hostd's; 9100–9999 are taken in Prometheus'
    /// default port allocations; see README for why this one.</summary>
    public const int DefaultPort = 10981;
}
