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
/// only closes our fd, so a pinned link keeps counting (the crash/restart path).
/// </summary>
internal sealed class HookAttachment : IDisposable
{
    /// <summary>Our netlink clsact filter: a fixed handle and priority, so a restart replaces it
    /// (BPF_TC_F_REPLACE) instead of adding a second one.</summary>
    public const uint NetlinkHandle = 0x51a;
    public const uint NetlinkPriority = 0x51a;

    private readonly SafeFileDescriptorHandle? _link;

    private HookAttachment(string interfaceName, int ifIndex, Hook hook, AttachMode mode, uint programId,
        SafeFileDescriptorHandle? link, string? pinPath, bool adopted)
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
        SafeFileDescriptorHandle link, string? pinPath, bool adopted) =>
        new(interfaceName, ifIndex, hook, mode, programId, link, pinPath, adopted);

    public static HookAttachment ForNetlink(string interfaceName, int ifIndex, Hook hook, uint programId) =>
        new(interfaceName, ifIndex, hook, AttachMode.Netlink, programId, null, null, adopted: false);

    /// <summary>Whether our program is still on the hook (the interface may have gone away).</summary>
    public bool IsAlive()
    {
        if (_link is not null)
        {
            var info = BpfInfo.OfLink(_link.Fd);
            return info.IfIndex == (uint)IfIndex && info.ProgramId == ProgramId;
        }
        return NetlinkFilter.QueryProgramId(IfIndex, Hook) == ProgramId;
    }

    /// <summary>Takes the program off the hook and removes the pin.</summary>
    public void Detach()
    {
        if (_link is not null)
        {
            if (!_link.IsClosed) _ = LibBpf.LinkDetach(_link.Fd); // an already-detached link is fine
            if (PinPath is not null && File.Exists(PinPath)) File.Delete(PinPath);
            _link.Dispose();
        }
        else
        {
            NetlinkFilter.Detach(IfIndex, Hook);
        }
    }

    public void Dispose() => _link?.Dispose();
}

/// <summary>Our clsact filter, managed through libbpf's netlink tc API. The clsact qdisc is
/// created when missing and never destroyed (bpf_tc_hook_destroy removes other users' filters).</summary>
internal static unsafe class NetlinkFilter
{
    /// <summary>Attaches (or replaces) our filter; returns the kernel's program id.</summary>
    public static uint Attach(int ifIndex, Hook hook, int programFd)
    {
        var tcHook = TcHook.Create(ifIndex, hook.TcAttachPoint());
        var created = LibBpf.TcHookCreate(&tcHook);
        if (created < 0 && Errno.Of(created) != Errno.EEXIST)
            throw BpfErrors.Exception($"bpf_tc_hook_create(ifindex {ifIndex})", Errno.Of(created));
        var options = TcOptions.Create(HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority);
        options.ProgramFd = programFd;
        options.Flags = TcOptions.FlagReplace;
        BpfErrors.Check(LibBpf.TcAttach(&tcHook, &options), $"bpf_tc_attach(ifindex {ifIndex}, {hook.PinSuffix()})");
        return options.ProgramId;
    }

    /// <summary>Removes our filter when it is there; false when there was none.</summary>
    public static bool Detach(int ifIndex, Hook hook)
    {
        var tcHook = TcHook.Create(ifIndex, hook.TcAttachPoint());
        var options = TcOptions.Create(HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority);
        using var quiet = LibBpfLog.Quiet(); // no clsact qdisc or no filter of ours is the usual answer
        return LibBpf.TcDetach(&tcHook, &options) == 0;
    }

    /// <summary>The program id of our filter, 0 when there is none.</summary>
    public static uint QueryProgramId(int ifIndex, Hook hook)
    {
        var tcHook = TcHook.Create(ifIndex, hook.TcAttachPoint());
        var options = TcOptions.Create(HookAttachment.NetlinkHandle, HookAttachment.NetlinkPriority);
        using var quiet = LibBpfLog.Quiet();
        return LibBpf.TcQuery(&tcHook, &options) == 0 ? options.ProgramId : 0;
    }
}

/// <summary>BPF_PROG_QUERY on a TCX hook: the ids of every program attached there.</summary>
internal static unsafe class TcxQuery
{
    public static uint[] ProgramIds(int ifIndex, Hook hook)
    {
        var ids = new uint[64];
        uint count = (uint)ids.Length;
        uint attachFlags = 0;
        fixed (uint* p = ids)
            BpfErrors.Check(LibBpf.ProgQuery(ifIndex, hook.TcxAttachType(), 0, &attachFlags, p, &count), "bpf_prog_query(tcx)");
        return ids[..(int)count];
    }
}
