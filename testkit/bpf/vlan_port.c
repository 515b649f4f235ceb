// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * vlan_port.c - a tc (clsact) program pair that makes one interface behave like an
 * 802.1Q VLAN sub-interface for the addresses of one subnet, on kernels built without
 * CONFIG_VLAN_8021Q (where `ip link add ... type vlan` fails with "Unknown device type").
 *
 *  egress:  an untagged IPv4 or ARP frame whose sender address is in NET/MASK gets the
 *           tag VID (priority 0); everything else leaves as it is (frames already
 *           tagged, other senders);
 *  ingress: a frame tagged VID loses its tag, so the kernel delivers it like an
 *           untagged frame; other VIDs keep theirs (and the kernel drops them).
 *
 * The tag is pushed as skb metadata (bpf_skb_vlan_push); the device writes it into the
 * frame only when its tx-vlan-offload (`txvlan`) is off, see testkit/src/vlan_port.rs.
 * Built by the test kit with -DVID=.. -DNET=.. -DMASK=.. (host-order numbers).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline int in_subnet(__be32 addr)
{
	return (bpf_ntohl(addr) & MASK) == NET;
}

SEC("tc/egress")
int vlan_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__be32 src;

	if ((void *)(eth + 1) > end || skb->vlan_present)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		src = ip->saddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP: the sender protocol address at offset 14. */
		__u8 *arp = (void *)(eth + 1);

		if ((void *)(arp + 28) > end)
			return TC_ACT_OK;
		__builtin_memcpy(&src, arp + 14, 4);
	} else {
		return TC_ACT_OK;
	}
	if (in_subnet(src))
		bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), VID);
	return TC_ACT_OK;
}

SEC("tc/ingress")
int vlan_ingress(struct __sk_buff *skb)
{
	if (skb->vlan_present && (skb->vlan_tci & 0x0fff) == VID)
		bpf_skb_vlan_pop(skb);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";
