// The cost of bpf_xdp_get_buff_len alone (xdp_ingress calls it for every packet).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int buff_len_xdp(struct xdp_md *ctx)
{
	return bpf_xdp_get_buff_len(ctx) ? XDP_PASS : XDP_DROP;
}
