//! Neighbours: the IPv4 → MAC cache, ARP requests with retries and the give-up, and ARP
//! input (replies to requests for our addresses, learning from every ARP frame), in our
//! VLAN only (`StackConfig::vlan`: ARP of another VLAN, or untagged, is counted and dropped). A give-up
//! is only reported (`Stack::await_neighbor` returns false); `Stack::neighbor_unreachable`
//! in `slots.rs` acts on it.

use super::{Control, Stack};
use crate::tcp::FourTuple;
use crate::time::{Duration, Instant};
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::EtherType;
use crate::wire::{Error, EthernetAddress, Ipv4Addr, VlanId, parse_l2};

/// Interval between ARP requests for one neighbour, and how many go unanswered before the
/// connections waiting for it end with `TimedOut` (like Linux's `mcast_solicit` = 3).
const ARP_RETRY: Duration = Duration::from_secs(1);
const ARP_ATTEMPTS: u8 = 3;

impl Stack {
    /// Slot `index` has something to send to `tuple.remote_addr` and no MAC for it: asks
    /// for it (see `request_arp`) and keeps the slot in `waiting_arp` until the answer or
    /// the next retry. False once `ARP_ATTEMPTS` requests went unanswered: the next hop is
    /// unreachable, which the caller reports.
    pub(super) fn await_neighbor(&mut self, now: Instant, index: u32, tuple: &FourTuple) -> bool {
        if !self.request_arp(now, tuple.local_addr, tuple.remote_addr) {
            return false;
        }
        if !self.waiting_arp.contains(&index) {
            self.waiting_arp.push(index);
        }
        true
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

    pub(super) fn learn(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        if !mac.is_unicast() {
            return;
        }
        if self.neighbors.get(&ip) != Some(&mac) {
            self.neighbors.insert(ip, mac);
        }
        self.arp_requested.remove(&ip);
        if !self.waiting_arp.is_empty() {
            let waiting = core::mem::take(&mut self.waiting_arp);
            for index in waiting {
                self.mark_dirty(index);
            }
        }
    }

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

    /// A frame that is not TCP over IPv4 (in our VLAN or another): ARP is handled, the rest
    /// counted.
    pub(super) fn process_other(&mut self, frame: &[u8]) {
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
        self.learn(source_protocol_addr, source_hardware_addr);
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
