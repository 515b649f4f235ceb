//! Whole stacks over the deterministic simulator: bulk transfer both ways, sequential
//! connections, RSTs to closed ports, ARP resolution.

use std::net::SocketAddrV4;

use xtcp::link::memory::MemoryLink;
use xtcp::sim::{Host, LinkConfig, SimConfig, Simulation};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig};
use xtcp::tcp::{Event, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp_testkit::bulk::{self as kit, Bulk};

const PORT: u16 = 7;

/// A node stack that resolves its neighbours with ARP, with room for the churn test.
fn arp_stack(sim: &Simulation, node: usize) -> Stack {
    let cfg = StackConfig {
        time_wait_capacity: 1 << 16,
        max_connections: 4096,
        max_syn_recv: 4096,
        ..kit::node_config(sim, node, TcpConfig::default())
    };
    Stack::new(cfg, sim.now())
}

#[test]
fn one_mib_each_way_arrives_byte_exact() {
    let mut sim = Simulation::new(SimConfig {
        seed: 42,
        capture: true,
        link: LinkConfig::with_latency(Duration::from_micros(500)),
        ..SimConfig::default()
    });
    let (seed_a, seed_b, len) = (0xa11ce, 0xb0b, 1 << 20);
    let server_addr = SocketAddrV4::new(sim.ipv4(1), PORT);
    let mut client = Bulk::new(
        kit::stack_for(&sim, 0, TcpConfig::default()),
        len,
        seed_a,
        seed_b,
    );
    client.connect_to = Some(server_addr);
    let mut server = Bulk::new(
        kit::stack_for(&sim, 1, TcpConfig::default()),
        len,
        seed_b,
        seed_a,
    );
    server.listener = Some(server.stack.listen(server_addr).unwrap());
    let mut hosts = [client, server];
    let end = sim.run_while(&mut hosts, Instant::from_secs(60), |h| {
        !(h[0].done() && h[1].done())
    });
    let [client, server] = &hosts;
    if end.is_none() {
        let dump = sim.dump();
        let tail: Vec<&str> = dump.lines().rev().take(40).collect();
        panic!(
            "transfer did not finish in 60 s of virtual time; last frames:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    for (host, peer_seed) in [(client, seed_b), (server, seed_a)] {
        let f = &host.conns[0];
        assert_eq!(f.mismatch, None);
        assert_eq!(f.received, len);
        assert_eq!(f.hash, kit::expected_hash(peer_seed, len));
        assert!(f.events.contains(&Event::Connected));
    }
    // Both half-closed, then closed: simultaneous-ish close. Whoever sent FIN first and got
    // the other's FIN later sits in TIME-WAIT; at least one side must.
    let tw = client.stack.time_wait_table().len() + server.stack.time_wait_table().len();
    assert!(tw >= 1, "someone holds TIME-WAIT");
    assert_eq!(client.stack.counters().rx_dropped_malformed, 0);
}

/// Client: opens `total` connections one after another, closes each as soon as it is
/// established. Server: accepts and closes when the client's FIN arrives.
struct Churn {
    stack: Stack,
    listener: Option<ListenerId>,
    target: Option<SocketAddrV4>,
    total: usize,
    opened: usize,
    current: Option<ConnHandle>,
    finished: usize,
}

impl Churn {
    fn app(&mut self, now: Instant) {
        if let Some(l) = self.listener {
            while self.stack.accept(l).is_some() {}
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Connected if self.target.is_some() => self.stack.close(h).unwrap(),
                Event::PeerClosed if self.listener.is_some() => self.stack.close(h).unwrap(),
                Event::Closed => self.finished += 1,
                Event::Reset | Event::TimedOut => panic!("unexpected {e:?}"),
                _ => {}
            }
        }
        if let Some(t) = self.target {
            let idle = self.current.is_none_or(|h| {
                self.stack.state(h).is_none()
                    || self.stack.state(h) == Some(State::FinWait2)
                    || self.stack.state(h) == Some(State::TimeWait)
            });
            if idle && self.opened < self.total && self.finished == self.opened {
                self.current = Some(self.stack.connect(now, None, t).unwrap());
                self.opened += 1;
            }
        }
    }
}

impl Host for Churn {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        self.app(now);
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

#[test]
fn hundred_sequential_connections_end_closed_or_time_wait() {
    let mut sim = Simulation::new(SimConfig {
        seed: 7,
        capture: true,
        ..SimConfig::default()
    });
    let server_addr = SocketAddrV4::new(sim.ipv4(1), 80);
    let client = Churn {
        stack: arp_stack(&sim, 0),
        listener: None,
        target: Some(server_addr),
        total: 100,
        opened: 0,
        current: None,
        finished: 0,
    };
    let mut server_stack = arp_stack(&sim, 1);
    let l = server_stack.listen(server_addr).unwrap();
    let server = Churn {
        stack: server_stack,
        listener: Some(l),
        target: None,
        total: 0,
        opened: 0,
        current: None,
        finished: 0,
    };
    let mut hosts = [client, server];
    let done = sim.run_while(&mut hosts, Instant::from_secs(30), |h| {
        h[0].finished < 100 || h[1].finished < 100
    });
    if done.is_none() {
        panic!("not finished; capture:\n{}", sim.dump());
    }
    let [client, server] = &hosts;
    // The client closed first: every connection sits in its TIME-WAIT table; the server's
    // are all CLOSED (LAST-ACK → CLOSED) and gone.
    assert_eq!(client.stack.time_wait_table().len(), 100);
    assert_eq!(client.stack.connection_count(), 0);
    assert_eq!(server.stack.connection_count(), 0);
    assert_eq!(server.stack.time_wait_table().len(), 0);
    let cc = client.stack.counters();
    let sc = server.stack.counters();
    assert_eq!(cc.active_opens, 100);
    assert_eq!(sc.passive_opens, 100);
    assert_eq!(sc.syns_received, 100);
    assert_eq!(cc.time_wait_inserts, 100);
    assert_eq!(sc.established, 0);
    assert_eq!(
        cc.retransmits + sc.retransmits,
        0,
        "clean link: no retransmission"
    );
    // 7 frames per lifecycle (SYN, SYN-ACK, ACK, FIN, ACK, FIN, ACK) plus ARP.
    let frames = sim.capture().len();
    assert!((700..=704).contains(&frames), "{frames} frames");
    // TIME-WAIT expires after 2 MSL (60 s): run on, all entries go.
    sim.run_for(&mut hosts, Duration::from_secs(61));
    assert_eq!(hosts[0].stack.time_wait_table().len(), 0);
    assert_eq!(hosts[0].stack.counters().time_wait_expiries, 100);
}

/// A host that does nothing but poll its stack.
struct Plain(Stack);

impl Host for Plain {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.0.poll(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.0.poll_at()
    }
}

#[test]
fn syn_to_a_closed_port_is_refused_with_rst() {
    let mut sim = Simulation::new(SimConfig {
        seed: 3,
        capture: true,
        ..SimConfig::default()
    });
    let mut a = Plain(arp_stack(&sim, 0));
    let b = Plain(arp_stack(&sim, 1));
    let h =
        a.0.connect(sim.now(), None, SocketAddrV4::new(sim.ipv4(1), 9999))
            .unwrap();
    let mut hosts = [a, b];
    sim.run_for(&mut hosts, Duration::from_millis(100));
    assert_eq!(hosts[0].0.state(h), None, "connection refused and freed");
    let ev: Vec<_> = std::iter::from_fn(|| hosts[0].0.poll_event()).collect();
    assert_eq!(ev, [(h, Event::Reset), (h, Event::Closed)]);
    assert_eq!(hosts[1].0.counters().resets_sent, 1);
    let dump = sim.dump();
    assert!(dump.contains("Flags [R.], seq 0"), "{dump}");
}

#[test]
fn unanswered_arp_is_retried_then_the_connection_times_out() {
    // Node 1 has no host: its RX queue swallows the ARP requests and nobody answers.
    let mut sim = Simulation::new(SimConfig {
        seed: 5,
        capture: true,
        ..SimConfig::default()
    });
    let mut a = Plain(arp_stack(&sim, 0));
    let h =
        a.0.connect(sim.now(), None, SocketAddrV4::new(sim.ipv4(1), 80))
            .unwrap();
    let mut hosts = [a];
    sim.run_for(&mut hosts, Duration::from_secs(10));
    let requests = sim
        .capture()
        .iter()
        .filter(|c| c.line().contains("ARP who-has 10.0.0.2"))
        .count();
    assert_eq!(
        requests,
        3,
        "three ARP requests, one a second:\n{}",
        sim.dump()
    );
    assert_eq!(hosts[0].0.state(h), None);
    let ev: Vec<_> = std::iter::from_fn(|| hosts[0].0.poll_event()).collect();
    assert_eq!(ev, [(h, Event::TimedOut), (h, Event::Closed)]);
    assert_eq!(hosts[0].0.counters().timeouts, 1);
    assert_eq!(hosts[0].0.poll_at(), None, "nothing left to do");
}

#[test]
fn segments_for_addresses_we_do_not_own_are_counted_and_dropped() {
    use xtcp::wire::{EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, emit_tcp_frame};
    let mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
    let peer = EthernetAddress([2, 0, 0, 0, 0, 1]);
    // Unsorted on purpose: the stack must find any of them.
    let ips: Vec<Ipv4Addr> = [200, 2, 50, 7]
        .iter()
        .map(|&i| Ipv4Addr::new(10, 0, 0, i))
        .collect();
    let mut stack = Stack::new(
        StackConfig {
            mac,
            ips: ips.clone(),
            time_wait_capacity: 1024,
            max_connections: 64,
            max_syn_recv: 64,
            ..StackConfig::default()
        },
        Instant::ZERO,
    );
    stack
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80))
        .unwrap();
    let mut link = MemoryLink::default();
    let syn_to = |dst: Ipv4Addr, port: u16| {
        let syn = TcpRepr {
            src_port: port,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: SeqNumber(1),
            window_len: 1000,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        };
        let mut buf = [0u8; 128];
        let n = emit_tcp_frame(&mut buf, peer, mac, Ipv4Addr::new(10, 0, 0, 1), dst, &syn).unwrap();
        buf[..n].to_vec()
    };
    link.push_rx(&syn_to(Ipv4Addr::new(10, 0, 0, 99), 1000));
    stack.poll(Instant::ZERO, &mut link);
    assert_eq!(link.tx_len(), 0, "no answer for an address we do not own");
    assert_eq!(stack.counters().rx_not_ours, 1);
    for (i, ip) in ips.iter().enumerate() {
        link.push_rx(&syn_to(*ip, 2000 + i as u16));
    }
    stack.poll(Instant::ZERO, &mut link);
    assert_eq!(
        link.tx_len(),
        ips.len(),
        "a SYN-ACK from every address we own"
    );
    assert_eq!(stack.counters().synacks_sent, ips.len() as u64);
    assert_eq!(stack.counters().rx_not_ours, 1);
}
