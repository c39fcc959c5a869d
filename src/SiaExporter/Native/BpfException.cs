namespace SiaExporter.Native;

/// <summary>A libbpf or bpf() call failed with an errno that is not an operator's fault.</summary>
internal sealed class BpfException : Exception
{
    public BpfException(string operation, Errno errno, string? detail = null)
        : base($"{operation} failed: {errno.Name()}{(detail is null ? "" : $" ({detail})")}")
    {
        Operation = operation;
        Errno = errno;
    }

    public string Operation { get; }

    public Errno Errno { get; }

    public string ErrnoName => Errno.Name();
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
        throw Exception(operation, Errnos.FromReturn(returned));
    }

    /// <summary>Throws unless <paramref name="errno"/> is <see cref="Errno.None"/>.</summary>
    public static void Check(Errno errno, string operation)
    {
        if (errno != Errno.None) throw Exception(operation, errno);
    }

    public static Exception Exception(string operation, Errno errno) => errno switch
    {
        Errno.EPERM => new OperatorException($"permission denied loading eBPF ({operation}: EPERM)", PrivilegeHint),
        _ => new BpfException(operation, errno),
    };
}
