using SiaExporter.Hosting;

namespace SiaExporter;

public static class Program
{
    public const string Usage = """
        usage: collector [run] [--SETTING VALUE ...]          the daemon: attach, serve /metrics, flush to SQLite, log top clients
               collector top [--since 1h | --period month|day|hour [--at T]] [--limit 20]   top clients from the SQLite history
               collector export --format csv|json [--since T] [--until T]   history rows to stdout (5m, 1h or 1d rows)
               collector report [--month 2026-11] [--limit 5]   a billing month: used, projected, quota, top clients
               collector detach [--purge]                    detach the programs left attached; --purge also removes the pinned counters
               collector version                             version, libbpf version, kernel features found
               collector settings [--env-example|--markdown] every setting with its default (as an env file, or a Markdown table)

        Settings are environment variables (read from /etc/collector.env when it exists, or --config FILE);
        the same name as a --kebab-case flag overrides them (INTERFACE <-> --interface). See docs/reference.md.
        """;

    /// <summary>`collector --help`: the commands, then every setting of the table.</summary>
    public static string Help => Usage + "\n\nSettings:\n" + SettingsDocs.Help();

    /// <summary>The kernel settings when every setting parses (`collector version` then describes the interfaces); else null.</summary>
    private static KernelOptions? KernelOptionsOrNull(IReadOnlyDictionary<string, string> values)
    {
        try
        {
            return CollectorSettings.Parse(values).Kernel;
        }
        catch (SettingsException)
        {
            return null;
        }
    }

    public static async Task<int> Main(string[] args)
    {
        try
        {
            var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal);
            var (values, rest) = CollectorSettings.Collect(args, environment);
            var command = rest.Count > 0 ? rest[0] : "run";
            var commandArgs = rest.Skip(1).ToArray();
            switch (command)
            {
                case "run":
                    return await DaemonCommand.RunAsync(CollectorSettings.Parse(values), commandArgs).ConfigureAwait(false);
                case "top":
                    return Commands.Top(CollectorSettings.Parse(values, interfacesRequired: false), commandArgs);
                case "export":
                    return Commands.Export(CollectorSettings.Parse(values, interfacesRequired: false), commandArgs);
                case "report":
                    return Commands.Report(CollectorSettings.Parse(values, interfacesRequired: false), commandArgs);
                case "detach":
                    return Commands.Detach(CollectorSettings.Parse(values, interfacesRequired: false), commandArgs);
                case "version" or "--version" or "-V":
                    return Commands.Version(KernelOptionsOrNull(values));
                case "settings":
                    return Commands.Settings(commandArgs);
                case "help" or "--help" or "-h":
                    Console.Out.Write(Help);
                    return 0;
                default:
                    Console.Error.WriteLine($"collector: unknown command '{command}'");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (SettingsException e)
        {
            foreach (var problem in e.Problems) Console.Error.WriteLine($"collector: bad setting: {problem}");
            return 2;
        }
        catch (OperatorException e)
        {
            Console.Error.WriteLine($"collector: error: {e.Message}");
            return 1;
        }
    }
}
