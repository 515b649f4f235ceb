//! The exact-segment harness: a client connection (A) and a server [`Stack`] (B) with a
//! listener, and the test in between deciding which segment is delivered, lost, reordered or
//! forged, and when time advances.
//!
//! B is the production passive open: its SYNs go through the listener, the SYN queue (or SYN
//! cookies with [`PairConfig::cookies`]) and `Connection::from_handshake`, exactly as the
//! engine runs them; B's connections end in the stack's compact TIME-WAIT table. A is a
//! `Connection` built by `Connection::connect`, the constructor `Stack::connect` uses, driven
//! by hand so a test sees each of its segments before it leaves.
//!
//! Call order: `out_a`/`out_b` collect what a side sends now (B: `Stack::flush`);
//! `deliver_a`/`deliver_b` hand a segment over (B: `Stack::receive`, then the listener's
//! accept queue is emptied so B's connection has a handle); `advance` moves virtual time and
//! runs both sides' timers. B's application events are kept in order for `b_events`.
//!
//! The pair runs over IPv4 (`Pair`, `Pair::new`) or IPv6 (`Pair<Ipv6Addr>`, `Pair::new_v6`):
//! A is [`Family::node`] 0, B node 1, in both families.

use crate::family::Family;
use crate::seg::Seg;
use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig, SynCookieMode};
use xtcp::tcp::{Connection, Counters, Event, FourTuple, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{EthernetAddress, Ipv4Addr, Ipv6Addr, SeqNumber, TcpControl};

pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const A_PORT: u16 = 40000;
pub const B_PORT: u16 = 80;
pub const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
pub const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// A's 4-tuple (A local).
pub fn tuple_a() -> FourTuple {
    tuple_a_of()
}

/// B's 4-tuple (B local).
pub fn tuple_b() -> FourTuple {
    tuple_a().reversed()
}

/// A's 4-tuple (A local) in family `A`.
pub fn tuple_a_of<A: Family>() -> FourTuple<A> {
    FourTuple {
        local_addr: A::node(0),
        remote_addr: A::node(1),
        local_port: A_PORT,
        remote_port: B_PORT,
    }
}

/// B's 4-tuple (B local) in family `A`.
pub fn tuple_b_of<A: Family>() -> FourTuple<A> {
    tuple_a_of::<A>().reversed()
}

/// No options: segment sizes are exactly the MSS, no timestamps.
pub fn plain_cfg() -> TcpConfig {
    TcpConfig {
        timestamps: false,
        sack: false,
        window_scaling: false,
        ..TcpConfig::default()
    }
}

/// How a [`Pair`] starts.
#[derive(Debug, Clone, Copy)]
pub struct PairConfig {
    pub cfg_a: TcpConfig,
    pub cfg_b: TcpConfig,
    /// A's ISN. Default 1000.
    pub a_iss: u32,
    /// B's ISN (ignored with cookies: the cookie is the ISN). Default 5000.
    pub b_iss: u32,
    /// A's and B's timestamp clock offsets. Default 0 and 0.
    pub ts_a: u32,
    pub ts_b: u32,
    /// Virtual time at the start. Default `Instant::ZERO`.
    pub start: Instant,
    /// B answers every SYN with a SYN cookie (`SynCookieMode::Always`). Default false.
    pub cookies: bool,
}

impl PairConfig {
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig) -> PairConfig {
        PairConfig {
            cfg_a,
            cfg_b,
            a_iss: 1000,
            b_iss: 5000,
            ts_a: 0,
            ts_b: 0,
            start: Instant::ZERO,
            cookies: false,
        }
    }
}

/// See the module docs.
pub struct Pair<A: Family = Ipv4Addr> {
    /// The client.
    pub a: Connection<A>,
    /// The server's stack and its link.
    pub stack: Stack<A>,
    pub link: MemoryLink,
    pub listener: ListenerId,
    /// B's connection, once the listener handed it over.
    pub hb: Option<ConnHandle>,
    pub now: Instant,
    /// A's counters (B's are `stack.counters()`).
    pub counters: Counters,
    pub a_iss: u32,
    /// B's ISN: as configured, or (cookies) as read off B's SYN-ACK.
    pub b_iss: u32,
    b_events: Vec<Event>,
    /// B has seen a SYN (so "nothing for the tuple" reads CLOSED, not LISTEN).
    b_opened: bool,
    frame: Vec<u8>,
}

impl Pair {
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig) -> Pair {
        Pair::with(PairConfig::new(cfg_a, cfg_b))
    }

    pub fn with(pc: PairConfig) -> Pair {
        Pair::with_family(pc)
    }
}

impl Pair<Ipv6Addr> {
    pub fn new_v6(cfg_a: TcpConfig, cfg_b: TcpConfig) -> Pair<Ipv6Addr> {
        Pair::with_family(PairConfig::new(cfg_a, cfg_b))
    }
}

impl<A: Family> Pair<A> {
    /// A pair over family `A` (what `with` and `new_v6` call).
    pub fn with_family(pc: PairConfig) -> Pair<A> {
        let now = pc.start;
        let a = Connection::connect(
            &pc.cfg_a,
            tuple_a_of::<A>(),
            SeqNumber(pc.a_iss),
            pc.ts_a,
            now,
        );
        let cfg = StackConfig {
            mac: B_MAC,
            ips: vec![B_IP],
            ips6: vec![Ipv6Addr::node(1)],
            tcp: pc.cfg_b,
            max_connections: 64,
            max_syn_recv: 64,
            time_wait_capacity: 64,
            syn_cookies: if pc.cookies {
                SynCookieMode::Always
            } else {
                SynCookieMode::WhenFull
            },
            arp: false,
            secret: *b"exact-segment-tests-secret-32-by",
            ..StackConfig::default()
        };
        let mut stack = Stack::<A>::with_family(cfg, now);
        stack.add_neighbor(A::node(0), A_MAC);
        stack.set_next_isn(SeqNumber(pc.b_iss), pc.ts_b);
        let listener = stack
            .listen(A::socket_addr(A::node(1), B_PORT))
            .expect("listen");
        Pair {
            a,
            stack,
            link: MemoryLink::new(MemoryLinkConfig::default()),
            listener,
            hb: None,
            now,
            counters: Counters::default(),
            a_iss: pc.a_iss,
            b_iss: pc.b_iss,
            b_events: Vec::new(),
            b_opened: false,
            frame: vec![0u8; 2048],
        }
    }

    /// A's sequence number of data byte `i` (0-based).
    pub fn a_seq(&self, i: u32) -> u32 {
        self.a_iss.wrapping_add(1).wrapping_add(i)
    }

    /// B's sequence number of data byte `i` (0-based).
    pub fn b_seq(&self, i: u32) -> u32 {
        self.b_iss.wrapping_add(1).wrapping_add(i)
    }

    /// B's connection (after the handshake).
    pub fn b(&self) -> &Connection<A> {
        let h = self.hb.expect("B has a connection");
        self.stack.connection(h).expect("B's connection is live")
    }

    pub fn hb(&self) -> ConnHandle {
        self.hb.expect("B has a connection")
    }

    /// Everything A sends now.
    pub fn out_a(&mut self) -> Vec<Seg> {
        let mut v = Vec::new();
        while let Some(r) = self.a.poll_transmit(self.now, &mut self.counters) {
            v.push(Seg::from_repr(&r));
        }
        v
    }

    /// Everything B sends now (`Stack::flush`).
    pub fn out_b(&mut self) -> Vec<Seg> {
        self.stack.flush(self.now, &mut self.link);
        let mut v = Vec::new();
        self.link.drain_tx(|f| v.push(Seg::from_frame_of::<A>(f)));
        for s in &v {
            assert_eq!(
                (s.dst, s.dst_mac, s.dst_port),
                (A::node(0).into(), A_MAC, A_PORT),
                "B sends to A"
            );
            if s.control == TcpControl::Syn && s.ack.is_some() {
                self.b_iss = s.seq;
            }
        }
        self.take_b_events();
        v
    }

    pub fn deliver_a(&mut self, s: &Seg) {
        self.a
            .handle_segment(self.now, &s.repr(), &mut self.counters);
    }

    pub fn deliver_a_all(&mut self, v: &[Seg]) {
        for s in v {
            self.deliver_a(s);
        }
    }

    /// Hands `s` to B as a frame from A (`Stack::receive`).
    pub fn deliver_b(&mut self, s: &Seg) {
        self.inject_b(s);
        self.receive_b();
    }

    pub fn deliver_b_all(&mut self, v: &[Seg]) {
        for s in v {
            self.inject_b(s);
        }
        self.receive_b();
    }

    fn inject_b(&mut self, s: &Seg) {
        if s.control == TcpControl::Syn {
            self.b_opened = true;
        }
        let len = A::emit_frame(
            &mut self.frame,
            None,
            A_MAC,
            B_MAC,
            A::node(0),
            A::node(1),
            &s.repr(),
        )
        .expect("segment fits a frame");
        assert!(self.link.push_rx(&self.frame[..len]), "B's RX queue full");
    }

    fn receive_b(&mut self) {
        loop {
            self.stack.receive(self.now, &mut self.link);
            if self.link.rx_len() == 0 {
                break;
            }
        }
        if self.hb.is_none()
            && let Some(h) = self.stack.accept(self.listener)
        {
            self.hb = Some(h);
        }
        self.take_b_events();
    }

    fn take_b_events(&mut self) {
        while let Some((h, e)) = self.stack.poll_event() {
            if Some(h) == self.hb {
                self.b_events.push(e);
            }
        }
    }

    /// B's application events since the last call.
    pub fn b_events(&mut self) -> Vec<Event> {
        self.take_b_events();
        core::mem::take(&mut self.b_events)
    }

    /// A's application events.
    pub fn a_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.a.poll_event()).collect()
    }

    /// B's state as `ss` shows it: LISTEN before any SYN, CLOSED once nothing holds the
    /// tuple any more.
    pub fn b_state(&self) -> State {
        match self.stack.state_of(&tuple_b_of::<A>()) {
            Some(s) => s,
            None if self.b_opened => State::Closed,
            None => State::Listen,
        }
    }

    pub fn states(&self) -> (State, State) {
        (self.a.state(), self.b_state())
    }

    /// Moves virtual time on by `d` and runs both sides' timers.
    pub fn advance(&mut self, d: Duration) {
        self.at(self.now + d);
    }

    /// Moves virtual time to `t` and runs both sides' timers.
    pub fn at(&mut self, t: Instant) {
        self.now = t;
        self.a.handle_timeout(t, &mut self.counters);
        self.receive_b();
    }

    /// B's application: queue data.
    pub fn b_send(&mut self, data: &[u8]) -> usize {
        self.stack.send(self.hb(), data).expect("B send")
    }

    /// B's application: read into `buf`.
    pub fn b_recv(&mut self, buf: &mut [u8]) -> usize {
        self.stack.recv(self.hb(), buf).expect("B recv")
    }

    /// B's application: everything readable, as a vector.
    pub fn b_read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.b_recv(&mut buf);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    pub fn close_b(&mut self) -> Result<(), xtcp::stack::StackError> {
        self.stack.close(self.hb())
    }

    pub fn shutdown_b(&mut self) -> Result<(), xtcp::stack::StackError> {
        self.stack.shutdown(self.hb())
    }

    /// Runs the three-way handshake, checking every segment (with cookies, B's ISN is
    /// whatever the cookie is).
    pub fn handshake(&mut self) {
        let a_iss = self.a_iss;
        let syn = self.out_a();
        assert_eq!(keys(&syn), [k("S", a_iss, None, 0)]);
        assert_eq!(self.states(), (State::SynSent, State::Listen));
        self.deliver_b(&syn[0]);
        let queued = if self.stack.config().syn_cookies == SynCookieMode::Always {
            State::Closed // a cookie keeps no state
        } else {
            State::SynReceived
        };
        assert_eq!(self.states(), (State::SynSent, queued));
        let synack = self.out_b();
        assert_eq!(
            keys(&synack),
            [k("S.", self.b_iss, Some(a_iss.wrapping_add(1)), 0)]
        );
        self.deliver_a(&synack[0]);
        assert_eq!(self.states(), (State::Established, queued));
        let ack = self.out_a();
        assert_eq!(
            keys(&ack),
            [k(
                ".",
                a_iss.wrapping_add(1),
                Some(self.b_iss.wrapping_add(1)),
                0
            )]
        );
        self.deliver_b(&ack[0]);
        assert_eq!(self.states(), (State::Established, State::Established));
    }

    /// Delivers everything each side sends to the other until both are quiet.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let from_a = self.out_a();
            let from_b = self.out_b();
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            self.deliver_b_all(&from_a);
            self.deliver_a_all(&from_b);
        }
        panic!("pump: the pair never went quiet");
    }
}

use crate::seg::{k, keys};
