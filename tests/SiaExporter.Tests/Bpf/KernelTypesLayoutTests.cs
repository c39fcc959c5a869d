using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using SiaExporter.Bpf;
using Xunit;

namespace SiaExporter.Tests.Bpf;

/// <summary>The C# mirrors of bpf/collector.h have the sizes and member offsets of the object's BTF.</summary>
public sealed class KernelTypesLayoutTests
{
    public static TheoryData<string, Type, string[], string[]> Mirrors => new()
    {
        { "client_key", typeof(ClientKey), ["addr"], [nameof(ClientKey.Addr)] },
        { "counter", typeof(Counter), ["bytes", "packets"], [nameof(Counter.Bytes), nameof(Counter.Packets)] },
        { "class_info", typeof(ClassInfo), ["port", "proto", "reserved"], [nameof(ClassInfo.Port), nameof(ClassInfo.Proto), nameof(ClassInfo.Reserved)] },
        { "frag_key", typeof(FragKey), ["saddr", "daddr", "id", "proto", "pad"],
            [nameof(FragKey.Saddr), nameof(FragKey.Daddr), nameof(FragKey.Id), nameof(FragKey.Proto), nameof(FragKey.Pad)] },
        { "frag_value", typeof(FragValue), ["class_plus_one"], [nameof(FragValue.ClassPlusOne)] },
        { "collector_config", typeof(CollectorConfig), ["n_slots"], [nameof(CollectorConfig.NSlots)] },
        { "pending_head", typeof(PendingHead), ["addr", "state", "reserved"],
            [nameof(PendingHead.Addr), nameof(PendingHead.State), nameof(PendingHead.Reserved)] },
    };

    [Theory]
    [MemberData(nameof(Mirrors))]
    public void Mirror_matches_the_BTF_of_the_object(string cName, Type mirror, string[] cMembers, string[] csMembers)
    {
        Assert.True(File.Exists(TestObject.Path), $"build the object first: {TestObject.Path}");
        var structs = BtfStructs(TestObject.Path);
        Assert.True(structs.TryGetValue(cName, out var btf), $"struct {cName} is not in the BTF of {TestObject.Path}");
        Assert.Equal(btf.Size, SizeOf(mirror));
        Assert.Equal(cMembers, btf.Members.Select(m => m.Name).ToArray());
        for (var i = 0; i < cMembers.Length; i++)
            Assert.True(btf.Members[i].BitsOffset / 8 == (int)Marshal.OffsetOf(mirror, FieldName(mirror, csMembers[i])),
                $"{cName}.{cMembers[i]} is at byte {btf.Members[i].BitsOffset / 8} in BTF");
    }

    [Fact]
    public void Port_table_size_matches_the_BTF_of_the_object()
    {
        var structs = BtfStructs(TestObject.Path);
        Assert.Equal(KernelSizes.PortTable, structs["port_table"].Size);
    }

    /// <summary>Fixed buffers compile to a nested struct field named like the member.</summary>
    private static string FieldName(Type mirror, string member) => mirror.GetField(member)!.Name;

    private static int SizeOf(Type mirror) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(mirror).Invoke(null, null)!;

    private sealed record BtfMember(string Name, int BitsOffset);

    private sealed record BtfStruct(int Size, IReadOnlyList<BtfMember> Members);

    private static Dictionary<string, BtfStruct> BtfStructs(string objectPath)
    {
        using var json = JsonDocument.Parse(Shell.Run("bpftool", "-j", "btf", "dump", "file", objectPath));
        var result = new Dictionary<string, BtfStruct>(StringComparer.Ordinal);
        foreach (var type in json.RootElement.GetProperty("types").EnumerateArray())
        {
            if (type.GetProperty("kind").GetString() != "STRUCT") continue;
            var name = type.GetProperty("name").GetString()!;
            if (name == "(anon)") continue;
            var members = type.GetProperty("members").EnumerateArray()
                .Select(m => new BtfMember(m.GetProperty("name").GetString()!, m.GetProperty("bits_offset").GetInt32()))
                .ToArray();
            result[name] = new BtfStruct(type.GetProperty("size").GetInt32(), members);
        }
        return result;
    }
}
