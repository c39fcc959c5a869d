using Prometheus;
using SiaExporter.Hostd;
using SiaExporter.Web;

namespace SiaExporter.Metrics;

/// <summary>
/// hostd's syncer peers (HOSTD_API_URL) as <c>sia_client_info{client, role="syncer_peer", version} 1</c>,
/// to join on the traffic series' client label, and whether hostd's API could be read. The client
/// label is written as on sia_traffic_bytes_total (ANONYMIZE applied). A peer listed by host name
/// has no client label and is left out. Read at scrape time from <see cref="HostdPeersService"/>.
/// </summary>
internal sealed class HostdCollector
{
    private const string Role = "syncer_peer";

    private readonly Func<HostdPeersSnapshot> _peers;
    private readonly ClientPrefix _anonymize;
    private readonly Gauge _info;
    private readonly Gauge _up;
    private readonly Lock _gate = new();
    private HashSet<(string Client, string Version)> _shown = [];

    public static void Register(CollectorRegistry registry, Func<HostdPeersSnapshot> peers, ClientPrefix anonymize)
    {
        var collector = new HostdCollector(registry, peers, anonymize);
        registry.AddBeforeCollectCallback(collector.Update);
    }

    private HostdCollector(CollectorRegistry registry, Func<HostdPeersSnapshot> peers, ClientPrefix anonymize)
    {
        _peers = peers;
        _anonymize = anonymize;
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        _info = f.CreateGauge("sia_client_info",
            "1 for each client hostd lists as a connected syncer peer (role=\"syncer_peer\", with the version it reports). " +
            "hostd lists a peer's dial-back address: for an inbound peer its IP with the port it advertises, so join on client only.",
            "client", "role", "version");
        _up = f.CreateGauge("sia_exporter_hostd_api_up", "1 when the last read of hostd's API (HOSTD_API_URL /syncer/peers) worked, else 0.");
    }

    private void Update()
    {
        var snapshot = _peers();
        var now = new HashSet<(string, string)>();
        foreach (var peer in snapshot.Peers)
            if (peer.Client is { } client)
                now.Add((_anonymize.IsNone ? client.ToString() : _anonymize.Mask(client).ToString(), peer.Version));
        lock (_gate)
        {
            foreach (var gone in _shown)
                if (!now.Contains(gone)) _info.RemoveLabelled(gone.Client, Role, gone.Version);
            foreach (var (client, version) in now) _info.WithLabels(client, Role, version).Set(1);
            _shown = now;
        }
        _up.Set(snapshot.Reachable ? 1 : 0);
    }
}
