//! The seam between the load controller and whatever opens the connections.
//!
//! A [`Backend`] turns a [`LoadSpec`] into one [`Worker`] per load-generating core. The run
//! controller then starts one thread per worker, pins it to [`WorkerCtx::core`], and calls
//! [`Worker::run`] on it. A worker drives its share of the load ([`LoadSpec::share`]) with the
//! pacing of [`crate::pace`], records through its [`crate::metrics::Recorder`] following the
//! protocol in [`crate::metrics`], stops issuing new connections at [`LoadSpec::end_ns`] (or as
//! soon as [`WorkerCtx::should_stop`] says so), lets in-flight connections finish or time out
//! within [`LoadSpec::timeout`], and returns.
//!
//! Backends: [`kernel::KernelBackend`] (kernel sockets, epoll) and the xtcp backend (AF_XDP,
//! plugged in by [`xtcp::backend`]). Both produce the same metrics, so their numbers compare.

pub mod kernel;
mod sched;
pub mod stateless;
pub mod stateless_bpf;
pub mod workload;
pub mod xtcp;

use crate::metrics::Recorder;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Open, then the client closes at once: handshake + client-initiated teardown.
    Connect,
    /// Open, send the request, read the response, the client closes.
    Crr,
    /// Open, send the request, the server responds and closes first.
    ServerClose,
    /// Persistent connections, request/response transactions.
    Rr,
    /// Paced SYNs from spoofed sources at `--rate`, no client connections (xtcp backend only).
    SynFlood,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Connect => "connect",
            Workload::Crr => "crr",
            Workload::ServerClose => "server-close",
            Workload::Rr => "rr",
            Workload::SynFlood => "syn-flood",
        }
    }
}

/// Which backend opens the client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// xtcp over AF_XDP.
    Xtcp,
    /// Linux kernel sockets (epoll, non-blocking).
    Kernel,
    /// NOT a full TCP, connect workload only: SYNs sent in batches from user space (AF_XDP),
    /// the server's SYN-ACK and FIN answered by an XDP program (XDP_TX) keeping no state; no
    /// retransmission (a lost frame is a timeout), no client TIME-WAIT.
    XdpStateless,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Xtcp => "xtcp",
            BackendKind::Kernel => "kernel",
            BackendKind::XdpStateless => "xdp-stateless",
        }
    }
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Keep `n` connections (rr: transactions) in flight; starts are still capped by
    /// [`LoadSpec::max_rate`].
    Closed { concurrency: u32 },
    /// Start `rate` connections (rr: transactions) per second on a fixed schedule,
    /// latency measured from the intended start.
    Open { rate: f64 },
}

/// One worker's part of the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Share {
    Closed {
        concurrency: u32,
        /// This worker's start-rate cap.
        max_rate: f64,
    },
    Open {
        rate: f64,
        /// Intended time of this worker's first start (workers are phase-shifted so the
        /// union of their grids is evenly spaced).
        first_ns: u64,
    },
}

/// Everything a backend needs to generate the load. Times are nanoseconds since `epoch`.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub workload: Workload,
    /// The server, IPv4 or IPv6 (the xtcp backend: IPv4 only for now).
    pub target: SocketAddr,
    pub load: Load,
    /// Start-rate cap for the closed loop, connections (rr: transactions) per second.
    pub max_rate: f64,
    /// Local addresses to bind, round-robin; empty lets the stack choose.
    pub source_ips: Vec<IpAddr>,
    /// The `--src-ip` prefix as given (syn-flood spoofs sources inside it).
    pub source_prefix: Option<(IpAddr, u8)>,
    /// `--iface` (xtcp backend).
    pub iface: Option<String>,
    /// `--syn-flood-rate`: spoofed SYNs per second next to the workload (xtcp backend).
    pub syn_flood_rate: Option<f64>,
    /// Bytes sent as the request (crr, server-close, rr).
    pub request: Arc<[u8]>,
    /// Bytes that make a complete response (crr, rr); server-close reads until EOF.
    pub response_bytes: usize,
    /// Connect, response and close timeout.
    pub timeout: Duration,
    /// Persistent connections per worker for rr in open loop.
    pub rr_pool: u32,
    /// Cores for the workers, one worker per entry; empty: one unpinned worker.
    pub cores: Vec<usize>,
    pub epoch: Instant,
    /// End of the warmup: connections intended before it are not measured.
    pub measure_start_ns: u64,
    /// No connection (rr: transaction) is started at or after this time.
    pub end_ns: u64,
    /// Capture file (xtcp backend only; `--pcap`).
    pub pcap: Option<std::path::PathBuf>,
    /// 802.1Q VLAN (xtcp backend only; `--vlan`).
    pub vlan: Option<::xtcp::wire::VlanId>,
}

impl LoadSpec {
    pub fn workers(&self) -> usize {
        self.cores.len().max(1)
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The part of the load worker `index` of `workers` generates.
    pub fn share(&self, index: usize, workers: usize) -> Share {
        let n = workers.max(1) as u32;
        match self.load {
            Load::Closed { concurrency } => {
                let i = index as u32;
                Share::Closed {
                    concurrency: concurrency / n + u32::from(i < concurrency % n),
                    max_rate: self.max_rate / f64::from(n),
                }
            }
            Load::Open { rate } => {
                let per = rate / f64::from(n);
                Share::Open {
                    rate: per,
                    first_ns: (1e9 / rate * index as f64) as u64,
                }
            }
        }
    }
}

/// What a worker gets besides the spec.
pub struct WorkerCtx {
    /// The final spec, with the run's clock.
    pub spec: Arc<LoadSpec>,
    pub index: usize,
    pub workers: usize,
    /// The core this thread is already pinned to, if any.
    pub core: Option<usize>,
    pub recorder: Recorder,
}

impl WorkerCtx {
    /// SIGINT/SIGTERM seen: stop starting connections, finish in-flight ones.
    pub fn should_stop(&self) -> bool {
        crate::util::stop_requested()
    }
}

/// Generates load; one instance per run.
pub trait Backend {
    fn kind(&self) -> BackendKind;

    /// Checks the spec and sets up shared state (for xtcp: the AF_XDP sockets, one per queue),
    /// returning exactly `spec.workers()` workers. Errors are shown to the user verbatim.
    /// The spec's clock fields (`epoch`, `measure_start_ns`, `end_ns`) are not final yet: the
    /// run starts after `prepare` returns, and each worker gets the final spec in its
    /// [`WorkerCtx`].
    fn prepare(&mut self, spec: &LoadSpec) -> Result<Vec<Box<dyn Worker>>, String>;

    /// Where the client's TIME-WAIT count comes from: `false` reads `/proc/net/sockstat`
    /// (kernel sockets), `true` sums the workers' [`crate::metrics::Counter::TimeWait`] gauges
    /// (a user-space stack keeps its own TIME-WAIT table).
    fn time_wait_from_gauges(&self) -> bool {
        false
    }

    /// Memory per client TIME-WAIT entry, where the backend knows it (`None`: the kernel
    /// backend's figure comes from the slab allocator instead).
    fn time_wait_bytes_per_entry(&self) -> Option<u64> {
        None
    }
}

/// One load-generating thread's work.
pub trait Worker: Send {
    /// Runs until `spec.end_ns` plus the drain of in-flight connections. Must call
    /// `ctx.recorder.finish()` before returning `Ok`.
    fn run(self: Box<Self>, ctx: WorkerCtx) -> Result<(), String>;
}

/// The backend for `kind`.
pub fn make(kind: BackendKind) -> Result<Box<dyn Backend>, String> {
    match kind {
        BackendKind::Kernel => Ok(Box::new(kernel::KernelBackend)),
        BackendKind::Xtcp => xtcp::backend(),
        BackendKind::XdpStateless => Ok(Box::new(stateless::StatelessBackend)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(load: Load) -> LoadSpec {
        LoadSpec {
            workload: Workload::Connect,
            target: "127.0.0.1:1".parse().unwrap(),
            load,
            max_rate: 1000.0,
            source_ips: vec![],
            source_prefix: None,
            iface: None,
            syn_flood_rate: None,
            request: Arc::from(&b"x"[..]),
            response_bytes: 1,
            timeout: Duration::from_secs(1),
            rr_pool: 4,
            cores: vec![0, 1, 2],
            epoch: Instant::now(),
            measure_start_ns: 0,
            end_ns: 1,
            pcap: None,
            vlan: None,
        }
    }

    #[test]
    fn closed_shares_sum_up() {
        let s = spec(Load::Closed { concurrency: 10 });
        let total: u32 = (0..3)
            .map(|i| match s.share(i, 3) {
                Share::Closed { concurrency, .. } => concurrency,
                Share::Open { .. } => unreachable!(),
            })
            .sum();
        assert_eq!(total, 10);
    }

    #[test]
    fn open_shares_interleave() {
        let s = spec(Load::Open { rate: 3000.0 });
        let firsts: Vec<u64> = (0..3)
            .map(|i| match s.share(i, 3) {
                Share::Open { rate, first_ns } => {
                    assert!((rate - 1000.0).abs() < 1e-9);
                    first_ns
                }
                Share::Closed { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(firsts, vec![0, 333_333, 666_666]);
    }
}
