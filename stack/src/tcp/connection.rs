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

use core::fmt;

use super::FourTuple;
use super::assembler::RecvBuffer;
use super::buffer::RingBuffer;
use super::congestion::{CongestionAlgorithm, CongestionControl, Controller};
use super::counters::Counters;
use super::scoreboard::{DUP_THRESH, Scoreboard};
use crate::time::{Duration, Instant};
use crate::wire::{SeqNumber, TcpControl, TcpRepr, TcpTimestamp};

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

/// Keepalive settings (RFC 1122 §4.2.3.6). Defaults are Linux's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe. Default 2 h.
    pub idle: Duration,
    /// Between unanswered probes. Default 75 s.
    pub interval: Duration,
    /// Unanswered probes before the connection ends with `TimedOut`. Default 9.
    pub probes: u8,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Per-connection configuration. Defaults are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpConfig {
    /// MSS we advertise and the largest payload we send: path MTU minus 40. Default 1460.
    pub mss: u16,
    /// Send buffer size in bytes. Default 64 KiB.
    pub send_buffer: usize,
    /// Receive buffer size in bytes; bounds the advertised window. Default 64 KiB.
    pub recv_buffer: usize,
    /// Offer window scaling (RFC 7323 §2). Default on.
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3). Default on.
    pub timestamps: bool,
    /// Offer SACK (RFC 2018). Default on.
    pub sack: bool,
    /// Maximum segment lifetime; TIME-WAIT lasts 2×MSL. Default 30 s.
    pub msl: Duration,
    /// Initial retransmission timeout (RFC 6298 §2.1). Default 1 s.
    pub initial_rto: Duration,
    /// Lower bound of the RTO (RFC 6298 §2.4 says 1 s; Linux and we use 200 ms). Default 200 ms.
    pub min_rto: Duration,
    /// Upper bound of the RTO (RFC 6298 §2.5). Default 60 s.
    pub max_rto: Duration,
    /// SYN retransmissions before giving up (active open). Default 6.
    pub syn_retries: u8,
    /// SYN-ACK retransmissions before giving up (passive open). Default 5.
    pub synack_retries: u8,
    /// Data/FIN retransmissions, and unanswered zero-window probes, before giving up (Linux
    /// `tcp_retries2`). Default 15.
    pub data_retries: u8,
    /// How long an orphaned FIN-WAIT-2 connection waits for the peer's FIN. Default 60 s.
    pub fin_wait2_timeout: Duration,
    /// Challenge ACKs per connection per second (RFC 5961 §7). Default 10.
    pub challenge_ack_limit: u32,
    /// Congestion control algorithm. Default CUBIC.
    pub congestion: CongestionAlgorithm,
    /// Delayed ACK timeout (RFC 1122 §4.2.3.2: under 0.5 s); zero acknowledges every segment
    /// at once. Default 40 ms.
    pub ack_delay: Duration,
    /// Data segments acknowledged at once at connection start, so the peer's slow start is
    /// not slowed by delayed ACKs (Linux "quick ACK" mode). Default 16.
    pub quick_acks: u16,
    /// Nagle's algorithm (RFC 896, RFC 9293 §3.7.4): hold small segments while data is
    /// unacknowledged. Default off (latency-sensitive servers are our users).
    pub nagle: bool,
    /// Keepalive probing. Default off.
    pub keepalive: Option<Keepalive>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            window_scaling: true,
            timestamps: true,
            sack: true,
            msl: Duration::from_secs(30),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            syn_retries: 6,
            synack_retries: 5,
            data_retries: 15,
            fin_wait2_timeout: Duration::from_secs(60),
            challenge_ack_limit: 10,
            congestion: CongestionAlgorithm::Cubic,
            ack_delay: Duration::from_millis(40),
            quick_acks: 16,
            nagle: false,
            keepalive: None,
        }
    }
}

impl TcpConfig {
    /// The window scale shift we offer: the smallest that lets the receive buffer be advertised.
    pub fn offered_wscale(&self) -> Option<u8> {
        if !self.window_scaling {
            return None;
        }
        let mut shift = 0u8;
        while shift < 14 && (self.recv_buffer >> shift) > 65535 {
            shift += 1;
        }
        Some(shift)
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

fn event_bit(e: Event) -> u8 {
    1 << EVENT_ORDER.iter().position(|x| *x == e).unwrap_or(0)
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

/// RFC 6298 retransmission timer state. Samples come from timestamps (RFC 7323 §4) or from
/// timing one segment at a time (Karn's rule: never a retransmitted one).
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u8,
    samples: u64,
}

impl RttEstimator {
    pub fn new(cfg: &TcpConfig) -> Self {
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            rto: cfg.initial_rto,
            min_rto: cfg.min_rto,
            max_rto: cfg.max_rto.max(cfg.min_rto),
            backoff: 0,
            samples: 0,
        }
    }

    /// The current RTO, backoff included, at most the configured maximum.
    pub fn rto(&self) -> Duration {
        let base = self.rto.as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(backed).min(self.max_rto)
    }

    /// The RTO without backoff.
    pub fn base_rto(&self) -> Duration {
        self.rto
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us)
    }

    /// How many RTT samples were taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// How many times the RTO was doubled since the last new ACK.
    pub fn backoff(&self) -> u8 {
        self.backoff
    }

    /// RFC 6298 §2.2-2.3 with alpha = 1/8, beta = 1/4, K = 4, G = 1 ms.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros() as u64;
        self.samples += 1;
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + delta) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(r);
        let rto = srtt + (4 * self.rttvar_us).max(1000);
        self.rto = Duration::from_micros(rto)
            .max(self.min_rto)
            .min(self.max_rto);
    }

    /// RFC 6298 §5.5: double the RTO on expiry.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// A new ACK ends the backoff (RFC 6298 §5.7 keeps the doubled value until a new sample;
    /// like Linux we return to the computed RTO once data is acknowledged).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

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

/// A TCP connection (a transmission control block).
///
/// `repr(C)` so the declaration order is the layout: fields used on every segment come first
/// and share the first cache lines; rarely used state (and the out-of-line reassembly ranges
/// and SACK blocks) stays off the hot path.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Connection {
    // Hot: read or written for every segment, sent or received (lines 0-2).
    rtx_at: Option<Instant>,
    /// A delayed ACK is owed at this time.
    ack_at: Option<Instant>,
    ts: Option<Timestamps>,
    last_send: Instant,
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
    tuple: FourTuple,
    /// The peer's FIN, once seen (possibly ahead of RCV.NXT, waiting for a hole to fill).
    rx_fin: Option<SeqNumber>,
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
    want_writable: bool,
    rtx_count: u8,
    /// The last transmission attempt was stopped by the congestion window.
    cwnd_blocked: bool,
    /// Send a zero-window probe (or a segment overriding sender SWS avoidance) now.
    force_probe: bool,
    /// Created by a listener (passive open): a RST in SYN-RECEIVED returns to LISTEN, i.e. the
    /// entry is dropped silently.
    passive: bool,
    /// Full-sized segments received and not acknowledged yet.
    rcv_unacked_full: u32,
    dupacks: u32,
    /// In-order bytes received and not acknowledged yet.
    rcv_unacked: usize,
    /// Largest payload seen from the peer: what "full-sized" means.
    rcv_mss: usize,
    recovery: Recovery,
    /// A retransmission owed now, outside the congestion window (fast retransmit, NewReno
    /// partial ACK).
    rtx_next: Option<SeqNumber>,

    // Warm: buffers, the other timers (`poll_at`), RTT and congestion state.
    tx: RingBuffer,
    rx: RecvBuffer,
    time_wait_until: Option<Instant>,
    fin_wait2_until: Option<Instant>,
    keepalive_at: Option<Instant>,
    persist: Persist,
    /// Karn's rule: the segment being timed (its end sequence and send time).
    rtt_probe: Option<(SeqNumber, Instant)>,
    cc: CongestionControl,
    rtt: RttEstimator,

    // Cold: handshake-only, recovery bookkeeping, limits, configuration and statistics.
    quick_acks: u16,
    /// The shift we offered in our SYN (only meaningful until the handshake completes).
    offered_wscale: Option<u8>,
    keepalive_sent: u8,
    keepalive_probe: bool,
    /// The SYN was retransmitted: the initial window is one segment (RFC 5681 §3.1).
    syn_retransmitted: bool,
    iss: SeqNumber,
    irs: SeqNumber,
    /// RFC 6582 `recover` / RFC 6675 RecoveryPoint: SND.MAX when recovery (or an RTO) began.
    recover: SeqNumber,
    /// RFC 6675 HighRxt: one past the highest byte retransmitted in this recovery.
    high_rxt: SeqNumber,
    /// Our timestamp clock offset, chosen before we know whether timestamps are used.
    ts_offset: u32,
    challenge_count: u32,
    rst_pending: Option<PendingRst>,
    challenge_window: Instant,
    scoreboard: Scoreboard,
    cfg: TcpConfig,
    stats: ConnStats,
}
/// What a listener learned from a handshake it completed: the input of
/// [`Connection::from_handshake`].
#[derive(Debug, Clone, Copy)]
pub struct PassiveOpen {
    pub tuple: FourTuple,
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

impl Connection {
    fn new(
        cfg: &TcpConfig,
        tuple: FourTuple,
        iss: SeqNumber,
        ts_offset: u32,
        now: Instant,
    ) -> Self {
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
            rtt: RttEstimator::new(cfg),
            rtx_at: None,
            rtx_count: 0,
            rtt_probe: None,
            cc: CongestionControl::new(cfg.congestion, cfg.mss as usize),
            recovery: Recovery::None,
            recover: iss,
            high_rxt: iss,
            rtx_next: None,
            dupacks: 0,
            scoreboard: Scoreboard::new(),
            cwnd_blocked: false,
            syn_retransmitted: false,
            last_send: now,
            persist: Persist::default(),
            force_probe: false,
            time_wait_until: None,
            fin_wait2_until: None,
            keepalive_at: None,
            keepalive_sent: 0,
            keepalive_probe: false,
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
            stats: ConnStats::default(),
        }
    }

    /// Active open (RFC 9293 §3.10.1): a connection in SYN-SENT whose SYN is ready to send.
    pub fn connect(
        cfg: &TcpConfig,
        tuple: FourTuple,
        iss: SeqNumber,
        ts_offset: u32,
        now: Instant,
    ) -> Self {
        let mut c = Connection::new(cfg, tuple, iss, ts_offset, now);
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
    pub fn from_handshake(
        cfg: &TcpConfig,
        open: &PassiveOpen,
        ack: &TcpRepr,
        now: Instant,
    ) -> Self {
        let iss = open.iss;
        let mut c = Connection::new(cfg, open.tuple, iss, open.ts_offset, now);
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
        c.snd_mss = open.peer_mss.min(cfg.mss);
        if let (Some(peer), Some(ours)) = (open.wscale, cfg.offered_wscale()) {
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
        c.start_congestion_control();
        c.arm_keepalive(now);
        c.push_event(Event::Connected);
        c
    }

    // ---------------------------------------------------------------- getters

    pub fn state(&self) -> State {
        self.state
    }
    pub fn tuple(&self) -> FourTuple {
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
        self.rst_pending.is_some()
            || self.ack_pending
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
            }
    }

    /// The earliest time `handle_timeout` must be called, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        [
            self.rtx_at,
            self.persist.at,
            self.ack_at,
            self.keepalive_at,
            self.time_wait_until,
            self.fin_wait2_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---------------------------------------------------------------- per-connection knobs

    /// Chooses the congestion control algorithm. Takes effect at once (the window restarts
    /// at the initial window if data has not flowed yet, else keeps its current size).
    pub fn set_congestion_algorithm(&mut self, algorithm: CongestionAlgorithm) {
        self.cfg.congestion = algorithm;
        if self.cc.algorithm() != algorithm {
            let mss = self.eff_mss();
            let cwnd = self.cc.window();
            let initial = self.snd_max == self.iss || self.snd_max == self.iss + 1;
            self.cc = if initial {
                CongestionControl::new(algorithm, mss)
            } else {
                CongestionControl::with_window(algorithm, mss, cwnd)
            };
        }
    }

    /// Turns Nagle's algorithm on or off (`TCP_NODELAY` is `set_nagle(false)`).
    pub fn set_nagle(&mut self, on: bool) {
        self.cfg.nagle = on;
    }

    /// Turns keepalive on (with these settings) or off.
    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<Keepalive>) {
        self.cfg.keepalive = keepalive;
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
    pub fn close(&mut self, now: Instant) -> Result<(), TcpError> {
        if self.state == State::Closed {
            return Ok(());
        }
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
        if self.events == 0 {
            return None;
        }
        let i = self.events.trailing_zeros() as usize;
        self.events &= !(1 << i);
        Some(EVENT_ORDER[i])
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

    // ---------------------------------------------------------------- state helpers

    fn stop_timers(&mut self) {
        self.rtx_at = None;
        self.persist = Persist::default();
        self.force_probe = false;
        self.ack_at = None;
        self.keepalive_at = None;
        self.keepalive_probe = false;
        self.fin_wait2_until = None;
        self.rtx_next = None;
    }

    fn enter_closed(&mut self, _now: Instant, event: Option<Event>) {
        let was_open = self.state != State::Closed && self.state != State::TimeWait;
        self.state = State::Closed;
        self.stop_timers();
        self.time_wait_until = None;
        self.ack_pending = false;
        if let Some(e) = event {
            self.push_event(e);
        }
        if was_open {
            self.push_event(Event::Closed);
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.stop_timers();
        self.time_wait_until = Some(now + 2 * self.cfg.msl);
        self.push_event(Event::Closed);
    }

    fn enter_established(&mut self, now: Instant) {
        self.state = State::Established;
        self.start_congestion_control();
        self.arm_keepalive(now);
        self.push_event(Event::Connected);
        if self.fin_queued {
            self.state = State::FinWait1;
        }
    }

    /// The handshake is done and the MSS known: the initial window (RFC 6928), or one segment
    /// if the SYN or SYN-ACK had to be retransmitted (RFC 5681 §3.1).
    fn start_congestion_control(&mut self) {
        let mss = self.eff_mss();
        self.cc = if self.syn_retransmitted {
            CongestionControl::with_window(self.cfg.congestion, mss, mss)
        } else {
            CongestionControl::new(self.cfg.congestion, mss)
        };
    }

    /// Record the peer's SYN: IRS and the options it offered (RFC 9293 §3.10.7.2-3).
    fn take_peer_syn(&mut self, syn: &TcpRepr, now: Instant) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        // Our SYN (or SYN-ACK) offers the unscaled free space (RFC 7323 §2.2).
        self.rcv_adv = self.rcv_nxt + self.rx.free().min(65535);
        self.last_ack_sent = self.rcv_nxt;
        // RFC 9293 §3.7.1: MSS defaults to 536; never above what our MTU allows.
        let peer_mss = syn.max_seg_size.unwrap_or(536).max(64);
        self.snd_mss = peer_mss.min(self.cfg.mss);
        // Window scaling only if both sides offer it (RFC 7323 §2.2).
        match (syn.window_scale, self.offered_wscale) {
            (Some(peer), Some(ours)) => {
                self.snd_wscale = peer.min(14);
                self.rcv_wscale = ours;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.offered_wscale = None;
            }
        }
        self.ts = match (syn.timestamp, self.cfg.timestamps) {
            (Some(t), true) => Some(Timestamps {
                recent: t.tsval,
                recent_at: now,
                offset: self.ts_offset,
            }),
            _ => None,
        };
        self.sack_ok = syn.sack_permitted && self.cfg.sack;
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = syn.window_len as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = syn.seq_number;
    }

    /// The largest window the receive buffer allows right now.
    fn max_window(&self) -> usize {
        self.rx.free().min(65535usize << self.rcv_wscale)
    }

    /// Receive window for the acceptability test: what we advertised.
    fn rcv_wnd(&self) -> usize {
        self.rcv_adv - self.rcv_nxt
    }

    /// RFC 9293 §3.8.6.2.2: the window grows in steps of at least min(buffer/2, MSS).
    fn rcv_sws_threshold(&self) -> usize {
        (self.rx.capacity() / 2).min(self.cfg.mss as usize).max(1)
    }

    fn fin_seq(&self) -> SeqNumber {
        self.tx_seq + self.tx.len()
    }

    fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.fin_seq() + 1
    }

    fn has_sendable(&self) -> bool {
        let unsent = self.tx_seq + self.tx.len();
        self.snd_nxt < unsent || (self.fin_queued && self.snd_nxt <= self.fin_seq())
    }

    /// Payload bytes per full-sized segment: the MSS less the timestamps option.
    fn eff_mss(&self) -> usize {
        let options = if self.ts.is_some() { 12 } else { 0 };
        (self.snd_mss as usize).saturating_sub(options).max(1)
    }

    fn effective_cwnd(&self) -> usize {
        match self.recovery {
            Recovery::NewReno { cwnd } => cwnd,
            _ => self.cc.window(),
        }
    }

    /// RFC 5681 FlightSize: data sent and not yet acknowledged.
    fn flight_size(&self) -> usize {
        self.snd_max - self.snd_una
    }

    /// RFC 6675 §4 SetPipe: octets presumed in the network. Unsacked octets not presumed
    /// lost count once, octets retransmitted in this recovery once more.
    fn pipe(&self) -> usize {
        let mss = self.eff_mss();
        let mut pipe = 0;
        for hole in self.scoreboard.holes(self.snd_una, mss) {
            if !hole.lost {
                pipe += hole.end - hole.start;
            }
            let rtx_end = self.high_rxt.min(hole.end);
            if rtx_end > hole.start {
                pipe += rtx_end - hole.start;
            }
        }
        let top = self
            .scoreboard
            .high_sacked()
            .unwrap_or(self.snd_una)
            .max(self.snd_una);
        pipe + (self.snd_max - top)
    }

    fn challenge_ack(&mut self, now: Instant, counters: &mut Counters) {
        if now.saturating_since(self.challenge_window) >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.cfg.challenge_ack_limit {
            self.challenge_count += 1;
            self.ack_pending = true;
            counters.challenge_acks += 1;
            crate::trace::debug!(conn = %self.tuple, state = %self.state, "RFC 5961 challenge ACK");
        } else {
            counters.challenge_acks_suppressed += 1;
        }
    }

    fn ts_now(&self, now: Instant) -> u32 {
        // A 1 ms clock (RFC 7323 §5.4 allows 1 ms .. 1 s per tick).
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.cfg.keepalive
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
            )
        {
            self.keepalive_at = Some(now + ka.idle);
            self.keepalive_sent = 0;
        }
    }

    // ---------------------------------------------------------------- input

    /// Processes one segment for this connection (RFC 9293 §3.10.7).
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr, counters: &mut Counters) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(now, seg, counters),
            _ => {
                self.on_segment_synchronized(now, seg, counters);
                if self.state.is_synchronized() && self.state != State::TimeWait {
                    self.update_persist(now);
                }
            }
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpRepr, counters: &mut Counters) {
        let rst = seg.control == TcpControl::Rst;
        // First: the ACK must acknowledge our SYN.
        if let Some(ack) = seg.ack_number
            && (ack <= self.iss || ack > self.snd_max)
        {
            if !rst {
                self.rst_pending = Some(PendingRst {
                    seq: ack,
                    ack: None,
                });
            }
            return;
        }
        // Second: RST. Only with an acceptable ACK (RFC 5961 §3.2 keeps this rule).
        if rst {
            if seg.ack_number.is_some() {
                counters.resets_received += 1;
                self.tx.clear();
                self.enter_closed(now, Some(Event::Reset));
            }
            return;
        }
        // Fourth: SYN.
        if seg.control != TcpControl::Syn {
            return;
        }
        self.take_peer_syn(seg, now);
        match seg.ack_number {
            Some(ack) => {
                // Our SYN is acknowledged: ESTABLISHED.
                self.on_ack_advance(now, ack, seg.timestamp);
                self.snd_wl1 = seg.seq_number;
                self.snd_wl2 = ack;
                self.enter_established(now);
                self.ack_pending = true;
                if !seg.payload.is_empty() {
                    // Data on a SYN-ACK is legal; accept what fits.
                    self.receive_text(now, seg.seq_number + 1, seg.payload, false);
                }
            }
            None => {
                // Simultaneous open (RFC 9293 §3.5, Figure 8): SYN-RECEIVED, resend our SYN
                // with an ACK.
                self.state = State::SynReceived;
                self.snd_nxt = self.iss;
                self.rtx_at = None;
            }
        }
    }

    /// RFC 9293 §3.10.7.4: every state from SYN-RECEIVED on.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpRepr, counters: &mut Counters) {
        let rst = seg.control == TcpControl::Rst;
        let mut syn = seg.control == TcpControl::Syn;
        let fin = seg.control == TcpControl::Fin;
        let mut seq = seg.seq_number;

        if syn && seq == self.irs {
            if self.state == State::SynReceived && seg.ack_number.is_none() {
                // The peer retransmitted its SYN: our SYN-ACK was lost. Send it again.
                self.snd_nxt = self.iss;
                return;
            }
            if self.state == State::SynReceived {
                // The SYN-ACK of a simultaneous open: its SYN is a duplicate we already hold,
                // its ACK completes our handshake (RFC 9293 Figure 8, line 6).
                syn = false;
                seq += 1;
            }
        }
        let seg_len = seg.payload.len() + syn as usize + fin as usize;

        // RFC 7323 §3.2: once timestamps are negotiated every non-RST segment carries TSopt;
        // one without is silently dropped.
        if self.ts.is_some() && seg.timestamp.is_none() && !rst {
            counters.ts_missing_drops += 1;
            return;
        }

        // PAWS (RFC 7323 §5.3 R1): a segment whose TSval is older than TS.Recent is an old
        // duplicate. The comparison is modulo 2^32 (§5.2), so it holds across the wrap of the
        // timestamp clock; TS.Recent older than 24 days is invalid (§5.5).
        let mut ts_older_ok = false;
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.timestamp) {
            let stale = (seg_ts.tsval.wrapping_sub(ts.recent) as i32) < 0;
            let recent_valid =
                now.saturating_since(ts.recent_at) < Duration::from_secs(24 * 24 * 3600);
            ts_older_ok = !recent_valid;
            if stale && recent_valid && !rst {
                counters.paws_drops += 1;
                crate::trace::debug!(conn = %self.tuple, tsval = seg_ts.tsval, "drop: PAWS");
                self.ack_pending = true;
                return;
            }
        }

        // First: sequence number acceptability (RFC 9293 §3.10.7.4 table). A zero-length
        // segment exactly at the right edge is accepted too (as Linux does): a peer whose
        // send window we filled sends its ACKs there.
        let wnd = self.rcv_wnd();
        let in_window = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq >= self.rcv_nxt && seq <= self.rcv_nxt + wnd,
            (_, 0) => false,
            (_, _) => in_window(seq) || in_window(seq + (seg_len - 1)),
        };
        // A zero-window probe or a segment exactly at RCV.NXT is still processed for its ACK
        // and RST; its data is trimmed below.
        let acceptable = acceptable || (wnd == 0 && seq == self.rcv_nxt);
        if !acceptable {
            if !rst {
                counters.unacceptable_segments += 1;
                crate::trace::debug!(conn = %self.tuple, seq = seq.0, "drop: out of window");
                if seg_len > 0 && seq + seg_len <= self.rcv_nxt {
                    self.stats.duplicate_segments += 1;
                }
                self.ack_pending = true;
                // In TIME-WAIT a retransmitted FIN is below RCV.NXT: re-ACK and restart the
                // 2MSL timer (RFC 9293 §3.10.7.4, TIME-WAIT, FIN bit).
                if self.state == State::TimeWait && fin {
                    self.time_wait_until = Some(now + 2 * self.cfg.msl);
                }
            }
            return;
        }

        // TS.Recent update (RFC 7323 §4.3, §5.3 R3): from segments at or before
        // Last.ACK.sent whose TSval is not older, or any TSval once TS.Recent is invalid
        // (§5.5; Linux's `tcp_paws_check` does the same).
        if let (Some(ts), Some(seg_ts)) = (self.ts.as_mut(), seg.timestamp)
            && seq <= self.last_ack_sent
            && ((seg_ts.tsval.wrapping_sub(ts.recent) as i32) >= 0 || ts_older_ok)
        {
            ts.recent = seg_ts.tsval;
            ts.recent_at = now;
        }

        // Second: RST (RFC 5961 §3.2): exact match resets, in-window draws a challenge ACK.
        if rst {
            if seq == self.rcv_nxt {
                counters.resets_received += 1;
                self.tx.clear();
                let event = match self.state {
                    State::Closing | State::LastAck | State::TimeWait => None,
                    _ => Some(Event::Reset),
                };
                self.enter_closed(now, event);
            } else {
                self.challenge_ack(now, counters);
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, never abort.
        if syn {
            self.challenge_ack(now, counters);
            return;
        }

        // Fifth: ACK.
        let Some(ack) = seg.ack_number else {
            return;
        };
        // Anything acceptable from the peer shows it is alive.
        self.persist.unanswered = 0;
        if self.cfg.keepalive.is_some() && self.keepalive_at.is_some() {
            self.arm_keepalive(now);
        }
        if self.state == State::SynReceived {
            if self.snd_una < ack && ack <= self.snd_max {
                self.on_ack_advance(now, ack, seg.timestamp);
                let shift = if seg.control == TcpControl::Syn {
                    0
                } else {
                    self.snd_wscale
                };
                self.snd_wnd = (seg.window_len as u32) << shift;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.enter_established(now);
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                self.rst_pending = Some(PendingRst {
                    seq: ack,
                    ack: None,
                });
                return;
            }
        }
        // RFC 5961 §5.2: an ACK for data we never sent gets an ACK and is dropped; one older
        // than the largest window the peer ever offered too.
        if ack > self.snd_max {
            self.ack_pending = true;
            return;
        }
        let oldest = SeqNumber(self.snd_una.0.wrapping_sub(self.max_snd_wnd.max(1)));
        if ack < oldest {
            self.challenge_ack(now, counters);
            return;
        }
        self.process_ack(now, seg, seq, ack, fin);

        match self.state {
            State::FinWait1 if self.fin_acked() => {
                self.state = State::FinWait2;
                if self.app_closed {
                    self.fin_wait2_until = Some(now + self.cfg.fin_wait2_timeout);
                }
            }
            State::Closing if self.fin_acked() => {
                self.enter_time_wait(now);
                return;
            }
            State::LastAck if self.fin_acked() => {
                self.enter_closed(now, None);
                return;
            }
            _ => {}
        }

        // Seventh and eighth: segment text and FIN.
        if !seg.payload.is_empty() || fin {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.app_closed && !seg.payload.is_empty() && seq + seg_len > self.rcv_nxt {
                        // Nobody will read it: RST (RFC 9293 §3.10.7.4 / RFC 1122 §4.2.2.13).
                        self.abort(now);
                        return;
                    }
                    self.receive_text(now, seq, seg.payload, fin);
                }
                // The peer already sent FIN: text after it is ignored.
                _ => {}
            }
        }
        if self.rx_fin == Some(self.rcv_nxt) {
            self.receive_fin(now);
        }
    }

    /// The ACK field of an acceptable segment (RFC 9293 §3.10.7.4 fifth step), with loss
    /// detection: SACK blocks, duplicate ACKs, recovery entry and exit, window update.
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        seq: SeqNumber,
        ack: SeqNumber,
        fin: bool,
    ) {
        // The window field of a SYN is never scaled (RFC 7323 §2.2).
        let shift = if seg.control == TcpControl::Syn {
            0
        } else {
            self.snd_wscale
        };
        let window = (seg.window_len as u32) << shift;
        let window_update = self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack);
        // RFC 5681 §2: a duplicate ACK carries no data, no SYN/FIN, acknowledges SND.UNA with
        // data outstanding, and does not change the window.
        let duplicate = ack == self.snd_una
            && seg.payload.is_empty()
            && !fin
            && self.snd_una != self.snd_max
            && window == self.snd_wnd
            && self.persist.at.is_none();

        // SACK blocks (RFC 2018 §4): the scoreboard first, relative to the new SND.UNA.
        let mut sacked_new = false;
        if self.sack_ok {
            let base = ack.max(self.snd_una);
            for (l, r) in seg.sack_ranges.iter().flatten().copied() {
                if self.scoreboard.add(l, r, base, self.snd_max) {
                    sacked_new = true;
                    self.stats.sack_blocks_received += 1;
                }
            }
        }

        if ack > self.snd_una {
            self.on_ack_advance(now, ack, seg.timestamp);
        } else if duplicate {
            self.on_duplicate_ack(now);
        }

        // RFC 6675 §5: SACK can reveal a loss before three duplicate ACKs arrive (and with
        // data-carrying ACKs, which never count as duplicates).
        if self.sack_ok
            && self.recovery == Recovery::None
            && sacked_new
            && self.snd_una >= self.recover
            && self.scoreboard.is_lost(self.snd_una, self.eff_mss())
            && self.state.is_synchronized()
        {
            self.enter_recovery(now);
        }

        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if window_update {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            let room = (self.snd_una + self.snd_wnd as usize) - self.snd_nxt;
            if room > 0 && self.persist.at.is_some() {
                // The window opened: leave persist. A probe byte the peer did not take is
                // sent again as ordinary data.
                self.persist = Persist::default();
                self.force_probe = false;
                if self.snd_una < self.snd_max && self.rtx_at.is_none() {
                    self.snd_nxt = self.snd_una;
                }
            }
        }
    }

    /// RFC 5681 §3.2 / RFC 6582 §3.2: a duplicate ACK.
    fn on_duplicate_ack(&mut self, now: Instant) {
        self.dupacks += 1;
        self.stats.dup_acks += 1;
        match self.recovery {
            Recovery::NewReno { cwnd } => {
                // Step 4: each further duplicate ACK means a segment left the network.
                self.recovery = Recovery::NewReno {
                    cwnd: cwnd + self.eff_mss(),
                };
            }
            Recovery::Sack => {}
            Recovery::None => {
                // RFC 6582 §3.2 step 1: only if the ACK covers more than `recover` (no fast
                // retransmit for duplicates caused by a go-back-N after an RTO).
                if self.dupacks as usize == DUP_THRESH && self.snd_una > self.recover {
                    self.enter_recovery(now);
                }
            }
        }
    }

    /// Fast retransmit: enter NewReno (RFC 6582) or SACK (RFC 6675) loss recovery.
    fn enter_recovery(&mut self, now: Instant) {
        let mss = self.eff_mss();
        self.cc.on_congestion_event(now, self.flight_size(), mss);
        self.recover = self.snd_max;
        self.high_rxt = self.snd_una;
        self.stats.fast_retransmits += 1;
        // Karn: the timed segment may be retransmitted now.
        self.rtt_probe = None;
        self.recovery = if self.sack_ok {
            Recovery::Sack
        } else {
            // RFC 5681 §3.2 step 3: cwnd = ssthresh + 3 * SMSS.
            Recovery::NewReno {
                cwnd: self.cc.window() + DUP_THRESH * mss,
            }
        };
        // Retransmit the first unacknowledged segment at once, outside the window.
        self.rtx_next = Some(self.snd_una);
    }

    /// SND.UNA advances to `ack` (already checked: SND.UNA < ack <= SND.MAX).
    fn on_ack_advance(&mut self, now: Instant, ack: SeqNumber, ts: Option<TcpTimestamp>) {
        let flight_before = self.flight_size();
        let acked = ack - self.snd_una;
        // Data bytes acknowledged (the SYN and FIN occupy sequence space but no buffer).
        let mut acked_data = 0;
        if ack > self.tx_seq {
            acked_data = (ack - self.tx_seq).min(self.tx.len());
            self.tx.consume(acked_data);
            self.tx_seq += acked_data;
        }
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        if self.high_rxt < ack {
            self.high_rxt = ack;
        }
        self.scoreboard.advance(ack);
        if let Some(s) = self.rtx_next
            && s < ack
        {
            self.rtx_next = None;
        }
        // RTT sample: timestamps echo our clock (RFC 7323 §4.1); otherwise time one segment,
        // never a retransmitted one (Karn's rule, RFC 6298 §3).
        let mut sampled = false;
        if let (Some(t), Some(seg_ts)) = (self.ts, ts)
            && seg_ts.tsecr != 0
        {
            let sent = seg_ts.tsecr.wrapping_sub(t.offset);
            let elapsed = (now.total_millis() as u32).wrapping_sub(sent);
            if elapsed < 60_000 && self.rtx_count == 0 {
                self.rtt.sample(Duration::from_millis(elapsed as u64));
                sampled = true;
            }
        }
        if let Some((end, sent_at)) = self.rtt_probe
            && ack >= end
        {
            if !sampled {
                self.rtt.sample(now.saturating_since(sent_at));
            }
            self.rtt_probe = None;
        }
        self.rtx_count = 0;
        self.rtt.reset_backoff();
        self.dupacks = 0;

        let mss = self.eff_mss();
        match self.recovery {
            Recovery::None => {
                if acked_data > 0 && self.state.is_synchronized() {
                    let limited = self.cwnd_blocked || flight_before + 2 * mss >= self.cc.window();
                    self.cc
                        .on_ack(now, acked_data, mss, self.rtt.srtt(), limited);
                }
            }
            Recovery::NewReno { cwnd } => {
                if ack >= self.recover {
                    // Full ACK (RFC 6582 §3.2 step 3): leave recovery.
                    self.recovery = Recovery::None;
                    self.cc.on_recovery_exit(now, self.flight_size(), mss);
                } else {
                    // Partial ACK (step 4): retransmit the next hole, deflate by the amount
                    // acknowledged, add back one SMSS if at least that much was acknowledged.
                    self.rtx_next = Some(ack);
                    self.stats.partial_acks += 1;
                    let back = if acked >= mss { mss } else { 0 };
                    self.recovery = Recovery::NewReno {
                        cwnd: cwnd.saturating_sub(acked).max(mss) + back,
                    };
                }
            }
            Recovery::Sack => {
                if ack >= self.recover {
                    // RFC 6675 §5: the cumulative ACK covers RecoveryPoint.
                    self.recovery = Recovery::None;
                    self.cc.on_recovery_exit(now, self.flight_size(), mss);
                }
            }
        }

        // RFC 6298 §5.2-5.3: stop the timer when everything is acknowledged, else restart it.
        self.rtx_at = if self.snd_una < self.snd_max {
            Some(now + self.rtt.rto())
        } else {
            None
        };
        if self.want_writable && self.tx.free() > 0 && self.can_send() {
            self.want_writable = false;
            self.push_event(Event::Writable);
        }
    }

    /// Seventh step: segment text (and the FIN at its end), trimmed to the window, stored in
    /// order or out of order; then the ACK policy (RFC 5681 §4.2, RFC 1122 §4.2.3.2).
    fn receive_text(&mut self, now: Instant, seq: SeqNumber, payload: &[u8], fin: bool) {
        let end = seq + payload.len();
        if !payload.is_empty() && end <= self.rcv_nxt {
            // Entirely old: the peer missed our ACK. Tell it at once.
            self.stats.duplicate_segments += 1;
            self.ack_pending = true;
            return;
        }
        let (skip, offset) = if seq < self.rcv_nxt {
            (self.rcv_nxt - seq, 0)
        } else {
            (0, seq - self.rcv_nxt)
        };
        let data = &payload[skip.min(payload.len())..];
        // Trim to the window (never past the peer's FIN).
        let mut limit = self.rcv_wnd().min(self.rx.free());
        if let Some(f) = self.rx_fin {
            limit = limit.min(f - self.rcv_nxt);
        }
        let take = data.len().min(limit.saturating_sub(offset));
        let had_hole = self.rx.has_out_of_order();
        if take > 0 {
            match self.rx.write(offset, &data[..take]) {
                Ok(n) => {
                    if n > 0 {
                        self.rcv_nxt += n;
                        self.push_event(Event::Readable);
                    }
                }
                Err(_) => {
                    // Out of reassembly ranges: drop it, the peer retransmits.
                    self.stats.out_of_order_dropped += 1;
                    self.ack_pending = true;
                    return;
                }
            }
        }
        if fin && take == data.len() && offset + take <= limit && self.rx_fin.is_none() {
            self.rx_fin = Some(end);
        }
        if payload.is_empty() {
            if offset > 0 {
                self.ack_pending = true;
            }
            return;
        }
        self.rcv_mss = self.rcv_mss.max(payload.len());
        if offset > 0 {
            // RFC 5681 §4.2: an out-of-order segment is acknowledged at once (with SACK).
            self.stats.out_of_order_segments += 1;
            self.ack_pending = true;
            self.dup_acks_owed = self.dup_acks_owed.saturating_add(1).min(8);
        } else if had_hole || take < data.len() {
            // It filled (part of) a hole, or overran the window: acknowledge at once.
            self.ack_pending = true;
        } else {
            self.schedule_ack(now, take);
        }
    }

    /// Delayed ACK (RFC 1122 §4.2.3.2, RFC 5681 §4.2): at least every second full-sized
    /// segment, within `ack_delay`; at once during the quick-ACK start.
    fn schedule_ack(&mut self, now: Instant, len: usize) {
        self.rcv_unacked += len;
        // A segment within 40 option bytes of the largest seen counts as full-sized.
        if len + 40 >= self.rcv_mss {
            self.rcv_unacked_full += 1;
        }
        if self.quick_acks > 0 {
            self.quick_acks -= 1;
            self.ack_pending = true;
        } else if self.cfg.ack_delay.is_zero()
            || self.rcv_unacked_full >= 2
            || self.rcv_unacked >= 2 * self.rcv_mss
        {
            self.ack_pending = true;
        } else if self.ack_at.is_none() {
            self.ack_at = Some(now + self.cfg.ack_delay);
        }
    }

    /// Eighth step: the peer's FIN, now that everything before it has arrived.
    fn receive_fin(&mut self, now: Instant) {
        self.rx_fin = None;
        self.rcv_nxt += 1;
        // A FIN is acknowledged at once: nothing more will come to piggyback on.
        self.ack_pending = true;
        match self.state {
            State::SynReceived | State::Established => {
                self.state = State::CloseWait;
                self.push_event(Event::PeerClosed);
            }
            State::FinWait1 => {
                // Our FIN is not acknowledged yet (else we'd be in FIN-WAIT-2): CLOSING.
                self.state = State::Closing;
                self.push_event(Event::PeerClosed);
            }
            State::FinWait2 => {
                self.push_event(Event::PeerClosed);
                self.enter_time_wait(now);
            }
            _ => {}
        }
    }

    /// Arms or disarms the persist timer (RFC 9293 §3.8.6.1): armed while data waits, nothing
    /// is in flight under the retransmission timer, and the peer's window allows nothing
    /// worth sending (zero, or too small for sender SWS avoidance).
    fn update_persist(&mut self, now: Instant) {
        let data_end = self.tx_seq + self.tx.len();
        let blocked = self.rtx_at.is_none()
            && self.snd_nxt < data_end
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
            && {
                let room = (self.snd_una + self.snd_wnd as usize) - self.snd_nxt;
                let unsent = data_end - self.snd_nxt;
                room == 0
                    || (room < unsent.min(self.eff_mss())
                        && room < (self.max_snd_wnd as usize / 2).max(1))
            };
        if !blocked {
            if self.persist.at.is_some() {
                self.persist = Persist::default();
            }
            return;
        }
        if self.persist.at.is_none() {
            self.persist.at = Some(now + self.persist_interval());
        }
    }

    /// The RTO, doubled for every probe (RFC 9293 §3.8.6.1 "exponential backoff").
    fn persist_interval(&self) -> Duration {
        let base = self.rtt.base_rto().as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.persist.backoff.min(20));
        Duration::from_micros(backed).min(self.rtt.max_rto)
    }

    // ---------------------------------------------------------------- timers

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, counters: &mut Counters) {
        if let Some(t) = self.time_wait_until
            && now >= t
        {
            // 2MSL elapsed (RFC 9293 §3.10.8): delete the TCB.
            self.time_wait_until = None;
            self.state = State::Closed;
            return;
        }
        if let Some(t) = self.fin_wait2_until
            && now >= t
            && self.state == State::FinWait2
        {
            counters.fin_wait2_timeouts += 1;
            self.enter_closed(now, None);
            return;
        }
        if let Some(t) = self.ack_at
            && now >= t
        {
            self.ack_at = None;
            if !self.ack_pending {
                self.ack_pending = true;
                self.stats.delayed_acks += 1;
            }
        }
        if let Some(t) = self.keepalive_at
            && now >= t
        {
            self.on_keepalive_timer(now, counters);
            if self.state == State::Closed {
                return;
            }
        }
        if let Some(t) = self.persist.at
            && now >= t
        {
            self.on_persist_timer(now, counters);
            if self.state == State::Closed {
                return;
            }
        }
        if let Some(t) = self.rtx_at
            && now >= t
        {
            self.on_retransmit_timer(now, counters);
        }
    }

    /// RFC 1122 §4.2.3.6: probe an idle connection; end it after `probes` unanswered probes.
    fn on_keepalive_timer(&mut self, now: Instant, counters: &mut Counters) {
        let Some(ka) = self.cfg.keepalive else {
            self.keepalive_at = None;
            return;
        };
        if self.snd_una != self.snd_max || self.has_sendable() {
            // Data in flight or waiting: the retransmission or persist timer watches the
            // peer.
            self.keepalive_at = Some(now + ka.idle);
            self.keepalive_sent = 0;
            return;
        }
        if self.keepalive_sent >= ka.probes {
            counters.timeouts += 1;
            self.rst_pending = Some(PendingRst {
                seq: self.snd_max,
                ack: None,
            });
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.keepalive_probe = true;
        self.keepalive_at = Some(now + ka.interval);
    }

    fn on_persist_timer(&mut self, now: Instant, counters: &mut Counters) {
        self.persist.at = None;
        self.update_persist(now);
        if self.persist.at.is_none() {
            return;
        }
        // RFC 9293 §3.8.6.1: keep probing while the peer answers; give up after as many
        // unanswered probes as data retransmissions (Linux does the same).
        self.persist.unanswered = self.persist.unanswered.saturating_add(1);
        if self.persist.unanswered > self.cfg.data_retries {
            counters.timeouts += 1;
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        self.force_probe = true;
        self.persist.backoff = self.persist.backoff.saturating_add(1);
        self.persist.at = Some(now + self.persist_interval());
    }

    fn on_retransmit_timer(&mut self, now: Instant, counters: &mut Counters) {
        self.rtx_count += 1;
        self.stats.rto_expirations += 1;
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.data_retries,
        };
        if self.rtx_count > limit {
            counters.timeouts += 1;
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        counters.retransmit_timeouts += 1;
        crate::trace::debug!(conn = %self.tuple, state = %self.state, backoff = self.rtx_count, "retransmission timeout");
        if self.state.is_synchronized() {
            let mss = self.eff_mss();
            // RFC 5681 §3.1: ssthresh only on the first timeout of a segment; RFC 6582 §4 /
            // RFC 6675 §5.1: recovery ends, `recover` becomes the highest sequence sent.
            if self.rtx_count == 1 {
                self.cc.on_retransmit_timeout(now, self.flight_size(), mss);
            } else {
                // RFC 2018 §8: two timeouts in a row may mean the receiver reneged on what it
                // SACKed: forget it.
                self.scoreboard.clear();
                self.cc.on_retransmit_timeout(now, 0, mss);
            }
            self.recovery = Recovery::None;
            self.recover = self.snd_max;
            self.high_rxt = self.snd_una;
            self.dupacks = 0;
            self.rtx_next = None;
        } else {
            self.syn_retransmitted = true;
        }
        // RFC 6298 §5.4-5.6: retransmit the earliest unacknowledged segment, back off.
        self.rtt.back_off();
        self.rtt_probe = None;
        self.snd_nxt = self.snd_una;
        self.rtx_at = Some(now + self.rtt.rto());
    }

    // ---------------------------------------------------------------- output

    /// The next segment to send, if any. The payload borrows the send buffer; emit it before
    /// calling any other method.
    pub fn poll_transmit(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'_>> {
        if let Some(rst) = self.rst_pending.take() {
            counters.resets_sent += 1;
            return Some(TcpRepr {
                src_port: self.tuple.local_port,
                dst_port: self.tuple.remote_port,
                control: TcpControl::Rst,
                seq_number: rst.seq,
                ack_number: rst.ack,
                ..TcpRepr::default()
            });
        }
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => self.transmit_syn(now, counters),
            State::TimeWait => self.transmit_ack_only(now),
            _ => self.transmit_data(now, counters),
        }
    }

    /// SACK blocks for our next segment (RFC 2018 §4): the most recently changed first.
    fn sack_ranges(&self) -> [Option<(SeqNumber, SeqNumber)>; 3] {
        let mut ranges = [None; 3];
        if self.sack_ok && self.rx.has_out_of_order() {
            for (slot, (s, e)) in ranges.iter_mut().zip(self.rx.recent_ranges(3)) {
                *slot = Some((self.rcv_nxt + s, self.rcv_nxt + e));
            }
        }
        ranges
    }

    fn base_repr(&mut self, now: Instant) -> TcpRepr<'static> {
        let window = self.advertise_window();
        let sack_ranges = self.sack_ranges();
        TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            // SND.MAX, not SND.NXT: after an RTO rewinds SND.NXT, an ACK from below the
            // peer's RCV.NXT would be unacceptable to it and only draw another ACK.
            seq_number: self.snd_max,
            ack_number: Some(self.rcv_nxt),
            window_len: window,
            sack_ranges,
            timestamp: self.ts.map(|t| TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: t.recent,
            }),
            ..TcpRepr::default()
        }
    }

    /// Every segment we send acknowledges RCV.NXT: what was owed is paid.
    fn note_ack_sent(&mut self) {
        self.ack_pending = false;
        self.dup_acks_owed = 0;
        self.ack_at = None;
        self.rcv_unacked = 0;
        self.rcv_unacked_full = 0;
        self.last_ack_sent = self.rcv_nxt;
    }

    /// The window field for a non-SYN segment; moves RCV.ADV right but never left.
    fn advertise_window(&mut self) -> u16 {
        let max = self.max_window();
        let right = self.rcv_nxt + max;
        if right > self.rcv_adv {
            // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): only move the right edge by at
            // least min(buffer/2, MSS), or to the full buffer.
            let grow = right - self.rcv_adv;
            if grow >= self.rcv_sws_threshold() || max == self.rx.capacity() {
                self.rcv_adv = right;
            }
        }
        if self.rcv_adv < self.rcv_nxt {
            self.rcv_adv = self.rcv_nxt;
        }
        let wnd = (self.rcv_adv - self.rcv_nxt) >> self.rcv_wscale;
        wnd.min(65535) as u16
    }

    fn transmit_ack_only(&mut self, now: Instant) -> Option<TcpRepr<'static>> {
        if !self.ack_pending {
            return None;
        }
        let repr = self.base_repr(now);
        self.note_ack_sent();
        self.stats.pure_acks_sent += 1;
        Some(repr)
    }

    fn transmit_syn(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'static>> {
        if self.snd_nxt != self.iss {
            // SYN in flight: only a challenge ACK can be owed (SYN-RECEIVED).
            if self.state == State::SynReceived && self.ack_pending {
                let mut r = self.base_repr(now);
                self.note_ack_sent();
                r.window_len = self.rx.free().min(65535) as u16;
                return Some(r);
            }
            return None;
        }
        let retransmit = self.snd_max != self.iss;
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.rtx_at.is_none() {
            self.rtx_at = Some(now + self.rtt.rto());
        }
        if retransmit {
            counters.retransmits += 1;
            self.stats.retransmits += 1;
            self.syn_retransmitted = true;
        } else {
            self.rtt_probe = Some((self.iss + 1, now));
        }
        self.note_ack_sent();
        let synack = self.state == State::SynReceived;
        if synack {
            counters.synacks_sent += 1;
        }
        // In SYN-SENT we offer timestamps with TSecr 0; in SYN-RECEIVED only if negotiated.
        let timestamp = match (synack, self.ts, self.cfg.timestamps) {
            (true, Some(t), _) => Some(TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: t.recent,
            }),
            (false, _, true) => Some(TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: 0,
            }),
            _ => None,
        };
        Some(TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            control: TcpControl::Syn,
            psh: false,
            seq_number: self.iss,
            ack_number: synack.then_some(self.rcv_nxt),
            // Never scaled in a SYN (RFC 7323 §2.2).
            window_len: self.rx.free().min(65535) as u16,
            window_scale: self.offered_wscale,
            max_seg_size: Some(self.cfg.mss),
            sack_permitted: if synack { self.sack_ok } else { self.cfg.sack },
            sack_ranges: [None; 3],
            timestamp,
            payload: &[],
        })
    }

    /// The segment owed outside the congestion window (fast retransmit, partial ACK):
    /// from `seq`, at most one MSS, never into SACKed data.
    fn pick_owed(&mut self, mss: usize) -> Option<Pick> {
        let seq = self.rtx_next.take()?;
        if seq < self.snd_una || seq >= self.snd_max {
            return None;
        }
        Some(self.retransmission_at(seq, mss, self.snd_max))
    }

    /// A retransmission starting at `seq`, at most `mss` bytes, ending before `limit` and
    /// before the next SACKed range; with the FIN if it reaches it and the FIN was sent.
    fn retransmission_at(&self, seq: SeqNumber, mss: usize, limit: SeqNumber) -> Pick {
        let fin_seq = self.fin_seq();
        let mut end = limit.min(fin_seq).min(seq + mss);
        if let Some(s) = self.scoreboard.next_sacked_start(seq) {
            end = end.min(s);
        }
        let len = end - seq;
        let fin = self.fin_queued && seq + len == fin_seq && self.snd_max > fin_seq;
        Pick {
            seq,
            len,
            fin,
            advance: false,
            probe: false,
        }
    }

    /// RFC 6675 §4 NextSeg for SACK recovery, gated by cwnd - pipe >= the segment.
    fn pick_sack_recovery(&mut self, now: Instant, mss: usize) -> Option<Pick> {
        let cwnd = self.cc.window();
        let pipe = self.pipe();
        if pipe >= cwnd {
            self.cwnd_blocked = true;
            return None;
        }
        let room = cwnd - pipe;
        // Rule 1: the first lost byte above HighRxt.
        let mut rule3 = None;
        for hole in self.scoreboard.holes(self.snd_una, mss) {
            if hole.end <= self.high_rxt {
                continue;
            }
            let start = hole.start.max(self.high_rxt);
            if hole.lost {
                let p = self.retransmission_at(start, mss, hole.end);
                return (p.len <= room || room >= mss).then_some(p);
            }
            if rule3.is_none() {
                rule3 = Some(start);
            }
        }
        // Rule 2: new data, if the receiver's window allows.
        if let Some(p) = self.pick_from_snd_nxt(now, mss, room) {
            return Some(p);
        }
        // Rule 3: a hole not yet presumed lost.
        let start = rule3?;
        let p = self.retransmission_at(start, mss, self.snd_max);
        (p.len > 0 && (p.len <= room || room >= mss)).then_some(p)
    }

    /// The segment at SND.NXT: new data, or (after an RTO) go-back-N retransmission that
    /// skips SACKed ranges. Applies the receive window, the congestion window `cwnd_room`,
    /// sender SWS avoidance (RFC 9293 §3.8.6.2.1), Nagle, and zero-window probing.
    fn pick_from_snd_nxt(&mut self, now: Instant, mss: usize, cwnd_room: usize) -> Option<Pick> {
        // Never resend what the peer SACKed.
        while self.snd_nxt < self.snd_max {
            match self.scoreboard.sacked_end(self.snd_nxt) {
                Some(e) => self.snd_nxt = e.min(self.snd_max),
                None => break,
            }
        }
        let fin_seq = self.fin_seq();
        let avail = fin_seq - self.snd_nxt;
        let retransmitting = self.snd_nxt < self.snd_max;
        let right = self.snd_una + self.snd_wnd as usize;
        let mut room = right - self.snd_nxt;
        if retransmitting && (self.snd_nxt == self.snd_una || self.snd_nxt < right) {
            // Data below SND.MAX was inside a window the peer offered (and a receiver never
            // shrinks its right edge): retransmit it even if the window has since closed.
            room = room.max(self.snd_max - self.snd_nxt);
        }
        // A retransmission may run on into new data (e.g. a refused zero-window probe
        // byte followed by what the reopened window allows), never into SACKed data.
        let mut len = avail.min(mss).min(room);
        if retransmitting && let Some(s) = self.scoreboard.next_sacked_start(self.snd_nxt) {
            len = len.min(s - self.snd_nxt);
        }
        if self.force_probe && room == 0 && fin_seq > self.snd_una && self.rtx_at.is_none() {
            // Zero-window probe: one byte past the window (RFC 9293 §3.8.6.1): the byte at
            // SND.UNA if an earlier probe sent it, else the next new one.
            self.force_probe = false;
            self.stats.zero_window_probes += 1;
            let seq = if self.snd_nxt > self.snd_una {
                self.snd_una
            } else {
                self.snd_nxt
            };
            return Some(Pick {
                seq,
                len: 1,
                fin: false,
                advance: seq == self.snd_nxt,
                probe: true,
            });
        }
        if len > cwnd_room {
            self.cwnd_blocked = true;
            len = 0;
        } else if avail > 0 && !retransmitting {
            self.cwnd_blocked = false;
        }
        let in_flight = self.snd_una != self.snd_max;
        if !retransmitting && len > 0 && len < mss && len < avail {
            // Sender SWS avoidance: a window-limited runt only if it is at least half the
            // largest window the peer offered (RFC 9293 §3.8.6.2.1 (3)).
            if len < (self.max_snd_wnd as usize / 2).max(1) && !self.force_probe {
                len = 0;
            }
        }
        if !retransmitting
            && len > 0
            && len < mss
            && self.cfg.nagle
            && in_flight
            && !self.fin_queued
            && !self.force_probe
        {
            // Nagle (RFC 896): one small segment in flight at a time.
            len = 0;
        }
        if len == 0 && self.force_probe && avail > 0 && room > 0 && !retransmitting {
            // SWS override timer (RFC 9293 §3.8.6.2.1 (4)): send what the window allows.
            len = room.min(mss).min(avail).min(cwnd_room.max(1));
        }
        self.force_probe = false;
        let fin = self.fin_queued && self.snd_nxt + len == fin_seq && self.snd_una <= fin_seq;
        if len == 0 && !fin {
            return None;
        }
        if !retransmitting && !in_flight && len > 0 {
            // RFC 5681 §4.1: restart from the initial window after an idle RTO.
            if now.saturating_since(self.last_send) > self.rtt.rto() {
                self.cc.on_idle_restart(now, mss);
            }
        }
        Some(Pick {
            seq: self.snd_nxt,
            len,
            fin,
            advance: true,
            probe: false,
        })
    }

    fn transmit_data(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'_>> {
        // RFC 6691: options come out of the MSS.
        let options = TcpRepr {
            sack_ranges: self.sack_ranges(),
            timestamp: self.ts.map(|_| TcpTimestamp::default()),
            ..TcpRepr::default()
        }
        .options_len();
        let mss = (self.snd_mss as usize).saturating_sub(options).max(1);
        let pick = match self.pick_owed(mss) {
            Some(p) => Some(p),
            None => match self.recovery {
                Recovery::Sack => self.pick_sack_recovery(now, mss),
                _ => {
                    let sacked = self.scoreboard.sacked_below(self.snd_nxt);
                    let flight = (self.snd_nxt - self.snd_una).saturating_sub(sacked);
                    let room = self.effective_cwnd().saturating_sub(flight);
                    self.pick_from_snd_nxt(now, mss, room)
                }
            },
        };
        let Some(pick) = pick else {
            self.update_persist(now);
            if !self.keepalive_probe && !self.ack_pending {
                return None;
            }
            let mut repr = self.base_repr(now);
            if self.keepalive_probe {
                // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT - 1 (SND.MAX here), no data: the peer
                // answers with an ACK whether or not it is synchronized with us.
                self.keepalive_probe = false;
                self.stats.keepalive_probes += 1;
                repr.seq_number = SeqNumber(self.snd_max.0.wrapping_sub(1));
                self.note_ack_sent();
                self.stats.pure_acks_sent += 1;
                return Some(repr);
            }
            let owed = self.dup_acks_owed;
            self.note_ack_sent();
            if owed > 1 {
                // Another duplicate ACK follows this one.
                self.dup_acks_owed = owed - 1;
                self.ack_pending = true;
            }
            self.stats.pure_acks_sent += 1;
            return Some(repr);
        };
        self.keepalive_probe = false;
        let offset = pick.seq - self.tx_seq;
        let len = self.tx.contiguous_at(offset, pick.len).len();
        // A ring wrap can shorten the run: the FIN then waits for the next segment.
        let fin = pick.fin && len == pick.len;
        let seq_len = len + fin as usize;
        if seq_len == 0 && !self.ack_pending {
            return None;
        }
        let end = pick.seq + seq_len;
        if pick.probe {
            // Counted in zero_window_probes; the persist timer covers it.
        } else if pick.seq < self.snd_max {
            counters.retransmits += 1;
            self.stats.retransmits += 1;
            self.stats.bytes_retransmitted += len as u64;
            // Karn: a retransmission invalidates the timed segment.
            self.rtt_probe = None;
            if !pick.advance && end > self.high_rxt {
                self.high_rxt = end;
            }
        } else {
            self.stats.bytes_sent += len as u64;
            if self.rtt_probe.is_none() {
                self.rtt_probe = Some((end, now));
            }
        }
        if pick.advance || pick.probe {
            self.snd_nxt = self.snd_nxt.max(end);
        }
        self.snd_max = self.snd_max.max(end);
        if !pick.probe && self.rtx_at.is_none() && seq_len > 0 {
            self.rtx_at = Some(now + self.rtt.rto());
            self.persist = Persist::default();
        }
        if seq_len > 0 {
            self.last_send = now;
        } else {
            self.stats.pure_acks_sent += 1;
        }
        let mut repr = self.base_repr(now);
        self.note_ack_sent();
        repr.seq_number = pick.seq;
        repr.control = if fin {
            TcpControl::Fin
        } else {
            TcpControl::None
        };
        repr.psh = len > 0 && offset + len == self.tx.len();
        repr.payload = self.tx.contiguous_at(offset, len);
        Some(repr)
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn hot_fields_share_the_first_cache_lines() {
        let hot_end = offset_of!(Connection, rtx_next) + size_of::<Option<SeqNumber>>();
        println!(
            "control block {} bytes; hot part {hot_end} bytes; tx at {}, cc at {}, rtt at {}, scoreboard at {}, cfg at {}, stats at {}",
            size_of::<Connection>(),
            offset_of!(Connection, tx),
            offset_of!(Connection, cc),
            offset_of!(Connection, rtt),
            offset_of!(Connection, scoreboard),
            offset_of!(Connection, cfg),
            offset_of!(Connection, stats),
        );
        assert!(hot_end <= 3 * 64, "hot fields span {hot_end} bytes");
        // The reassembly ranges and SACK blocks are out of line.
        assert!(size_of::<Scoreboard>() <= 16);
        assert!(size_of::<RecvBuffer>() <= 64);
    }
}
