using System.Globalization;
using SiaExporter.Bpf;
using SiaExporter.Native;

namespace SiaExporter.Hosting;

/// <summary>
/// What `collector run` checks before it builds the host, so that each mistake an operator can
/// make ends in one clear line (and a non-zero exit) instead of a hosting stack trace.
/// The one place for these checks: <see cref="Bpf.CollectorObject"/> does not repeat them (it
/// reports what fails while loading), and settings were validated when they were parsed.
/// </summary>
public static class Preflight
{
    private const int CapNetAdmin = 12;
    private const int CapSysAdmin = 21;
    private const int CapPerfmon = 38;
    private const int CapBpf = 39;

    public static void Check(KernelOptions options)
    {
        RequirePrivileges(EffectiveCapabilities());
        NativeLibraryResolver.EnsureLibBpf();
        KernelFeatures.Probe().RequireForLoad();
        foreach (var name in options.Interfaces)
        {
            HookAttachments.IfIndexOf(name);
            LinkType.Require(name);
        }
        if (!File.Exists(options.BpfObjectPath))
            throw new OperatorException($"the BPF object {options.BpfObjectPath} does not exist",
                "run `make build` (it is built beside the binary) or `make install`, or set BPF_OBJECT");
    }

    /// <summary>CapEff of this process, from /proc/self/status.</summary>
    public static ulong EffectiveCapabilities()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return ulong.Parse(line[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return 0;
    }

    /// <summary>Loading and attaching need CAP_BPF, CAP_PERFMON (the verifier's pointer checks) and
    /// CAP_NET_ADMIN; CAP_SYS_ADMIN stands in for the first two on any kernel.</summary>
    public static void RequirePrivileges(ulong capabilities)
    {
        bool Has(int cap) => (capabilities & (1UL << cap)) != 0;
        var missing = new List<string>();
        if (!Has(CapBpf) && !Has(CapSysAdmin)) missing.Add("CAP_BPF");
        if (!Has(CapPerfmon) && !Has(CapSysAdmin)) missing.Add("CAP_PERFMON");
        if (!Has(CapNetAdmin)) missing.Add("CAP_NET_ADMIN");
        if (missing.Count > 0)
            throw new OperatorException($"missing privileges to load eBPF ({string.Join(", ", missing)})",
                "run as root (sudo make run, or the systemd unit), or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN");
    }
}
