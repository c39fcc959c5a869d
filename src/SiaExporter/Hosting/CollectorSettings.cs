using System.Globalization;
using SiaExporter.Counters;

namespace SiaExporter.Hosting;

/// <summary>
/// Reads the settings of SPEC.md: an environment file (/etc/collector.env, or --config FILE),
/// then the process environment, then --kebab-case flags, each overriding the one before.
/// Every bad value is reported, one line each, before anything touches the kernel.
/// </summary>
public static class CollectorSettings
{
    public const string DefaultConfigFile = "/etc/collector.env";

    /// <summary>Every variable the daemon reads, in the order `collector --help` lists them.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        "SIA_HOSTNAME", "INTERFACE", "SQLITE_PATH", "API_ENDPOINT", "API_TOKEN", "LISTEN_ADDRESS", "PORTS",
        "METRICS_TOP_CLIENTS", "MAX_CLIENTS", "XDP_MODE", "RETENTION_DAYS", "WEB_CONFIG_FILE",
        "BPF_OBJECT", "PIN_DIRECTORY", "STATE_DIRECTORY", "CLIENT_IDLE_TIMEOUT", "LOG_INTERVAL", "LOG_TOP",
        "FLUSH_INTERVAL", "TC_ATTACH", "ANONYMIZE", "BPF_STATS",
    ];

    /// <summary>The flag for a variable: INTERFACE ↔ --interface.</summary>
    public static string FlagOf(string name) => "--" + name.ToLowerInvariant().Replace('_', '-');

    /// <summary>
    /// Splits <paramref name="args"/> into settings (--name value / --name=value, --config FILE)
    /// and the rest (command words and the command's own arguments).
    /// </summary>
    public static (Dictionary<string, string> Values, List<string> Arguments) Collect(
        IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> environment)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = new List<string>();
        string? configFile = null;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                rest.Add(arg);
                continue;
            }
            var eq = arg.IndexOf('=');
            var flag = eq > 0 ? arg[..eq] : arg;
            var name = flag[2..].ToUpperInvariant().Replace('-', '_');
            var known = name == "CONFIG" || Names.Contains(name);
            if (!known)
            {
                rest.Add(arg); // a command's own flag (--since, --limit, --format)
                continue;
            }
            string value;
            if (eq > 0) value = arg[(eq + 1)..];
            else if (i + 1 < args.Count) value = args[++i];
            else throw new SettingsException([$"{flag} needs a value"]);
            if (name == "CONFIG") configFile = value;
            else flags[name] = value;
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var file = configFile ?? (File.Exists(DefaultConfigFile) ? DefaultConfigFile : null);
        if (file is not null)
        {
            if (!File.Exists(file))
                throw new SettingsException([$"--config {file}: no such file"]);
            foreach (var (k, v) in ReadEnvironmentFile(file)) values[k] = v;
        }
        foreach (var name in Names)
            if (environment.TryGetValue(name, out var v) && v is not null) values[name] = v;
        foreach (var (k, v) in flags) values[k] = v;
        return (values, rest);
    }

    /// <summary>KEY=VALUE lines as systemd's EnvironmentFile= reads them: # comments, optional quotes.</summary>
    public static IEnumerable<KeyValuePair<string, string>> ReadEnvironmentFile(string path)
    {
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#' || line[0] == ';') continue;
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
            var eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (value.Length >= 2 && (value[0] == '"' || value[0] == '\'') && value[^1] == value[0])
                value = value[1..^1];
            yield return new(key, value);
        }
    }

    /// <summary>Parses and validates every value; throws <see cref="SettingsException"/> listing each problem.</summary>
    /// <param name="interfacesRequired">false for commands that attach nothing (top, export, detach):
    /// no default-route look-up, and an empty interface list is fine.</param>
    public static CollectorOptions Parse(IReadOnlyDictionary<string, string> values, Func<string?>? defaultRouteInterface = null,
        bool interfacesRequired = true)
    {
        var problems = new List<string>();
        string? Get(string name) => values.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

        T Read<T>(string name, T fallback, Func<string, T> parse, string expected)
        {
            var text = Get(name);
            if (text is null) return fallback;
            try
            {
                return parse(text);
            }
            catch (FormatException e)
            {
                problems.Add($"{name}={text}: {e.Message}");
            }
            catch (OverflowException)
            {
                problems.Add($"{name}={text}: {expected}");
            }
            return fallback;
        }

        int Int(string name, int fallback, int min, int max) => Read(name, fallback, t =>
        {
            if (!int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
                throw new FormatException($"expected a whole number from {min} to {max}");
            return n;
        }, $"expected a whole number from {min} to {max}");

        TimeSpan Duration(string name, TimeSpan fallback, TimeSpan min) => Read(name, fallback, t =>
        {
            var d = DurationText.Parse(t);
            if (d < min) throw new FormatException($"must be at least {DurationText.Format(min)}");
            return d;
        }, "expected a duration like 30s, 5m, 1h");

        var ports = Read("PORTS", PortClassSet.DefaultSet, PortClassSet.Parse, "");
        var xdpMode = Read("XDP_MODE", XdpMode.Auto, t => t.ToLowerInvariant() switch
        {
            "auto" => XdpMode.Auto,
            "native" or "drv" or "driver" => XdpMode.Native,
            "generic" or "skb" => XdpMode.Generic,
            _ => throw new FormatException("expected auto, native or generic"),
        }, "");
        var listen = Read("LISTEN_ADDRESS", ":" + CollectorOptions.DefaultPort, t =>
        {
            ListenAddress.Parse(t);
            return t;
        }, "");
        var tcAttach = Read("TC_ATTACH", "auto", t => t.ToLowerInvariant() is "auto" or "tcx" or "netlink"
            ? t.ToLowerInvariant()
            : throw new FormatException("expected auto, tcx or netlink"), "");

        var bpfStats = Read("BPF_STATS", false, t => t.ToLowerInvariant() switch
        {
            "on" or "true" or "1" or "yes" => true,
            "off" or "false" or "0" or "no" => false,
            _ => throw new FormatException("expected on or off"),
        }, "");
        var anonymize = Read("ANONYMIZE", SiaExporter.Web.ClientPrefix.None, SiaExporter.Web.ClientPrefix.Parse, "");
        var interfaces = (Get("INTERFACE") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Distinct(StringComparer.Ordinal).ToList();
        if (interfaces.Count == 0 && interfacesRequired)
        {
            var route = (defaultRouteInterface ?? DefaultRoute.InterfaceName)();
            if (route is null)
                problems.Add("INTERFACE is not set and there is no default route to take it from: set INTERFACE=eth0 (see `ip link`)");
            else
                interfaces.Add(route);
        }
        foreach (var name in interfaces)
            if (name.Length > 15 || name.Contains('/') || name.Any(char.IsWhiteSpace))
                problems.Add($"INTERFACE: '{name}' is not a valid interface name");

        var apiEndpoint = Get("API_ENDPOINT");
        if (apiEndpoint is not null && (!Uri.TryCreate(apiEndpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https")))
            problems.Add($"API_ENDPOINT={apiEndpoint}: expected an http:// or https:// URL");
        var webConfig = Get("WEB_CONFIG_FILE");
        if (webConfig is not null && !File.Exists(webConfig))
            problems.Add($"WEB_CONFIG_FILE={webConfig}: no such file");

        var sqlitePath = Get("SQLITE_PATH") ?? "/var/lib/collector/traffic.db";
        var options = new CollectorOptions
        {
            SiaHostname = Get("SIA_HOSTNAME") ?? System.Net.Dns.GetHostName(),
            Interfaces = interfaces,
            SqlitePath = sqlitePath,
            ApiEndpoint = apiEndpoint,
            ApiToken = Get("API_TOKEN"),
            ListenAddress = listen,
            Ports = ports,
            MetricsTopClients = Int("METRICS_TOP_CLIENTS", 1000, 0, 1_000_000),
            MaxClients = Int("MAX_CLIENTS", 16384, 16, 16_777_216),
            XdpMode = xdpMode,
            RetentionDays = Int("RETENTION_DAYS", 400, 1, 36_500),
            WebConfigFile = webConfig,
            BpfObjectPath = Get("BPF_OBJECT") ?? DefaultBpfObjectPath(),
            PinDirectory = Get("PIN_DIRECTORY") ?? "/sys/fs/bpf/collector",
            StateDirectory = Get("STATE_DIRECTORY") ?? (Path.GetDirectoryName(Path.GetFullPath(sqlitePath)) ?? "/var/lib/collector"),
            ClientIdleTimeout = Duration("CLIENT_IDLE_TIMEOUT", TimeSpan.FromHours(1), TimeSpan.FromSeconds(1)),
            LogInterval = Duration("LOG_INTERVAL", TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1)),
            LogTop = Int("LOG_TOP", 5, 1, 1000),
            FlushInterval = Duration("FLUSH_INTERVAL", TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(1)),
            TcAttach = tcAttach,
            Anonymize = anonymize,
            BpfStats = bpfStats,
        };
        if (problems.Count > 0) throw new SettingsException(problems);
        return options;
    }

    /// <summary>collector.bpf.o beside the binary (make build, make run), else the installed copy.</summary>
    public static string DefaultBpfObjectPath()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "collector.bpf.o");
        return File.Exists(beside) ? beside : "/var/lib/collector/bpf/collector.bpf.o";
    }
}

/// <summary>One or more settings are wrong; each entry is one line for the operator.</summary>
public sealed class SettingsException(IReadOnlyList<string> problems) : Exception(string.Join(Environment.NewLine, problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>Durations as operators write them: 90s, 5m, 1h, 7d, 1h30m, or plain seconds.</summary>
public static class DurationText
{
    public static TimeSpan Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var plain) && plain >= 0)
            return TimeSpan.FromSeconds(plain);
        var total = TimeSpan.Zero;
        var i = 0;
        while (i < t.Length)
        {
            var start = i;
            while (i < t.Length && (char.IsDigit(t[i]) || t[i] == '.')) i++;
            if (start == i || i == t.Length) throw new FormatException($"'{text}' is not a duration like 30s, 5m, 1h, 7d");
            var n = double.Parse(t[start..i], CultureInfo.InvariantCulture);
            var unitStart = i;
            while (i < t.Length && char.IsLetter(t[i])) i++;
            total += t[unitStart..i] switch
            {
                "ms" => TimeSpan.FromMilliseconds(n),
                "s" => TimeSpan.FromSeconds(n),
                "m" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                "d" => TimeSpan.FromDays(n),
                "w" => TimeSpan.FromDays(7 * n),
                _ => throw new FormatException($"'{text}' is not a duration like 30s, 5m, 1h, 7d"),
            };
        }
        return total;
    }

    public static string Format(TimeSpan d) =>
        d.TotalDays >= 1 && d.TotalDays == Math.Floor(d.TotalDays) ? $"{d.TotalDays:0}d"
        : d.TotalHours >= 1 && d.TotalHours == Math.Floor(d.TotalHours) ? $"{d.TotalHours:0}h"
        : d.TotalMinutes >= 1 && d.TotalMinutes == Math.Floor(d.TotalMinutes) ? $"{d.TotalMinutes:0}m"
        : $"{d.TotalSeconds:0.###}s";
}

/// <summary>LISTEN_ADDRESS: ":10981", "127.0.0.1:10981", "[::1]:10981", "0.0.0.0:10981".</summary>
public readonly record struct ListenAddress(string? Host, int Port)
{
    public static ListenAddress Parse(string text)
    {
        var t = text.Trim();
        var colon = t.LastIndexOf(':');
        if (colon < 0) throw new FormatException("expected [HOST]:PORT, for example :10981 or 127.0.0.1:10981");
        var host = t[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (!int.TryParse(t[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new FormatException($"'{t[(colon + 1)..]}' is not a port from 1 to 65535");
        if (host.Length > 0 && host != "*" && host != "localhost" && !System.Net.IPAddress.TryParse(host, out _))
            throw new FormatException($"'{host}' is not an IP address (use :PORT for every address)");
        return new ListenAddress(host.Length == 0 || host == "*" ? null : host, port);
    }
}

/// <summary>The interface of the IPv4 (else IPv6) default route, from /proc/net/route.</summary>
public static class DefaultRoute
{
    public static string? InterfaceName()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/net/route").Skip(1))
            {
                var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (f.Length > 7 && f[1] == "00000000" && f[7] == "00000000") return f[0];
            }
            foreach (var line in File.ReadLines("/proc/net/ipv6_route"))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length >= 10 && f[0] == new string('0', 32) && f[1] == "00" && f[9] != "lo") return f[9];
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}
