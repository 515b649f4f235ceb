//! The application side of the engine: the [`App`] trait, its [`AppEvent`]s, and [`Io`], the
//! per-core handle through which an application acts on its connections.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use super::handoff::HandoffStats;
use super::neighbor::Resolver;
use crate::stack::{ConnHandle, ListenerId, Stack, StackError};
use crate::tcp::{FourTuple, State};
use crate::time::Instant;

/// A per-core, run-to-completion application.
///
/// The engine creates one instance per core with the factory given to
/// [`Engine::start`](super::Engine::start), on that core's thread: an `App` need not be
/// `Send`, and shares nothing with the other cores. Callbacks run on the polling thread
/// between two polls; they must not block. Everything done through [`Io`] in a callback
/// goes out before the thread polls again.
///
/// # Example: an echo server
/// ```no_run
/// use xtcp::engine::{App, AppEvent, Engine, EngineConfig, Io};
///
/// struct Echo;
/// impl App for Echo {
///     fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
///         match ev {
///             AppEvent::Readable(c) | AppEvent::Writable(c) => {
///                 // Echo what fits into the send buffer. The rest stays unread (the receive
///                 // window closes), and the short send arms `Writable`, which resumes here.
///                 let mut buf = [0u8; 4096];
///                 loop {
///                     let n = io.recv_slice(c).len().min(buf.len());
///                     buf[..n].copy_from_slice(&io.recv_slice(c)[..n]);
///                     let sent = io.send(c, &buf[..n]).unwrap_or(0);
///                     io.consume(c, sent);
///                     if n == 0 || sent < n {
///                         break;
///                     }
///                 }
///             }
///             // The peer is done; close once its bytes are echoed (examples/echo.rs
///             // also handles a peer that half-closes while its echo is still queued).
///             AppEvent::PeerClosed(c) if io.recv_queue(c) == 0 => {
///                 let _ = io.close(c);
///             }
///             _ => {}
///         }
///     }
/// }
///
/// let mut cfg = EngineConfig::new("xt-a", "10.77.0.1".parse().unwrap());
/// cfg.ports = vec![7];
/// let engine = Engine::start(cfg, |_core| Echo).expect("start the engine");
/// engine.run_until_signal().expect("clean shutdown");
/// ```
pub trait App {
    /// Called once on the core's thread before its first poll (listeners are already open).
    fn on_start(&mut self, _io: &mut Io<'_>) {}

    /// Called for each event of one of this core's connections, in the order they happened.
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent);

    /// Called once per loop iteration after the events (so at least every idle wait, ~1 ms,
    /// when the engine backs off; continuously when busy-polling). Use it for timers and for
    /// starting client connections.
    fn on_tick(&mut self, _io: &mut Io<'_>) {}

    /// Whether the engine shows this application every frame ([`App::on_rx_frame`],
    /// [`App::on_tx_frame`]). Default false: the hooks are compiled out and cost nothing.
    /// For applications that watch or take frames themselves (a load generator counting the
    /// SYNs it sends, or taking the answers to raw frames it sent with [`Io::send_frame`]).
    const FRAME_HOOKS: bool = false;

    /// With [`App::FRAME_HOOKS`]: every frame this core's socket receives, before the stack
    /// (and before frames owned by another core are handed over). Return true to take it:
    /// the stack then never sees it. Runs inside the receive loop: keep it short.
    fn on_rx_frame(&mut self, _frame: &[u8]) -> bool {
        false
    }

    /// With [`App::FRAME_HOOKS`]: every frame the stack transmits on this core (not those
    /// of [`Io::send_frame`]).
    fn on_tx_frame(&mut self, _frame: &[u8]) {}
}

/// What happened to a connection. Each carries the connection's handle.
///
/// Order for one connection: `Accepted` or `Connected` first; then any of `Readable`,
/// `Writable`, `PeerClosed`; last exactly one of `Closed`, `Reset`, `TimedOut` (a reset or
/// timed-out connection may still be followed by `Closed`, which can be ignored). After the
/// last event the handle is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppEvent {
    /// A passive open completed: a new connection on one of the engine's listening ports.
    Accepted(ConnHandle),
    /// An active open ([`Io::connect`]) completed.
    Connected(ConnHandle),
    /// New bytes are in the receive buffer: read them with [`Io::recv_slice`] and
    /// [`Io::consume`] (or [`Io::recv`]). Bytes left unread stay there; the event fires
    /// again only when more arrive.
    Readable(ConnHandle),
    /// Send buffer space freed up after a [`Io::send`] that did not take everything.
    Writable(ConnHandle),
    /// The peer sent FIN: no more bytes will arrive. Sending may go on (half-close).
    PeerClosed(ConnHandle),
    /// The connection is finished (both directions closed cleanly, or aborted by us).
    Closed(ConnHandle),
    /// The peer reset the connection (or refused an active open).
    Reset(ConnHandle),
    /// A retransmission limit was reached, or the next hop of an active open did not resolve.
    TimedOut(ConnHandle),
}

impl AppEvent {
    /// The connection the event is about.
    pub fn conn(self) -> ConnHandle {
        match self {
            AppEvent::Accepted(c)
            | AppEvent::Connected(c)
            | AppEvent::Readable(c)
            | AppEvent::Writable(c)
            | AppEvent::PeerClosed(c)
            | AppEvent::Closed(c)
            | AppEvent::Reset(c)
            | AppEvent::TimedOut(c) => c,
        }
    }
}

/// Why [`Io::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The stack refused (this core's ports exhausted, table full, ...).
    Stack(StackError),
    /// An IPv6 destination on an engine without IPv6 addresses
    /// ([`EngineConfig::ipv6`](super::EngineConfig::ipv6) empty), or a source address of
    /// the other family than the destination.
    Family,
}

impl core::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectError::Stack(e) => write!(f, "{e}"),
            ConnectError::Family => write!(
                f,
                "address family: no IPv6 address configured, or source and destination of \
                 different families"
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

/// A dual-stack core's IPv6 half: its stack, its resolver (the kernel's Neighbor Discovery
/// entries over netlink) and its listeners.
pub(crate) struct Core6 {
    pub stack: Stack<Ipv6Addr>,
    pub resolver: Resolver<Ipv6Addr>,
    pub listeners: Vec<ListenerId>,
}

/// Runs `$body` with `$s` the stack that owns connection `$c` and `$h` its handle in that
/// stack: the IPv6 stack for indexes from `base6` on (see [`CoreState::base6`]), else the
/// IPv4 one. `mut` borrows the stack mutably.
macro_rules! on_stack {
    ($core:expr, $c:expr, mut |$s:ident, $h:ident| $body:expr) => {{
        let c: ConnHandle = $c;
        let base = $core.base6;
        match $core.v6.as_deref_mut() {
            Some(v6) if c.index() >= base as usize => {
                let $s = &mut v6.stack;
                let $h = c.unshifted(base).unwrap_or(c);
                $body
            }
            _ => {
                let $s = &mut $core.stack;
                let $h = c;
                $body
            }
        }
    }};
    ($core:expr, $c:expr, |$s:ident, $h:ident| $body:expr) => {{
        let c: ConnHandle = $c;
        let base = $core.base6;
        match $core.v6.as_deref() {
            Some(v6) if c.index() >= base as usize => {
                let $s = &v6.stack;
                let $h = c.unshifted(base).unwrap_or(c);
                $body
            }
            _ => {
                let $s = &$core.stack;
                let $h = c;
                $body
            }
        }
    }};
}

/// One core's state as the engine loop and [`Io`] share it.
pub(crate) struct CoreState {
    pub stack: Stack,
    pub resolver: Resolver,
    /// The IPv6 stack, when the engine has IPv6 addresses.
    pub v6: Option<Box<Core6>>,
    /// The application's handles of IPv6 connections are the IPv6 stack's, shifted up by
    /// this (the IPv4 stack's `max_connections`, above every IPv4 slot index), so that one
    /// handle type names either and indexes stay distinct ([`ConnHandle::shifted`]).
    pub base6: u32,
    pub now: Instant,
    pub queue: u32,
    pub queues: u32,
    /// Connections the application holds, by slot index (closed or aborted at shutdown).
    pub live: Vec<Option<ConnHandle>>,
    pub stop_requested: bool,
    /// The application's next deadline ([`Io::wake_at`]), cleared every iteration.
    pub wake: Option<Instant>,
    /// Frames handed between this core and the others.
    pub handoff: HandoffStats,
    /// The link's largest frame.
    pub max_frame_len: usize,
    /// Raw frames queued by [`Io::send_frame`] (bytes back to back) and their lengths.
    pub raw: Vec<u8>,
    pub raw_lens: Vec<usize>,
}

impl CoreState {
    /// A core's state before its first iteration.
    pub fn new(
        stack: Stack,
        resolver: Resolver,
        now: Instant,
        queue: u32,
        queues: u32,
        max_frame_len: usize,
    ) -> CoreState {
        let base6 = u32::try_from(stack.config().max_connections).unwrap_or(u32::MAX / 2);
        CoreState {
            stack,
            resolver,
            v6: None,
            base6,
            now,
            queue,
            queues,
            live: Vec::new(),
            stop_requested: false,
            wake: None,
            handoff: HandoffStats::default(),
            max_frame_len,
            raw: Vec::new(),
            raw_lens: Vec::new(),
        }
    }

    pub fn track(&mut self, h: ConnHandle) {
        let i = h.index();
        if self.live.len() <= i {
            self.live.resize(i + 1, None);
        }
        self.live[i] = Some(h);
    }

    /// The application's handle of the IPv6 stack's connection `h`.
    pub fn app_handle6(&self, h: ConnHandle) -> ConnHandle {
        h.shifted(self.base6)
    }

    /// Whether `h` names a connection of the IPv6 stack.
    pub fn is_v6(&self, h: ConnHandle) -> bool {
        self.v6.is_some() && h.index() >= self.base6 as usize
    }

    /// The earliest time either stack must be polled.
    pub fn poll_at(&self) -> Option<Instant> {
        let v4 = self.stack.poll_at();
        match &self.v6 {
            None => v4,
            Some(v6) => match (v4, v6.stack.poll_at()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    pub fn untrack(&mut self, h: ConnHandle) {
        if let Some(slot) = self.live.get_mut(h.index())
            && *slot == Some(h)
        {
            *slot = None;
        }
    }
}

/// The application's handle on its core: connections, time, and the engine.
///
/// Operations take effect when the callback returns (the engine transmits then). Methods on
/// a handle that is no longer valid return `Err(StackError::InvalidHandle)` or an empty/zero
/// result, never panic.
pub struct Io<'a> {
    pub(crate) core: &'a mut CoreState,
}

impl Io<'_> {
    /// The time of this loop iteration (the engine reads the clock once per iteration).
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// The receive queue (and so the core) this instance runs on, `0..queues`.
    pub fn queue(&self) -> u32 {
        self.core.queue
    }

    /// How many queues (cores) the engine runs.
    pub fn queues(&self) -> u32 {
        self.core.queues
    }

    /// Copies as much of `data` as fits into the send buffer; returns how much it took. A
    /// short count arms [`AppEvent::Writable`].
    pub fn send(&mut self, c: ConnHandle, data: &[u8]) -> Result<usize, StackError> {
        on_stack!(self.core, c, mut |s, h| s.send(h, data))
    }

    /// Free space in the send buffer (0 once the connection can no longer send).
    pub fn send_capacity(&self, c: ConnHandle) -> usize {
        on_stack!(self.core, c, |s, h| s
            .connection(h)
            .map_or(0, |conn| conn.send_capacity()))
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queue(&self, c: ConnHandle) -> usize {
        on_stack!(self.core, c, |s, h| s
            .connection(h)
            .map_or(0, |conn| conn.send_queue()))
    }

    /// The received bytes at the front of the receive buffer, borrowed in place (empty for an
    /// invalid handle). Follow with [`Io::consume`].
    pub fn recv_slice(&self, c: ConnHandle) -> &[u8] {
        on_stack!(self.core, c, |s, h| s.recv_slice(h).unwrap_or(&[]))
    }

    /// Marks the first `n` bytes of [`Io::recv_slice`] as read (opening the window).
    pub fn consume(&mut self, c: ConnHandle, n: usize) {
        let _ = on_stack!(self.core, c, mut |s, h| s.consume(h, n));
    }

    /// Copies received bytes into `buf`; returns how many.
    pub fn recv(&mut self, c: ConnHandle, buf: &mut [u8]) -> usize {
        on_stack!(self.core, c, mut |s, h| s.recv(h, buf).unwrap_or(0))
    }

    /// Bytes waiting in the receive buffer.
    pub fn recv_queue(&self, c: ConnHandle) -> usize {
        on_stack!(self.core, c, |s, h| s
            .connection(h)
            .map_or(0, |conn| conn.recv_queue()))
    }

    /// Half-close: FIN after the queued data; receiving goes on.
    pub fn shutdown(&mut self, c: ConnHandle) -> Result<(), StackError> {
        on_stack!(self.core, c, mut |s, h| s.shutdown(h))
    }

    /// Closes both directions (FIN after the queued data). Unread received bytes turn this
    /// into an abort, as in Linux: read or consume everything first.
    pub fn close(&mut self, c: ConnHandle) -> Result<(), StackError> {
        on_stack!(self.core, c, mut |s, h| s.close(h))
    }

    /// Aborts with RST.
    pub fn abort(&mut self, c: ConnHandle) -> Result<(), StackError> {
        on_stack!(self.core, c, mut |s, h| s.abort(h))
    }

    /// Opens a connection to `remote` (IPv4, or IPv6 when the engine has IPv6 addresses)
    /// from the engine's first address of that family and an ephemeral port. The
    /// next hop is resolved through the kernel (see [`neighbor`](super::neighbor)); events
    /// follow: [`AppEvent::Connected`], or [`AppEvent::Reset`] / [`AppEvent::TimedOut`].
    /// Works on every core: the port comes from this core's share of the ephemeral range
    /// (see "Active opens and queues" in the [engine docs](super)), and replies that reach
    /// another core are handed to this one.
    pub fn connect(&mut self, remote: impl Into<SocketAddr>) -> Result<ConnHandle, ConnectError> {
        self.open(None, remote.into())
    }

    /// [`Io::connect`] from `local`: one of the engine's addresses of the destination's
    /// family, or of [`EngineConfig::source_ips`](super::EngineConfig::source_ips) /
    /// [`EngineConfig::source_ips6`](super::EngineConfig::source_ips6).
    pub fn connect_from(
        &mut self,
        local: impl Into<IpAddr>,
        remote: impl Into<SocketAddr>,
    ) -> Result<ConnHandle, ConnectError> {
        self.open(Some(local.into()), remote.into())
    }

    fn open(
        &mut self,
        local: Option<IpAddr>,
        remote: SocketAddr,
    ) -> Result<ConnHandle, ConnectError> {
        let now = self.core.now;
        match remote {
            SocketAddr::V4(remote) => {
                let local = match local {
                    None => None,
                    Some(IpAddr::V4(ip)) => Some(ip),
                    Some(IpAddr::V6(_)) => return Err(ConnectError::Family),
                };
                let h = self
                    .core
                    .stack
                    .connect(now, local, remote)
                    .map_err(ConnectError::Stack)?;
                self.core.track(h);
                self.core
                    .resolver
                    .ensure(&mut self.core.stack, now, *remote.ip(), h);
                Ok(h)
            }
            SocketAddr::V6(remote) => {
                let local = match local {
                    None => None,
                    Some(IpAddr::V6(ip)) => Some(ip),
                    Some(IpAddr::V4(_)) => return Err(ConnectError::Family),
                };
                let v6 = self.core.v6.as_deref_mut().ok_or(ConnectError::Family)?;
                let h = v6
                    .stack
                    .connect(now, local, remote)
                    .map_err(ConnectError::Stack)?;
                v6.resolver.ensure(&mut v6.stack, now, *remote.ip(), h);
                let h = self.core.app_handle6(h);
                self.core.track(h);
                Ok(h)
            }
        }
    }

    /// The connection's TCP state; `None` once it is gone.
    pub fn state(&self, c: ConnHandle) -> Option<State> {
        on_stack!(self.core, c, |s, h| s.state(h))
    }

    /// Whether `c` is an IPv6 connection (the handle carries its family).
    pub fn is_ipv6(&self, c: ConnHandle) -> bool {
        self.core.is_v6(c)
    }

    /// The addresses of an IPv4 connection (local = ours); `None` for an IPv6 one (see
    /// [`Io::tuple6`], [`Io::local_addr`], [`Io::peer_addr`]).
    pub fn tuple(&self, c: ConnHandle) -> Option<FourTuple> {
        if self.core.is_v6(c) {
            return None;
        }
        self.core.stack.connection(c).map(|conn| conn.tuple())
    }

    /// The addresses of an IPv6 connection (local = ours); `None` for an IPv4 one.
    pub fn tuple6(&self, c: ConnHandle) -> Option<FourTuple<Ipv6Addr>> {
        let v6 = self.core.v6.as_deref()?;
        let h = c.unshifted(self.core.base6)?;
        v6.stack.connection(h).map(|conn| conn.tuple())
    }

    /// The remote end of an IPv4 connection (`None` for an IPv6 one: [`Io::peer_addr`]).
    pub fn peer(&self, c: ConnHandle) -> Option<SocketAddrV4> {
        self.tuple(c)
            .map(|t| SocketAddrV4::new(t.remote_addr, t.remote_port))
    }

    /// The remote end of the connection, either family.
    pub fn peer_addr(&self, c: ConnHandle) -> Option<SocketAddr> {
        match self.tuple6(c) {
            Some(t) => Some((t.remote_addr, t.remote_port).into()),
            None => self.peer(c).map(SocketAddr::V4),
        }
    }

    /// Our end of the connection, either family.
    pub fn local_addr(&self, c: ConnHandle) -> Option<SocketAddr> {
        match self.tuple6(c) {
            Some(t) => Some((t.local_addr, t.local_port).into()),
            None => self.tuple(c).map(|t| (t.local_addr, t.local_port).into()),
        }
    }

    /// Our address (the first configured).
    pub fn local_ip(&self) -> Ipv4Addr {
        self.core
            .stack
            .config()
            .ips
            .first()
            .copied()
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Our first IPv6 address, if the engine has any.
    pub fn local_ip6(&self) -> Option<Ipv6Addr> {
        self.core
            .v6
            .as_deref()?
            .stack
            .config()
            .ips6
            .first()
            .copied()
    }

    /// Asks the whole engine to shut down (as Ctrl-C would), e.g. when a client is done.
    pub fn stop_engine(&mut self) {
        self.core.stop_requested = true;
    }

    /// The core's IPv4 stack, for inspection (counters, connection details).
    pub fn stack(&self) -> &Stack {
        &self.core.stack
    }

    /// The core's IPv6 stack, when the engine has IPv6 addresses.
    pub fn stack6(&self) -> Option<&Stack<Ipv6Addr>> {
        self.core.v6.as_deref().map(|v6| &v6.stack)
    }

    /// Asks the core to poll again no later than `at` (an application timer, e.g. the next
    /// paced start of a client). In [`PollMode::Idle`](super::PollMode::Idle) the core's wait
    /// on its socket then ends at `at` (with microsecond resolution, the last 30 µs spun,
    /// since a timed sleep overshoots); otherwise the core polls anyway. Holds for this
    /// iteration only: set it again from every [`App::on_tick`].
    pub fn wake_at(&mut self, at: Instant) {
        self.core.wake = Some(self.core.wake.map_or(at, |w| w.min(at)));
    }

    /// Queues a raw Ethernet frame, sent as it is after the callbacks of this iteration (not
    /// seen by the stack or [`App::on_tx_frame`]). Returns false when `frame` is empty or
    /// longer than the link's largest frame.
    pub fn send_frame(&mut self, frame: &[u8]) -> bool {
        if frame.is_empty() || frame.len() > self.core.max_frame_len {
            return false;
        }
        self.core.raw.extend_from_slice(frame);
        self.core.raw_lens.push(frame.len());
        true
    }

    /// Frames this core handed to other cores, received from them, and dropped (see
    /// [`handoff`](super::handoff)).
    pub fn handoff_stats(&self) -> HandoffStats {
        self.core.handoff
    }
}
