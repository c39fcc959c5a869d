namespace SiaExporter.Tests.Clock;

/// <summary>A clock moved by hand whose wall time can also step on its own, as NTP or an operator
/// does: <see cref="Advance"/> moves both the monotonic and the wall clock, <see cref="Step"/> only the wall.</summary>
internal sealed class SteppingTime(DateTimeOffset start) : TimeProvider
{
    private readonly Lock _gate = new();
    private DateTimeOffset _wall = start;
    private long _monotonicTicks;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate) return _wall;
    }

    public override long GetTimestamp()
    {
        lock (_gate) return _monotonicTicks;
    }

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by)
    {
        lock (_gate)
        {
            _wall += by;
            _monotonicTicks += by.Ticks;
        }
    }

    public void Step(TimeSpan by)
    {
        lock (_gate) _wall += by;
    }
}
