//! Neighbor Discovery: the RFC 4861 §7.3 state machine step by step, and the answer to a
//! captured Linux solicitation compared byte for byte with Linux's own advertisement.

use super::*;
use crate::wire::frame::{emit_icmpv6_frame, parse_icmpv6_frame};
use crate::wire::icmpv6::tests::{NA, NS, hex};

const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const US: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const OTHER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);
const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn advert(solicited: bool, override_: bool, mac: EthernetAddress) -> Icmpv6Repr<'static> {
    Icmpv6Repr::NeighborAdvert {
        router: false,
        solicited,
        override_,
        target: PEER,
        target_lladdr: Some(mac),
    }
}

fn multicast_ns() -> NdOutput {
    NdOutput::Solicit {
        target: PEER,
        dst_ip: "ff02::1:ff00:1".parse().unwrap(),
        dst_mac: EthernetAddress([0x33, 0x33, 0xff, 0, 0, 1]),
    }
}

#[test]
fn resolution_retries_then_gives_up() {
    let mut c = NeighborCache6::default();
    let mut out = Vec::new();
    assert_eq!(c.lookup(at(0), PEER, &mut out), Lookup::Pending);
    assert_eq!(out, [multicast_ns()]);
    // A second lookup while INCOMPLETE sends nothing more.
    assert_eq!(c.lookup(at(10), PEER, &mut out), Lookup::Pending);
    assert_eq!(out.len(), 1);
    assert_eq!(c.next_timer(), Some(at(1000)));
    c.poll(at(999), &mut out);
    assert_eq!(out.len(), 1);
    c.poll(at(1000), &mut out);
    c.poll(at(2000), &mut out);
    assert_eq!(out, [multicast_ns(); 3]);
    c.poll(at(3000), &mut out);
    assert_eq!(out[3], NdOutput::Unreachable { target: PEER });
    assert!(c.is_empty());
}

#[test]
fn solicited_advert_resolves_then_ages() {
    let mut c = NeighborCache6::default();
    let mut out = Vec::new();
    c.lookup(at(0), PEER, &mut out);
    // An advertisement without a link-layer option does not resolve.
    let mut bare = advert(true, true, PEER_MAC);
    if let Icmpv6Repr::NeighborAdvert { target_lladdr, .. } = &mut bare {
        *target_lladdr = None;
    }
    c.on_advert(at(5), &bare);
    assert!(!c.take_resolved());
    c.on_advert(at(10), &advert(true, true, PEER_MAC));
    assert!(c.take_resolved());
    assert!(!c.take_resolved());
    assert_eq!(
        c.state(PEER),
        Some(NdState::Reachable { until: at(30_010) })
    );
    assert_eq!(c.lookup(at(20), PEER, &mut out), Lookup::Mac(PEER_MAC));
    // REACHABLE → STALE after ReachableTime; use → DELAY; no confirmation → PROBE with a
    // unicast solicitation; no answer → gone.
    c.poll(at(30_010), &mut out);
    assert_eq!(c.state(PEER), Some(NdState::Stale));
    assert_eq!(c.lookup(at(40_000), PEER, &mut out), Lookup::Mac(PEER_MAC));
    assert_eq!(c.state(PEER), Some(NdState::Delay { until: at(45_000) }));
    out.clear();
    c.poll(at(45_000), &mut out);
    let probe = NdOutput::Solicit {
        target: PEER,
        dst_ip: PEER,
        dst_mac: PEER_MAC,
    };
    assert_eq!(out, [probe]);
    assert!(matches!(
        c.state(PEER),
        Some(NdState::Probe { sent: 1, .. })
    ));
    // Still usable while probing.
    assert_eq!(c.lookup(at(45_500), PEER, &mut out), Lookup::Mac(PEER_MAC));
    c.poll(at(46_000), &mut out);
    c.poll(at(47_000), &mut out);
    assert_eq!(out, [probe; 3]);
    c.poll(at(48_000), &mut out);
    assert_eq!(out[3], NdOutput::Unreachable { target: PEER });
    assert_eq!(c.state(PEER), None);
}

#[test]
fn confirmation_and_probe_answer_restore_reachable() {
    let mut c = NeighborCache6::default();
    let mut out = Vec::new();
    c.lookup(at(0), PEER, &mut out);
    c.on_advert(at(0), &advert(false, true, PEER_MAC));
    // An unsolicited answer leaves the entry STALE.
    assert_eq!(c.state(PEER), Some(NdState::Stale));
    c.lookup(at(1), PEER, &mut out);
    c.confirm(at(2), PEER);
    assert_eq!(
        c.state(PEER),
        Some(NdState::Reachable { until: at(30_002) })
    );
    c.poll(at(30_002), &mut out);
    c.lookup(at(30_003), PEER, &mut out);
    c.poll(at(35_003), &mut out);
    assert!(matches!(c.state(PEER), Some(NdState::Probe { .. })));
    c.on_advert(at(35_100), &advert(true, false, PEER_MAC));
    assert_eq!(
        c.state(PEER),
        Some(NdState::Reachable { until: at(65_100) })
    );
}

#[test]
fn override_rules() {
    let mut c = NeighborCache6::default();
    let mut out = Vec::new();
    c.lookup(at(0), PEER, &mut out);
    c.on_advert(at(0), &advert(true, true, PEER_MAC));
    // Different MAC without Override: MAC kept, entry doubted.
    c.on_advert(at(1), &advert(true, false, OTHER_MAC));
    assert_eq!(c.state(PEER), Some(NdState::Stale));
    assert_eq!(c.lookup(at(2), PEER, &mut out), Lookup::Mac(PEER_MAC));
    // With Override, unsolicited: new MAC, STALE.
    c.on_advert(at(3), &advert(false, true, OTHER_MAC));
    assert_eq!(c.state(PEER), Some(NdState::Stale));
    assert_eq!(c.lookup(at(4), PEER, &mut out), Lookup::Mac(OTHER_MAC));
    // An advertisement for an address we never asked about creates nothing.
    let mut stray = advert(true, true, PEER_MAC);
    if let Icmpv6Repr::NeighborAdvert { target, .. } = &mut stray {
        *target = US;
    }
    c.on_advert(at(5), &stray);
    assert_eq!(c.state(US), None);
}

#[test]
fn solicitations_teach_the_sender() {
    let mut c = NeighborCache6::default();
    let mut out = Vec::new();
    c.on_solicit(Ipv6Addr::UNSPECIFIED, Some(PEER_MAC));
    c.on_solicit(PEER, None);
    assert!(c.is_empty());
    c.on_solicit(PEER, Some(PEER_MAC));
    assert_eq!(c.state(PEER), Some(NdState::Stale));
    assert!(c.take_resolved());
    assert_eq!(c.lookup(at(0), PEER, &mut out), Lookup::Mac(PEER_MAC));
    assert!(out.is_empty());
    // The same MAC again changes nothing (DELAY stays).
    c.on_solicit(PEER, Some(PEER_MAC));
    assert!(matches!(c.state(PEER), Some(NdState::Delay { .. })));
    c.on_solicit(PEER, Some(OTHER_MAC));
    assert_eq!(c.state(PEER), Some(NdState::Stale));
}

#[test]
fn solicitations_learn_at_most_max_learned_new_neighbours() {
    let mut c = NeighborCache6::new(NdConfig {
        max_learned: 2,
        ..NdConfig::default()
    });
    let peer = |i: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i);
    assert!(c.on_solicit(peer(1), Some(PEER_MAC)));
    assert!(c.on_solicit(peer(2), Some(PEER_MAC)));
    assert!(!c.on_solicit(peer(3), Some(PEER_MAC)), "full");
    assert_eq!((c.len(), c.state(peer(3))), (2, None));
    // A known neighbour is still updated, and our own lookups still resolve.
    assert!(c.on_solicit(peer(1), Some(OTHER_MAC)));
    assert_eq!(c.mac(peer(1)), Some(OTHER_MAC));
    let mut out = Vec::new();
    assert_eq!(c.lookup(at(0), PEER, &mut out), Lookup::Pending);
    assert_eq!((c.len(), out.len()), (3, 1));
}

/// Linux's solicitation for 2001:db8::2, answered by us as 2001:db8::2 at 02:00:00:00:00:02,
/// gives exactly the advertisement Linux itself sent in the same capture.
#[test]
fn answer_to_captured_solicitation_matches_linux() {
    let ns = hex(NS);
    let (eth, ip, icmp) = parse_icmpv6_frame(&ns).unwrap();
    let (dst_ip, dst_mac, na) = answer_solicit(&[US], OUR_MAC, ip.src_addr, eth.src_addr, &icmp)
        .expect("the target is ours");
    let mut buf = [0u8; 128];
    let n = emit_icmpv6_frame(&mut buf, OUR_MAC, dst_mac, US, dst_ip, &na).unwrap();
    assert_eq!(&buf[..n], &hex(NA)[..]);
    // Not ours: no answer.
    assert!(answer_solicit(&[PEER], OUR_MAC, ip.src_addr, eth.src_addr, &icmp).is_none());
    // Duplicate address detection from `::`: unsolicited, to all nodes.
    let dad = Icmpv6Repr::NeighborSolicit {
        target: US,
        source_lladdr: None,
    };
    let (dst_ip, dst_mac, na) =
        answer_solicit(&[US], OUR_MAC, Ipv6Addr::UNSPECIFIED, PEER_MAC, &dad).unwrap();
    assert_eq!(dst_ip, ALL_NODES);
    assert_eq!(dst_mac, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    assert!(matches!(
        na,
        Icmpv6Repr::NeighborAdvert {
            solicited: false,
            override_: true,
            ..
        }
    ));
}
