using System.Runtime.InteropServices;

namespace SiaExporter.Native;

/// <summary>
/// Linux errno values of the BPF code paths (asm-generic/errno-base.h, errno.h), as a type: a
/// native call's failure is an <see cref="Errno"/>, never a bare int. <see cref="None"/> = success.
/// In the manner of dotnet/runtime's Interop.Errors.cs, but with the kernel's own numbers, since
/// they come straight from the bpf() syscall through libbpf.
/// </summary>
internal enum Errno
{
    None = 0,
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    EMFILE = 24,
    ENOSPC = 28,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ELOOP = 40,
    EPROTO = 71,
    EOPNOTSUPP = 95,
    /// <summary>Kernel-internal "not supported", leaks out of the bpf syscall.</summary>
    ENOTSUPP = 524,
}

internal static class Errnos
{
    /// <summary>libbpf's own error codes (LIBBPF_ERRNO__*) start here.</summary>
    private const int LibBpfErrnoBase = 4000;

    /// <summary>"EINVAL"; "LIBBPF_ERRNO_4003" or "errno 1234" for codes without a name here.</summary>
    public static string Name(this Errno errno) => errno switch
    {
        Errno.None => "success",
        Errno.EPERM => "EPERM",
        Errno.ENOENT => "ENOENT",
        Errno.ESRCH => "ESRCH",
        Errno.EINTR => "EINTR",
        Errno.EIO => "EIO",
        Errno.ENXIO => "ENXIO",
        Errno.E2BIG => "E2BIG",
        Errno.EBADF => "EBADF",
        Errno.EAGAIN => "EAGAIN",
        Errno.ENOMEM => "ENOMEM",
        Errno.EACCES => "EACCES",
        Errno.EFAULT => "EFAULT",
        Errno.EBUSY => "EBUSY",
        Errno.EEXIST => "EEXIST",
        Errno.ENODEV => "ENODEV",
        Errno.ENOTDIR => "ENOTDIR",
        Errno.EISDIR => "EISDIR",
        Errno.EINVAL => "EINVAL",
        Errno.EMFILE => "EMFILE",
        Errno.ENOSPC => "ENOSPC",
        Errno.ERANGE => "ERANGE",
        Errno.ENAMETOOLONG => "ENAMETOOLONG",
        Errno.ENOSYS => "ENOSYS",
        Errno.ELOOP => "ELOOP",
        Errno.EPROTO => "EPROTO",
        Errno.EOPNOTSUPP => "EOPNOTSUPP",
        Errno.ENOTSUPP => "ENOTSUPP",
        >= (Errno)LibBpfErrnoBase and < (Errno)(LibBpfErrnoBase + 100) => $"LIBBPF_ERRNO_{(int)errno}",
        _ => $"errno {(int)errno}",
    };

    /// <summary>The outcome of a libbpf call that returns 0 or a descriptor on success and a
    /// negative errno on failure (libbpf 1.x): <see cref="Errno.None"/> when not negative.</summary>
    public static Errno FromReturn(int returned) => returned >= 0 ? Errno.None : (Errno)(-returned);

    /// <summary>errno of the last P/Invoke declared with SetLastError = true (for calls that
    /// return NULL or -1 and leave the reason in errno).</summary>
    public static Errno Last() => (Errno)Marshal.GetLastPInvokeError();
}
