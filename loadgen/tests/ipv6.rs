//! The load generator over IPv6: the kernel backend against the Linux reference server
//! (`kernel-server`) over a private IPv6 veth pair (`veth.sh up --ipv6`), `connect` and
//! `crr`, from the pair's own address and from a /64 of source addresses (routed `local` on
//! the client side with `net.ipv6.ip_nonlocal_bind=1`, routed back via the client on the
//! server side), with 0 failures; and
//! the xtcp backend's refusal of an IPv6 target. Privileged parts skip with a message when
//! not root.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use xtcp_testkit::require_privileges;
use xtcp_testkit::veth::{Veth, serial};

const BIN: &str = env!("CARGO_BIN_EXE_xtcp-loadgen");

/// Kills the server on every exit path.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .status()
        .expect("run ip")
        .success();
    assert!(ok, "ip -n {ns} {args:?}");
}

/// Runs `workload` for 1 s at 400 connections/s from namespace A; returns the JSON report.
fn run(veth: &Veth, target: &str, workload: &str, src: Option<&str>) -> Value {
    let json = std::env::temp_dir().join(format!(
        "xtcp-lg-v6-{}-{workload}-{}.json",
        std::process::id(),
        src.is_some()
    ));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &veth.ns_a,
            BIN,
            "run",
            "--backend",
            "kernel",
        ])
        .args(["--target", target, "--workload", workload])
        .args(["--duration", "1", "--rate", "400", "--quiet"])
        .args(src.map(|s| ["--src-ip", s]).into_iter().flatten())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{workload}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    j
}

#[test]
fn kernel_backend_against_kernel_server_over_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("l6", 1);
    let (ip6_a, ip6_b) = (veth.ip6_a.unwrap(), veth.ip6_b.unwrap());
    // A source /64 per pair (its third group from the pair's address), local on A's
    // loopback (AnyIP: every address of it can be bound) and routed back via A from B.
    let group = ip6_a.segments()[2];
    let prefix = format!("fd00:78:{group:x}::/64");
    ip(
        &veth.ns_a,
        &["-6", "route", "add", "local", &prefix, "dev", "lo"],
    );
    ip(
        &veth.ns_b,
        &["-6", "route", "add", &prefix, "via", &ip6_a.to_string()],
    );
    // An IPv6 bind checks the address list, not the routes: allow non-local binds (in the
    // test's own namespace only).
    let out = veth.exec(
        &veth.ns_a,
        "sysctl",
        &["-qw", "net.ipv6.ip_nonlocal_bind=1"],
    );
    assert!(out.status.success(), "sysctl: {out:?}");

    let mut child = Command::new("ip")
        .args(["netns", "exec", &veth.ns_b, BIN, "kernel-server"])
        .args(["--ip", &ip6_b.to_string(), "--port", "0", "--mode", "echo"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let target = line
        .split_whitespace()
        .find(|w| w.starts_with(&format!("[{ip6_b}]:")))
        .unwrap_or_else(|| panic!("no [{ip6_b}]:PORT in {line:?}"))
        .to_string();

    for (workload, src) in [
        ("connect", None),
        ("crr", None),
        ("connect", Some(prefix.as_str())),
        ("crr", Some(prefix.as_str())),
    ] {
        let j = run(&veth, &target, workload, src);
        let c = &j["connections"];
        let (attempted, completed, failed) = (
            c["attempted"].as_u64().unwrap(),
            c["completed"].as_u64().unwrap(),
            c["failed"].as_u64().unwrap(),
        );
        eprintln!("{workload} src {src:?}: {c}");
        assert!(attempted >= 300, "{workload} {src:?}: {c}");
        assert_eq!(
            (completed, failed),
            (attempted, 0),
            "{workload} {src:?}: {c}"
        );
        assert_eq!(j["target"], target.as_str());
        let want_sources = if src.is_some() { 65534 } else { 0 };
        assert_eq!(j["load"]["source_ips"], want_sources, "{}", j["load"]);
    }
}

#[test]
fn xtcp_backend_refuses_an_ipv6_target() {
    let out = Command::new(BIN)
        .args(["run", "--backend", "xtcp", "--iface", "lo"])
        .args(["--target", "[fd00:77::1]:8080", "--workload", "connect"])
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IPv6 needs the engine's IPv6 stack") && err.contains("--backend kernel"),
        "{err}"
    );
}
