//! The kernel's routes and neighbours over rtnetlink (`netlink-packet-route` messages on a
//! synchronous `netlink-sys` socket), for IPv4 and IPv6.
//!
//! A netlink socket belongs to the network namespace of the thread that opened it, so each
//! engine core opens its own ([`Netlink::open`] on the core's thread, after the engine
//! entered its namespace) and sees the engine's namespace, not the process's.
//!
//! - Routes: one `RTM_GETROUTE` dump per family, kept when they are unicast routes of the
//!   main table leaving through the engine's interface; [`next_hop`] picks the longest
//!   prefix (then the lowest metric) and returns its gateway, or the destination itself for
//!   an on-link route. Multipath routes (`RTA_MULTIPATH`) are not followed.
//! - Neighbours: one `RTM_GETNEIGH` request for exactly one address on the interface (the
//!   kernel's `neigh_get`, Linux ≥ 5.0), not a dump of the table. An entry counts when its
//!   state is one the kernel transmits with (`NUD_VALID`: reachable, stale, delay, probe,
//!   permanent, noarp) and it carries a unicast MAC.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::wire::EthernetAddress;

/// One unicast route of the interface, from the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination prefix (its host bits zero or not: only `prefix_len` bits count).
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// `None` for an on-link route.
    pub gateway: Option<IpAddr>,
    /// `RTA_PRIORITY` (0 when absent).
    pub metric: u32,
}

/// Whether the first `len` bits of `ip` and `net` agree (false across families).
pub fn prefix_matches(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    fn masked(a: u128, b: u128, len: u8, bits: u8) -> bool {
        if len == 0 {
            return true;
        }
        let len = len.min(bits);
        let shift = u32::from(bits - len);
        (a >> shift) == (b >> shift)
    }
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => masked(u32::from(n).into(), u32::from(i).into(), len, 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => masked(u128::from(n), u128::from(i), len, 128),
        _ => false,
    }
}

/// The next hop towards `dst`: the gateway of the longest matching route (ties: lowest
/// metric, then the first), `dst` itself when that route is on-link, `None` when no route
/// matches.
pub fn next_hop(routes: &[Route], dst: IpAddr) -> Option<IpAddr> {
    let mut best: Option<&Route> = None;
    for r in routes {
        if !prefix_matches(r.dst, r.prefix_len, dst) {
            continue;
        }
        let better = best.is_none_or(|b| {
            r.prefix_len > b.prefix_len || (r.prefix_len == b.prefix_len && r.metric < b.metric)
        });
        if better {
            best = Some(r);
        }
    }
    best.map(|r| r.gateway.unwrap_or(dst))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The route `msg` describes, when it is a unicast route of the main table through
/// interface `ifindex` (a default route has no `RTA_DST`: the family's unspecified address
/// with prefix length 0).
pub fn decode_route(msg: &RouteMessage, ifindex: u32) -> Option<Route> {
    let h = &msg.header;
    if h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(h.table);
    let (mut dst, mut gateway, mut oif, mut metric) = (None, None, None, 0);
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = Some(route_ip(d)?),
            RouteAttribute::Gateway(g) => gateway = Some(route_ip(g)?),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || oif != Some(ifindex) {
        return None;
    }
    let dst = match (dst, h.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let max = if dst.is_ipv4() { 32 } else { 128 };
    if h.destination_prefix_length > max || gateway.is_some_and(|g| g.is_ipv4() != dst.is_ipv4()) {
        return None;
    }
    Some(Route {
        dst,
        prefix_len: h.destination_prefix_length,
        gateway,
        metric,
    })
}

/// A neighbour entry of the kernel's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: IpAddr,
    pub ifindex: u32,
    /// The MAC, when the entry is one the kernel would transmit with (see the module docs).
    pub mac: Option<EthernetAddress>,
}

/// The neighbour `msg` describes (`None` for other families or without a destination).
pub fn decode_neighbor(msg: &NeighbourMessage) -> Option<Neighbor> {
    let usable = matches!(
        msg.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    let (mut ip, mut mac) = (None, None);
    for a in &msg.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(l) => {
                mac = <[u8; 6]>::try_from(l.as_slice()).ok().map(EthernetAddress);
            }
            _ => {}
        }
    }
    Some(Neighbor {
        ip: ip?,
        ifindex: msg.header.ifindex,
        mac: mac.filter(|m| usable && m.is_unicast()),
    })
}

/// The index of interface `iface` in the calling thread's network namespace.
pub fn ifindex(iface: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has NUL"))?;
    // Safety: `name` is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i)
}

/// `f` again while a signal interrupts it (the engine's threads receive SIGINT/SIGTERM).
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A synchronous rtnetlink socket (see the module docs).
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The unicast main-table routes of interface `ifindex`, both families.
    pub fn routes(&mut self, ifindex: u32) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            self.request(RouteNetlinkMessage::GetRoute(req), true, |m| {
                if let RouteNetlinkMessage::NewRoute(r) = m {
                    out.extend(decode_route(&r, ifindex));
                }
            })?;
        }
        Ok(out)
    }

    /// The kernel's usable MAC for `ip` on interface `ifindex`; `Ok(None)` when it has no
    /// entry or the entry is not usable (incomplete, failed).
    pub fn neighbor(&mut self, ifindex: u32, ip: IpAddr) -> io::Result<Option<EthernetAddress>> {
        let mut req = NeighbourMessage::default();
        req.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        req.header.ifindex = ifindex;
        req.attributes
            .push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        let mut found = None;
        let r = self.request(RouteNetlinkMessage::GetNeighbour(req), false, |m| {
            if let RouteNetlinkMessage::NewNeighbour(n) = m {
                found = decode_neighbor(&n).filter(|n| n.ip == ip && n.ifindex == ifindex);
            }
        });
        match r {
            Ok(()) => Ok(found.and_then(|n| n.mac)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and hands every answer to `each` until the dump ends (`dump`) or
    /// the one answer came. A netlink error answer becomes the `Err`.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.buffer_len()];
        req.serialize(&mut out);
        retry_eintr(|| self.sock.send(&out, 0))?;
        loop {
            let n = retry_eintr(|| self.sock.recv(&mut &mut self.buf[..], 0))?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "netlink: empty"));
                }
                off += len.next_multiple_of(4);
                if m.header.sequence_number != self.seq {
                    continue; // an answer to an earlier request we stopped reading
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) => return Ok(()),
                    NetlinkPayload::InnerMessage(inner) => {
                        each(inner);
                        if !dump {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn longest_prefix_then_metric() {
        let r = |dst, prefix_len, gateway, metric| Route {
            dst,
            prefix_len,
            gateway,
            metric,
        };
        let routes = [
            r(v4(0, 0, 0, 0), 0, Some(v4(10, 77, 0, 1)), 100),
            r(v4(10, 77, 0, 0), 24, None, 0),
            r(v4(10, 78, 0, 0), 16, Some(v4(10, 77, 0, 9)), 50),
            r(v4(10, 78, 0, 0), 16, Some(v4(10, 77, 0, 8)), 20),
            r(v4(10, 78, 5, 0), 24, Some(v4(10, 77, 0, 7)), 90),
            r("fd00:77::".parse().unwrap(), 64, None, 256),
            r(
                "::".parse().unwrap(),
                0,
                Some("fe80::1".parse().unwrap()),
                1024,
            ),
        ];
        assert_eq!(next_hop(&routes, v4(10, 77, 0, 2)), Some(v4(10, 77, 0, 2)));
        assert_eq!(next_hop(&routes, v4(8, 8, 8, 8)), Some(v4(10, 77, 0, 1)));
        assert_eq!(next_hop(&routes, v4(10, 78, 1, 1)), Some(v4(10, 77, 0, 8)));
        assert_eq!(next_hop(&routes, v4(10, 78, 5, 1)), Some(v4(10, 77, 0, 7)));
        let on_link: IpAddr = "fd00:77::2".parse().unwrap();
        assert_eq!(next_hop(&routes, on_link), Some(on_link));
        assert_eq!(
            next_hop(&routes, "2001:db8::1".parse().unwrap()),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(next_hop(&routes[1..2], v4(8, 8, 8, 8)), None);
        assert_eq!(
            next_hop(&routes[5..6], v4(10, 77, 0, 2)),
            None,
            "no family mix"
        );
    }

    #[test]
    fn prefixes() {
        assert!(prefix_matches(v4(10, 0, 0, 0), 8, v4(10, 200, 1, 1)));
        assert!(!prefix_matches(v4(10, 0, 0, 0), 8, v4(11, 0, 0, 0)));
        assert!(prefix_matches(v4(10, 1, 2, 3), 32, v4(10, 1, 2, 3)));
        assert!(!prefix_matches(v4(10, 1, 2, 3), 32, v4(10, 1, 2, 4)));
        assert!(prefix_matches(v4(1, 2, 3, 4), 0, v4(9, 9, 9, 9)));
        let net = IpAddr::V6("fd00:77::".parse::<Ipv6Addr>().unwrap());
        assert!(prefix_matches(net, 64, "fd00:77::1234".parse().unwrap()));
        assert!(!prefix_matches(net, 64, "fd00:78::1".parse().unwrap()));
        assert!(
            prefix_matches(net, 200, net),
            "an oversized length is clamped"
        );
    }

    fn route_msg(family: AddressFamily, len: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.destination_prefix_length = len;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.kind = RouteType::Unicast;
        m.attributes = attrs;
        m
    }

    #[test]
    fn route_decoding() {
        let gw = RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 77, 0, 1)));
        let default = route_msg(
            AddressFamily::Inet,
            0,
            vec![
                gw.clone(),
                RouteAttribute::Oif(3),
                RouteAttribute::Priority(7),
            ],
        );
        assert_eq!(
            decode_route(&default, 3),
            Some(Route {
                dst: v4(0, 0, 0, 0),
                prefix_len: 0,
                gateway: Some(v4(10, 77, 0, 1)),
                metric: 7
            })
        );
        assert_eq!(decode_route(&default, 4), None, "another interface");
        let mut local = default.clone();
        local.header.kind = RouteType::Local;
        assert_eq!(decode_route(&local, 3), None, "not unicast");
        let mut other_table = default.clone();
        other_table.attributes.push(RouteAttribute::Table(100));
        assert_eq!(decode_route(&other_table, 3), None, "not the main table");
        let six = route_msg(
            AddressFamily::Inet6,
            64,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet6("fd00:77::".parse().unwrap())),
                RouteAttribute::Oif(3),
            ],
        );
        let r = decode_route(&six, 3).unwrap();
        assert_eq!((r.prefix_len, r.gateway), (64, None));
        let bad = route_msg(AddressFamily::Inet, 33, vec![RouteAttribute::Oif(3)]);
        assert_eq!(
            decode_route(&bad, 3),
            None,
            "prefix longer than the address"
        );
        let mixed = route_msg(AddressFamily::Inet6, 0, vec![gw, RouteAttribute::Oif(3)]);
        assert_eq!(
            decode_route(&mixed, 3),
            None,
            "IPv4 gateway on an IPv6 route"
        );
    }

    #[test]
    fn neighbor_decoding() {
        let mac = [2, 0x78, 0x74, 0, 0, 2];
        let msg = |state, lladdr: &[u8]| {
            let mut m = NeighbourMessage::default();
            m.header.ifindex = 5;
            m.header.state = state;
            m.attributes = vec![
                NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(
                    10, 77, 0, 2,
                ))),
                NeighbourAttribute::LinkLayerAddress(lladdr.to_vec()),
            ];
            m
        };
        let n = decode_neighbor(&msg(NeighbourState::Reachable, &mac)).unwrap();
        assert_eq!((n.ip, n.ifindex), (v4(10, 77, 0, 2), 5));
        assert_eq!(n.mac, Some(EthernetAddress(mac)));
        for usable in [
            NeighbourState::Stale,
            NeighbourState::Permanent,
            NeighbourState::Delay,
        ] {
            assert!(decode_neighbor(&msg(usable, &mac)).unwrap().mac.is_some());
        }
        for unusable in [NeighbourState::Incomplete, NeighbourState::Failed] {
            assert_eq!(decode_neighbor(&msg(unusable, &mac)).unwrap().mac, None);
        }
        let bcast = [0xff; 6];
        assert_eq!(
            decode_neighbor(&msg(NeighbourState::Reachable, &bcast))
                .unwrap()
                .mac,
            None
        );
        assert_eq!(
            decode_neighbor(&msg(NeighbourState::Reachable, &[1, 2]))
                .unwrap()
                .mac,
            None
        );
        assert_eq!(
            decode_neighbor(&NeighbourMessage::default()),
            None,
            "no destination"
        );
    }

    #[test]
    fn ipv6_neighbor_and_route_decoding() {
        let ip: Ipv6Addr = "fd00:77::2".parse().unwrap();
        let mac = [2, 0x78, 0x74, 0, 0, 2];
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.ifindex = 7;
        m.header.state = NeighbourState::Stale;
        m.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        let n = decode_neighbor(&m).unwrap();
        assert_eq!((n.ip, n.ifindex), (IpAddr::V6(ip), 7));
        assert_eq!(n.mac, Some(EthernetAddress(mac)));
        // A multicast MAC (33:33:..., what an IPv6 multicast maps to) is not a neighbour.
        m.attributes[1] = NeighbourAttribute::LinkLayerAddress(vec![0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(decode_neighbor(&m).unwrap().mac, None);

        // The IPv6 default route (no RTA_DST) via a link-local gateway.
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let default = route_msg(
            AddressFamily::Inet6,
            0,
            vec![
                RouteAttribute::Gateway(RouteAddress::Inet6(gw)),
                RouteAttribute::Oif(7),
                RouteAttribute::Priority(1024),
            ],
        );
        let r = decode_route(&default, 7).unwrap();
        assert_eq!(r.dst, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(
            (r.prefix_len, r.gateway, r.metric),
            (0, Some(IpAddr::V6(gw)), 1024)
        );
        let bad = route_msg(AddressFamily::Inet6, 129, vec![RouteAttribute::Oif(7)]);
        assert_eq!(decode_route(&bad, 7), None, "prefix longer than 128");
        // A v6 destination prefers the /64 over the default; a v4 one matches neither.
        let on_link = decode_route(
            &route_msg(
                AddressFamily::Inet6,
                64,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet6("fd00:77::".parse().unwrap())),
                    RouteAttribute::Oif(7),
                    RouteAttribute::Priority(256),
                ],
            ),
            7,
        )
        .unwrap();
        let routes = [r, on_link];
        assert_eq!(next_hop(&routes, IpAddr::V6(ip)), Some(IpAddr::V6(ip)));
        assert_eq!(
            next_hop(&routes, "2001:db8::9".parse().unwrap()),
            Some(IpAddr::V6(gw))
        );
        assert_eq!(next_hop(&routes, v4(10, 77, 0, 2)), None);
    }

    #[test]
    fn loopback_over_netlink() {
        // Unprivileged: every namespace has `lo`, whose routes live in the local table.
        let mut nl = Netlink::open().unwrap();
        let lo = ifindex("lo").unwrap();
        assert!(nl.routes(lo).unwrap().iter().all(|r| r.gateway.is_none()));
        assert_eq!(nl.neighbor(lo, v4(127, 0, 0, 1)).unwrap(), None);
        assert!(ifindex("xtcp-no-such-if0").is_err());
    }
}
