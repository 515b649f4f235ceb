//! Shared by the `veth_*` integration tests: skip logic, a veth pair guard, namespace threads,
//! the example binaries as guarded child processes, and the stats file.
//!
//! Every test makes its own pair with `scripts/veth.sh up --name <unique>`; the guard runs
//! `down` on every exit path, panics included. The xtcp side runs in namespace `-a` (an
//! example binary under `ip netns exec`, or an engine on a thread that entered `-a` with
//! setns), the kernel side in `-b` (threads that entered it; the sockets they create stay
//! there).
//!
//! Example binaries: cargo builds examples for `cargo test` but gives tests no path to them
//! (`CARGO_BIN_EXE_*` exists only for `[[bin]]` targets). They sit in `examples/` beside the
//! `deps/` directory holding this test executable; when missing (e.g. `cargo test --test
//! veth_echo` alone builds no examples), the test builds them with the same cargo, profile and
//! target directory.
#![allow(dead_code)]

use std::ffi::CString;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Tests of one binary run one at a time: each runs busy-polling threads and kernel peers
/// that compete for the machine's CPUs.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn skip_reason(tools: &[&str]) -> Option<String> {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (needs network namespaces, XDP and AF_XDP)".into());
    }
    // Safety: plain socket(2) probe; the descriptor is closed at once.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Some(format!(
            "AF_XDP sockets unavailable: {}",
            io::Error::last_os_error()
        ));
    }
    // Safety: `fd` is ours and open.
    unsafe { libc::close(fd) };
    for tool in ["ip", "ethtool"].iter().chain(tools) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} not installed (scripts/install-deps.sh)"));
        }
    }
    None
}

#[macro_export]
macro_rules! require_privileges {
    ($($tool:expr),*) => {
        if let Some(why) = $crate::veth_common::skip_reason(&[$($tool),*]) {
            eprintln!("SKIPPED {}: {why}", module_path!());
            return;
        }
    };
}

/// A veth pair made by `scripts/veth.sh`; `down` on drop.
pub struct Veth {
    pub name: String,
    pub ns_a: String,
    pub if_a: String,
    pub ip_a: String,
    pub ns_b: String,
    pub if_b: String,
    pub ip_b: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Veth {
    /// `tag`: 2-4 characters naming the test, for the namespace names.
    pub fn up(tag: &str, queues: u32) -> Veth {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "v{tag}{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        assert!(name.len() <= 13, "veth name {name} too long");
        // The guard exists before the script runs, so a half-made pair is removed too.
        let mut v = Veth {
            name: name.clone(),
            ns_a: String::new(),
            if_a: String::new(),
            ip_a: String::new(),
            ns_b: String::new(),
            if_b: String::new(),
            ip_b: String::new(),
        };
        let out = Command::new(repo_root().join("scripts/veth.sh"))
            .args(["up", "--name", &name, "--queues", &queues.to_string()])
            .output()
            .expect("run scripts/veth.sh");
        assert!(
            out.status.success(),
            "veth.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let get = |key: &str| -> String {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("veth.sh printed no {key}: {line}"))
                .to_string()
        };
        v.ns_a = get("XT_NS_A");
        v.if_a = get("XT_IF_A");
        v.ip_a = get("XT_IP_A");
        v.ns_b = get("XT_NS_B");
        v.if_b = get("XT_IF_B");
        v.ip_b = get("XT_IP_B");
        v
    }

    /// Runs `cmd args` in namespace `ns` and returns its output.
    pub fn exec(&self, ns: &str, cmd: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns, cmd])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {cmd}: {e}"))
    }

    /// Whether an XDP program is attached to the xtcp side.
    pub fn xdp_attached(&self) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns_a, "link", "show", "dev", &self.if_a])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let ok = Command::new(repo_root().join("scripts/veth.sh"))
            .args(["down", "--name", &self.name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("warning: veth.sh down --name {} failed", self.name);
        }
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter_netns(ns: &str) {
    let path = CString::new(format!("/run/netns/{ns}")).unwrap();
    // Safety: `path` is a valid C string; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {ns}: {}", io::Error::last_os_error());
    // Safety: `fd` was just opened and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Safety: setns on a namespace fd; CLONE_NEWNET affects only the calling thread.
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", io::Error::last_os_error());
}

/// Runs `f` on a fresh thread inside namespace `ns` (threads it spawns inherit the
/// namespace); a panic in `f` is re-raised here.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// The path of example `name`, built if missing (see the module docs).
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in <target>/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    if !bin.exists() {
        let release = profile_dir.file_name().is_some_and(|p| p == "release");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "xtcp", "--example", name])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build --example");
        assert!(st.success(), "building example {name} failed");
    }
    assert!(bin.exists(), "example binary {} missing", bin.display());
    bin
}

/// An example server running in a namespace; SIGTERM (then SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    pub ready_line: String,
    pub stats: PathBuf,
}

impl Server {
    /// Starts example `name` in `veth.ns_a` on `veth.if_a`/`veth.ip_a`, port `port`, with
    /// `--stats` in a temporary file and `extra` arguments; waits for the ready line.
    pub fn start(name: &str, veth: &Veth, port: u16, extra: &[&str]) -> Server {
        let bin = example_bin(name);
        let stats = std::env::temp_dir().join(format!("xtcp-{}-stats.json", veth.name));
        let _ = std::fs::remove_file(&stats);
        let port = port.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &veth.ns_a])
            .arg(&bin)
            .args(["--iface", &veth.if_a, "--ip", &veth.ip_a, "--port", &port])
            .arg("--stats")
            .arg(&stats)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let mut server = Server {
            child: Some(child),
            ready_line: String::new(),
            stats,
        };
        // `ip netns exec` execs the program in place: the child's PID is the server's.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {} // keep the pipe drained
        });
        server.ready_line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name} printed no ready line"));
        assert!(
            server.ready_line.contains("listening on"),
            "unexpected first line: {}",
            server.ready_line
        );
        server
    }

    /// The server's stats file, parsed loosely: `top(key)` and `core(i, key)`.
    pub fn stats(&self) -> Stats {
        Stats(std::fs::read_to_string(&self.stats).unwrap_or_default())
    }

    /// Waits up to `timeout` until `pred` holds for the stats file (rewritten once a
    /// second); returns the last stats read.
    pub fn wait_stats(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> Stats {
        let end = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) || Instant::now() >= end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits (up to 5 s) for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // Safety: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.success();
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.stats);
    }
}

/// The JSON stats document, read with a minimal scanner (flat numeric fields).
pub struct Stats(pub String);

fn field(doc: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\": ");
    let at = doc.find(&pat)? + pat.len();
    let digits: String = doc[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Stats {
    /// A top-level (total) counter.
    pub fn top(&self, key: &str) -> Option<u64> {
        let end = self.0.find("\"cores\"")?;
        field(&self.0[..end], key)
    }

    /// Counter `key` of core entry `i`.
    pub fn core(&self, i: usize, key: &str) -> Option<u64> {
        let start = self.0.find("\"cores\"")?;
        let entry = self.0[start..].split("{\"queue\": ").nth(i + 1)?;
        field(entry, key)
    }
}

/// A small deterministic generator for test payloads (xorshift64*).
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
