//! Accuracy checks of the load generator against its own kernel server, on loopback only.
//!
//! Every run is bounded (a few seconds, and a watchdog kills a child that overstays). The
//! load-generating tests hold one lock so they do not disturb each other's timing on a small
//! machine.

mod common;

use common::{BIN, Outcome, f, serial, tmp, u, within};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A kernel-server child, killed (by its PID) on drop.
struct Server {
    child: Child,
    port: u16,
    stats: PathBuf,
}

impl Server {
    fn start(mode: &str, tag: &str) -> Server {
        let stats = tmp(&format!("server-{tag}.json"));
        let _ = std::fs::remove_file(&stats);
        let mut child = Command::new(BIN)
            .args([
                "kernel-server",
                "--ip",
                "127.0.0.1",
                "--port",
                "0",
                "--mode",
                mode,
            ])
            .args(["--cores", "0", "--stats"])
            .arg(&stats)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kernel-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in `{line}`"));
        Server { child, port, stats }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The stats file once `closed` has stopped moving.
    fn settled_stats(&self) -> Value {
        common::settled_stats(&self.stats, Duration::from_secs(5))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the load generator with a watchdog of `limit`.
fn loadgen(args: &[&str], limit: Duration) -> Outcome {
    let json = tmp(&format!(
        "run-{}.json",
        args.join("_").replace(['/', ':'], "-")
    ));
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--json").arg(&json);
    common::run_bounded(cmd, args, &json, limit)
}

fn check_counts_match(workload: &str, mode: &str) {
    let _g = serial();
    let srv = Server::start(mode, workload);
    let stats = srv.stats.to_str().unwrap().to_string();
    let target = srv.target();
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            workload,
            "--duration",
            "2",
            "--concurrency",
            "16",
            "--cores",
            "1",
            "--quiet",
            "--server-stats",
            &stats,
        ],
        Duration::from_secs(10),
    );
    assert!(out.ok, "run failed: {}", out.stderr);
    let j = out.json.unwrap();
    let s = srv.settled_stats();
    let (attempted, completed, failed) = (
        u(&j, "connections.attempted"),
        u(&j, "connections.completed"),
        u(&j, "connections.failed"),
    );
    assert_eq!(attempted, completed + failed, "{j}");
    assert_eq!(
        failed, 0,
        "loopback run had failures: {}",
        j["failed_by_cause"]
    );
    assert!(
        completed > 1000,
        "too few connections to judge: {completed}"
    );
    let (accepted, closed) = (u(&s, "accepted"), u(&s, "closed"));
    assert!(
        within(completed, accepted, 0.001) && within(completed, closed, 0.001),
        "{workload}: loadgen completed {completed}, server accepted {accepted} closed {closed}"
    );
    assert_eq!(j["server"], "linux", "the stats file names the server");
}

#[test]
fn connect_count_matches_server_counters() {
    check_counts_match("connect", "echo");
}

#[test]
fn server_close_count_matches_server_counters() {
    check_counts_match("server-close", "respond-close");
}

#[test]
fn open_loop_holds_requested_rate() {
    let _g = serial();
    let srv = Server::start("echo", "open");
    let target = srv.target();
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "crr",
            "--duration",
            "2",
            "--rate",
            "2000",
            "--cores",
            "1",
            "--quiet",
        ],
        Duration::from_secs(10),
    );
    assert!(out.ok, "run failed: {}", out.stderr);
    let j = out.json.unwrap();
    assert_eq!(u(&j, "connections.failed"), 0, "{}", j["failed_by_cause"]);
    let rate = f(&j, "rates.handshakes_per_s");
    assert!(
        (rate - 2000.0).abs() <= 40.0,
        "handshakes/s {rate}, wanted 2000 ± 2 %"
    );
    let tx = f(&j, "rates.transactions_per_s");
    assert!((tx - 2000.0).abs() <= 40.0, "transactions/s {tx}");
    let timeline = j["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    for e in timeline {
        let per_s = e["handshakes"].as_f64().unwrap() / e["interval_s"].as_f64().unwrap();
        assert!(
            (per_s - 2000.0).abs() <= 40.0,
            "second {} ran at {per_s}/s, wanted 2000 ± 2 %",
            e["t"]
        );
    }
    assert_eq!(f(&j, "rates.offered_per_s"), 2000.0);
}

#[test]
fn no_listener_fails_as_refused() {
    let _g = serial();
    // A port that was free a moment ago: nothing listens there, so every SYN draws an RST.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let target = format!("127.0.0.1:{port}");
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "connect",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--max-rate",
            "2000",
            "--quiet",
        ],
        Duration::from_secs(8),
    );
    assert!(out.ok, "run failed: {}", out.stderr);
    let j = out.json.unwrap();
    assert_eq!(u(&j, "connections.completed"), 0);
    let refused = u(&j, "failed_by_cause.refused");
    assert!(refused > 100, "refused {refused}: {}", j["failed_by_cause"]);
    assert_eq!(
        u(&j, "connections.failed"),
        refused,
        "{}",
        j["failed_by_cause"]
    );
    assert!(
        f(&j, "rates.failures_per_s") <= 2100.0,
        "pacing cap not held"
    );
    assert!(
        out.stdout.contains("refused"),
        "table lacks causes:\n{}",
        out.stdout
    );
}

#[test]
fn listener_that_never_accepts_fails_as_timeout_without_hanging() {
    let _g = serial();
    // Backlog 1 and no accept(): once the accept queue is full the kernel drops SYNs.
    use xtcp_loadgen::sys;
    let fd = sys::tcp_socket().unwrap();
    sys::bind(fd, "127.0.0.1:0".parse().unwrap()).unwrap();
    sys::listen(fd, 1).unwrap();
    let port = sys::local_addr(fd).unwrap().port();
    let target = format!("127.0.0.1:{port}");
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "connect",
            "--duration",
            "1",
            "--concurrency",
            "8",
            "--timeout-ms",
            "500",
            "--quiet",
        ],
        Duration::from_secs(8),
    );
    sys::close(fd);
    assert!(out.ok, "run failed: {}", out.stderr);
    // Duration + one timeout for the drain, plus start-up slack.
    assert!(
        out.wall < Duration::from_millis(1000 + 500 + 1500),
        "took {:?}",
        out.wall
    );
    let j = out.json.unwrap();
    let timeouts = u(&j, "failed_by_cause.timeout");
    assert!(
        timeouts >= 8,
        "timeouts {timeouts}: {}",
        j["failed_by_cause"]
    );
    assert_eq!(u(&j, "connections.completed"), 0);
    assert_eq!(u(&j, "failed_by_cause.refused"), 0);
    assert_eq!(
        u(&j, "connections.attempted"),
        u(&j, "connections.failed"),
        "every attempt must end, as a failure here"
    );
}

/// Every key path of a JSON value, arrays entered through their first element as `[]`.
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(p.clone());
                key_paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            if let Some(x) = a.first() {
                key_paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn json_has_documented_keys_and_other_workloads_run_clean() {
    let _g = serial();
    let srv = Server::start("echo", "keys");
    let target = srv.target();
    let svg = tmp("plot.svg");
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "crr",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--concurrency",
            "8",
            "--request-bytes",
            "100",
            "--quiet",
            "--plot",
            svg.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert!(out.ok, "run failed: {}", out.stderr);
    let j = out.json.unwrap();
    let mut paths = Vec::new();
    key_paths(&j, "", &mut paths);
    // The keys the issue requires.
    let mut required: Vec<String> = [
        "workload",
        "backend",
        "server",
        "target",
        "duration_s",
        "connections.attempted",
        "connections.completed",
        "connections.failed",
        "failed_by_cause",
        "rates.handshakes_per_s",
        "rates.teardowns_per_s",
        "rates.transactions_per_s",
        "time_wait.client_max",
        "time_wait.server_max",
        "timeline",
        "timeline[].t",
        "timeline[].handshakes",
        "timeline[].teardowns",
        "timeline[].time_wait_client",
        "timeline[].time_wait_server",
        "timeline[].loadgen_cpu",
        "loadgen_cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for h in ["connect", "first_byte", "close"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            required.push(format!("latency_us.{h}.{p}"));
        }
    }
    for r in &required {
        assert!(paths.contains(r), "missing key {r}");
    }
    assert_eq!(j["backend"], "kernel");
    assert_eq!(j["workload"], "crr");
    assert_eq!(u(&j, "connections.failed"), 0);
    assert!(f(&j, "latency_us.first_byte.p50") > 0.0);
    assert!(f(&j, "duration_s") >= 0.99 && f(&j, "duration_s") <= 1.01);
    // Every key, including the extras, is documented in the top-level README or in the
    // benchmark's own page (docs/benchmark.md: the `cpu`, `bound`, `ceiling_pct` keys).
    let mut readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    readme.push_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmark.md"))
            .expect("docs/benchmark.md"),
    );
    for p in &paths {
        // Histogram fields are documented once for all histograms as `latency_us.<name>.FIELD`.
        let parts: Vec<&str> = p.split('.').collect();
        let doc = if parts.len() == 3 && parts[0] == "latency_us" {
            format!("latency_us.<name>.{}", parts[2])
        } else {
            p.clone()
        };
        assert!(
            readme.contains(&format!("`{doc}`")),
            "neither README.md nor docs/benchmark.md documents `{doc}`"
        );
    }
    let svg_text = std::fs::read_to_string(&svg).expect("plot written");
    assert!(svg_text.starts_with("<svg") && svg_text.contains("TIME-WAIT"));

    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "rr",
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--request-bytes",
            "64",
            "--quiet",
        ],
        Duration::from_secs(10),
    );
    assert!(out.ok, "rr failed: {}", out.stderr);
    let j = out.json.unwrap();
    assert_eq!(
        u(&j, "connections.attempted"),
        4,
        "rr keeps 4 persistent connections"
    );
    assert_eq!(
        u(&j, "connections.completed"),
        4,
        "{}",
        j["failed_by_cause"]
    );
    assert!(f(&j, "rates.transactions_per_s") > 500.0);
    assert!(u(&j, "latency_us.transaction.count") > 500);
}

fn expect_error(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks `{needle}`:\n{err}"
    );
}

#[test]
fn bad_arguments_give_clear_errors() {
    let base = ["run", "--target", "127.0.0.1:9", "--workload", "connect"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    expect_error(
        &with(&["--duration", "0", "--backend", "kernel"]),
        "--duration must be > 0",
    );
    expect_error(
        &with(&["--duration=-1", "--backend", "kernel"]),
        "--duration must be > 0",
    );
    expect_error(
        &with(&["--duration", "1", "--concurrency", "4", "--rate", "10"]),
        "cannot be used with",
    );
    expect_error(
        &with(&["--duration", "1", "--rate", "0", "--backend", "kernel"]),
        "--rate must be > 0",
    );
    expect_error(
        &with(&[
            "--duration",
            "1",
            "--concurrency",
            "0",
            "--backend",
            "kernel",
        ]),
        "--concurrency must be > 0",
    );
    expect_error(&with(&["--duration", "1"]), "--backend xtcp needs --iface");
    expect_error(
        &with(&[
            "--duration",
            "1",
            "--backend",
            "kernel",
            "--syn-flood-rate",
            "100",
            "--src-ip",
            "127.0.0.1",
        ]),
        "--syn-flood-rate needs --backend xtcp",
    );
    expect_error(
        &with(&["--duration", "1", "--syn-flood-rate", "100"]),
        "--syn-flood-rate needs --src-ip",
    );
    expect_error(
        &with(&[
            "--duration",
            "1",
            "--backend",
            "kernel",
            "--src-ip",
            "192.0.2.0/30",
        ]),
        "not configured on this host",
    );
    expect_error(
        &with(&["--duration", "1", "--backend", "kernel", "--cores", "4096"]),
        "core 4096 is not available",
    );
    expect_error(
        &[
            "run",
            "--target",
            "127.0.0.1:9",
            "--workload",
            "bogus",
            "--duration",
            "1",
        ],
        "invalid value 'bogus'",
    );
    expect_error(
        &[
            "run",
            "--target",
            "127.0.0.1:9",
            "--workload",
            "syn-flood",
            "--duration",
            "1",
            "--rate",
            "10",
            "--backend",
            "kernel",
            "--src-ip",
            "127.0.0.1",
        ],
        "syn-flood needs --backend xtcp",
    );
    expect_error(
        &[
            "run",
            "--target",
            "nope",
            "--workload",
            "connect",
            "--duration",
            "1",
        ],
        "invalid value 'nope'",
    );
    expect_error(
        &["run", "--workload", "connect", "--duration", "1"],
        "--target",
    );
    expect_error(
        &[
            "kernel-server",
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--mode",
            "chat",
        ],
        "invalid value 'chat'",
    );
    expect_error(
        &[
            "kernel-server",
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--mode",
            "echo",
            "--threads",
            "0",
        ],
        "--threads must be > 0",
    );
}

#[test]
fn many_source_addresses_are_used() {
    let _g = serial();
    let srv = Server::start("echo", "src");
    let target = srv.target();
    let out = loadgen(
        &[
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "connect",
            "--duration",
            "1",
            "--concurrency",
            "8",
            "--src-ip",
            "127.0.1.0/29",
            "--quiet",
        ],
        Duration::from_secs(8),
    );
    assert!(out.ok, "run failed: {}", out.stderr);
    let j = out.json.unwrap();
    assert_eq!(u(&j, "load.source_ips"), 6);
    assert_eq!(u(&j, "connections.failed"), 0, "{}", j["failed_by_cause"]);
    assert!(u(&j, "connections.completed") > 100);
}
