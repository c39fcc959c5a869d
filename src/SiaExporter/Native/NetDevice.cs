namespace SiaExporter.Native;

/// <summary>
/// What a network interface is, asked with ioctls on a datagram socket in this thread's network
/// namespace (sysfs shows the namespace that mounted it): its link type (SIOCGIFHWADDR), its MTU
/// (SIOCGIFMTU) and its VLAN offload flags (ETHTOOL_GFLAGS). Null when the interface does not answer.
/// </summary>
internal static unsafe class NetDevice
{
    private const ulong SiocGetHardwareAddress = 0x8927;
    private const ulong SiocGetMtu = 0x8921;
    private const ulong SiocEthtool = 0x8946;
    private const uint EthtoolGetFlags = 0x25;
    private const uint EthFlagTxVlan = 1 << 7;
    private const uint EthFlagRxVlan = 1 << 8;
    /// <summary>struct ifreq: name[16], then a 24-byte union.</summary>
    private const int IfReqSize = 40;

    /// <summary>The ARPHRD_* link type (sa_family of the hardware address).</summary>
    public static ushort? LinkType(string interfaceName)
    {
        var request = stackalloc byte[IfReqSize];
        return Ask(interfaceName, SiocGetHardwareAddress, request) ? *(ushort*)(request + 16) : null;
    }

    public static int? Mtu(string interfaceName)
    {
        var request = stackalloc byte[IfReqSize];
        return Ask(interfaceName, SiocGetMtu, request) ? *(int*)(request + 16) : null;
    }

    /// <summary>rx-vlan-offload (the NIC strips tags on receive) and tx-vlan-offload (it inserts them on send).</summary>
    public static (bool Rx, bool Tx)? VlanOffload(string interfaceName)
    {
        var value = stackalloc uint[2]; // struct ethtool_value { cmd, data }
        value[0] = EthtoolGetFlags;
        value[1] = 0;
        var request = stackalloc byte[IfReqSize];
        *(uint**)(request + 16) = value; // the union part; Ask writes only the name part
        if (!Ask(interfaceName, SiocEthtool, request)) return null;
        return ((value[1] & EthFlagRxVlan) != 0, (value[1] & EthFlagTxVlan) != 0);
    }

    /// <summary>One ioctl with <paramref name="request"/> (an ifreq whose union part the caller
    /// filled) named <paramref name="interfaceName"/>; false when it fails.</summary>
    private static bool Ask(string interfaceName, ulong command, byte* request)
    {
        var name = System.Text.Encoding.UTF8.GetBytes(interfaceName);
        if (name.Length > 15) return false;
        new Span<byte>(request, 16).Clear();
        name.CopyTo(new Span<byte>(request, 16));
        using var socket = Libc.InterfaceQuerySocket();
        return socket is not null && Libc.Ioctl(socket, command, request) == 0;
    }
}
