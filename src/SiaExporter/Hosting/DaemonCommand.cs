using Microsoft.Extensions.Logging.Console;
using SiaExporter.Counters;
using SiaExporter.Dashboard;
using SiaExporter.Hostd;
using SiaExporter.Metrics;
using SiaExporter.Push;
using SiaExporter.Storage;
using SiaExporter.Web;

namespace SiaExporter.Hosting;

/// <summary>`collector run`: the Generic Host with Kestrel for /metrics, run until SIGTERM/Ctrl-C.</summary>
public static class DaemonCommand
{
    public static async Task<int> RunAsync(CollectorOptions options, string[] args)
    {
        if (args.Length > 0)
            throw new SettingsException([$"run takes no arguments (got '{string.Join(' ', args)}'); settings are --kebab-case flags"]);
        // Where to serve first: socket activation without sockets is a setting problem, reported
        // before anything touches the kernel.
        var listeners = Listeners.From(options.Web);
        Preflight.Check(options.Kernel);
        WebConfig? web = null;
        if (options.WebConfigFile is not null)
        {
            try
            {
                web = WebConfig.Load(options.WebConfigFile);
            }
            catch (WebConfigException e)
            {
                throw e.ToOperatorException();
            }
        }

        var app = Build(options, web, listeners);
        await app.RunAsync().ConfigureAwait(false);
        return 0;
    }

    public static WebApplication Build(CollectorOptions options, WebConfig? web, Listeners listeners)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Host.UseSystemd();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        ConfigureLogging(builder.Logging);
        builder.ConfigureCollectorEndpoint(listeners, web);

        var services = builder.Services;
        services.AddSingleton(options);
        // Each component's own record, for the services that take only theirs.
        services.AddSingleton(options.Kernel);
        services.AddSingleton(options.Log);
        services.AddSingleton(TimeProvider.System);
        // Order matters: hosted services start in this order and stop in reverse, so the kernel
        // hooks are up before any reader starts and still up for the final flush.
        services.AddSingleton<KernelCounters>();
        services.AddHostedService(sp => sp.GetRequiredService<KernelCounters>());
        services.AddSingleton(sp =>
        {
            ICounterSource counters = sp.GetRequiredService<KernelCounters>();
            if (!options.Anonymize.IsNone) counters = new AnonymizedCounterSource(counters, options.Anonymize);
            return new SnapshotSource(counters, sp.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton(sp => TrafficHistory.Open(options.SqlitePath, options.Ports,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<TrafficHistory>(), sp.GetRequiredService<TimeProvider>(), anonymize: options.Anonymize));
        // Before the flush service: hosted services stop in reverse, so the final flush comes first
        // and the push's bounded final attempt gets what is left of the shutdown timeout.
        var push = PushOptions.From(options);
        if (push is not null)
        {
            services.AddSingleton(sp => new ApiPushService(push, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<ApiPushService>>(),
                historyHoldsDeltas: () => sp.GetRequiredService<TrafficHistory>().PendingBuckets > 0));
            services.AddHostedService(sp => sp.GetRequiredService<ApiPushService>());
        }
        // The one owner of eviction from the kernel map (through the snapshot source's door).
        services.AddSingleton(sp => new ClientLifecycle(sp.GetRequiredService<SnapshotSource>().Evict, options.ClientIdleTimeout,
            sp.GetRequiredService<TimeProvider>()));
        var billing = new Billing.BillingMeter(options.Billing);
        services.AddHostedService(sp => new HistoryFlushService(sp.GetRequiredService<TrafficHistory>(),
            sp.GetRequiredService<SnapshotSource>().Fresh, sp.GetRequiredService<ClientLifecycle>(), options,
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<HistoryFlushService>>(), billing));
        services.AddSingleton(sp =>
        {
            var kernel = sp.GetRequiredService<KernelCounters>();
            var history = sp.GetRequiredService<TrafficHistory>();
            var source = sp.GetRequiredService<SnapshotSource>();
            return new MetricsExporter(options, source.Current, new MetricsSources
            {
                BpfPrograms = kernel.ProgramStats,
                Attachments = kernel.Attachments,
                LastMapReadDuration = () => source.LastReadDuration,
                History = () => new HistoryHealth(history.LastSuccess, history.FailureCount),
                Push = push is null ? null : () => sp.GetRequiredService<ApiPushService>().Status,
                Billing = billing,
                QdiscDrops = kernel.QdiscDrops,
                HostdPeers = options.Hostd.Enabled ? () => sp.GetRequiredService<HostdPeersService>().Current : null,
                MapCapacity = options.MaxClients,
            }, sp.GetRequiredService<ILoggerFactory>().CreateLogger<MetricsExporter>());
        });
        services.AddHostedService(sp => sp.GetRequiredService<MetricsExporter>().StateSaver);
        // AddSingleton, not AddHostedService: that one keeps a single registration per type, and
        // this is the second PublicationStateSaver.
        if (options.Metrics.TopSubnets > 0)
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<MetricsExporter>().SubnetStateSaver!);
        services.AddHostedService<TopClientsLog>();
        if (options.Hostd.Enabled)
        {
            services.AddSingleton(sp => new HostdPeersService(options.Hostd, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<HostdPeersService>>()));
            services.AddHostedService(sp => sp.GetRequiredService<HostdPeersService>());
        }
        services.AddSingleton(sp => new LiveRates(sp.GetRequiredService<SnapshotSource>().Current,
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<LiveRates>>()));
        services.AddHostedService(sp => sp.GetRequiredService<LiveRates>());
        services.AddSingleton(sp => new DashboardApi(options, sp.GetRequiredService<SnapshotSource>().Current,
            sp.GetRequiredService<LiveRates>(), sp.GetRequiredService<TimeProvider>()));

        var app = builder.Build();
        MetricsExporter.ConfigureDefaultRegistry();
        var source = app.Services.GetRequiredService<SnapshotSource>();
        app.UseScrapeLimit(options.Web.TelemetryPath, options.Web.MaxRequests);
        app.MapSiaMetrics(app.Services.GetRequiredService<MetricsExporter>(), options.Web.TelemetryPath);
        app.MapSiaIndexPage(new IndexPage(source.Current, options), "/now");
        app.MapDashboard(app.Services.GetRequiredService<DashboardApi>(), app.Services.GetRequiredService<TimeProvider>());
        app.Lifetime.ApplicationStarted.Register(() => app.Logger.LogInformation(
            "serving {Path} and the dashboard (/) on {Listen} ({Scheme}); counting {Ports} on {Interfaces}; history in {Database}",
            options.Web.TelemetryPath, listeners, web?.Tls is null ? "http" : "https", options.Ports, string.Join(',', options.Interfaces), options.SqlitePath));
        return app;
    }

    private static void ConfigureLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        // A start-up failure is printed once by Program.Main as one operator-readable line; the
        // host's own "Hosting failed to start" entry would repeat it with a stack trace.
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        if (Microsoft.Extensions.Hosting.Systemd.SystemdHelpers.IsSystemdService())
            logging.AddSystemdConsole(o => o.UseUtcTimestamp = true);
        else
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ssZ ";
                o.UseUtcTimestamp = true;
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            });
    }
}
