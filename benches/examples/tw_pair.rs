//! Paired timing of a full TIME-WAIT table against an empty one, in one process:
//! `tw_pair [time-wait entries] [pairs] [batches per block]`.
//!
//! Two server rigs are built side by side, one empty and one preloaded with the given number
//! of TIME-WAIT entries (default 10 M). The program then alternates between them, one block
//! of `64 × batches` server-side lifecycles on each in turn (the order within a pair also
//! alternates), and prints the median ns per lifecycle of each rig, the range, and the median
//! of the per-pair ratios. On a shared VM whose speed drifts by tens of percent within a
//! minute, the paired ratio is what a "within 10 %" claim can rest on: both halves of a pair
//! ran within milliseconds of each other. Bounded: `pairs × 2` blocks, then it stops.

use xtcp_benches::ServerRig;

const BATCH: usize = 64;

/// Server-side ns per lifecycle over one block.
fn block(rig: &mut ServerRig, batches: usize) -> f64 {
    let spent: std::time::Duration = (0..batches).map(|_| rig.churn(BATCH)).sum();
    spent.as_nanos() as f64 / (batches * BATCH) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arg(
    args: &mut impl Iterator<Item = String>,
    what: &str,
    default: usize,
    min_zero: bool,
) -> usize {
    match args.next() {
        None => default,
        Some(a) => match a.parse::<usize>() {
            Ok(v) if v > 0 || min_zero => v,
            _ => {
                let kind = if min_zero {
                    "a whole number"
                } else {
                    "a positive whole number"
                };
                eprintln!("tw_pair: {what} must be {kind}, got {a:?}");
                eprintln!("usage: tw_pair [time-wait entries] [pairs] [batches per block]");
                std::process::exit(2);
            }
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tw = arg(&mut args, "time-wait entries", 10_000_000, true);
    let pairs = arg(&mut args, "pairs", 200, false);
    let batches = arg(&mut args, "batches per block", 16, false);
    let _ = xtcp_benches::clock_overhead();
    let mut empty = ServerRig::warmed(0);
    let mut full = ServerRig::warmed(tw);
    let (mut e, mut f, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (a, b) = if i % 2 == 0 {
            let a = block(&mut empty, batches);
            (a, block(&mut full, batches))
        } else {
            let b = block(&mut full, batches);
            (block(&mut empty, batches), b)
        };
        e.push(a);
        f.push(b);
        ratio.push(b / a);
    }
    assert_eq!(full.server.counters().time_wait as usize, tw);
    assert_eq!(empty.server.counters().time_wait, 0);
    let lo_hi = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        format!("{lo:.0}-{hi:.0}")
    };
    let (er, fr) = (lo_hi(&e), lo_hi(&f));
    let (me, mf) = (median(&mut e), median(&mut f));
    let mr = median(&mut ratio);
    let (q1, q3) = (ratio[ratio.len() / 4], ratio[ratio.len() * 3 / 4]);
    println!(
        "{pairs} pairs of {} lifecycles each side, server-side ns per lifecycle:",
        batches * BATCH
    );
    println!("  empty table: median {me:.0} (range {er})");
    println!("  {tw} entries: median {mf:.0} (range {fr})");
    println!(
        "  full / empty, per pair: median {:+.1} % (quartiles {:+.1} % .. {:+.1} %)",
        (mr - 1.0) * 100.0,
        (q1 - 1.0) * 100.0,
        (q3 - 1.0) * 100.0
    );
}
