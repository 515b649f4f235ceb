//! Per-stack counters, nstat-style. Plain `u64` fields bumped on the fast path: one core owns
//! the stack, so no atomics; snapshots are taken by copying the struct.

/// Counters of one stack instance (one core). Gauges are marked; everything else only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    // Frames.
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames that failed to parse (truncated, malformed, bad checksum).
    pub rx_dropped_malformed: u64,
    /// Well-formed frames not for us (other protocol, other address).
    pub rx_not_ours: u64,
    /// Frames of another VLAN: tagged with a VID other than `StackConfig::vlan`, or
    /// untagged (or priority-tagged) while a VLAN is configured, or tagged while none is.
    pub rx_vlan_mismatch: u64,
    /// Frames with two VLAN tags (802.1ad QinQ, or 802.1Q twice): not supported, dropped.
    pub rx_vlan_double_tagged: u64,
    /// Segments we wanted to send but the link had no free TX frame.
    pub tx_no_buffer: u64,

    // Opens.
    pub active_opens: u64,
    pub passive_opens: u64,
    pub syns_received: u64,
    pub synacks_sent: u64,
    /// SYN-ACKs sent with a SYN cookie instead of a SYN-RECEIVED entry.
    pub syn_cookies_sent: u64,
    pub syn_cookies_validated: u64,
    pub syn_cookies_rejected: u64,
    /// Times a listener started or stopped answering SYNs with cookies (`WhenFull` mode: its
    /// SYN queue filled up, or had room again). Each change is traced at debug level.
    pub syn_cookie_mode_changes: u64,
    /// SYNs dropped because the SYN queue was full and cookies are disabled.
    pub syn_queue_overflows: u64,
    /// Final ACKs that found the accept queue full.
    pub accept_queue_overflows: u64,
    /// Connections refused because the connection table was full.
    pub conn_table_full: u64,

    // Gauges (current values).
    pub established: u64,
    pub syn_recv: u64,
    pub time_wait: u64,
    pub orphans: u64,

    // TIME-WAIT.
    pub time_wait_inserts: u64,
    pub time_wait_reuses: u64,
    pub time_wait_expiries: u64,
    pub time_wait_table_full: u64,
    /// Retransmitted FINs re-ACKed from TIME-WAIT.
    pub time_wait_fin_acks: u64,

    // Orphans and teardown.
    pub orphan_overflows: u64,
    pub fin_wait2_timeouts: u64,

    // Resets and attacks.
    pub resets_sent: u64,
    pub resets_received: u64,
    pub challenge_acks: u64,
    /// Challenge ACKs suppressed by the rate limit (RFC 5961 §7).
    pub challenge_acks_suppressed: u64,
    /// Segments dropped by PAWS (RFC 7323 §5.3 R1: TSval older than TS.Recent), on a
    /// connection, a handshake's final ACK or a TIME-WAIT entry; each is answered with an ACK.
    pub paws_drops: u64,
    /// Non-RST segments without TSopt on a connection that negotiated timestamps, silently
    /// dropped (RFC 7323 §3.2).
    pub ts_missing_drops: u64,
    /// Segments outside the receive window (answered with an ACK, RFC 9293 §3.10.7.4).
    pub unacceptable_segments: u64,

    // Reliability.
    pub retransmits: u64,
    pub retransmit_timeouts: u64,
    /// Connections ended because a retry limit was reached (SYN-RECEIVED entries included).
    pub timeouts: u64,
    /// SYN-RECEIVED entries dropped after `synack_retries` unanswered SYN-ACKs.
    pub syn_recv_timeouts: u64,

    // ICMP (RFC 5927; `stack/icmp.rs`). Every ICMP message to one of our addresses is
    // counted in `icmp_received` and in exactly one of the others.
    pub icmp_received: u64,
    /// Truncated, bad checksum, or a quote that is not an IPv4 header.
    pub icmp_malformed: u64,
    /// Not an error about TCP (echo, redirect, ..., or a quote of another protocol), or
    /// about no connection of ours (no flow, a SYN-RECEIVED entry).
    pub icmp_not_ours: u64,
    /// Errors about a connection whose quoted sequence number is outside SND.UNA..SND.NXT.
    pub icmp_out_of_window: u64,
    /// In-window Fragmentation Needed / Packet Too Big.
    pub icmp_frag_needed: u64,
    /// In-window Destination Unreachable remembered as a soft error (SYN-SENT).
    pub icmp_soft_errors: u64,
    /// In-window messages that change nothing: Time Exceeded, Destination Unreachable once
    /// synchronized or of another code.
    pub icmp_ignored: u64,
    /// Fragmentation Needed / Packet Too Big that lowered a connection's MSS (the rest would
    /// not have lowered it: an increase, or at the floor).
    pub pmtu_decreases: u64,

    // IPv6 (a `Stack<Ipv6Addr>`; `stack/nd6.rs`). Packets rejected for an extension header
    // (RFC 8200 §4; `wire::ipv6::rejected_extension`), by type:
    /// Fragment headers (no reassembly; atomic fragments too).
    pub rx_ipv6_fragments: u64,
    /// Routing headers with Segments Left > 0.
    pub rx_ipv6_ext_routing: u64,
    /// Hop-by-Hop / Destination Options with an option that must not be skipped, or a chain
    /// longer than 8 headers.
    pub rx_ipv6_ext_options: u64,
    /// ESP, AH, Mobility, HIP, Shim6, experimental (253, 254), No Next Header.
    pub rx_ipv6_ext_other: u64,
    // Neighbor Discovery (RFC 4861).
    pub nd_solicits_received: u64,
    pub nd_solicits_sent: u64,
    pub nd_adverts_received: u64,
    pub nd_adverts_sent: u64,
    /// Neighbours that never answered: their waiting connections ended (`TimedOut`).
    pub nd_unreachable: u64,
}
