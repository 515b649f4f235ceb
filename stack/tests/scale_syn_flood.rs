//! A simulated SYN flood (RFC 4987): one million SYNs from random spoofed sources hit a
//! listener with a small SYN queue while 1,000 legitimate clients (ten client stacks, 100
//! connections each) connect, send a request and read the echo. The spoofed SYNs are
//! crafted frames pushed straight into the server's link; their SYN-ACKs go to MAC
//! addresses no node owns and are lost. Every legitimate client must complete (through SYN
//! cookies, the queue being full), the queue and memory must stay bounded, and the counters
//! must add up.
//!
//! Alone in its test binary so that the RSS it measures is its own.

use std::net::SocketAddrV4;

use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::sim::{Host, LinkConfig, Rng, SimConfig, Simulation};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig, SynCookieMode};
use xtcp::tcp::Event;
use xtcp::time::{Duration, Instant};
use xtcp::wire::{
    EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame,
};
use xtcp_testkit::rig::rss_bytes;

const SPOOFED: u64 = 1_000_000;
/// Spoofed SYNs per millisecond of virtual time: the flood lasts one second.
const PER_MS: u64 = 1000;
const CLIENT_NODES: usize = 10;
const PER_CLIENT: usize = 100;
const SYN_BACKLOG: usize = 64;
const PORT: u16 = 80;

/// The server: a stack, its application (accept, echo, close), and the flood injector.
struct Server {
    stack: Stack,
    listener: ListenerId,
    rng: Rng,
    frame: Vec<u8>,
    ip: Ipv4Addr,
    mac: EthernetAddress,
    injected: u64,
    next_inject: Instant,
    max_syn_queue: usize,
    max_connections: usize,
    echoed: usize,
}

impl Server {
    fn inject(&mut self, now: Instant, link: &mut MemoryLink) {
        while self.injected < SPOOFED && now >= self.next_inject {
            for _ in 0..PER_MS {
                let r = self.rng.next_u64();
                let src = Ipv4Addr::from(0x6440_0000 | (r as u32 & 0x003f_ffff)); // 100.64/10
                let mac = EthernetAddress([
                    0x02,
                    0xee,
                    (r >> 24) as u8,
                    (r >> 32) as u8,
                    (r >> 40) as u8,
                    (r >> 48) as u8,
                ]);
                let syn = TcpRepr {
                    src_port: 1024 + (r >> 52) as u16 % 60_000,
                    dst_port: PORT,
                    control: TcpControl::Syn,
                    seq_number: SeqNumber(self.rng.next_u32()),
                    window_len: 64240,
                    max_seg_size: Some(1460),
                    window_scale: Some(7),
                    sack_permitted: true,
                    timestamp: Some(TcpTimestamp {
                        tsval: r as u32,
                        tsecr: 0,
                    }),
                    ..TcpRepr::default()
                };
                let len = emit_tcp_frame(&mut self.frame, mac, self.mac, src, self.ip, &syn)
                    .expect("fits");
                assert!(
                    link.push_rx(&self.frame[..len]),
                    "server RX queue full at {now:?} with {} queued",
                    link.rx_len()
                );
                self.injected += 1;
            }
            self.next_inject += Duration::from_millis(1);
        }
    }

    fn app(&mut self) {
        while self.stack.accept(self.listener).is_some() {}
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Readable => self.echo(h),
                Event::PeerClosed => {
                    let _ = self.stack.close(h);
                }
                _ => {}
            }
        }
        self.max_syn_queue = self
            .max_syn_queue
            .max(self.stack.syn_queue_len(self.listener));
        self.max_connections = self.max_connections.max(self.stack.connection_count());
    }

    fn echo(&mut self, h: ConnHandle) {
        let mut buf = [0u8; 256];
        let n = self.stack.recv(h, &mut buf).unwrap_or(0);
        if n > 0 {
            assert_eq!(self.stack.send(h, &buf[..n]), Ok(n));
            self.echoed += 1;
        }
    }
}

impl Host for Server {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.inject(now, link);
        // The injected burst is handled in this poll, `rx_batch` frames at a time (the
        // simulator only polls again for frames that arrive over the wire).
        loop {
            self.stack.receive(now, link);
            self.app();
            self.stack.flush(now, link);
            if link.rx_len() == 0 {
                break;
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        let flood = (self.injected < SPOOFED).then_some(self.next_inject);
        [self.stack.poll_at(), flood].into_iter().flatten().min()
    }
}

/// A legitimate client stack: opens its connections one per 10 ms, sends a request on
/// each, checks the echo and closes.
struct Client {
    stack: Stack,
    target: SocketAddrV4,
    start: Instant,
    opened: usize,
    conns: Vec<(ConnHandle, Vec<u8>, Vec<u8>)>,
    completed: usize,
}

impl Client {
    fn app(&mut self, now: Instant) {
        while self.opened < PER_CLIENT
            && now >= self.start + Duration::from_millis(10 * self.opened as u64)
        {
            let h = self.stack.connect(now, None, self.target).expect("connect");
            let request = format!(
                "request {} from {}",
                self.opened,
                self.stack.config().ips[0]
            );
            self.conns.push((h, request.into_bytes(), Vec::new()));
            self.opened += 1;
        }
        while let Some((h, e)) = self.stack.poll_event() {
            let Some(i) = self.conns.iter().position(|c| c.0 == h) else {
                continue;
            };
            match e {
                Event::Connected => {
                    let req = self.conns[i].1.clone();
                    assert_eq!(self.stack.send(h, &req), Ok(req.len()));
                }
                Event::Readable => {
                    let mut buf = [0u8; 256];
                    let n = self.stack.recv(h, &mut buf).unwrap();
                    self.conns[i].2.extend_from_slice(&buf[..n]);
                    if self.conns[i].2 == self.conns[i].1 {
                        self.completed += 1;
                        self.stack.close(h).unwrap();
                    }
                }
                Event::Reset | Event::TimedOut => panic!("legitimate connection failed: {e:?}"),
                _ => {}
            }
        }
    }
}

impl Host for Client {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.receive(now, link);
        self.app(now);
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        let next_open = (self.opened < PER_CLIENT)
            .then(|| self.start + Duration::from_millis(10 * self.opened as u64));
        [self.stack.poll_at(), next_open]
            .into_iter()
            .flatten()
            .min()
    }
}

enum Node {
    Server(Server),
    Client(Client),
}

impl Host for Node {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        match self {
            Node::Server(s) => s.poll(now, link),
            Node::Client(c) => c.poll(now, link),
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        match self {
            Node::Server(s) => s.poll_at(),
            Node::Client(c) => c.poll_at(),
        }
    }
}

fn config(sim: &Simulation, node: usize) -> StackConfig {
    let mut secret = [7u8; 32];
    secret[0] = node as u8;
    StackConfig {
        mac: sim.mac(node),
        ips: vec![sim.ipv4(node)],
        max_connections: 2048,
        max_syn_recv: 4096,
        time_wait_capacity: 4096,
        secret,
        ..StackConfig::default()
    }
}

#[test]
fn syn_flood_of_a_million_spoofed_syns_does_not_stop_1000_clients() {
    let mut sim = Simulation::new(SimConfig {
        seed: 4987,
        nodes: 1 + CLIENT_NODES,
        link: LinkConfig::with_latency(Duration::from_micros(200)),
        memory_link: MemoryLinkConfig {
            max_frame_len: 1514,
            rx_frames: 4096,
            tx_frames: 4096,
        },
        ..SimConfig::default()
    });
    let server_addr = SocketAddrV4::new(sim.ipv4(0), PORT);
    let mut stack = Stack::new(
        StackConfig {
            syn_backlog: SYN_BACKLOG,
            syn_cookies: SynCookieMode::WhenFull,
            ..config(&sim, 0)
        },
        sim.now(),
    );
    let listener = stack.listen(server_addr).unwrap();
    let server = Server {
        stack,
        listener,
        rng: sim.rng().fork(),
        frame: vec![0u8; 1514],
        ip: sim.ipv4(0),
        mac: sim.mac(0),
        injected: 0,
        next_inject: Instant::ZERO,
        max_syn_queue: 0,
        max_connections: 0,
        echoed: 0,
    };
    let mut hosts = vec![Node::Server(server)];
    for n in 1..=CLIENT_NODES {
        let stack = Stack::new(config(&sim, n), sim.now());
        hosts.push(Node::Client(Client {
            stack,
            target: server_addr,
            // The clients start after the flood has filled the SYN queue and finish their
            // opens (10 ms apart) within the flood's second.
            start: Instant::from_millis(5 + n as u64),
            opened: 0,
            conns: Vec::new(),
            completed: 0,
        }));
    }
    let rss0 = rss_bytes();
    let wall = std::time::Instant::now();
    let done = sim.run_while(&mut hosts, Instant::from_secs(10), |h| {
        h[1..].iter().any(|n| match n {
            Node::Client(c) => c.completed < PER_CLIENT,
            Node::Server(_) => false,
        })
    });
    let elapsed = wall.elapsed();
    let growth = rss_bytes().saturating_sub(rss0);
    let Node::Server(server) = &hosts[0] else {
        unreachable!()
    };
    let completed: usize = hosts[1..]
        .iter()
        .map(|n| match n {
            Node::Client(c) => c.completed,
            Node::Server(_) => 0,
        })
        .sum();
    let client_syn_retransmits: u64 = hosts[1..]
        .iter()
        .map(|n| match n {
            Node::Client(c) => c.stack.counters().retransmits,
            Node::Server(_) => 0,
        })
        .sum();
    let c = server.stack.counters();
    println!(
        "flood: {} spoofed SYNs, {completed} clients completed by {:?} virtual, {elapsed:?} wall; \
         SYN queue max {}, connections max {}, RSS growth {:.1} MB",
        server.injected,
        sim.now(),
        server.max_syn_queue,
        server.max_connections,
        growth as f64 / 1e6
    );
    println!("server counters: {c:?}");
    for n in &hosts[1..] {
        if let Node::Client(cl) = n {
            for (h, req, got) in &cl.conns {
                if got != req {
                    let conn = cl.stack.connection(*h);
                    println!(
                        "stuck: {:?} state {:?} got {} of {} bytes; snd_una {:?} snd_nxt {:?} send_queue {:?}",
                        conn.map(|c| c.tuple()),
                        cl.stack.state(*h),
                        got.len(),
                        req.len(),
                        conn.map(|c| c.snd_una()),
                        conn.map(|c| c.snd_nxt()),
                        conn.map(|c| c.send_queue()),
                    );
                }
            }
        }
    }
    assert!(
        done.is_some(),
        "clients did not finish in 10 s of virtual time"
    );
    assert_eq!(
        completed,
        CLIENT_NODES * PER_CLIENT,
        "every legitimate client completes"
    );
    assert_eq!(server.echoed, CLIENT_NODES * PER_CLIENT);
    assert_eq!(server.injected, SPOOFED, "the whole flood went in");

    // Bounded: the SYN queue never exceeds its backlog, connections never exceed the
    // legitimate ones, memory barely moves.
    assert_eq!(server.max_syn_queue, SYN_BACKLOG);
    assert!(server.max_connections <= CLIENT_NODES * PER_CLIENT);
    assert!(growth < 64_000_000, "RSS grew by {growth} bytes");

    // Counters add up. No legitimate SYN was lost (clean links), so every SYN is one of the
    // flood's or one of the clients'.
    assert_eq!(client_syn_retransmits, 0);
    let legit = (CLIENT_NODES * PER_CLIENT) as u64;
    assert_eq!(c.syns_received, SPOOFED + legit);
    // The first SYN_BACKLOG spoofed SYNs took the queue and kept it; everything after got a
    // cookie, the legitimate clients included.
    assert_eq!(c.syn_recv as usize, SYN_BACKLOG);
    assert_eq!(c.syn_cookies_sent, c.syns_received - SYN_BACKLOG as u64);
    assert_eq!(c.syn_cookies_validated, legit);
    assert_eq!(c.syn_cookies_rejected, 0);
    assert_eq!(c.passive_opens, legit);
    // One SYN-ACK per SYN, plus the retries of the queued (spoofed) entries: at 1 s, 3 s, 7 s.
    assert_eq!(c.synacks_sent, c.syns_received + c.retransmits);
    assert!(c.retransmits >= SYN_BACKLOG as u64);
    assert_eq!(c.syn_queue_overflows, 0);
    assert_eq!(c.accept_queue_overflows, 0);
    assert_eq!(c.conn_table_full, 0);
    assert_eq!(
        c.tx_no_buffer, 0,
        "no reply was dropped for want of a TX frame"
    );
    assert_eq!(c.rx_dropped_malformed, 0);
}
