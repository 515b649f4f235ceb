//! Per-CPU accounting of the measured window: where each core's time went, and which side was
//! the limit.
//!
//! The load generator reads `/proc/stat` (the per-CPU `cpuN` lines) when the measurement
//! starts and when it ends; the difference gives each core's user, system, softirq, irq and
//! idle shares of the window ([`CoreShare`]). `busy` is everything but idle and iowait.
//!
//! A busy-polling server keeps its core 100 % busy even with nothing to do, so for the xtcp
//! server the "busy with work" share needs the engine's own counts: its stats file carries,
//! per core, the wall time spent in loop iterations that did work (`busy_ns`), in idle waits
//! (`wait_ns`) and in all iterations (`loop_ns`). [`engine_work`] gives the engine's own work
//! fraction; [`engine_spin`] the share spent spinning on empty rings, and [`server_work`] is
//! the core's busy share less that spinning: it keeps the kernel's receive work done on the
//! server core (the NAPI kthread) on the server's bill, as for Linux. For a server that sleeps
//! when idle (the Linux epoll server) the work share is the core's busy share.
//!
//! [`verdict`] names the limit (`bound`): `"server"` when the server core did work
//! ≥ [`SERVER_SATURATED`] of the window and the client core was busy < [`CLIENT_SATURATED`];
//! `"client"` for the reverse; `"both"` when both were at their thresholds; `"neither"`
//! otherwise (the offered load, pacing or latency was the limit).
//!
//! Parsers take text and never panic: malformed lines are skipped.

use serde::Serialize;

/// The server core counts as saturated at this share of the window spent on work.
pub const SERVER_SATURATED: f64 = 0.95;
/// The client core counts as saturated at this busy share.
pub const CLIENT_SATURATED: f64 = 0.90;

/// One `cpuN` line of `/proc/stat`, in clock ticks (USER_HZ).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }

    fn since(&self, before: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(before.user),
            nice: self.nice.saturating_sub(before.nice),
            system: self.system.saturating_sub(before.system),
            idle: self.idle.saturating_sub(before.idle),
            iowait: self.iowait.saturating_sub(before.iowait),
            irq: self.irq.saturating_sub(before.irq),
            softirq: self.softirq.saturating_sub(before.softirq),
            steal: self.steal.saturating_sub(before.steal),
        }
    }
}

/// Every `cpuN` line of a `/proc/stat` text, indexed by N (absent CPUs are `None`).
pub fn parse_proc_stat(text: &str) -> Vec<Option<CpuTimes>> {
    let mut out: Vec<Option<CpuTimes>> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(id) = name.strip_prefix("cpu") else {
            continue;
        };
        // "cpu" alone is the sum over all CPUs.
        let Ok(id) = id.parse::<usize>() else {
            continue;
        };
        if id > 4096 {
            continue;
        }
        let v: Vec<u64> = f.map_while(|x| x.parse().ok()).collect();
        if v.len() < 7 {
            continue;
        }
        if out.len() <= id {
            out.resize(id + 1, None);
        }
        out[id] = Some(CpuTimes {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v.get(7).copied().unwrap_or(0),
        });
    }
    out
}

/// A reading of `/proc/stat` (empty if it cannot be read).
pub fn read_proc_stat() -> Vec<Option<CpuTimes>> {
    std::fs::read_to_string("/proc/stat")
        .map(|t| parse_proc_stat(&t))
        .unwrap_or_default()
}

/// Shares of one core's (or the average of several cores') time over a window, each 0..=1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CoreShare {
    /// Everything but idle and iowait.
    pub busy: f64,
    /// User time (with nice).
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    pub irq: f64,
}

/// The shares of `cores` between two readings, averaged over the cores; `None` if a core is
/// missing from either reading or no time passed.
pub fn share(
    before: &[Option<CpuTimes>],
    after: &[Option<CpuTimes>],
    cores: &[usize],
) -> Option<CoreShare> {
    if cores.is_empty() {
        return None;
    }
    let mut sum = CpuTimes::default();
    for &c in cores {
        let d = after.get(c)?.as_ref()?.since(before.get(c)?.as_ref()?);
        sum.user += d.user + d.nice;
        sum.system += d.system;
        sum.idle += d.idle + d.iowait;
        sum.irq += d.irq;
        sum.softirq += d.softirq;
        sum.steal += d.steal;
    }
    let total = sum.total();
    if total == 0 {
        return None;
    }
    let f = |v: u64| round3(v as f64 / total as f64);
    Some(CoreShare {
        busy: f(total - sum.idle),
        user: f(sum.user),
        system: f(sum.system),
        softirq: f(sum.softirq),
        irq: f(sum.irq),
    })
}

/// One core's work counters from the xtcp engine's stats file (cumulative nanoseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCore {
    pub core: Option<usize>,
    /// Wall time in loop iterations that received, sent, accepted or delivered something.
    pub busy_ns: u64,
    /// Wall time in the loop (all iterations, idle waits included).
    pub loop_ns: u64,
    /// Wall time inside idle waits (0 where the file has no `wait_ns`).
    pub wait_ns: u64,
}

/// The `cores[].{core, busy_ns, loop_ns}` of an xtcp stats file (empty if absent: the Linux
/// server's file has none).
pub fn parse_engine_cores(text: &str) -> Vec<EngineCore> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(cores) = v.get("cores").and_then(|c| c.as_array()) else {
        return Vec::new();
    };
    cores
        .iter()
        .filter_map(|c| {
            Some(EngineCore {
                core: c.get("core").and_then(|x| x.as_u64()).map(|x| x as usize),
                busy_ns: c.get("busy_ns")?.as_u64()?,
                loop_ns: c.get("loop_ns")?.as_u64()?,
                wait_ns: c.get("wait_ns").and_then(|x| x.as_u64()).unwrap_or(0),
            })
        })
        .collect()
}

/// The engine's work fraction between two readings of its stats file, over all its cores:
/// Δbusy_ns / Δloop_ns. `None` when the readings have no busy counters or no loop time passed
/// (the file was not rewritten in between).
pub fn engine_work(before: &[EngineCore], after: &[EngineCore]) -> Option<f64> {
    if after.is_empty() {
        return None;
    }
    let (mut busy, mut total) = (0u64, 0u64);
    for (i, a) in after.iter().enumerate() {
        let b = before.get(i).copied().unwrap_or_default();
        busy += a.busy_ns.saturating_sub(b.busy_ns);
        total += a.loop_ns.saturating_sub(b.loop_ns);
    }
    (total > 0).then(|| round3((busy as f64 / total as f64).min(1.0)))
}

/// The engine's share of the window spent spinning on empty rings (not working, not
/// waiting) between two readings: Δ(loop_ns - busy_ns - wait_ns) / Δloop_ns.
pub fn engine_spin(before: &[EngineCore], after: &[EngineCore]) -> Option<f64> {
    if after.is_empty() {
        return None;
    }
    let (mut spin, mut total) = (0u64, 0u64);
    for (i, a) in after.iter().enumerate() {
        let b = before.get(i).copied().unwrap_or_default();
        let lp = a.loop_ns.saturating_sub(b.loop_ns);
        let busy = a.busy_ns.saturating_sub(b.busy_ns);
        let wait = a.wait_ns.saturating_sub(b.wait_ns);
        spin += lp.saturating_sub(busy + wait);
        total += lp;
    }
    (total > 0).then(|| round3((spin as f64 / total as f64).min(1.0)))
}

/// The server core's work share: its `/proc/stat` busy share less the engine's empty
/// spinning (so the kernel's receive work on that core, e.g. the NAPI kthread, counts as the
/// server's); the busy share itself where the server has no engine counters.
pub fn server_work(core_busy: f64, spin: Option<f64>) -> f64 {
    round3((core_busy - spin.unwrap_or(0.0)).max(0.0))
}

/// Which side limited the run (see the module docs).
pub fn verdict(server_work: f64, client_busy: f64) -> &'static str {
    match (
        server_work >= SERVER_SATURATED,
        client_busy >= CLIENT_SATURATED,
    ) {
        (true, false) => "server",
        (false, true) => "client",
        (true, true) => "both",
        (false, false) => "neither",
    }
}

/// Microseconds of `share` of a window of `secs` seconds per completed unit.
pub fn us_per(share: f64, secs: f64, count: u64) -> Option<f64> {
    (count > 0 && secs > 0.0).then(|| round3(share * secs * 1e6 / count as f64))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
cpu0 100 5 50 1000 10 0 20 0 0 0\n\
cpu1 200 0 100 2000 0 1 30 0 0 0\n\
intr 12345 1 2 3\n";
    // cpu0: +40 user, +5 nice, +15 system, +30 idle, +0 iowait, +10 softirq = 100 ticks.
    // cpu1: +0 user, +2 system, +97 idle, +1 iowait = 100 ticks.
    const AFTER: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
cpu0 140 10 65 1030 10 0 30 0 0 0\n\
cpu1 200 0 102 2097 1 1 30 0 0 0\n";

    #[test]
    fn parses_per_cpu_lines_only() {
        let s = parse_proc_stat(BEFORE);
        assert_eq!(s.len(), 2);
        let c0 = s[0].unwrap();
        assert_eq!((c0.user, c0.nice, c0.system, c0.idle), (100, 5, 50, 1000));
        assert_eq!((c0.iowait, c0.irq, c0.softirq), (10, 0, 20));
        assert_eq!(s[1].unwrap().irq, 1);
        // Malformed and short lines are skipped, never a panic.
        let s = parse_proc_stat("cpu0 1 2\ncpuX 1 2 3 4 5 6 7\ncpu3 1 2 3 4 5 6 7\n\n");
        assert_eq!(s.len(), 4);
        assert!(s[0].is_none() && s[1].is_none());
        assert_eq!(s[3].unwrap().softirq, 7);
    }

    #[test]
    fn shares_over_the_window() {
        let (b, a) = (parse_proc_stat(BEFORE), parse_proc_stat(AFTER));
        let c0 = share(&b, &a, &[0]).unwrap();
        assert_eq!(c0.busy, 0.7);
        assert_eq!(c0.user, 0.45);
        assert_eq!(c0.system, 0.15);
        assert_eq!(c0.softirq, 0.1);
        let c1 = share(&b, &a, &[1]).unwrap();
        assert_eq!(c1.busy, 0.02, "iowait counts as idle");
        // Several cores: the average.
        let both = share(&b, &a, &[0, 1]).unwrap();
        assert_eq!(both.busy, 0.36);
        assert!(share(&b, &a, &[2]).is_none());
        assert!(share(&b, &a, &[]).is_none());
        assert!(share(&b, &b, &[0]).is_none(), "no time passed");
    }

    #[test]
    fn engine_work_fraction() {
        let before = parse_engine_cores(
            r#"{"server":"xtcp","cores":[{"core":1,"busy_ns":1000,"loop_ns":5000}]}"#,
        );
        let after = parse_engine_cores(
            r#"{"server":"xtcp","cores":[{"core":1,"busy_ns":97000,"loop_ns":105000}]}"#,
        );
        assert_eq!(after[0].core, Some(1));
        assert_eq!(engine_work(&before, &after), Some(0.96));
        assert_eq!(engine_work(&after, &after), None, "file not rewritten");
        assert!(parse_engine_cores(r#"{"server":"linux","accepted":3}"#).is_empty());
        assert!(parse_engine_cores("not json").is_empty());
        // Without a first reading: everything since the start.
        assert_eq!(engine_work(&[], &after), Some(0.924));
    }

    #[test]
    fn spinning_and_server_work() {
        let before =
            parse_engine_cores(r#"{"cores":[{"core":1,"busy_ns":0,"loop_ns":0,"wait_ns":0}]}"#);
        // 1000 ns: 200 working, 300 waiting, 500 spinning.
        let after = parse_engine_cores(
            r#"{"cores":[{"core":1,"busy_ns":200,"loop_ns":1000,"wait_ns":300}]}"#,
        );
        assert_eq!(engine_spin(&before, &after), Some(0.5));
        // The core was 0.9 busy (spinning 0.5, engine work 0.2, NAPI kthread 0.2): 0.4 work.
        assert_eq!(server_work(0.9, engine_spin(&before, &after)), 0.4);
        assert_eq!(server_work(0.3, Some(0.5)), 0.0, "never negative");
        assert_eq!(server_work(0.7, None), 0.7, "no engine: the busy share");
        // Files without wait_ns (older engines) read as never waiting.
        let old = parse_engine_cores(r#"{"cores":[{"core":1,"busy_ns":200,"loop_ns":1000}]}"#);
        assert_eq!(engine_spin(&[], &old), Some(0.8));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(0.99, 0.5), "server");
        assert_eq!(verdict(0.95, 0.899), "server");
        assert_eq!(verdict(0.94, 0.99), "client");
        assert_eq!(verdict(0.97, 0.95), "both");
        assert_eq!(verdict(0.5, 0.5), "neither");
    }

    #[test]
    fn microseconds_per_connection() {
        // 0.5 of a 2 s window over 100 000 connections: 10 µs each.
        assert_eq!(us_per(0.5, 2.0, 100_000), Some(10.0));
        assert_eq!(us_per(0.5, 2.0, 0), None);
    }
}
