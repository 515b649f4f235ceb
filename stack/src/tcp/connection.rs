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
//! Nothing here allocates after construction: the send and receive buffers are allocated once
//! when the connection is created.

use core::fmt;

use super::FourTuple;
use super::buffer::RingBuffer;
use super::counters::Counters;
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
    /// Data/FIN retransmissions before giving up (Linux `tcp_retries2`). Default 15.
    pub data_retries: u8,
    /// How long an orphaned FIN-WAIT-2 connection waits for the peer's FIN. Default 60 s.
    pub fin_wait2_timeout: Duration,
    /// Challenge ACKs per connection per second (RFC 5961 §7). Default 10.
    pub challenge_ack_limit: u32,
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
        }
    }
}

impl TcpConfig {
    /// The window scale shift we offer: the smallest that lets the receive buffer be advertised.
    fn offered_wscale(&self) -> Option<u8> {
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
    /// A retry limit was reached.
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

/// RFC 6298 retransmission timer state. The seam for full RTT estimation: samples come from
/// timestamps (RFC 7323 §4) or from timing one segment at a time (Karn's rule).
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u8,
}

impl RttEstimator {
    pub fn new(cfg: &TcpConfig) -> Self {
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            rto: cfg.initial_rto,
            min_rto: cfg.min_rto,
            max_rto: cfg.max_rto,
            backoff: 0,
        }
    }

    /// The current RTO, backoff included.
    pub fn rto(&self) -> Duration {
        let base = self.rto.as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(backed).min(self.max_rto)
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// RFC 6298 §2.2-2.3 with alpha = 1/8, beta = 1/4, K = 4, G = 1 ms.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros() as u64;
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
        self.rto = Duration::from_micros(rto).clamp(self.min_rto, self.max_rto);
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

/// A TCP connection (a transmission control block).
#[derive(Debug, Clone)]
pub struct Connection {
    tuple: FourTuple,
    state: State,
    cfg: TcpConfig,
    /// Created by a listener (passive open): a RST in SYN-RECEIVED returns to LISTEN, i.e. the
    /// entry is dropped silently.
    passive: bool,

    // Send sequence space (RFC 9293 §3.3.1).
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// One past the highest sequence number ever sent (SND.NXT can rewind on retransmit).
    snd_max: SeqNumber,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Sequence number of `tx`'s first byte.
    tx_seq: SeqNumber,
    tx: RingBuffer,

    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised; never moves left (RFC 9293 §3.8.6.2.2).
    rcv_adv: SeqNumber,
    rx: RingBuffer,

    // Negotiated options.
    /// Largest payload we put in a segment (options excluded).
    snd_mss: u16,
    snd_wscale: u8,
    rcv_wscale: u8,
    /// The shift we offered in our SYN (only meaningful until the handshake completes).
    offered_wscale: Option<u8>,
    ts: Option<Timestamps>,
    /// Our timestamp clock offset, chosen before we know whether timestamps are used.
    ts_offset: u32,
    sack_ok: bool,

    // Closing.
    /// The application called shutdown/close: a FIN follows the queued data.
    fin_queued: bool,
    /// The application called close: it reads no more (an orphan once the FIN is queued).
    app_closed: bool,

    // Timers.
    rtt: RttEstimator,
    rtx_at: Option<Instant>,
    rtx_count: u8,
    /// Karn's rule: the segment being timed (its end sequence and send time).
    rtt_probe: Option<(SeqNumber, Instant)>,
    time_wait_until: Option<Instant>,
    fin_wait2_until: Option<Instant>,
    /// Send one byte past a zero window when the persist timer fires (RFC 9293 §3.8.6.1).
    force_probe: bool,

    // Output owed.
    ack_pending: bool,
    rst_pending: Option<PendingRst>,

    // RFC 5961 §7 challenge ACK limiter.
    challenge_window: Instant,
    challenge_count: u32,

    events: u8,
    want_writable: bool,
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
            rx: RingBuffer::new(cfg.recv_buffer),
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
            time_wait_until: None,
            fin_wait2_until: None,
            force_probe: false,
            ack_pending: false,
            rst_pending: None,
            challenge_window: now,
            challenge_count: 0,
            events: 0,
            want_writable: false,
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

    /// Passive open from a listener: `syn` is the peer's SYN (already checked to be a SYN
    /// without ACK for this 4-tuple). The connection is in SYN-RECEIVED with the SYN-ACK ready.
    pub fn accept(
        cfg: &TcpConfig,
        tuple: FourTuple,
        syn: &TcpRepr,
        iss: SeqNumber,
        ts_offset: u32,
        now: Instant,
    ) -> Self {
        let mut c = Connection::new(cfg, tuple, iss, ts_offset, now);
        c.state = State::SynReceived;
        c.passive = true;
        c.offered_wscale = cfg.offered_wscale();
        c.take_peer_syn(syn, now);
        c
    }

    /// A passive connection whose handshake the listener completed (from a compact
    /// SYN-RECEIVED entry or a validated SYN cookie, RFC 4987 §3.6): ESTABLISHED at once.
    /// `ack` is the peer's final ACK; `peer_mss` and the options come from the SYN (or the
    /// cookie). Payload or FIN on `ack` is not consumed: pass `ack` to `handle_segment` too.
    #[allow(clippy::too_many_arguments)]
    pub fn from_handshake(
        cfg: &TcpConfig,
        tuple: FourTuple,
        ack: &TcpRepr,
        iss: SeqNumber,
        peer_mss: u16,
        wscale: Option<u8>,
        sack_permitted: bool,
        ts_offset: u32,
        now: Instant,
    ) -> Self {
        let mut c = Connection::new(cfg, tuple, iss, ts_offset, now);
        c.passive = true;
        c.irs = SeqNumber(ack.seq_number.0.wrapping_sub(1));
        c.rcv_nxt = ack.seq_number;
        c.rcv_adv = c.rcv_nxt;
        c.snd_una = iss + 1;
        c.snd_nxt = iss + 1;
        c.snd_max = iss + 1;
        c.tx_seq = iss + 1;
        c.snd_mss = peer_mss.min(cfg.mss);
        if let (Some(peer), Some(ours)) = (wscale, cfg.offered_wscale()) {
            c.snd_wscale = peer.min(14);
            c.rcv_wscale = ours;
        }
        c.sack_ok = sack_permitted && cfg.sack;
        if let (Some(ts), true) = (ack.timestamp, cfg.timestamps) {
            c.ts = Some(Timestamps {
                recent: ts.tsval,
                recent_at: now,
                offset: ts_offset,
            });
        }
        c.state = State::Established;
        c.snd_wnd = (ack.window_len as u32) << c.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = ack.seq_number;
        c.snd_wl2 = iss + 1;
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
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    /// The peer's send window as we see it (scaled).
    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
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
    /// True after `close()`: nobody will read this connection again.
    pub fn is_orphan(&self) -> bool {
        self.app_closed
    }
    /// When TIME-WAIT ends, if in TIME-WAIT.
    pub fn time_wait_until(&self) -> Option<Instant> {
        self.time_wait_until
    }
    /// True when `poll_transmit` has something to send right now.
    pub fn wants_transmit(&self) -> bool {
        self.rst_pending.is_some()
            || self.ack_pending
            || self.force_probe
            || match self.state {
                State::SynSent | State::SynReceived => self.snd_nxt == self.iss,
                State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck => self.has_sendable(),
                _ => false,
            }
    }

    /// The earliest time `handle_timeout` must be called, if any.
    pub fn poll_at(&self) -> Option<Instant> {
        [self.rtx_at, self.time_wait_until, self.fin_wait2_until]
            .into_iter()
            .flatten()
            .min()
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
        let threshold = (self.rx.capacity() / 2).min(self.cfg.mss as usize);
        if potential > self.rcv_adv && potential - self.rcv_adv >= threshold {
            self.ack_pending = true;
        }
    }

    /// shutdown(SHUT_WR): queue a FIN after the data already queued (RFC 9293 §3.10.4).
    /// Receiving continues (half-close).
    pub fn shutdown(&mut self, now: Instant) -> Result<(), TcpError> {
        match self.state {
            State::SynSent => {
                // Nothing was synchronized: just forget the connection.
                self.enter_closed(now, None);
                Ok(())
            }
            State::SynReceived => {
                // RFC 9293 §3.10.4: queue the FIN until ESTABLISHED (enter_established moves
                // on to FIN-WAIT-1).
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
                    seq: self.snd_nxt,
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

    /// Exchanges the send and receive buffers with `tx` and `rx`: a stack recycles the
    /// (allocated) buffers of finished connections into new ones so that churn allocates
    /// nothing per connection. Swap in only empty buffers of the configured capacities
    /// (`TcpConfig::send_buffer`, `recv_buffer`), before the connection holds data; buffers
    /// swapped out may hold stale bytes (clear them before reuse).
    pub fn swap_buffers(&mut self, tx: &mut RingBuffer, rx: &mut RingBuffer) {
        core::mem::swap(&mut self.tx, tx);
        core::mem::swap(&mut self.rx, rx);
    }

    // ---------------------------------------------------------------- state helpers

    fn enter_closed(&mut self, _now: Instant, event: Option<Event>) {
        let was_open = self.state != State::Closed && self.state != State::TimeWait;
        self.state = State::Closed;
        self.rtx_at = None;
        self.time_wait_until = None;
        self.fin_wait2_until = None;
        self.force_probe = false;
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
        self.rtx_at = None;
        self.fin_wait2_until = None;
        self.force_probe = false;
        self.time_wait_until = Some(now + 2 * self.cfg.msl);
        self.push_event(Event::Closed);
    }

    fn enter_established(&mut self) {
        self.state = State::Established;
        self.push_event(Event::Connected);
        if self.fin_queued {
            self.state = State::FinWait1;
        }
    }

    /// Record the peer's SYN: IRS and the options it offered (RFC 9293 §3.10.7.2-3).
    fn take_peer_syn(&mut self, syn: &TcpRepr, now: Instant) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
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

    fn challenge_ack(&mut self, now: Instant, counters: &mut Counters) {
        if now.saturating_since(self.challenge_window) >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.cfg.challenge_ack_limit {
            self.challenge_count += 1;
            self.ack_pending = true;
            counters.challenge_acks += 1;
        } else {
            counters.challenge_acks_suppressed += 1;
        }
    }

    fn ts_now(&self, now: Instant) -> u32 {
        // A 1 ms clock (RFC 7323 §5.4 allows 1 ms .. 1 s per tick).
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    // ---------------------------------------------------------------- input

    /// Processes one segment for this connection (RFC 9293 §3.10.7).
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr, counters: &mut Counters) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(now, seg, counters),
            _ => self.on_segment_synchronized(now, seg, counters),
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
                self.enter_established();
                self.ack_pending = true;
                if !seg.payload.is_empty() {
                    // Data on a SYN-ACK is legal; accept what fits.
                    self.accept_data(seg.seq_number + 1, seg.payload);
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

        // PAWS (RFC 7323 §5.3): a segment whose TSval is older than TS.Recent is an old
        // duplicate. TS.Recent older than 24 days is invalid (§5.5).
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.timestamp) {
            let stale = (seg_ts.tsval.wrapping_sub(ts.recent) as i32) < 0;
            let recent_valid =
                now.saturating_since(ts.recent_at) < Duration::from_secs(24 * 24 * 3600);
            if stale && recent_valid && !rst {
                counters.paws_drops += 1;
                self.ack_pending = true;
                return;
            }
        }

        // First: sequence number acceptability (RFC 9293 §3.10.7.4 table).
        let wnd = self.rcv_wnd();
        let in_window = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_window(seq),
            (_, 0) => false,
            (_, _) => in_window(seq) || in_window(seq + (seg_len - 1)),
        };
        // A zero-window probe or a segment exactly at RCV.NXT is still processed for its ACK
        // and RST; its data is trimmed below.
        let acceptable = acceptable || (wnd == 0 && seq == self.rcv_nxt);
        if !acceptable {
            if !rst {
                counters.unacceptable_segments += 1;
                self.ack_pending = true;
                // In TIME-WAIT a retransmitted FIN is below RCV.NXT: re-ACK and restart the
                // 2MSL timer (RFC 9293 §3.10.7.4, TIME-WAIT, FIN bit).
                if self.state == State::TimeWait && fin {
                    self.time_wait_until = Some(now + 2 * self.cfg.msl);
                }
            }
            return;
        }

        // TS.Recent update (RFC 7323 §4.3): only from segments at or before RCV.NXT.
        if let (Some(ts), Some(seg_ts)) = (self.ts.as_mut(), seg.timestamp)
            && seq <= self.rcv_nxt
        {
            ts.recent = seg_ts.tsval;
            ts.recent_at = now;
        }

        // Second: RST (RFC 5961 §3.2): exact match resets, in-window draws a challenge ACK.
        if rst {
            if seq == self.rcv_nxt {
                counters.resets_received += 1;
                if self.state == State::SynReceived && self.passive {
                    // Return to LISTEN: the half-open connection disappears silently.
                    self.clear_events();
                    self.state = State::Closed;
                    self.rtx_at = None;
                    return;
                }
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
            if self.state == State::SynReceived && self.passive {
                // RFC 9293 §3.10.7.4: return to LISTEN.
                self.clear_events();
                self.state = State::Closed;
                self.rtx_at = None;
                return;
            }
            self.challenge_ack(now, counters);
            return;
        }

        // Fifth: ACK.
        let Some(ack) = seg.ack_number else {
            return;
        };
        // The window field of a SYN is never scaled (RFC 7323 §2.2).
        let wnd_shift = if seg.control == TcpControl::Syn {
            0
        } else {
            self.snd_wscale
        };
        if self.state == State::SynReceived {
            if self.snd_una < ack && ack <= self.snd_max {
                self.on_ack_advance(now, ack, seg.timestamp);
                self.snd_wnd = (seg.window_len as u32) << wnd_shift;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.enter_established();
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
        if ack > self.snd_una {
            self.on_ack_advance(now, ack, seg.timestamp);
        } else if ack == self.snd_una && self.snd_wnd == 0 {
            // The peer answered a zero-window probe: it is alive (persist never times out
            // while the peer answers, RFC 9293 §3.8.6.1).
            self.rtx_count = 0;
        }
        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.snd_wnd = (seg.window_len as u32) << wnd_shift;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if self.snd_wnd > 0 {
                self.force_probe = false;
            }
        }
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
        self.arm_persist(now);

        // Seventh: segment text.
        if !seg.payload.is_empty() {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.app_closed {
                        // Nobody will read it: RST (RFC 9293 §3.10.7.4 / RFC 1122 §4.2.2.13).
                        self.abort(now);
                        return;
                    }
                    self.accept_data(seq, seg.payload);
                }
                // The peer already sent FIN: text after it is ignored.
                _ => {}
            }
        }

        // Eighth: FIN, only once everything before it has arrived.
        if fin && seq + seg.payload.len() == self.rcv_nxt {
            self.rcv_nxt += 1;
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
                State::TimeWait => {
                    // Unreachable: a retransmitted FIN is below RCV.NXT (handled above).
                    self.time_wait_until = Some(now + 2 * self.cfg.msl);
                }
                _ => {}
            }
        }
    }

    /// Accepts in-order payload starting at `seq`; out-of-order data is not buffered yet
    /// (dropped and answered by a duplicate ACK).
    fn accept_data(&mut self, seq: SeqNumber, payload: &[u8]) {
        self.ack_pending = true;
        if seq > self.rcv_nxt {
            return;
        }
        let skip = self.rcv_nxt - seq;
        if skip >= payload.len() {
            return;
        }
        let n = self.rx.enqueue(&payload[skip..]);
        if n > 0 {
            self.rcv_nxt += n;
            self.push_event(Event::Readable);
        }
    }

    /// SND.UNA advances to `ack` (already checked: SND.UNA < ack <= SND.MAX).
    fn on_ack_advance(&mut self, now: Instant, ack: SeqNumber, ts: Option<TcpTimestamp>) {
        // Data bytes acknowledged (the SYN and FIN occupy sequence space but no buffer).
        if ack > self.tx_seq {
            let n = (ack - self.tx_seq).min(self.tx.len());
            self.tx.consume(n);
            self.tx_seq += n;
        }
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
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

    /// Arms the persist timer when the peer's window is zero and data waits (RFC 9293
    /// §3.8.6.1).
    fn arm_persist(&mut self, now: Instant) {
        if self.snd_wnd == 0
            && self.snd_una == self.snd_max
            && self.has_sendable()
            && self.rtx_at.is_none()
        {
            self.rtx_at = Some(now + self.rtt.rto());
        }
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
        let Some(t) = self.rtx_at else {
            return;
        };
        if now < t {
            return;
        }
        // Zero-window persist: probe instead of retransmitting.
        if self.snd_wnd == 0 && self.snd_una == self.snd_max && self.has_sendable() {
            self.force_probe = true;
            self.rtt.back_off();
            self.rtx_at = Some(now + self.rtt.rto());
            return;
        }
        self.rtx_count += 1;
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.data_retries,
        };
        if self.rtx_count > limit {
            counters.timeouts += 1;
            if self.state == State::SynReceived && self.passive {
                self.clear_events();
                self.state = State::Closed;
                self.rtx_at = None;
                return;
            }
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        counters.retransmit_timeouts += 1;
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

    fn base_repr(&mut self, now: Instant) -> TcpRepr<'static> {
        let window = self.advertise_window();
        TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            seq_number: self.snd_nxt,
            ack_number: Some(self.rcv_nxt),
            window_len: window,
            timestamp: self.ts.map(|t| TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: t.recent,
            }),
            ..TcpRepr::default()
        }
    }

    /// The window field for a non-SYN segment; moves RCV.ADV right but never left.
    fn advertise_window(&mut self) -> u16 {
        let max = self.max_window();
        let right = self.rcv_nxt + max;
        if right > self.rcv_adv {
            // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): only move the right edge by at
            // least min(buffer/2, MSS), or to the full buffer.
            let grow = right - self.rcv_adv;
            let threshold = (self.rx.capacity() / 2).min(self.cfg.mss as usize);
            if grow >= threshold || max == self.rx.capacity() || self.rcv_adv <= self.rcv_nxt {
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
        self.ack_pending = false;
        Some(self.base_repr(now))
    }

    fn transmit_syn(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'static>> {
        if self.snd_nxt != self.iss {
            // SYN in flight: only a challenge ACK can be owed (SYN-RECEIVED).
            if self.state == State::SynReceived && self.ack_pending {
                self.ack_pending = false;
                let mut r = self.base_repr(now);
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
        } else {
            self.rtt_probe = Some((self.iss + 1, now));
        }
        self.ack_pending = false;
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

    fn transmit_data(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'_>> {
        let tx_end = self.tx_seq + self.tx.len();
        let offset = self.snd_nxt - self.tx_seq;
        let unsent = self.tx.len().saturating_sub(offset);
        let right_edge = self.snd_una + self.snd_wnd as usize;
        let mut room = if self.snd_nxt < right_edge {
            right_edge - self.snd_nxt
        } else {
            0
        };
        if self.force_probe && room == 0 && unsent > 0 {
            // Zero-window probe: one byte past the window (RFC 9293 §3.8.6.1).
            room = 1;
        }
        self.force_probe = false;
        let options_len = if self.ts.is_some() { 12 } else { 0 };
        let mss = (self.snd_mss as usize).saturating_sub(options_len).max(1);
        let want = unsent.min(room).min(mss);
        let len = self.tx.contiguous_at(offset, want).len();
        // FIN rides on the segment that carries the last queued byte (or goes alone).
        let fin = self.fin_queued && self.snd_nxt + len == tx_end;
        if len == 0 && !fin && !self.ack_pending {
            return None;
        }
        let mut repr = self.base_repr(now);
        let seq_len = len + fin as usize;
        if seq_len > 0 {
            if self.snd_nxt < self.snd_max {
                counters.retransmits += 1;
            } else if self.rtt_probe.is_none() {
                self.rtt_probe = Some((self.snd_nxt + seq_len, now));
            }
            self.snd_nxt += seq_len;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rtx_at.is_none() {
                self.rtx_at = Some(now + self.rtt.rto());
            }
        }
        self.ack_pending = false;
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
