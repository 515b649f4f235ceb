//! Measurement: per-worker counters read live by the sampler, per-worker latency histograms
//! merged at the end.
//!
//! Contract for backends (kernel and xtcp alike): a worker owns one [`Recorder`] and reports
//! each connection's life through it: [`Recorder::attempt`] once when it starts, then
//! [`Recorder::handshake`], [`Recorder::first_byte`], [`Recorder::transaction`],
//! [`Recorder::teardown`] as they happen, and exactly one of [`Recorder::completed`] or
//! [`Recorder::failed`] at its end. Hence `attempted == completed + failed` once every worker
//! has finished. A connection is *measured* iff its intended start is at or after the end of
//! the warmup ([`Recorder::is_measured`]); events of unmeasured connections are dropped, so the
//! warmup is excluded without cutting connections in half.
//!
//! Counters are relaxed atomics in a cache-line-aligned shard per worker: the worker is the only
//! writer, the once-a-second sampler the only other reader. Histograms stay worker-local
//! (no sharing on the hot path) and are handed over by [`Recorder::finish`].

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCause {
    /// An RST arrived: connection refused, or reset while open.
    Refused,
    /// No answer within the timeout (connect, response or close).
    Timeout,
    /// No local address/port available (EADDRNOTAVAIL, EADDRINUSE at bind/connect).
    NoPort,
    /// Anything else (unexpected EOF, short response, other errno).
    Other,
}

impl FailCause {
    /// Classifies a socket errno.
    pub fn from_errno(errno: i32) -> FailCause {
        match errno {
            libc::ECONNREFUSED | libc::ECONNRESET | libc::EPIPE => FailCause::Refused,
            libc::ETIMEDOUT => FailCause::Timeout,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => FailCause::NoPort,
            _ => FailCause::Other,
        }
    }
}

/// Counter slots of a shard.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    Attempted,
    Handshakes,
    Teardowns,
    Transactions,
    Completed,
    FailRefused,
    FailTimeout,
    FailNoPort,
    FailOther,
    /// SYN retransmissions (backends that can see them; the kernel backend reads them from
    /// /proc instead).
    SynRetrans,
    /// Data retransmissions, likewise.
    DataRetrans,
    /// Spoofed SYNs sent (SYN flood).
    FloodSent,
    /// SYN-ACKs the server sent back to spoofed sources.
    FloodAnswered,
    /// Frames this worker's core handed to other cores (xtcp backend, several cores; set
    /// from the engine's cumulative count).
    HandoffsOut,
    /// Frames other cores handed to this worker's core.
    HandoffsIn,
    /// Frames this core could not hand over (the owner's queue was full).
    HandoffDrops,
    /// Gauge, not a counter: current client TIME-WAIT entries of this worker (xtcp backend).
    TimeWait,
    /// Gauge: connections currently open by this worker.
    InFlight,
}

const N_COUNTERS: usize = Counter::InFlight as usize + 1;

/// Latency histograms, in nanoseconds.
#[derive(Clone)]
pub struct Hists {
    pub connect: Histogram<u64>,
    pub first_byte: Histogram<u64>,
    pub close: Histogram<u64>,
    pub transaction: Histogram<u64>,
    /// Open loop: how late each start was issued relative to its intended time.
    pub schedule_lag: Histogram<u64>,
}

/// Highest latency recorded: larger values are clamped (100 s).
const MAX_NS: u64 = 100_000_000_000;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid")
}

impl Hists {
    pub fn new() -> Hists {
        Hists {
            connect: hist(),
            first_byte: hist(),
            close: hist(),
            transaction: hist(),
            schedule_lag: hist(),
        }
    }

    fn add(&mut self, o: &Hists) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.connect.add(&o.connect);
        let _ = self.first_byte.add(&o.first_byte);
        let _ = self.close.add(&o.close);
        let _ = self.transaction.add(&o.transaction);
        let _ = self.schedule_lag.add(&o.schedule_lag);
    }
}

impl Default for Hists {
    fn default() -> Self {
        Hists::new()
    }
}

fn rec_ns(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_NS));
}

#[repr(align(128))]
struct Shard {
    c: [AtomicU64; N_COUNTERS],
    hists: Mutex<Option<Hists>>,
}

/// All workers' measurements.
pub struct Metrics {
    shards: Vec<Shard>,
    measure_start_ns: u64,
}

/// Sum of all shards' counters at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub c: [u64; N_COUNTERS],
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.c[c as usize]
    }

    pub fn failed(&self) -> u64 {
        self.get(Counter::FailRefused)
            + self.get(Counter::FailTimeout)
            + self.get(Counter::FailNoPort)
            + self.get(Counter::FailOther)
    }

    /// Counter differences (gauges are taken from `self`).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut out = *self;
        for (i, v) in out.c.iter_mut().enumerate() {
            if i != Counter::TimeWait as usize && i != Counter::InFlight as usize {
                *v = v.saturating_sub(earlier.c[i]);
            }
        }
        out
    }
}

impl Metrics {
    pub fn new(workers: usize, measure_start_ns: u64) -> Arc<Metrics> {
        Arc::new(Metrics {
            shards: (0..workers)
                .map(|_| Shard {
                    c: std::array::from_fn(|_| AtomicU64::new(0)),
                    hists: Mutex::new(None),
                })
                .collect(),
            measure_start_ns,
        })
    }

    /// The recorder for worker `index`.
    pub fn recorder(self: &Arc<Self>, index: usize) -> Recorder {
        assert!(index < self.shards.len(), "worker index out of range");
        Recorder {
            metrics: Arc::clone(self),
            index,
            hists: Hists::new(),
            measure_start_ns: self.measure_start_ns,
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for sh in &self.shards {
            for (i, c) in sh.c.iter().enumerate() {
                s.c[i] += c.load(Ordering::Relaxed);
            }
        }
        s
    }

    /// Each worker's counters at one instant, by worker index.
    pub fn shard_snapshots(&self) -> Vec<Snapshot> {
        self.shards
            .iter()
            .map(|sh| {
                let mut s = Snapshot::default();
                for (i, c) in sh.c.iter().enumerate() {
                    s.c[i] = c.load(Ordering::Relaxed);
                }
                s
            })
            .collect()
    }

    /// Histograms of every worker that has finished.
    pub fn merged_hists(&self) -> Hists {
        let mut all = Hists::new();
        for sh in &self.shards {
            if let Some(h) = sh.hists.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                all.add(h);
            }
        }
        all
    }
}

/// One worker's handle for recording; see the module docs for the call protocol.
pub struct Recorder {
    metrics: Arc<Metrics>,
    index: usize,
    hists: Hists,
    measure_start_ns: u64,
}

impl Recorder {
    fn bump(&self, c: Counter) {
        self.metrics.shards[self.index].c[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a connection intended to start at `start_ns` counts (it is past the warmup).
    pub fn is_measured(&self, start_ns: u64) -> bool {
        start_ns >= self.measure_start_ns
    }

    pub fn attempt(&mut self, measured: bool) {
        if measured {
            self.bump(Counter::Attempted);
        }
    }

    /// Connect started (intended time) → ESTABLISHED.
    pub fn handshake(&mut self, measured: bool, latency_ns: u64) {
        if measured {
            self.bump(Counter::Handshakes);
            rec_ns(&mut self.hists.connect, latency_ns);
        }
    }

    /// Request due → first response byte.
    pub fn first_byte(&mut self, measured: bool, latency_ns: u64) {
        if measured {
            rec_ns(&mut self.hists.first_byte, latency_ns);
        }
    }

    /// Request due → whole response received.
    pub fn transaction(&mut self, measured: bool, latency_ns: u64) {
        if measured {
            self.bump(Counter::Transactions);
            rec_ns(&mut self.hists.transaction, latency_ns);
        }
    }

    /// Close started → teardown done (peer's FIN seen).
    pub fn teardown(&mut self, measured: bool, latency_ns: u64) {
        if measured {
            self.bump(Counter::Teardowns);
            rec_ns(&mut self.hists.close, latency_ns);
        }
    }

    /// Open loop: a start was issued `lag_ns` after its intended time.
    pub fn schedule_lag(&mut self, measured: bool, lag_ns: u64) {
        if measured {
            rec_ns(&mut self.hists.schedule_lag, lag_ns);
        }
    }

    pub fn completed(&mut self, measured: bool) {
        if measured {
            self.bump(Counter::Completed);
        }
    }

    pub fn failed(&mut self, measured: bool, cause: FailCause) {
        if measured {
            self.bump(match cause {
                FailCause::Refused => Counter::FailRefused,
                FailCause::Timeout => Counter::FailTimeout,
                FailCause::NoPort => Counter::FailNoPort,
                FailCause::Other => Counter::FailOther,
            });
        }
    }

    /// Records `n` connect latencies of `latency_ns` without counting handshakes (a backend
    /// that counts them elsewhere, such as the stateless client's XDP program).
    pub fn connect_latency_n(&mut self, latency_ns: u64, n: u64) {
        let _ = self.hists.connect.record_n(latency_ns.clamp(1, MAX_NS), n);
    }

    /// Adds to a plain counter (retransmits seen by a user-space stack).
    pub fn add(&self, c: Counter, n: u64) {
        self.metrics.shards[self.index].c[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge ([`Counter::TimeWait`], [`Counter::InFlight`]).
    pub fn set_gauge(&self, c: Counter, v: u64) {
        self.metrics.shards[self.index].c[c as usize].store(v, Ordering::Relaxed);
    }

    /// Hands the histograms over for the final report. Call once, when the worker ends.
    pub fn finish(self) {
        *self.metrics.shards[self.index]
            .hists
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(self.hists);
    }
}

/// Percentiles of a histogram in microseconds; all `None` when it is empty.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        if h.is_empty() {
            return Percentiles {
                count: 0,
                p50: None,
                p90: None,
                p99: None,
                p999: None,
                max: None,
                mean: None,
            };
        }
        Percentiles {
            count: h.len(),
            p50: Some(us(h.value_at_quantile(0.50))),
            p90: Some(us(h.value_at_quantile(0.90))),
            p99: Some(us(h.value_at_quantile(0.99))),
            p999: Some(us(h.value_at_quantile(0.999))),
            max: Some(us(h.max())),
            mean: Some((h.mean() / 100.0).round() / 10.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_connections_are_not_counted() {
        let m = Metrics::new(2, 1_000);
        let mut r0 = m.recorder(0);
        let mut r1 = m.recorder(1);
        let early = r0.is_measured(999);
        let late = r1.is_measured(1_000);
        assert!(!early && late);
        r0.attempt(early);
        r0.handshake(early, 50_000);
        r0.completed(early);
        r1.attempt(late);
        r1.handshake(late, 50_000);
        r1.failed(late, FailCause::Timeout);
        r1.attempt(late);
        r1.completed(late);
        let s = m.snapshot();
        assert_eq!(s.get(Counter::Attempted), 2);
        assert_eq!(s.get(Counter::Completed), 1);
        assert_eq!(s.failed(), 1);
        assert_eq!(s.get(Counter::FailTimeout), 1);
        r0.finish();
        r1.finish();
        let h = m.merged_hists();
        assert_eq!(h.connect.len(), 1);
        let p = Percentiles::of(&h.connect);
        assert!((p.p50.unwrap() - 50.0).abs() < 0.1, "{p:?}");
    }

    #[test]
    fn errno_classes() {
        assert_eq!(
            FailCause::from_errno(libc::ECONNREFUSED),
            FailCause::Refused
        );
        assert_eq!(FailCause::from_errno(libc::ETIMEDOUT), FailCause::Timeout);
        assert_eq!(
            FailCause::from_errno(libc::EADDRNOTAVAIL),
            FailCause::NoPort
        );
        assert_eq!(FailCause::from_errno(libc::EIO), FailCause::Other);
    }

    #[test]
    fn snapshot_deltas_keep_gauges() {
        let mut a = Snapshot::default();
        let mut b = Snapshot::default();
        a.c[Counter::Handshakes as usize] = 10;
        b.c[Counter::Handshakes as usize] = 25;
        b.c[Counter::TimeWait as usize] = 7;
        let d = b.since(&a);
        assert_eq!(d.get(Counter::Handshakes), 15);
        assert_eq!(d.get(Counter::TimeWait), 7);
    }
}
