//! The IPv6 `Stack` (`Stack<Ipv6Addr>`), through the test kit's harnesses run over IPv6:
//! - 1 MiB each way byte-exact in the simulator, every frame IPv6, full-sized packets
//!   exactly 1500 bytes (MSS 1440 from the IPv6 MTU), ending in TIME-WAIT;
//! - TIME-WAIT of a v6 tuple: a retransmitted FIN re-ACKed, RFC 6191 reuse by a SYN with a
//!   higher ISN, the ACK (no reuse) for one with a lower ISN; with timestamps, the TSval
//!   decides over the ISN;
//! - SYN cookies over the v6 tuple: the handshake, and a cookie that does not bind the tuple;
//! - Neighbor Discovery through the `Stack`: a stack with an empty neighbour cache solicits
//!   the peer at its solicited-node multicast MAC, the peer's stack answers, the SYN follows;
//!   a peer that never answers ends the connect with `TimedOut` after three solicitations;
//! - Packet Too Big through the `Stack` (RFC 8201, RFC 5927): a router with a 1280-byte next
//!   hop, and a forged out-of-window message ignored and counted;
//! - Destination Unreachable (RFC 4443 §3.1) during SYN-SENT: the soft error reported when
//!   the connect times out (RFC 1122 §4.2.3.9), an out-of-window one counted and ignored,
//!   administratively prohibited changing nothing; on an established connection, ignored;
//! - extension headers the stack rejects, counted by type, and one it skips;
//! - IPv6 on an 802.1Q VLAN (Neighbor Discovery tagged too), and a v6 capture written as
//!   pcap and read back by tshark, every TCP and ICMPv6 checksum good.
//!
//! The handshake/close/loss matrix over IPv6 (200 seeds of `sim_matrix`) is
//! `sim_matrix::reliability_matrix_ipv6_slice`.

use xtcp::sim::{Fate, Host, LinkConfig, Simulation};
use xtcp::stack::{Stack, StackFamily, is_ipv6_frame};
use xtcp::tcp::{Event, FourTuple, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::frame::parse_icmpv6_frame;
use xtcp::wire::icmpv6::Icmpv6Repr;
use xtcp::wire::ipv6::{multicast_mac, solicited_node};
use xtcp::wire::{EthernetAddress, Ipv6Addr, SeqNumber, TcpControl};
use xtcp_testkit::bulk::{Bulk, expected_hash, node_config, stack_for_family};
use xtcp_testkit::family::Family;
use xtcp_testkit::icmp::{MtuRouter, ip_len, packet_too_big_frame};
use xtcp_testkit::pair::{A_MAC, B_MAC, B_PORT, Pair, PairConfig, plain_cfg, tuple_a_of};
use xtcp_testkit::seg::{Seg, k, keys};

type V6 = Ipv6Addr;

const LEN: usize = 1 << 20;
const PORT: u16 = 5001;

fn tcp() -> TcpConfig {
    TcpConfig {
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..TcpConfig::default()
    }
}

fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

// Destination Unreachable (RFC 4443 §3.1): `sim_ipv6/unreachable.rs`.
#[path = "sim_ipv6/unreachable.rs"]
mod unreachable;

// ============================================================ simulator: data and close

#[test]
fn one_mib_each_way_byte_exact_over_ipv6() {
    let mut sim = Simulation::with_seed(61, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(2)));
    sim.set_capture(true);
    let addr = V6::socket_addr(V6::node(1), PORT);
    let mut client = Bulk::new(stack_for_family::<V6>(&sim, 0, tcp()), LEN, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(stack_for_family::<V6>(&sim, 1, tcp()), LEN, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    let mut hosts = [client, server];
    let end = sim.run_while(&mut hosts, Instant::from_secs(60), |h| {
        !(h[0].done() && h[1].done())
    });
    assert!(end.is_some(), "not done in 60 s of virtual time");
    for (h, seed) in [(&hosts[0], 99), (&hosts[1], 11)] {
        let f = &h.conns[0];
        assert_eq!((f.received, f.mismatch), (LEN, None));
        assert_eq!(f.hash, expected_hash(seed, LEN));
        assert!(f.events.contains(&Event::Closed), "{:?}", f.events);
        assert!(
            !f.events
                .iter()
                .any(|e| matches!(e, Event::Reset | Event::TimedOut))
        );
    }
    // Every frame was IPv6; full-sized packets are exactly the 1500-byte MTU
    // (MSS 1500 - 60 = 1440, minus 12 bytes of timestamps per segment).
    assert!(sim.capture().iter().all(|c| ethertype(&c.data) == 0x86dd));
    let largest = sim.capture().iter().map(|c| ip_len(&c.data)).max();
    assert_eq!(largest, Some(1500));
    // Both sent their FIN when done sending: whoever closed first (here both at once,
    // through CLOSING) holds the v6 tuple in its TIME-WAIT table.
    let (cc, sc) = (hosts[0].stack.counters(), hosts[1].stack.counters());
    assert!(
        cc.time_wait_inserts + sc.time_wait_inserts >= 1,
        "{cc:?} {sc:?}"
    );
    for h in &hosts {
        let inserts = h.stack.counters().time_wait_inserts as usize;
        assert_eq!(h.stack.time_wait_table().len(), inserts);
    }
}

// ============================================================ TIME-WAIT and RFC 6191

/// B (the stack) closes first and ends in its TIME-WAIT table with the v6 tuple.
fn pair_in_time_wait() -> Pair<V6> {
    pair_in_time_wait_with(plain_cfg())
}

fn pair_in_time_wait_with(cfg: TcpConfig) -> Pair<V6> {
    let mut p = Pair::new_v6(cfg, cfg);
    p.handshake();
    p.close_b().unwrap();
    let fin = p.out_b();
    assert_eq!(keys(&fin), [k("F.", 5001, Some(1001), 0)]);
    p.deliver_a(&fin[0]);
    p.a.close(p.now).unwrap();
    let ack_fin = p.out_a();
    p.deliver_b_all(&ack_fin);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", 5002, Some(1002), 0)],
        "the last ACK"
    );
    assert_eq!(p.states(), (State::LastAck, State::TimeWait));
    let tuple: FourTuple<V6> = tuple_a_of::<V6>().reversed();
    assert!(p.stack.in_time_wait(&tuple));
    assert_eq!(p.stack.time_wait_table().len(), 1);
    p
}

#[test]
fn time_wait_on_a_v6_tuple_reacks_a_retransmitted_fin() {
    let mut p = pair_in_time_wait();
    // A's FIN again (its ACK was lost): TIME-WAIT answers with the ACK.
    p.advance(Duration::from_secs(1));
    let fin = Seg {
        control: TcpControl::Fin,
        seq: 1001,
        ack: Some(5002),
        window: 65535,
        src_port: 40000,
        dst_port: B_PORT,
        ..Seg::default()
    };
    p.deliver_b(&fin);
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.stack.counters().time_wait_fin_acks, 1);
}

/// A new client connection on the same v6 tuple with ISN `iss`.
fn reopen(p: &mut Pair<V6>, iss: u32) -> Seg {
    reopen_with(p, iss, plain_cfg(), 0)
}

/// [`reopen`] with `cfg` and timestamp clock offset `ts_offset`.
fn reopen_with(p: &mut Pair<V6>, iss: u32, cfg: TcpConfig, ts_offset: u32) -> Seg {
    p.a =
        xtcp::tcp::Connection::connect(&cfg, tuple_a_of::<V6>(), SeqNumber(iss), ts_offset, p.now);
    p.a_iss = iss;
    let syn = p.out_a();
    assert_eq!(keys(&syn), [k("S", iss, None, 0)]);
    syn.into_iter().next().unwrap()
}

#[test]
fn rfc6191_a_higher_isn_reopens_a_v6_time_wait_tuple() {
    let mut p = pair_in_time_wait();
    p.advance(Duration::from_secs(2));
    // No timestamps: RFC 6191 falls back to RFC 9293's rule, a SYN above RCV.NXT (1002).
    let syn = reopen(&mut p, 100_000);
    p.deliver_b(&syn);
    assert_eq!(p.stack.counters().time_wait_reuses, 1);
    let synack = p.out_b();
    assert_eq!(keys(&synack), [k("S.", p.b_iss, Some(100_001), 0)]);
    p.deliver_a(&synack[0]);
    let ack = p.out_a();
    p.hb = None;
    p.deliver_b(&ack[0]);
    assert_eq!(p.states(), (State::Established, State::Established));
    assert_eq!(p.stack.time_wait_table().len(), 0);
}

#[test]
fn rfc6191_a_lower_isn_gets_the_time_wait_ack_over_v6() {
    let mut p = pair_in_time_wait();
    p.advance(Duration::from_secs(2));
    let syn = reopen(&mut p, 500);
    p.deliver_b(&syn);
    assert_eq!(p.stack.counters().time_wait_reuses, 0);
    // The TIME-WAIT ACK <SEQ=SND.NXT><ACK=RCV.NXT>, and the tuple stays.
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.b_state(), State::TimeWait);
}

#[test]
fn rfc6191_timestamps_decide_over_the_isn_on_v6() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain_cfg()
    };
    // A newer TSval reopens the tuple even with an ISN below RCV.NXT (RFC 6191 §2)...
    let mut p = pair_in_time_wait_with(cfg);
    p.advance(Duration::from_secs(2));
    let syn = reopen_with(&mut p, 500, cfg, 1_000_000);
    p.deliver_b(&syn);
    assert_eq!(p.stack.counters().time_wait_reuses, 1);
    assert_eq!(keys(&p.out_b()), [k("S.", p.b_iss, Some(501), 0)]);
    // ...and an older one does not, even with a higher ISN: the TIME-WAIT ACK.
    let mut p = pair_in_time_wait_with(cfg);
    p.advance(Duration::from_secs(2));
    let syn = reopen_with(&mut p, 100_000, cfg, 0u32.wrapping_sub(1_000_000));
    p.deliver_b(&syn);
    assert_eq!(p.stack.counters().time_wait_reuses, 0);
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.b_state(), State::TimeWait);
}

// ============================================================ SYN cookies

#[test]
fn syn_cookies_over_a_v6_tuple() {
    let pc = PairConfig {
        cookies: true,
        ..PairConfig::new(plain_cfg(), plain_cfg())
    };
    let mut p = Pair::<V6>::with_family(pc);
    p.handshake();
    let c = p.stack.counters();
    assert_eq!((c.syn_cookies_sent, c.syn_cookies_validated), (1, 1));
    assert_eq!(p.stack.syn_recv_count(), 0);
    // The peer offered 1460 (its TcpConfig), the cookie's MSS table keeps 1460, and B's
    // own limit is the IPv6 MSS, 1440.
    assert_eq!(p.b().mss(), 1440);
    assert_eq!(p.b_events(), [Event::Connected]);
}

#[test]
fn a_syn_cookie_binds_the_whole_v6_tuple() {
    let pc = PairConfig {
        cookies: true,
        ..PairConfig::new(plain_cfg(), plain_cfg())
    };
    let mut p = Pair::<V6>::with_family(pc);
    let syn = p.out_a();
    p.deliver_b(&syn[0]);
    let synack = p.out_b();
    p.deliver_a(&synack[0]);
    let ack = p.out_a().remove(0);
    // The valid final ACK, but from another source port: its cookie does not validate.
    let moved = Seg {
        src_port: 40001,
        ..ack.clone()
    };
    p.deliver_b(&moved);
    assert_eq!(p.stack.counters().syn_cookies_rejected, 1);
    p.stack.flush(p.now, &mut p.link);
    let mut rst = Vec::new();
    p.link.drain_tx(|f| rst.push(Seg::from_frame_of::<V6>(f)));
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].control, TcpControl::Rst);
    // The real one does.
    p.deliver_b(&ack);
    assert_eq!(p.stack.counters().syn_cookies_validated, 1);
    assert_eq!(p.states(), (State::Established, State::Established));
}

// ============================================================ Neighbor Discovery

/// An IPv6 node stack without neighbours: it resolves its peers with Neighbor Discovery.
fn bare_stack(sim: &Simulation, node: usize) -> Stack<V6> {
    Stack::new_v6(node_config(sim, node, tcp()), sim.now())
}

#[test]
fn neighbor_discovery_then_the_syn() {
    let mut sim = Simulation::with_seed(62, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(1)));
    sim.set_capture(true);
    let addr = V6::socket_addr(V6::node(1), PORT);
    let mut client = Bulk::new(bare_stack(&sim, 0), 1000, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(bare_stack(&sim, 1), 1000, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    let mut hosts = [client, server];
    let end = sim.run_while(&mut hosts, Instant::from_secs(10), |h| {
        !(h[0].done() && h[1].done())
    });
    assert!(end.is_some(), "not done in 10 s: {}", sim.dump());
    let frames: Vec<_> = sim.captured_with(Fate::Delivered).collect();
    // 1. The client's NS for node 1, at its solicited-node address and multicast MAC.
    let target = V6::node(1);
    let group = solicited_node(target);
    let (eth, ip, ns) = parse_icmpv6_frame(&frames[0].data).expect("an NS");
    assert_eq!(frames[0].from, 0);
    assert_eq!(
        (eth.dst_addr, ip.src_addr, ip.dst_addr),
        (multicast_mac(group), V6::node(0), group)
    );
    assert_eq!(eth.dst_addr, EthernetAddress([0x33, 0x33, 0xff, 0, 0, 2]));
    assert_eq!(
        ns,
        Icmpv6Repr::NeighborSolicit {
            target,
            source_lladdr: Some(sim.mac(0)),
        }
    );
    // 2. The server stack's NA, solicited, to the client's MAC.
    let (eth, ip, na) = parse_icmpv6_frame(&frames[1].data).expect("an NA");
    assert_eq!(
        (frames[1].from, eth.dst_addr, ip.dst_addr),
        (1, sim.mac(0), V6::node(0))
    );
    assert_eq!(
        na,
        Icmpv6Repr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target,
            target_lladdr: Some(sim.mac(1)),
        }
    );
    // 3. The SYN, to the resolved MAC.
    let syn = Seg::from_frame_of::<V6>(&frames[2].data);
    assert_eq!((frames[2].from, syn.flags()), (0, "S".to_string()));
    assert_eq!((syn.dst_mac, syn.dst_port), (sim.mac(1), PORT));
    let (cc, sc) = (hosts[0].stack.counters(), hosts[1].stack.counters());
    assert_eq!((cc.nd_solicits_sent, cc.nd_adverts_received), (1, 1));
    assert_eq!((sc.nd_solicits_received, sc.nd_adverts_sent), (1, 1));
    assert_eq!(hosts[0].stack.neighbor(target), Some(sim.mac(1)));
    for h in &hosts {
        assert_eq!(h.conns[0].received, 1000);
    }
}

#[test]
fn a_neighbor_that_never_answers_times_the_connect_out() {
    let mut sim = Simulation::with_seed(63, 2);
    sim.set_capture(true);
    let nobody = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
    let mut client = Bulk::new(bare_stack(&sim, 0), 0, 11, 99);
    client.connect_to = Some(V6::socket_addr(nobody, PORT));
    let mut server = Bulk::new(bare_stack(&sim, 1), 0, 99, 11);
    server.flows = 0;
    let mut hosts = [client, server];
    sim.run_until(&mut hosts, Instant::from_secs(10));
    let c = hosts[0].stack.counters();
    // RFC 4861 §7.2.2: MAX_MULTICAST_SOLICIT (3) solicitations, RetransTimer (1 s) apart.
    assert_eq!((c.nd_solicits_sent, c.nd_unreachable), (3, 1), "{c:?}");
    assert_eq!(hosts[0].conns[0].events.first(), Some(&Event::TimedOut));
    assert_eq!(hosts[0].stack.connection_count(), 0);
    let ns: Vec<_> = sim.capture().iter().filter(|f| f.from == 0).collect();
    assert_eq!(ns.len(), 3);
    assert!(
        ns.iter()
            .all(|f| f.data[..6] == [0x33, 0x33, 0xff, 0, 0, 0x99])
    );
    // Node 1 heard them (multicast floods) and answered none: the target is not its.
    let s = hosts[1].stack.counters();
    assert_eq!((s.nd_solicits_received, s.nd_adverts_sent), (3, 0));
}

// ============================================================ Packet Too Big

#[test]
fn packet_too_big_lowers_the_mss_and_1mib_arrives_byte_exact() {
    let mut sim = Simulation::with_seed(64, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(5)));
    let addr = V6::socket_addr(V6::node(1), PORT);
    let mut client = Bulk::new(stack_for_family::<V6>(&sim, 0, tcp()), 0, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(stack_for_family::<V6>(&sim, 1, tcp()), LEN, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    let router_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]);
    let mut router = MtuRouter::new(
        server,
        1280,
        (router_mac, xtcp::wire::Ipv4Addr::UNSPECIFIED),
    );
    while !(client.done() && router.inner.done()) {
        assert!(
            sim.now() < Instant::from_secs(60),
            "not done in 60 s: dropped {} {:?} {:?}",
            router.dropped,
            router.inner.stack.counters(),
            client.stack.counters()
        );
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut router];
        sim.run_for(&mut hs, Duration::from_millis(10));
    }
    let f = &client.conns[0];
    assert_eq!((f.received, f.mismatch), (LEN, None));
    assert_eq!(f.hash, expected_hash(99, LEN));
    let c = router.inner.stack.counters();
    println!("dropped {}, counters {c:?}", router.dropped);
    // One decrease, to 1280 - 60 = 1220 (RFC 8201 §4: not below the IPv6 minimum).
    assert_eq!(c.pmtu_decreases, 1);
    assert_eq!(c.icmp_received, router.dropped as u64);
    assert_eq!(c.icmp_frag_needed, c.icmp_received);
    assert_eq!(c.icmp_out_of_window + c.icmp_malformed + c.icmp_not_ours, 0);
    assert!(
        router.dropped <= 20,
        "{} packets were too large",
        router.dropped
    );
    assert_eq!(router.largest_passed, 1280);
}

/// B's data segment `s` as the frame B sent (from B to A).
fn b_frame(s: &Seg) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = V6::emit_frame(
        &mut buf,
        None,
        B_MAC,
        A_MAC,
        V6::node(1),
        V6::node(0),
        &s.repr(),
    )
    .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn packet_too_big_through_the_stack_and_a_forged_one() {
    let mut p = Pair::new_v6(plain_cfg(), plain_cfg());
    p.handshake();
    assert_eq!(p.b().mss(), 1440, "MSS from the IPv6 MTU");
    p.b_send(&[7u8; 3000]);
    let sent = p.out_b();
    assert_eq!(
        sent.iter().map(Seg::len).collect::<Vec<_>>(),
        [1440, 1440, 120]
    );
    let router = (EthernetAddress([2, 0, 0, 0, 0, 0xfe]), V6::node(0xfd));
    let to_b = (B_MAC, V6::node(1));
    let deliver = |p: &mut Pair<V6>, frame: &[u8]| {
        assert!(p.link.push_rx(frame));
        p.stack.receive(p.now, &mut p.link);
    };
    // Forged: quotes a sequence number outside SND.UNA..SND.NXT (RFC 5927 §4.1).
    let mut forged = sent[0].clone();
    forged.seq = forged.seq.wrapping_add(1_000_000);
    let frame = packet_too_big_frame(router, to_b, 1280, &b_frame(&forged)[14..]);
    deliver(&mut p, &frame);
    let c = p.stack.counters();
    assert_eq!(
        (c.icmp_received, c.icmp_out_of_window, c.pmtu_decreases),
        (1, 1, 0)
    );
    assert_eq!(p.b().mss(), 1440);
    // The real one: quotes the first segment; the MSS drops to 1280 - 60.
    let frame = packet_too_big_frame(router, to_b, 1280, &b_frame(&sent[0])[14..]);
    deliver(&mut p, &frame);
    let c = p.stack.counters();
    assert_eq!((c.icmp_received, c.pmtu_decreases), (2, 1));
    assert_eq!(p.b().mss(), 1220);
    // Below the IPv6 minimum MTU changes nothing (RFC 8201 §4).
    let frame = packet_too_big_frame(router, to_b, 1000, &b_frame(&sent[1])[14..]);
    deliver(&mut p, &frame);
    assert_eq!(p.b().mss(), 1220);
    // What B sends now (at once, or at its RTO) fits in 1280 bytes.
    let mut resent = p.out_b();
    if resent.is_empty() {
        p.advance(Duration::from_secs(2));
        resent = p.out_b();
    }
    assert!(!resent.is_empty(), "B retransmits");
    for s in &resent {
        assert!(40 + 20 + s.len() <= 1280, "{} bytes", s.len());
    }
}

// ============================================================ extension headers

/// A's SYN to B as an IPv6 frame with `ext` (one extension header, next header TCP)
/// inserted after the fixed header under `next_header`.
fn syn_with_extension(next_header: u8, ext: &[u8]) -> Vec<u8> {
    let syn = Seg {
        control: TcpControl::Syn,
        seq: 1000,
        window: 65535,
        src_port: 40000,
        dst_port: B_PORT,
        ..Seg::default()
    };
    let mut buf = vec![0u8; 2048];
    let n = V6::emit_frame(
        &mut buf,
        None,
        A_MAC,
        B_MAC,
        V6::node(0),
        V6::node(1),
        &syn.repr(),
    )
    .unwrap();
    let mut frame = buf[..n].to_vec();
    let payload_len = u16::from_be_bytes([frame[18], frame[19]]) + ext.len() as u16;
    frame[18..20].copy_from_slice(&payload_len.to_be_bytes());
    frame[20] = next_header;
    frame.splice(54..54, ext.iter().copied());
    frame
}

#[test]
fn rejected_extension_headers_are_counted_by_type_and_skippable_ones_pass() {
    let mut p = Pair::new_v6(plain_cfg(), plain_cfg());
    let cases: [(u8, [u8; 8]); 5] = [
        // Fragment (offset 0, M 0: an atomic fragment, still no reassembly).
        (44, [6, 0, 0, 0, 0, 0, 0, 1]),
        // Routing with Segments Left 1.
        (43, [6, 0, 4, 1, 0, 0, 0, 0]),
        // Destination Options with an option of action 10 (discard).
        (60, [6, 0, 0x80, 4, 0, 0, 0, 0]),
        // ESP (its "header" here is just bytes: rejected by type).
        (50, [6, 0, 0, 0, 0, 0, 0, 0]),
        // Destination Options with PadN only: skipped, the SYN reaches the listener.
        (60, [6, 0, 1, 4, 0, 0, 0, 0]),
    ];
    for (nh, ext) in cases {
        let frame = syn_with_extension(nh, &ext);
        assert!(p.link.push_rx(&frame));
        p.stack.receive(p.now, &mut p.link);
    }
    let c = p.stack.counters();
    assert_eq!(
        (
            c.rx_ipv6_fragments,
            c.rx_ipv6_ext_routing,
            c.rx_ipv6_ext_options,
            c.rx_ipv6_ext_other
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(c.syns_received, 1, "only the last SYN got through");
    assert_eq!(keys(&p.out_b()), [k("S.", 5000, Some(1001), 0)]);
}

// ============================================================ VLAN and pcap

/// Two IPv6 stacks without neighbours on `vlan` (if any), 1000 bytes each way: returns the
/// simulation (its capture on) once both are done.
fn small_exchange(seed: u64, vlan: Option<u16>) -> Simulation {
    let mut sim = Simulation::with_seed(seed, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(1)));
    sim.set_capture(true);
    let stack = |sim: &Simulation, node: usize| {
        let mut cfg = node_config(sim, node, tcp());
        cfg.vlan = vlan.map(|v| xtcp::wire::VlanId::new(v).unwrap());
        Stack::new_v6(cfg, sim.now())
    };
    let addr = V6::socket_addr(V6::node(1), PORT);
    let mut client = Bulk::new(stack(&sim, 0), 1000, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(stack(&sim, 1), 1000, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    let mut hosts = [client, server];
    let end = sim.run_while(&mut hosts, Instant::from_secs(10), |h| {
        !(h[0].done() && h[1].done())
    });
    assert!(end.is_some(), "not done in 10 s: {}", sim.dump());
    for h in &hosts {
        assert_eq!((h.conns[0].received, h.conns[0].mismatch), (1000, None));
    }
    sim
}

#[test]
fn ipv6_on_a_vlan_tags_everything_neighbor_discovery_included() {
    let sim = small_exchange(65, Some(100));
    let frames = sim.capture();
    assert!(frames.len() >= 8, "NS, NA, handshake, data, teardown");
    for f in frames {
        // 802.1Q tag, VID 100, then IPv6.
        assert_eq!(ethertype(&f.data), 0x8100, "{}", f.line());
        assert_eq!(u16::from_be_bytes([f.data[14], f.data[15]]) & 0x0fff, 100);
        assert_eq!(u16::from_be_bytes([f.data[16], f.data[17]]), 0x86dd);
    }
    // The first two are the tagged NS and NA.
    assert!(
        frames[0].line().contains("neighbor solicitation"),
        "{}",
        frames[0].line()
    );
    assert!(
        frames[1].line().contains("neighbor advertisement"),
        "{}",
        frames[1].line()
    );
}

#[cfg(feature = "pcap")]
#[test]
fn ipv6_simulator_pcap_reads_back_in_tshark() {
    use std::process::Command;
    let tshark = Command::new("tshark").arg("--version").output();
    if !tshark.is_ok_and(|o| o.status.success()) {
        xtcp_testkit::veth::skip(
            "sim_ipv6::ipv6_simulator_pcap_reads_back_in_tshark",
            "tshark not installed (scripts/install-deps.sh)",
        );
        return;
    }
    let sim = small_exchange(66, None);
    let path = std::env::temp_dir().join(format!("xtcp-sim6-{}.pcap", std::process::id()));
    sim.write_pcap(&path).unwrap();
    let out = Command::new("tshark")
        .args(["-n", "-o", "tcp.check_checksum:TRUE"])
        .args(["-T", "fields", "-e", "frame.protocols"])
        .args(["-e", "tcp.checksum.status", "-e", "icmpv6.checksum.status"])
        .arg("-r")
        .arg(&path)
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut tcp, mut icmp) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "{line:?}");
        assert!(f[0].starts_with("eth:ethertype:ipv6:"), "{line:?}");
        if f[0].contains(":tcp") {
            assert_eq!(f[1], "1", "TCP checksum not good: {line:?}");
            tcp += 1;
        } else {
            assert!(f[0].ends_with(":icmpv6"), "{line:?}");
            assert_eq!(f[2], "1", "ICMPv6 checksum not good: {line:?}");
            icmp += 1;
        }
    }
    assert_eq!(icmp, 2, "the NS and the NA");
    assert_eq!(tcp + icmp, sim.capture().len());
    assert!(tcp >= 6, "{tcp} TCP frames: handshake, data, FINs");
}

// ============================================================ both stacks on one link

/// A dual-stack server: an IPv4 and an IPv6 stack on one link, each frame given to one of
/// them by EtherType (`is_ipv6_frame`, `Stack::receive_frame`, then `finish_receive` on both,
/// as the engine's dual-stack core does); it reads every connection to its end and closes.
struct DualServer {
    v4: Stack,
    v6: Stack<V6>,
    listeners: (xtcp::stack::ListenerId, xtcp::stack::ListenerId),
    /// (handle, bytes, hash) per connection.
    conns: Vec<(
        xtcp::stack::ConnHandle,
        usize,
        xtcp_testkit::bulk::StreamHash,
    )>,
}

impl DualServer {
    fn app(&mut self) {
        while let Some(h) = self.v4.accept(self.listeners.0) {
            self.conns.push((h, 0, Default::default()));
        }
        while let Some(h) = self.v6.accept(self.listeners.1) {
            self.conns.push((h, 0, Default::default()));
        }
        let mut events = Vec::new();
        while let Some(e) = self.v4.poll_event() {
            events.push(e);
        }
        while let Some(e) = self.v6.poll_event() {
            events.push(e);
        }
        let mut buf = [0u8; 4096];
        for (h, n, hash) in &mut self.conns {
            loop {
                let got = if h.is_v6() {
                    self.v6.recv(*h, &mut buf)
                } else {
                    self.v4.recv(*h, &mut buf)
                };
                match got {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        hash.update(&buf[..k]);
                        *n += k;
                    }
                }
            }
        }
        for (h, e) in events {
            if e == Event::PeerClosed {
                let _ = if h.is_v6() {
                    self.v6.close(h)
                } else {
                    self.v4.close(h)
                };
            }
        }
    }
}

impl Host for DualServer {
    fn poll(&mut self, now: Instant, link: &mut xtcp::link::memory::MemoryLink) {
        let (v4, v6) = (&mut self.v4, &mut self.v6);
        xtcp::link::Link::receive(link, v4.config().rx_batch, |frame| {
            if is_ipv6_frame(frame) {
                v6.receive_frame(now, frame);
            } else {
                v4.receive_frame(now, frame);
            }
        });
        v4.finish_receive(now);
        v6.finish_receive(now);
        self.app();
        self.v4.flush(now, link);
        self.v6.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        [self.v4.poll_at(), self.v6.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }
}

#[test]
fn one_link_two_stacks_dispatched_by_ethertype() {
    const N: usize = 200_000;
    let mut sim = Simulation::with_seed(67, 3);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(1)));
    let mut v4 = stack_for_family::<xtcp::wire::Ipv4Addr>(&sim, 1, tcp());
    let mut v6 = stack_for_family::<V6>(&sim, 1, tcp());
    let l4 = v4
        .listen(std::net::SocketAddrV4::new(
            xtcp::wire::Ipv4Addr::UNSPECIFIED,
            PORT,
        ))
        .unwrap();
    let l6 = v6
        .listen(std::net::SocketAddrV6::new(
            Ipv6Addr::UNSPECIFIED,
            PORT,
            0,
            0,
        ))
        .unwrap();
    let mut server = DualServer {
        v4,
        v6,
        listeners: (l4, l6),
        conns: Vec::new(),
    };
    let mut c4 = Bulk::new(
        stack_for_family::<xtcp::wire::Ipv4Addr>(&sim, 0, tcp()),
        N,
        4,
        0,
    );
    c4.connect_to = Some(std::net::SocketAddrV4::new(sim.ipv4(1), PORT));
    let mut c6 = Bulk::new(stack_for_family::<V6>(&sim, 2, tcp()), N, 6, 0);
    c6.connect_to = Some(V6::socket_addr(V6::node(1), PORT));
    while !(c4.done() && c6.done()) {
        assert!(sim.now() < Instant::from_secs(30), "not done in 30 s");
        let mut hs: [&mut dyn Host; 3] = [&mut c4, &mut server, &mut c6];
        sim.run_for(&mut hs, Duration::from_millis(10));
    }
    assert_eq!(server.conns.len(), 2);
    for (h, n, hash) in &server.conns {
        let seed = if h.is_v6() { 6 } else { 4 };
        assert_eq!(
            (*n, *hash),
            (N, expected_hash(seed, N)),
            "v6: {}",
            h.is_v6()
        );
    }
    assert_ne!(server.conns[0].0.is_v6(), server.conns[1].0.is_v6());
    // Neither stack saw a frame of the other family.
    let (s4, s6) = (server.v4.counters(), server.v6.counters());
    assert_eq!((s4.rx_not_ours, s6.rx_not_ours), (0, 0), "{s4:?} {s6:?}");
    assert_eq!((s4.passive_opens, s6.passive_opens), (1, 1));
}

// ============================================================ solicitations through the stack

/// A Neighbor Solicitation for `target` from `src` (MAC `src_mac`, also in the source
/// link-layer option) to its solicited-node group, with IPv6 Hop Limit `hop_limit`.
fn ns_frame(src: Ipv6Addr, src_mac: EthernetAddress, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let group = solicited_node(target);
    let ns = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: (!src.is_unspecified()).then_some(src_mac),
    };
    let mut buf = vec![0u8; 128];
    let n = xtcp::wire::frame::emit_icmpv6_frame(
        &mut buf,
        src_mac,
        multicast_mac(group),
        src,
        group,
        &ns,
    )
    .unwrap();
    buf.truncate(n);
    buf[14 + 7] = hop_limit; // not covered by the ICMPv6 checksum
    buf
}

#[test]
fn solicitations_through_the_stack_answered_learned_and_bounded() {
    let mut p = Pair::new_v6(plain_cfg(), plain_cfg());
    let us = V6::node(1);
    let deliver = |p: &mut Pair<V6>, frames: &[Vec<u8>]| -> Vec<Vec<u8>> {
        for f in frames {
            assert!(p.link.push_rx(f));
        }
        while p.link.rx_len() > 0 {
            p.stack.receive(p.now, &mut p.link);
        }
        p.stack.flush(p.now, &mut p.link);
        p.link.take_tx()
    };
    // A solicitation from a neighbour: the solicited NA, to its MAC; it is learned.
    let peer = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50);
    let peer_mac = EthernetAddress([2, 0, 0, 0, 0, 0x50]);
    let out = deliver(&mut p, &[ns_frame(peer, peer_mac, us, 255)]);
    assert_eq!(out.len(), 1);
    let (eth, ip, na) = parse_icmpv6_frame(&out[0]).unwrap();
    assert_eq!(
        (eth.dst_addr, ip.src_addr, ip.dst_addr),
        (peer_mac, us, peer)
    );
    assert!(
        matches!(na, Icmpv6Repr::NeighborAdvert { solicited: true, target, .. } if target == us)
    );
    assert_eq!(p.stack.neighbor(peer), Some(peer_mac));
    // Duplicate address detection (from ::): answered to all-nodes, unsolicited.
    let out = deliver(
        &mut p,
        &[ns_frame(Ipv6Addr::UNSPECIFIED, peer_mac, us, 255)],
    );
    let (eth, _, na) = parse_icmpv6_frame(&out[0]).unwrap();
    assert_eq!(eth.dst_addr, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    assert!(matches!(
        na,
        Icmpv6Repr::NeighborAdvert {
            solicited: false,
            ..
        }
    ));
    // Forwarded by a router (Hop Limit 64): invalid, dropped and counted (RFC 4861 §7.1.1).
    let out = deliver(&mut p, &[ns_frame(peer, peer_mac, us, 64)]);
    assert!(out.is_empty());
    assert_eq!(p.stack.counters().icmp_malformed, 1);
    // For an address that is not ours: no answer, nothing learned (§7.2.3).
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77);
    let stranger = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x51);
    let out = deliver(&mut p, &[ns_frame(stranger, peer_mac, other, 255)]);
    assert!(out.is_empty());
    assert_eq!(p.stack.neighbor(stranger), None);
    // A flood from 1,100 forged sources: every one answered (statelessly), at most
    // `max_learned` (1,024) neighbours learned, the rest counted.
    let flood: Vec<Vec<u8>> = (0..1100u16)
        .map(|i| {
            let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 2, i);
            ns_frame(
                src,
                EthernetAddress([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                us,
                255,
            )
        })
        .collect();
    let mut answered = 0;
    for chunk in flood.chunks(100) {
        answered += deliver(&mut p, chunk).len();
    }
    assert_eq!(answered, 1100);
    let c = p.stack.counters();
    // The cache held `peer` (and A, a static neighbour of the pair, is not in it).
    assert_eq!(c.nd_cache_full, 1100 - (1024 - 1));
    // (The one with Hop Limit 64 is counted as malformed only.)
    assert_eq!(c.nd_solicits_received, 3 + 1100);
    assert_eq!(c.nd_adverts_sent, 2 + 1100);
}

// ============================================================ the API over IPv6

#[test]
fn v6_listen_and_connect_check_the_family_addresses_and_ports() {
    use std::net::SocketAddrV6;
    use xtcp::stack::{StackConfig, StackError};
    let us = V6::node(1);
    let cfg = StackConfig {
        ips: vec![xtcp::wire::Ipv4Addr::new(10, 0, 0, 2)],
        ips6: vec![us],
        ephemeral_ports: 40000..=40001,
        arp: false,
        max_connections: 16,
        max_syn_recv: 16,
        time_wait_capacity: 16,
        ..StackConfig::default()
    };
    let now = Instant::ZERO;
    let mut s = Stack::new_v6(cfg, now);
    assert_eq!(
        s.config().tcp.mss,
        1440,
        "1460 - 20: the IPv6 MSS of a 1500-byte link"
    );
    // Listeners: one of our v6 addresses or ::, not someone else's, not twice.
    let other = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
    let sa = |ip, port| SocketAddrV6::new(ip, port, 0, 0);
    assert_eq!(s.listen(sa(other, 80)), Err(StackError::AddressNotLocal));
    s.listen(sa(us, 80)).unwrap();
    assert_eq!(s.listen(sa(us, 80)), Err(StackError::AddressInUse));
    s.listen(sa(Ipv6Addr::UNSPECIFIED, 81)).unwrap();
    assert_eq!(s.listen(sa(us, 81)), Err(StackError::AddressInUse));
    // Active opens: from our address (the first by default), not another.
    let peer = sa(V6::node(0), 443);
    s.add_neighbor(V6::node(0), A_MAC);
    assert_eq!(
        s.connect(now, Some(other), peer).unwrap_err(),
        StackError::AddressNotLocal
    );
    let h1 = s.connect(now, None, peer).unwrap();
    let h2 = s.connect(now, Some(us), peer).unwrap();
    assert_eq!(s.connection(h1).unwrap().tuple().local_addr, us);
    assert_ne!(
        s.connection(h1).unwrap().tuple().local_port,
        s.connection(h2).unwrap().tuple().local_port
    );
    // Two ports, both in use: a clear error naming the v6 destination.
    let err = s.connect(now, None, peer).unwrap_err();
    assert!(matches!(err, StackError::PortsExhausted6(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no ephemeral port available in 40000..=40001 from 2001:db8::2 to [2001:db8::1]:443: \
         all 2 ports to that destination are in use or in TIME-WAIT"
    );
}

#[test]
fn a_packet_too_big_for_no_connection_is_counted_not_ours() {
    let mut p = Pair::new_v6(plain_cfg(), plain_cfg());
    // Quotes a segment of a tuple nobody has (A's port 40001).
    let s = Seg {
        control: TcpControl::None,
        seq: 5001,
        ack: Some(1001),
        src_port: B_PORT,
        dst_port: 40001,
        payload: vec![0; 1400],
        ..Seg::default()
    };
    let router = (EthernetAddress([2, 0, 0, 0, 0, 0xfe]), V6::node(0xfd));
    let frame = packet_too_big_frame(router, (B_MAC, V6::node(1)), 1280, &b_frame(&s)[14..]);
    assert!(p.link.push_rx(&frame));
    p.stack.receive(p.now, &mut p.link);
    let c = p.stack.counters();
    assert_eq!(
        (c.icmp_received, c.icmp_not_ours, c.pmtu_decreases),
        (1, 1, 0)
    );
    // A Packet Too Big cut before the TCP ports is malformed.
    let frame = packet_too_big_frame(router, (B_MAC, V6::node(1)), 1280, &b_frame(&s)[14..60]);
    assert!(p.link.push_rx(&frame));
    p.stack.receive(p.now, &mut p.link);
    assert_eq!(p.stack.counters().icmp_malformed, 1);
}
