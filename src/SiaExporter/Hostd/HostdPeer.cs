using System.Net;
using SiaExporter.Counters;

namespace SiaExporter.Hostd;

/// <summary>
/// One connected syncer peer as hostd lists it on GET /api/syncer/peers (api.Peer in hostd's
/// source: address, inbound, version, …).
/// </summary>
/// <param name="Address">host:port as hostd reports it: the peer's dial-back address. For an
/// inbound peer the host is the connection's source address and the port the one the peer
/// advertised (not its source port); for an outbound peer it is what hostd dialled, which may be a
/// host name.</param>
public sealed record HostdPeer(string Address, bool Inbound, string Version)
{
    /// <summary>The peer's IP as a client of the counters, or null when <see cref="Address"/> names a host.</summary>
    public ClientAddress? Client
    {
        get
        {
            var host = Host(Address);
            return IPAddress.TryParse(host, out var ip) ? ClientAddress.FromIPAddress(ip) : null;
        }
    }

    /// <summary>The host part of host:port, [v6]:port, or a bare host.</summary>
    public static string Host(string address)
    {
        if (address.StartsWith('['))
        {
            var close = address.IndexOf(']');
            return close > 0 ? address[1..close] : address;
        }
        var colon = address.LastIndexOf(':');
        // One colon: host:port. More: a bare IPv6 address without brackets.
        return colon > 0 && address.IndexOf(':') == colon ? address[..colon] : address;
    }
}
