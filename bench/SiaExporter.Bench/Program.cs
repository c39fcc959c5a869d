namespace SiaExporter.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("usage: SiaExporter.Bench <bpf|scrape|sqlite>");
        return 2;
    }
}
