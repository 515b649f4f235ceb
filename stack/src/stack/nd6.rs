//! The IPv6 stack's non-TCP input and its neighbour protocol: ICMPv6 Neighbor Solicitation
//! (answered for our addresses, RFC 4861 §7.2.4, and learned from, §7.2.3), Neighbor
//! Advertisement (§7.2.5), Packet Too Big (RFC 8201) and Destination Unreachable (RFC 4443
//! §3.1: a soft error in SYN-SENT, RFC 1122 §4.2.3.9) through [`Stack::icmp_error`], with
//! RFC 5927's window check, and address resolution for connections that have no MAC for their
//! peer (`nd::NeighborCache6`: INCOMPLETE with multicast solicitations to the solicited-node
//! address, then REACHABLE / STALE / DELAY / PROBE). The stack's generic neighbour cache
//! (`neighbor.rs`, what egress reads) gets each resolved MAC; `nd::NeighborCache6` keeps the
//! RFC 4861 states and timers. A neighbour that never answers ends its waiting connections
//! the way an ARP give-up does (`Stack::neighbor_unreachable`).
//!
//! Extension headers the wire layer rejects are counted by type
//! (`rx_ipv6_fragments`, `rx_ipv6_ext_routing`, `rx_ipv6_ext_options`, `rx_ipv6_ext_other`),
//! off the per-segment path: only a frame that failed the TCP parse gets here.

use core::net::Ipv6Addr;

use super::family::{Resolve, ipv6_upper};
use super::icmp::IcmpError;
use super::nd::{self, Lookup, NdOutput};
use super::neighbor::NEIGHBOR_LIFETIME;
use super::{Control, Stack};
use crate::tcp::{FourTuple, SoftError};
use crate::time::Instant;
use crate::wire::ethernet::EtherType;
use crate::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr, ND_HOP_LIMIT, unreachable_code};
use crate::wire::ipv6::{HEADER_LEN, Ipv6Packet, Ipv6Repr, next_header, rejected_extension};
use crate::wire::{Error, SeqNumber, VlanId, parse_l2};

/// What a Destination Unreachable code (RFC 4443 §3.1) means to a connection. No route,
/// beyond the scope of the source address, address and port unreachable are the soft errors
/// of RFC 1122 §4.2.3.9 (as their ICMPv4 counterparts); administratively prohibited and the
/// policy codes (5, 6) change nothing, as ICMPv4's other codes do not.
fn unreachable_error(code: u8) -> IcmpError {
    match code {
        unreachable_code::NO_ROUTE => IcmpError::Unreachable(SoftError::NetUnreachable),
        unreachable_code::BEYOND_SCOPE | unreachable_code::ADDRESS => {
            IcmpError::Unreachable(SoftError::HostUnreachable)
        }
        unreachable_code::PORT => IcmpError::Unreachable(SoftError::PortUnreachable),
        _ => IcmpError::Other,
    }
}

impl Stack<Ipv6Addr> {
    /// A frame that is not a TCP/IPv6 segment (`parse_frame` said `Unsupported`).
    pub(super) fn process_ipv6_other(&mut self, now: Instant, frame: &[u8]) {
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
        if l2.ethertype() != EtherType::Ipv6 {
            self.counters.rx_not_ours += 1;
            return;
        }
        let Ok(packet) = Ipv6Packet::new_checked(l2.payload) else {
            self.counters.rx_dropped_malformed += 1;
            return;
        };
        let ip = match Ipv6Repr::parse(&packet) {
            Ok(ip) => ip,
            Err(Error::Unsupported) => {
                self.count_rejected_extension(l2.payload);
                return;
            }
            Err(_) => {
                self.counters.rx_dropped_malformed += 1;
                return;
            }
        };
        // Ours: our MAC or an IPv6 multicast MAC (33:33:…, the solicited-node address of an
        // NS), and one of our addresses or a multicast group (solicited-node, all-nodes).
        let mac_ok = l2.eth.dst_addr == self.cfg.mac || l2.eth.dst_addr.0[..2] == [0x33, 0x33];
        let ip_ok = self.is_local(ip.dst_addr) || ip.dst_addr.is_multicast();
        if ip.next_header != next_header::ICMPV6 || !mac_ok || !ip_ok {
            self.counters.rx_not_ours += 1;
            return;
        }
        let upper = ipv6_upper(&packet, &ip);
        let icmp = Icmpv6Packet::new_checked(upper)
            .and_then(|p| Icmpv6Repr::parse(&p, ip.src_addr, ip.dst_addr));
        let icmp = match icmp {
            Ok(i) => i,
            Err(Error::Unsupported) => {
                // Echo, router discovery, other errors: the kernel's business, not ours.
                self.counters.rx_not_ours += 1;
                return;
            }
            Err(_) => {
                self.counters.icmp_malformed += 1;
                return;
            }
        };
        match icmp {
            Icmpv6Repr::PacketTooBig { mtu, invoking } => {
                self.icmpv6_error(now, ip.dst_addr, invoking, IcmpError::PathMtu(mtu));
            }
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                self.icmpv6_error(now, ip.dst_addr, invoking, unreachable_error(code));
            }
            // RFC 4861 §7.1.1, §7.1.2: Neighbor Discovery from beyond the link is invalid.
            _ if ip.hop_limit != ND_HOP_LIMIT => self.counters.icmp_malformed += 1,
            Icmpv6Repr::NeighborSolicit { source_lladdr, .. } => {
                self.counters.nd_solicits_received += 1;
                let ours = &self.local_ips;
                let answer =
                    nd::answer_solicit(ours, self.cfg.mac, ip.src_addr, l2.eth.src_addr, &icmp);
                // §7.2.3: a solicitation for another node's address is discarded (it teaches
                // nothing either).
                let Some((dst_ip, dst_mac, advert)) = answer else {
                    return;
                };
                if let Icmpv6Repr::NeighborAdvert { target, .. } = advert {
                    self.counters.nd_adverts_sent += 1;
                    self.push_control(Control::Nd {
                        dst_mac,
                        src_ip: target,
                        dst_ip,
                        repr: advert,
                    });
                }
                if !self.nd.on_solicit(ip.src_addr, source_lladdr) {
                    // Answered, but not learned: the cache is at `NdConfig::max_learned`.
                    self.counters.nd_cache_full += 1;
                }
                if self.nd.take_resolved()
                    && let Some(mac) = self.nd.mac(ip.src_addr)
                {
                    self.learn(ip.src_addr, mac, Some(now + NEIGHBOR_LIFETIME));
                }
            }
            Icmpv6Repr::NeighborAdvert { target, .. } => {
                self.counters.nd_adverts_received += 1;
                self.nd.on_advert(now, &icmp);
                self.nd.take_resolved();
                if let Some(mac) = self.nd.mac(target) {
                    self.learn(target, mac, Some(now + NEIGHBOR_LIFETIME));
                }
            }
        }
    }

    /// RFC 4443 §3.1, §3.2 / RFC 8201: `invoking` starts with the IPv6 header of a segment
    /// we sent (we send no extension headers), then its TCP header: the 4-tuple and the
    /// sequence number RFC 5927 checks against the data in flight. An error sent to a
    /// multicast group is not ours (`rx_not_ours`).
    fn icmpv6_error(&mut self, now: Instant, dst: Ipv6Addr, invoking: &[u8], error: IcmpError) {
        if !self.is_local(dst) {
            self.counters.rx_not_ours += 1;
            return;
        }
        self.counters.icmp_received += 1;
        // The quote is usually cut short (RFC 4443 §3.2), so its IPv6 Payload Length is not
        // checked against it: only the fixed header and 8 bytes of TCP are needed.
        let quoted = (invoking.len() >= HEADER_LEN + 8).then(|| {
            let p = Ipv6Packet::new_unchecked(invoking);
            let tcp = &invoking[HEADER_LEN..];
            let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
            let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            let tuple = FourTuple {
                local_addr: p.src_addr(),
                remote_addr: p.dst_addr(),
                local_port: port(0),
                remote_port: port(2),
            };
            (p.next_header(), tuple, SeqNumber(seq))
        });
        let Some((next, tuple, seq)) = quoted else {
            self.counters.icmp_malformed += 1;
            return;
        };
        if next != next_header::TCP {
            // We send no extension headers: not a segment of ours.
            self.counters.icmp_not_ours += 1;
            return;
        }
        self.icmp_error(now, &tuple, seq, error);
    }

    fn count_rejected_extension(&mut self, packet: &[u8]) {
        let c = &mut self.counters;
        match rejected_extension(packet) {
            Some(next_header::FRAGMENT) => c.rx_ipv6_fragments += 1,
            Some(next_header::ROUTING) => c.rx_ipv6_ext_routing += 1,
            Some(next_header::HOP_BY_HOP | next_header::DEST_OPTIONS) => c.rx_ipv6_ext_options += 1,
            Some(_) => c.rx_ipv6_ext_other += 1,
            None => c.rx_dropped_malformed += 1,
        }
    }

    /// `target`'s MAC for a connection from `src` (egress found none in the stack's cache):
    /// the ND cache's answer, or a solicitation (at most one per RetransTimer: the cache
    /// keeps the schedule) and a wait. `Unreachable` once the cache gave up on `target`
    /// (`nd_timers`).
    pub(super) fn request_nd(&mut self, now: Instant, src: Ipv6Addr, target: Ipv6Addr) -> Resolve {
        if self.nd_unreachable.contains(&target) {
            return Resolve::Unreachable;
        }
        if !self.cfg.arp {
            // The driver resolves neighbours.
            return Resolve::Waiting;
        }
        let mut out = core::mem::take(&mut self.nd_out);
        let found = self.nd.lookup(now, target, &mut out);
        self.nd_outputs(now, src, &mut out);
        self.nd_out = out;
        match found {
            Lookup::Mac(mac) => {
                self.learn(target, mac, Some(now + NEIGHBOR_LIFETIME));
                Resolve::Known
            }
            Lookup::Pending => Resolve::Waiting,
        }
    }

    /// The timer stage's part for Neighbor Discovery: retransmitted and unicast
    /// solicitations, and give-ups, which end the connections waiting for that neighbour
    /// (they are looked at again in this poll's egress, `request_nd` says `Unreachable`).
    pub(super) fn nd_timers(&mut self, now: Instant) {
        self.nd_unreachable.clear();
        if self.nd.is_empty() || self.nd.next_timer().is_none_or(|t| now < t) {
            return;
        }
        let mut out = core::mem::take(&mut self.nd_out);
        self.nd.poll(now, &mut out);
        let src = self
            .local_ips
            .first()
            .copied()
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        self.nd_outputs(now, src, &mut out);
        self.nd_out = out;
    }

    /// Queues the solicitations the ND cache asked for; notes give-ups.
    fn nd_outputs(&mut self, _now: Instant, src: Ipv6Addr, out: &mut Vec<NdOutput>) {
        for o in out.drain(..) {
            match o {
                NdOutput::Solicit {
                    target,
                    dst_ip,
                    dst_mac,
                } => {
                    self.counters.nd_solicits_sent += 1;
                    self.push_control(Control::Nd {
                        dst_mac,
                        src_ip: src,
                        dst_ip,
                        repr: Icmpv6Repr::NeighborSolicit {
                            target,
                            source_lladdr: Some(self.cfg.mac),
                        },
                    });
                }
                NdOutput::Unreachable { target } => {
                    self.counters.nd_unreachable += 1;
                    self.nd_unreachable.push(target);
                    for index in core::mem::take(&mut self.waiting_arp) {
                        self.mark_dirty(index);
                    }
                }
            }
        }
    }
}
