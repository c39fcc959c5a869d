using SiaExporter.Bpf;
using SiaExporter.Hosting;
using SiaExporter.Tests.Bpf;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// Keeps xdp_ingress attached in native mode to an idle veth pair (STEMh/STEMn of an
/// <see cref="OwnedNames"/> stem, in this namespace: down, no addresses, no traffic) for the length
/// of a flood. A crashed run's pair is removed by <see cref="TestNetwork.RemoveLeftovers"/>.
///
/// Why: every XDP BPF_PROG_TEST_RUN calls bpf_prog_change_xdp(NULL, prog) and back, which
/// rewrites the kernel's XDP dispatcher trampoline and waits for RCU — measured here at ~500 µs
/// per call (a million calls: 9+ minutes, almost all of it asleep). While the program is attached
/// natively somewhere, the dispatcher already holds it; the test run only bumps a refcount and a
/// call costs microseconds.
/// </summary>
internal sealed class XdpDispatcherHold : IDisposable
{
    private readonly string _stem;
    private readonly HookAttachments _hooks;

    private XdpDispatcherHold(string stem, HookAttachments hooks)
    {
        _stem = stem;
        _hooks = hooks;
    }

    public static XdpDispatcherHold Attach(CollectorObject collector)
    {
        TestNetwork.RemoveLeftovers();
        var stem = OwnedNames.NewStem();
        try
        {
            Shell.Run("ip", "link", "add", stem + "h", "type", "veth", "peer", "name", stem + "n");
            // with rx-vlan-offload on, native XDP would get xdp_rx_vlan (loaded for this device), not xdp_ingress
            Shell.Run("ethtool", "-K", stem + "h", "rxvlan", "off");
            var hooks = HookAttachments.Attach(collector, [stem + "h"], XdpMode.Native, TcAttachMode.Auto, new ListLogger());
            return new XdpDispatcherHold(stem, hooks);
        }
        catch
        {
            TestNetwork.Remove(stem);
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            _hooks.Detach();
        }
        finally
        {
            TestNetwork.Remove(_stem);
        }
    }
}
