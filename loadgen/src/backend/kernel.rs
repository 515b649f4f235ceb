//! Kernel-socket backend: one epoll loop per worker, non-blocking connects.
//!
//! The connections' workload state machine is the shared one ([`super::workload`]); this
//! file holds what differs: kernel sockets as its [`Transport`] and the epoll loop. Sockets
//! are registered once, edge-triggered, for in/out/rdhup; the transport remembers an edge
//! until a read or write returns EAGAIN, so no `epoll_ctl` happens after the first. A
//! connecting socket's first writable edge is checked with `SO_ERROR`.
//!
//! Teardown is a graceful client close (`shutdown(SHUT_WR)`, then wait for the peer's FIN, then
//! `close`), never an RST: the client's socket ends in TIME-WAIT exactly as after a plain
//! `close()`, but the teardown becomes observable (close latency, teardowns/s) and no unread
//! data can turn the close into a reset. In `server-close` the server's FIN ends the
//! connection; the client then closes and its socket goes through LAST-ACK to CLOSED.

use super::workload::{Machine, Recv, Sources, St, Transport};
use super::{Backend, BackendKind, LoadSpec, Share, Worker, WorkerCtx, Workload};
use crate::metrics::{Counter, FailCause, Recorder};
use crate::sys;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub struct KernelBackend;

impl Backend for KernelBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kernel
    }

    fn prepare(&mut self, spec: &LoadSpec) -> Result<Vec<Box<dyn Worker>>, String> {
        if spec.vlan.is_some() {
            return Err(
                "--vlan needs --backend xtcp (kernel sockets: use a VLAN interface instead)".into(),
            );
        }
        if spec.pcap.is_some() {
            return Err(
                "--pcap needs --backend xtcp (kernel sockets: capture with tcpdump instead)".into(),
            );
        }
        if spec.workload == Workload::SynFlood {
            return Err(
                "workload syn-flood needs --backend xtcp: kernel sockets cannot send SYNs from \
                 spoofed sources"
                    .into(),
            );
        }
        if spec.syn_flood_rate.is_some() {
            return Err(
                "--syn-flood-rate needs --backend xtcp: kernel sockets cannot send SYNs \
                        from spoofed sources"
                    .into(),
            );
        }
        sys::raise_nofile_limit();
        Ok((0..spec.workers())
            .map(|_| Box::new(KernelWorker) as Box<dyn Worker>)
            .collect())
    }
}

struct KernelWorker;

impl Worker for KernelWorker {
    fn run(self: Box<Self>, ctx: WorkerCtx) -> Result<(), String> {
        sys::tight_timer_slack();
        let share = ctx.spec.share(ctx.index, ctx.workers);
        let mut engine = Engine::new(ctx.spec, share, ctx.index, ctx.workers, ctx.recorder)
            .map_err(|e| format!("worker {}: {e}", ctx.index))?;
        engine
            .run()
            .map_err(|e| format!("worker {}: {e}", ctx.index))?;
        engine.m.into_recorder().finish();
        Ok(())
    }
}

/// Longest sleep, so SIGINT and the end of the run are noticed promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Open loop: how long before a due start the loop stops sleeping and polls.
const SPIN_NS: u64 = 50_000;

/// Kernel sockets as the workload machine's [`Transport`]. Readiness is edge-triggered:
/// `ready[slot]` remembers an edge (readable, writable) until a read or write returns EAGAIN.
struct Sockets {
    epoll: sys::Epoll,
    target: std::net::SocketAddr,
    sources: Sources<std::net::IpAddr>,
    ready: Vec<(bool, bool)>,
    buf: Vec<u8>,
}

fn errno_cause(e: &std::io::Error) -> FailCause {
    FailCause::from_errno(e.raw_os_error().unwrap_or(0))
}

impl Transport for Sockets {
    type Handle = RawFd;
    const CLOSED_EVENT: bool = false;
    const CLOCK_AFTER_RECV: bool = true;

    fn connect(&mut self, slot: u32, generation: u32) -> Result<(RawFd, bool), FailCause> {
        let fd = sys::tcp_socket_for(self.target.ip()).map_err(|e| errno_cause(&e))?;
        let opened = self.open(fd, slot, generation);
        if opened.is_err() {
            sys::close(fd);
        }
        opened
    }

    fn send(&mut self, slot: u32, fd: RawFd, data: &[u8]) -> Result<Option<usize>, FailCause> {
        let r = &mut self.ready[slot as usize];
        if !r.1 {
            return Ok(None);
        }
        match sys::write(fd, data) {
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => {
                r.1 = false;
                Ok(None)
            }
            Err(e) => Err(errno_cause(&e)),
        }
    }

    fn recv(&mut self, slot: u32, fd: RawFd) -> Result<Recv, FailCause> {
        let r = &mut self.ready[slot as usize];
        if !r.0 {
            return Ok(Recv::Empty);
        }
        match sys::read(fd, &mut self.buf) {
            Ok(Some(0)) => Ok(Recv::Eof),
            Ok(Some(n)) => Ok(Recv::Data(n)),
            Ok(None) => {
                r.0 = false;
                Ok(Recv::Empty)
            }
            Err(e) => Err(errno_cause(&e)),
        }
    }

    fn close(&mut self, _slot: u32, fd: RawFd) -> Result<(), FailCause> {
        sys::shutdown_write(fd).map_err(|e| errno_cause(&e))
    }

    fn release(&mut self, _slot: u32, fd: RawFd, _abort: bool) {
        sys::close(fd);
    }
}

impl Sockets {
    /// Binds (with `--src-ip`), connects and registers `fd` for connection `slot`.
    fn open(&mut self, fd: RawFd, slot: u32, generation: u32) -> Result<(RawFd, bool), FailCause> {
        if let Some(ip) = self.sources.pick() {
            // IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), which may then use
            // the whole ephemeral range per (source, destination) pair instead of one port per
            // source address for all destinations.
            sys::set_int_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
                .and_then(|()| sys::bind(fd, std::net::SocketAddr::new(ip, 0)))
                .map_err(|e| errno_cause(&e))?;
        }
        let done = sys::connect(fd, self.target).map_err(|e| errno_cause(&e))?;
        let token = u64::from(generation) << 32 | u64::from(slot);
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if let Err(e) = self.epoll.add(fd, ev, token) {
            eprintln!("xtcp-loadgen: epoll_ctl: {e}");
            return Err(FailCause::Other);
        }
        if self.ready.len() <= slot as usize {
            self.ready.resize(slot as usize + 1, (false, false));
        }
        self.ready[slot as usize] = (false, done);
        Ok((fd, done))
    }
}

struct Engine {
    m: Machine<RawFd>,
    t: Sockets,
    events: Vec<(u32, u64)>,
}

impl Engine {
    fn new(
        spec: Arc<LoadSpec>,
        share: Share,
        index: usize,
        workers: usize,
        rec: Recorder,
    ) -> std::io::Result<Engine> {
        let nofile = nofile_limit();
        let max_inflight = (nofile.saturating_sub(256) / workers.max(1) as u64).clamp(64, 1 << 20);
        Ok(Engine {
            t: Sockets {
                epoll: sys::Epoll::new(1024)?,
                target: spec.target,
                sources: Sources::new(spec.source_ips.clone(), index),
                ready: Vec::new(),
                buf: vec![0; 64 * 1024],
            },
            m: Machine::new(spec, share, rec, max_inflight as u32),
            events: Vec::with_capacity(1024),
        })
    }

    fn run(&mut self) -> std::io::Result<()> {
        let spec = Arc::clone(self.m.spec());
        loop {
            let now = spec.now_ns();
            if self.m.turn(&mut self.t, now) {
                break;
            }
            let wake = self.m.wake_at(now, SPIN_NS, MAX_SLEEP.as_nanos() as u64);
            let sleep = Duration::from_nanos(wake.saturating_sub(now));
            self.events.clear();
            for ev in self.t.epoll.wait(sleep)? {
                self.events.push((ev.events, ev.u64));
            }
            for i in 0..self.events.len() {
                // A fresh clock per event: a batch can take longer than the latencies measured.
                let now = spec.now_ns();
                let (mask, token) = self.events[i];
                self.on_event(mask, token, now);
            }
        }
        self.m.rec.set_gauge(Counter::InFlight, 0);
        Ok(())
    }

    fn on_event(&mut self, mask: u32, token: u64, now: u64) {
        let (slot, generation) = (token as u32, (token >> 32) as u32);
        let Some(st) = self.m.state_at(slot, generation) else {
            return;
        };
        let r = &mut self.t.ready[slot as usize];
        if mask & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            r.0 = true;
        }
        if mask & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
            r.1 = true;
        }
        if st == St::Connecting {
            let (writable, Some(fd)) = (r.1, self.m.handle(slot)) else {
                return;
            };
            if !writable {
                return;
            }
            match sys::get_int_opt(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) => self.m.connected(&mut self.t, slot, now),
                Ok(err) => self
                    .m
                    .fail(&mut self.t, slot, FailCause::from_errno(err), true),
                Err(e) => self.m.fail(&mut self.t, slot, errno_cause(&e), true),
            }
            return;
        }
        self.m.drive(&mut self.t, slot, now);
    }
}

fn nofile_limit() -> u64 {
    // Safety: an all-zero rlimit is valid and getrlimit only writes into it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // Safety: `lim` is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}
