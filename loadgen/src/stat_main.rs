//! xtcp-stat: follows a server's stats file and prints per-core counter deltas (see
//! `xtcp_loadgen::stat`).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use xtcp_loadgen::stat::{FollowConfig, follow};

/// Follows a stats file (`--stats FILE` of the xtcp servers or of `xtcp-loadgen
/// kernel-server`) and prints what changed at each rewrite, total and per core, nstat style.
#[derive(Debug, Parser)]
#[command(name = "xtcp-stat", version)]
struct Args {
    /// The stats file.
    file: PathBuf,
    /// One JSON object per line instead of the table.
    #[arg(short = 'j', long)]
    json: bool,
    /// Also print counters that did not change.
    #[arg(short = 'z', long)]
    zeros: bool,
    /// Stop after N deltas [default: until the file stops changing].
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Exit when the file has not changed for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    stale: f64,
}

fn main() -> ExitCode {
    let a = Args::parse();
    if !(a.stale > 0.0 && a.stale.is_finite()) {
        eprintln!("xtcp-stat: --stale must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let cfg = FollowConfig {
        json: a.json,
        zeros: a.zeros,
        count: a.count,
        stale_after: Duration::from_secs_f64(a.stale),
        poll: Duration::from_millis(50),
    };
    match follow(&a.file, &cfg, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtcp-stat: {e}");
            ExitCode::from(1)
        }
    }
}
