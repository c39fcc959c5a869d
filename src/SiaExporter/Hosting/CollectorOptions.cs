using SiaExporter.Counters;

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

/// <summary>
/// Every setting of the daemon (SPEC.md), already parsed and validated: from the environment,
/// /etc/collector.env (or --config FILE) and --kebab-case flags. See <c>CollectorSettings</c>.
/// </summary>
public sealed class CollectorOptions
{
    public string SiaHostname { get; init; } = Environment.MachineName;
    public IReadOnlyList<string> Interfaces { get; init; } = [];
    public string SqlitePath { get; init; } = "/var/lib/collector/traffic.db";
    public string? ApiEndpoint { get; init; }
    public string? ApiToken { get; init; }
    public string ListenAddress { get; init; } = ":" + DefaultPort;
    public PortClassSet Ports { get; init; } = PortClassSet.DefaultSet;
    public int MetricsTopClients { get; init; } = 1000;
    public int MaxClients { get; init; } = 16384;
    public XdpMode XdpMode { get; init; } = XdpMode.Auto;
    public int RetentionDays { get; init; } = 400;
    public string? WebConfigFile { get; init; }
    /// <summary>Keep BPF run-time statistics on for the daemon's lifetime (BPF_STATS=on|off, default
    /// off). They time every program run (two clock reads per packet) and need CAP_SYS_ADMIN;
    /// bench/traffic.sh measured 88–94% of the throughput with them on, 99–101% off.</summary>
    public bool BpfStats { get; init; }
    /// <summary>Clients reported by prefix instead of address (ANONYMIZE=/24,/48); totals unchanged.</summary>
    public SiaExporter.Web.ClientPrefix Anonymize { get; init; } = SiaExporter.Web.ClientPrefix.None;

    /// <summary>The compiled eBPF object (BPF_OBJECT; default: beside the binary, else /var/lib/collector/bpf/).</summary>
    public string BpfObjectPath { get; init; } = "collector.bpf.o";
    /// <summary>Where maps and links are pinned (PIN_DIRECTORY).</summary>
    public string PinDirectory { get; init; } = "/sys/fs/bpf/collector";
    /// <summary>State kept between runs besides SQLite (STATE_DIRECTORY; default: the database's folder).</summary>
    public string StateDirectory { get; init; } = "/var/lib/collector";
    /// <summary>A client whose counters have not moved for this long leaves /metrics and, once flushed, the kernel map (CLIENT_IDLE_TIMEOUT).</summary>
    public TimeSpan ClientIdleTimeout { get; init; } = TimeSpan.FromHours(1);
    /// <summary>How often the top clients are written to the journal (LOG_INTERVAL).</summary>
    public TimeSpan LogInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How many clients the live log shows per class and direction (LOG_TOP).</summary>
    public int LogTop { get; init; } = 5;
    /// <summary>How often counters are flushed to SQLite (FLUSH_INTERVAL), on the boundary.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMinutes(1);
    /// <summary>How the egress (and skb-path ingress) program is attached (TC_ATTACH): auto (TCX link, else a netlink clsact filter), tcx, netlink.</summary>
    public string TcAttach { get; init; } = "auto";

    public bool ApiPushEnabled => !string.IsNullOrEmpty(ApiEndpoint) && !string.IsNullOrEmpty(ApiToken);

    /// <summary>Default /metrics port. 9981–9984 are hostd's; 9100–9999 are taken in Prometheus'
    /// default port allocations; see README for why this one.</summary>
    public const int DefaultPort = 10981;
}
