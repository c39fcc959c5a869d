namespace SiaExporter.Native;

/// <summary>
/// A clsact filter of ours through libbpf's netlink tc API (bpf_tc_*), identified by a fixed
/// handle and priority. The clsact qdisc is created when missing and never destroyed
/// (bpf_tc_hook_destroy would remove other users' filters).
/// </summary>
internal static unsafe class NetlinkTc
{
    /// <summary>Attaches (or replaces, BPF_TC_F_REPLACE) the filter; returns the kernel's program id.
    /// <paramref name="hookName"/> names the hook in error messages.</summary>
    public static uint Attach(int ifIndex, TcAttachPoint point, uint handle, uint priority, BpfProgram program, string hookName)
    {
        var tcHook = TcHook.Create(ifIndex, point);
        var created = Errnos.FromReturn(LibBpf.TcHookCreate(&tcHook));
        if (created is not (Errno.None or Errno.EEXIST))
            throw BpfErrors.Exception($"bpf_tc_hook_create(ifindex {ifIndex})", created);
        var options = TcOptions.Create(handle, priority);
        options.Flags = TcOptions.FlagReplace;
        // bpf_tc_opts carries the program as a bare descriptor number: hold the handle for the call.
        var referenced = false;
        try
        {
            program.DangerousAddRef(ref referenced);
            options.ProgramFd = (int)program.DangerousGetHandle();
            BpfErrors.Check(LibBpf.TcAttach(&tcHook, &options), $"bpf_tc_attach(ifindex {ifIndex}, {hookName})");
        }
        finally
        {
            if (referenced) program.DangerousRelease();
        }
        return options.ProgramId;
    }

    /// <summary>Removes the filter when it is there; false when there was none.</summary>
    public static bool Detach(int ifIndex, TcAttachPoint point, uint handle, uint priority)
    {
        var tcHook = TcHook.Create(ifIndex, point);
        var options = TcOptions.Create(handle, priority);
        using var quiet = LibBpfLog.Quiet(); // no clsact qdisc or no filter of ours is the usual answer
        return LibBpf.TcDetach(&tcHook, &options) == 0;
    }

    /// <summary>The program id of the filter, 0 when there is none.</summary>
    public static uint QueryProgramId(int ifIndex, TcAttachPoint point, uint handle, uint priority)
    {
        var tcHook = TcHook.Create(ifIndex, point);
        var options = TcOptions.Create(handle, priority);
        using var quiet = LibBpfLog.Quiet();
        return LibBpf.TcQuery(&tcHook, &options) == 0 ? options.ProgramId : 0;
    }
}
