using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// A network namespace joined to the root namespace by a veth pair, for traffic that never leaves
/// the machine.
/// <code>
///   root namespace ("the host")              namespace e2eXXXX ("the clients")
///   e2eXXXXh  10.N.0.1/24  fd00:N::1/64  &lt;== veth ==&gt;  e2eXXXXn  10.N.0.2, 10.N.0.3 /24, fd00:N::2/64
/// </code>
/// Every name starts with "e2e"; Dispose removes the pair and the namespace (also after a failed
/// test), and construction first removes leftovers of earlier runs whose owning process is gone.
/// </summary>
public sealed class TestNetwork : IDisposable
{
    public const string Prefix = "e2e";
    private const string OwnerDirectory = "/run/sia-exporter-e2e";
    private NamespaceThread? _thread;
    private bool _disposed;

    private TestNetwork(string name, int subnet, bool offloads)
    {
        Name = name;
        Subnet = subnet;
        Offloads = offloads;
        HostV4 = IPAddress.Parse($"10.{subnet}.0.1");
        ClientV4A = IPAddress.Parse($"10.{subnet}.0.2");
        ClientV4B = IPAddress.Parse($"10.{subnet}.0.3");
        HostV6 = IPAddress.Parse($"fd00:{subnet:x}::1");
        ClientV6 = IPAddress.Parse($"fd00:{subnet:x}::2");
    }

    /// <summary>Namespace name, also the stem of both interface names ("e2e" + 4 hex digits).</summary>
    public string Name { get; }

    public string Namespace => Name;

    /// <summary>Host end, in the root namespace: where the product's programs attach.</summary>
    public string HostInterface => Name + "h";

    /// <summary>Namespace end: where the capture runs.</summary>
    public string PeerInterface => Name + "n";

    /// <summary>N in 10.N.0.0/24 and fd00:N::/64 (N in hex there).</summary>
    public int Subnet { get; }

    public bool Offloads { get; private set; }

    public IPAddress HostV4 { get; }
    public IPAddress HostV6 { get; }
    public IPAddress ClientV4A { get; }
    public IPAddress ClientV4B { get; }
    public IPAddress ClientV6 { get; }

    /// <summary>The three namespace-side addresses: the clients.</summary>
    public IReadOnlyList<IPAddress> Clients => [ClientV4A, ClientV4B, ClientV6];

    public IPAddress HostAddressFor(IPAddress client) => client.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? HostV6 : HostV4;

    public int HostIfIndex { get; private set; }
    public PhysicalAddress HostMac { get; private set; } = PhysicalAddress.None;
    public PhysicalAddress PeerMac { get; private set; } = PhysicalAddress.None;

    /// <summary>Where the product pins maps and links for this network (created by the loader,
    /// removed with the network).</summary>
    public string PinDirectory => $"/sys/fs/bpf/{Name}";

    /// <summary>Runs code inside the namespace (sockets made there stay there).</summary>
    public NamespaceThread InNamespace => _thread ?? throw new ObjectDisposedException(nameof(TestNetwork));

    /// <param name="offloads">true: veth defaults (TSO/GSO on, GRO as the kernel has it);
    /// false: tso, gso and gro off on both ends, so every skb is one wire frame.</param>
    public static TestNetwork Create(bool offloads = true)
    {
        Root.Require();
        RemoveLeftovers();
        Directory.CreateDirectory(OwnerDirectory);
        for (var attempt = 0; ; attempt++)
        {
            var name = Prefix + Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next())).ToLowerInvariant()[..4];
            var subnet = FreeSubnet();
            if (Directory.Exists($"/sys/class/net/{name}h") || File.Exists($"/var/run/netns/{name}"))
                continue;
            var net = new TestNetwork(name, subnet, offloads);
            File.WriteAllText(Path.Combine(OwnerDirectory, name), Environment.ProcessId.ToString());
            try
            {
                net.Build();
                return net;
            }
            catch when (attempt < 2)
            {
                net.Dispose();
            }
            catch
            {
                net.Dispose();
                throw;
            }
        }
    }

    private void Build()
    {
        Shell.Run("ip", "netns", "add", Namespace);
        Shell.Run("ip", "link", "add", HostInterface, "type", "veth", "peer", "name", PeerInterface, "netns", Namespace);
        Shell.Run("ip", "addr", "add", $"{HostV4}/24", "dev", HostInterface);
        Shell.Run("ip", "addr", "add", $"{HostV6}/64", "dev", HostInterface, "nodad");
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV4A}/24", "dev", PeerInterface);
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV4B}/24", "dev", PeerInterface);
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV6}/64", "dev", PeerInterface, "nodad");
        if (!Offloads) SetOffloads(false);
        Shell.Run("ip", "link", "set", HostInterface, "up");
        Shell.Run("ip", "-n", Namespace, "link", "set", "lo", "up");
        Shell.Run("ip", "-n", Namespace, "link", "set", PeerInterface, "up");
        HostIfIndex = int.Parse(File.ReadAllText($"/sys/class/net/{HostInterface}/ifindex").Trim());
        HostMac = MacOf(null, HostInterface);
        PeerMac = MacOf(Namespace, PeerInterface);
        _thread = new NamespaceThread(Namespace);
        WaitUntilUp();
    }

    /// <summary>Turns tso/gso/gro on or off on both ends.</summary>
    public void SetOffloads(bool on)
    {
        var state = on ? "on" : "off";
        Shell.Run("ethtool", "-K", HostInterface, "tso", state, "gso", state, "gro", state);
        Shell.Run("ip", "netns", "exec", Namespace, "ethtool", "-K", PeerInterface, "tso", state, "gso", state, "gro", state);
        Offloads = on;
    }

    /// <summary>ethtool -k of one end, as "feature: on|off" lines (for reports and checks).</summary>
    public string OffloadState(bool hostSide) => hostSide
        ? Shell.Run("ethtool", "-k", HostInterface)
        : Shell.Run("ip", "netns", "exec", Namespace, "ethtool", "-k", PeerInterface);

    private void WaitUntilUp()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var host = File.ReadAllText($"/sys/class/net/{HostInterface}/operstate").Trim();
            var tentative = Shell.Run("ip", "-6", "addr", "show", "dev", HostInterface, "tentative")
                + Shell.Run("ip", "-n", Namespace, "-6", "addr", "show", "dev", PeerInterface, "tentative");
            if (host == "up" && !tentative.Contains(" fd00:", StringComparison.Ordinal)) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{HostInterface} is {host}; tentative: {tentative}");
            Thread.Sleep(20);
        }
    }

    private static PhysicalAddress MacOf(string? netns, string device)
    {
        var args = netns is null ? new[] { "-j", "link", "show", "dev", device } : new[] { "-n", netns, "-j", "link", "show", "dev", device };
        using var doc = JsonDocument.Parse(Shell.Run("ip", args));
        return PhysicalAddress.Parse(doc.RootElement[0].GetProperty("address").GetString()!.Replace(':', '-').ToUpperInvariant());
    }

    /// <summary>A 10.N.0.0/16 (and fd00:N::/32) that no route or address on the machine touches.</summary>
    private static int FreeSubnet()
    {
        var v4 = Shell.Run("ip", "-4", "route", "show", "table", "all") + Shell.Run("ip", "-4", "addr");
        var v6 = Shell.Run("ip", "-6", "route", "show", "table", "all") + Shell.Run("ip", "-6", "addr");
        if (v4.Contains(" 10.0.0.0/8", StringComparison.Ordinal) || v4.StartsWith("10.0.0.0/8", StringComparison.Ordinal))
            throw new InvalidOperationException("10.0.0.0/8 is routed on this machine; pick another test range");
        for (var i = 0; i < 100; i++)
        {
            var n = Random.Shared.Next(100, 250);
            if (v4.Contains($"10.{n}.", StringComparison.Ordinal)) continue;
            if (v6.Contains($"fd00:{n:x}:", StringComparison.OrdinalIgnoreCase)) continue;
            return n;
        }
        throw new InvalidOperationException("no free 10.N.0.0/24 test subnet");
    }

    /// <summary>
    /// Removes e2e* namespaces and links whose owning test process is gone (a crashed run). Those of a
    /// live process (another test run going on right now) are left alone.
    /// </summary>
    public static IReadOnlyList<string> RemoveLeftovers()
    {
        var removed = new List<string>();
        var namespaces = ListNamespaces();
        var links = ListHostLinks();
        var pins = Directory.Exists("/sys/fs/bpf")
            ? Directory.GetDirectories("/sys/fs/bpf", Prefix + "*").Select(d => Path.GetFileName(d)!)
            : [];
        foreach (var stem in namespaces.Concat(links.Select(l => l[..^1])).Concat(pins).Distinct())
        {
            if (OwnerAlive(stem)) continue;
            Remove(stem);
            removed.Add(stem);
        }
        return removed;
    }

    public static IReadOnlyList<string> ListNamespaces() =>
        Shell.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).ToList();

    /// <summary>e2e* links in the root namespace.</summary>
    public static IReadOnlyList<string> ListHostLinks() =>
        Directory.Exists("/sys/class/net")
            ? Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName)
                .Where(n => n!.StartsWith(Prefix, StringComparison.Ordinal) && n.Length > Prefix.Length + 1).Select(n => n!).ToList()
            : [];

    private static bool OwnerAlive(string stem)
    {
        var file = Path.Combine(OwnerDirectory, stem);
        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), out var pid)) return false;
        if (pid == Environment.ProcessId) return true;
        return Directory.Exists($"/proc/{pid}");
    }

    private static void Remove(string stem)
    {
        // Deleting one end of a veth deletes both, even while sockets still hold the namespace.
        if (Directory.Exists($"/sys/class/net/{stem}h")) Shell.Try("ip", "link", "del", stem + "h");
        if (File.Exists($"/var/run/netns/{stem}"))
        {
            Shell.Try("ip", "-n", stem, "link", "del", stem + "n");
            Shell.Try("ip", "netns", "del", stem);
        }
        // Pins: links of a deleted device are defunct; removing the pins frees links and maps.
        var pins = $"/sys/fs/bpf/{stem}";
        if (Directory.Exists(pins))
        {
            try { Directory.Delete(pins, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        // State of a `collector run` on this network (DaemonProcess).
        var daemonState = Path.Combine(Path.GetTempPath(), stem + "-daemon");
        if (Directory.Exists(daemonState))
        {
            try { Directory.Delete(daemonState, recursive: true); } catch (IOException) { }
        }
        // The loop-mounted file system of a history test (ImmutableStore).
        ImmutableStore.Remove(stem);
        try { File.Delete(Path.Combine(OwnerDirectory, stem)); } catch (IOException) { }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _thread?.Dispose();
        _thread = null;
        Remove(Name);
    }
}
