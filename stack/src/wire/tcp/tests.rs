//! Byte-literal tests of the TCP header: parse, emit, options, truncation, checksums.

use super::*;
use core::net::Ipv4Addr;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A SYN as Linux sends it: MSS, SACK-permitted, timestamps, NOP, window scale.
static LINUX_SYN: [u8; 40] = [
    0xc0, 0x00, 0x00, 0x50, // 49152 -> 80
    0x9a, 0x3c, 0x1f, 0x07, // seq
    0x00, 0x00, 0x00, 0x00, // ack (ACK bit clear)
    0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
    0xa4, 0x42, 0x00, 0x00, // checksum, urgent
    0x02, 0x04, 0x05, 0xb4, // MSS 1460
    0x04, 0x02, // SACK-permitted
    0x08, 0x0a, 0x00, 0x0a, 0x1b, 0x2c, 0x00, 0x00, 0x00, 0x00, // TS 662316, 0
    0x01, // NOP
    0x03, 0x03, 0x07, // WS 7
];

/// The client's first data segment: ACK|PSH, NOP NOP TS, an 18-byte request.
static DATA: [u8; 50] = [
    0xc0, 0x00, 0x00, 0x50, 0x9a, 0x3c, 0x1f, 0x08, 0x5e, 0x2f, 0x0c, 0x11, 0x80, 0x18, 0x01, 0xf6,
    0x02, 0xf9, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x0a, 0x1b, 0x30, 0x7f, 0x00, 0x01, 0x02,
    b'G', b'E', b'T', b' ', b'/', b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0', b'\r',
    b'\n', b'\r', b'\n',
];

/// Our SYN-ACK to it, in `emit`'s option order: MSS, NOP WS, SACK-perm NOP NOP, NOP NOP TS.
static OUR_SYN_ACK: [u8; 44] = [
    0x00, 0x50, 0xc0, 0x00, 0x11, 0x22, 0x33, 0x44, 0x9a, 0x3c, 0x1f, 0x08, 0xb0, 0x12, 0xff, 0xff,
    0x48, 0x52, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07, 0x04, 0x02, 0x01, 0x01,
    0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x64, 0x00, 0x0a, 0x1b, 0x2c,
];

fn linux_syn_repr() -> TcpRepr<'static> {
    TcpRepr {
        src_port: 49152,
        dst_port: 80,
        control: TcpControl::Syn,
        psh: false,
        seq_number: SeqNumber(0x9a3c_1f07),
        ack_number: None,
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: Some(TcpTimestamp {
            tsval: 0x000a_1b2c,
            tsecr: 0,
        }),
        payload: &[],
    }
}

fn our_syn_ack_repr() -> TcpRepr<'static> {
    TcpRepr {
        src_port: 80,
        dst_port: 49152,
        control: TcpControl::Syn,
        seq_number: SeqNumber(0x1122_3344),
        ack_number: Some(SeqNumber(0x9a3c_1f08)),
        window_len: 65535,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp {
            tsval: 100,
            tsecr: 0x000a_1b2c,
        }),
        ..TcpRepr::default()
    }
}

/// Parses a client-to-server segment after recomputing its checksum.
fn fixed(bytes: &mut [u8]) -> Result<TcpRepr<'_>> {
    TcpPacket::new_unchecked(&mut *bytes).fill_checksum(CLIENT, SERVER);
    TcpRepr::parse(&TcpPacket::new_unchecked(&*bytes), CLIENT, SERVER)
}

/// LINUX_SYN with its 20 option bytes replaced (header length kept at 40).
fn syn_with_options(options: &[u8; 20]) -> [u8; 40] {
    let mut bytes = LINUX_SYN;
    bytes[20..].copy_from_slice(options);
    bytes
}

#[test]
fn test_parse() {
    let packet = TcpPacket::new_checked(&LINUX_SYN[..]).unwrap();
    assert_eq!(packet.src_port(), 49152);
    assert_eq!(packet.dst_port(), 80);
    assert_eq!(packet.header_len(), 40);
    assert!(packet.syn() && !packet.ack() && !packet.fin() && !packet.rst());
    assert_eq!(packet.flags(), flags::SYN);
    assert_eq!(packet.window_len(), 64240);
    assert_eq!(packet.checksum(), 0xa442);
    assert!(packet.verify_checksum(CLIENT, SERVER));
    assert_eq!(packet.expected_checksum(CLIENT, SERVER), 0xa442);
    assert_eq!(packet.options().len(), 20);
    assert_eq!(
        TcpRepr::parse(&packet, CLIENT, SERVER).unwrap(),
        linux_syn_repr()
    );
    assert_eq!(linux_syn_repr().segment_len(), 1);
}

#[test]
fn test_parse_data() {
    let packet = TcpPacket::new_checked(&DATA[..]).unwrap();
    let repr = TcpRepr::parse(&packet, CLIENT, SERVER).unwrap();
    assert_eq!(
        repr,
        TcpRepr {
            src_port: 49152,
            dst_port: 80,
            psh: true,
            seq_number: SeqNumber(0x9a3c_1f08),
            ack_number: Some(SeqNumber(0x5e2f_0c11)),
            window_len: 502,
            timestamp: Some(TcpTimestamp {
                tsval: 0x000a_1b30,
                tsecr: 0x7f00_0102
            }),
            payload: b"GET / HTTP/1.0\r\n\r\n",
            ..TcpRepr::default()
        }
    );
    assert_eq!(repr.segment_len(), 18);
}

#[test]
fn test_emit() {
    let repr = our_syn_ack_repr();
    assert_eq!(repr.header_len(), 44);
    assert_eq!(repr.buffer_len(), 44);
    let mut buf = [0xaau8; 44];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SERVER, CLIENT);
    assert_eq!(buf, OUR_SYN_ACK);
    let parsed =
        TcpRepr::parse(&TcpPacket::new_unchecked(&OUR_SYN_ACK[..]), SERVER, CLIENT).unwrap();
    assert_eq!(parsed, repr);
}

#[test]
fn test_emit_data_round_trip() {
    let repr = TcpRepr::parse(&TcpPacket::new_unchecked(&DATA[..]), CLIENT, SERVER).unwrap();
    // Emitting into a longer buffer uses only the first buffer_len() bytes.
    let mut buf = [0x55u8; 64];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), CLIENT, SERVER);
    assert_eq!(buf[..50], DATA);
    assert!(buf[50..].iter().all(|&b| b == 0x55));
}

#[test]
fn test_truncated() {
    for len in 0..20 {
        let p = TcpPacket::new_unchecked(&LINUX_SYN[..len]);
        assert_eq!(
            TcpRepr::parse(&p, CLIENT, SERVER),
            Err(Error::Truncated),
            "len {len}"
        );
    }
    // The header says 40 bytes.
    for len in 20..40 {
        assert_eq!(
            TcpPacket::new_checked(&LINUX_SYN[..len]),
            Err(Error::Truncated)
        );
    }
}

#[test]
fn test_bad_checksum() {
    let mut bytes = DATA;
    bytes[40] ^= 0x20; // one payload bit
    let p = TcpPacket::new_unchecked(&bytes[..]);
    assert_eq!(TcpRepr::parse(&p, CLIENT, SERVER), Err(Error::Checksum));
    // The field the modified segment needs is the RFC 1624 update of the old one.
    let old_word = u16::from_be_bytes([DATA[40], DATA[41]]);
    let new_word = u16::from_be_bytes([bytes[40], bytes[41]]);
    assert_eq!(
        p.expected_checksum(CLIENT, SERVER),
        checksum::update(0x02f9, old_word, new_word)
    );
    // Wrong pseudo-header (addresses swapped) fails too.
    let p = TcpPacket::new_unchecked(&DATA[..]);
    assert_eq!(
        TcpRepr::parse(&p, SERVER, Ipv4Addr::new(10, 0, 0, 3)),
        Err(Error::Checksum)
    );
    assert!(TcpRepr::parse_unverified(&TcpPacket::new_unchecked(&bytes[..])).is_ok());
}

#[test]
fn test_bad_data_offset() {
    let mut bytes = DATA;
    bytes[12] = 0x40; // 16-byte header
    assert_eq!(fixed(&mut bytes), Err(Error::Malformed));
    let mut bytes = DATA;
    bytes[12] = 0xf0; // 60-byte header in a 50-byte segment
    assert_eq!(fixed(&mut bytes), Err(Error::Truncated));
}

#[test]
fn test_flag_combinations() {
    let control = |flag_bits: u8| {
        let mut bytes = DATA;
        bytes[13] = flag_bits;
        fixed(&mut bytes).map(|r| (r.control, r.ack_number.is_some(), r.psh))
    };
    assert_eq!(control(0x10), Ok((TcpControl::None, true, false)));
    assert_eq!(control(0x11), Ok((TcpControl::Fin, true, false)));
    assert_eq!(control(0x04), Ok((TcpControl::Rst, false, false)));
    assert_eq!(control(0x05), Ok((TcpControl::Rst, false, false))); // RST+FIN
    assert_eq!(control(0x12), Ok((TcpControl::Syn, true, false)));
    assert_eq!(control(0x03), Err(Error::Malformed)); // SYN+FIN
    assert_eq!(control(0x06), Err(Error::Malformed)); // SYN+RST
    assert_eq!(control(0x07), Err(Error::Malformed));
    // URG, ECE, CWR don't change the control.
    assert_eq!(control(0xf8), Ok((TcpControl::None, true, true)));
}

#[test]
fn test_unknown_option_skipped() {
    // TCP Fast Open cookie (kind 34, len 10) then NOP NOP and an MSS, then EOL padding.
    let mut bytes = syn_with_options(&[
        34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 2, 4, 0x23, 0x28, 0, 0, 0, 0,
    ]);
    let repr = fixed(&mut bytes).unwrap();
    assert_eq!(repr.max_seg_size, Some(9000));
    assert_eq!(repr.timestamp, None);
}

#[test]
fn test_eol_ends_options() {
    // After EOL, garbage (a zero-length option) is padding and not parsed.
    let mut bytes = syn_with_options(&[
        2, 4, 5, 0xb4, 0, 7, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    ]);
    let repr = fixed(&mut bytes).unwrap();
    assert_eq!(repr.max_seg_size, Some(1460));
}

#[test]
fn test_malformed_options() {
    let cases: [&[u8]; 9] = [
        &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 7], // kind, no length
        &[7, 0],                                                       // length 0
        &[7, 1],                                                       // length 1
        &[7, 21],                                                      // runs past header
        &[2, 3, 5],                                                    // MSS length 3
        &[3, 4, 7, 0],                                                 // WS length 4
        &[4, 3, 0],                                                    // SACK-perm length 3
        &[5, 6, 0, 0, 0, 1],                                           // SACK, no whole block
        &[8, 8, 0, 0, 0, 1, 0, 0],                                     // TS length 8
    ];
    for case in cases {
        let mut options = [1u8; 20]; // NOP padding after the case
        options[..case.len()].copy_from_slice(case);
        let mut bytes = syn_with_options(&options);
        assert_eq!(fixed(&mut bytes), Err(Error::Malformed), "{case:?}");
    }
}

#[test]
fn test_window_scale_clamped() {
    let mut bytes =
        syn_with_options(&[3, 3, 15, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert_eq!(fixed(&mut bytes).unwrap().window_scale, Some(14));
    let mut bytes =
        syn_with_options(&[3, 3, 14, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert_eq!(fixed(&mut bytes).unwrap().window_scale, Some(14));
}

#[test]
fn test_sack_blocks() {
    // Four SACK blocks fill 34 of 40 option bytes; only the first three are kept.
    let mut seg = [0u8; 60];
    seg[..20].copy_from_slice(&DATA[..20]);
    seg[12] = 0xf0;
    seg[20..24].copy_from_slice(&[1, 1, 5, 34]);
    for i in 0..8u32 {
        let at = 24 + 4 * i as usize;
        seg[at..at + 4].copy_from_slice(&(1000 * (i + 1)).to_be_bytes());
    }
    seg[56..60].copy_from_slice(&[1, 1, 1, 0]);
    let repr = fixed(&mut seg).unwrap();
    assert_eq!(
        repr.sack_ranges,
        [
            Some((SeqNumber(1000), SeqNumber(2000))),
            Some((SeqNumber(3000), SeqNumber(4000))),
            Some((SeqNumber(5000), SeqNumber(6000))),
        ]
    );
    assert_eq!(repr.payload, &[] as &[u8]);
}

#[test]
fn test_emit_sack_limited_by_timestamps() {
    let ranges = [
        Some((SeqNumber(10), SeqNumber(20))),
        Some((SeqNumber(30), SeqNumber(40))),
        Some((SeqNumber(50), SeqNumber(60))),
    ];
    let with_ts = TcpRepr {
        src_port: 1,
        dst_port: 2,
        ack_number: Some(SeqNumber(5)),
        timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 2 }),
        sack_ranges: ranges,
        ..TcpRepr::default()
    };
    // 12 (NOP NOP TS) + 4 (NOP NOP kind len) + 3 * 8 = 40: exactly full.
    assert_eq!(with_ts.sack_blocks_emitted(), 3);
    assert_eq!(with_ts.options_len(), 40);
    assert_eq!(with_ts.header_len(), 60);
    let round_trip = |repr: &TcpRepr| {
        let mut buf = [0xffu8; 64];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), CLIENT, SERVER);
        let len = repr.buffer_len();
        let parsed = TcpRepr::parse(&TcpPacket::new_unchecked(&buf[..len]), CLIENT, SERVER);
        parsed.map(|p| (p.sack_ranges, p.timestamp, p.sack_permitted))
    };
    assert_eq!(round_trip(&with_ts), Ok((ranges, with_ts.timestamp, false)));

    // With 4 more bytes of options only two blocks fit.
    let crowded = TcpRepr {
        sack_permitted: true,
        ..with_ts
    };
    assert_eq!(crowded.sack_blocks_emitted(), 2);
    assert_eq!(crowded.options_len(), 36);
    assert_eq!(
        round_trip(&crowded),
        Ok(([ranges[0], ranges[1], None], with_ts.timestamp, true))
    );

    // Everything set: 24 bytes of other options leave room for one block.
    let everything = TcpRepr {
        max_seg_size: Some(1460),
        window_scale: Some(7),
        ..crowded
    };
    assert_eq!(everything.sack_blocks_emitted(), 1);
    assert_eq!(everything.header_len(), 56);
    assert_eq!(
        round_trip(&everything),
        Ok(([ranges[0], None, None], with_ts.timestamp, true))
    );
}

/// The reference semantics of the option block: a fold over [`TcpOptions`].
fn options_by_iterator<'a>(opts: &'a [u8], repr: &mut TcpRepr<'a>) -> Result<()> {
    for option in TcpOptions::new(opts) {
        match option? {
            TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
            TcpOption::WindowScale(shift) => {
                repr.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
            }
            TcpOption::SackPermitted => repr.sack_permitted = true,
            TcpOption::SackRange(ranges) => repr.sack_ranges = ranges,
            TcpOption::Timestamp(ts) => repr.timestamp = Some(ts),
        }
    }
    Ok(())
}

/// One option (or a malformed fragment) as bytes, biased toward real layouts.
fn option_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(vec![1]),
        Just(vec![0]),
        any::<u16>().prop_map(|m| vec![2, 4, (m >> 8) as u8, m as u8]),
        any::<u8>().prop_map(|w| vec![3, 3, w]),
        Just(vec![4, 2]),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
            let mut v = vec![8, 10];
            v.extend_from_slice(&a.to_be_bytes());
            v.extend_from_slice(&b.to_be_bytes());
            v
        }),
        (1usize..5, any::<u8>()).prop_map(|(n, x)| {
            let mut v = vec![5, 2 + 8 * n as u8];
            v.extend((0..8 * n).map(|i| x.wrapping_add(i as u8)));
            v
        }),
        proptest::collection::vec(any::<u8>(), 1..6),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
    /// The layout fast paths and the general walk agree with the iterator on any block.
    #[test]
    fn option_parsing_matches_iterator(
        parts in proptest::collection::vec(option_bytes(), 0..8),
        fill in 0u8..3,
    ) {
        let mut block: Vec<u8> = parts.concat();
        block.truncate(MAX_OPTIONS_LEN);
        while !block.len().is_multiple_of(4) {
            block.push([0, 1, 7][usize::from(fill)]);
        }
        let mut fast = linux_syn_repr();
        let mut slow = linux_syn_repr();
        let a = parse_options(&block, &mut fast).map(|_| fast);
        let b = options_by_iterator(&block, &mut slow).map(|_| slow);
        proptest::prop_assert_eq!(a, b, "{:?}", block);
    }
}

#[test]
fn option_fast_paths_match_iterator() {
    let linux: &[u8] = &LINUX_SYN[20..];
    let ours: &[u8] = &OUR_SYN_ACK[20..];
    let data_ts: &[u8] = &DATA[20..32];
    for block in [linux, ours, data_ts] {
        let mut fast = TcpRepr::default();
        let mut slow = TcpRepr::default();
        parse_options(block, &mut fast).unwrap();
        options_by_iterator(block, &mut slow).unwrap();
        assert_eq!(fast, slow);
        assert!(fast.timestamp.is_some());
    }
    // The same layouts with an over-large shift clamp to 14 either way.
    let mut big = LINUX_SYN;
    big[39] = 200;
    let mut fast = TcpRepr::default();
    parse_options(&big[20..], &mut fast).unwrap();
    assert_eq!(fast.window_scale, Some(14));
}

#[test]
fn test_option_emit_parse() {
    let options = [
        TcpOption::MaxSegmentSize(536),
        TcpOption::WindowScale(3),
        TcpOption::SackPermitted,
        TcpOption::Timestamp(TcpTimestamp { tsval: 7, tsecr: 9 }),
        TcpOption::SackRange([Some((SeqNumber(1), SeqNumber(2))), None, None]),
        TcpOption::Unknown {
            kind: 30,
            data: &[0xde, 0xad],
        },
        TcpOption::NoOperation,
        TcpOption::EndOfList,
    ];
    let mut buf = [0u8; 64];
    let mut rest = &mut buf[..];
    for o in &options {
        rest = o.emit(rest);
    }
    let used = 64 - rest.len();
    let parsed: Vec<_> = TcpOptions::new(&buf[..used]).collect();
    let expect: Vec<_> = options.iter().copied().map(Ok).collect();
    assert_eq!(parsed, expect);
}

/// `emit` sums the checksum from the words as it writes them: the same bytes as writing the
/// segment and then summing it back from the buffer (`fill_checksum`), for every option
/// layout, with and without ACK, payloads of every length mod 8 (odd ones included), IPv4
/// and IPv6 pseudo-headers.
#[test]
fn emit_checksum_equals_read_back_sum() {
    use core::net::Ipv6Addr;
    let mixed: Vec<u8> = (0..37u8)
        .map(|i| i.wrapping_mul(151).wrapping_add(0xf7))
        .collect();
    // All ones: the payload's 64-bit sum alone reaches 2^64 - 1, so adding the header
    // words to it must carry end-around (a fuzz input found the plain addition).
    let ones = [0xffu8; 37];
    let v6 = (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0xffff, 2),
    );
    let mut checked = 0;
    for (layout, payload) in (0u32..64).flat_map(|l| [(l, &mixed[..]), (l, &ones[..])]) {
        for plen in [0usize, 1, 2, 3, 5, 8, 13, 37] {
            for control in [
                TcpControl::None,
                TcpControl::Syn,
                TcpControl::Fin,
                TcpControl::Rst,
            ] {
                let bit = |b: u32| layout & (1 << b) != 0;
                let repr = TcpRepr {
                    src_port: 0xfffe,
                    dst_port: 80,
                    control,
                    psh: bit(0),
                    seq_number: SeqNumber(0xffff_fff0 ^ layout),
                    ack_number: bit(1).then_some(SeqNumber(0xfedc_ba98)),
                    window_len: 0xffff - layout as u16,
                    window_scale: bit(2).then_some(14),
                    max_seg_size: bit(3).then_some(0xffff),
                    sack_permitted: bit(4),
                    sack_ranges: if bit(5) {
                        [
                            Some((SeqNumber(0xffff_ffff), SeqNumber(1))),
                            Some((SeqNumber(7), SeqNumber(0x8000_0000))),
                            Some((SeqNumber(0xaaaa_5555), SeqNumber(0x5555_aaaa))),
                        ]
                    } else {
                        [None; 3]
                    },
                    timestamp: (layout % 3 != 0).then_some(TcpTimestamp {
                        tsval: 0xffff_ffff,
                        tsecr: layout,
                    }),
                    payload: &payload[..plen],
                };
                let len = repr.buffer_len();
                let mut fast = vec![0x5au8; len];
                repr.emit(&mut TcpPacket::new_unchecked(&mut fast[..]), CLIENT, SERVER);
                let mut slow = fast.clone();
                let mut p = TcpPacket::new_unchecked(&mut slow[..]);
                p.fill_checksum(CLIENT, SERVER);
                assert_eq!(fast, slow, "IPv4 {repr:?}");
                let mut fast6 = vec![0xa5u8; len];
                repr.emit(&mut TcpPacket::new_unchecked(&mut fast6[..]), v6.0, v6.1);
                let mut slow6 = fast6.clone();
                TcpPacket::new_unchecked(&mut slow6[..]).fill_checksum(v6.0, v6.1);
                assert_eq!(fast6, slow6, "IPv6 {repr:?}");
                assert_eq!(fast[..16], fast6[..16], "only the checksum differs");
                assert_eq!(fast[18..], fast6[18..]);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 64 * 8 * 4);
}

/// The whole-word option layouts of `emit` (NOP NOP TS alone; the SYN's MSS, WS,
/// SACK-permitted and TS) write the bytes and the sum of the generic option walk.
#[test]
fn option_fast_layouts_equal_generic_walk() {
    let ts = Some(TcpTimestamp {
        tsval: 0xffff_fffe,
        tsecr: 0x0102_0304,
    });
    let ts_only = TcpRepr {
        timestamp: ts,
        ack_number: Some(SeqNumber(1)),
        ..TcpRepr::default()
    };
    let syn = TcpRepr {
        control: TcpControl::Syn,
        max_seg_size: Some(0xfffe),
        window_scale: Some(14),
        sack_permitted: true,
        timestamp: ts,
        ..TcpRepr::default()
    };
    for repr in [ts_only, syn] {
        let (blocks, options_len) = repr.layout();
        assert!(options_len == 12 || options_len == 24);
        let mut generic = [0u8; MAX_OPTIONS_LEN];
        let sum = repr.emit_options(&mut generic[..options_len], blocks);
        let mut seg = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut seg[..]), CLIENT, SERVER);
        assert_eq!(seg[HEADER_LEN..], generic[..options_len], "{repr:?}");
        // The checksum over the emitted segment verifies, so the fast sum equals `sum`'s.
        let mut again = seg.clone();
        TcpPacket::new_unchecked(&mut again[..]).fill_checksum(CLIENT, SERVER);
        assert_eq!(seg, again);
        assert_eq!(sum, {
            let mut s = 0u64;
            for w in generic[..options_len].chunks_exact(4) {
                s += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
            }
            s
        });
    }
}
