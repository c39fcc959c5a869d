using System.Net;
using System.Net.Sockets;
using Xunit;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>Plain socket traffic between this namespace ("the host") and a client namespace, one
/// exchange at a time: TCP both ways, lockstep UDP. Every byte sent is checked as received.</summary>
internal static class SocketTraffic
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly byte[] Pattern = Enumerable.Range(0, 65536).Select(b => (byte)(b * 13 + 5)).ToArray();

    /// <summary>The client connects to the host's <paramref name="port"/>.</summary>
    public static void TcpInbound(NamespaceThread clients, IPAddress host, IPAddress client, int port, int clientSends, int hostSends)
    {
        using var listener = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(host, port));
        listener.Listen(1);
        using var c = clients.Run(() => new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        c.Connect(new IPEndPoint(host, port));
        using var s = listener.Accept();
        Exchange(c, s, clientSends, hostSends);
    }

    /// <summary>The host connects to a server on the client's <paramref name="port"/>.</summary>
    public static void TcpDialOut(NamespaceThread clients, IPAddress host, IPAddress peer, int port, int hostSends, int peerSends)
    {
        using var listener = clients.Run(() =>
        {
            var l = new Socket(peer.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(peer, port));
            l.Listen(1);
            return l;
        });
        using var h = new Socket(host.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        h.Bind(new IPEndPoint(host, 0));
        h.Connect(new IPEndPoint(peer, port));
        using var p = listener.Accept();
        Exchange(h, p, hostSends, peerSends);
    }

    /// <summary><paramref name="a"/> sends, then <paramref name="b"/> answers; both read to the end.</summary>
    public static void Exchange(Socket a, Socket b, int aSends, int bSends)
    {
        var first = Task.Run(() => { Send(a, aSends); a.Shutdown(SocketShutdown.Send); return ReadToEnd(a); });
        var second = Task.Run(() => { var got = ReadToEnd(b); Send(b, bSends); b.Shutdown(SocketShutdown.Send); return got; });
        Assert.True(Task.WaitAll([first, second], Timeout), "TCP exchange timed out");
        Assert.Equal(bSends, first.Result);
        Assert.Equal(aSends, second.Result);
    }

    public static void Send(Socket s, int count)
    {
        for (var left = count; left > 0;)
            left -= s.Send(Pattern, 0, Math.Min(left, Pattern.Length), SocketFlags.None);
    }

    public static int ReadToEnd(Socket s)
    {
        var buffer = new byte[65536];
        var total = 0;
        for (int n; (n = s.Receive(buffer)) > 0;) total += n;
        return total;
    }

    /// <summary>Lockstep request/reply datagrams (sizes 1..<paramref name="maxSize"/>) from the client to the host's <paramref name="port"/>.</summary>
    public static void UdpExchange(NamespaceThread clients, IPAddress host, IPAddress client, int port, int datagrams, int maxSize = 1200)
    {
        using var h = new Socket(host.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        h.Bind(new IPEndPoint(host, port));
        h.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        using var c = clients.Run(() =>
        {
            var s = new Socket(client.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(client, 0));
            return s;
        });
        c.ReceiveTimeout = (int)Timeout.TotalMilliseconds;
        var buffer = new byte[65536];
        for (var i = 0; i < datagrams; i++)
        {
            var request = 1 + i * 997 % maxSize;
            var reply = 1 + i * 389 % maxSize;
            c.SendTo(Pattern.AsSpan(0, request), new IPEndPoint(host, port));
            EndPoint from = new IPEndPoint(client.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            Assert.Equal(request, h.ReceiveFrom(buffer, ref from));
            h.SendTo(Pattern.AsSpan(0, reply), from);
            Assert.Equal(reply, c.Receive(buffer));
        }
    }
}
