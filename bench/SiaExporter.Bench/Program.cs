namespace SiaExporter.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["bpf", ..]) return BpfBench.Run(args[1..]);
        if (args is ["scrape", ..]) return ScrapeBench.Run(args[1..]);
        if (args is ["sqlite", ..]) return SqliteBench.Run(args[1..]);
        if (args is ["scrape-daemon", ..]) return DaemonScrapeBench.Run(args[1..]);
        Console.Error.WriteLine("usage: SiaExporter.Bench <bpf|scrape|scrape-daemon|sqlite>");
        return 2;
    }
}
