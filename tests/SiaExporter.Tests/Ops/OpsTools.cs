using Xunit;

namespace SiaExporter.Tests.Ops;

/// <summary>Where the repository and the Prometheus tools are, for the ops-kit tests.</summary>
internal static class OpsTools
{
    /// <summary>CI=true turns a missing promtool/prometheus from a skip into a failure.</summary>
    public static bool IsCi => KernelTestEnvironment.IsCi;

    /// <summary>The checkout (<see cref="Repository.Root"/>).</summary>
    public static string RepoRoot => Repository.Root;

    /// <summary>Full path of an executable on PATH, or null.</summary>
    public static string? Find(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            if (dir.Length == 0) continue;
            var path = Path.Combine(dir, name);
            if (File.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>The tool's path; fails the test (it was not skipped, so CI=true) when it is missing.</summary>
    public static string Require(string name) =>
        Find(name) ?? throw new Xunit.Sdk.XunitException(
            $"{name} is not installed but CI=true requires it: apt-get install prometheus (Debian ships promtool in it)");

    /// <summary>Runs a tool to completion (<see cref="Shell.Exec"/>); returns exit code and the combined output.</summary>
    public static (int ExitCode, string Output) Run(string file, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var r = Shell.Exec(file, args, workingDirectory: workingDirectory, timeout: timeout);
        return (r.ExitCode, r.All);
    }
}

/// <summary>A fact that needs external tools: skipped when one is missing, unless CI=true
/// (then it runs and fails on the missing tool).</summary>
public sealed class RequiresToolsFactAttribute : FactAttribute
{
    public RequiresToolsFactAttribute(params string[] tools)
    {
        var missing = tools.Where(t => OpsTools.Find(t) is null).ToArray();
        if (missing.Length > 0 && !OpsTools.IsCi)
            Skip = $"{string.Join(", ", missing)} not installed (apt-get install prometheus); a failure when CI=true";
    }
}

/// <summary>The theory form of <see cref="RequiresToolsFactAttribute"/>.</summary>
public sealed class RequiresToolsTheoryAttribute : TheoryAttribute
{
    public RequiresToolsTheoryAttribute(params string[] tools)
    {
        var missing = tools.Where(t => OpsTools.Find(t) is null).ToArray();
        if (missing.Length > 0 && !OpsTools.IsCi)
            Skip = $"{string.Join(", ", missing)} not installed (apt-get install prometheus); a failure when CI=true";
    }
}
