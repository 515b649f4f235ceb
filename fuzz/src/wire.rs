//! One function per wire parser, each driven by arbitrary bytes: parse must never panic, and
//! whatever parses must survive emit → parse unchanged (the fields emit writes).

use std::net::Ipv6Addr;
use xtcp::wire::Ipv4Addr;
use xtcp::wire::arp::{ArpPacket, ArpRepr};
use xtcp::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use xtcp::wire::ethernet::EtherType;
use xtcp::wire::frame::{
    describe_frame, emit_tcp6_frame, parse_icmpv6_frame, parse_l2, parse_tcp_frame,
    parse_tcp_frame_general, parse_tcp6_frame, tcp6_frame_len,
};
use xtcp::wire::icmpv4::{self, Icmpv4Packet, Icmpv4Repr};
use xtcp::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use xtcp::wire::vlan::{TAG_LEN, TPID_8021Q, VlanPacket, VlanRepr};
use xtcp::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use xtcp::wire::ipv6::{Ipv6Packet, Ipv6Repr, rejected_extension};
use xtcp::wire::tcp::{TcpOption, TcpOptions, TcpPacket, TcpRepr};

pub fn ethernet(data: &[u8]) {
    vlan(data);
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = frame.payload();
    let Ok(repr) = EthernetRepr::parse(&frame) else {
        return;
    };
    let mut buf = vec![0u8; ethernet::HEADER_LEN];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let again = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(repr, again);
}

/// The link layer with at most one 802.1Q tag: whatever parses survives emit → parse, and
/// the tag agrees with a direct read of its bytes.
fn vlan(data: &[u8]) {
    let Ok(l2) = parse_l2(data) else {
        return;
    };
    let Some(tag) = l2.vlan else {
        assert_eq!(l2.payload.len() + ethernet::HEADER_LEN, data.len());
        return;
    };
    assert_eq!(u16::from(l2.eth.ethertype), TPID_8021Q);
    assert_eq!(l2.payload.len() + ethernet::HEADER_LEN + TAG_LEN, data.len());
    let mut buf = [0u8; TAG_LEN];
    tag.emit(&mut VlanPacket::new_unchecked(&mut buf[..]));
    assert_eq!(&buf[..], &data[ethernet::HEADER_LEN..ethernet::HEADER_LEN + TAG_LEN]);
    let again = VlanRepr::parse(&VlanPacket::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(tag, again);
}

pub fn arp(data: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let again = ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(repr, again);
}

pub fn ipv4(data: &[u8]) {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.verify_checksum(), packet.payload());
    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    let again = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(repr, again);
}

/// An ICMP message (the IPv4 payload): what parses re-emits to the same repr.
pub fn icmpv4(data: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.verify_checksum(), packet.next_hop_mtu(), packet.data());
    let Ok(repr) = Icmpv4Repr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; data.len()];
    let n = icmpv4::emit_error(&mut buf, repr.message, packet.data()).expect("same length");
    let again = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&buf[..n]).unwrap())
        .expect("an emitted error parses");
    assert_eq!(repr, again);
}

/// The first 8 bytes are the pseudo-header addresses, the rest the segment.
pub fn tcp(data: &[u8]) {
    let Some((addrs, seg)) = data.split_first_chunk::<8>() else {
        return;
    };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    let Ok(packet) = TcpPacket::new_checked(seg) else {
        return;
    };
    let _ = (packet.options(), packet.verify_checksum(src, dst));
    for o in TcpOptions::new(packet.options()) {
        if o.is_err() {
            break;
        }
    }
    let checked = TcpRepr::parse(&packet, src, dst);
    let Ok(repr) = TcpRepr::parse_unverified(&packet) else {
        assert!(
            checked.is_err(),
            "checked parse accepts what unverified refuses"
        );
        return;
    };
    if let Ok(c) = checked {
        assert_eq!(c, repr);
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = TcpRepr::parse(&TcpPacket::new_checked(&buf[..]).unwrap(), src, dst)
        .expect("an emitted segment parses, checksum included");
    // Emit writes every field it parsed, except SACK blocks that do not fit beside the other
    // options.
    let strip = |r: &TcpRepr| {
        (
            r.src_port,
            r.dst_port,
            r.control,
            r.seq_number,
            r.ack_number,
            r.window_len,
            r.window_scale,
            r.max_seg_size,
            r.sack_permitted,
            r.timestamp,
            r.payload.to_vec(),
        )
    };
    assert_eq!(strip(&repr), strip(&again));
    for (a, b) in repr.sack_ranges.iter().zip(again.sack_ranges.iter()) {
        if b.is_some() {
            assert_eq!(a, b, "a SACK block changed");
        }
    }
}

pub fn tcp_options(data: &[u8]) {
    for o in TcpOptions::new(data).take(64) {
        if o.is_err() {
            break;
        }
    }
    let mut rest = data;
    for _ in 0..64 {
        match TcpOption::parse(rest) {
            Ok((r, _)) if r.len() < rest.len() => rest = r,
            _ => break,
        }
    }
}

pub fn frame(data: &[u8]) {
    // The fixed-offset path agrees with the layers' parsers, frame or error.
    assert_eq!(parse_tcp_frame(data), parse_tcp_frame_general(data));
    if let Ok(f) = parse_tcp_frame(data) {
        // A tagged TCP frame is the same frame to the link-layer parser.
        let l2 = parse_l2(data).expect("a parsed TCP frame has a link layer");
        assert_eq!((l2.vlan, l2.ethertype()), (f.vlan, EtherType::Ipv4));
    }
    let _ = describe_frame(data);
}

/// An IPv6 packet (extension headers walked), then the whole-frame IPv6 parsers over the
/// same bytes taken as a frame; a parsed TCP frame must re-emit and parse back.
pub fn ipv6(data: &[u8]) {
    if let Ok(packet) = Ipv6Packet::new_checked(data) {
        let _ = (
            packet.traffic_class(),
            packet.flow_label(),
            packet.payload(),
        );
        let _ = rejected_extension(data);
        if let Ok(repr) = Ipv6Repr::parse(&packet) {
            assert!(repr.payload_len <= packet.payload().len());
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            let again = Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap());
            // Without the extension headers the upper layer is the fixed header's Next
            // Header; a value that is itself an extension header cannot round-trip.
            if rejected_extension(&buf).is_none() && !matches!(repr.next_header, 0 | 43 | 60) {
                assert_eq!(again, Ok(repr));
            }
        }
    }
    let _ = describe_frame(data);
    if let Ok(f) = parse_tcp6_frame(data) {
        let mut buf = vec![0u8; tcp6_frame_len(&f.tcp)];
        emit_tcp6_frame(
            &mut buf,
            f.eth.src_addr,
            f.eth.dst_addr,
            f.ip.src_addr,
            f.ip.dst_addr,
            &f.tcp,
        )
        .unwrap();
        let again = parse_tcp6_frame(&buf).expect("an emitted IPv6 frame parses");
        assert_eq!(
            (again.ip.src_addr, again.tcp.seq_number),
            (f.ip.src_addr, f.tcp.seq_number)
        );
    }
}

/// The first 32 bytes are the pseudo-header addresses, the rest an ICMPv6 message (parsed as
/// is and with its checksum fixed); then the same bytes as a whole frame. A parsed message
/// must re-emit to a message that parses equal.
pub fn icmpv6(data: &[u8]) {
    let _ = parse_icmpv6_frame(data);
    let Some((addrs, msg)) = data.split_first_chunk::<32>() else {
        return;
    };
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&addrs[..16]);
    d.copy_from_slice(&addrs[16..]);
    let (src, dst) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
    let Ok(packet) = Icmpv6Packet::new_checked(msg) else {
        return;
    };
    let _ = (packet.msg_type(), packet.msg_code(), packet.checksum());
    let _ = Icmpv6Repr::parse(&packet, src, dst);
    // Random bytes almost never carry a valid checksum: parse a copy with it fixed, so the
    // fuzzer reaches the type checks and the option walk behind it.
    let mut fixed = msg.to_vec();
    Icmpv6Packet::new_unchecked(&mut fixed[..]).fill_checksum(src, dst);
    let Ok(repr) = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&fixed[..]), src, dst) else {
        return;
    };
    let _ = repr.to_string();
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf, src, dst).unwrap();
    let again = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..n]).unwrap(), src, dst);
    assert_eq!(again, Ok(repr));
}
