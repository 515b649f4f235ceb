//! One server [`Stack`] over a [`MemoryLink`], driven by crafted client segments (no client
//! stack), and its replies read back parsed: the scale tests' rig.

use crate::seg::Seg;
use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::stack::{Stack, StackConfig};
use xtcp::tcp::FourTuple;
use xtcp::time::{Duration, Instant};
use xtcp::wire::{
    EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame,
};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

/// A small server configuration (ARP off: replies go to the sender's MAC).
pub fn server_config() -> StackConfig {
    StackConfig {
        mac: SERVER_MAC,
        ips: vec![SERVER_IP],
        max_connections: 4096,
        max_syn_recv: 4096,
        time_wait_capacity: 1 << 16,
        arp: false,
        secret: *b"scale-tests-secret-32-bytes-long",
        ..StackConfig::default()
    }
}

pub struct Rig {
    pub stack: Stack,
    pub link: MemoryLink,
    pub now: Instant,
    frame: Vec<u8>,
}

impl Rig {
    pub fn new(cfg: StackConfig) -> Rig {
        let now = Instant::from_secs(1);
        Rig {
            stack: Stack::new(cfg, now),
            link: MemoryLink::new(MemoryLinkConfig {
                max_frame_len: 1514,
                rx_frames: 8192,
                tx_frames: 8192,
            }),
            now,
            frame: vec![0u8; 1514],
        }
    }

    /// Queues a client segment from `ip` (not processed until the next poll). False if the
    /// link's RX queue is full.
    pub fn inject(&mut self, ip: Ipv4Addr, repr: &TcpRepr) -> bool {
        let len = emit_tcp_frame(&mut self.frame, CLIENT_MAC, SERVER_MAC, ip, SERVER_IP, repr)
            .expect("frame fits");
        self.link.push_rx(&self.frame[..len])
    }

    /// Polls until the RX queue is empty; returns the server's output.
    pub fn poll(&mut self) -> Vec<Seg> {
        loop {
            self.stack.poll(self.now, &mut self.link);
            if self.link.rx_len() == 0 {
                break;
            }
        }
        self.drain()
    }

    /// Output so far, parsed.
    pub fn drain(&mut self) -> Vec<Seg> {
        let mut out = Vec::new();
        self.link.drain_tx(|frame| out.push(Seg::from_frame(frame)));
        out
    }

    /// Advances virtual time to `until`, polling at every deadline on the way; returns all
    /// output.
    pub fn run_until(&mut self, until: Instant) -> Vec<Seg> {
        let mut out = Vec::new();
        loop {
            let next = self.stack.poll_at().filter(|&t| t <= until);
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    out.extend(self.poll());
                }
                None => {
                    self.now = until;
                    out.extend(self.poll());
                    return out;
                }
            }
        }
    }

    pub fn advance(&mut self, d: Duration) -> Vec<Seg> {
        let until = self.now + d;
        self.run_until(until)
    }
}

/// A crafted client: its endpoint and sequence state.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub server_port: u16,
    pub isn: u32,
    /// Next sequence number to send.
    pub snd_nxt: u32,
    /// Next sequence number expected from the server (0 until the SYN-ACK).
    pub rcv_nxt: u32,
    /// Send timestamps (TSval = `tsval`) and echo the server's.
    pub timestamps: bool,
    pub tsval: u32,
    pub ts_recent: u32,
}

impl Client {
    pub fn new(ip: Ipv4Addr, port: u16, server_port: u16, isn: u32) -> Client {
        Client {
            ip,
            port,
            server_port,
            isn,
            snd_nxt: isn,
            rcv_nxt: 0,
            timestamps: false,
            tsval: 1,
            ts_recent: 0,
        }
    }

    /// The tuple as the server sees it.
    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local_addr: SERVER_IP,
            remote_addr: self.ip,
            local_port: self.server_port,
            remote_port: self.port,
        }
    }

    fn base(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.port,
            dst_port: self.server_port,
            seq_number: SeqNumber(self.snd_nxt),
            window_len: 64240,
            timestamp: self.timestamps.then_some(TcpTimestamp {
                tsval: self.tsval,
                tsecr: self.ts_recent,
            }),
            ..TcpRepr::default()
        }
    }

    pub fn syn(&self) -> TcpRepr<'static> {
        TcpRepr {
            control: TcpControl::Syn,
            seq_number: SeqNumber(self.isn),
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: self.timestamps.then_some(TcpTimestamp {
                tsval: self.tsval,
                tsecr: 0,
            }),
            ..self.base()
        }
    }

    /// Takes the server's SYN-ACK (or any segment) into account: RCV.NXT and TS.Recent.
    pub fn take(&mut self, s: &Seg) {
        assert_eq!(
            (s.dst, s.dst_port),
            (self.ip.into(), self.port),
            "segment for this client"
        );
        let syn_or_fin = matches!(s.control, TcpControl::Syn | TcpControl::Fin) as u32;
        self.rcv_nxt = s.seq.wrapping_add(s.len() as u32 + syn_or_fin);
        if s.control == TcpControl::Syn {
            self.snd_nxt = self.isn.wrapping_add(1);
        }
        if let Some(ts) = s.ts {
            self.ts_recent = ts.tsval;
        }
    }

    pub fn ack(&self) -> TcpRepr<'static> {
        TcpRepr {
            ack_number: Some(SeqNumber(self.rcv_nxt)),
            ..self.base()
        }
    }

    /// FIN (with ACK); advances SND.NXT past it.
    pub fn fin(&mut self) -> TcpRepr<'static> {
        let r = TcpRepr {
            control: TcpControl::Fin,
            ack_number: Some(SeqNumber(self.rcv_nxt)),
            ..self.base()
        };
        self.snd_nxt = self.snd_nxt.wrapping_add(1);
        r
    }
}

/// The segments sent to `c`.
pub fn to(c: &Client, segs: &[Seg]) -> Vec<Seg> {
    segs.iter()
        .filter(|s| s.dst == c.ip && s.dst_port == c.port)
        .cloned()
        .collect()
}

/// RSS of this process in bytes (`/proc/self/statm`, second field, in pages).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm rss");
    pages * 4096
}
