//! The run's results: the JSON document (`--json`) and the human-readable table.
//!
//! Field names here are the documented JSON keys (README.md, "JSON output"); renaming one is a
//! breaking change for scripts/bench.sh and for anyone comparing runs.

use crate::metrics::Percentiles;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub backend: &'static str,
    /// What the client is when it is not a full TCP (`--backend xdp-stateless`), else `None`.
    pub client_note: Option<&'static str>,
    pub server: &'static str,
    pub target: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub elapsed_s: f64,
    pub load: LoadInfo,
    pub connections: Connections,
    pub failed_by_cause: Causes,
    pub rates: Rates,
    pub latency_us: Latencies,
    pub time_wait: TimeWait,
    pub retransmits: Retransmits,
    pub syn_flood: Option<SynFlood>,
    pub timeline: Vec<TimelineEntry>,
    pub loadgen_cpu: f64,
    pub loadgen_cpu_detail: CpuDetail,
    /// Per-core accounting of the measured window (`None` without `--server-cores` and
    /// `--cores`, or where `/proc/stat` is unreadable).
    pub cpu: Option<CpuReport>,
    /// Which side was the limit: `server`, `client`, `both` or `neither` (see `cpustat`).
    pub bound: Option<&'static str>,
    /// xtcp rows: the handshake rate as a percentage of `--ceiling-rate` (the copy-mode
    /// AF_XDP I/O ceiling measured in the same run by a stateless reflector).
    pub ceiling_pct: Option<f64>,
    /// Connect latency distribution for plots: `[nines, us]` pairs, nines = -log10(1 - q)
    /// from 0 (p0) to 4 (p99.99) in steps of 0.05; empty without completed connects.
    pub connect_cdf_us: Vec<[f64; 2]>,
    /// One entry per worker (per `--cores` entry; one unpinned worker without it).
    pub cores: Vec<CoreEntry>,
}

/// One worker's share of the run: `cores[]`.
#[derive(Debug, Clone, Serialize)]
pub struct CoreEntry {
    /// Worker index (the xtcp backend: its receive queue).
    pub worker: usize,
    /// The CPU it was pinned to.
    pub core: Option<usize>,
    /// Its handshakes and transactions per second over the measured window.
    pub handshakes_per_s: f64,
    pub transactions_per_s: f64,
    pub attempted: u64,
    /// Completed connections.
    pub connections: u64,
    pub failures: u64,
    /// SYN plus data retransmits (xtcp backend; `None` for kernel sockets, whose counters
    /// are the namespace's).
    pub retransmits: Option<u64>,
    /// Frames its core handed to other cores, received from them, and dropped (xtcp
    /// backend; `None` for kernel sockets).
    pub handoffs_out: Option<u64>,
    pub handoffs_in: Option<u64>,
    pub handoff_drops: Option<u64>,
}

/// The `cpu` object: both sides' cores over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    pub window_s: f64,
    pub server: ServerCpu,
    pub client: ClientCpu,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    pub cores: Vec<usize>,
    /// `/proc/stat`: everything but idle and iowait, averaged over the server cores.
    pub busy: f64,
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    pub irq: f64,
    /// Share of the window spent on work: `busy` less the engine's empty spinning
    /// (`engine_spin`) for a polling server, `busy` for a server that sleeps when idle.
    pub work: f64,
    /// `proc-stat-less-engine-spin` or `proc-stat`: how `work` was obtained.
    pub work_source: &'static str,
    /// The engine's own work fraction (loop time in iterations that did something), where
    /// the server reports one.
    pub engine_busy: Option<f64>,
    /// The engine's share of the window spinning on empty rings, where reported.
    pub engine_spin: Option<f64>,
    /// Server-core CPU time spent on work divided by connections completed in the window.
    pub us_per_conn: Option<f64>,
    /// The same per transaction (rr, crr, server-close).
    pub us_per_txn: Option<f64>,
    /// `busy` (idle polling included) per completed connection.
    pub us_per_conn_busy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientCpu {
    pub cores: Vec<usize>,
    pub busy: f64,
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    pub irq: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadInfo {
    pub mode: &'static str,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub max_rate: f64,
    pub workers: usize,
    pub cores: Vec<usize>,
    pub source_ips: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Causes {
    pub refused: u64,
    pub timeout: u64,
    pub no_port: u64,
    pub other: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    pub handshakes_per_s: f64,
    pub teardowns_per_s: f64,
    pub transactions_per_s: f64,
    pub failures_per_s: f64,
    pub offered_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    pub connect: Percentiles,
    pub first_byte: Percentiles,
    pub close: Percentiles,
    pub transaction: Percentiles,
    pub schedule_lag: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimeWait {
    pub client_max: Option<u64>,
    pub server_max: Option<u64>,
    pub client_end: Option<u64>,
    pub server_end: Option<u64>,
    pub client_source: &'static str,
    pub server_source: &'static str,
    pub client_bytes_per_entry: Option<u64>,
    pub server_bytes_per_entry: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retransmits {
    pub syn: Option<u64>,
    pub data: Option<u64>,
    pub scope: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct SynFlood {
    pub rate: f64,
    pub sent: u64,
    pub answered: u64,
    pub legit_success_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub t: f64,
    pub interval_s: f64,
    pub handshakes: u64,
    pub teardowns: u64,
    pub transactions: u64,
    pub failures: u64,
    pub time_wait_client: Option<u64>,
    pub time_wait_server: Option<u64>,
    pub loadgen_cpu: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuDetail {
    pub user_s: f64,
    pub sys_s: f64,
    pub cores_used: f64,
    pub per_worker_core: f64,
    pub workers: usize,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

impl Report {
    /// The final table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "xtcp-loadgen: {} against {} ({}), backend {}, {:.1} s measured{}",
            self.workload,
            self.target,
            self.server,
            self.backend,
            self.duration_s,
            if self.warmup_s > 0.0 {
                format!(" after {:.1} s warmup", self.warmup_s)
            } else {
                String::new()
            }
        );
        if let Some(note) = self.client_note {
            let _ = writeln!(s, "client: {note}");
        }
        let load = match (self.load.concurrency, self.load.rate) {
            (_, Some(r)) => format!("open loop, {r} /s offered"),
            (Some(c), None) => {
                format!("closed loop, {c} in flight (cap {} /s)", self.load.max_rate)
            }
            (None, None) => String::new(),
        };
        let _ = writeln!(
            s,
            "  load            {load}, {} worker(s)",
            self.load.workers
        );
        let c = &self.connections;
        let f = &self.failed_by_cause;
        let _ = writeln!(
            s,
            "  connections     attempted {}  completed {}  failed {} (refused {}, timeout {}, no_port {}, other {})",
            c.attempted, c.completed, c.failed, f.refused, f.timeout, f.no_port, f.other
        );
        let r = &self.rates;
        let _ = writeln!(
            s,
            "  rates /s        handshakes {:.0}  teardowns {:.0}  transactions {:.0}  failures {:.0}",
            r.handshakes_per_s, r.teardowns_per_s, r.transactions_per_s, r.failures_per_s
        );
        let _ = writeln!(
            s,
            "  latency (us)    {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency_us;
        for (name, p) in [
            ("connect", &l.connect),
            ("first_byte", &l.first_byte),
            ("transaction", &l.transaction),
            ("close", &l.close),
            ("schedule_lag", &l.schedule_lag),
        ] {
            if p.count == 0 && name == "schedule_lag" {
                continue;
            }
            let _ = writeln!(
                s,
                "    {name:<13} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                p.count,
                us(p.p50),
                us(p.p90),
                us(p.p99),
                us(p.p999),
                us(p.max)
            );
        }
        let t = &self.time_wait;
        let _ = writeln!(
            s,
            "  TIME-WAIT       client max {} ({})  server max {} ({})",
            opt(t.client_max),
            t.client_source,
            opt(t.server_max),
            t.server_source
        );
        let _ = writeln!(
            s,
            "  retransmits     syn {}  segments {} ({})",
            opt(self.retransmits.syn),
            opt(self.retransmits.data),
            self.retransmits.scope
        );
        if self.cores.len() > 1 {
            for c in &self.cores {
                let _ = writeln!(
                    s,
                    "  worker {} (cpu {})  handshakes/s {:.0}  completed {}  failed {}  \
                     retransmits {}  handoffs out {} in {} dropped {}",
                    c.worker,
                    c.core.map_or("-".to_string(), |c| c.to_string()),
                    c.handshakes_per_s,
                    c.connections,
                    c.failures,
                    opt(c.retransmits),
                    opt(c.handoffs_out),
                    opt(c.handoffs_in),
                    opt(c.handoff_drops),
                );
            }
        }
        if let Some(f) = &self.syn_flood {
            let _ = writeln!(
                s,
                "  SYN flood       {} /s offered: sent {}  SYN-ACKs back {}  legitimate success {}",
                f.rate,
                f.sent,
                f.answered,
                f.legit_success_ratio
                    .map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0))
            );
        }
        if let Some(c) = &self.cpu {
            let _ = writeln!(
                s,
                "  cores           server {:?} busy {:.2} (user {:.2} sys {:.2} softirq {:.2}), work {:.2} ({}); client {:?} busy {:.2} (softirq {:.2}); bound: {}",
                c.server.cores,
                c.server.busy,
                c.server.user,
                c.server.system,
                c.server.softirq,
                c.server.work,
                c.server.work_source,
                c.client.cores,
                c.client.busy,
                c.client.softirq,
                self.bound.unwrap_or("-")
            );
            if let Some(u) = c.server.us_per_conn {
                let _ = writeln!(
                    s,
                    "  server cost     {u:.2} us of server core per connection"
                );
            }
        }
        let _ = writeln!(
            s,
            "  loadgen CPU     {:.2} of one core ({:.0} % per worker core; user {:.2} s, sys {:.2} s)",
            self.loadgen_cpu,
            self.loadgen_cpu_detail.per_worker_core * 100.0,
            self.loadgen_cpu_detail.user_s,
            self.loadgen_cpu_detail.sys_s
        );
        s
    }
}
