//! Privileged tests of the XDP program's IPv6 steering through `BPF_PROG_TEST_RUN` on
//! hand-built frames: TCP to a v6 listener or port range, the extension-header walk,
//! fragments, ICMPv6 Packet Too Big, Neighbor Discovery (passed by default, steered for a
//! registered ND address) and VLAN-tagged IPv6; and the program attached to an IPv6 veth pair
//! (`veth.sh up --ipv6`) with real traffic: the kernel's Neighbor Discovery keeps working
//! through it, a SYN to our v6 listener is classified ours, other ports are passed. Each test
//! skips with a printed message when not run as root. (The IPv4 verdict tests and the IPv4
//! veth attach tests are in `xdp.rs`.)

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
    time::Duration,
};

use xtcp_testkit::veth::{Veth, enter_netns, serial};
use xtcp_xdp_ebpf::{XdpAction, XdpError, XdpMode, XdpProgram, XdpSteering};

fn privileged(test: &str) -> bool {
    // Safety: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        xtcp_testkit::veth::skip(test, "needs root (loading BPF programs)");
        return false;
    }
    true
}

const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const HOPOPTS: u8 = 0;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ESP: u8 = 50;
const ICMPV6: u8 = 58;
const DSTOPTS: u8 = 60;

// ---- frame builder ----------------------------------------------------------------------

/// An extension header of type `kind`, `(len + 1) * 8` bytes (Hdr Ext Len `len`); for
/// Routing, byte 3 is Segments Left. Next Header is filled in by [`ipv6`].
fn ext(kind: u8, len: u8, segments_left: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; (usize::from(len) + 1) * 8];
    h[1] = len;
    if kind == ROUTING {
        h[3] = segments_left;
    } else {
        h[2] = 1; // PadN over the rest
        h[3] = h.len() as u8 - 4;
    }
    (kind, h)
}

/// Ethernet/IPv6 from `src` to `dst` with the extension headers `chain`, then `upper` with
/// body `l4`. No checksums (the program reads none).
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, chain: &[(u8, Vec<u8>)], upper: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let mut payload = Vec::new();
    for (i, (_, h)) in chain.iter().enumerate() {
        let mut h = h.clone();
        h[0] = chain.get(i + 1).map_or(upper, |n| n.0);
        payload.extend_from_slice(&h);
    }
    payload.extend_from_slice(l4);
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    ip[6] = chain.first().map_or(upper, |h| h.0);
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&payload);
    f
}

/// A 20-byte TCP SYN header from `sport` to `dport`.
fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&64800u16.to_be_bytes());
    t
}

/// A SYN from PEER6:50000 to `dst:dport`, no extension headers.
fn syn6(dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    ipv6(PEER6, dst, &[], TCP, &tcp(50000, dport))
}

/// ICMPv6 Packet Too Big (MTU 1280) from a router to LOCAL6, quoting a packet of `proto`
/// from `LOCAL6:sport` to PEER6:50000, cut to `quoted` bytes after its IPv6 header.
fn packet_too_big(proto: u8, sport: u16, quoted: usize) -> Vec<u8> {
    let mut q = vec![0u8; 40];
    q[0] = 0x60;
    q[4..6].copy_from_slice(&1400u16.to_be_bytes());
    q[6] = proto;
    q[7] = 64;
    q[8..24].copy_from_slice(&LOCAL6.octets());
    q[24..40].copy_from_slice(&PEER6.octets());
    let mut body = tcp(sport, 50000);
    body.truncate(quoted);
    q.extend_from_slice(&body);
    let mut icmp = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&q);
    ipv6(OTHER6, LOCAL6, &[], ICMPV6, &icmp)
}

/// ICMPv6 Destination Unreachable (type 1, code 4: port) about a TCP segment from
/// `LOCAL6:sport`, quoting 8 bytes of it.
fn dst_unreachable(proto: u8, sport: u16) -> Vec<u8> {
    let mut f = packet_too_big(proto, sport, 8);
    f[14 + 40] = 1;
    f[14 + 40 + 1] = 4;
    f[14 + 40 + 4..14 + 40 + 8].fill(0);
    f
}

/// A Neighbor Solicitation (135) or Advertisement (136) from `src` to `dst` about `target`,
/// with a link-layer address option.
fn nd(kind: u8, src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    if kind == 136 {
        icmp[4] = 0x60; // Solicited, Override
    }
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[if kind == 135 { 1 } else { 2 }, 1, 0x02, 0, 0, 0, 0, 2]);
    let mut f = ipv6(src, dst, &[], ICMPV6, &icmp);
    f[14 + 7] = 255; // Hop Limit 255 (RFC 4861 section 7.1)
    f
}

fn tagged(frame: Vec<u8>, vid: u16) -> Vec<u8> {
    let mut f = frame;
    f.splice(12..12, [0x81, 0x00, (vid >> 8) as u8, vid as u8]);
    f
}

fn unbound_xsk() -> OwnedFd {
    // Safety: plain socket(2) call; the returned fd is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket(AF_XDP): {}", io::Error::last_os_error());
    // Safety: `fd` is a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Loaded with a socket on queue 0, the v6 listener [LOCAL6]:80 and the v6 port range
/// 40000-40999 on any address; the socket must outlive the program's use.
fn steering6() -> (XdpProgram, OwnedFd) {
    let mut p = XdpProgram::load().unwrap();
    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    p.add_listener(LOCAL6, 80).unwrap();
    p.set_port_range6_slot(0, None, 40000, 40999).unwrap();
    (p, xsk)
}

fn run(p: &XdpProgram, frame: &[u8]) -> XdpAction {
    p.test_run(frame).expect("BPF_PROG_TEST_RUN")
}

/// Runs each case and checks its verdict.
fn check(p: &XdpProgram, cases: &[(&str, Vec<u8>, XdpAction)]) {
    for (name, frame, want) in cases {
        assert_eq!(run(p, frame), *want, "{name}");
    }
}

// ---- TCP --------------------------------------------------------------------------------

#[test]
fn tcp6_to_listener_and_port_range_redirects() {
    if !privileged("tcp6_to_listener_and_port_range_redirects") {
        return;
    }
    let (mut p, _xsk) = steering6();
    use XdpAction::{Pass, Redirect};
    check(
        &p,
        &[
            ("SYN to the listener", syn6(LOCAL6, 80), Redirect),
            ("SYN to another address", syn6(OTHER6, 80), Pass),
            ("SYN to another port", syn6(LOCAL6, 22), Pass),
            ("reply to an active open", syn6(LOCAL6, 40500), Redirect),
            (
                "reply to the range, any address",
                syn6(OTHER6, 40999),
                Redirect,
            ),
            ("just past the range", syn6(LOCAL6, 41000), Pass),
            (
                "UDP to the listener port",
                ipv6(PEER6, LOCAL6, &[], UDP, &tcp(50000, 80)),
                Pass,
            ),
        ],
    );
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.passed, c.malformed), (3, 4, 0));

    // The families are separate: an IPv4 listener on 0.0.0.0:22 steers no IPv6 frame, and
    // an IPv6 wildcard (::) listener steers any v6 destination.
    p.add_listener(Ipv4Addr::UNSPECIFIED, 22).unwrap();
    assert_eq!(run(&p, &syn6(LOCAL6, 22)), Pass);
    p.add_listener(Ipv6Addr::UNSPECIFIED, 22).unwrap();
    assert_eq!(run(&p, &syn6(OTHER6, 22)), Redirect);
    assert!(p.remove_listener(Ipv6Addr::UNSPECIFIED, 22).unwrap());
    assert!(!p.remove_listener(Ipv6Addr::UNSPECIFIED, 22).unwrap());
    assert_eq!(run(&p, &syn6(OTHER6, 22)), Pass);

    // A range restricted to one address; then cleared.
    p.set_port_range6_slot(0, Some(LOCAL6), 40000, 40999)
        .unwrap();
    assert_eq!(run(&p, &syn6(LOCAL6, 40500)), Redirect);
    assert_eq!(run(&p, &syn6(OTHER6, 40500)), Pass);
    p.clear_port_range6_slot(0).unwrap();
    assert_eq!(run(&p, &syn6(LOCAL6, 40500)), Pass);
    assert!(matches!(
        p.set_port_range6_slot(xtcp_xdp_ebpf::PORT_RANGE_SLOTS, None, 1, 2),
        Err(XdpError::SlotOutOfRange(_))
    ));
    assert!(matches!(
        p.set_port_range6_slot(1, None, 9, 1),
        Err(XdpError::InvalidPortRange { .. })
    ));
    // Removing the v6 listener leaves the IPv4 one alone, and the other way round.
    assert!(p.remove_listener(LOCAL6, 80).unwrap());
    assert_eq!(run(&p, &syn6(LOCAL6, 80)), Pass);
    assert!(p.remove_listener(Ipv4Addr::UNSPECIFIED, 22).unwrap());
}

#[test]
fn extension_headers_walked_as_the_stack_does() {
    if !privileged("extension_headers_walked_as_the_stack_does") {
        return;
    }
    let (p, _xsk) = steering6();
    use XdpAction::{Pass, Redirect};
    let t = tcp(50000, 80);
    let with = |chain: &[(u8, Vec<u8>)]| ipv6(PEER6, LOCAL6, chain, TCP, &t);
    let ours = vec![
        ("Hop-by-Hop", with(&[ext(HOPOPTS, 0, 0)]), Redirect),
        ("long Hop-by-Hop", with(&[ext(HOPOPTS, 3, 0)]), Redirect),
        (
            "Hop-by-Hop, Destination Options, Routing (Segments Left 0)",
            with(&[ext(HOPOPTS, 0, 0), ext(DSTOPTS, 1, 0), ext(ROUTING, 0, 0)]),
            Redirect,
        ),
        (
            "eight Destination Options",
            with(&vec![ext(DSTOPTS, 0, 0); 8]),
            Redirect,
        ),
    ];
    check(&p, &ours);
    let not_ours = vec![
        (
            "Fragment header (first fragment)",
            with(&[(FRAGMENT, vec![0, 0, 0, 1, 0, 0, 0, 7])]),
            Pass,
        ),
        (
            "Hop-by-Hop, then a Fragment header",
            with(&[ext(HOPOPTS, 0, 0), (FRAGMENT, vec![0, 0, 0, 0, 0, 0, 0, 7])]),
            Pass,
        ),
        (
            "Routing with Segments Left 1",
            with(&[ext(ROUTING, 2, 1)]),
            Pass,
        ),
        (
            "Hop-by-Hop not first",
            with(&[ext(DSTOPTS, 0, 0), ext(HOPOPTS, 0, 0)]),
            Pass,
        ),
        (
            "nine Destination Options",
            with(&vec![ext(DSTOPTS, 0, 0); 9]),
            Pass,
        ),
        ("ESP", ipv6(PEER6, LOCAL6, &[], ESP, &t), Pass),
        (
            "Destination Options, then UDP",
            ipv6(PEER6, LOCAL6, &[ext(DSTOPTS, 0, 0)], UDP, &t),
            Pass,
        ),
    ];
    check(&p, &not_ours);
    let malformed = vec![
        ("extension header cut short", {
            let mut f = with(&[ext(DSTOPTS, 0, 0)]);
            f.truncate(14 + 40 + 4);
            f[14 + 4..14 + 6].copy_from_slice(&4u16.to_be_bytes());
            f
        }),
        ("Hdr Ext Len past the payload", {
            let mut f = with(&[ext(DSTOPTS, 0, 0)]);
            f[14 + 40 + 1] = 10;
            f
        }),
        ("TCP header cut short", {
            let mut f = syn6(LOCAL6, 80);
            f.truncate(14 + 40 + 12);
            f[14 + 4..14 + 6].copy_from_slice(&12u16.to_be_bytes());
            f
        }),
        ("payload length past the frame", {
            let mut f = syn6(LOCAL6, 80);
            f[14 + 4..14 + 6].copy_from_slice(&21u16.to_be_bytes());
            f
        }),
        ("TCP data offset past the payload", {
            let mut f = syn6(LOCAL6, 80);
            f[14 + 40 + 12] = 6 << 4;
            f
        }),
        ("version 4 in an IPv6 EtherType", {
            let mut f = syn6(LOCAL6, 80);
            f[14] = 0x40;
            f
        }),
        ("IPv6 header cut short", {
            let mut f = syn6(LOCAL6, 80);
            f.truncate(14 + 30);
            f
        }),
    ];
    for (name, frame) in &malformed {
        assert_eq!(run(&p, frame), Pass, "{name}");
    }
    let c = p.counters().unwrap();
    assert_eq!(
        (c.redirected, c.passed, c.malformed),
        (
            ours.len() as u64,
            not_ours.len() as u64,
            malformed.len() as u64
        )
    );
}

// ---- ICMPv6 -----------------------------------------------------------------------------

#[test]
fn packet_too_big_about_our_flows_redirects() {
    if !privileged("packet_too_big_about_our_flows_redirects") {
        return;
    }
    let (p, _xsk) = steering6();
    use XdpAction::{Pass, Redirect};
    check(
        &p,
        &[
            (
                "about a listener's segment",
                packet_too_big(TCP, 80, 8),
                Redirect,
            ),
            (
                "about an active open",
                packet_too_big(TCP, 40001, 8),
                Redirect,
            ),
            ("a longer quote", packet_too_big(TCP, 80, 20), Redirect),
            ("about another port", packet_too_big(TCP, 22, 8), Pass),
            ("about a UDP datagram", packet_too_big(UDP, 80, 8), Pass),
            // RFC 4443 §3.1: steered like Packet Too Big (a soft error in SYN-SENT).
            (
                "Destination Unreachable about a listener's segment",
                dst_unreachable(TCP, 80),
                Redirect,
            ),
            (
                "Destination Unreachable about an active open",
                dst_unreachable(TCP, 40001),
                Redirect,
            ),
            (
                "Destination Unreachable about another port",
                dst_unreachable(TCP, 22),
                Pass,
            ),
            (
                "echo request",
                {
                    let mut f = packet_too_big(TCP, 80, 8);
                    f[14 + 40] = 128;
                    f
                },
                Pass,
            ),
        ],
    );
    // Cut inside the quoted ports / sequence number, or inside the quoted IPv6 header.
    for (name, frame) in [
        ("quote cut in the ports", packet_too_big(TCP, 80, 3)),
        (
            "quote cut in the sequence number",
            packet_too_big(TCP, 80, 7),
        ),
        ("quote cut in the IPv6 header", {
            let mut f = packet_too_big(TCP, 80, 8);
            f.truncate(14 + 40 + 8 + 20);
            f[14 + 4..14 + 6].copy_from_slice(&28u16.to_be_bytes());
            f
        }),
    ] {
        assert_eq!(run(&p, &frame), Pass, "{name}");
    }
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.passed, c.malformed), (5, 4, 3));
}

#[test]
fn neighbor_discovery_passes_unless_the_address_is_registered() {
    if !privileged("neighbor_discovery_passes_unless_the_address_is_registered") {
        return;
    }
    let (mut p, _xsk) = steering6();
    use XdpAction::{Pass, Redirect};
    let ns_for_us = nd(135, PEER6, LOCAL6, LOCAL6);
    let na_to_us = nd(136, PEER6, LOCAL6, PEER6);
    // Default: the kernel does ND for every address (the engine reads it over netlink).
    assert_eq!(run(&p, &ns_for_us), Pass);
    assert_eq!(run(&p, &na_to_us), Pass);

    p.add_nd_address(LOCAL6).unwrap();
    check(
        &p,
        &[
            ("NS for our address", ns_for_us.clone(), Redirect),
            ("NA answering our NS", na_to_us.clone(), Redirect),
            (
                "NA about our address (a duplicate)",
                nd(136, PEER6, ALL_NODES, LOCAL6),
                Redirect,
            ),
            (
                "NS for another address",
                nd(135, PEER6, OTHER6, OTHER6),
                Pass,
            ),
            (
                "unsolicited NA about another node",
                nd(136, PEER6, ALL_NODES, PEER6),
                Pass,
            ),
            (
                "MLDv2 report",
                {
                    let mut f = nd(135, PEER6, LOCAL6, LOCAL6);
                    f[14 + 40] = 143;
                    f
                },
                Pass,
            ),
            (
                "NS cut in the target",
                {
                    let mut f = nd(135, PEER6, LOCAL6, LOCAL6);
                    f.truncate(14 + 40 + 8 + 10);
                    f[14 + 4..14 + 6].copy_from_slice(&18u16.to_be_bytes());
                    f
                },
                Pass,
            ),
        ],
    );
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.passed, c.malformed), (3, 2 + 3, 1));

    assert!(p.remove_nd_address(LOCAL6).unwrap());
    assert!(!p.remove_nd_address(LOCAL6).unwrap());
    assert_eq!(run(&p, &ns_for_us), Pass);
}

#[test]
fn vlan_tagged_ipv6() {
    if !privileged("vlan_tagged_ipv6") {
        return;
    }
    let (mut p, _xsk) = steering6();
    use XdpAction::{Pass, Redirect};
    let syn = syn6(LOCAL6, 80);
    assert_eq!(run(&p, &tagged(syn.clone(), 0)), Redirect, "priority tag");
    assert_eq!(
        run(&p, &tagged(syn.clone(), 100)),
        Pass,
        "no VLAN configured"
    );
    p.set_vlan(Some(100)).unwrap();
    check(
        &p,
        &[
            ("VID 100", tagged(syn.clone(), 100), Redirect),
            (
                "VID 100 with a Hop-by-Hop header",
                tagged(
                    ipv6(PEER6, LOCAL6, &[ext(HOPOPTS, 0, 0)], TCP, &tcp(1, 80)),
                    100,
                ),
                Redirect,
            ),
            (
                "VID 100 Packet Too Big",
                tagged(packet_too_big(TCP, 80, 8), 100),
                Redirect,
            ),
            ("untagged", syn.clone(), Pass),
            ("VID 200", tagged(syn.clone(), 200), Pass),
            ("VID 100, other port", tagged(syn6(LOCAL6, 22), 100), Pass),
        ],
    );
}

// ---- attached to an IPv6 veth pair ------------------------------------------------------

#[test]
fn attached_on_ipv6_veth_nd_passes_and_syn_is_ours() {
    if !privileged("attached_on_ipv6_veth_nd_passes_and_syn_is_ours") {
        return;
    }
    let _serial = serial();
    let veth = Veth::up_ipv6("x6", 1);
    let ip6_a = veth.ip6_a.unwrap();
    const PORT: u16 = 7777;
    let connect = |port: u16| {
        TcpStream::connect_timeout(&SocketAddr::new(ip6_a.into(), port), Duration::from_secs(2))
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(&veth.ns_a);
            let mut st = XdpSteering::attach(&veth.if_a, XdpMode::Skb).expect("attach");
            st.add_listener(ip6_a, PORT).unwrap();
            // From B: ping needs ND for A's address, answered by A's kernel through XDP.
            enter_netns(&veth.ns_b);
            let ping = Command::new("ping")
                .args(["-6", "-c", "1", "-W", "2", &ip6_a.to_string()])
                .output()
                .expect("run ping");
            assert!(ping.status.success(), "ping -6 through XDP: {ping:?}");
            let passed = st.counters().unwrap().passed;
            assert!(passed >= 2, "ND and echo passed: {:?}", st.counters());
            // No socket on queue 0: the SYN is ours, falls back to the kernel, which has no
            // listener and answers RST.
            let e = connect(PORT).expect_err("kernel has no listener");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            let c = st.counters().unwrap();
            assert!(c.no_socket >= 1, "the v6 SYN was classified ours: {c:?}");
            assert_eq!((c.redirected, c.malformed), (0, 0), "{c:?}");
            // Another port: passed, not ours.
            let before = st.counters().unwrap();
            let e = connect(PORT + 1).expect_err("kernel has no listener");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            let after = st.counters().unwrap();
            assert_eq!(after.no_socket, before.no_socket, "{after:?}");
            assert!(after.passed > before.passed, "{after:?}");
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    });
}
