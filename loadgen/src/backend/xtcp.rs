//! The xtcp backend: the client side runs on xtcp itself, as an application of the AF_XDP
//! engine ([`xtcp::engine`]).
//!
//! Setup ([`Backend::prepare`], in the calling thread's network namespace): the engine
//! attaches its XDP program to `--iface`, opens one AF_XDP socket per worker (worker `i`
//! serves queue `i`, pinned to the `i`-th of `--cores`) and steers the client port range
//! ([`STACK_PORTS`], plus [`FLOOD_PORTS`] when a SYN flood runs) to them. Each core runs one
//! [`LoadApp`] with its own stack, configured with every `--src-ip` address (default: the
//! interface's own address) and its own share of the ports, so cores never collide; a reply
//! that arrives on another core's queue is handed to its owner by the engine (see
//! docs/multicore.md). The server's MAC is resolved once through the kernel before the start
//! (the engine's [`host::resolve_next_hop`]), so an unreachable server fails the run at once.
//!
//! Each engine iteration: receive (and run the stack's timers), hand the stack's events to
//! the workload machine ([`super::workload`], shared with the kernel backend), then
//! [`App::on_tick`]: start what the pacer allows, expire the per-phase timeouts, send the
//! flood's SYNs; then the engine transmits once, so the reactions share the ACKs owed
//! (`connect` costs the client three frames, not four: the FIN rides on the handshake's last
//! ACK). The core then waits on its socket until the next due start, stack timer or timeout
//! ([`Io::wake_at`]; the last 30 µs are polled, as a timed sleep overshoots).
//!
//! The worker threads of the run controller only hand each core its [`WorkerCtx`] and wait
//! for it to finish; a core whose own run is over keeps polling (and handing the other cores'
//! replies over) until the engine stops when the backend is dropped.
//!
//! Teardown: the client calls `close` (a full close: FIN, orphaned in the stack) and the
//! teardown is measured from that call to the stack's `Closed` event (our FIN acknowledged
//! and the server's FIN seen: TIME-WAIT). In `server-close` the server's FIN ends the
//! connection (teardown measured from the first response byte); the client then closes and
//! the stack finishes LAST-ACK on its own.
//!
//! Counted from the stack: client TIME-WAIT (its table's size, a gauge), SYN retransmits
//! (SYNs the stack sends, seen through the engine's frame hook, minus active opens), other
//! retransmits (the stack's `retransmits` counter minus the SYN retransmits), and the
//! engine's handoff counters per core.
//!
//! SYN flood (`--workload syn-flood --rate R`, or `--syn-flood-rate R` next to another
//! workload): SYNs from random addresses of the `--src-ip` prefix and random ports of
//! [`FLOOD_PORTS`], crafted with [`xtcp::wire::emit_tcp_frame_vlan`] (tagged with `--vlan`) and sent as raw frames
//! ([`Io::send_frame`]), paced on their own open-loop grid. The server's SYN-ACKs to them come
//! back through the steering ([`EngineConfig::raw_ports`]) and are counted and taken in the
//! engine's frame hook before the stack sees them (a spoofed host that does not exist answers
//! nothing, so the server's half-open state stays).

use super::workload::{Machine, Recv, Sources, Transport};
use super::{Backend, BackendKind, LoadSpec, Worker, WorkerCtx, Workload};
use crate::metrics::{Counter, FailCause};
use crate::pace::OpenLoop;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xtcp::capture::CaptureConfig;
use xtcp::engine::{
    App, AppEvent, ConnectError, Engine, EngineConfig, Io, PollMode, ShutdownPolicy, XdpMode,
    sys as host,
};
use xtcp::tcp::TcpConfig;
use xtcp::wire::ipv4::{Ipv4Packet, PROTOCOL_TCP};
use xtcp::wire::tcp::TcpPacket;
use xtcp::wire::{
    EtherType, EthernetAddress, SeqNumber, TcpControl, TcpRepr, VlanId, emit_tcp_frame_vlan,
    parse_l2,
};
use xtcp::{ConnHandle, StackConfig, StackError};

/// With several cores, the longest wait on the socket: a core that hands a reply to a
/// sleeping owner cannot wake it, so this bounds the extra delay of handed-over frames.
const HANDOFF_POLL_NS: u64 = 200_000;

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
/// How often gauges and retransmit counts are published.
const PUBLISH_NS: u64 = 10_000_000;
/// Flood SYNs per turn at most.
const MAX_FLOOD_PER_TURN: usize = super::sched::MAX_STARTS_PER_TURN;

/// The backend; holds the engine for the whole run (dropping it stops the cores and detaches
/// the XDP program).
pub struct XtcpBackend {
    engine: Option<Engine<LoadApp>>,
    /// The run's target is IPv6 (the engine's IPv6 stack makes the connections).
    ipv6: bool,
}

/// Builds the xtcp backend.
pub fn backend() -> Result<Box<dyn Backend>, String> {
    Ok(Box::new(XtcpBackend {
        engine: None,
        ipv6: false,
    }))
}

/// The flood's rate for all workers together, if one runs.
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

/// Checks what can be checked before touching the interface.
fn check(spec: &LoadSpec) -> Result<(&str, Option<f64>, SocketAddr), String> {
    let target = spec.target;
    if let Some(other) = spec
        .source_ips
        .iter()
        .find(|a| a.is_ipv6() != target.is_ipv6())
    {
        return Err(format!(
            "--src-ip {other}: the sources must be of the target's family ({target})"
        ));
    }
    if target.is_ipv6() && flood_rate(spec).is_some() {
        return Err(format!(
            "--target {target}: the xtcp backend's SYN flood is IPv4 only; use an IPv4 target"
        ));
    }
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
    Ok((iface, flood, target))
}

impl Backend for XtcpBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Xtcp
    }

    fn time_wait_from_gauges(&self) -> bool {
        true
    }

    fn time_wait_bytes_per_entry(&self) -> Option<u64> {
        Some(if self.ipv6 {
            std::mem::size_of::<xtcp::tcp::time_wait::TimeWaitEntry<std::net::Ipv6Addr>>()
        } else {
            std::mem::size_of::<xtcp::tcp::time_wait::TimeWaitEntry>()
        } as u64)
    }

    fn prepare(&mut self, spec: &LoadSpec) -> Result<Vec<Box<dyn Worker>>, String> {
        let (iface, flood, target) = check(spec)?;
        let workers = spec.workers();
        let mac = host::interface_mac(iface)
            .map_err(|e| format!("interface {iface}: cannot read its MAC address: {e}"))?;
        self.ipv6 = target.is_ipv6();
        // Of the target's family: `check` refused any other.
        let sources: Vec<IpAddr> = if spec.source_ips.is_empty() {
            let own = if self.ipv6 {
                host::interface_ipv6(iface).map(IpAddr::V6)
            } else {
                host::interface_ipv4(iface).map(IpAddr::V4)
            };
            vec![own.ok_or_else(|| {
                format!(
                    "{iface} has no {} address: give --src-ip (the client's source addresses)",
                    if self.ipv6 { "global IPv6" } else { "IPv4" }
                )
            })?]
        } else {
            spec.source_ips.clone()
        };
        let (_, server_mac) = host::resolve_next_hop(iface, target.ip(), Duration::from_secs(3))?;
        let cfg = engine_config(spec, iface, &sources, flood.is_some());

        // One start channel (run controller → core) and one done channel (core → run
        // controller) per worker; each core's app takes its ends on its own thread.
        let mut ends = Vec::with_capacity(workers);
        let mut out: Vec<Box<dyn Worker>> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (start_tx, start_rx) = channel();
            let (done_tx, done_rx) = channel();
            ends.push(Some((start_rx, done_tx)));
            out.push(Box::new(XtcpWorker { start_tx, done_rx }));
        }
        let ends = Mutex::new(ends);
        let shared = Arc::new(Shared {
            vlan: spec.vlan,
            mac,
            server_mac,
            sources,
            flood,
            target,
        });
        let engine = Engine::start(cfg, move |queue| {
            let mine = ends
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(queue as usize)
                .and_then(Option::take);
            LoadApp::new(Arc::clone(&shared), mine)
        })
        .map_err(|e| format!("xtcp engine on {iface}: {e}"))?;
        if workers > 1 && engine.info().xdp_mode == XdpMode::Skb {
            return Err(format!(
                "XDP on {iface} runs in SKB mode, where every frame arrives on queue 0: use one \
                 core (--cores N)"
            ));
        }
        self.engine = Some(engine);
        Ok(out)
    }
}

/// The engine's configuration for the run.
/// With IPv6 sources the IPv4 stack keeps the interface's IPv4 address (or 0.0.0.0) and opens
/// nothing; the IPv6 stack has the sources.
fn engine_config(spec: &LoadSpec, iface: &str, sources: &[IpAddr], flood: bool) -> EngineConfig {
    let workers = spec.workers() as u32;
    let v4: Vec<Ipv4Addr> = sources
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<std::net::Ipv6Addr> = sources
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    let ip = v4
        .first()
        .copied()
        .or_else(|| host::interface_ipv4(iface))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut cfg = EngineConfig::new(iface, ip);
    cfg.source_ips = v4.get(1..).unwrap_or_default().to_vec();
    if let Some((first, rest)) = v6.split_first() {
        cfg.ipv6 = vec![*first];
        cfg.source_ips6 = rest.to_vec();
    }
    cfg.queues = workers;
    cfg.cores = (!spec.cores.is_empty()).then(|| spec.cores.clone());
    // Wait on the socket between due starts ([`Io::wake_at`]): a load generator that spins
    // would take the CPU the kernel needs to carry its frames on a small machine.
    cfg.poll = PollMode::Idle;
    cfg.idle_spins = 2;
    cfg.idle_wait = Duration::from_millis(if workers > 1 { 1 } else { 20 });
    // Whatever is still open when the backend is dropped was already counted.
    cfg.shutdown = ShutdownPolicy::Rst;
    cfg.raw_ports = flood.then_some((*FLOOD_PORTS.start(), *FLOOD_PORTS.end()));
    cfg.capture = spec.pcap.as_ref().map(CaptureConfig::new);
    // The engine tags what the stacks send, steers only this VID and lowers the MSS by 4.
    cfg.vlan = spec.vlan;
    cfg.stack = StackConfig {
        tcp: TcpConfig::default(),
        max_connections: 2 * MAX_INFLIGHT as usize,
        max_syn_recv: 1024,
        ephemeral_ports: if flood {
            STACK_PORTS_WITH_FLOOD
        } else {
            STACK_PORTS
        },
        ..StackConfig::default()
    };
    cfg
}

/// A core's ends of its start and done channels.
type CoreEnds = (Receiver<WorkerCtx>, Sender<Result<(), String>>);

/// What every core's app starts with.
struct Shared {
    vlan: Option<VlanId>,
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    sources: Vec<IpAddr>,
    flood: Option<f64>,
    /// The server.
    target: SocketAddr,
}

/// The run controller's side of one core: hands it the context, waits for it to finish.
struct XtcpWorker {
    start_tx: Sender<WorkerCtx>,
    done_rx: Receiver<Result<(), String>>,
}

impl Worker for XtcpWorker {
    fn run(self: Box<Self>, ctx: WorkerCtx) -> Result<(), String> {
        let index = ctx.index;
        let spec = Arc::clone(&ctx.spec);
        self.start_tx
            .send(ctx)
            .map_err(|_| format!("worker {index}: its engine core is gone"))?;
        // The core's own safety net ends it by `hard_end`; allow for a slow last turn.
        let limit = spec.end_ns + spec.timeout.as_nanos() as u64 + 2_000_000_000;
        loop {
            let left = limit.saturating_sub(spec.now_ns());
            match self
                .done_rx
                .recv_timeout(Duration::from_nanos(left.clamp(1, 100_000_000)))
            {
                Ok(r) => return r.map_err(|e| format!("worker {index}: {e}")),
                Err(RecvTimeoutError::Timeout) if spec.now_ns() < limit => {}
                Err(_) => return Err(format!("worker {index}: its engine core did not finish")),
            }
        }
    }
}

// ------------------------------------------------------------------------------- the link tap

/// (destination port, SYN, ACK) of an Ethernet/IPv4/TCP frame, untagged or with one 802.1Q
/// tag (`--vlan`); `None` for anything else or a frame too short to tell. Never panics.
fn tcp_port_flags(frame: &[u8]) -> Option<(u16, bool, bool)> {
    let l2 = parse_l2(frame).ok()?;
    if l2.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(l2.payload).ok()?;
    if ip.protocol() != PROTOCOL_TCP {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((tcp.dst_port(), tcp.syn(), tcp.ack()))
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

    /// The next spoofed SYN, as a frame in `buf`; returns its length.
    fn syn(
        &mut self,
        buf: &mut [u8],
        vlan: Option<VlanId>,
        mac: EthernetAddress,
        server_mac: EthernetAddress,
    ) -> usize {
        let span = u32::from(*FLOOD_PORTS.end() - *FLOOD_PORTS.start()) + 1;
        let r = self.next();
        // Host part 1..size-2 for prefixes up to /30 (no network or broadcast address).
        let host = if self.size > 2 {
            1 + (r as u32) % (self.size - 2)
        } else {
            (r as u32) % self.size
        };
        let src = Ipv4Addr::from(self.net + host);
        let port = *FLOOD_PORTS.start() + ((r >> 32) as u32 % span) as u16;
        let syn = TcpRepr {
            src_port: port,
            dst_port: self.target.port(),
            control: TcpControl::Syn,
            seq_number: SeqNumber((r >> 16) as u32),
            window_len: 64240,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        };
        emit_tcp_frame_vlan(buf, vlan, mac, server_mac, src, *self.target.ip(), &syn).unwrap_or(0)
    }
}

// ------------------------------------------------------------------------ the engine's app

/// An engine core's connections as the workload machine's [`Transport`].
struct Net<'a, 'io> {
    io: &'a mut Io<'io>,
    sources: &'a mut Sources<IpAddr>,
    target: SocketAddr,
    /// The machine's slot of each stack connection, by [`ConnHandle::index`].
    slots: &'a mut Vec<u32>,
}

impl Transport for Net<'_, '_> {
    type Handle = ConnHandle;
    const CLOSED_EVENT: bool = true;
    const CLOCK_AFTER_RECV: bool = false;

    fn connect(&mut self, slot: u32, _generation: u32) -> Result<(ConnHandle, bool), FailCause> {
        let src = self
            .sources
            .pick()
            .unwrap_or_else(|| self.io.local_ip().into());
        let h = self
            .io
            .connect_from(src, self.target)
            .map_err(|e| match e {
                ConnectError::Stack(
                    StackError::PortsExhausted(_)
                    | StackError::PortsExhausted6(_)
                    | StackError::AddressNotLocal,
                ) => FailCause::NoPort,
                _ => FailCause::Other,
            })?;
        let i = h.index();
        if self.slots.len() <= i {
            self.slots.resize(i + 1, u32::MAX);
        }
        self.slots[i] = slot;
        Ok((h, false))
    }

    fn send(&mut self, _: u32, h: ConnHandle, data: &[u8]) -> Result<Option<usize>, FailCause> {
        match self.io.send(h, data) {
            Ok(0) => Ok(None), // send buffer full: continue on Writable
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(FailCause::Other),
        }
    }

    fn recv(&mut self, _: u32, h: ConnHandle) -> Result<Recv, FailCause> {
        // The peer's FIN comes as its own event (`PeerClosed`), never as a read.
        let n = self.io.recv_slice(h).len();
        if n == 0 {
            return Ok(Recv::Empty);
        }
        self.io.consume(h, n);
        Ok(Recv::Data(n))
    }

    fn close(&mut self, _: u32, h: ConnHandle) -> Result<(), FailCause> {
        self.io.close(h).map_err(|_| FailCause::Other)
    }

    fn release(&mut self, _: u32, h: ConnHandle, abort: bool) {
        if abort {
            let _ = self.io.abort(h);
        }
    }
}

/// One core's run, from the moment the run controller hands it its context.
struct Running {
    m: Machine<ConnHandle>,
    sources: Sources<IpAddr>,
    slots: Vec<u32>,
    flood: Option<Flood>,
    done: Sender<Result<(), String>>,
    multi: bool,
    /// Published so far: SYN retransmits, other retransmits, flood answers.
    published: (u64, u64, u64),
    next_publish: u64,
    /// This turn's clock (the engine calls `on_event`s, then `on_tick`, per iteration).
    turn_ns: Option<u64>,
}

/// The load generator on one engine core.
pub struct LoadApp {
    shared: Arc<Shared>,
    start: Option<CoreEnds>,
    run: Option<Running>,
    /// First port of the flood range when a flood runs (its answers are taken off the link).
    flood_lo: Option<u16>,
    /// SYNs the stack sent (for SYN retransmits) and SYN-ACKs to the flood.
    syns_sent: u64,
    flood_answered: u64,
}

impl LoadApp {
    fn new(shared: Arc<Shared>, start: Option<CoreEnds>) -> Self {
        LoadApp {
            flood_lo: shared.flood.map(|_| *FLOOD_PORTS.start()),
            shared,
            start,
            run: None,
            syns_sent: 0,
            flood_answered: 0,
        }
    }

    /// Takes the context once the run controller sends it.
    fn try_start(&mut self, io: &Io<'_>) {
        let Some((rx, _)) = &self.start else {
            return;
        };
        let Ok(ctx) = rx.try_recv() else {
            return;
        };
        let Some((_, done)) = self.start.take() else {
            return;
        };
        let spec = ctx.spec;
        let share = spec.share(ctx.index, ctx.workers);
        // IPv4 only (`check` refuses a flood towards an IPv6 target).
        let flood = match (self.shared.flood, spec.source_prefix, self.shared.target) {
            (Some(rate), Some((IpAddr::V4(net), len)), SocketAddr::V4(target)) => {
                let mut seed = [0u8; 8];
                let _ = host::fill_random(&mut seed);
                Some(Flood {
                    pacer: OpenLoop::new(
                        rate / ctx.workers.max(1) as f64,
                        (1e9 / rate * ctx.index as f64) as u64,
                        spec.end_ns,
                    ),
                    rng: u64::from_le_bytes(seed) | 1,
                    net: u32::from(net),
                    size: if len >= 32 { 1 } else { 1u32 << (32 - len) },
                    target,
                })
            }
            _ => None,
        };
        self.run = Some(Running {
            sources: Sources::new(self.shared.sources.clone(), ctx.index),
            m: Machine::new(Arc::clone(&spec), share, ctx.recorder, MAX_INFLIGHT),
            slots: Vec::new(),
            flood,
            done,
            multi: io.queues() > 1,
            published: (0, 0, 0),
            next_publish: 0,
            turn_ns: None,
        });
    }

    /// Publishes gauges and counter deltas (counters only from the end of the warmup).
    fn publish(&mut self, io: &Io<'_>, now: u64) {
        let Some(r) = &mut self.run else {
            return;
        };
        let rec = &r.m.rec;
        let c = io.stack().counters();
        rec.set_gauge(Counter::TimeWait, c.time_wait);
        let h = io.handoff_stats();
        rec.set_gauge(Counter::HandoffsOut, h.rx_handoffs_out);
        rec.set_gauge(Counter::HandoffsIn, h.rx_handoffs_in);
        rec.set_gauge(Counter::HandoffDrops, h.rx_handoff_drops);
        let syn = self.syns_sent.saturating_sub(c.active_opens);
        let data = c.retransmits.saturating_sub(syn);
        let answered = self.flood_answered;
        if now >= r.m.spec().measure_start_ns {
            let p = r.published;
            rec.add(Counter::SynRetrans, syn.saturating_sub(p.0));
            rec.add(Counter::DataRetrans, data.saturating_sub(p.1));
            rec.add(Counter::FloodAnswered, answered.saturating_sub(p.2));
        }
        r.published = (syn.max(r.published.0), data.max(r.published.1), answered);
    }

    fn send_flood(&mut self, io: &mut Io<'_>, now: u64) {
        let Some(r) = &mut self.run else {
            return;
        };
        let Some(f) = &mut r.flood else {
            return;
        };
        let mut buf = [0u8; 128];
        for _ in 0..MAX_FLOOD_PER_TURN {
            let Some(due) = f.pacer.take(now) else {
                break;
            };
            let n = f.syn(
                &mut buf,
                self.shared.vlan,
                self.shared.mac,
                self.shared.server_mac,
            );
            if io.send_frame(&buf[..n]) && r.m.rec.is_measured(due) {
                r.m.rec.add(Counter::FloodSent, 1);
            }
        }
    }

    /// This core's run is over: the recorder's histograms go to the report.
    fn finish(&mut self, io: &Io<'_>) {
        self.publish(io, u64::MAX);
        let Some(r) = self.run.take() else {
            return;
        };
        r.m.rec.set_gauge(Counter::InFlight, 0);
        let done = r.done.clone();
        r.m.into_recorder().finish();
        let _ = done.send(Ok(()));
    }
}

impl App for LoadApp {
    const FRAME_HOOKS: bool = true;

    fn on_start(&mut self, _io: &mut Io<'_>) {
        crate::sys::tight_timer_slack();
    }

    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        let Some(r) = &mut self.run else {
            return;
        };
        let h = ev.conn();
        let Some(&slot) = r.slots.get(h.index()) else {
            return;
        };
        if r.m.state_of(slot, h).is_none() {
            return; // a connection we already let go of
        }
        let now = *r.turn_ns.get_or_insert_with(|| r.m.spec().now_ns());
        let mut t = Net {
            io,
            sources: &mut r.sources,
            target: self.shared.target,
            slots: &mut r.slots,
        };
        let m = &mut r.m;
        match ev {
            AppEvent::Accepted(_) => {}
            AppEvent::Connected(_) => m.connected(&mut t, slot, now),
            AppEvent::Readable(_) | AppEvent::Writable(_) => m.drive(&mut t, slot, now),
            AppEvent::PeerClosed(_) => {
                // Bytes that came with the FIN are read first.
                m.drive(&mut t, slot, now);
                if m.state_of(slot, h).is_some() {
                    m.peer_closed(&mut t, slot, now);
                }
            }
            AppEvent::Closed(_) => m.closed(&mut t, slot, now),
            AppEvent::Reset(_) => m.fail(&mut t, slot, FailCause::Refused, false),
            AppEvent::TimedOut(_) => m.fail(&mut t, slot, FailCause::Timeout, false),
        }
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        if self.run.is_none() {
            self.try_start(io);
        }
        let Some(r) = &mut self.run else {
            return;
        };
        r.turn_ns = None;
        let now = r.m.spec().now_ns();
        let mut t = Net {
            io,
            sources: &mut r.sources,
            target: self.shared.target,
            slots: &mut r.slots,
        };
        let done = r.m.turn(&mut t, now);
        let draining = r.m.sched.draining();
        if let Some(f) = &mut r.flood
            && draining
        {
            f.pacer.cut(now);
        }
        if now >= r.next_publish {
            r.next_publish = now + PUBLISH_NS;
            self.publish(io, now);
        }
        if done {
            return self.finish(io);
        }
        self.send_flood(io, now);
        let Some(r) = &self.run else {
            return;
        };
        let mut wake = r.m.wake_at(now, 0, MAX_SLEEP_NS);
        if let Some(d) = r.flood.as_ref().and_then(|f| f.pacer.next_due()) {
            wake = wake.min(d);
        }
        if r.multi {
            wake = wake.min(now + HANDOFF_POLL_NS);
        }
        io.wake_at(io.now() + Duration::from_nanos(wake.saturating_sub(now)));
    }

    fn on_rx_frame(&mut self, frame: &[u8]) -> bool {
        let Some(lo) = self.flood_lo else {
            return false;
        };
        match tcp_port_flags(frame) {
            Some((port, syn, ack)) if port >= lo => {
                if syn && ack {
                    self.flood_answered += 1;
                }
                true
            }
            _ => false,
        }
    }

    fn on_tx_frame(&mut self, frame: &[u8]) {
        if let Some((_, true, false)) = tcp_port_flags(frame) {
            self.syns_sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtcp::engine::handoff::Ownership;
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
        assert!(*STACK_PORTS_WITH_FLOOD.end() < *FLOOD_PORTS.start());
        // The flood's ports are no core's: their frames are never handed off.
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
        assert_eq!(tcp_port_flags(&buf[..n]), Some((61001, true, true)));
        let mut tagged = buf[..n].to_vec();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        assert_eq!(tcp_port_flags(&tagged), Some((61001, true, true)));
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

    #[test]
    fn flood_syns_stay_in_the_prefix_and_port_range() {
        let mut f = Flood {
            pacer: OpenLoop::new(1.0, 0, 1),
            rng: 0x1234_5678_9abc_def1,
            net: u32::from(Ipv4Addr::new(10, 9, 0, 0)),
            size: 256,
            target: "10.0.0.1:80".parse().unwrap(),
        };
        let mut buf = [0u8; 128];
        for _ in 0..1000 {
            let n = f.syn(
                &mut buf,
                None,
                EthernetAddress([2; 6]),
                EthernetAddress([4; 6]),
            );
            let ip = Ipv4Packet::new_checked(&buf[14..n]).unwrap();
            let o = ip.src_addr().octets();
            assert!(o[..3] == [10, 9, 0] && o[3] != 0 && o[3] != 255, "{o:?}");
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(FLOOD_PORTS.contains(&tcp.src_port()));
            assert!(tcp.syn() && !tcp.ack());
        }
    }
}
