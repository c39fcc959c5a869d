/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The accounting back end: which entry a counted frame lands on.
 *
 * A remote address gets its own `clients` entry only after it proved it is
 * real, by the host's egress: a spoofer never receives what the host sends,
 * so it cannot make the host send the confirming packet.
 *   - TCP: a segment from the host with ACK and neither SYN nor RST. After a
 *     renter's handshake that is the host's first ACK or data; when the host
 *     dials a peer's 9981 it is the host's ACK of the peer's SYN-ACK. A SYN-ACK
 *     (answer to a possibly spoofed SYN) or a RST never confirms.
 *   - UDP (every UDP class is taken for QUIC): a short-header packet from the
 *     host, first byte's top bit 0: 1-RTT packets flow only after the handshake,
 *     i.e. after QUIC's address validation. Long headers (Initial, Handshake,
 *     Retry, Version Negotiation) never confirm.
 *
 * Until then the address's frames count in `pending`, a per-CPU direct-mapped
 * table (an array: no hash insert, no global lock, constant cost per frame).
 * A new address takes its slot over; what the previous holder had counted is
 * folded into aggregates[UNCONFIRMED] (or into its `clients` entry if it was
 * confirmed meanwhile), so every frame stays counted exactly once.
 * On confirmation the confirming CPU moves its own pending counters into the
 * new entry and marks the address's slot on every other CPU CONFIRMED; those
 * CPUs fold the marked slot into the entry when they reuse it. User space adds
 * pending slots whose address has a `clients` entry to that client.
 * A bit per confirmed address's hash in `confirmed` lets a spoofed source's frame skip
 * the `clients` lookup altogether.
 * A flood of unconfirmed sources thus only ever churns `pending`: it cannot
 * take a `clients` entry, push a confirmed client out, or keep a real one out.
 *
 * Included by collector.bpf.c after its maps, `add`, `load` and `struct frame`.
 */
#ifndef COLLECTOR_CLIENTS_H
#define COLLECTOR_CLIENTS_H

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define QUIC_LONG_HEADER 0x80

/* A pending slot: head + counters (only the first CONFIG.n_slots exist). */
struct pending_entry {
	struct pending_head head;
	struct counter c[COLLECTOR_MAX_SLOTS];
};

/* Sized by the loader (24 + n_slots * 16), hence declared by size only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct pending_head) + sizeof(struct counter) * COLLECTOR_DEFAULT_SLOTS);
	__uint(max_entries, COLLECTOR_PENDING_ENTRIES);
} pending SEC(".maps");

/*
 * Prefilter of confirmed addresses, one bit per hash: a spoofed source's frame skips the
 * `clients` hash lookup (a cache miss on a random bucket) for one bit test in 64 KiB.
 * Bits are only ever set (atomically, by admit), never cleared.
 */
struct confirmed_bits {
	__u64 w[COLLECTOR_CONFIRMED_BITS / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct confirmed_bits);
	__uint(max_entries, 1);
} confirmed SEC(".maps");

/* Hash of an address: its pending slot is the low bits, its prefilter bit the high ones. */
static __always_inline __u32 addr_hash(const struct client_key *k)
{
	const __u32 *w = (const __u32 *)k->addr;
	__u32 h = (w[0] * 0x9e3779b1u) ^ (w[1] * 0x85ebca77u) ^ (w[2] * 0xc2b2ae3du) ^ (w[3] * 0x27d4eb2fu);

	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return h;
}

/* Slot of an address in `pending` (the same index on every CPU). */
static __always_inline __u32 pending_index(__u32 hash)
{
	return hash & (COLLECTOR_PENDING_ENTRIES - 1);
}

static __always_inline __u32 confirmed_bit(__u32 hash)
{
	return (hash >> 13) & (COLLECTOR_CONFIRMED_BITS - 1);
}

/* May the address have a `clients` entry? (false: certainly not) */
static __always_inline int maybe_confirmed(__u32 hash)
{
	__u32 zero = 0, bit = confirmed_bit(hash);
	struct confirmed_bits *cb = bpf_map_lookup_elem(&confirmed, &zero);

	if (!cb)
		return 1;
	return (cb->w[bit >> 6] >> (bit & 63)) & 1;
}

static __always_inline int same_addr(const struct pending_head *h, const struct client_key *k)
{
	const __u64 *a = (const __u64 *)h->addr;
	const __u64 *b = (const __u64 *)k->addr;

	return a[0] == b[0] && a[1] == b[1];
}

/* Adds every counter of *e to *to (if any) and zeroes *e's counters. */
static __always_inline void fold_and_clear(struct counter *to, struct pending_entry *e)
{
#pragma unroll
	for (__u32 i = 0; i < COLLECTOR_MAX_SLOTS; i++) {
		if (i >= CONFIG.n_slots)
			break;
		if (to) {
			to[i].bytes += e->c[i].bytes;
			to[i].packets += e->c[i].packets;
		}
		e->c[i].bytes = 0;
		e->c[i].packets = 0;
	}
}

/* Counts a frame of a not (yet) confirmed address in this CPU's pending slot. */
static __always_inline void count_pending(struct frame *f, __u32 hash, __u64 bytes, __u64 packets)
{
	__u32 idx = pending_index(hash);
	struct pending_entry *e = bpf_map_lookup_elem(&pending, &idx);

	if (!e)
		return;
	if (e->head.state == COLLECTOR_PENDING_EMPTY || !same_addr(&e->head, &f->key)) {
		/* Take the slot over; the previous holder's frames stay counted. */
		struct counter *to = 0;
		__u32 agg = COLLECTOR_AGG_UNCONFIRMED;

		if (e->head.state == COLLECTOR_PENDING_CONFIRMED)
			to = bpf_map_lookup_elem(&clients, e->head.addr);
		if (!to && e->head.state != COLLECTOR_PENDING_EMPTY)
			to = bpf_map_lookup_elem(&aggregates, &agg);
		fold_and_clear(to, e);
		__builtin_memcpy(e->head.addr, f->key.addr, sizeof(e->head.addr));
		e->head.state = COLLECTOR_PENDING_USED;
	}
	add(e->c, f->slot, bytes, packets);
}

/* Does this frame from the host prove its destination real? (see the top) */
static __always_inline int confirms(void *ctx, int is_xdp, const struct frame *f)
{
	__u8 b;

	if (f->frag == FRAG_LATER)
		return 0;
	if (f->row == COLLECTOR_PROTO_ROW_TCP) {
		if (load(ctx, is_xdp, f->l4_off + 13, &b, 1))
			return 0;
		return (b & (TCP_FLAG_SYN | TCP_FLAG_RST)) == 0 && (b & TCP_FLAG_ACK);
	}
	if (load(ctx, is_xdp, f->l4_off + sizeof(struct udphdr), &b, 1))
		return 0; /* empty datagram */
	return (b & QUIC_LONG_HEADER) == 0;
}

struct mark_ctx {
	struct client_key key;
	__u32 idx;
};

/* bpf_loop callback: marks the address's pending slot on CPU `cpu` confirmed. */
static long mark_confirmed_on(__u64 cpu, void *data)
{
	struct mark_ctx *m = data;
	struct pending_entry *e = bpf_map_lookup_percpu_elem(&pending, &m->idx, (__u32)cpu);

	if (!e)
		return 1; /* past the last CPU */
	if (e->head.state == COLLECTOR_PENDING_USED && same_addr(&e->head, &m->key))
		e->head.state = COLLECTOR_PENDING_CONFIRMED;
	return 0;
}

/*
 * The address of f was just confirmed: give it an entry (NULL if `clients` is
 * full) holding what this CPU had counted for it, and mark its slot on the
 * other CPUs.
 */
static __always_inline struct counter *admit(struct frame *f, __u32 hash)
{
	__u32 zero = 0, bit = confirmed_bit(hash);
	struct confirmed_bits *cb = bpf_map_lookup_elem(&confirmed, &zero);
	struct mark_ctx m;
	struct pending_entry *e;
	struct counter *v;

	if (cb) /* before the entry exists: a set bit only costs a lookup */
		__sync_fetch_and_or(&cb->w[bit >> 6], 1ULL << (bit & 63));
	bpf_map_update_elem(&clients, &f->key, zero_value, BPF_NOEXIST); /* EEXIST from a racing CPU is fine */
	v = bpf_map_lookup_elem(&clients, &f->key);
	if (!v)
		return 0;
	m.key = f->key;
	m.idx = pending_index(hash);
	e = bpf_map_lookup_elem(&pending, &m.idx);
	if (e && e->head.state != COLLECTOR_PENDING_EMPTY && same_addr(&e->head, &f->key)) {
		fold_and_clear(v, e);
		e->head.state = COLLECTOR_PENDING_EMPTY;
	}
	bpf_loop(COLLECTOR_MAX_CPUS, mark_confirmed_on, &m, 0);
	return v;
}

static __always_inline void count(void *ctx, int is_xdp, struct frame *f, __u64 bytes, __u64 packets)
{
	struct counter *v = 0;
	__u32 agg, hash = addr_hash(&f->key);

	if (maybe_confirmed(hash))
		v = bpf_map_lookup_elem(&clients, &f->key);
	if (v) {
		add(v, f->slot, bytes, packets);
	} else if ((f->slot & 1) == COLLECTOR_DIR_UP && confirms(ctx, is_xdp, f)) {
		v = admit(f, hash);
		if (!v) {
			agg = COLLECTOR_AGG_OVERFLOW; /* confirmed, but clients is full */
			v = bpf_map_lookup_elem(&aggregates, &agg);
		}
		if (v)
			add(v, f->slot, bytes, packets);
	} else {
		count_pending(f, hash, bytes, packets);
	}
	agg = COLLECTOR_AGG_TOTAL;
	v = bpf_map_lookup_elem(&aggregates, &agg);
	if (v)
		add(v, f->slot, bytes, packets);
}

#endif /* COLLECTOR_CLIENTS_H */
