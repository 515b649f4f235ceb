//! ICMP input (RFC 5927): an ICMPv4 error to one of our addresses is matched to a connection
//! by the 4-tuple it quotes, and handed to that connection's hooks (`tcp/connection/icmp.rs`),
//! which check the quoted sequence number against the data in flight. Fragmentation Needed
//! lowers the MSS; Destination Unreachable in SYN-SENT is a soft error reported when the
//! connect times out ([`Stack::soft_error`]); nothing else changes state. Every message is
//! counted once (`icmp_*` in [`crate::tcp::Counters`]).
//!
//! [`Stack::icmp_error`] is the family-neutral entry: the IPv4 frame path below calls it,
//! and an ICMPv6 Packet Too Big / Destination Unreachable path calls it the same way.

use std::collections::VecDeque;

use super::{ConnHandle, Owner, Stack, StackFamily};
use crate::tcp::{FourTuple, IcmpOutcome, SoftError};
use crate::time::Instant;
use crate::wire::Error;
use crate::wire::ethernet::EthernetRepr;
use crate::wire::icmpv4::{
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, PROTOCOL_ICMP, QuotedTcp, Unreachable,
};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::{EthernetAddress, SeqNumber};

/// What an ICMP error says about one of our segments, whatever the IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// IPv4 Fragmentation Needed or IPv6 Packet Too Big: the path MTU (for IPv4, RFC 1191
    /// §5's estimate where the router reported none: see [`frag_needed_mtu`]).
    PathMtu(u32),
    /// Destination Unreachable: net, host, protocol or port.
    Unreachable(SoftError),
    /// Time Exceeded, or another Destination Unreachable code: changes nothing.
    Other,
}

/// Soft errors of finished active opens kept for [`Stack::soft_error`]; the oldest goes first.
pub(super) const SOFT_ERRORS_KEPT: usize = 64;

/// RFC 1191 §7's table of common MTU plateaus, largest first.
const PLATEAUS: [u16; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// The path MTU a Fragmentation Needed reports. RFC 1191 §5: a router older than RFC 1191
/// reports 0; then (and when the report is not smaller than the datagram it refused, which
/// cannot be right) the estimate is the largest plateau below the quoted datagram's length.
/// The connection applies the floor.
pub fn frag_needed_mtu(next_hop_mtu: u16, quoted_total_len: u16) -> u32 {
    if next_hop_mtu != 0 && next_hop_mtu < quoted_total_len {
        return u32::from(next_hop_mtu);
    }
    let plateau = PLATEAUS.iter().find(|&&p| p < quoted_total_len);
    u32::from(plateau.copied().unwrap_or(68))
}

impl Stack {
    /// An IPv4 datagram that is not a TCP segment (parse_tcp_frame said `Unsupported`): ICMP
    /// to our MAC and one of our addresses goes to [`Stack::icmp_error`]; anything else is
    /// not ours.
    pub(super) fn process_ipv4_other(&mut self, now: Instant, eth: &EthernetRepr, ip: &[u8]) {
        let packet = Ipv4Packet::new_unchecked(ip);
        let repr = match Ipv4Repr::parse(&packet) {
            Ok(r) => r,
            Err(Error::Unsupported) => {
                // A fragment: we do no reassembly.
                self.counters.rx_not_ours += 1;
                return;
            }
            Err(_) => {
                self.counters.rx_dropped_malformed += 1;
                return;
            }
        };
        let mac_ok = eth.dst_addr == self.cfg.mac || eth.dst_addr == EthernetAddress::BROADCAST;
        if repr.protocol != PROTOCOL_ICMP || !mac_ok || !self.is_local(repr.dst_addr) {
            self.counters.rx_not_ours += 1;
            return;
        }
        self.counters.icmp_received += 1;
        // `parse` checked the lengths: the payload is in bounds.
        let message = Icmpv4Packet::new_unchecked(packet.payload());
        let icmp = match Icmpv4Repr::parse(&message) {
            Ok(r) => r,
            Err(Error::Unsupported) => {
                self.counters.icmp_not_ours += 1;
                return;
            }
            Err(_e) => {
                self.counters.icmp_malformed += 1;
                crate::trace::debug!(reason = %_e, src = %repr.src_addr, "drop: malformed ICMP");
                return;
            }
        };
        let QuotedTcp {
            src_addr,
            dst_addr,
            src_port,
            dst_port,
            seq_number,
            total_len,
        } = icmp.quoted;
        let error = match icmp.message {
            Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu }) => {
                IcmpError::PathMtu(frag_needed_mtu(next_hop_mtu, total_len))
            }
            Icmpv4Message::DstUnreachable(Unreachable::Net) => {
                IcmpError::Unreachable(SoftError::NetUnreachable)
            }
            Icmpv4Message::DstUnreachable(Unreachable::Host) => {
                IcmpError::Unreachable(SoftError::HostUnreachable)
            }
            Icmpv4Message::DstUnreachable(Unreachable::Protocol) => {
                IcmpError::Unreachable(SoftError::ProtocolUnreachable)
            }
            Icmpv4Message::DstUnreachable(Unreachable::Port) => {
                IcmpError::Unreachable(SoftError::PortUnreachable)
            }
            Icmpv4Message::DstUnreachable(Unreachable::Other(_))
            | Icmpv4Message::TimeExceeded { .. } => IcmpError::Other,
        };
        // The quote is our segment as sent: our side is its source.
        let tuple = FourTuple {
            local_addr: src_addr,
            remote_addr: dst_addr,
            local_port: src_port,
            remote_port: dst_port,
        };
        self.icmp_error(now, &tuple, seq_number, error);
    }
}

impl<A: StackFamily> Stack<A> {
    /// An ICMP error about the segment of `tuple` (our side local) that started at
    /// `quoted_seq`: handed to its connection, counted by outcome (the caller has counted
    /// `icmp_received`). `None` when no connection has the tuple (a SYN-RECEIVED entry has
    /// no data in flight to resize, and a handshake that fails retries on its own).
    pub fn icmp_error(
        &mut self,
        now: Instant,
        tuple: &FourTuple<A>,
        quoted_seq: SeqNumber,
        error: IcmpError,
    ) -> Option<IcmpOutcome> {
        let conn = match self.flows.get(tuple).map(Owner::decode) {
            Some(Owner::Slot(index)) => self.conns[index as usize].get_mut().map(|c| (index, c)),
            _ => None,
        };
        let Some((index, conn)) = conn else {
            self.counters.icmp_not_ours += 1;
            crate::trace::debug!(conn = %tuple, ?error, "ICMP ignored: no connection");
            return None;
        };
        let outcome = match error {
            IcmpError::PathMtu(mtu) => conn.on_path_mtu(mtu, quoted_seq, now),
            IcmpError::Unreachable(e) => conn.on_unreachable(e, quoted_seq),
            IcmpError::Other if conn.quote_in_window(quoted_seq) => IcmpOutcome::Ignored,
            IcmpError::Other => IcmpOutcome::OutOfWindow,
        };
        let c = &mut self.counters;
        match outcome {
            IcmpOutcome::OutOfWindow => {
                c.icmp_out_of_window += 1;
                crate::trace::debug!(conn = %tuple, seq = quoted_seq.0, ?error, "ICMP ignored: quoted sequence out of window");
            }
            IcmpOutcome::MssLowered { .. } => {
                c.icmp_frag_needed += 1;
                c.pmtu_decreases += 1;
                // It has data to send again.
                self.mark_dirty(index);
            }
            IcmpOutcome::MssUnchanged => {
                c.icmp_frag_needed += 1;
                crate::trace::debug!(conn = %tuple, ?error, "path MTU report ignored: not lower");
            }
            IcmpOutcome::SoftError => c.icmp_soft_errors += 1,
            IcmpOutcome::Ignored => {
                c.icmp_ignored += 1;
                crate::trace::debug!(conn = %tuple, ?error, "ICMP ignored: changes nothing");
            }
        }
        Some(outcome)
    }

    /// The soft error (RFC 1122 §4.2.3.9) of an active open: while it is in SYN-SENT, and,
    /// after its [`crate::tcp::Event::TimedOut`], the reason the connect most likely failed
    /// (an ICMP Destination Unreachable it saw), for the last [`SOFT_ERRORS_KEPT`] such
    /// timeouts. `None` if it saw none, or completed its handshake.
    pub fn soft_error(&self, h: ConnHandle) -> Option<SoftError> {
        if let Some(c) = self.connection(h) {
            return c.soft_error();
        }
        self.soft_errors
            .iter()
            .rev()
            .find(|(x, _)| *x == h)
            .map(|&(_, e)| e)
    }
}

/// Keeps the soft error of a finished connection for [`Stack::soft_error`] (from `settle`).
pub(super) fn keep_soft_error(
    kept: &mut VecDeque<(ConnHandle, SoftError)>,
    h: ConnHandle,
    e: SoftError,
) {
    if kept.len() == SOFT_ERRORS_KEPT {
        kept.pop_front();
    }
    kept.push_back((h, e));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1191_estimate() {
        assert_eq!(frag_needed_mtu(1280, 1500), 1280);
        // Old router: the plateau below the refused datagram.
        assert_eq!(frag_needed_mtu(0, 1500), 1492);
        assert_eq!(frag_needed_mtu(0, 1492), 1006);
        assert_eq!(frag_needed_mtu(0, 40), 68);
        // A report not below the datagram it refused is not believed.
        assert_eq!(frag_needed_mtu(1500, 1500), 1492);
        assert_eq!(frag_needed_mtu(9000, 1500), 1492);
    }
}
