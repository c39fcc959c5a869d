using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SiaExporter.Bpf;
using SiaExporter.Counters;

namespace SiaExporter.Tests.Bpf;

/// <summary>Where the compiled eBPF object is: $BPF_OBJECT, else &lt;repo&gt;/build/collector.bpf.o.</summary>
internal static class TestObject
{
    public static string Path
    {
        get
        {
            var fromEnvironment = Environment.GetEnvironmentVariable("BPF_OBJECT");
            if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
            return System.IO.Path.Combine(RepositoryRoot, "build", "collector.bpf.o");
        }
    }

    /// <summary>The checkout (<see cref="Repository.Root"/>).</summary>
    public static string RepositoryRoot => Repository.Root;

    public static CollectorObjectOptions Options(string? pinDirectory = null, string ports = PortClassSet.Default,
        int maxClients = BpfConstants.DefaultMaxClients) =>
        new(Path, PortClassSet.Parse(ports), maxClients, pinDirectory);
}

/// <summary>A pin directory /sys/fs/bpf/STEM (<see cref="OwnedNames"/>: a crashed run's is removed by a later one),
/// removed with everything in it (links detached).</summary>
internal sealed class TempPinDirectory : IDisposable
{
    public TempPinDirectory() => Path = OwnedNames.NewPinDirectory();

    public string Path { get; }

    public void Dispose()
    {
        if (!Directory.Exists(Path)) return;
        var links = HookAttachments.LinksDirectory(Path);
        if (Directory.Exists(links))
            foreach (var link in Directory.EnumerateFiles(links)) PinnedLink.DetachAndUnpin(link);
        Directory.Delete(Path, recursive: true);
    }
}

/// <summary>Collects log lines so tests can assert what was said.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly List<(LogLevel Level, string Message)> _lines = [];

    public IReadOnlyList<(LogLevel Level, string Message)> Lines
    {
        get
        {
            lock (_lines) return _lines.ToArray();
        }
    }

    public bool Said(string fragment, LogLevel? level = null) =>
        Lines.Any(l => l.Message.Contains(fragment, StringComparison.Ordinal) && (level is null || l.Level == level));

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add((logLevel, formatter(state, exception)));
    }
}
