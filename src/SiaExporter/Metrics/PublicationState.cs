using SiaExporter.Counters;

namespace SiaExporter.Metrics;

/// <summary>
/// One client with its own series. Values are kept per lane: lane 2·slot is bytes, 2·slot+1 is
/// packets (slot as in <see cref="PortClassSet.Slot"/>).
/// </summary>
internal sealed class PublishedClient
{
    public PublishedClient(ClientAddress address, int lanes)
    {
        Address = address;
        Kernel = new ulong[lanes];
        Published = new ulong[lanes];
        Pending = new ulong[lanes];
    }

    public ClientAddress Address { get; }

    /// <summary>The kernel value last taken into account (0 while the client is absent from the map).</summary>
    public ulong[] Kernel { get; private init; }

    /// <summary>What its series show; started at zero when it was published.</summary>
    public ulong[] Published { get; private init; }

    /// <summary>Growth seen in the client's entry but not yet in the host totals (a read that
    /// caught the client map ahead of the total map); published once the totals catch up.</summary>
    public ulong[] Pending { get; private init; }

    /// <summary>When the client's kernel counters last moved.</summary>
    public DateTimeOffset LastChanged { get; set; }

    /// <summary>Bytes over every slot in the kernel now: its rank.</summary>
    public ulong RankBytes
    {
        get
        {
            ulong sum = 0;
            for (var l = 0; l < Kernel.Length; l += 2) sum += Kernel[l];
            return sum;
        }
    }

    public PublishedClient Clone() => new(Address, 0)
    {
        Kernel = (ulong[])Kernel.Clone(),
        Published = (ulong[])Published.Clone(),
        Pending = (ulong[])Pending.Clone(),
        LastChanged = LastChanged,
    };
}

/// <summary>
/// Everything needed to keep the published counters monotonic: per lane, the host total last
/// read from the kernel and what the host series show, the value of <c>client="other"</c>, and
/// the clients with their own series. Invariant, per lane:
/// <c>Other + Σ Published(client) == HostPublished</c>. Each scrape builds a new instance
/// (<see cref="PublicationEngine.Advance"/>); an instance is never changed once served.
/// </summary>
internal sealed class PublicationState
{
    public PublicationState(MapGeneration generation, string ports, int lanes)
    {
        Generation = generation;
        Ports = ports;
        HostKernel = new ulong[lanes];
        HostPublished = new ulong[lanes];
        Other = new ulong[lanes];
        Clients = new Dictionary<ClientAddress, PublishedClient>();
    }

    public MapGeneration Generation { get; set; }

    /// <summary>The PORTS list the lanes mean (a changed list makes old values meaningless).</summary>
    public string Ports { get; }

    public int Lanes => HostKernel.Length;

    public ulong[] HostKernel { get; private init; }

    public ulong[] HostPublished { get; private init; }

    public ulong[] Other { get; private init; }

    public ulong OverflowKernel { get; set; }

    public ulong OverflowPublished { get; set; }

    public Dictionary<ClientAddress, PublishedClient> Clients { get; private init; }

    /// <summary>True until the first snapshot has been taken into account (nothing published yet).</summary>
    public bool Empty { get; set; } = true;

    public PublicationState Clone()
    {
        var clients = new Dictionary<ClientAddress, PublishedClient>(Clients.Count);
        foreach (var (address, client) in Clients) clients.Add(address, client.Clone());
        return new PublicationState(Generation, Ports, 0)
        {
            HostKernel = (ulong[])HostKernel.Clone(),
            HostPublished = (ulong[])HostPublished.Clone(),
            Other = (ulong[])Other.Clone(),
            OverflowKernel = OverflowKernel,
            OverflowPublished = OverflowPublished,
            Clients = clients,
            Empty = Empty,
        };
    }

    public static int LanesFor(PortClassSet classes) => classes.SlotCount * 2;
}
