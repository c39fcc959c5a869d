namespace SiaExporter.Tests.Bpf;

/// <summary>
/// The attachment tests' view of a <see cref="TestNetwork"/> on the fixed subnet 10.213.0.0/24, so
/// the addresses can be constants: <see cref="Host"/> (10.213.0.1) in this namespace, <see cref="Peer"/>
/// (10.213.0.2) in the network's namespace. Disposing removes both and the namespace.
/// </summary>
internal sealed class VethPair : IDisposable
{
    public const string HostAddress = "10.213.0.1";
    public const string PeerAddress = "10.213.0.2";
    private const int Subnet = 213;

    private readonly TestNetwork _network = TestNetwork.Create(offloads: true, subnet: Subnet);

    public string Namespace => _network.Namespace;
    public string Host => _network.HostInterface;
    public string Peer => _network.PeerInterface;

    public string InNamespace(string file, params string[] arguments) => _network.RunInNamespace(file, arguments);

    /// <summary>One UDP datagram from the peer namespace to the host end.</summary>
    public void SendUdpToHost(int port, string payload = "natdev") =>
        InNamespace("bash", "-c", $"echo {payload} > /dev/udp/{HostAddress}/{port}");

    public void Dispose() => _network.Dispose();
}
