using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>Where a program runs on an interface.</summary>
internal enum Hook
{
    /// <summary>Native XDP ingress (xdp_ingress).</summary>
    Xdp,
    /// <summary>skb-path ingress: tc_ingress on TC ingress (XDP_MODE generic, or native unavailable).</summary>
    TcIngress,
    /// <summary>Egress: tc_egress on TC egress.</summary>
    TcEgress,
}

/// <summary>How a program is attached.</summary>
internal enum AttachMode
{
    /// <summary>Driver (native) XDP through a bpf_link.</summary>
    Native,
    /// <summary>A TCX bpf_link (kernel ≥ 6.6).</summary>
    Tcx,
    /// <summary>A netlink clsact filter with our fixed handle and priority.</summary>
    Netlink,
}

/// <summary>How TC programs are attached (TC_ATTACH).</summary>
internal enum TcAttachMode
{
    /// <summary>TCX link, else (kernel &lt; 6.6) a netlink clsact filter.</summary>
    Auto,
    Tcx,
    Netlink,
}

/// <summary>One attached program, as reported in sia_exporter_bpf_attached.</summary>
/// <param name="Hook">Metric label: xdp | tc_ingress | tc_egress.</param>
/// <param name="Mode">native | tcx | netlink.</param>
public sealed record AttachedHook(string Interface, int IfIndex, string Hook, string Mode);

internal static class HookNames
{
    /// <summary>The hook label of sia_exporter_bpf_attached.</summary>
    public static string Label(this Hook hook) => hook switch
    {
        Hook.Xdp => "xdp",
        Hook.TcIngress => "tc_ingress",
        _ => "tc_egress",
    };

    /// <summary>The suffix of the link pin: &lt;ifname&gt;-xdp, -tc-ingress, -tc-egress.</summary>
    public static string PinSuffix(this Hook hook) => hook switch
    {
        Hook.Xdp => "xdp",
        Hook.TcIngress => "tc-ingress",
        _ => "tc-egress",
    };

    public static string Label(this AttachMode mode) => mode switch
    {
        AttachMode.Native => "native",
        AttachMode.Tcx => "tcx",
        _ => "netlink",
    };

    public static uint TcxAttachType(this Hook hook) =>
        hook == Hook.TcEgress ? BpfAttachType.TcxEgress : BpfAttachType.TcxIngress;

    public static TcAttachPoint TcAttachPoint(this Hook hook) =>
        hook == Hook.TcEgress ? Native.TcAttachPoint.Egress : Native.TcAttachPoint.Ingress;
}

/// <summary>
/// One program on one interface hook: a bpf_link (native XDP or TCX; pinned unless pinning is
/// off) or a netlink clsact filter. <see cref="Detach"/> removes it from the kernel; disposing
/// only closes our descriptor, so a pinned link keeps counting (the crash/restart path).
/// <para><see cref="IsAlive"/> runs on the scrape thread while the host's stop may detach: once
/// detached (or disposed) it answers false without a native call, and the link handle itself
/// keeps its descriptor open for any call already under way.</para>
/// </summary>
internal sealed class HookAttachment : IDisposable
{
    /// <summary>Our netlink clsact filter: a fixed handle and priority, so a restart replaces it
    /// (BPF_TC_F_REPLACE) instead of adding a second one.</summary>
    public const uint NetlinkHandle = 0x51a;
    public const uint NetlinkPriority = 0x51a;

    private readonly BpfLink? _link;
    private volatile bool _released;

    private HookAttachment(string interfaceName, int ifIndex, Hook hook, AttachMode mode, uint programId,
        BpfLink? link, string? pinPath, bool adopted)
    {
        Interface = interfaceName;
        IfIndex = ifIndex;
        Hook = hook;
        Mode = mode;
        ProgramId = programId;
        _link = link;
        PinPath = pinPath;
        Adopted = adopted;
    }

    public string Interface { get; }
    public int IfIndex { get; }
    public Hook Hook { get; }
    public AttachMode Mode { get; }
    public uint ProgramId { get; }
    /// <summary>Where the link is pinned (null for netlink filters and unpinned links).</summary>
    public string? PinPath { get; }
    /// <summary>An existing pinned link was taken over (bpf_link_update) rather than created.</summary>
    public bool Adopted { get; }

    public AttachedHook Describe() => new(Interface, IfIndex, Hook.Label(), Mode.Label());

    public static HookAttachment ForLink(string interfaceName, int ifIndex, Hook hook, AttachMode mode, uint programId,
        BpfLink link, string? pinPath, bool adopted) =>
        new(interfaceName, ifIndex, hook, mode, programId, link, pinPath, adopted);

    public static HookAttachment ForNetlink(string interfaceName, int ifIndex, Hook hook, uint programId) =>
        new(interfaceName, ifIndex, hook, AttachMode.Netlink, programId, null, null, adopted: false);

    /// <summary>Whether our program is still on the hook (the interface may have gone away);
    /// false once <see cref="Detach"/> or <see cref="Dispose"/> has begun.</summary>
    public bool IsAlive()
    {
        if (_released) return false;
        if (_link is null) return NetlinkFilter.QueryProgramId(IfIndex, Hook) == ProgramId;
        try
        {
            var info = _link.Info();
            return info.IfIndex == (uint)IfIndex && info.ProgramId == ProgramId;
        }
        catch (ObjectDisposedException)
        {
            return false; // released between the check above and the call
        }
    }

    /// <summary>Takes the program off the hook and removes the pin.</summary>
    public void Detach()
    {
        _released = true;
        if (_link is not null)
        {
            if (!_link.IsClosed) _ = _link.Detach(); // an already-detached link is fine
            if (PinPath is not null && File.Exists(PinPath)) File.Delete(PinPath);
            _link.Dispose();
        }
        else
        {
            NetlinkFilter.Detach(IfIndex, Hook);
        }
    }

    /// <summary>Closes our descriptor only: a pinned link stays attached.</summary>
    public void Dispose()
    {
        _released = true;
        _link?.Dispose();
    }
}

/// <summary>Our clsact filter (<see cref="HookAttachment.NetlinkHandle"/>, <see cref="HookAttachment.NetlinkPriority"/>)
/// on a tc hook, through <see cref="NetlinkTc"/>.</summary>
internal static class NetlinkFilter
{
    /// <summary>Attaches (or replaces) our filter; returns the kernel's program id.</summary>
    public static uint Attach(int ifIndex, Hook hook, BpfProgram program) =>
        NetlinkTc.Attach(ifIndex, hook.TcAttachPoint(), HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority, program, hook.PinSuffix());

    /// <summary>Removes our filter when it is there; false when there was none.</summary>
    public static bool Detach(int ifIndex, Hook hook) =>
        NetlinkTc.Detach(ifIndex, hook.TcAttachPoint(), HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority);

    /// <summary>The program id of our filter, 0 when there is none.</summary>
    public static uint QueryProgramId(int ifIndex, Hook hook) =>
        NetlinkTc.QueryProgramId(ifIndex, hook.TcAttachPoint(), HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority);
}
