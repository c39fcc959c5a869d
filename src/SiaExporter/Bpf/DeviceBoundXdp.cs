using SiaExporter.Native;

namespace SiaExporter.Bpf;

/// <summary>
/// xdp_rx_vlan loaded for one interface: a device-bound XDP program (prog_ifindex +
/// BPF_F_XDP_DEV_BOUND_ONLY), the only kind that may ask the driver for the VLAN tag it stripped
/// (bpf_xdp_metadata_rx_vlan_tag, kernel 6.8). It is a second open of the same object file with
/// every other program left out and every map taken from the loaded <see cref="CollectorObject"/>
/// (bpf_map__reuse_fd), so it counts into the same counters. Attach its <see cref="ProgramFd"/>
/// to that interface only; the link keeps the program alive after this object is disposed.
/// </summary>
internal sealed unsafe class DeviceBoundXdp : IDisposable
{
    private readonly SafeBpfObjectHandle _object;

    private DeviceBoundXdp(SafeBpfObjectHandle bpfObject, int programFd)
    {
        _object = bpfObject;
        ProgramFd = programFd;
    }

    public int ProgramFd { get; }

    /// <summary>Loads xdp_rx_vlan for <paramref name="ifIndex"/>; a <see cref="BpfException"/> when the
    /// kernel refuses (no such kfunc, or a device that cannot take device-bound programs).</summary>
    public static DeviceBoundXdp Load(CollectorObject collector, int ifIndex)
    {
        var path = collector.Options.ObjectPath;
        var handle = LibBpf.ObjectOpenFile(path, null);
        if (handle == 0) throw new BpfException($"bpf_object__open_file({path})", Errno.Last());
        var bpfObject = new SafeBpfObjectHandle(handle);
        try
        {
            nint wanted = 0;
            for (var program = LibBpf.ObjectNextProgram(bpfObject, 0); program != 0; program = LibBpf.ObjectNextProgram(bpfObject, program))
            {
                if (LibBpf.ProgramName(program) == BpfConstants.ProgXdpRxVlan) wanted = program;
                else BpfErrors.Check(LibBpf.ProgramSetAutoload(program, false), "bpf_program__set_autoload");
            }
            if (wanted == 0)
                throw new OperatorException($"{path} has no program '{BpfConstants.ProgXdpRxVlan}'; it does not match this collector", "rebuild it with `make build`");
            LibBpf.ProgramSetIfIndex(wanted, (uint)ifIndex);
            BpfErrors.Check(LibBpf.ProgramSetFlags(wanted, LibBpf.ProgramFlags(wanted) | ProgramFlags.XdpDevBoundOnly), "bpf_program__set_flags");
            CollectorObject.WriteSlotCount(bpfObject, path, collector.SlotCount);
            for (var map = LibBpf.ObjectNextMap(bpfObject, 0); map != 0; map = LibBpf.ObjectNextMap(bpfObject, map))
            {
                var name = LibBpf.MapName(map);
                if (name.StartsWith('.') || name.Contains(".rodata", StringComparison.Ordinal) || name.Contains(".bss", StringComparison.Ordinal))
                    continue; // global data: its own copy (.rodata written above, .bss zero)
                BpfErrors.Check(LibBpf.MapReuseFd(map, collector.MapFd(name)), $"bpf_map__reuse_fd({name})");
            }
            using (LibBpfLog.Quiet())
            {
                var loaded = LibBpf.ObjectLoad(bpfObject.DangerousGetHandle());
                if (loaded < 0) throw new BpfException($"loading {BpfConstants.ProgXdpRxVlan} for ifindex {ifIndex}", Errno.Of(loaded));
            }
            return new DeviceBoundXdp(bpfObject, LibBpf.ProgramFd(wanted));
        }
        catch
        {
            bpfObject.Dispose();
            throw;
        }
    }

    public void Dispose() => _object.Dispose();
}
