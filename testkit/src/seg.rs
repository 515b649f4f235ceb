//! The owned segment every hand-driven test uses: a copy of a `TcpRepr` (and, when read off
//! a frame, its destination) that a test can hold, log, drop or deliver later, and the
//! `(flags, seq, ack, length)` key the tests assert on.

use std::net::IpAddr;

use xtcp::stack::StackFamily;
use xtcp::wire::{EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp};

/// An owned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub control: TcpControl,
    pub seq: u32,
    pub ack: Option<u32>,
    pub window: u16,
    pub wscale: Option<u8>,
    pub mss: Option<u16>,
    pub sack_permitted: bool,
    pub sack: Vec<(u32, u32)>,
    pub ts: Option<TcpTimestamp>,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
    /// Destination address and MAC when read off a frame ([`Seg::from_frame`]); unspecified
    /// and zero for a segment built from a `TcpRepr`.
    pub dst: IpAddr,
    pub dst_mac: EthernetAddress,
}

impl Default for Seg {
    fn default() -> Self {
        Seg::from_repr(&TcpRepr::default())
    }
}

impl Seg {
    pub fn from_repr(r: &TcpRepr) -> Seg {
        Seg {
            control: r.control,
            seq: r.seq_number.0,
            ack: r.ack_number.map(|a| a.0),
            window: r.window_len,
            wscale: r.window_scale,
            mss: r.max_seg_size,
            sack_permitted: r.sack_permitted,
            sack: r
                .sack_ranges
                .iter()
                .flatten()
                .map(|(l, r)| (l.0, r.0))
                .collect(),
            ts: r.timestamp,
            src_port: r.src_port,
            dst_port: r.dst_port,
            payload: r.payload.to_vec(),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst_mac: EthernetAddress([0; 6]),
        }
    }

    /// The TCP segment in an Ethernet frame; panics on anything else (a stack under test
    /// only sends well-formed TCP frames where this is used).
    pub fn from_frame(frame: &[u8]) -> Seg {
        Seg::from_frame_of::<Ipv4Addr>(frame)
    }

    /// [`Seg::from_frame`] for a frame of family `A` (IPv4 or IPv6, checksum verified).
    pub fn from_frame_of<A: StackFamily + Into<IpAddr>>(frame: &[u8]) -> Seg {
        let mut slot = None;
        let f = A::parse_frame(frame, &mut slot).expect("a TCP frame");
        Seg {
            dst: A::ip_addrs(&f.ip).1.into(),
            dst_mac: f.eth.dst_addr,
            ..Seg::from_repr(&f.tcp)
        }
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    pub fn repr(&self) -> TcpRepr<'_> {
        let mut sack_ranges = [None; 3];
        for (slot, &(l, r)) in sack_ranges.iter_mut().zip(&self.sack) {
            *slot = Some((SeqNumber(l), SeqNumber(r)));
        }
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            control: self.control,
            psh: false,
            seq_number: SeqNumber(self.seq),
            ack_number: self.ack.map(SeqNumber),
            window_len: self.window,
            window_scale: self.wscale,
            max_seg_size: self.mss,
            sack_permitted: self.sack_permitted,
            sack_ranges,
            timestamp: self.ts,
            payload: &self.payload,
        }
    }

    pub fn flags(&self) -> String {
        let mut s = String::new();
        match self.control {
            TcpControl::Syn => s.push('S'),
            TcpControl::Fin => s.push('F'),
            TcpControl::Rst => s.push('R'),
            TcpControl::None => {}
        }
        if self.ack.is_some() {
            s.push('.');
        }
        s
    }

    /// (flags, seq, ack, payload length).
    pub fn key(&self) -> (String, u32, Option<u32>, usize) {
        (self.flags(), self.seq, self.ack, self.payload.len())
    }
}

pub fn k(flags: &str, seq: u32, ack: Option<u32>, len: usize) -> (String, u32, Option<u32>, usize) {
    (flags.to_string(), seq, ack, len)
}

pub fn keys(v: &[Seg]) -> Vec<(String, u32, Option<u32>, usize)> {
    v.iter().map(Seg::key).collect()
}
