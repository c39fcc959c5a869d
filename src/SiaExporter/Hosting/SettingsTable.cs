using System.Globalization;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Storage;
using SiaExporter.Web;

namespace SiaExporter.Hosting;

/// <summary>
/// Every setting of the daemon, once: name, default, parser, help and the options record it feeds.
/// The environment and --flags (<see cref="CollectorSettings"/>), `collector --help`,
/// collector.env.example and the settings section of docs/reference.md (<see cref="SettingsDocs"/>)
/// are all produced from <see cref="All"/>. Seed-compatible names come first.
/// </summary>
public static class SettingsTable
{
    public static readonly Setting<string> SiaHostname = Text("SIA_HOSTNAME", "a name", typeof(CollectorOptions), nameof(CollectorOptions.SiaHostname),
        System.Net.Dns.GetHostName(),
        "Shown in sia_exporter_build_info, on the / page and in API pushes.", defaultWords: "the machine's hostname");

    public static readonly Setting<IReadOnlyList<string>> Interface = new("INTERFACE", typeof(KernelOptions), nameof(KernelOptions.Interfaces),
        [], ParseInterfaces, format: null,
        "One or more interfaces to count on, comma separated.")
    {
        Accepts = "interface names, comma separated",
        DefaultWords = "the interface of the default route",
        Example = "eth0",
        Check = InterfaceProblems,
    };

    public static readonly Setting<string> SqlitePath = Text("SQLITE_PATH", "a file path", typeof(DatabaseOptions), nameof(DatabaseOptions.SqlitePath),
        "/var/lib/collector/traffic.db",
        "The history database (SQLite, WAL mode); `make run` uses ./data/traffic.db.");

    public static readonly Setting<string?> ApiEndpoint = new("API_ENDPOINT", typeof(ApiOptions), nameof(ApiOptions.Endpoint),
        null, ParseEndpoint, v => v ?? "",
        "URL that every closed 5-minute bucket is POSTed to; push is off unless API_ENDPOINT and API_TOKEN are both set.")
    {
        Accepts = "an http:// or https:// URL",
    };

    public static readonly Setting<string?> ApiToken = new("API_TOKEN", typeof(ApiOptions), nameof(ApiOptions.Token),
        null, t => t, v => v ?? "",
        "Bearer token of the API push.")
    {
        Accepts = "any text",
        Secret = true,
    };

    public static readonly Setting<string> ListenAddress = new("LISTEN_ADDRESS", typeof(WebOptions), nameof(WebOptions.ListenAddress),
        ":" + CollectorOptions.DefaultPort, ParseListenAddress, v => v,
        "Where /metrics and / are served: [HOST]:PORT, `:PORT` for every address; several, comma separated.")
    {
        Accepts = "[HOST]:PORT, comma separated, for example :10981 or 127.0.0.1:10981,[::1]:10981",
        Aliases = ["--web.listen-address"],
        Repeatable = true,
    };

    public static readonly Setting<PortClassSet> Ports = new("PORTS", typeof(KernelOptions), nameof(KernelOptions.Ports),
        PortClassSet.DefaultSet, PortClassSet.Parse, v => v.ToString(),
        $"The counted port classes, PORT/PROTO comma separated (at most {BpfConstants.MaxClasses}); no rebuild needed to change them.")
    {
        Accepts = "PORT/PROTO, comma separated (tcp or udp)",
    };

    public static readonly Setting<int> MetricsTopClients = WholeNumber("METRICS_TOP_CLIENTS", typeof(MetricsOptions), nameof(MetricsOptions.TopClients),
        1000, 0, 1_000_000,
        "Clients with their own series on /metrics; the rest are summed into client=\"other\".");

    public static readonly Setting<int> MaxClients = WholeNumber("MAX_CLIENTS", typeof(KernelOptions), nameof(KernelOptions.MaxClients),
        BpfConstants.DefaultMaxClients, 16, 16_777_216,
        "Capacity of the kernel client map; beyond it traffic is still counted (overflow), never lost. Changing it restarts the counters.");

    public static readonly Setting<XdpMode> XdpMode = new("XDP_MODE", typeof(KernelOptions), nameof(KernelOptions.XdpMode),
        Hosting.XdpMode.Auto, ParseXdpMode, v => v.ToString().ToLowerInvariant(),
        "Ingress hook: auto (native XDP on hardware devices, else the skb path), native (XDP), generic (the skb path).")
    {
        Accepts = "auto, native or generic",
    };

    public static readonly Setting<int> RetentionDays = WholeNumber("RETENTION_DAYS", typeof(DatabaseOptions), nameof(DatabaseOptions.RetentionDays),
        400, 1, 36_500,
        "Days of history kept in SQLite: the daily tier (traffic_daily, traffic_host_daily) keeps this long.");

    public static readonly Setting<int> RawRetentionDays = WholeNumber("RAW_RETENTION_DAYS", typeof(DatabaseOptions), nameof(DatabaseOptions.RawRetentionDays),
        HistoryTiers.DefaultRawDays, 1, 36_500,
        "Days the 5-minute rows (traffic, traffic_detail, traffic_host) are kept; older ranges are read from the hourly and daily tiers. At most HOURLY_RETENTION_DAYS.");

    public static readonly Setting<int> HourlyRetentionDays = WholeNumber("HOURLY_RETENTION_DAYS", typeof(DatabaseOptions), nameof(DatabaseOptions.HourlyRetentionDays),
        HistoryTiers.DefaultHourlyDays, 1, 36_500,
        "Days the hourly rows (traffic_hourly, traffic_host_hourly) are kept. At most RETENTION_DAYS.");

    public static readonly Setting<int> BillingDay = WholeNumber("BILLING_DAY", typeof(BillingOptions), nameof(BillingOptions.Day),
        1, 1, 28,
        "Day of the month a billing period starts (00:00 UTC); `collector top --period month`, `collector report` and the quota use it.");

    public static readonly Setting<long?> QuotaUp = ByteSize("QUOTA_UP", typeof(BillingOptions), nameof(BillingOptions.QuotaUpBytes),
        "Monthly upload quota of the billing period, all classes; exposed as sia_exporter_quota_bytes{direction=\"up\"} for the projected-month alert. Empty: no quota.");

    public static readonly Setting<long?> QuotaDown = ByteSize("QUOTA_DOWN", typeof(BillingOptions), nameof(BillingOptions.QuotaDownBytes),
        "Monthly download quota of the billing period, all classes, like QUOTA_UP. Empty: no quota.");

    public static readonly Setting<string?> WebConfigFile = new("WEB_CONFIG_FILE", typeof(WebOptions), nameof(WebOptions.ConfigFile),
        null, ParseExistingFile, v => v ?? "",
        "Prometheus exporter-toolkit web config for / and /metrics: TLS, client certificates, bcrypt basic auth.")
    {
        Accepts = "the path of an existing file",
        Aliases = ["--web.config.file"],
    };

    public static readonly Setting<string> WebTelemetryPath = new("WEB_TELEMETRY_PATH", typeof(WebOptions), nameof(WebOptions.TelemetryPath),
        "/metrics", ParseTelemetryPath, v => v,
        "The path Prometheus scrapes; / stays the page of the busiest clients.")
    {
        Accepts = "a path starting with / (not / itself)",
        Aliases = ["--web.telemetry-path"],
    };

    public static readonly Setting<bool> WebSystemdSocket = new("WEB_SYSTEMD_SOCKET", typeof(WebOptions), nameof(WebOptions.SystemdSocket),
        false, ParseOnOff, v => v ? "on" : "off",
        "Serve on the sockets systemd passes (collector.socket, socket activation) instead of LISTEN_ADDRESS.")
    {
        Accepts = "on or off",
        Aliases = ["--web.systemd-socket"],
        IsSwitch = true,
    };

    public static readonly Setting<int> WebMaxRequests = WholeNumber("WEB_MAX_REQUESTS", typeof(WebOptions), nameof(WebOptions.MaxRequests),
        40, 0, 100_000,
        "Scrapes served at the same time; one more gets 503 Service Unavailable. 0: no limit.",
        aliases: ["--web.max-requests"]);

    public static readonly Setting<bool> WebDisableExporterMetrics = new("WEB_DISABLE_EXPORTER_METRICS", typeof(WebOptions), nameof(WebOptions.DisableExporterMetrics),
        false, ParseOnOff, v => v ? "on" : "off",
        "Leave out the metrics about the exporter process itself (process_*); the sia_* series stay.")
    {
        Accepts = "on or off",
        Aliases = ["--web.disable-exporter-metrics"],
        IsSwitch = true,
    };

    public static readonly Setting<int> MetricsTopSubnets = WholeNumber("METRICS_TOP_SUBNETS", typeof(MetricsOptions), nameof(MetricsOptions.TopSubnets),
        100, 0, 100_000,
        "Subnets (SUBNET_PREFIX) with their own sia_traffic_subnet_bytes_total series; the rest are summed into subnet=\"other\". 0: no subnet series.");

    public static readonly Setting<ClientPrefix> SubnetPrefix = new("SUBNET_PREFIX", typeof(MetricsOptions), nameof(MetricsOptions.SubnetPrefix),
        new ClientPrefix(24, 48), ClientPrefix.Parse, v => $"/{v.IPv4Bits},/{v.IPv6Bits}",
        "The prefix lengths of the subnet series, IPv4 then IPv6 (a coarser ANONYMIZE wins).")
    {
        Accepts = "/V4,/V6 prefix lengths",
    };

    public static readonly Setting<string?> HostdApiUrl = new("HOSTD_API_URL", typeof(HostdOptions), nameof(HostdOptions.ApiUrl),
        null, ParseEndpoint, v => v ?? "",
        "hostd's API, e.g. http://127.0.0.1:9980/api: its syncer peers become sia_client_info{role=\"syncer_peer\"}. Off when empty.")
    {
        Accepts = "an http:// or https:// URL",
    };

    public static readonly Setting<string?> HostdApiPassword = new("HOSTD_API_PASSWORD", typeof(HostdOptions), nameof(HostdOptions.ApiPassword),
        null, t => t, v => v ?? "",
        "hostd's API password (its http.password), sent with HTTP basic auth.")
    {
        Accepts = "any text",
        Secret = true,
    };

    public static readonly Setting<TimeSpan> HostdPollInterval = Duration("HOSTD_POLL_INTERVAL", typeof(HostdOptions), nameof(HostdOptions.PollInterval),
        TimeSpan.FromMinutes(1),
        "How often hostd's syncer peers are read.");

    public static readonly Setting<string> BpfObject = Text("BPF_OBJECT", "a file path", typeof(KernelOptions), nameof(KernelOptions.BpfObjectPath),
        DefaultBpfObjectPath(),
        "The compiled eBPF object.", defaultWords: "collector.bpf.o beside the binary, else /var/lib/collector/bpf/collector.bpf.o");

    public static readonly Setting<string> PinDirectory = Text("PIN_DIRECTORY", "a directory on bpffs", typeof(KernelOptions), nameof(KernelOptions.PinDirectory),
        "/sys/fs/bpf/collector",
        "Where the counter maps and hook links are pinned (bpffs), so counting survives a crash.");

    public static readonly Setting<string> StateDirectory = Text("STATE_DIRECTORY", "a directory", typeof(MetricsOptions), nameof(MetricsOptions.StateDirectory),
        Path.GetDirectoryName(SqlitePath.Default)!,
        "State kept between runs besides SQLite (which clients /metrics publishes).", defaultWords: "the folder of SQLITE_PATH");

    public static readonly Setting<TimeSpan> ClientIdleTimeout = Duration("CLIENT_IDLE_TIMEOUT", typeof(ClientOptions), nameof(ClientOptions.IdleTimeout),
        TimeSpan.FromHours(1),
        "A client idle this long leaves /metrics and, once flushed, the kernel map.");

    public static readonly Setting<TimeSpan> LogInterval = Duration("LOG_INTERVAL", typeof(LogOptions), nameof(LogOptions.Interval),
        TimeSpan.FromSeconds(30),
        "How often the busiest clients are written to the journal.");

    public static readonly Setting<int> LogTop = WholeNumber("LOG_TOP", typeof(LogOptions), nameof(LogOptions.Top),
        5, 1, 1000,
        "Clients the journal shows per class and direction.");

    public static readonly Setting<TimeSpan> FlushInterval = new("FLUSH_INTERVAL", typeof(DatabaseOptions), nameof(DatabaseOptions.FlushInterval),
        TimeSpan.FromMinutes(1), FlushIntervals.Parse, DurationText.Format,
        "How often the counters are flushed to SQLite, on the clock's boundary; also the API push's cadence. " +
        "It must divide the 5-minute bucket, so every flush falls on a bucket's boundary.")
    {
        Accepts = FlushIntervals.Accepts,
    };

    public static readonly Setting<string> TcAttach = new("TC_ATTACH", typeof(KernelOptions), nameof(KernelOptions.TcAttach),
        "auto", ParseTcAttach, v => v,
        "How the TC programs are attached: auto (a TCX link, else a netlink clsact filter), tcx, netlink.")
    {
        Accepts = "auto, tcx or netlink",
    };

    public static readonly Setting<ClientPrefix> Anonymize = new("ANONYMIZE", typeof(ClientOptions), nameof(ClientOptions.Anonymize),
        ClientPrefix.None, ClientPrefix.Parse, v => v.IsNone ? "" : $"/{v.IPv4Bits},/{v.IPv6Bits}",
        "Report clients by prefix instead of address everywhere (/metrics, SQLite, push, log), e.g. /24,/48 " +
        "shows 203.0.113.57 as 203.0.113.0. Totals are unchanged.")
    {
        Accepts = "/V4,/V6 prefix lengths, or off",
    };

    public static readonly Setting<bool> BpfStats = new("BPF_STATS", typeof(KernelOptions), nameof(KernelOptions.BpfStats),
        false, ParseOnOff, v => v ? "on" : "off",
        "Time every BPF program run for sia_exporter_bpf_run_time_seconds_total (needs CAP_SYS_ADMIN). " +
        "It costs two clock reads per packet (6–12% of veth throughput measured here).")
    {
        Accepts = "on or off",
    };

    /// <summary>Every setting, in the order --help, the example file and the reference list them.</summary>
    public static readonly IReadOnlyList<Setting> All =
    [
        SiaHostname, Interface, SqlitePath, ApiEndpoint, ApiToken, ListenAddress, Ports,
        MetricsTopClients, MaxClients, XdpMode, RetentionDays, RawRetentionDays, HourlyRetentionDays, WebConfigFile,
        BpfObject, PinDirectory, StateDirectory, ClientIdleTimeout, LogInterval, LogTop,
        FlushInterval, TcAttach, Anonymize, BpfStats, BillingDay, QuotaUp, QuotaDown,
        WebTelemetryPath, WebSystemdSocket, WebMaxRequests, WebDisableExporterMetrics, MetricsTopSubnets, SubnetPrefix,
        HostdApiUrl, HostdApiPassword, HostdPollInterval,
    ];

    public static Setting? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    /// <summary>The setting a flag sets: its own --kebab-case name (any case, _ for -) or one of its aliases.</summary>
    public static Setting? FindByFlag(string flag)
    {
        var spelled = flag.Replace('_', '-');
        return All.FirstOrDefault(s => s.Flags.Any(f => string.Equals(f, spelled, StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>collector.bpf.o beside the binary (make build, make run), else the installed copy.</summary>
    public static string DefaultBpfObjectPath()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "collector.bpf.o");
        return File.Exists(beside) ? beside : "/var/lib/collector/bpf/collector.bpf.o";
    }

    // ------------------------------------------------------------ kinds of setting

    private static Setting<string> Text(string name, string accepts, Type feeds, string property, string defaultValue, string help, string? defaultWords = null) =>
        new(name, feeds, property, defaultValue, t => t, v => v, help) { Accepts = accepts, DefaultWords = defaultWords };

    private static Setting<int> WholeNumber(string name, Type feeds, string property, int defaultValue, int min, int max, string help,
        IReadOnlyList<string>? aliases = null)
    {
        var accepts = $"a whole number from {min} to {max}";
        return new(name, feeds, property, defaultValue, t =>
            int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
                ? n
                : throw new FormatException("expected " + accepts),
            v => v.ToString(CultureInfo.InvariantCulture), help)
        {
            Accepts = accepts,
            Aliases = aliases ?? [],
        };
    }

    private static Setting<TimeSpan> Duration(string name, Type feeds, string property, TimeSpan defaultValue, string help)
    {
        var min = TimeSpan.FromSeconds(1);
        return new(name, feeds, property, defaultValue, t =>
        {
            var d = DurationText.Parse(t);
            return d >= min ? d : throw new FormatException($"must be at least {DurationText.Format(min)}");
        }, DurationText.Format, help)
        {
            Accepts = "a duration like 30s, 5m, 1h",
        };
    }

    private static Setting<long?> ByteSize(string name, Type feeds, string property, string help) =>
        new(name, feeds, property, null, t => ByteSizeText.Parse(t), v => v is null ? "" : ByteSizeText.Format(v.Value), help)
        {
            Accepts = ByteSizeText.Accepts,
        };

    // ------------------------------------------------------------ parsers

    private static IReadOnlyList<string> ParseInterfaces(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();

    private static IEnumerable<string> InterfaceProblems(IReadOnlyList<string> names) =>
        names.Where(n => n.Length > 15 || n.Contains('/') || n.Any(char.IsWhiteSpace))
            .Select(n => $"INTERFACE: '{n}' is not a valid interface name");

    private static string? ParseEndpoint(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? text
            : throw new FormatException("expected an http:// or https:// URL");

    private static string ParseListenAddress(string text) =>
        string.Join(',', Hosting.ListenAddress.ParseList(text).Select(a => a.ToString()));

    private static string ParseTelemetryPath(string text) =>
        text.StartsWith('/') && text.Length > 1 && !text.Any(char.IsWhiteSpace) && !text.Contains('?') && !text.Contains('#')
            ? text
            : throw new FormatException("expected a path starting with / (not / itself), like /metrics");

    private static XdpMode ParseXdpMode(string text) => text.ToLowerInvariant() switch
    {
        "auto" => Hosting.XdpMode.Auto,
        "native" or "drv" or "driver" => Hosting.XdpMode.Native,
        "generic" or "skb" => Hosting.XdpMode.Generic,
        _ => throw new FormatException("expected auto, native or generic"),
    };

    private static string? ParseExistingFile(string text) =>
        File.Exists(text) ? text : throw new FormatException("no such file");

    private static string ParseTcAttach(string text) => text.ToLowerInvariant() is "auto" or "tcx" or "netlink"
        ? text.ToLowerInvariant()
        : throw new FormatException("expected auto, tcx or netlink");

    private static bool ParseOnOff(string text) => text.ToLowerInvariant() switch
    {
        "on" or "true" or "1" or "yes" => true,
        "off" or "false" or "0" or "no" => false,
        _ => throw new FormatException("expected on or off"),
    };
}
