//! Privileged tests of the XDP program: verifier, verdicts through `BPF_PROG_TEST_RUN` on
//! crafted frames, and real attachment to a veth pair in network namespaces created (and
//! removed) here. Every test skips with a printed message when not run as root.
//!
//! Kernel facts these tests pin down (6.18):
//! - `BPF_PROG_TEST_RUN` rejects frames shorter than an Ethernet header with EINVAL, so the
//!   shortest malformed frame testable this way is a bare Ethernet header announcing IPv4.
//! - In test-run mode a redirect into an empty XSKMAP slot returns the fallback action
//!   (`XDP_PASS`); with an AF_XDP socket in the slot it returns `XDP_REDIRECT` (the redirect
//!   itself is not performed).

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Command,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use xtcp_xdp_ebpf::{XdpAction, XdpCounters, XdpError, XdpMode, XdpProgram, XdpSteering};

fn privileged(test: &str) -> bool {
    // Safety: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        xtcp_testkit::veth::skip(
            test,
            "needs root (loading BPF programs, creating netns/veth)",
        );
        return false;
    }
    true
}

// ---- frame builder ----------------------------------------------------------------------

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ETH_IPV4: u16 = 0x0800;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

/// An Ethernet/IPv4/TCP frame description; `build` lays it out without checksums (the
/// program does not check them).
#[derive(Clone, Copy)]
struct Frame {
    ethertype: u16,
    version: u8,
    ihl: u8,
    proto: u8,
    frag_off: u16,
    dst: Ipv4Addr,
    dport: u16,
    doff: u8,
    flags: u8,
    payload: usize,
    /// Overrides the IPv4 total length.
    tot_len: Option<u16>,
}

impl Frame {
    fn syn(dst: Ipv4Addr, dport: u16) -> Self {
        Self {
            ethertype: ETH_IPV4,
            version: 4,
            ihl: 5,
            proto: TCP,
            frag_off: 0x4000, // DF
            dst,
            dport,
            doff: 5,
            flags: 0x02, // SYN
            payload: 0,
            tot_len: None,
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        let ip_len = usize::from(self.ihl.max(5)) * 4;
        let l4_len = usize::from(self.doff.max(5)) * 4 + self.payload;
        let tot = self.tot_len.unwrap_or((ip_len + l4_len) as u16);
        let mut ip = vec![0u8; ip_len];
        ip[0] = (self.version << 4) | (self.ihl & 0x0f);
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        ip[6..8].copy_from_slice(&self.frag_off.to_be_bytes());
        ip[8] = 64;
        ip[9] = self.proto;
        ip[12..16].copy_from_slice(&PEER.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        for b in &mut ip[20..] {
            *b = 1; // NOP options
        }
        f.extend_from_slice(&ip);
        let mut l4 = vec![0u8; l4_len];
        l4[0..2].copy_from_slice(&40000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&self.dport.to_be_bytes());
        l4[4..8].copy_from_slice(&1u32.to_be_bytes());
        l4[12] = (self.doff & 0x0f) << 4;
        l4[13] = self.flags;
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
        f.extend_from_slice(&l4);
        f
    }
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&PEER.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&LOCAL.octets());
    f
}

fn ipv6_tcp_syn(dport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = TCP;
    ip[7] = 64;
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    f.extend_from_slice(&tcp);
    f
}

fn vlan_tagged(mut frame: Vec<u8>) -> Vec<u8> {
    // 802.1Q: TPID 0x8100 and a TCI inserted before the inner ethertype.
    frame.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    frame
}

/// An AF_XDP socket, unbound: enough to occupy an XSKMAP slot.
/// The program loaded with a socket on queue 0, a listener on LOCAL:80 and the port range
/// 40000-40999 (the set-up of the verdict tests); the socket must outlive the program's use.
fn steering_80_and_40000s() -> (XdpProgram, OwnedFd) {
    let mut p = XdpProgram::load().unwrap();
    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    p.add_listener(LOCAL, 80).unwrap();
    p.set_port_range(40000, 40999).unwrap();
    (p, xsk)
}

fn unbound_xsk() -> OwnedFd {
    // Safety: plain socket(2) call; the returned fd is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket(AF_XDP): {}", io::Error::last_os_error());
    // Safety: `fd` is a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn run(p: &XdpProgram, frame: &[u8]) -> XdpAction {
    p.test_run(frame).expect("BPF_PROG_TEST_RUN")
}

// ---- verifier and verdicts ---------------------------------------------------------------

#[test]
fn verifier_accepts_program() {
    if !privileged("verifier_accepts_program") {
        return;
    }
    let p = XdpProgram::load().expect("verifier rejected the program");
    assert_eq!(p.counters().unwrap(), XdpCounters::default());
}

#[test]
fn syn_to_listener_redirects() {
    if !privileged("syn_to_listener_redirects") {
        return;
    }
    let mut p = XdpProgram::load().unwrap();
    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    let syn = Frame::syn(LOCAL, 80).build();

    assert_eq!(run(&p, &syn), XdpAction::Pass, "no listener yet");
    p.add_listener(LOCAL, 80).unwrap();
    p.add_listener(LOCAL, 80).unwrap(); // idempotent
    assert_eq!(run(&p, &syn), XdpAction::Redirect);
    // Same port, other address; same address, other port.
    assert_eq!(run(&p, &Frame::syn(PEER, 80).build()), XdpAction::Pass);
    assert_eq!(run(&p, &Frame::syn(LOCAL, 81).build()), XdpAction::Pass);
    // A segment with payload and a non-SYN flag is steered just the same.
    let data = Frame {
        flags: 0x18, // PSH|ACK
        payload: 100,
        ..Frame::syn(LOCAL, 80)
    };
    assert_eq!(run(&p, &data.build()), XdpAction::Redirect);
    // IPv4 options (IHL 15, the maximum) and TCP options (doff 15) are skipped correctly.
    let opts = Frame {
        ihl: 15,
        doff: 15,
        ..Frame::syn(LOCAL, 80)
    };
    assert_eq!(run(&p, &opts.build()), XdpAction::Redirect);
    // Ethernet padding after the IP datagram is fine.
    let mut padded = syn.clone();
    padded.resize(64, 0);
    assert_eq!(run(&p, &padded), XdpAction::Redirect);

    // Wildcard listener: 0.0.0.0:443 matches any destination address.
    p.add_listener(Ipv4Addr::UNSPECIFIED, 443).unwrap();
    assert_eq!(
        run(&p, &Frame::syn(Ipv4Addr::new(192, 0, 2, 7), 443).build()),
        XdpAction::Redirect
    );

    assert!(p.remove_listener(LOCAL, 80).unwrap());
    assert!(!p.remove_listener(LOCAL, 80).unwrap(), "already removed");
    assert_eq!(run(&p, &syn), XdpAction::Pass);

    let c = p.counters().unwrap();
    assert_eq!(
        c,
        XdpCounters {
            redirected: 5,
            passed: 4,
            malformed: 0,
            no_socket: 0
        }
    );
}

#[test]
fn empty_queue_slot_falls_back_to_pass() {
    if !privileged("empty_queue_slot_falls_back_to_pass") {
        return;
    }
    let mut p = XdpProgram::load().unwrap();
    p.add_listener(LOCAL, 80).unwrap();
    let syn = Frame::syn(LOCAL, 80).build();
    assert_eq!(run(&p, &syn), XdpAction::Pass);
    assert_eq!(p.counters().unwrap().no_socket, 1);
    assert_eq!(p.counters().unwrap().redirected, 0);

    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    assert_eq!(run(&p, &syn), XdpAction::Redirect);
    p.unregister_xsk(0).unwrap();
    p.unregister_xsk(0).unwrap(); // idempotent
    assert_eq!(run(&p, &syn), XdpAction::Pass);
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.no_socket, c.passed), (1, 2, 0));

    assert!(matches!(
        p.register_xsk(xtcp_xdp_ebpf::MAX_QUEUES, xsk.as_raw_fd()),
        Err(XdpError::QueueOutOfRange(_))
    ));
}

#[test]
fn port_range_redirects() {
    if !privileged("port_range_redirects") {
        return;
    }
    let mut p = XdpProgram::load().unwrap();
    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    let to = |ip, port| Frame::syn(ip, port).build();

    assert_eq!(run(&p, &to(LOCAL, 40000)), XdpAction::Pass, "no range yet");
    p.set_port_range(40000, 40999).unwrap();
    for port in [40000, 40500, 40999] {
        assert_eq!(
            run(&p, &to(LOCAL, port)),
            XdpAction::Redirect,
            "port {port}"
        );
        assert_eq!(run(&p, &to(PEER, port)), XdpAction::Redirect, "any address");
    }
    for port in [39999, 41000, 22] {
        assert_eq!(run(&p, &to(LOCAL, port)), XdpAction::Pass, "port {port}");
    }

    // A slot restricted to one local address.
    let other = Ipv4Addr::new(10, 0, 0, 5);
    p.set_port_range_slot(3, Some(other), 50000, 50010).unwrap();
    assert_eq!(run(&p, &to(other, 50005)), XdpAction::Redirect);
    assert_eq!(run(&p, &to(LOCAL, 50005)), XdpAction::Pass);
    p.clear_port_range_slot(3).unwrap();
    assert_eq!(run(&p, &to(other, 50005)), XdpAction::Pass);
    p.clear_port_range_slot(0).unwrap();
    assert_eq!(run(&p, &to(LOCAL, 40000)), XdpAction::Pass);

    // A single-port range.
    p.set_port_range(60000, 60000).unwrap();
    assert_eq!(run(&p, &to(LOCAL, 60000)), XdpAction::Redirect);
    assert_eq!(run(&p, &to(LOCAL, 60001)), XdpAction::Pass);

    assert!(matches!(
        p.set_port_range(2, 1),
        Err(XdpError::InvalidPortRange { lo: 2, hi: 1 })
    ));
    assert!(matches!(
        p.set_port_range_slot(xtcp_xdp_ebpf::PORT_RANGE_SLOTS, None, 1, 2),
        Err(XdpError::SlotOutOfRange(_))
    ));
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.passed, c.malformed), (8, 8, 0));
}

#[test]
fn frames_not_ours_pass() {
    if !privileged("frames_not_ours_pass") {
        return;
    }
    let (p, _xsk) = steering_80_and_40000s();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ARP", arp_request()),
        (
            "UDP to a listener port",
            Frame {
                proto: UDP,
                ..Frame::syn(LOCAL, 80)
            }
            .build(),
        ),
        (
            "ICMP",
            Frame {
                proto: ICMP,
                ..Frame::syn(LOCAL, 80)
            }
            .build(),
        ),
        ("TCP to another port", Frame::syn(LOCAL, 22).build()),
        ("IPv6 TCP", ipv6_tcp_syn(80)),
        ("VLAN-tagged", vlan_tagged(Frame::syn(LOCAL, 80).build())),
        // First fragment (MF) and a later fragment (offset) both go to the kernel.
        (
            "first fragment",
            Frame {
                frag_off: 0x2000,
                ..Frame::syn(LOCAL, 80)
            }
            .build(),
        ),
        (
            "later fragment",
            Frame {
                frag_off: 0x0010,
                ..Frame::syn(LOCAL, 80)
            }
            .build(),
        ),
    ];
    for (name, frame) in &cases {
        assert_eq!(run(&p, frame), XdpAction::Pass, "{name}");
    }
    let c = p.counters().unwrap();
    assert_eq!(c.passed, cases.len() as u64);
    assert_eq!((c.redirected, c.malformed, c.no_socket), (0, 0, 0));
}

/// `frame` with one 802.1Q tag of VID `vid` (PCP 3, to show it is ignored) inserted.
fn tagged(frame: Vec<u8>, vid: u16) -> Vec<u8> {
    let mut f = frame;
    let tci = 0x6000 | vid;
    f.splice(12..12, [0x81, 0x00, (tci >> 8) as u8, tci as u8]);
    f
}

#[test]
fn vlan_frames_steered_only_for_the_configured_vid() {
    if !privileged("vlan_frames_steered_only_for_the_configured_vid") {
        return;
    }
    let (mut p, _xsk) = steering_80_and_40000s();
    let syn = Frame::syn(LOCAL, 80).build();
    let reply = Frame::syn(LOCAL, 40001).build();

    // No VLAN: untagged and priority-tagged (VID 0) are ours, VID 100 is not.
    assert_eq!(run(&p, &syn), XdpAction::Redirect);
    assert_eq!(run(&p, &tagged(syn.clone(), 0)), XdpAction::Redirect);
    assert_eq!(run(&p, &tagged(syn.clone(), 100)), XdpAction::Pass);

    p.set_vlan(Some(100)).unwrap();
    let cases: Vec<(&str, Vec<u8>, XdpAction)> = vec![
        (
            "VID 100 to a listener",
            tagged(syn.clone(), 100),
            XdpAction::Redirect,
        ),
        (
            "VID 100 to our port range",
            tagged(reply.clone(), 100),
            XdpAction::Redirect,
        ),
        (
            "VID 100 with IP and TCP options",
            tagged(
                Frame {
                    ihl: 15,
                    doff: 15,
                    ..Frame::syn(LOCAL, 80)
                }
                .build(),
                100,
            ),
            XdpAction::Redirect,
        ),
        ("untagged", syn.clone(), XdpAction::Pass),
        (
            "priority tag (VID 0)",
            tagged(syn.clone(), 0),
            XdpAction::Pass,
        ),
        ("VID 200", tagged(syn.clone(), 200), XdpAction::Pass),
        (
            "VID 100, other port",
            tagged(Frame::syn(LOCAL, 22).build(), 100),
            XdpAction::Pass,
        ),
        ("VID 100 ARP", tagged(arp_request(), 100), XdpAction::Pass),
        (
            "QinQ: 802.1Q in 802.1Q",
            tagged(tagged(syn.clone(), 100), 100),
            XdpAction::Pass,
        ),
        (
            "QinQ: 802.1ad outside",
            {
                let mut f = tagged(tagged(syn.clone(), 100), 7);
                f[12..14].copy_from_slice(&[0x88, 0xa8]);
                f
            },
            XdpAction::Pass,
        ),
    ];
    for (name, frame, want) in &cases {
        assert_eq!(run(&p, frame), *want, "{name}");
    }
    // A tag cut short, and a tagged frame whose IPv4 header is cut short: malformed.
    let mut short = tagged(syn.clone(), 100);
    short.truncate(16);
    assert_eq!(run(&p, &short), XdpAction::Pass);
    short = tagged(syn.clone(), 100);
    short.truncate(18 + 10);
    assert_eq!(run(&p, &short), XdpAction::Pass);
    let c = p.counters().unwrap();
    assert_eq!((c.redirected, c.malformed), (2 + 3, 2));

    // Back to untagged; out-of-range IDs are refused.
    p.set_vlan(None).unwrap();
    assert_eq!(run(&p, &syn), XdpAction::Redirect);
    for bad in [0, 4095, 5000] {
        assert!(matches!(p.set_vlan(Some(bad)), Err(XdpError::InvalidVlan(v)) if v == bad));
    }
}

#[test]
fn malformed_frames_pass_and_count() {
    if !privileged("malformed_frames_pass_and_count") {
        return;
    }
    let mut p = XdpProgram::load().unwrap();
    let xsk = unbound_xsk();
    p.register_xsk(0, xsk.as_raw_fd()).unwrap();
    p.add_listener(LOCAL, 80).unwrap();
    let syn = Frame::syn(LOCAL, 80);
    let cut = |f: Frame, n: usize| {
        let mut v = f.build();
        v.truncate(n);
        v
    };

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Ethernet header only", cut(syn, 14)),
        ("IPv4 header cut at 19 bytes", cut(syn, 14 + 19)),
        ("IPv4 options cut", cut(Frame { ihl: 8, ..syn }, 14 + 24)),
        ("IHL below 5", Frame { ihl: 4, ..syn }.build()),
        (
            "IP version 6 in an IPv4 ethertype",
            Frame { version: 6, ..syn }.build(),
        ),
        ("TCP header cut at 19 bytes", cut(syn, 14 + 20 + 19)),
        (
            "TCP header cut, total length consistent",
            cut(
                Frame {
                    tot_len: Some(30),
                    ..syn
                },
                14 + 30,
            ),
        ),
        (
            "TCP options cut",
            cut(Frame { doff: 8, ..syn }, 14 + 20 + 24),
        ),
        ("TCP data offset below 5", Frame { doff: 4, ..syn }.build()),
        (
            "total length beyond the frame",
            Frame {
                tot_len: Some(1500),
                ..syn
            }
            .build(),
        ),
        (
            "total length below the IP header",
            Frame {
                tot_len: Some(10),
                ..syn
            }
            .build(),
        ),
        (
            "TCP header beyond the total length",
            Frame {
                tot_len: Some(30),
                ..syn
            }
            .build(),
        ),
    ];
    for (name, frame) in &cases {
        assert_eq!(run(&p, frame), XdpAction::Pass, "{name}");
    }
    let c = p.counters().unwrap();
    assert_eq!(c.malformed, cases.len() as u64, "{c:?}");
    assert_eq!((c.redirected, c.passed, c.no_socket), (0, 0, 0));

    // Shorter than an Ethernet header: the kernel refuses to run the program at all.
    match p.test_run(&[0u8; 13]) {
        Err(XdpError::TestRun(_)) => {}
        other => panic!("13-byte frame: expected EINVAL from the kernel, got {other:?}"),
    }
    // The well-formed frame still redirects: nothing above poisoned any state.
    assert_eq!(run(&p, &syn.build()), XdpAction::Redirect);
}

/// An ICMP error (`icmp_type`, `code`) from a router to `LOCAL`, quoting a segment of
/// protocol `proto` from `LOCAL:sport` to `PEER:40000` with `quoted` bytes of it after the
/// 20-byte quoted IPv4 header (RFC 792 asks for 8). No checksums (the program reads none).
fn icmp_error(icmp_type: u8, code: u8, proto: u8, sport: u16, quoted: usize) -> Vec<u8> {
    let mut q = vec![0u8; 20 + quoted.max(8)];
    q[0] = 0x45;
    q[2..4].copy_from_slice(&1500u16.to_be_bytes());
    q[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    q[9] = proto;
    q[12..16].copy_from_slice(&LOCAL.octets());
    q[16..20].copy_from_slice(&PEER.octets());
    q[20..22].copy_from_slice(&sport.to_be_bytes());
    q[22..24].copy_from_slice(&40000u16.to_be_bytes());
    q[24..28].copy_from_slice(&7u32.to_be_bytes());
    q.truncate(20 + quoted);
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0, 0x05, 0x00]; // next-hop MTU 1280
    icmp.extend_from_slice(&q);
    let mut f = Frame {
        proto: ICMP,
        ..Frame::syn(LOCAL, 0)
    }
    .build();
    f.truncate(14 + 20);
    f[14 + 2..14 + 4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn icmp_errors_about_our_flows_redirect() {
    if !privileged("icmp_errors_about_our_flows_redirect") {
        return;
    }
    let (p, _xsk) = steering_80_and_40000s();

    let ours: Vec<(&str, Vec<u8>)> = vec![
        (
            "Frag Needed about a listener's segment",
            icmp_error(3, 4, TCP, 80, 8),
        ),
        (
            "Port Unreachable about an active open",
            icmp_error(3, 3, TCP, 40500, 8),
        ),
        (
            "Time Exceeded about a listener's segment",
            icmp_error(11, 0, TCP, 80, 8),
        ),
        ("a longer quote", icmp_error(3, 4, TCP, 80, 40)),
    ];
    for (name, frame) in &ours {
        assert_eq!(run(&p, frame), XdpAction::Redirect, "{name}");
    }
    let not_ours: Vec<(&str, Vec<u8>)> = vec![
        ("about another port", icmp_error(3, 4, TCP, 22, 8)),
        ("about a UDP datagram", icmp_error(3, 3, 17, 80, 8)),
        ("echo reply", icmp_error(0, 0, TCP, 80, 8)),
        ("echo request", icmp_error(8, 0, TCP, 80, 8)),
        ("redirect", icmp_error(5, 1, TCP, 80, 8)),
    ];
    for (name, frame) in &not_ours {
        assert_eq!(run(&p, frame), XdpAction::Pass, "{name}");
    }
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "quote cut inside the TCP ports",
            icmp_error(3, 4, TCP, 80, 3),
        ),
        (
            "quote cut inside the sequence number",
            icmp_error(3, 4, TCP, 80, 7),
        ),
        ("ICMP header only", {
            let mut f = icmp_error(3, 4, TCP, 80, 8);
            f.truncate(14 + 20 + 8);
            f[14 + 2..14 + 4].copy_from_slice(&28u16.to_be_bytes());
            f
        }),
    ];
    for (name, frame) in &malformed {
        assert_eq!(run(&p, frame), XdpAction::Pass, "{name}");
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

// ---- real attachment on a veth pair in namespaces ------------------------------------------

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair `va` (10.77.0.1, in `a`) – `vb` (10.77.0.2, in `b`).
/// Dropping it deletes both namespaces, which destroys the veth pair, also on panic.
struct VethPair {
    a: String,
    b: String,
}

impl VethPair {
    fn new() -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let pair = Self {
            a: format!("xtcpA-{pid}-{n}"),
            b: format!("xtcpB-{pid}-{n}"),
        };
        sh(&["ip", "netns", "add", &pair.a]);
        sh(&["ip", "netns", "add", &pair.b]);
        #[rustfmt::skip]
        sh(&["ip", "link", "add", "va", "netns", &pair.a, "type", "veth",
             "peer", "name", "vb", "netns", &pair.b]);
        sh(&[
            "ip",
            "-n",
            &pair.a,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "va",
        ]);
        sh(&[
            "ip",
            "-n",
            &pair.b,
            "addr",
            "add",
            "10.77.0.2/24",
            "dev",
            "vb",
        ]);
        for (ns, dev) in [
            (&pair.a, "va"),
            (&pair.b, "vb"),
            (&pair.a, "lo"),
            (&pair.b, "lo"),
        ] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    fn link_a(&self) -> String {
        sh(&["ip", "-n", &self.a, "link", "show", "dev", "va"])
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into namespace `ns` (only this thread: setns is per-thread).
fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).expect("open netns");
    // Safety: `f` is an open namespace file; setns only affects the calling thread, which
    // the callers own (a thread spawned for the test).
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", io::Error::last_os_error());
}

/// A minimal copy-mode AF_XDP receiver: UMEM, fill ring and RX ring, bound to one queue.
struct XskRx {
    fd: OwnedFd,
    umem: *mut u8,
    fill: *mut u8,
    fill_len: usize,
    rx: *mut u8,
    rx_len: usize,
    off: libc::xdp_mmap_offsets,
}

const NFRAMES: u32 = 16;
const FRAME: u32 = 4096;

fn mmap(len: usize, fd: i32, off: i64) -> *mut u8 {
    let (prot, flags) = (
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED | libc::MAP_POPULATE,
    );
    let flags = if fd < 0 {
        flags | libc::MAP_ANONYMOUS
    } else {
        flags
    };
    // Safety: a fresh mapping at a kernel-chosen address; the result is checked.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
    assert_ne!(p, libc::MAP_FAILED, "mmap: {}", io::Error::last_os_error());
    p.cast()
}

fn setsockopt<T>(fd: i32, opt: i32, val: &T) {
    // Safety: `val` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt {opt}: {}", io::Error::last_os_error());
}

impl XskRx {
    /// Creates the socket in the calling thread's namespace and binds it to `ifname` queue 0.
    fn bind(ifname: &str) -> Self {
        let fd = unbound_xsk();
        let raw = fd.as_raw_fd();
        let umem_len = (NFRAMES * FRAME) as usize;
        let umem = mmap(umem_len, -1, 0);
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: umem_len as u64,
            chunk_size: FRAME,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg);
        setsockopt(raw, libc::XDP_UMEM_FILL_RING, &NFRAMES);
        setsockopt(raw, libc::XDP_UMEM_COMPLETION_RING, &NFRAMES);
        setsockopt(raw, libc::XDP_RX_RING, &NFRAMES);
        // Safety: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as u32;
        // Safety: `off` and `len` are live and sized for the kernel to write into.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&raw mut off).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "XDP_MMAP_OFFSETS: {}", io::Error::last_os_error());
        let fill_len = off.fr.desc as usize + NFRAMES as usize * 8;
        let fill = mmap(fill_len, raw, libc::XDP_UMEM_PGOFF_FILL_RING as i64);
        let rx_len = off.rx.desc as usize + NFRAMES as usize * size_of::<libc::xdp_desc>();
        let rx = mmap(rx_len, raw, libc::XDP_PGOFF_RX_RING);
        let s = Self {
            fd,
            umem,
            fill,
            fill_len,
            rx,
            rx_len,
            off,
        };

        // Give the kernel every frame before binding.
        // Safety: the fill ring holds NFRAMES u64 addresses at `desc`; we are its only
        // producer and publish them with a release store of the producer index.
        unsafe {
            let descs = s.fill.add(s.off.fr.desc as usize).cast::<u64>();
            for i in 0..NFRAMES {
                descs.add(i as usize).write(u64::from(i * FRAME));
            }
            (*s.fill.add(s.off.fr.producer as usize).cast::<AtomicU32>())
                .store(NFRAMES, Ordering::Release);
        }

        let c = std::ffi::CString::new(ifname).unwrap();
        // Safety: `c` is a valid C string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert_ne!(ifindex, 0, "{ifname}");
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY, // veth has no zero-copy
            sxdp_ifindex: ifindex,
            sxdp_queue_id: 0,
            sxdp_shared_umem_fd: 0,
        };
        // Safety: `sa` is a live sockaddr_xdp of the size passed.
        let rc = unsafe {
            libc::bind(
                raw,
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_xdp>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_XDP: {}", io::Error::last_os_error());
        s
    }

    /// Waits up to `limit` for one received frame and returns a copy of it.
    fn recv(&self, limit: Duration) -> Option<Vec<u8>> {
        let start = Instant::now();
        // Safety: producer/consumer are u32 ring indexes the kernel shares with us; the
        // descriptor at `cons` is ours once the producer (acquire) has passed it, and its
        // addr/len lie inside the UMEM the kernel validated at registration.
        unsafe {
            let prod = &*self
                .rx
                .add(self.off.rx.producer as usize)
                .cast::<AtomicU32>();
            let cons = &*self
                .rx
                .add(self.off.rx.consumer as usize)
                .cast::<AtomicU32>();
            while start.elapsed() < limit {
                let c = cons.load(Ordering::Relaxed);
                if prod.load(Ordering::Acquire) != c {
                    let descs = self
                        .rx
                        .add(self.off.rx.desc as usize)
                        .cast::<libc::xdp_desc>();
                    let d = descs.add((c % NFRAMES) as usize).read();
                    let data =
                        std::slice::from_raw_parts(self.umem.add(d.addr as usize), d.len as usize);
                    let frame = data.to_vec();
                    cons.store(c.wrapping_add(1), Ordering::Release);
                    return Some(frame);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        None
    }
}

impl Drop for XskRx {
    fn drop(&mut self) {
        // Safety: these are the mappings made in `bind`, with their lengths; nothing
        // borrows them past this point.
        unsafe {
            libc::munmap(self.rx.cast(), self.rx_len);
            libc::munmap(self.fill.cast(), self.fill_len);
            libc::munmap(self.umem.cast(), (NFRAMES * FRAME) as usize);
        }
        let _ = &self.fd; // closed after the unmaps by the field drop
    }
}

fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::new(10, 77, 0, 1), port));
    TcpStream::connect_timeout(&addr, timeout)
}

/// Attaches in `mode`, checks the kernel still answers what is not ours, that a listener's
/// SYN reaches a bound AF_XDP socket, and that dropping the handle detaches.
fn attach_and_steer(mode: XdpMode, expect: XdpMode, marker: &str) {
    let pair = VethPair::new();
    let (a, b) = (pair.a.clone(), pair.b.clone());
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&a);
            let mut st = XdpSteering::attach("va", mode).expect("attach");
            assert_eq!(st.mode(), expect);
            assert_eq!(st.iface(), "va");
            let shown = pair.link_a();
            println!("{mode:?} attached:\n{shown}");
            assert!(shown.contains(marker), "expected `{marker}` in:\n{shown}");
            const PORT: u16 = 7777;
            st.add_listener(Ipv4Addr::new(10, 77, 0, 1), PORT).unwrap();

            // No socket on queue 0: the SYN falls back to the kernel, which has no listener
            // and answers RST. ARP went through too, or no SYN would have been sent.
            enter(&b);
            let e = connect(PORT, Duration::from_secs(2)).expect_err("kernel has no listener");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            let c = st.counters().unwrap();
            assert!(c.no_socket >= 1, "{c:?}");
            assert!(c.passed >= 1, "ARP is passed: {c:?}");

            // With a bound socket the SYN is delivered to it, and the kernel never sees it.
            enter(&a);
            let xsk = XskRx::bind("va");
            st.register_xsk(0, xsk.fd.as_raw_fd()).unwrap();
            enter(&b);
            let e = connect(PORT, Duration::from_millis(300)).expect_err("SYN went to AF_XDP");
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            let frame = xsk
                .recv(Duration::from_secs(2))
                .expect("no frame on the AF_XDP socket");
            assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            assert_eq!(frame[14 + 9], TCP);
            let tcp = &frame[14 + ihl..];
            assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), PORT);
            assert_eq!(tcp[13] & 0x12, 0x02, "a SYN");
            assert!(st.counters().unwrap().redirected >= 1);

            // Other ports still reach the kernel (RST: refused), also with a socket present.
            let e = connect(PORT + 1, Duration::from_secs(2)).expect_err("no kernel listener");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");

            drop(st);
            let shown = pair.link_a();
            assert!(
                !shown.contains("xdp"),
                "still attached after drop:\n{shown}"
            );
            // Detached: the listener's SYN reaches the kernel again.
            let e = connect(PORT, Duration::from_secs(2)).expect_err("kernel has no listener");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            drop(xsk);
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    });
}

#[test]
fn attach_skb_mode_on_veth() {
    if !privileged("attach_skb_mode_on_veth") {
        return;
    }
    attach_and_steer(XdpMode::Skb, XdpMode::Skb, "xdpgeneric");
}

#[test]
fn attach_native_mode_on_veth() {
    if !privileged("attach_native_mode_on_veth") {
        return;
    }
    attach_and_steer(XdpMode::Native, XdpMode::Native, "xdp ");
}

#[test]
fn attach_auto_prefers_native() {
    if !privileged("attach_auto_prefers_native") {
        return;
    }
    attach_and_steer(XdpMode::Auto, XdpMode::Native, "xdp ");
}

#[test]
fn attach_errors_are_clear() {
    if !privileged("attach_errors_are_clear") {
        return;
    }
    let e = XdpSteering::attach("eth9", XdpMode::Auto).unwrap_err();
    assert_eq!(e.to_string(), "interface eth9 not found");

    // A second program cannot take an interface that already has one: both modes fail,
    // and the message names them.
    let pair = VethPair::new();
    let a = pair.a.clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&a);
            let first = XdpSteering::attach("va", XdpMode::Skb).unwrap();
            let e = XdpSteering::attach("va", XdpMode::Auto).unwrap_err();
            let msg = e.to_string();
            println!("second attach: {msg}");
            assert!(
                msg.starts_with("attach to va failed in native and skb mode: native: "),
                "{msg}"
            );
            assert!(msg.contains("; skb: "), "{msg}");
            assert!(matches!(&e, XdpError::Attach { failures, .. } if failures.len() == 2));
            drop(first);
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    });
}
