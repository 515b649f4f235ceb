//! `xtcp::rt` on the simulator (no root, no AF_XDP): an async echo server on a [`SimCore`]
//! against plain-stack clients, with loss; back-pressure from the send buffer; a connection
//! to a port with no listener.

use std::cell::Cell;
use std::net::SocketAddrV4;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{RtApp, SimCore, TcpListener, TcpStream, spawn_local};
use crate::link::memory::MemoryLink;
use crate::sim::{Host, LinkConfig, Simulation};
use crate::stack::{ConnHandle, Stack, StackConfig};
use crate::tcp::Event;
use crate::time::{Duration, Instant};

const PORT: u16 = 7;

fn stack_for(sim: &Simulation, node: usize) -> Stack {
    let mut secret = [0u8; 32];
    secret[0] = node as u8 + 1;
    Stack::new(
        StackConfig {
            mac: sim.mac(node),
            ips: vec![sim.ipv4(node)],
            secret,
            ..StackConfig::default()
        },
        sim.now(),
    )
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A plain-stack client: opens `payloads.len()` connections, sends each payload, half-closes,
/// and reads until the server closes (or, with `read_after`, reads nothing before that time).
struct Client {
    stack: Stack,
    server: SocketAddrV4,
    payloads: Vec<Vec<u8>>,
    conns: Vec<Option<ConnHandle>>,
    sent: Vec<usize>,
    shut: Vec<bool>,
    received: Vec<Vec<u8>>,
    done: Vec<bool>,
    reset: Vec<bool>,
    read_after: Instant,
    /// `read_after`, while it is still ahead.
    wake_at: Option<Instant>,
}

impl Client {
    fn new(stack: Stack, server: SocketAddrV4, payloads: Vec<Vec<u8>>) -> Client {
        let n = payloads.len();
        Client {
            stack,
            server,
            payloads,
            conns: vec![None; n],
            sent: vec![0; n],
            shut: vec![false; n],
            received: vec![Vec::new(); n],
            done: vec![false; n],
            reset: vec![false; n],
            read_after: Instant::ZERO,
            wake_at: None,
        }
    }

    fn finished(&self) -> bool {
        self.done.iter().zip(&self.reset).all(|(d, r)| *d || *r)
    }
}

impl Host for Client {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.receive(now, link);
        for i in 0..self.conns.len() {
            if self.conns[i].is_none() && !self.done[i] {
                self.conns[i] = Some(self.stack.connect(now, None, self.server).unwrap());
            }
        }
        while let Some((h, e)) = self.stack.poll_event() {
            let Some(i) = self.conns.iter().position(|c| *c == Some(h)) else {
                continue;
            };
            match e {
                Event::PeerClosed | Event::Closed if e == Event::Closed || self.shut[i] => {
                    self.done[i] = true;
                }
                Event::Reset | Event::TimedOut => self.reset[i] = true,
                _ => {}
            }
        }
        for i in 0..self.conns.len() {
            let Some(h) = self.conns[i] else { continue };
            if self.reset[i] {
                continue;
            }
            if self.sent[i] < self.payloads[i].len() {
                if let Ok(n) = self.stack.send(h, &self.payloads[i][self.sent[i]..]) {
                    self.sent[i] += n;
                }
            } else if !self.shut[i] && self.stack.shutdown(h).is_ok() {
                self.shut[i] = true;
            }
            if now >= self.read_after {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = self.stack.recv(h, &mut buf) {
                    self.received[i].extend_from_slice(&buf[..n]);
                }
            }
        }
        self.stack.flush(now, link);
        self.wake_at = (now < self.read_after).then_some(self.read_after);
    }

    fn poll_at(&self) -> Option<Instant> {
        match (self.stack.poll_at(), self.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn echo_server(sim: &Simulation) -> SimCore<RtApp> {
    let addr = SocketAddrV4::new(sim.ipv4(0), PORT);
    SimCore::new(
        stack_for(sim, 0),
        &[addr],
        RtApp::new(async {
            let listener = TcpListener::bind(([0, 0, 0, 0], PORT)).unwrap();
            while let Ok((mut s, _)) = listener.accept().await {
                spawn_local(async move {
                    let mut buf = [0u8; 3000];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                    s.shutdown().await.unwrap();
                });
            }
        }),
    )
    .unwrap()
}

fn run(sim: &mut Simulation, server: &mut SimCore<RtApp>, client: &mut Client, limit: Duration) {
    let end = sim.now() + limit;
    while !client.finished() {
        let more = sim.step(&mut [&mut *server as &mut dyn Host, &mut *client], end);
        assert!(more && sim.now() < end, "not finished by {end:?}");
    }
}

#[test]
fn async_echo_with_half_close_over_a_lossy_link() {
    let mut sim = Simulation::with_seed(7, 2);
    let mut link = LinkConfig::with_latency(Duration::from_micros(50));
    link.loss = 0.02;
    sim.set_link_both(0, 1, link);
    let mut server = echo_server(&sim);
    let payloads: Vec<Vec<u8>> = (0..8)
        .map(|i| pattern(i, 1 + i as usize * 40_000))
        .collect();
    let mut client = Client::new(
        stack_for(&sim, 1),
        SocketAddrV4::new(sim.ipv4(0), PORT),
        payloads.clone(),
    );
    run(&mut sim, &mut server, &mut client, Duration::from_secs(120));
    for (i, p) in payloads.iter().enumerate() {
        assert!(!client.reset[i], "connection {i} reset");
        assert_eq!(client.received[i].len(), p.len(), "connection {i} length");
        assert!(client.received[i] == *p, "connection {i} echo differs");
    }
    // Every task finished: the listener loop is the only one left.
    sim.run_for(
        &mut [&mut server as &mut dyn Host, &mut client],
        Duration::from_secs(5),
    );
    assert_eq!(server.app().tasks(), 1);
    assert!(
        sim.stats().lost > 0,
        "the link lost nothing: {:?}",
        sim.stats()
    );
}

#[test]
fn writes_wait_for_send_buffer_space_then_resume() {
    let mut sim = Simulation::with_seed(9, 2);
    sim.set_link_both(0, 1, LinkConfig::with_latency(Duration::from_micros(50)));
    // The server writes 2 MiB as soon as a connection arrives and records how far each
    // write_all got before the client starts reading at 1 s.
    const TOTAL: usize = 2 << 20;
    let progress = Rc::new(Cell::new(0usize));
    let p = progress.clone();
    let addr = SocketAddrV4::new(sim.ipv4(0), PORT);
    let mut server = SimCore::new(
        stack_for(&sim, 0),
        &[addr],
        RtApp::new(async move {
            let listener = TcpListener::bind(addr).unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            let data = pattern(99, TOTAL);
            for chunk in data.chunks(16 * 1024) {
                s.write_all(chunk).await.unwrap();
                p.set(p.get() + chunk.len());
            }
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
        }),
    )
    .unwrap();
    let mut client = Client::new(stack_for(&sim, 1), addr, vec![Vec::new()]);
    client.read_after = Instant::from_secs(1);
    sim.run_until(
        &mut [&mut server as &mut dyn Host, &mut client],
        Instant::from_millis(900),
    );
    let stalled = progress.get();
    let buffers = server.stack().config().tcp.send_buffer + client.stack.config().tcp.recv_buffer;
    assert!(stalled > 0, "nothing written");
    assert!(
        stalled <= buffers,
        "{stalled} bytes accepted while the peer read nothing (buffers {buffers})"
    );
    run(&mut sim, &mut server, &mut client, Duration::from_secs(30));
    assert_eq!(progress.get(), TOTAL);
    assert!(client.received[0] == pattern(99, TOTAL), "stream differs");
}

#[test]
fn a_port_without_listener_task_is_reset_and_accept_ends_when_unbound() {
    let mut sim = Simulation::with_seed(11, 2);
    sim.set_link_both(0, 1, LinkConfig::with_latency(Duration::from_micros(50)));
    let addr = SocketAddrV4::new(sim.ipv4(0), PORT);
    // The engine listens on the port, but the application never binds it.
    let mut server = SimCore::new(stack_for(&sim, 0), &[addr], RtApp::new(async {})).unwrap();
    let mut client = Client::new(stack_for(&sim, 1), addr, vec![b"hello".to_vec()]);
    run(&mut sim, &mut server, &mut client, Duration::from_secs(10));
    assert!(client.reset[0], "expected a reset");
    // One RtApp per thread (the executor and reactor are thread-locals).
    drop(server);

    // A second bind of the same port on one core fails; after the first is dropped it works.
    let outcome = Rc::new(Cell::new((false, false)));
    let o = outcome.clone();
    let mut server = SimCore::new(
        stack_for(&sim, 0),
        &[addr],
        RtApp::new(async move {
            let a = TcpListener::bind(addr).unwrap();
            let twice = TcpListener::bind(addr).is_err();
            drop(a);
            o.set((twice, TcpListener::bind(addr).is_ok()));
        }),
    )
    .unwrap();
    sim.run_for(
        &mut [&mut server as &mut dyn Host],
        Duration::from_millis(1),
    );
    assert_eq!(outcome.get(), (true, true));
    let _ = TcpStream::connect; // the active-open path is covered by the veth tests
}
