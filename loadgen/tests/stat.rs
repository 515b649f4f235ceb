//! `xtcp-stat` against a live xtcp echo server (the `echo` example) on a private veth pair,
//! while `xtcp-loadgen run --backend kernel` makes connections to it from the other namespace.
//!
//! Privileged: needs root (namespaces, XDP, AF_XDP); reported skipped otherwise. The pair is
//! made by the test kit's veth fixture and removed on every exit path; every child is bounded
//! in time and killed by its PID.

mod common;

use common::{BIN, serial};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xtcp_testkit::veth::{self, Veth, example_bin, is_root};

const STAT: &str = env!("CARGO_BIN_EXE_xtcp-stat");

/// A child killed by PID on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stat_prints_deltas_of_a_live_echo_server() {
    if !is_root() {
        veth::skip(
            "stat::stat_prints_deltas_of_a_live_echo_server",
            "needs root (network namespaces, XDP, AF_XDP)",
        );
        return;
    }
    let _g = serial();
    let v = Veth::up("st", 1);
    let stats = common::tmp("echo-stats.json");
    let _ = std::fs::remove_file(&stats);
    let _server = Guard(
        Command::new("ip")
            .args(["netns", "exec", v.get("XT_NS_A")])
            .arg(example_bin("echo"))
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
