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
pub use self::connection::{
    ConnStats, Connection, Event, IcmpOutcome, Keepalive, RttEstimator, SoftError, State,
    TcpConfig, TcpError,
};
pub use self::counters::Counters;
pub use self::isn::IsnGenerator;

use crate::wire::{SeqNumber, TcpControl, TcpRepr};
use core::net::Ipv4Addr;

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

/// A connection's identity: (local address, local port, remote address, remote port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    pub local_addr: Ipv4Addr,
    pub remote_addr: Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
}

impl core::fmt::Display for FourTuple {
    /// `local:port<remote:port`, e.g. `10.0.0.1:80<10.0.0.2:40000`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}:{}<{}:{}",
            self.local_addr, self.local_port, self.remote_addr, self.remote_port
        )
    }
}

impl FourTuple {
    /// The tuple as seen from the other end.
    pub fn reversed(self) -> FourTuple {
        FourTuple {
            local_addr: self.remote_addr,
            remote_addr: self.local_addr,
            local_port: self.remote_port,
            remote_port: self.local_port,
        }
    }
}
