// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xtcp_xdp.c - steers xtcp's TCP segments into AF_XDP sockets.
 *
 * A frame is ours when it is Ethernet/IPv4/TCP in our VLAN (untagged, or one
 * 802.1Q tag with the VID in xtcp_vlan when that is set), not an IP fragment,
 * and its (destination address, destination port) is a registered listener,
 * or its destination port lies in a registered port range (the local ports of
 * our active opens). An ICMP error (Destination Unreachable, Time Exceeded),
 * in our VLAN as above, is ours when the TCP segment it quotes was one of
 * ours: its source (address, port) is a listener or in a port range, as for
 * TCP (RFC 5927: the stack then checks the quoted sequence number). Ours goes
 * to the AF_XDP socket bound to the receive queue it arrived on; a queue
 * without a socket falls back to XDP_PASS through the bpf_redirect_map()
 * flags. Everything else - ARP, other ICMP (echo: the kernel answers ping),
 * IPv6, frames of another VLAN, double-tagged frames, other TCP ports,
 * fragments, malformed or truncated headers - gets XDP_PASS, so the kernel
 * keeps answering ARP and SSH keeps working.
 *
 * The tag must be in the frame: a driver that strips it into metadata (NIC
 * rx-vlan-offload; on veth, the sending side's tx-vlan-offload) hides it from
 * XDP and AF_XDP, and such frames look untagged here. See docs/engine.md.
 *
 * Each frame increments exactly one per-CPU counter (see xtcp_maps.h).
 * Map layouts live in xtcp_maps.h, shared with the Rust loader.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xtcp_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTCP_MAX_LISTENERS);
	__type(key, struct xtcp_listener_key);
	__type(value, __u32);
} xtcp_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XTCP_PORT_RANGE_SLOTS);
	__type(key, __u32);
	__type(value, struct xtcp_port_range);
} xtcp_port_range SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XTCP_VLAN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xtcp_vlan SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XTCP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xtcp_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XTCP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xtcp_counters SEC(".maps");

/* What the parser decided, before the redirect is attempted. */
enum verdict {
	V_PASS,      /* well formed, not ours */
	V_MALFORMED, /* cannot be parsed safely */
	V_OURS,      /* steer to the queue's AF_XDP socket */
};

/* IPv4 flags/fragment-offset field: More Fragments bit and the 13-bit
 * offset (RFC 791, section 3.1). Any fragment goes to the kernel, which
 * reassembles; xtcp does not. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

static __always_inline int port_in_ranges(__u32 daddr, __u16 dport)
{
#pragma unroll
	for (__u32 i = 0; i < XTCP_PORT_RANGE_SLOTS; i++) {
		__u32 slot = i;
		struct xtcp_port_range *r =
			bpf_map_lookup_elem(&xtcp_port_range, &slot);

		if (!r || !r->enabled)
			continue;
		if (r->addr != 0 && r->addr != daddr)
			continue;
		if (dport >= r->lo && dport <= r->hi)
			return 1;
	}
	return 0;
}

static __always_inline int is_listener(__u32 daddr, __u16 dport)
{
	struct xtcp_listener_key key = { .addr = daddr, .port = dport, .pad = 0 };

	if (bpf_map_lookup_elem(&xtcp_listeners, &key))
		return 1;
	key.addr = 0; /* wildcard listener: any local address */
	return bpf_map_lookup_elem(&xtcp_listeners, &key) != 0;
}

/* The ICMP header (RFC 792): linux/icmp.h pulls in glibc's socket headers,
 * which a BPF target cannot include. */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 rest; /* unused, or the next-hop MTU (RFC 1191) */
};
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

/* An ICMP error at `icmp` (the IPv4 payload): ours when the TCP segment it
 * quotes (IPv4 header, then at least 8 bytes, RFC 792) left from one of our
 * listeners or active-open ports. Echo and the other ICMP types pass. */
static __always_inline enum verdict try_icmp(struct icmp_hdr *icmp, void *data_end)
{
	if ((void *)(icmp + 1) > data_end)
		return V_MALFORMED;
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED)
		return V_PASS;

	struct iphdr *q = (void *)(icmp + 1);
	if ((void *)(q + 1) > data_end)
		return V_MALFORMED;
	__u32 q_hlen = (__u32)q->ihl * 4;
	if (q->version != 4 || q_hlen < sizeof(*q))
		return V_MALFORMED;
	if (q->protocol != IPPROTO_TCP || (q->frag_off & bpf_htons(IP_OFFSET)))
		return V_PASS;
	/* The quoted TCP header's first 8 bytes: ports and sequence number. */
	__be16 *ports = (void *)q + q_hlen;
	if ((void *)ports + 8 > data_end)
		return V_MALFORMED;

	__u32 saddr = bpf_ntohl(q->saddr);
	__u16 sport = bpf_ntohs(ports[0]);
	if (is_listener(saddr, sport) || port_in_ranges(saddr, sport))
		return V_OURS;
	return V_PASS;
}

/* An 802.1Q tag after the MAC addresses (the kernel's struct vlan_hdr is not
 * in the UAPI headers): tag control information (PCP:3 DEI:1 VID:12), then the
 * EtherType of what it carries. */
struct tag_hdr {
	__be16 tci;
	__be16 proto;
};
#define VID_MASK 0x0fff

/* The configured VID, 0 for none. */
static __always_inline __u32 our_vid(void)
{
	__u32 slot = 0;
	__u32 *vid = bpf_map_lookup_elem(&xtcp_vlan, &slot);

	return vid ? *vid : 0;
}

static __always_inline enum verdict try_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return V_MALFORMED;
	void *l3 = eth + 1;
	__be16 proto = eth->h_proto;
	__u32 vid = 0; /* untagged, or a priority tag */
	if (proto == bpf_htons(ETH_P_8021Q)) {
		/* One 802.1Q tag: TCI, then the EtherType it carries. A second
		 * tag inside (or an 802.1ad outer tag, which fails the test above)
		 * is not ours. */
		struct tag_hdr *tag = l3;
		if ((void *)(tag + 1) > data_end)
			return V_MALFORMED;
		vid = bpf_ntohs(tag->tci) & VID_MASK;
		proto = tag->proto;
		l3 = tag + 1;
	}
	if (proto != bpf_htons(ETH_P_IP))
		return V_PASS; /* ARP, IPv6, QinQ, ... */
	if (vid != our_vid())
		return V_PASS; /* another VLAN: the kernel's */

	struct iphdr *iph = l3;
	if ((void *)(iph + 1) > data_end)
		return V_MALFORMED;
	if (iph->version != 4)
		return V_MALFORMED;
	/* IHL counts 32-bit words and includes options (RFC 791, 3.1). */
	__u32 ip_hlen = (__u32)iph->ihl * 4;
	if (ip_hlen < sizeof(*iph))
		return V_MALFORMED;
	if ((void *)iph + ip_hlen > data_end)
		return V_MALFORMED;
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < ip_hlen || (void *)iph + tot_len > data_end)
		return V_MALFORMED;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_ICMP)
		return V_PASS;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return V_PASS;
	if (iph->protocol == IPPROTO_ICMP)
		return try_icmp((void *)iph + ip_hlen, data_end);

	struct tcphdr *th = (void *)iph + ip_hlen;
	if ((void *)(th + 1) > data_end)
		return V_MALFORMED;
	/* Data offset counts 32-bit words (RFC 9293, 3.1). */
	__u32 tcp_hlen = (__u32)th->doff * 4;
	if (tcp_hlen < sizeof(*th) || ip_hlen + tcp_hlen > tot_len)
		return V_MALFORMED;
	if ((void *)th + tcp_hlen > data_end)
		return V_MALFORMED;

	__u32 daddr = bpf_ntohl(iph->daddr);
	__u16 dport = bpf_ntohs(th->dest);
	if (is_listener(daddr, dport) || port_in_ranges(daddr, dport))
		return V_OURS;
	return V_PASS;
}

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&xtcp_counters, &idx);

	if (c)
		*c += 1; /* per-CPU slot: no other writer, no atomic needed */
}

SEC("xdp")
int xtcp_xdp(struct xdp_md *ctx)
{
	enum verdict v = try_classify(ctx);

	if (v == V_MALFORMED) {
		count(XTCP_CNT_MALFORMED);
		return XDP_PASS;
	}
	if (v == V_PASS) {
		count(XTCP_CNT_PASSED);
		return XDP_PASS;
	}
	/* The low bits of the flags are the action when the slot is empty. */
	long act = bpf_redirect_map(&xtcp_xsks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? XTCP_CNT_REDIRECTED : XTCP_CNT_NO_SOCKET);
	return act;
}

char _license[] SEC("license") = "Dual MIT/GPL";
