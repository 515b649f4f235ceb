//! Start scheduling shared by the backends, sans-I/O: every method takes `now` (nanoseconds
//! since the run's epoch) and the caller's view of its connections.
//!
//! A [`Sched`] owns the worker's pacer, the rr queues and the draining flag. A backend's worker
//! implements [`Host`] (its connections) and gets the per-turn loops from it:
//! - [`Host::start_new`]: start new connections, each with its intended start time;
//! - [`Host::dispatch_rr`] (rr): give each transaction due at `T` to an idle connection;
//! - [`Host::close_idle`] (rr, draining): close the idle connections once nothing is queued.
//!
//! Latency is measured from the intended time the scheduler hands out, so the open-loop
//! schedule lag is recorded here, once, when a start or transaction is taken from the pacer.
//! Starts and queued transactions per turn are bounded by [`MAX_STARTS_PER_TURN`] each.

use super::{LoadSpec, Share, Workload};
use crate::metrics::Recorder;
use crate::pace::{OpenLoop, TokenBucket};
use std::collections::VecDeque;

/// Open-loop starts issued per loop turn at most, so a late schedule catches up in bursts
/// the machine can absorb instead of one unbounded flood.
pub const MAX_STARTS_PER_TURN: usize = 256;
/// Closed-loop burst allowance of the start-rate cap.
const CLOSED_BURST: u32 = 32;

enum Pacer {
    Open(OpenLoop),
    Closed {
        target: u32,
        bucket: TokenBucket,
    },
    /// Flood only: no client connections.
    None,
}

/// The worker's schedule of connection starts and (rr) transactions.
pub struct Sched {
    pacer: Pacer,
    rr: bool,
    /// rr: persistent connections to keep open.
    pool: u32,
    /// rr: idle connections ready for a transaction (may hold stale slots).
    idle: Vec<u32>,
    /// rr open loop: intended times of transactions waiting for an idle connection.
    pending: VecDeque<u64>,
    draining: bool,
}

impl Sched {
    /// The schedule of one worker's `share`; `syn-flood` opens no client connections.
    pub fn new(spec: &LoadSpec, share: Share) -> Sched {
        let pacer = match (spec.workload, share) {
            (Workload::SynFlood, _) => Pacer::None,
            (_, Share::Open { rate, first_ns }) => {
                Pacer::Open(OpenLoop::new(rate, first_ns, spec.end_ns))
            }
            (
                _,
                Share::Closed {
                    concurrency,
                    max_rate,
                },
            ) => Pacer::Closed {
                target: concurrency,
                bucket: TokenBucket::new(max_rate, CLOSED_BURST),
            },
        };
        let pool = match (spec.workload, share) {
            (Workload::Rr, Share::Closed { concurrency, .. }) => concurrency,
            (Workload::Rr, Share::Open { .. }) => spec.rr_pool.max(1),
            _ => 0,
        };
        Sched {
            pacer,
            rr: spec.workload == Workload::Rr,
            pool,
            idle: Vec::new(),
            pending: VecDeque::new(),
            draining: false,
        }
    }

    /// True once the run's end (or SIGINT) was seen: no new starts or transactions.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Stops issuing: cuts the open-loop schedule at `now`. The caller then runs
    /// [`Host::close_idle`].
    pub fn begin_drain(&mut self, now: u64) {
        self.draining = true;
        if let Pacer::Open(p) = &mut self.pacer {
            p.cut(now);
        }
    }

    /// The next connection to start at `now`, as its intended start time (latency origin),
    /// given `inflight` open connections and the backend's cap. rr only tops up the pool.
    /// Not draining-aware: the caller starts nothing once draining.
    pub fn next_start(
        &mut self,
        now: u64,
        inflight: u32,
        max_inflight: u32,
        rec: &mut Recorder,
    ) -> Option<u64> {
        if self.rr {
            return (inflight < self.pool).then_some(now);
        }
        if inflight >= max_inflight {
            return None;
        }
        match &mut self.pacer {
            Pacer::Open(p) => {
                let t = p.take(now)?;
                let m = rec.is_measured(t);
                rec.schedule_lag(m, now.saturating_sub(t));
                Some(t)
            }
            Pacer::Closed { target, bucket } => {
                (inflight < *target && bucket.take(now)).then_some(now)
            }
            Pacer::None => None,
        }
    }

    /// rr: an idle connection waits for its next transaction.
    pub fn park(&mut self, conn: u32) {
        self.idle.push(conn);
    }

    /// rr open loop: queues the transactions due at `now` (at most a turn's worth), so they
    /// keep their intended times while every connection is busy.
    pub fn queue_due(&mut self, now: u64, rec: &mut Recorder) {
        if self.draining {
            return;
        }
        let Pacer::Open(p) = &mut self.pacer else {
            return;
        };
        let mut budget = MAX_STARTS_PER_TURN;
        while budget > 0
            && let Some(t) = p.take(now)
        {
            budget -= 1;
            let m = rec.is_measured(t);
            rec.schedule_lag(m, now.saturating_sub(t));
            self.pending.push_back(t);
        }
    }

    /// rr: the connection parked last, if any (may be stale).
    fn pop_idle(&mut self) -> Option<u32> {
        self.idle.pop()
    }

    /// rr: when the next transaction was due, if one may start at `now`.
    fn take_due(&mut self, now: u64) -> Option<u64> {
        match &mut self.pacer {
            Pacer::Open(_) => self.pending.pop_front(),
            Pacer::Closed { bucket, .. } => (!self.draining && bucket.take(now)).then_some(now),
            Pacer::None => None,
        }
    }

    /// rr: once draining and no queued transaction is left, the parked connections to close
    /// now (may hold stale entries; busy connections close after their transaction).
    fn idle_to_close(&mut self) -> Vec<u32> {
        if self.draining && self.pending.is_empty() {
            std::mem::take(&mut self.idle)
        } else {
            Vec::new()
        }
    }

    /// When the pacer next has work, if it has any (`None` while draining). An open-loop start
    /// is reported `early_ns` ahead so the caller can poll the last stretch instead of
    /// oversleeping; a closed-loop cap only counts while a start or transaction is wanted.
    pub fn next_wake(
        &self,
        inflight: u32,
        early_ns: u64,
        is_idle: impl Fn(u32) -> bool,
    ) -> Option<u64> {
        if self.draining {
            return None;
        }
        match &self.pacer {
            Pacer::Open(p) => p.next_due().map(|d| d.saturating_sub(early_ns)),
            Pacer::Closed { target, bucket } => {
                let want = if self.rr {
                    inflight < self.pool || self.idle.iter().any(|&c| is_idle(c))
                } else {
                    inflight < *target
                };
                want.then(|| bucket.next_available())
            }
            Pacer::None => None,
        }
    }
}

/// A backend's worker as the shared loops see it. Connections are named by the backend's
/// own index.
pub trait Host {
    /// The worker's schedule and recorder, borrowed together.
    fn sched(&mut self) -> (&mut Sched, &mut Recorder);
    /// Connections in flight, and the most the backend allows.
    fn inflight(&self) -> (u32, u32);
    /// rr: the connection is open and waits for a transaction.
    fn is_idle(&self, conn: u32) -> bool;
    /// Opens a connection whose latency counts from `intended`.
    fn open(&mut self, now: u64, intended: u64);
    /// rr: sends idle connection `conn` the request of a transaction due at `due`.
    fn give(&mut self, conn: u32, due: u64, now: u64);
    /// Starts the graceful close of connection `conn`.
    fn close(&mut self, conn: u32, now: u64);

    /// Starts new connections as the pacer allows (rr: tops up the pool), at most
    /// [`MAX_STARTS_PER_TURN`].
    fn start_new(&mut self, now: u64) {
        for _ in 0..MAX_STARTS_PER_TURN {
            let (inflight, max) = self.inflight();
            let (sched, rec) = self.sched();
            let Some(intended) = sched.next_start(now, inflight, max, rec) else {
                break;
            };
            self.open(now, intended);
        }
    }

    /// rr: hands due transactions to idle connections; stale parked entries are dropped.
    fn dispatch_rr(&mut self, now: u64) {
        let (sched, rec) = self.sched();
        sched.queue_due(now, rec);
        while let Some(conn) = self.sched().0.pop_idle() {
            if !self.is_idle(conn) {
                continue;
            }
            let Some(due) = self.sched().0.take_due(now) else {
                self.sched().0.park(conn);
                break;
            };
            self.give(conn, due, now);
        }
        self.close_idle(now);
    }

    /// rr, draining: idle persistent connections close now (busy ones after their
    /// transaction), once no queued transaction is left.
    fn close_idle(&mut self, now: u64) {
        for conn in self.sched().0.idle_to_close() {
            if self.is_idle(conn) {
                self.close(conn, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn sched(pacer: Pacer, rr: bool, pool: u32) -> Sched {
        Sched {
            pacer,
            rr,
            pool,
            idle: Vec::new(),
            pending: VecDeque::new(),
            draining: false,
        }
    }

    fn rec() -> Recorder {
        Metrics::new(1, 0).recorder(0)
    }

    /// A backend of bare connection indices: `idle` ones are open and waiting.
    struct Fake {
        s: Sched,
        r: Recorder,
        idle: Vec<u32>,
        given: Vec<(u32, u64)>,
        closed: Vec<u32>,
    }

    impl Fake {
        fn new(s: Sched) -> Fake {
            Fake {
                s,
                r: rec(),
                idle: Vec::new(),
                given: Vec::new(),
                closed: Vec::new(),
            }
        }

        /// Parks `conn` as an idle connection.
        fn idle(&mut self, conn: u32) {
            self.idle.push(conn);
            self.s.park(conn);
        }
    }

    impl Host for Fake {
        fn sched(&mut self) -> (&mut Sched, &mut Recorder) {
            (&mut self.s, &mut self.r)
        }
        fn inflight(&self) -> (u32, u32) {
            (0, 100)
        }
        fn is_idle(&self, conn: u32) -> bool {
            self.idle.contains(&conn)
        }
        fn open(&mut self, _: u64, _: u64) {}
        fn give(&mut self, conn: u32, due: u64, _: u64) {
            self.idle.retain(|&c| c != conn);
            self.given.push((conn, due));
        }
        fn close(&mut self, conn: u32, _: u64) {
            self.idle.retain(|&c| c != conn);
            self.closed.push(conn);
        }
    }

    #[test]
    fn open_loop_starts_carry_intended_times() {
        let mut s = sched(Pacer::Open(OpenLoop::new(1000.0, 0, 10_000_000)), false, 0);
        let mut r = rec();
        let got: Vec<u64> =
            std::iter::from_fn(|| s.next_start(2_500_000, 0, 100, &mut r)).collect();
        assert_eq!(got, [0, 1_000_000, 2_000_000]);
        assert_eq!(s.next_wake(0, 50_000, |_| false), Some(2_950_000));
        // The cap holds a due start back without consuming it.
        assert_eq!(s.next_start(3_000_000, 5, 5, &mut r), None);
        assert_eq!(s.next_start(3_000_000, 4, 5, &mut r), Some(3_000_000));
        s.begin_drain(3_100_000);
        assert_eq!(s.next_wake(0, 0, |_| false), None);
        assert_eq!(s.next_start(9_000_000, 0, 100, &mut r), None);
    }

    #[test]
    fn closed_loop_holds_concurrency() {
        let bucket = TokenBucket::new(1e6, 32);
        let mut s = sched(Pacer::Closed { target: 3, bucket }, false, 0);
        let mut r = rec();
        assert_eq!(s.next_start(1_000_000, 2, 100, &mut r), Some(1_000_000));
        assert_eq!(s.next_start(1_000_000, 3, 100, &mut r), None);
        assert_eq!(
            s.next_wake(3, 0, |_| false),
            None,
            "at target: nothing wanted"
        );
        assert!(s.next_wake(2, 0, |_| false).is_some());
    }

    #[test]
    fn flood_only_starts_nothing() {
        let mut s = sched(Pacer::None, false, 0);
        assert_eq!(s.next_start(1, 0, 100, &mut rec()), None);
        assert_eq!(s.next_wake(0, 0, |_| true), None);
    }

    #[test]
    fn rr_open_loop_queues_until_a_connection_is_idle() {
        let s = sched(Pacer::Open(OpenLoop::new(1000.0, 0, 10_000_000)), true, 2);
        let mut h = Fake::new(s);
        // rr tops up the pool regardless of the pacer.
        assert_eq!(h.s.next_start(5, 1, 0, &mut h.r), Some(5));
        assert_eq!(h.s.next_start(5, 2, 100, &mut h.r), None);
        h.dispatch_rr(1_500_000);
        assert!(h.given.is_empty(), "no idle connection");
        h.idle(7);
        // Connection 8 was parked, then went away: its entry is stale.
        h.s.park(8);
        h.dispatch_rr(1_500_000);
        assert_eq!(h.given, [(7, 0)]);
        h.idle(7);
        h.dispatch_rr(1_500_000);
        assert_eq!(h.given, [(7, 0), (7, 1_000_000)]);
        h.idle(7);
        h.dispatch_rr(1_600_000);
        assert_eq!(h.given.len(), 2, "nothing due");
        assert!(h.closed.is_empty());
        h.s.begin_drain(1_700_000);
        h.close_idle(1_700_000);
        assert_eq!(h.closed, [7]);
    }

    #[test]
    fn rr_drain_waits_for_queued_transactions() {
        let s = sched(Pacer::Open(OpenLoop::new(1000.0, 0, 10_000_000)), true, 1);
        let mut h = Fake::new(s);
        h.dispatch_rr(0);
        h.s.begin_drain(10);
        h.close_idle(10);
        h.idle(1);
        h.s.queue_due(5_000_000, &mut h.r);
        assert!(
            h.s.idle_to_close().is_empty(),
            "one transaction still queued"
        );
        h.dispatch_rr(20);
        assert_eq!(h.given, [(1, 0)]);
        assert!(h.closed.is_empty());
        h.idle(1);
        h.dispatch_rr(30);
        assert_eq!(h.given.len(), 1);
        assert_eq!(h.closed, [1]);
    }

    #[test]
    fn rr_closed_loop_paces_transactions() {
        let bucket = TokenBucket::new(1000.0, 1);
        let s = sched(Pacer::Closed { target: 2, bucket }, true, 2);
        let mut h = Fake::new(s);
        h.idle(4);
        assert_eq!(h.s.next_wake(2, 0, |_| true), Some(0));
        h.dispatch_rr(1_000_000_000);
        assert_eq!(h.given, [(4, 1_000_000_000)]);
        h.idle(4);
        h.dispatch_rr(1_000_000_000);
        assert_eq!(h.given.len(), 1, "rate cap");
        assert_eq!(h.s.next_wake(2, 0, |_| true), Some(1_001_000_000));
        assert_eq!(h.s.next_wake(2, 0, |_| false), None, "nobody to give it to");
        h.s.begin_drain(1_000_000_001);
        h.dispatch_rr(2_000_000_000);
        assert_eq!(h.given.len(), 1);
        assert_eq!(h.closed, [4]);
    }
}
