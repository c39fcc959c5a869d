using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;
using SiaExporter.Tests.Ops;
using Xunit.Abstractions;

namespace SiaExporter.Tests.Install;

/// <summary>
/// collector.service under systemd-analyze, and `make install` / `make uninstall` into a DESTDIR
/// with the installed binary counting real traffic between the two namespaces of a TestNetwork with an isolated host end.
/// `make install` rebuilds build/collector only when it is older than its sources (`make test`
/// builds it first, so here it is a copy).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class InstallTests(ITestOutputHelper output)
{
    private static readonly string[] UnitCapabilities = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"];

    /// <summary>The unit with ExecStart pointing at an executable that exists here.</summary>
    private static string UnitCopy(string directory)
    {
        var text = File.ReadAllText(InstallTools.UnitFile);
        Assert.Contains("ExecStart=/usr/local/bin/collector run\n", text);
        var path = Path.Combine(directory, "collector.service");
        File.WriteAllText(path, text.Replace("ExecStart=/usr/local/bin/collector run", "ExecStart=/bin/true run"));
        return path;
    }

    [SystemdAnalyzeFact]
    public void Unit_verifies_without_a_single_warning()
    {
        Assert.True(InstallTools.SystemdAnalyze is not null, "systemd-analyze is missing (CI=true: this must run)");
        var dir = Directory.CreateTempSubdirectory("ins-unit-");
        try
        {
            var r = Shell.Exec("systemd-analyze", ["verify", UnitCopy(dir.FullName)], timeout: TimeSpan.FromMinutes(5));
            output.WriteLine(r.All);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.All.Trim());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [SystemdAnalyzeFact]
    public void Socket_unit_verifies_with_the_service_without_a_single_warning()
    {
        Assert.True(InstallTools.SystemdAnalyze is not null, "systemd-analyze is missing (CI=true: this must run)");
        var dir = Directory.CreateTempSubdirectory("ins-unit-");
        try
        {
            var service = UnitCopy(dir.FullName);
            var socket = Path.Combine(dir.FullName, "collector.socket");
            File.Copy(Path.Combine(OpsTools.RepoRoot, "collector.socket"), socket);
            Assert.Contains("Service=collector.service", File.ReadAllText(socket));
            var r = Shell.Exec("systemd-analyze", ["verify", socket, service], timeout: TimeSpan.FromMinutes(5));
            output.WriteLine(r.All);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.All.Trim());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [SystemdAnalyzeFact]
    public void Unit_exposure_stays_low_with_only_the_capabilities_the_daemon_needs()
    {
        Assert.True(InstallTools.SystemdAnalyze is not null, "systemd-analyze is missing (CI=true: this must run)");
        var dir = Directory.CreateTempSubdirectory("ins-unit-");
        try
        {
            var r = Shell.Exec("systemd-analyze", ["security", "--offline=yes", "--no-pager", UnitCopy(dir.FullName)], timeout: TimeSpan.FromMinutes(5));
            output.WriteLine(r.All);
            var m = Regex.Match(r.Stdout, @"Overall exposure level for collector\.service: (\d+\.\d)");
            Assert.True(m.Success, r.All);
            var exposure = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            Assert.True(exposure <= 2.3, $"exposure {exposure} rose above 2.3");
            foreach (var item in new[] { "CapabilityBoundingSet=~CAP_SYS_ADMIN", "NoNewPrivileges=", "ProtectSystem=", "ProtectKernelTunables=",
                         "SystemCallArchitectures=", "SystemCallFilter=~@mount", "SystemCallFilter=~@debug", "PrivateTmp=", "ProtectHome=" })
                Assert.Matches(new Regex(@"^✓ " + Regex.Escape(item), RegexOptions.Multiline), r.Stdout);
        }
        finally
        {
            dir.Delete(recursive: true);
        }

        var unit = File.ReadAllLines(InstallTools.UnitFile).Where(l => !l.StartsWith('#')).ToList();
        string Value(string key) => Assert.Single(unit, l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..];
        Assert.Equal(UnitCapabilities, Value("CapabilityBoundingSet").Split(' ').Order());
        Assert.Equal(UnitCapabilities, Value("AmbientCapabilities").Split(' ').Order());
        Assert.Equal("notify", Value("Type"));
        Assert.Equal("-/etc/collector.env", Value("EnvironmentFile"));
        Assert.Equal("strict", Value("ProtectSystem"));
        Assert.Equal(["-/sys/fs/bpf/collector", "/var/lib/collector"], Value("ReadWritePaths").Split(' ').Order(StringComparer.Ordinal));
        Assert.Equal("AF_UNIX AF_INET AF_INET6 AF_NETLINK", Value("RestrictAddressFamilies"));
        Assert.Contains("bpf", Value("SystemCallFilter").Split(' '));
        Assert.DoesNotContain(unit, l => l.StartsWith("ProtectProc=", StringComparison.Ordinal)); // dotnet/runtime#125368
        Assert.Equal("yes", Value("MemoryDenyWriteExecute")); // Native AOT: no JIT
    }

    [KernelFact]
    public void Install_runs_counts_and_uninstall_leaves_nothing_behind()
    {
        var dest = Directory.CreateTempSubdirectory("ins-dest-").FullName;
        using var net = TestNetwork.Create(isolatedHost: true);
        var pins = net.PinDirectory;
        Process? daemon = null;
        try
        {
            var install = Make("install", dest);
            Assert.Contains($"created {dest}/etc/collector.env", install.Stdout);
            var binary = Path.Combine(dest, "usr/local/bin/collector");
            var bpfObject = Path.Combine(dest, "var/lib/collector/bpf/collector.bpf.o");
            var config = Path.Combine(dest, "etc/collector.env");
            Assert.True(File.Exists(bpfObject));
            Assert.Equal(File.ReadAllText(Path.Combine(OpsTools.RepoRoot, "collector.env.example")), File.ReadAllText(config));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));
            Assert.Contains("ExecStart=/usr/local/bin/collector run", File.ReadAllText(Path.Combine(dest, "etc/systemd/system/collector.service")));
            Assert.Contains("ListenStream=10981", File.ReadAllText(Path.Combine(dest, "etc/systemd/system/collector.socket")));

            // A second install never overwrites the operator's settings.
            File.AppendAllText(config, "LOG_TOP=7\n");
            var edited = File.ReadAllText(config);
            Assert.Contains("kept the existing", Make("install", dest).Stdout);
            Assert.Equal(edited, File.ReadAllText(config));

            // The installed binary alone (no .NET runtime needed: self-contained), with only the
            // unit's capabilities, counting on the host end in its namespace.
            const int port = 19981;
            daemon = StartDaemon(net, binary, config, new Dictionary<string, string>
            {
                ["BPF_OBJECT"] = bpfObject,
                ["SQLITE_PATH"] = Path.Combine(dest, "var/lib/collector/traffic.db"),
                ["STATE_DIRECTORY"] = Path.Combine(dest, "var/lib/collector"),
                ["PIN_DIRECTORY"] = pins,
                ["LISTEN_ADDRESS"] = $"127.0.0.1:{port}",
                ["INTERFACE"] = net.HostInterface,
            });
            var metrics = WaitForMetrics(net, daemon, port, m => m.Contains($"sia_exporter_bpf_attached{{interface=\"{net.HostInterface}\",hook=\"tc_egress\"}} 1"));
            Assert.Contains($"sia_exporter_bpf_attached{{interface=\"{net.HostInterface}\",hook=\"tc_ingress\"}} 1", metrics); // XDP_MODE=auto on a veth: the skb path

            const string payload = "insinstall"; // echo adds \n: 14 + 20 + 8 + 11 = 53 B (a veth does not pad to 60)
            net.SendUdpToHost(9984, 5, payload);
            metrics = WaitForMetrics(net, daemon, port, m => HostBytes(m) >= 5 * 53);
            Assert.Equal(5 * 53, HostBytes(metrics));

            // A crash keeps counting: the links stay pinned and attached after SIGKILL.
            daemon.Kill();
            daemon.WaitForExit();
            Assert.Equal(2, Directory.GetFiles(Path.Combine(pins, "links")).Length);
            Assert.Equal(2, net.TcxProgramIds().Length); // tc_ingress + tc_egress (a veth is counted on the skb path)

            var uninstall = Make("uninstall", dest, pins, net);
            Assert.Contains("detached 2 hook(s)", uninstall.Stdout);
            Assert.Contains($"removed {dest}/etc/collector.env", uninstall.Stdout);

            Assert.Empty(Directory.GetFiles(dest, "*", SearchOption.AllDirectories));
            Assert.False(Directory.Exists(pins), pins + " is still there");
            Assert.DoesNotContain("xdp", IpLink(net));
            Assert.Empty(net.TcxProgramIds());
            Assert.Equal("", Shell.Run("nsenter", net.OnHost("tc", "filter", "show", "dev", net.HostInterface, "egress")).Trim());
        }
        finally
        {
            if (daemon is { HasExited: false }) daemon.Kill();
            daemon?.Dispose();
            if (Directory.Exists(pins)) Directory.Delete(pins, recursive: true);
            Directory.Delete(dest, recursive: true);
        }
    }

    [KernelFact]
    public void An_env_file_that_existed_before_install_is_neither_overwritten_nor_uninstalled()
    {
        var dest = Directory.CreateTempSubdirectory("ins-dest-").FullName;
        using var net = TestNetwork.Create(isolatedHost: true);
        var pins = net.PinDirectory;
        try
        {
            var config = Path.Combine(dest, "etc/collector.env");
            Directory.CreateDirectory(Path.GetDirectoryName(config)!);
            const string mine = "# the operator's own\nINTERFACE=eth7\nLISTEN_ADDRESS=:9999\n";
            File.WriteAllText(config, mine);

            Assert.Contains("kept the existing", Make("install", dest).Stdout);
            Assert.Equal(mine, File.ReadAllText(config));
            Assert.True(File.Exists(Path.Combine(dest, "usr/local/bin/collector")));

            var uninstall = Make("uninstall", dest, pins, net);
            Assert.Contains("it existed before make install", uninstall.Stdout);
            Assert.Equal(mine, File.ReadAllText(config));
            Assert.Equal([config], Directory.GetFiles(dest, "*", SearchOption.AllDirectories));
        }
        finally
        {
            Directory.Delete(dest, recursive: true);
        }
    }

    [KernelFact]
    public void A_staged_uninstall_without_PINDIR_leaves_the_kernels_pins_alone()
    {
        var dest = Directory.CreateTempSubdirectory("ins-dest-").FullName;
        try
        {
            Make("install", dest);
            var uninstall = Make("uninstall", dest);
            Assert.Contains("left the kernel's pins alone", uninstall.Stdout);
            Assert.Empty(Directory.GetFiles(dest, "*", SearchOption.AllDirectories));
        }
        finally
        {
            Directory.Delete(dest, recursive: true);
        }
    }

    private Shell.Result Make(string target, string dest, string? pins = null, TestNetwork? net = null)
    {
        List<string> args = ["-C", OpsTools.RepoRoot, "--no-print-directory", target, "DESTDIR=" + dest];
        if (pins is not null) args.Add("PINDIR=" + pins);
        // uninstall runs where the daemon ran (its interface is only visible there).
        var r = net is null
            ? Shell.Exec("make", args, new Dictionary<string, string> { ["INTERFACE"] = "lo" }, timeout: TimeSpan.FromMinutes(5))
            : Shell.Exec("nsenter", net.OnHost(["make", .. args]),
                new Dictionary<string, string> { ["INTERFACE"] = net.HostInterface }, timeout: TimeSpan.FromMinutes(5));
        output.WriteLine($"$ make {target}\n{r.All}");
        Assert.True(r.ExitCode == 0, $"make {target} exited {r.ExitCode}: {r.All}");
        return r;
    }

    private Process StartDaemon(TestNetwork net, string binary, string config, Dictionary<string, string> environment)
    {
        // nsenter and setpriv exec, so the process is the daemon itself (SIGKILL reaches it).
        var caps = string.Join(',', UnitCapabilities.Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));
        return Shell.Start("nsenter",
            net.OnHost("setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all", binary, "--config", config, "run"),
            environment, line => output.WriteLine("daemon: " + line));
    }

    private static string WaitForMetrics(TestNetwork net, Process daemon, int port, Func<string, bool> done)
    {
        var last = "";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(daemon.HasExited, $"the daemon exited ({(daemon.HasExited ? daemon.ExitCode : 0)}); see its output above");
            var r = Shell.Exec("nsenter", net.OnHost("curl", "-sf", "--max-time", "5", $"http://127.0.0.1:{port}/metrics"));
            if (r.ExitCode == 0)
            {
                last = r.Stdout;
                if (done(last)) return last;
            }
            Thread.Sleep(250);
        }
        throw new Xunit.Sdk.XunitException("/metrics never showed what was expected; last scrape:\n" + last);
    }

    private static long HostBytes(string metrics)
    {
        var m = Regex.Match(metrics, @"^sia_traffic_host_bytes_total\{port=""9984"",proto=""udp"",direction=""down""\} (\d+)$", RegexOptions.Multiline);
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    private static string IpLink(TestNetwork net) => Shell.Run("ip", "-n", net.HostNamespace!, "link", "show", "dev", net.HostInterface);
}
