using System.Net;
using System.Runtime.InteropServices;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// Two tun devices joined by a userspace wire, the way a WireGuard or PPP link looks to the host:
/// <code>
///   root namespace ("the host")                        namespace tunXXXX ("the clients")
///   tunXXXXh  10.N.0.1 peer 10.N.0.2, fd00:N::1/64  &lt;= wire =&gt;  tunXXXXn  10.N.0.2 peer 10.N.0.1, fd00:N::2/64
/// </code>
/// The wire is two threads copying each packet read from one tun fd to the other. The devices
/// die with their fds (not persistent), so a crashed run leaves only the namespace behind, which
/// Dispose removes. <paramref name="linkType"/> (TUNSETLINK) makes the host end report another
/// ARPHRD type (PPP, raw IP, or one the collector refuses) while it still carries bare IP packets.
/// </summary>
internal sealed partial class TunPair : IDisposable
{
    private const uint TunSetInterface = 0x400454ca; // TUNSETIFF
    private const uint TunSetLink = 0x400454cd;      // TUNSETLINK
    private const short IffTun = 0x0001, IffNoPi = 0x1000;
    private const int ORdWr = 2, OCloexec = 0x80000;

    private readonly int _hostFd;
    private readonly int _peerFd = -1;
    private readonly List<Thread> _wire = [];
    private volatile bool _stopping;

    public TunPair(ushort? linkType = null)
    {
        Root.Require();
        // sxt<pid>-N like every test network: a dead run's leftovers are removed by the next run
        Namespace = OwnedNames.NewStem();
        HostInterface = Namespace + "h";
        PeerInterface = Namespace + "n";
        Subnet = FreeSubnet();
        HostV4 = IPAddress.Parse($"10.{Subnet}.0.1");
        ClientV4 = IPAddress.Parse($"10.{Subnet}.0.2");
        HostV6 = IPAddress.Parse($"fd00:{Subnet:x}::1");
        ClientV6 = IPAddress.Parse($"fd00:{Subnet:x}::2");
        _hostFd = -1;
        try
        {
            Shell.Run("ip", "netns", "add", Namespace);
            InNamespace = new NamespaceThread(Namespace);
            _hostFd = Open(HostInterface, linkType);
            _peerFd = InNamespace.Run(() => Open(PeerInterface, null));
            Shell.Run("ip", "addr", "add", $"{HostV4}", "peer", $"{ClientV4}", "dev", HostInterface);
            Shell.Run("ip", "addr", "add", $"{HostV6}/64", "dev", HostInterface, "nodad");
            Shell.Run("ip", "link", "set", HostInterface, "up");
            Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV4}", "peer", $"{HostV4}", "dev", PeerInterface);
            Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV6}/64", "dev", PeerInterface, "nodad");
            Shell.Run("ip", "-n", Namespace, "link", "set", "lo", "up");
            Shell.Run("ip", "-n", Namespace, "link", "set", PeerInterface, "up");
            _wire.Add(Copy(_hostFd, _peerFd, "host→peer"));
            _wire.Add(Copy(_peerFd, _hostFd, "peer→host"));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Namespace { get; }
    public string HostInterface { get; }
    public string PeerInterface { get; }
    public int Subnet { get; }
    public IPAddress HostV4 { get; }
    public IPAddress ClientV4 { get; }
    public IPAddress HostV6 { get; }
    public IPAddress ClientV6 { get; }
    public NamespaceThread InNamespace { get; } = null!;

    /// <summary>Packets the wire carried (both directions).</summary>
    public long WirePackets => Interlocked.Read(ref _wirePackets);
    private long _wirePackets;

    /// <summary>A 10.N.0.0/24 (and fd00:N::/64) no address or route on the machine uses.</summary>
    private static int FreeSubnet()
    {
        var used = Shell.Run("ip", "-4", "route", "show", "table", "all") + Shell.Run("ip", "-4", "addr") + Shell.Run("ip", "-6", "addr");
        for (var i = 0; i < 100; i++)
        {
            var n = Random.Shared.Next(100, 250);
            if (!used.Contains($"10.{n}.", StringComparison.Ordinal) && !used.Contains($"fd00:{n:x}:", StringComparison.OrdinalIgnoreCase)) return n;
        }
        throw new InvalidOperationException("no free 10.N.0.0/24 test subnet");
    }

    private static unsafe int Open(string name, ushort? linkType)
    {
        var fd = open("/dev/net/tun", ORdWr | OCloexec);
        if (fd < 0) throw new InvalidOperationException($"open(/dev/net/tun): errno {Marshal.GetLastPInvokeError()}");
        var request = stackalloc byte[40];
        new Span<byte>(request, 40).Clear();
        System.Text.Encoding.ASCII.GetBytes(name).CopyTo(new Span<byte>(request, 15));
        *(short*)(request + 16) = IffTun | IffNoPi;
        if (ioctl(fd, TunSetInterface, request) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            close(fd);
            throw new InvalidOperationException($"TUNSETIFF {name}: errno {errno}");
        }
        if (linkType is { } type && ioctl(fd, TunSetLink, (void*)type) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            close(fd);
            throw new InvalidOperationException($"TUNSETLINK {name} {type}: errno {errno}");
        }
        return fd;
    }

    private Thread Copy(int from, int to, string name)
    {
        var thread = new Thread(() => Run(from, to)) { IsBackground = true, Name = $"tun wire {name}" };
        thread.Start();
        return thread;
    }

    private unsafe void Run(int from, int to)
    {
        var buffer = new byte[65536];
        var poll = stackalloc int[2]; // struct pollfd { int fd; short events, revents; }
        fixed (byte* p = buffer)
        {
            while (!_stopping)
            {
                poll[0] = from;
                poll[1] = 1; // POLLIN
                if (Libc_poll(poll, 1, 100) <= 0) continue;
                var n = read(from, p, (nuint)buffer.Length);
                if (n <= 0) continue;
                if (write(to, p, (nuint)n) == n) Interlocked.Increment(ref _wirePackets);
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var t in _wire) t.Join(TimeSpan.FromSeconds(5));
        if (_hostFd >= 0) close(_hostFd);
        if (_peerFd >= 0) close(_peerFd);
        InNamespace?.Dispose();
        Shell.TryRun("ip", "netns", "del", Namespace);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Libc_poll(int* fds, nuint count, int timeoutMs);
}
