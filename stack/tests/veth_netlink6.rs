//! IPv6 routes and neighbours of the engine's namespace over rtnetlink, on a private IPv6
//! veth pair (`veth.sh up --ipv6`; root only, skipped with a message otherwise):
//! - the pair's /64 is an on-link route of the interface, and a destination in it is its
//!   own next hop; a route `via` the peer is followed;
//! - the kernel's neighbour table has no entry for the peer before anything is sent, and
//!   after [`kick_kernel_resolution`] (Neighbor Discovery, done by the kernel: the XDP
//!   program passes ND to it) the entry carries the peer's MAC;
//! - `resolve_next_hop` (the load generator's set-up) gives the same answer.
#![cfg(feature = "afxdp")]

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use xtcp::engine::netlink::{self, Netlink};
use xtcp::engine::sys::{kick_kernel_resolution, resolve_next_hop};
use xtcp::wire::EthernetAddress;
use xtcp_testkit::require_privileges;
use xtcp_testkit::veth::{Veth, in_netns, serial};

#[test]
fn ipv6_routes_and_neighbors() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("n6", 1);
    let (ip6_a, ip6_b) = (veth.ip6_a.unwrap(), veth.ip6_b.unwrap());
    // A prefix behind the peer (documentation range, RFC 3849).
    let far: Ipv6Addr = "2001:db8:77::5".parse().unwrap();
    let out = veth.exec(
        &veth.ns_a,
        "ip",
        &[
            "-6",
            "route",
            "add",
            "2001:db8:77::/64",
            "via",
            &ip6_b.to_string(),
        ],
    );
    assert!(out.status.success(), "ip route add: {out:?}");
    let if_a = veth.if_a.clone();
    let (routes, before, after, resolved) = in_netns(&veth.ns_a, move || {
        let index = netlink::ifindex(&if_a).unwrap();
        let mut nl = Netlink::open().unwrap();
        let routes = nl.routes(index).unwrap();
        let before = nl.neighbor(index, ip6_b.into()).unwrap();
        kick_kernel_resolution(ip6_b).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let after = loop {
            let n = nl.neighbor(index, ip6_b.into()).unwrap();
            if n.is_some() || Instant::now() > deadline {
                break n;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let resolved = resolve_next_hop(&if_a, far, Duration::from_secs(3));
        (routes, before, after, resolved)
    });
    let mac_b = EthernetAddress(veth.mac_b);
    let on_link = netlink::next_hop(&routes, IpAddr::V6(ip6_a));
    assert_eq!(on_link, Some(IpAddr::V6(ip6_a)), "on-link /64: {routes:?}");
    assert!(
        routes
            .iter()
            .any(|r| r.prefix_len == 64 && netlink::prefix_matches(r.dst, 64, ip6_b.into())),
        "{routes:?}"
    );
    assert_eq!(
        netlink::next_hop(&routes, IpAddr::V6(far)),
        Some(IpAddr::V6(ip6_b)),
        "via the peer"
    );
    assert_eq!(before, None, "no entry before any traffic");
    assert_eq!(after, Some(mac_b), "the kernel resolved the peer by ND");
    assert_eq!(resolved, Ok((IpAddr::V6(ip6_b), mac_b)));
}
