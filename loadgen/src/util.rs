//! Small helpers shared by both subcommands: core lists, stop signals, CPU accounting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Parses a core list such as `0`, `0,2` or `0-3,6` (the engine's parser,
/// [`xtcp::engine::cli::parse_cores`]). Duplicates are kept out; order is kept.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for c in xtcp::engine::cli::parse_cores(s)? {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs SIGINT/SIGTERM handlers that set the flag returned by [`stop_requested`].
pub fn install_stop_handler() {
    // Safety: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// User + system CPU time of the whole process so far.
pub fn process_cpu_time() -> Duration {
    // Safety: an all-zero rusage is valid and getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Safety: `ru` is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User and system CPU seconds separately, for the final report.
pub fn process_cpu_split() -> (f64, f64) {
    // Safety: as in `process_cpu_time`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Safety: `ru` is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("0").unwrap(), vec![0]);
        assert_eq!(parse_cores("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cores("1,1,0").unwrap(), vec![1, 0]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("x").is_err());
        assert!(parse_cores("").is_err());
    }
}
