/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The link-layer front end of the parser: where the IP header of a frame
 * starts, and which IP version it is, on every kind of link the collector
 * counts.
 *
 *   LINK_ETHERNET  Ethernet (and loopback, which carries a zeroed Ethernet
 *                  header): up to two in-packet VLAN tags (802.1Q / 802.1ad
 *                  in any order), then IPv4, IPv6, or a PPPoE session frame
 *                  (EtherType 0x8864) carrying IPv4 (PPP 0x0021) or IPv6
 *                  (PPP 0x0057). PPPoE discovery (0x8863) is not IP: skipped.
 *   LINK_L3        no link header at all (tun and WireGuard: ARPHRD_NONE;
 *                  PPP; raw IP): the frame starts with the IP header and its
 *                  version nibble says v4 or v6. Not skb->protocol: a
 *                  BPF_PROG_TEST_RUN skb takes its protocol from bytes 12-13
 *                  as if they were an EtherType, and the nibble is what the
 *                  IP parser checks anyway.
 *
 * The link kind is a compile-time constant of each program (the programs are
 * always_inline instances of one body), so an Ethernet program carries no L3
 * branch and an L3 program no Ethernet one.
 */
#ifndef COLLECTOR_LINKTYPES_H
#define COLLECTOR_LINKTYPES_H

#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>

enum link_kind {
	LINK_ETHERNET = 0,
	LINK_L3 = 1,
};

struct vlanhdr {
	__be16 tci;
	__be16 encap_proto;
};

/* A PPPoE session header (RFC 2516) and the PPP protocol field after it. */
struct pppoe_session {
	__u8 ver_type; /* version 1, type 1: 0x11 */
	__u8 code;     /* 0 in session frames */
	__be16 session_id;
	__be16 length;
	__be16 ppp_proto;
};

#define PPPOE_VER_TYPE 0x11
#define PPP_PROTO_IPV4 0x0021
#define PPP_PROTO_IPV6 0x0057

/* Where the IP header starts: cur = data + off (off kept as a plain scalar:
 * pointer - pointer needs CAP_PERFMON), proto = ETH_P_IP or ETH_P_IPV6 in
 * network order, or anything else for "not IP". */
struct l3_start {
	void *cur;
	__u32 off;
	__be16 proto;
};

/* Included by collector.bpf.c after enum parse_result, whose values these return. */

static __always_inline int l3_of_l3_link(void *data, void *data_end, struct l3_start *s)
{
	__u8 *first = data;

	if ((void *)(first + 1) > data_end)
		return PARSE_SHORT;
	s->cur = data;
	s->off = 0;
	switch (*first >> 4) {
	case 4:
		s->proto = bpf_htons(ETH_P_IP);
		break;
	case 6:
		s->proto = bpf_htons(ETH_P_IPV6);
		break;
	default:
		s->proto = 0;
	}
	return PARSE_OK;
}

/* A PPPoE session frame: the PPP protocol decides; anything but IP is not counted. */
static __always_inline int l3_of_pppoe(void *data_end, struct l3_start *s)
{
	struct pppoe_session *ses = s->cur;

	if ((void *)(ses + 1) > data_end)
		return PARSE_SHORT;
	if (ses->ver_type != PPPOE_VER_TYPE || ses->code != 0)
		return PARSE_SKIP;
	if (ses->ppp_proto == bpf_htons(PPP_PROTO_IPV4))
		s->proto = bpf_htons(ETH_P_IP);
	else if (ses->ppp_proto == bpf_htons(PPP_PROTO_IPV6))
		s->proto = bpf_htons(ETH_P_IPV6);
	else
		return PARSE_SKIP; /* LCP, IPCP, ... */
	s->cur = ses + 1;
	s->off += sizeof(*ses);
	return PARSE_OK;
}

static __always_inline int l3_of_ethernet(void *data, void *data_end, struct l3_start *s)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return PARSE_SHORT;
	s->proto = eth->h_proto;
	s->cur = eth + 1;
	s->off = sizeof(*eth);

	/* Up to two in-packet tags; unrolled: two fixed steps keep the offsets constant. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlanhdr *vh = s->cur;

		if (s->proto != bpf_htons(ETH_P_8021Q) && s->proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return PARSE_SHORT;
		s->proto = vh->encap_proto;
		s->cur = vh + 1;
		s->off += sizeof(*vh);
	}
	if (s->proto == bpf_htons(ETH_P_PPP_SES))
		return l3_of_pppoe(data_end, s);
	return PARSE_OK;
}

/* Finds the IP header of a frame on a link of kind `link` (a constant). */
static __always_inline int l3_start_of(void *data, void *data_end, enum link_kind link,
				       struct l3_start *s)
{
	if (link == LINK_L3)
		return l3_of_l3_link(data, data_end, s);
	return l3_of_ethernet(data, data_end, s);
}

/*
 * A VLAN tag the NIC stripped on receive (rx-vlan-offload) is not in the XDP
 * frame, but it was on the wire, and tc_egress/tc_ingress count it (through
 * skb->vlan_present). The XDP RX metadata kfunc (kernel >= 6.8) asks the
 * driver: 0 when it stripped a tag, -ENODATA when there was none,
 * -EOPNOTSUPP when the driver does not implement it (veth, mlx5, ice do).
 * Only a device-bound program may call it (loaded with prog_ifindex and
 * BPF_F_XDP_DEV_BOUND_ONLY), so it lives in its own program, xdp_rx_vlan,
 * which the loader loads per interface; __weak so that the object still
 * loads on a kernel without it (the loader then never loads xdp_rx_vlan).
 */
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto,
					__u16 *vlan_tci) __ksym __weak;

static __always_inline __u32 stripped_vlan_bytes(struct xdp_md *ctx)
{
	__be16 proto;
	__u16 tci;

	return bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci) == 0 ? 4 : 0;
}

#endif /* COLLECTOR_LINKTYPES_H */
