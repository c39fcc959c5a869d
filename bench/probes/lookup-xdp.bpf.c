// One per-CPU hash lookup of a 16-byte key that is in the map (the bench puts it there): the
// cost of finding a known client, with a map shaped like collector.bpf.c's clients map.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(key_size, 16);
	__uint(value_size, 96);
	__uint(max_entries, 16384);
} ref_clients SEC(".maps");

SEC("xdp")
int lookup_xdp(struct xdp_md *ctx)
{
	__u8 key[16] = {};

	key[15] = 1;
	return bpf_map_lookup_elem(&ref_clients, key) ? XDP_PASS : XDP_DROP;
}
