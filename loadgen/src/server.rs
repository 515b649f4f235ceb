//! `kernel-server`: the Linux reference server for fair comparisons with xtcp's examples.
//!
//! One thread per listener, each with its own SO_REUSEPORT listening socket (the kernel spreads
//! incoming connections over them) and its own epoll loop, pinned to a core of `--cores`.
//! Modes:
//! - `echo` writes back what it reads. After the peer's FIN it finishes sending what is
//!   pending, then closes (half-close honoured), so a client that closes first ends in
//!   TIME-WAIT.
//! - `respond-close` reads a request (through the blank line `\r\n\r\n`; a request that does
//!   not start like an HTTP request ends at the end of its first read burst), writes a fixed
//!   `HTTP/1.1 200` response with `Connection: close`, and closes first, so TIME-WAIT lands on
//!   the server. Everything readable is read before closing, so the close is a FIN, never an
//!   RST.
//!
//! Counters (accepted, closed, bytes) are written as JSON to `--stats FILE` once a second and
//! at exit, atomically (write + rename), with `"server": "linux"` and the namespace's
//! `time_wait` count so the load generator can read it like the xtcp server's stats file.

use crate::sys;
use crate::util;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Echo bytes back; close after the peer's FIN once everything is sent.
    Echo,
    /// Read a request, send an HTTP/1.1 200 with `Connection: close`, close first.
    RespondClose,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::RespondClose => "respond-close",
        }
    }
}

pub struct ServerConfig {
    /// IPv4 or IPv6 (`::` listens on both families).
    pub ip: IpAddr,
    pub port: u16,
    pub mode: Mode,
    pub threads: usize,
    pub cores: Vec<usize>,
    pub stats: Option<PathBuf>,
    pub body_bytes: usize,
}

#[derive(Default)]
#[repr(align(128))]
struct Counters {
    accepted: AtomicU64,
    closed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Pending output beyond which an echo connection stops reading (backpressure).
const MAX_PENDING: usize = 4 << 20;
const LISTENER: u64 = u64::MAX;

fn listener(addr: SocketAddr) -> Result<RawFd, String> {
    let fd = sys::tcp_socket_for(addr.ip()).map_err(|e| format!("socket: {e}"))?;
    let setup = sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .and_then(|()| sys::set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1))
        .and_then(|()| sys::bind(fd, addr))
        .and_then(|()| sys::listen(fd, 4096));
    if let Err(e) = setup {
        sys::close(fd);
        return Err(format!("cannot listen on {addr}: {e}"));
    }
    Ok(fd)
}

/// Runs until SIGINT/SIGTERM.
pub fn serve(cfg: ServerConfig) -> Result<(), String> {
    util::install_stop_handler();
    sys::raise_nofile_limit();
    let threads = cfg.threads.max(1);
    let first = listener(SocketAddr::new(cfg.ip, cfg.port))?;
    // With port 0 the first bind picks the port; the other listeners share it.
    let port = sys::local_addr(first)
        .map_err(|e| format!("getsockname: {e}"))?
        .port();
    let mut fds = vec![first];
    for _ in 1..threads {
        fds.push(listener(SocketAddr::new(cfg.ip, port))?);
    }

    let started = Instant::now();
    let counters: Arc<Vec<Counters>> =
        Arc::new((0..threads).map(|_| Counters::default()).collect());
    let response = Arc::new(http_response(cfg.body_bytes));
    let mut handles = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        let core = (!cfg.cores.is_empty()).then(|| cfg.cores[i % cfg.cores.len()]);
        let counters = Arc::clone(&counters);
        let response = Arc::clone(&response);
        let mode = cfg.mode;
        let h = std::thread::Builder::new()
            .name(format!("server-{i}"))
            .spawn(move || {
                sys::pin_to(core);
                let r = serve_thread(fd, mode, &counters[i], &response);
                sys::close(fd);
                r
            })
            .map_err(|e| format!("cannot start server thread: {e}"))?;
        handles.push((core, h));
    }

    let cores: Vec<Option<usize>> = handles.iter().map(|(c, _)| *c).collect();
    let write = |final_: bool| {
        if let Some(path) = &cfg.stats
            && let Err(e) = write_stats(path, &cfg, port, started, &counters, &cores, final_)
        {
            eprintln!(
                "xtcp-loadgen kernel-server: cannot write {}: {e}",
                path.display()
            );
        }
    };
    // The stats file exists before anyone is told the server is up.
    write(false);
    println!(
        "xtcp-loadgen kernel-server listening on {} mode {} threads {threads}",
        SocketAddr::new(cfg.ip, port),
        cfg.mode.name()
    );
    let _ = std::io::stdout().flush();
    let mut next = Instant::now() + Duration::from_secs(1);
    while !util::stop_requested() && !handles.iter().any(|(_, h)| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next {
            write(false);
            next += Duration::from_secs(1);
        }
    }
    let mut result = Ok(());
    for (_, h) in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err("server thread panicked".into()),
        }
    }
    write(true);
    result
}

fn http_response(body: usize) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    r.extend(std::iter::repeat_n(b'x', body));
    r
}

fn write_stats(
    path: &Path,
    cfg: &ServerConfig,
    port: u16,
    started: Instant,
    counters: &[Counters],
    cores: &[Option<usize>],
    final_: bool,
) -> std::io::Result<()> {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let per: Vec<serde_json::Value> = counters
        .iter()
        .zip(cores)
        .map(|(c, core)| {
            serde_json::json!({
                "core": core,
                "accepted": get(&c.accepted),
                "closed": get(&c.closed),
                "bytes_in": get(&c.bytes_in),
                "bytes_out": get(&c.bytes_out),
            })
        })
        .collect();
    let sum = |f: fn(&Counters) -> &AtomicU64| counters.iter().map(|c| get(f(c))).sum::<u64>();
    let accepted = sum(|c| &c.accepted);
    let closed = sum(|c| &c.closed);
    let v = serde_json::json!({
        "server": "linux",
        "mode": cfg.mode.name(),
        "listen": SocketAddr::new(cfg.ip, port).to_string(),
        "uptime_s": started.elapsed().as_secs_f64(),
        "final": final_,
        "accepted": accepted,
        "closed": closed,
        "open": accepted.saturating_sub(closed),
        "bytes_in": sum(|c| &c.bytes_in),
        "bytes_out": sum(|c| &c.bytes_out),
        "time_wait": crate::probe::time_wait_here(),
        "time_wait_bytes_per_entry": crate::probe::kernel_tw_bytes(),
        "cores": per,
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&v)?)?;
    std::fs::rename(&tmp, path)
}

struct SrvConn {
    pending: Vec<u8>,
    peer_fin: bool,
    got: usize,
    /// How much of `\r\n\r\n` the request's tail matches.
    crlf: u8,
    http: bool,
    responded: bool,
}

fn serve_thread(lfd: RawFd, mode: Mode, ctr: &Counters, response: &[u8]) -> Result<(), String> {
    let mut ep = sys::Epoll::new(512).map_err(|e| format!("epoll: {e}"))?;
    ep.add(lfd, libc::EPOLLIN as u32, LISTENER)
        .map_err(|e| format!("epoll_ctl: {e}"))?;
    let mut conns: Vec<Option<SrvConn>> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ready: Vec<(u32, u64)> = Vec::with_capacity(512);
    while !util::stop_requested() {
        ready.clear();
        for ev in ep
            .wait(Duration::from_millis(100))
            .map_err(|e| format!("epoll_wait: {e}"))?
        {
            ready.push((ev.events, ev.u64));
        }
        for &(_, token) in &ready {
            if token == LISTENER {
                // Bounded batch: level-triggered, so the rest is reported again next turn.
                for _ in 0..256 {
                    match sys::accept(lfd) {
                        Ok(Some(fd)) => {
                            ctr.accepted.fetch_add(1, Ordering::Relaxed);
                            let ev =
                                (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET)
                                    as u32;
                            if ep.add(fd, ev, fd as u64).is_err() {
                                sys::close(fd);
                                ctr.closed.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            let i = fd as usize;
                            if conns.len() <= i {
                                conns.resize_with(i + 1, || None);
                            }
                            conns[i] = Some(SrvConn {
                                pending: Vec::new(),
                                peer_fin: false,
                                got: 0,
                                crlf: 0,
                                http: false,
                                responded: false,
                            });
                        }
                        Ok(None) => break,
                        // ECONNABORTED and friends concern one connection; EMFILE clears as
                        // connections close.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let fd = token as RawFd;
            let Some(Some(c)) = conns.get_mut(fd as usize) else {
                continue;
            };
            if drive(fd, c, mode, ctr, response, &mut buf) {
                conns[fd as usize] = None;
                sys::close(fd);
                ctr.closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for (fd, c) in conns.iter().enumerate() {
        if c.is_some() {
            sys::close(fd as RawFd);
            ctr.closed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Flushes pending output; `Err` means the connection is dead.
fn flush(fd: RawFd, c: &mut SrvConn, ctr: &Counters) -> Result<(), ()> {
    let mut off = 0;
    while off < c.pending.len() {
        match sys::write(fd, &c.pending[off..]) {
            Ok(Some(n)) => {
                off += n;
                ctr.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(None) => break,
            Err(_) => return Err(()),
        }
    }
    c.pending.drain(..off);
    Ok(())
}

/// Advances one connection; returns true when it should be closed.
fn drive(
    fd: RawFd,
    c: &mut SrvConn,
    mode: Mode,
    ctr: &Counters,
    response: &[u8],
    buf: &mut [u8],
) -> bool {
    if flush(fd, c, ctr).is_err() {
        return true;
    }
    while c.pending.len() < MAX_PENDING && !c.peer_fin {
        match sys::read(fd, buf) {
            Ok(Some(0)) => c.peer_fin = true,
            Ok(Some(n)) => {
                ctr.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                let data = &buf[..n];
                match mode {
                    Mode::Echo => {
                        c.pending.extend_from_slice(data);
                        if flush(fd, c, ctr).is_err() {
                            return true;
                        }
                    }
                    Mode::RespondClose => {
                        if c.got == 0 {
                            c.http = data[0].is_ascii_uppercase();
                        }
                        c.got += n;
                        for &b in data {
                            c.crlf = match (c.crlf, b) {
                                (4, _) => 4,
                                (0 | 2, b'\r') => c.crlf + 1,
                                (1 | 3, b'\n') => c.crlf + 1,
                                (_, b'\r') => 1,
                                _ => 0,
                            };
                        }
                    }
                }
            }
            Ok(None) => break,
            Err(_) => return true,
        }
    }
    if mode == Mode::RespondClose
        && !c.responded
        && c.got > 0
        && (c.crlf == 4 || !c.http || c.peer_fin)
    {
        c.responded = true;
        c.pending.extend_from_slice(response);
        if flush(fd, c, ctr).is_err() {
            return true;
        }
    }
    let done_sending = c.pending.is_empty();
    match mode {
        Mode::Echo => c.peer_fin && done_sending,
        Mode::RespondClose => (c.responded && done_sending) || (c.peer_fin && c.got == 0),
    }
}
