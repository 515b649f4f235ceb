//! Property tests for the wire layer: no parser panics on any input, mutated frames never
//! panic, emit→parse round-trips, and the incremental checksum agrees with recomputation.

use proptest::prelude::*;
use xtcp::wire::arp::{ArpPacket, ArpRepr};
use xtcp::wire::checksum;
use xtcp::wire::ethernet::{EthernetFrame, EthernetRepr};
use xtcp::wire::frame::{emit_tcp6_frame, parse_icmpv6_frame, parse_tcp6_frame, tcp6_frame_len};
use xtcp::wire::frame::{parse_tcp_frame_general, refix_checksums};
use xtcp::wire::icmpv4::{self, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Unreachable};
use xtcp::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use xtcp::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use xtcp::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use xtcp::wire::tcp::{TcpOptions, TcpPacket};
use xtcp::wire::vlan::{VlanPacket, VlanRepr};
use xtcp::wire::{
    EthernetAddress, Ipv4Addr, Ipv6Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, VlanId,
    describe_frame, emit_tcp_frame, emit_tcp_frame_vlan, parse_l2, parse_tcp_frame, tcp_frame_len,
};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const IP6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const IP6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xffff, 0xfffe);

/// Runs every parser and every accessor the panic contract promises over `bytes`.
fn parse_everything(bytes: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(bytes) {
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype(), f.payload());
    }
    let _ = EthernetRepr::parse(&EthernetFrame::new_unchecked(bytes));

    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let _ = (p.source_hardware_addr(), p.source_protocol_addr());
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    }
    let _ = ArpRepr::parse(&ArpPacket::new_unchecked(bytes));

    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.header_len(),
            p.total_len(),
            p.ident(),
            p.frag_offset(),
        );
        let _ = (
            p.ttl(),
            p.protocol(),
            p.src_addr(),
            p.dst_addr(),
            p.payload(),
        );
        let _ = p.verify_checksum();
    }
    let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(bytes));

    if let Ok(p) = Ipv6Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr());
        let _ = p.payload();
    }
    if let Ok(r) = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(bytes)) {
        assert!(r.payload_len + 40 <= bytes.len());
    }
    if let Ok(p) = Icmpv6Packet::new_checked(bytes) {
        let _ = (p.msg_type(), p.msg_code(), p.checksum());
        let _ = Icmpv6Repr::parse(&p, IP6_A, IP6_B).map(|r| r.to_string());
    }
    let _ = parse_tcp6_frame(bytes);
    let _ = parse_icmpv6_frame(bytes);

    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.seq_number(),
            p.ack_number(),
            p.flags(),
        );
        let _ = (p.window_len(), p.urgent_at(), p.options(), p.payload());
        let _ = (
            p.verify_checksum(IP_A, IP_B),
            p.expected_checksum(IP_A, IP_B),
        );
        for _ in TcpOptions::new(p.options()) {}
    }
    let tcp = TcpPacket::new_unchecked(bytes);
    let _ = TcpRepr::parse(&tcp, IP_A, IP_B);
    let _ = TcpRepr::parse_unverified(&tcp);
    for _ in TcpOptions::new(bytes) {}

    if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.next_hop_mtu(),
            p.data(),
        );
        let _ = p.verify_checksum();
    }
    let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(bytes));
    if let Ok(p) = VlanPacket::new_checked(bytes) {
        let _ = (
            p.tci(),
            p.pcp(),
            p.dei(),
            p.vid(),
            p.ethertype(),
            p.payload(),
        );
    }
    let _ = VlanRepr::parse(&VlanPacket::new_unchecked(bytes));
    let _ = parse_l2(bytes);

    // The fixed-offset path (`parse_tcp_frame`) and the layers' parsers agree on everything.
    assert_eq!(parse_tcp_frame(bytes), parse_tcp_frame_general(bytes));
    let d = describe_frame(bytes);
    assert!(!d.is_empty());
}

fn control() -> impl Strategy<Value = TcpControl> {
    prop_oneof![
        Just(TcpControl::None),
        Just(TcpControl::Syn),
        Just(TcpControl::Fin),
        Just(TcpControl::Rst),
    ]
}

fn sack_ranges() -> impl Strategy<Value = [Option<(SeqNumber, SeqNumber)>; 3]> {
    // Parsed SACK blocks fill the array from the front, so only prefixes round-trip.
    (0usize..=3, any::<[(u32, u32); 3]>()).prop_map(|(n, edges)| {
        let mut ranges = [None; 3];
        for (slot, (l, r)) in ranges.iter_mut().zip(edges).take(n) {
            *slot = Some((SeqNumber(l), SeqNumber(r)));
        }
        ranges
    })
}

prop_compose! {
    fn tcp_repr(payload: &'static [u8])(
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        control in control(),
        psh in any::<bool>(),
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
        window_len in any::<u16>(),
        window_scale in proptest::option::of(0u8..=14),
        max_seg_size in proptest::option::of(any::<u16>()),
        sack_permitted in any::<bool>(),
        sack_ranges in sack_ranges(),
        timestamp in proptest::option::of(any::<(u32, u32)>()),
        payload_len in 0..=payload.len(),
    ) -> TcpRepr<'static> {
        TcpRepr {
            src_port,
            dst_port,
            control,
            psh,
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len,
            window_scale,
            max_seg_size,
            sack_permitted,
            sack_ranges,
            timestamp: timestamp.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
            payload: &payload[..payload_len],
        }
    }
}

static PAYLOAD: [u8; 256] = {
    let mut p = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        p[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    p
};

/// What `parse` should return for an emitted `repr`: SACK blocks beyond the 40-byte option
/// budget are not on the wire.
fn expected_after_round_trip(repr: &TcpRepr<'static>) -> TcpRepr<'static> {
    let mut expected = *repr;
    let keep = repr.sack_blocks_emitted();
    for slot in expected.sack_ranges.iter_mut().skip(keep) {
        *slot = None;
    }
    expected
}

fn emit_frame(repr: &TcpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; tcp_frame_len(repr)];
    let len = emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, repr).unwrap();
    assert_eq!(len, buf.len());
    buf
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Overwrite(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Mutation::Extend),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::FlipBit(i, bit) if !frame.is_empty() => {
            let i = i % frame.len();
            frame[i] ^= 1 << bit;
        }
        Mutation::Overwrite(i, v) if !frame.is_empty() => {
            let i = i % frame.len();
            frame[i] = v;
        }
        Mutation::Truncate(n) => frame.truncate(n % (frame.len() + 1)),
        Mutation::Extend(ref tail) => frame.extend_from_slice(tail),
        _ => {}
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        parse_everything(&bytes);
    }

    /// Random bytes behind a plausible Ethernet + IPv4 header, so the IPv4 and TCP parsers
    /// see more than checksum failures.
    #[test]
    fn random_ipv4_tcp_bodies_never_panic(
        ihl in 0u8..16,
        total_len in any::<u16>(),
        flags_offset in prop_oneof![Just(0x4000u16), any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = vec![0u8; 34];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x40 | ihl;
        frame[16..18].copy_from_slice(&total_len.to_be_bytes());
        frame[20..22].copy_from_slice(&flags_offset.to_be_bytes());
        frame[22] = 64;
        frame[23] = 6;
        frame[26..30].copy_from_slice(&IP_A.octets());
        frame[30..34].copy_from_slice(&IP_B.octets());
        frame.extend_from_slice(&body);
        parse_everything(&frame);
        refix_checksums(&mut frame);
        parse_everything(&frame);
    }

    /// ICMP errors with a checksum that verifies around a random quote, so the quote parser
    /// sees more than checksum failures; what parses round-trips through `emit_error`.
    #[test]
    fn icmp_errors_with_random_quotes_never_panic(
        msg_type in prop_oneof![Just(3u8), Just(11u8), any::<u8>()],
        code in 0u8..16,
        mtu in any::<u16>(),
        ver_ihl in prop_oneof![Just(0x45u8), any::<u8>()],
        quote in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut quote = quote;
        if let Some(b) = quote.first_mut() {
            *b = ver_ihl;
        }
        if quote.len() > 9 {
            quote[9] = 6;
        }
        let message = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu: mtu });
        let mut buf = vec![0u8; 8 + quote.len()];
        let n = icmpv4::emit_error(&mut buf, message, &quote).unwrap();
        buf[0] = msg_type;
        buf[1] = code;
        buf[2..4].fill(0);
        let sum = !checksum::data(&buf[..n]);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
        parse_everything(&buf);
        if let Ok(r) = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&buf[..])) {
            let mut again = vec![0u8; n];
            icmpv4::emit_error(&mut again, r.message, &quote).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&again[..])), Ok(r));
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        repr in tcp_repr(&PAYLOAD[..64]),
        mutations in proptest::collection::vec(mutation(), 1..6),
        refix in any::<bool>(),
    ) {
        let mut frame = emit_frame(&repr);
        for m in &mutations {
            apply(&mut frame, m);
        }
        if refix {
            refix_checksums(&mut frame);
        }
        parse_everything(&frame);
        // Whatever survives parsing must describe itself consistently.
        if let Ok(parsed) = parse_tcp_frame(&frame) {
            prop_assert!(describe_frame(&frame).contains(" Flags ["));
            prop_assert!(parsed.tcp.payload.len() <= frame.len());
        }
    }

    /// Flipping one bit of a valid frame without fixing checksums must be caught (a single
    /// bit error always changes the ones' complement sum), unless the bit lies in the
    /// Ethernet header or in padding.
    #[test]
    fn single_bit_errors_are_detected(
        repr in tcp_repr(&PAYLOAD[..64]),
        index in any::<usize>(),
        bit in 0u8..8,
    ) {
        let mut frame = emit_frame(&repr);
        let i = 14 + index % (frame.len() - 14);
        frame[i] ^= 1 << bit;
        let parsed = parse_tcp_frame(&frame);
        prop_assert!(parsed.is_err(), "accepted corrupted frame: {:?}", parsed);
    }

    #[test]
    fn tcp_repr_round_trip(repr in tcp_repr(&PAYLOAD)) {
        let expected = expected_after_round_trip(&repr);
        prop_assert!(repr.header_len() <= 60);
        prop_assert_eq!(repr.header_len() % 4, 0);

        let mut buf = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), IP_A, IP_B);
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(usize::from(packet.header_len()), repr.header_len());
        prop_assert_eq!(TcpRepr::parse(&packet, IP_A, IP_B), Ok(expected));

        let frame = emit_frame(&repr);
        let parsed = parse_tcp_frame(&frame).unwrap();
        prop_assert_eq!(parsed.tcp, expected);
        prop_assert_eq!(parsed.eth.src_addr, MAC_A);
        prop_assert_eq!(parsed.eth.dst_addr, MAC_B);
        prop_assert_eq!(parsed.ip.src_addr, IP_A);
        prop_assert_eq!(parsed.ip.dst_addr, IP_B);
        prop_assert_eq!(parsed.ip.payload_len, repr.buffer_len());

        // Ethernet padding after the datagram is ignored.
        let mut padded = frame.clone();
        padded.resize(frame.len().max(60) + 7, 0xee);
        prop_assert_eq!(parse_tcp_frame(&padded).unwrap().tcp, expected);

        let d = describe_frame(&frame);
        let prefix = format!("10.0.0.1:{} > 10.0.0.2:{} Flags [", repr.src_port, repr.dst_port);
        prop_assert!(d.starts_with(&prefix), "{}", d);
        let suffix = format!(", length {}", repr.payload.len());
        prop_assert!(d.ends_with(&suffix), "{}", d);
    }

    /// The IPv6 frame path: emit → parse round trip, padding ignored, one flipped bit past
    /// the Ethernet header always caught (IPv6 has no header checksum: the TCP checksum's
    /// pseudo-header covers the addresses and length, and a flipped version, next header
    /// or length field fails on its own), and truncation never panics.
    #[test]
    fn tcp6_frame_round_trip_and_bit_errors(
        repr in tcp_repr(&PAYLOAD[..64]),
        index in any::<usize>(),
        bit in 0u8..8,
        cut in any::<usize>(),
    ) {
        let expected = expected_after_round_trip(&repr);
        let mut frame = vec![0u8; tcp6_frame_len(&repr)];
        let len = emit_tcp6_frame(&mut frame, MAC_A, MAC_B, IP6_A, IP6_B, &repr).unwrap();
        prop_assert_eq!(len, frame.len());
        let parsed = parse_tcp6_frame(&frame).unwrap();
        prop_assert_eq!(parsed.tcp, expected);
        prop_assert_eq!((parsed.ip.src_addr, parsed.ip.dst_addr), (IP6_A, IP6_B));
        let mut padded = frame.clone();
        padded.resize(frame.len() + 9, 0xee);
        prop_assert_eq!(parse_tcp6_frame(&padded).unwrap().tcp, expected);
        let d = describe_frame(&frame);
        let prefix = format!("[2001:db8::1]:{} > [2001:db8::ffff:fffe]:{} Flags [", repr.src_port, repr.dst_port);
        prop_assert!(d.starts_with(&prefix), "{}", d);

        let mut bad = frame.clone();
        let i = 14 + index % (bad.len() - 14);
        // Traffic class, flow label (bits 4..32 of the header) and hop limit (byte 7) are
        // covered by no checksum, by design (RFC 8200 §8.1): skip them.
        let uncovered = (i == 14 && bit < 4) || (15..18).contains(&i) || i == 21;
        bad[i] ^= 1 << bit;
        if !uncovered {
            prop_assert!(parse_tcp6_frame(&bad).is_err(), "accepted a flipped bit at {}", i);
        }
        let cut = cut % frame.len();
        prop_assert!(parse_tcp6_frame(&frame[..cut]).is_err());
        parse_everything(&frame[..cut]);
    }

    /// A tagged frame is the untagged one with the tag after the MACs, and parses to the same
    /// segment with its VID; cut anywhere, it is an error, never a panic.
    #[test]
    fn tagged_round_trip(repr in tcp_repr(&PAYLOAD[..64]), vid in 1u16..4095, cut in any::<usize>()) {
        let expected = expected_after_round_trip(&repr);
        let plain = emit_frame(&repr);
        let mut frame = vec![0u8; plain.len() + 4];
        let vlan = VlanId::new(vid);
        let n = emit_tcp_frame_vlan(&mut frame, vlan, MAC_A, MAC_B, IP_A, IP_B, &repr).unwrap();
        prop_assert_eq!(n, plain.len() + 4);
        prop_assert_eq!(&frame[..12], &plain[..12]);
        prop_assert_eq!(&frame[12..16], &[0x81, 0x00, (vid >> 8) as u8, vid as u8][..]);
        prop_assert_eq!(&frame[16..], &plain[12..]);
        let parsed = parse_tcp_frame(&frame).unwrap();
        prop_assert_eq!(parse_tcp_frame_general(&frame), Ok(parsed));
        prop_assert_eq!(parsed.tcp, expected);
        prop_assert_eq!(parsed.vlan.map(|t| t.vid), Some(vid));
        let c = cut % n;
        prop_assert!(parse_tcp_frame(&frame[..c]).is_err());
        parse_everything(&frame[..c]);
        let mut short = vec![0u8; n - 1 - cut % 40.min(n - 1)];
        prop_assert!(emit_tcp_frame_vlan(&mut short, vlan, MAC_A, MAC_B, IP_A, IP_B, &repr).is_err());
    }

    #[test]
    fn emit_never_overruns(repr in tcp_repr(&PAYLOAD[..32]), short in 1usize..40) {
        let need = tcp_frame_len(&repr);
        let mut buf = vec![0u8; need - short.min(need)];
        prop_assert!(emit_tcp_frame(&mut buf, MAC_A, MAC_B, IP_A, IP_B, &repr).is_err());
    }

    #[test]
    fn checksum_data_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            sum += hi | lo;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        prop_assert_eq!(checksum::data(&bytes), sum as u16);
    }

    /// The checksum of any slice (any start alignment, odd lengths, mostly-0xff bytes that
    /// carry out of every lane) and the one-pass TCP checksum with its pseudo-header equal
    /// a 16-bit-at-a-time reference (RFC 1071 §4.1).
    #[test]
    fn checksum_any_alignment_matches_reference(
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        ones in any::<bool>(),
        start in 0usize..8,
        src in any::<u32>(),
        dst in any::<u32>(),
    ) {
        let mut buf: Vec<u8> = if ones { raw.iter().map(|b| b | 0xfe).collect() } else { raw };
        buf.splice(0..0, [0xffu8; 8]);
        let bytes = &buf[start..];
        let reference = |b: &[u8]| {
            let mut sum: u64 = 0;
            for pair in b.chunks(2) {
                sum += u64::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
            }
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum as u16
        };
        prop_assert_eq!(checksum::data(bytes), reference(bytes));

        let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
        let mut with_pseudo = Vec::new();
        with_pseudo.extend_from_slice(&src.octets());
        with_pseudo.extend_from_slice(&dst.octets());
        with_pseudo.extend_from_slice(&[0, 6]);
        with_pseudo.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        with_pseudo.extend_from_slice(bytes);
        let want = reference(&with_pseudo);
        prop_assert_eq!(checksum::transport(src, dst, 6, bytes), want);
    }

    #[test]
    fn checksum_combine_of_halves(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        split in any::<usize>(),
    ) {
        // Split at an even offset so each half keeps its word alignment.
        let at = (split % (bytes.len() + 1)) & !1;
        let (a, b) = bytes.split_at(at);
        prop_assert_eq!(checksum::combine(&[checksum::data(a), checksum::data(b)]), checksum::data(&bytes));
    }

    /// RFC 1624 eqn. 3 gives exactly what recomputation gives, as long as the covered data
    /// is not all zero (the one case where both 0x0000 and 0xffff are valid encodings). The
    /// fixed 0x45 byte plays the part of an IPv4 version/IHL byte.
    #[test]
    fn incremental_update_matches_recompute(
        mut words in proptest::collection::vec(any::<u16>(), 2..40),
        index in any::<usize>(),
        new_word in any::<u16>(),
        new_u32 in any::<u32>(),
    ) {
        words[0] = 0x4500 | (words[0] & 0xff);
        let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        let full = |w: &[u16]| !checksum::data(&bytes(w));

        let i = 1 + index % (words.len() - 1);
        let before = full(&words);
        let old_word = words[i];
        words[i] = new_word;
        prop_assert_eq!(checksum::update(before, old_word, new_word), full(&words));

        if words.len() >= 3 {
            let i = 1 + index % (words.len() - 2);
            let before = full(&words);
            let old = (u32::from(words[i]) << 16) | u32::from(words[i + 1]);
            words[i] = (new_u32 >> 16) as u16;
            words[i + 1] = new_u32 as u16;
            prop_assert_eq!(checksum::update_u32(before, old, new_u32), full(&words));
        }
    }
}
