//! `xtcp-stat` against a live xtcp echo server (the `echo` example) on a private veth pair,
//! while `xtcp-loadgen run --backend kernel` makes connections to it from the other namespace.
//!
//! Privileged: needs root (namespaces, XDP, AF_XDP); says SKIPPED otherwise. The pair is made
//! by `scripts/veth.sh` under a name of its own and removed on every exit path; every child
//! is bounded in time and killed by its PID.

mod common;

use common::{BIN, serial};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STAT: &str = env!("CARGO_BIN_EXE_xtcp-stat");

fn veth_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/veth.sh")
}

struct Veth {
    name: String,
    env: std::collections::HashMap<String, String>,
}

impl Veth {
    fn up() -> Veth {
        let name = format!("st{}", std::process::id() % 10_000);
        let out = Command::new(veth_script())
            .args(["up", "--name", &name])
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/veth.sh");
        assert!(out.status.success(), "veth.sh up --name {name} failed");
        let env = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Veth { name, env }
    }

    fn get(&self, k: &str) -> &str {
        self.env.get(k).unwrap_or_else(|| panic!("no {k}"))
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new(veth_script())
            .args(["down", "--name", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child killed by PID on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `echo` example of the xtcp crate, built with the same profile if missing.
fn echo_bin() -> PathBuf {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let echo = bin_dir.join("examples").join("echo");
    if !echo.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "xtcp", "--example", "echo"])
            .env("CARGO_TARGET_DIR", bin_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "building the echo example");
    }
    echo
}

#[test]
fn stat_prints_deltas_of_a_live_echo_server() {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!(
            "SKIPPED stat_prints_deltas_of_a_live_echo_server: needs root (namespaces, XDP, AF_XDP)"
        );
        return;
    }
    let _g = serial();
    let v = Veth::up();
    let stats = common::tmp("echo-stats.json");
    let _ = std::fs::remove_file(&stats);
    let _server = Guard(
        Command::new("ip")
            .args(["netns", "exec", v.get("XT_NS_A")])
            .arg(echo_bin())
            .args([
                "--iface",
                v.get("XT_IF_A"),
                "--ip",
                v.get("XT_IP_A"),
                "--port",
                "7",
            ])
            .args(["--idle-spins", "100", "--stats"])
            .arg(&stats)
            .stdout(Stdio::null())
            .spawn()
            .expect("start echo"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stats.exists() {
        assert!(Instant::now() < deadline, "echo wrote no stats file");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Load from the kernel side for longer than xtcp-stat watches.
    let target = format!("{}:7", v.get("XT_IP_A"));
    let _load = Guard(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                v.get("XT_NS_B"),
                BIN,
                "run",
                "--backend",
                "kernel",
            ])
            .args(["--target", &target, "--workload", "crr", "--duration", "6"])
            .args(["--rate", "300", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load"),
    );
    let stat = Command::new("timeout")
        .args(["20", STAT, "-j", "-c", "3"])
        .arg(&stats)
        .output()
        .expect("run xtcp-stat");
    let _ = std::fs::remove_file(&stats);
    assert!(
        stat.status.success(),
        "xtcp-stat failed: {}",
        String::from_utf8_lossy(&stat.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&stat.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    // At 300 connections per second, every one-second delta shows frames and accepted
    // connections, in the totals and in queue 0's column, which agree.
    let moving = lines
        .iter()
        .filter(|l| {
            let i = l["interval_s"].as_f64().unwrap();
            let rx = l["total"]["rx_frames"].as_i64().unwrap();
            let q0 = l["cores"]["q0"]["rx_frames"].as_i64().unwrap();
            let opens = l["total"]["passive_opens"].as_i64().unwrap();
            eprintln!("interval {i:.3} s: rx_frames +{rx} (q0 +{q0}), passive_opens +{opens}");
            (0.5..2.0).contains(&i) && rx > 100 && rx == q0 && opens > 50
        })
        .count();
    assert!(moving >= 2, "deltas did not show the load: {lines:?}");
}
