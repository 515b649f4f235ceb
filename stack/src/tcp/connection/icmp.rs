//! What ICMP may do to a connection (RFC 5927): lower the path MTU (RFC 1191 §6.3, RFC 8201
//! for IPv6), or, in SYN-SENT, leave a soft error to report if the connect times out (RFC
//! 1122 §4.2.3.9). Nothing else in ICMP changes a connection's state.
//!
//! Both hooks are family-neutral: the caller (the per-core stack) has parsed the ICMPv4 or
//! ICMPv6 message, matched the quoted 4-tuple to this connection, and turned an IPv4
//! "Fragmentation Needed" or an IPv6 "Packet Too Big" into an MTU (RFC 1191 §5's estimate
//! already applied where the router reported none). Both first check the quoted sequence
//! number against the data in flight (RFC 5927 §4.1, §5.1), so that a blind attacker must
//! guess it.

use super::*;

/// An ICMP Destination Unreachable remembered in SYN-SENT, reported when the connect times
/// out ([`Connection::soft_error`]). Family-neutral: ICMPv6's "no route" and "address
/// unreachable" map to `NetUnreachable` and `HostUnreachable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftError {
    NetUnreachable,
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
}

impl fmt::Display for SoftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SoftError::NetUnreachable => "network unreachable",
            SoftError::HostUnreachable => "host unreachable",
            SoftError::ProtocolUnreachable => "protocol unreachable",
            SoftError::PortUnreachable => "port unreachable",
        })
    }
}

/// What an ICMP error did to a connection (the stack counts each outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpOutcome {
    /// The quoted sequence number is not in SND.UNA..SND.NXT: ignored (RFC 5927 §4.1).
    OutOfWindow,
    /// The MSS went down to `mss`; data in flight is sent again in the smaller size.
    MssLowered { from: u16, mss: u16 },
    /// The MTU would not lower the MSS (an increase, or at the floor already): ignored
    /// (RFC 1191 §6.3: ICMP never raises the estimate).
    MssUnchanged,
    /// A soft error was remembered (SYN-SENT).
    SoftError,
    /// Not acted on in this state (a Destination Unreachable once synchronized, RFC 5461).
    Ignored,
}

/// Per address family: IP header length and the smallest MTU an ICMP may lower the path to.
/// IPv4's floor is Linux's `min_pmtu` (552: 512 bytes of TCP payload), which keeps forged
/// tiny MTUs from forcing tiny segments (RFC 5927 §7.2); IPv6's is its minimum link MTU
/// (RFC 8200 §5, RFC 8201 §4).
const IPV4_MTU: (u32, u32) = (20, 552);
const IPV6_MTU: (u32, u32) = (40, 1280);
/// TCP header without options: the MSS counts payload only (RFC 9293 §3.7.1).
const TCP_HEADER: u32 = 20;

impl<A: Address> Connection<A> {
    /// RFC 5927 §4.1, §5.1: an ICMP error is about this connection only if the sequence
    /// number it quotes is in SND.UNA..SND.NXT (`snd_max` here: SND.NXT rewinds after an
    /// RTO, but everything below the highest byte sent may be in the network).
    pub fn quote_in_window(&self, quoted_seq: SeqNumber) -> bool {
        quoted_seq >= self.snd_una && quoted_seq < self.snd_max
    }

    /// A path MTU report (IPv4 Fragmentation Needed, IPv6 Packet Too Big) about a segment
    /// starting at `quoted_seq`. The MSS follows the MTU down, never below the family's
    /// floor and never up; data in flight is presumed lost (it was larger than the path
    /// allows, so the router dropped it) and goes again from SND.UNA in the new size,
    /// without a congestion response (RFC 1191 §6.4, RFC 8201 §5.4: a smaller path is not
    /// congestion). A report in SYN-SENT caps the MSS the peer's SYN-ACK will offer.
    pub fn on_path_mtu(&mut self, mtu: u32, quoted_seq: SeqNumber, now: Instant) -> IcmpOutcome {
        if !self.quote_in_window(quoted_seq) {
            return IcmpOutcome::OutOfWindow;
        }
        let (ip_header, floor) = if A::V6 { IPV6_MTU } else { IPV4_MTU };
        let mss = (mtu.max(floor) - ip_header - TCP_HEADER).min(u32::from(u16::MAX)) as u16;
        // In SYN-SENT the MSS is not known yet (the SYN-ACK sets it, capped by `path_mss`):
        // compare with the largest it can become.
        let current = if self.state == State::SynSent {
            self.cfg.mss
        } else {
            self.snd_mss
        };
        let from = current.min(self.path_mss);
        if mss >= from {
            return IcmpOutcome::MssUnchanged;
        }
        self.path_mss = mss;
        self.snd_mss = self.snd_mss.min(mss);
        if self.state.is_synchronized() && self.snd_una != self.snd_max {
            // Go back to SND.UNA, as after an RTO but keeping the congestion window and the
            // RTO (nothing was congested): the loop below the window resends everything in
            // flight in the new size, skipping SACKed data.
            self.snd_nxt = self.snd_una;
            self.recovery = Recovery::None;
            self.rtx_next = None;
            self.recover = self.snd_max;
            self.high_rxt = self.snd_una;
            self.dupacks = 0;
            self.rtt_probe = None;
            if self.rtx_at.is_none() {
                self.rtx_at = Some(self.rtt.deadline(now));
            }
        }
        crate::trace::debug!(conn = %self.tuple, state = %self.state, mtu, from, mss, "path MTU lowered");
        IcmpOutcome::MssLowered { from, mss }
    }

    /// A Destination Unreachable (net, host, protocol, port) about a segment starting at
    /// `quoted_seq`. RFC 1122 §4.2.3.9: a soft error; in SYN-SENT it is remembered and the
    /// connect goes on, so that a timeout can say why ([`Connection::soft_error`]). Once
    /// synchronized it is ignored (RFC 5461 §4: treating it as hard lets a blind attacker
    /// reset connections).
    pub fn on_unreachable(&mut self, error: SoftError, quoted_seq: SeqNumber) -> IcmpOutcome {
        if !self.quote_in_window(quoted_seq) {
            return IcmpOutcome::OutOfWindow;
        }
        if self.state != State::SynSent {
            return IcmpOutcome::Ignored;
        }
        self.soft_error = Some(error);
        crate::trace::debug!(conn = %self.tuple, %error, "soft error in SYN-SENT");
        IcmpOutcome::SoftError
    }

    /// The soft error of an active open that has not completed (RFC 1122 §4.2.3.9): after
    /// [`Event::TimedOut`] in SYN-SENT, the likely cause (like Linux's `connect()` failing
    /// with `EHOSTUNREACH` rather than `ETIMEDOUT`). `None` once the handshake completed.
    pub fn soft_error(&self) -> Option<SoftError> {
        self.soft_error
    }

    /// The MSS limit the path MTU set (`u16::MAX`: no report yet).
    pub fn path_mss(&self) -> u16 {
        self.path_mss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn syn_sent() -> (Connection, Counters, SeqNumber) {
        let tuple = FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 40000,
            remote_port: 80,
        };
        let iss = SeqNumber(1000);
        let now = Instant::from_millis(1);
        let mut c = Connection::connect(&TcpConfig::default(), tuple, iss, 0, now);
        let mut counters = Counters::default();
        assert!(c.poll_transmit(now, &mut counters).is_some(), "the SYN");
        (c, counters, iss)
    }

    #[test]
    fn a_report_in_syn_sent_caps_the_peer_mss() {
        let (mut c, mut counters, iss) = syn_sent();
        let now = Instant::from_millis(2);
        assert_eq!(c.on_path_mtu(1280, iss + 1, now), IcmpOutcome::OutOfWindow);
        assert_eq!(
            c.on_path_mtu(1280, iss, now),
            IcmpOutcome::MssLowered {
                from: 1460,
                mss: 1240
            }
        );
        assert_eq!(c.on_path_mtu(1400, iss, now), IcmpOutcome::MssUnchanged);
        let syn_ack = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: TcpControl::Syn,
            seq_number: SeqNumber(5000),
            ack_number: Some(iss + 1),
            window_len: 65535,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        };
        c.handle_segment(now, &syn_ack, &mut counters);
        assert_eq!(c.state(), State::Established);
        assert_eq!((c.mss(), c.path_mss()), (1240, 1240));
        // Established with nothing in flight: even SND.UNA is outside SND.UNA..SND.NXT.
        assert_eq!(
            c.on_path_mtu(100, c.snd_una(), now),
            IcmpOutcome::OutOfWindow,
            "nothing in flight"
        );
    }

    #[test]
    fn soft_errors_only_in_syn_sent_and_in_window() {
        let (mut c, _, iss) = syn_sent();
        let e = SoftError::PortUnreachable;
        assert_eq!(c.on_unreachable(e, iss + 7), IcmpOutcome::OutOfWindow);
        assert_eq!(c.soft_error(), None);
        assert_eq!(c.on_unreachable(e, iss), IcmpOutcome::SoftError);
        assert_eq!(c.soft_error(), Some(e));
    }
}
