//! The sans-I/O TCP core.
//!
//! Follows RFC 9293 (TCP), with RFC 5961 (blind in-window attacks), RFC 6528 (ISNs),
//! RFC 7323 (window scale, timestamps, PAWS), RFC 2018 (SACK), RFC 6191 (TIME-WAIT reuse),
//! RFC 4987 (SYN cookies) and RFC 1122; for reliability RFC 6298 (RTO), RFC 5681, RFC 6582
//! and RFC 6675 (congestion control, NewReno and SACK loss recovery), RFC 6928 (initial
//! window), RFC 3465 (byte counting) and RFC 9438 (CUBIC).
//!
//! Nothing here reads a clock, does I/O or starts a thread: every entry point takes `now`.

pub mod assembler;
pub mod buffer;
pub mod congestion;
pub mod connection;
pub mod counters;
pub mod flow_table;
pub mod isn;
pub mod ports;
pub mod rss;
pub mod scoreboard;
pub mod syncookie;
pub mod time_wait;
pub mod timer_wheel;

pub use self::congestion::CongestionAlgorithm;
pub(crate) use self::connection::ConnTemplate;
pub use self::connection::{
    ConnStats, Connection, Event, IcmpOutcome, Keepalive, RttEstimator, SoftError, State,
    TcpConfig, TcpError,
};
pub use self::counters::Counters;
pub use self::isn::IsnGenerator;

use crate::wire::{SeqNumber, TcpControl, TcpRepr};
use core::net::{Ipv4Addr, Ipv6Addr};

/// The reset owed to a segment that matches no connection or listener (RFC 9293 §3.10.7.1):
/// none for a RST; `<SEQ=SEG.ACK><CTL=RST>` if the segment has an ACK; otherwise
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub fn rst_for_unexpected(seg: &TcpRepr) -> Option<TcpRepr<'static>> {
    if seg.control == TcpControl::Rst {
        return None;
    }
    let (seq_number, ack_number) = match seg.ack_number {
        Some(ack) => (ack, None),
        None => (SeqNumber(0), Some(seg.seq_number + seg.segment_len())),
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        control: TcpControl::Rst,
        seq_number,
        ack_number,
        ..TcpRepr::default()
    })
}

/// The address family of a connection: [`core::net::Ipv4Addr`] or [`core::net::Ipv6Addr`].
/// The tuple-keyed structures ([`FourTuple`], the TIME-WAIT table, ISNs, SYN cookies) are
/// generic over it, so each family compiles to its own code and an IPv4 key stays 12 bytes.
pub trait Address:
    Copy
    + Eq
    + core::hash::Hash
    + Ord
    + core::fmt::Debug
    + core::fmt::Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// The address's length in bytes (4 or 16).
    const LEN: usize;
    /// Whether this is IPv6 (written in brackets before a port, RFC 5952 §6).
    const V6: bool;
    /// The MSS a link of `mtu` bytes carries: MTU − 40 for IPv4, MTU − 60 for IPv6 (fixed
    /// headers without options or extension headers, RFC 9293 §3.7.1, RFC 8200).
    fn mss_for_mtu(mtu: u16) -> u16;
    /// Writes the tuple in network order (local address, remote address, local port,
    /// remote port) into the first `2 * LEN + 4` bytes of `out` and returns that length:
    /// the message of the keyed hashes for ISNs and SYN cookies.
    fn tuple_bytes(t: &FourTuple<Self>, out: &mut [u8; 36]) -> usize;
}

pub(crate) mod sealed {
    /// Closes [`super::Address`] to the two IP families and carries the keyed tuple hash,
    /// which needs the hasher's private keys.
    pub trait Sealed: Sized + super::flow_table::FlowKey {
        #[doc(hidden)]
        fn tuple_hash(h: &super::flow_table::TupleHasher, t: &super::FourTuple<Self>) -> u64
        where
            Self: super::Address;
    }
}

impl Address for Ipv4Addr {
    const LEN: usize = 4;
    const V6: bool = false;
    #[inline]
    fn mss_for_mtu(mtu: u16) -> u16 {
        mtu.saturating_sub(40)
    }
    #[inline]
    fn tuple_bytes(t: &FourTuple<Self>, out: &mut [u8; 36]) -> usize {
        out[0..4].copy_from_slice(&t.local_addr.octets());
        out[4..8].copy_from_slice(&t.remote_addr.octets());
        out[8..10].copy_from_slice(&t.local_port.to_be_bytes());
        out[10..12].copy_from_slice(&t.remote_port.to_be_bytes());
        12
    }
}

impl Address for Ipv6Addr {
    const LEN: usize = 16;
    const V6: bool = true;
    #[inline]
    fn mss_for_mtu(mtu: u16) -> u16 {
        mtu.saturating_sub(60)
    }
    #[inline]
    fn tuple_bytes(t: &FourTuple<Self>, out: &mut [u8; 36]) -> usize {
        out[0..16].copy_from_slice(&t.local_addr.octets());
        out[16..32].copy_from_slice(&t.remote_addr.octets());
        out[32..34].copy_from_slice(&t.local_port.to_be_bytes());
        out[34..36].copy_from_slice(&t.remote_port.to_be_bytes());
        36
    }
}

impl sealed::Sealed for Ipv4Addr {
    #[inline(always)]
    fn tuple_hash(h: &flow_table::TupleHasher, t: &FourTuple<Self>) -> u64 {
        h.hash_v4(t)
    }
}

impl sealed::Sealed for Ipv6Addr {
    #[inline]
    fn tuple_hash(h: &flow_table::TupleHasher, t: &FourTuple<Self>) -> u64 {
        h.hash_v6(t)
    }
}

/// A connection's identity: (local address, local port, remote address, remote port). 12
/// bytes for IPv4 (the default), 36 for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple<A: Address = Ipv4Addr> {
    pub local_addr: A,
    pub remote_addr: A,
    pub local_port: u16,
    pub remote_port: u16,
}

const _: () = assert!(core::mem::size_of::<FourTuple>() == 12);
const _: () = assert!(core::mem::size_of::<FourTuple<Ipv6Addr>>() == 36);

impl<A: Address> core::fmt::Display for FourTuple<A> {
    /// `local:port<remote:port`, e.g. `10.0.0.1:80<10.0.0.2:40000` or
    /// `[2001:db8::1]:80<[2001:db8::2]:40000`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if A::V6 {
            write!(
                f,
                "[{}]:{}<[{}]:{}",
                self.local_addr, self.local_port, self.remote_addr, self.remote_port
            )
        } else {
            write!(
                f,
                "{}:{}<{}:{}",
                self.local_addr, self.local_port, self.remote_addr, self.remote_port
            )
        }
    }
}

impl<A: Address> FourTuple<A> {
    /// The tuple as seen from the other end.
    pub fn reversed(self) -> FourTuple<A> {
        FourTuple {
            local_addr: self.remote_addr,
            remote_addr: self.local_addr,
            local_port: self.remote_port,
            remote_port: self.local_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_constants_and_display() {
        assert_eq!(<Ipv4Addr as Address>::mss_for_mtu(1500), 1460);
        assert_eq!(<Ipv6Addr as Address>::mss_for_mtu(1500), 1440);
        assert_eq!(<Ipv6Addr as Address>::mss_for_mtu(1280), 1220);
        assert_eq!(<Ipv6Addr as Address>::mss_for_mtu(40), 0);
        let t = FourTuple {
            local_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            remote_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            local_port: 80,
            remote_port: 40000,
        };
        assert_eq!(t.to_string(), "[2001:db8::1]:80<[2001:db8::2]:40000");
        assert_eq!(t.reversed().reversed(), t);
        let mut b = [0u8; 36];
        assert_eq!(Ipv6Addr::tuple_bytes(&t, &mut b), 36);
        assert_eq!(&b[32..], &[0, 80, 0x9c, 0x40]);
        let v4 = FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: 40000,
        };
        assert_eq!(v4.to_string(), "10.0.0.1:80<10.0.0.2:40000");
        assert_eq!(Ipv4Addr::tuple_bytes(&v4, &mut b), 12);
        assert_eq!(&b[..12], &[10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0x9c, 0x40]);
    }
}
