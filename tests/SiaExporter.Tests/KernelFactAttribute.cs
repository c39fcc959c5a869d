using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests;

/// <summary>
/// A test that needs the real kernel as root (CAP_BPF, CAP_NET_ADMIN). Skipped when not root,
/// except under CI=true: there a kernel test that cannot run must fail, not skip.
/// </summary>
public sealed class KernelFactAttribute : FactAttribute
{
    public KernelFactAttribute()
    {
        if (KernelTestEnvironment.SkipReason is { } reason) Skip = reason;
    }
}

/// <summary>The <see cref="TheoryAttribute"/> form of <see cref="KernelFactAttribute"/>.</summary>
public sealed class KernelTheoryAttribute : TheoryAttribute
{
    public KernelTheoryAttribute()
    {
        if (KernelTestEnvironment.SkipReason is { } reason) Skip = reason;
    }
}

internal static class KernelTestEnvironment
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static bool IsRoot => Libc.GetEffectiveUserId() == 0;

    /// <summary>Why kernel tests are skipped here, or null when they run (as root, or always under CI=true).</summary>
    public static string? SkipReason => IsRoot || IsCi ? null : "needs root for eBPF (not skipped under CI=true)";
}
