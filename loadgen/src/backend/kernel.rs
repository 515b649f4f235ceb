//! Kernel-socket backend: one epoll loop per worker, non-blocking connects.
//!
//! Each connection lives in a slot of a per-worker slab and walks
//! `Connecting → [Sending → Receiving] → Closing → free` (rr: `Idle ⇄ Sending → Receiving`
//! until the run ends). Sockets are registered once, edge-triggered, for in/out/rdhup; the
//! `readable`/`writable` flags remember an edge until a read or write returns EAGAIN, so no
//! `epoll_ctl` happens after the first.
//!
//! Teardown is a graceful client close (`shutdown(SHUT_WR)`, then wait for the peer's FIN, then
//! `close`), never an RST: the client's socket ends in TIME-WAIT exactly as after a plain
//! `close()`, but the teardown becomes observable (close latency, teardowns/s) and no unread
//! data can turn the close into a reset. In `server-close` the server's FIN ends the
//! connection; the client then closes and its socket goes through LAST-ACK to CLOSED.
//!
//! Timeouts: every phase (connect, response, close) arms a deadline `now + timeout`. All
//! deadlines have the same length, so a FIFO queue is already sorted; stale entries (the
//! slot moved on) are skipped by a per-slot sequence number.

use super::sched::{Host, Sched};
use super::{Backend, BackendKind, LoadSpec, Share, Worker, WorkerCtx, Workload};
use crate::metrics::{Counter, FailCause, Recorder};
use crate::sys;
use std::collections::VecDeque;
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
        engine.rec.finish();
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Free,
    Connecting,
    Sending,
    Receiving,
    Idle,
    Closing,
}

struct Conn {
    fd: RawFd,
    generation: u32,
    st: St,
    measured: bool,
    readable: bool,
    writable: bool,
    /// Intended start (open loop) or actual start (closed loop).
    start_ns: u64,
    /// When the current request was due (latency origin of first byte and transaction).
    due_ns: u64,
    first_byte_ns: u64,
    close_ns: u64,
    sent: usize,
    received: usize,
    timer_seq: u32,
}

impl Conn {
    fn empty() -> Conn {
        Conn {
            fd: -1,
            generation: 0,
            st: St::Free,
            measured: false,
            readable: false,
            writable: false,
            start_ns: 0,
            due_ns: 0,
            first_byte_ns: 0,
            close_ns: 0,
            sent: 0,
            received: 0,
            timer_seq: 0,
        }
    }
}

/// Longest sleep, so SIGINT and the end of the run are noticed promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Open loop: how long before a due start the loop stops sleeping and polls.
const SPIN_NS: u64 = 50_000;

struct Engine {
    spec: Arc<LoadSpec>,
    rec: Recorder,
    epoll: sys::Epoll,
    conns: Vec<Conn>,
    free: Vec<u32>,
    inflight: u32,
    max_inflight: u32,
    timers: VecDeque<(u64, u32, u32)>,
    sched: Sched,
    src_next: usize,
    buf: Vec<u8>,
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
            rec,
            epoll: sys::Epoll::new(1024)?,
            conns: Vec::new(),
            free: Vec::new(),
            inflight: 0,
            max_inflight: max_inflight as u32,
            timers: VecDeque::new(),
            sched: Sched::new(&spec, share),
            src_next: index,
            buf: vec![0; 64 * 1024],
            events: Vec::with_capacity(1024),
            spec,
        })
    }

    fn run(&mut self) -> std::io::Result<()> {
        let timeout_ns = self.spec.timeout.as_nanos() as u64;
        // Safety net beyond the per-connection timers: nothing outlives this.
        let hard_end = self.spec.end_ns + timeout_ns + 200_000_000;
        loop {
            let now = self.spec.now_ns();
            if !self.sched.draining() && (now >= self.spec.end_ns || crate::util::stop_requested())
            {
                self.begin_drain(now);
            }
            if !self.sched.draining() {
                self.start_new(now);
            }
            if self.spec.workload == Workload::Rr {
                self.dispatch_rr(now);
            }
            self.expire(now);
            if self.sched.draining() && self.inflight == 0 {
                break;
            }
            if now >= hard_end {
                for slot in 0..self.conns.len() as u32 {
                    if self.conns[slot as usize].st != St::Free {
                        self.fail(slot, FailCause::Timeout);
                    }
                }
                break;
            }
            let sleep = self.sleep_for(now);
            self.events.clear();
            for ev in self.epoll.wait(sleep)? {
                self.events.push((ev.events, ev.u64));
            }
            for i in 0..self.events.len() {
                // A fresh clock per event: a batch can take longer than the latencies measured.
                let now = self.spec.now_ns();
                let (mask, token) = self.events[i];
                let slot = token as u32;
                let generation = (token >> 32) as u32;
                let Some(c) = self.conns.get_mut(slot as usize) else {
                    continue;
                };
                if c.generation != generation || c.st == St::Free {
                    continue;
                }
                if mask
                    & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                    != 0
                {
                    c.readable = true;
                }
                if mask & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    c.writable = true;
                }
                self.drive(slot, now);
            }
            self.rec
                .set_gauge(Counter::InFlight, u64::from(self.inflight));
        }
        self.rec.set_gauge(Counter::InFlight, 0);
        Ok(())
    }

    fn begin_drain(&mut self, now: u64) {
        self.sched.begin_drain(now);
        self.close_idle(now);
    }

    fn sleep_for(&self, now: u64) -> Duration {
        let mut wake = now + MAX_SLEEP.as_nanos() as u64;
        if !self.sched.draining() {
            wake = wake.min(self.spec.end_ns);
        }
        // Wake early for an open-loop start and poll the last stretch: a timed sleep
        // overshoots by tens of µs on a VM, and that error would count as latency.
        let is_idle = |s: u32| self.conns[s as usize].st == St::Idle;
        if let Some(t) = self.sched.next_wake(self.inflight, SPIN_NS, is_idle) {
            wake = wake.min(t);
        }
        if let Some(&(deadline, _, _)) = self.timers.front() {
            wake = wake.min(deadline);
        }
        Duration::from_nanos(wake.saturating_sub(now))
    }

    fn alloc(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        self.conns.push(Conn::empty());
        (self.conns.len() - 1) as u32
    }

    fn start_conn(&mut self, now: u64, intended: u64) {
        let measured = self.rec.is_measured(intended);
        self.rec.attempt(measured);
        let fd = match sys::tcp_socket() {
            Ok(fd) => fd,
            Err(e) => {
                self.rec.failed(
                    measured,
                    FailCause::from_errno(e.raw_os_error().unwrap_or(0)),
                );
                return;
            }
        };
        if !self.spec.source_ips.is_empty() {
            let ip = self.spec.source_ips[self.src_next % self.spec.source_ips.len()];
            self.src_next = self.src_next.wrapping_add(1);
            // IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), which may then use
            // the whole ephemeral range per (source, destination) pair instead of one port per
            // source address for all destinations.
            let bound = sys::set_int_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
                .and_then(|()| sys::bind(fd, std::net::SocketAddrV4::new(ip, 0)));
            if let Err(e) = bound {
                sys::close(fd);
                self.rec.failed(
                    measured,
                    FailCause::from_errno(e.raw_os_error().unwrap_or(0)),
                );
                return;
            }
        }
        let done = match sys::connect(fd, self.spec.target) {
            Ok(done) => done,
            Err(e) => {
                sys::close(fd);
                self.rec.failed(
                    measured,
                    FailCause::from_errno(e.raw_os_error().unwrap_or(0)),
                );
                return;
            }
        };
        let slot = self.alloc();
        let c = &mut self.conns[slot as usize];
        c.generation = c.generation.wrapping_add(1);
        c.fd = fd;
        c.st = St::Connecting;
        c.measured = measured;
        c.readable = false;
        c.writable = done;
        c.start_ns = intended;
        c.sent = 0;
        c.received = 0;
        let token = u64::from(c.generation) << 32 | u64::from(slot);
        self.inflight += 1;
        let ev = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
        if let Err(e) = self.epoll.add(fd, ev, token) {
            eprintln!("xtcp-loadgen: epoll_ctl: {e}");
            self.fail(slot, FailCause::Other);
            return;
        }
        self.arm(slot, now);
        if done {
            self.drive(slot, now);
        }
    }

    fn arm(&mut self, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.timers
            .push_back((now + self.spec.timeout.as_nanos() as u64, slot, c.timer_seq));
    }

    fn disarm(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.timer_seq = c.timer_seq.wrapping_add(1);
    }

    fn expire(&mut self, now: u64) {
        while let Some(&(deadline, slot, seq)) = self.timers.front() {
            if deadline > now {
                break;
            }
            self.timers.pop_front();
            let c = &self.conns[slot as usize];
            if c.st != St::Free && c.st != St::Idle && c.timer_seq == seq {
                self.fail(slot, FailCause::Timeout);
            }
        }
    }

    fn release(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        sys::close(c.fd);
        c.fd = -1;
        c.st = St::Free;
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.free.push(slot);
        self.inflight -= 1;
    }

    fn fail(&mut self, slot: u32, cause: FailCause) {
        let measured = self.conns[slot as usize].measured;
        self.rec.failed(measured, cause);
        self.release(slot);
    }

    fn begin_close(&mut self, slot: u32, now: u64) {
        let fd = self.conns[slot as usize].fd;
        if let Err(e) = sys::shutdown_write(fd) {
            self.fail(slot, FailCause::from_errno(e.raw_os_error().unwrap_or(0)));
            return;
        }
        let c = &mut self.conns[slot as usize];
        c.st = St::Closing;
        c.close_ns = now;
        self.arm(slot, now);
        self.drive(slot, now);
    }

    /// The connection reached ESTABLISHED.
    fn established(&mut self, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        let (m, start) = (c.measured, c.start_ns);
        self.rec.handshake(m, now.saturating_sub(start));
        match self.spec.workload {
            Workload::Connect | Workload::SynFlood => self.begin_close(slot, now),
            Workload::Crr | Workload::ServerClose => {
                let c = &mut self.conns[slot as usize];
                c.st = St::Sending;
                c.due_ns = now;
                self.arm(slot, now);
            }
            Workload::Rr => {
                if self.sched.draining() {
                    self.begin_close(slot, now);
                } else {
                    self.conns[slot as usize].st = St::Idle;
                    self.disarm(slot);
                    self.sched.park(slot);
                }
            }
        }
    }

    /// Advances one connection as far as its socket allows.
    fn drive(&mut self, slot: u32, now: u64) {
        loop {
            let c = &mut self.conns[slot as usize];
            match c.st {
                St::Free | St::Idle => return,
                St::Connecting => {
                    if !c.writable {
                        return;
                    }
                    match sys::get_int_opt(c.fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                        Ok(0) => self.established(slot, now),
                        Ok(err) => return self.fail(slot, FailCause::from_errno(err)),
                        Err(e) => {
                            return self
                                .fail(slot, FailCause::from_errno(e.raw_os_error().unwrap_or(0)));
                        }
                    }
                }
                St::Sending => {
                    if !c.writable {
                        return;
                    }
                    let req = Arc::clone(&self.spec.request);
                    let c = &mut self.conns[slot as usize];
                    while c.sent < req.len() {
                        match sys::write(c.fd, &req[c.sent..]) {
                            Ok(Some(n)) => c.sent += n,
                            Ok(None) => {
                                c.writable = false;
                                return;
                            }
                            Err(e) => {
                                return self.fail(
                                    slot,
                                    FailCause::from_errno(e.raw_os_error().unwrap_or(0)),
                                );
                            }
                        }
                    }
                    c.st = St::Receiving;
                }
                St::Receiving => {
                    if !c.readable {
                        return;
                    }
                    return self.receive(slot);
                }
                St::Closing => {
                    if !c.readable {
                        return;
                    }
                    return self.finish_close(slot);
                }
            }
        }
    }

    fn receive(&mut self, slot: u32) {
        let workload = self.spec.workload;
        let want = self.spec.response_bytes.max(1);
        loop {
            let c = &mut self.conns[slot as usize];
            let r = sys::read(c.fd, &mut self.buf);
            // Read the clock after the read: on loopback the peer may run inside our own
            // syscalls (softirq, wakeup preemption), so a time taken before can be stale.
            let now = self.spec.now_ns();
            match r {
                Ok(Some(0)) => {
                    // The server closed. In server-close that is the goal; in crr the response
                    // may legitimately end at EOF; in rr it is a failure.
                    let (m, fb, got) = (c.measured, c.first_byte_ns, c.received);
                    if got == 0
                        || workload == Workload::Rr
                        || (workload == Workload::ServerClose && got < want)
                    {
                        return self.fail(slot, FailCause::Other);
                    }
                    if workload == Workload::Crr {
                        self.rec.transaction(m, now.saturating_sub(c.due_ns));
                    }
                    self.rec.teardown(m, now.saturating_sub(fb));
                    self.rec.completed(m);
                    return self.release(slot);
                }
                Ok(Some(n)) => {
                    if c.received == 0 {
                        c.first_byte_ns = now;
                        let (m, due) = (c.measured, c.due_ns);
                        self.rec.first_byte(m, now.saturating_sub(due));
                    }
                    let c = &mut self.conns[slot as usize];
                    c.received += n;
                    if workload != Workload::ServerClose && c.received >= want {
                        let (m, due) = (c.measured, c.due_ns);
                        self.rec.transaction(m, now.saturating_sub(due));
                        if workload == Workload::Rr && !self.sched.draining() {
                            let c = &mut self.conns[slot as usize];
                            c.st = St::Idle;
                            self.disarm(slot);
                            self.sched.park(slot);
                            return;
                        }
                        return self.begin_close(slot, now);
                    }
                }
                Ok(None) => {
                    c.readable = false;
                    return;
                }
                Err(e) => {
                    return self.fail(slot, FailCause::from_errno(e.raw_os_error().unwrap_or(0)));
                }
            }
        }
    }

    fn finish_close(&mut self, slot: u32) {
        loop {
            let c = &mut self.conns[slot as usize];
            let r = sys::read(c.fd, &mut self.buf);
            let now = self.spec.now_ns();
            match r {
                Ok(Some(0)) => {
                    let (m, t0) = (c.measured, c.close_ns);
                    self.rec.teardown(m, now.saturating_sub(t0));
                    self.rec.completed(m);
                    return self.release(slot);
                }
                // Late bytes after our FIN are read and dropped, so the close stays graceful.
                Ok(Some(_)) => {}
                Ok(None) => {
                    c.readable = false;
                    return;
                }
                Err(e) => {
                    return self.fail(slot, FailCause::from_errno(e.raw_os_error().unwrap_or(0)));
                }
            }
        }
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

impl Host for Engine {
    fn sched(&mut self) -> (&mut Sched, &mut Recorder) {
        (&mut self.sched, &mut self.rec)
    }

    fn inflight(&self) -> (u32, u32) {
        (self.inflight, self.max_inflight)
    }

    fn is_idle(&self, conn: u32) -> bool {
        self.conns[conn as usize].st == St::Idle
    }

    fn open(&mut self, now: u64, intended: u64) {
        self.start_conn(now, intended);
    }

    fn give(&mut self, conn: u32, due: u64, now: u64) {
        // rr: a transaction counts when it was due in the measured window, whenever its
        // persistent connection was opened (usually during the warmup).
        let measured = self.rec.is_measured(due);
        let c = &mut self.conns[conn as usize];
        c.measured = measured;
        c.due_ns = due;
        c.sent = 0;
        c.received = 0;
        c.st = St::Sending;
        self.arm(conn, now);
        self.drive(conn, now);
    }

    fn close(&mut self, conn: u32, now: u64) {
        self.begin_close(conn, now);
    }
}
