//! What differs between an IPv4 and an IPv6 [`Stack`] (docs/ipv6.md, "The `Stack` over IPv6:
//! shape"): one stack per family per core, generic over [`StackFamily`], implemented by
//! [`Ipv4Addr`] and [`Ipv6Addr`]. Everything here is off the per-segment path except
//! [`StackFamily::parse_frame`] and [`StackFamily::emit_frame`], which for IPv4 are the very
//! functions the stack called before it was generic (so the IPv4 stack compiles to the same
//! code), and for IPv6 parse / emit Ethernet [+ one 802.1Q tag] + IPv6 + TCP.
//!
//! The neighbour protocol (ARP in `neighbor.rs`, Neighbor Discovery in `nd6.rs`) and the
//! non-TCP input (ARP and ICMPv4 / ICMPv6) are reached through hooks that take the family's
//! own `Stack`, so each family's code is an ordinary `impl Stack<Ipv4Addr>` or
//! `impl Stack<Ipv6Addr>` block.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::{Stack, StackConfig, StackError};
use crate::tcp::Address;
use crate::tcp::flow_table::FlowTable;
use crate::tcp::ports::PortsExhausted;
use crate::tcp::time_wait::TimeWaitTable;
use crate::time::Instant;
use crate::wire::checksum::IpAddress;
use crate::wire::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};
use crate::wire::frame::{TcpFrame, emit_compact_frame, emit_l2, emit_tcp6_frame, parse_l2};
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, next_header};
use crate::wire::tcp::TcpPacket;
use crate::wire::vlan::{self, VlanId};
use crate::wire::{
    CompactSegment, EthernetAddress, Result, TcpRepr, emit_tcp_frame_vlan, parse_tcp_frame_in,
};

/// What a neighbour lookup that missed the stack's cache found (see `egress::transmit_conn`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Asked (or still asking): the connection waits.
    Waiting,
    /// The neighbour protocol knows the MAC (an IPv6 entry the stack's cache had let
    /// expire): it is in the stack's cache again and the connection goes on the next poll.
    Known,
    /// The next hop never answered: the connection ends (`TimedOut`).
    Unreachable,
}

/// The bit of `ConnHandle::generation` that marks a handle of an IPv6 stack.
pub(super) const HANDLE_V6: u32 = 1 << 31;

/// An address family a [`Stack`] runs over: `Ipv4Addr` or `Ipv6Addr` (sealed through
/// [`Address`]). The `#[doc(hidden)]` items are the stack's per-family hooks.
pub trait StackFamily: Address + IpAddress {
    /// `SocketAddrV4` or `SocketAddrV6`: what `listen` and `connect` take.
    type SocketAddr: Copy + core::fmt::Debug;
    /// Set in the generation of every handle of this family's stack (`ConnHandle::is_v6`).
    #[doc(hidden)]
    const HANDLE_TAG: u32;
    /// The parsed IP header of a received segment.
    #[doc(hidden)]
    type IpRepr: Copy;

    /// The address and port of a socket address.
    fn split(sa: Self::SocketAddr) -> (Self, u16);
    /// The socket address of `ip` and `port`.
    fn socket_addr(ip: Self, port: u16) -> Self::SocketAddr;
    /// `0.0.0.0` / `::` (a listener on every local address).
    fn is_unspecified_addr(self) -> bool;
    /// The family's local addresses in the configuration (`ips` / `ips6`); the first is the
    /// default source address of active opens.
    fn local_ips(cfg: &StackConfig) -> &[Self];

    /// Source and destination address of a received segment.
    #[doc(hidden)]
    fn ip_addrs(ip: &Self::IpRepr) -> (Self, Self);
    /// Parses one Ethernet [+ 802.1Q] / IP / TCP frame in place, into `slot` (`None`, not a
    /// placeholder frame); `Unsupported` for a frame that is not TCP over this family (it
    /// then goes to [`StackFamily::process_other`]).
    #[doc(hidden)]
    fn parse_frame<'a, 'o>(
        frame: &'a [u8],
        slot: &'o mut Option<TcpFrame<'a, Self::IpRepr>>,
    ) -> Result<&'o mut TcpFrame<'a, Self::IpRepr>>;
    /// Writes one Ethernet [+ 802.1Q] / IP / TCP frame; its length.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn emit_frame(
        buf: &mut [u8],
        vlan: Option<VlanId>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Self,
        dst: Self,
        tcp: &TcpRepr,
    ) -> Result<usize>;
    /// [`StackFamily::emit_frame`] for a segment in its compact form (a listener's SYN-ACK,
    /// a connection's bare FIN+ACK or pure ACK): the same bytes as for `segment.repr()`
    /// (IPv4 writes it directly, `emit_compact_frame`).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn emit_compact_frame<S: CompactSegment>(
        buf: &mut [u8],
        vlan: Option<VlanId>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Self,
        dst: Self,
        segment: &S,
    ) -> Result<usize> {
        Self::emit_frame(buf, vlan, src_mac, dst_mac, src, dst, &segment.repr())
    }
    /// The error of an active open that found no free port.
    #[doc(hidden)]
    fn ports_exhausted(e: PortsExhausted<Self>) -> StackError;
    #[doc(hidden)]
    fn flow_table(max_entries: usize, seed: u64) -> FlowTable<Self>;
    #[doc(hidden)]
    fn time_wait_table(capacity: usize, seed: u64) -> TimeWaitTable<Self>;
    /// Ingress of one frame (`Stack::process_frame`). A plain (not generic) function per
    /// family, so that the IPv4 stack's ingress is compiled in this crate as it was before
    /// the stack was generic, not instantiated (and inlined differently) in the caller's:
    /// callgrind counted +4.9 % per IPv4 lifecycle for the latter (docs/ipv6.md).
    #[doc(hidden)]
    fn ingress(stack: &mut Stack<Self>, now: Instant, frame: &[u8]);
    /// A frame that is not a TCP segment of this family: the neighbour protocol and ICMP.
    #[doc(hidden)]
    fn process_other(stack: &mut Stack<Self>, now: Instant, frame: &[u8]);
    /// A connection from `src` needs `target`'s MAC and the stack's cache has none.
    #[doc(hidden)]
    fn request_neighbor(stack: &mut Stack<Self>, now: Instant, src: Self, target: Self) -> Resolve;
    /// The neighbour protocol's own timers (Neighbor Discovery; ARP has none of its own).
    #[doc(hidden)]
    fn neighbor_protocol_timers(stack: &mut Stack<Self>, now: Instant);
    /// When [`StackFamily::neighbor_protocol_timers`] has something to do.
    #[doc(hidden)]
    fn next_neighbor_protocol_timer(stack: &Stack<Self>) -> Option<Instant>;
}

impl StackFamily for Ipv4Addr {
    type SocketAddr = SocketAddrV4;
    type IpRepr = Ipv4Repr;
    const HANDLE_TAG: u32 = 0;

    #[inline]
    fn split(sa: SocketAddrV4) -> (Ipv4Addr, u16) {
        (*sa.ip(), sa.port())
    }
    fn socket_addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(ip, port)
    }
    #[inline]
    fn is_unspecified_addr(self) -> bool {
        self.is_unspecified()
    }
    #[inline]
    fn local_ips(cfg: &StackConfig) -> &[Ipv4Addr] {
        &cfg.ips
    }
    #[inline(always)]
    fn ip_addrs(ip: &Ipv4Repr) -> (Ipv4Addr, Ipv4Addr) {
        (ip.src_addr, ip.dst_addr)
    }
    #[inline(always)]
    fn parse_frame<'a, 'o>(
        frame: &'a [u8],
        slot: &'o mut Option<TcpFrame<'a>>,
    ) -> Result<&'o mut TcpFrame<'a>> {
        parse_tcp_frame_in(frame, slot)
    }
    #[inline(always)]
    fn emit_frame(
        buf: &mut [u8],
        vlan: Option<VlanId>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        tcp: &TcpRepr,
    ) -> Result<usize> {
        emit_tcp_frame_vlan(buf, vlan, src_mac, dst_mac, src, dst, tcp)
    }
    #[inline]
    fn emit_compact_frame<S: CompactSegment>(
        buf: &mut [u8],
        vlan: Option<VlanId>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        segment: &S,
    ) -> Result<usize> {
        emit_compact_frame(buf, vlan, src_mac, dst_mac, src, dst, segment)
    }
    fn ports_exhausted(e: PortsExhausted) -> StackError {
        StackError::PortsExhausted(e)
    }
    fn flow_table(max_entries: usize, seed: u64) -> FlowTable {
        FlowTable::with_capacity(max_entries, seed)
    }
    fn time_wait_table(capacity: usize, seed: u64) -> TimeWaitTable {
        TimeWaitTable::with_capacity(capacity, seed)
    }
    fn ingress(stack: &mut Stack, now: Instant, frame: &[u8]) {
        stack.process_frame(now, frame);
    }
    fn process_other(stack: &mut Stack, now: Instant, frame: &[u8]) {
        stack.process_arp_or_icmp(now, frame);
    }
    fn request_neighbor(
        stack: &mut Stack,
        now: Instant,
        src: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Resolve {
        if stack.request_arp(now, src, target) {
            Resolve::Waiting
        } else {
            Resolve::Unreachable
        }
    }
    #[inline(always)]
    fn neighbor_protocol_timers(_: &mut Stack, _: Instant) {}
    #[inline(always)]
    fn next_neighbor_protocol_timer(_: &Stack) -> Option<Instant> {
        None
    }
}

impl StackFamily for Ipv6Addr {
    type SocketAddr = SocketAddrV6;
    type IpRepr = Ipv6Repr;
    const HANDLE_TAG: u32 = HANDLE_V6;

    #[inline]
    fn split(sa: SocketAddrV6) -> (Ipv6Addr, u16) {
        (*sa.ip(), sa.port())
    }
    fn socket_addr(ip: Ipv6Addr, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(ip, port, 0, 0)
    }
    #[inline]
    fn is_unspecified_addr(self) -> bool {
        self.is_unspecified()
    }
    #[inline]
    fn local_ips(cfg: &StackConfig) -> &[Ipv6Addr] {
        &cfg.ips6
    }
    #[inline(always)]
    fn ip_addrs(ip: &Ipv6Repr) -> (Ipv6Addr, Ipv6Addr) {
        (ip.src_addr, ip.dst_addr)
    }
    #[inline]
    fn parse_frame<'a, 'o>(
        frame: &'a [u8],
        slot: &'o mut Option<TcpFrame<'a, Ipv6Repr>>,
    ) -> Result<&'o mut TcpFrame<'a, Ipv6Repr>> {
        // A placeholder for the layers' parsers to overwrite.
        let v4 = TcpFrame::empty();
        let out = slot.insert(TcpFrame {
            eth: v4.eth,
            vlan: None,
            ip: Ipv6Repr {
                src_addr: Ipv6Addr::UNSPECIFIED,
                dst_addr: Ipv6Addr::UNSPECIFIED,
                next_header: next_header::TCP,
                payload_len: 0,
                hop_limit: 0,
            },
            tcp: v4.tcp,
        });
        parse_tcp6_frame_vlan(frame, out)?;
        Ok(out)
    }
    #[inline]
    fn emit_frame(
        buf: &mut [u8],
        vlan: Option<VlanId>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        tcp: &TcpRepr,
    ) -> Result<usize> {
        match vlan {
            None => emit_tcp6_frame(buf, src_mac, dst_mac, src, dst, tcp),
            Some(vid) => {
                // The untagged frame written a tag's length in, then the MACs and the tag in
                // front of its EtherType (0x86dd, already in place).
                let inner = buf
                    .get_mut(vlan::TAG_LEN..)
                    .ok_or(crate::wire::Error::Truncated)?;
                let len = emit_tcp6_frame(inner, src_mac, dst_mac, src, dst, tcp)?;
                emit_l2(buf, src_mac, dst_mac, Some(vid), EtherType::Ipv6);
                Ok(len + vlan::TAG_LEN)
            }
        }
    }
    fn ports_exhausted(e: PortsExhausted<Ipv6Addr>) -> StackError {
        StackError::PortsExhausted6(e)
    }
    fn flow_table(max_entries: usize, seed: u64) -> FlowTable<Ipv6Addr> {
        FlowTable::<Ipv6Addr>::new(max_entries, seed)
    }
    fn time_wait_table(capacity: usize, seed: u64) -> TimeWaitTable<Ipv6Addr> {
        TimeWaitTable::<Ipv6Addr>::new(capacity, seed)
    }
    fn ingress(stack: &mut Stack<Ipv6Addr>, now: Instant, frame: &[u8]) {
        stack.process_frame(now, frame);
    }
    fn process_other(stack: &mut Stack<Ipv6Addr>, now: Instant, frame: &[u8]) {
        stack.process_ipv6_other(now, frame);
    }
    fn request_neighbor(
        stack: &mut Stack<Ipv6Addr>,
        now: Instant,
        src: Ipv6Addr,
        target: Ipv6Addr,
    ) -> Resolve {
        stack.request_nd(now, src, target)
    }
    fn neighbor_protocol_timers(stack: &mut Stack<Ipv6Addr>, now: Instant) {
        stack.nd_timers(now);
    }
    fn next_neighbor_protocol_timer(stack: &Stack<Ipv6Addr>) -> Option<Instant> {
        stack.nd.next_timer()
    }
}

/// Parses an Ethernet [+ one 802.1Q tag] / IPv6 / TCP frame into `out`, checksum included.
/// `Unsupported` for another EtherType or upper layer, for a rejected extension header (the
/// caller counts it by type, `nd6.rs`) and for two tags.
fn parse_tcp6_frame_vlan<'a>(frame: &'a [u8], out: &mut TcpFrame<'a, Ipv6Repr>) -> Result<()> {
    let l2 = if frame.len() >= ethernet::HEADER_LEN
        && EthernetFrame::new_unchecked(frame).ethertype() == EtherType::Ipv6
    {
        // Untagged: the common case, without the tag parser.
        let eth_frame = EthernetFrame::new_checked(frame)?;
        out.eth = EthernetRepr::parse(&eth_frame)?;
        out.vlan = None;
        eth_frame.payload()
    } else {
        let l2 = parse_l2(frame)?;
        if l2.ethertype() != EtherType::Ipv6 {
            return Err(crate::wire::Error::Unsupported);
        }
        out.eth = l2.eth;
        out.vlan = l2.vlan;
        l2.payload
    };
    let packet = Ipv6Packet::new_checked(l2)?;
    out.ip = Ipv6Repr::parse(&packet)?;
    if out.ip.next_header != next_header::TCP {
        return Err(crate::wire::Error::Unsupported);
    }
    let payload = packet.payload();
    let upper = &payload[payload.len() - out.ip.payload_len..];
    let tcp = TcpPacket::new_checked(upper)?;
    TcpRepr::parse_into(&tcp, out.ip.src_addr, out.ip.dst_addr, &mut out.tcp)
}

/// The upper-layer bytes of a validated IPv6 packet.
pub(super) fn ipv6_upper<'a>(packet: &Ipv6Packet<&'a [u8]>, ip: &Ipv6Repr) -> &'a [u8] {
    let payload = packet.payload();
    &payload[payload.len() - ip.payload_len..]
}

const _: () = assert!(ipv6::HEADER_LEN == 40);

/// Whether `frame` is IPv6 by its EtherType (0x86dd, untagged or inside one 802.1Q tag):
/// what a core with both stacks dispatches on before either parses.
#[inline]
pub fn is_ipv6_frame(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x86, 0xdd]) => true,
        Some([0x81, 0x00]) => frame.get(16..18) == Some(&[0x86, 0xdd]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_frames_by_ethertype() {
        let mut f = vec![0u8; 60];
        assert!(!is_ipv6_frame(&f));
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(is_ipv6_frame(&f));
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!is_ipv6_frame(&f));
        f[12..18].copy_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x86, 0xdd]);
        assert!(is_ipv6_frame(&f));
        f[16..18].copy_from_slice(&[0x08, 0x06]);
        assert!(!is_ipv6_frame(&f));
        assert!(!is_ipv6_frame(&f[..13]));
        assert!(!is_ipv6_frame(&[0x81; 15]));
    }
}
