using System.Diagnostics;

namespace SiaExporter.Clock;

/// <summary>What <see cref="ClockWatch.Read"/> saw: the wall time, the monotonic time since the
/// watch started, and how far the wall clock stepped since the previous reading (zero when it did not).</summary>
public readonly record struct ClockReading(DateTimeOffset Wall, TimeSpan Elapsed, TimeSpan Step)
{
    public bool Stepped => Step != TimeSpan.Zero;
}

/// <summary>
/// Reads the wall clock (for bucket names) beside the monotonic clock (for everything that measures a
/// duration: idle eviction, retention pacing) of one <see cref="TimeProvider"/>, and detects a step of
/// the wall clock: between two readings it moved more than <see cref="Tolerance"/> away from the
/// monotonic clock (NTP slews by at most 0.5 ms/s, so a slew never looks like a step). Thread-safe.
/// </summary>
public sealed class ClockWatch
{
    /// <summary>Wall and monotonic time may drift apart this much between readings before it counts as a step.</summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(2);

    private readonly TimeProvider _time;
    private readonly long _origin;
    private readonly DateTimeOffset _originWall;
    private readonly Lock _lock = new();
    private DateTimeOffset _lastWall;
    private long _lastTimestamp;

    public ClockWatch(TimeProvider time)
    {
        _time = time;
        _origin = time.GetTimestamp();
        _lastTimestamp = _origin;
        _lastWall = time.GetUtcNow();
        _originWall = _lastWall;
    }

    public TimeProvider Time => _time;

    /// <summary>Monotonic time since this watch started: never jumps with the wall clock.</summary>
    public TimeSpan Elapsed => _time.GetElapsedTime(_origin);

    /// <summary>
    /// The earlier of the wall clock and (the wall time at start + elapsed monotonic time): what
    /// deletes history by age. A forward step of the wall clock does not move it, so a jump of 500 days
    /// deletes nothing; a backward step moves it back, which only keeps rows longer.
    /// </summary>
    public DateTimeOffset Cautious
    {
        get
        {
            var wall = _time.GetUtcNow();
            var measured = _originWall + Elapsed;
            return wall < measured ? wall : measured;
        }
    }

    /// <summary>Reads both clocks; <see cref="ClockReading.Step"/> is wall minus monotonic progress since the last read.</summary>
    public ClockReading Read()
    {
        lock (_lock)
        {
            var timestamp = _time.GetTimestamp();
            var wall = _time.GetUtcNow();
            var monotonic = _time.GetElapsedTime(_lastTimestamp, timestamp);
            var drift = (wall - _lastWall) - monotonic;
            _lastTimestamp = timestamp;
            _lastWall = wall;
            var step = drift.Duration() > Tolerance ? drift : TimeSpan.Zero;
            return new ClockReading(wall, _time.GetElapsedTime(_origin, timestamp), step);
        }
    }

    /// <summary>"back 15m", "forward 2h": for the log line.</summary>
    public static string Describe(TimeSpan step) =>
        (step < TimeSpan.Zero ? "back " : "forward ") + Hosting.DurationText.Format(step.Duration());
}
