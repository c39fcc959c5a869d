// The seed-style path for any source: the key from the IPv4 source, an insert on a miss (as the
// original collector does for every new peer), then two atomic adds.
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
int seed_insert_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct seed_value zero = {}, *v;
	__u8 key[16] = {};

	if (data + 34 > data_end)
		return XDP_PASS;
	key[10] = 0xff;
	key[11] = 0xff;
	__builtin_memcpy(&key[12], data + 26, 4);
	v = bpf_map_lookup_elem(&seed_clients, key);
	if (!v) {
		bpf_map_update_elem(&seed_clients, key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&seed_clients, key);
		if (!v)
			return XDP_PASS;
	}
	__sync_fetch_and_add(&v->bytes, data_end - data);
	__sync_fetch_and_add(&v->packets, 1);
	return XDP_PASS;
}
