//! 802.1Q VLAN in the stack (`StackConfig::vlan`): frames tagged with our VID are ours and
//! everything we send carries the tag; untagged, other-VID and double-tagged frames are
//! counted and dropped, ARP included; with no VLAN configured, tagged frames are dropped and
//! priority tags (VID 0) are accepted as untagged.

use std::net::SocketAddrV4;

use xtcp::link::memory::MemoryLink;
use xtcp::sim::{SimConfig, Simulation};
use xtcp::stack::{Stack, StackConfig};
use xtcp::tcp::TcpConfig;
use xtcp::time::Instant;
use xtcp::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xtcp::wire::ethernet::EtherType;
use xtcp::wire::frame::{emit_l2, parse_l2};
use xtcp::wire::{
    EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, VlanId, describe_frame,
    emit_tcp_frame_vlan, parse_tcp_frame,
};
use xtcp_testkit::bulk::{self as kit, Bulk};

const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const PEER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn vid(v: u16) -> Option<VlanId> {
    VlanId::new(v)
}

fn server(vlan: Option<VlanId>) -> Stack {
    let mut s = Stack::new(
        StackConfig {
            mac: MAC,
            ips: vec![IP],
            vlan,
            time_wait_capacity: 1024,
            max_connections: 64,
            max_syn_recv: 64,
            ..StackConfig::default()
        },
        Instant::ZERO,
    );
    s.listen(SocketAddrV4::new(IP, 80)).unwrap();
    s
}

/// A SYN from `port` to our port 80, tagged with `vlan` when given.
fn syn(vlan: Option<VlanId>, port: u16) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: port,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: SeqNumber(1),
        window_len: 1000,
        max_seg_size: Some(1460),
        ..TcpRepr::default()
    };
    let mut buf = [0u8; 128];
    let n = emit_tcp_frame_vlan(&mut buf, vlan, PEER, MAC, PEER_IP, IP, &repr).unwrap();
    buf[..n].to_vec()
}

/// An ARP request for our address, tagged with `vlan` when given.
fn arp_request(vlan: Option<VlanId>) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let l2 = emit_l2(
        &mut buf,
        PEER,
        EthernetAddress::BROADCAST,
        vlan,
        EtherType::Arp,
    );
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: IP,
    };
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[l2..]));
    buf[..l2 + repr.buffer_len()].to_vec()
}

/// Pushes `frame`, polls, and returns what the stack sent.
fn exchange(stack: &mut Stack, link: &mut MemoryLink, frame: &[u8]) -> Vec<Vec<u8>> {
    link.push_rx(frame);
    stack.poll(Instant::ZERO, link);
    link.take_tx()
}

#[test]
fn only_our_vlan_is_answered_and_answers_are_tagged() {
    let mut s = server(vid(100));
    let mut link = MemoryLink::default();

    // Untagged, another VID, and double-tagged SYNs: no answer, each counted.
    assert!(exchange(&mut s, &mut link, &syn(None, 1000)).is_empty());
    assert!(exchange(&mut s, &mut link, &syn(vid(200), 1001)).is_empty());
    let mut qinq = syn(vid(100), 1002);
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x05]);
    assert!(exchange(&mut s, &mut link, &qinq).is_empty());
    // A priority tag (VID 0) is untagged traffic: not our VLAN either.
    let mut prio = syn(vid(100), 1003);
    prio[14..16].copy_from_slice(&[0xa0, 0x00]);
    assert!(exchange(&mut s, &mut link, &prio).is_empty());
    let c = s.counters();
    assert_eq!((c.rx_vlan_mismatch, c.rx_vlan_double_tagged), (3, 1));
    assert_eq!((c.syns_received, c.rx_dropped_malformed), (0, 0));

    // Our VLAN: a SYN-ACK tagged with VID 100, to the peer's MAC.
    let out = exchange(&mut s, &mut link, &syn(vid(100), 1004));
    assert_eq!(out.len(), 1);
    let f = parse_tcp_frame(&out[0]).unwrap();
    assert_eq!(f.vlan.map(|t| (t.vid, t.pcp, t.dei)), Some((100, 0, false)));
    assert_eq!((f.eth.dst_addr, f.eth.src_addr), (PEER, MAC));
    assert_eq!(f.tcp.control, TcpControl::Syn);
    assert_eq!(f.tcp.ack_number, Some(SeqNumber(2)));

    // A RST for a closed port is tagged too.
    let mut closed = syn(vid(100), 1005);
    closed[18 + 20 + 3] = 81; // destination port 80 -> 81
    let mut tcp = closed[18 + 20..].to_vec();
    tcp[16..18].fill(0);
    let sum = xtcp::wire::tcp::TcpPacket::new_unchecked(&tcp[..]).expected_checksum(PEER_IP, IP);
    closed[18 + 20 + 16..18 + 20 + 18].copy_from_slice(&sum.to_be_bytes());
    let out = exchange(&mut s, &mut link, &closed);
    assert_eq!(out.len(), 1);
    let f = parse_tcp_frame(&out[0]).unwrap();
    assert_eq!(
        (f.vlan.map(|t| t.vid), f.tcp.control),
        (Some(100), TcpControl::Rst)
    );

    // ARP: untagged and other-VID requests are dropped, ours answered tagged.
    assert!(exchange(&mut s, &mut link, &arp_request(None)).is_empty());
    assert!(exchange(&mut s, &mut link, &arp_request(vid(7))).is_empty());
    let out = exchange(&mut s, &mut link, &arp_request(vid(100)));
    assert_eq!(out.len(), 1);
    assert_eq!(
        describe_frame(&out[0]),
        "vlan 100, p 0, ARP reply 10.0.0.2 is-at 02:00:00:00:00:02"
    );
    assert_eq!(s.counters().rx_vlan_mismatch, 5);
}

#[test]
fn without_a_vlan_tagged_frames_are_dropped_and_priority_tags_accepted() {
    let mut s = server(None);
    let mut link = MemoryLink::default();
    assert!(exchange(&mut s, &mut link, &syn(vid(100), 1000)).is_empty());
    assert!(exchange(&mut s, &mut link, &arp_request(vid(100))).is_empty());
    assert_eq!(s.counters().rx_vlan_mismatch, 2);
    // VID 0 (priority only) is the untagged VLAN: answered, untagged.
    let mut prio = syn(vid(100), 1001);
    prio[14..16].copy_from_slice(&[0xa0, 0x00]);
    let out = exchange(&mut s, &mut link, &prio);
    assert_eq!(out.len(), 1);
    let f = parse_tcp_frame(&out[0]).unwrap();
    assert_eq!((f.vlan, f.tcp.control), (None, TcpControl::Syn));
    // And plain untagged traffic as always.
    let out = exchange(&mut s, &mut link, &syn(None, 1002));
    assert_eq!(parse_tcp_frame(&out[0]).unwrap().vlan, None);
    assert_eq!(s.counters().rx_vlan_mismatch, 2);
}

/// Two stacks on VLAN 42 resolve each other with ARP and move 256 KiB each way; every frame
/// on the wire carries the tag. The MSS leaves room for the tag in the 1514-byte frames of
/// the simulated link (the AF_XDP engine does the same from the interface MTU).
#[test]
fn two_tagged_stacks_resolve_and_transfer() {
    let mut sim = Simulation::new(SimConfig {
        seed: 7,
        capture: true,
        ..SimConfig::default()
    });
    let len = 256 << 10;
    let tcp = TcpConfig {
        mss: 1456,
        ..TcpConfig::default()
    };
    let stack = |sim: &Simulation, node: usize| {
        let cfg = StackConfig {
            vlan: vid(42),
            ..kit::node_config(sim, node, tcp)
        };
        // No neighbours preset: ARP (tagged) resolves them.
        Stack::new(cfg, sim.now())
    };
    let server_addr = SocketAddrV4::new(sim.ipv4(1), 7);
    let mut client = Bulk::new(stack(&sim, 0), len, 1, 2);
    client.connect_to = Some(server_addr);
    let mut server = Bulk::new(stack(&sim, 1), len, 2, 1);
    server.listener = Some(server.stack.listen(server_addr).unwrap());
    let mut hosts = [client, server];
    let end = sim.run_while(&mut hosts, Instant::from_secs(30), |h| {
        !(h[0].done() && h[1].done())
    });
    assert!(end.is_some(), "transfer did not finish:\n{}", sim.dump());
    for (host, peer_seed) in [(&hosts[0], 2), (&hosts[1], 1)] {
        let f = &host.conns[0];
        assert_eq!(f.mismatch, None);
        assert_eq!(f.received, len);
        assert_eq!(f.hash, kit::expected_hash(peer_seed, len));
        let c = host.stack.counters();
        assert_eq!(c.rx_vlan_mismatch + c.rx_dropped_malformed, 0);
    }
    let frames = sim.capture();
    assert!(frames.len() > 200, "{} frames", frames.len());
    let mut arp = 0;
    for c in frames {
        let l2 = parse_l2(&c.data).unwrap();
        assert_eq!(l2.vid(), 42, "{}", c.line());
        arp += usize::from(l2.ethertype() == EtherType::Arp);
        assert!(c.data.len() <= 1514, "{}", c.line());
    }
    assert!(arp >= 2, "ARP request and reply, tagged");
}
