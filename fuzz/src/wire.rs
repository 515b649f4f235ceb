//! One function per wire parser, each driven by arbitrary bytes: parse must never panic, and
//! whatever parses must survive emit → parse unchanged (the fields emit writes).

use xtcp::wire::Ipv4Addr;
use xtcp::wire::arp::{ArpPacket, ArpRepr};
use xtcp::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use xtcp::wire::ethernet::EtherType;
use xtcp::wire::frame::{describe_frame, parse_l2, parse_tcp_frame};
use xtcp::wire::vlan::{TAG_LEN, TPID_8021Q, VlanPacket, VlanRepr};
use xtcp::wire::ipv4::{Ipv4Packet, Ipv4Repr};
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
    if let Ok(f) = parse_tcp_frame(data) {
        // A tagged TCP frame is the same frame to the link-layer parser.
        let l2 = parse_l2(data).expect("a parsed TCP frame has a link layer");
        assert_eq!((l2.vlan, l2.ethertype()), (f.vlan, EtherType::Ipv4));
    }
    let _ = describe_frame(data);
}
