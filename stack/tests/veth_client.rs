//! The engine's client API against a Linux kernel echo server over a private veth pair (root
//! only; skipped with a message otherwise): 1,000 sequential connections, 100 concurrent,
//! and 10 MiB echoed byte-exact; every connection half-closes from the xtcp side (shutdown
//! after sending, then reads the echo to the server's FIN).
//!
//! The engine runs in this process, on a thread that entered namespace `-a` (its polling
//! thread inherits the namespace); the kernel server runs on threads in `-b`. The next hop is
//! resolved through the kernel's neighbour table, which starts empty.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use xtcp::ConnHandle;
use xtcp::engine::{App, AppEvent, Engine, EngineConfig, Io};
use xtcp_testkit::veth::{Pattern, Veth, in_netns, kernel_echo_server, serial};

const PORT: u16 = 7777;

/// One client connection: the bytes to send (and expect back) and progress.
struct Conn {
    msg: Arc<Vec<u8>>,
    sent: usize,
    got: usize,
    mismatch: bool,
    shut: bool,
    peer_closed: bool,
}

#[derive(Debug)]
struct PhaseResult {
    name: &'static str,
    ok: u32,
    failures: Vec<String>,
    elapsed: Duration,
}

/// The test client: three phases, one after the other, reported over a channel.
struct Client {
    remote: SocketAddr,
    results: mpsc::Sender<PhaseResult>,
    big: Arc<Vec<u8>>,
    conns: Vec<Option<Conn>>,
    phase: usize,
    active: usize,
    started: u32,
    ok: u32,
    failures: Vec<String>,
    phase_start: Option<Instant>,
}

const PHASES: [(&str, u32); 3] = [("sequential", 1000), ("concurrent", 100), ("10 MiB", 1)];

impl Client {
    fn start_conn(&mut self, io: &mut Io<'_>, msg: Arc<Vec<u8>>) {
        self.started += 1;
        match io.connect(self.remote) {
            Ok(h) => {
                let i = h.index();
                if self.conns.len() <= i {
                    self.conns.resize_with(i + 1, || None);
                }
                self.conns[i] = Some(Conn {
                    msg,
                    sent: 0,
                    got: 0,
                    mismatch: false,
                    shut: false,
                    peer_closed: false,
                });
                self.active += 1;
            }
            Err(e) => self.failures.push(format!("connect: {e}")),
        }
    }

    fn push(&mut self, io: &mut Io<'_>, h: ConnHandle) {
        let Some(c) = self.conns.get_mut(h.index()).and_then(Option::as_mut) else {
            return;
        };
        if c.sent < c.msg.len() {
            c.sent += io.send(h, &c.msg[c.sent..]).unwrap_or(0);
        }
        if c.sent == c.msg.len() && !c.shut {
            // Half-close: done sending, still reading the echo.
            c.shut = true;
            let _ = io.shutdown(h);
        }
    }

    fn pull(&mut self, io: &mut Io<'_>, h: ConnHandle) {
        let Some(c) = self.conns.get_mut(h.index()).and_then(Option::as_mut) else {
            return;
        };
        let data = io.recv_slice(h);
        let n = data.len();
        let expect = c.msg.get(c.got..c.got + n);
        if expect != Some(data) {
            c.mismatch = true;
        }
        c.got += n;
        io.consume(h, n);
    }

    fn finish(&mut self, h: ConnHandle, how: &str) {
        let Some(c) = self.conns.get_mut(h.index()).and_then(Option::take) else {
            return;
        };
        self.active -= 1;
        if how == "closed" && c.peer_closed && !c.mismatch && c.got == c.msg.len() {
            self.ok += 1;
        } else {
            self.failures.push(format!(
                "{how}: sent {}/{} got {} mismatch {} peer_closed {}",
                c.sent,
                c.msg.len(),
                c.got,
                c.mismatch,
                c.peer_closed
            ));
        }
    }
}

impl App for Client {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        match ev {
            AppEvent::Connected(h) | AppEvent::Writable(h) => self.push(io, h),
            AppEvent::Readable(h) => self.pull(io, h),
            AppEvent::PeerClosed(h) => {
                self.pull(io, h);
                if let Some(c) = self.conns.get_mut(h.index()).and_then(Option::as_mut) {
                    c.peer_closed = true;
                }
            }
            AppEvent::Closed(h) => self.finish(h, "closed"),
            AppEvent::Reset(h) => self.finish(h, "reset"),
            AppEvent::TimedOut(h) => self.finish(h, "timed out"),
            AppEvent::Accepted(_) => {}
        }
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        let Some(&(name, total)) = PHASES.get(self.phase) else {
            return;
        };
        let t0 = *self.phase_start.get_or_insert_with(Instant::now);
        let finished = self.ok + self.failures.len() as u32;
        if finished >= total && self.active == 0 {
            let _ = self.results.send(PhaseResult {
                name,
                ok: self.ok,
                failures: std::mem::take(&mut self.failures),
                elapsed: t0.elapsed(),
            });
            self.phase += 1;
            (self.started, self.ok, self.phase_start) = (0, 0, None);
            return;
        }
        match self.phase {
            0 if self.active == 0 && self.started < total => {
                let mut m = vec![0u8; 64];
                Pattern::new(u64::from(self.started)).fill(&mut m);
                self.start_conn(io, Arc::new(m));
            }
            1 if self.started == 0 => {
                for i in 0..total {
                    let mut m = vec![0u8; 8192 + i as usize];
                    Pattern::new(1000 + u64::from(i)).fill(&mut m);
                    self.start_conn(io, Arc::new(m));
                }
            }
            2 if self.started == 0 => {
                let big = Arc::clone(&self.big);
                self.start_conn(io, big);
            }
            _ => {}
        }
    }
}

#[test]
fn xtcp_client_to_kernel_server() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("cl", 1);
    let remote = SocketAddr::new(veth.ip_b.parse().unwrap(), PORT);
    client_against_kernel(&veth, remote);
}

/// The same over IPv6: the engine has the pair's IPv6 address, the kernel echo server
/// listens on side B's, and the next hop comes from the kernel's Neighbor Discovery.
#[test]
fn xtcp_client_to_kernel_server_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("c6", 1);
    let remote = SocketAddr::new(veth.ip6_b.expect("IPv6 pair").into(), PORT);
    client_against_kernel(&veth, remote);
}

/// The three phases from the engine in namespace A against a kernel echo server at `remote`
/// in B; with an IPv6 `remote`, the engine gets the pair's IPv6 address too.
fn client_against_kernel(veth: &Veth, remote: SocketAddr) {
    let ip_a: std::net::Ipv4Addr = veth.ip_a.parse().unwrap();
    let ip6_a = veth.ip6_a;

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let listener = in_netns(&veth.ns_b, || TcpListener::bind(remote).expect("bind"));
    let server = {
        let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || kernel_echo_server(listener, stop, accepted))
    };

    let mut big = vec![0u8; 10 << 20];
    Pattern::new(0xB16).fill(&mut big);
    let big = Arc::new(big);
    let (tx, rx) = mpsc::channel();
    let if_a = veth.if_a.clone();
    let (results, stats) = in_netns(&veth.ns_a, move || {
        let mut cfg = EngineConfig::new(if_a, ip_a);
        cfg.queues = 1;
        if remote.is_ipv6() {
            cfg.ipv6.extend(ip6_a);
        }
        let engine = Engine::start(cfg, move |_queue| Client {
            remote,
            results: tx.clone(),
            big: Arc::clone(&big),
            conns: Vec::new(),
            phase: 0,
            active: 0,
            started: 0,
            ok: 0,
            failures: Vec::new(),
            phase_start: None,
        })
        .expect("start the engine");
        let mut results = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while results.len() < PHASES.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => results.push(r),
                Err(_) => break,
            }
        }
        let stats = engine.shutdown().expect("clean shutdown");
        (results, stats)
    });
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();

    for r in &results {
        eprintln!(
            "{}: {} ok, {} failed in {:.2} s",
            r.name,
            r.ok,
            r.failures.len(),
            r.elapsed.as_secs_f64()
        );
    }
    assert_eq!(results.len(), PHASES.len(), "phases finished: {results:?}");
    for (r, (name, total)) in results.iter().zip(PHASES) {
        assert_eq!(r.name, name);
        assert!(
            r.failures.is_empty() && r.ok == total,
            "{name}: {} ok of {total}; failures: {:?}",
            r.ok,
            &r.failures[..r.failures.len().min(5)]
        );
    }
    let t = stats.totals();
    if remote.is_ipv6() {
        let v6 = stats.cores[0].ipv6.expect("an IPv6 stack").counters;
        assert_eq!(v6.active_opens, 1101, "{v6:?}");
    }
    assert_eq!(t.active_opens, 1101);
    assert_eq!(accepted.load(Ordering::Relaxed), 1101);
    assert_eq!(t.rx_dropped_malformed, 0);
    // We half-closed first every time: every connection went through our TIME-WAIT.
    assert_eq!(t.time_wait_inserts, 1101, "{t:?}");
}
