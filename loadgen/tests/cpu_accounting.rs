//! The per-CPU accounting of `xtcp_loadgen::cpustat` against loads whose answer is known:
//! - a spinning thread pinned to a core reads as ≥ 0.95 busy in /proc/stat;
//! - an xtcp engine busy-polling a veth with no traffic keeps its core ≥ 0.95 busy in
//!   /proc/stat, yet its own work accounting reads ≤ 0.05, and so does the report's server
//!   work (busy less empty spinning);
//! - preferred busy polling on veth (copy mode) falls back to idle waiting and says why.
//!
//! The engine test is privileged (namespaces, XDP, AF_XDP) and prints SKIPPED without root.
//! It creates its own veth pair with `scripts/veth.sh` under a name of its own and removes it
//! on every exit path (drop guard). No traffic is sent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xtcp::engine::{App, AppEvent, Engine, EngineConfig, Io, PollMode};
use xtcp_loadgen::cpustat;

/// The highest-numbered CPU this process may use (away from core 0, where the test harness
/// and most other work runs).
fn test_core() -> usize {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .max()
        .unwrap_or(0)
}

/// The two tests use the same core: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_spinning_core_reads_busy() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let core = test_core();
    let before = cpustat::read_proc_stat();
    let t = std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        let end = Instant::now() + Duration::from_millis(800);
        let mut n = 0u64;
        while Instant::now() < end {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        n
    });
    t.join().unwrap();
    let after = cpustat::read_proc_stat();
    let s = cpustat::share(&before, &after, &[core]).expect("/proc/stat has the core");
    // Only `busy` is checked: how the rest splits into user/system/softirq depends on what
    // else the machine runs on that core.
    assert!(s.busy >= 0.95, "core {core} busy {} while spinning", s.busy);
}

fn is_root() -> bool {
    // Safety: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn veth_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/veth.sh")
}

/// A veth pair between two namespaces (scripts/veth.sh), torn down on drop.
struct Veth {
    name: String,
    env: std::collections::HashMap<String, String>,
}

impl Veth {
    fn up(tag: &str) -> Veth {
        let name = format!("cpu{tag}{}", std::process::id() % 10_000);
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
        self.env
            .get(k)
            .unwrap_or_else(|| panic!("veth.sh printed no {k}"))
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

/// Moves the calling thread into network namespace `ns` (threads it starts inherit it).
fn enter_netns(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    use std::os::fd::AsRawFd;
    // Safety: setns(2) on an open namespace file; affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// Accepts and ignores everything (no traffic is sent anyway).
struct Quiet;
impl App for Quiet {
    fn on_event(&mut self, _io: &mut Io<'_>, _ev: AppEvent) {}
}

#[test]
fn an_idle_busy_polling_engine_reads_busy_core_but_no_work() {
    if !is_root() {
        println!("SKIPPED an_idle_busy_polling_engine_reads_busy_core_but_no_work: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v = Veth::up("i");
    let core = test_core();
    let (ns, ifb, ip) = (
        v.get("XT_NS_B").to_string(),
        v.get("XT_IF_B").to_string(),
        v.get("XT_IP_B").parse().unwrap(),
    );
    let (work, share, fallback) = std::thread::spawn(move || {
        enter_netns(&ns);
        let mut cfg = EngineConfig::new(ifb, ip);
        cfg.ports = vec![8080];
        cfg.cores = Some(vec![core]);
        // Asked for preferred busy polling: on veth (copy mode) it must fall back.
        cfg.poll = PollMode::PreferBusy(Default::default());
        let engine = Engine::start(cfg.clone(), |_| Quiet).expect("engine starts");
        let fallback = (engine.info().poll, engine.info().poll_fallback.clone());
        engine.shutdown().expect("engine stops cleanly");
        cfg.poll = PollMode::Busy;
        let mut engine = Engine::start(cfg, |_| Quiet).expect("engine starts");
        // The same JSON the stats file carries, read through the engine (snapshots every
        // SNAPSHOT_INTERVAL): let it settle, then one window of 1 s with both readings.
        let reading = |e: &mut Engine<Quiet>| {
            let json = e.stats().to_json();
            cpustat::parse_engine_cores(&json)
        };
        std::thread::sleep(Duration::from_millis(400));
        let (e0, p0) = (reading(&mut engine), cpustat::read_proc_stat());
        std::thread::sleep(Duration::from_millis(1000));
        let (e1, p1) = (reading(&mut engine), cpustat::read_proc_stat());
        engine.shutdown().expect("engine stops cleanly");
        (
            (
                cpustat::engine_work(&e0, &e1),
                cpustat::engine_spin(&e0, &e1),
            ),
            cpustat::share(&p0, &p1, &[core]),
            fallback,
        )
    })
    .join()
    .expect("namespace thread");

    let (work, spin) = work;
    let work = work.expect("the engine published snapshots during the window");
    assert!(work <= 0.05, "idle engine's own work fraction {work}");
    let share = share.expect("/proc/stat has the core");
    assert!(
        share.busy >= 0.95,
        "a busy-polling core reads busy in /proc/stat: {share:?}"
    );
    // The report's server work: the core's busy share less the engine's empty spinning.
    let server_work = cpustat::server_work(share.busy, spin);
    assert!(
        server_work <= 0.05,
        "server work {server_work}, spin {spin:?}"
    );
    assert_eq!(
        fallback.0,
        PollMode::Idle,
        "copy mode cannot be busy-polled"
    );
    let why = fallback.1.expect("the fallback says why");
    assert!(why.contains("NAPI"), "{why}");
}
