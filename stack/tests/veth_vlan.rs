//! 802.1Q VLAN over a private veth pair (root only; skipped with a message otherwise): the
//! Linux kernel on VLAN 100 as a client of the `echo` example run with `--vlan 100`.
//!
//! Both sides are VLAN 100 members for the 10.79.X.0/24 addresses through
//! `xtcp_testkit::vlan_port` (tc programs: this kernel has no VLAN sub-interfaces), with
//! the tag written into the frame (`txvlan off`). The xtcp side's kernel holds the VLAN
//! address too, so that it answers ARP on the VLAN (the XDP program passes ARP to it).
//! Checked: the echo suite (1,000 sequential, 100 concurrent, 10 MiB half-close) over the
//! VLAN; untagged, VID 200 and double-tagged SYNs for the server never reach the stack
//! (the XDP program passes them); and with the sender's tx-vlan-offload on the tag never
//! reaches the frame, so the XDP program sees untagged frames and steers nothing.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use xtcp::wire::{
    EthernetAddress, SeqNumber, TcpControl, TcpRepr, VlanId, emit_tcp_frame_vlan, parse_tcp_frame,
};
use xtcp_testkit::veth::{PacketSocket, Server, Stats, Veth, echo_checks, in_netns, serial, skip};
use xtcp_testkit::vlan_port::{self, set_tag_offload, vlan_port};

const PORT: u16 = 7;
const VID: u16 = 100;
const ETH_P_ALL: u16 = 0x0003;

/// The VLAN addresses of a pair: 10.79.X.1 (xtcp side) and 10.79.X.2 (kernel client).
fn vlan_addrs(veth: &Veth) -> (Ipv4Addr, Ipv4Addr) {
    let octet: u8 = veth.ip_a.split('.').nth(2).unwrap().parse().unwrap();
    (
        Ipv4Addr::new(10, 79, octet, 1),
        Ipv4Addr::new(10, 79, octet, 2),
    )
}

/// Puts both ends on VLAN `VID` for 10.79.X.0/24 and gives each kernel its VLAN address.
fn join_vlan(veth: &Veth) -> (Ipv4Addr, Ipv4Addr) {
    let (a, b) = vlan_addrs(veth);
    let net = Ipv4Addr::new(10, 79, a.octets()[2], 0);
    for (ns, ifname, ip) in [(&veth.ns_a, &veth.if_a, a), (&veth.ns_b, &veth.if_b, b)] {
        let out = veth.exec(
            ns,
            "ip",
            &["addr", "add", &format!("{ip}/24"), "dev", ifname],
        );
        assert!(out.status.success(), "ip addr add {ip}");
        vlan_port(ns, ifname, VID, net, 24).unwrap_or_else(|e| panic!("VLAN port: {e}"));
    }
    (a, b)
}

/// A SYN from the client's VLAN address (or `src`) to the server, tagged with `vlan`.
fn syn(veth: &Veth, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, vlan: Option<VlanId>) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: sport,
        dst_port: PORT,
        control: TcpControl::Syn,
        seq_number: SeqNumber(1),
        window_len: 1000,
        max_seg_size: Some(1460),
        ..TcpRepr::default()
    };
    let mut buf = [0u8; 128];
    let (from, to) = (EthernetAddress(veth.mac_b), EthernetAddress(veth.mac_a));
    let n = emit_tcp_frame_vlan(&mut buf, vlan, from, to, src, dst, &repr).unwrap();
    buf[..n].to_vec()
}

fn counters(st: &Stats) -> (Option<u64>, Option<u64>, Option<u64>) {
    (st.top("rx_frames"), st.xdp("redirected"), st.xdp("passed"))
}

/// The stats once the last connections' frames are in: the core's counters (a snapshot)
/// caught up with the XDP program's (live), and unchanged over 300 ms.
fn settled(server: &Server) -> Stats {
    let mut last = server.stats();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = server.stats();
        let (rx, redirected, _) = counters(&now);
        if rx.is_some() && rx == redirected && counters(&now) == counters(&last) {
            return now;
        }
        last = now;
    }
    panic!("stats did not settle: {}", last.0);
}

#[test]
fn kernel_client_to_echo_on_a_vlan() {
    require_privileges!("tc");
    if let Some(why) = vlan_port::unavailable() {
        skip("veth_vlan::kernel_client_to_echo_on_a_vlan", &why);
        return;
    }
    let _serial = serial();
    let veth = Veth::up("vl", 1);
    let (ip_a, ip_b) = join_vlan(&veth);
    let mut server = Server::start_ip(
        "echo",
        &veth,
        &ip_a.to_string(),
        PORT,
        &["--vlan", "100", "--stats-interval-ms", "100"],
    );
    assert!(
        server.ready_line.contains("vlan 100"),
        "{}",
        server.ready_line
    );
    let a = SocketAddr::from((ip_a, PORT));

    let st = echo_checks(&veth, &server, a, "echo on VLAN 100");
    assert_eq!(st.top("rx_vlan_mismatch"), Some(0), "stats: {}", st.0);
    assert_eq!(st.top("rx_vlan_double_tagged"), Some(0), "stats: {}", st.0);
    assert!(st.xdp("redirected") > Some(10_000), "stats: {}", st.0);

    // Not our VLAN: an untagged SYN (from the client's untagged address: the tc program
    // would tag one from the VLAN subnet), one tagged VID 200, and a double-tagged one.
    // The XDP program passes them to the kernel; the stack sees none; no SYN-ACK comes back.
    let before = settled(&server);
    let src_untagged: Ipv4Addr = veth.ip_b.parse().unwrap();
    let mut qinq = syn(&veth, ip_b, ip_a, 40_002, VlanId::new(VID));
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x05]);
    let frames = [
        syn(&veth, src_untagged, ip_a, 40_000, None),
        syn(&veth, ip_b, ip_a, 40_001, VlanId::new(200)),
        qinq,
    ];
    let synack = in_netns(&veth.ns_b, || {
        let sock = PacketSocket::open(&veth.if_b, ETH_P_ALL);
        for f in &frames {
            assert!(sock.send(f), "AF_PACKET send");
        }
        sock.recv_until(Duration::from_secs(1), |f| {
            parse_tcp_frame(f).is_ok_and(|t| {
                t.tcp.src_port == PORT
                    && t.tcp.control == TcpControl::Syn
                    && (40_000..=40_002).contains(&t.tcp.dst_port)
            })
        })
    });
    assert!(synack.is_none(), "a SYN-ACK for a frame not on our VLAN");
    let (rx0, redir0, passed0) = counters(&before);
    let after = server.wait_stats(Duration::from_secs(2), |s| {
        s.xdp("passed") >= passed0.map(|p| p + 3)
    });
    let (rx1, redir1, passed1) = counters(&after);
    assert_eq!((rx1, redir1), (rx0, redir0), "stats: {}", after.0);
    assert!(passed1 >= passed0.map(|p| p + 3), "stats: {}", after.0);
    assert!(server.stop(), "echo did not exit cleanly on SIGTERM");
}

/// With the client's tx-vlan-offload on, the tag stays skb metadata across the veth: the XDP
/// program on the xtcp side sees an untagged frame and passes it, and the kernel there (which
/// has no socket on the port) refuses the connection. Pins down why `vlan_port` (and a real
/// deployment's NIC) must put the tag in the frame.
#[test]
fn sender_tag_offload_hides_the_tag_from_xdp() {
    require_privileges!("tc");
    if let Some(why) = vlan_port::unavailable() {
        skip("veth_vlan::sender_tag_offload_hides_the_tag_from_xdp", &why);
        return;
    }
    let _serial = serial();
    let veth = Veth::up("vo", 1);
    let (ip_a, _) = join_vlan(&veth);
    set_tag_offload(&veth.ns_b, &veth.if_b, true).unwrap();
    let server = Server::start_ip(
        "echo",
        &veth,
        &ip_a.to_string(),
        PORT,
        &["--vlan", "100", "--stats-interval-ms", "100"],
    );
    let a = SocketAddr::from((ip_a, PORT));
    let r = in_netns(&veth.ns_b, || {
        std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2))
    });
    assert!(r.is_err(), "connected with the tag in metadata");
    let st = server.wait_stats(Duration::from_secs(2), |s| s.xdp("passed") >= Some(1));
    assert_eq!(st.xdp("redirected"), Some(0), "stats: {}", st.0);
    assert_eq!(st.top("rx_frames"), Some(0), "stats: {}", st.0);

    // The same connection with the tag in the frame: steered and echoed.
    set_tag_offload(&veth.ns_b, &veth.if_b, false).unwrap();
    in_netns(&veth.ns_b, || {
        xtcp_testkit::veth::roundtrip(a, b"tagged in the frame", true)
    });
    let st = server.wait_stats(Duration::from_secs(2), |s| {
        s.top("passive_opens") >= Some(1)
    });
    assert_eq!(st.top("passive_opens"), Some(1), "stats: {}", st.0);
}
