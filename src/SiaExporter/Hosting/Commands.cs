namespace SiaExporter.Hosting;

/// <summary>The short-lived commands: top, export, detach, version.</summary>
public static class Commands
{
    public static int Top(CollectorOptions options, string[] args) => NotYet("top", options, args);

    public static int Export(CollectorOptions options, string[] args) => NotYet("export", options, args);

    public static int Detach(CollectorOptions options, string[] args) => NotYet("detach", options, args);

    public static int Version(IReadOnlyDictionary<string, string> values)
    {
        _ = values;
        Console.Out.WriteLine($"collector {typeof(Commands).Assembly.GetName().Version}");
        return 0;
    }

    private static int NotYet(string name, CollectorOptions options, string[] args)
    {
        _ = options;
        _ = args;
        Console.Error.WriteLine($"collector: '{name}' is not built yet");
        return 1;
    }
}
