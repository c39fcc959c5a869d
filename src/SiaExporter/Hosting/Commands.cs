using SiaExporter.Bpf;
using SiaExporter.Native;
using SiaExporter.Storage;

namespace SiaExporter.Hosting;

/// <summary>The short-lived commands: top, export, detach, version.</summary>
public static class Commands
{
    public static int Top(CollectorOptions options, string[] args) =>
        TopCommand.Run(options.SqlitePath, args, Console.Out, Console.Error);

    public static int Export(CollectorOptions options, string[] args) =>
        ExportCommand.Run(options.SqlitePath, args, Console.Out, Console.Error);

    /// <summary>
    /// Takes our programs off every hook (pinned links under the pin directory, and netlink filters at
    /// our fixed handle on the configured interfaces); --purge also removes the pinned counters.
    /// For `make uninstall` and for an operator who stopped the daemon for good.
    /// </summary>
    public static int Detach(CollectorOptions options, string[] args)
    {
        var purge = args.Contains("--purge");
        var unknown = args.Where(a => a != "--purge").ToArray();
        if (unknown.Length > 0)
        {
            Console.Error.WriteLine($"collector: detach: unknown argument '{unknown[0]}' (only --purge)");
            return 2;
        }
        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
        var logger = loggers.CreateLogger("collector");
        var detached = HookAttachments.DetachAll(options.PinDirectory, options.Interfaces, logger);
        Console.Out.WriteLine($"detached {detached} hook(s)");
        if (purge && Directory.Exists(options.PinDirectory))
        {
            Directory.Delete(options.PinDirectory, recursive: true);
            Console.Out.WriteLine($"removed the pinned counters in {options.PinDirectory}");
        }
        return 0;
    }

    public static int Version(IReadOnlyDictionary<string, string> values)
    {
        _ = values;
        Console.Out.WriteLine($"collector {Metrics.MetricsExporter.DefaultVersion}");
        string libbpf;
        try
        {
            NativeLibraryResolver.EnsureLibBpf();
            libbpf = LibBpf.VersionString();
        }
        catch (OperatorException e)
        {
            libbpf = $"missing ({e.WhatToDo})";
        }
        Console.Out.WriteLine($"libbpf {libbpf}");
        var kernel = KernelFeatures.Probe();
        Console.Out.WriteLine(kernel.ToString());
        Console.Out.WriteLine($"bpffs {(BpfFileSystem.IsMounted() ? "mounted at /sys/fs/bpf" : "not mounted (the daemon mounts it)")}");
        Console.Out.WriteLine($"ports default {Counters.PortClassSet.Default}");
        foreach (var line in InterfaceLines(values)) Console.Out.WriteLine(line);
        return 0;
    }

    /// <summary>One line per configured interface (INTERFACE, else the default route's): what it is
    /// and how its ingress would be counted. Settings that do not parse leave these out.</summary>
    private static IEnumerable<string> InterfaceLines(IReadOnlyDictionary<string, string> values)
    {
        CollectorOptions options;
        try
        {
            options = CollectorSettings.Parse(values);
        }
        catch (SettingsException)
        {
            yield break;
        }
        foreach (var name in options.Interfaces)
        {
            var description = InterfaceDescription.Of(name);
            yield return $"interface {name}: {description.Properties}; ingress: {description.PlannedIngress(options.XdpMode)}";
        }
    }
}
