//! Next hops from the kernel over rtnetlink, and the ageing, refreshed neighbour cache, over a
//! private veth pair (root only; skipped with a message otherwise).
//!
//! - `mac_change_mid_run`: the engine's client (`Io::connect`) opens short echo connections
//!   to a Linux server, a few at a time; mid-run the server side's MAC changes (`ip link set
//!   address` in its namespace, then `ip neigh replace` of the kernel's entry on the xtcp
//!   side, as a gratuitous ARP would). Connections opened after the change must succeed
//!   within 5 s of it, and keep succeeding.
//! - `gateway_route_is_followed`: a destination behind a gateway (a route `via` the Linux
//!   side, which owns the destination address on its loopback) is reached through the
//!   gateway's MAC, by the engine and by `sys::resolve_next_hop` (the load generator's
//!   set-up), for IPv4 and IPv6.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xtcp::ConnHandle;
use xtcp::engine::sys::resolve_next_hop;
use xtcp::engine::{App, AppEvent, Engine, EngineConfig, EngineStats, Io};
use xtcp::wire::EthernetAddress;
use xtcp_testkit::veth::{Veth, in_netns, kernel_echo_server, serial};

const PORT: u16 = 7788;
const MSG: &[u8] = b"neighbour test: 32 bytes echoed.";

/// One finished connection: when it was opened and ended, and whether its echo came back.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    opened: Instant,
    ended: Instant,
    ok: bool,
}

/// Opens echo connections to `remote`, at most `parallel` at a time, one every `gap`, until
/// `stop`; records each outcome.
struct Opener {
    remote: SocketAddrV4,
    parallel: usize,
    gap: Duration,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    open: Vec<(ConnHandle, Instant, usize)>,
    last: Option<Instant>,
}

impl Opener {
    fn new(remote: SocketAddrV4, stop: Arc<AtomicBool>, out: Arc<Mutex<Vec<Outcome>>>) -> Self {
        Opener {
            remote,
            parallel: 4,
            gap: Duration::from_millis(20),
            stop,
            outcomes: out,
            open: Vec::new(),
            last: None,
        }
    }

    fn end(&mut self, h: ConnHandle, closed: bool) {
        if let Some(i) = self.open.iter().position(|c| c.0 == h) {
            let (_, opened, got) = self.open.swap_remove(i);
            let ok = closed && got == MSG.len();
            let ended = Instant::now();
            self.outcomes
                .lock()
                .unwrap()
                .push(Outcome { opened, ended, ok });
        }
    }
}

impl App for Opener {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        match ev {
            AppEvent::Connected(h) => {
                let _ = io.send(h, MSG);
                let _ = io.shutdown(h);
            }
            AppEvent::Readable(h) | AppEvent::PeerClosed(h) => {
                let n = io.recv_slice(h).len();
                io.consume(h, n);
                if let Some(c) = self.open.iter_mut().find(|c| c.0 == h) {
                    c.2 += n;
                }
            }
            AppEvent::Closed(h) => self.end(h, true),
            AppEvent::Reset(h) | AppEvent::TimedOut(h) => self.end(h, false),
            AppEvent::Writable(_) | AppEvent::Accepted(_) => {}
        }
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        let now = Instant::now();
        if self.stop.load(Ordering::Relaxed)
            || self.open.len() >= self.parallel
            || self.last.is_some_and(|t| now.duration_since(t) < self.gap)
        {
            return;
        }
        self.last = Some(now);
        match io.connect(self.remote) {
            Ok(h) => self.open.push((h, now, 0)),
            Err(_) => self.outcomes.lock().unwrap().push(Outcome {
                opened: now,
                ended: now,
                ok: false,
            }),
        }
    }
}

fn ip(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_text(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Runs an [`Opener`] towards `remote` on an engine in `veth`'s namespace A, calls `during`
/// once `warmup` connections succeeded (its return: the instant the test measures from),
/// and stops `after` that. Returns the outcomes, the instant, and the engine's stats.
fn run_opener(
    veth: &Veth,
    remote: SocketAddrV4,
    warmup: usize,
    after: Duration,
    during: impl FnOnce() -> Instant + Send,
) -> (Vec<Outcome>, Option<Instant>, EngineStats) {
    let ip_a: Ipv4Addr = veth.ip_a.parse().unwrap();
    let if_a = veth.if_a.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let (s, o) = (Arc::clone(&stop), Arc::clone(&outcomes));
    in_netns(&veth.ns_a, move || {
        let mut cfg = EngineConfig::new(if_a, ip_a);
        cfg.queues = 1;
        let engine = Engine::start(cfg, move |_| Opener::new(remote, s.clone(), o.clone()))
            .expect("start the engine");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut mark = None;
        while Instant::now() < deadline {
            let ok = outcomes.lock().unwrap().iter().filter(|o| o.ok).count();
            if ok >= warmup {
                mark = Some(during());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if mark.is_some() {
            std::thread::sleep(after);
        }
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let stats = engine.shutdown().expect("clean shutdown");
        let outcomes = outcomes.lock().unwrap().clone();
        (outcomes, mark, stats)
    })
}

/// A Linux echo server on `addr` in namespace B, until the returned flag is set.
fn echo_server(veth: &Veth, addr: SocketAddrV4) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let listener = in_netns(&veth.ns_b, || TcpListener::bind(addr).expect("bind"));
    let s = Arc::clone(&stop);
    let t = std::thread::spawn(move || kernel_echo_server(listener, s, accepted));
    (stop, t)
}

#[test]
fn mac_change_mid_run() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("nb", 1);
    let remote = SocketAddrV4::new(veth.ip_b.parse().unwrap(), PORT);
    let (stop_server, server) = echo_server(&veth, remote);
    let new_mac = [0x02, 0x78, 0x74, 0xee, 0x00, 0x02];
    assert_ne!(new_mac, veth.mac_b);
    let (ns_a, ns_b, if_a, if_b, ip_b) = (
        veth.ns_a.clone(),
        veth.ns_b.clone(),
        veth.if_a.clone(),
        veth.if_b.clone(),
        veth.ip_b.clone(),
    );
    let (outcomes, changed, stats) = run_opener(&veth, remote, 20, Duration::from_secs(8), || {
        let mac = mac_text(new_mac);
        ip(&ns_b, &["link", "set", "dev", &if_b, "address", &mac]);
        ip(
            &ns_a,
            &["neigh", "replace", &ip_b, "lladdr", &mac, "dev", &if_a],
        );
        Instant::now()
    });
    stop_server.store(true, Ordering::Relaxed);
    server.join().unwrap();

    let changed = changed.expect("20 connections before the change");
    let before = outcomes.iter().filter(|o| o.opened < changed).count();
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.opened >= changed).collect();
    let first_ok = after.iter().filter(|o| o.ok).map(|o| o.ended).min();
    let n = &stats.cores[0].neighbor;
    eprintln!(
        "{before} opened before the change; after it: {} opened, {} ok, first ok {:?} after \
         the change; neighbour refreshes {} changes {} failures {}",
        after.len(),
        after.iter().filter(|o| o.ok).count(),
        first_ok.map(|t| t - changed),
        n.refreshes,
        n.changes,
        n.failures
    );
    let first_ok = first_ok.expect("no connection opened after the MAC change succeeded");
    assert!(
        first_ok - changed <= Duration::from_secs(5),
        "first success {:?} after the change",
        first_ok - changed
    );
    // Once the new MAC is in use, every later open succeeds.
    let settled = changed + Duration::from_secs(5);
    let late: Vec<&&Outcome> = after.iter().filter(|o| o.opened >= settled).collect();
    assert!(
        late.len() >= 10,
        "only {} opens after the first 5 s",
        late.len()
    );
    assert!(late.iter().all(|o| o.ok), "late failures: {late:?}");
    assert!(n.changes >= 1, "the refresh saw no MAC change: {n:?}");
}

#[test]
fn gateway_route_is_followed() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("gw", 1);
    let octet = veth.ip_a.split('.').nth(2).unwrap().to_string();
    // Behind the gateway (side B, which owns the address on its loopback).
    let far: Ipv4Addr = format!("10.79.{octet}.1").parse().unwrap();
    ip(
        &veth.ns_b,
        &["addr", "add", &format!("{far}/32"), "dev", "lo"],
    );
    ip(
        &veth.ns_a,
        &[
            "route",
            "add",
            &format!("10.79.{octet}.0/24"),
            "via",
            &veth.ip_b,
            "dev",
            &veth.if_a,
        ],
    );
    // IPv6: a link between the two and a prefix behind B (resolution only: no engine).
    // `veth.sh` turns IPv6 off on the pair; on here.
    for (ns, dev) in [(&veth.ns_a, &veth.if_a), (&veth.ns_b, &veth.if_b)] {
        let key = format!("net.ipv6.conf.{dev}.disable_ipv6=0");
        let out = veth.exec(ns, "sysctl", &["-qw", &key]);
        assert!(out.status.success(), "sysctl {key}");
    }
    ip(
        &veth.ns_a,
        &["addr", "add", "fd00:79::1/64", "dev", &veth.if_a, "nodad"],
    );
    ip(
        &veth.ns_b,
        &["addr", "add", "fd00:79::2/64", "dev", &veth.if_b, "nodad"],
    );
    ip(&veth.ns_b, &["addr", "add", "fd00:7a::1/128", "dev", "lo"]);
    ip(
        &veth.ns_a,
        &["-6", "route", "add", "fd00:7a::/64", "via", "fd00:79::2"],
    );

    let gw: IpAddr = veth.ip_b.parse().unwrap();
    let mac_b = EthernetAddress(veth.mac_b);
    let if_a = veth.if_a.clone();
    let resolved = in_netns(&veth.ns_a, move || {
        let t = Duration::from_secs(3);
        [
            resolve_next_hop(&if_a, far, t),
            resolve_next_hop(&if_a, "fd00:79::2".parse::<IpAddr>().unwrap(), t),
            resolve_next_hop(&if_a, "fd00:7a::5".parse::<IpAddr>().unwrap(), t),
            resolve_next_hop(&if_a, Ipv4Addr::new(192, 0, 2, 1), t),
        ]
    });
    let v6_gw: IpAddr = "fd00:79::2".parse().unwrap();
    assert_eq!(resolved[0], Ok((gw, mac_b)), "IPv4 through the gateway");
    assert_eq!(resolved[1], Ok((v6_gw, mac_b)), "IPv6 on-link");
    assert_eq!(resolved[2], Ok((v6_gw, mac_b)), "IPv6 through the gateway");
    assert!(resolved[3].is_err(), "no route: {:?}", resolved[3]);

    // The engine: the kernel's entry for the gateway is removed first, so the engine's own
    // resolution (route, kick, neighbour request) is what finds it.
    ip(&veth.ns_a, &["neigh", "flush", "dev", &veth.if_a]);
    let remote = SocketAddrV4::new(far, PORT);
    let (stop_server, server) = echo_server(&veth, remote);
    let (outcomes, mark, stats) = run_opener(&veth, remote, 10, Duration::ZERO, Instant::now);
    stop_server.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let ok = outcomes.iter().filter(|o| o.ok).count();
    eprintln!(
        "{ok} of {} connections through the gateway ok; {:?}",
        outcomes.len(),
        stats.cores[0].neighbor
    );
    assert!(mark.is_some() && ok >= 10, "{outcomes:?}");
    // The kernel resolved the gateway, never the far address itself (it is not on-link).
    let neigh = veth.exec(&veth.ns_a, "ip", &["neigh", "show", "dev", &veth.if_a]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(!neigh.contains(&far.to_string()), "{neigh}");
}
