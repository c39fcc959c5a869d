// SPDX-License-Identifier: GPL-2.0
/*
 * Test helper, not product code: on a veth's egress, puts an 802.1Q tag on every IP frame
 * the way a NIC with rx-vlan-offload hands it over: in the skb's metadata (bpf_skb_vlan_push
 * keeps it out of the data), so the receiving end's XDP sees the frame without it. VID 0
 * with priority 1 (a priority tag): the receiver delivers it as untagged traffic.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int vlan_push(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP) || skb->protocol == bpf_htons(ETH_P_IPV6))
		bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 0x2000);
	return TC_ACT_OK;
}
