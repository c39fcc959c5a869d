using Microsoft.Extensions.Logging;
using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// One published set of series — the clients, or the subnets — with its own
/// <see cref="PublicationState"/>: restored from its state file at start, advanced by the
/// <see cref="PublicationEngine"/> with each new snapshot, and handed to its
/// <see cref="PublicationStateSaver"/> when the set changes. While a save fails, nothing joins or
/// leaves the set. Not thread-safe: the traffic collector calls it under its lock.
/// </summary>
internal sealed class Publication
{
    private readonly string _what;
    private readonly bool _ofSubnets;
    private readonly int _top;
    private readonly TimeSpan _idleTimeout;
    private readonly PublicationStateSaver _saver;
    private readonly ILogger _logger;
    private readonly ClientActivity _activity = new();
    private PublicationState? _state;
    private bool _restored; // _state came from the file and is not yet checked against a snapshot

    /// <param name="what">"client" or "subnet", for the log.</param>
    /// <param name="ofSubnets">Entries are subnets: a drop is a lost member, not a restart
    /// (<see cref="PublicationEngine.Advance"/>), and every change is saved, not only a change of the
    /// set: a subnet's value is not recomputable from the kernel after a restart, since members
    /// evicted before it are no longer there.</param>
    public Publication(string what, PortClassSet ports, int top, TimeSpan idleTimeout, PublicationStateSaver saver, ILogger logger,
        bool ofSubnets = false)
    {
        _what = what;
        _ofSubnets = ofSubnets;
        _top = top;
        _idleTimeout = idleTimeout;
        _saver = saver;
        _logger = logger;
        var saved = PublicationStateFile.TryRead(saver.Path, out var problem);
        if (problem is not null)
            _logger.LogWarning("Ignoring the metrics state in {Path} ({Problem}); {What} series start afresh", saver.Path, problem, _what);
        if (saved is not null && saved.Ports == ports.ToString() && saved.Lanes == PublicationState.LanesFor(ports))
        {
            _state = saved;
            _restored = true;
        }
    }

    public PublicationStateSaver Saver => _saver;

    /// <summary>The state after <paramref name="snapshot"/> (see <see cref="PublicationEngine.Advance"/>).</summary>
    public PublicationState Advance(CounterSnapshot snapshot)
    {
        var lanes = PublicationState.LanesFor(snapshot.Classes);
        var ports = snapshot.Classes.ToString();
        if (_state is not null && (_state.Lanes != lanes || _state.Ports != ports))
            throw new InvalidOperationException($"the counters' port classes ({ports}) differ from the published ones ({_state.Ports})");
        if (_state is not null && _restored && _state.Generation != snapshot.Generation)
        {
            _logger.LogInformation("The counter maps were recreated ({Old} -> {New}): {What} series start afresh", _state.Generation, snapshot.Generation, _what);
            _state = null;
        }
        // After a restore the growth since the persisted state spans scrapes whose `other` the
        // previous process already served: nothing may take its whole value back from it then.
        var growthIsSinceLastServed = !_restored;
        _restored = false;
        _state ??= new PublicationState(snapshot.Generation, ports, lanes);

        // Until the last change of the published set is on disk, the set stays as it is: what is
        // served must stay restorable from what was saved.
        var saving = _saver.LastSaveFailed;
        _activity.Observe(snapshot);
        var (next, structural) = PublicationEngine.Advance(_state, snapshot, _activity, _top, _idleTimeout,
            allowStructural: !saving, growthIsSinceLastServed, entriesRestartOnDrop: !_ofSubnets);
        if (structural || saving || _ofSubnets) _saver.Offer(next);
        _state = next;
        return next;
    }
}
