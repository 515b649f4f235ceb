//! IPv6 frames: captured Linux segments (veth, checksums computed by the kernel; commands in
//! docs/ipv6.md) parse, our emitted frames parse back, truncation never panics.

use super::*;
use crate::wire::icmpv6::tests::hex;
use crate::wire::tcp::{SeqNumber, TcpControl, TcpTimestamp};

/// Linux's SYN 2001:db8::1.55904 → 2001:db8::2.8080 (MSS 1440, SACK, TS, WS 10).
const SYN: &str = "02000000000202000000000186dd600a1bdf0028064020010db800000000000000000000000120010db8\
000000000000000000000002da601f905c14a9ce00000000a002fd2082200000020405a00402080a3085\
3d02000000000103030a";
/// Its first data segment, "hi".
const DATA: &str = "02000000000202000000000186dd600a1bdf0022064020010db800000000000000000000000120010db8\
000000000000000000000002da601f905c14a9cfc035545680180040b93500000101080a30853d02f2eb\
848b6869";

const MAC_1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const IP6_1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const IP6_2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

#[test]
fn captured_syn_and_data_parse() {
    let syn = hex(SYN);
    let f = parse_tcp6_frame(&syn).unwrap();
    assert_eq!((f.eth.src_addr, f.eth.dst_addr), (MAC_1, MAC_2));
    assert_eq!(
        (f.ip.src_addr, f.ip.dst_addr, f.ip.hop_limit),
        (IP6_1, IP6_2, 64)
    );
    assert_eq!((f.tcp.src_port, f.tcp.dst_port), (55904, 8080));
    assert_eq!(f.tcp.control, TcpControl::Syn);
    assert_eq!(f.tcp.seq_number, SeqNumber(0x5c14_a9ce));
    assert_eq!(f.tcp.max_seg_size, Some(1440));
    assert_eq!(f.tcp.window_scale, Some(10));
    assert!(f.tcp.sack_permitted);
    assert_eq!(
        f.tcp.timestamp,
        Some(TcpTimestamp {
            tsval: 0x3085_3d02,
            tsecr: 0
        })
    );
    assert_eq!(
        describe_frame(&syn),
        "[2001:db8::1]:55904 > [2001:db8::2]:8080 Flags [S], seq 1544858062, win 64800, \
         options [mss 1440,wscale 10,sackOK,TS val 814038274 ecr 0], length 0"
    );
    let data = hex(DATA);
    let f = parse_tcp6_frame(&data).unwrap();
    assert_eq!(f.tcp.payload, b"hi");
    assert!(f.tcp.psh);
    // An IPv4 parser refuses it, and the IPv6 one refuses IPv4.
    assert_eq!(parse_tcp_frame(&data), Err(Error::Unsupported));
    let mut v4 = [0u8; 128];
    let n = emit_tcp_frame(
        &mut v4,
        MAC_1,
        MAC_2,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        &f.tcp,
    )
    .unwrap();
    assert_eq!(parse_tcp6_frame(&v4[..n]), Err(Error::Unsupported));
}

#[test]
fn captured_bad_checksum_and_truncation() {
    let mut data = hex(DATA);
    for len in 0..data.len() {
        assert!(parse_tcp6_frame(&data[..len]).is_err(), "{len}");
        let _ = describe_frame(&data[..len]);
    }
    let last = data.len() - 1;
    data[last] ^= 0x20;
    assert_eq!(parse_tcp6_frame(&data), Err(Error::Checksum));
    assert!(describe_frame(&data).ends_with("[bad tcp cksum 0xb935 -> 0xb955]"));
}

#[test]
fn emit_then_parse_v6() {
    let tcp = TcpRepr {
        src_port: 8080,
        dst_port: 55904,
        control: TcpControl::Syn,
        seq_number: SeqNumber(7),
        ack_number: Some(SeqNumber(0x5c14_a9cf)),
        window_len: 65535,
        max_seg_size: Some(1440),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp { tsval: 9, tsecr: 1 }),
        payload: b"",
        ..TcpRepr::default()
    };
    let mut buf = [0u8; 128];
    let len = emit_tcp6_frame(&mut buf, MAC_2, MAC_1, IP6_2, IP6_1, &tcp).unwrap();
    assert_eq!(len, tcp6_frame_len(&tcp));
    assert_eq!(len, 14 + 40 + 20 + 24);
    let f = parse_tcp6_frame(&buf[..len]).unwrap();
    assert_eq!(f.tcp, tcp);
    assert_eq!(f.ip.payload_len, 44);
    assert_eq!(f.ip.next_header, 6);
    assert_eq!(
        emit_tcp6_frame(&mut buf[..len - 1], MAC_2, MAC_1, IP6_2, IP6_1, &tcp),
        Err(Error::Truncated)
    );
    // Padding past the payload length is ignored.
    let mut padded = [0xeeu8; 128];
    padded[..len].copy_from_slice(&buf[..len]);
    assert_eq!(parse_tcp6_frame(&padded).unwrap().tcp, tcp);
}

#[test]
fn icmpv6_frames() {
    let ns = Icmpv6Repr::NeighborSolicit {
        target: IP6_2,
        source_lladdr: Some(MAC_1),
    };
    let sn = ipv6::solicited_node(IP6_2);
    let mut buf = [0u8; 128];
    let len = emit_icmpv6_frame(&mut buf, MAC_1, ipv6::multicast_mac(sn), IP6_1, sn, &ns).unwrap();
    assert_eq!(&buf[..len], &hex(crate::wire::icmpv6::tests::NS)[..]);
    assert_eq!(len, icmpv6_frame_len(&ns));
    // A Neighbor Solicitation that was forwarded (Hop Limit 254) is refused.
    buf[14 + 7] = 254;
    assert_eq!(parse_icmpv6_frame(&buf[..len]), Err(Error::Malformed));
    // TCP is not ICMPv6 and vice versa.
    assert_eq!(parse_icmpv6_frame(&hex(SYN)), Err(Error::Unsupported));
    assert_eq!(
        parse_tcp6_frame(&hex(crate::wire::icmpv6::tests::NA)),
        Err(Error::Unsupported)
    );
    // Other next headers are described, not parsed.
    let mut udp = hex(SYN);
    udp[14 + 6] = 17;
    assert_eq!(
        describe_frame(&udp),
        "2001:db8::1 > 2001:db8::2: next-header 17, length 40"
    );
}
