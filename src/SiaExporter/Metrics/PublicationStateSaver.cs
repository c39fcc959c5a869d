using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SiaExporter.Metrics;

/// <summary>
/// Saves the publication state (<see cref="PublicationStateFile"/>) off the scrape path: a scrape
/// that changes the set of published clients hands the new state to <see cref="Offer"/> and goes
/// on; this service writes the newest offered state as soon as it can, and once more at stop.
/// <para>A daemon killed between a scrape and the save that follows it (milliseconds) restarts
/// from the previous state; a stop through the host (SIGTERM) always saves.</para>
/// </summary>
public sealed class PublicationStateSaver(string path, ILogger logger) : BackgroundService
{
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Lock _pendingGate = new();
    private readonly Lock _writeGate = new();
    private PublicationState? _pending;
    private long _failures;
    private volatile bool _failing;

    /// <summary>The state file.</summary>
    public string Path { get; } = path;

    /// <summary>Saves that failed so far (sia_exporter_errors_total{operation="state_write"}).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>True from a failed save until one works again.</summary>
    public bool LastSaveFailed => _failing;

    /// <summary>Remembers <paramref name="state"/> as the one to save (a newer one replaces an
    /// unsaved older one) and wakes the writer. Never blocks on the disk.</summary>
    internal void Offer(PublicationState state)
    {
        lock (_pendingGate) _pending = state;
        _wake.Writer.TryWrite(true);
    }

    /// <summary>Writes the newest offered state now, if there is one. True when nothing is left unsaved.</summary>
    internal bool SavePending()
    {
        lock (_writeGate)
        {
            PublicationState? state;
            lock (_pendingGate)
            {
                state = _pending;
                _pending = null;
            }
            if (state is null) return true;
            try
            {
                PublicationStateFile.Write(Path, state);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                lock (_pendingGate) _pending ??= state; // retried with the next offer, unless a newer one came
                Interlocked.Increment(ref _failures);
                if (!_failing)
                    logger.LogWarning("Saving the metrics state to {Path} failed ({Error}); no client joins or leaves /metrics until it works", Path, e.Message);
                _failing = true;
                return false;
            }
            if (_failing) logger.LogInformation("Saved the metrics state to {Path} again; clients join and leave /metrics again", Path);
            _failing = false;
            return true;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _wake.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                _wake.Reader.TryRead(out _);
                SavePending();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops the writer, then saves what the last scrapes left unsaved.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        SavePending();
    }
}
