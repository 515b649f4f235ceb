//! Egress: control replies (RST, SYN-ACK, TIME-WAIT ACK, ARP) first, then what every touched
//! connection has to send, each touched slot settled after it (`slots.rs`). Every frame
//! carries the configured VLAN's tag (`StackConfig::vlan`), if any.

use std::collections::HashMap;

use super::neighbor::NeighborEntry;
use super::{Control, MAX_CONTROL, SM_MAC, SlotMeta, Stack, StackConfig, StackFamily};
use crate::link::Link;
use crate::tcp::{Connection, Counters, FourTuple, rst_for_unexpected};
use crate::time::Instant;
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::ethernet::EtherType;
use crate::wire::frame::{emit_icmpv6_frame, emit_l2, l2_header_len};
use crate::wire::icmpv6::Icmpv6Repr;
use crate::wire::{EthernetAddress, Ipv6Addr, TcpControl, TcpRepr, VlanId};

/// What became of one slot's transmission.
pub(super) enum Tx {
    /// Everything sent, or nothing to send, or waiting for the neighbour's MAC.
    Done,
    /// The link ran out of TX frames.
    NoBuffer,
    /// The next hop's MAC is not known (asked for by the caller, `Stack::await_neighbor`).
    NoNeighbor,
}

impl<A: StackFamily> Stack<A> {
    pub(super) fn dispatch<L: Link>(&mut self, now: Instant, link: &mut L) {
        // Stateless replies first: they are small and often time-critical (SYN-ACKs).
        if !self.transmit_control(link) {
            return;
        }
        // The list is walked as a local (no bounds check, no reload of its length after each
        // call): nothing in transmission or `settle` marks a slot dirty.
        let mut dirty = core::mem::take(&mut self.dirty);
        let mut rest = dirty.iter();
        while let Some(&index) = rest.next() {
            if !self.transmit_and_settle(now, index, link) {
                // TX ring full: keep this slot and the rest dirty for the next poll. Those
                // settled counted from what the iterator has left, not by a count kept per
                // slot (a register, or a spill, across each transmission).
                let settled = dirty.len() - rest.len() - 1;
                self.counters.tx_no_buffer += 1;
                dirty.drain(..settled);
                self.restore_dirty(dirty);
                return;
            }
        }
        dirty.clear();
        self.restore_dirty(dirty);
        // Every slot settled: no deadline is left deferred (`link_pending_timers`), and the
        // list is empty.
        self.timers_deferred = false;
        self.dirty_flags = 0;
    }

    /// Puts the dirty list `dispatch` took back (its allocation kept), ahead of anything
    /// marked dirty meanwhile (nothing is, see `dispatch`; kept correct anyway).
    #[inline(always)]
    fn restore_dirty(&mut self, mut dirty: Vec<u32>) {
        debug_assert!(
            self.dirty.is_empty(),
            "nothing marks a slot dirty in dispatch"
        );
        if !self.dirty.is_empty() {
            dirty.append(&mut self.dirty);
        }
        self.dirty = dirty;
    }

    /// Sends the queued control replies; false when the link ran out of TX frames. Out of
    /// line and borrowing each reply: when `Connection` became generic over the address
    /// family, `dispatch` grew past the point where the link's `transmit` (with a copy of
    /// the reply in its closure) was inlined into it, +1.2 % instructions per IPv4 server
    /// lifecycle (callgrind, docs/ipv6.md); this way it is +0.6 %.
    #[inline(never)]
    fn transmit_control<L: Link>(&mut self, link: &mut L) -> bool {
        // By reference: the closure need not copy the reply. The queue is read in place
        // and emptied once at the end, not popped per reply.
        let mut sent = 0usize;
        let ok = transmit_controls(self.control.unread(), &self.cfg, link, &mut sent);
        self.counters.tx_frames += sent as u64;
        if ok {
            self.control.clear();
        } else {
            // Those not sent stay queued, in order, for the next poll.
            self.control.consume(sent);
            self.counters.tx_no_buffer += 1;
        }
        ok
    }

    pub(super) fn push_control(&mut self, c: Control<A>) {
        if self.control.len() >= MAX_CONTROL {
            self.counters.tx_no_buffer += 1;
            return;
        }
        self.control.push(c);
    }

    pub(super) fn reply(
        &mut self,
        tuple: &FourTuple<A>,
        peer_mac: EthernetAddress,
        repr: TcpRepr<'static>,
    ) {
        if repr.control == TcpControl::Rst {
            self.counters.resets_sent += 1;
        }
        self.push_control(Control::Tcp {
            dst_mac: peer_mac,
            src_ip: tuple.local_addr,
            dst_ip: tuple.remote_addr,
            repr,
        });
    }

    pub(super) fn reset(&mut self, tuple: &FourTuple<A>, peer_mac: EthernetAddress, seg: &TcpRepr) {
        if seg.control == TcpControl::Rst {
            self.counters.resets_received += 1;
        }
        if let Some(r) = rst_for_unexpected(seg) {
            self.reply(tuple, peer_mac, r);
        }
    }

    pub(super) fn ts_now(&self, now: Instant, tuple: &FourTuple<A>) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.isn.ts_offset(tuple))
    }
}

fn emit_arp(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    vlan: Option<VlanId>,
    repr: &ArpRepr,
) -> usize {
    let len = l2_header_len(vlan) + repr.buffer_len();
    if buf.len() < len {
        return 0;
    }
    let l2 = emit_l2(buf, src, dst, vlan, EtherType::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[l2..len]));
    len
}

/// A Neighbor Solicitation or Advertisement, tagged with `vlan` when given (the untagged
/// frame written a tag's length in, then the MACs and the tag in front of its EtherType).
fn emit_nd(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    vlan: Option<VlanId>,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    repr: &Icmpv6Repr,
) -> usize {
    let tag = if vlan.is_some() {
        crate::wire::vlan::TAG_LEN
    } else {
        0
    };
    let Some(inner) = buf.get_mut(tag..) else {
        return 0;
    };
    let Ok(len) = emit_icmpv6_frame(inner, src, dst, src_ip, dst_ip, repr) else {
        return 0;
    };
    if vlan.is_some() {
        emit_l2(buf, src, dst, vlan, EtherType::Ipv6);
    }
    len + tag
}

/// Sends everything `conn` (slot `meta`) has ready; `Tx::NoNeighbor` when the next hop's MAC
/// is not known (the caller asks for it). A free function over the fields it needs, so that
/// `Stack::transmit_and_settle` (slots.rs) keeps its one lookup of the slot's meta and block
/// for transmission and settling both.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn transmit_conn<A: StackFamily, L: Link>(
    conn: &mut Connection<A>,
    meta: &mut SlotMeta,
    neighbors: &HashMap<A, NeighborEntry>,
    counters: &mut Counters,
    cfg: &StackConfig,
    now: Instant,
    link: &mut L,
) -> Tx {
    if !conn.wants_transmit() {
        return Tx::Done;
    }
    // The slot's MAC when it has one; else the cache's, kept in the slot.
    if !meta.has(SM_MAC) {
        match super::neighbor::lookup(neighbors, now, conn.tuple().remote_addr) {
            Some(m) => {
                meta.peer_mac = m;
                meta.flags |= SM_MAC;
            }
            None => return Tx::NoNeighbor,
        }
    }
    let dst_mac = &meta.peer_mac;
    // `wants_transmit` held above and nothing since has touched the connection: the first
    // segment is asked for without testing it again.
    loop {
        // What the closure sent: `NOTHING`, `SENT` or `LAST` (a bare FIN).
        let mut sent = NOTHING;
        let out = &mut sent;
        let (c, ctr) = (&mut *conn, &mut *counters);
        // The segment is emitted where `poll_transmit` returned it (matched by
        // reference): binding it by value copied the ~100-byte `TcpRepr` out of the
        // `Option` first.
        // A bare FIN (the server's FIN+ACK after the peer's FIN) is built and written in
        // its compact form (`Connection::poll_bare_fin`, `BareRepr`); anything else
        // through the generic segment. A `move` closure of five words: the config, the
        // slot's MAC and the connection by reference, read where the frame is written
        // (copies of MACs and addresses into the closure cost more than they saved).
        let ok = link.transmit(move |buf| {
            let (mac, vlan, dst_mac) = (cfg.mac, cfg.vlan, *dst_mac);
            if let Some(bare) = c.poll_bare_fin(now) {
                *out = LAST;
                let t = c.tuple();
                return A::emit_compact_frame(
                    buf,
                    vlan,
                    mac,
                    dst_mac,
                    t.local_addr,
                    t.remote_addr,
                    &bare,
                )
                .unwrap_or(0);
            }
            let t = c.tuple();
            match &c.poll_transmit(now, ctr) {
                Some(repr) => {
                    *out = SENT;
                    A::emit_frame(buf, vlan, mac, dst_mac, t.local_addr, t.remote_addr, repr)
                        .unwrap_or(0)
                }
                None => 0,
            }
        });
        if !ok {
            return Tx::NoBuffer;
        }
        if sent == NOTHING {
            break;
        }
        counters.tx_frames += 1;
        // Nothing follows a bare FIN: `wants_transmit` is false after it (the unit test
        // `bare_fin_matches_poll_transmit` asserts it).
        if sent == LAST || !conn.wants_transmit() {
            break;
        }
    }
    Tx::Done
}

/// What `transmit_conn`'s closure sent.
const NOTHING: u8 = 0;
const SENT: u8 = 1;
const LAST: u8 = 2;

/// Sends `replies` in order, counting each sent one in `sent`; false when the link ran out
/// of TX frames (the rest unsent).
#[inline(always)]
fn transmit_controls<A: StackFamily, L: Link>(
    replies: &[Control<A>],
    cfg: &StackConfig,
    link: &mut L,
    sent: &mut usize,
) -> bool {
    for c in replies {
        // The SYN-ACK, nearly every reply, tested first (not through the match's table). A
        // `move` closure of two words (the reply and the config, read where the frame is
        // written).
        let ok = link.transmit(move |buf| match c {
            Control::SynAck {
                dst_mac,
                src_ip,
                dst_ip,
                repr,
            } => A::emit_compact_frame(buf, cfg.vlan, cfg.mac, *dst_mac, *src_ip, *dst_ip, repr)
                .unwrap_or(0),
            c => emit_other_control(buf, cfg.mac, cfg.vlan, c),
        });
        if !ok {
            return false;
        }
        *sent += 1;
    }
    true
}

/// The control replies other than a SYN-ACK (RST, TIME-WAIT ACK, ARP, ND).
fn emit_other_control<A: StackFamily>(
    buf: &mut [u8],
    mac: EthernetAddress,
    vlan: Option<VlanId>,
    c: &Control<A>,
) -> usize {
    match c {
        Control::Tcp {
            dst_mac,
            src_ip,
            dst_ip,
            repr,
        } => A::emit_frame(buf, vlan, mac, *dst_mac, *src_ip, *dst_ip, repr).unwrap_or(0),
        Control::SynAck {
            dst_mac,
            src_ip,
            dst_ip,
            repr,
        } => A::emit_compact_frame(buf, vlan, mac, *dst_mac, *src_ip, *dst_ip, repr).unwrap_or(0),
        Control::Arp { dst_mac, repr } => emit_arp(buf, mac, *dst_mac, vlan, repr),
        Control::Nd {
            dst_mac,
            src_ip,
            dst_ip,
            repr,
        } => emit_nd(buf, mac, *dst_mac, vlan, *src_ip, *dst_ip, repr),
    }
}
