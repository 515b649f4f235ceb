//! Whole stacks in the simulator: node stacks ([`stack_for`]), deterministic payload
//! streams checked where they land, and [`Bulk`], a host that moves a stream each way.
//! Both are generic over the address family ([`Family`]): `Bulk` and [`stack_for`] are the
//! IPv4 ones, `Bulk<Ipv6Addr>` and `stack_for_family::<Ipv6Addr>` the IPv6 ones.

use crate::family::Family;
use xtcp::link::memory::MemoryLink;
use xtcp::sim::{Host, Simulation};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig};
use xtcp::tcp::{Event, TcpConfig};
use xtcp::time::Instant;
use xtcp::wire::{Ipv4Addr, Ipv6Addr};

/// Node `node`'s stack configuration with `tcp` settings: its simulator MAC and addresses
/// (IPv4 and IPv6, [`Family::node`]), a per-node secret, small tables.
pub fn node_config(sim: &Simulation, node: usize, tcp: TcpConfig) -> StackConfig {
    let mut secret = [0u8; 32];
    secret[0] = node as u8 + 1;
    secret[1] = 0x77;
    StackConfig {
        mac: sim.mac(node),
        ips: vec![sim.ipv4(node)],
        ips6: vec![Ipv6Addr::node(node)],
        tcp,
        time_wait_capacity: 1 << 12,
        max_connections: 64,
        max_syn_recv: 64,
        secret,
        ..StackConfig::default()
    }
}

/// Builds node `node`'s stack ([`node_config`]) with every other node as a known neighbour.
pub fn stack_for(sim: &Simulation, node: usize, tcp: TcpConfig) -> Stack {
    stack_for_family::<Ipv4Addr>(sim, node, tcp)
}

/// [`stack_for`] in family `A`.
pub fn stack_for_family<A: Family>(sim: &Simulation, node: usize, tcp: TcpConfig) -> Stack<A> {
    let cfg = node_config(sim, node, tcp);
    let mut stack = Stack::<A>::with_family(cfg, sim.now());
    // Neighbours are known: ARP has no checksum, so a corrupted ARP frame (the simulator
    // corrupts past the Ethernet header, where a real FCS would have caught it) would test
    // ARP, not TCP.
    for other in 0..sim.node_count() {
        if other != node {
            stack.add_neighbor(A::node(other), sim.mac(other));
        }
    }
    stack
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Byte `i` of the payload stream `seed`: generated, never stored, so 10 MiB transfers cost
/// no memory and the receiver checks every byte where it lands.
#[inline]
pub fn stream_byte(seed: u64, i: usize) -> u8 {
    (splitmix(seed ^ (i as u64 >> 3).wrapping_mul(0x2545_f491_4f6c_dd1d)) >> ((i & 7) * 8)) as u8
}

/// Fills `buf` with stream bytes `from..from + buf.len()`.
pub fn fill_stream(seed: u64, from: usize, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = stream_byte(seed, from + k);
    }
}

/// A streaming 64-bit FNV-1a over received bytes (chunking does not change it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHash(pub u64);

impl Default for StreamHash {
    fn default() -> Self {
        StreamHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StreamHash {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The hash of stream `seed`'s first `len` bytes.
pub fn expected_hash(seed: u64, len: usize) -> StreamHash {
    let mut h = StreamHash::default();
    let mut buf = [0u8; 4096];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len());
        fill_stream(seed, done, &mut buf[..n]);
        h.update(&buf[..n]);
        done += n;
    }
    h
}

/// One connection's worth of application: sends `send_len` bytes of stream `send_seed`,
/// reads everything (at most `read_budget` bytes per poll), half-closes when done sending and
/// closes once the peer has closed and everything was read.
pub struct Bulk<A: Family = Ipv4Addr> {
    pub stack: Stack<A>,
    pub listener: Option<ListenerId>,
    pub connect_to: Option<A::SocketAddr>,
    pub conns: Vec<Flow>,
    /// How many connections to open (client) or expect (server).
    pub flows: usize,
    pub send_len: usize,
    pub send_seed: u64,
    /// Stream seed of what the peer sends on flow `i`: `peer_seed + i`.
    pub peer_seed: u64,
    pub read_budget: usize,
    /// Bytes received on every flow, for throughput measurement.
    pub received_total: u64,
    /// A slow reader (budget exhausted with data left) reads again 1 ms later.
    next_read: Option<Instant>,
    scratch: Vec<u8>,
}

/// One connection of a [`Bulk`] host.
pub struct Flow {
    pub handle: ConnHandle,
    pub index: usize,
    pub sent: usize,
    pub received: usize,
    pub hash: StreamHash,
    /// First received byte that differed from the expected stream, if any.
    pub mismatch: Option<usize>,
    pub shut: bool,
    pub peer_closed: bool,
    /// The application called close().
    pub closed: bool,
    /// The `Closed` event arrived.
    pub finished: bool,
    pub events: Vec<Event>,
}

impl<A: Family> Bulk<A> {
    pub fn new(stack: Stack<A>, send_len: usize, send_seed: u64, peer_seed: u64) -> Bulk<A> {
        Bulk {
            stack,
            listener: None,
            connect_to: None,
            conns: Vec::new(),
            flows: 1,
            send_len,
            send_seed,
            peer_seed,
            read_budget: usize::MAX,
            received_total: 0,
            next_read: None,
            scratch: vec![0u8; 64 * 1024],
        }
    }

    /// Every flow opened, finished both ways (its `Closed` event seen) and read to the end
    /// (the stack released it).
    pub fn done(&self) -> bool {
        self.conns.len() == self.flows
            && self
                .conns
                .iter()
                .all(|f| f.finished && self.stack.state(f.handle).is_none())
    }

    fn app(&mut self, now: Instant) {
        self.next_read = None;
        if let Some(addr) = self.connect_to {
            while self.conns.len() < self.flows {
                let h = self.stack.connect(now, None, addr).expect("connect");
                let index = self.conns.len();
                self.conns.push(Flow::new(h, index));
            }
        }
        if let Some(l) = self.listener {
            while let Some(h) = self.stack.accept(l) {
                let index = self.conns.len();
                self.conns.push(Flow::new(h, index));
            }
        }
        while let Some((h, e)) = self.stack.poll_event() {
            if let Some(f) = self.conns.iter_mut().find(|f| f.handle == h) {
                f.events.push(e);
                match e {
                    Event::PeerClosed => f.peer_closed = true,
                    // Both FINs exchanged: the connection is finished (TIME-WAIT or CLOSED)
                    // even if the application never called close().
                    Event::Closed => f.finished = true,
                    _ => {}
                }
            }
        }
        for f in &mut self.conns {
            let h = f.handle;
            if self.stack.state(h).is_none() {
                continue;
            }
            let mut budget = self.read_budget;
            while budget > 0 {
                let want = budget.min(self.scratch.len());
                match self.stack.recv(h, &mut self.scratch[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = &self.scratch[..n];
                        if f.mismatch.is_none() {
                            let seed = self.peer_seed + f.index as u64;
                            if let Some(k) =
                                (0..n).find(|&k| data[k] != stream_byte(seed, f.received + k))
                            {
                                f.mismatch = Some(f.received + k);
                            }
                        }
                        f.hash.update(data);
                        f.received += n;
                        self.received_total += n as u64;
                        budget -= n;
                    }
                }
            }
            while f.sent < self.send_len {
                // Generate only what the send buffer can take now.
                let room = self.stack.connection(h).map_or(0, |c| c.send_capacity());
                let n = (self.send_len - f.sent).min(self.scratch.len()).min(room);
                if n == 0 {
                    break;
                }
                fill_stream(
                    self.send_seed + f.index as u64,
                    f.sent,
                    &mut self.scratch[..n],
                );
                match self.stack.send(h, &self.scratch[..n]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => f.sent += k,
                }
            }
            if f.sent == self.send_len && !f.shut && !f.finished {
                f.shut = true;
                self.stack.shutdown(h).expect("shutdown");
            }
            let drained = self
                .stack
                .connection(h)
                .is_some_and(|c| c.recv_queue() == 0);
            if !drained && budget == 0 {
                self.next_read = Some(now + xtcp::time::Duration::from_millis(1));
            }
            if f.shut && f.peer_closed && drained && !f.closed && !f.finished {
                f.closed = true;
                self.stack.close(h).expect("close");
            }
        }
    }
}

impl Flow {
    fn new(handle: ConnHandle, index: usize) -> Flow {
        Flow {
            handle,
            index,
            sent: 0,
            received: 0,
            hash: StreamHash::default(),
            mismatch: None,
            shut: false,
            peer_closed: false,
            closed: false,
            finished: false,
            events: Vec::new(),
        }
    }
}

impl<A: Family> Host for Bulk<A> {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        self.app(now);
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        match (self.stack.poll_at(), self.next_read) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
