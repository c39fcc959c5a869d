namespace SiaExporter.Hosting;

/// <summary>`collector run`: builds the host and runs it until SIGTERM/Ctrl-C.</summary>
public static class DaemonCommand
{
    public static Task<int> RunAsync(CollectorOptions options, string[] args)
    {
        _ = options;
        _ = args;
        Console.Error.WriteLine("collector: the daemon is being assembled; see the kernel core issue");
        return Task.FromResult(1);
    }
}
