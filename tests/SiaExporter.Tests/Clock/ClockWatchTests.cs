using SiaExporter.Clock;
using Xunit;

namespace SiaExporter.Tests.Clock;

public sealed class ClockWatchTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 30, 23, 50, 0, TimeSpan.Zero);

    [Fact]
    public void Steps_back_and_forward_are_seen_with_their_size_and_elapsed_time_ignores_them()
    {
        var time = new SteppingTime(Start);
        var watch = new ClockWatch(time);

        time.Advance(TimeSpan.FromSeconds(60));
        var steady = watch.Read();
        Assert.False(steady.Stepped);
        Assert.Equal(Start.AddSeconds(60), steady.Wall);

        time.Advance(TimeSpan.FromSeconds(60));
        time.Step(TimeSpan.FromMinutes(-15));
        var back = watch.Read();
        Assert.Equal(TimeSpan.FromMinutes(-15), back.Step);
        Assert.Equal(TimeSpan.FromSeconds(120), back.Elapsed);
        Assert.Equal("back 15m", ClockWatch.Describe(back.Step));

        time.Advance(TimeSpan.FromSeconds(60));
        time.Step(TimeSpan.FromHours(2));
        var forward = watch.Read();
        Assert.Equal(TimeSpan.FromHours(2), forward.Step);
        Assert.Equal("forward 2h", ClockWatch.Describe(forward.Step));

        time.Step(TimeSpan.FromDays(500));
        var far = watch.Read();
        Assert.Equal(TimeSpan.FromDays(500), far.Step);
        Assert.Equal(TimeSpan.FromSeconds(180), far.Elapsed);
        Assert.Equal(TimeSpan.FromSeconds(180), watch.Elapsed);

        time.Advance(TimeSpan.FromSeconds(60));
        Assert.False(watch.Read().Stepped); // a step is reported once
    }

    [Fact]
    public void A_slew_within_the_tolerance_is_not_a_step()
    {
        var time = new SteppingTime(Start);
        var watch = new ClockWatch(time);
        time.Advance(TimeSpan.FromMinutes(1));
        time.Step(TimeSpan.FromMilliseconds(30)); // NTP slews 0.5 ms/s at most: 30 ms a minute
        Assert.False(watch.Read().Stepped);
        time.Advance(TimeSpan.FromMinutes(1));
        time.Step(ClockWatch.Tolerance + TimeSpan.FromMilliseconds(1));
        Assert.True(watch.Read().Stepped);
    }
}
