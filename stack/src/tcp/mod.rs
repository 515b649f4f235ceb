//! The sans-I/O TCP core.
//!
//! Follows RFC 9293 (TCP), with RFC 5961 (blind in-window attacks), RFC 6528 (ISNs),
//! RFC 7323 (window scale, timestamps, PAWS), RFC 2018 (SACK), RFC 6191 (TIME-WAIT reuse),
//! RFC 4987 (SYN cookies) and RFC 1122.
//!
//! Nothing here reads a clock, does I/O or starts a thread: every entry point takes `now`.

pub mod flow_table;
pub mod ports;
pub mod syncookie;
pub mod time_wait;
pub mod timer_wheel;

use core::net::Ipv4Addr;

/// A connection's identity: (local address, local port, remote address, remote port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    pub local_addr: Ipv4Addr,
    pub remote_addr: Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
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
