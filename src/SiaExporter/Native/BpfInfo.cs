namespace SiaExporter.Native;

/// <summary>bpf_obj_get_info_by_fd for maps, programs and links.</summary>
internal static unsafe class BpfInfo
{
    public static BpfMapInfo OfMap(int fd)
    {
        BpfMapInfo info = default;
        Get(fd, &info, (uint)sizeof(BpfMapInfo), "bpf_obj_get_info_by_fd(map)");
        return info;
    }

    public static BpfProgramInfo OfProgram(int fd)
    {
        BpfProgramInfo info = default;
        Get(fd, &info, (uint)sizeof(BpfProgramInfo), "bpf_obj_get_info_by_fd(program)");
        return info;
    }

    public static BpfLinkInfo OfLink(int fd)
    {
        BpfLinkInfo info = default;
        Get(fd, &info, (uint)sizeof(BpfLinkInfo), "bpf_obj_get_info_by_fd(link)");
        return info;
    }

    private static void Get(int fd, void* info, uint length, string operation)
    {
        var size = length;
        BpfErrors.Check(LibBpf.ObjGetInfoByFd(fd, info, &size), operation);
    }

    /// <summary>Opens a pinned object (bpf_obj_get); null when nothing is pinned there.</summary>
    public static SafeFileDescriptorHandle? OpenPinned(string path)
    {
        if (!File.Exists(path)) return null;
        var fd = LibBpf.ObjGet(path);
        if (fd >= 0) return new SafeFileDescriptorHandle(fd);
        var errno = Errno.Of(fd);
        if (errno == Errno.ENOENT) return null;
        throw BpfErrors.Exception($"bpf_obj_get({path})", errno);
    }
}
