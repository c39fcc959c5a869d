using SiaExporter.Hosting;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// What an interface is, as far as counting goes: its link type, driver, MTU and VLAN offloads,
/// asked in this network namespace. For `collector version` and the start-up log.
/// </summary>
internal sealed record InterfaceDescription(string Name, ushort? ArpHardware, string Driver, int? Mtu, (bool Rx, bool Tx)? VlanOffload)
{
    public LinkType? Link => ArpHardware is { } type ? LinkType.Of(type) : null;

    public static InterfaceDescription Of(string name) =>
        new(name, NetDevice.LinkType(name), Libc.DriverInfo(name)?.Driver is { Length: > 0 } driver ? driver : "none reported",
            NetDevice.Mtu(name), NetDevice.VlanOffload(name));

    private static string OnOff(bool? on) => on switch { true => "on", false => "off", null => "n/a" };

    /// <summary>"link ethernet, driver veth, MTU 1500, rx-vlan-offload on, tx-vlan-offload on".</summary>
    public string Properties =>
        $"link {(Link is { } l ? (l.IsSupported ? l.Name : $"{l.Name} (not supported)") : "unknown")}, driver {Driver}, MTU {Mtu?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}, " +
        $"rx-vlan-offload {OnOff(VlanOffload?.Rx)}, tx-vlan-offload {OnOff(VlanOffload?.Tx)}";

    /// <summary>How ingress would be counted under <paramref name="xdpMode"/>, decided as the attacher does before it tries.</summary>
    public string PlannedIngress(XdpMode xdpMode) => Link switch
    {
        null => "cannot tell (no such interface here?)",
        { IsSupported: false } => "refused: the collector cannot parse this link type",
        { IsL3: true } => $"skb path ({BpfConstants.ProgTcIngressL3}: no Ethernet header, IP packet bytes)",
        _ when xdpMode == XdpMode.Generic => $"skb path ({BpfConstants.ProgTcIngress}, XDP_MODE=generic)",
        _ when xdpMode == XdpMode.Auto && HookAttachments.IsVirtual(Name) => $"skb path ({BpfConstants.ProgTcIngress}: a virtual device)",
        _ => $"native XDP ({(VlanOffload is { Rx: true } ? BpfConstants.ProgXdpRxVlan : BpfConstants.ProgXdp)}), " +
             (xdpMode == XdpMode.Native ? "refused if the driver has no XDP" : "the skb path if the driver has no XDP"),
    };
}
