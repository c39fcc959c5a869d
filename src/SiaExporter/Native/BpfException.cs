namespace SiaExporter.Native;

/// <summary>A libbpf or bpf() call failed with an errno that is not an operator's fault.</summary>
public sealed class BpfException : Exception
{
    public BpfException(string operation, int errno, string? detail = null)
        : base($"{operation} failed: {Native.Errno.Name(errno)}{(detail is null ? "" : $" ({detail})")}")
    {
        Operation = operation;
        Errno = Math.Abs(errno);
    }

    public string Operation { get; }

    /// <summary>Positive errno value.</summary>
    public int Errno { get; }

    public string ErrnoName => Native.Errno.Name(Errno);
}

/// <summary>Turns failed native calls into exceptions: the operator's problems (missing privilege)
/// become <see cref="OperatorException"/>, the rest <see cref="BpfException"/> with the errno name.</summary>
internal static class BpfErrors
{
    public static readonly string PrivilegeHint = "run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN";

    /// <summary>Returns <paramref name="returned"/> when it is not negative, else throws.</summary>
    public static int Check(int returned, string operation)
    {
        if (returned >= 0) return returned;
        throw Exception(operation, Errno.Of(returned));
    }

    public static Exception Exception(string operation, int errno) => Math.Abs(errno) switch
    {
        Errno.EPERM => new OperatorException($"permission denied loading eBPF ({operation}: EPERM)", PrivilegeHint),
        _ => new BpfException(operation, errno),
    };
}
