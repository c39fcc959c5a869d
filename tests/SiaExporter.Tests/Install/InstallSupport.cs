using System.Diagnostics;
using System.Runtime.InteropServices;
using SiaExporter.Bpf;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Install;

/// <summary>A fact that needs systemd-analyze: skipped when it is missing, except under CI=true (fails there).</summary>
public sealed class SystemdAnalyzeFactAttribute : FactAttribute
{
    public SystemdAnalyzeFactAttribute()
    {
        if (InstallTools.SystemdAnalyze is null && !KernelTestEnvironment.IsCi)
            Skip = "systemd-analyze is not installed (apt-get install systemd; not skipped under CI=true)";
    }
}

internal sealed record ProcessResult(int ExitCode, string Output, string Error)
{
    public string All => Output + Error;
}

internal static class InstallTools
{
    public static string? SystemdAnalyze => Which("systemd-analyze");

    public static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin")
        .Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, name))
        .FirstOrDefault(File.Exists);

    /// <summary>The checkout: the directory above the test assembly holding Makefile and SiaExporter.sln.</summary>
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Makefile")) && File.Exists(Path.Combine(dir.FullName, "SiaExporter.sln")))
                    return dir.FullName;
            throw new InvalidOperationException("no Makefile + SiaExporter.sln above " + AppContext.BaseDirectory);
        }
    }

    public static string UnitFile => Path.Combine(RepoRoot, "collector.service");

    public static ProcessResult Run(string file, IEnumerable<string> arguments, IDictionary<string, string>? environment = null,
        string? workingDirectory = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        // A make started by `make test` must not join the outer make's jobserver or inherit its variables.
        foreach (var name in new[] { "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES" }) start.Environment.Remove(name);
        if (environment is not null)
            foreach (var (k, v) in environment) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish");
        }
        return new ProcessResult(process.ExitCode, output.Result, error.Result);
    }

    public static string MustRun(string file, params string[] arguments)
    {
        var r = Run(file, arguments);
        if (r.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited {r.ExitCode}: {r.All}");
        return r.Output;
    }
}

/// <summary>
/// Two network namespaces insh-XXXX (the "host", veth inshXXXX 10.216.0.1/30) and insp-XXXX (the
/// peer, inspXXXX 10.216.0.2/30). All traffic stays between them; disposing deletes both.
/// </summary>
internal sealed class InsNamespaces : IDisposable
{
    public const string HostAddress = "10.216.0.1";

    public InsNamespaces()
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        HostNamespace = $"insh-{id}";
        PeerNamespace = $"insp-{id}";
        HostLink = $"insh{id}";
        PeerLink = $"insp{id}";
        try
        {
            InstallTools.MustRun("ip", "netns", "add", HostNamespace);
            InstallTools.MustRun("ip", "netns", "add", PeerNamespace);
            InstallTools.MustRun("ip", "link", "add", HostLink, "netns", HostNamespace, "type", "veth", "peer", "name", PeerLink, "netns", PeerNamespace);
            InstallTools.MustRun("ip", "-n", HostNamespace, "addr", "add", HostAddress + "/30", "dev", HostLink);
            InstallTools.MustRun("ip", "-n", PeerNamespace, "addr", "add", "10.216.0.2/30", "dev", PeerLink);
            InstallTools.MustRun("ip", "-n", HostNamespace, "link", "set", HostLink, "up");
            InstallTools.MustRun("ip", "-n", PeerNamespace, "link", "set", PeerLink, "up");
            InstallTools.MustRun("ip", "-n", HostNamespace, "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string HostNamespace { get; }
    public string PeerNamespace { get; }
    public string HostLink { get; }
    public string PeerLink { get; }

    /// <summary>nsenter --net only: unlike `ip netns exec` it keeps the host's /sys, so /sys/fs/bpf is the real bpffs.</summary>
    public static string[] InNamespace(string ns, params string[] command) => ["--net=/run/netns/" + ns, .. command];

    public void SendUdpToHost(int port, int count, string payload)
    {
        for (var i = 0; i < count; i++)
            InstallTools.MustRun("nsenter", InNamespace(PeerNamespace, "bash", "-c", $"echo {payload} > /dev/udp/{HostAddress}/{port}"));
    }

    /// <summary>Program ids on the host link's TCX ingress and egress, queried from a thread moved into the namespace.</summary>
    public uint[] TcxProgramIds()
    {
        uint[] ids = [];
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var ns = File.OpenHandle("/run/netns/" + HostNamespace);
                if (SetNs(ns.DangerousGetHandle().ToInt32(), 0x40000000 /* CLONE_NEWNET */) != 0)
                    throw new InvalidOperationException("setns failed: errno " + Marshal.GetLastPInvokeError());
                NativeLibraryResolver.EnsureLibBpf();
                var ifIndex = (int)Libc.IfNameToIndex(HostLink);
                if (ifIndex == 0) throw new InvalidOperationException($"{HostLink} not found in {HostNamespace}");
                ids = [.. TcxQuery.ProgramIds(ifIndex, Hook.TcIngress), .. TcxQuery.ProgramIds(ifIndex, Hook.TcEgress)];
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start(); // the thread (and its namespace) ends with the query
        thread.Join();
        if (failure is not null) throw failure;
        return ids;
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);

    public void Dispose()
    {
        try
        {
            InstallTools.Run("ip", ["netns", "del", HostNamespace]);
            InstallTools.Run("ip", ["netns", "del", PeerNamespace]);
        }
        catch (Exception)
        {
            // best effort
        }
    }
}
