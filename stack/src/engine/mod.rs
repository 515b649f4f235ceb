//! The AF_XDP engine: one pinned polling thread per NIC queue, each running its own
//! [`Stack`](crate::Stack) over its own [`XskLink`](crate::afxdp::XskLink), and a per-core,
//! run-to-completion application API ([`App`], [`AppEvent`], [`Io`]).
//!
//! # Architecture (shared nothing)
//! [`Engine::start`] attaches the XDP steering program to the interface (one per interface,
//! touched only during setup and teardown), creates one AF_XDP socket per queue and
//! registers it in the program's XSKMAP, steers the listening ports and the ephemeral port
//! range of our address to the sockets, then starts one thread per queue. Each thread owns
//! its socket and UMEM, its stack (flow table, listeners, timers, TIME-WAIT table), its
//! neighbour cache and its application instance. Threads talk to the engine only over
//! crossbeam channels, for control: start, stop, counter snapshots, and calls into the
//! application ([`Engine::call`]); never per packet.
//!
//! Each loop iteration reads the monotonic clock once (all packets of the iteration share
//! that `now`), polls the stack, delivers events, and transmits what the application queued;
//! see the `worker` module for the exact order. How a core waits for frames is its
//! [`PollMode`] ([`EngineConfig::poll`]): by default preferred busy polling, where the core's
//! thread runs the device's receive NAPI itself, so that the kernel's share of receiving our
//! frames is paid on our core (falling back, with a message, to idle waiting where the
//! kernel or device lacks it); plain busy polling; or waiting on the socket after
//! [`EngineConfig::idle_spins`] empty iterations.
//!
//! # Neighbours
//! Replies to passive opens reuse the MAC of the incoming frame. Active opens resolve the next
//! hop through the kernel's neighbour table (see [`neighbor`]); the stack's own ARP is off
//! (the XDP program passes ARP to the kernel, which keeps answering for the address).
//!
//! # Active opens and queues
//! [`Io::connect`] works on every core. The peer's answer to our SYN arrives on whichever
//! receive queue the peer's transmit hash (veth) or the NIC's RSS hash picks, so at start
//! the engine decides which core owns which tuple ([`handoff::Ownership`]):
//! - where the device reports its RSS configuration (`ETHTOOL_GRSSH`, Toeplitz) and its
//!   indirection table names only queues we serve, each core chooses only source ports whose
//!   replies the NIC delivers to its own queue (`StackConfig::rss`), and the owner of a tuple
//!   is the queue its hash picks;
//! - otherwise (veth, a NIC without RSS or with a table naming other queues) each core opens
//!   from its own slice of the ephemeral port range ([`handoff::Ownership::port_slice`]).
//!
//! Either way a frame that reaches the wrong core (veth, a table changed at run time) is
//! handed to its owner through a bounded lock-free queue per pair of cores
//! ([`handoff::Handoff`]); the stats count `rx_handoffs_out`, `rx_handoffs_in` and
//! `rx_handoff_drops` per core. Since a queue without a socket would pass our flows to the
//! kernel, which answers them with RST, [`Engine::start`] refuses to serve fewer queues than
//! the device receives on (where it reports its channels: `ethtool -l`).
//!
//! # Shutdown
//! [`Engine::run_until_signal`] returns on SIGINT/SIGTERM (or [`Io::stop_engine`]);
//! [`Engine::shutdown`] then FINs (or RSTs, see [`ShutdownPolicy`]) the open connections,
//! drains briefly, joins the threads, detaches the XDP program and frees the sockets. Dropping
//! an [`Engine`] does the same.
//!
//! # Example
//! ```no_run
//! use xtcp::engine::{App, AppEvent, Engine, EngineConfig, Io};
//!
//! /// Answers every request chunk with "ok\n" and closes when the peer does.
//! struct Ack;
//! impl App for Ack {
//!     fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
//!         match ev {
//!             AppEvent::Readable(c) => {
//!                 let n = io.recv_slice(c).len();
//!                 io.consume(c, n);
//!                 let _ = io.send(c, b"ok\n");
//!             }
//!             AppEvent::PeerClosed(c) => {
//!                 let _ = io.close(c);
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let mut cfg = EngineConfig::new("xt-a", "10.77.0.1".parse().unwrap());
//! cfg.ports = vec![8080];
//! cfg.queues = 2;
//! let engine = Engine::start(cfg, |_queue| Ack)?;
//! let stats = engine.run_until_signal()?; // Ctrl-C: FIN open connections, detach XDP
//! println!("{} connections accepted", stats.totals().passive_opens);
//! # Ok::<(), xtcp::engine::EngineError>(())
//! ```

pub(crate) mod app;
pub mod cli;
pub mod handoff;
pub mod neighbor;
pub mod netlink;
pub mod nic;
mod stats;
pub mod sys;
mod worker;

pub use crate::afxdp::busy_poll::BusyPollConfig;
pub use app::{App, AppEvent, ConnectError, Io};
pub use stats::{CoreStats, EngineStats, Ipv6Stats, SNAPSHOT_INTERVAL, counter_fields};
pub use worker::CoreCall;
pub use xtcp_xdp_ebpf::{XdpCounters, XdpError, XdpMode};

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant as StdInstant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use xtcp_xdp_ebpf::XdpSteering;

use self::handoff::{Handoff, Ownership};
use self::worker::{Command, Report, WorkerSetup};
pub use crate::afxdp::BindMode;
use crate::afxdp::busy_poll::{self, DeviceDeferral};
use crate::afxdp::{XskConfig, XskError, XskLink};
use crate::capture::{CaptureConfig, PcapFile};
use crate::link::Link;
use crate::stack::StackConfig;
use crate::tcp::rss::{Rss, RssSteering};
use crate::time::Duration;
use crate::wire::vlan::TAG_LEN;
use crate::wire::{EthernetAddress, VlanId};

/// Ethernet + IPv4 + TCP headers without options: what the MSS leaves of a frame.
const HEADERS: usize = 14 + 20 + 20;

/// What happens to open connections at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPolicy {
    /// Close them (FIN after queued data; RST where unread bytes remain) and keep polling up
    /// to `drain` for the closes to complete; whatever is left then gets RST.
    Fin {
        /// How long to wait for closes to complete.
        drain: Duration,
    },
    /// Reset them at once.
    Rst,
}

impl Default for ShutdownPolicy {
    /// `Fin` with a 500 ms drain.
    fn default() -> Self {
        ShutdownPolicy::Fin {
            drain: Duration::from_millis(500),
        }
    }
}

/// How a core waits for frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// AF_XDP preferred busy polling (`SO_PREFER_BUSY_POLL` with the device's
    /// `napi_defer_hard_irqs`/`gro_flush_timeout`, see [`crate::afxdp::busy_poll`]): the
    /// core spins, and every iteration runs the device's receive NAPI on this core through
    /// `recvfrom`, so the kernel's receive work for our frames is charged to our core. Where
    /// the kernel or device refuses the settings, or the socket has no NAPI id after bind
    /// (copy mode on Linux ≥ 6.13, e.g. veth), the engine prints why and uses `Idle`: the
    /// kernel's receive work for our frames then runs in the device's NAPI context, which a
    /// fair set-up pins to our core too (IRQ affinity, or threaded NAPI on veth), and a
    /// thread spinning without pause would starve it (measured on veth with threaded NAPI:
    /// `busy` reached 0.4-0.8 of `idle`'s rate, with 2-3x its median connect latency; noisy
    /// machine, see docs/benchmark.md).
    PreferBusy(BusyPollConfig),
    /// Spin on the rings without ever sleeping; the kernel receive path runs wherever the
    /// device's NAPI is scheduled (on veth: the sender's CPU, or the NAPI kthread).
    Busy,
    /// Wait on the socket (`poll(2)`) after [`EngineConfig::idle_spins`] empty iterations.
    Idle,
}

impl PollMode {
    /// `prefer-busy`, `busy` or `idle`.
    pub fn name(&self) -> &'static str {
        match self {
            PollMode::PreferBusy(_) => "prefer-busy",
            PollMode::Busy => "busy",
            PollMode::Idle => "idle",
        }
    }
}

impl fmt::Display for PollMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Configuration of an [`Engine`]. [`EngineConfig::new`] fills the documented defaults.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The interface to attach to (in the calling thread's network namespace).
    pub iface: String,
    /// Our IPv4 address: listeners bind to it and active opens use it. It is normally also
    /// configured on the interface, so that the kernel answers ARP for it.
    pub ip: Ipv4Addr,
    /// Our IPv6 addresses (`--ip` given an IPv6 address). With any, every core runs an IPv6
    /// stack next to its IPv4 one, listening on `ports` at each of them (docs/engine.md,
    /// "Serving IPv6"); they must be configured on the interface too (the kernel answers
    /// Neighbor Discovery for them). Default empty: IPv4 only, and no IPv6 stack at all.
    pub ipv6: Vec<Ipv6Addr>,
    /// Ports to listen on (on every core). Default none (a pure client).
    pub ports: Vec<u16>,
    /// The 802.1Q VLAN `ip` lives on ([`StackConfig::vlan`]): the XDP program steers only
    /// frames tagged with it, the stacks accept only those and tag what they send, and the
    /// MSS leaves room for the tag. The interface must deliver the tag in the frame (NIC
    /// `rx-vlan-offload` off; see docs/engine.md). Default `None` (untagged).
    pub vlan: Option<VlanId>,
    /// Receive queues to serve, `0..queues`, one thread each. Default 1.
    pub queues: u32,
    /// XDP attach mode. Default [`XdpMode::Auto`] (native, falling back to SKB).
    pub xdp_mode: XdpMode,
    /// CPU for each queue's thread (`cores[i]` serves queue `i`). Default `None`: queue `i`
    /// is pinned to the `i % n`-th of the `n` CPUs the process may run on.
    pub cores: Option<Vec<usize>>,
    /// Frames per receive batch and per ring operation. Default 64.
    pub batch: usize,
    /// UMEM frames per socket. Default 4096 (8 MiB of 2 KiB frames).
    pub frame_count: u32,
    /// How the sockets bind: zero-copy, copy, or zero-copy falling back to copy. Default
    /// [`BindMode::Auto`]. With [`BindMode::ZeroCopy`], a driver without zero-copy support
    /// (veth) fails the start with [`EngineError::ZeroCopyRefused`], naming the driver.
    pub bind: BindMode,
    /// Put each UMEM on huge pages (`MAP_HUGETLB`), falling back to normal pages with a
    /// message where none are reserved (`sysctl vm.nr_hugepages=N`; 2 MiB each, 4 per queue
    /// with the default `frame_count`). Default true.
    pub huge_pages: bool,
    /// How the cores wait for frames. Default [`PollMode::PreferBusy`] with
    /// [`BusyPollConfig::default`] (one CPU per queue at 100 %, the kernel's receive work on
    /// that CPU too).
    pub poll: PollMode,
    /// [`PollMode::Idle`]: empty iterations before waiting on the socket. Default 1000.
    pub idle_spins: u32,
    /// [`PollMode::Idle`]: the longest wait (the next timer cuts it short). Default 1 ms.
    pub idle_wait: Duration,
    /// Write the counters as JSON to this file once per `stats_interval` while
    /// [`Engine::run_until_signal`] runs, and once at shutdown. Default `None`.
    pub stats_file: Option<PathBuf>,
    /// Default 1 s.
    pub stats_interval: Duration,
    /// Default [`ShutdownPolicy::Fin`] with 500 ms drain.
    pub shutdown: ShutdownPolicy,
    /// Template of every core's stack: TCP settings and limits. The engine sets `mac` (the
    /// interface's), `ips` (`[ip]`), `secret` (fresh from getrandom for each core), `arp`
    /// (false: the kernel answers ARP), `rx_batch` (`batch`) and caps `tcp.mss` to what the
    /// interface MTU allows. Default [`StackConfig::default`].
    pub stack: StackConfig,
    /// For benchmarks only: synthetic TIME-WAIT entries to insert before reporting ready,
    /// split evenly across the queues (queue `q` takes entries `q, q + queues, ...`). Their
    /// remote addresses are in 198.18.0.0/15 (RFC 2544 benchmark space), so they never match
    /// a real peer; they expire 2×MSL after start like any entry. Each core's share is capped
    /// at `stack.time_wait_capacity`. Default 0.
    pub prefill_time_wait: u64,
    /// Further local addresses for active opens ([`Io::connect_from`]), besides `ip`. With
    /// any, the ephemeral port range is steered to the sockets for every destination address
    /// (the host's own connections must then not use that range). Default none.
    pub source_ips: Vec<Ipv4Addr>,
    /// The same for IPv6 active opens, besides `ipv6` (needs a non-empty `ipv6`). Default
    /// none.
    pub source_ips6: Vec<Ipv6Addr>,
    /// A further destination port range (`lo..=hi`, any address) steered to the sockets,
    /// for frames the application takes itself ([`App::on_rx_frame`]), e.g. the answers to
    /// raw frames it sent with [`Io::send_frame`]. Outside the ephemeral range: no core owns
    /// these ports, so their frames are never handed over. Default `None`.
    pub raw_ports: Option<(u16, u16)>,
    /// Capture what every core receives and sends as pcap ([`crate::capture`]): one file per
    /// queue (`path` itself with one queue, `path.<queue>` with several). Default `None`
    /// (off: the cores poll the socket directly, without the capture wrapper: no cost).
    pub capture: Option<CaptureConfig>,
}

impl EngineConfig {
    /// The defaults listed on each field.
    pub fn new(iface: impl Into<String>, ip: Ipv4Addr) -> Self {
        EngineConfig {
            iface: iface.into(),
            ip,
            ipv6: Vec::new(),
            ports: Vec::new(),
            vlan: None,
            queues: 1,
            xdp_mode: XdpMode::Auto,
            cores: None,
            batch: 64,
            frame_count: 4096,
            bind: BindMode::Auto,
            huge_pages: true,
            poll: PollMode::PreferBusy(BusyPollConfig::default()),
            idle_spins: 1000,
            idle_wait: Duration::from_millis(1),
            stats_file: None,
            stats_interval: Duration::from_secs(1),
            shutdown: ShutdownPolicy::default(),
            stack: StackConfig::default(),
            prefill_time_wait: 0,
            source_ips: Vec::new(),
            source_ips6: Vec::new(),
            raw_ports: None,
            capture: None,
        }
    }
}

/// Why the engine could not start or stop cleanly.
#[derive(Debug)]
pub enum EngineError {
    /// A field of [`EngineConfig`] is unusable.
    Config(String),
    /// The interface could not be queried (`SIOCGIFHWADDR`), or randomness was unavailable.
    Io(io::Error),
    /// Loading or attaching the XDP program, or updating its maps.
    Xdp(XdpError),
    /// Creating queue `queue`'s AF_XDP socket.
    Xsk {
        /// The queue.
        queue: u32,
        /// Why.
        error: XskError,
    },
    /// A core failed during setup (e.g. a listener could not be opened).
    Core {
        /// The core's queue.
        queue: u32,
        /// Why.
        reason: String,
    },
    /// A core's thread panicked.
    Panicked(u32),
    /// [`BindMode::ZeroCopy`] was asked for and the driver refused a zero-copy bind.
    ZeroCopyRefused {
        /// The queue whose socket failed to bind.
        queue: u32,
        /// The device's driver (`ethtool -i`), or `"unknown"`.
        driver: String,
        /// The kernel's reason.
        error: XskError,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Config(why) => write!(f, "engine config: {why}"),
            EngineError::Io(e) => write!(f, "engine: {e}"),
            EngineError::Xdp(e) => write!(f, "XDP: {e}"),
            EngineError::Xsk { queue, error } => write!(f, "queue {queue}: {error}"),
            EngineError::Core { queue, reason } => write!(f, "queue {queue}: {reason}"),
            EngineError::Panicked(q) => write!(f, "the thread of queue {q} panicked"),
            EngineError::ZeroCopyRefused {
                queue,
                driver,
                error,
            } => write!(
                f,
                "queue {queue}: the {driver} driver refused a zero-copy AF_XDP bind ({error}); \
                 use bind mode copy or auto"
            ),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Io(e) => Some(e),
            EngineError::Xdp(e) => Some(e),
            EngineError::Xsk { error, .. } | EngineError::ZeroCopyRefused { error, .. } => {
                Some(error)
            }
            _ => None,
        }
    }
}

impl From<XdpError> for EngineError {
    fn from(e: XdpError) -> Self {
        EngineError::Xdp(e)
    }
}

/// What the engine ended up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// The interface's MAC address.
    pub mac: EthernetAddress,
    /// The attach mode in effect: [`XdpMode::Native`] or [`XdpMode::Skb`].
    pub xdp_mode: XdpMode,
    /// Whether the sockets are bound zero-copy (false: copy mode, e.g. on veth).
    pub zero_copy: bool,
    /// The CPU of each queue's thread.
    pub cores: Vec<Option<usize>>,
    /// The ephemeral port range steered to the sockets (our active opens).
    pub ephemeral_ports: (u16, u16),
    /// Whether active opens choose their ports by the device's RSS table (true) or each core
    /// opens from its own slice of `ephemeral_ports` (false); see the module docs.
    pub rss: bool,
    /// Whether the UMEMs sit on huge pages.
    pub huge_pages: bool,
    /// The poll mode in effect (differs from the configured one after a fallback).
    pub poll: PollMode,
    /// Why preferred busy polling was not used, when it was asked for and refused.
    pub poll_fallback: Option<String>,
}

struct Worker<A> {
    queue: u32,
    commands: Sender<Command<A>>,
    thread: Option<JoinHandle<(XskLink, CoreStats)>>,
}

/// A running engine. See the module docs.
pub struct Engine<A: App + 'static> {
    cfg: EngineConfig,
    info: EngineInfo,
    steering: Option<XdpSteering>,
    workers: Vec<Worker<A>>,
    reports: Receiver<Report>,
    latest: Vec<CoreStats>,
    stop_requested: bool,
    stopped: bool,
    /// The device's deferral settings before preferred busy polling changed them.
    deferral_before: Option<DeviceDeferral>,
}

impl<A: App + 'static> fmt::Debug for Engine<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("iface", &self.cfg.iface)
            .field("info", &self.info)
            .finish()
    }
}

fn resolve_cores(cfg: &EngineConfig) -> Result<Vec<Option<usize>>, EngineError> {
    match &cfg.cores {
        Some(list) => {
            if list.len() < cfg.queues as usize {
                return Err(EngineError::Config(format!(
                    "{} queue(s) need {} core(s), got {}",
                    cfg.queues,
                    cfg.queues,
                    list.len()
                )));
            }
            Ok(list.iter().map(|&c| Some(c)).collect())
        }
        None => {
            let ids = core_affinity::get_core_ids().unwrap_or_default();
            Ok((0..cfg.queues as usize)
                .map(|i| (!ids.is_empty()).then(|| ids[i % ids.len()].id))
                .collect())
        }
    }
}

/// Refuses to serve fewer queues than the device receives on, where it reports its channels:
/// the XDP program passes frames of a queue without a socket to the kernel, which answers our
/// connections there with RST.
fn check_channels(
    iface: &str,
    queues: u32,
    channels: Option<nic::Channels>,
) -> Result<(), EngineError> {
    match channels {
        Some(ch) if ch.rx_queues > queues => Err(EngineError::Config(format!(
            "{iface} receives on {} queues (ethtool -l) but the engine serves {queues}: \
             frames on the others would reach the kernel, which resets our connections; \
             serve {} queues or reduce the device's (ethtool -L {iface} combined {queues})",
            ch.rx_queues, ch.rx_queues
        ))),
        _ => Ok(()),
    }
}

/// The device's RSS table, when it sends every hash to a queue we serve (else the engine
/// slices the ephemeral ports instead).
fn usable_rss(queues: u32, rss: Option<Rss>) -> Option<Rss> {
    rss.filter(|r| r.table().iter().all(|&q| u32::from(q) < queues))
}

/// Sets up preferred busy polling when configured: the device's deferral settings (once per
/// interface) and the socket options on every socket; falls back to [`PollMode::Idle`]. Returns the mode in effect, why
/// preferred busy polling was refused (if it was), and the device's previous settings.
fn setup_polling(
    cfg: &EngineConfig,
    links: &[XskLink],
) -> (PollMode, Option<String>, Option<DeviceDeferral>) {
    let PollMode::PreferBusy(bp) = cfg.poll else {
        return (cfg.poll, None, None);
    };
    for l in links {
        // Busy polling runs the NAPI instance the socket is tied to. Since Linux 6.13 the
        // kernel ties an AF_XDP socket to one at bind time, and only a zero-copy socket on a
        // driver that registers its queues' NAPI (netif_queue_set_napi); a copy-mode socket
        // (veth, any driver without zero-copy) gets none, and a busy poll then does nothing.
        // Older kernels tie it on the first received frame: this check is then conservative.
        match busy_poll::incoming_napi_id(l.fd()) {
            Ok(0) => {
                return (
                    PollMode::Idle,
                    Some(format!(
                        "the {} socket has no NAPI id to busy-poll; the kernel gives one at \
                         bind time only to zero-copy sockets",
                        if l.is_zero_copy() {
                            "zero-copy"
                        } else {
                            "copy-mode"
                        }
                    )),
                    None,
                );
            }
            Ok(_) => {}
            Err(e) => {
                return (
                    PollMode::Idle,
                    Some(format!("SO_INCOMING_NAPI_ID: {e}")),
                    None,
                );
            }
        }
        if let Err(e) = busy_poll::enable_on_socket(l.fd(), &bp) {
            return (PollMode::Idle, Some(e.to_string()), None);
        }
    }
    match DeviceDeferral::apply(&cfg.iface, &bp) {
        Ok(before) => (cfg.poll, None, Some(before)),
        Err(e) => {
            // The socket options alone would leave the NAPI with the softirq path after each
            // poll: a useless syscall per iteration. Turn them off.
            for l in links {
                let _ = busy_poll::enable_on_socket(
                    l.fd(),
                    &BusyPollConfig {
                        busy_poll_us: 0,
                        ..bp
                    },
                );
            }
            (PollMode::Idle, Some(format!("device settings: {e}")), None)
        }
    }
}

impl<A: App + 'static> Engine<A> {
    /// Attaches XDP, opens one AF_XDP socket per queue, starts one thread per queue, and
    /// returns once every core listens. `make_app(queue)` runs on each core's thread and
    /// builds that core's application.
    ///
    /// Must run in the interface's network namespace (the threads inherit it). Needs
    /// `CAP_NET_ADMIN`, `CAP_BPF`/`CAP_SYS_ADMIN` and `CAP_NET_RAW` (root).
    pub fn start<F>(cfg: EngineConfig, make_app: F) -> Result<Engine<A>, EngineError>
    where
        F: Fn(u32) -> A + Send + Sync + 'static,
    {
        if cfg.queues == 0 || cfg.queues > xtcp_xdp_ebpf::MAX_QUEUES {
            return Err(EngineError::Config(format!(
                "queues must be 1..={}, got {}",
                xtcp_xdp_ebpf::MAX_QUEUES,
                cfg.queues
            )));
        }
        if cfg.batch == 0 {
            return Err(EngineError::Config("batch must be at least 1".into()));
        }
        if cfg.ipv6.is_empty() && !cfg.source_ips6.is_empty() {
            return Err(EngineError::Config(
                "source_ips6 needs an IPv6 address in ipv6 (the IPv6 stack's own)".into(),
            ));
        }
        let cores = resolve_cores(&cfg)?;
        let mac = sys::interface_mac(&cfg.iface).map_err(EngineError::Io)?;
        check_channels(&cfg.iface, cfg.queues, nic::channels(&cfg.iface).ok())?;
        let eph = cfg.stack.ephemeral_ports.clone();
        let rss = usable_rss(cfg.queues, nic::rss(&cfg.iface).ok().flatten());
        let owners = Ownership::new(cfg.queues, eph.clone(), rss);

        // Sockets first, registered, then the steering entries: no frame of ours is passed
        // to the kernel for want of a socket once a listener is announced.
        let mut steering = XdpSteering::attach(&cfg.iface, cfg.xdp_mode)?;
        let mut links = Vec::with_capacity(cfg.queues as usize);
        for queue in 0..cfg.queues {
            let link = open_socket(&cfg, queue)?;
            steering.register_xsk(queue, link.fd())?;
            links.push(link);
        }
        steering.set_vlan(cfg.vlan.map(VlanId::get))?;
        for &port in &cfg.ports {
            steering.add_listener(cfg.ip, port)?;
            for &ip in &cfg.ipv6 {
                steering.add_listener(ip, port)?;
            }
        }
        let only = cfg.source_ips.is_empty().then_some(cfg.ip);
        steering.set_port_range_slot(0, only, *eph.start(), *eph.end())?;
        if let Some(&first) = cfg.ipv6.first() {
            let only = (cfg.ipv6.len() == 1 && cfg.source_ips6.is_empty()).then_some(first);
            steering.set_port_range6_slot(0, only, *eph.start(), *eph.end())?;
        }
        if let Some((lo, hi)) = cfg.raw_ports {
            steering.set_port_range_slot(1, None, lo, hi)?;
        }

        let (poll, poll_fallback, deferral_before) = setup_polling(&cfg, &links);
        if let Some(why) = &poll_fallback {
            eprintln!(
                "xtcp: preferred busy polling unavailable ({why}); falling back to idle waiting \
                 (spin, then wait on the socket), which leaves the core to the kernel's receive \
                 path between bursts"
            );
        }
        let info = EngineInfo {
            mac,
            xdp_mode: steering.mode(),
            zero_copy: links.iter().all(|l| l.is_zero_copy()),
            cores: cores.clone(),
            ephemeral_ports: (*eph.start(), *eph.end()),
            rss: owners.rss().is_some(),
            huge_pages: links.iter().all(|l| l.huge_pages()),
            poll,
            poll_fallback,
        };

        let make_app: Arc<dyn Fn(u32) -> A + Send + Sync> = Arc::new(make_app);
        // Reports are rare (one snapshot per core per SNAPSHOT_INTERVAL), the bound only
        // guards against an engine that stops reading.
        let (report_tx, reports) = bounded(1024);
        let epoch = StdInstant::now();
        let hub = (cfg.queues > 1).then(|| Arc::new(Handoff::new(cfg.queues)));
        let mut engine = Engine {
            cfg,
            info,
            steering: Some(steering),
            workers: Vec::new(),
            reports,
            latest: Vec::new(),
            stop_requested: false,
            stopped: false,
            deferral_before,
        };
        let listen: Vec<SocketAddrV4> = engine
            .cfg
            .ports
            .iter()
            .map(|&p| SocketAddrV4::new(engine.cfg.ip, p))
            .collect();
        let listen6: Vec<SocketAddrV6> = engine
            .cfg
            .ipv6
            .iter()
            .flat_map(|&ip| {
                engine
                    .cfg
                    .ports
                    .iter()
                    .map(move |&p| SocketAddrV6::new(ip, p, 0, 0))
            })
            .collect();
        for (queue, link) in (0..engine.cfg.queues).zip(links) {
            let stack = core_stack(&engine.cfg, mac, &owners, queue, link.max_frame_len())?;
            let stack6 = (!engine.cfg.ipv6.is_empty()).then(|| {
                let mut s6 = stack.clone();
                s6.ips6 = engine
                    .cfg
                    .ipv6
                    .iter()
                    .chain(&engine.cfg.source_ips6)
                    .copied()
                    .collect();
                s6
            });
            let capture = match &engine.cfg.capture {
                Some(c) => Some(
                    PcapFile::create_at(c, &c.path_for_queue(queue, engine.cfg.queues))
                        .map_err(EngineError::Io)?,
                ),
                None => None,
            };
            let setup = WorkerSetup {
                queue,
                queues: engine.cfg.queues,
                cpu: cores[queue as usize],
                iface: engine.cfg.iface.clone(),
                stack,
                listen: listen.clone(),
                stack6,
                listen6: listen6.clone(),
                poll: engine.info.poll,
                idle_spins: engine.cfg.idle_spins,
                idle_wait: engine.cfg.idle_wait,
                shutdown: engine.cfg.shutdown,
                epoch,
                hub: hub.clone(),
                owners: owners.clone(),
                prefill_time_wait: engine.cfg.prefill_time_wait,
                capture,
            };
            let (cmd_tx, cmd_rx) = unbounded();
            let reports = report_tx.clone();
            let make_app = Arc::clone(&make_app);
            let thread = std::thread::Builder::new()
                .name(format!("xtcp-q{queue}"))
                .spawn(move || worker::run(setup, link, &*make_app, cmd_rx, reports))
                .map_err(EngineError::Io)?;
            engine.workers.push(Worker {
                queue,
                commands: cmd_tx,
                thread: Some(thread),
            });
        }
        engine.latest = (0..engine.cfg.queues)
            .map(|queue| CoreStats {
                queue,
                core: cores[queue as usize],
                ..CoreStats::default()
            })
            .collect();

        engine.wait_ready()?;
        Ok(engine)
    }

    /// Waits until every core reported ready (or one failed, or 10 s passed).
    fn wait_ready(&mut self) -> Result<(), EngineError> {
        let mut ready = 0;
        // A TIME-WAIT prefill (benchmarks) takes time before a core is ready: allow 1 s per
        // million entries on top.
        let prefill_s = self.cfg.prefill_time_wait.div_ceil(1_000_000);
        let deadline = StdInstant::now() + std::time::Duration::from_secs(10 + prefill_s);
        while ready < self.cfg.queues {
            let left = deadline.saturating_duration_since(StdInstant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Ready) => ready += 1,
                Ok(Report::Failed(queue, reason)) => {
                    return Err(EngineError::Core { queue, reason });
                }
                Ok(other) => self.absorb(other),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let queue = self
                        .workers
                        .iter()
                        .find(|w| w.thread.as_ref().is_some_and(|t| t.is_finished()))
                        .map_or(0, |w| w.queue);
                    return Err(EngineError::Core {
                        queue,
                        reason: "did not start".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// What the engine attached and bound.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    fn absorb(&mut self, r: Report) {
        match r {
            Report::Stats(s) => {
                if let Some(slot) = self.latest.get_mut(s.queue as usize) {
                    *slot = *s;
                }
            }
            Report::StopRequested => self.stop_requested = true,
            Report::Ready | Report::Failed(..) => {}
        }
    }

    fn drain_reports(&mut self) {
        while let Ok(r) = self.reports.try_recv() {
            self.absorb(r);
        }
    }

    /// The latest counters of every core (at most [`SNAPSHOT_INTERVAL`] old) and of the XDP
    /// program.
    pub fn stats(&mut self) -> EngineStats {
        self.drain_reports();
        EngineStats {
            cores: self.latest.clone(),
            xdp: self.steering.as_ref().and_then(|s| s.counters().ok()),
            poll_mode: Some(self.info.poll.name()),
        }
    }

    /// Whether an application asked the engine to stop ([`Io::stop_engine`]).
    pub fn stop_requested(&mut self) -> bool {
        self.drain_reports();
        self.stop_requested
    }

    /// Runs `f` on queue `queue`'s thread with its application and [`Io`], between two
    /// polls (e.g. to start client connections from outside). Returns false if there is no
    /// such queue or its thread has ended.
    pub fn call(&self, queue: u32, f: impl FnOnce(&mut A, &mut Io<'_>) + Send + 'static) -> bool {
        self.workers
            .iter()
            .find(|w| w.queue == queue)
            .is_some_and(|w| w.commands.send(Command::Call(Box::new(f))).is_ok())
    }

    /// Blocks until SIGINT or SIGTERM arrives, an application calls [`Io::stop_engine`], or a
    /// core's thread ends; writes the stats file meanwhile if configured; then shuts down
    /// (see [`Engine::shutdown`]).
    pub fn run_until_signal(mut self) -> Result<EngineStats, EngineError> {
        let signalled = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            ids.push(
                signal_hook::flag::register(sig, Arc::clone(&signalled))
                    .map_err(EngineError::Io)?,
            );
        }
        let interval: std::time::Duration = self.cfg.stats_interval;
        let mut next_write = StdInstant::now();
        loop {
            if signalled.load(Ordering::Relaxed) || self.stop_requested() {
                break;
            }
            if self
                .workers
                .iter()
                .any(|w| w.thread.as_ref().is_none_or(|t| t.is_finished()))
            {
                break;
            }
            if StdInstant::now() >= next_write {
                next_write += interval;
                self.write_stats();
            }
            // Control-plane cadence only: the cores poll on their own threads.
            if let Ok(r) = self
                .reports
                .recv_timeout(std::time::Duration::from_millis(20))
            {
                self.absorb(r);
            }
        }
        for id in ids {
            signal_hook::low_level::unregister(id);
        }
        self.shutdown()
    }

    fn write_stats(&mut self) {
        if let Some(path) = self.cfg.stats_file.clone() {
            let stats = self.stats();
            if let Err(e) = stats.write_file(&path) {
                eprintln!("xtcp: writing {}: {e}", path.display());
            }
        }
    }

    /// Stops every core (closing or resetting their connections, see [`ShutdownPolicy`]),
    /// joins the threads, detaches the XDP program, then frees the sockets. Returns the final
    /// counters (also written to the stats file if configured).
    pub fn shutdown(mut self) -> Result<EngineStats, EngineError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<EngineStats, EngineError> {
        if self.stopped {
            return Ok(EngineStats::default());
        }
        self.stopped = true;
        for w in &self.workers {
            let _ = w.commands.send(Command::Stop);
        }
        let mut links = Vec::new();
        let mut result = Ok(());
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                match t.join() {
                    Ok((link, stats)) => {
                        links.push(link);
                        if let Some(slot) = self.latest.get_mut(w.queue as usize) {
                            *slot = stats;
                        }
                    }
                    Err(_) => result = Err(EngineError::Panicked(w.queue)),
                }
            }
        }
        // Leftover reports are older than the final snapshots taken at join.
        while self.reports.try_recv().is_ok() {}
        let stats = EngineStats {
            cores: self.latest.clone(),
            xdp: self.steering.as_ref().and_then(|s| s.counters().ok()),
            poll_mode: Some(self.info.poll.name()),
        };
        if let Some(path) = &self.cfg.stats_file
            && let Err(e) = stats.write_file(path)
        {
            eprintln!("xtcp: writing {}: {e}", path.display());
        }
        // Detach before the sockets go: frames stop being steered to sockets being freed.
        drop(self.steering.take());
        drop(links);
        if let Some(d) = self.deferral_before.take()
            && let Err(e) = d.restore()
        {
            eprintln!("xtcp: restoring {}'s NAPI deferral settings: {e}", d.iface);
        }
        result.map(|()| stats)
    }
}

impl<A: App + 'static> Drop for Engine<A> {
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

/// Creates queue `queue`'s AF_XDP socket as `cfg` asks (a refused zero-copy bind names the
/// driver); says once when huge pages were wanted but are not available.
fn open_socket(cfg: &EngineConfig, queue: u32) -> Result<XskLink, EngineError> {
    let mut x = XskConfig::new(cfg.iface.clone());
    x.queue_id = queue;
    x.batch = cfg.batch;
    x.frame_count = cfg.frame_count;
    x.bind = cfg.bind;
    x.huge_pages = cfg.huge_pages;
    // Rings that can hold every frame: the fill ring never limits receiving, and the
    // completion ring never stalls transmission.
    x.fill_ring = cfg.frame_count.next_power_of_two();
    x.comp_ring = x.fill_ring;
    let link = XskLink::new(&x).map_err(|error| match error {
        XskError::Bind {
            mode: BindMode::ZeroCopy,
            ..
        } if cfg.bind == BindMode::ZeroCopy => EngineError::ZeroCopyRefused {
            queue,
            driver: nic::driver(&cfg.iface).unwrap_or_else(|_| "unknown".into()),
            error,
        },
        error => EngineError::Xsk { queue, error },
    })?;
    if queue == 0
        && let Some(why) = link.huge_pages_fallback()
    {
        eprintln!(
            "xtcp: UMEM on huge pages unavailable ({why}); using normal pages \
             (reserve huge pages with `sysctl vm.nr_hugepages=N`)"
        );
    }
    Ok(link)
}

/// Queue `queue`'s stack configuration: the template with our MAC and address, its ports (or
/// RSS steering), a fresh secret and the MSS the frames allow.
fn core_stack(
    cfg: &EngineConfig,
    mac: EthernetAddress,
    owners: &Ownership,
    queue: u32,
    max_frame_len: usize,
) -> Result<StackConfig, EngineError> {
    let mut stack = cfg.stack.clone();
    stack.mac = mac;
    stack.ips = std::iter::once(cfg.ip)
        .chain(cfg.source_ips.iter().copied())
        .collect();
    stack.vlan = cfg.vlan;
    stack.arp = false;
    stack.rx_batch = cfg.batch;
    stack.ephemeral_ports = owners.port_slice(queue);
    stack.rss = owners.rss().map(|rss| RssSteering {
        rss: rss.clone(),
        queue: queue as u16,
    });
    sys::fill_random(&mut stack.secret).map_err(EngineError::Io)?;
    let headers = HEADERS + if cfg.vlan.is_some() { TAG_LEN } else { 0 };
    let mss = max_frame_len.saturating_sub(headers).min(u16::MAX as usize);
    stack.tcp.mss = stack.tcp.mss.min(mss as u16);
    Ok(stack)
}

#[cfg(test)]
mod tests;
