using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json;
using SiaExporter.Tests.EndToEnd;

namespace SiaExporter.Tests;

/// <summary>
/// The tests' one network fixture: a network namespace joined by a veth pair to the root namespace
/// (or, with <c>isolatedHost</c>, to a second namespace), for traffic that never leaves the machine.
/// <code>
///   host end ("the host")                      namespace STEM ("the clients")
///   STEMh  10.N.0.1/24  fd00:N::1/64  &lt;== veth ==&gt;  STEMn  10.N.0.2, 10.N.0.3 /24, fd00:N::2/64
/// </code>
/// The host end lives in the root namespace, or in namespace STEMh when isolated. Every name the
/// fixture makes (namespaces, links, <see cref="PinDirectory"/>) starts with its stem, and the stem
/// carries the pid of the test process that owns it (<see cref="OwnedNames"/>): Dispose removes
/// everything (also after a failed test), and <see cref="Create"/> first removes the leftovers of
/// runs whose process is gone, never those of a live concurrent run.
/// </summary>
public sealed class TestNetwork : IDisposable
{
    /// <summary>Random subnets are drawn below this; fixed ones (<see cref="Create"/>'s subnet) are at or above it.</summary>
    private const int FirstFixedSubnet = 200;

    private NamespaceThread? _thread;
    private bool _disposed;

    private TestNetwork(string name, int subnet, bool offloads, bool isolatedHost)
    {
        Name = name;
        Subnet = subnet;
        Offloads = offloads;
        HostNamespace = isolatedHost ? name + "h" : null;
        HostV4 = IPAddress.Parse($"10.{subnet}.0.1");
        ClientV4A = IPAddress.Parse($"10.{subnet}.0.2");
        ClientV4B = IPAddress.Parse($"10.{subnet}.0.3");
        HostV6 = IPAddress.Parse($"fd00:{subnet:x}::1");
        ClientV6 = IPAddress.Parse($"fd00:{subnet:x}::2");
    }

    /// <summary>The stem (<see cref="OwnedNames.NewStem"/>): the clients' namespace, and the start of every other name.</summary>
    public string Name { get; }

    /// <summary>The clients' namespace.</summary>
    public string Namespace => Name;

    /// <summary>The host end's namespace when the host is isolated; null when it is the root namespace.</summary>
    public string? HostNamespace { get; }

    /// <summary>Host end: where the product's programs attach.</summary>
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
    public string PinDirectory => OwnedNames.PinDirectoryOf(Name);

    /// <summary>Runs code inside the clients' namespace (sockets made there stay there).</summary>
    public NamespaceThread InNamespace => _thread ?? throw new ObjectDisposedException(nameof(TestNetwork));

    /// <summary>Runs a tool in the clients' namespace (`ip netns exec`).</summary>
    public string RunInNamespace(string file, params string[] arguments) =>
        Shell.Run("ip", ["netns", "exec", Namespace, file, .. arguments]);

    /// <param name="offloads">true: veth defaults (TSO/GSO on, GRO as the kernel has it);
    /// false: tso, gso and gro off on both ends, so every skb is one wire frame.</param>
    /// <param name="subnet">null: a free random N; else this fixed N (at least 200), for tests that
    /// name the addresses as constants.</param>
    /// <param name="isolatedHost">true: the host end in a namespace of its own (<see cref="HostNamespace"/>).</param>
    public static TestNetwork Create(bool offloads = true, int? subnet = null, bool isolatedHost = false)
    {
        Root.Require();
        if (subnet is < FirstFixedSubnet or > 254)
            throw new ArgumentOutOfRangeException(nameof(subnet), subnet, $"a fixed test subnet is {FirstFixedSubnet}..254");
        RemoveLeftovers();
        for (var attempt = 0; ; attempt++)
        {
            var name = OwnedNames.NewStem();
            if (Directory.Exists($"/sys/class/net/{name}h") || File.Exists($"/var/run/netns/{name}"))
                continue;
            var net = new TestNetwork(name, subnet ?? FreeSubnet(), offloads, isolatedHost);
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
        if (HostNamespace is null)
        {
            Shell.Run("ip", "link", "add", HostInterface, "type", "veth", "peer", "name", PeerInterface, "netns", Namespace);
        }
        else
        {
            Shell.Run("ip", "netns", "add", HostNamespace);
            Shell.Run("ip", "link", "add", HostInterface, "netns", HostNamespace, "type", "veth", "peer", "name", PeerInterface, "netns", Namespace);
            OnHost("link", "set", "lo", "up");
        }
        OnHost("addr", "add", $"{HostV4}/24", "dev", HostInterface);
        OnHost("addr", "add", $"{HostV6}/64", "dev", HostInterface, "nodad");
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV4A}/24", "dev", PeerInterface);
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV4B}/24", "dev", PeerInterface);
        Shell.Run("ip", "-n", Namespace, "addr", "add", $"{ClientV6}/64", "dev", PeerInterface, "nodad");
        if (!Offloads) SetOffloads(false);
        OnHost("link", "set", HostInterface, "up");
        Shell.Run("ip", "-n", Namespace, "link", "set", "lo", "up");
        Shell.Run("ip", "-n", Namespace, "link", "set", PeerInterface, "up");
        using (var host = LinkOf(HostNamespace, HostInterface))
        {
            HostIfIndex = host.RootElement[0].GetProperty("ifindex").GetInt32();
            HostMac = MacOf(host);
        }
        using (var peer = LinkOf(Namespace, PeerInterface)) PeerMac = MacOf(peer);
        _thread = new NamespaceThread(Namespace);
        WaitUntilUp();
    }

    /// <summary>`ip ARGS` where the host end lives.</summary>
    private string OnHost(params string[] ipArguments) =>
        Shell.Run("ip", HostNamespace is null ? ipArguments : ["-n", HostNamespace, .. ipArguments]);

    /// <summary>Turns tso/gso/gro on or off on both ends.</summary>
    public void SetOffloads(bool on)
    {
        var state = on ? "on" : "off";
        var ethtool = new[] { "ethtool", "-K", HostInterface, "tso", state, "gso", state, "gro", state };
        if (HostNamespace is null) Shell.Run(ethtool[0], ethtool[1..]);
        else Shell.Run("ip", ["netns", "exec", HostNamespace, .. ethtool]);
        Shell.Run("ip", "netns", "exec", Namespace, "ethtool", "-K", PeerInterface, "tso", state, "gso", state, "gro", state);
        Offloads = on;
    }

    /// <summary>ethtool -k of one end, as "feature: on|off" lines (for reports and checks).</summary>
    public string OffloadState(bool hostSide) => hostSide
        ? HostNamespace is null ? Shell.Run("ethtool", "-k", HostInterface) : Shell.Run("ip", "netns", "exec", HostNamespace, "ethtool", "-k", HostInterface)
        : Shell.Run("ip", "netns", "exec", Namespace, "ethtool", "-k", PeerInterface);

    private void WaitUntilUp()
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            string host;
            using (var link = LinkOf(HostNamespace, HostInterface))
                host = link.RootElement[0].GetProperty("operstate").GetString() ?? "?";
            var tentative = OnHost("-6", "addr", "show", "dev", HostInterface, "tentative")
                + Shell.Run("ip", "-n", Namespace, "-6", "addr", "show", "dev", PeerInterface, "tentative");
            if (host == "UP" && !tentative.Contains(" fd00:", StringComparison.Ordinal)) return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{HostInterface} is {host}; tentative: {tentative}");
            Thread.Sleep(20);
        }
    }

    private static JsonDocument LinkOf(string? netns, string device) =>
        JsonDocument.Parse(Shell.Run("ip", netns is null ? ["-j", "link", "show", "dev", device] : ["-n", netns, "-j", "link", "show", "dev", device]));

    private static PhysicalAddress MacOf(JsonDocument link) =>
        PhysicalAddress.Parse(link.RootElement[0].GetProperty("address").GetString()!.Replace(':', '-').ToUpperInvariant());

    /// <summary>A random 10.N.0.0/16 (and fd00:N::/32), N below the fixed ones, that no route or address on the machine touches.</summary>
    private static int FreeSubnet()
    {
        var v4 = Shell.Run("ip", "-4", "route", "show", "table", "all") + Shell.Run("ip", "-4", "addr");
        var v6 = Shell.Run("ip", "-6", "route", "show", "table", "all") + Shell.Run("ip", "-6", "addr");
        if (v4.Contains(" 10.0.0.0/8", StringComparison.Ordinal) || v4.StartsWith("10.0.0.0/8", StringComparison.Ordinal))
            throw new InvalidOperationException("10.0.0.0/8 is routed on this machine; pick another test range");
        for (var i = 0; i < 100; i++)
        {
            var n = Random.Shared.Next(100, FirstFixedSubnet);
            if (v4.Contains($"10.{n}.", StringComparison.Ordinal)) continue;
            if (v6.Contains($"fd00:{n:x}:", StringComparison.OrdinalIgnoreCase)) continue;
            return n;
        }
        throw new InvalidOperationException("no free 10.N.0.0/24 test subnet");
    }

    /// <summary>
    /// Removes the namespaces, links and pin directories of test processes that are gone (a crashed
    /// or killed run). Those of a live process (this one, or another test run going on right now)
    /// are left alone. Returns the stems removed.
    /// </summary>
    public static IReadOnlyList<string> RemoveLeftovers()
    {
        var removed = new List<string>();
        var names = ListNamespaces().Concat(ListHostLinks()).Concat(ListPinDirectories());
        foreach (var stem in names.Select(OwnedNames.StemOf).OfType<string>().Distinct())
        {
            if (OwnedNames.OwnerAlive(stem)) continue;
            Remove(stem);
            removed.Add(stem);
        }
        return removed;
    }

    /// <summary>Namespaces with an owned name (clients' and isolated hosts').</summary>
    public static IReadOnlyList<string> ListNamespaces() =>
        Shell.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0]).Where(n => OwnedNames.StemOf(n) is not null).ToList();

    /// <summary>Links with an owned name in the root namespace.</summary>
    public static IReadOnlyList<string> ListHostLinks() =>
        Directory.Exists("/sys/class/net")
            ? Directory.GetFileSystemEntries("/sys/class/net").Select(p => Path.GetFileName(p)!)
                .Where(n => OwnedNames.StemOf(n) is not null).ToList()
            : [];

    /// <summary>Pin directories with an owned name under /sys/fs/bpf.</summary>
    public static IReadOnlyList<string> ListPinDirectories() =>
        Directory.Exists(OwnedNames.BpfFs)
            ? Directory.GetDirectories(OwnedNames.BpfFs).Select(p => Path.GetFileName(p)!)
                .Where(n => OwnedNames.StemOf(n) is not null).ToList()
            : [];

    /// <summary>Removes everything named after a stem; what is already gone is skipped.</summary>
    public static void Remove(string stem)
    {
        // Deleting one end of a veth deletes both, even while sockets still hold the namespace.
        if (Directory.Exists($"/sys/class/net/{stem}h")) Shell.Try("ip", "link", "del", stem + "h");
        if (Directory.Exists($"/sys/class/net/{stem}n")) Shell.Try("ip", "link", "del", stem + "n");
        foreach (var netns in new[] { stem, stem + "h" })
        {
            if (!File.Exists($"/var/run/netns/{netns}")) continue;
            Shell.Try("ip", "-n", netns, "link", "del", stem + "n");
            Shell.Try("ip", "-n", netns, "link", "del", stem + "h");
            Shell.Try("ip", "netns", "del", netns);
        }
        // Pins: links of a deleted device are defunct; removing the pins frees links and maps.
        TryDeleteDirectory(OwnedNames.PinDirectoryOf(stem));
        // State of a `collector run` on this network (DaemonProcess).
        TryDeleteDirectory(Path.Combine(Path.GetTempPath(), stem + "-daemon"));
        // The loop-mounted file system of a history test (ImmutableStore).
        ImmutableStore.Remove(stem);
    }

    private static void TryDeleteDirectory(string path)
    {
        if (!Directory.Exists(path)) return;
        try { Directory.Delete(path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
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

/// <summary>
/// Names of what the tests make in the kernel (namespaces, links, pin directories): "sxt", the
/// owning test process's pid, "-", a counter; links add one letter ("h" host end, "n" peer end).
/// The pid in the name is what lets a later run tell a dead run's leftovers from a live run's.
/// At most 14 characters, so a link name stays within IFNAMSIZ (15).
/// </summary>
public static partial class OwnedNames
{
    public const string Prefix = "sxt";
    public const string BpfFs = "/sys/fs/bpf";
    private static int _counter;

    /// <summary>A new stem owned by this process.</summary>
    public static string NewStem() => StemFor(Environment.ProcessId);

    /// <summary>A new stem owned by <paramref name="pid"/> (tests of the clean-up pose as other processes).</summary>
    public static string StemFor(int pid) => $"{Prefix}{pid}-{Interlocked.Increment(ref _counter) % 1000}";

    /// <summary>/sys/fs/bpf/STEM, not there yet: a pin directory that leftover clean-up knows.</summary>
    public static string NewPinDirectory()
    {
        while (true)
        {
            var path = PinDirectoryOf(NewStem());
            if (!Directory.Exists(path)) return path; // else a leftover of a dead run that had this pid
        }
    }

    public static string PinDirectoryOf(string stem) => Path.Combine(BpfFs, stem);

    /// <summary>The stem of an owned name (a stem, or a stem and one of h/n), or null for any other name.</summary>
    public static string? StemOf(string name) => OwnedName().Match(name) is { Success: true } m ? m.Groups["stem"].Value : null;

    public static int OwnerOf(string stem) => int.Parse(OwnedName().Match(stem).Groups["pid"].Value, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True while the process whose pid the stem carries is running.</summary>
    public static bool OwnerAlive(string stem)
    {
        var pid = OwnerOf(stem);
        return pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^(?<stem>sxt(?<pid>[0-9]{1,7})-[0-9]{1,3})[hn]?$")]
    private static partial System.Text.RegularExpressions.Regex OwnedName();
}
