// A spoofed flood under BPF_PROG_TEST_RUN: every run the IPv4 source address of the frame goes up
// by one (the test run keeps the frame between repeats), then a tail call hands the frame to the
// program in flood_target[0]. With the empty program there, this is the floor of the flood rows;
// with a counting program, each of the repeat runs sees a source it never saw.
// SEC("xdp.frags"): a tail call needs caller and callee alike (xdp_ingress is frags-aware);
// flood-xdp.bpf.c builds the same program for targets that are not frags-aware.
#ifndef FLOOD_SECTION
#define FLOOD_SECTION "xdp.frags"
#define FLOOD_PROGRAM flood_frags_xdp
#endif
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flood_target SEC(".maps");

SEC(FLOOD_SECTION)
int FLOOD_PROGRAM(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 *saddr = data + 26; /* Ethernet 14 + IPv4 source at 12 */

	if ((void *)(saddr + 1) > data_end)
		return XDP_PASS;
	*saddr = bpf_htonl(bpf_ntohl(*saddr) + 1);
	bpf_tail_call(ctx, &flood_target, 0);
	return XDP_PASS;
}
