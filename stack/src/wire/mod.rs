//! Wire formats: zero-copy packet views and validated representations.
//!
//! Each header has two types, after smoltcp:
//! - a `*Packet<T: AsRef<[u8]>>` view over a buffer: getters need `AsRef`, setters `AsMut`;
//! - a validated `*Repr` with `parse`, `emit` and `buffer_len` / `header_len`.
//!
//! Panic contract: `*Packet::new_unchecked` does no checks and its accessors may panic on a
//! short buffer; `*Packet::new_checked` calls `check_len()`, and after that succeeds no
//! accessor panics. Untrusted input always goes through `new_checked` and `Repr::parse`, which
//! return a typed [`Error`], never panic.
//!
//! [`vlan`] is the 802.1Q tag that may sit between the Ethernet header and its payload.
//! [`frame`] stacks the layers for the hot path ([`parse_tcp_frame`],
//! [`emit_tcp_frame`]) and describes any frame in one tcpdump-style line ([`describe_frame`])
//! for test failures. [`checksum`] holds the RFC 1071 sum and the RFC 1624 incremental update.
//! Nothing here allocates except `describe_frame`.
//!
//! This layer knows nothing of sockets or connections.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod vlan;

pub use self::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use self::frame::{
    L2Frame, TcpFrame, describe_frame, emit_tcp_frame, emit_tcp_frame_vlan, parse_l2,
    parse_tcp_frame, parse_tcp_frame_in, parse_tcp_frame_into, tcp_frame_len,
};
pub use self::tcp::{
    BareRepr, CompactSegment, SeqNumber, SynAckRepr, TcpControl, TcpRepr, TcpTimestamp,
};
pub use self::vlan::{VlanId, VlanRepr};
pub use core::net::{Ipv4Addr, Ipv6Addr};

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    Truncated,
    /// A field holds a value that the format forbids (bad version, bad header length,
    /// impossible flag combination, malformed option).
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// Well-formed but not handled here (IPv4 options we refuse, fragments, other protocols).
    Unsupported,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
