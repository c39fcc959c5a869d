using System.Runtime.InteropServices;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// An AF_PACKET socket bound to one interface: sends frames exactly as given (no padding, no
/// checksum fix-up) through the interface's transmit path, so its tc egress sees them and the
/// other end of a veth receives them. Made in the namespace of the thread that creates it.
/// </summary>
internal sealed unsafe partial class RawFrameSocket : IDisposable
{
    private const int AfPacket = 17, SockRaw = 3, SockCloexec = 0x80000;
    private const ushort EthPAll = 0x0003;
    private readonly int _fd;
    private readonly int _ifIndex;

    public RawFrameSocket(string interfaceName)
    {
        _ifIndex = (int)if_nametoindex(interfaceName);
        if (_ifIndex == 0) throw new InvalidOperationException($"no interface {interfaceName} here");
        // protocol 0: this socket sends only, it receives nothing
        _fd = socket(AfPacket, SockRaw | SockCloexec, 0);
        if (_fd < 0) throw new InvalidOperationException($"socket(AF_PACKET): errno {Marshal.GetLastPInvokeError()}");
    }

    public void Send(byte[] frame)
    {
        var address = stackalloc byte[20]; // struct sockaddr_ll
        new Span<byte>(address, 20).Clear();
        *(ushort*)address = AfPacket;
        *(ushort*)(address + 2) = (ushort)((EthPAll >> 8) | (EthPAll << 8 & 0xff00));
        *(int*)(address + 4) = _ifIndex;
        address[11] = 6; // sll_halen
        frame.AsSpan(0, 6).CopyTo(new Span<byte>(address + 12, 6));
        fixed (byte* data = frame)
        {
            var sent = sendto(_fd, data, (nuint)frame.Length, 0, address, 20);
            if (sent != frame.Length) throw new InvalidOperationException($"sendto(AF_PACKET): {sent}, errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Dispose() => close(_fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendto(int fd, byte* buffer, nuint length, int flags, byte* address, int addressLength);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint if_nametoindex(string name);
}
