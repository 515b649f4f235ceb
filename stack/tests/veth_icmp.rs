//! Path MTU discovery against the Linux kernel as a router (root only; skipped with a message
//! otherwise). Three namespaces: the `echo` example (xtcp) on side A, the kernel routing in
//! B, a Linux client in C behind a link of MTU 1280 (`Veth::routed_peer`). The client
//! advertises MSS 1460, so xtcp's full-sized echo segments reach B's 1280-byte link and B
//! answers with real ICMP Fragmentation Needed; the XDP program steers those to the engine.
//! Then 1 MiB echoes byte-exact in smaller segments. Before that, a forged Fragmentation
//! Needed with an out-of-window sequence number (a raw frame from B) is counted and changes
//! nothing.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use xtcp::wire::icmpv4::{Icmpv4Message, Unreachable};
use xtcp::wire::{EthernetAddress, SeqNumber, TcpRepr, emit_tcp_frame};
use xtcp_testkit::icmp::icmp_frame;
use xtcp_testkit::veth::{
    PacketSocket, Pattern, Server, Stats, Veth, connect, in_netns, serial, stream_echo,
};

const PORT: u16 = 7;

/// A Fragmentation Needed (next-hop MTU 576) from B to A quoting a segment of the echo
/// connection `client` (our side: A's address, `PORT`) at `seq`.
fn forged_frag_needed(veth: &Veth, client: SocketAddr, seq: u32) -> Vec<u8> {
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let SocketAddr::V4(client) = client else {
        panic!("IPv4 client expected");
    };
    let seg = TcpRepr {
        src_port: PORT,
        dst_port: client.port(),
        seq_number: SeqNumber(seq),
        ack_number: Some(SeqNumber(1)),
        payload: &[0u8; 1448],
        ..TcpRepr::default()
    };
    let mut frame = [0u8; 1600];
    let mac_a = EthernetAddress(veth.mac_a);
    let mac_b = EthernetAddress(veth.mac_b);
    emit_tcp_frame(&mut frame, mac_a, mac_b, ip(&veth.ip_a), *client.ip(), &seg).unwrap();
    // The IPv4 header and 8 bytes of TCP, as a router quotes them.
    let quote = &frame[14..14 + 28];
    let message = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu: 576 });
    icmp_frame(
        (mac_b, ip(&veth.ip_b)),
        (mac_a, ip(&veth.ip_a)),
        message,
        quote,
    )
}

fn counter(s: &Stats, key: &str) -> u64 {
    s.top(key)
        .unwrap_or_else(|| panic!("no {key} in the stats: {}", s.0))
}

#[test]
fn path_mtu_through_a_linux_router() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("pm", 1);
    // Dropped before `veth` (declared after it): B must hold only the pair's end then.
    let routed = veth.routed_peer(1280, Some(1460));
    let server = Server::start("echo", &veth, PORT, &[]);
    assert!(veth.xdp_attached(), "XDP program not attached");
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();

    // 1. An idle connection (nothing in flight: every sequence number is out of window)
    //    and a forged Fragmentation Needed about it.
    let mut idle = in_netns(&routed.ns_c, || connect(a));
    idle.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    idle.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    std::thread::sleep(Duration::from_millis(200));
    let forged = forged_frag_needed(&veth, idle.local_addr().unwrap(), 0x1234_5678);
    in_netns(&veth.ns_b, || {
        assert!(PacketSocket::open(&veth.if_b, 0x0800).send(&forged));
    });
    let st = server.wait_stats(Duration::from_secs(5), |s| {
        s.top("icmp_out_of_window") >= Some(1)
    });
    println!(
        "after the forged ICMP: icmp_received {}, icmp_out_of_window {}, pmtu_decreases {}",
        counter(&st, "icmp_received"),
        counter(&st, "icmp_out_of_window"),
        counter(&st, "pmtu_decreases")
    );
    assert_eq!(counter(&st, "icmp_received"), 1);
    assert_eq!(counter(&st, "icmp_out_of_window"), 1);
    assert_eq!(
        counter(&st, "pmtu_decreases"),
        0,
        "the forged ICMP lowered an MSS"
    );
    // Still a working connection.
    idle.write_all(b"pong").unwrap();
    idle.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pong");
    drop(idle);

    // 2. 1 MiB echoed through the router: xtcp's 1500-byte datagrams meet B's 1280-byte link.
    let mut data = vec![0u8; 1 << 20];
    Pattern::new(1280).fill(&mut data);
    let echoed = in_netns(&routed.ns_c, || stream_echo(a, &data));
    assert!(echoed == data, "echo differs ({} bytes back)", echoed.len());
    let st = server.wait_stats(Duration::from_secs(5), |s| {
        s.top("pmtu_decreases") >= Some(1)
    });
    println!(
        "after 1 MiB: icmp_received {}, icmp_frag_needed {}, icmp_out_of_window {}, pmtu_decreases {}, retransmits {}, xdp redirected {:?}",
        counter(&st, "icmp_received"),
        counter(&st, "icmp_frag_needed"),
        counter(&st, "icmp_out_of_window"),
        counter(&st, "pmtu_decreases"),
        counter(&st, "retransmits"),
        st.xdp("redirected"),
    );
    // The router's real ICMPs reached the connection: one decrease (1460 -> 1240), later
    // reports about the same flight change nothing.
    assert_eq!(counter(&st, "pmtu_decreases"), 1);
    assert!(counter(&st, "icmp_frag_needed") >= 1);
    assert_eq!(counter(&st, "icmp_malformed"), 0);
    drop(server);
    drop(routed);
}
