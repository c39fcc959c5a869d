using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace SiaExporter.Tests.Flood;

/// <summary>An AF_PACKET socket bound to one interface of the calling thread's network namespace:
/// whole Ethernet frames out, as a spoofer would send them. Create and use it on a
/// NamespaceThread so the frames leave the test namespace's end of the veth.</summary>
internal sealed unsafe partial class PacketSocket : IDisposable
{
    private const int AfPacket = 17;
    private const int SockRaw = 3;
    private const ushort EthPAll = 0x0003;
    private readonly int _fd;

    public PacketSocket(string interfaceName)
    {
        var index = if_nametoindex(interfaceName);
        if (index == 0) throw new InvalidOperationException($"no interface {interfaceName} here");
        var protocol = BinaryPrimitives.ReverseEndianness(EthPAll);
        _fd = socket(AfPacket, SockRaw, protocol);
        if (_fd < 0) throw new InvalidOperationException($"socket(AF_PACKET): errno {Marshal.GetLastPInvokeError()}");
        var address = new SockaddrLl { Family = AfPacket, Protocol = protocol, IfIndex = (int)index };
        if (bind(_fd, &address, sizeof(SockaddrLl)) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            close(_fd);
            throw new InvalidOperationException($"bind(AF_PACKET, {interfaceName}): errno {errno}");
        }
    }

    public void Send(ReadOnlySpan<byte> frame)
    {
        fixed (byte* f = frame)
        {
            var sent = send(_fd, f, frame.Length, 0);
            if (sent != frame.Length) throw new InvalidOperationException($"send(AF_PACKET): {sent}, errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Dispose() => close(_fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol;
        public int IfIndex;
        public ushort HaType;
        public byte PktType;
        public byte HaLen;
        public fixed byte Addr[8];
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int bind(int fd, void* address, int length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, void* buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint if_nametoindex(string name);
}
