/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The one place where the eBPF program and the daemon agree.
 *
 * Every `#define COLLECTOR_*` below is turned into a C# constant at build time
 * (src/SiaExporter/SiaExporter.csproj, target GenerateBpfConstants), and every
 * struct is mirrored in src/SiaExporter/Bpf/KernelTypes.cs, with a test that
 * checks sizes and offsets against the BTF of the built object.
 *
 * Keep this header free of kernel headers so the C# generator can read it.
 */
#ifndef COLLECTOR_H
#define COLLECTOR_H

/* Port classes: PORTS lists up to this many port/protocol pairs. */
#define COLLECTOR_MAX_CLASSES 8
/* Directions, as seen by the host. */
#define COLLECTOR_DIR_DOWN 0 /* received by the host: client = source address */
#define COLLECTOR_DIR_UP 1   /* sent by the host: client = destination address */
#define COLLECTOR_DIRECTIONS 2
/* Counter slots in a value: slot = class * COLLECTOR_DIRECTIONS + direction. */
#define COLLECTOR_MAX_SLOTS 16
/* Slots in the default value (3 classes: 9981/tcp, 9984/tcp, 9984/udp). */
#define COLLECTOR_DEFAULT_SLOTS 6

/* Row of the port table: 0 for TCP, 1 for UDP. */
#define COLLECTOR_PROTO_ROW_TCP 0
#define COLLECTOR_PROTO_ROW_UDP 1
#define COLLECTOR_PROTO_ROWS 2
#define COLLECTOR_PORTS_PER_ROW 65536
/* A port-table entry: 0 = not counted, otherwise class index + 1. */
#define COLLECTOR_NO_CLASS 0

/* Entries of the `aggregates` per-CPU array. */
#define COLLECTOR_AGG_TOTAL 0    /* every counted frame: the exact host totals */
#define COLLECTOR_AGG_OVERFLOW 1 /* frames whose client found the clients map full */
#define COLLECTOR_AGG_UNCONFIRMED 2 /* frames of sources dropped from `pending` unconfirmed */
#define COLLECTOR_AGG_ENTRIES 3

#define COLLECTOR_DEFAULT_MAX_CLIENTS 16384
/* In-flight fragmented datagrams whose class is remembered (LRU). */
#define COLLECTOR_FRAG_ENTRIES 8192
/* IPv6 extension headers walked before giving up on a packet. */
#define COLLECTOR_MAX_IPV6_EXT_HEADERS 8

/*
 * Unconfirmed sources (bpf/clients.h). A remote address gets a `clients` entry only
 * once the host's egress shows it is real: a TCP segment from the host with ACK and
 * neither SYN nor RST (after a handshake, either side opening), or, for every UDP
 * class, a QUIC short-header packet (first byte's top bit 0) from the host. Until
 * then its frames count in `pending`: per CPU, a direct-mapped table of this many
 * entries (a power of two), indexed by a hash of the address.
 */
#define COLLECTOR_PENDING_ENTRIES 4096
/* pending_head.state */
#define COLLECTOR_PENDING_EMPTY 0     /* free; counters are stale and ignored */
#define COLLECTOR_PENDING_USED 1      /* an unconfirmed address */
#define COLLECTOR_PENDING_CONFIRMED 2 /* its address was confirmed on another CPU */
/* Bits of the `confirmed` prefilter (a power of two): a clear bit for an address's hash
 * means it has no `clients` entry, so the lookup is skipped (never cleared; unpinned, so a
 * restart starts it empty and the host's next packet to each client sets its bit again). */
#define COLLECTOR_CONFIRMED_BITS 524288
/* CPUs whose pending entries a confirmation marks (bounds a loop). */
#define COLLECTOR_MAX_CPUS 1024

/* Map and program names (C strings; the C# generator keeps them as strings). */
#define COLLECTOR_MAP_CLIENTS "clients"
#define COLLECTOR_MAP_AGGREGATES "aggregates"
#define COLLECTOR_MAP_CLASSES "class_info"
#define COLLECTOR_MAP_PORTS "port_classes"
#define COLLECTOR_MAP_FRAGS "frag_classes"
#define COLLECTOR_MAP_PENDING "pending"
#define COLLECTOR_MAP_CONFIRMED "confirmed"
#define COLLECTOR_PROG_XDP "xdp_ingress"
#define COLLECTOR_PROG_TC_EGRESS "tc_egress"
#define COLLECTOR_PROG_TC_INGRESS "tc_ingress"
/* The tc programs for links without a link header (tun, WireGuard, PPP, raw IP). */
#define COLLECTOR_PROG_TC_EGRESS_L3 "tc_egress_l3"
#define COLLECTOR_PROG_TC_INGRESS_L3 "tc_ingress_l3"
/* xdp_ingress, device-bound: also counts the VLAN tag the NIC stripped (rx-vlan-offload). */
#define COLLECTOR_PROG_XDP_RX_VLAN "xdp_rx_vlan"
/* Qdisc drops of counted up traffic (bpf/qdiscdrops.h): the program, its per-slot counters
 * (one per-CPU entry, n_slots counters) and the interfaces it watches. */
#define COLLECTOR_PROG_QDISC_DROP "qdisc_drop"
#define COLLECTOR_MAP_QDISC_DROPS "qdisc_drops"
#define COLLECTOR_MAP_COUNTED_IFINDEX "counted_ifindex"
#define COLLECTOR_MAX_INTERFACES 64

/* Key of `clients`: the remote address, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d). */
struct client_key {
	__u8 addr[16];
};

/* One slot of a per-CPU value. `clients` and `aggregates` values are arrays of
 * n_slots of these (value size = n_slots * 16, chosen at load time). */
struct counter {
	__u64 bytes;
	__u64 packets;
};

/* `pending` value: this head, then n_slots counters (value size 24 + n_slots * 16,
 * chosen at load time like `clients`). */
struct pending_head {
	__u8 addr[16]; /* as client_key */
	__u32 state;   /* COLLECTOR_PENDING_* */
	__u32 reserved;
};

/* `class_info` array entry i describes class i (pinned beside the counters so a
 * restart knows what each slot means). port in host byte order; proto is the IP
 * protocol number (6 TCP, 17 UDP); 0/0 = unused. */
struct class_info {
	__u16 port;
	__u8 proto;
	__u8 reserved;
};

/* `port_classes` has one entry: the class of every port, per protocol row. */
struct port_table {
	__u8 class_of[COLLECTOR_PROTO_ROWS][COLLECTOR_PORTS_PER_ROW];
};

/* `frag_classes` key: one fragmented datagram (addresses as in client_key). */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

/* `frag_classes` value: the class (+1) decided by the first fragment. */
struct frag_value {
	__u32 class_plus_one;
};

/* Read-only configuration in .rodata, written by the loader before load. The
 * verifier treats it as constant, which bounds the slot index against the value
 * size. It must stay the only variable in .rodata (the loader writes offset 0). */
struct collector_config {
	__u32 n_slots;
};

#endif /* COLLECTOR_H */
