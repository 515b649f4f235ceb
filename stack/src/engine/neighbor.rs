//! Next-hop resolution for active opens, through the kernel, and the refresh of the core's
//! neighbour cache.
//!
//! The XDP program passes ARP and Neighbor Discovery to the kernel, so answers to anything we
//! sent ourselves would never reach the stack; instead the engine lets the kernel resolve.
//! Each core opens its own rtnetlink socket (see [`super::netlink`]; lazily, on the core's
//! thread, so in the engine's network namespace) and:
//! - finds the next hop of a destination in the interface's routes (longest prefix; the
//!   routes are read again only when a destination matches none);
//! - asks the kernel for that hop's neighbour entry (`RTM_GETNEIGH` for one address) and, on
//!   a miss, makes the kernel resolve it by sending an empty UDP datagram towards the
//!   destination from a kernel socket, then asks again at most once per millisecond, kicks
//!   again every second, and after [`RESOLVE_TIMEOUT`] aborts the connections waiting for it;
//! - enters answers into the core's stack with [`Stack::update_neighbor`], where they age
//!   ([`crate::stack::NEIGHBOR_LIFETIME`], 30 s).
//!
//! Refresh: every next hop in use is asked for again about every [`REFRESH`] (1 s), off the
//! per-packet path: [`Resolver::poll`] runs at most one such request per loop turn and per
//! [`REFRESH_SPACING`] (1 ms), so a core's cost is bounded (≤ 1,000 requests a second), and
//! with more than 1,000 next hops each is refreshed less often. An active open whose next
//! hop was last asked for more than [`REFRESH`] ago asks once more before it uses the cached
//! MAC (an idle core runs no refreshes). An answer with a new MAC updates the stack's entries
//! for every destination behind that hop, and the stack re-points the live connections to
//! them, so a changed MAC is used about a second after the kernel's entry changed. When
//! the kernel has no usable entry any more, the refresh kicks it (as for a miss) and leaves
//! the stack's entries to age; a hop unanswered for [`NEIGHBOR_LIFETIME`] is forgotten.
//! Counters ([`ResolverStats`], in each core's stats): refreshes answered, MAC changes seen,
//! refreshes that found no usable entry.
//!
//! Cost of an active open: a scan of the next hops in use and their destinations (linear:
//! fine for the few gateways and peers a host talks to; thousands of distinct on-link peers
//! would want an index), plus one netlink request when the hop is due for a refresh.
//!
//! Replies to passive opens need none of this: they reuse the incoming frame's MAC.

use std::net::{IpAddr, Ipv4Addr};

use super::netlink::{self, Netlink, Route};
use super::sys;
use crate::stack::{ConnHandle, NEIGHBOR_LIFETIME, Stack, StackFamily};
use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

/// How long a next hop may take to resolve before its connections are given up.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the kernel's entry of a next hop in use is read again.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The least time between two refresh requests of one core.
pub const REFRESH_SPACING: Duration = Duration::from_millis(1);
const RECHECK: Duration = Duration::from_millis(1);
const REKICK: Duration = Duration::from_secs(1);

/// One core's neighbour refresh counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Refreshes the kernel answered with a usable entry.
    pub refreshes: u64,
    /// Of those, answers with another MAC than before.
    pub changes: u64,
    /// Refreshes (and lookups) that found no usable entry or failed.
    pub failures: u64,
}

struct Pending<A> {
    next_hop: IpAddr,
    /// Destinations (remote addresses) that use this next hop, with their connections.
    waiters: Vec<(A, ConnHandle)>,
    started: Instant,
    last_kick: Instant,
}

/// A resolved next hop in use, and the destinations behind it.
struct Hop<A> {
    ip: IpAddr,
    mac: EthernetAddress,
    dests: Vec<A>,
    /// When the kernel was last asked, and last answered with a usable entry.
    checked: Instant,
    confirmed: Instant,
}

/// The core's rtnetlink socket and the interface's index in its namespace.
struct Kernel {
    nl: Netlink,
    ifindex: u32,
}

/// One core's resolver for the stack of family `A` (IPv4 by default; a dual-stack core has
/// one per family, the IPv6 one reading the kernel's Neighbor Discovery entries). See the
/// module docs.
pub struct Resolver<A = Ipv4Addr> {
    iface: String,
    kernel: Option<Kernel>,
    routes: Vec<Route>,
    pending: Vec<Pending<A>>,
    hops: Vec<Hop<A>>,
    cursor: usize,
    last_check: Instant,
    next_refresh: Instant,
    stats: ResolverStats,
}

impl<A: StackFamily + Into<IpAddr>> Resolver<A> {
    pub fn new(iface: &str) -> Resolver<A> {
        Resolver {
            iface: iface.to_owned(),
            kernel: None,
            routes: Vec::new(),
            pending: Vec::new(),
            hops: Vec::new(),
            cursor: 0,
            last_check: Instant::ZERO,
            next_refresh: Instant::ZERO,
            stats: ResolverStats::default(),
        }
    }

    /// No resolution pending (refreshes may still be due: they wait for the next turn).
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn stats(&self) -> ResolverStats {
        self.stats
    }

    fn kernel(&mut self) -> Option<&mut Kernel> {
        if self.kernel.is_none() {
            // Not cached on failure: an interface that appears later is found then.
            let ifindex = netlink::ifindex(&self.iface).ok()?;
            let nl = Netlink::open().ok()?;
            self.kernel = Some(Kernel { nl, ifindex });
        }
        self.kernel.as_mut()
    }

    /// The kernel's usable MAC for `ip`, `None` on a miss or an error.
    fn lookup(&mut self, ip: IpAddr) -> Option<EthernetAddress> {
        let k = self.kernel()?;
        k.nl.neighbor(k.ifindex, ip).ok().flatten()
    }

    /// Makes sure connection `h` to `remote` can transmit: returns at once when the stack
    /// knows a MAC for `remote` that was confirmed within [`REFRESH`], else asks the kernel
    /// or starts a resolution.
    pub fn ensure(&mut self, stack: &mut Stack<A>, now: Instant, remote: A, h: ConnHandle) {
        if let Some(i) = self.hops.iter().position(|p| p.dests.contains(&remote))
            && now.saturating_since(self.hops[i].checked) >= REFRESH
        {
            self.refresh(i, stack, now);
        }
        if stack.neighbor(remote).is_some() {
            return;
        }
        let next_hop = self.next_hop(remote);
        if let Some(mac) = self.lookup(next_hop) {
            self.learned(stack, now, next_hop, remote, mac);
            return;
        }
        if let Some(p) = self.pending.iter_mut().find(|p| p.next_hop == next_hop) {
            p.waiters.push((remote, h));
            return;
        }
        // An error here (no route, say) is not final: the timeout reports it.
        let _ = sys::kick_kernel_resolution(remote);
        self.pending.push(Pending {
            next_hop,
            waiters: vec![(remote, h)],
            started: now,
            last_kick: now,
        });
    }

    fn next_hop(&mut self, dst: A) -> IpAddr {
        let dst: IpAddr = dst.into();
        if let Some(hop) = netlink::next_hop(&self.routes, dst) {
            return hop;
        }
        // Routes change rarely; read them again only on a miss.
        if let Some(k) = self.kernel()
            && let Ok(routes) = k.nl.routes(k.ifindex)
        {
            self.routes = routes;
        }
        netlink::next_hop(&self.routes, dst).unwrap_or(dst)
    }

    /// `remote` is behind `hop`, whose MAC is `mac`: remembered for refreshes, and entered
    /// into the stack.
    fn learned(
        &mut self,
        stack: &mut Stack<A>,
        now: Instant,
        hop: IpAddr,
        remote: A,
        mac: EthernetAddress,
    ) {
        match self.hops.iter_mut().find(|p| p.ip == hop) {
            Some(p) => {
                if !p.dests.contains(&remote) {
                    p.dests.push(remote);
                }
            }
            None => self.hops.push(Hop {
                ip: hop,
                mac,
                dests: vec![remote],
                checked: now,
                confirmed: now,
            }),
        }
        stack.update_neighbor(now, remote, mac);
    }

    /// Asks the kernel for hop `i` again (see the module docs). Returns whether the hop is
    /// still known (false: it was forgotten, and index `i` now names another).
    fn refresh(&mut self, i: usize, stack: &mut Stack<A>, now: Instant) -> bool {
        let ip = self.hops[i].ip;
        let answer = self.lookup(ip);
        let hop = &mut self.hops[i];
        hop.checked = now;
        match answer {
            Some(mac) => {
                self.stats.refreshes += 1;
                if mac != hop.mac {
                    self.stats.changes += 1;
                    hop.mac = mac;
                }
                hop.confirmed = now;
                for &d in &hop.dests {
                    stack.update_neighbor(now, d, mac);
                }
                true
            }
            None => {
                self.stats.failures += 1;
                if now.saturating_since(hop.confirmed) >= NEIGHBOR_LIFETIME {
                    self.hops.swap_remove(i);
                    return false;
                }
                if let Some(&d) = hop.dests.first() {
                    let _ = sys::kick_kernel_resolution(d);
                }
                true
            }
        }
    }

    /// Progresses pending resolutions and runs at most one due refresh. Returns the
    /// connections whose next hop did not resolve in time; the caller aborts them. Cheap
    /// when nothing is due (two comparisons).
    pub fn poll(&mut self, stack: &mut Stack<A>, now: Instant, failed: &mut Vec<ConnHandle>) {
        if !self.hops.is_empty() && now >= self.next_refresh {
            self.next_refresh = now + REFRESH_SPACING;
            self.cursor = (self.cursor + 1) % self.hops.len();
            if now.saturating_since(self.hops[self.cursor].checked) >= REFRESH {
                self.refresh(self.cursor, stack, now);
            }
        }
        if self.pending.is_empty() || now.saturating_since(self.last_check) < RECHECK {
            return;
        }
        self.last_check = now;
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain_mut(|p| {
            if let Some(mac) = self.lookup(p.next_hop) {
                for &(remote, _) in &p.waiters {
                    self.learned(stack, now, p.next_hop, remote, mac);
                }
                return false;
            }
            if now.saturating_since(p.started) >= RESOLVE_TIMEOUT {
                self.stats.failures += 1;
                failed.extend(p.waiters.iter().map(|&(_, h)| h));
                return false;
            }
            if now.saturating_since(p.last_kick) >= REKICK {
                p.last_kick = now;
                if let Some(&(remote, _)) = p.waiters.first() {
                    let _ = sys::kick_kernel_resolution(remote);
                }
            }
            true
        });
        // Resolutions started meanwhile (none: `ensure` is not called from here) are kept.
        pending.append(&mut self.pending);
        self.pending = pending;
    }
}
