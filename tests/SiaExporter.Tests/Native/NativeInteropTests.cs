using System.Runtime.CompilerServices;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Native;

public sealed class NativeInteropTests
{
    [Fact]
    public void Option_and_info_mirrors_have_the_sizes_of_libbpf_1_1_and_linux_bpf_h()
    {
        // sizeof() of the C structs, taken with libbpf-dev 1.1.2 and linux/bpf.h headers on x86-64
        Assert.Equal(24, Unsafe.SizeOf<MapBatchOptions>());
        Assert.Equal(64, Unsafe.SizeOf<LinkCreateOptions>());
        Assert.Equal(16, Unsafe.SizeOf<LinkUpdateOptions>());
        Assert.Equal(24, Unsafe.SizeOf<TcHook>());
        Assert.Equal(32, Unsafe.SizeOf<TcOptions>());
        Assert.Equal(80, Unsafe.SizeOf<TestRunOptions>());
        Assert.Equal(88, Unsafe.SizeOf<BpfMapInfo>());
        Assert.Equal(232, Unsafe.SizeOf<BpfProgramInfo>());
        Assert.Equal(48, Unsafe.SizeOf<BpfLinkInfo>());
        Assert.Equal(192, Unsafe.SizeOf<SkBuffContext>());
        Assert.Equal(24u, (uint)MapBatchOptions.Create().Size);
        Assert.Equal(80u, (uint)TestRunOptions.Create().Size);
    }

    [Fact]
    public void Libbpf_is_found_and_is_at_least_1_0()
    {
        var version = NativeLibraryResolver.EnsureLibBpf();
        Assert.True(LibBpf.MajorVersion() >= 1);
        Assert.StartsWith("v" + version, LibBpf.VersionString(), StringComparison.Ordinal);
        Assert.True(LibBpf.NumPossibleCpus() >= 1);
    }

    [Fact]
    public void Libc_resolves_and_names_interfaces()
    {
        Assert.Equal(1u, Libc.IfNameToIndex("lo"));
        Assert.Equal("lo", Libc.InterfaceName(1));
        Assert.Equal(0u, Libc.IfNameToIndex("natdev-nothere"));
    }

    [Fact]
    public void Errors_carry_the_errno_name_and_EPERM_tells_the_operator_what_to_do()
    {
        var e = Assert.IsType<BpfException>(BpfErrors.Exception("bpf_map_lookup_elem", Errno.EINVAL));
        Assert.Equal("EINVAL", e.ErrnoName);
        Assert.Contains("bpf_map_lookup_elem failed: EINVAL", e.Message, StringComparison.Ordinal);
        Assert.Equal(Errno.ENOTSUPP, Errnos.FromReturn(-524));
        Assert.Equal("ENOTSUPP", Errno.ENOTSUPP.Name());
        Assert.Equal("LIBBPF_ERRNO_4003", Errnos.FromReturn(-4003).Name());
        Assert.Equal("errno 200", ((Errno)200).Name());
        Assert.Equal(Errno.None, Errnos.FromReturn(5));

        var permission = Assert.IsType<OperatorException>(BpfErrors.Exception("bpf_object__load", Errno.EPERM));
        Assert.Contains("permission denied loading eBPF", permission.What, StringComparison.Ordinal);
        Assert.Contains("CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN", permission.WhatToDo, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_returns_non_negative_values_and_throws_on_negative_errno()
    {
        Assert.Equal(7, BpfErrors.Check(7, "x"));
        Assert.Equal(Errno.ENOENT, Assert.IsType<BpfException>(Record.Exception(() => BpfErrors.Check(-2, "x"))).Errno);
    }
}
