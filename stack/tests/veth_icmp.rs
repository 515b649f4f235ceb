//! Path MTU discovery against the Linux kernel as a router (root only; skipped with a message
//! otherwise). Three namespaces: the `echo` example (xtcp) on side A, the kernel routing in
//! B, a Linux client in C behind a link of MTU 1280 (`Veth::routed_peer`). The client
//! advertises MSS 1460, so xtcp's full-sized echo segments reach B's 1280-byte link and B
//! answers with real ICMP Fragmentation Needed; the XDP program steers those to the engine.
//! Then 1 MiB echoes byte-exact in smaller segments. Before that, a forged Fragmentation
//! Needed with an out-of-window sequence number (a raw frame from B) is counted and changes
//! nothing.
//!
//! The same over IPv6 (`path_mtu_through_a_linux_router_ipv6`, RFC 8201): C behind B's
//! 1280-byte IPv6 link (`Veth::routed_peer_ipv6`), B's kernel sends real ICMPv6 Packet Too
//! Big, and a forged one with an out-of-window sequence number is counted and ignored.
//!
//! Destination Unreachable over IPv6 (`destination_unreachable_ipv6_is_a_soft_error`): the
//! engine, as a client in A, connects through B to a prefix B has an `unreachable` route
//! for; B's kernel answers each SYN with ICMPv6 Destination Unreachable (no route), the XDP
//! program steers them, and the connect times out with them counted as soft errors.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use xtcp::engine::{App, AppEvent, Engine, EngineConfig, Io};
use xtcp::stack::StackFamily;
use xtcp::wire::icmpv4::{Icmpv4Message, Unreachable};
use xtcp::wire::{EthernetAddress, SeqNumber, TcpRepr, emit_tcp_frame};
use xtcp_testkit::icmp::{icmp_frame, packet_too_big_frame};
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

/// A Packet Too Big (MTU 1280) from B to A quoting a segment of the IPv6 echo connection
/// `client` (our side: A's IPv6 address, `PORT`) at `seq`.
fn forged_packet_too_big(veth: &Veth, client: SocketAddr, seq: u32) -> Vec<u8> {
    let SocketAddr::V6(client) = client else {
        panic!("IPv6 client expected");
    };
    let (ip6_a, ip6_b) = (veth.ip6_a.unwrap(), veth.ip6_b.unwrap());
    let seg = TcpRepr {
        src_port: PORT,
        dst_port: client.port(),
        seq_number: SeqNumber(seq),
        ack_number: Some(SeqNumber(1)),
        payload: &[0u8; 1440],
        ..TcpRepr::default()
    };
    let mut frame = [0u8; 1600];
    let mac_a = EthernetAddress(veth.mac_a);
    let mac_b = EthernetAddress(veth.mac_b);
    let n =
        Ipv6Addr::emit_frame(&mut frame, None, mac_a, mac_b, ip6_a, *client.ip(), &seg).unwrap();
    packet_too_big_frame((mac_b, ip6_b), (mac_a, ip6_a), 1280, &frame[14..n])
}

/// B's kernel's count of ICMPv6 Packet Too Big sent (`/proc/net/snmp6` in `ns`).
fn too_bigs_sent(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp6"])
        .output()
        .expect("ip netns exec cat");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Icmp6OutPktTooBigs"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Icmp6OutPktTooBigs in /proc/net/snmp6")
}

#[test]
fn path_mtu_through_a_linux_router_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("p6", 1);
    let ip6_a = veth.ip6_a.expect("IPv6 pair");
    // Dropped before `veth` (declared after it). C advertises MSS 1440 (a 1500-byte link's)
    // so that xtcp's full-sized segments meet B's 1280-byte link.
    let (routed, _ip6_c) = veth.routed_peer_ipv6(1280, Some(1440));
    let server = Server::start("echo", &veth, PORT, &["--ip", &ip6_a.to_string()]);
    assert!(veth.xdp_attached(), "XDP program not attached");
    let a: SocketAddr = format!("[{ip6_a}]:{PORT}").parse().unwrap();
    let v6 = |s: &Stats, k: &str| {
        s.core_ipv6(0, k)
            .unwrap_or_else(|| panic!("no ipv6 {k} in the stats: {}", s.0))
    };

    // 1. An idle connection and a forged Packet Too Big about it (RFC 5927 §4.1).
    let mut idle = in_netns(&routed.ns_c, || connect(a));
    idle.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    idle.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    std::thread::sleep(Duration::from_millis(200));
    let forged = forged_packet_too_big(&veth, idle.local_addr().unwrap(), 0x1234_5678);
    in_netns(&veth.ns_b, || {
        assert!(PacketSocket::open(&veth.if_b, 0x86dd).send(&forged));
    });
    let st = server.wait_stats(Duration::from_secs(5), |s| {
        s.core_ipv6(0, "icmp_out_of_window") >= Some(1)
    });
    println!(
        "after the forged Packet Too Big: icmp_received {}, icmp_out_of_window {}, pmtu_decreases {}",
        v6(&st, "icmp_received"),
        v6(&st, "icmp_out_of_window"),
        v6(&st, "pmtu_decreases")
    );
    assert_eq!(v6(&st, "icmp_received"), 1);
    assert_eq!(v6(&st, "icmp_out_of_window"), 1);
    assert_eq!(
        v6(&st, "pmtu_decreases"),
        0,
        "the forged ICMPv6 lowered an MSS"
    );
    idle.write_all(b"pong").unwrap();
    idle.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pong");
    drop(idle);

    // 2. 1 MiB echoed through the router: xtcp's 1500-byte packets meet B's 1280-byte link.
    let too_bigs_before = too_bigs_sent(&veth.ns_b);
    let mut data = vec![0u8; 1 << 20];
    Pattern::new(1280).fill(&mut data);
    let echoed = in_netns(&routed.ns_c, || stream_echo(a, &data));
    let too_bigs = too_bigs_sent(&veth.ns_b) - too_bigs_before;
    assert!(echoed == data, "echo differs ({} bytes back)", echoed.len());
    let st = server.wait_stats(Duration::from_secs(5), |s| {
        s.core_ipv6(0, "pmtu_decreases") >= Some(1)
            && s.core_ipv6(0, "icmp_received") >= Some(too_bigs + 1)
    });
    println!(
        "after 1 MiB over IPv6: B sent {too_bigs} Packet Too Big; icmp_received {}, icmp_frag_needed {}, icmp_out_of_window {}, pmtu_decreases {}, retransmits {}, xdp redirected {:?}",
        v6(&st, "icmp_received"),
        v6(&st, "icmp_frag_needed"),
        v6(&st, "icmp_out_of_window"),
        v6(&st, "pmtu_decreases"),
        v6(&st, "retransmits"),
        st.xdp("redirected"),
    );
    // B's real Packet Too Big reached the connection: one decrease (MSS 1440 -> 1220);
    // later reports about the same flight change nothing.
    assert_eq!(v6(&st, "pmtu_decreases"), 1);
    assert!(v6(&st, "icmp_frag_needed") >= 1);
    assert_eq!(v6(&st, "icmp_malformed"), 0);
    // Smaller segments: of the ~860 full-sized segments 1 MiB takes, only the first flight's
    // were too big for B's link (one Packet Too Big each); every later one fit in 1280
    // bytes, or the echo could not have completed. Each Packet Too Big B sent reached the
    // v6 stack (the forged one is the +1).
    assert!(too_bigs >= 1, "B sent no Packet Too Big");
    assert!(
        too_bigs <= 64,
        "{too_bigs} packets were too big for B's link"
    );
    assert_eq!(v6(&st, "icmp_received"), too_bigs + 1);
    drop(server);
    drop(routed);
}

/// An engine app that opens one connection to `remote` and reports how it ended.
struct Connector {
    remote: SocketAddr,
    started: bool,
    done: mpsc::Sender<&'static str>,
}

impl App for Connector {
    fn on_event(&mut self, _io: &mut Io<'_>, ev: AppEvent) {
        let how = match ev {
            AppEvent::Connected(_) => "connected",
            AppEvent::TimedOut(_) => "timed out",
            AppEvent::Reset(_) => "reset",
            AppEvent::Closed(_) => "closed",
            _ => return,
        };
        let _ = self.done.send(how);
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        if !self.started {
            self.started = true;
            if io.connect(self.remote).is_err() {
                let _ = self.done.send("connect refused locally");
            }
        }
    }
}

#[test]
fn destination_unreachable_ipv6_is_a_soft_error() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("u6", 1);
    let (ip6_a, ip6_b) = (veth.ip6_a.unwrap(), veth.ip6_b.unwrap());
    // Only for B's IPv6 forwarding (and ICMPv6 rate limit off); C is not used.
    let (routed, _) = veth.routed_peer_ipv6(1280, None);
    let x = ip6_a.segments()[2];
    let nowhere = format!("{}/64", Ipv6Addr::new(0xfd00, 0x7b, x, 0, 0, 0, 0, 0));
    let run = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    // B: RFC 4443 §3.1 code 0 (no route) for that prefix; A: route it via B.
    run(&[
        "-6",
        "-n",
        &veth.ns_b,
        "route",
        "add",
        "unreachable",
        &nowhere,
    ]);
    let via_b = ip6_b.to_string();
    run(&[
        "-6", "-n", &veth.ns_a, "route", "replace", &nowhere, "via", &via_b, "dev", &veth.if_a,
    ]);
    let remote = SocketAddr::new(Ipv6Addr::new(0xfd00, 0x7b, x, 0, 0, 0, 0, 1).into(), 7);
    let (tx, rx) = mpsc::channel();
    let (ip_a, if_a) = (veth.ip_a.parse::<Ipv4Addr>().unwrap(), veth.if_a.clone());
    let (how, stats) = in_netns(&veth.ns_a, move || {
        let mut cfg = EngineConfig::new(if_a, ip_a);
        cfg.queues = 1;
        cfg.ipv6.push(ip6_a);
        // SYN at 0, 1 s, 3 s: TimedOut at about 7 s.
        cfg.stack.tcp.syn_retries = 2;
        let engine = Engine::start(cfg, move |_queue| Connector {
            remote,
            started: false,
            done: tx.clone(),
        })
        .expect("start the engine");
        let how = rx.recv_timeout(Duration::from_secs(30));
        (how, engine.shutdown().expect("clean shutdown"))
    });
    let v6 = stats.cores[0].ipv6.expect("an IPv6 stack").counters;
    println!(
        "connect ended: {how:?}; icmp_received {}, icmp_soft_errors {}, icmp_out_of_window {}, icmp_not_ours {}, timeouts {}",
        v6.icmp_received, v6.icmp_soft_errors, v6.icmp_out_of_window, v6.icmp_not_ours, v6.timeouts
    );
    assert_eq!(how, Ok("timed out"));
    // One Destination Unreachable per SYN (3), each a soft error of the SYN-SENT connection.
    assert!(v6.icmp_soft_errors >= 1, "{v6:?}");
    assert_eq!(v6.icmp_soft_errors, v6.icmp_received, "{v6:?}");
    assert_eq!(
        v6.icmp_out_of_window + v6.icmp_malformed + v6.icmp_not_ours,
        0
    );
    assert_eq!(v6.timeouts, 1);
    drop(routed);
}
