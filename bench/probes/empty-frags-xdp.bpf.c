// The empty XDP program, frags-aware: the tail-call target of the flood floor (bench/probes/flood-frags-xdp.bpf.c).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp.frags")
int empty_frags_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}
