using System.Reflection;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Tests.Ops;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Settings;

/// <summary>
/// The settings table is the one place a setting is declared: every options property has its row,
/// every row parses its own default, and the generated files in the repository are what the table
/// produces today.
/// </summary>
public sealed class SettingsTableTests
{
    private static readonly Type[] ComponentRecords =
        [typeof(KernelOptions), typeof(ClientOptions), typeof(WebOptions), typeof(MetricsOptions), typeof(DatabaseOptions), typeof(LogOptions), typeof(ApiOptions), typeof(BillingOptions), typeof(HostdOptions)];

    [Fact]
    public void Every_property_of_every_component_record_is_fed_by_exactly_one_setting()
    {
        foreach (var record in ComponentRecords)
        {
            var properties = record.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.SetMethod is not null && p.Name != "EqualityContract").Select(p => p.Name).Order().ToArray();
            var fed = SettingsTable.All.Where(s => s.Feeds == record).Select(s => s.Property).Order().ToArray();
            Assert.True(properties.SequenceEqual(fed),
                $"{record.Name}: properties [{string.Join(", ", properties)}] but settings feed [{string.Join(", ", fed)}]");
        }
        Assert.All(SettingsTable.All, s => Assert.True(s.Feeds == typeof(CollectorOptions) || ComponentRecords.Contains(s.Feeds),
            $"{s.Name} feeds {s.Feeds.Name}, which is not an options record"));
    }

    [Fact]
    public void Every_setting_has_a_unique_name_help_and_what_it_accepts()
    {
        Assert.Equal(SettingsTable.All.Count, SettingsTable.All.Select(s => s.Name).Distinct().Count());
        Assert.All(SettingsTable.All, s =>
        {
            Assert.Matches("^[A-Z][A-Z0-9_]+$", s.Name);
            Assert.False(string.IsNullOrWhiteSpace(s.Help), $"{s.Name} has no help");
            Assert.EndsWith(".", s.Help);
            Assert.False(string.IsNullOrWhiteSpace(s.Accepts), $"{s.Name} does not say what it accepts");
            Assert.False(string.IsNullOrWhiteSpace(s.DefaultText), $"{s.Name} has no default to show");
        });
    }

    [Fact]
    public void Every_fixed_default_parses_back_to_itself()
    {
        var literals = SettingsTable.All.Where(s => !string.IsNullOrEmpty(s.DefaultLiteral))
            .ToDictionary(s => s.Name, s => s.DefaultLiteral!);
        Assert.Contains("MAX_CLIENTS", literals.Keys);
        var parsed = CollectorSettings.Parse(literals, () => "eth0");
        var defaults = CollectorSettings.Parse(new Dictionary<string, string>(), () => "eth0");
        // Lists and port sets compare by content; the rest of each record by value.
        Assert.Equal(defaults.Kernel.Interfaces, parsed.Kernel.Interfaces);
        Assert.Equal(defaults.Kernel.Ports.ToString(), parsed.Kernel.Ports.ToString());
        Assert.Equal(defaults.Kernel, parsed.Kernel with { Interfaces = defaults.Kernel.Interfaces, Ports = defaults.Kernel.Ports });
        Assert.Equal(defaults.Clients, parsed.Clients);
        Assert.Equal(defaults.Web, parsed.Web);
        Assert.Equal(defaults.Metrics, parsed.Metrics);
        Assert.Equal(defaults.Database, parsed.Database);
        Assert.Equal(defaults.Log, parsed.Log);
    }

    [Fact]
    public void Unset_settings_take_the_table_defaults_and_the_derived_ones()
    {
        var options = CollectorSettings.Parse(new Dictionary<string, string>(), () => "eth7");
        Assert.Equal(["eth7"], options.Kernel.Interfaces);
        Assert.Equal(16384, options.Kernel.MaxClients);
        Assert.Equal(PortClassSet.Default, options.Kernel.Ports.ToString());
        Assert.Equal(XdpMode.Auto, options.Kernel.XdpMode);
        Assert.Equal("auto", options.Kernel.TcAttach);
        Assert.Equal("/sys/fs/bpf/collector", options.Kernel.PinDirectory);
        Assert.False(options.Kernel.BpfStats);
        Assert.Equal(":10981", options.Web.ListenAddress);
        Assert.Null(options.Web.ConfigFile);
        Assert.Equal(1000, options.Metrics.TopClients);
        Assert.Equal("/var/lib/collector", options.Metrics.StateDirectory);
        Assert.Equal("/var/lib/collector/traffic.db", options.Database.SqlitePath);
        Assert.Equal(400, options.Database.RetentionDays);
        Assert.Equal(TimeSpan.FromMinutes(1), options.Database.FlushInterval);
        Assert.Equal(TimeSpan.FromHours(1), options.Clients.IdleTimeout);
        Assert.True(options.Clients.Anonymize.IsNone);
        Assert.Equal(TimeSpan.FromSeconds(30), options.Log.Interval);
        Assert.Equal(5, options.Log.Top);
        Assert.False(options.Api.Enabled);
        Assert.Equal(System.Net.Dns.GetHostName(), options.SiaHostname);

        var moved = CollectorSettings.Parse(new Dictionary<string, string> { ["SQLITE_PATH"] = "/srv/sia/history.db" }, () => "eth7");
        Assert.Equal("/srv/sia", moved.Metrics.StateDirectory);
    }

    [Fact]
    public void A_new_options_record_takes_the_same_defaults_as_an_empty_environment()
    {
        var parsed = CollectorSettings.Parse(new Dictionary<string, string>(), () => null, interfacesRequired: false);
        var constructed = new CollectorOptions();
        Assert.Equal(constructed.Kernel, parsed.Kernel);
        Assert.Equal(constructed.Clients, parsed.Clients);
        Assert.Equal(constructed.Web, parsed.Web);
        Assert.Equal(constructed.Database, parsed.Database);
        Assert.Equal(constructed.Log, parsed.Log);
        Assert.Equal(constructed.Api, parsed.Api);
        Assert.Equal(constructed.Billing, parsed.Billing);
    }

    [Fact]
    public void Billing_settings_and_tier_retentions_reach_their_records()
    {
        var options = CollectorSettings.Parse(new Dictionary<string, string>
        {
            ["BILLING_DAY"] = "15", ["QUOTA_UP"] = "2TB", ["QUOTA_DOWN"] = "1.5TiB",
            ["RAW_RETENTION_DAYS"] = "3", ["HOURLY_RETENTION_DAYS"] = "90", ["FLUSH_INTERVAL"] = "5m",
        }, () => "eth0");
        Assert.Equal(15, options.Billing.Day);
        Assert.Equal(2_000_000_000_000L, options.Billing.QuotaUpBytes);
        Assert.Equal(3L * (1L << 39), options.Billing.QuotaDownBytes);
        Assert.Equal(3, options.Database.RawRetentionDays);
        Assert.Equal(90, options.Database.HourlyRetentionDays);
        Assert.Equal(TimeSpan.FromMinutes(5), options.Database.FlushInterval);
        Assert.Null(new CollectorOptions().Billing.QuotaUpBytes);
    }

    [Fact]
    public void Values_reach_their_component_records_and_the_shorthands()
    {
        var options = CollectorSettings.Parse(new Dictionary<string, string>
        {
            ["INTERFACE"] = " eth1, eth2 ,eth1", ["MAX_CLIENTS"] = "16", ["XDP_MODE"] = "skb", ["TC_ATTACH"] = "NETLINK",
            ["BPF_STATS"] = "yes", ["ANONYMIZE"] = "/24,/48", ["CLIENT_IDLE_TIMEOUT"] = "1h30m", ["LISTEN_ADDRESS"] = "127.0.0.1:9",
            ["METRICS_TOP_CLIENTS"] = "0", ["RETENTION_DAYS"] = "36500", ["FLUSH_INTERVAL"] = "150", ["LOG_TOP"] = "1000",
            ["LOG_INTERVAL"] = "2s", ["API_ENDPOINT"] = "https://example.net/v1", ["API_TOKEN"] = "t0k", ["PORTS"] = "9982/udp",
            ["SIA_HOSTNAME"] = "host-a",
        });
        Assert.Equal(["eth1", "eth2"], options.Kernel.Interfaces);
        Assert.Equal(16, options.Kernel.MaxClients);
        Assert.Equal(XdpMode.Generic, options.Kernel.XdpMode);
        Assert.Equal("netlink", options.Kernel.TcAttach);
        Assert.True(options.Kernel.BpfStats);
        Assert.Equal(new ClientPrefix(24, 48), options.Clients.Anonymize);
        Assert.Equal(TimeSpan.FromMinutes(90), options.Clients.IdleTimeout);
        Assert.Equal("127.0.0.1:9", options.Web.ListenAddress);
        Assert.Equal(0, options.Metrics.TopClients);
        Assert.Equal(36500, options.Database.RetentionDays);
        Assert.Equal(TimeSpan.FromSeconds(150), options.Database.FlushInterval);
        Assert.Equal(1000, options.Log.Top);
        Assert.Equal(TimeSpan.FromSeconds(2), options.Log.Interval);
        Assert.True(options.Api.Enabled);
        Assert.Equal("9982/udp", options.Kernel.Ports.ToString());
        Assert.Equal("host-a", options.SiaHostname);
        // The flat names read the component records.
        Assert.Equal(options.Kernel.MaxClients, options.MaxClients);
        Assert.Equal(options.Database.FlushInterval, options.FlushInterval);
        Assert.Equal(options.Clients.IdleTimeout, options.ClientIdleTimeout);
        Assert.True(options.ApiPushEnabled);
    }

    [Fact]
    public void A_shorthand_in_an_initializer_sets_its_component_record()
    {
        var options = new CollectorOptions { MaxClients = 99, FlushInterval = TimeSpan.FromSeconds(5), StateDirectory = "/tmp/x" };
        Assert.Equal(99, options.Kernel.MaxClients);
        Assert.Equal(TimeSpan.FromSeconds(5), options.Database.FlushInterval);
        Assert.Equal("/tmp/x", options.Metrics.StateDirectory);
        Assert.Equal(SettingsTable.PinDirectory.Default, options.Kernel.PinDirectory);
    }

    [Theory]
    [InlineData("MAX_CLIENTS", "15", "MAX_CLIENTS=15: expected a whole number from 16 to 16777216")]
    [InlineData("MAX_CLIENTS", "-1", "MAX_CLIENTS=-1: expected a whole number from 16 to 16777216")]
    [InlineData("MAX_CLIENTS", "99999999999999", "MAX_CLIENTS=99999999999999: expected a whole number from 16 to 16777216")]
    [InlineData("METRICS_TOP_CLIENTS", "lots", "METRICS_TOP_CLIENTS=lots: expected a whole number from 0 to 1000000")]
    [InlineData("RETENTION_DAYS", "0", "RETENTION_DAYS=0: expected a whole number from 1 to 36500")]
    [InlineData("LOG_TOP", "1001", "LOG_TOP=1001: expected a whole number from 1 to 1000")]
    [InlineData("XDP_MODE", "fast", "XDP_MODE=fast: expected auto, native or generic")]
    [InlineData("TC_ATTACH", "ebpf", "TC_ATTACH=ebpf: expected auto, tcx or netlink")]
    [InlineData("BPF_STATS", "maybe", "BPF_STATS=maybe: expected on or off")]
    [InlineData("FLUSH_INTERVAL", "0s", "FLUSH_INTERVAL=0s: must divide the 5-minute bucket (300 s) so every flush falls on a bucket boundary; expected a duration that divides 5m: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 25s, 30s, 50s, 1m, 75s, 100s, 150s, 5m")]
    [InlineData("FLUSH_INTERVAL", "90s", "FLUSH_INTERVAL=90s: must divide the 5-minute bucket (300 s) so every flush falls on a bucket boundary; expected a duration that divides 5m: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 25s, 30s, 50s, 1m, 75s, 100s, 150s, 5m")]
    [InlineData("FLUSH_INTERVAL", "7m", "FLUSH_INTERVAL=7m: must divide the 5-minute bucket (300 s) so every flush falls on a bucket boundary; expected a duration that divides 5m: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 25s, 30s, 50s, 1m, 75s, 100s, 150s, 5m")]
    [InlineData("FLUSH_INTERVAL", "1.5s", "FLUSH_INTERVAL=1.5s: must divide the 5-minute bucket (300 s) so every flush falls on a bucket boundary; expected a duration that divides 5m: 1s, 2s, 3s, 4s, 5s, 6s, 10s, 12s, 15s, 20s, 25s, 30s, 50s, 1m, 75s, 100s, 150s, 5m")]
    [InlineData("BILLING_DAY", "29", "BILLING_DAY=29: expected a whole number from 1 to 28")]
    [InlineData("QUOTA_UP", "lots", "QUOTA_UP=lots: expected a byte amount like 500GB, 2TB or 1.5TiB (SI or IEC units), empty for none")]
    [InlineData("LOG_INTERVAL", "soon", "LOG_INTERVAL=soon: 'soon' is not a duration like 30s, 5m, 1h, 7d")]
    [InlineData("CLIENT_IDLE_TIMEOUT", "1e300", "CLIENT_IDLE_TIMEOUT=1e300: expected a duration like 30s, 5m, 1h")]
    [InlineData("API_ENDPOINT", "ftp://x", "API_ENDPOINT=ftp://x: expected an http:// or https:// URL")]
    [InlineData("WEB_CONFIG_FILE", "/nonexistent/web.yml", "WEB_CONFIG_FILE=/nonexistent/web.yml: no such file")]
    [InlineData("LISTEN_ADDRESS", "10981", "LISTEN_ADDRESS=10981: expected [HOST]:PORT, for example :10981 or 127.0.0.1:10981")]
    [InlineData("INTERFACE", "eth0,a b", "INTERFACE: 'a b' is not a valid interface name")]
    [InlineData("ANONYMIZE", "/24", "ANONYMIZE=/24: '/24': expected an IPv4 and an IPv6 prefix length, like /24,/48")]
    public void A_bad_value_is_one_line_naming_the_setting_and_what_it_takes(string name, string value, string line)
    {
        var e = Assert.Throws<SettingsException>(() => CollectorSettings.Parse(new Dictionary<string, string> { [name] = value }, () => "eth0"));
        Assert.Equal([line], e.Problems);
    }

    [Fact]
    public void Every_bad_value_is_reported_at_once_in_table_order()
    {
        var e = Assert.Throws<SettingsException>(() => CollectorSettings.Parse(new Dictionary<string, string>
        {
            ["LOG_TOP"] = "0", ["PORTS"] = "99999/tcp", ["MAX_CLIENTS"] = "1",
        }, () => "eth0"));
        Assert.Equal(3, e.Problems.Count);
        Assert.StartsWith("PORTS=99999/tcp: ", e.Problems[0]);
        Assert.StartsWith("MAX_CLIENTS=1: ", e.Problems[1]);
        Assert.StartsWith("LOG_TOP=0: ", e.Problems[2]);
    }

    [Fact]
    public void No_interface_and_no_default_route_is_one_line_saying_what_to_set()
    {
        var e = Assert.Throws<SettingsException>(() => CollectorSettings.Parse(new Dictionary<string, string>(), () => null));
        Assert.Equal(["INTERFACE is not set and there is no default route to take it from: set INTERFACE=eth0 (see `ip link`)"], e.Problems);
        Assert.Empty(CollectorSettings.Parse(new Dictionary<string, string>(), () => null, interfacesRequired: false).Kernel.Interfaces);
    }

    [Fact]
    public void Blank_values_take_the_default()
    {
        var options = CollectorSettings.Parse(new Dictionary<string, string> { ["MAX_CLIENTS"] = "  ", ["XDP_MODE"] = "" }, () => "eth0");
        Assert.Equal(SettingsTable.MaxClients.Default, options.Kernel.MaxClients);
        Assert.Equal(XdpMode.Auto, options.Kernel.XdpMode);
    }

    [Fact]
    public void Flags_override_the_environment_which_overrides_the_file()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "# comment\nMAX_CLIENTS=100\nLOG_TOP=\"7\"\nexport RETENTION_DAYS='9'\nUNKNOWN=1\n");
            var (values, rest) = CollectorSettings.Collect(
                ["top", "--config", file, "--max-clients=200", "--since", "1h", "--log-top", "8"],
                new Dictionary<string, string?> { ["MAX_CLIENTS"] = "150", ["LOG_TOP"] = "6", ["PATH"] = "/bin" });
            Assert.Equal("200", values["MAX_CLIENTS"]);
            Assert.Equal("8", values["LOG_TOP"]);
            Assert.Equal("9", values["RETENTION_DAYS"]);
            Assert.False(values.ContainsKey("PATH"));
            Assert.Equal(["top", "--since", "1h"], rest);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_flag_without_a_value_and_a_missing_config_file_are_one_line_each()
    {
        var noValue = Assert.Throws<SettingsException>(() => CollectorSettings.Collect(["--interface"], new Dictionary<string, string?>()));
        Assert.Equal(["--interface needs a value"], noValue.Problems);
        var noFile = Assert.Throws<SettingsException>(() => CollectorSettings.Collect(["--config", "/nonexistent/collector.env"], new Dictionary<string, string?>()));
        Assert.Equal(["--config /nonexistent/collector.env: no such file"], noFile.Problems);
    }

    [Fact]
    public void The_committed_env_example_is_what_the_table_produces()
    {
        var committed = File.ReadAllText(Path.Combine(OpsTools.RepoRoot, "collector.env.example"));
        Assert.True(committed == SettingsDocs.EnvExample(), "collector.env.example is out of date with SettingsTable: run `make docs`");
        foreach (var s in SettingsTable.All) Assert.Contains($"\n#{s.Name}=", committed);
    }

    [Fact]
    public void The_committed_reference_lists_every_setting_as_the_table_produces_it()
    {
        var committed = File.ReadAllText(Path.Combine(OpsTools.RepoRoot, "docs", "reference.md"));
        Assert.True(committed == SettingsDocs.SpliceInto(committed),
            "the settings table in docs/reference.md is out of date with SettingsTable: run `make docs`");
        foreach (var s in SettingsTable.All) Assert.Contains($"| `{s.Name}` | `{s.Flag}` |", committed);
    }

    [Fact]
    public void Help_lists_every_setting_with_its_flag_and_default()
    {
        var help = SiaExporter.Program.Help;
        foreach (var s in SettingsTable.All) Assert.Contains($"  {s.Name} / {s.Flag}   (default: {s.DefaultText})", help);
        Assert.Contains("collector settings", help);
    }
}
