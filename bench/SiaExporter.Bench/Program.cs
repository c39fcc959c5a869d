namespace SiaExporter.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "sqlite") return SqliteBench.Run(args[1..]);
        Console.Error.WriteLine("usage: SiaExporter.Bench <bpf|scrape|sqlite>");
        return 2;
    }
}
