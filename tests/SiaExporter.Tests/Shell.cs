using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using SiaExporter.Tests.EndToEnd;

namespace SiaExporter.Tests;

/// <summary>The tests' one process runner: external tools (ip, ethtool, make, promtool, …) run to
/// completion, or started in the background with their output drained into a log. Arguments are
/// passed as a list, never through a shell.</summary>
public static class Shell
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public bool Ok => ExitCode == 0;

        /// <summary>Standard output followed by standard error.</summary>
        public string All => Stdout + Stderr;
    }

    public static Result Try(string file, params string[] args) => TryWithTimeout(TimeSpan.FromSeconds(60), file, args);

    public static Result TryWithTimeout(TimeSpan timeout, string file, params string[] args) => Exec(file, args, timeout: timeout);

    /// <summary>Runs to completion with optional extra environment, working directory and standard
    /// input; the result whatever the exit code. Throws only when the tool cannot start or outlives the timeout.</summary>
    public static Result Exec(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null,
        string? workingDirectory = null, TimeSpan? timeout = null, string? input = null)
    {
        var arguments = args.ToArray();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        var psi = StartInfo(file, arguments, environment, workingDirectory);
        psi.RedirectStandardInput = input is not null;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.Append(e.Data).Append('\n'); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (input is not null)
        {
            p.StandardInput.Write(input);
            p.StandardInput.Close();
        }
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Describe(file, arguments)} did not finish within {limit}");
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

    /// <summary>Starts a long-running process; every line of its stdout and stderr goes to <paramref name="onLine"/>.</summary>
    public static Process Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null,
        Action<string>? onLine = null, string? workingDirectory = null)
    {
        var process = new Process { StartInfo = StartInfo(file, args.ToArray(), environment, workingDirectory) };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) onLine?.Invoke(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) onLine?.Invoke(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Sends a signal (<see cref="Libc.SIGINT"/>, <see cref="Libc.SIGTERM"/>) to the process.</summary>
    public static void Signal(Process process, int signal)
    {
        if (Libc.kill(process.Id, signal) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Kills the process and its children if they still run, and releases it.</summary>
    public static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
    }

    public static string Describe(string file, IEnumerable<string> args) => file + " " + string.Join(' ', args);

    private static ProcessStartInfo StartInfo(string file, string[] args, IReadOnlyDictionary<string, string>? environment, string? workingDirectory)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // A make started under `make test` must not join the outer make's jobserver or inherit its
        // variables, and a daemon started here must never look like a systemd service.
        foreach (var name in new[] { "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "INVOCATION_ID", "NOTIFY_SOCKET" })
            psi.Environment.Remove(name);
        if (environment is not null)
            foreach (var (key, value) in environment) psi.Environment[key] = value;
        return psi;
    }
}

/// <summary>Thread-safe lines of a background process' output (<see cref="Shell.Start"/>'s onLine).</summary>
public sealed class OutputLog
{
    private readonly List<string> _lines = [];

    public void Add(string line)
    {
        lock (_lines) _lines.Add(line);
    }

    public string[] Lines
    {
        get
        {
            lock (_lines) return _lines.ToArray();
        }
    }

    public bool Contains(string fragment) => Lines.Any(l => l.Contains(fragment, StringComparison.Ordinal));

    public override string ToString() => string.Join('\n', Lines);
}
