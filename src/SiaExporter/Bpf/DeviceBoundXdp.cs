using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// xdp_rx_vlan loaded for one interface: a device-bound XDP program (prog_ifindex +
/// BPF_F_XDP_DEV_BOUND_ONLY), the only kind that may ask the driver for the VLAN tag it stripped
/// (bpf_xdp_metadata_rx_vlan_tag, kernel 6.8). It is a second open of the same object file with
/// every other program left out and every map taken from the loaded <see cref="CollectorObject"/>
/// (bpf_map__reuse_fd), so it counts into the same counters. Attach its <see cref="Program"/>
/// to that interface only; the link keeps the program alive after this object is disposed.
/// </summary>
internal sealed class DeviceBoundXdp : IDisposable
{
    private DeviceBoundXdp(BpfProgram program) => Program = program;

    public BpfProgram Program { get; }

    /// <summary>Loads xdp_rx_vlan for <paramref name="ifIndex"/>; a <see cref="BpfException"/> when the
    /// kernel refuses (no such kfunc, or a device that cannot take device-bound programs).</summary>
    public static DeviceBoundXdp Load(CollectorObject collector, int ifIndex)
    {
        var path = collector.Options.ObjectPath;
        using var file = BpfObjectFile.Open(path);
        ObjectProgram? wanted = null;
        foreach (var program in file.Programs())
        {
            if (program.Name == BpfConstants.ProgXdpRxVlan) wanted = program;
            else program.SetAutoload(false);
        }
        if (wanted is not { } rxVlan)
            throw new OperatorException($"{path} has no program '{BpfConstants.ProgXdpRxVlan}'; it does not match this collector", "rebuild it with `make build`");
        rxVlan.SetIfIndex(ifIndex);
        rxVlan.SetFlags(rxVlan.Flags | ProgramFlags.XdpDevBoundOnly);
        CollectorObject.WriteSlotCount(file, collector.SlotCount);
        foreach (var map in file.Maps())
        {
            if (CollectorObject.IsGlobalData(map.Name)) continue; // its own copy (.rodata written above, .bss zero)
            map.Reuse(collector.Map(map.Name));
        }
        using (LibBpfLog.Quiet())
        {
            try
            {
                file.Load();
            }
            catch (BpfException e)
            {
                throw new BpfException($"loading {BpfConstants.ProgXdpRxVlan} for ifindex {ifIndex}", e.Errno);
            }
        }
        return new DeviceBoundXdp(rxVlan.Descriptor());
    }

    public void Dispose() => Program.Dispose();
}
