namespace SiaExporter.Tests.Bpf;

/// <summary>
/// A veth pair for attachment tests: natdev-hXXXX in this namespace (10.213.47.1/30) and
/// natdev-pXXXX in a new netns natdev-XXXX (10.213.47.2/30). Traffic stays on the pair.
/// Disposing deletes both and the namespace.
/// </summary>
internal sealed class VethPair : IDisposable
{
    public const string HostAddress = "10.213.47.1";
    public const string PeerAddress = "10.213.47.2";

    public VethPair()
    {
        var id = Guid.NewGuid().ToString("N")[..4];
        Namespace = $"natdev-{id}";
        Host = $"natdev-h{id}";
        Peer = $"natdev-p{id}";
        try
        {
            Shell.Run("ip", "netns", "add", Namespace);
            Shell.Run("ip", "link", "add", Host, "type", "veth", "peer", "name", Peer, "netns", Namespace);
            Shell.Run("ip", "addr", "add", HostAddress + "/30", "dev", Host);
            Shell.Run("ip", "link", "set", Host, "up");
            InNamespace("ip", "addr", "add", PeerAddress + "/30", "dev", Peer);
            InNamespace("ip", "link", "set", Peer, "up");
            InNamespace("ip", "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Namespace { get; }
    public string Host { get; }
    public string Peer { get; }

    public string InNamespace(string file, params string[] arguments) =>
        Shell.Run("ip", ["netns", "exec", Namespace, file, .. arguments]);

    /// <summary>One UDP datagram from the peer namespace to the host end.</summary>
    public void SendUdpToHost(int port, string payload = "natdev") =>
        InNamespace("bash", "-c", $"echo {payload} > /dev/udp/{HostAddress}/{port}");

    public void Dispose()
    {
        Shell.TryRun("ip", "link", "del", Host);
        Shell.TryRun("ip", "netns", "del", Namespace);
    }
}
