using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace SiaExporter.Native;

/// <summary>
/// Routes libbpf's own messages (verifier log, "couldn't reuse pinned map", ...) into an
/// <see cref="ILogger"/>: warnings as warnings, info as information, debug as trace.
/// The callback formats (fmt, va_list) with libc vsnprintf, passing the va_list through as a
/// pointer-sized value (correct on x86-64, where it is an array, and arm64, where it is passed
/// by reference).
/// </summary>
internal static unsafe class LibBpfLog
{
    private static ILogger? _logger;

    [ThreadStatic]
    private static int _quiet;

    /// <summary>Silences libbpf on this thread while a probe that may fail by design runs
    /// (e.g. removing a netlink filter from an interface that has no clsact qdisc).</summary>
    public static QuietScope Quiet()
    {
        _quiet++;
        return new QuietScope();
    }

    public readonly struct QuietScope : IDisposable
    {
        public void Dispose() => _quiet--;
    }

    /// <summary>Sends libbpf messages to <paramref name="logger"/> (null: drop them).</summary>
    public static void Route(ILogger? logger)
    {
        _logger = logger;
        LibBpf.SetPrint(&Print);
    }

    [UnmanagedCallersOnly]
    private static int Print(int level, byte* format, nint arguments)
    {
        try
        {
            var logger = _quiet > 0 ? null : _logger;
            var logLevel = level switch { 0 => LogLevel.Warning, 1 => LogLevel.Information, _ => LogLevel.Trace };
            if (logger is null || !logger.IsEnabled(logLevel)) return 0;
            const int size = 4096;
            var buffer = stackalloc byte[size];
            var written = Libc.VsnPrintf(buffer, size, format, arguments);
            if (written < 0) return 0;
            var text = Marshal.PtrToStringUTF8((nint)buffer, Math.Min(written, size - 1)).TrimEnd('\n');
            if (text.Length > 0) logger.Log(logLevel, "libbpf: {Message}", text);
            return written;
        }
        catch
        {
            return 0; // never let an exception cross back into libbpf
        }
    }
}
