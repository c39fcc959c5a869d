using System.Net;
using System.Net.Sockets;
using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// Real traffic with known payloads between the namespace clients and the host, run one exchange
/// after another (so every byte is accounted for and the capture is easy to read):
/// <list type="bullet">
/// <item>TCP from each client (socket bound to that source address) to the host's 9981 and 9984: the
/// client sends N bytes and half-closes, the host reads to EOF, answers M bytes and closes; hundreds of
/// KB each way, so GSO/GRO has something to merge.</item>
/// <item>UDP 9984 ping-pong from each client, datagram sizes below, at and above the MTU (fragmented,
/// IPv4 and IPv6).</item>
/// <item>The host dialing OUT to a peer's 9981 inside the namespace (counted with that peer as client).</item>
/// <item>Non-Sia traffic that must not be counted: TCP 8080 and UDP 5353 (fragmented too).</item>
/// </list>
/// All connections close cleanly (FIN both ways, no RST); <see cref="Run"/> returns after a settle
/// delay in which the last ACKs cross.
/// </summary>
public sealed class TrafficPlan
{
    public sealed record TcpInbound(IPAddress Client, int HostPort, int ClientSends, int HostSends);

    public sealed record TcpDialOut(IPAddress Peer, int PeerPort, int HostSends, int PeerSends);

    public sealed record UdpExchange(IPAddress Client, int HostPort, IReadOnlyList<(int Request, int Reply)> Datagrams);

    public List<TcpInbound> Inbound { get; } = [];
    public List<TcpDialOut> DialOut { get; } = [];
    public List<UdpExchange> Udp { get; } = [];

    public TimeSpan Settle { get; init; } = TimeSpan.FromMilliseconds(250);

    public static readonly (int Request, int Reply)[] UdpSizesV4 = [(1, 1300), (200, 17), (1472, 1472), (1473, 40), (4000, 9000), (9000, 2000)];
    public static readonly (int Request, int Reply)[] UdpSizesV6 = [(1, 1300), (200, 17), (1452, 1452), (1453, 40), (3000, 9000), (9000, 2000)];

    /// <summary>The standard plan: every client, every Sia class, both directions, plus dial-outs and non-Sia noise.</summary>
    public static TrafficPlan Standard(TestNetwork net, int scaleKb = 300)
    {
        var plan = new TrafficPlan();
        var i = 0;
        foreach (var client in net.Clients)
        {
            foreach (var port in new[] { 9981, 9984 })
            {
                plan.Inbound.Add(new TcpInbound(client, port, scaleKb * 1000 + 1_009 * i + 7, scaleKb * 5000 / 3 + 2_003 * i + 11));
                i++;
            }
            plan.Udp.Add(new UdpExchange(client, 9984, client.AddressFamily == AddressFamily.InterNetworkV6 ? UdpSizesV6 : UdpSizesV4));
        }
        plan.DialOut.Add(new TcpDialOut(net.ClientV4A, 9981, scaleKb * 1000 / 2 + 13, scaleKb * 1000 + 17));
        plan.DialOut.Add(new TcpDialOut(net.ClientV6, 9981, scaleKb * 1000 / 3 + 19, scaleKb * 1000 / 2 + 23));
        // Not counted: other ports, including fragments of a non-Sia datagram.
        plan.Inbound.Add(new TcpInbound(net.ClientV4B, 8080, 100_000, 150_000));
        plan.Inbound.Add(new TcpInbound(net.ClientV6, 8080, 120_000, 90_000));
        plan.Udp.Add(new UdpExchange(net.ClientV4A, 5353, [(100, 300), (3000, 50)]));
        plan.Udp.Add(new UdpExchange(net.ClientV6, 5353, [(100, 300), (50, 3000)]));
        return plan;
    }

    /// <summary>Run the TCP exchanges all at once (flows spread over CPUs, the per-CPU counters
    /// summed) instead of one after another. UDP ping-pongs always run one at a time.</summary>
    public bool ConcurrentTcp { get; init; }

    public TrafficPlan WithConcurrentTcp()
    {
        var copy = new TrafficPlan { ConcurrentTcp = true, Settle = Settle };
        copy.Inbound.AddRange(Inbound);
        copy.DialOut.AddRange(DialOut);
        copy.Udp.AddRange(Udp);
        return copy;
    }

    /// <summary>Runs every exchange; throws if any byte went missing.</summary>
    public PlanResult Run(TestNetwork net)
    {
        var result = new PlanResult();
        using (var listeners = new Listeners())
        {
            var tcp = Inbound.Select(x => (Action)(() => RunInbound(net, listeners, x, result)))
                .Concat(DialOut.Select(x => (Action)(() => RunDialOut(net, listeners, x, result))))
                .ToList();
            if (ConcurrentTcp)
            {
                var tasks = tcp.Select(Dedicated).ToArray();
                if (!Task.WaitAll(tasks, ExchangeTimeout * 2))
                    throw new TimeoutException("concurrent TCP exchanges did not finish");
            }
            else
                foreach (var exchange in tcp) exchange();
        }
        foreach (var x in Udp) RunUdp(net, x, result);
        Thread.Sleep(Settle);
        return result;
    }

    /// <summary>Blocking socket work runs on threads of its own: on a 2-CPU machine a dozen blocked
    /// pool threads starve the pool and stall the plan for seconds.</summary>
    private static Task Dedicated(Action action) =>
        Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static readonly byte[] Pattern = Enumerable.Range(0, 65536).Select(b => (byte)(b * 31 + 7)).ToArray();
    private static readonly TimeSpan ExchangeTimeout = TimeSpan.FromSeconds(20);

    private static void RunInbound(TestNetwork net, Listeners listeners, TcpInbound x, PlanResult result)
    {
        var hostEp = new IPEndPoint(net.HostAddressFor(x.Client), x.HostPort);
        var client = net.InNamespace.Run(() =>
        {
            var s = new Socket(hostEp.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(x.Client, 0));
            return s;
        });
        var accept = listeners.Expect(hostEp, (IPEndPoint)client.LocalEndPoint!, factory => factory());
        client.Connect(hostEp);
        var server = accept.WaitAsync(ExchangeTimeout).GetAwaiter().GetResult();
        var serverSide = Dedicated(() => Respond(server, x.ClientSends, x.HostSends));
        var clientSide = Dedicated(() => Request(client, x.ClientSends, x.HostSends));
        Task.WaitAll([serverSide, clientSide], ExchangeTimeout);
        Check(serverSide, clientSide, $"TCP {x.Client} -> {hostEp}");
        var cls = new PortClass((ushort)x.HostPort, Protocol.Tcp);
        result.AddTcp(x.Client, cls, down: x.ClientSends, up: x.HostSends);
    }

    private static void RunDialOut(TestNetwork net, Listeners listeners, TcpDialOut x, PlanResult result)
    {
        var peerEp = new IPEndPoint(x.Peer, x.PeerPort);
        var host = new Socket(peerEp.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        host.Bind(new IPEndPoint(net.HostAddressFor(x.Peer), 0));
        var accept = listeners.Expect(peerEp, (IPEndPoint)host.LocalEndPoint!, net.InNamespace.Run);
        host.Connect(peerEp);
        var peer = accept.WaitAsync(ExchangeTimeout).GetAwaiter().GetResult();
        var peerSide = Dedicated(() => Respond(peer, x.HostSends, x.PeerSends));
        var hostSide = Dedicated(() => Request(host, x.HostSends, x.PeerSends));
        Task.WaitAll([peerSide, hostSide], ExchangeTimeout);
        Check(peerSide, hostSide, $"TCP host -> {peerEp}");
        result.AddTcp(x.Peer, new PortClass((ushort)x.PeerPort, Protocol.Tcp), down: x.PeerSends, up: x.HostSends);
    }

    /// <summary>
    /// One listening socket per endpoint (made in the namespace or the root namespace by the given
    /// runner), shared by every exchange to it; an accepted connection goes to the exchange that
    /// registered its client endpoint.
    /// </summary>
    private sealed class Listeners : IDisposable
    {
        private readonly Dictionary<IPEndPoint, Socket> _listening = new();
        private readonly Dictionary<(IPEndPoint Local, IPEndPoint Remote), TaskCompletionSource<Socket>> _waiting = new();
        private readonly List<Task> _loops = [];

        public Task<Socket> Expect(IPEndPoint listen, IPEndPoint remote, Func<Func<Socket>, Socket> createIn)
        {
            lock (_waiting)
            {
                if (!_listening.ContainsKey(listen))
                {
                    var socket = createIn(() =>
                    {
                        var s = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                        s.Bind(listen);
                        s.Listen(64);
                        return s;
                    });
                    _listening[listen] = socket;
                    _loops.Add(Task.Run(() => AcceptLoop(listen, socket)));
                }
                return Waiter(listen, remote).Task;
            }
        }

        private TaskCompletionSource<Socket> Waiter(IPEndPoint local, IPEndPoint remote)
        {
            if (!_waiting.TryGetValue((local, remote), out var tcs))
                _waiting[(local, remote)] = tcs = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
            return tcs;
        }

        private async Task AcceptLoop(IPEndPoint local, Socket listener)
        {
            while (true)
            {
                Socket accepted;
                try { accepted = await listener.AcceptAsync(); }
                catch (ObjectDisposedException) { return; }
                catch (SocketException) { return; }
                var remote = (IPEndPoint)accepted.RemoteEndPoint!;
                lock (_waiting) Waiter(local, remote).TrySetResult(accepted);
            }
        }

        public void Dispose()
        {
            lock (_waiting)
                foreach (var s in _listening.Values) s.Dispose();
            Task.WaitAll(_loops.ToArray(), TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>The side that opened: send, half-close, read the answer to EOF, close.</summary>
    private static void Request(Socket s, int send, int expect)
    {
        using (s)
        {
            SendAll(s, send);
            s.Shutdown(SocketShutdown.Send);
            var got = ReadToEnd(s);
            if (got != expect) throw new InvalidOperationException($"expected {expect} bytes back, got {got}");
        }
    }

    /// <summary>The side that accepted: read to EOF, answer, close (its FIN follows the answer).</summary>
    private static void Respond(Socket s, int expect, int send)
    {
        using (s)
        {
            var got = ReadToEnd(s);
            if (got != expect) throw new InvalidOperationException($"expected {expect} bytes, got {got}");
            SendAll(s, send);
            s.Shutdown(SocketShutdown.Send);
        }
    }

    private static void SendAll(Socket s, int count)
    {
        var left = count;
        while (left > 0)
            left -= s.Send(Pattern, 0, Math.Min(left, Pattern.Length), SocketFlags.None);
    }

    private static long ReadToEnd(Socket s)
    {
        var buffer = new byte[65536];
        long total = 0;
        s.ReceiveTimeout = (int)ExchangeTimeout.TotalMilliseconds;
        int n;
        while ((n = s.Receive(buffer)) > 0) total += n;
        return total;
    }

    private static void Check(Task a, Task b, string what)
    {
        foreach (var t in new[] { a, b })
        {
            if (!t.IsCompleted) throw new TimeoutException($"{what} did not finish within {ExchangeTimeout}");
            if (t.IsFaulted) throw new InvalidOperationException($"{what} failed", t.Exception!.InnerException);
        }
    }

    private static void RunUdp(TestNetwork net, UdpExchange x, PlanResult result)
    {
        var hostEp = new IPEndPoint(net.HostAddressFor(x.Client), x.HostPort);
        using var host = new Socket(hostEp.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        host.Bind(hostEp);
        host.ReceiveTimeout = 3000;
        using var client = net.InNamespace.Run(() =>
        {
            var s = new Socket(hostEp.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(x.Client, 0));
            s.ReceiveTimeout = 3000;
            return s;
        });
        var buffer = new byte[65536];
        var cls = new PortClass((ushort)x.HostPort, Protocol.Udp);
        foreach (var (request, reply) in x.Datagrams)
        {
            client.SendTo(Pattern.AsSpan(0, request), SocketFlags.None, hostEp);
            EndPoint from = new IPEndPoint(hostEp.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            var got = host.ReceiveFrom(buffer, ref from);
            if (got != request || !((IPEndPoint)from).Address.Equals(x.Client))
                throw new InvalidOperationException($"UDP {x.Client} -> {hostEp}: expected {request} bytes, got {got} from {from}");
            host.SendTo(Pattern.AsSpan(0, reply), SocketFlags.None, from);
            got = client.Receive(buffer);
            if (got != reply)
                throw new InvalidOperationException($"UDP {hostEp} -> {x.Client}: expected {reply} bytes, got {got}");
            result.AddDatagram(x.Client, cls, Direction.Down, request);
            result.AddDatagram(x.Client, cls, Direction.Up, reply);
        }
    }
}

/// <summary>What a plan run sent: payload bytes (TCP stream bytes, UDP payloads) per client, class and
/// direction, the TCP connections behind each, and every datagram.</summary>
public sealed class PlanResult
{
    private readonly Dictionary<FlowKey, long> _payload = new();
    private readonly Dictionary<FlowKey, int> _connections = new();
    private readonly List<(FlowKey Key, int Size)> _datagrams = [];

    /// <summary>Payload bytes sent, per key (non-Sia keys included).</summary>
    public IReadOnlyDictionary<FlowKey, long> Payload => _payload;

    /// <summary>TCP connections per key: each puts exactly one SYN or SYN-ACK into the key.</summary>
    public IReadOnlyDictionary<FlowKey, int> TcpConnections => _connections;

    public IReadOnlyList<(FlowKey Key, int Size)> Datagrams => _datagrams;

    internal void AddTcp(IPAddress client, PortClass cls, long down, long up)
    {
        lock (_payload) AddTcpLocked(client, cls, down, up);
    }

    private void AddTcpLocked(IPAddress client, PortClass cls, long down, long up)
    {
        var c = ClientAddress.FromIPAddress(client);
        foreach (var (dir, bytes) in new[] { (Direction.Down, down), (Direction.Up, up) })
        {
            var key = new FlowKey(c, cls, dir);
            _payload[key] = _payload.GetValueOrDefault(key) + bytes;
            _connections[key] = _connections.GetValueOrDefault(key) + 1;
        }
    }

    internal void AddDatagram(IPAddress client, PortClass cls, Direction dir, int size)
    {
        lock (_payload) AddDatagramLocked(client, cls, dir, size);
    }

    private void AddDatagramLocked(IPAddress client, PortClass cls, Direction dir, int size)
    {
        var key = new FlowKey(ClientAddress.FromIPAddress(client), cls, dir);
        _payload[key] = _payload.GetValueOrDefault(key) + size;
        _datagrams.Add((key, size));
    }
}
