//! Whole-frame helpers for the hot path (Ethernet [+ one 802.1Q tag] + IPv4 + TCP in one
//! call) and a tcpdump-style one-line description of any frame for test failures and traces.
//!
//! [`parse_l2`], [`parse_tcp_frame`] and the emitters neither allocate nor panic (emit reports
//! a short buffer as `Error::Truncated`). [`describe_frame`] allocates its `String`: it is for
//! diagnostics only, never for the data path.
//!
//! VLAN tags: the parsers accept untagged frames and frames with exactly one 802.1Q tag
//! (reported in `vlan`); a second tag, or an 802.1ad (QinQ) outer tag, is `Error::Unsupported`
//! from [`parse_l2`]. Which VLAN is ours is the caller's business (the stack compares the VID).

use core::fmt::{self, Write};
use core::net::Ipv4Addr;

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{self, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr, PROTOCOL_TCP};
use super::tcp::{TcpPacket, TcpRepr, flags};
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

/// A parsed Ethernet/IPv4/TCP frame; the TCP payload borrows from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    pub eth: EthernetRepr,
    /// The frame's 802.1Q tag, if any (`eth.ethertype` is then 0x8100).
    pub vlan: Option<VlanRepr>,
    pub ip: Ipv4Repr,
    pub tcp: TcpRepr<'a>,
}

/// Parses and validates an Ethernet/IPv4/TCP frame, untagged or with one 802.1Q tag,
/// checksums included. Trailing Ethernet padding is ignored. A frame of another EtherType or
/// IP protocol, or with two tags, is `Error::Unsupported`.
#[inline]
pub fn parse_tcp_frame(frame: &[u8]) -> Result<TcpFrame<'_>> {
    let eth_frame = EthernetFrame::new_checked(frame)?;
    let eth = EthernetRepr::parse(&eth_frame)?;
    // Untagged IPv4 first, as before tags existed: a tag costs nothing when absent.
    let (vlan, payload) = if eth.ethertype == EtherType::Ipv4 {
        (None, eth_frame.payload())
    } else {
        let (tag, payload) = parse_ipv4_tag(eth.ethertype, eth_frame.payload())?;
        (Some(tag), payload)
    };
    let ip_packet = Ipv4Packet::new_checked(payload)?;
    let ip = Ipv4Repr::parse(&ip_packet)?;
    if ip.protocol != PROTOCOL_TCP {
        return Err(Error::Unsupported);
    }
    let tcp_packet = TcpPacket::new_checked(ip_packet.payload())?;
    let tcp = TcpRepr::parse(&tcp_packet, ip.src_addr, ip.dst_addr)?;
    Ok(TcpFrame { eth, vlan, ip, tcp })
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
    let len = tcp_frame_len(tcp);
    if buf.len() < len {
        return Err(Error::Truncated);
    }
    let tcp_len = tcp.buffer_len();
    if ipv4::HEADER_LEN + tcp_len > usize::from(u16::MAX) {
        return Err(Error::Malformed);
    }
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
    tcp.emit(&mut TcpPacket::new_unchecked(segment), src_ip, dst_ip);
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
/// - `ethertype 0x86dd, length 60` for other EtherTypes;
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
            let tcp = match TcpRepr::parse_unverified(&tcp_packet) {
                Ok(tcp) => tcp,
                Err(e) => return malformed(out, e),
            };
            write_tcp(out, ip.src_addr, ip.dst_addr, tcp_packet.flags(), &tcp)?;
            if !tcp_packet.verify_checksum(ip.src_addr, ip.dst_addr) {
                write!(
                    out,
                    " [bad tcp cksum 0x{:04x} -> 0x{:04x}]",
                    tcp_packet.checksum(),
                    tcp_packet.expected_checksum(ip.src_addr, ip.dst_addr)
                )?;
            }
            Ok(())
        }
        EtherType::Unknown(t) => write!(out, "ethertype 0x{t:04x}, length {}", frame.len()),
    }
}

fn write_tcp(
    out: &mut String,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    raw_flags: u16,
    tcp: &TcpRepr,
) -> fmt::Result {
    write!(
        out,
        "{src}:{} > {dst}:{} Flags [",
        tcp.src_port, tcp.dst_port
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
mod tests {
    use super::*;
    use crate::wire::tcp::{SeqNumber, TcpControl, TcpTimestamp};

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
            control: TcpControl::None,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            ..syn_ack()
        };
        let mut buf = [0u8; 60];
        let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &tcp).unwrap();
        assert_eq!(len, 54);
        buf[54..].fill(0xee); // padding need not be zero
        assert_eq!(parse_tcp_frame(&buf).unwrap().tcp, tcp);
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
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(describe_frame(&frame), "ethertype 0x86dd, length 60");
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
