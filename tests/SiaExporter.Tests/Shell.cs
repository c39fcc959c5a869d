using System.Diagnostics;
using System.Text;

namespace SiaExporter.Tests;

/// <summary>Runs the external tools (ip, ethtool, tshark, bpftool) with arguments passed as a list, never
/// through a shell.</summary>
public static class Shell
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public bool Ok => ExitCode == 0;
    }

    public static Result Try(string file, params string[] args) => TryWithTimeout(TimeSpan.FromSeconds(60), file, args);

    public static Result TryWithTimeout(TimeSpan timeout, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.Append(e.Data).Append('\n'); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Describe(file, args)} did not finish within {timeout}");
        }
        p.WaitForExit(); // drains the async readers
        lock (stdout) lock (stderr) return new Result(p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs and throws with the tool's stderr when it fails.</summary>
    public static string Run(string file, params string[] args)
    {
        var r = Try(file, args);
        if (!r.Ok)
            throw new InvalidOperationException($"{Describe(file, args)} failed ({r.ExitCode}): {r.Stderr.Trim()}");
        return r.Stdout;
    }

    /// <summary>Runs and ignores a failure (clean-up of things that may already be gone).</summary>
    public static void TryRun(string file, params string[] args) => Try(file, args);

    public static string Describe(string file, IEnumerable<string> args) => file + " " + string.Join(' ', args);
}
