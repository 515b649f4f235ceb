//! Whole-frame helpers for the hot path (Ethernet [+ one 802.1Q tag] + IPv4 + TCP in one
//! call; Ethernet + IPv6 + TCP in another; Ethernet + IPv6 + ICMPv6 for Neighbor Discovery)
//! and a tcpdump-style one-line description of any frame for test failures and traces.
//!
//! [`parse_l2`], [`parse_tcp_frame`] and the emitters neither allocate nor panic (emit reports
//! a short buffer as `Error::Truncated`). [`describe_frame`] allocates its `String`: it is for
//! diagnostics only, never for the data path.
//!
//! VLAN tags: the parsers accept untagged frames and frames with exactly one 802.1Q tag
//! (reported in `vlan`); a second tag, or an 802.1ad (QinQ) outer tag, is `Error::Unsupported`
//! from [`parse_l2`]. Which VLAN is ours is the caller's business (the stack compares the VID).

use core::fmt::{self, Write};
use core::net::{Ipv4Addr, Ipv6Addr};

use super::arp::{ArpPacket, ArpRepr};
use super::checksum::{self, IpAddress};
use super::ethernet::{self, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use super::icmpv6::{self, Icmpv6Packet, Icmpv6Repr};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr, PROTOCOL_TCP};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr, next_header};
use super::tcp::{self, CompactSegment, TcpPacket, TcpRepr, flags};
use super::vlan::{self, TPID_8021AD, TPID_8021Q, VlanId, VlanPacket, VlanRepr};
use super::{Error, Result};

/// The link layer of a received frame: the Ethernet header, at most one 802.1Q tag, and the
/// bytes after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Frame<'a> {
    /// The Ethernet header (for a tagged frame its `ethertype` is the TPID, 0x8100).
    pub eth: EthernetRepr,
    /// The 802.1Q tag, if the frame carries one.
    pub vlan: Option<VlanRepr>,
    /// What follows the header and tag (padding included).
    pub payload: &'a [u8],
}

impl L2Frame<'_> {
    /// The EtherType of the payload (inside the tag, for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        match self.vlan {
            Some(t) => t.ethertype,
            None => self.eth.ethertype,
        }
    }

    /// The frame's VID, 0 when untagged or priority-tagged (802.1Q: VID 0 carries only a
    /// priority and belongs to the port's untagged VLAN).
    #[inline]
    pub fn vid(&self) -> u16 {
        vid_of(self.vlan)
    }
}

/// The VID of an optional tag, 0 for none (see [`L2Frame::vid`]).
#[inline]
pub fn vid_of(vlan: Option<VlanRepr>) -> u16 {
    match vlan {
        Some(t) => t.vid,
        None => 0,
    }
}

/// Parses the Ethernet header and at most one 802.1Q tag. `Error::Unsupported` for a frame
/// with two tags or an 802.1ad outer tag (QinQ); `Error::Malformed` for VID 4095.
#[inline]
pub fn parse_l2(frame: &[u8]) -> Result<L2Frame<'_>> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_frame)?;
    match u16::from(eth.ethertype) {
        TPID_8021Q => {}
        TPID_8021AD => return Err(Error::Unsupported),
        _ => {
            return Ok(L2Frame {
                eth,
                vlan: None,
                payload: eth_frame.payload(),
            });
        }
    }
    let tag = VlanPacket::new_checked(eth_frame.payload())?;
    let repr = VlanRepr::parse(&tag)?;
    Ok(L2Frame {
        eth,
        vlan: Some(repr),
        payload: tag.payload(),
    })
}

/// Length of the link-layer header [`emit_l2`] writes: 14 bytes, 18 with a tag.
#[inline]
pub const fn l2_header_len(vlan: Option<VlanId>) -> usize {
    match vlan {
        Some(_) => ethernet::HEADER_LEN + vlan::TAG_LEN,
        None => ethernet::HEADER_LEN,
    }
}

/// Writes the Ethernet header, tagged with `vlan` (priority 0) when given, for a payload of
/// `ethertype`; returns the header length ([`l2_header_len`]).
///
/// # Panics
/// If `buf` is shorter than [`l2_header_len`]`(vlan)`.
#[inline]
pub fn emit_l2(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    vlan: Option<VlanId>,
    ethertype: EtherType,
) -> usize {
    let outer = match vlan {
        Some(_) => EtherType::from(TPID_8021Q),
        None => ethertype,
    };
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: outer,
    }
    .emit(&mut EthernetFrame::new_unchecked(
        &mut buf[..ethernet::HEADER_LEN],
    ));
    match vlan {
        Some(vid) => {
            let tag = &mut buf[ethernet::HEADER_LEN..ethernet::HEADER_LEN + vlan::TAG_LEN];
            VlanRepr::new(vid, ethertype).emit(&mut VlanPacket::new_unchecked(tag));
            ethernet::HEADER_LEN + vlan::TAG_LEN
        }
        None => ethernet::HEADER_LEN,
    }
}

/// A parsed Ethernet/IP/TCP frame; the TCP payload borrows from the frame. `IP` is
/// [`Ipv4Repr`] (from [`parse_tcp_frame`]) or [`Ipv6Repr`] (from [`parse_tcp6_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame<'a, IP = Ipv4Repr> {
    pub eth: EthernetRepr,
    /// The frame's 802.1Q tag, if any (`eth.ethertype` is then 0x8100). IPv6 frames are
    /// parsed untagged only (`None`).
    pub vlan: Option<VlanRepr>,
    pub ip: IP,
    pub tcp: TcpRepr<'a>,
}

impl TcpFrame<'_> {
    /// A placeholder for a parser to overwrite (the IPv6 one): zero addresses, no flags.
    pub fn empty() -> TcpFrame<'static> {
        TcpFrame {
            eth: EthernetRepr {
                src_addr: EthernetAddress([0; 6]),
                dst_addr: EthernetAddress([0; 6]),
                ethertype: EtherType::Ipv4,
            },
            vlan: None,
            ip: Ipv4Repr {
                src_addr: Ipv4Addr::UNSPECIFIED,
                dst_addr: Ipv4Addr::UNSPECIFIED,
                protocol: PROTOCOL_TCP,
                payload_len: 0,
                ttl: 0,
            },
            tcp: TcpRepr::default(),
        }
    }
}

/// A parsed Ethernet/IPv6/TCP frame.
pub type TcpFrame6<'a> = TcpFrame<'a, Ipv6Repr>;

/// Parses and validates an Ethernet/IPv4/TCP frame, untagged or with one 802.1Q tag,
/// checksums included. Trailing Ethernet padding is ignored. A frame of another EtherType or
/// IP protocol, or with two tags, is `Error::Unsupported`.
#[inline]
pub fn parse_tcp_frame(frame: &[u8]) -> Result<TcpFrame<'_>> {
    let mut slot = None;
    parse_tcp_frame_in(frame, &mut slot).map(|f| *f)
}

/// [`parse_tcp_frame`] into `out` (every field overwritten on success; on error `out` is
/// unchanged).
#[inline]
pub fn parse_tcp_frame_into<'a>(frame: &'a [u8], out: &mut TcpFrame<'a>) -> Result<()> {
    let mut slot = None;
    *out = *parse_tcp_frame_in(frame, &mut slot)?;
    Ok(())
}

/// [`parse_tcp_frame`] into `slot`, for the ingress hot path: the frame is parsed in place
/// (not returned and copied, ~130 bytes) and needs no placeholder, only `None` (18 stores
/// per frame fewer than a [`TcpFrame`] placeholder, which LLVM's DSE does not remove). On
/// success `slot` holds the frame and the result borrows it; on error `slot` holds a
/// partial frame or nothing.
///
/// The common frame (untagged, a 20-byte IPv4 header, TCP, valid) is parsed at fixed offsets
/// by `parse_common`; anything else, and every error, by [`parse_tcp_frame_general`]: the
/// same result for every input (`fast_path_agrees_with_the_general_parser` in this module's
/// tests, `parse_everything` in `tests/wire_proptest.rs`).
#[inline]
pub fn parse_tcp_frame_in<'a, 'o>(
    frame: &'a [u8],
    slot: &'o mut Option<TcpFrame<'a>>,
) -> Result<&'o mut TcpFrame<'a>> {
    match parse_common(frame, slot) {
        Ok(parsed) => parsed,
        // Written whole and only on success (measured: 33 instructions per lifecycle fewer
        // than the general parser writing in place, in `Stack::process_frame`).
        Err(slot) => Ok(slot.insert(parse_tcp_frame_general(frame)?)),
    }
}

/// Offset of the IPv4 header in an untagged frame.
const COMMON_IP: usize = ethernet::HEADER_LEN;
/// Offset of the TCP header behind a 20-byte IPv4 header.
const COMMON_TCP: usize = COMMON_IP + ipv4::HEADER_LEN;
/// The shortest common frame: the three headers without options.
const COMMON_MIN: usize = COMMON_TCP + tcp::HEADER_LEN;

/// Native-endian `u32` at `at` of a fixed-size array, widened (one load, no bounds check
/// for a constant `at`).
#[inline(always)]
fn ne32<const N: usize>(h: &[u8; N], at: usize) -> u64 {
    u64::from(u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]))
}

/// Native-endian `u64` at `at` of a fixed-size array (one load, no bounds check for a
/// constant `at`).
#[inline(always)]
fn ne64<const N: usize>(h: &[u8; N], at: usize) -> u64 {
    u64::from_ne_bytes([
        h[at],
        h[at + 1],
        h[at + 2],
        h[at + 3],
        h[at + 4],
        h[at + 5],
        h[at + 6],
        h[at + 7],
    ])
}

/// The native-endian sum ([`checksum::sum_ne`]) of a TCP option block: the lengths of the
/// layouts `TcpRepr::parse` matches whole (none, 12: NOP NOP TS; 20 and 24: the SYN's) as
/// fixed-size arrays, word by word; any other length by the general loop.
#[inline(always)]
fn options_sum(o: &[u8]) -> u64 {
    use checksum::add_ne;
    if let Ok(a) = <&[u8; 12]>::try_from(o) {
        return add_ne(ne64(a, 0), ne32(a, 8));
    }
    if o.is_empty() {
        return 0;
    }
    if let Ok(a) = <&[u8; 24]>::try_from(o) {
        return add_ne(add_ne(ne64(a, 0), ne64(a, 8)), ne64(a, 16));
    }
    if let Ok(a) = <&[u8; 20]>::try_from(o) {
        return add_ne(add_ne(ne64(a, 0), ne64(a, 8)), ne32(a, 16));
    }
    checksum::sum_ne(o)
}

/// The frame almost every segment arrives in, read at fixed offsets with one length check up
/// front: untagged, EtherType IPv4, version 4 with a 20-byte header, not a fragment,
/// protocol TCP, the IPv4 total length and the TCP data offset consistent with each other
/// and with the frame, both checksums verifying (the addresses loaded once for the IPv4
/// header's sum and the TCP pseudo-header's), and the TCP flags valid: then the frame is in
/// `slot`, each field written once, and the result is that of its options (a malformed
/// option block is reported by [`parse_tcp_frame_general`], which reaches it after the same
/// checks). Anything else gives `slot` back (`Err`), possibly holding a partial frame (the
/// fields are written before the checksums are verified), for the general parser to read
/// (and report) as before.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn parse_common<'a, 'o>(
    frame: &'a [u8],
    slot: &'o mut Option<TcpFrame<'a>>,
) -> core::result::Result<Result<&'o mut TcpFrame<'a>>, &'o mut Option<TcpFrame<'a>>> {
    let Some(h) = frame.first_chunk::<COMMON_MIN>() else {
        return Err(slot);
    };
    // EtherType 0x0800, version 4 / IHL 5, protocol TCP; MF clear and offset 0 (RFC 791 §3.1).
    if h[12..15] != [0x08, 0x00, 0x45]
        || h[COMMON_IP + 9] != PROTOCOL_TCP
        || h[COMMON_IP + 6] & 0x3f != 0
        || h[COMMON_IP + 7] != 0
    {
        return Err(slot);
    }
    let total_len = usize::from(u16::from_be_bytes([h[COMMON_IP + 2], h[COMMON_IP + 3]]));
    // The lengths of the options (the data offset at least 5 words, RFC 9293 §3.1) and of
    // the data (the IPv4 total length covering both headers and the options), then the
    // segment behind the fixed TCP header: in this form the compiler sees every later split
    // in bounds (no check of its own).
    let Some(options_len) = (usize::from(h[COMMON_TCP + 12] >> 4) * 4).checked_sub(tcp::HEADER_LEN)
    else {
        return Err(slot);
    };
    if total_len < ipv4::HEADER_LEN + tcp::HEADER_LEN + options_len {
        return Err(slot);
    }
    let Some(rest) = frame.get(COMMON_MIN..COMMON_IP + total_len) else {
        return Err(slot);
    };
    let Some((_, t)) = h.split_last_chunk::<{ tcp::HEADER_LEN }>() else {
        return Err(slot);
    };
    let Some((options, payload)) = rest.split_at_checked(options_len) else {
        return Err(slot);
    };
    // The frame is written before the checksums are verified (the `slot` goes back to the
    // general parser if they fail): each field is stored as it is read, not held in a
    // register (measured: fewer spills).
    let Ok(tcp) = TcpRepr::fixed_fields(t, payload) else {
        return Err(slot);
    };
    *slot = Some(TcpFrame {
        eth: EthernetRepr {
            dst_addr: EthernetAddress([h[0], h[1], h[2], h[3], h[4], h[5]]),
            src_addr: EthernetAddress([h[6], h[7], h[8], h[9], h[10], h[11]]),
            ethertype: EtherType::Ipv4,
        },
        vlan: None,
        ip: Ipv4Repr {
            src_addr: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
            dst_addr: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
            protocol: PROTOCOL_TCP,
            payload_len: total_len - ipv4::HEADER_LEN,
            ttl: h[COMMON_IP + 8],
        },
        tcp,
    });
    // Source and destination address: in the IPv4 header's sum and the pseudo-header's.
    let addrs = ne64(h, COMMON_IP + 12);
    let ip_sum = checksum::add_ne(
        checksum::add_ne(ne64(h, COMMON_IP), ne32(h, COMMON_IP + 8)),
        addrs,
    );
    if !checksum::verifies_ne(ip_sum) {
        return Err(slot);
    }
    // The segment's sum in three parts, each starting at an even offset: the fixed header
    // (read from `h`), the options (the usual lengths as fixed-size arrays), the data (often
    // none). With them the rest of the pseudo-header (RFC 9293 §3.1): zero, protocol, TCP
    // length; its terms and the header's last word are below 2^33, so they add plainly.
    let tcp_len = (total_len - ipv4::HEADER_LEN) as u32;
    let proto_len = u64::from(u32::from_ne_bytes(
        ((u32::from(PROTOCOL_TCP) << 16) | tcp_len).to_be_bytes(),
    ));
    let head = checksum::add_ne(
        checksum::add_ne(ne64(h, COMMON_TCP), ne64(h, COMMON_TCP + 8)),
        ne32(h, COMMON_TCP + 16) + proto_len,
    );
    let data = if payload.is_empty() {
        0
    } else {
        checksum::sum_ne(payload)
    };
    let tcp_sum = checksum::add_ne(
        checksum::add_ne(checksum::add_ne(head, options_sum(options)), data),
        addrs,
    );
    if !checksum::verifies_ne(tcp_sum) {
        return Err(slot);
    }
    let Some(f) = slot else {
        return Err(slot);
    };
    Ok(match f.tcp.read_options(options) {
        Ok(()) => Ok(f),
        Err(_) => parse_tcp_frame_general(frame).map(|g| {
            *f = g;
            f
        }),
    })
}

/// [`parse_tcp_frame`] by the layers' own parsers, for any frame, the errors as documented
/// there: what [`parse_tcp_frame_into`] falls back to. Public (hidden) for the test that
/// compares it with the fixed-offset path.
#[doc(hidden)]
#[inline(never)]
pub fn parse_tcp_frame_general(frame: &[u8]) -> Result<TcpFrame<'_>> {
    let mut out = TcpFrame::empty();
    parse_layers_into(frame, &mut out)?;
    Ok(out)
}

/// [`parse_tcp_frame_general`] into `out`.
#[inline]
fn parse_layers_into<'a>(frame: &'a [u8], out: &mut TcpFrame<'a>) -> Result<()> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    out.eth = EthernetRepr::parse(&eth_frame)?;
    // Untagged IPv4 first, as before tags existed: a tag costs nothing when absent.
    let payload = if out.eth.ethertype == EtherType::Ipv4 {
        out.vlan = None;
        eth_frame.payload()
    } else {
        let (tag, payload) = parse_ipv4_tag(out.eth.ethertype, eth_frame.payload())?;
        out.vlan = Some(tag);
        payload
    };
    let ip_packet = Ipv4Packet::new_unchecked(payload);
    // A header starting 0x45 (version 4, no options) gets from `Ipv4Repr::parse` the
    // length checks `new_checked` would make, with the same errors in the same order (its
    // version check passes): made once, not twice. Any other first byte is checked as before.
    if payload.first() != Some(&0x45) {
        ip_packet.check_len()?;
    }
    out.ip = Ipv4Repr::parse(&ip_packet)?;
    if out.ip.protocol != PROTOCOL_TCP {
        return Err(Error::Unsupported);
    }
    let tcp_packet = TcpPacket::new_checked(ip_packet.payload())?;
    TcpRepr::parse_into(&tcp_packet, out.ip.src_addr, out.ip.dst_addr, &mut out.tcp)
}

/// The tag and payload of a frame whose EtherType is `outer`, when that is one 802.1Q tag
/// carrying IPv4; `Error::Unsupported` otherwise (another EtherType, two tags).
#[inline(never)]
fn parse_ipv4_tag(outer: EtherType, payload: &[u8]) -> Result<(VlanRepr, &[u8])> {
    if u16::from(outer) != TPID_8021Q {
        return Err(Error::Unsupported);
    }
    let tag = VlanPacket::new_checked(payload)?;
    let repr = VlanRepr::parse(&tag)?;
    if repr.ethertype != EtherType::Ipv4 {
        return Err(Error::Unsupported);
    }
    Ok((repr, tag.payload()))
}

/// Length of the Ethernet/IPv4/TCP frame [`emit_tcp_frame`] writes for `tcp`, without
/// minimum-size padding (the NIC or the veth pads short frames).
pub fn tcp_frame_len(tcp: &TcpRepr) -> usize {
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp.buffer_len()
}

/// Writes a whole Ethernet/IPv4/TCP frame (TTL 64, DF, both checksums) at the start of `buf`
/// and returns its length. `Error::Truncated` if `buf` is too short; `Error::Malformed` if the
/// segment is too large for an IPv4 datagram.
pub fn emit_tcp_frame(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    // The options' layout once, for the length and for the segment.
    let (blocks, options_len) = tcp.layout();
    let tcp_len = tcp::HEADER_LEN + options_len + tcp.payload.len();
    let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len;
    if buf.len() < len {
        return Err(Error::Truncated);
    }
    if ipv4::HEADER_LEN + tcp_len > usize::from(u16::MAX) {
        return Err(Error::Malformed);
    }
    let (headers, segment) = buf[..len].split_at_mut(HEADERS_LEN);
    let pseudo = emit_eth_ipv4(headers, src_mac, dst_mac, src_ip, dst_ip, tcp_len);
    tcp.emit_laid_out(segment, blocks, options_len, pseudo);
    Ok(len)
}

/// The Ethernet and IPv4 headers of [`emit_tcp_frame`] (and [`emit_compact_frame`]) into
/// `headers` ([`HEADERS_LEN`] bytes) for a segment of `tcp_len` bytes; returns the TCP
/// pseudo-header's native-endian sum.
#[inline(always)]
fn emit_eth_ipv4(
    headers: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tcp_len: usize,
) -> u64 {
    // Ethernet and IPv4 headers in one write, as `EthernetRepr::emit` and `Ipv4Repr::emit`
    // lay them out (no IP options, identification 0, DF, TTL 64; the unit tests compare the
    // two). The addresses' native-endian sum serves both the IPv4 header checksum (RFC 791,
    // RFC 1071) and the TCP pseudo-header (RFC 9293 §3.1).
    let (s, d) = (src_ip.octets(), dst_ip.octets());
    let addrs = u64::from(u32::from_ne_bytes(s)) + u64::from(u32::from_ne_bytes(d));
    let [t0, t1] = ((ipv4::HEADER_LEN + tcp_len) as u16).to_be_bytes();
    let ip_words = [
        [0x45, 0, t0, t1],
        [0, 0, 0x40, 0],
        [ipv4::DEFAULT_TTL, PROTOCOL_TCP, 0, 0],
    ];
    let ip_sum = addrs
        + ip_words
            .iter()
            .map(|w| u64::from(u32::from_ne_bytes(*w)))
            .sum::<u64>();
    let [c0, c1] = (!checksum::finish_ne(ip_sum)).to_be_bytes();
    // The MACs copied as they are (a 4- and a 2-byte move each: shifting them into 8-byte
    // words cost more), then the EtherType and the IPv4 header as 4-, 8-, 8- and 2-byte
    // stores, rather than 34 byte stores.
    let [e0, e1] = u16::from(EtherType::Ipv4).to_be_bytes();
    let w2 = [t0, t1, 0, 0, 0x40, 0, ipv4::DEFAULT_TTL, PROTOCOL_TCP];
    let w3 = [c0, c1, s[0], s[1], s[2], s[3], d[0], d[1]];
    let (h0, rest) = headers.split_at_mut(6);
    h0.copy_from_slice(&dst_mac.0);
    let (h1, rest) = rest.split_at_mut(6);
    h1.copy_from_slice(&src_mac.0);
    let (h1, rest) = rest.split_at_mut(4);
    h1.copy_from_slice(&[e0, e1, 0x45, 0]);
    let (h2, rest) = rest.split_at_mut(8);
    h2.copy_from_slice(&w2);
    let (h3, h4) = rest.split_at_mut(8);
    h3.copy_from_slice(&w3);
    h4.copy_from_slice(&[d[2], d[3]]);
    addrs
        + u64::from(u16::from_ne_bytes([0, PROTOCOL_TCP]))
        + u64::from(u32::from_ne_bytes((tcp_len as u32).to_be_bytes()))
}

/// [`emit_tcp_frame_vlan`] for a segment in its compact form (a listener's SYN-ACK,
/// [`tcp::SynAckRepr`]; a bare FIN+ACK or pure ACK, [`tcp::BareRepr`]): the same bytes as for
/// [`CompactSegment::repr`] (the unit tests compare them for every option set), the segment
/// written by [`CompactSegment::emit_segment`] without the generic segment's layout work. A
/// tagged frame takes the generic path.
#[inline]
pub fn emit_compact_frame<S: CompactSegment>(
    buf: &mut [u8],
    vlan: Option<VlanId>,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    segment: &S,
) -> Result<usize> {
    if let Some(vid) = vlan {
        return emit_tagged(buf, vid, src_mac, dst_mac, src_ip, dst_ip, &segment.repr());
    }
    segment
        .emit_after(buf, HEADERS_LEN, |headers, tcp_len| {
            emit_eth_ipv4(headers, src_mac, dst_mac, src_ip, dst_ip, tcp_len)
        })
        .ok_or(Error::Truncated)
}

/// Test support (the unit tests here and `tests/wire_proptest.rs`): recomputes the IPv4
/// and TCP checksums of a (mutated) untagged Ethernet/IPv4/TCP frame where its lengths
/// allow, so that a mutation reaches the checks behind the checksums.
#[cfg(any(test, feature = "test-hooks"))]
#[doc(hidden)]
pub fn refix_checksums(frame: &mut [u8]) {
    let Some(ip_bytes) = frame.get_mut(ethernet::HEADER_LEN..) else {
        return;
    };
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut *ip_bytes) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let range = usize::from(ip.header_len())..usize::from(ip.total_len());
    if let Ok(mut tcp) = TcpPacket::new_checked(&mut ip_bytes[range]) {
        tcp.fill_checksum(src, dst);
    }
}

/// Ethernet and IPv4 header lengths together: where [`emit_tcp_frame`]'s segment starts.
const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

/// Parses and validates an Ethernet/IPv6/TCP frame, checksum included (extension headers
/// walked as [`Ipv6Repr::parse`] says). Trailing Ethernet padding is ignored. Another
/// EtherType or upper layer is `Error::Unsupported`.
#[inline]
pub fn parse_tcp6_frame(frame: &[u8]) -> Result<TcpFrame6<'_>> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_frame)?;
    if eth.ethertype != EtherType::Ipv6 {
        return Err(Error::Unsupported);
    }
    let (ip, upper) = ipv6_upper(eth_frame.payload())?;
    if ip.next_header != next_header::TCP {
        return Err(Error::Unsupported);
    }
    let tcp = TcpRepr::parse(&TcpPacket::new_checked(upper)?, ip.src_addr, ip.dst_addr)?;
    Ok(TcpFrame {
        eth,
        vlan: None,
        ip,
        tcp,
    })
}

/// The validated IPv6 header of `packet` and its upper-layer bytes.
#[inline]
fn ipv6_upper(packet: &[u8]) -> Result<(Ipv6Repr, &[u8])> {
    let ip_packet = Ipv6Packet::new_checked(packet)?;
    let ip = Ipv6Repr::parse(&ip_packet)?;
    let payload = ip_packet.payload();
    Ok((ip, &payload[payload.len() - ip.payload_len..]))
}

/// Length of the Ethernet/IPv6/TCP frame [`emit_tcp6_frame`] writes for `tcp`.
pub fn tcp6_frame_len(tcp: &TcpRepr) -> usize {
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp.buffer_len()
}

/// Writes a whole Ethernet/IPv6/TCP frame (hop limit 64, no extension headers, TCP
/// checksum over the IPv6 pseudo-header) at the start of `buf` and returns its length.
/// `Error::Truncated` if `buf` is too short; `Error::Malformed` if the segment is larger than
/// an IPv6 payload can be (no jumbograms).
pub fn emit_tcp6_frame(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    let len = tcp6_frame_len(tcp);
    if buf.len() < len {
        return Err(Error::Truncated);
    }
    let tcp_len = tcp.buffer_len();
    if tcp_len > usize::from(u16::MAX) {
        return Err(Error::Malformed);
    }
    let segment = emit_eth_ipv6(
        &mut buf[..len],
        src_mac,
        dst_mac,
        Ipv6Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            next_header: next_header::TCP,
            payload_len: tcp_len,
            hop_limit: ipv6::DEFAULT_HOP_LIMIT,
        },
    );
    tcp.emit(&mut TcpPacket::new_unchecked(segment), src_ip, dst_ip);
    Ok(len)
}

/// Writes the Ethernet and IPv6 headers at the start of `buf` (exactly the frame's length)
/// and returns the rest, for the upper layer.
fn emit_eth_ipv6(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    ip: Ipv6Repr,
) -> &mut [u8] {
    let (eth_hdr, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(eth_hdr));
    let (ip_hdr, upper) = rest.split_at_mut(ipv6::HEADER_LEN);
    ip.emit(&mut Ipv6Packet::new_unchecked(ip_hdr));
    upper
}

/// Parses an Ethernet/IPv6/ICMPv6 frame of a type [`Icmpv6Repr`] handles. A Neighbor
/// Solicitation or Advertisement whose IPv6 Hop Limit is not 255 was forwarded by a router
/// and is `Error::Malformed` (RFC 4861 §7.1.1, §7.1.2).
pub fn parse_icmpv6_frame(frame: &[u8]) -> Result<(EthernetRepr, Ipv6Repr, Icmpv6Repr<'_>)> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_frame)?;
    if eth.ethertype != EtherType::Ipv6 {
        return Err(Error::Unsupported);
    }
    let (ip, upper) = ipv6_upper(eth_frame.payload())?;
    if ip.next_header != next_header::ICMPV6 {
        return Err(Error::Unsupported);
    }
    let icmp = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(upper)?, ip.src_addr, ip.dst_addr)?;
    let nd = !matches!(
        icmp,
        Icmpv6Repr::PacketTooBig { .. } | Icmpv6Repr::DstUnreachable { .. }
    );
    if nd && ip.hop_limit != icmpv6::ND_HOP_LIMIT {
        return Err(Error::Malformed);
    }
    Ok((eth, ip, icmp))
}

/// Length of the frame [`emit_icmpv6_frame`] writes.
pub fn icmpv6_frame_len(icmp: &Icmpv6Repr) -> usize {
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp.buffer_len()
}

/// Writes an Ethernet/IPv6/ICMPv6 frame and returns its length; Neighbor Discovery messages
/// go out with Hop Limit 255, errors (Packet Too Big, Destination Unreachable) with 64.
/// `Error::Truncated` if `buf` is short.
pub fn emit_icmpv6_frame(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    icmp: &Icmpv6Repr,
) -> Result<usize> {
    let len = icmpv6_frame_len(icmp);
    if buf.len() < len {
        return Err(Error::Truncated);
    }
    let hop_limit = match icmp {
        Icmpv6Repr::PacketTooBig { .. } | Icmpv6Repr::DstUnreachable { .. } => {
            ipv6::DEFAULT_HOP_LIMIT
        }
        _ => icmpv6::ND_HOP_LIMIT,
    };
    let ip = Ipv6Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: next_header::ICMPV6,
        payload_len: icmp.buffer_len(),
        hop_limit,
    };
    let upper = emit_eth_ipv6(&mut buf[..len], src_mac, dst_mac, ip);
    icmp.emit(upper, src_ip, dst_ip)?;
    Ok(len)
}

/// [`emit_tcp_frame`], tagged with `vlan` (priority 0) when given: the frame is then
/// [`vlan::TAG_LEN`] bytes longer. Untagged, it costs one branch more than
/// [`emit_tcp_frame`].
#[inline]
pub fn emit_tcp_frame_vlan(
    buf: &mut [u8],
    vlan: Option<VlanId>,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    match vlan {
        None => emit_tcp_frame(buf, src_mac, dst_mac, src_ip, dst_ip, tcp),
        Some(vid) => emit_tagged(buf, vid, src_mac, dst_mac, src_ip, dst_ip, tcp),
    }
}

/// The untagged frame written [`vlan::TAG_LEN`] bytes in, then its MACs moved to the front
/// with the tag after them (the inner EtherType, IPv4, is already in place). Out of line,
/// so that the untagged path of [`emit_tcp_frame_vlan`] stays as small as before.
#[cold]
#[inline(never)]
fn emit_tagged(
    buf: &mut [u8],
    vid: VlanId,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tcp: &TcpRepr,
) -> Result<usize> {
    let inner = buf.get_mut(vlan::TAG_LEN..).ok_or(Error::Truncated)?;
    let len = emit_tcp_frame(inner, src_mac, dst_mac, src_ip, dst_ip, tcp)?;
    emit_l2(buf, src_mac, dst_mac, Some(vid), EtherType::Ipv4);
    Ok(len + vlan::TAG_LEN)
}

/// A one-line, tcpdump-style description of a frame, never panicking on any input:
///
/// - `10.0.0.1:49152 > 10.0.0.2:80 Flags [S.], seq 100, ack 201, win 65535, options [mss
///   1460,wscale 7,sackOK,TS val 1 ecr 0], length 0` (sequence numbers are absolute; a bad
///   TCP checksum is noted as `[bad tcp cksum 0x1234 -> 0x5678]`);
/// - `ARP who-has 10.0.0.2 tell 10.0.0.1`, `ARP reply 10.0.0.2 is-at 02:00:00:00:00:02`;
/// - `10.0.0.1 > 10.0.0.2: ip-proto 17, length 8` for IPv4 that isn't TCP;
/// - `[2001:db8::1]:49152 > [2001:db8::2]:80 Flags [S], ...` for IPv6 TCP, and
///   `2001:db8::1 > ff02::1:ff00:2: neighbor solicitation for 2001:db8::2 from
///   02:00:00:00:00:01` for the ICMPv6 messages [`Icmpv6Repr`] knows;
/// - `2001:db8::1 > 2001:db8::2: next-header 17, length 8` for other IPv6;
/// - `ethertype 0x88cc, length 60` for other EtherTypes;
/// - a tagged frame is prefixed with its tag: `vlan 100, p 0, ARP who-has ...`;
/// - `double-tagged frame (unsupported), 64 bytes` for QinQ;
/// - `malformed frame (truncated), 54 bytes` when a layer fails to parse.
pub fn describe_frame(frame: &[u8]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_description(&mut out, frame);
    out
}

fn write_description(out: &mut String, frame: &[u8]) -> fmt::Result {
    let malformed =
        |out: &mut String, e: Error| write!(out, "malformed frame ({e}), {} bytes", frame.len());
    let l2 = match parse_l2(frame) {
        Ok(l2) => l2,
        Err(Error::Unsupported) => {
            return write!(
                out,
                "double-tagged frame (unsupported), {} bytes",
                frame.len()
            );
        }
        Err(e) => return malformed(out, e),
    };
    if let Some(tag) = l2.vlan {
        write!(out, "{tag}, ")?;
    }
    match l2.ethertype() {
        EtherType::Arp => match ArpRepr::parse(&ArpPacket::new_unchecked(l2.payload)) {
            Ok(arp) => write!(out, "{arp}"),
            Err(e) => malformed(out, e),
        },
        EtherType::Ipv4 => {
            let ip_packet = Ipv4Packet::new_unchecked(l2.payload);
            let ip = match Ipv4Repr::parse(&ip_packet) {
                Ok(ip) => ip,
                Err(e) => return malformed(out, e),
            };
            if ip.protocol != PROTOCOL_TCP {
                return write!(
                    out,
                    "{} > {}: ip-proto {}, length {}",
                    ip.src_addr, ip.dst_addr, ip.protocol, ip.payload_len
                );
            }
            let tcp_packet = TcpPacket::new_unchecked(ip_packet.payload());
            describe_tcp(out, frame.len(), &tcp_packet, ip.src_addr, ip.dst_addr)
        }
        EtherType::Ipv6 => {
            let (ip, upper) = match ipv6_upper(l2.payload) {
                Ok(v) => v,
                Err(e) => return malformed(out, e),
            };
            let (src, dst) = (ip.src_addr, ip.dst_addr);
            match ip.next_header {
                next_header::TCP => {
                    describe_tcp(out, frame.len(), &TcpPacket::new_unchecked(upper), src, dst)
                }
                next_header::ICMPV6 => {
                    match Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(upper), src, dst) {
                        Ok(icmp) => write!(out, "{src} > {dst}: {icmp}"),
                        Err(e) => malformed(out, e),
                    }
                }
                nh => write!(
                    out,
                    "{src} > {dst}: next-header {nh}, length {}",
                    upper.len()
                ),
            }
        }
        EtherType::Unknown(t) => write!(out, "ethertype 0x{t:04x}, length {}", frame.len()),
    }
}

/// The TCP part of a description, with the checksum verified over `src`, `dst`.
fn describe_tcp<A: IpAddress + fmt::Display>(
    out: &mut String,
    frame_len: usize,
    tcp_packet: &TcpPacket<&[u8]>,
    src: A,
    dst: A,
) -> fmt::Result {
    let tcp = match TcpRepr::parse_unverified(tcp_packet) {
        Ok(tcp) => tcp,
        Err(e) => return write!(out, "malformed frame ({e}), {frame_len} bytes"),
    };
    write_tcp(out, src, dst, tcp_packet.flags(), &tcp)?;
    if !tcp_packet.verify_checksum(src, dst) {
        write!(
            out,
            " [bad tcp cksum 0x{:04x} -> 0x{:04x}]",
            tcp_packet.checksum(),
            tcp_packet.expected_checksum(src, dst)
        )?;
    }
    Ok(())
}

/// An address as it precedes `:port`: IPv6 in brackets (RFC 5952 §6).
struct HostPort<A>(A, u16);

impl<A: IpAddress + fmt::Display> fmt::Display for HostPort<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if size_of::<A>() == size_of::<Ipv6Addr>() {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
    }
}

fn write_tcp<A: IpAddress + fmt::Display>(
    out: &mut String,
    src: A,
    dst: A,
    raw_flags: u16,
    tcp: &TcpRepr,
) -> fmt::Result {
    write!(
        out,
        "{} > {} Flags [",
        HostPort(src, tcp.src_port),
        HostPort(dst, tcp.dst_port)
    )?;
    // tcpdump's letters and order; ACK is '.'.
    const LETTERS: [(u16, char); 8] = [
        (flags::FIN, 'F'),
        (flags::SYN, 'S'),
        (flags::RST, 'R'),
        (flags::PSH, 'P'),
        (flags::ACK, '.'),
        (flags::URG, 'U'),
        (flags::ECE, 'E'),
        (flags::CWR, 'W'),
    ];
    if raw_flags & LETTERS.iter().fold(0, |m, (bit, _)| m | bit) == 0 {
        out.push_str("none");
    }
    for (bit, letter) in LETTERS {
        if raw_flags & bit != 0 {
            out.push(letter);
        }
    }
    write!(out, "], seq {}", tcp.seq_number)?;
    if let Some(ack) = tcp.ack_number {
        write!(out, ", ack {ack}")?;
    }
    write!(out, ", win {}", tcp.window_len)?;

    let has_options = tcp.max_seg_size.is_some()
        || tcp.window_scale.is_some()
        || tcp.sack_permitted
        || tcp.timestamp.is_some()
        || tcp.sack_ranges.iter().any(Option::is_some);
    if has_options {
        out.push_str(", options [");
        let mut sep = "";
        if let Some(mss) = tcp.max_seg_size {
            write!(out, "{sep}mss {mss}")?;
            sep = ",";
        }
        if let Some(shift) = tcp.window_scale {
            write!(out, "{sep}wscale {shift}")?;
            sep = ",";
        }
        if tcp.sack_permitted {
            write!(out, "{sep}sackOK")?;
            sep = ",";
        }
        if let Some(ts) = tcp.timestamp {
            write!(out, "{sep}TS val {} ecr {}", ts.tsval, ts.tsecr)?;
            sep = ",";
        }
        let blocks = tcp.sack_ranges.iter().flatten().count();
        if blocks > 0 {
            write!(out, "{sep}sack {blocks} ")?;
            for (l, r) in tcp.sack_ranges.iter().flatten() {
                write!(out, "{{{l}:{r}}}")?;
            }
        }
        out.push(']');
    }
    write!(out, ", length {}", tcp.payload.len())
}

#[cfg(test)]
mod tests6;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{BareRepr, SeqNumber, SynAckRepr, TcpControl, TcpTimestamp};

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn syn_ack() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 49152,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: SeqNumber(100),
            ack_number: Some(SeqNumber(201)),
            window_len: 65535,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 0 }),
            ..TcpRepr::default()
        }
    }

    /// [`syn_ack`]'s segment as a pure ACK: no SYN, no SYN-only options (timestamps kept).
    fn ack_with_ts() -> TcpRepr<'static> {
        TcpRepr {
            control: TcpControl::None,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            ..syn_ack()
        }
    }

    /// The Ethernet/IPv4/TCP frame as the header emitters write it one by one, the TCP
    /// checksum summed back from the buffer: what [`emit_tcp_frame`] wrote before it wrote
    /// both headers in one array and shared the addresses' sum.
    fn emit_tcp_frame_generic(
        buf: &mut [u8],
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        tcp: &TcpRepr,
    ) -> usize {
        let tcp_len = tcp.buffer_len();
        let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len;
        let (eth_hdr, rest) = buf[..len].split_at_mut(ethernet::HEADER_LEN);
        EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(eth_hdr));
        let (ip_hdr, segment) = rest.split_at_mut(ipv4::HEADER_LEN);
        Ipv4Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            protocol: PROTOCOL_TCP,
            payload_len: tcp_len,
            ttl: ipv4::DEFAULT_TTL,
        }
        .emit(&mut Ipv4Packet::new_unchecked(ip_hdr));
        let mut packet = TcpPacket::new_unchecked(segment);
        tcp.emit(&mut packet, src_ip, dst_ip);
        packet.fill_checksum(src_ip, dst_ip);
        len
    }

    /// The fast frame emitter equals the generic one byte for byte: addresses that carry in
    /// every checksum lane, lengths of every parity, every option layout.
    #[test]
    fn emit_tcp_frame_equals_generic_path() {
        let payload: Vec<u8> = (0..1500u32).map(|i| (i * 97 + 13) as u8).collect();
        let addrs = [
            (IP_A, IP_B),
            (
                Ipv4Addr::new(255, 255, 255, 255),
                Ipv4Addr::new(255, 255, 255, 254),
            ),
            (Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(0, 0, 0, 1)),
            (
                Ipv4Addr::new(192, 168, 200, 77),
                Ipv4Addr::new(172, 31, 255, 0),
            ),
        ];
        for (src, dst) in addrs {
            for plen in [0usize, 1, 2, 3, 7, 100, 1000, 1459, 1460] {
                for layout in 0u32..16 {
                    let bit = |b: u32| layout & (1 << b) != 0;
                    let mut repr = syn_ack();
                    repr.control = if bit(0) {
                        TcpControl::Fin
                    } else {
                        TcpControl::None
                    };
                    repr.ack_number = bit(1).then_some(SeqNumber(0xffff_0000 + layout));
                    repr.max_seg_size = bit(2).then_some(1460);
                    repr.window_scale = bit(2).then_some(7);
                    repr.sack_permitted = bit(2);
                    repr.sack_ranges[0] = bit(3).then_some((SeqNumber(5), SeqNumber(9)));
                    repr.payload = &payload[..plen];
                    let mut fast = [0x33u8; 1600];
                    let mut slow = [0x33u8; 1600];
                    let n = emit_tcp_frame(&mut fast, MAC_A, MAC_B, src, dst, &repr).unwrap();
                    let m = emit_tcp_frame_generic(&mut slow, MAC_A, MAC_B, src, dst, &repr);
                    assert_eq!(n, m);
                    assert_eq!(fast[..], slow[..], "{src} > {dst} {repr:?}");
                    assert!(parse_tcp_frame(&fast[..n]).is_ok());
                }
            }
        }
    }

    /// Address pairs whose sums carry in every checksum lane.
    const CARRY_ADDRS: [(Ipv4Addr, Ipv4Addr); 3] = [
        (IP_A, IP_B),
        (
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(255, 255, 255, 254),
        ),
        (Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(0, 0, 0, 1)),
    ];

    /// Ports, sequence and acknowledgment numbers and windows (source port, destination
    /// port, SEQ, ACK, window) that carry in the checksum.
    const CARRY_NUMBERS: [(u16, u16, u32, u32, u16); 4] = [
        (0, 0, 0, 0, 0),
        (49152, 80, 0xffff_ffff, 0x8000_0000, 65535),
        (65535, 65535, 0x1234_5678, 0xffff_ffff, 29200),
        (80, 40000, 0xfffe_ffff, 0x0001_0000, 1),
    ];

    /// Timestamps absent, zero, and carry-heavy.
    const CARRY_TIMESTAMPS: [Option<TcpTimestamp>; 5] = [
        None,
        Some(TcpTimestamp { tsval: 0, tsecr: 0 }),
        Some(TcpTimestamp {
            tsval: 0xffff_ffff,
            tsecr: 0x0102_0304,
        }),
        Some(TcpTimestamp {
            tsval: 0xffff_ffff,
            tsecr: 0xffff_ffff,
        }),
        Some(TcpTimestamp {
            tsval: 0x0102_0304,
            tsecr: 0xfffe_0001,
        }),
    ];

    /// `segment`'s compact emitter against the generic paths, byte for byte, over the
    /// carry-heavy addresses: the frame emitter (tagged and untagged) and the
    /// layer-by-layer one; the frame parses back to the same segment, and the segment
    /// written alone is the frame's; a buffer one byte too short is an error, as the generic
    /// emitter says, with nothing written. The number of frames compared.
    fn assert_compact_equals_generic<S: CompactSegment>(segment: &S) -> usize {
        let repr = segment.repr();
        let mut cases = 0;
        for (src, dst) in CARRY_ADDRS {
            for vlan in [None, VlanId::new(100)] {
                let mut fast = [0x33u8; 128];
                let mut slow = [0x33u8; 128];
                let n =
                    emit_compact_frame(&mut fast, vlan, MAC_A, MAC_B, src, dst, segment).unwrap();
                let m =
                    emit_tcp_frame_vlan(&mut slow, vlan, MAC_A, MAC_B, src, dst, &repr).unwrap();
                assert_eq!(n, m);
                assert_eq!(fast[..], slow[..], "{src} > {dst} {segment:?}");
                if vlan.is_none() {
                    let mut layered = [0x33u8; 128];
                    let k = emit_tcp_frame_generic(&mut layered, MAC_A, MAC_B, src, dst, &repr);
                    assert_eq!(n, k);
                    assert_eq!(fast[..], layered[..]);
                    assert_eq!(n, tcp_frame_len(&repr));
                    let parsed = parse_tcp_frame(&fast[..n]).unwrap();
                    assert_eq!(parsed.tcp, repr);
                    // The segment alone (`CompactSegment::emit_segment`; the frame emitter
                    // branches on the options first, `emit_after`) gives the same bytes.
                    let mut headers = [0u8; HEADERS_LEN];
                    let tcp_len = segment.buffer_len();
                    let pseudo = emit_eth_ipv4(&mut headers, MAC_A, MAC_B, src, dst, tcp_len);
                    let mut alone = [0x33u8; 128];
                    assert_eq!(segment.emit_segment(&mut alone, pseudo), n - HEADERS_LEN);
                    assert_eq!(alone[..tcp_len], fast[HEADERS_LEN..n]);
                    assert!(alone[tcp_len..].iter().all(|&b| b == 0x33));
                }
                cases += 1;
            }
        }
        let mut short = vec![0x33u8; tcp_frame_len(&repr) - 1];
        assert_eq!(
            emit_compact_frame(&mut short, None, MAC_A, MAC_B, IP_A, IP_B, segment),
            Err(Error::Truncated)
        );
        assert!(short.iter().all(|&b| b == 0x33));
        cases
    }

    /// Bare segments (pure ACK and FIN+ACK) over the carry-heavy numbers and timestamps.
    fn carry_bares() -> impl Iterator<Item = BareRepr> {
        CARRY_NUMBERS
            .into_iter()
            .flat_map(|(sp, dp, seq, ack, win)| {
                [false, true].into_iter().flat_map(move |fin| {
                    CARRY_TIMESTAMPS.into_iter().map(move |timestamp| BareRepr {
                        src_port: sp,
                        dst_port: dp,
                        seq_number: SeqNumber(seq),
                        ack_number: SeqNumber(ack),
                        window_len: win,
                        fin,
                        timestamp,
                    })
                })
            })
    }

    /// The SYN-ACK's dedicated emitter equals the generic path byte for byte (both the frame
    /// emitter and the layer-by-layer one) for every option set a listener sends: window
    /// scale absent or 0/7/14, SACK-permitted on or off, timestamps absent or present, any
    /// MSS, carry-heavy addresses, ports and sequence numbers; tagged and untagged.
    #[test]
    fn emit_synack_frame_equals_generic_path() {
        let mut cases = 0;
        for ack in carry_bares().filter(|b| !b.fin) {
            for max_seg_size in [0u16, 536, 1220, 1460, 65535] {
                for window_scale in [None, Some(0u8), Some(7), Some(14)] {
                    for sack_permitted in [false, true] {
                        let synack = SynAckRepr {
                            src_port: ack.src_port,
                            dst_port: ack.dst_port,
                            seq_number: ack.seq_number,
                            ack_number: ack.ack_number,
                            window_len: ack.window_len,
                            max_seg_size,
                            window_scale,
                            sack_permitted,
                            timestamp: ack.timestamp,
                        };
                        cases += assert_compact_equals_generic(&synack);
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 5 * 5 * 4 * 2 * 3 * 2);
    }

    /// The compact FIN+ACK / pure ACK writer gives the generic emitter's bytes, tagged and
    /// untagged, over carry-heavy addresses and numbers, with and without timestamps.
    #[test]
    fn emit_bare_frame_equals_generic_path() {
        let cases: usize = carry_bares()
            .map(|bare| assert_compact_equals_generic(&bare))
            .sum();
        assert_eq!(cases, 4 * 2 * 5 * 3 * 2);
    }

    #[test]
    fn emit_then_parse() {
        let mut buf = [0u8; 128];
        let tcp = TcpRepr {
            payload: b"hello",
            psh: true,
            control: TcpControl::None,
            ..syn_ack()
        };
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &tcp).unwrap();
        assert_eq!(len, tcp_frame_len(&tcp));
        assert_eq!(len, 14 + 20 + 20 + 24 + 5);
        let parsed = parse_tcp_frame(&buf[..len]).unwrap();
        assert_eq!(parsed.eth.src_addr, MAC_A);
        assert_eq!(parsed.eth.dst_addr, MAC_B);
        assert_eq!(parsed.ip.src_addr, IP_A);
        assert_eq!(parsed.ip.ttl, 64);
        assert_eq!(parsed.ip.payload_len, len - 34);
        assert_eq!(parsed.tcp, tcp);
    }

    #[test]
    fn padded_frame_parses() {
        let tcp = TcpRepr {
            timestamp: None,
            ..ack_with_ts()
        };
        let mut buf = [0u8; 60];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &tcp).unwrap();
        assert_eq!(len, 54);
        buf[54..].fill(0xee); // padding need not be zero
        assert_eq!(parse_tcp_frame(&buf).unwrap().tcp, tcp);
    }

    /// `parse_tcp_frame_in` on a slot that already holds a frame (the engine's is `None`):
    /// the result is the slot's new frame, the one the general parser returns, on the fixed-
    /// offset path and off it (a tag); a malformed option block reaching the slot on the
    /// fixed-offset path is the general parser's error.
    #[test]
    fn parse_in_place_writes_the_slot() {
        let other = TcpRepr {
            payload: b"stale",
            ..syn_ack()
        };
        let mut stale = [0u8; 128];
        let len = emit_tcp_frame(&mut stale, MAC_B, MAC_A, IP_B, IP_A, &other).unwrap();
        let stale = parse_tcp_frame(&stale[..len]).unwrap();
        let ack = ack_with_ts();
        for repr in [syn_ack(), ack] {
            let mut buf = [0u8; 128];
            let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &repr).unwrap();
            let frame = &buf[..len];
            let mut tagged = buf[..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x00]);
            tagged.extend_from_slice(&frame[12..]);
            for f in [frame, &tagged[..]] {
                let want = parse_tcp_frame_general(f).unwrap();
                assert_eq!(want.tcp, repr);
                let mut slot = Some(stale);
                let got = *parse_tcp_frame_in(f, &mut slot).unwrap();
                assert_eq!(got, want);
                assert_eq!(slot, Some(want));
                let mut empty = None;
                assert_eq!(*parse_tcp_frame_in(f, &mut empty).unwrap(), want);
            }
        }
        // NOP NOP, then a timestamps option whose length runs past the block: malformed,
        // after every check the fixed-offset path makes has passed.
        let mut buf = [0u8; 128];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &ack).unwrap();
        assert_eq!(&buf[54..58], &[1, 1, 8, 10]);
        buf[57] = 12;
        refix_checksums(&mut buf[..len]);
        assert!(parse_common(&buf[..len], &mut None).is_ok());
        let mut slot = Some(stale);
        assert_eq!(
            parse_tcp_frame_in(&buf[..len], &mut slot).map(|f| *f),
            Err(Error::Malformed)
        );
        assert_eq!(parse_tcp_frame_general(&buf[..len]), Err(Error::Malformed));
    }

    /// The fixed-offset path of `parse_tcp_frame_into` against the layers' parsers, on every
    /// single-byte change (and cut) of frames in every option layout it matches whole and
    /// some it does not, with and without data and padding, checksums left wrong and fixed:
    /// the same result, frame or error, every time.
    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let payload = [0x5au8, 0, 0xff, 7, 1];
        let ack = ack_with_ts();
        let reprs = [
            syn_ack(),
            TcpRepr {
                ack_number: None,
                ..syn_ack()
            },
            ack,
            TcpRepr {
                control: TcpControl::Fin,
                ..ack
            },
            TcpRepr {
                timestamp: None,
                ..ack
            },
            TcpRepr {
                payload: &payload,
                psh: true,
                ..ack
            },
            TcpRepr {
                sack_ranges: [Some((SeqNumber(5), SeqNumber(9))), None, None],
                ..ack
            },
            TcpRepr {
                control: TcpControl::Rst,
                timestamp: None,
                ..ack
            },
        ];
        let mut checked = 0;
        let mut fast = 0;
        for repr in &reprs {
            let mut base = [0u8; 128];
            let len = emit_tcp_frame(&mut base, MAC_A, MAC_B, IP_A, IP_B, repr).unwrap();
            for padded in [len, len + 6] {
                let frame = &base[..padded];
                let mut variants = vec![frame.to_vec()];
                // Linux's SYN layout (MSS, SACK-permitted, TS, NOP, WS).
                if repr.control == TcpControl::Syn {
                    let mut linux = frame.to_vec();
                    linux[54..74].copy_from_slice(&[
                        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
                    ]);
                    linux.truncate(74);
                    linux[16..18].copy_from_slice(&60u16.to_be_bytes());
                    linux[46] = 10 << 4;
                    refix_checksums(&mut linux);
                    variants.push(linux);
                }
                for v in &variants {
                    for cut in 0..=v.len() {
                        assert_eq!(
                            parse_tcp_frame(&v[..cut]),
                            parse_tcp_frame_general(&v[..cut]),
                            "cut {cut} of {v:02x?}"
                        );
                    }
                    for i in 0..v.len() {
                        for value in [
                            0,
                            0xff,
                            v[i] ^ 1,
                            v[i] ^ 0x10,
                            v[i] ^ 0x80,
                            v[i].wrapping_add(4),
                        ] {
                            for refix in [false, true] {
                                let mut m = v.clone();
                                m[i] = value;
                                if refix {
                                    refix_checksums(&mut m);
                                }
                                let got = parse_tcp_frame(&m);
                                assert_eq!(
                                    got,
                                    parse_tcp_frame_general(&m),
                                    "byte {i} = {value:#x} of {m:02x?}"
                                );
                                checked += 1;
                                fast += parse_common(&m, &mut None).is_ok() as usize;
                            }
                        }
                    }
                }
            }
        }
        // Both paths were exercised: many mutants still parse at fixed offsets, many not.
        assert!(
            fast > checked / 8 && fast < checked * 7 / 8,
            "{fast} of {checked}"
        );
    }

    #[test]
    fn emit_short_buffer() {
        let mut buf = [0u8; 60];
        assert_eq!(
            emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn non_tcp_unsupported() {
        let mut buf = [0u8; 128];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        let mut arp = buf;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse_tcp_frame(&arp[..len]), Err(Error::Unsupported));
        let mut udp = buf;
        udp[14 + 9] = 17;
        Ipv4Packet::new_unchecked(&mut udp[14..len]).fill_checksum();
        assert_eq!(parse_tcp_frame(&udp[..len]), Err(Error::Unsupported));
        assert_eq!(
            describe_frame(&udp[..len]),
            "10.0.0.1 > 10.0.0.2: ip-proto 17, length 44"
        );
    }

    #[test]
    fn describe_syn_ack() {
        let mut buf = [0u8; 128];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        assert_eq!(
            describe_frame(&buf[..len]),
            "10.0.0.1:49152 > 10.0.0.2:80 Flags [S.], seq 100, ack 201, win 65535, \
             options [mss 1460,wscale 7,sackOK,TS val 1 ecr 0], length 0"
        );
    }

    #[test]
    fn describe_data_rst_and_sack() {
        let mut buf = [0u8; 128];
        let data = TcpRepr {
            src_port: 80,
            dst_port: 49152,
            psh: true,
            seq_number: SeqNumber(201),
            ack_number: Some(SeqNumber(101)),
            window_len: 512,
            sack_ranges: [Some((SeqNumber(300), SeqNumber(400))), None, None],
            payload: b"abc",
            ..TcpRepr::default()
        };
        let len = emit_tcp_frame(&mut buf, MAC_B, MAC_A, IP_B, IP_A, &data).unwrap();
        assert_eq!(
            describe_frame(&buf[..len]),
            "10.0.0.2:80 > 10.0.0.1:49152 Flags [P.], seq 201, ack 101, win 512, \
             options [sack 1 {300:400}], length 3"
        );
        let rst = TcpRepr {
            control: TcpControl::Rst,
            src_port: 80,
            dst_port: 49152,
            seq_number: SeqNumber(7),
            ..TcpRepr::default()
        };
        let len = emit_tcp_frame(&mut buf, MAC_B, MAC_A, IP_B, IP_A, &rst).unwrap();
        assert_eq!(
            describe_frame(&buf[..len]),
            "10.0.0.2:80 > 10.0.0.1:49152 Flags [R], seq 7, win 0, length 0"
        );
        // Corrupt the payload-free RST's window: checksum no longer verifies.
        buf[14 + 20 + 15] ^= 1;
        let d = describe_frame(&buf[..len]);
        assert!(
            d.starts_with(
                "10.0.0.2:80 > 10.0.0.1:49152 Flags [R], seq 7, win 1, length 0 [bad tcp cksum 0x"
            ),
            "{d}"
        );
    }

    #[test]
    fn describe_arp_and_errors() {
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&MAC_A.0);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        ArpRepr::EthernetIpv4 {
            operation: crate::wire::arp::ArpOperation::Request,
            source_hardware_addr: MAC_A,
            source_protocol_addr: IP_A,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: IP_B,
        }
        .emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
        assert_eq!(describe_frame(&frame), "ARP who-has 10.0.0.2 tell 10.0.0.1");

        assert_eq!(
            describe_frame(&frame[..10]),
            "malformed frame (truncated), 10 bytes"
        );
        let mut buf = [0u8; 128];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        assert_eq!(
            describe_frame(&buf[..54]),
            "malformed frame (truncated), 54 bytes"
        );
        buf[14 + 10] ^= 0xff;
        assert_eq!(
            describe_frame(&buf[..len]),
            format!("malformed frame (bad checksum), {len} bytes")
        );
        frame[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(describe_frame(&frame), "ethertype 0x88cc, length 60");
    }

    /// A tagged SYN-ACK as bytes: the untagged frame with `81 00 | 00 64` after the MACs.
    fn tagged(vid: u16) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; 128];
        let vlan = VlanId::new(vid);
        let len =
            emit_tcp_frame_vlan(&mut buf, vlan, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        buf.truncate(len);
        (buf, len)
    }

    #[test]
    fn tagged_emit_is_the_untagged_frame_with_a_tag() {
        let mut plain = [0u8; 128];
        let n = emit_tcp_frame(&mut plain, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        let (t, len) = tagged(100);
        assert_eq!(len, n + 4);
        assert_eq!(&t[..12], &plain[..12], "MACs");
        assert_eq!(
            &t[12..18],
            &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00],
            "TPID, TCI, IPv4"
        );
        assert_eq!(&t[18..], &plain[14..n], "IPv4 + TCP unchanged");
        // 4094: the highest VID; PCP/DEI zero.
        let (t, _) = tagged(4094);
        assert_eq!(&t[14..16], &[0x0f, 0xfe]);
    }

    #[test]
    fn tagged_parse() {
        let (t, _) = tagged(100);
        let f = parse_tcp_frame(&t).unwrap();
        assert_eq!(
            f.vlan,
            Some(VlanRepr {
                pcp: 0,
                dei: false,
                vid: 100,
                ethertype: EtherType::Ipv4
            })
        );
        assert_eq!(u16::from(f.eth.ethertype), 0x8100);
        assert_eq!(f.tcp, syn_ack());
        assert_eq!(vid_of(f.vlan), 100);
        let l2 = parse_l2(&t).unwrap();
        assert_eq!((l2.vid(), l2.ethertype()), (100, EtherType::Ipv4));
        assert_eq!(l2.payload, &t[18..]);
        // Untagged: no tag, VID 0.
        let mut plain = [0u8; 128];
        let n = emit_tcp_frame(&mut plain, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()).unwrap();
        let f = parse_tcp_frame(&plain[..n]).unwrap();
        assert_eq!((f.vlan, vid_of(f.vlan)), (None, 0));
        // Priority tag (VID 0, PCP 5): parses, VID 0.
        let mut prio = t.clone();
        prio[14..16].copy_from_slice(&[0xa0, 0x00]);
        let f = parse_tcp_frame(&prio).unwrap();
        assert_eq!((vid_of(f.vlan), f.vlan.unwrap().pcp), (0, 5));
        assert_eq!(
            describe_frame(&t),
            "vlan 100, p 0, 10.0.0.1:49152 > 10.0.0.2:80 Flags [S.], seq 100, ack 201, \
             win 65535, options [mss 1460,wscale 7,sackOK,TS val 1 ecr 0], length 0"
        );
    }

    #[test]
    fn tagged_truncated_and_double_tags() {
        let (t, len) = tagged(100);
        // Cut inside the tag, inside IPv4, inside TCP.
        for cut in [14, 15, 17] {
            assert_eq!(parse_l2(&t[..cut]).unwrap_err(), Error::Truncated, "{cut}");
            assert_eq!(parse_tcp_frame(&t[..cut]).unwrap_err(), Error::Truncated);
        }
        assert_eq!(parse_tcp_frame(&t[..18]).unwrap_err(), Error::Truncated);
        assert_eq!(
            parse_tcp_frame(&t[..len - 1]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(parse_l2(&t[..18]).unwrap().payload, &[] as &[u8]);
        // Emit into a buffer 1 byte short of the tagged length.
        let mut short = vec![0u8; len - 1];
        let vlan = VlanId::new(100);
        assert_eq!(
            emit_tcp_frame_vlan(&mut short, vlan, MAC_A, MAC_B, IP_A, IP_B, &syn_ack()),
            Err(Error::Truncated)
        );
        // QinQ: 88a8 outside; and 8100 inside 8100.
        let mut qinq = vec![0u8; len + 4];
        qinq[..12].copy_from_slice(&t[..12]);
        qinq[12..18].copy_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00]);
        qinq[18..].copy_from_slice(&t[14..]);
        assert_eq!(parse_l2(&qinq).unwrap_err(), Error::Unsupported);
        assert_eq!(parse_tcp_frame(&qinq).unwrap_err(), Error::Unsupported);
        qinq[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse_tcp_frame(&qinq).unwrap_err(), Error::Unsupported);
        assert_eq!(
            describe_frame(&qinq),
            format!("double-tagged frame (unsupported), {} bytes", len + 4)
        );
        // VID 4095 is reserved.
        let mut bad = t.clone();
        bad[14..16].copy_from_slice(&[0x0f, 0xff]);
        assert_eq!(parse_tcp_frame(&bad).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn tagged_arp_described() {
        let mut frame = [0u8; 64];
        let n = emit_l2(
            &mut frame,
            MAC_A,
            EthernetAddress::BROADCAST,
            VlanId::new(7),
            EtherType::Arp,
        );
        assert_eq!(n, 18);
        assert_eq!(l2_header_len(VlanId::new(7)), 18);
        assert_eq!(l2_header_len(None), 14);
        ArpRepr::EthernetIpv4 {
            operation: crate::wire::arp::ArpOperation::Request,
            source_hardware_addr: MAC_A,
            source_protocol_addr: IP_A,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: IP_B,
        }
        .emit(&mut ArpPacket::new_unchecked(&mut frame[18..]));
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 0x07, 0x08, 0x06]);
        assert_eq!(
            describe_frame(&frame),
            "vlan 7, p 0, ARP who-has 10.0.0.2 tell 10.0.0.1"
        );
        let l2 = parse_l2(&frame).unwrap();
        assert_eq!((l2.vid(), l2.ethertype()), (7, EtherType::Arp));
        assert_eq!(parse_tcp_frame(&frame).unwrap_err(), Error::Unsupported);
    }
}
