/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * What a shaping qdisc dropped of the traffic tc_egress counted.
 *
 * tc_egress runs before the qdisc: a frame a tbf, fq_codel or cake then drops
 * has been counted as "up" although it never left (and TCP sends it again,
 * counted again). qdisc_drop, on the kfree_skb tracepoint, sees every dropped
 * skb; it keeps those dropped by a qdisc (the QDISC and qdisc-specific drop
 * reasons) on an interface the daemon counts (`counted_ifindex`), classifies
 * them as tc_egress did (the host's port, else the remote port) and adds their
 * bytes and packets per slot to `qdisc_drops` (the self-metric), and takes
 * them off the entry the frame was counted on (uncount_dropped), so `up`,
 * per client and in the host totals, is what left the host.
 *
 * A tracing program cannot use direct packet access: the IP and transport
 * headers are copied with bpf_probe_read_kernel from skb->head from the offset
 * the stack set (network_header), so this works on every
 * link type. The bytes are the qdisc's own length (qdisc_skb_cb pkt_len, the
 * wire_len tc_egress counted) plus 4 per segment for an offloaded VLAN tag.
 * IPv6 extension headers are walked as the counting programs walk them, and a
 * later fragment (v4 or v6) takes its first fragment's class from frag_classes.
 *
 * Taking a frame off: the counters are per-CPU u64 and user space sums them,
 * so adding -bytes on the dropping CPU is exact modulo 2^64 even when another
 * CPU counted the frame; one CPU's value may wrap "below zero", never the sum
 * once both are in. The sum can still dip below what a read already showed
 * (counted, shown, then dropped): user space holds every value at the highest
 * it showed (PendingMerge), so /metrics stays monotonic and the dip is absorbed
 * by the next traffic. Drops happen with bottom halves off (qdisc enqueue and
 * dequeue), so no XDP or tc program interleaves on this CPU's counters.
 *
 * Included at the end of collector.bpf.c (maps, CONFIG, add(), put_addr).
 */
#ifndef COLLECTOR_QDISCDROPS_H
#define COLLECTOR_QDISCDROPS_H

#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* The kernel types read here, by name through CO-RE (only the fields used). */
struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

struct sk_buff {
	unsigned char *head;
	unsigned int end;
	__u16 network_header;
	__be16 vlan_proto;
	char cb[48];
	struct net_device *dev;
} __attribute__((preserve_access_index));

struct skb_shared_info {
	unsigned short gso_segs;
} __attribute__((preserve_access_index));

/* Values come from the running kernel (bpf_core_enum_value); these are placeholders. */
enum skb_drop_reason {
	SKB_DROP_REASON_QDISC_DROP,
	SKB_DROP_REASON_QDISC_OVERLIMIT,
	SKB_DROP_REASON_QDISC_CONGESTED,
	SKB_DROP_REASON_CAKE_FLOOD,
	SKB_DROP_REASON_FQ_BAND_LIMIT,
	SKB_DROP_REASON_FQ_HORIZON_LIMIT,
	SKB_DROP_REASON_FQ_FLOW_LIMIT,
	SKB_DROP_REASON_DUALPI2_STEP_DROP,
};

/* The interfaces the daemon counts: key ifindex, value 1 (written by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, COLLECTOR_MAX_INTERFACES);
} counted_ifindex SEC(".maps");

/* One entry, n_slots counters (resized by the loader like `aggregates`). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct counter) * COLLECTOR_DEFAULT_SLOTS);
	__uint(max_entries, 1);
} qdisc_drops SEC(".maps");

/* Most reasons exist only from 6.16 on (DUALPI2_STEP_DROP from 6.17); a missing one never matches. */
#define QDISC_REASON(r) \
	(bpf_core_enum_value_exists(enum skb_drop_reason, r) && reason == bpf_core_enum_value(enum skb_drop_reason, r))

static __always_inline int is_qdisc_drop(__u32 reason)
{
	return QDISC_REASON(SKB_DROP_REASON_QDISC_DROP) || QDISC_REASON(SKB_DROP_REASON_QDISC_OVERLIMIT) ||
	       QDISC_REASON(SKB_DROP_REASON_QDISC_CONGESTED) || QDISC_REASON(SKB_DROP_REASON_CAKE_FLOOD) ||
	       QDISC_REASON(SKB_DROP_REASON_FQ_BAND_LIMIT) || QDISC_REASON(SKB_DROP_REASON_FQ_HORIZON_LIMIT) ||
	       QDISC_REASON(SKB_DROP_REASON_FQ_FLOW_LIMIT) || QDISC_REASON(SKB_DROP_REASON_DUALPI2_STEP_DROP);
}

/* What qdisc_drop needs of a sent packet: its remote address and whether tc_egress took it as a confirmation. */
struct sent {
	struct client_key key;
	int confirming;
};

/* Would tc_egress have confirmed the destination with this packet? (clients.h, confirms) */
static __always_inline int sent_confirms(unsigned char *head, __u16 l4_off, __u32 row)
{
	__u8 b;

	if (row == COLLECTOR_PROTO_ROW_TCP)
		return !bpf_probe_read_kernel(&b, 1, head + l4_off + 13) && (b & (TCP_FLAG_SYN | TCP_FLAG_RST)) == 0 &&
		       (b & TCP_FLAG_ACK);
	return !bpf_probe_read_kernel(&b, 1, head + l4_off + sizeof(struct udphdr)) && (b & QUIC_LONG_HEADER) == 0;
}

/*
 * The class (+1) of a sent packet, as tc_egress decides it; COLLECTOR_NO_CLASS if none.
 * Fills *out with its destination (the client) and whether it confirms it.
 */
static __always_inline __u32 class_of_sent(unsigned char *head, __u16 nh, struct sent *out)
{
	__u8 first, l4proto;
	__u16 l4_off, frag_off = 0;
	__be16 ports[2];
	__u32 zero = 0, cls, row;
	struct port_table *pt;
	struct iphdr ip;
	struct ipv6hdr ip6;
	struct frag_key fk = {};

	if (bpf_probe_read_kernel(&first, 1, head + nh))
		return COLLECTOR_NO_CLASS;
	if (first >> 4 == 4) {
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return COLLECTOR_NO_CLASS;
		l4proto = ip.protocol;
		l4_off = nh + ip.ihl * 4;
		frag_off = bpf_ntohs(ip.frag_off);
		put_addr((__u32 *)out->key.addr, &ip.daddr, 0);
		out->confirming = 0;
		if (frag_off & IPV4_OFFSET) { /* a later fragment: the first one's class */
			struct frag_value *fv;

			put_addr((__u32 *)fk.saddr, &ip.saddr, 0);
			put_addr((__u32 *)fk.daddr, &ip.daddr, 0);
			fk.id = bpf_ntohs(ip.id);
			fk.proto = l4proto;
			fv = bpf_map_lookup_elem(&frag_classes, &fk);
			return fv ? fv->class_plus_one : COLLECTOR_NO_CLASS;
		}
	} else if (first >> 4 == 6) {
		__u8 h[8];

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return COLLECTOR_NO_CLASS;
		put_addr((__u32 *)out->key.addr, &ip6.daddr, 1);
		out->confirming = 0;
		l4proto = ip6.nexthdr;
		l4_off = nh + sizeof(ip6);
		/* Extension headers, walked as parse_ipv6_ext walks them (same bound). */
		for (int i = 0; i < COLLECTOR_MAX_IPV6_EXT_HEADERS; i++) {
			if (!is_ipv6_ext(l4proto))
				break;
			if (bpf_probe_read_kernel(h, sizeof(h), head + l4_off))
				return COLLECTOR_NO_CLASS;
			if (l4proto == NEXTHDR_FRAGMENT) {
				if (bpf_ntohs(*(__be16 *)(h + 2)) & IPV6_FRAG_OFFSET) {
					/* a later fragment: the first one's class */
					struct frag_value *fv;

					put_addr((__u32 *)fk.saddr, &ip6.saddr, 1);
					put_addr((__u32 *)fk.daddr, &ip6.daddr, 1);
					fk.id = bpf_ntohl(*(__be32 *)(h + 4));
					fk.proto = h[0];
					fv = bpf_map_lookup_elem(&frag_classes, &fk);
					return fv ? fv->class_plus_one : COLLECTOR_NO_CLASS;
				}
				l4_off += 8;
			} else if (l4proto == NEXTHDR_AUTH) {
				l4_off += ((__u16)h[1] + 2) * 4;
			} else {
				l4_off += ((__u16)h[1] + 1) * 8;
			}
			l4proto = h[0];
		}
	} else {
		return COLLECTOR_NO_CLASS;
	}
	if (l4proto == IPPROTO_TCP)
		row = COLLECTOR_PROTO_ROW_TCP;
	else if (l4proto == IPPROTO_UDP)
		row = COLLECTOR_PROTO_ROW_UDP;
	else
		return COLLECTOR_NO_CLASS;
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4_off))
		return COLLECTOR_NO_CLASS;
	pt = bpf_map_lookup_elem(&port_classes, &zero);
	if (!pt)
		return COLLECTOR_NO_CLASS;
	row <<= 16;
	/* sent by the host: its port is the source */
	cls = pt->class_of[0][row | bpf_ntohs(ports[0])];
	if (cls == COLLECTOR_NO_CLASS)
		cls = pt->class_of[0][row | bpf_ntohs(ports[1])];
	if (cls != COLLECTOR_NO_CLASS)
		out->confirming = sent_confirms(head, l4_off, row >> 16);
	return cls;
}

/*
 * Takes a dropped frame off the entry count() put it on: the client's entry if it has one,
 * else this CPU's pending slot if that still holds the address, else the aggregate its
 * frames went to (overflow for a confirming frame that found `clients` full, unconfirmed for
 * the rest), and off the host totals. A pending frame counted on another CPU whose address
 * is confirmed later is the one case taken off the wrong entry: unconfirmed, not the client
 * (a shaper-dropped handshake packet of a client, counted and dropped on different CPUs).
 */
static __always_inline void uncount_dropped(struct sent *s, __u32 slot, __u64 bytes, __u64 packets)
{
	__u32 hash = addr_hash(&s->key), idx = pending_index(hash), agg;
	__u64 minus_bytes = -bytes, minus_packets = -packets;
	struct pending_entry *e;
	struct counter *v = 0;

	if (maybe_confirmed(hash))
		v = bpf_map_lookup_elem(&clients, &s->key);
	if (!v) {
		e = bpf_map_lookup_elem(&pending, &idx);
		if (e && e->head.state != COLLECTOR_PENDING_EMPTY && same_addr(&e->head, &s->key))
			v = e->c;
	}
	if (!v) {
		agg = s->confirming ? COLLECTOR_AGG_OVERFLOW : COLLECTOR_AGG_UNCONFIRMED;
		v = bpf_map_lookup_elem(&aggregates, &agg);
	}
	if (v)
		add(v, slot, minus_bytes, minus_packets);
	agg = COLLECTOR_AGG_TOTAL;
	v = bpf_map_lookup_elem(&aggregates, &agg);
	if (v)
		add(v, slot, minus_bytes, minus_packets);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(qdisc_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct skb_shared_info *shinfo;
	unsigned char *head;
	__u32 ifindex, cls, slot, zero = 0, pkt_len;
	__u64 packets, bytes;
	struct counter *v;
	struct sent sent = {};

	if (!is_qdisc_drop(reason))
		return 0;
	ifindex = BPF_CORE_READ(skb, dev, ifindex);
	if (!bpf_map_lookup_elem(&counted_ifindex, &ifindex))
		return 0;
	head = BPF_CORE_READ(skb, head);
	cls = class_of_sent(head, BPF_CORE_READ(skb, network_header), &sent);
	if (cls == COLLECTOR_NO_CLASS)
		return 0;
	slot = (cls - 1) * COLLECTOR_DIRECTIONS + COLLECTOR_DIR_UP;

	shinfo = (struct skb_shared_info *)(head + BPF_CORE_READ(skb, end));
	packets = BPF_CORE_READ(shinfo, gso_segs);
	if (!packets)
		packets = 1;
	if (bpf_probe_read_kernel(&pkt_len, sizeof(pkt_len), &skb->cb[0])) /* qdisc_skb_cb.pkt_len */
		return 0;
	bytes = pkt_len;
	if (BPF_CORE_READ(skb, vlan_proto))
		bytes += 4 * packets;
	v = bpf_map_lookup_elem(&qdisc_drops, &zero);
	if (v)
		add(v, slot, bytes, packets);
	uncount_dropped(&sent, slot, bytes, packets);
	return 0;
}

#endif /* COLLECTOR_QDISCDROPS_H */
