//! The per-connection workload state machine, written once for both backends.
//!
//! A [`Machine`] owns a worker's connections (a slab of [`Conn`]s), their per-phase
//! timeouts, the start schedule ([`Sched`]) and the [`Recorder`], and drives each connection
//! through `Connecting → [Sending → Receiving] → Closing → free` (rr: `Idle ⇄ Sending →
//! Receiving` until the run ends). It does no I/O: every action on a connection goes through
//! a [`Transport`] passed in by the caller (kernel sockets in [`super::kernel`], an engine
//! core's [`xtcp::engine::Io`] in [`super::xtcp`]). A backend holds only what differs: how a
//! connection is opened, read, written and closed, and how readiness reaches the machine.
//!
//! Measurement points (the same for both backends, see docs/loadgen.md):
//! - connect: intended start → [`Machine::connected`];
//! - first byte / transaction: request due → first byte / whole response read;
//! - close: our close → [`Machine::closed`] (a transport with [`Transport::CLOSED_EVENT`]:
//!   our FIN acknowledged and the peer's seen) or the peer's FIN read as end of file
//!   (kernel sockets); in `server-close` (and a `crr` response cut short by the server's
//!   FIN), from the first response byte to the peer's FIN.
//!
//! Timeouts: every phase (connect, response, close) arms a deadline `now + timeout`. All
//! deadlines have the same length, so a FIFO queue is already sorted; stale entries (the
//! connection moved on) are skipped by a per-connection sequence number.

use super::sched::{Host, Sched};
use super::{LoadSpec, Share, Workload};
use crate::metrics::{Counter, FailCause, Recorder};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// What one receive call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// `n` bytes were read (and discarded).
    Data(usize),
    /// The peer's FIN: no more bytes will come.
    Eof,
    /// Nothing to read now.
    Empty,
}

/// The operations the machine needs from a backend. `slot` names the machine's connection
/// (a backend may keep per-connection state of its own by it); `h` is the backend's handle.
pub trait Transport {
    type Handle: Copy + PartialEq;
    /// True when the transport reports the end of our close itself ([`Machine::closed`]);
    /// false when reading the peer's FIN in `Closing` ends it.
    const CLOSED_EVENT: bool;
    /// True: read the clock after every receive call (on loopback the peer may run inside
    /// our own syscalls, so a time taken before can be stale). False: the caller's `now`.
    const CLOCK_AFTER_RECV: bool;

    /// Starts an active open. `Ok((h, true))`: already connected.
    fn connect(&mut self, slot: u32, generation: u32) -> Result<(Self::Handle, bool), FailCause>;
    /// Sends a prefix of `data`; `None`: no room now (readiness will call back).
    fn send(&mut self, slot: u32, h: Self::Handle, data: &[u8])
    -> Result<Option<usize>, FailCause>;
    /// Reads (and discards) what is there.
    fn recv(&mut self, slot: u32, h: Self::Handle) -> Result<Recv, FailCause>;
    /// Starts our graceful close (FIN).
    fn close(&mut self, slot: u32, h: Self::Handle) -> Result<(), FailCause>;
    /// The machine forgets `h`; `abort`: the connection is still open and must be reset.
    fn release(&mut self, slot: u32, h: Self::Handle, abort: bool);
}

/// Round-robin over a list of source addresses, starting at the worker's index.
pub struct Sources<A = Ipv4Addr> {
    list: Vec<A>,
    next: usize,
}

impl<A: Copy> Sources<A> {
    pub fn new(list: Vec<A>, start: usize) -> Sources<A> {
        Sources { list, next: start }
    }

    /// The next address; `None` with an empty list (the stack chooses).
    pub fn pick(&mut self) -> Option<A> {
        if self.list.is_empty() {
            return None;
        }
        let ip = self.list[self.next % self.list.len()];
        self.next = self.next.wrapping_add(1);
        Some(ip)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St {
    Free,
    Connecting,
    Sending,
    Receiving,
    Idle,
    Closing,
}

#[derive(Clone, Copy)]
struct Conn<H> {
    h: Option<H>,
    generation: u32,
    st: St,
    measured: bool,
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

impl<H> Conn<H> {
    fn empty() -> Conn<H> {
        Conn {
            h: None,
            generation: 0,
            st: St::Free,
            measured: false,
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

/// One worker's connections and schedule; see the module docs.
pub struct Machine<H> {
    spec: Arc<LoadSpec>,
    pub rec: Recorder,
    pub sched: Sched,
    conns: Vec<Conn<H>>,
    free: Vec<u32>,
    inflight: u32,
    max_inflight: u32,
    timers: VecDeque<(u64, u32, u32)>,
    /// Safety net beyond the per-connection timers: nothing outlives this.
    hard_end: u64,
}

impl<H: Copy + PartialEq> Machine<H> {
    pub fn new(spec: Arc<LoadSpec>, share: Share, rec: Recorder, max_inflight: u32) -> Self {
        let hard_end = spec.end_ns + spec.timeout.as_nanos() as u64 + 200_000_000;
        Machine {
            sched: Sched::new(&spec, share),
            spec,
            rec,
            conns: Vec::new(),
            free: Vec::new(),
            inflight: 0,
            max_inflight,
            timers: VecDeque::new(),
            hard_end,
        }
    }

    /// The recorder, for [`Recorder::finish`] once the worker is done.
    pub fn into_recorder(self) -> Recorder {
        self.rec
    }

    pub fn spec(&self) -> &Arc<LoadSpec> {
        &self.spec
    }

    pub fn inflight(&self) -> u32 {
        self.inflight
    }

    /// The state of `slot` if it still holds `h`.
    pub fn state_of(&self, slot: u32, h: H) -> Option<St> {
        let c = self.conns.get(slot as usize)?;
        (c.h == Some(h) && c.st != St::Free).then_some(c.st)
    }

    /// The state of `slot` if its generation is `generation`.
    pub fn state_at(&self, slot: u32, generation: u32) -> Option<St> {
        let c = self.conns.get(slot as usize)?;
        (c.generation == generation && c.st != St::Free).then_some(c.st)
    }

    pub fn handle(&self, slot: u32) -> Option<H> {
        self.conns.get(slot as usize).and_then(|c| c.h)
    }

    /// The start of a loop turn: begins the drain at the end of the run (or on SIGINT),
    /// starts what the pacer allows, hands out rr transactions, expires timeouts. Returns
    /// true once the worker is done (drained, or past the safety net).
    pub fn turn<T: Transport<Handle = H>>(&mut self, t: &mut T, now: u64) -> bool {
        if !self.sched.draining() && (now >= self.spec.end_ns || crate::util::stop_requested()) {
            self.sched.begin_drain(now);
            Turn { m: self, t }.close_idle(now);
        }
        let mut host = Turn { m: self, t };
        if !host.m.sched.draining() {
            host.start_new(now);
        }
        if host.m.spec.workload == Workload::Rr {
            host.dispatch_rr(now);
        }
        self.expire(t, now);
        self.rec
            .set_gauge(Counter::InFlight, u64::from(self.inflight));
        if now >= self.hard_end {
            for slot in 0..self.conns.len() as u32 {
                if self.conns[slot as usize].st != St::Free {
                    self.fail(t, slot, FailCause::Timeout, true);
                }
            }
            return true;
        }
        self.sched.draining() && self.inflight == 0
    }

    /// When the machine next has work (a start, a transaction, a timeout, the end of the
    /// run), at most `max_ns` from `now`; open-loop starts `early_ns` ahead.
    pub fn wake_at(&self, now: u64, early_ns: u64, max_ns: u64) -> u64 {
        let mut wake = now + max_ns;
        if !self.sched.draining() {
            wake = wake.min(self.spec.end_ns);
        }
        let is_idle = |s: u32| self.conns[s as usize].st == St::Idle;
        if let Some(t) = self.sched.next_wake(self.inflight, early_ns, is_idle) {
            wake = wake.min(t);
        }
        if let Some(&(deadline, _, _)) = self.timers.front() {
            wake = wake.min(deadline);
        }
        wake.min(self.hard_end)
    }

    fn alloc(&mut self) -> u32 {
        if let Some(s) = self.free.pop() {
            return s;
        }
        self.conns.push(Conn::empty());
        (self.conns.len() - 1) as u32
    }

    fn start_conn<T: Transport<Handle = H>>(&mut self, t: &mut T, now: u64, intended: u64) {
        let measured = self.rec.is_measured(intended);
        self.rec.attempt(measured);
        let slot = self.alloc();
        let c = &mut self.conns[slot as usize];
        c.generation = c.generation.wrapping_add(1);
        let (h, done) = match t.connect(slot, c.generation) {
            Ok(r) => r,
            Err(cause) => {
                self.rec.failed(measured, cause);
                self.free.push(slot);
                return;
            }
        };
        let c = &mut self.conns[slot as usize];
        *c = Conn {
            h: Some(h),
            generation: c.generation,
            st: St::Connecting,
            measured,
            start_ns: intended,
            timer_seq: c.timer_seq,
            ..Conn::empty()
        };
        self.inflight += 1;
        self.arm(slot, now);
        if done {
            self.connected(t, slot, now);
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

    fn expire<T: Transport<Handle = H>>(&mut self, t: &mut T, now: u64) {
        while let Some(&(deadline, slot, seq)) = self.timers.front() {
            if deadline > now {
                break;
            }
            self.timers.pop_front();
            let c = &self.conns[slot as usize];
            if c.st != St::Free && c.st != St::Idle && c.timer_seq == seq {
                self.fail(t, slot, FailCause::Timeout, true);
            }
        }
    }

    /// Forgets `slot` (the transport is told; `abort` resets a connection still open).
    fn release<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, abort: bool) {
        let c = &mut self.conns[slot as usize];
        if c.st == St::Free {
            return;
        }
        if let Some(h) = c.h.take() {
            t.release(slot, h, abort);
        }
        c.st = St::Free;
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.free.push(slot);
        self.inflight -= 1;
    }

    /// Counts connection `slot` as failed for `cause` and forgets it.
    pub fn fail<T: Transport<Handle = H>>(
        &mut self,
        t: &mut T,
        slot: u32,
        cause: FailCause,
        abort: bool,
    ) {
        let c = &self.conns[slot as usize];
        if c.st == St::Free {
            return;
        }
        self.rec.failed(c.measured, cause);
        self.release(t, slot, abort);
    }

    fn complete<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, since: u64, now: u64) {
        let m = self.conns[slot as usize].measured;
        self.rec.teardown(m, now.saturating_sub(since));
        self.rec.completed(m);
        self.release(t, slot, false);
    }

    fn begin_close<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let Some(h) = self.conns[slot as usize].h else {
            return;
        };
        if let Err(cause) = t.close(slot, h) {
            return self.fail(t, slot, cause, true);
        }
        let c = &mut self.conns[slot as usize];
        c.st = St::Closing;
        c.close_ns = now;
        self.arm(slot, now);
        self.drive(t, slot, now);
    }

    /// rr: the connection waits for its next transaction.
    fn park(&mut self, slot: u32) {
        self.conns[slot as usize].st = St::Idle;
        self.disarm(slot);
        self.sched.park(slot);
    }

    /// Connection `slot` reached ESTABLISHED.
    pub fn connected<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        if c.st != St::Connecting {
            return;
        }
        let (m, start) = (c.measured, c.start_ns);
        self.rec.handshake(m, now.saturating_sub(start));
        match self.spec.workload {
            Workload::Connect | Workload::SynFlood => self.begin_close(t, slot, now),
            Workload::Crr | Workload::ServerClose => {
                let c = &mut self.conns[slot as usize];
                c.st = St::Sending;
                c.due_ns = now;
                self.arm(slot, now);
                self.drive(t, slot, now);
            }
            Workload::Rr if self.sched.draining() => self.begin_close(t, slot, now),
            Workload::Rr => self.park(slot),
        }
    }

    /// Advances connection `slot` as far as its transport allows (sends the rest of the
    /// request, reads what arrived).
    pub fn drive<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let c = &mut self.conns[slot as usize];
        let Some(h) = c.h else {
            return;
        };
        if c.st == St::Sending {
            let req = Arc::clone(&self.spec.request);
            while c.sent < req.len() {
                match t.send(slot, h, &req[c.sent..]) {
                    Ok(Some(n)) => c.sent += n,
                    Ok(None) => return,
                    Err(cause) => return self.fail(t, slot, cause, true),
                }
            }
            c.st = St::Receiving;
        }
        if matches!(c.st, St::Receiving | St::Closing) {
            self.receive(t, slot, h, now);
        }
    }

    fn receive<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, h: H, now: u64) {
        let workload = self.spec.workload;
        let want = self.spec.response_bytes.max(1);
        loop {
            let r = t.recv(slot, h);
            let now = if T::CLOCK_AFTER_RECV {
                self.spec.now_ns()
            } else {
                now
            };
            let n = match r {
                Ok(Recv::Data(n)) => n,
                Ok(Recv::Empty) => return,
                Ok(Recv::Eof) => return self.peer_closed(t, slot, now),
                Err(cause) => return self.fail(t, slot, cause, true),
            };
            let c = &mut self.conns[slot as usize];
            match c.st {
                // Late bytes after our FIN are read and dropped, so the close stays graceful.
                St::Closing => continue,
                St::Receiving => {}
                _ => return self.fail(t, slot, FailCause::Other, true),
            }
            if c.received == 0 {
                c.first_byte_ns = now;
                self.rec
                    .first_byte(c.measured, now.saturating_sub(c.due_ns));
            }
            c.received += n;
            if workload != Workload::ServerClose && c.received >= want {
                let (m, due) = (c.measured, c.due_ns);
                self.rec.transaction(m, now.saturating_sub(due));
                if workload == Workload::Rr && !self.sched.draining() {
                    return self.park(slot);
                }
                return self.begin_close(t, slot, now);
            }
        }
    }

    /// The peer's FIN arrived on connection `slot` (after every byte before it was read).
    pub fn peer_closed<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let c = self.conns[slot as usize];
        let want = self.spec.response_bytes.max(1);
        match (c.st, self.spec.workload) {
            (St::Free, _) => {}
            (St::Closing, _) if T::CLOSED_EVENT => {} // done at `closed`
            (St::Closing, _) => self.complete(t, slot, c.close_ns, now),
            // The server closed: in server-close that is the goal; in crr the response may
            // legitimately end at EOF. We close too; the transport finishes LAST-ACK.
            (St::Receiving, Workload::ServerClose) if c.received >= want => {
                self.finish_after_peer(t, slot, now)
            }
            (St::Receiving, Workload::Crr) if c.received > 0 => {
                self.rec
                    .transaction(c.measured, now.saturating_sub(c.due_ns));
                self.finish_after_peer(t, slot, now)
            }
            _ => self.fail(t, slot, FailCause::Other, true),
        }
    }

    fn finish_after_peer<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let c = self.conns[slot as usize];
        if let Some(h) = c.h {
            let _ = t.close(slot, h);
        }
        self.complete(t, slot, c.first_byte_ns, now);
    }

    /// The transport finished our close ([`Transport::CLOSED_EVENT`]): or, outside
    /// `Closing`, the connection ended unexpectedly.
    pub fn closed<T: Transport<Handle = H>>(&mut self, t: &mut T, slot: u32, now: u64) {
        let c = self.conns[slot as usize];
        match c.st {
            St::Free => {}
            St::Closing => self.complete(t, slot, c.close_ns, now),
            _ => self.fail(t, slot, FailCause::Other, false),
        }
    }
}

/// The machine and its transport, borrowed together for the shared schedule loops.
struct Turn<'a, H, T> {
    m: &'a mut Machine<H>,
    t: &'a mut T,
}

impl<H: Copy + PartialEq, T: Transport<Handle = H>> Host for Turn<'_, H, T> {
    fn sched(&mut self) -> (&mut Sched, &mut Recorder) {
        (&mut self.m.sched, &mut self.m.rec)
    }

    fn inflight(&self) -> (u32, u32) {
        (self.m.inflight, self.m.max_inflight)
    }

    fn is_idle(&self, conn: u32) -> bool {
        self.m.conns[conn as usize].st == St::Idle
    }

    fn open(&mut self, now: u64, intended: u64) {
        self.m.start_conn(self.t, now, intended);
    }

    fn give(&mut self, conn: u32, due: u64, now: u64) {
        // rr: a transaction counts when it was due in the measured window, whenever its
        // persistent connection was opened (usually during the warmup).
        let measured = self.m.rec.is_measured(due);
        let c = &mut self.m.conns[conn as usize];
        c.measured = measured;
        c.due_ns = due;
        c.sent = 0;
        c.received = 0;
        c.st = St::Sending;
        self.m.arm(conn, now);
        self.m.drive(self.t, conn, now);
    }

    fn close(&mut self, conn: u32, now: u64) {
        self.m.begin_close(self.t, conn, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Load;
    use crate::metrics::{Metrics, Snapshot};
    use std::time::{Duration, Instant};

    const MS: u64 = 1_000_000;

    /// A scripted transport: what `recv` finds is queued per slot, `send` takes `room` bytes.
    #[derive(Default)]
    struct Fake {
        opened: u32,
        room: usize,
        inbox: Vec<VecDeque<Recv>>,
        sent: Vec<u8>,
        closed: Vec<u32>,
        released: Vec<(u32, bool)>,
    }

    impl Fake {
        fn arrive(&mut self, slot: u32, r: Recv) {
            self.inbox[slot as usize].push_back(r);
        }
    }

    /// The same fake, with the close reported as an event (as the xtcp backend's).
    #[derive(Default)]
    struct FakeEvents(Fake);

    macro_rules! fake_transport {
        ($t:ty, $closed_event:expr, $get:ident) => {
            impl Transport for $t {
                type Handle = u32;
                const CLOSED_EVENT: bool = $closed_event;
                const CLOCK_AFTER_RECV: bool = false;
                fn connect(&mut self, slot: u32, _: u32) -> Result<(u32, bool), FailCause> {
                    let f = self.$get();
                    f.opened += 1;
                    if f.inbox.len() <= slot as usize {
                        f.inbox.resize(slot as usize + 1, VecDeque::new());
                    }
                    Ok((100 + slot, false))
                }
                fn send(&mut self, _: u32, _: u32, d: &[u8]) -> Result<Option<usize>, FailCause> {
                    let f = self.$get();
                    let n = d.len().min(f.room);
                    f.room -= n;
                    f.sent.extend_from_slice(&d[..n]);
                    Ok((n > 0).then_some(n))
                }
                fn recv(&mut self, slot: u32, _: u32) -> Result<Recv, FailCause> {
                    let f = self.$get();
                    Ok(f.inbox[slot as usize].pop_front().unwrap_or(Recv::Empty))
                }
                fn close(&mut self, slot: u32, _: u32) -> Result<(), FailCause> {
                    self.$get().closed.push(slot);
                    Ok(())
                }
                fn release(&mut self, slot: u32, _: u32, abort: bool) {
                    self.$get().released.push((slot, abort));
                }
            }
        };
    }

    impl Fake {
        fn get(&mut self) -> &mut Fake {
            self
        }
    }
    impl FakeEvents {
        fn get(&mut self) -> &mut Fake {
            &mut self.0
        }
    }
    fake_transport!(Fake, false, get);
    fake_transport!(FakeEvents, true, get);

    fn machine(workload: Workload, request: &[u8]) -> (Machine<u32>, Arc<Metrics>) {
        let spec = Arc::new(LoadSpec {
            workload,
            target: "127.0.0.1:1".parse().unwrap(),
            load: Load::Closed { concurrency: 1 },
            max_rate: 1e9,
            source_ips: vec![],
            source_prefix: None,
            iface: None,
            syn_flood_rate: None,
            request: Arc::from(request),
            response_bytes: 4,
            timeout: Duration::from_millis(100),
            rr_pool: 1,
            cores: vec![],
            epoch: Instant::now(),
            measure_start_ns: 0,
            end_ns: 1_000 * MS,
            pcap: None,
            vlan: None,
        });
        let metrics = Metrics::new(1, 0);
        let share = spec.share(0, 1);
        let m = Machine::new(spec, share, metrics.recorder(0), 16);
        (m, metrics)
    }

    fn counts(m: &Arc<Metrics>) -> Snapshot {
        m.snapshot()
    }

    #[test]
    fn crr_sends_in_pieces_reads_and_closes_at_the_peers_fin() {
        let (mut m, metrics) = machine(Workload::Crr, b"request!");
        let mut t = Fake {
            room: 3,
            ..Fake::default()
        };
        assert!(!m.turn(&mut t, MS));
        assert_eq!(
            (t.opened, m.inflight()),
            (1, 1),
            "one connection (concurrency 1)"
        );
        m.connected(&mut t, 0, 2 * MS);
        assert_eq!(t.sent, b"req", "only what fits");
        assert_eq!(m.state_of(0, 100), Some(St::Sending));
        t.room = 100;
        m.drive(&mut t, 0, 3 * MS);
        assert_eq!(t.sent, b"request!");
        assert_eq!(m.state_of(0, 100), Some(St::Receiving));
        t.arrive(0, Recv::Data(2));
        t.arrive(0, Recv::Data(2));
        m.drive(&mut t, 0, 4 * MS);
        assert_eq!(
            m.state_of(0, 100),
            Some(St::Closing),
            "4 bytes: response complete"
        );
        assert_eq!(t.closed, [0]);
        // Late bytes are dropped; the peer's FIN ends the close (kernel-socket style).
        t.arrive(0, Recv::Data(9));
        t.arrive(0, Recv::Eof);
        m.drive(&mut t, 0, 6 * MS);
        assert_eq!(m.state_of(0, 100), None);
        assert_eq!(t.released, [(0, false)]);
        let c = counts(&metrics);
        assert_eq!(c.get(Counter::Attempted), 1);
        assert_eq!(c.get(Counter::Handshakes), 1);
        assert_eq!(c.get(Counter::Transactions), 1);
        assert_eq!(c.get(Counter::Teardowns), 1);
        assert_eq!(c.get(Counter::Completed), 1);
        assert_eq!(c.failed(), 0);
        m.into_recorder().finish();
        let h = metrics.merged_hists();
        // Connect from the intended start (1 ms) to 2 ms; transaction from 2 ms to 4 ms;
        // close from 4 ms to 6 ms.
        assert_eq!(h.connect.max() / 1000, 1000);
        assert_eq!(h.transaction.max() / 1000, 2000);
        assert_eq!(h.close.max() / 1000, 2000);
    }

    #[test]
    fn with_a_closed_event_the_peers_fin_does_not_end_the_close() {
        let (mut m, metrics) = machine(Workload::Connect, b"x");
        let mut t = FakeEvents::default();
        m.turn(&mut t, MS);
        m.connected(&mut t, 0, MS);
        assert_eq!(m.state_of(0, 100), Some(St::Closing));
        m.peer_closed(&mut t, 0, 2 * MS);
        assert_eq!(m.state_of(0, 100), Some(St::Closing));
        m.closed(&mut t, 0, 3 * MS);
        assert_eq!(m.state_of(0, 100), None);
        assert_eq!(counts(&metrics).get(Counter::Completed), 1);
    }

    #[test]
    fn server_close_completes_at_the_fin_after_the_response() {
        let (mut m, metrics) = machine(Workload::ServerClose, b"x");
        let mut t = FakeEvents(Fake {
            room: 100,
            ..Fake::default()
        });
        m.turn(&mut t, MS);
        m.connected(&mut t, 0, MS);
        t.0.arrive(0, Recv::Data(4));
        m.drive(&mut t, 0, 2 * MS);
        assert_eq!(m.state_of(0, 100), Some(St::Receiving), "waits for the FIN");
        m.peer_closed(&mut t, 0, 5 * MS);
        assert_eq!(m.state_of(0, 100), None);
        assert_eq!(t.0.closed, [0], "we close too");
        let c = counts(&metrics);
        assert_eq!(
            (c.get(Counter::Completed), c.get(Counter::Teardowns)),
            (1, 1)
        );
        assert_eq!(c.get(Counter::Transactions), 0);
    }

    #[test]
    fn a_short_response_ended_by_the_server_is_a_failure() {
        let (mut m, metrics) = machine(Workload::ServerClose, b"x");
        let mut t = Fake {
            room: 100,
            ..Fake::default()
        };
        m.turn(&mut t, MS);
        m.connected(&mut t, 0, MS);
        t.arrive(0, Recv::Data(1));
        t.arrive(0, Recv::Eof);
        m.drive(&mut t, 0, 2 * MS);
        assert_eq!(m.state_of(0, 100), None);
        assert_eq!(t.released, [(0, true)], "reset, not closed");
        assert_eq!(counts(&metrics).get(Counter::FailOther), 1);
    }

    #[test]
    fn unanswered_connects_time_out_and_are_reset() {
        let (mut m, metrics) = machine(Workload::Connect, b"x");
        let mut t = Fake::default();
        m.turn(&mut t, MS);
        assert_eq!(
            m.wake_at(MS, 0, 1_000 * MS),
            101 * MS,
            "the connect timeout"
        );
        m.turn(&mut t, 100 * MS);
        assert_eq!(m.state_of(0, 100), Some(St::Connecting));
        m.turn(&mut t, 101 * MS);
        assert_eq!(t.released.first(), Some(&(0, true)));
        assert_eq!(counts(&metrics).get(Counter::FailTimeout), 1);
        // Concurrency 1: the next turn starts the next connection, in the freed slot.
        assert_eq!((t.opened, m.inflight()), (1, 0));
        m.turn(&mut t, 102 * MS);
        assert_eq!((t.opened, m.inflight()), (2, 1));
        assert_eq!(m.state_of(0, 100), Some(St::Connecting));
    }

    #[test]
    fn rr_parks_between_transactions_and_closes_at_the_end() {
        let (mut m, metrics) = machine(Workload::Rr, b"ping");
        let mut t = Fake {
            room: 1000,
            ..Fake::default()
        };
        m.turn(&mut t, MS);
        m.connected(&mut t, 0, MS);
        assert_eq!(m.state_of(0, 100), Some(St::Idle));
        for k in 0..3 {
            m.turn(&mut t, (2 + k) * MS);
            assert_eq!(m.state_of(0, 100), Some(St::Receiving), "turn {k}");
            t.arrive(0, Recv::Data(4));
            m.drive(&mut t, 0, (2 + k) * MS + 500);
            assert_eq!(m.state_of(0, 100), Some(St::Idle));
        }
        assert_eq!(t.sent.len(), 12);
        assert_eq!(counts(&metrics).get(Counter::Transactions), 3);
        // The end of the run: the idle connection closes, then the machine is done.
        assert!(!m.turn(&mut t, 1_000 * MS));
        assert_eq!(m.state_of(0, 100), Some(St::Closing));
        t.arrive(0, Recv::Eof);
        m.drive(&mut t, 0, 1_001 * MS);
        assert!(m.turn(&mut t, 1_002 * MS), "drained");
        let c = counts(&metrics);
        assert_eq!(
            (c.get(Counter::Attempted), c.get(Counter::Completed)),
            (1, 1)
        );
    }
}
