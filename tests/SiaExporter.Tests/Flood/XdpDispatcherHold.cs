using SiaExporter.Bpf;
using SiaExporter.Hosting;
using SiaExporter.Tests.Bpf;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// Keeps xdp_ingress attached in native mode to an idle veth pair (fld-xdp0/fld-xdp1: down, no
/// addresses, no traffic) for the length of a flood.
///
/// Why: every XDP BPF_PROG_TEST_RUN calls bpf_prog_change_xdp(NULL, prog) and back, which
/// rewrites the kernel's XDP dispatcher trampoline and waits for RCU — measured here at ~500 µs
/// per call (a million calls: 9+ minutes, almost all of it asleep). While the program is attached
/// natively somewhere, the dispatcher already holds it; the test run only bumps a refcount and a
/// call costs microseconds.
/// </summary>
internal sealed class XdpDispatcherHold : IDisposable
{
    public const string Host = "fld-xdp0";
    public const string Peer = "fld-xdp1";

    private readonly HookAttachments _hooks;

    private XdpDispatcherHold(HookAttachments hooks) => _hooks = hooks;

    public static XdpDispatcherHold Attach(CollectorObject collector)
    {
        RemoveLeftovers();
        try
        {
            Shell.Run("ip", "link", "add", Host, "type", "veth", "peer", "name", Peer);
            // with rx-vlan-offload on, native XDP would get xdp_rx_vlan (loaded for this device), not xdp_ingress
            Shell.Run("ethtool", "-K", Host, "rxvlan", "off");
            var hooks = HookAttachments.Attach(collector, [Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger());
            return new XdpDispatcherHold(hooks);
        }
        catch
        {
            RemoveLeftovers();
            throw;
        }
    }

    public static void RemoveLeftovers() => Shell.TryRun("ip", "link", "del", Host);

    public void Dispose()
    {
        try
        {
            _hooks.Detach();
        }
        finally
        {
            RemoveLeftovers();
        }
    }
}
