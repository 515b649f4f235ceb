/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * xtcp_maps.h - the one definition of the maps shared by the XDP program
 * (src/xtcp_xdp.c) and its Rust loader (src/lib.rs).
 *
 * Contract:
 *  - Every multi-byte field is in HOST byte order. The program converts the
 *    packet's network-order fields before lookups, so userspace can write
 *    u32::from(Ipv4Addr) and plain port numbers.
 *  - Fixed-width types only, no bool, and every byte is named: padding is an
 *    explicit field that must be zero (hash keys compare all bytes).
 *  - The sizes and offsets below are asserted here (for both the BPF and the
 *    host compile) and mirrored by #[repr(C)] types in src/lib.rs, whose test
 *    compares them against a host probe compiled from this same header.
 *  - Map names stay under 16 bytes: the kernel keeps BPF_OBJ_NAME_LEN - 1.
 */
#ifndef XTCP_MAPS_H
#define XTCP_MAPS_H

#include <linux/types.h>

/* ---- xtcp_listeners: BPF_MAP_TYPE_HASH, key -> __u32 (always 1) ---------
 * Frames whose (destination IPv4, destination TCP port) is a key are
 * steered. addr == 0 is a wildcard: it matches any destination address. */
#define XTCP_MAX_LISTENERS 1024

struct xtcp_listener_key {
	__u32 addr; /* destination IPv4, host order; 0 = any address */
	__u16 port; /* destination TCP port, host order */
	__u16 pad;  /* must be zero */
};

/* ---- xtcp_port_range: BPF_MAP_TYPE_ARRAY, slot index -> range -----------
 * Destination ports of our own active opens (the local ephemeral range).
 * A frame is steered when some enabled slot has lo <= dport <= hi and its
 * addr is 0 or equals the destination address. */
#define XTCP_PORT_RANGE_SLOTS 4

struct xtcp_port_range {
	__u32 addr;    /* local IPv4, host order; 0 = any address */
	__u16 lo;      /* first port, inclusive, host order */
	__u16 hi;      /* last port, inclusive, host order */
	__u32 enabled; /* 0 = slot unused (u32, not bool: no hidden padding) */
};

/* ---- IPv6 ---------------------------------------------------------------
 * The same scheme for IPv6 (EtherType 0x86dd), in maps of their own: the IPv4
 * maps never steer an IPv6 frame, nor the IPv6 maps an IPv4 one. An IPv6
 * address is kept as its 16 bytes in NETWORK order (as in the packet), held
 * in four __u32 words so the struct is 4-byte aligned and the program can
 * compare words; userspace copies the octets in (Rust: u32::from_ne_bytes of
 * each group of 4). Ports are host order as above. All-zero address (::) is
 * the wildcard. */

/* ---- xtcp_listen6: BPF_MAP_TYPE_HASH, key -> __u32 (always 1) ---------- */
struct xtcp_listener6_key {
	__u32 addr[4]; /* destination IPv6, network order bytes; :: = any */
	__u16 port;    /* destination TCP port, host order */
	__u16 pad;     /* must be zero */
};

/* ---- xtcp_prange6: BPF_MAP_TYPE_ARRAY, slot index -> range -------------
 * As xtcp_port_range, with an IPv6 address (:: = any). */
struct xtcp_port_range6 {
	__u32 addr[4]; /* local IPv6, network order bytes; :: = any */
	__u16 lo;      /* first port, inclusive, host order */
	__u16 hi;      /* last port, inclusive, host order */
	__u32 enabled; /* 0 = slot unused */
};

/* ---- xtcp_nd6: BPF_MAP_TYPE_HASH, IPv6 address (struct xtcp_addr6) -> __u32
 * Addresses whose Neighbor Discovery the stack answers itself. Empty (the
 * default, and what the engine uses): every NS and NA passes to the kernel,
 * which answers for the address and resolves neighbours that the engine reads
 * over netlink. With an address here, an NS whose target is that address and
 * an NA whose destination (IPv6 header) or target is that address are steered
 * to the stack instead; the kernel then never sees them. */
#define XTCP_MAX_ND6 64

struct xtcp_addr6 {
	__u32 addr[4]; /* IPv6, network order bytes */
};

/* Extension headers walked before the upper-layer header: at most this many
 * of Hop-by-Hop (first only), Destination Options and Routing with Segments
 * Left 0 - the ones the stack skips (stack/src/wire/ipv6.rs). */
#define XTCP_V6_MAX_EXT 8

/* ---- xtcp_vlan: BPF_MAP_TYPE_ARRAY, 1 slot (index 0) -> __u32 VID --------
 * The 802.1Q VLAN the stack lives on. 0 (the default): only untagged frames
 * (and VID 0 priority-tagged ones) are steered; VLAN-tagged frames pass.
 * 1..4094: only frames carrying exactly one 802.1Q tag (TPID 0x8100) with
 * this VID are steered; untagged frames, other VIDs and double tags pass. */
#define XTCP_VLAN_SLOTS 1

/* ---- xtcp_xsks: BPF_MAP_TYPE_XSKMAP, rx queue index -> AF_XDP socket ---- */
#define XTCP_MAX_QUEUES 64

/* ---- xtcp_counters: BPF_MAP_TYPE_PERCPU_ARRAY, index -> __u64 -----------
 * Every frame the program sees lands in exactly one counter. */
enum xtcp_counter {
	XTCP_CNT_REDIRECTED = 0, /* handed to the AF_XDP socket of its queue */
	XTCP_CNT_PASSED = 1,     /* well formed but not ours: XDP_PASS */
	XTCP_CNT_MALFORMED = 2,  /* truncated/invalid headers: XDP_PASS */
	XTCP_CNT_NO_SOCKET = 3,  /* ours, but no socket on its queue: XDP_PASS */
	XTCP_CNT_MAX = 4,
};

_Static_assert(sizeof(struct xtcp_listener_key) == 8, "listener key size");
_Static_assert(_Alignof(struct xtcp_listener_key) == 4, "listener key align");
_Static_assert(__builtin_offsetof(struct xtcp_listener_key, addr) == 0, "addr");
_Static_assert(__builtin_offsetof(struct xtcp_listener_key, port) == 4, "port");
_Static_assert(__builtin_offsetof(struct xtcp_listener_key, pad) == 6, "pad");

_Static_assert(sizeof(struct xtcp_port_range) == 12, "port range size");
_Static_assert(_Alignof(struct xtcp_port_range) == 4, "port range align");
_Static_assert(__builtin_offsetof(struct xtcp_port_range, addr) == 0, "addr");
_Static_assert(__builtin_offsetof(struct xtcp_port_range, lo) == 4, "lo");
_Static_assert(__builtin_offsetof(struct xtcp_port_range, hi) == 6, "hi");
_Static_assert(__builtin_offsetof(struct xtcp_port_range, enabled) == 8, "enabled");

_Static_assert(sizeof(struct xtcp_listener6_key) == 20, "listener6 key size");
_Static_assert(_Alignof(struct xtcp_listener6_key) == 4, "listener6 key align");
_Static_assert(__builtin_offsetof(struct xtcp_listener6_key, port) == 16, "port6");
_Static_assert(__builtin_offsetof(struct xtcp_listener6_key, pad) == 18, "pad6");

_Static_assert(sizeof(struct xtcp_port_range6) == 24, "port range6 size");
_Static_assert(_Alignof(struct xtcp_port_range6) == 4, "port range6 align");
_Static_assert(__builtin_offsetof(struct xtcp_port_range6, lo) == 16, "lo6");
_Static_assert(__builtin_offsetof(struct xtcp_port_range6, hi) == 18, "hi6");
_Static_assert(__builtin_offsetof(struct xtcp_port_range6, enabled) == 20, "enabled6");

_Static_assert(sizeof(struct xtcp_addr6) == 16, "addr6 size");

#endif /* XTCP_MAPS_H */
