// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * sia-exporter kernel side: per-client, per-port-class, per-direction traffic
 * counters for a Sia host.
 *
 *   xdp_ingress  (XDP)        DOWN: frames received, one frame per packet
 *   xdp_rx_vlan  (XDP)        the same, device-bound, adding tags the NIC stripped
 *   tc_egress    (tc / TCX)   UP:   frames sent, GSO-exact via wire_len
 *   tc_ingress   (tc / TCX)   DOWN fallback where native XDP is unavailable
 *   qdisc_drop   (tp_btf)     UP dropped by a qdisc after tc_egress counted it (qdiscdrops.h)
 *   tc_egress_l3, tc_ingress_l3  the same two on links without a link header
 *                (tun, WireGuard, PPP, raw IP): they count IP packet bytes
 *
 * All share one parser (the link header as linktypes.h says: Ethernet, up to
 * two VLAN tags, PPPoE sessions, or none; IPv4 with options, IPv6 with
 * extension headers, TCP/UDP) and one classifier: a frame is counted
 * only if the host's own port, or failing that the remote port, is in the
 * `port_classes` table. Frames that are not counted touch no map except that
 * one array lookup, so SSH, DNS and scanners never enter `clients`. Every
 * program counts a classified frame through the same back end, count() in
 * clients.h: only a confirmed address has a `clients` entry (the host's own
 * egress confirms it, on every link kind), the others count in `pending`.
 *
 * Everything here must stay in step with collector.h (the contract with the
 * daemon); see there for the meaning of every map.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "collector.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The only variable in .rodata: the loader patches offset 0 of the initial
 * image before load. libbpf freezes .rodata, so the verifier reads n_slots as
 * a known constant, and that constant is what proves `slot < n_slots` keeps
 * the variable offset inside the (load-time sized) per-CPU value.
 */
const volatile struct collector_config CONFIG = { .n_slots = COLLECTOR_DEFAULT_SLOTS };

/*
 * `clients` and `aggregates` get their value size (n_slots * 16) and capacity
 * from the loader, so they are declared by size only: a BTF value type would
 * pin the size and make the kernel reject the resized map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(key_size, sizeof(struct client_key));
	__uint(value_size, sizeof(struct counter) * COLLECTOR_DEFAULT_SLOTS);
	__uint(max_entries, COLLECTOR_DEFAULT_MAX_CLIENTS);
} clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct counter) * COLLECTOR_DEFAULT_SLOTS);
	__uint(max_entries, COLLECTOR_AGG_ENTRIES);
} aggregates SEC(".maps");

/* Written by user space only; documents what each slot of the pinned maps means. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct class_info);
	__uint(max_entries, COLLECTOR_MAX_CLASSES);
} class_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct port_table);
	__uint(max_entries, 1);
} port_classes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
	__uint(max_entries, COLLECTOR_FRAG_ENTRIES);
} frag_classes SEC(".maps");

/*
 * Zero value for inserting a new client. It lives in .bss (a map value, so the
 * verifier accepts it as the update's value argument for any value size up to
 * COLLECTOR_MAX_SLOTS counters); a stack buffer of a load-time size is not
 * possible and .rodata must hold CONFIG alone.
 */
static struct counter zero_value[COLLECTOR_MAX_SLOTS];

/*
 * BTF anchor: clang emits BTF only for types reachable from globals (maps
 * included), and a struct reached only through a pointer member comes out as
 * a bare FWD. client_key is only ever a stack variable and the two resized
 * maps carry no BTF type, so this unused .bss variable holds every small
 * contract struct by value; all of collector.h's structs are then complete in
 * the object's BTF for the daemon's layout test (`bpftool btf dump`).
 * port_table (128 KiB) is complete through the port_classes map instead.
 * Never read or written by the program.
 */
struct collector_btf_anchor {
	struct client_key client_key;
	struct counter counter;
	struct class_info class_info;
	struct frag_key frag_key;
	struct frag_value frag_value;
	struct collector_config collector_config;
	struct pending_head pending_head;
};
struct collector_btf_anchor btf_anchor SEC(".bss");

/* IPv6 extension header numbers (linux/in6.h would pull in libc headers). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

#define IPV4_MF 0x2000
#define IPV4_OFFSET 0x1fff
#define IPV6_FRAG_OFFSET 0xfff8 /* host order: offset << 3 */
#define IPV6_FRAG_MF 0x0001

enum parse_result {
	PARSE_OK = 0,
	PARSE_SKIP,  /* not TCP/UDP, malformed: never counted */
	PARSE_SHORT, /* ran out of the (linear) data before the needed headers */
};

#include "linktypes.h"

enum frag_kind {
	FRAG_NONE = 0,
	FRAG_FIRST, /* offset 0 with more fragments: has the ports */
	FRAG_LATER, /* offset != 0: no ports, class comes from frag_classes */
};

struct pkt {
	void *saddr; /* into the packet: 4 or 16 bytes */
	void *daddr;
	__u32 l4_off; /* offset of the TCP/UDP header from the start of the frame (the
		       * Ethernet header; the IP header on an L3 link), what load() takes */
	__u32 frag_id;
	__be16 sport;
	__be16 dport;
	__u8 doff;   /* TCP data offset (32-bit words), 0 for UDP */
	__u8 v6;
	__u8 row;    /* COLLECTOR_PROTO_ROW_* */
	__u8 frag;   /* enum frag_kind */
	__u8 frag_proto;
};

/* Copy bytes from anywhere in the frame (also beyond the linear part). */
static __always_inline long load(void *ctx, int is_xdp, __u32 off, void *to, __u32 len)
{
	if (is_xdp)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline int is_ipv6_ext(__u8 nh)
{
	return nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_FRAGMENT ||
	       nh == NEXTHDR_DEST || nh == NEXTHDR_AUTH;
}

/*
 * IPv6 extension headers, walked with load_bytes rather than direct packet
 * access. Verifier note: with direct access every header kind at every depth
 * gives the packet pointer a different offset, the walk's states never prune
 * and the paths multiply (~290k verified instructions at 8 headers for XDP
 * alone, over the 1M limit for tc). A load helper's offset argument is never
 * tracked for precision, so here all paths of one depth look alike.
 * Rare path: ordinary IPv6 TCP/UDP never comes here.
 */
static __always_inline int parse_ipv6_ext(void *ctx, int is_xdp, __u32 off, __u8 nh,
					  struct pkt *p)
{
	__u8 h[20];

	for (int i = 0; i < COLLECTOR_MAX_IPV6_EXT_HEADERS; i++) {
		if (!is_ipv6_ext(nh))
			break;
		/* Every extension header is at least 8 bytes long. */
		if (load(ctx, is_xdp, off, h, 8))
			return PARSE_SKIP;
		if (nh == NEXTHDR_FRAGMENT) {
			__u16 fo = bpf_ntohs(*(__be16 *)(h + 2));

			off += 8;
			if (fo & (IPV6_FRAG_OFFSET | IPV6_FRAG_MF)) {
				p->frag_id = bpf_ntohl(*(__be32 *)(h + 4));
				p->frag_proto = h[0];
				if (fo & IPV6_FRAG_OFFSET) {
					p->frag = FRAG_LATER;
					return PARSE_OK;
				}
				p->frag = FRAG_FIRST;
			}
			/* offset 0, M = 0: an atomic fragment, a whole packet */
		} else if (nh == NEXTHDR_AUTH) {
			off += ((__u32)h[1] + 2) * 4;
		} else {
			off += ((__u32)h[1] + 1) * 8;
		}
		nh = h[0];
	}

	p->l4_off = off;
	if (nh == IPPROTO_TCP) {
		if (load(ctx, is_xdp, off, h, sizeof(struct tcphdr)))
			return PARSE_SKIP;
		p->row = COLLECTOR_PROTO_ROW_TCP;
		p->doff = h[12] >> 4;
		if (p->doff < 5) /* a TCP header is at least 20 bytes: malformed */
			return PARSE_SKIP;
	} else if (nh == IPPROTO_UDP) {
		if (load(ctx, is_xdp, off, h, sizeof(struct udphdr)))
			return PARSE_SKIP;
		p->row = COLLECTOR_PROTO_ROW_UDP;
		p->doff = 0;
	} else {
		return PARSE_SKIP; /* also: more extension headers than we walk */
	}
	p->sport = *(__be16 *)h;
	p->dport = *(__be16 *)(h + 2);
	return PARSE_OK;
}

static __always_inline int parse(void *ctx, int is_xdp, enum link_kind link, void *data,
				 void *data_end, struct pkt *p)
{
	struct l3_start l3;
	void *cur;
	__u32 off;
	__u16 proto;
	__u8 l4proto;
	int r;

	/* The link header (linktypes.h): `off` = cur - data as a plain scalar. */
	r = l3_start_of(data, data_end, link, &l3);
	if (r != PARSE_OK)
		return r;
	cur = l3.cur;
	off = l3.off;
	proto = l3.proto;

	/*
	 * Fields only some paths set are zeroed here: clang may copy the whole
	 * struct, and the verifier rejects reading a never-written register.
	 * l4_off too: a later fragment has none, and classify_frame copies it
	 * (left undefined, clang may store whatever register it likes there,
	 * a packet pointer included, which the verifier refuses).
	 */
	p->frag = FRAG_NONE;
	p->frag_id = 0;
	p->frag_proto = 0;
	p->l4_off = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		__u16 frag_off;

		if ((void *)(ip + 1) > data_end)
			return PARSE_SHORT;
		if (ip->version != 4 || ip->ihl < 5)
			return PARSE_SKIP;
		p->v6 = 0;
		p->saddr = &ip->saddr;
		p->daddr = &ip->daddr;
		l4proto = ip->protocol;
		frag_off = bpf_ntohs(ip->frag_off);
		if (frag_off & (IPV4_MF | IPV4_OFFSET)) {
			p->frag_id = bpf_ntohs(ip->id);
			p->frag_proto = l4proto;
			if (frag_off & IPV4_OFFSET) {
				p->frag = FRAG_LATER;
				return PARSE_OK;
			}
			p->frag = FRAG_FIRST;
		}
		cur = (void *)ip + ip->ihl * 4;
		off += ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;

		if ((void *)(ip6 + 1) > data_end)
			return PARSE_SHORT;
		if (ip6->version != 6)
			return PARSE_SKIP;
		p->v6 = 1;
		p->saddr = &ip6->saddr;
		p->daddr = &ip6->daddr;
		l4proto = ip6->nexthdr;
		cur = ip6 + 1;
		off += sizeof(*ip6);
		if (is_ipv6_ext(l4proto))
			return parse_ipv6_ext(ctx, is_xdp, off, l4proto, p);
	} else {
		return PARSE_SKIP;
	}

	p->l4_off = off;
	if (l4proto == IPPROTO_TCP) {
		struct tcphdr *tcp = cur;

		if ((void *)(tcp + 1) > data_end)
			return PARSE_SHORT;
		p->row = COLLECTOR_PROTO_ROW_TCP;
		p->doff = tcp->doff;
		if (p->doff < 5) /* a TCP header is at least 20 bytes: malformed */
			return PARSE_SKIP;
		p->sport = tcp->source;
		p->dport = tcp->dest;
	} else if (l4proto == IPPROTO_UDP) {
		struct udphdr *udp = cur;

		if ((void *)(udp + 1) > data_end)
			return PARSE_SHORT;
		p->row = COLLECTOR_PROTO_ROW_UDP;
		p->doff = 0;
		p->sport = udp->source;
		p->dport = udp->dest;
	} else {
		return PARSE_SKIP;
	}
	return PARSE_OK;
}

/* Copy a packet address into a 16-byte key slot, IPv4 as ::ffff:a.b.c.d. */
static __always_inline void put_addr(__u32 *dst, const void *src, __u8 v6)
{
	if (v6) {
		const __u32 *s = src;

		dst[0] = s[0];
		dst[1] = s[1];
		dst[2] = s[2];
		dst[3] = s[3];
	} else {
		dst[0] = 0;
		dst[1] = 0;
		dst[2] = bpf_htonl(0x0000ffff);
		dst[3] = *(const __u32 *)src;
	}
}

static __always_inline void frag_key_of(struct frag_key *k, const struct pkt *p)
{
	put_addr((__u32 *)k->saddr, p->saddr, p->v6);
	put_addr((__u32 *)k->daddr, p->daddr, p->v6);
	k->id = p->frag_id;
	*(__u32 *)&k->proto = p->frag_proto; /* proto + pad[3] = 0, one store */
}

/* What the counting code needs, as plain scalars (see classify_frame). */
struct frame {
	struct client_key key; /* the remote address */
	__u32 slot;            /* class * 2 + dir, < CONFIG.n_slots */
	__u32 hdr_len;         /* L2..L4 header bytes (tc_ingress only) */
	__u32 l4_off;          /* offset of the TCP/UDP header from data (bpf/clients.h) */
	__u8 row;              /* COLLECTOR_PROTO_ROW_* */
	__u8 frag;             /* enum frag_kind */
};

/*
 * Parse and classify one frame. Returns PARSE_OK with *f filled when the
 * frame is counted, PARSE_SKIP when it is not, PARSE_SHORT when the headers
 * run past data_end (before any map was touched).
 *
 * Verifier note: everything the caller needs leaves here as scalars on the
 * stack. The parser's paths (VLAN depth, IPv4/IPv6, options) each leave a
 * differently offset packet pointer; with none live afterwards, their states
 * prune at the counting code instead of each being walked through it again
 * (and through the second parse after a pull in the tc programs).
 *
 * The non-counted path touches only port_classes (an inlined array lookup),
 * except for later fragments, which need frag_classes.
 */
static __always_inline int classify_frame(void *ctx, int is_xdp, enum link_kind link, void *data,
					  void *data_end, __u32 dir, int want_hdr_len, struct frame *f)
{
	struct pkt p;
	__u32 zero = 0, cls;
	int r;

	r = parse(ctx, is_xdp, link, data, data_end, &p);
	if (r != PARSE_OK)
		return r;

	if (p.frag == FRAG_LATER) {
		struct frag_key fk;
		struct frag_value *fv;

		frag_key_of(&fk, &p);
		fv = bpf_map_lookup_elem(&frag_classes, &fk);
		if (!fv)
			return PARSE_SKIP;
		cls = fv->class_plus_one;
	} else {
		struct port_table *pt = bpf_map_lookup_elem(&port_classes, &zero);
		__u32 local, remote, row;

		if (!pt)
			return PARSE_SKIP;
		if (dir == COLLECTOR_DIR_DOWN) {
			local = bpf_ntohs(p.dport);
			remote = bpf_ntohs(p.sport);
		} else {
			local = bpf_ntohs(p.sport);
			remote = bpf_ntohs(p.dport);
		}
		row = (__u32)(p.row & 1) << 16;
		cls = pt->class_of[0][row | local];
		if (cls == COLLECTOR_NO_CLASS)
			cls = pt->class_of[0][row | remote];
	}
	if (cls == COLLECTOR_NO_CLASS)
		return PARSE_SKIP;

	cls = (cls - 1) * COLLECTOR_DIRECTIONS + dir;
	if (cls >= CONFIG.n_slots)
		return PARSE_SKIP;
	f->slot = cls;

	if (p.frag == FRAG_FIRST) {
		struct frag_key fk;
		struct frag_value fv = { .class_plus_one = (cls >> 1) + 1 };

		frag_key_of(&fk, &p);
		bpf_map_update_elem(&frag_classes, &fk, &fv, BPF_ANY);
	}

	put_addr((__u32 *)f->key.addr, dir == COLLECTOR_DIR_DOWN ? p.saddr : p.daddr, p.v6);
	f->l4_off = p.l4_off;
	f->frag = p.frag;
	f->row = 0;
	if (p.frag != FRAG_LATER) /* a later fragment has no L4 header: row unset */
		f->row = p.row;

	if (want_hdr_len) {
		f->hdr_len = p.l4_off;
		if (p.frag == FRAG_LATER)
			f->hdr_len = 0; /* never GRO'd; no L4 header here */
		else if (p.row == COLLECTOR_PROTO_ROW_TCP)
			f->hdr_len += p.doff * 4;
		else
			f->hdr_len += sizeof(struct udphdr);
	}
	return PARSE_OK;
}

static __always_inline void add(struct counter *v, __u32 slot, __u64 bytes, __u64 packets)
{
	/*
	 * Re-check against CONFIG.n_slots right at the access: the verifier
	 * must see the bound on the register that forms the offset into the
	 * load-time sized value, and clang need not keep the earlier check
	 * attached to it.
	 */
	if (slot >= CONFIG.n_slots)
		return;
	v[slot].bytes += bytes;
	v[slot].packets += packets;
}

#include "clients.h"

/*
 * XDP ingress, one body: `stripped_tags` (a constant) adds the 4 bytes of a
 * VLAN tag the NIC stripped (linktypes.h); only the device-bound xdp_rx_vlan
 * may ask for them.
 */
static __always_inline int count_xdp(struct xdp_md *ctx, int stripped_tags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct frame f;
	__u64 bytes;

	if (classify_frame(ctx, 1, LINK_ETHERNET, data, data_end, COLLECTOR_DIR_DOWN, 0, &f) != PARSE_OK)
		return XDP_PASS;
	/* Whole frame, including fragments of a multi-buffer frame. */
	bytes = bpf_xdp_get_buff_len(ctx);
	if (stripped_tags)
		bytes += stripped_vlan_bytes(ctx);
	count(ctx, 1, &f, bytes, 1);
	return XDP_PASS;
}

/*
 * xdp.frags (BPF_F_XDP_HAS_FRAGS, kernel 5.18): the program takes multi-buffer
 * frames, so a driver accepts it at a jumbo MTU (veth refuses a program without
 * it once the peer's MTU exceeds a page). The headers are parsed in the first
 * buffer only; bpf_xdp_get_buff_len() counts every buffer of the frame.
 */
SEC("xdp.frags")
int xdp_ingress(struct xdp_md *ctx)
{
	return count_xdp(ctx, 0);
}

SEC("xdp.frags")
int xdp_rx_vlan(struct xdp_md *ctx)
{
	return count_xdp(ctx, 1);
}

#define PULL_LEN 128

/*
 * tc programs see only the linear part of the skb through data/data_end.
 * Parse that first; only if the headers run past it while the skb has more,
 * pull min(len, 128) bytes into the linear part and parse again.
 * Pulling whenever the linear part is under 128 bytes would be costly: a TCP
 * skb at egress is a clone whose linear part is just the headers, and
 * bpf_skb_pull_data() on it reallocates the head for every segment.
 * The pull invalidates every packet pointer, hence the full re-parse.
 */
static __always_inline int classify_skb(struct __sk_buff *skb, enum link_kind link, __u32 dir,
					int want_hdr_len, struct frame *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 want = skb->len;
	int r;

	r = classify_frame(skb, 0, link, data, data_end, dir, want_hdr_len, f);
	if (want > PULL_LEN)
		want = PULL_LEN;
	/* Compared as pointers: pointer - pointer is refused without CAP_PERFMON. */
	if (r != PARSE_SHORT || data + want <= data_end)
		return r;
	if (bpf_skb_pull_data(skb, want))
		return PARSE_SKIP;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	return classify_frame(skb, 0, link, data, data_end, dir, want_hdr_len, f);
}

/*
 * The tc programs, one body each, instantiated per link kind (linktypes.h):
 * tc_egress/tc_ingress for Ethernet, tc_egress_l3/tc_ingress_l3 for links
 * without a link header (tun, WireGuard, PPP, raw IP), where the bytes
 * counted are IP packet bytes because there is no frame around them.
 */
static __always_inline int count_egress(struct __sk_buff *skb, enum link_kind link)
{
	struct frame f;
	__u64 packets, bytes;

	if (classify_skb(skb, link, COLLECTOR_DIR_UP, 0, &f) != PARSE_OK)
		return TC_ACT_UNSPEC;
	packets = skb->gso_segs;
	if (!packets)
		packets = 1;
	/* qdisc_pkt_len(): headers counted once per GSO segment. */
	bytes = skb->wire_len;
	if (!bytes)
		bytes = skb->len;
	/* A hardware-offloaded tag is on the wire but not in the data. */
	if (link == LINK_ETHERNET && skb->vlan_present)
		bytes += 4 * packets;
	count(skb, 0, &f, bytes, packets);
	return TC_ACT_UNSPEC; /* == TCX_NEXT: let other programs run */
}

static __always_inline int count_ingress(struct __sk_buff *skb, enum link_kind link)
{
	struct frame f;
	__u64 packets, bytes;

	if (classify_skb(skb, link, COLLECTOR_DIR_DOWN, 1, &f) != PARSE_OK)
		return TC_ACT_UNSPEC;
	packets = skb->gso_segs;
	if (!packets)
		packets = 1;
	/*
	 * After GRO: wire_len is not GSO-adjusted at ingress, so add the
	 * L2..L4 headers once per extra segment, as qdisc_pkt_len_init() does
	 * at egress.
	 */
	bytes = skb->len + (packets - 1) * f.hdr_len;
	/* A tag the NIC stripped (rx-vlan-offload) was on the wire. */
	if (link == LINK_ETHERNET && skb->vlan_present)
		bytes += 4 * packets;
	count(skb, 0, &f, bytes, packets);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_egress(struct __sk_buff *skb)
{
	return count_egress(skb, LINK_ETHERNET);
}

SEC("tc")
int tc_ingress(struct __sk_buff *skb)
{
	return count_ingress(skb, LINK_ETHERNET);
}

SEC("tc")
int tc_egress_l3(struct __sk_buff *skb)
{
	return count_egress(skb, LINK_L3);
}

SEC("tc")
int tc_ingress_l3(struct __sk_buff *skb)
{
	return count_ingress(skb, LINK_L3);
}

/* What a shaping qdisc dropped of the counted up traffic (its own program and maps). */
#include "qdiscdrops.h"
