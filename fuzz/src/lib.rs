//! Fuzzing harnesses for xtcp: what untrusted bytes reach.
//!
//! - [`wire`]: every wire parser (Ethernet, ARP, IPv4, ICMPv4, TCP header and options, the
//!   whole-frame parser and the diagnostic describer), with parse → emit → parse round trips
//!   where the format allows.
//! - [`Harness`]: the production receive path. A [`Stack`] listens on port 80
//!   ([`Stack::listen`]), completes [`PASSIVE`] handshakes with a peer model and one active
//!   open ([`Stack::connect`]), then runs the fuzz input as a sequence of records: raw frames,
//!   peer segments built against the live connections' sequence numbers (so they get past
//!   the checksum and into the state machine), clock jumps and application calls. After every
//!   record [`Harness::check`] asserts the invariants: every frame the link handed out is
//!   counted once, every frame the stack sent parses with valid checksums from our
//!   addresses, no connection is in an impossible state, no table exceeds its bound.
//!
//! Addresses are the simulator's (node 1 is the stack, node 0 the peer), so frames captured
//! by the simulator replay against the harness: that is how the corpora are seeded
//! ([`seeds`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig};
use xtcp::tcp::{Event, State};
use xtcp::time::{Duration, Instant};
use xtcp::wire::EthernetAddress;
use xtcp::wire::frame::{emit_tcp_frame, parse_tcp_frame};
use xtcp::wire::tcp::{SeqNumber, TcpControl, TcpRepr, TcpTimestamp};

pub mod wire;

/// The stack's addresses (simulator node 1).
pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer's addresses (simulator node 0).
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The listening port.
pub const PORT: u16 = 80;
/// Connections the harness establishes through the listener before the input runs.
pub const PASSIVE: usize = 3;
/// Port the active open connects to.
pub const ACTIVE_PORT: u16 = 9;

/// What the peer knows of one connection, learned from the stack's segments.
#[derive(Debug, Clone)]
struct Peer {
    /// The peer's port; the stack's is `local`.
    port: u16,
    local: u16,
    /// Next sequence number the peer sends.
    seq: SeqNumber,
    /// The stack's next sequence number, as last seen (what the peer acknowledges).
    ack: SeqNumber,
    /// Our last TSval and the stack's last one (to echo).
    tsval: u32,
    ts_recent: u32,
}

/// The stack under test and its peer model. See the module docs.
pub struct Harness {
    pub stack: Stack,
    pub link: MemoryLink,
    pub now: Instant,
    listener: ListenerId,
    /// Connections the application holds: (handle, passive).
    handles: Vec<(ConnHandle, bool)>,
    peers: Vec<Peer>,
    /// Frames the link accepted for the stack.
    pushed: u64,
    /// Frames the stack sent, as seen by the peer.
    sent: u64,
    scratch: Vec<u8>,
}

/// The stack's configuration: small tables so that limits are reachable.
pub fn config() -> StackConfig {
    let mut secret = [0u8; 32];
    secret[0] = 2;
    let mut cfg = StackConfig {
        mac: OUR_MAC,
        ips: vec![OUR_IP],
        max_connections: 16,
        max_syn_recv: 8,
        time_wait_capacity: 16,
        syn_backlog: 4,
        accept_backlog: 4,
        max_orphans: 8,
        ephemeral_ports: 33000..=33063,
        rx_batch: 64,
        arp: false,
        secret,
        ..StackConfig::default()
    };
    cfg.tcp.send_buffer = 16 * 1024;
    cfg.tcp.recv_buffer = 16 * 1024;
    cfg
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Listens, then establishes [`PASSIVE`] connections through the listener and one active
    /// open, all with the peer model (the production path: no connection is planted).
    pub fn new() -> Harness {
        let now = Instant::ZERO;
        let mut stack = Stack::new(config(), now);
        stack.add_neighbor(PEER_IP, PEER_MAC);
        let listener = stack
            .listen(SocketAddrV4::new(OUR_IP, PORT))
            .expect("listen");
        let mut h = Harness {
            stack,
            // Small pools: the link is made for every input.
            link: MemoryLink::new(MemoryLinkConfig {
                max_frame_len: 1514,
                rx_frames: 64,
                tx_frames: 256,
            }),
            now,
            listener,
            handles: Vec::new(),
            peers: Vec::new(),
            pushed: 0,
            sent: 0,
            scratch: vec![0u8; 2048],
        };
        for i in 0..PASSIVE as u16 {
            let port = 40000 + i;
            h.peers.push(Peer {
                port,
                local: PORT,
                seq: SeqNumber(1_000_000 * u32::from(i + 1)),
                ack: SeqNumber(0),
                tsval: 100,
                ts_recent: 0,
            });
            let p = h.peers.len() - 1;
            h.peer_send(p, TcpControl::Syn, false, 0, 0, &SegOpts::syn(), &[], None);
            h.step();
            h.peer_send(p, TcpControl::None, true, 0, 0, &SegOpts::none(), &[], None);
            h.step();
        }
        let active = h
            .stack
            .connect(now, None, SocketAddrV4::new(PEER_IP, ACTIVE_PORT))
            .expect("connect");
        h.handles.push((active, false));
        h.step();
        // The peer model learned the SYN's port and ISN in `step`; answer with a SYN-ACK.
        if let Some(p) = h.peers.iter().position(|p| p.port == ACTIVE_PORT) {
            h.peer_send(p, TcpControl::Syn, true, 0, 0, &SegOpts::syn(), &[], None);
            h.step();
        }
        debug_assert_eq!(h.stack.connection_count(), PASSIVE + 1);
        h.check();
        h
    }

    /// The connections the application holds: (handle, passive), passive ones in the order
    /// the set-up accepted them, then the active open.
    pub fn handles(&self) -> &[(ConnHandle, bool)] {
        &self.handles
    }

    /// Sends one segment from peer `p`. `seq_delta`/`ack_delta` move the numbers away from
    /// the peer model's (0 = in order); an in-order segment advances the model.
    #[allow(clippy::too_many_arguments)]
    fn peer_send(
        &mut self,
        p: usize,
        control: TcpControl,
        ack: bool,
        seq_delta: i32,
        ack_delta: i32,
        opts: &SegOpts,
        payload: &[u8],
        corrupt: Option<(usize, u8)>,
    ) {
        let peer = &mut self.peers[p];
        peer.tsval = peer.tsval.wrapping_add(1);
        let repr = TcpRepr {
            src_port: peer.port,
            dst_port: peer.local,
            control,
            psh: false,
            seq_number: SeqNumber(peer.seq.0.wrapping_add(seq_delta as u32)),
            ack_number: ack.then_some(SeqNumber(peer.ack.0.wrapping_add(ack_delta as u32))),
            window_len: opts.window,
            window_scale: opts.window_scale,
            max_seg_size: opts.mss,
            sack_permitted: opts.sack_permitted,
            sack_ranges: if opts.sack {
                [Some((peer.ack + 100, peer.ack + 200)), None, None]
            } else {
                [None; 3]
            },
            timestamp: opts.timestamps.then_some(TcpTimestamp {
                tsval: peer.tsval,
                tsecr: peer.ts_recent,
            }),
            payload,
        };
        if seq_delta == 0 {
            peer.seq += repr.segment_len();
        }
        let Ok(n) = emit_tcp_frame(&mut self.scratch, PEER_MAC, OUR_MAC, PEER_IP, OUR_IP, &repr)
        else {
            return;
        };
        if let Some((at, xor)) = corrupt
            && n > 0
        {
            self.scratch[at % n] ^= xor;
        }
        let frame = self.scratch[..n].to_vec();
        self.push(&frame);
    }

    /// Hands one frame to the link (counted when the link takes it).
    pub fn push(&mut self, frame: &[u8]) {
        if self.link.push_rx(frame) {
            self.pushed += 1;
        }
    }

    /// One poll of the stack and the application: receive, accept, events, transmit; then
    /// the peer reads what was sent.
    pub fn step(&mut self) {
        self.stack.poll(self.now, &mut self.link);
        while let Some(h) = self.stack.accept(self.listener) {
            self.handles.push((h, true));
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Readable => {
                    let n = self.stack.recv_slice(h).map_or(0, <[u8]>::len);
                    let _ = self.stack.consume(h, n);
                }
                Event::Closed | Event::Reset | Event::TimedOut => {
                    self.handles.retain(|&(x, _)| x != h);
                }
                _ => {}
            }
        }
        self.stack.flush(self.now, &mut self.link);
        self.read_output();
    }

    /// Reads every frame the stack sent; checks each and feeds the peer model.
    fn read_output(&mut self) {
        while let Some(res) = self.link.pop_tx(|f| {
            let t = parse_tcp_frame(f).unwrap_or_else(|e| {
                panic!(
                    "the stack sent an unparsable frame ({e:?}): {}",
                    xtcp::wire::frame::describe_frame(f)
                )
            });
            assert_eq!(t.eth.src_addr, OUR_MAC, "source MAC");
            assert_eq!(t.ip.src_addr, OUR_IP, "source IP");
            (
                t.tcp.src_port,
                t.tcp.dst_port,
                t.tcp.seq_number,
                t.tcp.segment_len(),
                t.tcp.control,
                t.tcp.timestamp,
                t.tcp.ack_number,
            )
        }) {
            self.sent += 1;
            let (sport, dport, seq, len, control, ts, ack) = res;
            let i = match self
                .peers
                .iter()
                .position(|p| p.port == dport && p.local == sport)
            {
                Some(i) => i,
                None if control == TcpControl::Syn && ack.is_none() => {
                    // An active open: the peer learns its ISN and picks its own.
                    self.peers.push(Peer {
                        port: dport,
                        local: sport,
                        seq: SeqNumber(7_000_000),
                        ack: seq,
                        tsval: 500,
                        ts_recent: 0,
                    });
                    self.peers.len() - 1
                }
                None => continue,
            };
            let p = &mut self.peers[i];
            let end = seq + len;
            if end > p.ack || control == TcpControl::Syn {
                p.ack = end;
            }
            if let Some(ts) = ts {
                p.ts_recent = ts.tsval;
            }
        }
    }

    /// Asserts the invariants listed in the module docs.
    pub fn check(&self) {
        let c = self.stack.counters();
        let ls = self.link.stats();
        assert_eq!(
            c.rx_frames, self.pushed,
            "frames received vs handed to the stack"
        );
        assert_eq!(
            ls.rx_frames, self.pushed,
            "link handed out every pushed frame"
        );
        assert_eq!(
            c.tx_frames, ls.tx_frames,
            "frames sent vs written to the link"
        );
        assert_eq!(
            self.sent, ls.tx_frames,
            "every written frame reached the peer"
        );
        assert!(
            c.rx_dropped_malformed + c.rx_not_ours <= c.rx_frames,
            "drops exceed frames"
        );
        // Every ICMP to us has exactly one outcome; only Fragmentation Needed lowers an MSS.
        assert_eq!(
            c.icmp_malformed
                + c.icmp_not_ours
                + c.icmp_out_of_window
                + c.icmp_frag_needed
                + c.icmp_soft_errors
                + c.icmp_ignored,
            c.icmp_received,
            "ICMP outcomes"
        );
        assert!(c.pmtu_decreases <= c.icmp_frag_needed);
        let cfg = self.stack.config();
        assert!(self.stack.connection_count() <= cfg.max_connections);
        assert!(self.stack.syn_recv_count() <= cfg.max_syn_recv);
        let tw = self.stack.time_wait_table();
        assert!(tw.len() <= tw.capacity());
        for &(h, passive) in &self.handles {
            let Some(conn) = self.stack.connection(h) else {
                continue;
            };
            let st = conn.state();
            assert_ne!(st, State::Listen, "a connection in LISTEN");
            assert_ne!(st, State::Closed, "a CLOSED connection still in the table");
            if passive {
                assert_ne!(st, State::SynSent, "a passive connection in SYN-SENT");
            }
            assert_eq!(conn.is_passive(), passive, "passive flag changed");
            assert!(
                conn.snd_una() <= conn.snd_nxt() && conn.snd_nxt() <= conn.snd_max(),
                "send sequence out of order in {st}: una {:?} nxt {:?} max {:?}",
                conn.snd_una(),
                conn.snd_nxt(),
                conn.snd_max()
            );
            assert!(conn.snd_max() - conn.snd_una() <= cfg.tcp.send_buffer + 2);
            assert!(
                conn.recv_queue() <= cfg.tcp.recv_buffer,
                "receive queue over its buffer"
            );
            assert!(
                conn.send_queue() <= cfg.tcp.send_buffer,
                "send queue over its buffer"
            );
        }
    }

    /// Runs the fuzz input (see [`Record`]), checking after every record.
    pub fn run(&mut self, mut data: &[u8]) {
        let mut records = 0;
        while let Some((rec, rest)) = Record::decode(data) {
            data = rest;
            self.apply(&rec);
            self.step();
            self.check();
            records += 1;
            if records >= 256 {
                break;
            }
        }
    }

    fn apply(&mut self, rec: &Record<'_>) {
        match *rec {
            Record::Raw(frame) => self.push(frame),
            Record::Segment(s) => {
                if self.peers.is_empty() {
                    return;
                }
                let payload = [0x61u8; 255];
                let p = usize::from(s.peer) % (self.peers.len() + 1);
                if p == self.peers.len() {
                    // A new peer port: a fresh SYN (or whatever the flags say) to the listener.
                    self.peers.push(Peer {
                        port: 50000 + u16::from(s.peer),
                        local: PORT,
                        seq: SeqNumber(u32::from(s.window) << 8),
                        ack: SeqNumber(0),
                        tsval: 1,
                        ts_recent: 0,
                    });
                }
                let control = if s.flags & 0x04 != 0 {
                    TcpControl::Rst
                } else if s.flags & 0x02 != 0 {
                    TcpControl::Syn
                } else if s.flags & 0x01 != 0 {
                    TcpControl::Fin
                } else {
                    TcpControl::None
                };
                let opts = SegOpts {
                    window: s.window,
                    mss: (s.opts & 1 != 0).then_some(s.mss),
                    window_scale: (s.opts & 2 != 0).then_some(s.opts >> 5),
                    sack_permitted: s.opts & 4 != 0,
                    timestamps: s.opts & 8 != 0,
                    sack: s.opts & 16 != 0,
                };
                let corrupt = (s.corrupt_at != 0).then_some((usize::from(s.corrupt_at), s.xor));
                self.peer_send(
                    p,
                    control,
                    s.flags & 0x10 != 0,
                    i32::from(s.seq_delta),
                    i32::from(s.ack_delta),
                    &opts,
                    &payload[..usize::from(s.payload_len)],
                    corrupt,
                );
            }
            Record::Advance(ms) => self.now = self.now + Duration::from_millis(u64::from(ms)),
            Record::App { op, conn, len } => {
                if op % 7 == 6 {
                    if let Ok(h) = self.stack.connect(
                        self.now,
                        None,
                        SocketAddrV4::new(PEER_IP, ACTIVE_PORT + u16::from(conn % 4)),
                    ) {
                        self.handles.push((h, false));
                    }
                    return;
                }
                if self.handles.is_empty() {
                    return;
                }
                let (h, _) = self.handles[usize::from(conn) % self.handles.len()];
                match op % 7 {
                    0 | 1 => {
                        let data = [0x62u8; 4096];
                        let _ = self.stack.send(h, &data[..usize::from(len) % data.len()]);
                    }
                    2 => {
                        let n = self.stack.recv_slice(h).map_or(0, <[u8]>::len);
                        let _ = self.stack.consume(h, n);
                    }
                    3 => {
                        let _ = self.stack.shutdown(h);
                    }
                    4 => {
                        let _ = self.stack.close(h);
                    }
                    _ => {
                        let _ = self.stack.abort(h);
                    }
                }
            }
        }
    }
}

/// Options of a peer segment.
#[derive(Debug, Clone, Copy)]
struct SegOpts {
    window: u16,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    timestamps: bool,
    sack: bool,
}

impl SegOpts {
    fn syn() -> SegOpts {
        SegOpts {
            window: 65535,
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: true,
            sack: false,
        }
    }
    fn none() -> SegOpts {
        SegOpts {
            window: 1024,
            mss: None,
            window_scale: None,
            sack_permitted: false,
            timestamps: true,
            sack: false,
        }
    }
}

/// A peer segment record's fields (12 bytes on the wire of the fuzz input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegRecord {
    /// Which peer (modulo the peers known, plus one for a new peer port).
    pub peer: u8,
    /// TCP flag bits: FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10 (RST beats SYN beats FIN).
    pub flags: u8,
    pub seq_delta: i16,
    pub ack_delta: i16,
    pub window: u16,
    /// Option bits: MSS 1, window scale 2 (shift = bits 5-7), SACK-permitted 4, timestamps 8,
    /// one SACK block 16.
    pub opts: u8,
    pub payload_len: u8,
    /// 0: no corruption; otherwise the byte (modulo the frame length) XORed with `xor`.
    pub corrupt_at: u8,
    pub xor: u8,
    pub mss: u16,
}

/// One step of the fuzz input: a tag byte (modulo 4) then its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Tag 0, a 16-bit big-endian length (modulo 1515), then the frame's bytes.
    Raw(&'a [u8]),
    /// Tag 1, then a [`SegRecord`] (12 bytes; mss last, 2 bytes).
    Segment(SegRecord),
    /// Tag 2, then milliseconds (16-bit): the clock jumps.
    Advance(u16),
    /// Tag 3, then op, connection and a 16-bit length: send (0, 1), read (2), shutdown (3),
    /// close (4), abort (5), connect (6).
    App { op: u8, conn: u8, len: u16 },
}

impl<'a> Record<'a> {
    pub fn decode(data: &'a [u8]) -> Option<(Record<'a>, &'a [u8])> {
        let (&tag, rest) = data.split_first()?;
        match tag % 4 {
            0 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                let len = (usize::from(u16::from_be_bytes(*len)) % 1515).min(rest.len());
                Some((Record::Raw(&rest[..len]), &rest[len..]))
            }
            1 => {
                let (b, rest) = rest.split_first_chunk::<14>()?;
                Some((
                    Record::Segment(SegRecord {
                        peer: b[0],
                        flags: b[1],
                        seq_delta: i16::from_be_bytes([b[2], b[3]]),
                        ack_delta: i16::from_be_bytes([b[4], b[5]]),
                        window: u16::from_be_bytes([b[6], b[7]]),
                        opts: b[8],
                        payload_len: b[9],
                        corrupt_at: b[10],
                        xor: b[11],
                        mss: u16::from_be_bytes([b[12], b[13]]),
                    }),
                    rest,
                ))
            }
            2 => {
                let (b, rest) = rest.split_first_chunk::<2>()?;
                Some((Record::Advance(u16::from_be_bytes(*b)), rest))
            }
            _ => {
                let (b, rest) = rest.split_first_chunk::<4>()?;
                Some((
                    Record::App {
                        op: b[0],
                        conn: b[1],
                        len: u16::from_be_bytes([b[2], b[3]]),
                    },
                    rest,
                ))
            }
        }
    }

    /// The inverse of [`Record::decode`] (for seeds and regression inputs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Record::Raw(f) => {
                out.push(0);
                out.extend_from_slice(&(f.len() as u16).to_be_bytes());
                out.extend_from_slice(f);
            }
            Record::Segment(s) => {
                out.push(1);
                out.extend_from_slice(&[s.peer, s.flags]);
                out.extend_from_slice(&s.seq_delta.to_be_bytes());
                out.extend_from_slice(&s.ack_delta.to_be_bytes());
                out.extend_from_slice(&s.window.to_be_bytes());
                out.extend_from_slice(&[s.opts, s.payload_len, s.corrupt_at, s.xor]);
                out.extend_from_slice(&s.mss.to_be_bytes());
            }
            Record::Advance(ms) => {
                out.push(2);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Record::App { op, conn, len } => {
                out.push(3);
                out.extend_from_slice(&[op, conn]);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
    }
}

pub mod seeds;
