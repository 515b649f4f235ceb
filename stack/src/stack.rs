//! The per-core stack: every connection of one core, its listeners, SYN queue, TIME-WAIT table,
//! timers and counters, over one [`Link`]. Sans-I/O like the rest of the core: it reads no
//! clock (every call takes `now`) and does no I/O except through the `Link` it is handed.
//!
//! # Call order
//! A driver (the AF_XDP engine, the simulator, a benchmark) calls [`Stack::poll`] whenever
//! frames may have arrived or `now >= poll_at()`. One poll:
//! 1. receives up to `rx_batch` frames and processes each in place (RFC 9293 §3.10.7);
//! 2. runs due timers (retransmission, SYN-ACK retries, TIME-WAIT expiry, ...);
//! 3. transmits control replies (RST, SYN-ACK, TIME-WAIT ACK, ARP) and then what every touched
//!    connection has to send, and flushes the link once.
//!
//! The application uses handles: [`Stack::listen`], [`Stack::accept`], [`Stack::connect`],
//! [`Stack::send`], [`Stack::recv`], [`Stack::shutdown`], [`Stack::close`], [`Stack::abort`],
//! and reads [`Stack::poll_event`] after each poll. Operations take effect on the next poll
//! (or [`Stack::flush`]).
//!
//! A driver may split a poll in two: [`Stack::receive`] (steps 1 and 2), then the
//! application, then [`Stack::flush`] (step 3). What the application does in between rides on
//! the same segments: a response on the ACK of the request, a FIN on the ACK of the peer's FIN
//! (one FIN+ACK instead of an ACK and a FIN). Events of the received segments are in
//! [`Stack::poll_event`] when `receive` returns; a few (e.g. `Closed` once a RST went out)
//! only appear after `flush`, for the next round.
//!
//! # Structures
//! - connections live in a slab indexed by the flow table (4-tuple → slot), split hot/cold
//!   (see "Memory layout");
//! - half-open passive connections are compact [`SynRecvEntry`]s (≤ 64 bytes), not full
//!   control blocks, and become connections when the final ACK arrives; when the SYN queue is
//!   full the listener answers with SYN cookies (RFC 4987 §3.6);
//! - a connection entering TIME-WAIT moves into the compact TIME-WAIT table (32 bytes);
//! - every deadline lives in one timer wheel.
//!
//! # Memory layout
//! The per-segment path reads the flow table bucket (16 bytes), the slot's [`SlotMeta`]
//! (32 bytes: generation, timer, timer deadline, peer MAC, flags; two per cache line, in an
//! array of their own) and the control block ([`Connection`], in a separate array, each
//! cache-line aligned so it spans the fewest lines). Cold per-slot data (the orphan list
//! links) lives in a third array, and payload bytes live out of line in the connection's
//! buffers, whose storage a connection without data never allocates and a finished
//! connection returns to a per-thread pool for the next ones (`tcp::buffer`). The slab,
//! the flow table, the SYN-RECEIVED entries, the TIME-WAIT table and the timer wheel are
//! sized at construction: after warm-up, opening and closing connections allocates nothing.
//! `size_of` of each piece is printed by the `scale_limits` test.
//!
//! # Limits
//! Resource limits have defined behaviour and a counter:
//! - connection table full (`max_connections`): a final ACK or cookie ACK is dropped (the
//!   SYN-RECEIVED entry stays and its SYN-ACK is retried), an active open fails with
//!   [`StackError::TableFull`]; counted in `conn_table_full`;
//! - SYN queue full (listener `syn_backlog`, or `max_syn_recv` overall): SYN cookies, or with
//!   cookies off the SYN is dropped (`syn_queue_overflows`);
//! - accept queue full: the final ACK is dropped or answered with RST, by
//!   [`StackConfig::accept_overflow`] (`accept_queue_overflows`);
//! - TIME-WAIT table full: its oldest entry is evicted (`time_wait_table_full`);
//! - too many orphans: the oldest is reset (`orphan_overflows`);
//! - SYN-ACK retries exhausted: the entry is dropped (`syn_recv_timeouts`);
//! - stateless replies beyond [`MAX_CONTROL`] per poll, or no TX frame: dropped
//!   (`tx_no_buffer`);
//! - ephemeral ports exhausted: [`StackError::PortsExhausted`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;

use crate::link::Link;
use crate::tcp::connection::PassiveOpen;
use crate::tcp::flow_table::FlowTable;
use crate::tcp::ports::{EphemeralPorts, PortState, PortsExhausted};
use crate::tcp::rss::RssSteering;
use crate::tcp::syncookie::{self, CookieOptions, SynCookies};
use crate::tcp::time_wait::{self, InsertOutcome, TimeWaitEntry, TimeWaitInit, TimeWaitTable};
use crate::tcp::timer_wheel::{TimerId, TimerWheel};
use crate::tcp::{
    Connection, Counters, Event, FourTuple, IsnGenerator, State, TcpConfig, TcpError,
    rst_for_unexpected,
};
use crate::time::{Duration, Instant};
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use crate::wire::{
    EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame,
    parse_tcp_frame,
};

/// What a SYN queue overflow does (RFC 4987 §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynCookieMode {
    /// Never: SYNs beyond the backlog are dropped (counted in `syn_queue_overflows`).
    Off,
    /// Only when the SYN queue is full. Default.
    WhenFull,
    /// Always: no SYN-RECEIVED state at all.
    Always,
}

/// What a final ACK that finds the accept queue full gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOverflow {
    /// Drop it; the client retransmits and the SYN-ACK is retried (Linux default). Default.
    Drop,
    /// Answer with RST (Linux `tcp_abort_on_overflow`).
    Reset,
}

/// Configuration of one per-core stack. Defaults documented on each field.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Our MAC address on the link.
    pub mac: EthernetAddress,
    /// Our IPv4 addresses (the first is the default source address of active opens).
    pub ips: Vec<Ipv4Addr>,
    /// Per-connection TCP settings.
    pub tcp: TcpConfig,
    /// Connections (all states but TIME-WAIT and SYN-RECEIVED). Default 65 536.
    pub max_connections: usize,
    /// Compact SYN-RECEIVED entries across all listeners. Default 65 536.
    pub max_syn_recv: usize,
    /// TIME-WAIT table capacity. Default 10 M (memory is only touched as it fills).
    pub time_wait_capacity: usize,
    /// Default SYN backlog of a listener. Default 1024.
    pub syn_backlog: usize,
    /// Default accept backlog of a listener. Default 1024.
    pub accept_backlog: usize,
    /// SYN cookie policy. Default `WhenFull`.
    pub syn_cookies: SynCookieMode,
    /// Full accept queue policy. Default `Drop`.
    pub accept_overflow: AcceptOverflow,
    /// Orphaned connections (closed by the application, still closing) before the oldest is
    /// reset. Default 65 536.
    pub max_orphans: usize,
    /// Ephemeral ports for active opens. Default 32768..=60999.
    pub ephemeral_ports: core::ops::RangeInclusive<u16>,
    /// Where the NIC's RSS is known: active opens choose only source ports whose replies
    /// it delivers on this core's queue (see [`crate::tcp::rss`]). Default `None`: any port
    /// of `ephemeral_ports`.
    pub rss: Option<RssSteering>,
    /// Frames handled per `poll` call. Default 64.
    pub rx_batch: usize,
    /// Answer ARP requests for our addresses and resolve neighbours with ARP ourselves.
    /// Default true (the simulator needs it; on AF_XDP the kernel keeps answering ARP).
    pub arp: bool,
    /// Secret for ISNs, timestamps offsets, cookies and hash seeds. Fill from a CSPRNG.
    pub secret: [u8; 32],
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            mac: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
            ips: vec![Ipv4Addr::new(10, 0, 0, 1)],
            tcp: TcpConfig::default(),
            max_connections: 65_536,
            max_syn_recv: 65_536,
            time_wait_capacity: time_wait::DEFAULT_CAPACITY,
            syn_backlog: 1024,
            accept_backlog: 1024,
            syn_cookies: SynCookieMode::WhenFull,
            accept_overflow: AcceptOverflow::Drop,
            max_orphans: 65_536,
            ephemeral_ports: crate::tcp::ports::DEFAULT_RANGE,
            rss: None,
            rx_batch: 64,
            arp: true,
            secret: [0x5a; 32],
        }
    }
}

/// A connection, as the application sees it. Stale handles (of a finished connection whose
/// slot was reused) are detected by a generation number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    index: u32,
    generation: u32,
}

impl ConnHandle {
    /// The slot index (stable while the connection lives; useful as an array index).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// A listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u32);

/// Why an operation on the stack failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// The handle refers to a connection that no longer exists.
    InvalidHandle,
    /// The connection refused the operation.
    Tcp(TcpError),
    /// Every ephemeral port to this destination is in use or in TIME-WAIT.
    PortsExhausted(PortsExhausted),
    /// The connection table is full.
    TableFull,
    /// The address is already bound by a listener.
    AddressInUse,
    /// The local address is not one of ours.
    AddressNotLocal,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackError::InvalidHandle => f.write_str("connection handle is no longer valid"),
            StackError::Tcp(e) => write!(f, "{e}"),
            StackError::PortsExhausted(e) => write!(f, "{e}"),
            StackError::TableFull => f.write_str("connection table full"),
            StackError::AddressInUse => f.write_str("address already has a listener"),
            StackError::AddressNotLocal => f.write_str("address is not configured on this stack"),
        }
    }
}

impl std::error::Error for StackError {}

impl From<TcpError> for StackError {
    fn from(e: TcpError) -> Self {
        StackError::Tcp(e)
    }
}

/// A half-open passive connection (SYN received, SYN-ACK sent): what the final ACK needs to
/// create the connection, and what a SYN-ACK retransmission needs. ≤ 64 bytes.
#[derive(Debug, Clone, Copy)]
pub struct SynRecvEntry {
    tuple: FourTuple,
    iss: SeqNumber,
    irs: SeqNumber,
    ts_recent: u32,
    /// Our timestamp clock offset for this tuple (keyed hash, computed once per SYN).
    ts_offset: u32,
    timer: Option<TimerId>,
    peer_mac: EthernetAddress,
    peer_mss: u16,
    listener: u16,
    /// Peer's window scale, or 0xff when not offered.
    peer_wscale: u8,
    /// `SR_SACK | SR_TS | SR_LIVE`.
    flags: u8,
    retries: u8,
}

const SR_SACK: u8 = 1;
const SR_TS: u8 = 2;
const SR_LIVE: u8 = 4;

const _: () = assert!(core::mem::size_of::<SynRecvEntry>() <= 64);

/// Interval between ARP requests for one neighbour, and how many go unanswered before the
/// connections waiting for it end with `TimedOut` (like Linux's `mcast_solicit` = 3).
const ARP_RETRY: Duration = Duration::from_secs(1);
const ARP_ATTEMPTS: u8 = 3;

/// Timer tokens: the top bit tells a SYN-RECEIVED entry from a connection slot.
const TOKEN_SYN_RECV: u32 = 1 << 31;
/// Flow table values: the same tag.
const FLOW_SYN_RECV: u32 = 1 << 31;

struct Listener {
    addr: Ipv4Addr,
    port: u16,
    syn_backlog: usize,
    accept_backlog: usize,
    syn_queue_len: usize,
    accept_queue: VecDeque<ConnHandle>,
}

/// The hot per-slot metadata, beside (not inside) the control block: what handle checks,
/// the dirty list and timer bookkeeping read. 32 bytes, two per cache line.
#[derive(Debug, Clone, Copy)]
pub struct SlotMeta {
    /// Deadline the slot's timer is armed for, in µs; `NO_TIMER` when none.
    timer_at: u64,
    timer: Option<TimerId>,
    generation: u32,
    peer_mac: EthernetAddress,
    /// `SM_*` bits.
    flags: u8,
    /// State at the last `settle` (for the ESTABLISHED gauge).
    last_state: State,
}

const NO_TIMER: u64 = u64::MAX;
/// On the dirty list.
const SM_DIRTY: u8 = 1;
/// Delivered to the application (clear while in an accept queue).
const SM_ACCEPTED: u8 = 2;
/// Closed by the application, not finished: on the orphan list.
const SM_ORPHAN: u8 = 4;
/// `peer_mac` is known.
const SM_MAC: u8 = 8;
/// The slot holds a connection.
const SM_LIVE: u8 = 16;

const _: () = assert!(core::mem::size_of::<SlotMeta>() <= 32);

impl SlotMeta {
    const EMPTY: SlotMeta = SlotMeta {
        timer_at: NO_TIMER,
        timer: None,
        generation: 0,
        peer_mac: EthernetAddress([0; 6]),
        flags: 0,
        last_state: State::Closed,
    };
    #[inline]
    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }
    #[inline]
    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }
    #[inline]
    fn timer_deadline(&self) -> Option<Instant> {
        (self.timer_at != NO_TIMER).then(|| Instant::from_micros(self.timer_at))
    }
    #[inline]
    fn peer_mac(&self) -> Option<EthernetAddress> {
        self.has(SM_MAC).then_some(self.peer_mac)
    }
}

/// A control block in the slab, aligned to a cache line so that it spans the fewest lines
/// (`size_of::<Connection>()` rounded up to 64 bytes).
#[repr(align(64))]
struct ConnCell(Option<Connection>);

/// Doubly-linked orphan list through slot indices (oldest at the head): O(1) insert and
/// removal, no allocation, no stale entries. `NIL` ends the list.
#[derive(Clone, Copy)]
struct OrphanLink {
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

/// A SYN parked until its TIME-WAIT lookup (see `Stack::drain_pending_syns`). It carries
/// no payload (only payload-free SYNs are parked).
struct PendingSyn {
    tuple: FourTuple,
    seg: TcpRepr<'static>,
    peer_mac: EthernetAddress,
}

/// SYNs parked at most; one more drains them first.
const PENDING_SYNS: usize = 64;

/// A stateless reply waiting for a TX frame.
#[derive(Clone, Copy)]
enum Control {
    Tcp {
        dst_mac: EthernetAddress,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        repr: TcpRepr<'static>,
    },
    Arp {
        dst_mac: EthernetAddress,
        repr: ArpRepr,
    },
}

/// Bound on queued stateless replies per poll; beyond it they are dropped (and counted as
/// `tx_no_buffer`), which a SYN flood must not turn into unbounded memory.
pub const MAX_CONTROL: usize = 4096;

/// TIME-WAIT entries expired per poll at most; the rest wait for the next poll (`poll_at`
/// says it is due at once), so one poll never stalls on a mass expiry.
const TIME_WAIT_EXPIRY_BUDGET: usize = 4096;

/// The per-core TCP stack. See the module docs.
pub struct Stack {
    cfg: StackConfig,
    now: Instant,
    /// Hot per-slot metadata; `conns` and `orphan_links` are indexed alike.
    meta: Vec<SlotMeta>,
    conns: Vec<ConnCell>,
    orphan_links: Vec<OrphanLink>,
    free_slots: Vec<u32>,
    flows: FlowTable,
    syn_recv: Vec<SynRecvEntry>,
    free_syn_recv: Vec<u32>,
    listeners: Vec<Listener>,
    time_wait: TimeWaitTable,
    wheel: TimerWheel,
    fired: Vec<u32>,
    cookies: SynCookies,
    isn: IsnGenerator,
    ports: EphemeralPorts,
    dirty: Vec<u32>,
    /// SYNs waiting for a batched TIME-WAIT lookup; empty outside `receive`.
    pending_syns: Vec<PendingSyn>,
    /// `cfg.ips`, sorted: a load generator's stack may own hundreds of source addresses, and
    /// segments that miss the flow table must be checked against all of them.
    local_ips: Vec<Ipv4Addr>,
    control: VecDeque<Control>,
    events: VecDeque<(ConnHandle, Event)>,
    /// Oldest and newest orphan slot (`NIL` when none).
    orphan_head: u32,
    orphan_tail: u32,
    neighbors: HashMap<Ipv4Addr, EthernetAddress>,
    /// ARP requests in progress: when the last one went out and how many were sent.
    arp_requested: HashMap<Ipv4Addr, (Instant, u8)>,
    /// When connections waiting for ARP get another look (a retry or a give-up).
    arp_retry_at: Option<Instant>,
    waiting_arp: Vec<u32>,
    counters: Counters,
    live_connections: usize,
    /// A one-shot ISN override (test support, see `set_next_isn`).
    next_isn: Option<(SeqNumber, u32)>,
}

fn seed_u64(secret: &[u8; 32], i: usize) -> u64 {
    u64::from_le_bytes(secret[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
}

impl Stack {
    pub fn new(cfg: StackConfig, now: Instant) -> Stack {
        let mut key = [0u8; 16];
        key.copy_from_slice(&cfg.secret[..16]);
        let timers = cfg.max_connections + cfg.max_syn_recv;
        // Reserved, not touched: the slab never reallocates (and never moves a control block)
        // and costs resident memory only as it fills.
        let slots = cfg.max_connections;
        Stack {
            now,
            meta: Vec::with_capacity(slots),
            conns: Vec::with_capacity(slots),
            orphan_links: Vec::with_capacity(slots),
            free_slots: Vec::with_capacity(slots),
            flows: FlowTable::with_capacity(
                cfg.max_connections + cfg.max_syn_recv,
                seed_u64(&cfg.secret, 0),
            ),
            syn_recv: Vec::with_capacity(cfg.max_syn_recv),
            free_syn_recv: Vec::with_capacity(cfg.max_syn_recv),
            listeners: Vec::new(),
            time_wait: TimeWaitTable::with_capacity(
                cfg.time_wait_capacity.max(1),
                seed_u64(&cfg.secret, 1),
            ),
            wheel: TimerWheel::new(timers, Duration::from_millis(1), now),
            fired: Vec::with_capacity(1024),
            cookies: SynCookies::new(cfg.secret, now),
            isn: IsnGenerator::new(key),
            ports: EphemeralPorts::new(cfg.ephemeral_ports.clone(), seed_u64(&cfg.secret, 2)),
            dirty: Vec::with_capacity(1024),
            pending_syns: Vec::with_capacity(PENDING_SYNS),
            local_ips: {
                let mut ips = cfg.ips.clone();
                ips.sort_unstable();
                ips.dedup();
                ips
            },
            control: VecDeque::with_capacity(256),
            events: VecDeque::with_capacity(1024),
            orphan_head: NIL,
            orphan_tail: NIL,
            neighbors: HashMap::new(),
            arp_requested: HashMap::new(),
            arp_retry_at: None,
            waiting_arp: Vec::new(),
            counters: Counters::default(),
            live_connections: 0,
            next_isn: None,
            cfg,
        }
    }

    // ---------------------------------------------------------------- getters

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// A snapshot of the counters, gauges refreshed.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.time_wait = self.time_wait.len() as u64;
        let tw = self.time_wait.stats();
        c.time_wait_expiries = tw.expiries;
        c.time_wait_table_full = tw.table_full_evictions;
        c
    }

    /// The connection behind a handle (for inspection: state, sequence numbers, buffers).
    pub fn connection(&self, h: ConnHandle) -> Option<&Connection> {
        let meta = self.meta.get(h.index as usize)?;
        if meta.generation != h.generation {
            return None;
        }
        self.conns[h.index as usize].0.as_ref()
    }

    /// The state of a connection; `None` once it is gone (CLOSED, or moved to TIME-WAIT table).
    pub fn state(&self, h: ConnHandle) -> Option<State> {
        self.connection(h).map(|c| c.state())
    }

    /// Connections in the slab (every state but SYN-RECEIVED entries and TIME-WAIT entries).
    pub fn connection_count(&self) -> usize {
        self.live_connections
    }

    pub fn syn_recv_count(&self) -> usize {
        self.syn_recv.len() - self.free_syn_recv.len()
    }

    pub fn time_wait_table(&self) -> &TimeWaitTable {
        &self.time_wait
    }

    /// Whether `tuple` (our side local) is in the TIME-WAIT table.
    pub fn in_time_wait(&self, tuple: &FourTuple) -> bool {
        self.time_wait.get(tuple).is_some()
    }

    /// The state of whatever holds `tuple` (our side local), as `ss` would show it: a
    /// connection's state, `SynReceived` for a SYN queue entry, `TimeWait` for a TIME-WAIT
    /// entry; `None` when nothing does.
    pub fn state_of(&self, tuple: &FourTuple) -> Option<State> {
        match self.flows.get(tuple) {
            Some(v) if v & FLOW_SYN_RECV != 0 => Some(State::SynReceived),
            Some(index) => self.conns[index as usize].0.as_ref().map(Connection::state),
            None => self.in_time_wait(tuple).then_some(State::TimeWait),
        }
    }

    /// Test support: the next opening (a SYN queue entry or an active open; not a cookie)
    /// uses this ISN and timestamp clock offset instead of RFC 6528's. Exact-segment tests
    /// need known sequence numbers; nothing else should call it.
    #[cfg(feature = "test-hooks")]
    pub fn set_next_isn(&mut self, iss: SeqNumber, ts_offset: u32) {
        self.next_isn = Some((iss, ts_offset));
    }

    fn take_isn(&mut self, now: Instant, tuple: &FourTuple) -> (SeqNumber, u32) {
        match self.next_isn.take() {
            Some(v) => v,
            None => self.isn.isn_and_ts_offset(now, tuple),
        }
    }

    /// Puts a 4-tuple into TIME-WAIT as if its connection had just finished there: the entry
    /// lasts 2×MSL from `now`, answers retransmitted FINs and judges new SYNs like any other
    /// (counted in `time_wait_inserts`). For restoring state and for preloading the table in
    /// tests and benchmarks; `init.tuple` must not be a live connection.
    pub fn insert_time_wait(&mut self, now: Instant, init: TimeWaitInit) -> InsertOutcome {
        self.counters.time_wait_inserts += 1;
        self.time_wait.insert(now, init, now + 2 * self.cfg.tcp.msl)
    }

    /// Entries in a listener's SYN queue (compact SYN-RECEIVED entries).
    pub fn syn_queue_len(&self, l: ListenerId) -> usize {
        self.listeners
            .get(l.0 as usize)
            .map_or(0, |l| l.syn_queue_len)
    }

    /// Teaches the stack a neighbour's MAC (e.g. from the kernel's neighbour table).
    pub fn add_neighbor(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        self.learn(ip, mac);
    }

    pub fn neighbor(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.neighbors.get(&ip).copied()
    }

    /// When `poll` must next be called even if no frame arrives.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.dirty.is_empty() || !self.control.is_empty() {
            return Some(self.now);
        }
        [
            self.wheel.next_deadline(),
            self.time_wait.next_expiry(),
            self.arp_retry_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---------------------------------------------------------------- application: setup

    /// Listens on `addr` (0.0.0.0 = every local address) with the default backlogs.
    pub fn listen(&mut self, addr: SocketAddrV4) -> Result<ListenerId, StackError> {
        let (syn, acc) = (self.cfg.syn_backlog, self.cfg.accept_backlog);
        self.listen_with_backlog(addr, syn, acc)
    }

    pub fn listen_with_backlog(
        &mut self,
        addr: SocketAddrV4,
        syn_backlog: usize,
        accept_backlog: usize,
    ) -> Result<ListenerId, StackError> {
        let ip = *addr.ip();
        if !ip.is_unspecified() && !self.cfg.ips.contains(&ip) {
            return Err(StackError::AddressNotLocal);
        }
        if self
            .listeners
            .iter()
            .any(|l| l.port == addr.port() && (l.addr == ip || l.addr.is_unspecified()))
        {
            return Err(StackError::AddressInUse);
        }
        self.listeners.push(Listener {
            addr: ip,
            port: addr.port(),
            syn_backlog,
            accept_backlog,
            syn_queue_len: 0,
            accept_queue: VecDeque::with_capacity(accept_backlog.min(1 << 16)),
        });
        Ok(ListenerId(self.listeners.len() as u32 - 1))
    }

    /// Connections waiting in a listener's accept queue.
    pub fn accept_queue_len(&self, l: ListenerId) -> usize {
        self.listeners
            .get(l.0 as usize)
            .map_or(0, |l| l.accept_queue.len())
    }

    /// Takes the next established connection from the accept queue. Its events (Connected,
    /// and Readable/PeerClosed if data or FIN came already) follow in `poll_event`.
    pub fn accept(&mut self, l: ListenerId) -> Option<ConnHandle> {
        loop {
            let h = self
                .listeners
                .get_mut(l.0 as usize)?
                .accept_queue
                .pop_front()?;
            if !self.is_live(h) {
                continue; // died in the queue (reset, timed out)
            }
            self.meta[h.index as usize].set(SM_ACCEPTED, true);
            if let Some(c) = self.conns[h.index as usize].0.as_mut() {
                while let Some(e) = c.poll_event() {
                    self.events.push_back((h, e));
                }
            }
            self.mark_dirty(h.index);
            return Some(h);
        }
    }

    /// Active open to `remote` from our first address (or `local_ip`).
    pub fn connect(
        &mut self,
        now: Instant,
        local_ip: Option<Ipv4Addr>,
        remote: SocketAddrV4,
    ) -> Result<ConnHandle, StackError> {
        self.now = now;
        let local_ip = match local_ip {
            Some(ip) if self.cfg.ips.contains(&ip) => ip,
            Some(_) => return Err(StackError::AddressNotLocal),
            None => *self.cfg.ips.first().ok_or(StackError::AddressNotLocal)?,
        };
        if self.live_connections >= self.cfg.max_connections {
            self.counters.conn_table_full += 1;
            return Err(StackError::TableFull);
        }
        let (rip, rport) = (*remote.ip(), remote.port());
        let flows = &self.flows;
        let tw = &self.time_wait;
        let msl2 = 2 * self.cfg.tcp.msl;
        let rss = self.cfg.rss.as_ref();
        let port = self
            .ports
            .allocate(local_ip, rip, rport, |p| {
                if rss.is_some_and(|r| !r.accepts(local_ip, p, rip, rport)) {
                    // Its replies would reach another core.
                    return PortState::InUse;
                }
                let t = FourTuple {
                    local_addr: local_ip,
                    remote_addr: rip,
                    local_port: p,
                    remote_port: rport,
                };
                if flows.contains_key(&t) {
                    return PortState::InUse;
                }
                match tw.get(&t) {
                    None => PortState::Free,
                    Some(e) => {
                        // Like Linux tcp_tw_reuse: safe when timestamps protect the new
                        // incarnation (RFC 6191 §2 on the peer side; PAWS) and the entry is
                        // at least one second old.
                        let expires = Instant::from_millis(u64::from(e.expiry_millis()));
                        let age = msl2.saturating_sub(expires.saturating_since(now));
                        PortState::TimeWait {
                            reusable: e.ts_recent().is_some() && age >= Duration::from_secs(1),
                        }
                    }
                }
            })
            .map_err(StackError::PortsExhausted)?;
        let tuple = FourTuple {
            local_addr: local_ip,
            remote_addr: rip,
            local_port: port,
            remote_port: rport,
        };
        if self.time_wait.remove(&tuple).is_some() {
            self.counters.time_wait_reuses += 1;
        }
        let (iss, ts_offset) = self.take_isn(now, &tuple);
        let mac = self.neighbors.get(&rip).copied();
        let h = self.insert_connection(tuple, mac, true, |tcp| {
            Connection::connect(tcp, tuple, iss, ts_offset, now)
        })?;
        self.counters.active_opens += 1;
        Ok(h)
    }

    // ---------------------------------------------------------------- application: data

    /// The handle names a slot that still holds its connection.
    fn is_live(&self, h: ConnHandle) -> bool {
        self.meta
            .get(h.index as usize)
            .is_some_and(|m| m.generation == h.generation && m.has(SM_LIVE))
    }

    fn with_conn<R>(
        &mut self,
        h: ConnHandle,
        f: impl FnOnce(&mut Connection, Instant) -> R,
    ) -> Result<R, StackError> {
        let now = self.now;
        if !self.is_live(h) {
            return Err(StackError::InvalidHandle);
        }
        let timer_at = self.meta[h.index as usize].timer_deadline();
        let conn = self.conns[h.index as usize]
            .0
            .as_mut()
            .ok_or(StackError::InvalidHandle)?;
        let state = conn.state();
        let r = f(conn, now);
        // Only a connection with something to do goes on the dirty list: an application that
        // polls `recv` in a loop must not keep the stack busy.
        let busy = conn.wants_transmit()
            || conn.has_events()
            || matches!(conn.state(), State::Closed | State::TimeWait)
            || conn.state() != state
            || conn.poll_at() != timer_at;
        if busy {
            self.mark_dirty(h.index);
        }
        Ok(r)
    }

    /// Copies as much of `data` as fits into the send buffer.
    pub fn send(&mut self, h: ConnHandle, data: &[u8]) -> Result<usize, StackError> {
        self.with_conn(h, |c, _| c.send(data))?
            .map_err(StackError::Tcp)
    }

    /// Copies received bytes into `buf`.
    pub fn recv(&mut self, h: ConnHandle, buf: &mut [u8]) -> Result<usize, StackError> {
        self.with_conn(h, |c, _| c.recv(buf))
    }

    /// Received bytes at the front of the buffer, borrowed in place (zero-copy).
    pub fn recv_slice(&self, h: ConnHandle) -> Result<&[u8], StackError> {
        self.connection(h)
            .map(|c| c.recv_slice())
            .ok_or(StackError::InvalidHandle)
    }

    /// Marks `n` bytes of `recv_slice` as read.
    pub fn consume(&mut self, h: ConnHandle, n: usize) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.consume(n))
    }

    /// Half-close: FIN after the queued data; receiving continues.
    pub fn shutdown(&mut self, h: ConnHandle) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.shutdown(now))?
            .map_err(StackError::Tcp)
    }

    /// Closes both directions; the connection becomes an orphan until it finishes.
    pub fn close(&mut self, h: ConnHandle) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.close(now))??;
        let alive = self.conns[h.index as usize]
            .0
            .as_ref()
            .is_some_and(|c| !matches!(c.state(), State::Closed | State::TimeWait));
        if alive && !self.meta[h.index as usize].has(SM_ORPHAN) {
            self.orphan_push(h.index);
            self.enforce_orphan_limit();
        }
        Ok(())
    }

    /// Aborts with RST.
    pub fn abort(&mut self, h: ConnHandle) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.abort(now))
    }

    /// Chooses one connection's congestion control algorithm (the default for every
    /// connection is `StackConfig::tcp.congestion`).
    pub fn set_congestion_algorithm(
        &mut self,
        h: ConnHandle,
        algorithm: crate::tcp::CongestionAlgorithm,
    ) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.set_congestion_algorithm(algorithm))
    }

    /// Turns Nagle's algorithm (RFC 9293 §3.7.4) on or off for one connection.
    pub fn set_nagle(&mut self, h: ConnHandle, on: bool) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.set_nagle(on))
    }

    /// Sets or clears one connection's keepalive (RFC 9293 §3.8.4).
    pub fn set_keepalive(
        &mut self,
        h: ConnHandle,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.set_keepalive(now, keepalive))
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<(ConnHandle, Event)> {
        self.events.pop_front()
    }

    /// Appends a slot to the orphan list (newest at the tail).
    fn orphan_push(&mut self, index: u32) {
        self.meta[index as usize].set(SM_ORPHAN, true);
        self.orphan_links[index as usize] = OrphanLink {
            prev: self.orphan_tail,
            next: NIL,
        };
        match self.orphan_tail {
            NIL => self.orphan_head = index,
            t => self.orphan_links[t as usize].next = index,
        }
        self.orphan_tail = index;
        self.counters.orphans += 1;
    }

    /// Takes a slot off the orphan list (it finished, or is being reset).
    fn orphan_unlink(&mut self, index: u32) {
        let meta = &mut self.meta[index as usize];
        if !meta.has(SM_ORPHAN) {
            return;
        }
        meta.set(SM_ORPHAN, false);
        let OrphanLink { prev, next } = self.orphan_links[index as usize];
        match prev {
            NIL => self.orphan_head = next,
            p => self.orphan_links[p as usize].next = next,
        }
        match next {
            NIL => self.orphan_tail = prev,
            n => self.orphan_links[n as usize].prev = prev,
        }
        self.counters.orphans -= 1;
    }

    /// Resets the oldest orphans while there are more than `max_orphans` (like Linux's
    /// `tcp_max_orphans`, which resets rather than lets orphans eat memory).
    fn enforce_orphan_limit(&mut self) {
        while self.counters.orphans as usize > self.cfg.max_orphans {
            let index = self.orphan_head;
            if index == NIL {
                break;
            }
            self.orphan_unlink(index);
            if let Some(c) = self.conns[index as usize].0.as_mut() {
                c.abort(self.now);
            }
            self.counters.orphan_overflows += 1;
            self.mark_dirty(index);
        }
    }

    // ---------------------------------------------------------------- slots

    /// Puts the connection `make` builds for `tuple` into a free slot. `make` runs only once
    /// the slot and the flow entry are secured, and builds the control block in place (no
    /// copy of it through the stack frame).
    fn insert_connection(
        &mut self,
        tuple: FourTuple,
        peer_mac: Option<EthernetAddress>,
        accepted: bool,
        make: impl FnOnce(&TcpConfig) -> Connection,
    ) -> Result<ConnHandle, StackError> {
        if self.live_connections >= self.cfg.max_connections {
            self.counters.conn_table_full += 1;
            return Err(StackError::TableFull);
        }
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                // Within the reserved capacity (max_connections): never reallocates.
                self.meta.push(SlotMeta::EMPTY);
                self.conns.push(ConnCell(None));
                self.orphan_links.push(OrphanLink {
                    prev: NIL,
                    next: NIL,
                });
                self.meta.len() as u32 - 1
            }
        };
        if self.flows.insert(tuple, index).is_err() {
            self.free_slots.push(index);
            self.counters.conn_table_full += 1;
            return Err(StackError::TableFull);
        }
        let meta = &mut self.meta[index as usize];
        let generation = meta.generation.wrapping_add(1);
        *meta = SlotMeta {
            generation,
            flags: SM_LIVE,
            ..SlotMeta::EMPTY
        };
        if let Some(mac) = peer_mac {
            meta.peer_mac = mac;
            meta.flags |= SM_MAC;
        }
        meta.set(SM_ACCEPTED, accepted);
        let cell = &mut self.conns[index as usize].0;
        debug_assert!(cell.is_none(), "a free slot holds no connection");
        // On an empty cell this is a plain construction into the cell (no old value to drop,
        // so the compiler can build the control block where it will live).
        let tcp = &self.cfg.tcp;
        let conn = cell.get_or_insert_with(|| make(tcp));
        debug_assert_eq!(conn.tuple(), tuple);
        self.live_connections += 1;
        let h = ConnHandle { index, generation };
        self.mark_dirty(index);
        Ok(h)
    }

    #[inline]
    fn mark_dirty(&mut self, index: u32) {
        let meta = &mut self.meta[index as usize];
        if !meta.has(SM_DIRTY) {
            meta.flags |= SM_DIRTY;
            self.dirty.push(index);
        }
    }

    fn free_slot(&mut self, index: u32) {
        // The control block is dropped in place below, not moved out (it is hundreds of
        // bytes).
        let Some(tuple) = self.conns[index as usize].0.as_ref().map(Connection::tuple) else {
            return;
        };
        self.conns[index as usize].0 = None;
        self.orphan_unlink(index);
        let meta = &mut self.meta[index as usize];
        if let Some(t) = meta.timer.take() {
            self.wheel.cancel(t);
        }
        meta.timer_at = NO_TIMER;
        if meta.last_state == State::Established {
            self.counters.established = self.counters.established.saturating_sub(1);
        }
        meta.last_state = State::Closed;
        // Keep the generation and the dirty bit (the slot may still be on the dirty list).
        meta.flags &= SM_DIRTY;
        self.flows.remove(&tuple);
        self.free_slots.push(index);
        self.live_connections -= 1;
    }

    /// After anything touched a connection: gauges, events, timers, TIME-WAIT migration,
    /// freeing.
    fn settle(&mut self, index: u32) {
        let meta = &mut self.meta[index as usize];
        let handle = ConnHandle {
            index,
            generation: meta.generation,
        };
        let Some(conn) = self.conns[index as usize].0.as_mut() else {
            return;
        };
        let state = conn.state();
        if state != meta.last_state {
            crate::trace::debug!(conn = %conn.tuple(), from = %meta.last_state, to = %state, "state");
            if meta.last_state == State::Established {
                self.counters.established -= 1;
            }
            if state == State::Established {
                self.counters.established += 1;
            }
            meta.last_state = state;
        }
        let accepted = meta.has(SM_ACCEPTED);
        if accepted {
            while let Some(e) = conn.poll_event() {
                self.events.push_back((handle, e));
            }
        }
        // A finished connection stays (as a full control block) while the application still
        // has bytes to read from it; it is released once they are read or it is closed.
        let releasable = !accepted || meta.has(SM_ORPHAN) || conn.recv_queue() == 0;
        let finished = match state {
            State::Closed => releasable,
            State::TimeWait if releasable => {
                // The final ACK went out (settle runs after transmit): hand over to the table.
                let (_, rcv_wscale) = conn.window_scales();
                let wnd = (self.cfg.tcp.recv_buffer >> rcv_wscale).min(65535) as u16;
                let init = TimeWaitInit {
                    tuple: conn.tuple(),
                    snd_nxt: conn.snd_nxt(),
                    rcv_nxt: conn.rcv_nxt(),
                    ts_recent: conn.ts_recent(),
                    rcv_wnd: wnd,
                    rcv_wscale,
                };
                let expires = conn
                    .time_wait_until()
                    .unwrap_or(self.now + 2 * self.cfg.tcp.msl);
                self.counters.time_wait_inserts += 1;
                // A full table evicts its oldest entry; the table counts it
                // (`time_wait_table_full` in the snapshot).
                self.time_wait.insert(self.now, init, expires);
                true
            }
            _ => false,
        };
        if finished {
            if !accepted {
                conn.clear_events();
            }
            self.free_slot(index);
            return;
        }
        let want = conn.poll_at();
        if want != meta.timer_deadline() {
            if let Some(t) = meta.timer.take() {
                self.wheel.cancel(t);
            }
            meta.timer_at = want.map_or(NO_TIMER, Instant::total_micros);
            if let Some(at) = want {
                // The wheel holds max_connections + max_syn_recv nodes: one per slot, so it
                // cannot be full here.
                meta.timer = self.wheel.schedule(at, index).ok();
            }
        }
    }

    // ---------------------------------------------------------------- poll

    /// Receives, runs timers, transmits. Returns the number of frames received.
    pub fn poll<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        let received = self.receive(now, link);
        self.dispatch(now, link);
        link.flush();
        received
    }

    /// The first half of [`Stack::poll`]: receives up to `rx_batch` frames and runs due
    /// timers, but transmits nothing. Call [`Stack::flush`] after the application has reacted
    /// to the events, so its output shares segments with the ACKs owed (see the module docs).
    /// Returns the number of frames received.
    pub fn receive<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        self.now = now;
        let budget = self.cfg.rx_batch;
        let received = link.receive(budget, |frame| self.process_frame(now, frame));
        self.drain_pending_syns(now);
        self.run_timers(now);
        self.collect_events();
        received
    }

    /// Moves the events of touched, accepted connections to the application's queue, so
    /// that they are visible between `receive` and `flush` (the rest of the bookkeeping
    /// waits for `settle`, after transmission).
    fn collect_events(&mut self) {
        for &index in &self.dirty {
            let meta = &self.meta[index as usize];
            if !meta.has(SM_ACCEPTED) {
                continue;
            }
            let handle = ConnHandle {
                index,
                generation: meta.generation,
            };
            if let Some(c) = self.conns[index as usize].0.as_mut() {
                while let Some(e) = c.poll_event() {
                    self.events.push_back((handle, e));
                }
            }
        }
    }

    /// Transmits what application calls queued, without receiving.
    pub fn flush<L: Link>(&mut self, now: Instant, link: &mut L) {
        self.now = now;
        self.dispatch(now, link);
        link.flush();
    }

    fn run_timers(&mut self, now: Instant) {
        if self.arp_retry_at.is_some_and(|t| now >= t) {
            // Connections waiting for a neighbour have no timer of their own (their SYN never
            // left): look at them again, which retries the request or gives up.
            self.arp_retry_at = None;
            for index in core::mem::take(&mut self.waiting_arp) {
                self.mark_dirty(index);
            }
        }
        let mut fired = core::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.expire(now, |token| fired.push(token));
        for &token in &fired {
            if token & TOKEN_SYN_RECV != 0 {
                self.syn_recv_timeout(now, token & !TOKEN_SYN_RECV);
                continue;
            }
            let meta = &mut self.meta[token as usize];
            meta.timer = None;
            meta.timer_at = NO_TIMER;
            if let Some(c) = self.conns[token as usize].0.as_mut() {
                c.handle_timeout(now, &mut self.counters);
                self.mark_dirty(token);
            }
        }
        self.fired = fired;
        // Bounded work per poll; the rest expires on the next poll (poll_at says when).
        if !self.time_wait.is_empty() {
            self.time_wait.expire(now, TIME_WAIT_EXPIRY_BUDGET, |_| {});
        }
    }

    fn dispatch<L: Link>(&mut self, now: Instant, link: &mut L) {
        // Stateless replies first: they are small and often time-critical (SYN-ACKs).
        while let Some(c) = self.control.front().copied() {
            let mac = self.cfg.mac;
            let ok = link.transmit(|buf| match c {
                Control::Tcp {
                    dst_mac,
                    src_ip,
                    dst_ip,
                    repr,
                } => emit_tcp_frame(buf, mac, dst_mac, src_ip, dst_ip, &repr).unwrap_or(0),
                Control::Arp { dst_mac, repr } => emit_arp(buf, mac, dst_mac, &repr),
            });
            if !ok {
                self.counters.tx_no_buffer += 1;
                return;
            }
            self.counters.tx_frames += 1;
            self.control.pop_front();
        }
        let mut i = 0;
        while i < self.dirty.len() {
            let index = self.dirty[i];
            if !self.transmit_slot(now, index, link) {
                // TX ring full: keep the rest dirty for the next poll.
                self.counters.tx_no_buffer += 1;
                self.dirty.drain(..i);
                return;
            }
            self.meta[index as usize].set(SM_DIRTY, false);
            self.settle(index);
            i += 1;
        }
        self.dirty.clear();
    }

    /// Sends everything one connection has ready. False if the link ran out of TX frames.
    fn transmit_slot<L: Link>(&mut self, now: Instant, index: u32, link: &mut L) -> bool {
        let mac = self.cfg.mac;
        let meta = &mut self.meta[index as usize];
        let Some(conn) = self.conns[index as usize].0.as_mut() else {
            return true;
        };
        if !conn.wants_transmit() {
            return true;
        }
        let tuple = conn.tuple();
        let dst_mac = match meta
            .peer_mac()
            .or_else(|| self.neighbors.get(&tuple.remote_addr).copied())
        {
            Some(m) => {
                meta.peer_mac = m;
                meta.flags |= SM_MAC;
                m
            }
            None => {
                if self.request_arp(now, tuple.local_addr, tuple.remote_addr) {
                    if !self.waiting_arp.contains(&index) {
                        self.waiting_arp.push(index);
                    }
                } else {
                    // ARP_ATTEMPTS requests went unanswered: the next hop is unreachable.
                    if let Some(c) = self.conns[index as usize].0.as_mut() {
                        c.abort(now);
                    }
                    let meta = &self.meta[index as usize];
                    if meta.has(SM_ACCEPTED) {
                        let handle = ConnHandle {
                            index,
                            generation: meta.generation,
                        };
                        self.events.push_back((handle, Event::TimedOut));
                    }
                    self.counters.timeouts += 1;
                }
                return true;
            }
        };
        let counters = &mut self.counters;
        while conn.wants_transmit() {
            let mut sent = false;
            let ok = link.transmit(|buf| match conn.poll_transmit(now, counters) {
                Some(repr) => {
                    sent = true;
                    emit_tcp_frame(
                        buf,
                        mac,
                        dst_mac,
                        tuple.local_addr,
                        tuple.remote_addr,
                        &repr,
                    )
                    .unwrap_or(0)
                }
                None => 0,
            });
            if !ok {
                return false;
            }
            if !sent {
                break;
            }
            counters.tx_frames += 1;
        }
        true
    }

    // ---------------------------------------------------------------- receive

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.local_ips.binary_search(&ip).is_ok()
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
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
    /// requests went unanswered: the caller gives up on the connection.
    fn request_arp(&mut self, now: Instant, src: Ipv4Addr, target: Ipv4Addr) -> bool {
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

    fn push_control(&mut self, c: Control) {
        if self.control.len() >= MAX_CONTROL {
            self.counters.tx_no_buffer += 1;
            return;
        }
        self.control.push_back(c);
    }

    fn process_frame(&mut self, now: Instant, frame: &[u8]) {
        self.counters.rx_frames += 1;
        let f = match parse_tcp_frame(frame) {
            Ok(f) => f,
            Err(crate::wire::Error::Unsupported) => {
                self.drain_pending_syns(now);
                self.process_other(frame);
                return;
            }
            Err(_e) => {
                self.counters.rx_dropped_malformed += 1;
                crate::trace::debug!(reason = %_e, len = frame.len(), "drop: malformed frame");
                return;
            }
        };
        // The destination address is checked only when the flow table misses (in
        // `route_segment`): a tuple in the table always has one of our addresses.
        if f.eth.dst_addr != self.cfg.mac && !f.eth.dst_addr.is_broadcast() {
            self.counters.rx_not_ours += 1;
            return;
        }
        let seg = f.tcp;
        crate::trace::segment!(src = %f.ip.src_addr, sport = seg.src_port, dport = seg.dst_port, seq = seg.seq_number.0, len = seg.payload.len(), "rx segment");
        let tuple = FourTuple {
            local_addr: f.ip.dst_addr,
            remote_addr: f.ip.src_addr,
            local_port: seg.dst_port,
            remote_port: seg.src_port,
        };
        let peer_mac = f.eth.src_addr;
        self.route_segment(now, tuple, &seg, peer_mac, true);
    }

    /// Hands a segment to its connection, SYN-RECEIVED entry, TIME-WAIT entry or listener.
    ///
    /// With `may_defer`, a SYN that misses the flow table while the TIME-WAIT table is not
    /// empty is parked in `pending_syns` instead (see [`Stack::drain_pending_syns`]).
    #[inline]
    fn route_segment(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        may_defer: bool,
    ) {
        match self.flows.get(&tuple) {
            Some(v) if v & FLOW_SYN_RECV != 0 => {
                self.drain_pending_syns(now);
                self.segment_for_syn_recv(now, v & !FLOW_SYN_RECV, seg, peer_mac)
            }
            Some(index) => {
                if let Some(c) = self.conns[index as usize].0.as_mut() {
                    c.handle_segment(now, seg, &mut self.counters);
                    let meta = &mut self.meta[index as usize];
                    if !meta.has(SM_MAC) {
                        meta.peer_mac = peer_mac;
                        meta.flags |= SM_MAC;
                    }
                }
                self.mark_dirty(index);
            }
            None => {
                if !self.is_local(tuple.local_addr) {
                    self.counters.rx_not_ours += 1;
                    return;
                }
                if self.time_wait.is_empty() {
                    // Nothing to look up (and, as SYNs are parked only while the table has
                    // entries, normally nothing parked).
                    self.drain_pending_syns(now);
                    self.segment_for_listener(now, tuple, seg, peer_mac);
                    return;
                }
                if may_defer
                    && seg.control == TcpControl::Syn
                    && seg.ack_number.is_none()
                    && seg.payload.is_empty()
                {
                    if self.pending_syns.len() == self.pending_syns.capacity() {
                        self.drain_pending_syns(now);
                    }
                    self.pending_syns.push(PendingSyn {
                        tuple,
                        seg: TcpRepr {
                            payload: &[],
                            ..*seg
                        },
                        peer_mac,
                    });
                    return;
                }
                self.drain_pending_syns(now);
                // One probe of the TIME-WAIT table (RFC 6191 for a SYN; a retransmitted FIN
                // or a stray segment for a closed connection otherwise).
                if let Some(e) = self.time_wait.get(&tuple).copied()
                    && self.segment_for_time_wait(now, &tuple, e, seg, peer_mac)
                {
                    return;
                }
                self.segment_for_listener(now, tuple, seg, peer_mac);
            }
        }
    }

    /// Processes the parked SYNs, in arrival order, as if each had been processed when it
    /// arrived.
    ///
    /// Why they wait: each new SYN must probe the TIME-WAIT table (RFC 6191), and with
    /// millions of entries that probe is a cache miss, often a TLB miss too, that the SYN's
    /// processing then waits for. Loading the buckets of a whole batch first, in a tight loop,
    /// keeps many of those misses in flight at once.
    ///
    /// Why the result is the same: parking only reorders a SYN after segments that hit live
    /// connections (the only ones processed while SYNs wait). Those touch nothing a SYN reads
    /// or writes (flow entries, SYN queue, accept queue, TIME-WAIT table, stateless replies;
    /// slots are freed only after transmission). Every other segment, every non-TCP frame and
    /// the end of the receive batch drain the parked SYNs first, and each parked SYN is routed
    /// again from the flow table, so a duplicate SYN in the same batch finds the entry the
    /// first one made.
    fn drain_pending_syns(&mut self, now: Instant) {
        if self.pending_syns.is_empty() {
            return;
        }
        let mut pending = core::mem::take(&mut self.pending_syns);
        self.time_wait.prefetch(pending.iter().map(|p| &p.tuple));
        for p in pending.drain(..) {
            self.route_segment(now, p.tuple, &p.seg, p.peer_mac, false);
        }
        self.pending_syns = pending;
    }

    fn process_other(&mut self, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.counters.rx_dropped_malformed += 1;
            return;
        };
        let Ok(eth_repr) = EthernetRepr::parse(&eth) else {
            self.counters.rx_dropped_malformed += 1;
            return;
        };
        if eth_repr.ethertype != EtherType::Arp {
            self.counters.rx_not_ours += 1;
            return;
        }
        let Ok(pkt) = ArpPacket::new_checked(eth.payload()) else {
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

    fn reply(&mut self, tuple: &FourTuple, peer_mac: EthernetAddress, repr: TcpRepr<'static>) {
        if repr.control == TcpControl::Rst {
            self.counters.resets_sent += 1;
        }
        self.push_control(Control::Tcp {
            dst_mac: peer_mac,
            src_ip: tuple.local_addr,
            dst_ip: tuple.remote_addr,
            repr,
        });
    }

    fn reset(&mut self, tuple: &FourTuple, peer_mac: EthernetAddress, seg: &TcpRepr) {
        if seg.control == TcpControl::Rst {
            self.counters.resets_received += 1;
        }
        if let Some(r) = rst_for_unexpected(seg) {
            self.reply(tuple, peer_mac, r);
        }
    }

    fn ts_now(&self, now: Instant, tuple: &FourTuple) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.isn.ts_offset(tuple))
    }

    /// A segment for a 4-tuple in TIME-WAIT (RFC 9293 §3.10.7.4, TIME-WAIT; RFC 6191).
    /// Returns false when the TIME-WAIT entry gave way to a new SYN (which the listener then
    /// handles).
    fn segment_for_time_wait(
        &mut self,
        now: Instant,
        tuple: &FourTuple,
        e: TimeWaitEntry,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) -> bool {
        // RFC 7323 §5.3 R1: a segment whose TSval is older than TS.Recent is an old duplicate.
        // Like Linux (`tcp_timewait_state_process`), it gets an ACK; unlike Linux, it does not
        // restart the 2MSL timer, so replayed old segments cannot keep an entry alive. A RST
        // is never dropped by PAWS; a SYN is judged by RFC 6191 below (which compares the
        // timestamps itself).
        let stale = match (e.ts_recent(), seg.timestamp) {
            (Some(recent), Some(ts)) => (ts.tsval.wrapping_sub(recent) as i32) < 0,
            _ => false,
        };
        let syn = seg.control == TcpControl::Syn && seg.ack_number.is_none();
        if stale && !syn && seg.control != TcpControl::Rst {
            self.counters.paws_drops += 1;
            self.time_wait_ack(now, tuple, &e, peer_mac);
            return true;
        }
        match seg.control {
            TcpControl::Rst => {
                // RFC 9293: a RST in TIME-WAIT closes (deletes) the connection.
                if seg.seq_number == e.rcv_nxt() {
                    self.counters.resets_received += 1;
                    self.time_wait.remove(tuple);
                }
                return true;
            }
            TcpControl::Syn if seg.ack_number.is_none() => {
                if time_wait::syn_may_reuse(&e, seg.seq_number, seg.timestamp) {
                    self.time_wait.remove(tuple);
                    self.counters.time_wait_reuses += 1;
                    return false;
                }
            }
            TcpControl::Fin => {
                // A retransmitted FIN: re-ACK and restart the 2MSL timer.
                if seg.seq_number + seg.payload.len() + 1 == e.rcv_nxt() {
                    self.time_wait.restart(tuple, now + 2 * self.cfg.tcp.msl);
                    self.counters.time_wait_fin_acks += 1;
                }
            }
            _ => {
                // A duplicate pure ACK needs no answer; anything else gets the ACK.
                if seg.payload.is_empty() && seg.seq_number == e.rcv_nxt() {
                    return true;
                }
            }
        }
        self.time_wait_ack(now, tuple, &e, peer_mac);
        true
    }

    /// The ACK a TIME-WAIT entry answers with: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
    fn time_wait_ack(
        &mut self,
        now: Instant,
        tuple: &FourTuple,
        e: &TimeWaitEntry,
        peer_mac: EthernetAddress,
    ) {
        let repr = TcpRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq_number: e.snd_nxt(),
            ack_number: Some(e.rcv_nxt()),
            window_len: e.rcv_wnd(),
            timestamp: e.ts_recent().map(|recent| TcpTimestamp {
                tsval: self.ts_now(now, tuple),
                tsecr: recent,
            }),
            ..TcpRepr::default()
        };
        self.reply(tuple, peer_mac, repr);
    }

    fn find_listener(&self, addr: Ipv4Addr, port: u16) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.port == port && l.addr == addr)
            .or_else(|| {
                self.listeners
                    .iter()
                    .position(|l| l.port == port && l.addr.is_unspecified())
            })
    }

    fn segment_for_listener(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        let Some(li) = self.find_listener(tuple.local_addr, tuple.local_port) else {
            crate::trace::debug!(conn = %tuple, "drop: no listener (RST sent)");
            self.reset(&tuple, peer_mac, seg);
            return;
        };
        match (seg.control, seg.ack_number) {
            (TcpControl::Rst, _) => {}
            (TcpControl::Syn, None) => self.listener_syn(now, li, tuple, seg, peer_mac),
            (TcpControl::Syn, Some(_)) => self.reset(&tuple, peer_mac, seg),
            (_, Some(_)) => self.listener_cookie_ack(now, li, tuple, seg, peer_mac),
            (_, None) => {} // RFC 9293 §3.10.7.2: anything else without ACK is dropped
        }
    }

    fn syn_options(&self, seg: &TcpRepr) -> CookieOptions {
        CookieOptions {
            wscale: if self.cfg.tcp.window_scaling {
                seg.window_scale
            } else {
                None
            },
            sack_permitted: seg.sack_permitted && self.cfg.tcp.sack,
            timestamps: seg.timestamp.is_some() && self.cfg.tcp.timestamps,
        }
    }

    fn listener_syn(
        &mut self,
        now: Instant,
        li: usize,
        tuple: FourTuple,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        self.counters.syns_received += 1;
        let opts = self.syn_options(seg);
        let l = &self.listeners[li];
        let queue_full = l.syn_queue_len >= l.syn_backlog
            || (self.free_syn_recv.is_empty() && self.syn_recv.len() >= self.cfg.max_syn_recv);
        let use_cookie = match self.cfg.syn_cookies {
            SynCookieMode::Always => true,
            SynCookieMode::WhenFull => queue_full,
            SynCookieMode::Off => {
                if queue_full {
                    self.counters.syn_queue_overflows += 1;
                    crate::trace::debug!(conn = %tuple, "drop: SYN queue full");
                    return;
                }
                false
            }
        };
        let peer_mss = seg.max_seg_size.unwrap_or(536);
        if use_cookie {
            let cookie = self
                .cookies
                .generate(now, &tuple, seg.seq_number, peer_mss, opts);
            let mss = syncookie::MSS_TABLE
                .iter()
                .rev()
                .find(|&&m| m <= peer_mss)
                .copied()
                .unwrap_or(syncookie::MSS_TABLE[0]);
            let tsval = cookie
                .tsval_low_bits
                .map(|bits| syncookie::encode_tsval(self.ts_now(now, &tuple), bits));
            let repr = self.synack_repr(
                &tuple,
                cookie.isn,
                seg.seq_number,
                opts,
                tsval.zip(seg.timestamp.map(|t| t.tsval)),
                mss.min(self.cfg.tcp.mss),
            );
            self.counters.syn_cookies_sent += 1;
            self.counters.synacks_sent += 1;
            self.reply(&tuple, peer_mac, repr);
            return;
        }
        // A compact SYN-RECEIVED entry.
        let index = match self.free_syn_recv.pop() {
            Some(i) => i,
            None => {
                self.syn_recv.push(SynRecvEntry {
                    tuple,
                    iss: SeqNumber(0),
                    irs: SeqNumber(0),
                    ts_recent: 0,
                    ts_offset: 0,
                    timer: None,
                    peer_mac,
                    peer_mss: 0,
                    listener: 0,
                    peer_wscale: 0xff,
                    flags: 0,
                    retries: 0,
                });
                self.syn_recv.len() as u32 - 1
            }
        };
        if self.flows.insert(tuple, index | FLOW_SYN_RECV).is_err() {
            self.free_syn_recv.push(index);
            self.counters.conn_table_full += 1;
            return;
        }
        let (iss, ts_offset) = self.take_isn(now, &tuple);
        let rto = self.cfg.tcp.initial_rto;
        let Ok(timer) = self.wheel.schedule(now + rto, index | TOKEN_SYN_RECV) else {
            // Cannot happen (the wheel has a node per entry), but stays defined and counted.
            self.flows.remove(&tuple);
            self.free_syn_recv.push(index);
            self.counters.conn_table_full += 1;
            return;
        };
        let flags = SR_LIVE
            | if opts.sack_permitted { SR_SACK } else { 0 }
            | if opts.timestamps { SR_TS } else { 0 };
        self.syn_recv[index as usize] = SynRecvEntry {
            tuple,
            iss,
            irs: seg.seq_number,
            ts_recent: seg.timestamp.map_or(0, |t| t.tsval),
            ts_offset,
            timer: Some(timer),
            peer_mac,
            peer_mss,
            listener: li as u16,
            peer_wscale: opts.wscale.unwrap_or(0xff),
            flags,
            retries: 0,
        };
        self.listeners[li].syn_queue_len += 1;
        self.counters.syn_recv += 1;
        self.send_synack(now, index);
    }

    fn entry_options(e: &SynRecvEntry) -> CookieOptions {
        CookieOptions {
            wscale: (e.peer_wscale != 0xff).then_some(e.peer_wscale),
            sack_permitted: e.flags & SR_SACK != 0,
            timestamps: e.flags & SR_TS != 0,
        }
    }

    fn send_synack(&mut self, now: Instant, index: u32) {
        let e = self.syn_recv[index as usize];
        let opts = Self::entry_options(&e);
        let ts = opts.timestamps.then(|| {
            let tsval = (now.total_millis() as u32).wrapping_add(e.ts_offset);
            (tsval, e.ts_recent)
        });
        let repr = self.synack_repr(&e.tuple, e.iss, e.irs, opts, ts, self.cfg.tcp.mss);
        self.counters.synacks_sent += 1;
        self.reply(&e.tuple, e.peer_mac, repr);
    }

    /// A SYN-ACK for a SYN with sequence number `irs` (RFC 9293 §3.10.7.2).
    fn synack_repr(
        &self,
        tuple: &FourTuple,
        iss: SeqNumber,
        irs: SeqNumber,
        opts: CookieOptions,
        ts: Option<(u32, u32)>,
        mss: u16,
    ) -> TcpRepr<'static> {
        // Offered only in reply to an offer (RFC 7323 §2.2), by the rule our SYNs use.
        let our_wscale = opts.wscale.and(self.cfg.tcp.offered_wscale());
        TcpRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            control: TcpControl::Syn,
            seq_number: iss,
            ack_number: Some(irs + 1),
            window_len: self.cfg.tcp.recv_buffer.min(65535) as u16,
            window_scale: our_wscale,
            max_seg_size: Some(mss),
            sack_permitted: opts.sack_permitted,
            timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
            ..TcpRepr::default()
        }
    }

    fn remove_syn_recv(&mut self, index: u32) {
        let e = &mut self.syn_recv[index as usize];
        if e.flags & SR_LIVE == 0 {
            return;
        }
        e.flags = 0;
        let (tuple, timer, li) = (e.tuple, e.timer.take(), e.listener as usize);
        if let Some(t) = timer {
            self.wheel.cancel(t);
        }
        self.flows.remove(&tuple);
        self.free_syn_recv.push(index);
        self.listeners[li].syn_queue_len -= 1;
        self.counters.syn_recv -= 1;
    }

    fn syn_recv_timeout(&mut self, now: Instant, index: u32) {
        let e = &mut self.syn_recv[index as usize];
        if e.flags & SR_LIVE == 0 {
            return;
        }
        e.retries += 1;
        if e.retries > self.cfg.tcp.synack_retries {
            self.counters.timeouts += 1;
            self.counters.syn_recv_timeouts += 1;
            self.remove_syn_recv(index);
            return;
        }
        // RFC 6298 §5.5 backoff on the SYN-ACK too.
        let rto = self.cfg.tcp.initial_rto * (1u32 << e.retries.min(16));
        let rto = rto.min(self.cfg.tcp.max_rto);
        match self.wheel.schedule(now + rto, index | TOKEN_SYN_RECV) {
            Ok(t) => self.syn_recv[index as usize].timer = Some(t),
            Err(_) => {
                self.remove_syn_recv(index);
                return;
            }
        }
        self.counters.retransmits += 1;
        self.send_synack(now, index);
    }

    fn segment_for_syn_recv(
        &mut self,
        now: Instant,
        index: u32,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        let e = self.syn_recv[index as usize];
        match (seg.control, seg.ack_number) {
            (TcpControl::Rst, _) => {
                // RFC 9293 §3.10.7.4 / RFC 5961: only an exact RST removes the entry.
                if seg.seq_number == e.irs + 1 {
                    self.counters.resets_received += 1;
                    self.remove_syn_recv(index);
                }
            }
            (TcpControl::Syn, None) => {
                if seg.seq_number == e.irs {
                    // Retransmitted SYN: our SYN-ACK was lost.
                    self.counters.retransmits += 1;
                    self.send_synack(now, index);
                }
            }
            (TcpControl::Syn, Some(_)) => {}
            (_, None) => {}
            (_, Some(ack)) => {
                if e.flags & SR_TS != 0 && !self.final_ack_passes_paws(now, &e, seg, peer_mac) {
                    return;
                }
                if ack != e.iss + 1 {
                    // <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.4, SYN-RECEIVED).
                    self.reset(&e.tuple, peer_mac, seg);
                    return;
                }
                if seg.seq_number != e.irs + 1 {
                    return;
                }
                let li = e.listener as usize;
                if self.listeners[li].accept_queue.len() >= self.listeners[li].accept_backlog {
                    self.counters.accept_queue_overflows += 1;
                    if self.cfg.accept_overflow == AcceptOverflow::Reset {
                        self.remove_syn_recv(index);
                        self.reset(&e.tuple, peer_mac, seg);
                    }
                    // Drop: the entry stays, its SYN-ACK is retried and the client's ACK
                    // to it may find room.
                    return;
                }
                if self.live_connections >= self.cfg.max_connections {
                    // Like a full accept queue with Drop: keep the entry, retry later.
                    self.counters.conn_table_full += 1;
                    return;
                }
                self.remove_syn_recv(index);
                let opts = Self::entry_options(&e);
                let open = PassiveOpen {
                    tuple: e.tuple,
                    iss: e.iss,
                    peer_mss: e.peer_mss,
                    wscale: opts.wscale,
                    sack_permitted: opts.sack_permitted,
                    ts_recent: opts.timestamps.then_some(e.ts_recent),
                    ts_offset: e.ts_offset,
                };
                self.establish_passive(now, li, seg, peer_mac, &open);
            }
        }
    }

    /// RFC 7323 for the final ACK of a handshake that negotiated timestamps: without TSopt
    /// it is dropped (§3.2); with a TSval older than the SYN's (TS.Recent) it is an old
    /// duplicate, dropped and answered with an ACK (§5.3 R1), as Linux's `tcp_check_req`
    /// does. A RST never comes here.
    fn final_ack_passes_paws(
        &mut self,
        now: Instant,
        e: &SynRecvEntry,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) -> bool {
        let Some(ts) = seg.timestamp else {
            self.counters.ts_missing_drops += 1;
            return false;
        };
        if (ts.tsval.wrapping_sub(e.ts_recent) as i32) >= 0 {
            return true;
        }
        self.counters.paws_drops += 1;
        let repr = TcpRepr {
            src_port: e.tuple.local_port,
            dst_port: e.tuple.remote_port,
            seq_number: e.iss + 1,
            ack_number: Some(e.irs + 1),
            window_len: self.cfg.tcp.recv_buffer.min(65535) as u16,
            timestamp: Some(TcpTimestamp {
                tsval: (now.total_millis() as u32).wrapping_add(e.ts_offset),
                tsecr: e.ts_recent,
            }),
            ..TcpRepr::default()
        };
        self.reply(&e.tuple, peer_mac, repr);
        false
    }

    /// An ACK for a listener with no SYN-RECEIVED entry: a SYN cookie, or garbage.
    fn listener_cookie_ack(
        &mut self,
        now: Instant,
        li: usize,
        tuple: FourTuple,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        if self.cfg.syn_cookies == SynCookieMode::Off || seg.control == TcpControl::Syn {
            self.reset(&tuple, peer_mac, seg);
            return;
        }
        let Some(ack) = seg.ack_number else {
            return;
        };
        let client_isn = SeqNumber(seg.seq_number.0.wrapping_sub(1));
        let cookie = SeqNumber(ack.0.wrapping_sub(1));
        let tsecr = seg.timestamp.map(|t| t.tsecr);
        match self
            .cookies
            .validate(now, &tuple, client_isn, cookie, tsecr)
        {
            Err(_) => {
                self.counters.syn_cookies_rejected += 1;
                self.reset(&tuple, peer_mac, seg);
            }
            Ok(res) => {
                if self.listeners[li].accept_queue.len() >= self.listeners[li].accept_backlog {
                    self.counters.accept_queue_overflows += 1;
                    if self.cfg.accept_overflow == AcceptOverflow::Reset {
                        self.reset(&tuple, peer_mac, seg);
                    }
                    return;
                }
                if self.live_connections >= self.cfg.max_connections {
                    // The client retransmits (its data, or its ACK on our next segment):
                    // the cookie stays valid for the rest of its period.
                    self.counters.conn_table_full += 1;
                    return;
                }
                self.counters.syn_cookies_validated += 1;
                // The cookie says whether the SYN negotiated timestamps (its option bits ride
                // in our TSval, which only an ACK with TSopt echoes); the SYN's TSval is gone,
                // so TS.Recent starts at the final ACK's.
                let open = PassiveOpen {
                    tuple,
                    iss: cookie,
                    peer_mss: res.mss,
                    wscale: res.opts.wscale,
                    sack_permitted: res.opts.sack_permitted,
                    ts_recent: seg
                        .timestamp
                        .filter(|_| res.opts.timestamps)
                        .map(|t| t.tsval),
                    ts_offset: self.isn.ts_offset(&tuple),
                };
                self.establish_passive(now, li, seg, peer_mac, &open);
            }
        }
    }

    fn establish_passive(
        &mut self,
        now: Instant,
        li: usize,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        open: &PassiveOpen,
    ) {
        let make = |tcp: &TcpConfig| Connection::from_handshake(tcp, open, seg, now);
        let Ok(h) = self.insert_connection(open.tuple, Some(peer_mac), false, make) else {
            return;
        };
        self.counters.passive_opens += 1;
        // Data or FIN riding on the final ACK.
        if (!seg.payload.is_empty() || seg.control == TcpControl::Fin)
            && let Some(c) = self.conns[h.index as usize].0.as_mut()
        {
            c.handle_segment(now, seg, &mut self.counters);
        }
        self.listeners[li].accept_queue.push_back(h);
    }
}

fn emit_arp(buf: &mut [u8], src: EthernetAddress, dst: EthernetAddress, repr: &ArpRepr) -> usize {
    let len = ethernet::HEADER_LEN + repr.buffer_len();
    if buf.len() < len {
        return 0;
    }
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: EtherType::Arp,
    }
    .emit(&mut frame);
    let mut pkt = ArpPacket::new_unchecked(frame.payload_mut());
    repr.emit(&mut pkt);
    len
}

impl crate::sim::Host for Stack {
    fn poll(&mut self, now: Instant, link: &mut crate::link::memory::MemoryLink) {
        Stack::poll(self, now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        Stack::poll_at(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::{MemoryLink, MemoryLinkConfig};
    use crate::tcp::time_wait::TimeWaitInit;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local_addr: IP,
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: port,
        }
    }

    fn frame(port: u16, control: TcpControl, seq: u32, ack: Option<u32>, tsval: u32) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: port,
            dst_port: 80,
            control,
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len: 1000,
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            timestamp: Some(TcpTimestamp { tsval, tsecr: 0 }),
            ..TcpRepr::default()
        };
        let mut buf = vec![0u8; 128];
        let t = tuple(port);
        let len = emit_tcp_frame(&mut buf, PEER_MAC, MAC, t.remote_addr, IP, &repr).unwrap();
        buf.truncate(len);
        buf
    }

    /// A stack with a listener, a live connection on port 5000 and TIME-WAIT entries for
    /// ports 6000..6004 (RCV.NXT 1000, TS.Recent 500).
    fn stack(now: Instant) -> (Stack, MemoryLink) {
        let cfg = StackConfig {
            mac: MAC,
            ips: vec![IP],
            syn_backlog: 3,
            arp: false,
            ..StackConfig::default()
        };
        let mut s = Stack::new(cfg, now);
        s.add_neighbor(Ipv4Addr::new(10, 0, 0, 2), PEER_MAC);
        s.listen(SocketAddrV4::new(IP, 80)).unwrap();
        let mut link = MemoryLink::new(MemoryLinkConfig::default());
        for port in 6000..6004 {
            s.insert_time_wait(
                now,
                TimeWaitInit {
                    tuple: tuple(port),
                    snd_nxt: SeqNumber(77),
                    rcv_nxt: SeqNumber(1000),
                    ts_recent: Some(500),
                    rcv_wnd: 100,
                    rcv_wscale: 0,
                },
            );
        }
        // An established connection on port 5000.
        link.push_rx(&frame(5000, TcpControl::Syn, 10, None, 1));
        s.poll(now, &mut link);
        let mut iss = 0;
        link.drain_tx(|f| iss = crate::wire::parse_tcp_frame(f).unwrap().tcp.seq_number.0);
        link.push_rx(&frame(5000, TcpControl::None, 11, Some(iss + 1), 2));
        s.poll(now, &mut link);
        link.drain_tx(|_| {});
        assert_eq!(s.connection_count(), 1);
        (s, link)
    }

    /// Parked SYNs: a whole receive batch gives the same replies, in the same order, and the
    /// same counters as the same frames received one per poll (where nothing is parked
    /// across frames).
    #[test]
    fn parked_syns_match_one_frame_per_poll() {
        let now = Instant::from_secs(10);
        let batch = [
            frame(7000, TcpControl::Syn, 100, None, 600), // new tuple
            frame(6000, TcpControl::Syn, 5000, None, 600), // TIME-WAIT, newer TS: reuse
            frame(5000, TcpControl::None, 11, None, 3),   // live connection (no ACK: dropped)
            frame(7000, TcpControl::Syn, 100, None, 600), // duplicate: SYN-RECEIVED now
            frame(6001, TcpControl::Syn, 5, None, 400),   // TIME-WAIT, older TS: ACK
            frame(7001, TcpControl::Syn, 200, None, 600), // third SYN-RECEIVED entry
            frame(7002, TcpControl::Syn, 300, None, 600), // queue full: cookie
            frame(6002, TcpControl::Fin, 999, Some(78), 600), // retransmitted FIN: ACK
            frame(7000, TcpControl::Rst, 101, None, 600), // resets the entry
            frame(7003, TcpControl::Syn, 400, None, 600), // room again
            frame(6003, TcpControl::Syn, 5, None, 600),   // newer TS: reuse, parked at the end
        ];
        let (mut one, mut link1) = stack(now);
        let (mut all, mut link2) = stack(now);
        let mut out1 = Vec::new();
        for f in &batch {
            link1.push_rx(f);
            one.poll(now, &mut link1);
            link1.drain_tx(|f| out1.push(crate::wire::describe_frame(f)));
        }
        for f in &batch {
            link2.push_rx(f);
        }
        all.poll(now, &mut link2);
        let mut out2 = Vec::new();
        link2.drain_tx(|f| out2.push(crate::wire::describe_frame(f)));
        assert_eq!(out1, out2);
        assert_eq!(one.counters(), all.counters());
        let c = all.counters();
        assert_eq!(c.time_wait_reuses, 2);
        assert_eq!(c.syn_cookies_sent, 2); // 7002 and 6003 find the SYN queue full
        assert_eq!(c.time_wait_fin_acks, 1);
        assert!(all.pending_syns.is_empty());
        // Two SYN-ACKs for 7000 (the duplicate is answered as a retransmission), TIME-WAIT
        // ACKs for 6001 and 6002, SYN-ACKs for the rest.
        assert_eq!(out2.len(), 9, "{out2:#?}");
    }
}
