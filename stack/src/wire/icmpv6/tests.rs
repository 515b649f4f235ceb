//! Byte-literal tests from frames captured on a veth pair (Linux 6.18; the commands are in
//! docs/ipv6.md), Ethernet and IPv6 headers included so the whole frame path is exercised.

use super::*;
use crate::wire::frame::{describe_frame, parse_icmpv6_frame};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Neighbor Solicitation 2001:db8::1 → ff02::1:ff00:2 for 2001:db8::2, source link-layer
/// option 02:00:00:00:00:01.
pub(crate) const NS: &str = "3333ff00000202000000000186dd6000000000203aff20010db8000000000000000000000001ff020000\
0000000000000001ff00000287001c270000000020010db8000000000000000000000002010102000000\
0001";
/// The Neighbor Advertisement answering it: Solicited and Override set, target link-layer
/// option 02:00:00:00:00:02.
pub(crate) const NA: &str = "02000000000102000000000286dd6000000000203aff20010db800000000000000000000000220010db8\
00000000000000000000000188008a716000000020010db8000000000000000000000002020102000000\
0002";
/// Duplicate address detection: a Neighbor Solicitation from `::` for fe80::ff:fe00:2 with
/// a Nonce option (type 14), which must be skipped.
const DAD: &str = "3333ff00000202000000000286dd6000000000203aff00000000000000000000000000000000ff020000\
0000000000000001ff0000028700036d00000000fe80000000000000000000fffe0000020e01a09f7ad7\
5036";

const A1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const A2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const MAC1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

/// The ICMPv6 message of a captured frame and its IPv6 addresses.
fn icmp_of(frame: &[u8]) -> (&[u8], Ipv6Addr, Ipv6Addr) {
    let p = Ipv6Packet::new_checked(&frame[14..]).unwrap();
    let ip = Ipv6Repr::parse(&p).unwrap();
    assert_eq!(ip.next_header, next_header::ICMPV6);
    (p.payload(), ip.src_addr, ip.dst_addr)
}

#[test]
fn captured_neighbor_solicitation() {
    let f = hex(NS);
    let (m, src, dst) = icmp_of(&f);
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(m).unwrap(), src, dst).unwrap();
    let want = Icmpv6Repr::NeighborSolicit {
        target: A2,
        source_lladdr: Some(MAC1),
    };
    assert_eq!(r, want);
    let mut buf = [0u8; 64];
    let n = want.emit(&mut buf, src, dst).unwrap();
    assert_eq!(&buf[..n], m, "emit reproduces the capture byte for byte");
    let (eth, ip, repr) = parse_icmpv6_frame(&f).unwrap();
    assert_eq!((eth.src_addr, ip.hop_limit, repr), (MAC1, 255, want));
    assert_eq!(
        describe_frame(&f),
        "2001:db8::1 > ff02::1:ff00:2: neighbor solicitation for 2001:db8::2 from 02:00:00:00:00:01"
    );
}

#[test]
fn captured_neighbor_advertisement() {
    let f = hex(NA);
    let (m, src, dst) = icmp_of(&f);
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(m).unwrap(), src, dst).unwrap();
    let want = Icmpv6Repr::NeighborAdvert {
        router: false,
        solicited: true,
        override_: true,
        target: A2,
        target_lladdr: Some(MAC2),
    };
    assert_eq!(r, want);
    let mut buf = [0u8; 64];
    let n = want.emit(&mut buf, src, dst).unwrap();
    assert_eq!(&buf[..n], m);
    assert_eq!(
        describe_frame(&f),
        "2001:db8::2 > 2001:db8::1: neighbor advertisement 2001:db8::2 (sol, ovr) is at \
         02:00:00:00:00:02"
    );
}

#[test]
fn captured_dad_skips_nonce_option() {
    let f = hex(DAD);
    let (m, src, dst) = icmp_of(&f);
    assert!(src.is_unspecified());
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(m).unwrap(), src, dst).unwrap();
    assert_eq!(
        r,
        Icmpv6Repr::NeighborSolicit {
            target: "fe80::ff:fe00:2".parse().unwrap(),
            source_lladdr: None,
        }
    );
}

#[test]
fn checksum_and_truncation() {
    let f = hex(NS);
    let (m, src, dst) = icmp_of(&f);
    for len in 0..m.len() {
        let r = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&m[..len]), src, dst);
        assert!(
            matches!(r, Err(Error::Truncated | Error::Checksum)),
            "{len}: {r:?}"
        );
    }
    for len in 0..8 {
        let r = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&m[..len]), src, dst);
        assert_eq!(r, Err(Error::Truncated));
    }
    let mut bad = m.to_vec();
    bad[30] ^= 1;
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(&bad[..]), src, dst);
    assert_eq!(r, Err(Error::Checksum));
    // A different pseudo-header fails too.
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(m), A1, A2);
    assert_eq!(r, Err(Error::Checksum));
}

/// Emits `repr`, then changes byte `at` to `v` and fixes the checksum.
fn tampered(repr: Icmpv6Repr, src: Ipv6Addr, dst: Ipv6Addr, at: usize, v: u8) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf, src, dst).unwrap();
    buf[at] = v;
    Icmpv6Packet::new_unchecked(&mut buf[..]).fill_checksum(src, dst);
    buf
}

#[test]
fn nd_validation() {
    let ns = Icmpv6Repr::NeighborSolicit {
        target: A2,
        source_lladdr: Some(MAC1),
    };
    let sn = crate::wire::ipv6::solicited_node(A2);
    fn parse(b: &[u8], s: Ipv6Addr, d: Ipv6Addr) -> Result<Icmpv6Repr<'_>> {
        Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(b), s, d)
    }
    // Code 1.
    assert_eq!(
        parse(&tampered(ns, A1, sn, 1, 1), A1, sn),
        Err(Error::Malformed)
    );
    // Multicast target.
    assert_eq!(
        parse(&tampered(ns, A1, sn, 8, 0xff), A1, sn),
        Err(Error::Malformed)
    );
    // Option length 0.
    assert_eq!(
        parse(&tampered(ns, A1, sn, 25, 0), A1, sn),
        Err(Error::Malformed)
    );
    // Option length 2 runs past the message.
    assert_eq!(
        parse(&tampered(ns, A1, sn, 25, 2), A1, sn),
        Err(Error::Malformed)
    );
    // From :: with a source link-layer option.
    let un = Ipv6Addr::UNSPECIFIED;
    assert_eq!(
        parse(&tampered(ns, un, sn, 1, 0), un, sn),
        Err(Error::Malformed)
    );
    // From :: to a unicast address.
    let dad = Icmpv6Repr::NeighborSolicit {
        target: A2,
        source_lladdr: None,
    };
    assert_eq!(
        parse(&tampered(dad, un, A2, 1, 0), un, A2),
        Err(Error::Malformed)
    );
    assert_eq!(parse(&tampered(dad, un, sn, 1, 0), un, sn), Ok(dad));
    // A solicited advertisement to a multicast address.
    let na = Icmpv6Repr::NeighborAdvert {
        router: true,
        solicited: true,
        override_: false,
        target: A2,
        target_lladdr: None,
    };
    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    assert_eq!(
        parse(&tampered(na, A2, all, 1, 0), A2, all),
        Err(Error::Malformed)
    );
    assert_eq!(parse(&tampered(na, A2, A1, 1, 0), A2, A1), Ok(na));
    // Echo request: not handled here.
    assert_eq!(
        parse(&tampered(na, A2, A1, 0, 128), A2, A1),
        Err(Error::Unsupported)
    );
}

#[test]
fn packet_too_big_round_trip() {
    let quoted = &crate::wire::ipv6::tests::PACKET[..];
    let ptb = Icmpv6Repr::PacketTooBig {
        mtu: 1400,
        invoking: quoted,
    };
    let mut buf = [0u8; 128];
    let n = ptb.emit(&mut buf, A2, A1).unwrap();
    assert_eq!(n, 8 + quoted.len());
    assert_eq!(&buf[..8], &[2, 0, buf[2], buf[3], 0, 0, 0x05, 0x78]);
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..n]).unwrap(), A2, A1);
    assert_eq!(r, Ok(ptb));
    assert_eq!(ptb.to_string(), "packet too big, mtu 1400");
    assert_eq!(ptb.emit(&mut buf[..n - 1], A2, A1), Err(Error::Truncated));
}

#[test]
fn destination_unreachable_round_trip() {
    let quoted = &crate::wire::ipv6::tests::PACKET[..];
    let du = Icmpv6Repr::DstUnreachable {
        code: super::unreachable_code::PORT,
        invoking: quoted,
    };
    let mut buf = [0u8; 128];
    let n = du.emit(&mut buf, A2, A1).unwrap();
    assert_eq!(n, 8 + quoted.len());
    assert_eq!(&buf[..8], &[1, 4, buf[2], buf[3], 0, 0, 0, 0]);
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..n]).unwrap(), A2, A1);
    assert_eq!(r, Ok(du));
    assert_eq!(du.to_string(), "destination unreachable, code 4");
    // A bad checksum is caught; an empty quote still parses (the stack judges the quote).
    buf[n - 1] ^= 1;
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..n]).unwrap(), A2, A1);
    assert_eq!(r, Err(Error::Checksum));
    let empty = Icmpv6Repr::DstUnreachable {
        code: 0,
        invoking: &[],
    };
    let n = empty.emit(&mut buf, A2, A1).unwrap();
    let r = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..n]).unwrap(), A2, A1);
    assert_eq!(r, Ok(empty));
}
