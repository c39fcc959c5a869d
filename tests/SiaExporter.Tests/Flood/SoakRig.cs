using System.Diagnostics;
using System.Globalization;

namespace SiaExporter.Tests.Flood;

/// <summary>
/// The soak's network: a <see cref="TestNetwork"/> with the veth's default offloads (TSO/GSO on:
/// the host's egress reaches the capture as GSO super-packets, which EndToEnd.CaptureTruth expands
/// to wire frames), iperf3 servers on 9984 and 9981 in its namespace, and the daemon's pins in the
/// network's own pin directory.
/// </summary>
internal sealed class SoakNetwork : IDisposable
{
    private readonly List<Process> _servers = [];

    public SoakNetwork()
    {
        Network = TestNetwork.Create(offloads: true);
        try
        {
            foreach (var port in new[] { 9984, 9981 })
                _servers.Add(Shell.Start("ip", ["netns", "exec", Network.Namespace, "iperf3", "-s", "-p", port.ToString(CultureInfo.InvariantCulture)]));
            WaitFor(() => Network.RunInNamespace("ss", "-Hltn") is var listening && listening.Contains(":9981") && listening.Contains(":9984"),
                TimeSpan.FromSeconds(10), "the iperf3 servers in the netns did not listen");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public TestNetwork Network { get; }

    /// <summary>The iperf3 servers' address, in the namespace.</summary>
    public string PeerAddress => Network.ClientV4A.ToString();

    public static void WaitFor(Func<bool> condition, TimeSpan timeout, string failure)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            try
            {
                if (condition()) return;
            }
            catch (Exception e) when (e is InvalidOperationException or System.Net.Http.HttpRequestException or TaskCanceledException)
            {
                // not yet (a command failed, nothing listens yet)
            }
            Thread.Sleep(100);
        }
        throw new TimeoutException(failure);
    }

    public void Dispose()
    {
        foreach (var server in _servers) Shell.Stop(server);
        Network.Dispose(); // the pins too: unpinning a link detaches it (nothing else holds it once the daemon is gone)
    }
}
