// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xtcp_xdp.c - steers xtcp's TCP segments into AF_XDP sockets.
 *
 * A frame is ours when it is Ethernet/IPv4/TCP or Ethernet/IPv6/TCP in our
 * VLAN (untagged, or one 802.1Q tag with the VID in xtcp_vlan when that is
 * set), not an IP fragment, and its (destination address, destination port)
 * is a registered listener, or its destination port lies in a registered port
 * range (the local ports of our active opens). Each family has its own maps
 * (xtcp_listeners / xtcp_port_range for IPv4, xtcp_listen6 / xtcp_prange6 for
 * IPv6). An ICMP error (Destination Unreachable, Time Exceeded; for IPv6,
 * Packet Too Big), in our VLAN as above, is ours when the TCP segment it
 * quotes was one of ours: its source (address, port) is a listener or in a
 * port range, as for TCP (RFC 5927: the stack then checks the quoted sequence
 * number). Ours goes to the AF_XDP socket bound to the receive queue it
 * arrived on; a queue without a socket falls back to XDP_PASS through the
 * bpf_redirect_map() flags. Everything else - ARP, Neighbor Discovery (unless
 * an address is in xtcp_nd6, see xtcp_maps.h), other ICMP/ICMPv6 (echo: the
 * kernel answers ping), frames of another VLAN, double-tagged frames, other
 * TCP ports, fragments, IPv6 extension headers the stack does not skip,
 * malformed or truncated headers - gets XDP_PASS, so the kernel keeps
 * answering ARP and ND and SSH keeps working.
 *
 * IPv6 extension headers: at most XTCP_V6_MAX_EXT of Hop-by-Hop (first only),
 * Destination Options and Routing with Segments Left 0 are walked (RFC 8200
 * section 4), the ones the stack skips; a Fragment header, Routing with
 * Segments Left > 0, ESP, AH or any other next header ends the walk and the
 * frame passes unless that header is TCP or ICMPv6.
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
#include <linux/ipv6.h>
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
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTCP_MAX_LISTENERS);
	__type(key, struct xtcp_listener6_key);
	__type(value, __u32);
} xtcp_listen6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XTCP_PORT_RANGE_SLOTS);
	__type(key, __u32);
	__type(value, struct xtcp_port_range6);
} xtcp_prange6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XTCP_MAX_ND6);
	__type(key, struct xtcp_addr6);
	__type(value, __u32);
} xtcp_nd6 SEC(".maps");

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

/* An IPv4 packet at `iph`: TCP to us, or an ICMP error about one of our flows. */
static __always_inline enum verdict try_ipv4(struct iphdr *iph, void *data_end)
{
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

/* ---- IPv6 ---------------------------------------------------------------- */

/* Next Header values (IANA "Assigned Internet Protocol Numbers"). */
#define NH_HOPOPTS 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_ICMPV6 58
#define NH_DSTOPTS 60

/* ICMPv6 types (RFC 4443 sections 3.1, 3.2, RFC 4861 sections 4.3, 4.4). */
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136

static __always_inline int addr6_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int addr6_any(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int port_in_ranges6(const struct xtcp_addr6 *daddr, __u16 dport)
{
#pragma unroll
	for (__u32 i = 0; i < XTCP_PORT_RANGE_SLOTS; i++) {
		__u32 slot = i;
		struct xtcp_port_range6 *r =
			bpf_map_lookup_elem(&xtcp_prange6, &slot);

		if (!r || !r->enabled)
			continue;
		if (!addr6_any(r->addr) && !addr6_eq(r->addr, daddr->addr))
			continue;
		if (dport >= r->lo && dport <= r->hi)
			return 1;
	}
	return 0;
}

static __always_inline int is_listener6(const struct xtcp_addr6 *daddr, __u16 dport)
{
	struct xtcp_listener6_key key = { .port = dport, .pad = 0 };

	__builtin_memcpy(key.addr, daddr->addr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&xtcp_listen6, &key))
		return 1;
	/* wildcard listener (::): any local address */
	key.addr[0] = key.addr[1] = key.addr[2] = key.addr[3] = 0;
	return bpf_map_lookup_elem(&xtcp_listen6, &key) != 0;
}

static __always_inline int ours6(const struct xtcp_addr6 *addr, __u16 port)
{
	return is_listener6(addr, port) || port_in_ranges6(addr, port);
}

/* ICMPv6 header (RFC 4443 section 2.1) with its first 4 bytes of body. */
struct icmp6_hdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 rest; /* MTU of Packet Too Big; ND flags/reserved */
};

/* An ICMPv6 message at `ic`, in the IPv6 packet `ip6`:
 *  - Packet Too Big or Destination Unreachable quoting a TCP segment from one
 *    of our listeners or active-open ports is ours (the quoted packet must
 *    start with its TCP header: a quote with extension headers passes);
 *  - NS whose target, or NA whose target or IPv6 destination, is in xtcp_nd6
 *    is ours (see xtcp_maps.h for why the default is to pass all ND);
 *  - everything else (echo, other errors, MLD, router discovery) passes. */
static __always_inline enum verdict try_icmp6(struct icmp6_hdr *ic, struct ipv6hdr *ip6,
					      void *data_end)
{
	if ((void *)(ic + 1) > data_end)
		return V_MALFORMED;
	if (ic->type == ICMPV6_PKT_TOOBIG || ic->type == ICMPV6_DEST_UNREACH) {
		struct ipv6hdr *q = (void *)(ic + 1);
		if ((void *)(q + 1) > data_end)
			return V_MALFORMED;
		if (q->version != 6)
			return V_MALFORMED;
		if (q->nexthdr != IPPROTO_TCP)
			return V_PASS;
		/* The quoted TCP header's first 8 bytes: ports and sequence number. */
		__be16 *ports = (void *)(q + 1);
		if ((void *)ports + 8 > data_end)
			return V_MALFORMED;
		struct xtcp_addr6 saddr;
		__builtin_memcpy(&saddr, &q->saddr, sizeof(saddr));
		return ours6(&saddr, bpf_ntohs(ports[0])) ? V_OURS : V_PASS;
	}
	if (ic->type != ND_NEIGHBOR_SOLICIT && ic->type != ND_NEIGHBOR_ADVERT)
		return V_PASS;
	/* NS and NA: the 16-byte target follows the 8-byte header. */
	struct xtcp_addr6 *t = (void *)(ic + 1);
	if ((void *)(t + 1) > data_end)
		return V_MALFORMED;
	struct xtcp_addr6 target;
	__builtin_memcpy(&target, t, sizeof(target));
	if (bpf_map_lookup_elem(&xtcp_nd6, &target))
		return V_OURS;
	if (ic->type == ND_NEIGHBOR_ADVERT) {
		/* A solicited NA answering the stack's own NS comes to our address. */
		__builtin_memcpy(&target, &ip6->daddr, sizeof(target));
		if (bpf_map_lookup_elem(&xtcp_nd6, &target))
			return V_OURS;
	}
	return V_PASS;
}

/* An IPv6 packet at `ip6`: walks the extension headers the stack skips, then
 * TCP to us or an ICMPv6 message for us. */
static __always_inline enum verdict try_ipv6(struct ipv6hdr *ip6, void *data_end)
{
	if ((void *)(ip6 + 1) > data_end)
		return V_MALFORMED;
	if (ip6->version != 6)
		return V_MALFORMED;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (plen == 0)
		return V_PASS; /* Jumbo Payload (RFC 2675): not on our links */
	void *end = (void *)(ip6 + 1) + plen; /* end of the IPv6 payload */
	if (end > data_end)
		return V_MALFORMED;

	__u8 nh = ip6->nexthdr;
	void *p = ip6 + 1;
#pragma unroll
	for (int i = 0; i < XTCP_V6_MAX_EXT; i++) {
		if (nh != NH_HOPOPTS && nh != NH_DSTOPTS && nh != NH_ROUTING)
			break;
		/* Hop-by-Hop only directly after the fixed header (RFC 8200, 4.3). */
		if (nh == NH_HOPOPTS && i != 0)
			return V_PASS;
		/* Next Header, Hdr Ext Len, and for Routing: type, Segments Left. */
		__u8 *h = p;
		if ((void *)(h + 8) > data_end)
			return V_MALFORMED;
		if (nh == NH_ROUTING && h[3] != 0)
			return V_PASS; /* a routing header still to be processed */
		nh = h[0];
		/* Hdr Ext Len counts 8-octet units beyond the first (RFC 8200, 4.4). */
		p += ((__u32)h[1] + 1) * 8;
	}
	if (p > end)
		return V_MALFORMED;
	if (nh == NH_ICMPV6)
		return try_icmp6(p, ip6, data_end);
	if (nh != IPPROTO_TCP)
		return V_PASS; /* Fragment, more than XTCP_V6_MAX_EXT, ESP, UDP, ... */

	struct tcphdr *th = p;
	if ((void *)(th + 1) > data_end)
		return V_MALFORMED;
	__u32 tcp_hlen = (__u32)th->doff * 4;
	if (tcp_hlen < sizeof(*th))
		return V_MALFORMED;
	if ((void *)th + tcp_hlen > end || (void *)th + tcp_hlen > data_end)
		return V_MALFORMED;

	struct xtcp_addr6 daddr;
	__builtin_memcpy(&daddr, &ip6->daddr, sizeof(daddr));
	return ours6(&daddr, bpf_ntohs(th->dest)) ? V_OURS : V_PASS;
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
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return V_PASS; /* ARP, QinQ, ... */
	if (vid != our_vid())
		return V_PASS; /* another VLAN: the kernel's */
	if (proto == bpf_htons(ETH_P_IP))
		return try_ipv4(l3, data_end);
	return try_ipv6(l3, data_end);
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
