using Microsoft.Extensions.Logging;
using SiaExporter.Bpf;
using SiaExporter.Counters;
using SiaExporter.Native;
using Xunit;

namespace SiaExporter.Tests.Bpf;

public sealed class CollectorObjectTests
{
    private static readonly ClientAddress Client = ClientAddress.Parse("203.0.113.7");

    [KernelFact]
    public void Loads_without_pinning_with_the_value_size_of_the_port_classes()
    {
        var logger = new ListLogger();
        using var collector = CollectorObject.Load(TestObject.Options(ports: "9981/tcp,9984/tcp"), logger);
        Assert.Equal(PinnedMapsOutcome.NotPinned, collector.MapsOutcome);
        Assert.Equal(4, collector.SlotCount);
        var clients = collector.ClientsMap.Info();
        Assert.Equal(64u, clients.ValueSize);
        Assert.Equal((uint)BpfConstants.DefaultMaxClients, clients.MaxEntries);
        Assert.Equal(BpfMapType.PerCpuHash, clients.Type);
        Assert.Equal(64u, collector.AggregatesMap.Info().ValueSize);
        Assert.Equal(clients.Id, collector.Generation.MapId);
        Assert.Equal(File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), collector.Generation.BootId);
        Assert.Equal((long)BpfConstants.DefaultMaxClients * 64 * collector.PossibleCpus, collector.ClientsMapBytes);
        Assert.All([collector.XdpIngress, collector.TcEgress, collector.TcIngress], p => Assert.True(p.Id > 0 && !p.IsInvalid));
        Assert.Equal("9981/tcp,9984/tcp", ClassTable.Describe(ClassTable.Read(collector.ClassesMap)));
    }

    [KernelFact]
    public void Writes_the_port_table_with_class_index_plus_one()
    {
        using var collector = CollectorObject.Load(TestObject.Options(ports: "9981/tcp,9984/tcp,9984/udp"), new ListLogger());
        var table = new byte[KernelSizes.PortTable];
        collector.PortsMap.Lookup(0u, table);
        Assert.Equal(1, table[9981]);
        Assert.Equal(2, table[9984]);
        Assert.Equal(3, table[BpfConstants.PortsPerRow + 9984]);
        Assert.Equal(0, table[BpfConstants.PortsPerRow + 9981]);
        Assert.Equal(3, table.Count(b => b != 0));
    }

    [KernelFact]
    public void Second_load_reuses_the_pinned_maps_and_keeps_the_counts()
    {
        using var pins = new TempPinDirectory();
        uint firstId;
        using (var first = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger()))
        {
            Assert.Equal(PinnedMapsOutcome.Created, first.MapsOutcome);
            KernelMapWriter.PutClient(first, Client, bytes: 1000, packets: 10);
            KernelMapWriter.PutAggregate(first, BpfConstants.AggTotal, bytes: 1000, packets: 10);
            firstId = first.Generation.MapId;
        }
        Assert.True(File.Exists(Path.Combine(pins.Path, "clients")));

        var logger = new ListLogger();
        using var second = CollectorObject.Load(TestObject.Options(pins.Path), logger);
        Assert.Equal(PinnedMapsOutcome.Reused, second.MapsOutcome);
        Assert.Equal(firstId, second.Generation.MapId);
        Assert.True(logger.Said("reusing the counter maps"));
        var snapshot = new CounterReader(second).Read();
        var index = Array.IndexOf(snapshot.Clients, Client);
        Assert.True(index >= 0);
        var cpus = (ulong)second.PossibleCpus;
        Assert.Equal(new Traffic(1000 * cpus, 10 * cpus), snapshot.Get(index, 0));
        Assert.Equal(new Traffic(1005 * cpus, 15 * cpus), snapshot.Get(index, 5));
        Assert.Equal(new Traffic(1000 * cpus, 10 * cpus), snapshot.Totals[0]);
    }

    [KernelTheory]
    [InlineData("9981/tcp,9984/tcp", BpfConstants.DefaultMaxClients, "PORTS changed")]
    [InlineData("9984/tcp,9981/tcp,9984/udp", BpfConstants.DefaultMaxClients, "class_info: 9981/tcp,9984/tcp,9984/udp → 9984/tcp,9981/tcp,9984/udp")]
    [InlineData(PortClassSet.Default, 4096, "max_entries 16384 → 4096 (MAX_CLIENTS changed)")]
    public void Changed_configuration_recreates_the_pinned_maps_and_says_why(string ports, int maxClients, string reason)
    {
        using var pins = new TempPinDirectory();
        uint firstId;
        using (var first = CollectorObject.Load(TestObject.Options(pins.Path), new ListLogger()))
        {
            KernelMapWriter.PutClient(first, Client, 1000, 10);
            firstId = first.Generation.MapId;
        }

        var logger = new ListLogger();
        using var second = CollectorObject.Load(TestObject.Options(pins.Path, ports, maxClients), logger);
        Assert.Equal(PinnedMapsOutcome.Recreated, second.MapsOutcome);
        Assert.NotEqual(firstId, second.Generation.MapId);
        Assert.Contains(second.RecreateReasons, r => r.Contains(reason, StringComparison.Ordinal));
        Assert.True(logger.Said("restarts at zero", LogLevel.Warning));
        Assert.Empty(new CounterReader(second).Read().Clients);

        // the new maps are pinned and reused by the next run with the same settings
        using var third = CollectorObject.Load(TestObject.Options(pins.Path, ports, maxClients), new ListLogger());
        Assert.Equal(PinnedMapsOutcome.Reused, third.MapsOutcome);
        Assert.Equal(second.Generation, third.Generation);
    }

    [KernelFact]
    public void Maps_and_programs_are_descriptors_of_its_own_closed_with_it()
    {
        var collector = CollectorObject.Load(TestObject.Options(), new ListLogger());
        var clients = collector.ClientsMap;
        var xdp = collector.XdpIngress;
        Assert.Equal(collector.Generation.MapId, clients.Info().Id); // usable after libbpf's object is closed
        Assert.Equal(BpfConstants.ProgXdp, xdp.Info().Name[..Math.Min(15, BpfConstants.ProgXdp.Length)]);

        collector.Dispose();

        Assert.True(clients.IsClosed && xdp.IsClosed);
        Assert.Throws<ObjectDisposedException>(() => clients.Info());
        Assert.Throws<ObjectDisposedException>(() => xdp.Info());
    }

    [KernelFact]
    public void A_read_only_pin_directory_is_one_operator_line_not_a_crash()
    {
        // What a unit without ReadWritePaths on the pin directory sees: bpffs mounted read-only.
        var mount = Directory.CreateTempSubdirectory("sxt-robpffs-").FullName;
        Shell.Run("mount", "-t", "bpf", "-o", "ro", "bpffs", mount);
        try
        {
            var e = Assert.Throws<OperatorException>(() => CollectorObject.Load(TestObject.Options(Path.Combine(mount, "collector")), new ListLogger()));
            Assert.Contains("cannot create the pin directory", e.Message);
            Assert.Contains("PIN_DIRECTORY", e.WhatToDo);
        }
        finally
        {
            Shell.TryRun("umount", mount);
            Directory.Delete(mount);
        }
    }

    [KernelFact]
    public void Missing_object_names_the_path_and_make_build()
    {
        var options = TestObject.Options() with { ObjectPath = "/nonexistent/natdev/collector.bpf.o" };
        var e = Assert.Throws<OperatorException>(() => CollectorObject.Load(options, new ListLogger()));
        Assert.Contains("/nonexistent/natdev/collector.bpf.o", e.What, StringComparison.Ordinal);
        Assert.Contains("make build", e.WhatToDo, StringComparison.Ordinal);
    }

    [KernelFact]
    public void Garbage_file_is_reported_as_not_a_valid_object()
    {
        var path = Path.Combine(Path.GetTempPath(), $"natdev-{Guid.NewGuid():N}.bpf.o");
        File.WriteAllBytes(path, "this is not an ELF file, just garbage"u8.ToArray());
        try
        {
            var options = TestObject.Options() with { ObjectPath = path };
            var e = Assert.Throws<OperatorException>(() => CollectorObject.Load(options, new ListLogger()));
            Assert.Contains("is not a valid eBPF object", e.What, StringComparison.Ordinal);
            Assert.Contains(path, e.What, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [KernelFact]
    public void Libbpf_messages_reach_the_logger()
    {
        var logger = new ListLogger();
        using (CollectorObject.Load(TestObject.Options(), logger))
        {
        }
        Assert.Contains(logger.Lines, l => l.Message.StartsWith("libbpf: ", StringComparison.Ordinal));
    }
}
