// The seed-style reference: one plain hash lookup of a 16-byte key that is in the map (the bench
// puts it there) and two atomic adds, as the original Go collector counts a known peer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct seed_value {
	__u64 bytes;
	__u64 packets;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, 16);
	__uint(value_size, sizeof(struct seed_value));
	__uint(max_entries, 65536);
} seed_clients SEC(".maps");

SEC("xdp")
int seed_xdp(struct xdp_md *ctx)
{
	__u8 key[16] = {};
	struct seed_value *v;

	key[15] = 1;
	v = bpf_map_lookup_elem(&seed_clients, key);
	if (!v)
		return XDP_DROP;
	__sync_fetch_and_add(&v->bytes, ctx->data_end - ctx->data);
	__sync_fetch_and_add(&v->packets, 1);
	return XDP_PASS;
}
