using System.Runtime.InteropServices;

namespace SiaExporter.Tests.Kernel;

/// <summary>Pins the calling thread to one CPU (BPF_PROG_TEST_RUN of XDP/tc runs on the caller's
/// CPU), so a test can put per-CPU state on the CPU it chooses; disposing lets it run anywhere again.</summary>
internal sealed unsafe partial class CpuPin : IDisposable
{
    private readonly ulong[] _previous = new ulong[16];

    private CpuPin(int cpu)
    {
        fixed (ulong* previous = _previous)
            if (sched_getaffinity(0, _previous.Length * 8, previous) < 0)
                throw new InvalidOperationException($"sched_getaffinity: errno {Marshal.GetLastPInvokeError()}");
        var mask = new ulong[16];
        mask[cpu / 64] = 1UL << (cpu % 64);
        fixed (ulong* m = mask)
            if (sched_setaffinity(0, mask.Length * 8, m) < 0)
                throw new InvalidOperationException($"sched_setaffinity({cpu}): errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Runs <paramref name="action"/> on CPU <paramref name="cpu"/>.</summary>
    public static void On(int cpu, Action action)
    {
        using var pin = new CpuPin(cpu);
        action();
    }

    public void Dispose()
    {
        fixed (ulong* previous = _previous)
            sched_setaffinity(0, _previous.Length * 8, previous);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nint size, ulong* mask);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_getaffinity(int pid, nint size, ulong* mask);
}
