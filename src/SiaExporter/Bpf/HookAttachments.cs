using Microsoft.Extensions.Logging;
using SiaExporter.Hosting;
using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// The collector's programs on every configured interface: ingress (native XDP, else the skb
/// path on TC ingress) and egress (TC egress), as TCX/XDP bpf_links pinned under
/// &lt;pin dir&gt;/links/&lt;ifname&gt;-&lt;hook&gt;, or netlink clsact filters.
/// <para>A pinned link survives the daemon (SIGKILL included): the program keeps counting into the
/// pinned maps. The next start adopts it with bpf_link_update (an atomic program swap, so exactly
/// one of ours is on each hook); a stale one is detached and replaced; links pinned for
/// interfaces no longer configured are detached. <see cref="Dispose"/> (SIGTERM, Ctrl-C)
/// detaches everything and unpins the links; the maps stay pinned.</para>
/// </summary>
internal sealed class HookAttachments : IDisposable
{
    private readonly List<HookAttachment> _attachments;
    private readonly ILogger _logger;
    private bool _detached;

    private HookAttachments(List<HookAttachment> attachments, ILogger logger)
    {
        _attachments = attachments;
        _logger = logger;
    }

    /// <summary>What is attached, for sia_exporter_bpf_attached.</summary>
    public IReadOnlyList<AttachedHook> Attached => _attachments.Select(a => a.Describe()).ToArray();

    internal IReadOnlyList<HookAttachment> Items => _attachments;

    public static string LinksDirectory(string pinDirectory) => Path.Combine(pinDirectory, "links");

    public static HookAttachments Attach(CollectorObject collector, IReadOnlyList<string> interfaces, XdpMode xdpMode,
        TcAttachMode tcAttach, ILogger logger)
    {
        if (interfaces.Count == 0)
            throw new OperatorException("no interface to attach to", "set INTERFACE (see `ip link`)");
        var resolved = interfaces.Distinct(StringComparer.Ordinal)
            .Select(name => (Name: name, IfIndex: IfIndexOf(name), Link: LinkType.Require(name))).ToArray();
        var linksDirectory = collector.Options.PinDirectory is { } pinDirectory ? LinksDirectory(pinDirectory) : null;
        if (linksDirectory is not null) BpfFileSystem.CreatePinDirectory(linksDirectory);

        var attacher = new Attacher(collector, linksDirectory, tcAttach, logger);
        var attachments = new List<HookAttachment>();
        try
        {
            foreach (var (name, ifIndex, link) in resolved)
            {
                attachments.Add(link.IsL3 ? attacher.AttachL3Ingress(name, ifIndex, link, xdpMode) : attacher.AttachIngress(name, ifIndex, xdpMode));
                attachments.Add(attacher.AttachEgress(name, ifIndex, link));
            }
            if (linksDirectory is not null)
                DetachUnused(linksDirectory, attachments.Select(a => a.PinPath).OfType<string>().ToHashSet(StringComparer.Ordinal), logger);
        }
        catch
        {
            // as after a crash: pinned links (adopted or new) keep counting into the pinned maps
            // until the next start; unpinned links die with their fds
            foreach (var attachment in attachments) attachment.Dispose();
            throw;
        }
        foreach (var a in attachments)
            logger.LogInformation("counting {Interface} {Hook} ({Mode}{Adopted})", a.Interface, a.Hook.Label(), a.Mode.Label(),
                a.Adopted ? ", took over the pinned link" : "");
        foreach (var (name, _, _) in resolved)
        {
            var ingress = attachments.First(a => a.Interface == name && a.Hook != Hook.TcEgress);
            logger.LogInformation("interface {Interface}: {Properties}; ingress on {Ingress}", name, InterfaceDescription.Of(name).Properties,
                ingress.Hook == Hook.Xdp ? "native XDP" : "the skb path");
        }
        return new HookAttachments(attachments, logger);
    }

    /// <summary>The hooks whose program is no longer attached (interface removed, link detached by someone).</summary>
    public IReadOnlyList<AttachedHook> FindDetached() =>
        _attachments.Where(a => !a.IsAlive()).Select(a => a.Describe()).ToArray();

    /// <summary>Takes every program off its hook and unpins the links (maps stay pinned).</summary>
    public void Detach()
    {
        if (_detached) return;
        _detached = true;
        foreach (var attachment in _attachments)
        {
            try
            {
                attachment.Detach();
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "could not detach {Interface} {Hook}", attachment.Interface, attachment.Hook.Label());
            }
        }
        _logger.LogInformation("detached from {Count} hooks", _attachments.Count);
    }

    public void Dispose() => Detach();

    /// <summary>Closes our fds but leaves every program attached and its link pinned, as a crash
    /// would (tests of the restart path; an in-place upgrade).</summary>
    public void ReleaseWithoutDetaching()
    {
        _detached = true;
        foreach (var attachment in _attachments) attachment.Dispose();
    }

    /// <summary>
    /// `collector detach`: removes every link pinned under <paramref name="pinDirectory"/> and our
    /// netlink filters on <paramref name="interfaces"/>. Returns how many were removed.
    /// </summary>
    public static int DetachAll(string pinDirectory, IEnumerable<string> interfaces, ILogger logger)
    {
        var removed = 0;
        var linksDirectory = LinksDirectory(pinDirectory);
        if (Directory.Exists(linksDirectory))
            removed += DetachUnused(linksDirectory, new HashSet<string>(StringComparer.Ordinal), logger);
        foreach (var name in interfaces)
        {
            var ifIndex = (int)Libc.IfNameToIndex(name);
            if (ifIndex == 0) continue;
            foreach (var hook in new[] { Hook.TcIngress, Hook.TcEgress })
                if (NetlinkFilter.Detach(ifIndex, hook)) removed++;
        }
        return removed;
    }

    internal static int IfIndexOf(string interfaceName)
    {
        var ifIndex = Libc.IfNameToIndex(interfaceName);
        return ifIndex != 0 ? (int)ifIndex
            : throw new OperatorException($"interface '{interfaceName}' does not exist", "see `ip link` and set INTERFACE");
    }

    /// <summary>Detaches and unpins every link under <paramref name="linksDirectory"/> not in <paramref name="keep"/>.</summary>
    private static int DetachUnused(string linksDirectory, HashSet<string> keep, ILogger logger)
    {
        var removed = 0;
        foreach (var path in Directory.EnumerateFiles(linksDirectory))
        {
            if (keep.Contains(path)) continue;
            PinnedLink.DetachAndUnpin(path);
            logger.LogInformation("detached the pinned link {Path} (interface or hook no longer configured)", path);
            removed++;
        }
        return removed;
    }

    /// <summary>A device with no hardware behind it (veth, bridge, bond, tun, dummy): its driver
    /// reports no bus. Asked through ethtool in this network namespace, not sysfs, which shows the
    /// namespace that mounted it.</summary>
    internal static bool IsVirtual(string interfaceName) =>
        Libc.DriverInfo(interfaceName) is { } info && (info.BusInfo.Length == 0 || info.BusInfo == "N/A");

    /// <summary>The attach decisions for one run.</summary>
    private sealed class Attacher(CollectorObject collector, string? linksDirectory, TcAttachMode tcAttach, ILogger logger)
    {
        private bool _tcxUnavailable = tcAttach == TcAttachMode.Netlink;

        public HookAttachment AttachIngress(string name, int ifIndex, XdpMode xdpMode)
        {
            if (xdpMode == XdpMode.Generic)
                return AttachSkbIngress(name, ifIndex);
            if (xdpMode == XdpMode.Auto && IsVirtual(name))
            {
                // Native XDP on a veth turns TSO off on its peer (measured with bench/traffic.sh:
                // inbound TCP from a container fell to ~20%); bridges, bonds and tunnels have no
                // hardware queue to gain from. The skb path counts them exactly at no such cost.
                logger.LogInformation("{Interface} is a virtual device: counting its ingress with tc_ingress on the skb path (XDP_MODE=native forces XDP)", name);
                return AttachSkbIngress(name, ifIndex);
            }
            try
            {
                // the link holds the program: a device-bound one's object may go once it is attached
                using var deviceBound = LoadRxVlanProgram(name, ifIndex);
                var attachment = AttachLink(name, ifIndex, Hook.Xdp, AttachMode.Native, deviceBound?.Program ?? collector.XdpIngress);
                RemoveOtherIngress(name, ifIndex, Hook.Xdp);
                return attachment;
            }
            // ERANGE: an MTU above what the driver's XDP takes (a driver, or a kernel < 5.18, without multi-buffer XDP)
            catch (BpfException e) when (xdpMode == XdpMode.Auto && e.Errno is Errno.EOPNOTSUPP or Errno.EINVAL or Errno.ENOTSUPP or Errno.ERANGE)
            {
                logger.LogWarning(
                    "native XDP is not available on {Interface} ({Errno}, MTU {Mtu}); counting its ingress with tc_ingress on the skb path instead",
                    name, e.ErrnoName, NetDevice.Mtu(name));
                return AttachSkbIngress(name, ifIndex);
            }
            catch (BpfException e) when (e.Errno == Errno.EBUSY)
            {
                throw new OperatorException($"interface '{name}' already has another XDP program attached",
                    $"see `ip link show dev {name}`; remove it or set XDP_MODE=generic", e);
            }
            catch (BpfException e) when (xdpMode == XdpMode.Native)
            {
                throw new OperatorException($"native XDP cannot be attached to '{name}' ({e.ErrnoName})",
                    "use a driver with XDP support or set XDP_MODE=auto", e);
            }
        }

        /// <summary>With rx-vlan-offload on, the NIC strips tags before XDP sees the frame: xdp_rx_vlan,
        /// loaded for this device, asks the driver for them. Null (plain xdp_ingress) when the offload is
        /// off or the kernel refuses the device-bound program.</summary>
        private DeviceBoundXdp? LoadRxVlanProgram(string name, int ifIndex)
        {
            if (NetDevice.VlanOffload(name) is not { Rx: true }) return null;
            try
            {
                var program = DeviceBoundXdp.Load(collector, ifIndex);
                logger.LogInformation("{Interface} strips VLAN tags on receive (rx-vlan-offload on): its XDP program {Program} adds the 4 bytes " +
                    "of each stripped tag, as the driver reports them (drivers without the XDP RX VLAN metadata count such frames 4 B short)",
                    name, BpfConstants.ProgXdpRxVlan);
                return program;
            }
            catch (BpfException e)
            {
                logger.LogWarning("{Interface} strips VLAN tags on receive (rx-vlan-offload on) but {Program} cannot be loaded for it ({Errno}; kernel < 6.8?): " +
                    "XDP counts each frame whose tag was stripped 4 B short of the wire; XDP_MODE=generic or `ethtool -K {Interface} rxvlan off` counts them whole",
                    name, BpfConstants.ProgXdpRxVlan, e.ErrnoName, name);
                return null;
            }
        }

        public HookAttachment AttachEgress(string name, int ifIndex, LinkType link) =>
            AttachTc(name, ifIndex, Hook.TcEgress, link.IsL3 ? collector.TcEgressL3 : collector.TcEgress);

        /// <summary>A link without an Ethernet header (tun, WireGuard, PPP, raw IP): ingress on the
        /// skb path. tun runs an XDP program only on TAP frames, WireGuard and PPP have no native XDP.</summary>
        public HookAttachment AttachL3Ingress(string name, int ifIndex, LinkType link, XdpMode xdpMode)
        {
            if (xdpMode == XdpMode.Native)
                throw new OperatorException($"native XDP cannot count '{name}': its link type ({link}) has no Ethernet header and no native XDP for IP packets",
                    "set XDP_MODE=auto (its ingress is counted on the skb path)");
            logger.LogInformation("{Interface} has link type {LinkType} (no link header): counting IP packet bytes with {Ingress} and {Egress}",
                name, link, BpfConstants.ProgTcIngressL3, BpfConstants.ProgTcEgressL3);
            RemoveOtherIngress(name, ifIndex, Hook.TcIngress);
            return AttachTc(name, ifIndex, Hook.TcIngress, collector.TcIngressL3);
        }

        private HookAttachment AttachSkbIngress(string name, int ifIndex)
        {
            RemoveOtherIngress(name, ifIndex, Hook.TcIngress);
            return AttachTc(name, ifIndex, Hook.TcIngress, collector.TcIngress);
        }

        /// <summary>Ingress is counted once: switching between native XDP and the skb path
        /// removes the other one (pinned link or netlink filter).</summary>
        private void RemoveOtherIngress(string name, int ifIndex, Hook kept)
        {
            if (kept == Hook.Xdp)
            {
                RemovePinned(name, Hook.TcIngress);
                NetlinkFilter.Detach(ifIndex, Hook.TcIngress);
            }
            else
            {
                RemovePinned(name, Hook.Xdp);
            }
        }

        private HookAttachment AttachTc(string name, int ifIndex, Hook hook, BpfProgram program)
        {
            if (!_tcxUnavailable)
            {
                try
                {
                    var attachment = AttachLink(name, ifIndex, hook, AttachMode.Tcx, program);
                    NetlinkFilter.Detach(ifIndex, hook); // a filter left by an earlier netlink-mode run would count twice
                    return attachment;
                }
                catch (BpfException e) when (tcAttach == TcAttachMode.Auto && e.Errno is Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOTSUPP)
                {
                    _tcxUnavailable = true;
                    logger.LogWarning("TCX links are not available ({Errno}; kernel < 6.6?): attaching tc programs as netlink clsact filters",
                        e.ErrnoName);
                }
                catch (BpfException e) when (tcAttach == TcAttachMode.Tcx && e.Errno is Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOTSUPP)
                {
                    throw new OperatorException($"TCX links are not available on this kernel ({e.ErrnoName}; kernel 6.6 or newer is needed)",
                        "set TC_ATTACH=auto or TC_ATTACH=netlink", e);
                }
            }
            RemovePinned(name, hook);
            var programId = NetlinkFilter.Attach(ifIndex, hook, program);
            return HookAttachment.ForNetlink(name, ifIndex, hook, programId);
        }

        private HookAttachment AttachLink(string name, int ifIndex, Hook hook, AttachMode mode, BpfProgram program)
        {
            var programId = program.Id;
            var pinPath = linksDirectory is null ? null : Path.Combine(linksDirectory, $"{name}-{hook.PinSuffix()}");
            if (pinPath is not null && PinnedLink.TryAdopt(pinPath, ifIndex, hook, program, logger) is { } adopted)
                return HookAttachment.ForLink(name, ifIndex, hook, mode, programId, adopted, pinPath, adopted: true);

            var created = hook == Hook.Xdp
                ? BpfLink.TryCreate(program, ifIndex, BpfAttachType.Xdp, XdpFlags.DriverMode, out var link)
                : BpfLink.TryCreate(program, ifIndex, hook.TcxAttachType(), flags: 0, out link);
            if (link is null) throw BpfErrors.Exception($"bpf_link_create({name}, {hook.PinSuffix()})", created);
            if (pinPath is not null)
            {
                var pinned = link.TryPin(pinPath);
                if (pinned != Errno.None)
                {
                    _ = link.Detach();
                    link.Dispose();
                    throw BpfErrors.Exception($"bpf_obj_pin({pinPath})", pinned);
                }
            }
            return HookAttachment.ForLink(name, ifIndex, hook, mode, programId, link, pinPath, adopted: false);
        }

        private void RemovePinned(string name, Hook hook)
        {
            if (linksDirectory is null) return;
            var path = Path.Combine(linksDirectory, $"{name}-{hook.PinSuffix()}");
            if (File.Exists(path)) PinnedLink.DetachAndUnpin(path);
        }
    }
}

/// <summary>XDP attach flags of linux/if_link.h.</summary>
internal static class XdpFlags
{
    public const uint DriverMode = 1U << 2; // XDP_FLAGS_DRV_MODE
}

/// <summary>A link pinned by an earlier run.</summary>
internal static class PinnedLink
{
    /// <summary>
    /// Takes over the link pinned at <paramref name="path"/> when it is ours for this interface
    /// and hook: swaps in <paramref name="program"/> with bpf_link_update. A stale link (other
    /// interface or type, already detached, update refused) is detached and unpinned; returns null then.
    /// </summary>
    public static BpfLink? TryAdopt(string path, int ifIndex, Hook hook, BpfProgram program, ILogger logger)
    {
        var link = BpfLink.OpenPinned(path);
        if (link is null) return null;
        string reason;
        var info = link.Info();
        var wantedType = hook == Hook.Xdp ? BpfLinkType.Xdp : BpfLinkType.Tcx;
        if (info.Type != wantedType)
            reason = $"it is a link of type {(uint)info.Type}, not {(uint)wantedType}";
        else if (info.IfIndex != (uint)ifIndex)
            reason = info.IfIndex == 0 ? "its interface is gone" : $"it is on ifindex {info.IfIndex}, not {ifIndex}";
        else if (hook != Hook.Xdp && info.TcxAttachType != hook.TcxAttachType())
            reason = $"it has attach type {info.TcxAttachType}, not {hook.TcxAttachType()}";
        else
        {
            var updated = link.Update(program);
            if (updated == Errno.None) return link;
            reason = $"bpf_link_update failed: {updated.Name()}";
        }
        logger.LogInformation("replacing the stale pinned link {Path}: {Reason}", path, reason);
        _ = link.Detach();
        link.Dispose();
        File.Delete(path);
        return null;
    }

    /// <summary>Detaches the link pinned at <paramref name="path"/> (if any) and removes the pin.</summary>
    public static void DetachAndUnpin(string path)
    {
        using (var link = BpfLink.OpenPinned(path))
            if (link is not null) _ = link.Detach();
        if (File.Exists(path)) File.Delete(path);
    }
}
