//! Scaffolding shared by the load generator's integration tests: the binary under test, the
//! lock that keeps load-generating tests from disturbing each other's timing, a bounded child
//! run (a watchdog kills a child that overstays, by its PID) and JSON accessors.

// Each test binary uses its own subset.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_xtcp-loadgen");
static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every load-generating test of one binary.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A path in this test binary's own scratch directory.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xtcp-loadgen-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

pub struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// The run's `--json` report, if it wrote one.
    pub json: Option<Value>,
}

/// Runs `cmd` (stdout and stderr captured) and panics as a hang if it outlives `limit`;
/// `json` is where the run was told to write its report.
pub fn run_bounded(mut cmd: Command, args: &[&str], json: &Path, limit: Duration) -> Outcome {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xtcp-loadgen");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xtcp-loadgen {args:?} still running after {limit:?}: hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed();
    let out = child.wait_with_output().unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        wall,
        json: std::fs::read_to_string(json)
            .ok()
            .map(|t| serde_json::from_str(&t).expect("valid JSON")),
    }
}

/// A kernel-server's stats file once `closed` has stopped moving (the server rewrites it
/// every second), or as it stands after `limit`.
pub fn settled_stats(stats: &Path, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    let mut last: Option<Value> = None;
    loop {
        std::thread::sleep(Duration::from_millis(1100));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap();
        if let Some(prev) = &last
            && prev["closed"] == v["closed"]
            && v["accepted"] == v["closed"]
        {
            return v;
        }
        if Instant::now() > deadline {
            return v;
        }
        last = Some(v);
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |x, k| &x[k])
}

/// The integer at dotted `path`.
pub fn u(v: &Value, path: &str) -> u64 {
    let x = at(v, path);
    x.as_u64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {x}"))
}

/// The number at dotted `path`.
pub fn f(v: &Value, path: &str) -> f64 {
    let x = at(v, path);
    x.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number: {x}"))
}

/// `a` is within `frac` of `b`.
pub fn within(a: u64, b: u64, frac: f64) -> bool {
    (a as f64 - b as f64).abs() <= frac * (b.max(1) as f64)
}
