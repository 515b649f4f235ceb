//! Active opens on every queue (root only; skipped with a message otherwise): the engine as a
//! client on both queues of a 2-queue veth pair completes 10,000 connections (each: connect,
//! a 32-byte request, its echo, close) against (a) the xtcp echo example on 2 queues and (b) a
//! Linux echo server, with zero failures; the handoff counters show where replies crossed
//! cores.
//!
//! On veth a frame arrives on the receive queue numbered like the sender's transmit queue.
//! (a) The xtcp server answers on the queue its core serves, which is the queue our SYN
//! left on: every reply comes back to the core that opened, and nothing is handed off.
//! (b) The Linux server picks a transmit queue from each socket's random hash: about half of
//! the replies land on the other core, which hands them to the owner (each core owns a slice
//! of the ephemeral ports). `net.core.txrehash=0` in both namespaces keeps a flow's queue
//! stable after retransmissions, as on the servers' side in `veth_echo`.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use xtcp::ConnHandle;
use xtcp::engine::{App, AppEvent, Engine, EngineConfig, EngineStats, Io, XdpMode};
use xtcp_testkit::veth::{Server, TWO_QUEUES, Veth, in_netns, kernel_echo_server, serial};

const PORT: u16 = 7777;
const TOTAL: u32 = 10_000;
const QUEUES: u32 = 2;
/// Connections in flight per core.
const WINDOW: usize = 32;
const MSG: usize = 32;

fn message(n: u32) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    for (i, b) in m.iter_mut().enumerate() {
        *b = (n as usize).wrapping_mul(31).wrapping_add(i * 7) as u8;
    }
    m
}

struct Conn {
    msg: [u8; MSG],
    got: usize,
    mismatch: bool,
    peer_closed: bool,
}

#[derive(Debug)]
struct CoreResult {
    queue: u32,
    ok: u32,
    failures: Vec<String>,
}

/// One core's client: `target` connections, `WINDOW` at a time; each sends its request,
/// half-closes, reads the echo up to the server's FIN, and counts when fully closed.
struct Client {
    remote: SocketAddr,
    target: u32,
    started: u32,
    active: usize,
    ok: u32,
    failures: Vec<String>,
    conns: Vec<Option<Conn>>,
    done: mpsc::Sender<CoreResult>,
    reported: bool,
}

impl Client {
    fn conn(&mut self, h: ConnHandle) -> Option<&mut Conn> {
        self.conns.get_mut(h.index()).and_then(Option::as_mut)
    }

    fn pull(&mut self, io: &mut Io<'_>, h: ConnHandle) {
        let data = io.recv_slice(h);
        let n = data.len();
        let Some(c) = self.conns.get_mut(h.index()).and_then(Option::as_mut) else {
            return;
        };
        if c.msg.get(c.got..c.got + n) != Some(data) {
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
        if how == "closed" && c.peer_closed && !c.mismatch && c.got == MSG {
            self.ok += 1;
        } else {
            self.failures.push(format!(
                "{how}: got {} of {MSG}, mismatch {}, peer closed {}",
                c.got, c.mismatch, c.peer_closed
            ));
        }
    }
}

impl App for Client {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        match ev {
            AppEvent::Connected(h) => {
                let Some(msg) = self.conn(h).map(|c| c.msg) else {
                    return;
                };
                if io.send(h, &msg) != Ok(MSG) {
                    self.failures.push("short send".into());
                }
                let _ = io.shutdown(h);
            }
            AppEvent::Readable(h) => self.pull(io, h),
            AppEvent::PeerClosed(h) => {
                self.pull(io, h);
                if let Some(c) = self.conn(h) {
                    c.peer_closed = true;
                }
            }
            AppEvent::Closed(h) => self.finish(h, "closed"),
            AppEvent::Reset(h) => self.finish(h, "reset"),
            AppEvent::TimedOut(h) => self.finish(h, "timed out"),
            AppEvent::Accepted(_) | AppEvent::Writable(_) => {}
        }
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        while self.active < WINDOW && self.started < self.target {
            let n = self.started * QUEUES + io.queue();
            self.started += 1;
            match io.connect(self.remote) {
                Ok(h) => {
                    let i = h.index();
                    if self.conns.len() <= i {
                        self.conns.resize_with(i + 1, || None);
                    }
                    self.conns[i] = Some(Conn {
                        msg: message(n),
                        got: 0,
                        mismatch: false,
                        peer_closed: false,
                    });
                    self.active += 1;
                }
                Err(e) => self.failures.push(format!("connect: {e}")),
            }
        }
        if !self.reported && self.started == self.target && self.active == 0 {
            self.reported = true;
            let _ = self.done.send(CoreResult {
                queue: io.queue(),
                ok: self.ok,
                failures: std::mem::take(&mut self.failures),
            });
        }
    }
}

/// Runs the client engine on both queues of side A against `remote`; returns each core's
/// result and the final counters.
/// An IPv6 `remote` gives the engine the pair's IPv6 address too.
fn run_clients(veth: &Veth, remote: SocketAddr) -> (Vec<CoreResult>, EngineStats, Duration) {
    let ip_a: std::net::Ipv4Addr = veth.ip_a.parse().unwrap();
    let ip6_a = veth.ip6_a.filter(|_| remote.is_ipv6());
    let if_a = veth.if_a.clone();
    let (tx, rx) = mpsc::channel();
    in_netns(&veth.ns_a, move || {
        let mut cfg = EngineConfig::new(if_a, ip_a);
        cfg.ipv6.extend(ip6_a);
        cfg.queues = QUEUES;
        cfg.cores = Some(vec![0, 1]);
        // Native: in SKB mode every frame reports receive queue 0.
        cfg.xdp_mode = XdpMode::Native;
        let engine = Engine::start(cfg, move |_queue| Client {
            remote,
            target: TOTAL / QUEUES,
            started: 0,
            active: 0,
            ok: 0,
            failures: Vec::new(),
            conns: Vec::new(),
            done: tx.clone(),
            reported: false,
        })
        .expect("start the client engine");
        assert!(!engine.info().rss, "veth has no RSS table: port slices");
        let t0 = Instant::now();
        let mut results = Vec::new();
        let deadline = t0 + Duration::from_secs(180);
        while results.len() < QUEUES as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => results.push(r),
                Err(_) => break,
            }
        }
        let elapsed = t0.elapsed();
        let stats = engine.shutdown().expect("clean shutdown");
        (results, stats, elapsed)
    })
}

fn no_txrehash(veth: &Veth) {
    for ns in [&veth.ns_a, &veth.ns_b] {
        let r = veth.exec(ns, "sysctl", &["-qw", "net.core.txrehash=0"]);
        assert!(
            r.status.success(),
            "sysctl net.core.txrehash=0 in {ns} failed"
        );
    }
}

/// Every core finished its share with no failure; the counters agree.
fn check(results: &[CoreResult], stats: &EngineStats, elapsed: Duration) {
    let h = stats.handoff_totals();
    eprintln!(
        "{TOTAL} connections in {:.2} s; handoffs out {} in {} drops {}; per core: {:?}",
        elapsed.as_secs_f64(),
        h.rx_handoffs_out,
        h.rx_handoffs_in,
        h.rx_handoff_drops,
        stats
            .cores
            .iter()
            .map(|c| (c.queue, c.counters.active_opens, c.handoff))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        results.len(),
        QUEUES as usize,
        "cores finished: {results:?}"
    );
    for r in results {
        assert!(
            r.failures.is_empty() && r.ok == TOTAL / QUEUES,
            "queue {}: {} ok of {}; failures ({}): {:?}",
            r.queue,
            r.ok,
            TOTAL / QUEUES,
            r.failures.len(),
            &r.failures[..r.failures.len().min(5)]
        );
    }
    for c in &stats.cores {
        assert_eq!(
            c.counters.active_opens,
            u64::from(TOTAL / QUEUES),
            "queue {}",
            c.queue
        );
    }
    let t = stats.totals();
    assert_eq!(t.rx_dropped_malformed, 0, "{t:?}");
    // The only resets: a Linux server that retransmitted its FIN gets our ACK from TIME-WAIT
    // after its socket is gone, and answers with RST (seen with one queue too); never one
    // that ends a connection (those would be failures above).
    assert!(t.resets_received <= t.time_wait_fin_acks, "{t:?}");
    // Such a RST deletes our TIME-WAIT entry (RFC 9293 §3.10.7.4). When Linux had
    // retransmitted its FIN more than once before our ACK reached it (a loaded machine: seen
    // once in CI, 230 re-ACKed FINs and one RST sent), the later copy finds no connection and
    // gets our RST, as a segment for a closed connection should. So every RST we send follows
    // one we received; none ends a live connection (those would be failures above).
    assert!(t.resets_sent <= t.resets_received, "{t:?}");
    // We half-closed first every time: every connection went through our TIME-WAIT.
    assert_eq!(t.time_wait_inserts, u64::from(TOTAL), "{t:?}");
    if let Some(x) = &stats.xdp {
        assert_eq!(x.no_socket, 0, "frames on a queue without a socket: {x:?}");
    }
    assert_eq!(h.rx_handoff_drops, 0, "{h:?}");
    assert_eq!(h.rx_handoffs_in, h.rx_handoffs_out, "{h:?}");
}

#[test]
fn client_on_two_queues_to_xtcp_echo() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("mc", QUEUES);
    no_txrehash(&veth);
    let mut server = Server::start_b("echo", &veth, PORT, TWO_QUEUES);
    assert!(
        server.ready_line.contains("2 queues"),
        "{}",
        server.ready_line
    );
    let remote = SocketAddrV4::new(veth.ip_b.parse().unwrap(), PORT);
    let (results, stats, elapsed) = run_clients(&veth, remote.into());
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(u64::from(TOTAL))
    });
    check(&results, &stats, elapsed);
    // The server answers on the queue its core serves, which is the queue our SYN left on:
    // replies come back to the core that opened, and nothing crosses.
    let h = stats.handoff_totals();
    assert_eq!(h.rx_handoffs_out, 0, "{h:?}");
    assert_eq!(st.top("passive_opens"), Some(u64::from(TOTAL)), "{}", st.0);
    assert_eq!(st.top("resets_sent"), Some(0), "{}", st.0);
    for q in 0..QUEUES as usize {
        assert_eq!(
            st.core(q, "passive_opens"),
            Some(u64::from(TOTAL / QUEUES)),
            "server queue {q}: {}",
            st.0
        );
    }
    assert!(server.stop(), "the echo server did not exit cleanly");
}

#[test]
fn client_on_two_queues_to_linux_echo() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("mk", QUEUES);
    let remote = SocketAddr::new(veth.ip_b.parse().unwrap(), PORT);
    to_linux_echo(&veth, remote);
}

/// The same over IPv6: the replies that land on the other core are IPv6 frames, handed to
/// their owner by the same queues (`Ownership::owner_of_frame` reads IPv6 too).
#[test]
fn client_on_two_queues_to_linux_echo_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("m6", QUEUES);
    let remote = SocketAddr::new(veth.ip6_b.expect("IPv6 pair").into(), PORT);
    to_linux_echo(&veth, remote);
}

fn to_linux_echo(veth: &Veth, remote: SocketAddr) {
    no_txrehash(veth);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let listener = in_netns(&veth.ns_b, || TcpListener::bind(remote).expect("bind"));
    let server = {
        let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || kernel_echo_server(listener, stop, accepted))
    };
    let (results, stats, elapsed) = run_clients(veth, remote);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    check(&results, &stats, elapsed);
    assert_eq!(accepted.load(Ordering::Relaxed), u64::from(TOTAL));
    // The kernel picks each socket's transmit queue from a random hash: replies to both
    // cores' connections land on the other core too, and were handed to their owner.
    for c in &stats.cores {
        assert!(
            c.handoff.rx_handoffs_out > 0 && c.handoff.rx_handoffs_in > 0,
            "queue {}: no frame crossed: {:?}",
            c.queue,
            c.handoff
        );
    }
}
