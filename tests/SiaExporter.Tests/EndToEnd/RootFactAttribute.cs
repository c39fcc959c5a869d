using Xunit;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A fact that needs root (network namespaces, veth, tcpdump, BPF). Skipped when not root,
/// except under CI=true, where a kernel test must never be silently skipped: there it runs
/// and fails in <see cref="Root.Require"/>.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Root.IsRoot && !Root.IsCi)
            Skip = "needs root (network namespaces, veth, tcpdump); run as root or with CI=true to fail instead";
    }
}

public static class Root
{
    public static bool IsRoot => Environment.UserName == "root" || Libc.geteuid() == 0;

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static void Require()
    {
        if (!IsRoot)
            throw new InvalidOperationException("end-to-end tests need root (CI=true forbids skipping them)");
    }
}
