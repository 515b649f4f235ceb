//! Streams and listeners over the core's stack: [`TcpListener`], [`TcpStream`], and the
//! reactor that turns the engine's [`AppEvent`]s into wake-ups.
//!
//! Every method reaches the stack through the core's [`Io`], which the engine lends to the
//! application only during its callbacks. [`RtApp`](super::RtApp) publishes it in a
//! thread-local for exactly the time it polls tasks ([`with_io`] panics outside that time,
//! which only code running outside any task can observe). Nothing here is `Send`: streams
//! and listeners stay on the core that made them.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::engine::{AppEvent, Io};
use crate::stack::{ConnHandle, StackError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Connecting,
    Open,
    Closed,
    Reset,
    TimedOut,
}

/// What the reactor knows of one connection a stream (or a backlog) holds.
struct ConnSlot {
    handle: ConnHandle,
    status: Status,
    peer_closed: bool,
    read: Option<Waker>,
    write: Option<Waker>,
}

struct ListenerSlot {
    port: u16,
    backlog: VecDeque<ConnHandle>,
    waker: Option<Waker>,
}

/// One core's reactor state. Lives in a thread-local; borrowed briefly, never across an
/// `.await` or a poll.
#[derive(Default)]
pub(crate) struct Reactor {
    /// By `ConnHandle::index()`.
    conns: Vec<Option<ConnSlot>>,
    listeners: Vec<ListenerSlot>,
}

thread_local! {
    static REACTOR: RefCell<Reactor> = RefCell::new(Reactor::default());
    /// The core's `Io`, type- and lifetime-erased, while `RtApp` polls tasks; null otherwise.
    static IO: Cell<*mut ()> = const { Cell::new(std::ptr::null_mut()) };
}

/// Publishes `io` to the tasks polled inside `f`.
pub(crate) fn lend_io<R>(io: &mut Io<'_>, f: impl FnOnce() -> R) -> R {
    struct Reset(*mut ());
    impl Drop for Reset {
        fn drop(&mut self) {
            IO.set(self.0);
        }
    }
    let _reset = Reset(IO.replace((io as *mut Io<'_>).cast()));
    f()
}

/// Runs `f` with the core's `Io`, if the calling code runs inside a task on an `xtcp::rt`
/// core; `None` otherwise (e.g. a stream dropped after its core stopped).
fn try_with_io<R>(f: impl FnOnce(&mut Io<'_>) -> R) -> Option<R> {
    let p = IO.replace(std::ptr::null_mut());
    if p.is_null() {
        return None;
    }
    struct Restore(*mut ());
    impl Drop for Restore {
        fn drop(&mut self) {
            IO.set(self.0);
        }
    }
    let _restore = Restore(p);
    // Safety: `p` was published by `lend_io` from a live `&mut Io` that outlives the tasks
    // it polls, and is taken out of the cell for the duration of `f` (restored after), so
    // this is the only reference derived from it: a nested call finds null.
    let io = unsafe { &mut *p.cast::<Io<'_>>() };
    Some(f(io))
}

pub(crate) fn with_core_io<R>(f: impl FnOnce(&mut Io<'_>) -> R) -> R {
    with_io(f)
}

fn with_io<R>(f: impl FnOnce(&mut Io<'_>) -> R) -> R {
    try_with_io(f).expect("xtcp::rt I/O used outside a task on an xtcp::rt core")
}

fn with_reactor<R>(f: impl FnOnce(&mut Reactor) -> R) -> R {
    REACTOR.with_borrow_mut(f)
}

impl Reactor {
    fn slot(&mut self, c: ConnHandle) -> Option<&mut ConnSlot> {
        self.conns
            .get_mut(c.index())
            .and_then(Option::as_mut)
            .filter(|s| s.handle == c)
    }

    fn insert(&mut self, c: ConnHandle, status: Status) {
        let i = c.index();
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(ConnSlot {
            handle: c,
            status,
            peer_closed: false,
            read: None,
            write: None,
        });
    }

    fn remove(&mut self, c: ConnHandle) {
        if self.slot(c).is_some() {
            self.conns[c.index()] = None;
        }
    }

    /// Drops every connection and listener (the core is stopping; the engine closes the
    /// connections themselves).
    pub(crate) fn clear(&mut self) {
        self.conns.clear();
        self.listeners.clear();
    }

    /// Routes one engine event: new connections to their listener's backlog (reset when no
    /// listener is bound to the port), everything else to the wakers of the stream.
    pub(crate) fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        let c = ev.conn();
        if let AppEvent::Accepted(c) = ev {
            let port = io.tuple(c).map(|t| t.local_port);
            match self.listeners.iter_mut().find(|l| Some(l.port) == port) {
                Some(l) => {
                    l.backlog.push_back(c);
                    if let Some(w) = l.waker.take() {
                        w.wake();
                    }
                    self.insert(c, Status::Open);
                }
                None => {
                    let _ = io.abort(c);
                }
            }
            return;
        }
        let Some(s) = self.slot(c) else {
            return; // a connection no stream holds any more
        };
        let (read, write) = match ev {
            AppEvent::Accepted(_) => unreachable!("handled above"),
            AppEvent::Connected(_) => {
                s.status = Status::Open;
                (false, true)
            }
            AppEvent::Readable(_) => (true, false),
            AppEvent::Writable(_) => (false, true),
            AppEvent::PeerClosed(_) => {
                s.peer_closed = true;
                (true, false)
            }
            AppEvent::Closed(_) => {
                s.status = Status::Closed;
                (true, true)
            }
            AppEvent::Reset(_) => {
                s.status = Status::Reset;
                (true, true)
            }
            AppEvent::TimedOut(_) => {
                s.status = Status::TimedOut;
                (true, true)
            }
        };
        if read && let Some(w) = s.read.take() {
            w.wake();
        }
        if write && let Some(w) = s.write.take() {
            w.wake();
        }
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn status_error(status: Status) -> Option<io::Error> {
    match status {
        Status::Reset => Some(io::ErrorKind::ConnectionReset.into()),
        Status::TimedOut => Some(io::ErrorKind::TimedOut.into()),
        _ => None,
    }
}

fn stack_error(e: StackError) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e.to_string())
}

/// Accepts the connections the engine opens on one of its listening ports, on this core.
///
/// The port must be one of [`EngineConfig::ports`](crate::engine::EngineConfig::ports):
/// the engine listens and steers, the listener only claims the accepted connections. Each
/// core binds its own listener (thread per core, like `SO_REUSEPORT`); a connection
/// accepted on a port no listener of its core holds is reset.
pub struct TcpListener {
    port: u16,
    _not_send: PhantomData<Rc<()>>,
}

impl TcpListener {
    /// Claims the engine's connections to `addr`'s port on this core (the engine's address
    /// is the only one; `addr`'s IP is not checked). Fails with `AddrInUse` if this core
    /// already has a listener on the port, `Unsupported` for an IPv6 address.
    pub fn bind(addr: impl Into<SocketAddr>) -> io::Result<TcpListener> {
        let SocketAddr::V4(addr) = addr.into() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "xtcp is IPv4 only",
            ));
        };
        let port = addr.port();
        with_reactor(|r| {
            if r.listeners.iter().any(|l| l.port == port) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("port {port} already has a listener on this core"),
                ));
            }
            r.listeners.push(ListenerSlot {
                port,
                backlog: VecDeque::new(),
                waker: None,
            });
            Ok(TcpListener {
                port,
                _not_send: PhantomData,
            })
        })
    }

    /// The next accepted connection and its peer.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddrV4)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll form of [`Self::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddrV4)>> {
        loop {
            let next = with_reactor(|r| {
                let l = r.listeners.iter_mut().find(|l| l.port == self.port)?;
                match l.backlog.pop_front() {
                    Some(c) => Some(Some(c)),
                    None => {
                        register(&mut l.waker, cx);
                        Some(None)
                    }
                }
            });
            match next {
                None => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                Some(None) => return Poll::Pending,
                Some(Some(c)) => {
                    // Reset while in the backlog: the stack may already have freed it.
                    if let Some(peer) = with_io(|io| io.peer(c)) {
                        return Poll::Ready(Ok((TcpStream::new(c), peer)));
                    }
                    with_reactor(|r| r.remove(c));
                }
            }
        }
    }

    /// The port this listener claims.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let backlog = with_reactor(|r| {
            let i = r.listeners.iter().position(|l| l.port == self.port)?;
            let l = r.listeners.swap_remove(i);
            for &c in &l.backlog {
                r.remove(c);
            }
            Some(l.backlog)
        });
        if let Some(backlog) = backlog {
            let _ = try_with_io(|io| {
                for c in backlog {
                    let _ = io.abort(c);
                }
            });
        }
    }
}

/// A TCP connection on this core, as tokio's [`AsyncRead`](tokio::io::AsyncRead) +
/// [`AsyncWrite`](tokio::io::AsyncWrite) (and `futures-io`'s with the `futures-io`
/// feature).
///
/// - Reading copies from the stack's receive buffer (one copy, the same as a kernel
///   socket); 0 bytes read means the peer sent FIN.
/// - Writing copies into the stack's send buffer; when it is full the write is pending until
///   the peer acknowledges (back-pressure), never buffered elsewhere.
/// - `poll_flush` is immediate: written bytes go out when the engine loop transmits, at the
///   end of the current iteration.
/// - `poll_shutdown` is a half-close (FIN after the queued bytes); reading goes on.
/// - Dropping closes the connection (FIN; RST if received bytes were left unread, as Linux
///   does).
pub struct TcpStream {
    conn: ConnHandle,
    _not_send: PhantomData<Rc<()>>,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("conn", &self.conn)
            .finish()
    }
}

impl TcpStream {
    fn new(conn: ConnHandle) -> TcpStream {
        TcpStream {
            conn,
            _not_send: PhantomData,
        }
    }

    /// Opens a connection to `addr` from the engine's address (the engine must run a single
    /// queue, see [`Io::connect`]).
    pub async fn connect(addr: SocketAddrV4) -> io::Result<TcpStream> {
        let conn = with_io(|io| io.connect(addr)).map_err(io::Error::other)?;
        with_reactor(|r| r.insert(conn, Status::Connecting));
        // From here the stream owns the connection: dropping the future closes it.
        let stream = TcpStream::new(conn);
        poll_fn(|cx| -> Poll<io::Result<()>> {
            with_reactor(|r| {
                let Some(s) = r.slot(conn) else {
                    return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
                };
                match s.status {
                    Status::Connecting => {
                        register(&mut s.write, cx);
                        Poll::Pending
                    }
                    Status::Open => Poll::Ready(Ok(())),
                    Status::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionRefused.into())),
                    Status::TimedOut => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                    Status::Closed => Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into())),
                }
            })
        })
        .await?;
        Ok(stream)
    }

    /// The remote end.
    pub fn peer_addr(&self) -> io::Result<SocketAddrV4> {
        with_io(|io| io.peer(self.conn)).ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// The engine's handle of this connection.
    pub fn handle(&self) -> ConnHandle {
        self.conn
    }

    /// Reads into `buf`; `Ready(Ok(0))` at end of stream (or for an empty `buf`).
    pub fn poll_read_slice(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = with_io(|io| io.recv(self.conn, buf));
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        self.poll_nothing_buffered(cx).map_ok(|()| 0)
    }

    /// With the receive buffer empty: `Ready(Ok)` at end of stream, the error of a reset or
    /// timed-out connection, else registers the reader's waker.
    fn poll_nothing_buffered(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_reactor(|r| {
            let Some(s) = r.slot(self.conn) else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            if let Some(e) = status_error(s.status) {
                return Poll::Ready(Err(e));
            }
            if s.peer_closed || s.status == Status::Closed {
                return Poll::Ready(Ok(()));
            }
            register(&mut s.read, cx);
            Poll::Pending
        })
    }

    /// Writes what fits of `bufs` into the send buffer, in order.
    pub fn poll_write_bufs(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let sent = with_io(|io| {
            let mut total = 0;
            for b in bufs {
                let n = io.send(self.conn, b)?;
                total += n;
                if n < b.len() {
                    break;
                }
            }
            Ok::<_, StackError>(total)
        });
        match sent {
            Ok(n) if n > 0 => Poll::Ready(Ok(n)),
            Ok(_) => with_reactor(|r| {
                let Some(s) = r.slot(self.conn) else {
                    return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
                };
                if let Some(e) = status_error(s.status) {
                    return Poll::Ready(Err(e));
                }
                if s.status == Status::Closed {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                // The short send armed `Writable`.
                register(&mut s.write, cx);
                Poll::Pending
            }),
            Err(e) => Poll::Ready(Err(with_reactor(|r| {
                r.slot(self.conn)
                    .and_then(|s| status_error(s.status))
                    .unwrap_or_else(|| stack_error(e))
            }))),
        }
    }

    /// Half-close: FIN after the queued bytes. Idempotent.
    pub fn poll_shutdown_write(&self) -> Poll<io::Result<()>> {
        let _ = with_io(|io| io.shutdown(self.conn));
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        with_reactor(|r| r.remove(self.conn));
        let _ = try_with_io(|io| io.close(self.conn));
    }
}

impl tokio::io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Copy straight from the stack's borrowed receive buffer into the unfilled part:
        // no zeroing of the caller's (possibly large, uninitialised) buffer first.
        let n = with_io(|io| {
            let mut total = 0;
            while buf.remaining() > 0 {
                let data = io.recv_slice(self.conn);
                let n = data.len().min(buf.remaining());
                if n == 0 {
                    break;
                }
                buf.put_slice(&data[..n]);
                io.consume(self.conn, n);
                total += n;
            }
            total
        });
        if n > 0 {
            return Poll::Ready(Ok(()));
        }
        self.poll_nothing_buffered(cx)
    }
}

impl tokio::io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_write()
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_slice(cx, buf)
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_write()
    }
}

/// Routes an engine event to the reactor (used by `RtApp`).
pub(crate) fn dispatch(io: &mut Io<'_>, ev: AppEvent) {
    with_reactor(|r| r.on_event(io, ev));
}

/// Forgets every stream and listener of this core (used when the core's app is dropped).
pub(crate) fn reset_reactor() {
    with_reactor(Reactor::clear);
}
