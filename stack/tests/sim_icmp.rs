//! ICMP that matters (RFC 5927), through whole stacks in the simulator:
//! - a router with a 1280-byte next hop answers full-sized segments with Fragmentation
//!   Needed; the sender lowers its MSS once and 1 MiB arrives byte-exact (also from a router
//!   that reports no MTU, RFC 1191 §5);
//! - an ICMP quoting a sequence number outside SND.UNA..SND.NXT is counted and changes
//!   nothing; Time Exceeded changes nothing;
//! - Destination Unreachable in SYN-SENT is remembered and reported when the connect times
//!   out (RFC 1122 §4.2.3.9).

use std::net::SocketAddrV4;

use xtcp::sim::{Host, LinkConfig, Simulation};
use xtcp::tcp::{Counters, Event, FourTuple, SoftError, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::icmpv4::{Icmpv4Message, Unreachable};
use xtcp::wire::{EthernetAddress, Ipv4Addr, SeqNumber, TcpRepr, emit_tcp_frame};
use xtcp_testkit::bulk::{Bulk, expected_hash, stack_for};
use xtcp_testkit::icmp::{MtuRouter, error_for};

const LEN: usize = 1 << 20;
const PORT: u16 = 5001;
const ROUTER: (EthernetAddress, Ipv4Addr) = (
    EthernetAddress([0x02, 0, 0, 0, 0, 0xfe]),
    Ipv4Addr::new(10, 0, 0, 254),
);

fn tcp() -> TcpConfig {
    TcpConfig {
        send_buffer: 256 * 1024,
        recv_buffer: 256 * 1024,
        ..TcpConfig::default()
    }
}

/// Client (node 0) reads `LEN` bytes the server (node 1) sends.
fn hosts(sim: &Simulation) -> (Bulk, Bulk) {
    let addr = SocketAddrV4::new(sim.ipv4(1), PORT);
    let mut client = Bulk::new(stack_for(sim, 0, tcp()), 0, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(stack_for(sim, 1, tcp()), LEN, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    (client, server)
}

/// Runs 10 ms at a time until `done`; panics after 60 s of virtual time.
fn run_until_done<H: Host>(
    sim: &mut Simulation,
    client: &mut Bulk,
    server: &mut H,
    done: impl Fn(&Bulk, &H) -> bool,
) {
    while !done(client, server) {
        assert!(sim.now() < Instant::from_secs(60), "not done in 60 s");
        let mut hs: [&mut dyn Host; 2] = [client, server];
        sim.run_for(&mut hs, Duration::from_millis(10));
    }
}

fn assert_byte_exact(client: &Bulk) {
    let f = &client.conns[0];
    assert_eq!(f.received, LEN, "received {} of {LEN}", f.received);
    assert_eq!(f.mismatch, None);
    assert_eq!(f.hash, expected_hash(99, LEN));
}

fn icmp_counters(c: &Counters) -> [u64; 7] {
    [
        c.icmp_received,
        c.icmp_frag_needed,
        c.pmtu_decreases,
        c.icmp_out_of_window,
        c.icmp_ignored,
        c.icmp_soft_errors,
        c.icmp_malformed + c.icmp_not_ours,
    ]
}

/// 1 MiB through a router whose next hop has MTU 1280; `next_hop_mtu` is what it reports.
/// Returns the router (drop count, largest datagram passed) and the server's counters.
fn transfer_through_router(next_hop_mtu: u16) -> (MtuRouter<Bulk>, Counters) {
    let mut sim = Simulation::with_seed(5, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(5)));
    let (mut client, server) = hosts(&sim);
    let mut router = MtuRouter::new(server, 1280, ROUTER);
    router.next_hop_mtu = next_hop_mtu;
    run_until_done(&mut sim, &mut client, &mut router, |c, r| {
        c.done() && r.inner.done()
    });
    assert_byte_exact(&client);
    let counters = router.inner.stack.counters();
    (router, counters)
}

#[test]
fn frag_needed_lowers_the_mss_and_1mib_arrives_byte_exact() {
    let (router, c) = transfer_through_router(1280);
    println!(
        "dropped {} datagrams, largest passed {}, counters {c:?}",
        router.dropped, router.largest_passed
    );
    // One decrease, to 1280 - 40 = 1240 bytes of segment payload (options included).
    assert_eq!(c.pmtu_decreases, 1);
    assert_eq!(c.icmp_received, router.dropped as u64);
    assert_eq!(c.icmp_frag_needed, c.icmp_received);
    assert_eq!(c.icmp_out_of_window + c.icmp_malformed + c.icmp_not_ours, 0);
    // Only the first flight was too large: after the first ICMP every segment fits.
    assert!(
        router.dropped <= 20,
        "{} datagrams were too large",
        router.dropped
    );
    assert_eq!(router.largest_passed, 1280);
}

#[test]
fn frag_needed_without_an_mtu_uses_the_rfc1191_plateaus() {
    // 1500 -> plateau 1492 (still too large) -> plateau 1006.
    let (router, c) = transfer_through_router(0);
    println!(
        "dropped {} datagrams, largest passed {}, counters {c:?}",
        router.dropped, router.largest_passed
    );
    assert_eq!(c.pmtu_decreases, 2);
    assert!(router.largest_passed <= 1006);
    assert_eq!(c.icmp_out_of_window, 0);
}

/// Runs the client/server pair (no router) until the server has data in flight (the client
/// has half-closed: CLOSE-WAIT), and returns the simulation and the hosts.
fn mid_transfer() -> (Simulation, Bulk, Bulk) {
    let mut sim = Simulation::with_seed(9, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(5)));
    let (mut client, mut server) = hosts(&sim);
    for ms in 1..2000 {
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
        sim.run_until(&mut hs, Instant::from_millis(ms));
        if let Some(f) = server.conns.first()
            && let Some(c) = server.stack.connection(f.handle)
            && c.state() == State::CloseWait
            && c.snd_max() - c.snd_una() > 10_000
        {
            return (sim, client, server);
        }
    }
    panic!("no data in flight after 2 s");
}

/// An ICMP from the router quoting a segment of the server's connection at `seq`.
fn icmp_quoting(
    sim: &Simulation,
    server: &Bulk,
    seq: SeqNumber,
    message: Icmpv4Message,
) -> Vec<u8> {
    let c = server.stack.connection(server.conns[0].handle).unwrap();
    let t = c.tuple();
    let seg = TcpRepr {
        src_port: t.local_port,
        dst_port: t.remote_port,
        seq_number: seq,
        ack_number: Some(c.rcv_nxt()),
        payload: &[0u8; 1448],
        ..TcpRepr::default()
    };
    let mut frame = [0u8; 1600];
    let n = emit_tcp_frame(
        &mut frame,
        sim.mac(1),
        sim.mac(0),
        t.local_addr,
        t.remote_addr,
        &seg,
    )
    .unwrap();
    error_for(&frame[..n], ROUTER, message).unwrap()
}

/// Delivers `icmp` to the server and runs 1 ms.
fn inject(sim: &mut Simulation, client: &mut Bulk, server: &mut Bulk, icmp: &[u8]) {
    assert!(sim.link_mut(1).push_rx(icmp));
    let until = sim.now() + Duration::from_millis(1);
    let mut hs: [&mut dyn Host; 2] = [client, server];
    sim.run_until(&mut hs, until);
}

fn server_mss(server: &Bulk) -> u16 {
    server
        .stack
        .connection(server.conns[0].handle)
        .unwrap()
        .mss()
}

#[test]
fn out_of_window_and_time_exceeded_change_nothing() {
    let (mut sim, mut client, mut server) = mid_transfer();
    let frag = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu: 1280 });
    let before = server.stack.counters();
    let mss = server_mss(&server);
    assert_eq!(mss, 1460);
    let c = server.stack.connection(server.conns[0].handle).unwrap();
    let (una, max) = (c.snd_una(), c.snd_max());
    // Above SND.NXT, below SND.UNA (already acknowledged), far away.
    for seq in [
        max,
        max + 5000,
        SeqNumber(una.0.wrapping_sub(1)),
        SeqNumber(una.0.wrapping_sub(100_000)),
        una + 0x8000_0000usize,
    ] {
        let icmp = icmp_quoting(&sim, &server, seq, frag);
        inject(&mut sim, &mut client, &mut server, &icmp);
    }
    let after = server.stack.counters();
    assert_eq!(
        icmp_counters(&after),
        [
            before.icmp_received + 5,
            0,
            0,
            before.icmp_out_of_window + 5,
            0,
            0,
            0
        ]
    );
    assert_eq!(
        server_mss(&server),
        mss,
        "out-of-window ICMP changed the MSS"
    );

    // Time Exceeded quoting a segment in flight: counted, nothing else.
    let una = server
        .stack
        .connection(server.conns[0].handle)
        .unwrap()
        .snd_una();
    let te = icmp_quoting(&sim, &server, una, Icmpv4Message::TimeExceeded { code: 0 });
    inject(&mut sim, &mut client, &mut server, &te);
    let c = server.stack.counters();
    assert_eq!((c.icmp_ignored, c.pmtu_decreases), (1, 0));
    assert_eq!(server_mss(&server), mss);
    assert_eq!(
        server.stack.state(server.conns[0].handle),
        Some(State::CloseWait)
    );

    // The same forged Fragmentation Needed in window does lower it (the positive control),
    // and the transfer still completes byte-exact.
    let icmp = icmp_quoting(&sim, &server, una, frag);
    inject(&mut sim, &mut client, &mut server, &icmp);
    assert_eq!(server.stack.counters().pmtu_decreases, 1);
    assert_eq!(server_mss(&server), 1240);
    run_until_done(&mut sim, &mut client, &mut server, |c, s| {
        c.done() && s.done()
    });
    assert_byte_exact(&client);
}

/// A client whose SYNs are all lost; `icmp` (given the SYN's ISN) is delivered after the
/// first SYN went out. Returns the client host once its connect timed out.
fn connect_timing_out(icmp: impl Fn(&Simulation, FourTuple, SeqNumber) -> Vec<Vec<u8>>) -> Bulk {
    let mut sim = Simulation::with_seed(3, 2);
    sim.set_all_links(LinkConfig {
        loss: 1.0,
        ..LinkConfig::with_latency(Duration::from_millis(5))
    });
    let (mut client, mut server) = hosts(&sim);
    {
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
        sim.run_until(&mut hs, Instant::from_millis(10));
    }
    let h = client.conns[0].handle;
    assert_eq!(client.stack.state(h), Some(State::SynSent));
    let c = client.stack.connection(h).unwrap();
    for frame in icmp(&sim, c.tuple(), c.iss()) {
        assert!(sim.link_mut(0).push_rx(&frame));
    }
    let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
    sim.run_until(&mut hs, Instant::from_secs(300));
    assert!(
        client.conns[0].events.contains(&Event::TimedOut),
        "{:?}",
        client.conns[0].events
    );
    assert_eq!(client.stack.state(h), None);
    client
}

/// Destination Unreachable `u` from the router quoting the client's SYN at `seq`.
fn unreachable_quoting_syn(
    sim: &Simulation,
    t: FourTuple,
    seq: SeqNumber,
    u: Unreachable,
) -> Vec<u8> {
    let syn = TcpRepr {
        src_port: t.local_port,
        dst_port: t.remote_port,
        control: xtcp::wire::TcpControl::Syn,
        seq_number: seq,
        max_seg_size: Some(1460),
        ..TcpRepr::default()
    };
    let mut frame = [0u8; 128];
    let n = emit_tcp_frame(
        &mut frame,
        sim.mac(0),
        sim.mac(1),
        t.local_addr,
        t.remote_addr,
        &syn,
    )
    .unwrap();
    error_for(&frame[..n], ROUTER, Icmpv4Message::DstUnreachable(u)).unwrap()
}

#[test]
fn destination_unreachable_in_syn_sent_is_reported_at_the_timeout() {
    let client = connect_timing_out(|sim, t, iss| {
        vec![
            // Out of window (not the SYN's sequence number): counted and ignored.
            unreachable_quoting_syn(sim, t, iss + 1, Unreachable::Net),
            unreachable_quoting_syn(sim, t, iss, Unreachable::Host),
            // Another code: changes nothing (the host error stays).
            unreachable_quoting_syn(sim, t, iss, Unreachable::Other(13)),
        ]
    });
    let h = client.conns[0].handle;
    let c = client.stack.counters();
    assert_eq!(
        icmp_counters(&c),
        [3, 0, 0, 1, 1, 1, 0],
        "received, frag, pmtu, out of window, ignored, soft, other"
    );
    assert_eq!(client.stack.soft_error(h), Some(SoftError::HostUnreachable));
    assert_eq!(c.timeouts, 1);
}

#[test]
fn a_connect_timeout_without_icmp_has_no_soft_error() {
    let client = connect_timing_out(|_, _, _| Vec::new());
    assert_eq!(client.stack.soft_error(client.conns[0].handle), None);
    assert_eq!(client.stack.counters().icmp_received, 0);
}

#[test]
fn frag_needed_in_syn_sent_caps_the_mss_the_syn_ack_sets() {
    let mut sim = Simulation::with_seed(4, 2);
    sim.set_all_links(LinkConfig::with_latency(Duration::from_millis(5)));
    let (mut client, mut server) = hosts(&sim);
    {
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
        sim.run_until(&mut hs, Instant::from_millis(1));
    }
    let h = client.conns[0].handle;
    let c = client.stack.connection(h).unwrap();
    assert_eq!(c.state(), State::SynSent);
    // The SYN (64 bytes) is all that is in flight: only a smaller next hop can refuse it,
    // and that is below the floor (552), where the MSS stops at 512.
    let frag = Unreachable::FragNeeded { next_hop_mtu: 60 };
    let icmp = unreachable_quoting_syn(&sim, c.tuple(), c.iss(), frag);
    assert!(sim.link_mut(0).push_rx(&icmp));
    run_until_done(&mut sim, &mut client, &mut server, |c, _| {
        c.stack.state(h) != Some(State::SynSent)
    });
    let c = client.stack.connection(h).unwrap();
    // The server offered 1460; the path allows 512.
    assert_eq!((c.mss(), c.path_mss()), (512, 512));
    assert_eq!(client.stack.counters().pmtu_decreases, 1);
    run_until_done(&mut sim, &mut client, &mut server, |c, s| {
        c.done() && s.done()
    });
    assert_byte_exact(&client);
}
