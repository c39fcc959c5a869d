using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>How the programs find the IP header on a link (bpf/linktypes.h, enum link_kind).</summary>
internal enum LinkKind
{
    /// <summary>An Ethernet header (loopback too): xdp_ingress, tc_ingress, tc_egress; frame bytes.</summary>
    Ethernet,
    /// <summary>No link header, the frame is the IP packet: tc_ingress_l3, tc_egress_l3; IP packet bytes.</summary>
    L3,
}

/// <summary>An interface's ARPHRD_* link type (linux/if_arp.h), and whether the programs can parse it.</summary>
internal sealed record LinkType(ushort ArpHardware, string Name, LinkKind? Kind)
{
    public const ushort Ether = 1;
    public const ushort Ppp = 512;
    public const ushort RawIp = 519;
    public const ushort Loopback = 772;
    public const ushort None = 65534;

    /// <summary>What the collector counts, for the refusal line and the docs.</summary>
    public const string Supported = "Ethernet, loopback, tun/WireGuard (none), PPP, raw IP";

    public bool IsSupported => Kind is not null;

    /// <summary>Has no Ethernet header: counted from the IP header, in IP packet bytes.</summary>
    public bool IsL3 => Kind == LinkKind.L3;

    public static LinkType Of(ushort arpHardware) => arpHardware switch
    {
        Ether => new(arpHardware, "ethernet", LinkKind.Ethernet),
        Loopback => new(arpHardware, "loopback", LinkKind.Ethernet),
        None => new(arpHardware, "none", LinkKind.L3),
        Ppp => new(arpHardware, "ppp", LinkKind.L3),
        RawIp => new(arpHardware, "rawip", LinkKind.L3),
        _ => new(arpHardware, $"arphrd {arpHardware}", null),
    };

    /// <summary>The link type of <paramref name="interfaceName"/>; an <see cref="OperatorException"/>
    /// when the programs could not parse its frames (they would attach and count nothing).</summary>
    public static LinkType Require(string interfaceName)
    {
        var arpHardware = NetDevice.LinkType(interfaceName)
            ?? throw new OperatorException($"interface '{interfaceName}' does not answer SIOCGIFHWADDR", "see `ip link` and set INTERFACE");
        var type = Of(arpHardware);
        if (!type.IsSupported)
            throw new OperatorException(
                $"interface '{interfaceName}' has link type {arpHardware} ({KnownName(arpHardware)}), whose frames the collector cannot parse",
                $"set INTERFACE to an interface of a supported type ({Supported}), e.g. the tunnel's or VLAN's parent");
        return type;
    }

    private static string KnownName(ushort arpHardware) => arpHardware switch
    {
        768 => "ipip tunnel",
        769 => "ip6 tunnel",
        776 => "sit",
        778 => "gre",
        823 => "ip6gre",
        32 => "infiniband",
        801 => "802.11 monitor (radiotap)",
        803 => "802.11 radiotap",
        _ => "see linux/if_arp.h",
    };

    public override string ToString() => Name;
}
