using System.Globalization;

namespace SiaExporter.Hosting;

/// <summary>
/// Reads the settings of <see cref="SettingsTable"/>: an environment file (/etc/collector.env, or
/// --config FILE), then the process environment, then --kebab-case flags, each overriding the one
/// before. Every bad value is reported, one line each, before anything touches the kernel.
/// </summary>
public static class CollectorSettings
{
    public const string DefaultConfigFile = "/etc/collector.env";

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
            var setting = SettingsTable.FindByFlag(flag);
            var isConfig = string.Equals(flag, "--config", StringComparison.OrdinalIgnoreCase);
            if (setting is null && !isConfig)
            {
                rest.Add(arg); // a command's own flag (--since, --limit, --format)
                continue;
            }
            string value;
            if (eq > 0) value = arg[(eq + 1)..];
            else if (setting is { IsSwitch: true }) value = "on";
            else if (i + 1 < args.Count) value = args[++i];
            else throw new SettingsException([$"{flag} needs a value"]);
            if (isConfig) configFile = value;
            else if (setting!.Repeatable && flags.TryGetValue(setting.Name, out var earlier)) flags[setting.Name] = earlier + "," + value;
            else flags[setting!.Name] = value;
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var file = configFile ?? (File.Exists(DefaultConfigFile) ? DefaultConfigFile : null);
        if (file is not null)
        {
            if (!File.Exists(file))
                throw new SettingsException([$"--config {file}: no such file"]);
            foreach (var (k, v) in ReadEnvironmentFile(file)) values[k] = v;
        }
        foreach (var setting in SettingsTable.All)
            if (environment.TryGetValue(setting.Name, out var v) && v is not null) values[setting.Name] = v;
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
        var read = SettingsReader.Read(values);
        var interfaces = read.Value(SettingsTable.Interface);
        if (interfaces.Count == 0 && interfacesRequired && !read.HasProblemWith(SettingsTable.Interface))
        {
            var route = (defaultRouteInterface ?? DefaultRoute.InterfaceName)();
            if (route is null)
                read.Problem("INTERFACE is not set and there is no default route to take it from: set INTERFACE=eth0 (see `ip link`)");
            else
                interfaces = [route];
        }
        var sqlitePath = read.Value(SettingsTable.SqlitePath);

        var options = new CollectorOptions
        {
            SiaHostname = read.Value(SettingsTable.SiaHostname),
            Kernel = new KernelOptions
            {
                Interfaces = interfaces,
                Ports = read.Value(SettingsTable.Ports),
                MaxClients = read.Value(SettingsTable.MaxClients),
                XdpMode = read.Value(SettingsTable.XdpMode),
                TcAttach = read.Value(SettingsTable.TcAttach),
                BpfObjectPath = read.Value(SettingsTable.BpfObject),
                PinDirectory = read.Value(SettingsTable.PinDirectory),
                BpfStats = read.Value(SettingsTable.BpfStats),
            },
            Clients = new ClientOptions
            {
                Anonymize = read.Value(SettingsTable.Anonymize),
                IdleTimeout = read.Value(SettingsTable.ClientIdleTimeout),
            },
            Web = new WebOptions
            {
                ListenAddress = read.Value(SettingsTable.ListenAddress),
                ConfigFile = read.Value(SettingsTable.WebConfigFile),
                TelemetryPath = read.Value(SettingsTable.WebTelemetryPath),
                SystemdSocket = read.Value(SettingsTable.WebSystemdSocket),
                MaxRequests = read.Value(SettingsTable.WebMaxRequests),
                DisableExporterMetrics = read.Value(SettingsTable.WebDisableExporterMetrics),
            },
            Hostd = new HostdOptions
            {
                ApiUrl = read.Value(SettingsTable.HostdApiUrl),
                ApiPassword = read.Value(SettingsTable.HostdApiPassword),
                PollInterval = read.Value(SettingsTable.HostdPollInterval),
            },
            Metrics = new MetricsOptions
            {
                TopClients = read.Value(SettingsTable.MetricsTopClients),
                TopSubnets = read.Value(SettingsTable.MetricsTopSubnets),
                SubnetPrefix = read.Value(SettingsTable.SubnetPrefix),
                StateDirectory = read.ValueOr(SettingsTable.StateDirectory,
                    () => Path.GetDirectoryName(Path.GetFullPath(sqlitePath)) ?? SettingsTable.StateDirectory.Default),
            },
            Database = new DatabaseOptions
            {
                SqlitePath = sqlitePath,
                RetentionDays = read.Value(SettingsTable.RetentionDays),
                RawRetentionDays = read.Value(SettingsTable.RawRetentionDays),
                HourlyRetentionDays = read.Value(SettingsTable.HourlyRetentionDays),
                FlushInterval = read.Value(SettingsTable.FlushInterval),
            },
            Log = new LogOptions
            {
                Interval = read.Value(SettingsTable.LogInterval),
                Top = read.Value(SettingsTable.LogTop),
            },
            Api = new ApiOptions
            {
                Endpoint = read.Value(SettingsTable.ApiEndpoint),
                Token = read.Value(SettingsTable.ApiToken),
            },
            Billing = new BillingOptions
            {
                Day = read.Value(SettingsTable.BillingDay),
                QuotaUpBytes = read.Value(SettingsTable.QuotaUp),
                QuotaDownBytes = read.Value(SettingsTable.QuotaDown),
            },
        };
        read.ThrowIfAnyProblem();
        return options;
    }
}

/// <summary>
/// The values of one start-up, parsed in table order: each setting's value (or its default), and
/// every problem as one line for the operator.
/// </summary>
internal sealed class SettingsReader
{
    private readonly Dictionary<Setting, object?> _parsed = [];
    private readonly HashSet<Setting> _bad = [];
    private readonly List<string> _problems = [];

    public static SettingsReader Read(IReadOnlyDictionary<string, string> values)
    {
        var reader = new SettingsReader();
        foreach (var setting in SettingsTable.All)
        {
            // An empty or blank value is the same as an absent one: the default.
            if (!values.TryGetValue(setting.Name, out var raw) || string.IsNullOrWhiteSpace(raw)) continue;
            var before = reader._problems.Count;
            var value = setting.ParseOrReport(raw.Trim(), reader._problems);
            if (reader._problems.Count > before) reader._bad.Add(setting);
            else reader._parsed[setting] = value;
        }
        return reader;
    }

    /// <summary>The parsed value, else the table's default (also after a problem, which is reported).</summary>
    public T Value<T>(Setting<T> setting) => _parsed.TryGetValue(setting, out var v) ? (T)v! : setting.Default;

    /// <summary>The parsed value, else a default derived from other settings (STATE_DIRECTORY from SQLITE_PATH).</summary>
    public T ValueOr<T>(Setting<T> setting, Func<T> derivedDefault) => _parsed.TryGetValue(setting, out var v) ? (T)v! : derivedDefault();

    public bool HasProblemWith(Setting setting) => _bad.Contains(setting);

    public void Problem(string line) => _problems.Add(line);

    public void ThrowIfAnyProblem()
    {
        if (_problems.Count > 0) throw new SettingsException(_problems);
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
    /// <summary>Several addresses, comma separated (LISTEN_ADDRESS, or --web.listen-address repeated); duplicates once.</summary>
    public static IReadOnlyList<ListenAddress> ParseList(string text)
    {
        var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).Distinct().ToList();
        return list.Count > 0 ? list : throw new FormatException("expected [HOST]:PORT, for example :10981 or 127.0.0.1:10981");
    }

    /// <summary>As LISTEN_ADDRESS writes it: ":10981", "127.0.0.1:10981", "[::1]:10981".</summary>
    public override string ToString() =>
        Host is null ? $":{Port}" : Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

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
