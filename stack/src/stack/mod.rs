//! The per-core stack: every connection of one core, its listeners, SYN queue, TIME-WAIT table,
//! timers and counters, over one [`Link`]. Sans-I/O like the rest of the core: it reads no
//! clock (every call takes `now`) and does no I/O except through the `Link` it is handed.
//!
//! # Call order
//! A driver (the AF_XDP engine, the simulator, a benchmark) calls [`Stack::poll`] whenever
//! frames may have arrived or `now >= poll_at()`. One poll is three stages, each in its own
//! file, in this order:
//! 1. **ingress** ([`Stack::receive`]): up to `rx_batch` frames, each parsed and routed in
//!    place (`demux.rs`, RFC 9293 §3.10.7) to its connection (`slots.rs`), its SYN-RECEIVED
//!    entry or listener (`passive.rs`), its TIME-WAIT entry, or ARP (`neighbor.rs`). SYNs
//!    that miss the flow table while the TIME-WAIT table has entries are parked and routed
//!    in one go (`Stack::drain_pending_syns`): by the ingress loop, before any frame that is
//!    not a live connection's segment, and at the end of the batch. Nothing else drains them;
//! 2. **timers**: retransmission, SYN-ACK retries, ARP retries, TIME-WAIT expiry; then the
//!    events of every touched connection go to the application's queue (the one place that
//!    queue is filled is `Stack::emit_events` in `slots.rs`);
//! 3. **egress** ([`Stack::flush`], `egress.rs`): control replies (RST, SYN-ACK, TIME-WAIT ACK,
//!    ARP) first, then what every touched connection has to send, each touched slot settled
//!    afterwards (gauges, timer, TIME-WAIT hand-over, freeing); the link is flushed once.
//!
//! The application uses handles: [`Stack::listen`], [`Stack::accept`], [`Stack::connect`],
//! [`Stack::send`], [`Stack::recv`], [`Stack::shutdown`], [`Stack::close`], [`Stack::abort`],
//! and reads [`Stack::poll_event`] after each poll. Operations take effect on the next poll
//! (or [`Stack::flush`]).
//!
//! A driver may split a poll in two: [`Stack::receive`] (stages 1 and 2), then the
//! application, then [`Stack::flush`] (stage 3). What the application does in between rides on
//! the same segments: a response on the ACK of the request, a FIN on the ACK of the peer's FIN
//! (one FIN+ACK instead of an ACK and a FIN). Events of the received segments are in
//! [`Stack::poll_event`] when `receive` returns; a few (e.g. `Closed` once a RST went out)
//! only appear after `flush`, for the next round.
//!
//! # Files
//! - `mod.rs`: the types, the configuration, the [`Stack`] struct, getters and the
//!   poll loop (ingress → timers → egress);
//! - `api.rs`: the application API (listen/accept/connect, send/recv/close, options);
//! - `demux.rs`: frame parse and routing (flow table → `Route`), parked SYNs, the
//!   TIME-WAIT table's answers;
//! - `passive.rs`: listeners, the SYN queue of compact SYN-RECEIVED entries, SYN cookies, and
//!   the final ACK that makes a connection;
//! - `slots.rs`: the connection slab, orphans, `settle`, and event emission;
//! - `egress.rs`: transmission of control replies and of connections;
//! - `neighbor.rs`: the neighbour cache, ARP requests, retries and give-up, ARP input;
//! - `icmp.rs`: ICMP errors matched to connections (path MTU, soft errors, RFC 5927);
//! - `family.rs`: [`StackFamily`], what differs between the IPv4 stack (`Stack`, i.e.
//!   `Stack<Ipv4Addr>`) and the IPv6 one (`Stack<Ipv6Addr>`): frame parse/emit, the
//!   neighbour protocol, ICMP input, the address list; one stack per family per core;
//! - `nd6.rs`: the IPv6 stack's ICMPv6 input (Neighbor Discovery, Packet Too Big), address
//!   resolution through `nd.rs`, and rejected extension headers counted by type.
//!
//! # Structures
//! - connections live in a slab indexed by the flow table (4-tuple → slot), split hot/cold
//!   (see "Memory layout");
//! - half-open passive connections are compact [`SynRecvEntry`]s (≤ 64 bytes), not full
//!   control blocks, and become connections when the final ACK arrives; when the SYN queue is
//!   full the listener answers with SYN cookies (RFC 4987 §3.6);
//! - a connection entering TIME-WAIT moves into the compact TIME-WAIT table (32 bytes);
//! - every deadline lives in one timer wheel. A flow-table value and a timer token name a
//!   slot or a SYN-RECEIVED entry (`Owner`, one `u32`). A slot's deadline set by `settle`
//!   is linked into the wheel only by the next receive's timer stage, and not at all when
//!   the slot is freed or its deadline changes first (`link_pending_timers`); the first
//!   SYN-ACK retransmission deadline of a SYN-RECEIVED entry waits in a FIFO
//!   (`syn_fifo.rs`).
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

use crate::link::Link;
use crate::tcp::connection::CompactOpen;
use crate::tcp::flow_table::{FlowHash, FlowTable};
use crate::tcp::ports::{EphemeralPorts, PortsExhausted};
use crate::tcp::rss::RssSteering;
use crate::tcp::syncookie::SynCookies;
use crate::tcp::time_wait::{self, InsertOutcome, TimeWaitInit, TimeWaitTable};
use crate::tcp::timer_wheel::{TimerId, TimerWheel};
use crate::tcp::{
    Address, ConnTemplate, Connection, Counters, FourTuple, IsnGenerator, State, TcpConfig,
    TcpError,
};
use crate::time::{Duration, Instant};
use crate::wire::arp::ArpRepr;
use crate::wire::icmpv6::Icmpv6Repr;
use crate::wire::{EthernetAddress, Ipv4Addr, Ipv6Addr, SeqNumber, SynAckRepr, TcpRepr, VlanId};
use syn_fifo::{SynFifo, SynTimer};

mod api;
mod demux;
mod egress;
mod family;
pub use family::{StackFamily, is_ipv6_frame};
mod icmp;
pub mod nd;
mod nd6;
mod neighbor;
pub use neighbor::{NEIGHBOR_LIFETIME, NeighborUpdate};
mod passive;
mod slots;
mod syn_fifo;
#[cfg(test)]
mod tests;

pub use self::icmp::{IcmpError, frag_needed_mtu};

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
    /// Our IPv6 addresses, for a `Stack<Ipv6Addr>` (the first is the default source address
    /// of active opens; an IPv4 stack ignores them). Default none.
    pub ips6: Vec<Ipv6Addr>,
    /// Per-connection TCP settings. `tcp.mss` is the link's IPv4 MSS (MTU − 40); an IPv6
    /// stack uses 20 bytes less (MTU − 60, `Address::mss_for_mtu`).
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
    /// The 802.1Q VLAN we live on: only frames tagged with this VID are ours, and everything
    /// we send (TCP, ARP) carries the tag (priority 0). Untagged and other-VID frames are
    /// dropped and counted (`rx_vlan_mismatch`), ARP included: our addresses belong to the
    /// VLAN, and answering ARP on the untagged network would draw traffic we then drop.
    /// Default `None`: untagged frames only (and VID 0 priority tags); tagged frames are
    /// counted and dropped. Costs one compare per received frame either way. Tagged frames
    /// are 4 bytes longer: `tcp.mss` must leave room for the tag in the link's largest
    /// frame (the AF_XDP engine lowers it by 4).
    pub vlan: Option<VlanId>,
    /// Answer ARP requests for our addresses and resolve neighbours with ARP ourselves; in
    /// an IPv6 stack, resolve them with Neighbor Discovery (solicitations for our addresses
    /// are answered either way). Default true (the simulator needs it; on AF_XDP the kernel
    /// keeps answering ARP).
    pub arp: bool,
    /// Secret for ISNs, timestamps offsets, cookies and hash seeds. Fill from a CSPRNG.
    pub secret: [u8; 32],
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            mac: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
            ips: vec![Ipv4Addr::new(10, 0, 0, 1)],
            ips6: Vec::new(),
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
            vlan: None,
            arp: true,
            secret: [0x5a; 32],
        }
    }
}

/// A connection, as the application sees it. Stale handles (of a finished connection whose
/// slot was reused) are detected by a generation number, whose top bit says which family's
/// stack the connection lives in ([`ConnHandle::is_v6`]): an engine core with both stacks
/// dispatches on it.
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

    /// A connection of an IPv6 stack (`Stack<Ipv6Addr>`). Indices are per stack: an IPv4
    /// and an IPv6 connection may have the same [`ConnHandle::index`].
    pub fn is_v6(self) -> bool {
        self.generation & family::HANDLE_V6 != 0
    }

    /// The same connection with its index moved up by `by`: a driver that runs two stacks
    /// (the engine's IPv4 and IPv6 stacks of one core) numbers the second's connections after
    /// the first's, so that one handle type names either and indexes stay distinct.
    #[doc(hidden)]
    pub fn shifted(self, by: u32) -> ConnHandle {
        ConnHandle {
            index: self.index.wrapping_add(by),
            generation: self.generation,
        }
    }

    /// The inverse of [`ConnHandle::shifted`]; `None` when the index is below `by`.
    #[doc(hidden)]
    pub fn unshifted(self, by: u32) -> Option<ConnHandle> {
        Some(ConnHandle {
            index: self.index.checked_sub(by)?,
            generation: self.generation,
        })
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
    /// The same, for an IPv6 destination.
    PortsExhausted6(PortsExhausted<Ipv6Addr>),
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
            StackError::PortsExhausted6(e) => write!(f, "{e}"),
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
/// create the connection (`open`, copied whole), and what a SYN-ACK retransmission needs.
/// ≤ 64 bytes.
#[derive(Debug, Clone, Copy)]
pub struct SynRecvEntry<A: Address = Ipv4Addr> {
    /// The tuple, ISN, timestamp offset (keyed hash, computed once per SYN) and the SYN's
    /// options: the input of `Connection::reinit_passive`.
    open: CompactOpen<A>,
    irs: SeqNumber,
    timer: SynTimer,
    peer_mac: EthernetAddress,
    listener: u16,
    /// `SR_LIVE`.
    flags: u8,
    retries: u8,
}

const SR_LIVE: u8 = 4;

const _: () = assert!(core::mem::size_of::<SynRecvEntry>() <= 64);
const _: () = assert!(core::mem::size_of::<SynRecvEntry<Ipv6Addr>>() <= 96);
/// What a flow-table value and a timer token name: a connection slot or a SYN-RECEIVED
/// entry. Stored as one `u32` whose top bit is the tag, so the flow table and the timer
/// wheel keep their 4-byte values; only [`Owner::encode`] and [`Owner::decode`] know the bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A slot of the connection slab.
    Slot(u32),
    /// An entry of `Stack::syn_recv`.
    SynRecv(u32),
}

impl Owner {
    const SYN_RECV: u32 = 1 << 31;

    #[inline]
    fn encode(self) -> u32 {
        match self {
            Owner::Slot(index) => index,
            Owner::SynRecv(index) => index | Self::SYN_RECV,
        }
    }

    #[inline]
    fn decode(value: u32) -> Owner {
        if value & Self::SYN_RECV != 0 {
            Owner::SynRecv(value & !Self::SYN_RECV)
        } else {
            Owner::Slot(value)
        }
    }
}

struct Listener<A> {
    addr: A,
    port: u16,
    syn_backlog: usize,
    accept_backlog: usize,
    syn_queue_len: usize,
    accept_queue: api::Fifo<ConnHandle>,
    /// `SynCookieMode::WhenFull`: the last SYN found the SYN queue full and got a cookie.
    /// Flips (traced and counted) when the queue fills up or has room again.
    sending_cookies: bool,
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
/// `timer_at` is a deadline not linked into the wheel yet: the slot is on
/// `timers_pending` (`Stack::link_pending_timers`).
const SM_TIMER_PENDING: u8 = 32;
/// On the dirty list, its deadline taken off `timers_pending` (and `timer_at` cleared) by
/// `link_pending_timers` for the coming `settle` to queue again (or, if a receive comes
/// first, `Stack::requeue_deferred`).
const SM_TIMER_DEFERRED: u8 = 64;

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
///
/// A cell that has held a connection keeps its block after the connection ends
/// ([`Connection::vacate`]: buffers returned, the block marked vacant), so that the next
/// passive open of the slot rewrites it field by field ([`Connection::reinit_passive`]).
/// `None` only before a slot's first use. Read it through [`ConnCell::get`] /
/// [`ConnCell::get_mut`], which see a vacant block as no connection.
#[repr(align(64))]
struct ConnCell<A: Address>(Option<Connection<A>>);

impl<A: Address> ConnCell<A> {
    /// The connection in this slot, if one lives there.
    #[inline(always)]
    fn get(&self) -> Option<&Connection<A>> {
        self.0.as_ref().filter(|c| !c.is_vacant())
    }
    /// The connection in this slot, if one lives there.
    #[inline(always)]
    fn get_mut(&mut self) -> Option<&mut Connection<A>> {
        self.0.as_mut().filter(|c| !c.is_vacant())
    }
    /// [`get_mut`](Self::get_mut) for a slot its `SlotMeta` says is live (`SM_LIVE` is set
    /// with the block and cleared when it is vacated): no vacancy test.
    #[inline(always)]
    fn get_live_mut(&mut self) -> Option<&mut Connection<A>> {
        debug_assert!(self.0.as_ref().is_none_or(|c| !c.is_vacant()));
        self.0.as_mut()
    }
}

/// Doubly-linked orphan list through slot indices (oldest at the head): O(1) insert and
/// removal, no allocation, no stale entries. `NIL` ends the list.
#[derive(Clone, Copy)]
struct OrphanLink {
    prev: u32,
    next: u32,
}

/// The orphan list: one link per slot, oldest orphan at `head`, newest at `tail`.
struct OrphanList {
    links: Vec<OrphanLink>,
    head: u32,
    tail: u32,
}

impl OrphanList {
    /// Appends slot `index` (newest at the tail).
    fn push_back(&mut self, index: u32) {
        self.links[index as usize] = OrphanLink {
            prev: self.tail,
            next: NIL,
        };
        match self.tail {
            NIL => self.head = index,
            t => self.links[t as usize].next = index,
        }
        self.tail = index;
    }

    /// Takes slot `index`, which is on the list, off it.
    #[inline(always)]
    fn unlink(&mut self, index: u32) {
        let OrphanLink { prev, next } = self.links[index as usize];
        match prev {
            NIL => self.head = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.links[n as usize].prev = prev,
        }
    }
}

const NIL: u32 = u32::MAX;

/// A SYN parked until its TIME-WAIT lookup (see `Stack::drain_pending_syns`), with its
/// flow-table hash from parking (also its TIME-WAIT hash: the two tables share a seed).
struct PendingSyn<A: Address> {
    tuple: FourTuple<A>,
    seg: TcpRepr<'static>,
    peer_mac: EthernetAddress,
    hash: FlowHash,
}

/// SYNs parked at most; one more drains them first.
const PENDING_SYNS: usize = 64;

/// A stateless reply waiting for a TX frame.
#[derive(Clone, Copy)]
enum Control<A> {
    Tcp {
        dst_mac: EthernetAddress,
        src_ip: A,
        dst_ip: A,
        repr: TcpRepr<'static>,
    },
    /// A listener's SYN-ACK, compact (`SynAckRepr`, 32 bytes against `TcpRepr`'s 100).
    SynAck {
        dst_mac: EthernetAddress,
        src_ip: A,
        dst_ip: A,
        repr: SynAckRepr,
    },
    Arp {
        dst_mac: EthernetAddress,
        repr: ArpRepr,
    },
    /// Neighbor Solicitation or Advertisement (IPv6 stack only).
    Nd {
        dst_mac: EthernetAddress,
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        repr: Icmpv6Repr<'static>,
    },
}

/// Bound on queued stateless replies per poll; beyond it they are dropped (and counted as
/// `tx_no_buffer`), which a SYN flood must not turn into unbounded memory.
pub const MAX_CONTROL: usize = 4096;

/// TIME-WAIT entries expired per poll at most; the rest wait for the next poll (`poll_at`
/// says it is due at once), so one poll never stalls on a mass expiry.
const TIME_WAIT_EXPIRY_BUDGET: usize = 4096;

/// The tick of the timer wheel and of the SYN-ACK deadline FIFO (`syn_fifo.rs`), which
/// must round deadlines alike.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// The per-core TCP stack of one address family (`Ipv4Addr`, the default, or `Ipv6Addr`:
/// one stack per family per core, see `family.rs`). See the module docs.
pub struct Stack<A: StackFamily = Ipv4Addr> {
    cfg: StackConfig,
    now: Instant,
    /// Hot per-slot metadata; `conns`, `orphans.links` and `flow_hashes` are indexed alike.
    meta: Vec<SlotMeta>,
    conns: Vec<ConnCell<A>>,
    orphans: OrphanList,
    /// The slot's tuple's flow-table hash (`FlowTable::hash_of`), stored at insertion:
    /// freeing the slot (`transmit_and_settle`) removes the flow entry without hashing the
    /// tuple again. Beside the slab, not in `ConnCell`: a control block fills its 64-byte
    /// lines exactly, 8 more bytes
    /// would cost a line per slot. Meaningless for a free slot.
    flow_hashes: Vec<FlowHash>,
    free_slots: Vec<u32>,
    flows: FlowTable<A>,
    syn_recv: Vec<SynRecvEntry<A>>,
    free_syn_recv: Vec<u32>,
    listeners: Vec<Listener<A>>,
    time_wait: TimeWaitTable<A>,
    wheel: TimerWheel,
    /// First SYN-ACK retransmission deadlines (`syn_fifo.rs`).
    syn_fifo: SynFifo,
    fired: Vec<u32>,
    /// Slots whose deadline `settle` has not linked into the wheel yet (flag
    /// `SM_TIMER_PENDING`; entries of slots freed since are stale and skipped). Preallocated;
    /// when full, `settle` links at once.
    timers_pending: Vec<u32>,
    /// Some slot on the dirty list has SM_TIMER_DEFERRED (cleared by a complete dispatch).
    timers_deferred: bool,
    /// The union of the flags of the slots on the dirty list, OR-ed in as each is pushed
    /// (and SM_ACCEPTED by `accept` for a slot already on it); emptied by a complete
    /// dispatch. Without SM_ACCEPTED no slot on the list is accepted, and `collect_events`
    /// has nothing to move (one test instead of a visit per dirty slot).
    dirty_flags: u8,
    cookies: SynCookies,
    isn: IsnGenerator,
    ports: EphemeralPorts,
    dirty: Vec<u32>,
    /// SYNs waiting for a batched TIME-WAIT lookup; empty outside `receive`.
    pending_syns: Vec<PendingSyn<A>>,
    /// `cfg.ips`, sorted: a load generator's stack may own hundreds of source addresses, and
    /// segments that miss the flow table must be checked against all of them.
    local_ips: Vec<A>,
    /// The stateless replies for the next dispatch, in order: a `Fifo` (a push is a vector
    /// push, no ring arithmetic), read in place and emptied whole by a dispatch; one that
    /// stops on a full TX ring marks those sent read.
    control: api::Fifo<Control<A>>,
    events: api::EventQueue,
    neighbors: HashMap<A, neighbor::NeighborEntry>,
    /// ARP requests in progress: when the last one went out and how many were sent.
    arp_requested: HashMap<A, (Instant, u8)>,
    /// IPv6 stack: Neighbor Discovery's cache (states and timers, `nd6.rs`); empty in an
    /// IPv4 stack.
    nd: nd::NeighborCache6,
    /// Scratch for the ND cache's outputs.
    nd_out: Vec<nd::NdOutput>,
    /// Neighbours ND gave up on in this poll's timer stage.
    nd_unreachable: Vec<Ipv6Addr>,
    /// When connections waiting for ARP get another look (a retry or a give-up).
    arp_retry_at: Option<Instant>,
    waiting_arp: Vec<u32>,
    /// Soft errors of finished active opens, for `soft_error` (`icmp.rs`).
    soft_errors: VecDeque<(ConnHandle, crate::tcp::SoftError)>,
    counters: Counters,
    live_connections: usize,
    /// A one-shot ISN override (test support, see `set_next_isn`).
    #[cfg(feature = "test-hooks")]
    next_isn: Option<(SeqNumber, u32)>,
    /// `cfg.tcp` and what derives from it alone, computed once: what each new control block
    /// starts from (`insert_connection`). `cfg` never changes after `with_family`.
    conn_template: ConnTemplate,
}

fn seed_u64(secret: &[u8; 32], i: usize) -> u64 {
    u64::from_le_bytes(secret[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
}

impl Stack {
    /// An IPv4 stack.
    pub fn new(cfg: StackConfig, now: Instant) -> Stack {
        Self::with_family(cfg, now)
    }
}

impl Stack<Ipv6Addr> {
    /// An IPv6 stack (its addresses are `cfg.ips6`).
    pub fn new_v6(cfg: StackConfig, now: Instant) -> Stack<Ipv6Addr> {
        Self::with_family(cfg, now)
    }
}

impl<A: StackFamily> Stack<A> {
    /// A stack of family `A` (what `new` and `new_v6` call; for code generic over the family).
    pub fn with_family(mut cfg: StackConfig, now: Instant) -> Stack<A> {
        cfg.tcp.mss = A::mss_for_mtu(cfg.tcp.mss.saturating_add(40));
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
            orphans: OrphanList {
                links: Vec::with_capacity(slots),
                head: NIL,
                tail: NIL,
            },
            flow_hashes: Vec::with_capacity(slots),
            free_slots: Vec::with_capacity(slots),
            flows: A::flow_table(
                cfg.max_connections + cfg.max_syn_recv,
                seed_u64(&cfg.secret, 0),
            ),
            syn_recv: Vec::with_capacity(cfg.max_syn_recv),
            free_syn_recv: Vec::with_capacity(cfg.max_syn_recv),
            listeners: Vec::new(),
            // The flow table's seed: a tuple's `FlowHash` is then its TIME-WAIT hash too
            // (`TwHash::from_flow`), and a segment that misses the flow table probes the
            // TIME-WAIT table without hashing its tuple again.
            time_wait: A::time_wait_table(cfg.time_wait_capacity.max(1), seed_u64(&cfg.secret, 0)),
            wheel: TimerWheel::new(timers, TIMER_TICK, now),
            syn_fifo: SynFifo::new(cfg.max_syn_recv, cfg.tcp.initial_rto),
            fired: Vec::with_capacity(1024),
            timers_pending: Vec::with_capacity(slots),
            timers_deferred: false,
            dirty_flags: 0,
            cookies: SynCookies::new(cfg.secret, now),
            isn: IsnGenerator::new(key),
            ports: EphemeralPorts::new(cfg.ephemeral_ports.clone(), seed_u64(&cfg.secret, 2)),
            dirty: Vec::with_capacity(1024),
            pending_syns: Vec::with_capacity(PENDING_SYNS),
            local_ips: {
                let mut ips = A::local_ips(&cfg).to_vec();
                ips.sort_unstable();
                ips.dedup();
                ips
            },
            control: api::Fifo::with_capacity(256),
            events: api::EventQueue::with_capacity(1024),
            neighbors: HashMap::new(),
            arp_requested: HashMap::new(),
            nd: nd::NeighborCache6::default(),
            nd_out: Vec::new(),
            nd_unreachable: Vec::new(),
            arp_retry_at: None,
            waiting_arp: Vec::new(),
            soft_errors: VecDeque::with_capacity(icmp::SOFT_ERRORS_KEPT),
            counters: Counters::default(),
            live_connections: 0,
            #[cfg(feature = "test-hooks")]
            next_isn: None,
            conn_template: ConnTemplate::new(&cfg.tcp),
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
    pub fn connection(&self, h: ConnHandle) -> Option<&Connection<A>> {
        let meta = self.meta.get(h.index as usize)?;
        if meta.generation != h.generation {
            return None;
        }
        self.conns[h.index as usize].get()
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

    pub fn time_wait_table(&self) -> &TimeWaitTable<A> {
        &self.time_wait
    }

    /// Whether `tuple` (our side local) is in the TIME-WAIT table.
    pub fn in_time_wait(&self, tuple: &FourTuple<A>) -> bool {
        self.time_wait.get(tuple).is_some()
    }

    /// The state of whatever holds `tuple` (our side local), as `ss` would show it: a
    /// connection's state, `SynReceived` for a SYN queue entry, `TimeWait` for a TIME-WAIT
    /// entry; `None` when nothing does.
    pub fn state_of(&self, tuple: &FourTuple<A>) -> Option<State> {
        match self.flows.get(tuple).map(Owner::decode) {
            Some(Owner::SynRecv(_)) => Some(State::SynReceived),
            Some(Owner::Slot(index)) => self.conns[index as usize].get().map(Connection::state),
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

    #[inline]
    fn take_isn(&mut self, now: Instant, tuple: &FourTuple<A>) -> (SeqNumber, u32) {
        // The override exists only in test builds: a production SYN does not test it.
        #[cfg(feature = "test-hooks")]
        if let Some(v) = self.next_isn.take() {
            return v;
        }
        self.isn.isn_and_ts_offset(now, tuple)
    }

    /// Puts a 4-tuple into TIME-WAIT as if its connection had just finished there: the entry
    /// lasts 2×MSL from `now`, answers retransmitted FINs and judges new SYNs like any other
    /// (counted in `time_wait_inserts`). For restoring state and for preloading the table in
    /// tests and benchmarks; `init.tuple` must not be a live connection.
    pub fn insert_time_wait(&mut self, now: Instant, init: TimeWaitInit<A>) -> InsertOutcome {
        self.counters.time_wait_inserts += 1;
        self.time_wait.insert(now, init, now + 2 * self.cfg.tcp.msl)
    }

    /// Entries in a listener's SYN queue (compact SYN-RECEIVED entries).
    pub fn syn_queue_len(&self, l: ListenerId) -> usize {
        self.listeners
            .get(l.0 as usize)
            .map_or(0, |l| l.syn_queue_len)
    }

    /// Teaches the stack a neighbour's MAC for good (a static entry, never aged; for set-up
    /// code and tests). Entries that age: [`Stack::update_neighbor`].
    pub fn add_neighbor(&mut self, ip: A, mac: EthernetAddress) {
        self.learn(ip, mac, None);
    }

    /// The cached MAC for `ip`, unless its entry expired (see `neighbor.rs`).
    pub fn neighbor(&self, ip: A) -> Option<EthernetAddress> {
        self.cached_neighbor(self.now, ip)
    }

    /// When `poll` must next be called even if no frame arrives.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.dirty.is_empty() || self.control.len() > 0 {
            return Some(self.now);
        }
        [
            self.wheel.next_deadline(),
            self.pending_timer_deadline(),
            self.syn_fifo.next_deadline(),
            self.time_wait.next_expiry(),
            self.arp_retry_at,
            A::next_neighbor_protocol_timer(self),
        ]
        .into_iter()
        .flatten()
        .min()
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
        // 1. Ingress (demux.rs); the SYNs still parked at the end of the batch go last.
        let received = link.receive(budget, |frame| A::ingress(self, now, frame));
        self.drain_pending_syns(now);
        // 2. Timers, then the events of every touched connection (slots.rs).
        self.run_timers(now);
        self.collect_events();
        received
    }

    /// Ingress of one frame, for a driver that sorts received frames itself (the engine
    /// hands a dual-stack core's IPv6 frames to its IPv6 stack this way). Nothing else runs:
    /// end the batch with [`Stack::finish_receive`].
    pub fn receive_frame(&mut self, now: Instant, frame: &[u8]) {
        self.now = now;
        A::ingress(self, now, frame);
    }

    /// The rest of [`Stack::receive`] after frames given by [`Stack::receive_frame`]: parked
    /// SYNs, due timers, events.
    pub fn finish_receive(&mut self, now: Instant) {
        self.now = now;
        self.drain_pending_syns(now);
        self.run_timers(now);
        self.collect_events();
    }

    /// Transmits what application calls queued, without receiving.
    pub fn flush<L: Link>(&mut self, now: Instant, link: &mut L) {
        self.now = now;
        // 3. Egress (egress.rs).
        self.dispatch(now, link);
        link.flush();
    }

    fn run_timers(&mut self, now: Instant) {
        self.neighbor_timers(now);
        A::neighbor_protocol_timers(self, now);
        self.run_syn_fifo(now);
        self.link_pending_timers(now);
        let mut fired = core::mem::take(&mut self.fired);
        fired.clear();
        self.wheel.expire(now, |token| fired.push(token));
        for &token in &fired {
            let token = match Owner::decode(token) {
                Owner::SynRecv(index) => {
                    self.syn_recv_timeout(now, index);
                    continue;
                }
                Owner::Slot(index) => index,
            };
            let meta = &mut self.meta[token as usize];
            meta.timer = None;
            meta.timer_at = NO_TIMER;
            if let Some(c) = self.conns[token as usize].get_mut() {
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
}

impl<A: StackFamily> crate::sim::Host for Stack<A> {
    fn poll(&mut self, now: Instant, link: &mut crate::link::memory::MemoryLink) {
        Stack::poll(self, now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        Stack::poll_at(self)
    }
}
