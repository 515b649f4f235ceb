//! The one veth fixture of the privileged tests (xtcp's `veth_*` and `afxdp_link`, the load
//! generator's, the XDP program's): skip logic, a veth pair guard, namespace threads, a raw
//! `AF_PACKET` socket for hand-built frames, the example binaries as guarded child processes,
//! and the stats file.
//!
//! # Skipping
//! A privileged test that cannot run (not root, no AF_XDP, a tool missing) calls [`skip`]
//! (or [`require_privileges!`]), which prints `SKIPPED <test>: <why>` and, when
//! `XTCP_SKIP_LOG` names a file, appends a line to it; `scripts/test.sh` counts those lines as
//! skipped, not passed.
//!
//! # Pairs
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

use std::collections::HashMap;
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

/// Reports test `test` as skipped for `why` (see the module docs).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    // Straight to stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(io::stderr(), "SKIPPED {test}: {why}");
    if let Some(log) = std::env::var_os("XTCP_SKIP_LOG") {
        let line = format!("{test}: {why}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "warning: cannot record the skip in {}: {e}",
                log.to_string_lossy()
            );
        }
    }
}

/// Whether this process is root.
pub fn is_root() -> bool {
    // Safety: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the calling test, reported as skipped, unless it runs as root with AF_XDP
/// and the named tools (beside `ip` and `ethtool`).
#[macro_export]
macro_rules! require_privileges {
    ($($tool:expr),*) => {
        if let Some(why) = $crate::veth::skip_reason(&[$($tool),*]) {
            // The enclosing test's path, from a function item declared inside it.
            fn here() {}
            let test = ::std::any::type_name_of_val(&here);
            $crate::veth::skip(test.trim_end_matches("::here"), &why);
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
    pub mac_a: [u8; 6],
    pub ns_b: String,
    pub if_b: String,
    pub ip_b: String,
    pub mac_b: [u8; 6],
    /// Side A's and side B's IPv6 address (`/64`), for a pair made by [`Veth::up_ipv6`];
    /// `None` otherwise (IPv6 is then disabled on the pair).
    pub ip6_a: Option<std::net::Ipv6Addr>,
    pub ip6_b: Option<std::net::Ipv6Addr>,
    /// Everything `veth.sh up` printed (`XT_NS_A=...` and so on).
    pub env: HashMap<String, String>,
}

/// The repository root (this crate sits one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Veth {
    /// `tag`: 2-4 characters naming the test, for the namespace names.
    pub fn up(tag: &str, queues: u32) -> Veth {
        Self::make(tag, queues, false)
    }

    /// As [`Veth::up`], with IPv6 on and an address on each side (`veth.sh up --ipv6`):
    /// [`Veth::ip6_a`], [`Veth::ip6_b`].
    pub fn up_ipv6(tag: &str, queues: u32) -> Veth {
        Self::make(tag, queues, true)
    }

    fn make(tag: &str, queues: u32, ipv6: bool) -> Veth {
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
            mac_a: [0; 6],
            ns_b: String::new(),
            if_b: String::new(),
            ip_b: String::new(),
            mac_b: [0; 6],
            ip6_a: None,
            ip6_b: None,
            env: HashMap::new(),
        };
        let out = Command::new(repo_root().join("scripts/veth.sh"))
            .args(["up", "--name", &name, "--queues", &queues.to_string()])
            .args(ipv6.then_some("--ipv6"))
            .output()
            .expect("run scripts/veth.sh");
        assert!(
            out.status.success(),
            "veth.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        v.env = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.ns_a = v.get("XT_NS_A").to_string();
        v.if_a = v.get("XT_IF_A").to_string();
        v.ip_a = v.get("XT_IP_A").to_string();
        v.mac_a = parse_mac(v.get("XT_MAC_A"));
        v.ns_b = v.get("XT_NS_B").to_string();
        v.if_b = v.get("XT_IF_B").to_string();
        v.ip_b = v.get("XT_IP_B").to_string();
        v.mac_b = parse_mac(v.get("XT_MAC_B"));
        let ip6 = |key: &str| v.env.get(key).map(|a| a.parse().expect("IPv6 address"));
        (v.ip6_a, v.ip6_b) = (ip6("XT_IP6_A"), ip6("XT_IP6_B"));
        v
    }

    /// A value `veth.sh up` printed.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("veth.sh printed no {key}"))
    }

    /// Runs `cmd` in namespace B and asserts it succeeded.
    pub fn exec_b(&self, cmd: &[&str]) {
        let ok = Command::new("ip")
            .args(["netns", "exec", &self.ns_b])
            .args(cmd)
            .status()
            .unwrap_or_else(|e| panic!("ip netns exec {}: {e}", self.ns_b))
            .success();
        assert!(ok, "{cmd:?} failed in {}", self.ns_b);
    }

    /// Makes side B reach the prefix 10.78.X.0/24 (X: the third octet of side A's address)
    /// through side A: an on-link route and a permanent neighbour entry per address, so B
    /// answers source addresses A's kernel does not own. Returns the prefix.
    pub fn source_prefix(&self) -> String {
        let octet = self
            .ip_a
            .split('.')
            .nth(2)
            .expect("IPv4 address")
            .to_string();
        let net = format!("10.78.{octet}");
        let mac = self.get("XT_MAC_A").to_string();
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(["-n", &self.ns_b])
                .args(args)
                .status()
                .expect("run ip")
                .success();
            assert!(ok, "ip {args:?}");
        };
        ip(&[
            "route",
            "replace",
            &format!("{net}.0/24"),
            "dev",
            &self.if_b,
        ]);
        for i in 1..=254 {
            let addr = format!("{net}.{i}");
            ip(&[
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &mac,
                "dev",
                &self.if_b,
                "nud",
                "permanent",
            ]);
        }
        format!("{net}.0/24")
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

/// A third namespace behind side B, which routes between side A and it (see
/// [`Veth::routed_peer`]); the namespace (and with it the link to B) is deleted on drop,
/// which must come before the pair's (declare it after the [`Veth`]).
pub struct Routed {
    /// Namespace `<name>c`, holding interface `if_c` at `ip_c`.
    pub ns_c: String,
    pub if_c: String,
    pub ip_c: String,
    /// B's end of the link, in namespace `ns_b`, at `ip_bc`.
    pub ns_b: String,
    pub if_bc: String,
    pub ip_bc: String,
}

impl Veth {
    /// Makes side B a router between side A and a new namespace C: a veth `<name>r` (in B,
    /// 10.79.X.1/24) to `<name>c` (in C, 10.79.X.2/24), X being the third octet of A's
    /// address, both ends at `mtu`, offloads off as in `veth.sh`; IPv4 forwarding on in B
    /// with ICMP rate limiting off; A routes 10.79.X.0/24 via B (with a permanent neighbour
    /// entry for B, which is where the engine reads next hops); C routes A's subnet via B,
    /// advertising `advmss` in its SYNs when given (a host behind a smaller link than the
    /// path's other end otherwise advertises the smaller MSS and never meets the router's
    /// MTU).
    pub fn routed_peer(&self, mtu: u32, advmss: Option<u32>) -> Routed {
        let octet = self
            .ip_a
            .split('.')
            .nth(2)
            .expect("IPv4 address")
            .to_string();
        let routed = Routed {
            ns_c: format!("{}c", self.name),
            if_c: format!("{}c", self.name),
            ip_c: format!("10.79.{octet}.2"),
            ns_b: self.ns_b.clone(),
            if_bc: format!("{}r", self.name),
            ip_bc: format!("10.79.{octet}.1"),
        };
        let run = |args: &[&str]| {
            let out = Command::new(args[0])
                .args(&args[1..])
                .output()
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["ip", "netns", "add", &routed.ns_c]);
        // From here on the guard deletes the namespace, whatever fails below.
        run(&["ip", "-n", &routed.ns_c, "link", "set", "lo", "up"]);
        run(&[
            "ip",
            "link",
            "add",
            &routed.if_bc,
            "netns",
            &self.ns_b,
            "type",
            "veth",
            "peer",
            "name",
            &routed.if_c,
            "netns",
            &routed.ns_c,
        ]);
        let mtu = mtu.to_string();
        for (ns, ifname, ip) in [
            (&self.ns_b, &routed.if_bc, &routed.ip_bc),
            (&routed.ns_c, &routed.if_c, &routed.ip_c),
        ] {
            let sysctl = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &sysctl]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "replace",
                &format!("{ip}/24"),
                "dev",
                ifname,
            ]);
            let off = ["tx", "off", "tso", "off", "gso", "off", "gro", "off"];
            let mut ethtool = vec!["ip", "netns", "exec", ns, "ethtool", "-K", ifname];
            ethtool.extend(off);
            run(&ethtool);
            run(&[
                "ip", "-n", ns, "link", "set", "dev", ifname, "mtu", &mtu, "up",
            ]);
        }
        for knob in ["net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"] {
            run(&["ip", "netns", "exec", &self.ns_b, "sysctl", "-qw", knob]);
        }
        let c_net = format!("10.79.{octet}.0/24");
        run(&[
            "ip", "-n", &self.ns_a, "route", "replace", &c_net, "via", &self.ip_b, "dev",
            &self.if_a,
        ]);
        let mac_b = self.get("XT_MAC_B").to_string();
        run(&[
            "ip",
            "-n",
            &self.ns_a,
            "neigh",
            "replace",
            &self.ip_b,
            "lladdr",
            &mac_b,
            "dev",
            &self.if_a,
            "nud",
            "permanent",
        ]);
        let a_net = format!("10.77.{octet}.0/24");
        let mut route = vec![
            "ip",
            "-n",
            &routed.ns_c,
            "route",
            "replace",
            &a_net,
            "via",
            &routed.ip_bc,
            "dev",
            &routed.if_c,
        ];
        let advmss = advmss.map(|m| m.to_string());
        if let Some(m) = &advmss {
            route.extend(["advmss", m.as_str()]);
        }
        run(&route);
        routed
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        // B's end first, synchronously (it takes `if_c` with it): namespace deletion is
        // asynchronous, and `veth.sh down` keeps a namespace B that still holds an interface.
        let _ = Command::new("ip")
            .args(["-n", &self.ns_b, "link", "del", &self.if_bc])
            .output();
        let ok = Command::new("ip")
            .args(["netns", "del", &self.ns_c])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: ip netns del {} failed", self.ns_c);
        }
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
        let stats = std::env::temp_dir().join(format!("xtcp-{}-stats.json", veth.name));
        Self::start_in(
            name,
            (&veth.ns_a, &veth.if_a, &veth.ip_a),
            stats,
            port,
            extra,
        )
    }

    /// As [`Server::start`], serving `ip` (e.g. an address on a VLAN of `veth.if_a`)
    /// instead of `veth.ip_a`.
    pub fn start_ip(name: &str, veth: &Veth, ip: &str, port: u16, extra: &[&str]) -> Server {
        let stats = std::env::temp_dir().join(format!("xtcp-{}-stats.json", veth.name));
        Self::start_in(name, (&veth.ns_a, &veth.if_a, ip), stats, port, extra)
    }

    /// As [`Server::start`], on side B (`veth.ns_b`, `veth.if_b`, `veth.ip_b`): for tests
    /// whose xtcp client runs on side A.
    pub fn start_b(name: &str, veth: &Veth, port: u16, extra: &[&str]) -> Server {
        let stats = std::env::temp_dir().join(format!("xtcp-{}-b-stats.json", veth.name));
        Self::start_in(
            name,
            (&veth.ns_b, &veth.if_b, &veth.ip_b),
            stats,
            port,
            extra,
        )
    }

    fn start_in(
        name: &str,
        (ns, iface, ip): (&str, &str, &str),
        stats: PathBuf,
        port: u16,
        extra: &[&str],
    ) -> Server {
        let bin = example_bin(name);
        let _ = std::fs::remove_file(&stats);
        let port = port.to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&bin)
            .args(["--iface", iface, "--ip", ip, "--port", &port])
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

/// The arguments of an example server on 2 queues of a 2-queue pair: native XDP (in SKB
/// mode every frame reports queue 0), one core each, idle polling (the machine may have no
/// spare CPU for busy-polling threads).
pub const TWO_QUEUES: &[&str] = &[
    "--queues",
    "2",
    "--xdp-mode",
    "native",
    "--cores",
    "0,1",
    "--poll-mode",
    "idle",
];

/// A Linux echo server on `listener` (bind it in namespace B): one thread per connection,
/// echo until EOF, then close; counts accepted connections; returns once `stop` is set.
pub fn kernel_echo_server(
    listener: std::net::TcpListener,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || echo_one(s));
            }
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

fn echo_one(mut s: std::net::TcpStream) {
    use std::io::{Read, Write};
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// The JSON stats document (see `xtcp::engine`'s stats module for its layout).
pub struct Stats(pub String);

impl Stats {
    fn doc(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.0).ok()
    }

    /// A top-level (total) counter.
    pub fn top(&self, key: &str) -> Option<u64> {
        self.doc()?.get(key)?.as_u64()
    }

    /// Counter `key` of core entry `i`.
    pub fn core(&self, i: usize, key: &str) -> Option<u64> {
        self.doc()?.get("cores")?.get(i)?.get(key)?.as_u64()
    }

    /// A counter of core `i`'s IPv6 stack (the core's `"ipv6"` object; dual-stack only).
    pub fn core_ipv6(&self, i: usize, key: &str) -> Option<u64> {
        self.doc()?
            .get("cores")?
            .get(i)?
            .get("ipv6")?
            .get(key)?
            .as_u64()
    }

    /// Counter `key` of the XDP program (`redirected`, `passed`, `malformed`, `no_socket`).
    pub fn xdp(&self, key: &str) -> Option<u64> {
        self.doc()?.get("xdp")?.get(key)?.as_u64()
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

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let parts: Vec<_> = s.split(':').collect();
    assert_eq!(parts.len(), 6, "bad MAC {s}");
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).expect("hex MAC byte");
    }
    mac
}

/// A raw `AF_PACKET` socket on one interface, for hand-built frames of one EtherType.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens it on `iface` (of the calling thread's namespace) for `ethertype` frames.
    pub fn open(iface: &str, ethertype: u16) -> PacketSocket {
        let proto = ethertype.to_be() as i32;
        // Safety: plain socket(2) call, checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // Safety: just opened, owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = CString::new(iface).unwrap();
        // Safety: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0, "no interface {iface}");
        // Safety: all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ethertype.to_be();
        sll.sll_ifindex = ifindex as i32;
        // Safety: `sll` is a valid sockaddr_ll of the given length.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        // Room for bursts of a few hundred small frames (each costs ~1 KB of skb truesize
        // against the default ~200 KB receive buffer).
        let size: libc::c_int = 8 << 20;
        // Safety: `size` is a valid c_int for the duration of the call.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", io::Error::last_os_error());
        PacketSocket { fd }
    }

    /// Sends one frame; false if the kernel pushed back (ENOBUFS/EAGAIN).
    pub fn send(&self, frame: &[u8]) -> bool {
        // Safety: `frame` is valid for reads of its length.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            assert!(
                matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)),
                "AF_PACKET send: {e}"
            );
            return false;
        }
        assert_eq!(r as usize, frame.len());
        true
    }

    /// Receives one frame into `buf` if one is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // Safety: `buf` is valid for writes of its length.
        let r = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "AF_PACKET recv: {e}");
            return None;
        }
        Some(r as usize)
    }

    /// Waits up to `limit` for a frame that `want` accepts; frames it rejects are dropped.
    pub fn recv_until(
        &self,
        limit: Duration,
        mut want: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            match self.recv(&mut buf) {
                Some(n) if want(&buf[..n]) => return Some(buf[..n].to_vec()),
                Some(_) => {}
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        None
    }
}

/// A kernel client connection to `a` with 3 s to connect and 10 s read/write timeouts.
pub fn connect(a: std::net::SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect {a}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One echo connection: send `msg`, then either half-close and read to EOF, or read the echo
/// and close first.
pub fn roundtrip(a: std::net::SocketAddr, msg: &[u8], half_close: bool) {
    use std::io::{Read, Write};
    let mut s = connect(a);
    s.write_all(msg).unwrap();
    let mut back = Vec::new();
    if half_close {
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.read_to_end(&mut back).unwrap();
    } else {
        back.resize(msg.len(), 0);
        s.read_exact(&mut back).unwrap();
    }
    assert_eq!(back, msg, "echo differs");
}

/// Sends `data` from a writer thread, half-closes, and reads the echo to EOF meanwhile.
pub fn stream_echo(a: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let s = connect(a);
    let mut w = s.try_clone().unwrap();
    let mut r = s;
    std::thread::scope(|sc| {
        sc.spawn(move || {
            for chunk in data.chunks(64 * 1024) {
                w.write_all(chunk).unwrap();
            }
            // Half-close: the client is done writing but still reads the rest.
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::with_capacity(data.len());
        r.read_to_end(&mut back).unwrap();
        back
    })
}

/// The echo checks every echo server passes, from kernel clients in namespace B against
/// `a`: 1,000 sequential connections (alternating who closes first), 100 concurrent ones
/// established at once (checked in the stats), and 10 MiB echoed byte-exact with
/// half-close; then every connection was accepted and no frame was malformed. Returns the
/// last stats read.
pub fn echo_checks(veth: &Veth, server: &Server, a: std::net::SocketAddr, name: &str) -> Stats {
    use std::io::{Read, Write};
    in_netns(&veth.ns_b, || {
        let t = Instant::now();
        for i in 0..1000u32 {
            let msg = format!("hello {i:04} from the kernel\n");
            roundtrip(a, msg.as_bytes(), i % 2 == 0);
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{name}: 1000 sequential connections in {secs:.2} s ({:.0}/s)",
            1000.0 / secs
        );

        // 100 concurrent: all open at once, then each sends and reads its own pattern.
        let mut conns: Vec<std::net::TcpStream> = (0..100).map(|_| connect(a)).collect();
        let msgs: Vec<Vec<u8>> = (0..100u64)
            .map(|i| {
                let mut m = vec![0u8; 2000 + i as usize * 13];
                Pattern::new(i + 1).fill(&mut m);
                m
            })
            .collect();
        for (s, m) in conns.iter_mut().zip(&msgs) {
            s.write_all(m).unwrap();
        }
        for (s, m) in conns.iter_mut().zip(&msgs) {
            let mut back = vec![0u8; m.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(&back, m);
        }
        // The 100 are established on the xtcp side at the same time (still open here).
        let st = server.wait_stats(Duration::from_secs(3), |s| {
            s.top("established") == Some(100)
        });
        assert_eq!(st.top("established"), Some(100), "stats: {}", st.0);
        drop(conns);
    });
    in_netns(&veth.ns_b, || {
        // 10 MiB of random bytes, echoed byte-exact, with half-close from the kernel side.
        let mut data = vec![0u8; 10 << 20];
        Pattern::new(0xEC40).fill(&mut data);
        let t = Instant::now();
        let back = stream_echo(a, &data);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(back.len(), data.len(), "echo length");
        assert!(back == data, "10 MiB echo differs");
        eprintln!(
            "{name}: 10 MiB echoed in {secs:.2} s ({:.0} MB/s each way)",
            10.49 / secs
        );
    });
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(1101)
    });
    assert!(st.top("passive_opens") >= Some(1101), "stats: {}", st.0);
    assert_eq!(st.top("rx_dropped_malformed"), Some(0), "stats: {}", st.0);
    st
}

/// Parsed from wrk's output: (requests, errors of any kind, requests/s).
pub fn wrk_summary(out: &str) -> (u64, u64, f64) {
    let mut requests = 0;
    let mut errors = 0;
    let mut rps = 0.0;
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_suffix("read")
            && rest.contains(" requests in ")
        {
            requests = l.split_whitespace().next().unwrap().parse().unwrap();
        }
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap();
        }
        if let Some(rest) = l.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().unwrap();
        }
    }
    (requests, errors, rps)
}

/// wrk from namespace B against `http://<A>:port/` (`close`: `Connection: close`), asserting
/// it completed requests with no error of any kind; returns (requests, errors, requests/s).
pub fn wrk(veth: &Veth, port: u16, secs: u32, conns: u32, close: bool) -> (u64, u64, f64) {
    wrk_at(veth, &veth.ip_a, port, secs, conns, close)
}

/// [`wrk`] against `host` (an IPv6 address in brackets: `[fd00:77::1]`).
pub fn wrk_at(
    veth: &Veth,
    host: &str,
    port: u16,
    secs: u32,
    conns: u32,
    close: bool,
) -> (u64, u64, f64) {
    let url = format!("http://{host}:{port}/");
    let d = format!("{secs}s");
    let c = conns.to_string();
    let mut args = vec!["-t", "1", "-c", &c, "-d", &d, "--timeout", "2s"];
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(&url);
    let out = veth.exec(&veth.ns_b, "wrk", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    let s = wrk_summary(&text);
    eprintln!(
        "wrk -c {conns} -d {secs}s{}: {} requests, {} errors, {:.0} requests/s",
        if close { " (Connection: close)" } else { "" },
        s.0,
        s.1,
        s.2
    );
    assert!(s.0 > 0, "no requests completed: {text}");
    assert_eq!(s.1, 0, "wrk reported errors: {text}");
    s
}
