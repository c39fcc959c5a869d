using SiaExporter.Counters;

namespace SiaExporter.Tests.EndToEnd;

/// <summary>
/// One counter of the product, as the tests name it: the client (the namespace-side address), the
/// port class (for traffic that must not be counted: the host's port, e.g. 8080/tcp) and the
/// direction as seen by the host.
/// </summary>
public readonly record struct FlowKey(ClientAddress Client, PortClass Class, Direction Direction)
{
    public override string ToString() => $"{Client} {Class} {Direction.Label()}";
}
