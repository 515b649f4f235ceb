//! Neighbours: the IPv4 → MAC cache and its ageing, ARP requests with retries and the
//! give-up, and ARP input (replies to requests for our addresses, learning from every ARP
//! frame), in our VLAN only (`StackConfig::vlan`: ARP of another VLAN, or untagged, is
//! counted and dropped). A give-up is only reported (`Stack::await_neighbor` returns false);
//! `Stack::neighbor_unreachable` in `slots.rs` acts on it.
//!
//! Ageing: an entry learned from ARP or given with [`Stack::update_neighbor`] may be used
//! for [`NEIGHBOR_LIFETIME`] after it was last learned or confirmed (RFC 4861's
//! REACHABLE_TIME base, 30 s); after that it is a miss, and the next connection that needs
//! it asks again (ARP, or the engine's resolver). Entries given with
//! [`Stack::add_neighbor`] never age (like the kernel's `permanent`), and neither ARP nor
//! `update_neighbor` overwrites them. TCP progress does not extend an entry: the engine's
//! resolver re-reads the kernel's entry for every next hop in use about once a second
//! (`engine/neighbor.rs`), which confirms it and is what notices a changed MAC, so a
//! confirmation hook on the per-segment path would buy nothing. A changed MAC also
//! re-points the live connections to that address (one walk over the slots per change;
//! changes are rare), since each connection keeps the MAC it first used.

use std::collections::HashMap;

use super::family::Resolve;
use super::{Control, Stack, StackFamily};
use crate::tcp::FourTuple;
use crate::time::{Duration, Instant};
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::EtherType;
use crate::wire::{Error, EthernetAddress, Ipv4Addr, VlanId, parse_l2};

/// How long a learned or confirmed neighbour entry may be used (see the module docs).
pub const NEIGHBOR_LIFETIME: Duration = Duration::from_secs(30);

/// A neighbour cache entry: the MAC and until when it may be used (`None`: never ages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NeighborEntry {
    mac: EthernetAddress,
    expires: Option<Instant>,
}

/// What [`Stack::update_neighbor`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborUpdate {
    /// No usable entry before (none, or an expired one).
    New,
    /// The same MAC: the entry's lifetime starts again.
    Confirmed,
    /// Another MAC than before: the entry and the live connections to the address use it.
    Changed,
    /// A static entry ([`Stack::add_neighbor`]) is left alone.
    Static,
}

/// Interval between ARP requests for one neighbour, and how many go unanswered before the
/// connections waiting for it end with `TimedOut` (like Linux's `mcast_solicit` = 3).
const ARP_RETRY: Duration = Duration::from_secs(1);
const ARP_ATTEMPTS: u8 = 3;

/// The cached MAC for `ip` in `cache`, unless its entry expired by `now` (a free function so
/// that callers holding a slot's metadata can borrow the cache beside it).
#[inline]
pub(super) fn lookup<A: StackFamily>(
    cache: &HashMap<A, NeighborEntry>,
    now: Instant,
    ip: A,
) -> Option<EthernetAddress> {
    cache
        .get(&ip)
        .filter(|e| e.expires.is_none_or(|t| now < t))
        .map(|e| e.mac)
}

impl<A: StackFamily> Stack<A> {
    /// Slot `index` has something to send to `tuple.remote_addr` and no MAC for it: asks
    /// for it (ARP: `request_arp`; ND: `nd6.rs`) and keeps the slot in `waiting_arp` until
    /// the answer or the next retry. `Unreachable` once the neighbour protocol gave up
    /// (`ARP_ATTEMPTS` requests, or ND's solicitations, unanswered), which the caller
    /// reports.
    pub(super) fn await_neighbor(
        &mut self,
        now: Instant,
        index: u32,
        tuple: &FourTuple<A>,
    ) -> Resolve {
        let r = A::request_neighbor(self, now, tuple.local_addr, tuple.remote_addr);
        if r == Resolve::Unreachable {
            return r;
        }
        if !self.waiting_arp.contains(&index) {
            self.waiting_arp.push(index);
        }
        if r == Resolve::Known {
            // The MAC is in the cache now: look again on the next poll.
            self.arp_retry_at = Some(now);
        }
        r
    }

    /// The timer stage's part: when an ARP retry is due, the slots waiting for a neighbour
    /// get another look.
    #[inline]
    pub(super) fn neighbor_timers(&mut self, now: Instant) {
        if self.arp_retry_at.is_some_and(|t| now >= t) {
            // Connections waiting for a neighbour have no timer of their own (their SYN never
            // left): look at them again, which retries the request or gives up.
            self.arp_retry_at = None;
            for index in core::mem::take(&mut self.waiting_arp) {
                self.mark_dirty(index);
            }
        }
    }

    /// The cached MAC for `ip`, unless its entry expired by `now`.
    #[inline]
    pub(super) fn cached_neighbor(&self, now: Instant, ip: A) -> Option<EthernetAddress> {
        lookup(&self.neighbors, now, ip)
    }

    /// Teaches the stack a neighbour's MAC that ages ([`NEIGHBOR_LIFETIME`] from `now`):
    /// what the engine does with the kernel's neighbour entries. See the module docs.
    pub fn update_neighbor(&mut self, now: Instant, ip: A, mac: EthernetAddress) -> NeighborUpdate {
        self.learn(ip, mac, Some(now + NEIGHBOR_LIFETIME))
    }

    /// Enters `ip` → `mac` with the given expiry (`None`: static) and wakes the connections
    /// waiting for a neighbour. Multicast and broadcast MACs are ignored.
    pub(super) fn learn(
        &mut self,
        ip: A,
        mac: EthernetAddress,
        expires: Option<Instant>,
    ) -> NeighborUpdate {
        if !mac.is_unicast() {
            return NeighborUpdate::Static;
        }
        let old = self.neighbors.get(&ip).copied();
        let outcome = match old {
            Some(e) if e.expires.is_none() && expires.is_some() => return NeighborUpdate::Static,
            Some(e) if e.mac != mac => NeighborUpdate::Changed,
            Some(e) if e.expires.is_none_or(|t| self.now < t) => NeighborUpdate::Confirmed,
            _ => NeighborUpdate::New,
        };
        self.neighbors.insert(ip, NeighborEntry { mac, expires });
        if outcome == NeighborUpdate::Changed {
            self.repoint(ip, mac);
        }
        self.arp_requested.remove(&ip);
        if !self.waiting_arp.is_empty() {
            let waiting = core::mem::take(&mut self.waiting_arp);
            for index in waiting {
                self.mark_dirty(index);
            }
        }
        outcome
    }

    /// The live connections to `ip` that already picked a MAC send to `mac` from now on.
    fn repoint(&mut self, ip: A, mac: EthernetAddress) {
        for (meta, cell) in self.meta.iter_mut().zip(&self.conns) {
            if meta.peer_mac().is_some() && cell.get().is_some_and(|c| c.tuple().remote_addr == ip)
            {
                meta.peer_mac = mac;
            }
        }
    }
}

impl Stack {
    /// Asks for `target`'s MAC (at most once per `ARP_RETRY`). False once `ARP_ATTEMPTS`
    /// requests went unanswered: the next hop is unreachable.
    pub(super) fn request_arp(&mut self, now: Instant, src: Ipv4Addr, target: Ipv4Addr) -> bool {
        if !self.cfg.arp {
            // The driver resolves neighbours (the AF_XDP engine asks the kernel).
            return true;
        }
        let attempts = match self.arp_requested.get(&target) {
            Some(&(at, _)) if now.saturating_since(at) < ARP_RETRY => return true,
            Some(&(_, n)) if n >= ARP_ATTEMPTS => {
                self.arp_requested.remove(&target);
                return false;
            }
            Some(&(_, n)) => n + 1,
            None => 1,
        };
        self.arp_requested.insert(target, (now, attempts));
        let retry = now + ARP_RETRY;
        self.arp_retry_at = Some(self.arp_retry_at.map_or(retry, |t| t.min(retry)));
        self.push_control(Control::Arp {
            dst_mac: EthernetAddress::BROADCAST,
            repr: ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: src,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: target,
            },
        });
        true
    }

    /// A frame that is not a TCP segment (in our VLAN or another): ARP here, other IPv4
    /// (ICMP) in `icmp.rs`, the rest counted.
    pub(super) fn process_arp_or_icmp(&mut self, now: Instant, frame: &[u8]) {
        let l2 = match parse_l2(frame) {
            Ok(l2) => l2,
            Err(Error::Unsupported) => {
                self.counters.rx_vlan_double_tagged += 1;
                return;
            }
            Err(_) => {
                self.counters.rx_dropped_malformed += 1;
                return;
            }
        };
        if l2.vid() != self.cfg.vlan.map_or(0, VlanId::get) {
            self.counters.rx_vlan_mismatch += 1;
            return;
        }
        if l2.ethertype() == EtherType::Ipv4 {
            return self.process_ipv4_other(now, &l2.eth, l2.payload);
        }
        if l2.ethertype() != EtherType::Arp {
            self.counters.rx_not_ours += 1;
            return;
        }
        let Ok(pkt) = ArpPacket::new_checked(l2.payload) else {
            self.counters.rx_dropped_malformed += 1;
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            self.counters.rx_dropped_malformed += 1;
            return;
        };
        if !self.is_local(target_protocol_addr) {
            self.counters.rx_not_ours += 1;
            return;
        }
        let expires = Some(self.now + NEIGHBOR_LIFETIME);
        self.learn(source_protocol_addr, source_hardware_addr, expires);
        if operation == ArpOperation::Request && self.cfg.arp {
            self.push_control(Control::Arp {
                dst_mac: source_hardware_addr,
                repr: ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: self.cfg.mac,
                    source_protocol_addr: target_protocol_addr,
                    target_hardware_addr: source_hardware_addr,
                    target_protocol_addr: source_protocol_addr,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::{MemoryLink, MemoryLinkConfig};
    use crate::stack::StackConfig;
    use std::net::SocketAddrV4;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const OLD: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const NEW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 3]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn stack(now: Instant) -> Stack {
        let cfg = StackConfig {
            mac: MAC,
            ips: vec![IP],
            arp: false,
            ..StackConfig::default()
        };
        Stack::new(cfg, now)
    }

    fn sent_to(link: &mut MemoryLink) -> Vec<EthernetAddress> {
        let mut out = Vec::new();
        link.drain_tx(|f| out.push(crate::wire::parse_tcp_frame(f).unwrap().eth.dst_addr));
        out
    }

    #[test]
    fn entries_age_and_static_ones_do_not() {
        let t0 = Instant::from_secs(10);
        let mut s = stack(t0);
        assert_eq!(s.update_neighbor(t0, PEER, OLD), NeighborUpdate::New);
        assert_eq!(s.update_neighbor(t0, PEER, OLD), NeighborUpdate::Confirmed);
        assert_eq!(
            s.cached_neighbor(t0 + (NEIGHBOR_LIFETIME - Duration::from_micros(1)), PEER),
            Some(OLD)
        );
        assert_eq!(
            s.cached_neighbor(t0 + NEIGHBOR_LIFETIME, PEER),
            None,
            "expired"
        );
        let t1 = t0 + NEIGHBOR_LIFETIME;
        s.now = t1;
        assert_eq!(s.neighbor(PEER), None);
        assert_eq!(
            s.update_neighbor(t1, PEER, OLD),
            NeighborUpdate::New,
            "after expiry"
        );
        assert_eq!(s.update_neighbor(t1, PEER, NEW), NeighborUpdate::Changed);
        assert_eq!(s.neighbor(PEER), Some(NEW));
        assert_eq!(
            s.update_neighbor(t1, PEER, EthernetAddress::BROADCAST),
            NeighborUpdate::Static,
            "ignored"
        );
        // A static entry never ages and is not overwritten.
        let other = Ipv4Addr::new(10, 0, 0, 3);
        s.add_neighbor(other, OLD);
        assert_eq!(s.update_neighbor(t1, other, NEW), NeighborUpdate::Static);
        assert_eq!(
            s.cached_neighbor(t1 + Duration::from_secs(1_000_000), other),
            Some(OLD)
        );
    }

    #[test]
    fn a_changed_mac_repoints_live_connections() {
        let t0 = Instant::from_secs(10);
        let mut s = stack(t0);
        let mut link = MemoryLink::new(MemoryLinkConfig::default());
        s.update_neighbor(t0, PEER, OLD);
        s.connect(t0, None, SocketAddrV4::new(PEER, 80)).unwrap();
        s.poll(t0, &mut link);
        assert_eq!(sent_to(&mut link), vec![OLD], "the SYN");
        assert_eq!(s.update_neighbor(t0, PEER, NEW), NeighborUpdate::Changed);
        // The SYN's retransmission (initial RTO 1 s) goes to the new MAC.
        let t1 = t0 + Duration::from_secs(2);
        s.poll(t1, &mut link);
        assert_eq!(sent_to(&mut link), vec![NEW]);
        // A new connection once the entry expired has no MAC: it waits (the engine's
        // resolver asks the kernel) and sends nothing.
        let t2 = t0 + NEIGHBOR_LIFETIME;
        s.connect(t2, None, SocketAddrV4::new(PEER, 81)).unwrap();
        s.poll(t2, &mut link);
        let sent = sent_to(&mut link);
        assert!(sent.iter().all(|&m| m == NEW), "{sent:?}");
        assert!(s.waiting_arp.len() == 1, "waits for a neighbour");
    }
}
