//! The address family a test runs over: the harnesses ([`crate::pair`], [`crate::bulk`]) are
//! generic over [`Family`] (`Ipv4Addr`, the default, or `Ipv6Addr`), so the same test code
//! drives an IPv4 or an IPv6 [`xtcp::stack::Stack`].

use std::net::IpAddr;

use xtcp::stack::StackFamily;
use xtcp::wire::{Ipv4Addr, Ipv6Addr};

/// A family the test harnesses run over.
pub trait Family: StackFamily + Into<IpAddr> {
    /// Node `i`'s address by the tests' convention: `10.0.0.(i + 1)` (the simulator's
    /// `Simulation::ipv4`) or `2001:db8::(i + 1)`.
    fn node(i: usize) -> Self;
}

impl Family for Ipv4Addr {
    fn node(i: usize) -> Ipv4Addr {
        assert!(i < 254, "the IPv4 convention covers nodes 0..254");
        Ipv4Addr::new(10, 0, 0, i as u8 + 1)
    }
}

impl Family for Ipv6Addr {
    fn node(i: usize) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1)
    }
}
