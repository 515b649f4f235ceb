//! Egress: control replies (RST, SYN-ACK, TIME-WAIT ACK, ARP) first, then what every touched
//! connection has to send, each touched slot settled after it (`slots.rs`). Every frame
//! carries the configured VLAN's tag (`StackConfig::vlan`), if any.

use super::{Control, MAX_CONTROL, SM_DIRTY, SM_MAC, Stack};
use crate::link::Link;
use crate::tcp::{FourTuple, rst_for_unexpected};
use crate::time::Instant;
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::ethernet::EtherType;
use crate::wire::frame::{emit_l2, l2_header_len};
use crate::wire::{EthernetAddress, TcpControl, TcpRepr, VlanId, emit_tcp_frame_vlan};

/// What became of one slot's transmission.
enum Tx {
    /// Everything sent, or nothing to send, or waiting for the neighbour's MAC.
    Done,
    /// The link ran out of TX frames.
    NoBuffer,
    /// The next hop never answered ARP: the slot is reported to `Stack::neighbor_unreachable`.
    Unreachable,
}

impl Stack {
    pub(super) fn dispatch<L: Link>(&mut self, now: Instant, link: &mut L) {
        // Stateless replies first: they are small and often time-critical (SYN-ACKs).
        let (mac, vlan) = (self.cfg.mac, self.cfg.vlan);
        // Emitted from the queue in place (an entry is ~140 bytes: not copied out first).
        while let Some(c) = self.control.front() {
            let ok = link.transmit(|buf| match *c {
                Control::Tcp {
                    dst_mac,
                    src_ip,
                    dst_ip,
                    ref repr,
                } => {
                    emit_tcp_frame_vlan(buf, vlan, mac, dst_mac, src_ip, dst_ip, repr).unwrap_or(0)
                }
                Control::Arp { dst_mac, ref repr } => emit_arp(buf, mac, dst_mac, vlan, repr),
            });
            if !ok {
                self.counters.tx_no_buffer += 1;
                return;
            }
            self.counters.tx_frames += 1;
            self.control.pop_front();
        }
        let mut i = 0;
        while i < self.dirty.len() {
            let index = self.dirty[i];
            match self.transmit_slot(now, index, link) {
                Tx::Done => {}
                Tx::Unreachable => self.neighbor_unreachable(now, index),
                Tx::NoBuffer => {
                    // TX ring full: keep the rest dirty for the next poll.
                    self.counters.tx_no_buffer += 1;
                    self.dirty.drain(..i);
                    return;
                }
            }
            self.meta[index as usize].set(SM_DIRTY, false);
            self.settle(index);
            i += 1;
        }
        self.dirty.clear();
    }

    /// Sends everything one connection has ready.
    fn transmit_slot<L: Link>(&mut self, now: Instant, index: u32, link: &mut L) -> Tx {
        let (mac, vlan) = (self.cfg.mac, self.cfg.vlan);
        let meta = &mut self.meta[index as usize];
        let Some(conn) = self.conns[index as usize].0.as_mut() else {
            return Tx::Done;
        };
        if !conn.wants_transmit() {
            return Tx::Done;
        }
        let tuple = conn.tuple();
        let dst_mac = match meta
            .peer_mac()
            .or_else(|| super::neighbor::lookup(&self.neighbors, now, tuple.remote_addr))
        {
            Some(m) => {
                meta.peer_mac = m;
                meta.flags |= SM_MAC;
                m
            }
            None => {
                return if self.await_neighbor(now, index, &tuple) {
                    Tx::Done
                } else {
                    Tx::Unreachable
                };
            }
        };
        let counters = &mut self.counters;
        while conn.wants_transmit() {
            let mut sent = false;
            let ok = link.transmit(|buf| match conn.poll_transmit(now, counters) {
                Some(repr) => {
                    sent = true;
                    emit_tcp_frame_vlan(
                        buf,
                        vlan,
                        mac,
                        dst_mac,
                        tuple.local_addr,
                        tuple.remote_addr,
                        &repr,
                    )
                    .unwrap_or(0)
                }
                None => 0,
            });
            if !ok {
                return Tx::NoBuffer;
            }
            if !sent {
                break;
            }
            counters.tx_frames += 1;
        }
        Tx::Done
    }

    pub(super) fn push_control(&mut self, c: Control) {
        if self.control.len() >= MAX_CONTROL {
            self.counters.tx_no_buffer += 1;
            return;
        }
        self.control.push_back(c);
    }

    pub(super) fn reply(
        &mut self,
        tuple: &FourTuple,
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

    pub(super) fn reset(&mut self, tuple: &FourTuple, peer_mac: EthernetAddress, seg: &TcpRepr) {
        if seg.control == TcpControl::Rst {
            self.counters.resets_received += 1;
        }
        if let Some(r) = rst_for_unexpected(seg) {
            self.reply(tuple, peer_mac, r);
        }
    }

    pub(super) fn ts_now(&self, now: Instant, tuple: &FourTuple) -> u32 {
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
