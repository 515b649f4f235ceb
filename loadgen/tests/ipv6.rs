//! The load generator over IPv6: the kernel backend against the Linux reference server
//! (`kernel-server`) over a private IPv6 veth pair (`veth.sh up --ipv6`), `connect` and
//! `crr`, from the pair's own address and from a /64 of source addresses (routed `local` on
//! the client side with `net.ipv6.ip_nonlocal_bind=1`, routed back via the client on the
//! server side), with 0 failures; and
//! the xtcp backend over IPv6 (the engine's IPv6 stack) against the same kernel server and
//! against the dual-stack xtcp echo example, from a /120 of sources, with 0 failures; and
//! its refusal of a SYN flood towards an IPv6 target and of mixed families. Privileged parts
//! skip with a message when not root.

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

/// Runs `workload` for 1 s at 400 connections/s from namespace A with the kernel backend;
/// returns the JSON report.
fn run(veth: &Veth, target: &str, workload: &str, src: Option<&str>) -> Value {
    run_with(veth, &["--backend", "kernel"], target, workload, src)
}

/// [`run`] with the backend arguments `backend`.
fn run_with(
    veth: &Veth,
    backend: &[&str],
    target: &str,
    workload: &str,
    src: Option<&str>,
) -> Value {
    let json = std::env::temp_dir().join(format!(
        "xtcp-lg-v6-{}-{workload}-{}-{}.json",
        std::process::id(),
        src.is_some(),
        backend.len()
    ));
    let out = Command::new("ip")
        .args(["netns", "exec", &veth.ns_a, BIN, "run"])
        .args(backend)
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
    let prefix = source_prefix(&veth, 64);
    let (_server, target) = kernel_server(&veth);

    for (workload, src) in [
        ("connect", None),
        ("crr", None),
        ("connect", Some(prefix.as_str())),
        ("crr", Some(prefix.as_str())),
    ] {
        let j = run(&veth, &target, workload, src);
        let want_sources = if src.is_some() { 65534 } else { 0 };
        no_failures(&j, workload, src, want_sources);
        assert_eq!(j["target"], target.as_str());
    }
}

/// A source prefix of length `len` per pair (its third group from the pair's address), local
/// on A's loopback (AnyIP: every address of it can be bound by the kernel backend) and routed
/// back via A from B; non-local binds allowed in A (an IPv6 bind checks the address list,
/// not the routes). Returns the prefix.
fn source_prefix(veth: &Veth, len: u8) -> String {
    let ip6_a = veth.ip6_a.unwrap();
    let group = ip6_a.segments()[2];
    let prefix = format!("fd00:78:{group:x}::/{len}");
    ip(
        &veth.ns_a,
        &["-6", "route", "add", "local", &prefix, "dev", "lo"],
    );
    ip(
        &veth.ns_b,
        &["-6", "route", "add", &prefix, "via", &ip6_a.to_string()],
    );
    let out = veth.exec(
        &veth.ns_a,
        "sysctl",
        &["-qw", "net.ipv6.ip_nonlocal_bind=1"],
    );
    assert!(out.status.success(), "sysctl: {out:?}");
    prefix
}

/// Every connection of the report `j` completed (at least 300 attempted), from
/// `want_sources` source addresses.
fn no_failures(j: &Value, workload: &str, src: Option<&str>, want_sources: u64) {
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
    assert_eq!(j["load"]["source_ips"], want_sources, "{}", j["load"]);
}

/// The Linux reference server (echo) on B's IPv6 address; the guard and its `[addr]:port`.
fn kernel_server(veth: &Veth) -> (Server, String) {
    let ip6_b = veth.ip6_b.unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &veth.ns_b, BIN, "kernel-server"])
        .args(["--ip", &ip6_b.to_string(), "--port", "0", "--mode", "echo"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let target = line
        .split_whitespace()
        .find(|w| w.starts_with(&format!("[{ip6_b}]:")))
        .unwrap_or_else(|| panic!("no [{ip6_b}]:PORT in {line:?}"))
        .to_string();
    (server, target)
}

/// The xtcp backend over IPv6 (the engine's IPv6 stack, next hop from the kernel's Neighbor
/// Discovery) against the Linux server: from the interface's own IPv6 address and from a
/// /120 of sources, `connect` and `crr`, 0 failures.
#[test]
fn xtcp_backend_against_kernel_server_over_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("x6", 1);
    let prefix = source_prefix(&veth, 120);
    let (_server, target) = kernel_server(&veth);
    let xtcp = ["--backend", "xtcp", "--iface", veth.if_a.as_str()];
    for (workload, src) in [
        ("connect", None),
        ("crr", None),
        ("connect", Some(prefix.as_str())),
        ("crr", Some(prefix.as_str())),
    ] {
        let j = run_with(&veth, &xtcp, &target, workload, src);
        let want_sources = if src.is_some() { 255 } else { 0 };
        no_failures(&j, workload, src, want_sources);
    }
}

/// The xtcp backend over IPv6 against the xtcp echo example serving both families on B.
#[test]
fn xtcp_backend_against_xtcp_echo_over_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("y6", 1);
    let prefix = source_prefix(&veth, 120);
    let ip6_b = veth.ip6_b.unwrap().to_string();
    let server = xtcp_testkit::veth::Server::start_b(
        "echo",
        &veth,
        7,
        &["--ip", &ip6_b, "--poll-mode", "idle"],
    );
    let target = format!("[{ip6_b}]:7");
    let xtcp = ["--backend", "xtcp", "--iface", veth.if_a.as_str()];
    for (workload, src) in [("connect", None), ("crr", Some(prefix.as_str()))] {
        let j = run_with(&veth, &xtcp, &target, workload, src);
        let want_sources = if src.is_some() { 255 } else { 0 };
        no_failures(&j, workload, src, want_sources);
    }
    let st = server.stats();
    assert!(
        st.core_ipv6(0, "passive_opens") >= Some(600),
        "stats: {}",
        st.0
    );
}

/// What the xtcp backend still refuses over IPv6, before touching any interface.
#[test]
fn xtcp_backend_refuses_ipv6_flood_and_mixed_families() {
    for (args, want) in [
        (
            &[
                "--workload",
                "syn-flood",
                "--rate",
                "100",
                "--src-ip",
                "fd00:78::/120",
            ][..],
            "SYN flood is IPv4 only",
        ),
        (
            &["--workload", "connect", "--src-ip", "10.78.0.0/24"][..],
            "different address families",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["run", "--backend", "xtcp", "--iface", "lo"])
            .args(["--target", "[fd00:77::1]:8080", "--duration", "1"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
