//! Next-hop resolution for active opens, through the kernel.
//!
//! The XDP program passes ARP to the kernel, so ARP replies to anything we sent ourselves
//! would never reach the stack; instead the engine lets the kernel resolve: it reads the
//! kernel's neighbour table (`/proc/net/arp`) and, on a miss, makes the kernel resolve the
//! next hop by sending an empty UDP datagram towards the destination from a kernel socket.
//! Answers are entered into the core's stack with [`Stack::add_neighbor`] (the per-core
//! cache); replies to passive opens need none of this, they reuse the incoming frame's MAC.
//!
//! Cost: nothing on a cache hit. While a resolution is pending the table is re-read at most
//! once per millisecond, the kernel is asked again every second, and after
//! [`RESOLVE_TIMEOUT`] the connections waiting for it are aborted.

use std::net::Ipv4Addr;

use super::sys;
use crate::stack::{ConnHandle, Stack};
use crate::time::{Duration, Instant};

/// How long a next hop may take to resolve before its connections are given up.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
const RECHECK: Duration = Duration::from_millis(1);
const REKICK: Duration = Duration::from_secs(1);

struct Pending {
    next_hop: Ipv4Addr,
    /// Destinations (remote addresses) that use this next hop, with their connections.
    waiters: Vec<(Ipv4Addr, ConnHandle)>,
    started: Instant,
    last_kick: Instant,
}

/// One core's resolver. See the module docs.
pub struct Resolver {
    iface: String,
    routes: Vec<sys::Route>,
    pending: Vec<Pending>,
    last_check: Instant,
}

impl Resolver {
    pub fn new(iface: &str) -> Resolver {
        Resolver {
            iface: iface.to_owned(),
            routes: Vec::new(),
            pending: Vec::new(),
            last_check: Instant::ZERO,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Makes sure connection `h` to `remote` can transmit: returns at once when the stack
    /// already knows a MAC for `remote`, else looks it up in the kernel or starts a
    /// resolution.
    pub fn ensure(&mut self, stack: &mut Stack, now: Instant, remote: Ipv4Addr, h: ConnHandle) {
        if stack.neighbor(remote).is_some() {
            return;
        }
        let next_hop = self.next_hop(remote);
        if let Some(mac) = self.lookup(next_hop) {
            stack.add_neighbor(remote, mac);
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

    fn next_hop(&mut self, dst: Ipv4Addr) -> Ipv4Addr {
        if let Some(hop) = sys::next_hop(&self.routes, dst) {
            return hop;
        }
        // Routes change rarely; read them again only on a miss.
        if let Ok(text) = sys::read_proc_net("route") {
            self.routes = sys::parse_routes(&text, &self.iface);
        }
        sys::next_hop(&self.routes, dst).unwrap_or(dst)
    }

    fn lookup(&self, ip: Ipv4Addr) -> Option<crate::wire::EthernetAddress> {
        let text = sys::read_proc_net("arp").ok()?;
        sys::parse_arp(&text, &self.iface, ip)
    }

    /// Progresses pending resolutions. Returns the connections whose next hop did not
    /// resolve in time; the caller aborts them.
    pub fn poll(&mut self, stack: &mut Stack, now: Instant, failed: &mut Vec<ConnHandle>) {
        if self.pending.is_empty() || now.saturating_since(self.last_check) < RECHECK {
            return;
        }
        self.last_check = now;
        let Ok(text) = sys::read_proc_net("arp") else {
            return;
        };
        let iface = &self.iface;
        self.pending.retain_mut(|p| {
            if let Some(mac) = sys::parse_arp(&text, iface, p.next_hop) {
                for &(remote, _) in &p.waiters {
                    stack.add_neighbor(remote, mac);
                }
                return false;
            }
            if now.saturating_since(p.started) >= RESOLVE_TIMEOUT {
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
    }
}
