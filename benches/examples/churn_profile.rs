//! Runs server-side lifecycles for profiling (`perf record`, `valgrind --tool=callgrind`):
//! `churn_profile [time-wait entries] [lifecycles] [4k]`. Prints the server-side ns per lifecycle.
//! `4k` leaves the server's tables on 4 KiB pages (no `madvise(MADV_HUGEPAGE)`).

use xtcp_benches::{RigConfig, ServerRig};

fn main() {
    let mut args = std::env::args().skip(1);
    let tw: usize = args
        .next()
        .map_or(0, |a| a.parse().expect("time-wait entries"));
    let n: u64 = args
        .next()
        .map_or(2_000_000, |a| a.parse().expect("lifecycles"));
    let huge_pages = args.next().as_deref() != Some("4k");
    let mut rig = ServerRig::new(RigConfig {
        time_wait_capacity: tw.max(1 << 16),
        huge_pages,
        ..RigConfig::default()
    });
    rig.preload_time_wait(tw);
    // The clock's overhead is calibrated once, on first use: here, so that its 40,000 clock
    // reads are not counted inside the first timed region (callgrind counts that region).
    let _ = xtcp_benches::clock_overhead();
    let mut spent = std::time::Duration::ZERO;
    let mut done = 0;
    while done < n {
        spent += rig.churn(64);
        done += 64;
    }
    println!(
        "thread CPU clock: {:?} per timed region (subtracted)",
        xtcp_benches::clock_overhead()
    );
    println!(
        "{} lifecycles, {:.0} ns each (server side), {} TIME-WAIT entries",
        done,
        spent.as_nanos() as f64 / done as f64,
        rig.server.counters().time_wait
    );
}
