using SiaExporter.Bpf;
using SiaExporter.Native;
using SiaExporter.Storage;

namespace SiaExporter.Hosting;

/// <summary>The short-lived commands: top, export, detach, version, settings.</summary>
public static class Commands
{
    public static int Top(CollectorOptions options, string[] args) =>
        TopCommand.Run(options.Database.SqlitePath, args, Console.Out, Console.Error, view: HistoryView.From(options.Database, options.Billing));

    public static int Export(CollectorOptions options, string[] args) =>
        ExportCommand.Run(options.Database.SqlitePath, args, Console.Out, Console.Error, view: HistoryView.From(options.Database, options.Billing));

    public static int Report(CollectorOptions options, string[] args) =>
        ReportCommand.Run(options.Database.SqlitePath, args, Console.Out, Console.Error, view: HistoryView.From(options.Database, options.Billing),
            quota: options.Billing);

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
        var kernel = options.Kernel;
        var detached = HookAttachments.DetachAll(kernel.PinDirectory, kernel.Interfaces, logger);
        Console.Out.WriteLine($"detached {detached} hook(s)");
        if (purge && Directory.Exists(kernel.PinDirectory))
        {
            Directory.Delete(kernel.PinDirectory, recursive: true);
            Console.Out.WriteLine($"removed the pinned counters in {kernel.PinDirectory}");
        }
        return 0;
    }

    /// <summary>`collector version`; with <paramref name="kernel"/> (settings that parse), a line per interface too.</summary>
    public static int Version(KernelOptions? kernel)
    {
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
        Console.Out.WriteLine(KernelFeatures.Probe().ToString());
        Console.Out.WriteLine($"bpffs {(BpfFileSystem.IsMounted() ? "mounted at /sys/fs/bpf" : "not mounted (the daemon mounts it)")}");
        Console.Out.WriteLine($"ports default {Counters.PortClassSet.Default}");
        if (kernel is not null)
            foreach (var line in InterfaceLines(kernel)) Console.Out.WriteLine(line);
        return 0;
    }

    /// <summary>One line per interface of <paramref name="kernel"/> (INTERFACE, else the default
    /// route's): what it is and how its ingress would be counted.</summary>
    private static IEnumerable<string> InterfaceLines(KernelOptions kernel)
    {
        foreach (var name in kernel.Interfaces)
        {
            var description = InterfaceDescription.Of(name);
            yield return $"interface {name}: {description.Properties}; ingress: {description.PlannedIngress(kernel.XdpMode)}";
        }
    }

    /// <summary>
    /// Every setting from <see cref="SettingsTable"/>: a listing (no argument), collector.env.example
    /// (--env-example), the Markdown table (--markdown), or that table written into the generated
    /// section of a reference document (--update-reference FILE; `make docs`).
    /// </summary>
    public static int Settings(string[] args)
    {
        switch (args)
        {
            case []:
                Console.Out.Write(SettingsDocs.Help());
                return 0;
            case ["--env-example"]:
                Console.Out.Write(SettingsDocs.EnvExample());
                return 0;
            case ["--markdown"]:
                Console.Out.Write(SettingsDocs.Markdown());
                return 0;
            case ["--update-reference", var file]:
                if (!File.Exists(file))
                    throw new OperatorException($"{file} does not exist", "pass the path of docs/reference.md");
                var document = File.ReadAllText(file);
                if (!SettingsDocs.HasSection(document))
                    throw new OperatorException($"{file} has no generated settings section",
                        $"put the lines {SettingsDocs.BeginMarker} and {SettingsDocs.EndMarker} where the table goes");
                File.WriteAllText(file, SettingsDocs.SpliceInto(document));
                Console.Out.WriteLine($"updated the settings table in {file}");
                return 0;
            default:
                Console.Error.WriteLine($"collector: settings: unexpected '{string.Join(' ', args)}' (--env-example, --markdown or --update-reference FILE)");
                return 2;
        }
    }
}
