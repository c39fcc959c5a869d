using SiaExporter.Bpf;
using SiaExporter.Native;
using SiaExporter.Tests.EndToEnd;
using SiaExporter.Tests.Ops;
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

internal static class InstallTools
{
    public static string? SystemdAnalyze => OpsTools.Find("systemd-analyze");

    public static string UnitFile => Path.Combine(OpsTools.RepoRoot, "collector.service");
}

/// <summary>
/// The install tests' use of a <see cref="TestNetwork"/> whose host end is isolated in its own
/// namespace (so the installed daemon, make uninstall and the checks see only that end).
/// </summary>
internal static class IsolatedHost
{
    /// <summary>nsenter arguments that run a command in the host end's namespace. nsenter --net only:
    /// unlike `ip netns exec` it keeps the host's /sys, so /sys/fs/bpf is the real bpffs.</summary>
    public static string[] OnHost(this TestNetwork net, params string[] command) =>
        ["--net=/run/netns/" + (net.HostNamespace ?? throw new InvalidOperationException("the host end is not isolated")), .. command];

    /// <summary>UDP datagrams from the clients' namespace to the host end.</summary>
    public static void SendUdpToHost(this TestNetwork net, int port, int count, string payload)
    {
        for (var i = 0; i < count; i++)
            net.RunInNamespace("bash", "-c", $"echo {payload} > /dev/udp/{net.HostV4}/{port}");
    }

    /// <summary>Program ids on the host end's TCX ingress and egress, queried from a thread in its namespace.</summary>
    public static uint[] TcxProgramIds(this TestNetwork net)
    {
        using var thread = new NamespaceThread(net.HostNamespace ?? throw new InvalidOperationException("the host end is not isolated"));
        return thread.Run(() =>
        {
            NativeLibraryResolver.EnsureLibBpf();
            return (uint[])[.. TcxQuery.ProgramIds(net.HostIfIndex, Hook.TcIngress), .. TcxQuery.ProgramIds(net.HostIfIndex, Hook.TcEgress)];
        });
    }
}
