using SiaExporter.Hosting;
using SiaExporter.Web;
using Xunit;

namespace SiaExporter.Tests.Settings;

/// <summary>exporter-toolkit's flag names (--web.*) set the same settings as ours, which keep working.</summary>
public sealed class ExporterToolkitFlagsTests
{
    private static readonly Dictionary<string, string?> NoEnvironment = [];

    private static CollectorOptions Options(params string[] args)
    {
        var (values, rest) = CollectorSettings.Collect(args, NoEnvironment);
        Assert.Equal(["run"], rest);
        return CollectorSettings.Parse(values, () => "eth0");
    }

    [Fact]
    public void Toolkit_flags_set_every_web_setting()
    {
        var config = Path.GetTempFileName();
        try
        {
            var web = Options("run", "--web.listen-address", ":10981", "--web.listen-address=127.0.0.1:10982",
                "--web.config.file", config, "--web.telemetry-path", "/sia/metrics", "--web.systemd-socket",
                "--web.max-requests", "3", "--web.disable-exporter-metrics").Web;
            Assert.Equal(":10981,127.0.0.1:10982", web.ListenAddress);
            Assert.Equal(config, web.ConfigFile);
            Assert.Equal("/sia/metrics", web.TelemetryPath);
            Assert.True(web.SystemdSocket);
            Assert.Equal(3, web.MaxRequests);
            Assert.True(web.DisableExporterMetrics);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Fact]
    public void The_current_names_keep_working_and_defaults_are_the_toolkits()
    {
        var config = Path.GetTempFileName();
        try
        {
            var web = Options("run", "--listen-address", "127.0.0.1:10981", "--web-config-file", config).Web;
            Assert.Equal("127.0.0.1:10981", web.ListenAddress);
            Assert.Equal(config, web.ConfigFile);
            var defaults = Options("run").Web;
            Assert.Equal(":10981", defaults.ListenAddress);
            Assert.Equal("/metrics", defaults.TelemetryPath);
            Assert.False(defaults.SystemdSocket);
            Assert.Equal(40, defaults.MaxRequests); // exporter-toolkit's default
            Assert.False(defaults.DisableExporterMetrics);
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Fact]
    public void A_switch_takes_no_value_unless_given_with_equals()
    {
        Assert.True(Options("--web.systemd-socket", "run").Web.SystemdSocket);
        Assert.False(Options("run", "--web.systemd-socket=off").Web.SystemdSocket);
        Assert.True(Options("run", "--web-disable-exporter-metrics").Web.DisableExporterMetrics);
    }

    [Fact]
    public void Repeated_listen_addresses_add_up_and_the_environment_takes_a_list()
    {
        var (values, _) = CollectorSettings.Collect(["--listen-address", "[::1]:1", "--web.listen-address", "127.0.0.1:2"],
            new Dictionary<string, string?> { ["LISTEN_ADDRESS"] = ":9" });
        Assert.Equal("[::1]:1,127.0.0.1:2", values["LISTEN_ADDRESS"]);
        var listeners = Listeners.From(CollectorSettings.Parse(new Dictionary<string, string> { ["LISTEN_ADDRESS"] = "127.0.0.1:2, :3,127.0.0.1:2" }, () => "eth0").Web);
        Assert.Equal([new ListenAddress("127.0.0.1", 2), new ListenAddress(null, 3)], listeners.Addresses);
        Assert.Equal(0, listeners.SystemdSockets);
    }

    [Theory]
    [InlineData("LISTEN_ADDRESS", ":10981,nowhere:1", "LISTEN_ADDRESS=:10981,nowhere:1: 'nowhere' is not an IP address (use :PORT for every address)")]
    [InlineData("WEB_TELEMETRY_PATH", "metrics", "WEB_TELEMETRY_PATH=metrics: expected a path starting with / (not / itself), like /metrics")]
    [InlineData("WEB_TELEMETRY_PATH", "/", "WEB_TELEMETRY_PATH=/: expected a path starting with / (not / itself), like /metrics")]
    [InlineData("WEB_MAX_REQUESTS", "-1", "WEB_MAX_REQUESTS=-1: expected a whole number from 0 to 100000")]
    [InlineData("WEB_SYSTEMD_SOCKET", "maybe", "WEB_SYSTEMD_SOCKET=maybe: expected on or off")]
    [InlineData("HOSTD_API_URL", "localhost:9980", "HOSTD_API_URL=localhost:9980: expected an http:// or https:// URL")]
    public void A_bad_value_is_one_line(string name, string value, string line)
    {
        var e = Assert.Throws<SettingsException>(() => CollectorSettings.Parse(new Dictionary<string, string> { [name] = value }, () => "eth0"));
        Assert.Equal([line], e.Problems);
    }

    [Fact]
    public void Socket_activation_takes_the_sockets_systemd_passed_to_this_process()
    {
        var on = new WebOptions { SystemdSocket = true };
        var env = new Dictionary<string, string?> { ["LISTEN_PID"] = "4242", ["LISTEN_FDS"] = "2" };
        var listeners = Listeners.From(on, n => env.GetValueOrDefault(n), processId: 4242);
        Assert.Equal(2, listeners.SystemdSockets);
        Assert.Empty(listeners.Addresses);

        // Sockets meant for another process (a parent's LISTEN_PID), or none: one operator line.
        var other = Assert.Throws<OperatorException>(() => Listeners.From(on, n => env.GetValueOrDefault(n), processId: 4243));
        Assert.Contains("collector.socket", other.WhatToDo);
        Assert.Throws<OperatorException>(() => Listeners.From(on, _ => null, processId: 4242));
    }

    [Fact]
    public void Hostd_settings_reach_their_record()
    {
        var hostd = CollectorSettings.Parse(new Dictionary<string, string>
        {
            ["HOSTD_API_URL"] = "http://127.0.0.1:9980/api",
            ["HOSTD_API_PASSWORD"] = "secret",
            ["HOSTD_POLL_INTERVAL"] = "15s",
        }, () => "eth0").Hostd;
        Assert.True(hostd.Enabled);
        Assert.Equal("http://127.0.0.1:9980/api", hostd.ApiUrl);
        Assert.Equal("secret", hostd.ApiPassword);
        Assert.Equal(TimeSpan.FromSeconds(15), hostd.PollInterval);
        Assert.False(CollectorSettings.Parse(new Dictionary<string, string>(), () => "eth0").Hostd.Enabled);
    }
}
