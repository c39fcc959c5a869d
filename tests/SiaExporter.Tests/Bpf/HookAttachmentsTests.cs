using System.Text.Json;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Hosting;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Bpf;

public sealed class HookAttachmentsTests
{
    private static readonly ClientAddress Peer = ClientAddress.Parse(VethPair.PeerAddress);

    [KernelFact]
    public void Attaches_native_xdp_and_tcx_egress_once_each_and_counts_traffic()
    {
        using var veth = new VethPair();
        using var pins = new TempPinDirectory();
        using var collector = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        using var attachments = HookAttachments.Attach(collector, [veth.Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger());

        Assert.Equal(
            [new AttachedHook(veth.Host, HookAttachments.IfIndexOf(veth.Host), "xdp", "native"),
             new AttachedHook(veth.Host, HookAttachments.IfIndexOf(veth.Host), "tc_egress", "tcx")],
            attachments.Attached);
        // the veth strips VLAN tags (rx-vlan-offload on): its XDP program is xdp_rx_vlan, loaded for it
        Assert.Equal([XdpProgramId(attachments)], NetShow(veth.Host).XdpDriverIds);
        Assert.NotEqual(ProgramId(collector.XdpIngress), XdpProgramId(attachments));
        Assert.Equal([ProgramId(collector.TcEgress)], TcxQuery.ProgramIds(HookAttachments.IfIndexOf(veth.Host), Hook.TcEgress));
        Assert.Empty(TcxQuery.ProgramIds(HookAttachments.IfIndexOf(veth.Host), Hook.TcIngress));
        Assert.True(File.Exists(Path.Combine(pins.Path, "links", $"{veth.Host}-xdp")));
        Assert.True(File.Exists(Path.Combine(pins.Path, "links", $"{veth.Host}-tc-egress")));
        Assert.Empty(attachments.FindDetached());

        // 9984/udp is class 2: received = slot 4 (down), sent = slot 5 (up)
        veth.SendUdpToHost(9984);
        Shell.Run("bash", "-c", $"echo natdev > /dev/udp/{VethPair.PeerAddress}/9984");
        var reader = new CounterReader(collector);
        var seen = WaitFor(() => reader.Read() is var s && Array.IndexOf(s.Clients, Peer) is var i && i >= 0
            && s.Get(i, 4).Packets >= 1 && s.Get(i, 5).Packets >= 1);
        Assert.True(seen, "one datagram each way was not counted for the peer");
    }

    [KernelFact]
    public void Auto_mode_counts_a_virtual_device_on_the_skb_path_and_leaves_its_peer_offloads_alone()
    {
        using var veth = new VethPair();
        using var pins = new TempPinDirectory();
        using var collector = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        using var attachments = HookAttachments.Attach(collector, [veth.Host], XdpMode.Auto, TcAttachMode.Auto, new ListLogger());

        var ifIndex = HookAttachments.IfIndexOf(veth.Host);
        Assert.True(HookAttachments.IsVirtual(veth.Host));
        Assert.Equal(
            [new AttachedHook(veth.Host, ifIndex, "tc_ingress", "tcx"), new AttachedHook(veth.Host, ifIndex, "tc_egress", "tcx")],
            attachments.Attached);
        Assert.Empty(NetShow(veth.Host).XdpDriverIds); // no native XDP: the peer keeps its TSO
        Assert.Equal([ProgramId(collector.TcIngress)], TcxQuery.ProgramIds(ifIndex, Hook.TcIngress));
    }

    [KernelFact]
    public void Restart_adopts_the_pinned_links_keeps_one_program_per_hook_and_the_counts()
    {
        using var veth = new VethPair();
        using var pins = new TempPinDirectory();
        var ifIndex = HookAttachments.IfIndexOf(veth.Host);
        using (var first = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger()))
        {
            var attachments = HookAttachments.Attach(first, [veth.Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger());
            KernelMapWriter.PutClient(first, Peer, 4000, 40);
            attachments.ReleaseWithoutDetaching(); // as after SIGKILL: programs stay attached and pinned
        }
        Assert.Single(NetShow(veth.Host).XdpDriverIds);

        using var second = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        using var again = HookAttachments.Attach(second, [veth.Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger());

        Assert.Equal(PinnedMapsOutcome.Reused, second.MapsOutcome);
        Assert.All(again.Items, a => Assert.True(a.Adopted));
        Assert.Equal([XdpProgramId(again)], NetShow(veth.Host).XdpDriverIds);
        Assert.Equal([ProgramId(second.TcEgress)], TcxQuery.ProgramIds(ifIndex, Hook.TcEgress));
        var snapshot = new CounterReader(second).Read();
        var index = Array.IndexOf(snapshot.Clients, Peer);
        Assert.True(snapshot.Get(index, 0).Bytes >= 4000 * (ulong)second.PossibleCpus);
        Assert.Empty(again.FindDetached());
    }

    [KernelFact]
    public void Dispose_detaches_everything_and_leaves_no_link_pinned()
    {
        using var veth = new VethPair();
        using var pins = new TempPinDirectory();
        var ifIndex = HookAttachments.IfIndexOf(veth.Host);
        using var collector = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        var attachments = HookAttachments.Attach(collector, [veth.Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger());

        attachments.Dispose();

        Assert.Empty(NetShow(veth.Host).XdpDriverIds);
        Assert.Empty(TcxQuery.ProgramIds(ifIndex, Hook.TcEgress));
        Assert.Empty(Directory.EnumerateFileSystemEntries(HookAttachments.LinksDirectory(pins.Path)));
        Assert.True(File.Exists(Path.Combine(pins.Path, "clients")), "maps stay pinned");
    }

    [KernelFact]
    public void Forced_netlink_path_attaches_one_filter_per_hook_and_a_restart_replaces_it()
    {
        using var veth = new VethPair();
        using var pins = new TempPinDirectory();
        using (var first = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger()))
        {
            var attachments = HookAttachments.Attach(first, [veth.Host], XdpMode.Generic, TcAttachMode.Netlink, new ListLogger());
            Assert.Equal(["tc_ingress/netlink", "tc_egress/netlink"], attachments.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
            Assert.Empty(attachments.FindDetached());
            attachments.ReleaseWithoutDetaching();
        }

        using var second = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        using (var again = HookAttachments.Attach(second, [veth.Host], XdpMode.Generic, TcAttachMode.Netlink, new ListLogger()))
        {
            var tc = NetShow(veth.Host).Tc;
            Assert.Equal([("clsact/ingress", ProgramId(second.TcIngress))], tc.Where(t => t.Kind.EndsWith("ingress", StringComparison.Ordinal)).ToArray());
            Assert.Equal([("clsact/egress", ProgramId(second.TcEgress))], tc.Where(t => t.Kind.EndsWith("egress", StringComparison.Ordinal)).ToArray());
            Assert.Empty(NetShow(veth.Host).XdpDriverIds);
            Assert.Empty(again.FindDetached());
        }
        Assert.Empty(NetShow(veth.Host).Tc);
    }

    [KernelFact]
    public void Switching_modes_and_dropping_an_interface_detach_what_is_no_longer_wanted()
    {
        using var kept = new VethPair();
        using var dropped = new VethPair();
        using var pins = new TempPinDirectory();
        using (var first = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger()))
            HookAttachments.Attach(first, [kept.Host, dropped.Host], XdpMode.Native, TcAttachMode.Auto, new ListLogger())
                .ReleaseWithoutDetaching();

        using var second = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger());
        var logger = new ListLogger();
        using var again = HookAttachments.Attach(second, [kept.Host], XdpMode.Generic, TcAttachMode.Auto, logger);

        Assert.Equal(["tc_ingress/tcx", "tc_egress/tcx"], again.Attached.Select(a => $"{a.Hook}/{a.Mode}").ToArray());
        Assert.Empty(NetShow(kept.Host).XdpDriverIds);
        Assert.Equal([ProgramId(second.TcIngress)], TcxQuery.ProgramIds(HookAttachments.IfIndexOf(kept.Host), Hook.TcIngress));
        Assert.Empty(NetShow(dropped.Host).XdpDriverIds);
        Assert.Empty(TcxQuery.ProgramIds(HookAttachments.IfIndexOf(dropped.Host), Hook.TcEgress));
        Assert.Equal(
            [$"{kept.Host}-tc-egress", $"{kept.Host}-tc-ingress"],
            Directory.EnumerateFiles(HookAttachments.LinksDirectory(pins.Path)).Select(p => Path.GetFileName(p)!).Order().ToArray());
        Assert.True(logger.Said("no longer configured"));
    }

    [KernelTheory]
    [InlineData("tcx")]
    [InlineData("netlink")]
    public void A_scrape_racing_the_stop_sees_the_hooks_go_and_never_a_closed_descriptor(string tcAttachMode)
    {
        var tcAttach = KernelCounters.TcAttachModeOf(tcAttachMode);
        using var veth = new VethPair();
        using var collector = CollectorObject.Load(TestObject.Options(), new ListLogger());
        var attachments = HookAttachments.Attach(collector, [veth.Host], XdpMode.Native, tcAttach, new ListLogger());
        Assert.Empty(attachments.FindDetached());

        // the scrape thread asks while the host's stop detaches and disposes
        Exception? failure = null;
        var checks = 0;
        var stop = false;
        var scrape = new Thread(() =>
        {
            try
            {
                while (!Volatile.Read(ref stop))
                {
                    attachments.FindDetached();
                    checks++;
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        scrape.Start();
        Assert.True(WaitFor(() => Volatile.Read(ref checks) > 10));
        attachments.Detach();
        attachments.Dispose();
        var checksAfterStop = Volatile.Read(ref checks);
        Assert.True(WaitFor(() => Volatile.Read(ref checks) > checksAfterStop + 10));
        Volatile.Write(ref stop, true);
        scrape.Join();

        Assert.Null(failure);
        Assert.All(attachments.Items, a => Assert.False(a.IsAlive()));
        Assert.Equal(attachments.Attached, attachments.FindDetached());
        Assert.Empty(NetShow(veth.Host).XdpDriverIds);
        Assert.Empty(NetShow(veth.Host).Tc);
    }

    [KernelFact]
    public void Missing_interface_is_an_operator_error()
    {
        using var collector = CollectorObject.Load(TestObject.Options(), new ListLogger());
        var e = Assert.Throws<OperatorException>(() =>
            HookAttachments.Attach(collector, ["natdev-nothere"], XdpMode.Native, TcAttachMode.Auto, new ListLogger()));
        Assert.Equal("interface 'natdev-nothere' does not exist", e.What);
        Assert.Contains("ip link", e.WhatToDo, StringComparison.Ordinal);
    }

    private static uint ProgramId(BpfProgram program) => program.Id;

    /// <summary>The program on the XDP hook, as the attacher recorded it (xdp_ingress, or xdp_rx_vlan loaded for the device).</summary>
    private static uint XdpProgramId(HookAttachments attachments) => attachments.Items.Single(a => a.Hook == Hook.Xdp).ProgramId;

    private static bool WaitFor(Func<bool> condition)
    {
        for (var i = 0; i < 40; i++)
        {
            if (condition()) return true;
            Thread.Sleep(50);
        }
        return false;
    }

    private sealed record NetShowResult(uint[] XdpDriverIds, (string Kind, uint Id)[] Tc);

    /// <summary>`bpftool -j net show dev X`: driver-mode XDP program ids and netlink tc filters.</summary>
    private static NetShowResult NetShow(string device)
    {
        using var json = JsonDocument.Parse(Shell.Run("bpftool", "-j", "net", "show", "dev", device));
        var xdp = new List<uint>();
        var tc = new List<(string, uint)>();
        foreach (var entry in json.RootElement.EnumerateArray())
        {
            if (entry.TryGetProperty("xdp", out var xdps))
                foreach (var x in xdps.EnumerateArray())
                    if (x.GetProperty("mode").GetString() == "driver") xdp.Add(x.GetProperty("id").GetUInt32());
            if (entry.TryGetProperty("tc", out var tcs))
                foreach (var t in tcs.EnumerateArray())
                    tc.Add((t.GetProperty("kind").GetString()!, t.GetProperty("id").GetUInt32()));
        }
        return new NetShowResult(xdp.ToArray(), tc.ToArray());
    }
}
