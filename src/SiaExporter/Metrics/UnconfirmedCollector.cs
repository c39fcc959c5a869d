using Prometheus;
using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// sia_exporter_unconfirmed_*: what sources that never proved they are real (bpf/clients.h) cost
/// the host. A flood of spoofed sources shows as a high rate of evicted frames and a full table;
/// its traffic is in the host totals and client="other", never in a client of its own.
/// The evicted counters follow the kernel's aggregate, which only grows within one map generation;
/// when the maps are recreated they carry on from their published value. Published from the
/// snapshot <see cref="TrafficCollector"/> takes, so one scrape reads the kernel once.
/// </summary>
internal sealed class UnconfirmedCollector
{
    private readonly Gauge _sources;
    private readonly Counter _evictedPackets;
    private readonly Counter _evictedBytes;
    private MapGeneration? _generation;
    private Traffic _kernel;
    private Traffic _published;

    /// <summary>Creates the unconfirmed-source metrics on <paramref name="registry"/> and updates them
    /// with every snapshot <paramref name="traffic"/> publishes.</summary>
    public static void Register(CollectorRegistry registry, TrafficCollector traffic)
    {
        var collector = new UnconfirmedCollector(Prometheus.Metrics.WithCustomRegistry(registry));
        traffic.Published += collector.Publish;
    }

    private UnconfirmedCollector(IMetricFactory f)
    {
        _sources = f.CreateGauge("sia_exporter_unconfirmed_sources",
            "Slots of the kernel's pending table (per CPU) held now by sources that have not proved they are real " +
            "(no TCP handshake or QUIC 1-RTT packet from the host yet); their traffic is in client=\"other\".");
        _evictedPackets = f.CreateCounter("sia_exporter_unconfirmed_evicted_packets_total",
            "Frames of unconfirmed sources whose pending slot another source took (the table overflowed, e.g. a spoofed flood); " +
            "still counted in the host totals and client=\"other\".");
        _evictedBytes = f.CreateCounter("sia_exporter_unconfirmed_evicted_bytes_total",
            "Ethernet frame bytes of the frames in sia_exporter_unconfirmed_evicted_packets_total.");
    }

    private void Publish(CounterSnapshot snapshot)
    {
        var evicted = snapshot.Unconfirmed.EvictedSum;
        if (_generation != snapshot.Generation)
        {
            _generation = snapshot.Generation;
            _kernel = default;
        }
        if (evicted.Packets >= _kernel.Packets && evicted.Bytes >= _kernel.Bytes)
        {
            _published += new Traffic(evicted.Bytes - _kernel.Bytes, evicted.Packets - _kernel.Packets);
            _kernel = evicted;
        }
        _sources.Set(snapshot.Unconfirmed.Sources);
        _evictedPackets.IncTo(_published.Packets);
        _evictedBytes.IncTo(_published.Bytes);
    }
}
