// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * stateless_client.c - the receiving half of `xtcp-loadgen run --backend xdp-stateless`.
 *
 * Attached (XDP) to the load generator's interface. User space sends the SYNs (AF_XDP, in
 * batches) with an ISN that carries the connection's start time; this program answers the
 * server's segments from the frame alone, with XDP_TX, keeping no per-connection state:
 *
 *   SYN-ACK       -> ACK + FIN (the connect workload closes at once); a handshake
 *   FIN (+ACK)    -> ACK; the connection is complete
 *   RST           -> dropped, counted (refused)
 *   other (ACKs)  -> dropped
 *   anything not from SERVER_IP:SERVER_PORT to a port in PORT_LO..PORT_HI -> XDP_PASS
 *
 * It is NOT a full TCP: no retransmission, no TIME-WAIT, no window; a lost frame is a
 * connection that times out. The SYN offers only MSS (no timestamps, window scale or SACK),
 * so every answer is a bare 20-byte TCP header and nothing needs echoing (RFC 7323 §3.2
 * requires TSopt on every segment only once both sides offered it).
 *
 * Time encoding (mirrored in loadgen/src/backend/stateless_bpf.rs): ISN = (start_us << 1) | m,
 * start_us = CLOCK_MONOTONIC microseconds mod 2^31 (bpf_ktime_get_ns is CLOCK_MONOTONIC), m =
 * 1 when the connection is measured (started after the warmup). The SYN-ACK acknowledges
 * ISN + 1 and the server's FIN (after ours) ISN + 2, so the start time comes back with every
 * answer. Latency = ((now_us << 1 | m) - ISN) >> 1, wrapping arithmetic (valid below 35 min).
 *
 * Counting (one-entry array maps, read by user space):
 *   totals  - cumulative counters (struct totals);
 *   buckets - per start-time bucket (16.4 ms of start times, 512 per value of m): timely
 *             completions and RSTs, so user space can declare each bucket's missing
 *             connections timed out once the bucket is older than the timeout;
 *   hist    - connect latency (SYN sent -> SYN-ACK) of measured connections, log-linear
 *             buckets (32 per power of two).
 * A SYN-ACK or FIN later than TIMEOUT_US counts as `late` only: user space has already
 * counted that connection as failed.
 *
 * Checksums are computed in full: frames sent with XDP_TX carry no offload metadata, and the
 * receiving kernel verifies them.
 *
 * Built at run time by the load generator with -DSERVER_IP=.. (host order) -DSERVER_PORT=..
 * -DPORT_LO=.. -DPORT_HI=.. -DTIMEOUT_US=..
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define NB 1024		 /* start-time buckets: 512 per value of the measured bit */
#define BUCKET_SHIFT 14	 /* 2^14 us per bucket */
#define HB 1024		 /* histogram buckets */
#define HSUB_BITS 5	 /* 32 sub-buckets per power of two */
#define REPLY_LEN (14 + 20 + 20)

struct totals {
	__u64 synack;		  /* SYN-ACKs answered */
	__u64 handshakes_measured; /* timely SYN-ACKs of measured connections */
	__u64 fin;		  /* server FINs answered */
	__u64 completed;	  /* timely FINs, any connection */
	__u64 completed_measured; /* timely FINs of measured connections */
	__u64 late;		  /* SYN-ACK or FIN after the timeout */
	__u64 rst;		  /* RSTs from the server */
	__u64 rst_matched;	  /* RSTs with an ACK number, charged to a bucket */
	__u64 ignored;		  /* other segments from the server (pure ACKs, data) */
	__u64 bad;		  /* malformed, or the reply could not be built */
	__u64 early;		  /* answers whose ISN start time was in the future (read as 0 us) */
};

struct buckets {
	__u32 done[NB];
	__u32 rst[NB];
};

struct hist {
	__u64 connect[HB];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct totals);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct buckets);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} hist SEC(".maps");

static __always_inline __u32 bucket_of(__u32 isn)
{
	return (((isn >> 1) >> BUCKET_SHIFT) & (NB / 2 - 1)) | ((isn & 1) << 9);
}

/* A start time up to 2^30 us in the future (the sender's clock a little ahead of ours) is a
 * latency of 0, not a wrapped one above every timeout; counted in `early`. */
#define EARLY(d) ((d) >= (1u << 30))

static __always_inline __u32 latency_us(__u32 isn, __u32 now2)
{
	return ((now2 | (isn & 1)) - isn) >> 1;
}

static __always_inline __u32 latency_or_0(struct totals *t, __u32 isn, __u32 now2)
{
	__u32 d = latency_us(isn, now2);

	if (EARLY(d)) {
		__sync_fetch_and_add(&t->early, 1);
		return 0;
	}
	return d;
}

/* Index of the highest set bit of v (v > 0). */
static __always_inline __u32 msb(__u32 v)
{
	__u32 r = 0;

	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

/* Log-linear: exact below 32 us, then 32 buckets per power of two (~3 %). */
static __always_inline __u32 hist_index(__u32 us)
{
	__u32 m;

	if (us < (1u << HSUB_BITS))
		return us;
	m = msb(us);
	return ((m - HSUB_BITS + 1) << HSUB_BITS) + ((us >> (m - HSUB_BITS)) & ((1u << HSUB_BITS) - 1));
}

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Rewrites the frame into a bare ACK (+FIN) back to its sender and returns XDP_TX. */
static __always_inline int reply(struct xdp_md *ctx, __u32 seq, __u32 ack, int fin)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	unsigned char mac_src[ETH_ALEN], mac_dst[ETH_ALEN];
	__be32 saddr, daddr;
	__be16 sport, dport;
	int delta;

	if ((void *)(tcp + 1) > end)
		return -1;
	__builtin_memcpy(mac_src, eth->h_source, ETH_ALEN);
	__builtin_memcpy(mac_dst, eth->h_dest, ETH_ALEN);
	saddr = ip->saddr;
	daddr = ip->daddr;
	sport = tcp->source;
	dport = tcp->dest;
	delta = REPLY_LEN - (int)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end)
		return -1;

	__builtin_memcpy(eth->h_dest, mac_src, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac_dst, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(40);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->check = 0;
	ip->saddr = daddr;
	ip->daddr = saddr;
	{
		__u16 *w = (void *)ip;
		__u32 s = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		ip->check = fold(s);
	}

	tcp->source = dport;
	tcp->dest = sport;
	tcp->seq = bpf_htonl(seq);
	tcp->ack_seq = bpf_htonl(ack);
	/* doff 5, flags: ACK (+FIN); the 16-bit word at offset 12. */
	((__u16 *)tcp)[6] = bpf_htons((5 << 12) | 0x10 | (fin ? 0x01 : 0));
	tcp->window = bpf_htons(65535);
	tcp->check = 0;
	tcp->urg_ptr = 0;
	{
		__u16 *w = (void *)tcp;
		/* Pseudo-header (RFC 9293 §3.1): addresses, protocol, TCP length. */
		__u32 s = (daddr & 0xffff) + (daddr >> 16) + (saddr & 0xffff) + (saddr >> 16) +
			  bpf_htons(IPPROTO_TCP) + bpf_htons(20);
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		tcp->check = fold(s);
	}
	return XDP_TX;
}

SEC("xdp")
int stateless_client(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct totals *t;
	struct buckets *bk;
	__u32 zero = 0, iplen, thl, seq, ack, isn, now2, lat, dport;
	int rc;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
	    ip->saddr != bpf_htonl(SERVER_IP) || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end || tcp->source != bpf_htons(SERVER_PORT))
		return XDP_PASS;
	dport = bpf_ntohs(tcp->dest);
	if (dport < PORT_LO || dport > PORT_HI)
		return XDP_PASS;
	t = bpf_map_lookup_elem(&totals, &zero);
	bk = bpf_map_lookup_elem(&buckets, &zero);
	if (!t || !bk)
		return XDP_PASS;

	iplen = bpf_ntohs(ip->tot_len);
	thl = tcp->doff * 4;
	if (thl < 20 || iplen < 20 + thl) {
		__sync_fetch_and_add(&t->bad, 1);
		return XDP_DROP;
	}
	seq = bpf_ntohl(tcp->seq);
	ack = bpf_ntohl(tcp->ack_seq);
	now2 = (__u32)(bpf_ktime_get_ns() / 1000) << 1;

	if (tcp->rst) {
		__sync_fetch_and_add(&t->rst, 1);
		/* A refused SYN: RST+ACK acknowledging ISN + 1. A late one (its bucket may
		 * already be settled) only counts as late. */
		if (tcp->ack && latency_or_0(t, ack - 1, now2) <= TIMEOUT_US) {
			__sync_fetch_and_add(&bk->rst[bucket_of(ack - 1) & (NB - 1)], 1);
			__sync_fetch_and_add(&t->rst_matched, 1);
		}
		return XDP_DROP;
	}
	if (!tcp->ack) {
		__sync_fetch_and_add(&t->ignored, 1);
		return XDP_DROP;
	}
	if (tcp->syn) {
		isn = ack - 1;
		lat = latency_or_0(t, isn, now2);
		__sync_fetch_and_add(&t->synack, 1);
		if (lat > TIMEOUT_US) {
			__sync_fetch_and_add(&t->late, 1);
		} else if (isn & 1) {
			struct hist *h = bpf_map_lookup_elem(&hist, &zero);

			__sync_fetch_and_add(&t->handshakes_measured, 1);
			if (h)
				__sync_fetch_and_add(&h->connect[hist_index(lat) & (HB - 1)], 1);
		}
		/* Our ACK of their SYN, with our FIN: seq = ISN + 1. */
		rc = reply(ctx, ack, seq + 1, 1);
	} else if (tcp->fin) {
		/* The server's FIN after ours: it acknowledges ISN + 2. */
		isn = ack - 2;
		lat = latency_or_0(t, isn, now2);
		__sync_fetch_and_add(&t->fin, 1);
		if (lat > TIMEOUT_US) {
			__sync_fetch_and_add(&t->late, 1);
		} else {
			__sync_fetch_and_add(&bk->done[bucket_of(isn) & (NB - 1)], 1);
			__sync_fetch_and_add(&t->completed, 1);
			if (isn & 1)
				__sync_fetch_and_add(&t->completed_measured, 1);
		}
		rc = reply(ctx, ack, seq + (iplen - 20 - thl) + 1, 0);
	} else {
		__sync_fetch_and_add(&t->ignored, 1);
		return XDP_DROP;
	}
	if (rc < 0) {
		__sync_fetch_and_add(&t->bad, 1);
		return XDP_DROP;
	}
	return rc;
}

char _license[] SEC("license") = "Dual MIT/GPL";
