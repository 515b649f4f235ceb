//! `run`: builds the spec, starts one pinned thread per worker, samples once a second, and
//! writes the report.
//!
//! Sampling ticks fall every second of the warmup (progress only), at the end of the warmup,
//! then every second of the measurement and at its end, so timeline entries are aligned to the
//! measurement start. Totals are exact (each connection counts once, see [`crate::metrics`]);
//! the TIME-WAIT maxima are taken over the samples from the end of the warmup to the end of
//! the drain.

use crate::backend::{self, BackendKind, Load, LoadSpec, WorkerCtx, Workload};
use crate::cli::{self, RunArgs, ServerKind};
use crate::cpustat;
use crate::metrics::{Counter, Hists, Metrics, Percentiles, Snapshot};
use crate::probe::{self, NetnsSampler, ServerProbe};
use crate::report::*;
use crate::util;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEC: u64 = 1_000_000_000;

/// A finished run: the report and the merged latency histograms (for the plot).
pub struct Outcome {
    pub report: Report,
    pub hists: Hists,
}

pub fn run(args: RunArgs) -> Result<Outcome, String> {
    args.validate()?;
    util::install_stop_handler();
    let cores = match &args.cores {
        Some(s) => {
            let c = util::parse_cores(s).map_err(|e| format!("--cores {s}: {e}"))?;
            let avail: Vec<usize> = core_affinity::get_core_ids()
                .unwrap_or_default()
                .iter()
                .map(|c| c.id)
                .collect();
            if let Some(bad) = c.iter().find(|c| !avail.contains(c)) {
                return Err(format!(
                    "--cores {s}: core {bad} is not available (this process may use {avail:?})"
                ));
            }
            c
        }
        None => Vec::new(),
    };
    let (source_ips, source_prefix) = match &args.src_ip {
        Some(s) => {
            let (addrs, prefix) = cli::parse_src(s)?;
            if args.backend == BackendKind::Kernel && args.workload != Workload::SynFlood {
                cli::check_local(&addrs, s)?;
            }
            (addrs, Some(prefix))
        }
        None => (Vec::new(), None),
    };

    let mut backend = backend::make(args.backend)?;
    let warmup_ns = (args.warmup * 1e9) as u64;
    let duration_ns = ((args.duration * 1e9) as u64).max(1);
    let mut spec = LoadSpec {
        workload: args.workload,
        target: args.target,
        load: args.load(),
        max_rate: args.max_rate,
        source_ips,
        source_prefix,
        iface: args.iface.clone(),
        syn_flood_rate: args.syn_flood_rate,
        request: Arc::from(args.request()),
        response_bytes: args.response_bytes(),
        timeout: Duration::from_millis(args.timeout_ms),
        rr_pool: args.rr_pool,
        cores: cores.clone(),
        epoch: Instant::now(),
        measure_start_ns: warmup_ns,
        end_ns: warmup_ns + duration_ns,
        pcap: args.pcap.clone(),
        vlan: args.vlan,
    };
    let workers = backend.prepare(&spec)?;
    if workers.len() != spec.workers() {
        return Err(format!(
            "backend returned {} workers for {} cores",
            workers.len(),
            spec.workers()
        ));
    }

    let (probe, server_source) = match (&args.server_stats, &args.server_netns) {
        (Some(p), _) => (ServerProbe::StatsFile(p.clone()), "stats-file"),
        (None, Some(ns)) => (
            ServerProbe::Netns(NetnsSampler::start(ns)?),
            "netns-sockstat",
        ),
        (None, None) => (ServerProbe::None, "none"),
    };
    let server = server_name(&args);
    let from_gauges = backend.time_wait_from_gauges();
    let client_tw = |snap: &Snapshot| {
        if from_gauges {
            Some(snap.get(Counter::TimeWait))
        } else {
            probe::time_wait_here()
        }
    };
    let retrans0 = probe::retransmits_here();

    spec.epoch = Instant::now();
    let spec = Arc::new(spec);
    let n = spec.workers();
    let metrics = Metrics::new(n, spec.measure_start_ns);
    let mut handles = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let core = cores.get(i).copied();
        let ctx = WorkerCtx {
            spec: Arc::clone(&spec),
            index: i,
            workers: n,
            core,
            recorder: metrics.recorder(i),
        };
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{i}"))
            .spawn(move || {
                crate::sys::pin_to(core);
                w.run(ctx)
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(h);
    }

    let progress = Progress::new(args.quiet, args.duration, args.warmup);
    let mut timeline = Vec::new();
    let mut tw_client_max: Option<u64> = None;
    let mut tw_server_max: Option<u64> = None;
    let mut prev_tick = 0u64;
    let mut prev_snap = Snapshot::default();
    let mut prev_cpu = util::process_cpu_time();
    let mut cpu_measure_start = prev_cpu;
    let server_cores = match &args.server_cores {
        Some(s) => util::parse_cores(s).map_err(|e| format!("--server-cores {s}: {e}"))?,
        None => Vec::new(),
    };
    let engine_reading = || {
        args.server_stats
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| cpustat::parse_engine_cores(&t))
            .unwrap_or_default()
    };
    // Readings at the start of the measured window (taken again when the warmup ends).
    let mut stat_start = cpustat::read_proc_stat();
    let mut engine_start = engine_reading();
    let (stat_end, engine_end, shard_end);
    let measured_ns;
    let cpu_at_end;
    loop {
        let next = if prev_tick < spec.measure_start_ns {
            (prev_tick + SEC).min(spec.measure_start_ns)
        } else {
            (prev_tick + SEC).min(spec.end_ns)
        };
        // Sleep in small steps so SIGINT or failed workers end the run early.
        let mut tick = next;
        loop {
            let now = spec.now_ns();
            if now >= next {
                break;
            }
            if util::stop_requested() || handles.iter().all(|h| h.is_finished()) {
                tick = now;
                break;
            }
            std::thread::sleep(Duration::from_nanos((next - now).min(20_000_000)));
        }
        let snap = metrics.snapshot();
        let cpu = util::process_cpu_time();
        let tw_c = client_tw(&snap);
        let tw_s = probe.time_wait();
        let interval = tick.saturating_sub(prev_tick).max(1);
        let cpu_frac = (cpu.saturating_sub(prev_cpu)).as_nanos() as f64 / interval as f64;
        if tick == spec.measure_start_ns {
            cpu_measure_start = cpu;
            stat_start = cpustat::read_proc_stat();
            engine_start = engine_reading();
        }
        if tick > spec.measure_start_ns {
            tw_client_max = max_opt(tw_client_max, tw_c);
            tw_server_max = max_opt(tw_server_max, tw_s);
            let d = snap.since(&prev_snap);
            timeline.push(TimelineEntry {
                t: round3((tick - spec.measure_start_ns) as f64 / 1e9),
                interval_s: round3(interval as f64 / 1e9),
                handshakes: d.get(Counter::Handshakes),
                teardowns: d.get(Counter::Teardowns),
                transactions: d.get(Counter::Transactions),
                failures: d.failed(),
                time_wait_client: tw_c,
                time_wait_server: tw_s,
                loadgen_cpu: round3(cpu_frac),
            });
        }
        progress.line(
            tick,
            &spec,
            &snap.since(&prev_snap),
            interval,
            &snap,
            tw_c,
            tw_s,
        );
        prev_tick = tick;
        prev_snap = snap;
        prev_cpu = cpu;
        if tick >= spec.end_ns || tick < next {
            measured_ns = tick.saturating_sub(spec.measure_start_ns);
            cpu_at_end = cpu;
            stat_end = cpustat::read_proc_stat();
            engine_end = engine_reading();
            shard_end = metrics.shard_snapshots();
            break;
        }
    }
    progress.draining();
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a worker thread panicked".into()),
        }
    }
    let elapsed_ns = spec.now_ns();
    progress.done();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let totals = metrics.snapshot();
    // The drain may still add TIME-WAIT entries: sample once more.
    let tw_c_end = client_tw(&totals);
    let tw_s_end = probe.time_wait();
    tw_client_max = max_opt(tw_client_max, tw_c_end);
    tw_server_max = max_opt(tw_server_max, tw_s_end);
    let retrans1 = probe::retransmits_here();
    let hists = metrics.merged_hists();

    let secs = (measured_ns as f64 / 1e9).max(1e-9);
    let window: (u64, u64, u64, u64) = timeline.iter().fold((0, 0, 0, 0), |a, e| {
        (
            a.0 + e.handshakes,
            a.1 + e.teardowns,
            a.2 + e.transactions,
            a.3 + e.failures,
        )
    });
    let cpu_used = cpu_at_end.saturating_sub(cpu_measure_start).as_secs_f64() / secs;
    let (user_s, sys_s) = util::process_cpu_split();
    let server_stats = args
        .server_stats
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| probe::parse_server_stats(&t));
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let (retransmits, scope) = if from_gauges {
        (
            (
                Some(totals.get(Counter::SynRetrans)),
                Some(totals.get(Counter::DataRetrans)),
            ),
            "loadgen",
        )
    } else {
        (
            (delta(retrans0.0, retrans1.0), delta(retrans0.1, retrans1.1)),
            "netns",
        )
    };
    let flood_rate = match (spec.workload, spec.load) {
        (Workload::SynFlood, Load::Open { rate }) => Some(rate),
        _ => spec.syn_flood_rate,
    };
    let (concurrency, rate) = match spec.load {
        Load::Closed { concurrency } => (Some(concurrency), None),
        Load::Open { rate } => (None, Some(rate)),
    };
    let cpu_report = cpu_report(CpuInputs {
        server_cores: &server_cores,
        client_cores: &cores,
        stat: (&stat_start, &stat_end),
        engine: (&engine_start, &engine_end),
        secs,
        connections: window.0,
        transactions: window.2,
    });
    let bound = cpu_report
        .as_ref()
        .map(|c| cpustat::verdict(c.server.work, c.client.busy));
    let ceiling_pct = args
        .ceiling_rate
        .filter(|&c| c > 0.0)
        .map(|c| round1(window.0 as f64 / secs / c * 100.0));
    let report = Report {
        workload: spec.workload.name(),
        backend: args.backend.name(),
        client_note: (args.backend == BackendKind::XdpStateless)
            .then_some(backend::stateless::NOTE),
        server,
        target: spec.target.to_string(),
        duration_s: round3(secs),
        warmup_s: args.warmup,
        elapsed_s: round3(elapsed_ns as f64 / 1e9),
        load: LoadInfo {
            mode: if rate.is_some() { "open" } else { "closed" },
            concurrency,
            rate,
            max_rate: spec.max_rate,
            workers: n,
            cores,
            source_ips: spec.source_ips.len(),
            request_bytes: spec.request.len(),
            response_bytes: spec.response_bytes,
            timeout_ms: args.timeout_ms,
        },
        connections: Connections {
            attempted: totals.get(Counter::Attempted),
            completed: totals.get(Counter::Completed),
            failed: totals.failed(),
        },
        failed_by_cause: Causes {
            refused: totals.get(Counter::FailRefused),
            timeout: totals.get(Counter::FailTimeout),
            no_port: totals.get(Counter::FailNoPort),
            other: totals.get(Counter::FailOther),
        },
        rates: Rates {
            handshakes_per_s: round1(window.0 as f64 / secs),
            teardowns_per_s: round1(window.1 as f64 / secs),
            transactions_per_s: round1(window.2 as f64 / secs),
            failures_per_s: round1(window.3 as f64 / secs),
            offered_per_s: rate,
        },
        latency_us: Latencies {
            connect: Percentiles::of(&hists.connect),
            first_byte: Percentiles::of(&hists.first_byte),
            close: Percentiles::of(&hists.close),
            transaction: Percentiles::of(&hists.transaction),
            schedule_lag: Percentiles::of(&hists.schedule_lag),
        },
        time_wait: TimeWait {
            client_max: tw_client_max,
            server_max: tw_server_max,
            client_end: tw_c_end,
            server_end: tw_s_end,
            client_source: if from_gauges { "backend" } else { "sockstat" },
            server_source,
            client_bytes_per_entry: if from_gauges {
                backend.time_wait_bytes_per_entry()
            } else {
                probe::kernel_tw_bytes()
            },
            server_bytes_per_entry: server_stats.and_then(|s| s.time_wait_bytes_per_entry),
        },
        retransmits: Retransmits {
            syn: retransmits.0,
            data: retransmits.1,
            scope,
        },
        syn_flood: flood_rate.map(|rate| {
            let attempted = totals.get(Counter::Attempted);
            SynFlood {
                rate,
                sent: totals.get(Counter::FloodSent),
                answered: totals.get(Counter::FloodAnswered),
                legit_success_ratio: (attempted > 0)
                    .then(|| round3(totals.get(Counter::Completed) as f64 / attempted as f64)),
            }
        }),
        timeline,
        loadgen_cpu: round3(cpu_used),
        loadgen_cpu_detail: CpuDetail {
            user_s: round3(user_s),
            sys_s: round3(sys_s),
            cores_used: round3(cpu_used),
            per_worker_core: round3(cpu_used / n as f64),
            workers: n,
        },
        cpu: cpu_report,
        bound,
        ceiling_pct,
        connect_cdf_us: crate::plot::nines_curve(&hists.connect, 0.05)
            .into_iter()
            .map(|(x, us)| [round3(x), round1(us)])
            .collect(),
        cores: core_entries(
            &metrics.shard_snapshots(),
            &shard_end,
            &spec.cores,
            secs,
            from_gauges,
        ),
    };
    Ok(Outcome { report, hists })
}

/// The per-worker breakdown: rates from the snapshots at the end of the measured window
/// (`window`), counts from the final ones; retransmits and handoffs only where the backend
/// counts them itself (`own`: the xtcp backend).
fn core_entries(
    last: &[Snapshot],
    window: &[Snapshot],
    cores: &[usize],
    secs: f64,
    own: bool,
) -> Vec<CoreEntry> {
    let mine = |v: u64| own.then_some(v);
    last.iter()
        .zip(window)
        .enumerate()
        .map(|(i, (s, w))| CoreEntry {
            worker: i,
            core: cores.get(i).copied(),
            handshakes_per_s: round1(w.get(Counter::Handshakes) as f64 / secs),
            transactions_per_s: round1(w.get(Counter::Transactions) as f64 / secs),
            attempted: s.get(Counter::Attempted),
            connections: s.get(Counter::Completed),
            failures: s.failed(),
            retransmits: mine(s.get(Counter::SynRetrans) + s.get(Counter::DataRetrans)),
            handoffs_out: mine(s.get(Counter::HandoffsOut)),
            handoffs_in: mine(s.get(Counter::HandoffsIn)),
            handoff_drops: mine(s.get(Counter::HandoffDrops)),
        })
        .collect()
}

struct CpuInputs<'a> {
    server_cores: &'a [usize],
    client_cores: &'a [usize],
    stat: (
        &'a [Option<cpustat::CpuTimes>],
        &'a [Option<cpustat::CpuTimes>],
    ),
    engine: (&'a [cpustat::EngineCore], &'a [cpustat::EngineCore]),
    secs: f64,
    connections: u64,
    transactions: u64,
}

/// The `cpu` object, when both sides' cores are known and /proc/stat was readable.
fn cpu_report(i: CpuInputs<'_>) -> Option<CpuReport> {
    let s = cpustat::share(i.stat.0, i.stat.1, i.server_cores)?;
    let c = cpustat::share(i.stat.0, i.stat.1, i.client_cores)?;
    let engine_busy = cpustat::engine_work(i.engine.0, i.engine.1);
    // A polling engine's empty spinning is not work; everything else on its core is (its
    // own work and the kernel's receive path there), as for a server that sleeps when idle.
    let spin = cpustat::engine_spin(i.engine.0, i.engine.1);
    let work = cpustat::server_work(s.busy, spin);
    let work_source = if spin.is_some() {
        "proc-stat-less-engine-spin"
    } else {
        "proc-stat"
    };
    let n_server = i.server_cores.len() as f64;
    Some(CpuReport {
        window_s: round3(i.secs),
        server: ServerCpu {
            cores: i.server_cores.to_vec(),
            busy: s.busy,
            user: s.user,
            system: s.system,
            softirq: s.softirq,
            irq: s.irq,
            work,
            work_source,
            engine_busy,
            engine_spin: spin,
            us_per_conn: cpustat::us_per(work * n_server, i.secs, i.connections),
            us_per_txn: cpustat::us_per(work * n_server, i.secs, i.transactions),
            us_per_conn_busy: cpustat::us_per(s.busy * n_server, i.secs, i.connections),
        },
        client: ClientCpu {
            cores: i.client_cores.to_vec(),
            busy: c.busy,
            user: c.user,
            system: c.system,
            softirq: c.softirq,
            irq: c.irq,
        },
    })
}

/// `server` key: explicit flag, else the stats file's own `server` key, else `xtcp` when a
/// stats file is given (the xtcp server writes one), else `linux`.
fn server_name(args: &RunArgs) -> &'static str {
    if let Some(k) = args.server_kind {
        return match k {
            ServerKind::Xtcp => "xtcp",
            ServerKind::Linux => "linux",
            ServerKind::Reflector => "reflector",
        };
    }
    if let Some(p) = &args.server_stats {
        let named = std::fs::read_to_string(p)
            .ok()
            .and_then(|t| probe::parse_server_stats(&t))
            .and_then(|s| s.server);
        return match named.as_deref() {
            Some("linux") => "linux",
            _ => "xtcp",
        };
    }
    "linux"
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The live line on stderr: rewritten in place on a terminal, one line per second otherwise.
struct Progress {
    quiet: bool,
    tty: bool,
    duration: f64,
    warmup: f64,
}

impl Progress {
    fn new(quiet: bool, duration: f64, warmup: f64) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            duration,
            warmup,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        tick: u64,
        spec: &LoadSpec,
        d: &Snapshot,
        interval: u64,
        total: &Snapshot,
        tw_c: Option<u64>,
        tw_s: Option<u64>,
    ) {
        if self.quiet {
            return;
        }
        let per_s = |v: u64| v as f64 * 1e9 / interval as f64;
        let phase = if tick <= spec.measure_start_ns && self.warmup > 0.0 {
            format!("warmup {:>5.1}/{:.0}s", tick as f64 / 1e9, self.warmup)
        } else {
            format!(
                "{:>6.1}/{:.0}s",
                (tick - spec.measure_start_ns) as f64 / 1e9,
                self.duration
            )
        };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let text = format!(
            "[{phase}] handshakes {:>8.0}/s  teardowns {:>8.0}/s  failed {} (rst {} to {} port {})  in-flight {}  TIME-WAIT client {} server {}",
            per_s(d.get(Counter::Handshakes)),
            per_s(d.get(Counter::Teardowns)),
            total.failed(),
            total.get(Counter::FailRefused),
            total.get(Counter::FailTimeout),
            total.get(Counter::FailNoPort),
            total.get(Counter::InFlight),
            opt(tw_c),
            opt(tw_s),
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    fn draining(&self) {
        if !self.quiet && !self.tty {
            eprintln!("[drain] waiting for in-flight connections");
        }
    }

    fn done(&self) {
        if !self.quiet && self.tty {
            eprintln!();
        }
    }
}
