namespace SiaExporter.Counters;

/// <summary>Direction as seen by the host. Values match COLLECTOR_DIR_* in bpf/collector.h.</summary>
public enum Direction
{
    /// <summary>Received by the host (ingress); the client is the source address.</summary>
    Down = 0,
    /// <summary>Sent by the host (egress); the client is the destination address.</summary>
    Up = 1,
}

public static class DirectionNames
{
    public static string Label(this Direction direction) => direction == Direction.Up ? "up" : "down";
}
