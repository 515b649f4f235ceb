//! ICMP for the tests: error frames quoting a segment (forged, or as a router would send
//! them; ICMPv4, ICMPv6 Packet Too Big and Destination Unreachable), and [`MtuRouter`], a simulator host wrapper that
//! plays a router with a smaller next-hop MTU in front of a host (IPv4 and IPv6).

use xtcp::link::memory::MemoryLink;
use xtcp::sim::Host;
use xtcp::time::Instant;
use xtcp::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use xtcp::wire::frame::emit_icmpv6_frame;
use xtcp::wire::icmpv4::{self, Icmpv4Message, QUOTED_PAYLOAD_LEN, Unreachable};
use xtcp::wire::icmpv6::Icmpv6Repr;
use xtcp::wire::ipv4::Ipv4Packet;
use xtcp::wire::ipv6::{self, Ipv6Packet};
use xtcp::wire::{EthernetAddress, Ipv4Addr, Ipv6Addr};

/// An Ethernet/IPv6/ICMPv6 Packet Too Big frame from `src` (MAC, address) to `dst`
/// reporting `mtu` and quoting `quote` (an IPv6 packet, from its header on), cut so that the
/// ICMPv6 packet fits the minimum MTU, 1280 bytes (RFC 4443 §3.2).
pub fn packet_too_big_frame(
    src: (EthernetAddress, Ipv6Addr),
    dst: (EthernetAddress, Ipv6Addr),
    mtu: u32,
    quote: &[u8],
) -> Vec<u8> {
    let quote = &quote[..quote.len().min(usize::from(ipv6::MIN_MTU) - 40 - 8)];
    let repr = Icmpv6Repr::PacketTooBig {
        mtu,
        invoking: quote,
    };
    let mut frame = vec![0u8; 14 + 40 + 8 + quote.len()];
    let n = emit_icmpv6_frame(&mut frame, src.0, dst.0, src.1, dst.1, &repr).expect("sized");
    frame.truncate(n);
    frame
}

/// An Ethernet/IPv6/ICMPv6 Destination Unreachable frame (RFC 4443 §3.1) from `src` to
/// `dst` with `code`, quoting `quote` cut as in [`packet_too_big_frame`].
pub fn dst_unreachable6_frame(
    src: (EthernetAddress, Ipv6Addr),
    dst: (EthernetAddress, Ipv6Addr),
    code: u8,
    quote: &[u8],
) -> Vec<u8> {
    let quote = &quote[..quote.len().min(usize::from(ipv6::MIN_MTU) - 40 - 8)];
    let repr = Icmpv6Repr::DstUnreachable {
        code,
        invoking: quote,
    };
    let mut frame = vec![0u8; 14 + 40 + 8 + quote.len()];
    let n = emit_icmpv6_frame(&mut frame, src.0, dst.0, src.1, dst.1, &repr).expect("sized");
    frame.truncate(n);
    frame
}

/// The Packet Too Big a router at `router` sends back to the sender of `frame` (an
/// Ethernet/IPv6 frame it refused), quoting as much of it as fits (see
/// [`packet_too_big_frame`]). `None` if `frame` is not IPv6.
pub fn packet_too_big_for(
    frame: &[u8],
    router: (EthernetAddress, Ipv6Addr),
    mtu: u32,
) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let quote = eth.payload();
    let src_mac = EthernetRepr::parse(&eth).ok()?.src_addr;
    Some(packet_too_big_frame(
        router,
        (src_mac, ip.src_addr()),
        mtu,
        quote,
    ))
}

/// An Ethernet/IPv4/ICMP error frame from `src` (MAC, address) to `dst` quoting `quote` (an
/// IPv4 datagram, from its header on).
pub fn icmp_frame(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    message: Icmpv4Message,
    quote: &[u8],
) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + icmpv4::HEADER_LEN + quote.len()];
    let n = icmpv4::emit_error_frame(&mut frame, src, dst, message, quote).expect("sized");
    frame.truncate(n);
    frame
}

/// The error a router at `router` (MAC, address) sends back to the sender of `frame` (an
/// Ethernet/IPv4 frame it refused): it quotes the IPv4 header and the first 8 bytes after
/// it. `None` if `frame` is not IPv4.
pub fn error_for(
    frame: &[u8],
    router: (EthernetAddress, Ipv4Addr),
    message: Icmpv4Message,
) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    if eth_repr.ethertype != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let quote_len = usize::from(ip.header_len()) + QUOTED_PAYLOAD_LEN;
    let quote = eth.payload().get(..quote_len)?;
    Some(icmp_frame(
        router,
        (eth_repr.src_addr, ip.src_addr()),
        message,
        quote,
    ))
}

/// The IPv4 total length of an Ethernet/IPv4 frame, or the IPv6 packet length (fixed header
/// and payload) of an Ethernet/IPv6 frame (0 if it is neither).
pub fn ip_len(frame: &[u8]) -> usize {
    match EthernetFrame::new_checked(frame) {
        Ok(eth) if eth.ethertype() == EtherType::Ipv4 => {
            Ipv4Packet::new_checked(eth.payload()).map_or(0, |p| usize::from(p.total_len()))
        }
        Ok(eth) if eth.ethertype() == EtherType::Ipv6 => Ipv6Packet::new_checked(eth.payload())
            .map_or(0, |p| ipv6::HEADER_LEN + usize::from(p.payload_len())),
        _ => 0,
    }
}

/// A router with next-hop MTU `mtu` in front of a host: of the frames the host sends, an
/// IPv4 datagram longer than `mtu` (DF is always set) is dropped and answered with
/// Fragmentation Needed (`next_hop_mtu`: what the router reports; RFC 1191 routers report
/// `mtu`, older ones 0), an IPv6 packet longer than `mtu` with Packet Too Big (reporting
/// `next_hop_mtu`, from `router6`), delivered to the host like any received frame.
pub struct MtuRouter<H> {
    pub inner: H,
    pub mtu: usize,
    pub next_hop_mtu: u16,
    pub router: (EthernetAddress, Ipv4Addr),
    /// The router's IPv6 address (default `2001:db8::fe`; its MAC is `router`'s).
    pub router6: Ipv6Addr,
    /// Datagrams dropped (and answered).
    pub dropped: usize,
    /// Largest datagram let through.
    pub largest_passed: usize,
}

impl<H> MtuRouter<H> {
    pub fn new(inner: H, mtu: usize, router: (EthernetAddress, Ipv4Addr)) -> MtuRouter<H> {
        MtuRouter {
            inner,
            mtu,
            next_hop_mtu: mtu as u16,
            router,
            router6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe),
            dropped: 0,
            largest_passed: 0,
        }
    }
}

impl<H: Host> Host for MtuRouter<H> {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.inner.poll(now, link);
        for frame in link.take_tx() {
            let len = ip_len(&frame);
            if len <= self.mtu {
                self.largest_passed = self.largest_passed.max(len);
                link.push_tx(&frame);
                continue;
            }
            self.dropped += 1;
            let message = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded {
                next_hop_mtu: self.next_hop_mtu,
            });
            let v6 = (self.router.0, self.router6);
            let ptb = packet_too_big_for(&frame, v6, u32::from(self.next_hop_mtu));
            if let Some(icmp) = ptb.or_else(|| error_for(&frame, self.router, message)) {
                // The simulator polls a host with a received frame waiting.
                link.push_rx(&icmp);
            }
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }
}
