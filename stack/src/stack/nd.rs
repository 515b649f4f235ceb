//! IPv6 Neighbor Discovery for a host (RFC 4861), sans-I/O: the neighbour cache with its
//! states and timers (§7.3), address resolution by Neighbor Solicitation (§7.2.2), the
//! answer to a solicitation for one of our addresses (§7.2.4) and what an advertisement does
//! to the cache (§7.2.5). The IPv6 [`super::Stack`] calls it from its ICMPv6 input and its
//! timers (`nd6.rs`), as `neighbor.rs` does ARP for the IPv4 stack.
//!
//! Simplifications, each allowed by the RFC or irrelevant to a TCP host on one link:
//! - ReachableTime is the fixed [`NdConfig::reachable_time`] (30 s, the RFC's
//!   REACHABLE_TIME) instead of a random factor of 0.5–1.5 around a router-advertised base;
//!   no router discovery, so no IsRouter bookkeeping and no redirects.
//! - Packets waiting for resolution are not queued here: the stack keeps the waiting
//!   connections (as for ARP) and retransmits through TCP, so "queue of at most one packet"
//!   (§7.2.2) costs nothing.
//! - Upper-layer reachability confirmation (§7.3.1) is [`NeighborCache6::confirm`]; the
//!   stack does not call it (yet): an entry in use goes STALE → DELAY → PROBE, and the
//!   unicast probe's answer confirms it, one solicitation per ReachableTime per neighbour.
//!
//! Nothing here allocates per packet: a new neighbour takes one map entry.

use std::collections::HashMap;

use crate::time::{Duration, Instant};
use crate::wire::icmpv6::Icmpv6Repr;
use crate::wire::ipv6::{multicast_mac, solicited_node};
use crate::wire::{EthernetAddress, Ipv6Addr};

/// The all-nodes multicast address (RFC 4291 §2.7.1), where an advertisement answering a
/// solicitation from `::` goes (RFC 4861 §7.2.4).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The protocol constants of RFC 4861 §10 that a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdConfig {
    /// REACHABLE_TIME: how long a confirmation keeps an entry REACHABLE.
    pub reachable_time: Duration,
    /// RETRANS_TIMER: between solicitations for one neighbour.
    pub retrans_timer: Duration,
    /// DELAY_FIRST_PROBE_TIME: how long a STALE entry that was used waits for an upper-layer
    /// confirmation before it is probed.
    pub delay_first_probe: Duration,
    /// MAX_MULTICAST_SOLICIT: solicitations while INCOMPLETE before giving up.
    pub max_multicast_solicit: u8,
    /// MAX_UNICAST_SOLICIT: probes while PROBE before giving up.
    pub max_unicast_solicit: u8,
}

impl Default for NdConfig {
    fn default() -> Self {
        NdConfig {
            reachable_time: Duration::from_secs(30),
            retrans_timer: Duration::from_secs(1),
            delay_first_probe: Duration::from_secs(5),
            max_multicast_solicit: 3,
            max_unicast_solicit: 3,
        }
    }
}

/// The reachability states of RFC 4861 §7.3.2, with their timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdState {
    /// Resolution in progress: `sent` solicitations so far, the next at `next`.
    Incomplete { sent: u8, next: Instant },
    /// Confirmed recently; becomes STALE at `until`.
    Reachable { until: Instant },
    /// Not confirmed lately; still used. Sending to it starts DELAY.
    Stale,
    /// Used while STALE; probed at `until` unless confirmed first.
    Delay { until: Instant },
    /// Unicast probes: `sent` so far, the next at `next`.
    Probe { sent: u8, next: Instant },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mac: Option<EthernetAddress>,
    state: NdState,
}

/// What the cache asks the stack to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOutput {
    /// Send a Neighbor Solicitation for `target` from `src` (one of our addresses) to
    /// `dst_ip` at `dst_mac`: the solicited-node multicast address while INCOMPLETE, the
    /// cached unicast address while PROBE (§7.2.2, §7.3.3).
    Solicit {
        target: Ipv6Addr,
        dst_ip: Ipv6Addr,
        dst_mac: EthernetAddress,
    },
    /// `target` did not answer: the connections waiting for it end (`TimedOut`).
    Unreachable { target: Ipv6Addr },
}

/// The answer to [`NeighborCache6::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Send to this MAC.
    Mac(EthernetAddress),
    /// Resolution is under way; try again when [`NeighborCache6::take_resolved`] says so.
    Pending,
}

/// The IPv6 neighbour cache of one stack.
#[derive(Debug, Clone, Default)]
pub struct NeighborCache6 {
    cfg: NdConfig,
    entries: HashMap<Ipv6Addr, Entry>,
    /// Set when an entry got its first MAC: the stack looks at waiting connections again.
    resolved: bool,
}

impl NeighborCache6 {
    pub fn new(cfg: NdConfig) -> Self {
        NeighborCache6 {
            cfg,
            entries: HashMap::new(),
            resolved: false,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of `ip`'s entry, if any.
    pub fn state(&self, ip: Ipv6Addr) -> Option<NdState> {
        self.entries.get(&ip).map(|e| e.state)
    }

    /// The MAC of `ip`'s entry, if it has one (every state but INCOMPLETE).
    pub fn mac(&self, ip: Ipv6Addr) -> Option<EthernetAddress> {
        self.entries.get(&ip).and_then(|e| e.mac)
    }

    /// Whether some entry got its MAC since the last call (then waiting connections can go).
    pub fn take_resolved(&mut self) -> bool {
        core::mem::take(&mut self.resolved)
    }

    /// The MAC to send to `ip` (§7.2.2, §7.3.3). A miss creates an INCOMPLETE entry and
    /// asks for the first multicast solicitation; using a STALE entry starts DELAY.
    pub fn lookup(&mut self, now: Instant, ip: Ipv6Addr, out: &mut Vec<NdOutput>) -> Lookup {
        let delay = self.cfg.delay_first_probe;
        match self.entries.get_mut(&ip) {
            Some(Entry {
                mac: Some(mac),
                state,
            }) => {
                if *state == NdState::Stale {
                    *state = NdState::Delay { until: now + delay };
                }
                Lookup::Mac(*mac)
            }
            Some(_) => Lookup::Pending,
            None => {
                self.entries.insert(
                    ip,
                    Entry {
                        mac: None,
                        state: NdState::Incomplete {
                            sent: 1,
                            next: now + self.cfg.retrans_timer,
                        },
                    },
                );
                out.push(multicast_solicit(ip));
                Lookup::Pending
            }
        }
    }

    /// Upper-layer confirmation that `ip` is reachable (an ACK for new data, §7.3.1).
    pub fn confirm(&mut self, now: Instant, ip: Ipv6Addr) {
        let until = now + self.cfg.reachable_time;
        if let Some(e) = self.entries.get_mut(&ip)
            && e.mac.is_some()
        {
            e.state = NdState::Reachable { until };
        }
    }

    /// A Neighbor Solicitation from `src` with its source link-layer option (§7.2.3): the
    /// sender's entry is created or updated to STALE when the MAC is new or changed.
    /// Solicitations from `::` (duplicate address detection) teach nothing.
    pub fn on_solicit(&mut self, src: Ipv6Addr, source_lladdr: Option<EthernetAddress>) {
        let Some(mac) = source_lladdr else { return };
        if src.is_unspecified() || src.is_multicast() || !mac.is_unicast() {
            return;
        }
        let e = self.entries.entry(src).or_insert(Entry {
            mac: None,
            state: NdState::Stale,
        });
        if e.mac != Some(mac) {
            self.resolved |= e.mac.is_none();
            *e = Entry {
                mac: Some(mac),
                state: NdState::Stale,
            };
        }
    }

    /// A Neighbor Advertisement (§7.2.5). Without an entry for its target it is ignored (a
    /// host does not create entries from unsolicited advertisements).
    pub fn on_advert(&mut self, now: Instant, advert: &Icmpv6Repr) {
        let Icmpv6Repr::NeighborAdvert {
            solicited,
            override_,
            target,
            target_lladdr,
            ..
        } = *advert
        else {
            return;
        };
        let reachable = NdState::Reachable {
            until: now + self.cfg.reachable_time,
        };
        let Some(e) = self.entries.get_mut(&target) else {
            return;
        };
        let lladdr = target_lladdr.filter(EthernetAddress::is_unicast);
        let Some(old) = e.mac else {
            // INCOMPLETE: an advertisement without a link-layer address is useless.
            if let Some(mac) = lladdr {
                e.mac = Some(mac);
                e.state = if solicited { reachable } else { NdState::Stale };
                self.resolved = true;
            }
            return;
        };
        let differs = lladdr.is_some_and(|m| m != old);
        if !override_ && differs {
            // Keep the MAC we have, but doubt it.
            if matches!(e.state, NdState::Reachable { .. }) {
                e.state = NdState::Stale;
            }
            return;
        }
        if let Some(mac) = lladdr {
            e.mac = Some(mac);
        }
        if solicited {
            e.state = reachable;
        } else if differs {
            e.state = NdState::Stale;
        }
    }

    /// Runs the timers due at `now` (§7.3.3): REACHABLE → STALE; DELAY → PROBE with the
    /// first unicast probe; retransmissions while INCOMPLETE and PROBE; after the last one
    /// the entry is removed and reported unreachable.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<NdOutput>) {
        let cfg = self.cfg;
        self.entries.retain(|&ip, e| {
            match e.state {
                NdState::Reachable { until } if now >= until => e.state = NdState::Stale,
                NdState::Delay { until } if now >= until => {
                    e.state = NdState::Probe {
                        sent: 1,
                        next: now + cfg.retrans_timer,
                    };
                    out.push(unicast_solicit(ip, e.mac));
                }
                NdState::Incomplete { sent, next } | NdState::Probe { sent, next }
                    if now >= next =>
                {
                    let probing = matches!(e.state, NdState::Probe { .. });
                    let max = if probing {
                        cfg.max_unicast_solicit
                    } else {
                        cfg.max_multicast_solicit
                    };
                    if sent >= max {
                        out.push(NdOutput::Unreachable { target: ip });
                        return false;
                    }
                    let next = now + cfg.retrans_timer;
                    if probing {
                        e.state = NdState::Probe {
                            sent: sent + 1,
                            next,
                        };
                        out.push(unicast_solicit(ip, e.mac));
                    } else {
                        e.state = NdState::Incomplete {
                            sent: sent + 1,
                            next,
                        };
                        out.push(multicast_solicit(ip));
                    }
                }
                _ => {}
            }
            true
        });
    }

    /// The earliest instant [`NeighborCache6::poll`] has something to do (O(entries): the
    /// cache holds the few next hops of one link).
    pub fn next_timer(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                NdState::Reachable { until } | NdState::Delay { until } => Some(until),
                NdState::Incomplete { next, .. } | NdState::Probe { next, .. } => Some(next),
                NdState::Stale => None,
            })
            .min()
    }
}

fn multicast_solicit(target: Ipv6Addr) -> NdOutput {
    let dst_ip = solicited_node(target);
    NdOutput::Solicit {
        target,
        dst_ip,
        dst_mac: multicast_mac(dst_ip),
    }
}

fn unicast_solicit(target: Ipv6Addr, mac: Option<EthernetAddress>) -> NdOutput {
    match mac {
        Some(dst_mac) => NdOutput::Solicit {
            target,
            dst_ip: target,
            dst_mac,
        },
        None => multicast_solicit(target),
    }
}

/// The advertisement answering a solicitation for `target` from `src` (§7.2.4), if
/// `target` is one of `ours`: Override set, our MAC in the target link-layer option,
/// Solicited set and sent back to `src` (at `src_mac`, its source link-layer option or the
/// frame's source) — or, for a solicitation from `::` (duplicate address detection), Solicited
/// clear and sent to all nodes. Returns (destination IP, destination MAC, advertisement).
pub fn answer_solicit(
    ours: &[Ipv6Addr],
    our_mac: EthernetAddress,
    src: Ipv6Addr,
    src_mac: EthernetAddress,
    solicit: &Icmpv6Repr,
) -> Option<(Ipv6Addr, EthernetAddress, Icmpv6Repr<'static>)> {
    let Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr,
    } = *solicit
    else {
        return None;
    };
    if !ours.contains(&target) {
        return None;
    }
    let dad = src.is_unspecified();
    let (dst_ip, dst_mac) = if dad {
        (ALL_NODES, multicast_mac(ALL_NODES))
    } else {
        (src, source_lladdr.unwrap_or(src_mac))
    };
    let advert = Icmpv6Repr::NeighborAdvert {
        router: false,
        solicited: !dad,
        override_: true,
        target,
        target_lladdr: Some(our_mac),
    };
    Some((dst_ip, dst_mac, advert))
}

#[cfg(test)]
mod tests;
