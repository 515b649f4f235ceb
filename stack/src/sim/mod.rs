//! Deterministic network simulator: a virtual clock, N nodes on one L2 segment, seeded faults.
//!
//! # Model
//! - Node `i` owns a [`MemoryLink`] and a MAC address (`02:00:00:00:HH:LL` with `HHLL = i + 1`
//!   by default; [`Simulation::mac`]). Hosts are the caller's: each run call takes
//!   `hosts: &mut [H]` and `hosts[i]` drives node `i`, so tests keep ownership of their stacks
//!   and inspect them between calls. Nodes without a host are passive: frames pile up in their
//!   RX queue and tests read or inject frames through [`Simulation::link_mut`].
//! - Frames are switched by destination MAC: unicast to the node owning it, broadcast and
//!   multicast (I/G bit set) to every other node; anything else is [`Fate::NoRoute`].
//! - Each directed link `(from, to)` has a [`LinkConfig`] and its own bottleneck queue. A copy
//!   of a frame goes through, in order: the bottleneck (serialization at `rate_bps`, drop-tail
//!   at `queue_limit_bytes`), loss, corruption (one bit flipped past the Ethernet header),
//!   propagation (`latency` + uniform `jitter`), reordering (an extra delay), duplication (a
//!   second copy arriving right after the first).
//! - Jitter never reorders by itself: a copy that is not picked for reordering arrives no
//!   earlier than the previous such copy on its link (FIFO wire). Only `reorder` reorders.
//!
//! # Call order of one step
//! 1. Advance `now` to the earliest of: a frame arrival, a host's [`Host::poll_at`], or `now`
//!    itself if a host has unread RX frames or a node has unsent TX frames. Never past the
//!    run's limit; the first step of every run call stays at the current `now`.
//! 2. Deliver every frame due at `now` into its receiver's RX queue, in (arrival time,
//!    scheduling order) order.
//! 3. Poll, in node index order, every host that has RX frames, is due (`poll_at() <= now`),
//!    or has not been polled yet in this run call (so a run call always polls every host
//!    once at its start: state changed by the test between calls is picked up). A host whose
//!    poll read none of its pending RX frames is not polled again for them until more arrive
//!    (a frozen host lets its RX queue fill and overflow instead of spinning the simulator);
//!    a host that reads only part of its RX queue (a receive budget) is polled again at the
//!    same instant.
//! 4. Collect the published TX frames of every node, in node index order then FIFO order, and
//!    put them on the wire (faults applied, arrival scheduled).
//!
//! A step processes one instant; time jumps straight to the next event, so a 60 s TIME-WAIT
//! with nothing in flight costs one step. Zero latency is allowed: the frames are delivered at
//! the same instant in the next step.
//!
//! # Determinism
//! Given the same seed, configuration, and hosts that are themselves deterministic (they read
//! time only from `now`), every run produces the same polls at the same instants, the same
//! frames and the same capture, on every platform: all randomness comes from [`Rng`]
//! (xoshiro256**, specified here, no external crate). Each directed link draws from its own
//! stream of the seed and draws a fixed number of values per frame copy whatever the
//! probabilities, so changing the faults of one link, or one fault's probability, does not
//! shift the random choices made elsewhere. Splitting a run into several calls adds one poll
//! of every host per call (step 3) and is otherwise invisible.
//!
//! # Guard
//! A host whose `poll_at()` keeps returning `now` without the simulation making progress
//! would spin forever at one instant; after [`SimConfig::max_steps_per_instant`] steps at the
//! same instant the simulator panics with the list of hosts still due.
//!
//! # Example
//! Hosts of different types go in a slice of trait objects, rebuilt at each call so that the
//! test can look at them in between; hosts of one type can be passed as `&mut [Stack]` and
//! inspected in the condition of [`Simulation::run_while`].
//! ```
//! use xtcp::link::{Link, memory::MemoryLink};
//! use xtcp::sim::{Host, LinkConfig, Simulation};
//! use xtcp::time::{Duration, Instant};
//!
//! /// Sends one broadcast frame at its first poll, counts what it receives.
//! #[derive(Default)]
//! struct Hello { sent: bool, received: usize }
//!
//! impl Host for Hello {
//!     fn poll(&mut self, _now: Instant, link: &mut MemoryLink) {
//!         self.received += link.receive(64, |_frame| {});
//!         if !self.sent {
//!             self.sent = link.transmit(|buf| {
//!                 buf[..6].fill(0xff); // broadcast
//!                 60
//!             });
//!             link.flush();
//!         }
//!     }
//!     fn poll_at(&self) -> Option<Instant> {
//!         None
//!     }
//! }
//!
//! let mut sim = Simulation::with_seed(42, 2);
//! sim.set_link_both(0, 1, LinkConfig::with_latency(Duration::from_millis(3)));
//! let (mut a, mut b) = (Hello::default(), Hello::default());
//! while b.received == 0 {
//!     let more = sim.step(&mut [&mut a as &mut dyn Host, &mut b], Instant::from_secs(1));
//!     assert!(more, "nothing arrived within a second");
//! }
//! assert_eq!(sim.now(), Instant::from_millis(3));
//! // Nothing else is due: time jumps straight to the limit.
//! sim.run_until(&mut [&mut a as &mut dyn Host, &mut b], Instant::from_secs(60));
//! assert_eq!((a.received, b.received, sim.stats().delivered), (1, 1, 2));
//! ```
//!
//! # Allocation
//! In-flight frames use a pool of buffers that grows to the high-water mark and is then reused;
//! the capture (off by default) allocates per frame.

mod capture;
mod rng;
#[cfg(test)]
mod tests;

pub use self::capture::{CapturedFrame, Corruption, Fate, SimStats};
pub use self::rng::{Rng, UniformRange};

use crate::link::memory::{MemoryLink, MemoryLinkConfig};
use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;
use core::cmp::{Ordering, Reverse};
use core::net::Ipv4Addr;
use std::collections::BinaryHeap;

/// Something that sends and receives frames over a link; the integrator implements it for the
/// TCP stack.
pub trait Host {
    /// Process received frames, run timers due at `now`, transmit what is ready.
    fn poll(&mut self, now: Instant, link: &mut MemoryLink);
    /// When this host next needs `poll` even without new frames (`None` = never).
    fn poll_at(&self) -> Option<Instant>;
}

impl<H: Host + ?Sized> Host for &mut H {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        (**self).poll(now, link)
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
}

impl<H: Host + ?Sized> Host for Box<H> {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        (**self).poll(now, link)
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
}

/// Behaviour of one directed link. Probabilities are per frame copy, in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way propagation delay. Default 1 ms.
    pub latency: Duration,
    /// Extra delay, uniform in `[0, jitter]` (microsecond steps), without reordering.
    /// Default 0.
    pub jitter: Duration,
    /// Probability that a copy is lost. Default 0.
    pub loss: f64,
    /// Probability that a copy is followed by an identical second copy. Default 0.
    pub duplicate: f64,
    /// Probability that a copy is delayed by an extra uniform `[reorder_delay / 2,
    /// reorder_delay]`, so later frames overtake it. Default 0.
    pub reorder: f64,
    /// Upper bound of the extra reordering delay. Default 5 ms.
    pub reorder_delay: Duration,
    /// Probability that one random bit past the Ethernet header is flipped. Default 0.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second (serialization delay `8 * len / rate`); `None` means
    /// infinitely fast. Default `None`.
    pub rate_bps: Option<u64>,
    /// Drop-tail limit of the bottleneck queue: a copy is dropped if the bytes still waiting to
    /// be serialized plus its own length exceed this. An idle link always accepts a frame.
    /// Only used with `rate_bps`. Default 128 KiB.
    pub queue_limit_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.0,
            rate_bps: None,
            queue_limit_bytes: 128 * 1024,
        }
    }
}

impl LinkConfig {
    /// No faults and the given latency.
    pub fn with_latency(latency: Duration) -> LinkConfig {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }
}

/// Construction parameters of a [`Simulation`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Seeds every random choice. Default 0.
    pub seed: u64,
    /// Number of nodes. Default 2.
    pub nodes: usize,
    /// Initial configuration of every directed link.
    pub link: LinkConfig,
    /// Sizes of every node's [`MemoryLink`].
    pub memory_link: MemoryLinkConfig,
    /// Record every frame copy (see [`Simulation::capture`]). Default off.
    pub capture: bool,
    /// Panic after this many consecutive steps at one instant. Default 100 000.
    pub max_steps_per_instant: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 2,
            link: LinkConfig::default(),
            memory_link: MemoryLinkConfig::default(),
            capture: false,
            max_steps_per_instant: 100_000,
        }
    }
}

struct Node {
    mac: EthernetAddress,
    link: MemoryLink,
    /// The host's last poll left RX frames unread without reading any: do not poll it again
    /// for them until new frames arrive (a frozen host must not spin the simulator).
    rx_stalled: bool,
}

/// State of one directed link.
struct Wire {
    config: LinkConfig,
    rng: Rng,
    /// When the bottleneck finishes serializing what it holds, in units of 1 ns / `busy_rate`
    /// (nanoseconds times the rate): every frame's serialization time is then an exact
    /// integer (`8e9 * len`), so no rounding accumulates over a burst.
    busy_until: u128,
    /// The rate `busy_until` is scaled by.
    busy_rate: u64,
    /// Arrival of the last copy that was not reordered: later copies arrive no earlier.
    last_arrival: Instant,
    stats: SimStats,
}

/// A frame copy on the wire.
struct InFlight {
    at: Instant,
    /// Global scheduling counter: ties at one instant deliver in scheduling order.
    seq: u64,
    sent: Instant,
    from: u32,
    to: u32,
    duplicate: bool,
    reordered: bool,
    corruption: Option<Corruption>,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Fault flags decided for one copy.
#[derive(Clone, Copy)]
struct CopyMeta {
    sent: Instant,
    from: usize,
    to: usize,
    duplicate: bool,
    reordered: bool,
    corruption: Option<Corruption>,
}

/// The simulated network and its virtual clock. See the module docs.
pub struct Simulation {
    now: Instant,
    nodes: Vec<Node>,
    /// `nodes.len()^2` directed links, index `from * n + to` (the diagonal is unused).
    wires: Vec<Wire>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    pool: Vec<Vec<u8>>,
    buf_capacity: usize,
    capture: Option<Vec<CapturedFrame>>,
    stats: SimStats,
    test_rng: Rng,
    max_steps_per_instant: u64,
    steps: u64,
    steps_at_instant: u64,
    /// Set by each run call: the next step polls every host.
    poll_all: bool,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Simulation {
        assert!(config.nodes > 0, "a simulation needs at least one node");
        assert!(config.nodes < 0xffff, "at most 65534 nodes");
        let n = config.nodes;
        let nodes = (0..n)
            .map(|i| {
                let id = (i + 1) as u16;
                let [hi, lo] = id.to_be_bytes();
                Node {
                    mac: EthernetAddress([0x02, 0, 0, 0, hi, lo]),
                    link: MemoryLink::new(config.memory_link),
                    rx_stalled: false,
                }
            })
            .collect();
        let wires = (0..n * n)
            .map(|k| Wire {
                config: config.link,
                rng: Rng::with_stream(config.seed, k as u64 + 1),
                busy_until: 0,
                busy_rate: 1,
                last_arrival: Instant::ZERO,
                stats: SimStats::default(),
            })
            .collect();
        Simulation {
            now: Instant::ZERO,
            nodes,
            wires,
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            pool: Vec::new(),
            buf_capacity: config.memory_link.max_frame_len,
            capture: config.capture.then(Vec::new),
            stats: SimStats::default(),
            test_rng: Rng::with_stream(config.seed, u64::MAX),
            max_steps_per_instant: config.max_steps_per_instant,
            steps: 0,
            steps_at_instant: 0,
            poll_all: true,
        }
    }

    /// `nodes` nodes with default links (1 ms, no faults) and capture on.
    pub fn with_seed(seed: u64, nodes: usize) -> Simulation {
        Simulation::new(SimConfig {
            seed,
            nodes,
            capture: true,
            ..SimConfig::default()
        })
    }

    // ---- Clock and topology ------------------------------------------------------------

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s MAC address.
    pub fn mac(&self, i: usize) -> EthernetAddress {
        self.nodes[i].mac
    }

    /// Gives node `i` another MAC address (must stay unique for unicast to reach it).
    pub fn set_mac(&mut self, i: usize, mac: EthernetAddress) {
        self.nodes[i].mac = mac;
    }

    /// The node owning `mac`, if any.
    pub fn node_by_mac(&self, mac: EthernetAddress) -> Option<usize> {
        self.nodes.iter().position(|n| n.mac == mac)
    }

    /// The addressing convention for tests: node `i` is `10.0.0.(i + 1)`. The simulator
    /// itself only looks at MAC addresses.
    pub fn ipv4(&self, i: usize) -> Ipv4Addr {
        assert!(i < 254, "ipv4 convention covers nodes 0..254");
        Ipv4Addr::new(10, 0, 0, i as u8 + 1)
    }

    /// Node `i`'s link: read its counters, or inject and drain frames by hand for a node
    /// without a host (frames pushed with `push_tx` go on the wire at the next step).
    pub fn link(&self, i: usize) -> &MemoryLink {
        &self.nodes[i].link
    }

    pub fn link_mut(&mut self, i: usize) -> &mut MemoryLink {
        &mut self.nodes[i].link
    }

    // ---- Link configuration ------------------------------------------------------------

    fn wire_index(&self, from: usize, to: usize) -> usize {
        let n = self.nodes.len();
        assert!(from < n && to < n, "no link {from}->{to} among {n} nodes");
        assert_ne!(from, to, "a node has no link to itself");
        from * n + to
    }

    /// The configuration of directed link `from -> to`.
    pub fn link_config(&self, from: usize, to: usize) -> &LinkConfig {
        &self.wires[self.wire_index(from, to)].config
    }

    /// Changes take effect for frames sent from now on (a partition is `loss = 1.0`).
    pub fn link_config_mut(&mut self, from: usize, to: usize) -> &mut LinkConfig {
        let k = self.wire_index(from, to);
        &mut self.wires[k].config
    }

    /// Sets directed link `from -> to`.
    pub fn set_link(&mut self, from: usize, to: usize, config: LinkConfig) {
        *self.link_config_mut(from, to) = config;
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_link_both(&mut self, a: usize, b: usize, config: LinkConfig) {
        self.set_link(a, b, config);
        self.set_link(b, a, config);
    }

    /// Sets every directed link.
    pub fn set_all_links(&mut self, config: LinkConfig) {
        for w in &mut self.wires {
            w.config = config;
        }
    }

    // ---- Observation -------------------------------------------------------------------

    /// Totals over all links.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Counters of directed link `from -> to`.
    pub fn link_stats(&self, from: usize, to: usize) -> SimStats {
        self.wires[self.wire_index(from, to)].stats
    }

    /// Frame copies on the wire, not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Steps executed since creation (each step is one instant; see the module docs).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// A random stream for the test's own use (payloads, choices), derived from the seed and
    /// independent of the fault streams: drawing from it changes no simulated fault.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.test_rng
    }

    /// Starts or stops recording; starting keeps what was recorded before.
    pub fn set_capture(&mut self, on: bool) {
        match (on, self.capture.is_some()) {
            (true, false) => self.capture = Some(Vec::new()),
            (false, true) => self.capture = None,
            _ => {}
        }
    }

    /// Recorded frame copies, in the order their fate was decided (empty when capture is off).
    pub fn capture(&self) -> &[CapturedFrame] {
        self.capture.as_deref().unwrap_or(&[])
    }

    /// Recorded frame copies matching `fate`.
    pub fn captured_with(&self, fate: Fate) -> impl Iterator<Item = &CapturedFrame> {
        self.capture().iter().filter(move |c| c.fate == fate)
    }

    /// Delivered copies on directed link `from -> to`, in arrival order.
    pub fn delivered(&self, from: usize, to: usize) -> impl Iterator<Item = &CapturedFrame> {
        self.capture()
            .iter()
            .filter(move |c| c.fate == Fate::Delivered && c.from == from && c.to == Some(to))
    }

    /// Empties the capture and returns what it held (recording continues if it was on).
    pub fn take_capture(&mut self) -> Vec<CapturedFrame> {
        match &mut self.capture {
            Some(c) => core::mem::take(c),
            None => Vec::new(),
        }
    }

    /// Writes the capture as a pcap file (nanosecond resolution, timestamps = virtual time
    /// since the Unix epoch), one record per frame copy in capture order at [`CapturedFrame::time`]:
    /// every copy the wire carried, whatever its [`Fate`] (a lost frame and its retransmission
    /// both appear, as on a real wire tap). Corrupted copies are written as corrupted. Uses
    /// the same writer as [`crate::capture::CaptureLink`]; `tshark -r` reads it.
    #[cfg(feature = "pcap")]
    pub fn write_pcap(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<crate::capture::CaptureStats> {
        let cfg = crate::capture::CaptureConfig::new(path);
        let mut out = crate::capture::PcapFile::create(&cfg)?;
        for c in self.capture() {
            out.record(
                std::time::Duration::from_micros(c.time.total_micros()),
                &c.data,
            );
        }
        out.flush()?;
        Ok(out.stats())
    }

    /// The capture, one tcpdump-like line per frame copy.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for c in self.capture() {
            s.push_str(&c.line());
            s.push('\n');
        }
        s
    }

    // ---- Running -----------------------------------------------------------------------

    /// Runs until `now == until`, processing everything due at `until` itself. Does nothing
    /// (and keeps `now`) if `until` is in the past.
    pub fn run_until<H: Host>(&mut self, hosts: &mut [H], until: Instant) {
        self.poll_all = true;
        while self.step(hosts, until) {}
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for<H: Host>(&mut self, hosts: &mut [H], duration: Duration) {
        let until = self.now + duration;
        self.run_until(hosts, until);
    }

    /// Runs while `cond(hosts)` holds, checking it before the first step and after every step.
    /// Returns the instant at which it stopped holding (`now` stays there), or `None` if it
    /// still holds at `deadline` (`now == deadline`).
    pub fn run_while<H: Host>(
        &mut self,
        hosts: &mut [H],
        deadline: Instant,
        mut cond: impl FnMut(&[H]) -> bool,
    ) -> Option<Instant> {
        self.poll_all = true;
        if !cond(hosts) {
            return Some(self.now);
        }
        while self.step(hosts, deadline) {
            if !cond(hosts) {
                return Some(self.now);
            }
        }
        None
    }

    /// Runs until the network is idle: nothing in flight, no unread RX frame at a host, no
    /// unsent TX frame, and every host's `poll_at()` is `None`. Returns that instant, or
    /// `None` at `deadline`.
    pub fn run_until_idle<H: Host>(
        &mut self,
        hosts: &mut [H],
        deadline: Instant,
    ) -> Option<Instant> {
        self.poll_all = true;
        while self.step(hosts, deadline) {
            if self.is_idle(hosts) {
                return Some(self.now);
            }
        }
        None
    }

    fn is_idle<H: Host>(&self, hosts: &[H]) -> bool {
        self.in_flight.is_empty()
            && self.nodes.iter().all(|n| n.link.tx_len() == 0)
            && hosts
                .iter()
                .zip(&self.nodes)
                .all(|(h, n)| (n.link.rx_len() == 0 || n.rx_stalled) && h.poll_at().is_none())
    }

    /// The instant of the next thing to do, if any.
    fn next_event<H: Host>(&self, hosts: &[H]) -> Option<Instant> {
        if self.poll_all {
            return Some(self.now);
        }
        let mut next = self.in_flight.peek().map(|Reverse(f)| f.at);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for (h, node) in hosts.iter().zip(&self.nodes) {
            if node.link.rx_len() > 0 && !node.rx_stalled {
                consider(self.now);
            }
            if let Some(t) = h.poll_at() {
                consider(t.max(self.now));
            }
        }
        if self.nodes.iter().any(|n| n.link.tx_len() > 0) {
            consider(self.now);
        }
        next
    }

    /// Executes one step (see the module docs) unless the next event is after `until`, in
    /// which case `now` moves to `until` (if later) and this returns `false`.
    pub fn step<H: Host>(&mut self, hosts: &mut [H], until: Instant) -> bool {
        assert!(
            hosts.len() <= self.nodes.len(),
            "{} hosts for {} nodes",
            hosts.len(),
            self.nodes.len()
        );
        let next = match self.next_event(hosts) {
            Some(t) if t <= until => t,
            _ => {
                self.now = self.now.max(until);
                return false;
            }
        };
        if next == self.now {
            self.steps_at_instant += 1;
            if self.steps_at_instant > self.max_steps_per_instant {
                self.stuck(hosts);
            }
        } else {
            self.now = next;
            self.steps_at_instant = 0;
        }
        self.steps += 1;

        self.deliver_due();
        let poll_all = core::mem::replace(&mut self.poll_all, false);
        let now = self.now;
        for (host, node) in hosts.iter_mut().zip(&mut self.nodes) {
            let rx_before = node.link.rx_len();
            let due = poll_all
                || (rx_before > 0 && !node.rx_stalled)
                || host.poll_at().is_some_and(|t| t <= now);
            if due {
                host.poll(now, &mut node.link);
                let rx_after = node.link.rx_len();
                node.rx_stalled = rx_after > 0 && rx_after >= rx_before;
            }
        }
        self.collect();
        true
    }

    #[cold]
    fn stuck<H: Host>(&self, hosts: &[H]) -> ! {
        let due: Vec<usize> = hosts
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                let node = &self.nodes[*i];
                (node.link.rx_len() > 0 && !node.rx_stalled)
                    || h.poll_at().is_some_and(|t| t <= self.now)
            })
            .map(|(i, _)| i)
            .collect();
        panic!(
            "simulation stuck at {}: {} steps without time advancing; hosts still due: {:?}; \
             frames in flight: {}. A Host probably returns poll_at() <= now without making \
             progress, or zero-latency hosts echo frames forever.",
            self.now,
            self.max_steps_per_instant,
            due,
            self.in_flight.len()
        );
    }

    // ---- Wire --------------------------------------------------------------------------

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buf_capacity))
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.pool.push(buf);
    }

    fn record(
        &mut self,
        time: Instant,
        meta: CopyMeta,
        to: Option<usize>,
        fate: Fate,
        data: &[u8],
    ) {
        if let Some(cap) = &mut self.capture {
            cap.push(CapturedFrame {
                time,
                sent: meta.sent,
                from: meta.from,
                to,
                fate,
                duplicate: meta.duplicate,
                reordered: meta.reordered,
                corruption: meta.corruption,
                data: data.to_vec(),
            });
        }
    }

    /// Moves every frame due at `now` into its receiver's RX queue.
    fn deliver_due(&mut self) {
        while self
            .in_flight
            .peek()
            .is_some_and(|Reverse(f)| f.at <= self.now)
        {
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            let to = f.to as usize;
            let fate = if self.nodes[to].link.push_rx(&f.data) {
                self.nodes[to].rx_stalled = false;
                Fate::Delivered
            } else {
                Fate::RxDropped
            };
            let meta = CopyMeta {
                sent: f.sent,
                from: f.from as usize,
                to,
                duplicate: f.duplicate,
                reordered: f.reordered,
                corruption: f.corruption,
            };
            let k = meta.from * self.nodes.len() + to;
            self.wires[k].stats.count_fate(fate, f.data.len());
            self.stats.count_fate(fate, f.data.len());
            self.record(self.now, meta, Some(to), fate, &f.data);
            self.recycle(f.data);
        }
    }

    /// Takes every node's published TX frames and puts them on the wire.
    fn collect(&mut self) {
        for from in 0..self.nodes.len() {
            while self.nodes[from].link.tx_len() > 0 {
                let mut buf = self.take_buf();
                self.nodes[from].link.pop_tx(|f| buf.extend_from_slice(f));
                self.route(from, buf);
            }
        }
    }

    fn route(&mut self, from: usize, buf: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.sent_bytes += buf.len() as u64;
        let meta = CopyMeta {
            sent: self.now,
            from,
            to: usize::MAX,
            duplicate: false,
            reordered: false,
            corruption: None,
        };
        if buf.len() < 14 {
            return self.no_route(meta, buf);
        }
        let dst = EthernetAddress(buf[..6].try_into().unwrap_or([0; 6]));
        if dst.0[0] & 1 == 1 {
            // Broadcast or multicast: flood to every other node, each copy faulted on its own
            // link. The last copy reuses `buf`.
            let targets: Vec<usize> = (0..self.nodes.len()).filter(|&t| t != from).collect();
            let Some((&last, rest)) = targets.split_last() else {
                return self.no_route(meta, buf);
            };
            for &to in rest {
                let mut copy = self.take_buf();
                copy.extend_from_slice(&buf);
                self.send_copy(CopyMeta { to, ..meta }, copy);
            }
            self.send_copy(CopyMeta { to: last, ..meta }, buf);
        } else {
            match self.node_by_mac(dst) {
                Some(to) if to != from => self.send_copy(CopyMeta { to, ..meta }, buf),
                _ => self.no_route(meta, buf),
            }
        }
    }

    fn no_route(&mut self, meta: CopyMeta, buf: Vec<u8>) {
        self.stats.count_fate(Fate::NoRoute, buf.len());
        self.record(self.now, meta, None, Fate::NoRoute, &buf);
        self.recycle(buf);
    }

    /// One copy through the faults of link `meta.from -> meta.to`.
    fn send_copy(&mut self, mut meta: CopyMeta, mut buf: Vec<u8>) {
        let k = meta.from * self.nodes.len() + meta.to;
        let now = self.now;
        let wire = &mut self.wires[k];
        let cfg = wire.config;
        // A fixed number of draws per copy keeps the stream aligned whatever the
        // configuration (see the determinism guarantee).
        let rng = &mut wire.rng;
        let lost = rng.chance(cfg.loss);
        let corrupt = rng.chance(cfg.corrupt);
        let reorder = rng.chance(cfg.reorder);
        let duplicate = rng.chance(cfg.duplicate);
        let jitter_draw = rng.next_u64();
        let reorder_draw = rng.next_u64();
        let corrupt_draw = rng.next_u64();
        let len = buf.len();
        wire.stats.sent += 1;
        wire.stats.sent_bytes += len as u64;

        // Bottleneck: a fluid model of a FIFO serializer. The backlog is what is still to be
        // serialized at `now`; a frame starts when the previous one has left.
        let mut depart = now;
        if let Some(rate) = cfg.rate_bps.filter(|&r| r > 0) {
            const BITS_NS: u128 = 8 * 1_000_000_000;
            if wire.busy_rate != rate {
                // The rate was reconfigured: rescale the backlog's end (rounding up).
                let ns = wire.busy_until.div_ceil(u128::from(wire.busy_rate));
                wire.busy_until = ns * u128::from(rate);
                wire.busy_rate = rate;
            }
            let now_scaled = u128::from(now.total_micros()) * 1000 * u128::from(rate);
            let backlog = wire.busy_until.saturating_sub(now_scaled);
            let backlog_bytes = backlog.div_ceil(BITS_NS);
            if backlog > 0 && backlog_bytes + len as u128 > cfg.queue_limit_bytes as u128 {
                wire.stats.queue_dropped += 1;
                self.stats.queue_dropped += 1;
                self.record(now, meta, Some(meta.to), Fate::QueueDropped, &buf);
                return self.recycle(buf);
            }
            wire.busy_until = wire.busy_until.max(now_scaled) + len as u128 * BITS_NS;
            let depart_us = wire.busy_until.div_ceil(1000 * u128::from(rate));
            depart = Instant::from_micros(depart_us.min(u128::from(u64::MAX)) as u64);
        }

        if lost {
            wire.stats.lost += 1;
            self.stats.lost += 1;
            self.record(now, meta, Some(meta.to), Fate::Lost, &buf);
            return self.recycle(buf);
        }

        if corrupt && len > 0 {
            // Damage the Ethernet header would be caught by the FCS on a real wire and never
            // reach the stack; what matters is what only the IP/TCP checksums can catch.
            let lo = if len > 14 { 14 } else { 0 };
            let offset = lo + scale(corrupt_draw, (len - lo) as u64) as usize;
            let mask = 1u8 << (corrupt_draw & 7);
            buf[offset] ^= mask;
            meta.corruption = Some(Corruption { offset, mask });
            wire.stats.corrupted += 1;
            self.stats.corrupted += 1;
        }

        let jitter_us = cfg.jitter.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let base = depart + cfg.latency + Duration::from_micros(scale(jitter_draw, jitter_us + 1));
        let arrival = if reorder {
            let max = cfg.reorder_delay.as_micros().min(u128::from(u64::MAX / 2)) as u64;
            let extra = max / 2 + scale(reorder_draw, max - max / 2 + 1);
            meta.reordered = true;
            wire.stats.reordered += 1;
            self.stats.reordered += 1;
            base + Duration::from_micros(extra)
        } else {
            let a = base.max(wire.last_arrival);
            wire.last_arrival = a;
            a
        };

        if duplicate {
            let mut copy = self.take_buf();
            copy.extend_from_slice(&buf);
            self.schedule(arrival, meta, buf);
            let wire = &mut self.wires[k];
            wire.stats.duplicated += 1;
            self.stats.duplicated += 1;
            self.schedule(
                arrival,
                CopyMeta {
                    duplicate: true,
                    ..meta
                },
                copy,
            );
        } else {
            self.schedule(arrival, meta, buf);
        }
    }

    fn schedule(&mut self, at: Instant, meta: CopyMeta, data: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(Reverse(InFlight {
            at,
            seq,
            sent: meta.sent,
            from: meta.from as u32,
            to: meta.to as u32,
            duplicate: meta.duplicate,
            reordered: meta.reordered,
            corruption: meta.corruption,
            data,
        }));
    }
}

/// Maps a uniform 64-bit draw to `[0, n)` (multiply-shift; bias below `n / 2^64`).
fn scale(draw: u64, n: u64) -> u64 {
    ((u128::from(draw) * u128::from(n)) >> 64) as u64
}

/// Text for one frame in [`Simulation::dump`].
pub(crate) fn describe(frame: &[u8]) -> String {
    crate::wire::describe_frame(frame)
}
