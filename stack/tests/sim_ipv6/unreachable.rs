//! ICMPv6 Destination Unreachable through the IPv6 `Stack` (part of `sim_ipv6`): a soft error
//! during SYN-SENT, reported when the connect times out (RFC 1122 §4.2.3.9), with RFC 5927's
//! window check; ignored on an established connection; not ours when sent to a group.

use super::*;
use xtcp::tcp::SoftError;
use xtcp::wire::TcpRepr;
use xtcp::wire::icmpv6::unreachable_code;
use xtcp_testkit::icmp::dst_unreachable6_frame;

/// A Destination Unreachable with `code` from a router to node 0, quoting node 0's SYN of
/// `t` (node 0 local) at `seq`.
fn unreachable_quoting_syn6(
    sim: &Simulation,
    t: FourTuple<V6>,
    seq: SeqNumber,
    code: u8,
) -> Vec<u8> {
    let syn = TcpRepr {
        src_port: t.local_port,
        dst_port: t.remote_port,
        control: TcpControl::Syn,
        seq_number: seq,
        max_seg_size: Some(1440),
        ..TcpRepr::default()
    };
    let mut frame = [0u8; 128];
    let n = V6::emit_frame(
        &mut frame,
        None,
        sim.mac(0),
        sim.mac(1),
        t.local_addr,
        t.remote_addr,
        &syn,
    )
    .unwrap();
    let router = (EthernetAddress([2, 0, 0, 0, 0, 0xfe]), V6::node(0xfd));
    dst_unreachable6_frame(router, (sim.mac(0), t.local_addr), code, &frame[14..n])
}

#[test]
fn destination_unreachable_in_syn_sent_is_reported_at_the_timeout() {
    let mut sim = Simulation::with_seed(65, 2);
    // Every SYN is lost: the connect times out.
    sim.set_all_links(LinkConfig {
        loss: 1.0,
        ..LinkConfig::with_latency(Duration::from_millis(5))
    });
    let addr = V6::socket_addr(V6::node(1), PORT);
    let mut client = Bulk::new(stack_for_family::<V6>(&sim, 0, tcp()), 0, 11, 99);
    client.connect_to = Some(addr);
    let mut server = Bulk::new(stack_for_family::<V6>(&sim, 1, tcp()), 0, 99, 11);
    server.listener = Some(server.stack.listen(addr).unwrap());
    {
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
        sim.run_until(&mut hs, Instant::from_millis(10));
    }
    let h = client.conns[0].handle;
    assert_eq!(client.stack.state(h), Some(State::SynSent));
    let c = client.stack.connection(h).unwrap();
    let (t, iss) = (c.tuple(), c.iss());
    for frame in [
        // Out of window (not the SYN's sequence number): counted and ignored (RFC 5927).
        unreachable_quoting_syn6(&sim, t, iss + 1, unreachable_code::NO_ROUTE),
        unreachable_quoting_syn6(&sim, t, iss, unreachable_code::ADDRESS),
        // Administratively prohibited: changes nothing (the address error stays).
        unreachable_quoting_syn6(&sim, t, iss, unreachable_code::ADMIN_PROHIBITED),
    ] {
        assert!(sim.link_mut(0).push_rx(&frame));
    }
    {
        let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
        sim.run_until(&mut hs, Instant::from_millis(20));
    }
    // Still connecting: a soft error is no reason to give up (RFC 1122 §4.2.3.9).
    assert_eq!(client.stack.state(h), Some(State::SynSent));
    assert_eq!(client.stack.soft_error(h), Some(SoftError::HostUnreachable));
    let mut hs: [&mut dyn Host; 2] = [&mut client, &mut server];
    sim.run_until(&mut hs, Instant::from_secs(300));
    assert!(
        client.conns[0].events.contains(&Event::TimedOut),
        "{:?}",
        client.conns[0].events
    );
    assert_eq!(client.stack.state(h), None);
    let c = client.stack.counters();
    assert_eq!(
        (
            c.icmp_received,
            c.icmp_out_of_window,
            c.icmp_soft_errors,
            c.icmp_ignored
        ),
        (3, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(c.icmp_malformed + c.icmp_not_ours + c.pmtu_decreases, 0);
    assert_eq!(c.timeouts, 1);
    // Reported after the timeout.
    assert_eq!(client.stack.soft_error(h), Some(SoftError::HostUnreachable));
}

#[test]
fn destination_unreachable_on_an_established_v6_connection_changes_nothing() {
    let mut p = Pair::new_v6(plain_cfg(), plain_cfg());
    p.handshake();
    p.b_send(&[7u8; 3000]);
    let sent = p.out_b();
    let router = (EthernetAddress([2, 0, 0, 0, 0, 0xfe]), V6::node(0xfd));
    let to_b = (B_MAC, V6::node(1));
    let frame = dst_unreachable6_frame(
        router,
        to_b,
        unreachable_code::PORT,
        &b_frame(&sent[0])[14..],
    );
    assert!(p.link.push_rx(&frame));
    p.stack.receive(p.now, &mut p.link);
    let c = p.stack.counters();
    assert_eq!(
        (c.icmp_received, c.icmp_ignored, c.icmp_soft_errors),
        (1, 1, 0)
    );
    assert_eq!(p.b_state(), State::Established);
    assert_eq!(p.stack.soft_error(p.hb()), None);
    // The data still arrives.
    p.deliver_a_all(&sent);
    assert_eq!(p.b().mss(), 1440);
    // To a multicast group: not ours.
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let to_all = dst_unreachable6_frame(
        router,
        (B_MAC, all_nodes),
        unreachable_code::PORT,
        &b_frame(&sent[0])[14..],
    );
    let before = p.stack.counters().rx_not_ours;
    assert!(p.link.push_rx(&to_all));
    p.stack.receive(p.now, &mut p.link);
    assert_eq!(p.stack.counters().icmp_received, 1);
    assert!(p.stack.counters().rx_not_ours > before);
}
