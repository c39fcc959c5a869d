using SiaExporter.Bpf;
using SiaExporter.Hosting;
using SiaExporter.Tests.EndToEnd;
using Xunit;

namespace SiaExporter.Tests.Bpf;

/// <summary>What `collector version` and the start-up log say about an interface, on real devices.</summary>
public sealed class InterfaceDescriptionTests
{
    [KernelFact]
    public void A_veth_is_described_with_its_driver_mtu_and_vlan_offloads()
    {
        using var veth = new VethPair();
        Shell.Run("ip", "link", "set", veth.Host, "mtu", "9000");
        Shell.Run("ethtool", "-K", veth.Host, "rxvlan", "off");

        var off = InterfaceDescription.Of(veth.Host);
        Assert.Equal("link ethernet, driver veth, MTU 9000, rx-vlan-offload off, tx-vlan-offload on", off.Properties);
        Assert.Equal("skb path (tc_ingress: a virtual device)", off.PlannedIngress(XdpMode.Auto));
        Assert.Equal("native XDP (xdp_ingress), refused if the driver has no XDP", off.PlannedIngress(XdpMode.Native));

        Shell.Run("ethtool", "-K", veth.Host, "rxvlan", "on");
        var on = InterfaceDescription.Of(veth.Host);
        Assert.Equal("link ethernet, driver veth, MTU 9000, rx-vlan-offload on, tx-vlan-offload on", on.Properties);
        Assert.Equal("native XDP (xdp_rx_vlan), refused if the driver has no XDP", on.PlannedIngress(XdpMode.Native));
        Assert.Equal("skb path (tc_ingress, XDP_MODE=generic)", on.PlannedIngress(XdpMode.Generic));
    }

    [KernelFact]
    public void A_tun_is_an_l3_link_counted_on_the_skb_path_and_the_start_up_log_says_so()
    {
        using var tun = new TunPair();
        var d = InterfaceDescription.Of(tun.HostInterface);
        Assert.StartsWith("link none, driver tun, MTU 1500, ", d.Properties);
        Assert.Equal("skb path (tc_ingress_l3: no Ethernet header, IP packet bytes)", d.PlannedIngress(XdpMode.Auto));

        var log = new ListLogger();
        using var collector = CollectorObject.Load(TestObject.Options(), log);
        using var attachments = HookAttachments.Attach(collector, [tun.HostInterface], XdpMode.Auto, TcAttachMode.Auto, log);
        Assert.True(log.Said($"interface {tun.HostInterface}: link none, driver tun, MTU 1500"), string.Join('\n', log.Lines.Select(l => l.Message)));
        Assert.True(log.Said("; ingress on the skb path"), string.Join('\n', log.Lines.Select(l => l.Message)));
    }

    [KernelFact]
    public void An_unsupported_link_type_is_named_as_such()
    {
        using var tun = new TunPair(778);
        var d = InterfaceDescription.Of(tun.HostInterface);
        Assert.StartsWith("link arphrd 778 (not supported), driver tun", d.Properties);
        Assert.Equal("refused: the collector cannot parse this link type", d.PlannedIngress(XdpMode.Auto));
    }
}
