//! The xtcp backend: the client side runs on xtcp itself, over AF_XDP.
//!
//! Setup ([`Backend::prepare`], in the calling thread's network namespace): the XDP program is
//! attached to `--iface` and steers every TCP frame whose destination port lies in the
//! client port range ([`STACK_PORTS`], plus [`FLOOD_PORTS`] when a SYN flood runs) into the
//! AF_XDP socket of the queue it arrived on; worker `i` owns the socket of queue `i`. The
//! server's MAC is resolved once through the kernel (the engine's
//! [`xtcp::engine::sys::resolve_next_hop`]): ARP is passed to the kernel by the XDP program,
//! so the stack runs with its own ARP off. The interface's MAC and address and the stack's
//! secret come from the engine's host helpers too ([`xtcp::engine::sys`]).
//!
//! Each worker owns one [`Stack`] configured with every `--src-ip` address (default: the
//! interface's own address) and its own slice of the port range (the engine's
//! [`Ownership::port_slice`]), so workers never collide; connections take source addresses
//! round-robin. With several workers, a reply that arrives on another worker's queue (veth
//! picks the queue from the server's transmit queue; a NIC from its RSS hash) is handed to
//! the worker owning its port through the engine's lock-free per-pair queues
//! ([`HandoffLink`]), as in the engine (see docs/multicore.md). The loop per turn: receive (and run the
//! stack's timers) without transmitting, handle the stack's events (one state machine per
//! connection, the same phases and measurement points as the kernel backend), start what the
//! pacer allows (`connect`), expire the per-phase timeouts, then transmit once (`flush`), so
//! the reactions share the ACKs owed (`connect` costs the client three frames, not four: the
//! FIN rides on the handshake's last ACK). Then it sleeps on the socket until the next due
//! start, stack timer or timeout (a short final stretch is polled, as a timed sleep
//! overshoots).
//!
//! Teardown: the client calls `close` (a full close: FIN, orphaned in the stack) and the
//! teardown is measured from that call to the stack's `Closed` event (our FIN acknowledged
//! and the server's FIN seen: TIME-WAIT). In `server-close` the server's FIN ends the
//! connection (teardown measured from the first response byte); the client then closes and
//! the stack finishes LAST-ACK on its own.
//!
//! Counted from the stack: client TIME-WAIT (its table's size, a gauge), SYN retransmits
//! (SYNs leaving the socket minus active opens) and other retransmits (the stack's
//! `retransmits` counter minus the SYN retransmits).
//!
//! SYN flood (`--workload syn-flood --rate R`, or `--syn-flood-rate R` next to another
//! workload): SYNs from random addresses of the `--src-ip` prefix and random ports of
//! [`FLOOD_PORTS`], crafted with [`xtcp::wire::emit_tcp_frame`] and sent through the same
//! socket, paced on their own open-loop grid. The server's SYN-ACKs to them come back
//! through the steering and are counted and dropped before the stack sees them (a spoofed
//! host that does not exist answers nothing, so the server's half-open state stays).

use super::sched::{Host, MAX_STARTS_PER_TURN, Sched};
use super::{Backend, BackendKind, LoadSpec, Worker, WorkerCtx, Workload};
use crate::metrics::{Counter, FailCause, Recorder};
use crate::pace::OpenLoop;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use xtcp::afxdp::{XskConfig, XskLink};
use xtcp::capture::{CaptureConfig, CaptureLink, PcapFile};
use xtcp::engine::handoff::{Handoff, HandoffLink, HandoffStats, Ownership};
use xtcp::engine::sys as host;
use xtcp::link::Link;
use xtcp::tcp::{Event, TcpConfig};
use xtcp::time::Instant;
use xtcp::wire::vlan::TAG_LEN;
use xtcp::wire::{EthernetAddress, SeqNumber, TcpControl, TcpRepr, VlanId, emit_tcp_frame_vlan};
use xtcp::{ConnHandle, Stack, StackConfig, StackError};
use xtcp_xdp_ebpf::{XdpMode, XdpSteering};

/// With several workers, the longest sleep on the socket: a worker that hands a reply to a
/// sleeping owner cannot wake it, so this bounds the extra delay of handed-over frames.
const HANDOFF_POLL: Duration = Duration::from_micros(200);

/// Local ports of the client connections when no SYN flood runs: the whole unprivileged range.
pub const STACK_PORTS: RangeInclusive<u16> = 1024..=65535;
/// Local ports of the client connections next to a SYN flood.
pub const STACK_PORTS_WITH_FLOOD: RangeInclusive<u16> = 1024..=60999;
/// Source ports of the spoofed SYNs.
pub const FLOOD_PORTS: RangeInclusive<u16> = 61000..=65535;
/// Connections in flight per worker at most (beyond it, due starts wait and their latency,
/// measured from the intended start, shows it).
const MAX_INFLIGHT: u32 = 65_536;
/// Longest sleep, so SIGINT and the end of the run are noticed promptly.
const MAX_SLEEP_NS: u64 = 20_000_000;
/// How long before a deadline the loop stops sleeping and polls.
const SPIN_NS: u64 = 30_000;
/// How often gauges and retransmit counts are published.
const PUBLISH_NS: u64 = 10_000_000;

/// The backend; holds the XDP program for the whole run (dropping it detaches the program).
pub struct XtcpBackend {
    steering: Option<XdpSteering>,
}

/// Builds the xtcp backend.
pub fn backend() -> Result<Box<dyn Backend>, String> {
    Ok(Box::new(XtcpBackend { steering: None }))
}

/// The flood's share of the spec: rate for all workers together and the spoofed prefix.
fn flood_rate(spec: &LoadSpec) -> Option<f64> {
    match (spec.workload, spec.load) {
        (Workload::SynFlood, super::Load::Open { rate }) => Some(rate),
        (Workload::SynFlood, super::Load::Closed { .. }) => None,
        _ => spec.syn_flood_rate,
    }
}

/// The device's receive queues (`ethtool -l`), or those sysfs lists where the driver does not
/// report channels.
fn rx_queues(iface: &str) -> usize {
    if let Ok(ch) = xtcp::engine::nic::channels(iface)
        && ch.rx_queues > 0
    {
        return ch.rx_queues as usize;
    }
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

impl Backend for XtcpBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Xtcp
    }

    fn time_wait_from_gauges(&self) -> bool {
        true
    }

    fn time_wait_bytes_per_entry(&self) -> Option<u64> {
        Some(std::mem::size_of::<xtcp::tcp::time_wait::TimeWaitEntry>() as u64)
    }

    fn prepare(&mut self, spec: &LoadSpec) -> Result<Vec<Box<dyn Worker>>, String> {
        let iface = spec.iface.as_deref().ok_or(
            "--backend xtcp needs --iface IFACE (the interface towards the server; or use \
             --backend kernel)",
        )?;
        if spec.workload == Workload::SynFlood && flood_rate(spec).is_none() {
            return Err("workload syn-flood needs --rate SYN_PER_S (it is open loop only)".into());
        }
        let flood = flood_rate(spec);
        if flood.is_some() && spec.source_prefix.is_none() {
            return Err("a SYN flood needs --src-ip PREFIX (the spoofed sources)".into());
        }
        // Safety: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "--backend xtcp needs root (it attaches an XDP program and opens AF_XDP sockets); \
                 run as root or use --backend kernel"
                    .into(),
            );
        }
        let workers = spec.workers();
        let queues = rx_queues(iface);
        if workers > queues {
            return Err(format!(
                "--cores gives {workers} workers but {iface} has {queues} receive queue(s): one \
                 worker per queue"
            ));
        }
        if workers < queues && queues > 1 {
            // The XDP program passes frames of a queue without a socket to the kernel, which
            // answers our connections there with RST.
            return Err(format!(
                "{iface} receives on {queues} queues but --cores gives {workers} worker(s): give \
                 one core per queue (--cores 0-{}), or reduce the device's queues (ethtool -L \
                 {iface} combined {workers})",
                queues - 1
            ));
        }
        let mac = host::interface_mac(iface)
            .map_err(|e| format!("interface {iface}: cannot read its MAC address: {e}"))?
            .0;
        let sources: Vec<Ipv4Addr> = if spec.source_ips.is_empty() {
            vec![host::interface_ipv4(iface).ok_or_else(|| {
                format!(
                    "{iface} has no IPv4 address: give --src-ip (the client's source addresses)"
                )
            })?]
        } else {
            spec.source_ips.clone()
        };
        let (_, server_mac) =
            host::resolve_next_hop(iface, *spec.target.ip(), Duration::from_secs(3))?;

        let mut steering = XdpSteering::attach(iface, XdpMode::Auto)
            .map_err(|e| format!("cannot attach the XDP program to {iface}: {e}"))?;
        if workers > 1 && steering.mode() == XdpMode::Skb {
            return Err(format!(
                "XDP on {iface} runs in SKB mode, where every frame arrives on queue 0: use one \
                 core (--cores N)"
            ));
        }
        let stack_ports = if flood.is_some() {
            STACK_PORTS_WITH_FLOOD
        } else {
            STACK_PORTS
        };
        let hi = if flood.is_some() {
            *FLOOD_PORTS.end()
        } else {
            *stack_ports.end()
        };
        // With only the interface's own address, steer only frames to it: the kernel's own
        // connections from other addresses keep working. With --src-ip the addresses are the
        // stack's alone.
        let only = (spec.source_ips.is_empty()).then_some(sources[0]);
        steering
            .set_vlan(spec.vlan.map(VlanId::get))
            .map_err(|e| format!("XDP VLAN: {e}"))?;
        steering
            .set_port_range_slot(0, only, *stack_ports.start(), hi)
            .map_err(|e| format!("XDP port range: {e}"))?;

        let mut secret = [0u8; 32];
        host::fill_random(&mut secret).map_err(|e| e.to_string())?;
        let owners = Ownership::new(workers as u32, stack_ports.clone(), None);
        let hub = (workers > 1).then(|| Arc::new(Handoff::new(workers as u32)));
        let running = hub.as_ref().map(|_| Arc::new(AtomicUsize::new(workers)));
        let mut out: Vec<Box<dyn Worker>> = Vec::with_capacity(workers);
        for i in 0..workers {
            let ports = owners.port_slice(i as u32);
            let mut cfg = XskConfig::new(iface);
            cfg.queue_id = i as u32;
            let link = XskLink::new(&cfg)
                .map_err(|e| format!("AF_XDP socket on {iface} queue {i}: {e}"))?;
            let capture = match &spec.pcap {
                Some(path) => {
                    let c = CaptureConfig::new(path);
                    let at = c.path_for_queue(i as u32, workers as u32);
                    Some(
                        PcapFile::create_at(&c, &at)
                            .map_err(|e| format!("--pcap {}: {e}", at.display()))?,
                    )
                }
                None => None,
            };
            steering
                .register_xsk(i as u32, link.fd())
                .map_err(|e| format!("registering the AF_XDP socket of queue {i}: {e}"))?;
            let mut secret = secret;
            secret[31] ^= i as u8;
            out.push(Box::new(XtcpWorker {
                link,
                capture,
                mac: EthernetAddress(mac),
                server_mac,
                sources: sources.clone(),
                ports,
                queue: i as u32,
                hub: hub.clone(),
                owners: owners.clone(),
                running: running.clone(),
                flood,
                secret,
                vlan: spec.vlan,
            }));
        }
        self.steering = Some(steering);
        Ok(out)
    }
}

struct XtcpWorker {
    link: XskLink,
    capture: Option<PcapFile>,
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    sources: Vec<Ipv4Addr>,
    ports: RangeInclusive<u16>,
    /// This worker's queue, and the handoff between workers (`None`: one worker).
    queue: u32,
    hub: Option<Arc<Handoff>>,
    owners: Ownership,
    /// Workers still running (with a hub): a finished worker keeps handing over until 0.
    running: Option<Arc<AtomicUsize>>,
    flood: Option<f64>,
    secret: [u8; 32],
    vlan: Option<VlanId>,
}

impl Worker for XtcpWorker {
    fn run(self: Box<Self>, ctx: WorkerCtx) -> Result<(), String> {
        crate::sys::tight_timer_slack();
        let w = *self;
        let mut client = Client::new(w, ctx);
        let r = client.run();
        client.linger();
        client.rec.set_gauge(Counter::InFlight, 0);
        client.publish(u64::MAX);
        let Client { rec, .. } = client;
        rec.finish();
        r
    }
}

// ------------------------------------------------------------------------------- the link tap

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// (destination port, flags) of an Ethernet/IPv4/TCP frame; `None` for anything else or a
/// frame too short to tell. Never panics.
fn tcp_port_flags(frame: &[u8]) -> Option<(u16, u8)> {
    // One 802.1Q tag (--vlan) moves the IPv4 header 4 bytes on.
    let l3 = if frame.get(12..14)? == [0x81, 0x00] {
        18
    } else {
        14
    };
    if frame.get(l3 - 2..l3)? != [0x08, 0x00] || *frame.get(l3 + 9)? != 6 {
        return None;
    }
    let t = l3 + usize::from(frame.get(l3)? & 0x0f) * 4;
    let port = u16::from_be_bytes([*frame.get(t + 2)?, *frame.get(t + 3)?]);
    Some((port, *frame.get(t + 13)?))
}

/// The socket as the stack sees it: counts the SYNs the stack sends (for SYN retransmits) and
/// takes the SYN flood's returning frames out before the stack sees them. The capture (when
/// on) sits below it and so records every frame, flood included.
struct Tap {
    link: CaptureLink<XskLink>,
    /// First port of the flood range when a flood runs.
    flood_lo: Option<u16>,
    syns_sent: u64,
    flood_answered: u64,
}

impl Link for Tap {
    fn max_frame_len(&self) -> usize {
        self.link.max_frame_len()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let Some(lo) = self.flood_lo else {
            return self.link.receive(budget, f);
        };
        let answered = &mut self.flood_answered;
        self.link
            .receive(budget, |frame| match tcp_port_flags(frame) {
                Some((port, flags)) if port >= lo => {
                    if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
                        *answered += 1;
                    }
                }
                _ => f(frame),
            })
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        let syns = &mut self.syns_sent;
        self.link.transmit(|buf| {
            let n = f(buf);
            if let Some((_, flags)) = tcp_port_flags(&buf[..n.min(buf.len())])
                && flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            {
                *syns += 1;
            }
            n
        })
    }

    fn flush(&mut self) {
        self.link.flush();
    }
}

// ------------------------------------------------------------------------------ the SYN flood

/// Paced spoofed SYNs.
struct Flood {
    pacer: OpenLoop,
    rng: u64,
    net: u32,
    size: u32,
    target: SocketAddrV4,
}

impl Flood {
    fn next(&mut self) -> u64 {
        // xorshift64*: statistical quality is plenty for picking spoofed sources.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// ------------------------------------------------------------------------------- the client

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Free,
    Connecting,
    Sending,
    Receiving,
    Idle,
    Closing,
}

#[derive(Clone, Copy)]
struct Conn {
    h: Option<ConnHandle>,
    st: St,
    measured: bool,
    start_ns: u64,
    due_ns: u64,
    first_byte_ns: u64,
    close_ns: u64,
    sent: usize,
    received: usize,
    timer_seq: u32,
}

const EMPTY: Conn = Conn {
    h: None,
    st: St::Free,
    measured: false,
    start_ns: 0,
    due_ns: 0,
    first_byte_ns: 0,
    close_ns: 0,
    sent: 0,
    received: 0,
    timer_seq: 0,
};

struct Client {
    spec: Arc<LoadSpec>,
    rec: Recorder,
    stack: Stack,
    tap: Tap,
    queue: u32,
    hub: Option<Arc<Handoff>>,
    owners: Ownership,
    running: Option<Arc<AtomicUsize>>,
    handoff: HandoffStats,
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    vlan: Option<VlanId>,
    sources: Vec<Ipv4Addr>,
    src_next: usize,
    /// Indexed by the stack's slot index ([`ConnHandle::index`]).
    conns: Vec<Conn>,
    inflight: u32,
    timers: VecDeque<(u64, u32, u32)>,
    sched: Sched,
    flood: Option<Flood>,
    /// Published so far: SYN retransmits, other retransmits, flood answers.
    published: (u64, u64, u64),
    next_publish: u64,
}

fn inst(ns: u64) -> Instant {
    Instant::from_micros(ns / 1000)
}

impl Client {
    fn new(w: XtcpWorker, ctx: WorkerCtx) -> Client {
        let spec = ctx.spec;
        let share = spec.share(ctx.index, ctx.workers);
        let now = spec.now_ns();
        let cfg = StackConfig {
            mac: w.mac,
            ips: w.sources.clone(),
            vlan: w.vlan,
            // A tag takes 4 bytes of the frame the default MSS fills.
            tcp: TcpConfig {
                mss: TcpConfig::default().mss - if w.vlan.is_some() { TAG_LEN as u16 } else { 0 },
                ..TcpConfig::default()
            },
            max_connections: 2 * MAX_INFLIGHT as usize,
            max_syn_recv: 1024,
            ephemeral_ports: w.ports.clone(),
            arp: false,
            secret: w.secret,
            ..StackConfig::default()
        };
        let mut stack = Stack::new(cfg, inst(now));
        stack.add_neighbor(*spec.target.ip(), w.server_mac);
        let flood = match (w.flood, spec.source_prefix) {
            (Some(rate), Some((net, len))) => {
                let per = rate / ctx.workers.max(1) as f64;
                let first = (1e9 / rate * ctx.index as f64) as u64;
                Some(Flood {
                    pacer: OpenLoop::new(per, first, spec.end_ns),
                    rng: u64::from_le_bytes(w.secret[..8].try_into().unwrap_or([1; 8])) | 1,
                    net: u32::from(net),
                    size: if len >= 32 { 1 } else { 1u32 << (32 - len) },
                    target: spec.target,
                })
            }
            _ => None,
        };
        Client {
            rec: ctx.recorder,
            stack,
            tap: Tap {
                link: CaptureLink::new(w.link, w.capture),
                flood_lo: flood.as_ref().map(|_| *FLOOD_PORTS.start()),
                syns_sent: 0,
                flood_answered: 0,
            },
            queue: w.queue,
            hub: w.hub,
            owners: w.owners,
            running: w.running,
            handoff: HandoffStats::default(),
            mac: w.mac,
            server_mac: w.server_mac,
            vlan: w.vlan,
            src_next: ctx.index,
            sources: w.sources,
            conns: Vec::new(),
            inflight: 0,
            timers: VecDeque::new(),
            sched: Sched::new(&spec, share),
            flood,
            published: (0, 0, 0),
            next_publish: 0,
            spec,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let timeout_ns = self.spec.timeout.as_nanos() as u64;
        // Safety net beyond the per-connection timers: nothing outlives this.
        let hard_end = self.spec.end_ns + timeout_ns + 200_000_000;
        loop {
            let now = self.spec.now_ns();
            if !self.sched.draining() && (now >= self.spec.end_ns || crate::util::stop_requested())
            {
                self.begin_drain(now);
            }
            // Receive (and run the stack's timers) without transmitting, react, then transmit
            // once: the reactions ride on the ACKs the received segments owe (connect: the FIN
            // shares the handshake's final ACK; crr: the FIN shares the response's ACK), one
            // frame fewer per connection for both sides to carry.
            let received = match &self.hub {
                Some(hub) => self.stack.receive(
                    inst(now),
                    &mut HandoffLink {
                        link: &mut self.tap,
                        me: self.queue,
                        hub,
                        owners: &self.owners,
                        stats: &mut self.handoff,
                    },
                ),
                None => self.stack.receive(inst(now), &mut self.tap),
            };
            let now = self.spec.now_ns();
            let handled = self.handle_events(now);
            if !self.sched.draining() {
                self.start_new(now);
                self.send_flood(now);
            }
            if self.spec.workload == Workload::Rr {
                self.dispatch_rr(now);
            }
            self.expire(now);
            self.stack.flush(inst(now), &mut self.tap);
            self.rec
                .set_gauge(Counter::InFlight, u64::from(self.inflight));
            if now >= self.next_publish {
                self.publish(now);
                self.next_publish = now + PUBLISH_NS;
            }
            if self.sched.draining() && self.inflight == 0 {
                return Ok(());
            }
            if now >= hard_end {
                for i in 0..self.conns.len() as u32 {
                    if self.conns[i as usize].st != St::Free {
                        self.fail(i, FailCause::Timeout, true);
                    }
                }
                return Ok(());
            }
            if received > 0 || handled {
                continue;
            }
            let wake = self.wake_at(now);
            let handed = self.hub.as_ref().is_some_and(|h| h.has_pending(self.queue));
            if wake > now + SPIN_NS && !handed {
                let mut sleep = Duration::from_nanos(wake - now - SPIN_NS);
                if self.hub.is_some() {
                    // Another worker cannot wake this one when it hands over a frame: bound
                    // the delay of handed-over replies.
                    sleep = sleep.min(HANDOFF_POLL);
                }
                host::wait_readable(self.tap.link.inner().fd(), sleep)
                    .map_err(|e| format!("poll on the AF_XDP socket: {e}"))?;
            }
        }
    }

    /// After this worker's run: keep reading its queue, handing the other workers' replies
    /// over, until every worker is done (their last connections' replies may land here).
    fn linger(&mut self) {
        let (Some(hub), Some(running)) = (self.hub.clone(), self.running.clone()) else {
            return;
        };
        running.fetch_sub(1, Ordering::AcqRel);
        let hard_end = self.spec.end_ns + self.spec.timeout.as_nanos() as u64 + 200_000_000;
        while running.load(Ordering::Acquire) > 0 && self.spec.now_ns() < hard_end {
            let now = self.spec.now_ns();
            let received = self.stack.receive(
                inst(now),
                &mut HandoffLink {
                    link: &mut self.tap,
                    me: self.queue,
                    hub: &hub,
                    owners: &self.owners,
                    stats: &mut self.handoff,
                },
            );
            while self.stack.poll_event().is_some() {}
            self.stack.flush(inst(now), &mut self.tap);
            if received == 0 {
                let _ = host::wait_readable(self.tap.link.inner().fd(), HANDOFF_POLL);
            }
        }
    }

    /// Publishes gauges and counter deltas (counters only from the end of the warmup).
    fn publish(&mut self, now: u64) {
        let c = self.stack.counters();
        self.rec.set_gauge(Counter::TimeWait, c.time_wait);
        let syn = self.tap.syns_sent.saturating_sub(c.active_opens);
        let data = c.retransmits.saturating_sub(syn);
        let answered = self.tap.flood_answered;
        if now >= self.spec.measure_start_ns {
            self.rec
                .add(Counter::SynRetrans, syn.saturating_sub(self.published.0));
            self.rec
                .add(Counter::DataRetrans, data.saturating_sub(self.published.1));
            self.rec.add(
                Counter::FloodAnswered,
                answered.saturating_sub(self.published.2),
            );
        }
        self.published = (
            syn.max(self.published.0),
            data.max(self.published.1),
            answered,
        );
    }

    fn wake_at(&self, now: u64) -> u64 {
        let mut wake = now + MAX_SLEEP_NS;
        let is_idle = |s: u32| self.conns[s as usize].st == St::Idle;
        if let Some(t) = self.sched.next_wake(self.inflight, 0, is_idle) {
            wake = wake.min(t);
        }
        if !self.sched.draining() {
            wake = wake.min(self.spec.end_ns);
            if let Some(d) = self.flood.as_ref().and_then(|f| f.pacer.next_due()) {
                wake = wake.min(d);
            }
        }
        if let Some(&(deadline, _, _)) = self.timers.front() {
            wake = wake.min(deadline);
        }
        if let Some(t) = self.stack.poll_at() {
            wake = wake.min(t.total_micros() * 1000);
        }
        wake
    }

    fn begin_drain(&mut self, now: u64) {
        self.sched.begin_drain(now);
        if let Some(f) = &mut self.flood {
            f.pacer.cut(now);
        }
        self.close_idle(now);
    }

    fn send_flood(&mut self, now: u64) {
        let Some(f) = &mut self.flood else {
            return;
        };
        let (mac, server_mac, vlan) = (self.mac, self.server_mac, self.vlan);
        let span = u32::from(*FLOOD_PORTS.end() - *FLOOD_PORTS.start()) + 1;
        let mut budget = MAX_STARTS_PER_TURN;
        while budget > 0 {
            let Some(due) = f.pacer.take(now) else {
                break;
            };
            budget -= 1;
            let r = f.next();
            // Host part 1..size-2 for prefixes up to /30 (no network or broadcast address).
            let host = if f.size > 2 {
                1 + (r as u32) % (f.size - 2)
            } else {
                (r as u32) % f.size
            };
            let src = Ipv4Addr::from(f.net + host);
            let port = *FLOOD_PORTS.start() + ((r >> 32) as u32 % span) as u16;
            let syn = TcpRepr {
                src_port: port,
                dst_port: f.target.port(),
                control: TcpControl::Syn,
                seq_number: SeqNumber((r >> 16) as u32),
                window_len: 64240,
                max_seg_size: Some(1460),
                ..TcpRepr::default()
            };
            let dst = *f.target.ip();
            let sent = self.tap.link.transmit(|buf| {
                emit_tcp_frame_vlan(buf, vlan, mac, server_mac, src, dst, &syn).unwrap_or(0)
            });
            if sent && self.rec.is_measured(due) {
                self.rec.add(Counter::FloodSent, 1);
            }
        }
    }

    fn start_conn(&mut self, now: u64, intended: u64) {
        let measured = self.rec.is_measured(intended);
        self.rec.attempt(measured);
        let src = self.sources[self.src_next % self.sources.len()];
        self.src_next = self.src_next.wrapping_add(1);
        let h = match self.stack.connect(inst(now), Some(src), self.spec.target) {
            Ok(h) => h,
            Err(e) => {
                let cause = match e {
                    StackError::PortsExhausted(_) | StackError::AddressNotLocal => {
                        FailCause::NoPort
                    }
                    _ => FailCause::Other,
                };
                self.rec.failed(measured, cause);
                return;
            }
        };
        let i = h.index();
        if i >= self.conns.len() {
            self.conns.resize(i + 1, EMPTY);
        }
        let c = &mut self.conns[i];
        *c = Conn {
            h: Some(h),
            st: St::Connecting,
            measured,
            start_ns: intended,
            timer_seq: c.timer_seq,
            ..EMPTY
        };
        self.inflight += 1;
        self.arm(i as u32, now);
    }

    fn arm(&mut self, i: u32, now: u64) {
        let c = &mut self.conns[i as usize];
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.timers
            .push_back((now + self.spec.timeout.as_nanos() as u64, i, c.timer_seq));
    }

    fn disarm(&mut self, i: u32) {
        let c = &mut self.conns[i as usize];
        c.timer_seq = c.timer_seq.wrapping_add(1);
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(deadline, i, seq)) = self.timers.front() {
            if deadline > now {
                break;
            }
            self.timers.pop_front();
            let c = &self.conns[i as usize];
            if c.st != St::Free && c.st != St::Idle && c.timer_seq == seq {
                self.fail(i, FailCause::Timeout, true);
            }
        }
    }

    /// Forgets connection `i`; `abort` resets it in the stack (it is still alive there).
    fn fail(&mut self, i: u32, cause: FailCause, abort: bool) {
        let c = self.conns[i as usize];
        self.rec.failed(c.measured, cause);
        if abort && let Some(h) = c.h {
            let _ = self.stack.abort(h);
        }
        self.release(i);
    }

    fn release(&mut self, i: u32) {
        let c = &mut self.conns[i as usize];
        if c.st == St::Free {
            return;
        }
        c.st = St::Free;
        c.h = None;
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.inflight -= 1;
    }

    fn begin_close(&mut self, i: u32, now: u64) {
        let Some(h) = self.conns[i as usize].h else {
            return;
        };
        if self.stack.close(h).is_err() {
            return self.fail(i, FailCause::Other, true);
        }
        let c = &mut self.conns[i as usize];
        c.st = St::Closing;
        c.close_ns = now;
        self.arm(i, now);
    }

    fn send_request(&mut self, i: u32, now: u64) {
        let Some(h) = self.conns[i as usize].h else {
            return;
        };
        let req = Arc::clone(&self.spec.request);
        let c = &mut self.conns[i as usize];
        while c.sent < req.len() {
            match self.stack.send(h, &req[c.sent..]) {
                Ok(0) => return, // send buffer full: continue on Writable
                Ok(n) => c.sent += n,
                Err(_) => return self.fail(i, FailCause::Other, true),
            }
        }
        c.st = St::Receiving;
        let _ = now;
    }

    /// Handles every queued stack event; returns whether there was any.
    fn handle_events(&mut self, now: u64) -> bool {
        let mut any = false;
        while let Some((h, ev)) = self.stack.poll_event() {
            any = true;
            let i = h.index();
            let Some(c) = self.conns.get(i) else {
                continue;
            };
            if c.h != Some(h) || c.st == St::Free {
                continue; // a connection we already let go of
            }
            self.on_event(i as u32, ev, now);
        }
        any
    }

    fn on_event(&mut self, i: u32, ev: Event, now: u64) {
        let c = self.conns[i as usize];
        match ev {
            Event::Connected => {
                if c.st != St::Connecting {
                    return;
                }
                self.rec
                    .handshake(c.measured, now.saturating_sub(c.start_ns));
                match self.spec.workload {
                    Workload::Connect | Workload::SynFlood => self.begin_close(i, now),
                    Workload::Crr | Workload::ServerClose => {
                        let c = &mut self.conns[i as usize];
                        c.st = St::Sending;
                        c.due_ns = now;
                        self.arm(i, now);
                        self.send_request(i, now);
                    }
                    Workload::Rr => {
                        if self.sched.draining() {
                            self.begin_close(i, now);
                        } else {
                            self.conns[i as usize].st = St::Idle;
                            self.disarm(i);
                            self.sched.park(i);
                        }
                    }
                }
            }
            Event::Writable => {
                if c.st == St::Sending {
                    self.send_request(i, now);
                }
            }
            Event::Readable => self.receive(i, now),
            Event::PeerClosed => {
                // Bytes that came with the FIN are read first.
                self.receive(i, now);
                let c = self.conns[i as usize];
                let want = self.spec.response_bytes.max(1);
                match (c.st, self.spec.workload) {
                    (St::Free | St::Closing, _) => {}
                    (St::Receiving, Workload::ServerClose) if c.received >= want => {
                        self.rec
                            .teardown(c.measured, now.saturating_sub(c.first_byte_ns));
                        self.rec.completed(c.measured);
                        if let Some(h) = c.h {
                            let _ = self.stack.close(h);
                        }
                        self.release(i);
                    }
                    (St::Receiving, Workload::Crr) if c.received > 0 => {
                        // The response may legitimately end at EOF.
                        self.rec
                            .transaction(c.measured, now.saturating_sub(c.due_ns));
                        self.begin_close(i, now);
                    }
                    _ => self.fail(i, FailCause::Other, true),
                }
            }
            Event::Closed => {
                if c.st == St::Closing {
                    self.rec
                        .teardown(c.measured, now.saturating_sub(c.close_ns));
                    self.rec.completed(c.measured);
                    self.release(i);
                } else {
                    self.fail(i, FailCause::Other, false);
                }
            }
            Event::Reset => self.fail(i, FailCause::Refused, false),
            Event::TimedOut => self.fail(i, FailCause::Timeout, false),
        }
    }

    fn receive(&mut self, i: u32, now: u64) {
        let Some(h) = self.conns[i as usize].h else {
            return;
        };
        let n = match self.stack.recv_slice(h) {
            Ok(s) => s.len(),
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let _ = self.stack.consume(h, n);
        let workload = self.spec.workload;
        let want = self.spec.response_bytes.max(1);
        let c = &mut self.conns[i as usize];
        if c.st == St::Closing {
            return; // late bytes after our FIN are read and dropped
        }
        if c.st != St::Receiving {
            return self.fail(i, FailCause::Other, true);
        }
        if c.received == 0 {
            c.first_byte_ns = now;
            let (m, due) = (c.measured, c.due_ns);
            self.rec.first_byte(m, now.saturating_sub(due));
        }
        let c = &mut self.conns[i as usize];
        c.received += n;
        if workload != Workload::ServerClose && c.received >= want {
            let (m, due) = (c.measured, c.due_ns);
            self.rec.transaction(m, now.saturating_sub(due));
            if workload == Workload::Rr && !self.sched.draining() {
                self.conns[i as usize].st = St::Idle;
                self.disarm(i);
                self.sched.park(i);
                return;
            }
            self.begin_close(i, now);
        }
    }
}

impl Host for Client {
    fn sched(&mut self) -> (&mut Sched, &mut Recorder) {
        (&mut self.sched, &mut self.rec)
    }

    fn inflight(&self) -> (u32, u32) {
        (self.inflight, MAX_INFLIGHT)
    }

    fn is_idle(&self, conn: u32) -> bool {
        self.conns[conn as usize].st == St::Idle
    }

    fn open(&mut self, now: u64, intended: u64) {
        self.start_conn(now, intended);
    }

    fn give(&mut self, conn: u32, due: u64, now: u64) {
        // rr: a transaction counts when it was due in the measured window, whenever its
        // persistent connection was opened (usually during the warmup).
        let measured = self.rec.is_measured(due);
        let c = &mut self.conns[conn as usize];
        c.measured = measured;
        c.due_ns = due;
        c.sent = 0;
        c.received = 0;
        c.st = St::Sending;
        self.arm(conn, now);
        self.send_request(conn, now);
    }

    fn close(&mut self, conn: u32, now: u64) {
        self.begin_close(conn, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtcp::wire::emit_tcp_frame;

    #[test]
    fn slices_are_disjoint_and_cover() {
        let o = Ownership::new(3, STACK_PORTS, None);
        let s: Vec<_> = (0..3).map(|q| o.port_slice(q)).collect();
        assert_eq!(*s[0].start(), 1024);
        assert_eq!(*s[2].end(), 65535);
        for w in s.windows(2) {
            assert_eq!(*w[0].end() + 1, *w[1].start());
        }
        assert_eq!(
            Ownership::new(1, STACK_PORTS, None).port_slice(0),
            STACK_PORTS
        );
        assert!(*STACK_PORTS_WITH_FLOOD.end() < *FLOOD_PORTS.start());
        // The flood's ports are no worker's: their frames are never handed off.
        let o = Ownership::new(2, STACK_PORTS_WITH_FLOOD, None);
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(o.owner(a, *FLOOD_PORTS.start(), b, 80), None);
    }

    #[test]
    fn tap_classifies_frames() {
        let syn = TcpRepr {
            src_port: 80,
            dst_port: 61001,
            control: TcpControl::Syn,
            seq_number: SeqNumber(1),
            ack_number: Some(SeqNumber(5)),
            ..TcpRepr::default()
        };
        let mut buf = [0u8; 128];
        let n = emit_tcp_frame(
            &mut buf,
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            &syn,
        )
        .unwrap();
        assert_eq!(tcp_port_flags(&buf[..n]), Some((61001, TCP_SYN | TCP_ACK)));
        let mut tagged = buf[..n].to_vec();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        assert_eq!(tcp_port_flags(&tagged), Some((61001, TCP_SYN | TCP_ACK)));
        for k in 0..44 {
            assert_eq!(tcp_port_flags(&tagged[..k]), None, "tagged, len {k}");
        }
        // Truncated and non-TCP frames are not classified, and never panic.
        for k in 0..40 {
            assert_eq!(tcp_port_flags(&buf[..k]), None, "len {k}");
        }
        buf[23] = 17;
        assert_eq!(tcp_port_flags(&buf[..n]), None);
    }
}
