//! One TCP connection as a sans-I/O state machine (RFC 9293 §3.3.2, §3.10).
//!
//! # Call order
//! A driver (the per-core stack, a test, the simulator) owns each [`Connection`] and calls:
//! - [`Connection::handle_segment`] for every segment of this 4-tuple (input);
//! - [`Connection::handle_timeout`] when `now >= poll_at()`;
//! - [`Connection::poll_transmit`] until it returns `None`, emitting each segment (output);
//! - [`Connection::poll_event`] until `None`, delivering events to the application.
//!
//! The application side is [`Connection::send`], [`Connection::recv`],
//! [`Connection::shutdown`], [`Connection::close`] and [`Connection::abort`].
//!
//! # Reliability
//! - RTO per RFC 6298 ([`RttEstimator`]): samples from timestamps (RFC 7323 §4) or one timed
//!   segment at a time, never from a retransmission (Karn); exponential backoff; retry limits
//!   end the connection with [`Event::TimedOut`].
//! - Loss recovery: fast retransmit on the third duplicate ACK; NewReno partial ACKs (RFC
//!   6582) without SACK; with SACK, a scoreboard ([`super::scoreboard`]) and RFC 6675 recovery
//!   (`IsLost`, pipe, NextSeg). SACKed bytes are never retransmitted (after an RTO too; only a
//!   second consecutive RTO assumes the receiver reneged, RFC 2018 §8, and forgets them).
//! - Congestion control behind [`CongestionControl`] (CUBIC by default, or NewReno).
//! - Receiving: out-of-order reassembly ([`super::assembler`]), SACK blocks (RFC 2018),
//!   delayed ACKs (RFC 1122 §4.2.3.2, RFC 5681 §4.2) with quick ACKs at connection start.
//! - Flow control: window scaling, SWS avoidance on both sides (RFC 9293 §3.8.6.2), a right
//!   edge that never moves left, window updates when the application reads, zero-window
//!   probes on a backed-off persist timer.
//! - Keepalive (RFC 1122 §4.2.3.6, off by default) and Nagle (RFC 896, off by default).
//!
//! Nothing here allocates per segment. The send and receive buffers take their memory from
//! a per-thread pool on first use; the reassembly ranges and the SACK scoreboard blocks live
//! out of line, taken from small per-thread pools only on the first out-of-order segment or
//! SACK block (a slow path; allocation happens only when a pool is empty) and returned when
//! the connection is dropped. This keeps the control block small: handshake and teardown
//! touch few cache lines.
//!
//! # Files
//! - `mod.rs`: the states, events and errors, the [`Connection`] struct, its constructors
//!   ([`Connection::connect`], [`Connection::from_handshake`]), getters, knobs and the
//!   application side;
//! - `config.rs`: [`TcpConfig`] and [`Keepalive`];
//! - `rtt.rs`: [`RttEstimator`] (RFC 6298);
//! - `state.rs`: state transitions and the window, flight and timestamp helpers they share;
//! - `input.rs`: [`Connection::handle_segment`] in RFC 9293 §3.10.7 order, ACK processing,
//!   loss recovery entry, receiving text and FIN, the persist timer's arming;
//! - `timers.rs`: [`Connection::handle_timeout`] (retransmission, persist, keepalive, delayed
//!   ACK, TIME-WAIT);
//! - `output.rs`: [`Connection::poll_transmit`]: RST, SYN, ACK-only and data segments, and
//!   the choice of what to (re)send;
//! - `icmp.rs`: what ICMP may do (RFC 5927): lower the path MTU, leave a soft error in
//!   SYN-SENT.

use core::fmt;

use super::assembler::RecvBuffer;
use super::buffer::RingBuffer;
use super::congestion::{CongestionAlgorithm, CongestionControl, Controller};
use super::counters::Counters;
use super::scoreboard::{DUP_THRESH, Scoreboard};
use super::{Address, FourTuple};
use crate::time::{Duration, Instant};
use crate::wire::{BareRepr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp};
use core::net::Ipv4Addr;

mod config;
mod icmp;
mod input;
mod output;
mod rtt;
mod state;
mod timers;

/// A part of the control block that a block reused for a new connection keeps, unwritten,
/// while its last connection left it as the template made it (`Connection::slab`'s
/// `SLAB_STATS`, `SLAB_CC_FULL*` say when). It reads through `Deref`; there is no `DerefMut`,
/// so a change cannot skip the bit that records it: it goes through `Connection::stats_mut`
/// or `Connection::cc_mut`, the only callers of [`Noted::noted_mut`].
mod noted {
    use core::fmt;
    use core::ops::Deref;

    #[derive(Clone, Copy, PartialEq, Default)]
    pub(super) struct Noted<T>(T);

    impl<T> Noted<T> {
        #[inline(always)]
        pub(super) fn new(value: T) -> Noted<T> {
            Noted(value)
        }
        /// Mutable access, for the accessors that note the change in `Connection::slab`.
        #[inline(always)]
        pub(super) fn noted_mut(&mut self) -> &mut T {
            &mut self.0
        }
    }

    impl<T> Deref for Noted<T> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T: fmt::Debug> fmt::Debug for Noted<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt(f)
        }
    }
}
use noted::Noted;

pub use self::config::{Keepalive, TcpConfig};
pub use self::icmp::{IcmpOutcome, SoftError};
pub use self::rtt::RttEstimator;

/// The RFC 9293 connection states (§3.3.2), with the RFC's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// True once both SYNs have been exchanged (RFC 9293 "synchronized states").
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        })
    }
}

/// What happened to a connection, for the application. Delivered by `poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The handshake completed (ESTABLISHED).
    Connected,
    /// Received bytes are waiting in the receive buffer.
    Readable,
    /// Send buffer space became free after a short `send`.
    Writable,
    /// The peer sent FIN: no more bytes will arrive (CLOSE-WAIT, or a later closing state).
    PeerClosed,
    /// The connection is finished for the application (TIME-WAIT or CLOSED after a clean
    /// close). Always the last event.
    Closed,
    /// The peer reset the connection (or refused it, in SYN-SENT).
    Reset,
    /// A retry limit was reached (retransmissions, zero-window probes or keepalive probes).
    TimedOut,
}

const EVENT_ORDER: [Event; 7] = [
    Event::Connected,
    Event::Readable,
    Event::Writable,
    Event::PeerClosed,
    Event::Reset,
    Event::TimedOut,
    Event::Closed,
];

/// A deadline as microseconds, `u64::MAX` for none (an instant of `u64::MAX` µs, 584,000
/// years after the epoch, cannot occur).
#[inline(always)]
fn us(t: Option<Instant>) -> u64 {
    t.map_or(u64::MAX, Instant::total_micros)
}

fn event_bit(e: Event) -> u8 {
    1 << EVENT_ORDER.iter().position(|x| *x == e).unwrap_or(0)
}

/// The first event of a set of event bits (`EVENT_ORDER`), taken out of it.
#[inline(always)]
fn next_event(bits: &mut u8) -> Option<Event> {
    if *bits == 0 {
        return None;
    }
    // `bits` is not zero, so `i` < 8; `& 7` tells the compiler (no bounds check). Bit 7 is
    // never set (`event_bit`): the table's last entry is never read.
    let i = (bits.trailing_zeros() & 7) as usize;
    // The lowest set bit, bit `i`, cleared.
    *bits &= *bits - 1;
    const BY_BIT: [Event; 8] = {
        let mut t = [Event::Closed; 8];
        let mut k = 0;
        while k < EVENT_ORDER.len() {
            t[k] = EVENT_ORDER[k];
            k += 1;
        }
        t
    };
    Some(BY_BIT[i])
}

/// A connection's pending events, taken at once ([`Connection::take_events`]).
pub(crate) struct PendingEvents(u8);

impl Iterator for PendingEvents {
    type Item = Event;

    #[inline(always)]
    fn next(&mut self) -> Option<Event> {
        next_event(&mut self.0)
    }
}

/// Why an application operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// The write side was shut down, or the connection is closed/reset.
    NotWritable,
    /// The connection is not in a state that allows the operation.
    InvalidState,
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpError::NotWritable => "connection is not writable (shut down, closed or reset)",
            TcpError::InvalidState => "operation not allowed in this connection state",
        })
    }
}

impl std::error::Error for TcpError {}

/// Per-connection statistics (all only grow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Bytes of new data sent (first transmissions only).
    pub bytes_sent: u64,
    /// Segments retransmitted, for any reason.
    pub retransmits: u64,
    /// Bytes retransmitted.
    pub bytes_retransmitted: u64,
    /// Retransmission timer expirations (data or SYN).
    pub rto_expirations: u64,
    /// Fast retransmits: loss recovery episodes entered on duplicate ACKs or SACK.
    pub fast_retransmits: u64,
    /// NewReno partial ACKs (RFC 6582) that triggered a retransmission.
    pub partial_acks: u64,
    /// Duplicate ACKs received (RFC 5681 §2 definition).
    pub dup_acks: u64,
    /// SACK blocks received that SACKed new data.
    pub sack_blocks_received: u64,
    /// Segments received out of order and buffered.
    pub out_of_order_segments: u64,
    /// Out-of-order segments dropped because every reassembly range was in use.
    pub out_of_order_dropped: u64,
    /// Segments whose data had already been received.
    pub duplicate_segments: u64,
    /// Zero-window probes sent.
    pub zero_window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// ACKs sent because the delayed-ACK timer expired.
    pub delayed_acks: u64,
    /// Segments sent without data, SYN or FIN (pure ACKs, window updates, probes).
    pub pure_acks_sent: u64,
}

/// Negotiated timestamp state (RFC 7323 §3-4).
#[derive(Debug, Clone, Copy)]
struct Timestamps {
    /// TS.Recent: the peer's TSval to echo.
    recent: u32,
    /// When TS.Recent was last updated (PAWS ignores TS.Recent older than 24 days).
    recent_at: Instant,
    /// Our per-connection clock offset (RFC 7323 §7.1 recommends a random one).
    offset: u32,
}

/// What an RST we owe looks like: `<SEQ=seq><ACK=ack?><CTL=RST>`.
#[derive(Debug, Clone, Copy)]
struct PendingRst {
    seq: SeqNumber,
    ack: Option<SeqNumber>,
}

/// Loss recovery in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    None,
    /// RFC 6582 fast recovery; `cwnd` is the inflated window (RFC 5681 §3.2 steps 3-4).
    NewReno {
        cwnd: usize,
    },
    /// RFC 6675 SACK-based recovery: the controller's window against the pipe estimate.
    Sack,
}

/// The next segment to transmit, as chosen by the sender.
#[derive(Debug, Clone, Copy)]
struct Pick {
    seq: SeqNumber,
    len: usize,
    fin: bool,
    /// Sent from SND.NXT: SND.NXT moves past it.
    advance: bool,
    /// A zero-window probe: the persist timer, not the retransmission timer, covers it.
    probe: bool,
}

/// Persist timer state (RFC 9293 §3.8.6.1).
#[derive(Debug, Clone, Copy, Default)]
struct Persist {
    at: Option<Instant>,
    backoff: u8,
    /// Probes without any ACK in reply.
    unanswered: u8,
}

/// What every control block made under one configuration starts with: the configuration and
/// the values derived from it alone, computed once (a stack keeps one, `Stack::establish_passive`
/// builds each passive control block from it) instead of once per connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnTemplate {
    cfg: TcpConfig,
    rtt: RttEstimator,
    /// `cfg.offered_wscale()`.
    offered_wscale: Option<u8>,
    /// The unscaled window a passive open offers, its empty receive buffer's free space:
    /// `cfg.recv_buffer.min(65535)` (the SYN-ACK's window, and RCV.ADV after it).
    initial_window: usize,
    /// The controller a passive open starts with when the peer's MSS is at least ours, with
    /// timestamps (`[1]`) or without (`[0]`).
    full_mss_cc: [CongestionControl; 2],
}

impl ConnTemplate {
    /// `cfg.offered_wscale()` of the template's configuration, computed once.
    #[inline]
    pub(crate) fn offered_wscale(&self) -> Option<u8> {
        self.offered_wscale
    }

    /// The SYN-ACK's window (see `initial_window`), computed once.
    #[inline]
    pub(crate) fn synack_window(&self) -> u16 {
        self.initial_window as u16
    }

    #[inline(always)]
    pub(crate) fn new(cfg: &TcpConfig) -> Self {
        ConnTemplate {
            cfg: *cfg,
            rtt: RttEstimator::new(cfg),
            offered_wscale: cfg.offered_wscale(),
            initial_window: cfg.recv_buffer.min(65535),
            full_mss_cc: [false, true].map(|ts| {
                CongestionControl::new(cfg.congestion, state::mss_after_options(cfg.mss, ts))
            }),
        }
    }

    pub(crate) fn config(&self) -> &TcpConfig {
        &self.cfg
    }
}

/// A TCP connection (a transmission control block).
///
/// `repr(C)` so the declaration order is the layout, and aligned to a cache line so that
/// the layout is the lines (a slab holds blocks side by side). A server's lifecycle passes
/// over each block several times (the final ACK and the peer's FIN, the application's
/// accept and close, the FIN+ACK, the last ACK, the release), each time after the other
/// connections of a batch have evicted it: each line a pass touches is a cache miss. So
/// everything those passes touch shares the first seven lines, grouped by pass: line 0 what
/// every pass reads (the slab cell's niche, the state and flags), lines 1-2 the timers and
/// timestamps, line 3 the sequence space, lines 4-5 the buffers, line 6 what a sent segment
/// adds (the RTT probe, the RTO). The application's calls touch lines 0 and 5, the last ACK
/// lines 0-4, the release lines 0, 4 and 5 (its flow entry is removed by the slot's value,
/// not by the tuple). Rarely used state (data-path recovery
/// bookkeeping, the handshake-only fields, the controller, limits, the configuration and
/// statistics) comes after; the reassembly ranges and SACK blocks are out of line.
/// `hot_fields_share_the_first_cache_lines` holds the lines.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Connection<A: Address = Ipv4Addr> {
    // Line 0. `rtx_at`'s tag, at offset 0, is where rustc puts the niche of
    // `Option<Connection>` (a slab's cell, tested with `slab` on every lookup): the first of
    // the widest niches. Not a guarantee: elsewhere it would cost a line, not correctness.
    rtx_at: Option<Instant>,
    /// Largest payload we put in a segment (options excluded).
    snd_mss: u16,
    state: State,
    snd_wscale: u8,
    rcv_wscale: u8,
    sack_ok: bool,
    /// The application called shutdown/close: a FIN follows the queued data.
    fin_queued: bool,
    /// The application called close: it reads no more (an orphan once the FIN is queued).
    app_closed: bool,
    /// An ACK is owed now.
    ack_pending: bool,
    /// Out-of-order segments received since the last ACK: each is owed its own duplicate
    /// ACK (RFC 5681 §4.2), even when a batch of them is processed before we transmit, so
    /// that the sender counts them (fast retransmit without SACK needs three).
    dup_acks_owed: u8,
    events: u8,
    /// Send a zero-window probe (or a segment overriding sender SWS avoidance) now.
    force_probe: bool,
    /// Created by a listener (passive open): a RST in SYN-RECEIVED returns to LISTEN, i.e. the
    /// entry is dropped silently.
    passive: bool,
    /// A stack slab's bookkeeping, read with the cell's niche on every lookup:
    /// `SLAB_VACANT`, a block kept for reuse after its connection ended
    /// ([`Connection::vacate`]: no connection, its buffers and scoreboard returned, until
    /// [`Connection::reinit_passive`] makes it a new one); `SLAB_CFG_CHANGED`, a knob
    /// changed `cfg` since the block was built from its template; `SLAB_STATS`,
    /// `SLAB_CC_FULL*`: what `reinit_passive` need not write again.
    slab: Slab,
    keepalive_probe: bool,
    /// An ICMP Destination Unreachable seen in SYN-SENT (`icmp.rs`).
    soft_error: Option<SoftError>,
    /// Full-sized segments received and not acknowledged yet.
    rcv_unacked_full: u32,
    /// Our timestamp clock offset, chosen before we know whether timestamps are used.
    ts_offset: u32,
    /// In-order bytes received and not acknowledged yet.
    rcv_unacked: usize,
    rst_pending: Option<PendingRst>,
    keepalive_sent: u8,
    want_writable: bool,
    rtx_count: u8,
    /// The last transmission attempt was stopped by the congestion window.
    cwnd_blocked: bool,
    // Line 1: the other timers (`poll_at`).
    /// A delayed ACK is owed at this time.
    ack_at: Option<Instant>,
    time_wait_until: Option<Instant>,
    fin_wait2_until: Option<Instant>,
    keepalive_at: Option<Instant>,
    // Line 2.
    persist: Persist,
    ts: Option<Timestamps>,
    recovery: Recovery,
    // Line 3: the sequence space and the tuple.
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// One past the highest sequence number ever sent (SND.NXT rewinds after an RTO).
    snd_max: SeqNumber,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Sequence number of `tx`'s first byte.
    tx_seq: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised; never moves left (RFC 9293 §3.8.6.2.2).
    rcv_adv: SeqNumber,
    /// RFC 7323 Last.ACK.sent: the ACK field of our last segment.
    last_ack_sent: SeqNumber,
    tuple: FourTuple<A>,
    /// The peer's FIN, once seen (possibly ahead of RCV.NXT, waiting for a hole to fill).
    rx_fin: Option<SeqNumber>,
    // Lines 4-5: the buffers.
    /// A retransmission owed now, outside the congestion window (fast retransmit, NewReno
    /// partial ACK).
    rtx_next: Option<SeqNumber>,
    scoreboard: Scoreboard,
    tx: RingBuffer,
    rx: RecvBuffer,
    last_send: Instant,
    // Line 6: what a first transmission adds (RFC 6298 §5.1); `rtt` begins with what
    // `RttEstimator::deadline` reads.
    /// Karn's rule: the segment being timed (its end sequence and send time).
    rtt_probe: Option<(SeqNumber, Instant)>,
    rtt: RttEstimator,

    // Cold: the data path's recovery bookkeeping, handshake-only, limits, configuration and
    // statistics.
    cc: Noted<CongestionControl>,
    dupacks: u32,
    /// Largest payload seen from the peer: what "full-sized" means.
    rcv_mss: usize,
    quick_acks: u16,
    /// The shift we offered in our SYN (only meaningful until the handshake completes).
    offered_wscale: Option<u8>,
    /// The MSS the path MTU allows (`icmp.rs`); `u16::MAX` until an ICMP lowers it.
    path_mss: u16,
    /// The SYN was retransmitted: the initial window is one segment (RFC 5681 §3.1).
    syn_retransmitted: bool,
    iss: SeqNumber,
    irs: SeqNumber,
    /// RFC 6582 `recover` / RFC 6675 RecoveryPoint: SND.MAX when recovery (or an RTO) began.
    recover: SeqNumber,
    /// RFC 6675 HighRxt: one past the highest byte retransmitted in this recovery.
    high_rxt: SeqNumber,
    challenge_count: u32,
    challenge_window: Instant,
    cfg: TcpConfig,
    stats: Noted<ConnStats>,
}
/// `Connection::slab`: the `SLAB_*` bits. Its `Debug` shows the block's own state
/// (`SLAB_VACANT`, `SLAB_CFG_CHANGED`) only: the other bits (`SLAB_STATS`, `SLAB_CC_FULL*`)
/// say what `reinit_passive` may leave unwritten, facts about other fields kept as a cache (a
/// clear bit costs only a store, never a different connection), so two blocks that differ
/// only there are the same connection.
#[derive(Clone, Copy)]
struct Slab(u8);

impl fmt::Debug for Slab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0 & (SLAB_VACANT | SLAB_CFG_CHANGED))
    }
}

/// `Connection::slab`: the block is vacant (`Connection::vacate`).
const SLAB_VACANT: u8 = 1;
/// `Connection::slab`: a knob changed the block's `cfg` since it was built from its template.
const SLAB_CFG_CHANGED: u8 = 2;
/// `Connection::slab`: `stats` counted something (`Connection::stats_mut`) since the block
/// was built or reinitialised: only then does `reinit_passive` zero them (their lines,
/// otherwise untouched by a connection's life, are not written).
const SLAB_STATS: u8 = 4;
/// `Connection::slab`: `cc` is the template's controller for a full-sized MSS without
/// timestamps (`ConnTemplate::full_mss_cc[0]`), unchanged since `reinit_passive` copied it;
/// any change goes through `Connection::cc_mut`, which clears this bit and the next.
const SLAB_CC_FULL: u8 = 8;
/// `Connection::slab`: as `SLAB_CC_FULL`, with timestamps (`full_mss_cc[1]`).
const SLAB_CC_FULL_TS: u8 = 16;

/// What a listener learned from a handshake it completed: the input of
/// [`Connection::from_handshake`].
#[derive(Debug, Clone, Copy)]
pub struct PassiveOpen<A: Address = Ipv4Addr> {
    pub tuple: FourTuple<A>,
    /// Our ISN (the SYN-ACK's sequence number, a cookie in cookie mode).
    pub iss: SeqNumber,
    /// The MSS the peer's SYN offered (536 when absent; a cookie's table value).
    pub peer_mss: u16,
    /// The peer's window scale, when both sides offered scaling.
    pub wscale: Option<u8>,
    /// Both sides offered SACK.
    pub sack_permitted: bool,
    /// Timestamps were negotiated (SYN and SYN-ACK carried TSopt): the SYN's TSval, or for a
    /// cookie the final ACK's.
    pub ts_recent: Option<u32>,
    /// Our timestamp clock offset for this tuple.
    pub ts_offset: u32,
}

/// [`PassiveOpen`] as a listener's SYN queue keeps it: a bit set and a sentinel instead of
/// `Option`s, 28 bytes for IPv4. The final ACK copies it whole out of the SYN-RECEIVED
/// entry (a few wide moves) and [`Connection::reinit_passive`] reads it, instead of a
/// `PassiveOpen` being assembled field by field between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactOpen<A: Address = Ipv4Addr> {
    pub(crate) tuple: FourTuple<A>,
    pub(crate) iss: SeqNumber,
    /// TS.Recent (the SYN's TSval, a cookie's final ACK's); meaningful with `OPEN_TS` only.
    pub(crate) ts_recent: u32,
    pub(crate) ts_offset: u32,
    pub(crate) peer_mss: u16,
    /// The peer's window scale, [`CompactOpen::NO_WSCALE`] when not offered.
    pub(crate) peer_wscale: u8,
    /// `OPEN_SACK | OPEN_TS`.
    pub(crate) flags: u8,
}

impl<A: Address> CompactOpen<A> {
    /// Both sides offered SACK.
    pub(crate) const SACK: u8 = 1;
    /// Timestamps were negotiated.
    pub(crate) const TS: u8 = 2;
    /// `peer_wscale` when the peer offered no window scale.
    pub(crate) const NO_WSCALE: u8 = 0xff;

    #[inline(always)]
    pub(crate) fn wscale(&self) -> Option<u8> {
        (self.peer_wscale != Self::NO_WSCALE).then_some(self.peer_wscale)
    }

    #[inline(always)]
    pub(crate) fn sack_permitted(&self) -> bool {
        self.flags & Self::SACK != 0
    }

    #[inline(always)]
    pub(crate) fn timestamps(&self) -> bool {
        self.flags & Self::TS != 0
    }

    #[inline(always)]
    pub(crate) fn ts_recent(&self) -> Option<u32> {
        self.timestamps().then_some(self.ts_recent)
    }

    /// The same handshake as a [`PassiveOpen`].
    pub(crate) fn to_passive(self) -> PassiveOpen<A> {
        PassiveOpen {
            tuple: self.tuple,
            iss: self.iss,
            peer_mss: self.peer_mss,
            wscale: self.wscale(),
            sack_permitted: self.sack_permitted(),
            ts_recent: self.ts_recent(),
            ts_offset: self.ts_offset,
        }
    }
}

impl<A: Address> From<&PassiveOpen<A>> for CompactOpen<A> {
    /// A window scale of 0xff (never valid: RFC 7323 §2.3 caps it at 14) cannot be kept.
    fn from(o: &PassiveOpen<A>) -> Self {
        debug_assert!(o.wscale != Some(Self::NO_WSCALE));
        CompactOpen {
            tuple: o.tuple,
            iss: o.iss,
            ts_recent: o.ts_recent.unwrap_or(0),
            ts_offset: o.ts_offset,
            peer_mss: o.peer_mss,
            peer_wscale: o.wscale.unwrap_or(Self::NO_WSCALE),
            flags: if o.sack_permitted { Self::SACK } else { 0 }
                | if o.ts_recent.is_some() { Self::TS } else { 0 },
        }
    }
}

impl<A: Address> Connection<A> {
    /// `cc`: the congestion controller, built by the caller for the MSS it knows (the
    /// configured one for an active open, rebuilt when the handshake completes; the final one
    /// for a passive open, so the control block does not build it twice).
    #[inline(always)]
    fn new(
        t: &ConnTemplate,
        tuple: FourTuple<A>,
        iss: SeqNumber,
        ts_offset: u32,
        now: Instant,
        cc: CongestionControl,
    ) -> Self {
        let cfg = &t.cfg;
        Connection {
            tuple,
            state: State::Closed,
            cfg: *cfg,
            passive: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            tx_seq: iss + 1,
            tx: RingBuffer::new(cfg.send_buffer),
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            rx: RecvBuffer::new(cfg.recv_buffer),
            rx_fin: None,
            // RFC 9293 §3.7.1: 536 unless the peer says otherwise.
            snd_mss: 536.min(cfg.mss),
            snd_wscale: 0,
            rcv_wscale: 0,
            offered_wscale: None,
            ts: None,
            ts_offset,
            sack_ok: false,
            fin_queued: false,
            app_closed: false,
            rtt: t.rtt,
            rtx_at: None,
            rtx_count: 0,
            rtt_probe: None,
            cc: Noted::new(cc),
            recovery: Recovery::None,
            recover: iss,
            high_rxt: iss,
            rtx_next: None,
            dupacks: 0,
            scoreboard: Scoreboard::new(),
            cwnd_blocked: false,
            syn_retransmitted: false,
            slab: Slab(0),
            last_send: now,
            persist: Persist::default(),
            force_probe: false,
            time_wait_until: None,
            fin_wait2_until: None,
            keepalive_at: None,
            keepalive_sent: 0,
            keepalive_probe: false,
            soft_error: None,
            path_mss: u16::MAX,
            ack_pending: false,
            dup_acks_owed: 0,
            ack_at: None,
            rcv_unacked: 0,
            rcv_unacked_full: 0,
            rcv_mss: 0,
            quick_acks: cfg.quick_acks,
            last_ack_sent: SeqNumber(0),
            rst_pending: None,
            challenge_window: now,
            challenge_count: 0,
            events: 0,
            want_writable: false,
            stats: Noted::default(),
        }
    }

    /// Active open (RFC 9293 §3.10.1): a connection in SYN-SENT whose SYN is ready to send.
    pub fn connect(
        cfg: &TcpConfig,
        tuple: FourTuple<A>,
        iss: SeqNumber,
        ts_offset: u32,
        now: Instant,
    ) -> Self {
        let cc = CongestionControl::new(cfg.congestion, cfg.mss as usize);
        let mut c = Connection::new(&ConnTemplate::new(cfg), tuple, iss, ts_offset, now, cc);
        c.state = State::SynSent;
        c.offered_wscale = cfg.offered_wscale();
        c
    }

    /// A passive connection whose handshake the listener completed (from a compact
    /// SYN-RECEIVED entry or a validated SYN cookie, RFC 4987 §3.6): ESTABLISHED at once.
    /// `ack` is the peer's final ACK, already checked by the listener (it acknowledges our
    /// SYN and passed PAWS). Payload or FIN on `ack` is not consumed: pass `ack` to
    /// `handle_segment` too. This is the only passive open: a listener's SYN queue (or a
    /// cookie) stands in for SYN-RECEIVED, which a `Connection` enters only by simultaneous
    /// open.
    #[inline(always)]
    pub fn from_handshake(
        cfg: &TcpConfig,
        open: &PassiveOpen<A>,
        ack: &TcpRepr,
        now: Instant,
    ) -> Self {
        Connection::from_template(&ConnTemplate::new(cfg), open, ack, now)
    }

    /// [`from_handshake`](Self::from_handshake) with the configuration's
    /// [`ConnTemplate`].
    #[inline(always)]
    pub(crate) fn from_template(
        t: &ConnTemplate,
        open: &PassiveOpen<A>,
        ack: &TcpRepr,
        now: Instant,
    ) -> Self {
        let cfg = &t.cfg;
        let iss = open.iss;
        let snd_mss = open.peer_mss.min(cfg.mss);
        let ts_on = open.ts_recent.is_some() && cfg.timestamps;
        // The controller `start_congestion_control` builds when a handshake completes (the
        // RFC 6928 initial window: `syn_retransmitted` is false in a control block made
        // here), built once, for the `eff_mss` set below, instead of twice.
        let mss = state::mss_after_options(snd_mss, ts_on);
        let cc = if snd_mss == cfg.mss {
            t.full_mss_cc[usize::from(ts_on)]
        } else {
            CongestionControl::new(cfg.congestion, mss)
        };
        let mut c = Connection::new(t, open.tuple, iss, open.ts_offset, now, cc);
        c.passive = true;
        c.irs = SeqNumber(ack.seq_number.0.wrapping_sub(1));
        c.rcv_nxt = ack.seq_number;
        // The SYN-ACK the listener sent offered the unscaled free space.
        c.rcv_adv = c.rcv_nxt + c.rx.free().min(65535);
        c.last_ack_sent = c.rcv_nxt;
        c.snd_una = iss + 1;
        c.snd_nxt = iss + 1;
        c.snd_max = iss + 1;
        c.tx_seq = iss + 1;
        c.snd_mss = snd_mss;
        if let (Some(peer), Some(ours)) = (open.wscale, t.offered_wscale) {
            c.snd_wscale = peer.min(14);
            c.rcv_wscale = ours;
        }
        c.sack_ok = open.sack_permitted && cfg.sack;
        // Timestamps are on when the SYN and the SYN-ACK both carried TSopt (RFC 7323 §3.2),
        // whatever the final ACK carries. TS.Recent starts at the SYN's TSval and takes the
        // final ACK's (R3: SEG.SEQ = Last.ACK.sent, and the listener checked it is not older).
        if let Some(syn_tsval) = open.ts_recent.filter(|_| cfg.timestamps) {
            c.ts = Some(Timestamps {
                recent: ack.timestamp.map_or(syn_tsval, |t| t.tsval),
                recent_at: now,
                offset: open.ts_offset,
            });
        }
        c.state = State::Established;
        c.snd_wnd = (ack.window_len as u32) << c.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = ack.seq_number;
        c.snd_wl2 = iss + 1;
        debug_assert_eq!(c.eff_mss(), mss, "the controller's MSS is the connection's");
        c.arm_keepalive(now);
        c.push_event(Event::Connected);
        c
    }

    /// Ends a slab's block in place: the buffers and the SACK scoreboard are returned (as a
    /// drop would return them), the rest stays until [`reinit_passive`](Self::reinit_passive)
    /// or a replacement. A vacant block is no connection; its slot is free.
    #[inline]
    pub(crate) fn vacate(&mut self) {
        self.tx.release();
        self.rx.release();
        self.scoreboard.release();
        self.slab.0 |= SLAB_VACANT;
    }

    /// Whether [`vacate`](Self::vacate) ended this block (and nothing reused it since).
    #[inline(always)]
    pub(crate) fn is_vacant(&self) -> bool {
        self.slab.0 & SLAB_VACANT != 0
    }

    /// Makes a vacant block the connection [`from_template`](Self::from_template) builds,
    /// field by field in place: each value is read (from the template, `open`, `ack`) just
    /// before its store, instead of the whole ~900-byte value being assembled first (which
    /// keeps dozens of values live and spills them through the stack frame). The buffers
    /// and the scoreboard are already empty (`vacate`). Every field is named below (no
    /// `..`): a new field does not compile until it is initialised here too.
    #[inline(always)]
    pub(crate) fn reinit_passive(
        &mut self,
        t: &ConnTemplate,
        open: &CompactOpen<A>,
        ack: &TcpRepr,
        now: Instant,
    ) {
        debug_assert!(self.is_vacant(), "only a vacant block is reinitialised");
        let iss = open.iss;
        let Connection {
            rtx_at,
            ack_at,
            ts,
            last_send,
            snd_una,
            snd_nxt,
            snd_max,
            snd_wnd,
            max_snd_wnd,
            snd_wl1,
            snd_wl2,
            tx_seq,
            rcv_nxt,
            rcv_adv,
            last_ack_sent,
            tuple,
            rx_fin,
            snd_mss,
            state,
            snd_wscale,
            rcv_wscale,
            sack_ok,
            fin_queued,
            app_closed,
            ack_pending,
            dup_acks_owed,
            events,
            want_writable,
            rtx_count,
            cwnd_blocked,
            force_probe,
            passive,
            rcv_unacked_full,
            dupacks,
            rcv_unacked,
            rcv_mss,
            recovery,
            rtx_next,
            tx,
            rx,
            time_wait_until,
            fin_wait2_until,
            keepalive_at,
            persist,
            rtt_probe,
            cc,
            rtt,
            quick_acks,
            offered_wscale,
            keepalive_sent,
            keepalive_probe,
            soft_error,
            path_mss,
            syn_retransmitted,
            slab,
            iss: iss_field,
            irs,
            recover,
            high_rxt,
            ts_offset,
            challenge_count,
            rst_pending,
            challenge_window,
            scoreboard,
            cfg,
            stats,
        } = self;
        // The block was built from this template (a stack's template never changes): its
        // configuration is the template's unless a knob changed it (a 136-byte copy saved).
        if slab.0 & SLAB_CFG_CHANGED != 0 {
            *cfg = t.cfg;
        }
        debug_assert!(*cfg == t.cfg, "a vacant block of another configuration");
        // The statistics are zero unless the last connection counted something.
        if slab.0 & SLAB_STATS != 0 {
            *stats = Noted::default();
        }
        debug_assert!(**stats == ConnStats::default());
        let cfg = &t.cfg;
        // Empty since `vacate`; a capacity other than the configuration's (a block of another
        // configuration) is replaced.
        debug_assert!(tx.is_empty() && !tx.is_allocated() && rx.is_empty());
        debug_assert!(scoreboard.is_empty());
        if tx.capacity() != cfg.send_buffer {
            *tx = RingBuffer::new(cfg.send_buffer);
        }
        if rx.capacity() != cfg.recv_buffer {
            *rx = RecvBuffer::new(cfg.recv_buffer);
        }
        // The estimator is the template's unless the last connection took a sample or
        // backed off (every block of a stack is built with its template's estimator).
        if rtt.changed() {
            *rtt = t.rtt;
        }
        debug_assert!(*rtt == t.rtt);
        let mss = open.peer_mss.min(cfg.mss);
        let ts_on = open.timestamps() && cfg.timestamps;
        // As in `from_template`: the final MSS's controller. A store in each branch: the
        // 64-byte value is copied straight from the template, not merged through the stack.
        // The template's controller a block still holds unchanged (`SLAB_CC_FULL*`, set
        // below for the next connection) is not written again: its line stays untouched.
        let cc_bit = if ts_on { SLAB_CC_FULL_TS } else { SLAB_CC_FULL };
        let cc_kept = if mss == cfg.mss {
            if slab.0 & cc_bit == 0 {
                *cc = Noted::new(t.full_mss_cc[usize::from(ts_on)]);
            }
            debug_assert_eq!(
                format!("{cc:?}"),
                format!("{:?}", t.full_mss_cc[usize::from(ts_on)])
            );
            cc_bit
        } else {
            *cc = Noted::new(CongestionControl::new(
                cfg.congestion,
                state::mss_after_options(mss, ts_on),
            ));
            0
        };
        *tuple = open.tuple;
        *state = State::Established;
        *passive = true;
        *iss_field = iss;
        *snd_una = iss + 1;
        *snd_nxt = iss + 1;
        *snd_max = iss + 1;
        *snd_wl1 = ack.seq_number;
        *snd_wl2 = iss + 1;
        *tx_seq = iss + 1;
        *irs = SeqNumber(ack.seq_number.0.wrapping_sub(1));
        *rcv_nxt = ack.seq_number;
        // The SYN-ACK the listener sent offered the unscaled free space (of the empty buffer,
        // whose capacity is the configuration's: the template's value).
        debug_assert_eq!(rx.free().min(65535), t.initial_window);
        *rcv_adv = ack.seq_number + t.initial_window;
        *last_ack_sent = ack.seq_number;
        *rx_fin = None;
        *snd_mss = mss;
        let (snd_shift, rcv_shift) = match (open.wscale(), t.offered_wscale) {
            (Some(peer), Some(ours)) => (peer.min(14), ours),
            _ => (0, 0),
        };
        *snd_wscale = snd_shift;
        *rcv_wscale = rcv_shift;
        *offered_wscale = None;
        // Timestamps (RFC 7323 §3.2, §4.3 R3) as in `from_template`.
        *ts = ts_on.then(|| Timestamps {
            recent: ack.timestamp.map_or(open.ts_recent, |t| t.tsval),
            recent_at: now,
            offset: open.ts_offset,
        });
        *ts_offset = open.ts_offset;
        *sack_ok = open.sack_permitted() && cfg.sack;
        *fin_queued = false;
        *app_closed = false;
        *rtx_at = None;
        *rtx_count = 0;
        *rtt_probe = None;
        *recovery = Recovery::None;
        *recover = iss;
        *high_rxt = iss;
        *rtx_next = None;
        *dupacks = 0;
        *cwnd_blocked = false;
        *syn_retransmitted = false;
        *slab = Slab(cc_kept);
        *last_send = now;
        *persist = Persist::default();
        *force_probe = false;
        *time_wait_until = None;
        *fin_wait2_until = None;
        // `arm_keepalive` (ESTABLISHED), read from the template's configuration, the
        // block's: the block's own copy, on cold lines, is not read.
        *keepalive_at = cfg.keepalive.map(|ka| now + ka.idle);
        *keepalive_sent = 0;
        *keepalive_probe = false;
        *soft_error = None;
        *path_mss = u16::MAX;
        *ack_pending = false;
        *dup_acks_owed = 0;
        *ack_at = None;
        *rcv_unacked = 0;
        *rcv_unacked_full = 0;
        *rcv_mss = 0;
        *quick_acks = cfg.quick_acks;
        *rst_pending = None;
        *challenge_window = now;
        *challenge_count = 0;
        *events = 0;
        *want_writable = false;
        *snd_wnd = (ack.window_len as u32) << snd_shift;
        *max_snd_wnd = *snd_wnd;
        self.push_event(Event::Connected);
    }

    // ---------------------------------------------------------------- getters

    pub fn state(&self) -> State {
        self.state
    }
    pub fn tuple(&self) -> FourTuple<A> {
        self.tuple
    }
    pub fn is_passive(&self) -> bool {
        self.passive
    }
    /// Bytes waiting to be read.
    pub fn recv_queue(&self) -> usize {
        self.rx.len()
    }
    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.tx.len()
    }
    /// Free space in the send buffer.
    pub fn send_capacity(&self) -> usize {
        if self.can_send() { self.tx.free() } else { 0 }
    }
    pub fn iss(&self) -> SeqNumber {
        self.iss
    }
    pub fn snd_una(&self) -> SeqNumber {
        self.snd_una
    }
    pub fn snd_nxt(&self) -> SeqNumber {
        self.snd_nxt
    }
    /// One past the highest sequence number sent.
    pub fn snd_max(&self) -> SeqNumber {
        self.snd_max
    }
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    /// The peer's send window as we see it (scaled).
    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
    }
    /// The receive window we last advertised (RCV.ADV - RCV.NXT).
    pub fn rcv_wnd_advertised(&self) -> usize {
        self.rcv_wnd()
    }
    /// Negotiated payload size per segment.
    pub fn mss(&self) -> u16 {
        self.snd_mss
    }
    pub fn window_scales(&self) -> (u8, u8) {
        (self.snd_wscale, self.rcv_wscale)
    }
    pub fn timestamps_enabled(&self) -> bool {
        self.ts.is_some()
    }
    /// The peer's last timestamp value we accepted (TS.Recent), if timestamps are in use.
    pub fn ts_recent(&self) -> Option<u32> {
        self.ts.map(|t| t.recent)
    }
    pub fn sack_enabled(&self) -> bool {
        self.sack_ok
    }
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }
    /// The congestion window in bytes (inflated during NewReno recovery).
    pub fn cwnd(&self) -> usize {
        self.effective_cwnd()
    }
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }
    pub fn congestion_control(&self) -> &CongestionControl {
        &self.cc
    }
    /// True during fast recovery (NewReno or SACK).
    pub fn in_recovery(&self) -> bool {
        self.recovery != Recovery::None
    }
    /// The SACK scoreboard (ranges the peer selectively acknowledged).
    pub fn scoreboard(&self) -> &Scoreboard {
        &self.scoreboard
    }
    /// Bytes received out of order and held for reassembly.
    pub fn out_of_order_bytes(&self) -> usize {
        self.rx.out_of_order_bytes()
    }
    pub fn stats(&self) -> &ConnStats {
        &self.stats
    }
    /// The congestion controller, to change it: it is no longer the template's
    /// (`SLAB_CC_FULL*`).
    #[inline(always)]
    pub(super) fn cc_mut(&mut self) -> &mut CongestionControl {
        self.slab.0 &= !(SLAB_CC_FULL | SLAB_CC_FULL_TS);
        self.cc.noted_mut()
    }
    /// The statistics, to count in: marks the block's `stats` as used (`SLAB_STATS`).
    #[inline(always)]
    pub(super) fn stats_mut(&mut self) -> &mut ConnStats {
        self.slab.0 |= SLAB_STATS;
        self.stats.noted_mut()
    }
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }
    /// True after `close()`: nobody will read this connection again.
    pub fn is_orphan(&self) -> bool {
        self.app_closed
    }
    /// When TIME-WAIT ends, if in TIME-WAIT.
    pub fn time_wait_until(&self) -> Option<Instant> {
        self.time_wait_until
    }
    /// When a delayed ACK is due, if one is owed.
    pub fn delayed_ack_at(&self) -> Option<Instant> {
        self.ack_at
    }
    /// When the persist (zero-window probe) timer fires, if armed.
    pub fn persist_at(&self) -> Option<Instant> {
        self.persist.at
    }
    /// When the retransmission timer fires, if armed.
    pub fn retransmit_at(&self) -> Option<Instant> {
        self.rtx_at
    }
    /// When the keepalive timer fires, if armed.
    pub fn keepalive_at(&self) -> Option<Instant> {
        self.keepalive_at
    }

    /// True when `poll_transmit` may have something to send right now.
    pub fn wants_transmit(&self) -> bool {
        // In CLOSED (the freed connection's last settle) and LISTEN `poll_transmit` sends a
        // pending RST and nothing else: the state is tested before the other flags.
        self.rst_pending.is_some()
            || (!matches!(self.state, State::Closed | State::Listen)
                && (self.ack_pending
                    || self.force_probe
                    || self.keepalive_probe
                    || self.rtx_next.is_some()
                    || match self.state {
                        State::SynSent | State::SynReceived => self.snd_nxt == self.iss,
                        State::Established
                        | State::CloseWait
                        | State::FinWait1
                        | State::Closing
                        | State::LastAck => self.has_sendable() || self.recovery == Recovery::Sack,
                        _ => false,
                    }))
    }

    /// The earliest time `handle_timeout` must be called, if any.
    ///
    /// Computed without a branch per timer (called after every segment): each timer as
    /// microseconds with `None` as `u64::MAX`, the minimum of those, and `u64::MAX` back to
    /// `None` (an instant of `u64::MAX` µs, 584,000 years after the epoch, cannot occur).
    ///
    /// TIME-WAIT's and FIN-WAIT-2's deadlines are read in those two states alone: each is
    /// armed only in its state and cleared on leaving it (`stop_timers` on entering
    /// TIME-WAIT or CLOSED, the 2MSL expiry), so elsewhere both are None (the unit tests
    /// compare with [`Self::poll_at_all`] after every segment and timeout).
    #[inline]
    pub fn poll_at(&self) -> Option<Instant> {
        let mut m = us(self.rtx_at)
            .min(us(self.persist.at))
            .min(us(self.ack_at))
            .min(us(self.keepalive_at));
        if matches!(self.state, State::FinWait2 | State::TimeWait) {
            m = m
                .min(us(self.time_wait_until))
                .min(us(self.fin_wait2_until));
        }
        debug_assert_eq!(m, us(self.poll_at_all()));
        (m != u64::MAX).then_some(Instant::from_micros(m))
    }

    /// [`Self::poll_at`] over every timer whatever the state.
    pub(crate) fn poll_at_all(&self) -> Option<Instant> {
        let m = us(self.rtx_at)
            .min(us(self.persist.at))
            .min(us(self.ack_at))
            .min(us(self.keepalive_at))
            .min(us(self.time_wait_until))
            .min(us(self.fin_wait2_until));
        (m != u64::MAX).then_some(Instant::from_micros(m))
    }

    // ---------------------------------------------------------------- per-connection knobs

    /// Chooses the congestion control algorithm. Takes effect at once (the window restarts
    /// at the initial window if data has not flowed yet, else keeps its current size).
    pub fn set_congestion_algorithm(&mut self, algorithm: CongestionAlgorithm) {
        self.cfg.congestion = algorithm;
        self.slab.0 |= SLAB_CFG_CHANGED;
        if self.cc.algorithm() != algorithm {
            let mss = self.eff_mss();
            let cwnd = self.cc.window();
            let initial = self.snd_max == self.iss || self.snd_max == self.iss + 1;
            *self.cc_mut() = if initial {
                CongestionControl::new(algorithm, mss)
            } else {
                CongestionControl::with_window(algorithm, mss, cwnd)
            };
        }
    }

    /// Turns Nagle's algorithm on or off (`TCP_NODELAY` is `set_nagle(false)`).
    pub fn set_nagle(&mut self, on: bool) {
        self.cfg.nagle = on;
        self.slab.0 |= SLAB_CFG_CHANGED;
    }

    /// Turns keepalive on (with these settings) or off.
    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<Keepalive>) {
        self.cfg.keepalive = keepalive;
        self.slab.0 |= SLAB_CFG_CHANGED;
        self.keepalive_sent = 0;
        self.keepalive_probe = false;
        self.keepalive_at = None;
        self.arm_keepalive(now);
    }

    // ---------------------------------------------------------------- application side

    fn can_send(&self) -> bool {
        !self.fin_queued
            && matches!(
                self.state,
                State::SynSent | State::SynReceived | State::Established | State::CloseWait
            )
    }

    /// Copies as much of `data` as fits into the send buffer; returns how much was taken.
    /// A short count arms a `Writable` event for when space frees up.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if !self.can_send() {
            return Err(TcpError::NotWritable);
        }
        let n = self.tx.enqueue(data);
        if n < data.len() {
            self.want_writable = true;
        }
        Ok(n)
    }

    /// Copies received bytes into `buf`; returns how many. Opens the window as space frees.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.rx.dequeue_into(buf);
        if n > 0 {
            self.after_read();
        }
        n
    }

    /// The received bytes at the front of the buffer, borrowed in place (zero-copy read).
    /// Call [`Connection::consume`] with how many were used.
    pub fn recv_slice(&self) -> &[u8] {
        self.rx.front()
    }

    /// Marks `n` bytes of [`Connection::recv_slice`] as read.
    pub fn consume(&mut self, n: usize) {
        if self.rx.consume(n) > 0 {
            self.after_read();
        }
    }

    /// RFC 9293 §3.8.6.2.2: send a window update when reading opened the window by at least
    /// min(buffer/2, MSS) beyond what we last advertised.
    fn after_read(&mut self) {
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            return;
        }
        let potential = self.rcv_nxt + self.max_window();
        if potential > self.rcv_adv && potential - self.rcv_adv >= self.rcv_sws_threshold() {
            self.ack_pending = true;
        }
    }

    /// shutdown(SHUT_WR): queue a FIN after the data already queued (RFC 9293 §3.10.4).
    /// Receiving continues (half-close).
    pub fn shutdown(&mut self, now: Instant) -> Result<(), TcpError> {
        match self.state {
            State::SynSent if self.app_closed && self.tx.is_empty() => {
                // close() with nothing to send: RFC 9293 §3.10.4 deletes the TCB.
                self.enter_closed(now, None);
                Ok(())
            }
            State::SynSent | State::SynReceived => {
                // RFC 9293 §3.10.4: queue the FIN until ESTABLISHED (enter_established moves
                // on to FIN-WAIT-1). In SYN-SENT too: `send` already queues data there, and a
                // half-close must not throw it away.
                self.fin_queued = true;
                Ok(())
            }
            State::Established => {
                if !self.fin_queued {
                    self.fin_queued = true;
                    self.state = State::FinWait1;
                }
                Ok(())
            }
            State::CloseWait => {
                if !self.fin_queued {
                    self.fin_queued = true;
                    self.state = State::LastAck;
                }
                Ok(())
            }
            State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::LastAck
            | State::TimeWait => Ok(()),
            State::Closed | State::Listen => Err(TcpError::InvalidState),
        }
    }

    /// close(): shut down both directions. Unread received data turns the close into an abort
    /// (RFC 1122 §4.2.2.13, RFC 2525 §2.17), as Linux does.
    #[inline]
    pub fn close(&mut self, now: Instant) -> Result<(), TcpError> {
        if self.close_in_close_wait() {
            return Ok(());
        }
        match self.state {
            State::Closed => Ok(()),
            _ => self.close_general(now),
        }
    }

    /// [`Self::close`] in any other state.
    #[inline(never)]
    fn close_general(&mut self, now: Instant) -> Result<(), TcpError> {
        if !self.rx.is_empty() && self.state.is_synchronized() {
            self.abort(now);
            return Ok(());
        }
        self.app_closed = true;
        let r = self.shutdown(now);
        if self.state == State::FinWait2 {
            self.fin_wait2_until = Some(now + self.cfg.fin_wait2_timeout);
        }
        r
    }

    /// abort(): send RST if synchronized (RFC 9293 §3.10.5) and go to CLOSED.
    pub fn abort(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Listen | State::TimeWait | State::SynSent => {}
            _ => {
                self.rst_pending = Some(PendingRst {
                    seq: self.snd_max,
                    ack: None,
                });
            }
        }
        self.tx.clear();
        self.rx.clear();
        self.enter_closed(now, None);
    }

    /// The next application event, in a fixed order (Connected, Readable, Writable, PeerClosed,
    /// Reset, TimedOut, Closed).
    pub fn poll_event(&mut self) -> Option<Event> {
        next_event(&mut self.events)
    }

    /// Takes every pending event at once, in `poll_event`'s order (for the stack's event
    /// queue: the set is read from a register, not stored back after each event).
    pub(crate) fn take_events(&mut self) -> PendingEvents {
        PendingEvents(core::mem::take(&mut self.events))
    }

    fn push_event(&mut self, e: Event) {
        self.events |= event_bit(e);
    }

    /// True when `poll_event` has something.
    pub fn has_events(&self) -> bool {
        self.events != 0
    }

    /// Drops pending events (e.g. a passive connection that was never accepted).
    pub fn clear_events(&mut self) {
        self.events = 0;
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    /// `take_events` gives every set of pending events in `poll_event`'s order, and leaves
    /// none behind.
    #[test]
    fn take_events_gives_poll_events_order() {
        let tuple = FourTuple {
            local_addr: core::net::Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: core::net::Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: 5000,
        };
        let now = Instant::from_secs(1);
        let mut c = Connection::connect(&TcpConfig::default(), tuple, SeqNumber(1), 0, now);
        for bits in 0..128u8 {
            c.events = bits;
            let mut polled = Vec::new();
            let mut d = c.clone();
            while let Some(e) = d.poll_event() {
                polled.push(e);
            }
            let taken: Vec<Event> = c.take_events().collect();
            assert_eq!(taken, polled, "{bits:#b}");
            assert_eq!(taken.len(), bits.count_ones() as usize);
            assert!(!c.has_events());
        }
    }

    /// The layout `Connection`'s declaration describes: blocks on line boundaries; lines 0-5
    /// hold every field declared up to `last_send` (what the lifecycle's passes touch for any
    /// segment), line 6 the RTT probe and the part of the estimator a first transmission
    /// reads (`RttEstimator::deadline`, the first 24 bytes: `rtt.rs` asserts it).
    #[test]
    fn hot_fields_share_the_first_cache_lines() {
        let hot_end = offset_of!(Connection, last_send) + size_of::<Instant>();
        let sent_end = offset_of!(Connection, rtt) + 24;
        println!(
            "control block {} bytes; lines 0-5 end at {hot_end}, line 6's part at {sent_end}; tx at {}, rx at {}, cc at {}, cfg at {}, stats at {}",
            size_of::<Connection>(),
            offset_of!(Connection, tx),
            offset_of!(Connection, rx),
            offset_of!(Connection, cc),
            offset_of!(Connection, cfg),
            offset_of!(Connection, stats),
        );
        assert_eq!(core::mem::align_of::<Connection>(), 64);
        assert!(hot_end <= 6 * 64, "lines 0-5 end at {hot_end}");
        assert!(offset_of!(Connection, rtt_probe) >= 6 * 64);
        assert!(sent_end <= 7 * 64, "line 6 ends at {sent_end}");
        // The cell's niche (`Option<Connection>`) is `rtx_at`'s tag, on line 0 with the
        // other fields every lookup reads.
        assert_eq!(size_of::<Option<Connection>>(), size_of::<Connection>());
        assert_eq!(offset_of!(Connection, rtx_at), 0);
        assert!(offset_of!(Connection, cwnd_blocked) < 64);
        assert_eq!(offset_of!(Connection, ack_at), 64);
        assert_eq!(offset_of!(Connection, snd_una), 3 * 64);
        assert_eq!(offset_of!(Connection, rtx_next), 4 * 64);
        // The reassembly ranges and SACK blocks are out of line.
        assert!(size_of::<Scoreboard>() <= 16);
        assert!(size_of::<RecvBuffer>() <= 64);
    }

    /// A vacant block reinitialised in place (`reinit_passive`) is the block `from_template`
    /// builds, whatever its last connection left in it (data in both buffers, a changed
    /// configuration, other options), for every kind of handshake.
    #[test]
    fn reinit_passive_equals_from_template() {
        // A receive buffer above the unscaled 65535 and one below it (the template's
        // `initial_window`, RCV.ADV's base); keepalive off and on (`reinit_passive` arms it
        // from the template's configuration).
        for recv_buffer in [1 << 20, 4000] {
            for keepalive in [None, Some(Keepalive::default())] {
                reinit_passive_equals_from_template_with(recv_buffer, keepalive);
            }
        }
    }

    /// The compact form the SYN queue keeps gives back the handshake it was made from, for
    /// every combination of options (window scale 0 and 14 included).
    #[test]
    fn compact_open_round_trips() {
        for (wscale, sack_permitted, ts_recent) in [
            (None, false, None),
            (Some(0), true, Some(0)),
            (Some(14), false, Some(u32::MAX)),
            (Some(7), true, None),
            (None, true, Some(12345)),
        ] {
            let open = PassiveOpen {
                tuple: FourTuple {
                    local_addr: Ipv4Addr::new(10, 0, 0, 1),
                    remote_addr: Ipv4Addr::new(10, 0, 0, 2),
                    local_port: 80,
                    remote_port: 4242,
                },
                iss: SeqNumber(0xdead_beef),
                peer_mss: 1200,
                wscale,
                sack_permitted,
                ts_recent,
                ts_offset: 99,
            };
            let c = CompactOpen::from(&open);
            assert_eq!(c.wscale(), wscale);
            assert_eq!(c.sack_permitted(), sack_permitted);
            assert_eq!(
                (c.timestamps(), c.ts_recent()),
                (ts_recent.is_some(), ts_recent)
            );
            assert_eq!(format!("{:?}", c.to_passive()), format!("{open:?}"));
        }
    }

    fn reinit_passive_equals_from_template_with(recv_buffer: usize, keepalive: Option<Keepalive>) {
        let cfg = TcpConfig {
            send_buffer: 4096,
            recv_buffer,
            keepalive,
            ..TcpConfig::default()
        };
        let t = ConnTemplate::new(&cfg);
        let tuple = |port| FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: port,
        };
        let ack = |seq: u32, ts: Option<u32>, payload: &'static [u8]| TcpRepr {
            src_port: 0,
            dst_port: 80,
            control: TcpControl::None,
            psh: false,
            seq_number: SeqNumber(seq),
            ack_number: None,
            window_len: 512,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: ts.map(|tsval| TcpTimestamp { tsval, tsecr: 0 }),
            payload,
        };
        let opens = [
            (1000, Some(7), true, Some(11), 1460, Some(12)),
            (2000, None, false, None, 536, None),
            (3000, Some(14), true, Some(5), 1200, None),
            (4000, Some(3), false, None, 1460, Some(9)),
        ];
        let open = |i: usize| {
            let (iss, wscale, sack_permitted, ts_recent, peer_mss, _) = opens[i];
            PassiveOpen {
                tuple: tuple(1000 + i as u16),
                iss: SeqNumber(iss),
                peer_mss,
                wscale,
                sack_permitted,
                ts_recent,
                ts_offset: 77 * i as u32,
            }
        };
        let mut counters = Counters::default();
        for old in 0..opens.len() {
            for new in 0..opens.len() {
                let now = Instant::from_millis(10);
                let a = ack(9000, opens[old].5, b"");
                let mut c = Connection::from_template(&t, &open(old), &a, now);
                // Use it: data both ways, a knob, the handshake event taken, then the end.
                c.send(b"hello").unwrap();
                let later = Instant::from_millis(20);
                let mut seg = ack(9000, opens[old].5.map(|v| v + 1), b"data");
                seg.ack_number = Some(SeqNumber(opens[old].0 + 1));
                // The first kind of handshake leaves its block's statistics unused (not
                // zeroed again), the others count what they send.
                if old != 0 {
                    c.handle_segment(later, &seg, &mut counters);
                    while c.poll_transmit(later, &mut counters).is_some() {}
                }
                assert_eq!(c.slab.0 & SLAB_STATS != 0, old != 0, "{old}");
                while c.poll_event().is_some() {}
                c.set_nagle(true);
                if old % 2 == 1 {
                    // An estimator changed by a sample and a backoff (copied back).
                    c.rtt.sample(crate::time::Duration::from_millis(30));
                    c.rtt.back_off();
                    // And a controller changed (written again).
                    c.cc_mut().on_retransmit_timeout(later, 0, 1000);
                }
                c.abort(later);
                c.vacate();
                assert!(c.is_vacant());
                let now = Instant::from_millis(30);
                let a = ack(5000, opens[new].5, b"");
                c.reinit_passive(&t, &CompactOpen::from(&open(new)), &a, now);
                let fresh = Connection::from_template(&t, &open(new), &a, now);
                assert!(!c.is_vacant());
                assert_eq!(format!("{c:?}"), format!("{fresh:?}"), "{old} -> {new}");
            }
        }
    }
}
