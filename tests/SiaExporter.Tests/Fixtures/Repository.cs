namespace SiaExporter.Tests;

/// <summary>The checkout the tests run from.</summary>
public static class Repository
{
    /// <summary>The folder holding SiaExporter.sln, found by walking up from the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SiaExporter.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"no SiaExporter.sln above {AppContext.BaseDirectory}");
    }
}
