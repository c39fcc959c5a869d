using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using SiaExporter.Counters;
using SiaExporter.Hosting;

namespace SiaExporter.Metrics;

/// <summary>What the host provides besides the counters; every member is optional.</summary>
public sealed class MetricsSources
{
    /// <summary>The programs' kernel stats, read at scrape time.</summary>
    public Func<IEnumerable<BpfProgramStats>>? BpfPrograms { get; init; }

    /// <summary>Every expected attachment, read at scrape time (a hook that is gone shows 0).</summary>
    public Func<IEnumerable<BpfAttachment>>? Attachments { get; init; }

    /// <summary>How long the last kernel map read took (e.g. SnapshotSource.LastReadDuration);
    /// without it the time the snapshot provider took is shown.</summary>
    public Func<TimeSpan>? LastMapReadDuration { get; init; }

    /// <summary>The SQLite history's health; without it the sia_exporter_sqlite_* metrics are absent.</summary>
    public Func<HistoryHealth>? History { get; init; }

    /// <summary>The API push's state (only when API_ENDPOINT and API_TOKEN are set); without it
    /// the sia_exporter_push_* metrics are absent.</summary>
    public Func<Push.PushStatus>? Push { get; init; }

    /// <summary>The billing month's usage and quota; without it the sia_exporter_billing_* and quota metrics are absent.</summary>
    public Billing.BillingMeter? Billing { get; init; }
    /// <summary>Up traffic a shaping qdisc dropped after it was counted, per slot (null: not counted
    /// on this kernel); without it the sia_exporter_qdisc_dropped_* metrics are absent.</summary>
    public Func<Traffic[]?>? QdiscDrops { get; init; }

    /// <summary>hostd's syncer peers (only with HOSTD_API_URL); without it sia_client_info and
    /// sia_exporter_hostd_api_up are absent.</summary>
    public Func<Hostd.HostdPeersSnapshot>? HostdPeers { get; init; }

    /// <summary>The kernel map's capacity; default CollectorOptions.MaxClients.</summary>
    public int? MapCapacity { get; init; }

    /// <summary>Shown in sia_exporter_build_info; default the assembly's informational version.</summary>
    public string? Version { get; init; }
}

/// <summary>
/// The /metrics registry of the daemon and its serialized scrape. Each concern registers its own
/// collector on the registry (as prometheus-net's DotNetStats does) and reads its values at scrape
/// time: <see cref="TrafficCollector"/> (and <see cref="UnconfirmedCollector"/> from the same snapshot),
/// <see cref="BpfCollector"/>, <see cref="HistoryCollector"/>, <see cref="PushCollector"/>,
/// <see cref="QdiscDropCollector"/>, plus sia_exporter_build_info and the process metrics. Each
/// instance has its own <see cref="CollectorRegistry"/>. The publication state is saved by
/// <see cref="StateSaver"/>, which the host runs as a hosted service.
/// </summary>
public sealed class MetricsExporter
{
    private readonly SemaphoreSlim _scrapeGate = new(1, 1);
    private readonly TrafficCollector _traffic;
    private int _lastSize;

    public MetricsExporter(CollectorOptions options, Func<CounterSnapshot> snapshots, MetricsSources? sources = null, ILogger? logger = null)
        : this(options, snapshots, sources, logger, processMetrics: !options.Web.DisableExporterMetrics)
    {
    }

    /// <summary><paramref name="processMetrics"/> false leaves out process_* and dotnet_* (they cost
    /// a few milliseconds per scrape reading /proc; tests that scrape thousands of times skip them).</summary>
    internal MetricsExporter(CollectorOptions options, Func<CounterSnapshot> snapshots, MetricsSources? sources, ILogger? logger, bool processMetrics)
    {
        ConfigureDefaultRegistry();
        sources ??= new MetricsSources();
        logger ??= NullLogger.Instance;
        Registry = Prometheus.Metrics.NewCustomRegistry();

        StateSaver = new PublicationStateSaver(PublicationStateFile.PathIn(options.StateDirectory), logger);
        SubnetStateSaver = options.Metrics.TopSubnets > 0 ? new PublicationStateSaver(SubnetStatePath(options), logger) : null;
        _traffic = TrafficCollector.Register(Registry, options, snapshots, StateSaver, SubnetStateSaver, logger);
        UnconfirmedCollector.Register(Registry, _traffic);
        BpfCollector.Register(Registry, sources.BpfPrograms, sources.Attachments,
            sources.LastMapReadDuration ?? (() => _traffic.LastSnapshotDuration), sources.MapCapacity ?? options.MaxClients, logger);
        if (sources.History is { } history) HistoryCollector.Register(Registry, history);
        if (sources.Push is { } push) PushCollector.Register(Registry, push);
        if (sources.Billing is { } billing) BillingCollector.Register(Registry, billing);
        if (sources.QdiscDrops is { } qdiscDrops) QdiscDropCollector.Register(Registry, options.Ports, qdiscDrops);
        if (sources.HostdPeers is { } peers) HostdCollector.Register(Registry, peers, options.Anonymize);
        Prometheus.Metrics.WithCustomRegistry(Registry)
            .CreateGauge("sia_exporter_build_info", "Version of the exporter and the host it runs on; always 1.", "version", "hostname")
            .WithLabels(sources.Version ?? DefaultVersion, options.SiaHostname).Set(1);
        if (processMetrics) DotNetStats.Register(Registry);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>Saves the publication state off the scrape path; the host runs it (start and stop).</summary>
    public PublicationStateSaver StateSaver { get; }

    /// <summary>Saves the subnet series' publication state (null without subnet series); the host runs it too.</summary>
    public PublicationStateSaver? SubnetStateSaver { get; }

    /// <summary>The subnet state file; its name carries the prefix, so another SUBNET_PREFIX starts afresh
    /// instead of reading states keyed by other subnets.</summary>
    public static string SubnetStatePath(CollectorOptions options)
    {
        var prefix = TrafficCollector.EffectiveSubnetPrefix(options);
        return Path.Combine(options.StateDirectory, $"metrics-subnets-{prefix.IPv4Bits}-{prefix.IPv6Bits}-state.bin");
    }

    /// <summary>What the last traffic update took (also sia_exporter_scrape_duration_seconds).</summary>
    public TimeSpan LastUpdateDuration => _traffic.LastUpdateDuration;

    /// <summary>The assembly's informational version without the source revision suffix.</summary>
    public static string DefaultVersion
    {
        get
        {
            var version = typeof(MetricsExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            var plus = version.IndexOf('+');
            return plus > 0 ? version[..plus] : version;
        }
    }

    /// <summary>Content type of what <see cref="WriteScrapeAsync"/> writes in the default format.</summary>
    public const string ContentType = Web.ScrapeNegotiation.PrometheusTextType;

    /// <summary>
    /// One whole scrape (update and serialization) into <paramref name="to"/>, in the Prometheus
    /// text format or OpenMetrics text (which ends with # EOF). Scrapes are serialized and
    /// buffered: two overlapping scrapes cannot interleave, so every exposition shows one
    /// consistent state (sum over client == host total), and a slow reader does not hold up the
    /// next scrape.
    /// </summary>
    public Task WriteScrapeAsync(Stream to, CancellationToken cancel = default) =>
        WriteScrapeAsync(to, ExpositionFormat.PrometheusText, cancel);

    /// <inheritdoc cref="WriteScrapeAsync(Stream, CancellationToken)"/>
    public async Task WriteScrapeAsync(Stream to, ExpositionFormat format, CancellationToken cancel = default)
    {
        using var buffer = new MemoryStream(_lastSize + 4096);
        await _scrapeGate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            await Registry.CollectAndExportAsTextAsync(buffer, format, cancel).ConfigureAwait(false);
        }
        finally
        {
            _scrapeGate.Release();
        }
        _lastSize = (int)Math.Min(buffer.Length, 64 << 20);
        buffer.Position = 0;
        await buffer.CopyToAsync(to, cancel).ConfigureAwait(false);
    }

    /// <summary>The exposition text of one scrape (what /metrics serves), without Kestrel.</summary>
    public async Task<string> ExportTextAsync(CancellationToken cancel = default) =>
        await ExportTextAsync(ExpositionFormat.PrometheusText, cancel).ConfigureAwait(false);

    /// <summary>The exposition of one scrape in <paramref name="format"/>, without Kestrel.</summary>
    public async Task<string> ExportTextAsync(ExpositionFormat format, CancellationToken cancel = default)
    {
        using var stream = new MemoryStream();
        await WriteScrapeAsync(stream, format, cancel).ConfigureAwait(false);
        return Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    private static int _defaultsConfigured;

    /// <summary>
    /// The static default registry is never served (each exporter has its own), but prometheus-net
    /// would start its EventCounter and Meter adapters if anything collected it (idle CPU, issue
    /// #392): switch them off once. Process metrics are registered on our own registry.
    /// </summary>
    public static void ConfigureDefaultRegistry()
    {
        if (Interlocked.Exchange(ref _defaultsConfigured, 1) != 0) return;
        Prometheus.Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
        {
            SuppressProcessMetrics = false,
            SuppressDebugMetrics = true,
            SuppressEventCounters = true,
            SuppressMeters = true,
        });
    }
}
