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
