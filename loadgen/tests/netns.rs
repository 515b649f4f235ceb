//! `--server-netns`: server TIME-WAIT is read inside another network namespace, not ours.
//!
//! Privileged (creates a namespace, removed again on every exit path); skips with a message
//! when not root.

use serde_json::Value;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_xtcp-loadgen");

fn is_root() -> bool {
    // Safety: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip netns add")
            .success();
        assert!(ok, "ip netns add {name} failed");
        let ns = Netns(name.to_string());
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, cmd: &[&str]) {
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(cmd)
            .status()
            .expect("ip netns exec")
            .success();
        assert!(ok, "{cmd:?} failed in netns {}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Leaves exactly `n` TIME-WAIT entries in the namespace: the client closes first.
const MAKE_TIME_WAIT: &str = r#"
import socket, sys, time
n = int(sys.argv[1])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
for _ in range(n):
    c = socket.create_connection(l.getsockname())
    s, _ = l.accept()
    c.close()
    s.recv(1)
    s.close()
time.sleep(0.2)
"#;

#[test]
fn server_time_wait_comes_from_the_named_namespace() {
    if !is_root() {
        xtcp_testkit::veth::skip(
            "server_time_wait_comes_from_the_named_namespace",
            "needs root (ip netns)",
        );
        return;
    }
    let name = format!("xtcp-lg-{}", std::process::id());
    let ns = Netns::create(&name);
    ns.exec(&["python3", "-c", MAKE_TIME_WAIT, "3"]);

    // Any reachable target will do; the load itself is not what is checked.
    let mut srv = Command::new(BIN)
        .args([
            "kernel-server",
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--mode",
            "echo",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(srv.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let target = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_string();
    let json = std::env::temp_dir().join(format!("xtcp-lg-netns-{}.json", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "connect",
        ])
        .args([
            "--duration",
            "1",
            "--concurrency",
            "4",
            "--quiet",
            "--server-netns",
            &name,
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["time_wait"]["server_source"], "netns-sockstat");
    assert_eq!(j["time_wait"]["server_max"], 3, "{}", j["time_wait"]);
    assert_eq!(j["server"], "linux");
    // Our own namespace has the load's TIME-WAIT entries, so the two counts differ.
    assert!(j["time_wait"]["client_max"].as_u64().unwrap() > 3);
    for e in j["timeline"].as_array().unwrap() {
        assert_eq!(e["time_wait_server"], 3);
    }
    drop(ns);

    let out = Command::new(BIN)
        .args([
            "run",
            "--backend",
            "kernel",
            "--target",
            &target,
            "--workload",
            "connect",
        ])
        .args(["--duration", "1", "--server-netns", "xtcp-lg-no-such-ns"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open /var/run/netns/xtcp-lg-no-such-ns"),
        "{err}"
    );
}
