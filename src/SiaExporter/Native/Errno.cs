namespace SiaExporter.Native;

/// <summary>The Linux errno values the BPF code paths return, with their names.</summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int E2BIG = 7;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;
    public const int ERANGE = 34;
    public const int ENOSYS = 38;
    public const int ELOOP = 40;
    public const int EOPNOTSUPP = 95;
    /// <summary>Kernel-internal "not supported", leaks out of the bpf syscall.</summary>
    public const int ENOTSUPP = 524;

    public static string Name(int errno) => Math.Abs(errno) switch
    {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        E2BIG => "E2BIG",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        21 => "EISDIR",
        EINVAL => "EINVAL",
        24 => "EMFILE",
        ENOSPC => "ENOSPC",
        ERANGE => "ERANGE",
        36 => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ELOOP => "ELOOP",
        71 => "EPROTO",
        EOPNOTSUPP => "EOPNOTSUPP",
        ENOTSUPP => "ENOTSUPP",
        >= 4000 and < 4100 => $"LIBBPF_ERRNO_{Math.Abs(errno)}",
        var other => $"errno {other}",
    };

    /// <summary>The positive errno of a libbpf call: its negative return value, else errno.</summary>
    public static int Of(int returned) => returned < 0 ? -returned : Last();

    /// <summary>errno of the last P/Invoke declared with SetLastError = true.</summary>
    public static int Last() => System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
}
