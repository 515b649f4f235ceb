//! [`Veth::routed_peer_ipv6`]: the routed third namespace of [`Veth::routed_peer`] over IPv6
//! too, for a pair made by [`Veth::up_ipv6`] (kept apart from `veth.rs`, which is long).

use std::net::Ipv6Addr;
use std::process::Command;

use crate::veth::{Routed, Veth};

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Veth {
    /// [`Veth::routed_peer`], and IPv6 on the B–C link as well: B's end at
    /// `fd00:79:X::1/64`, C at `fd00:79:X::2/64` (X as in `veth.sh`'s IPv6 addresses), IPv6
    /// forwarding on in B with ICMPv6 rate limiting off (so B sends every Packet Too Big,
    /// RFC 4443 §2.4 (f) allows the limit), A routing `fd00:79:X::/64` via B's IPv6 address
    /// (a permanent neighbour entry for it, as for IPv4), C routing A's `/64` via B with
    /// `advmss`. Returns the routed namespace and C's IPv6 address. Panics for a pair
    /// without IPv6.
    pub fn routed_peer_ipv6(&self, mtu: u32, advmss: Option<u32>) -> (Routed, Ipv6Addr) {
        let (ip6_a, ip6_b) = (
            self.ip6_a.expect("an IPv6 pair (Veth::up_ipv6)"),
            self.ip6_b.expect("an IPv6 pair (Veth::up_ipv6)"),
        );
        let routed = self.routed_peer(mtu, advmss);
        let x = ip6_a.segments()[2];
        let ip6_bc = Ipv6Addr::new(0xfd00, 0x79, x, 0, 0, 0, 0, 1);
        let ip6_c = Ipv6Addr::new(0xfd00, 0x79, x, 0, 0, 0, 0, 2);
        for (ns, ifname, ip) in [
            (&routed.ns_b, &routed.if_bc, ip6_bc),
            (&routed.ns_c, &routed.if_c, ip6_c),
        ] {
            let sysctl = format!("net.ipv6.conf.{ifname}.disable_ipv6=0");
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &sysctl]);
            let addr = format!("{ip}/64");
            run(&[
                "ip", "-n", ns, "addr", "replace", &addr, "dev", ifname, "nodad",
            ]);
        }
        for knob in [
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.icmp.ratelimit=0",
        ] {
            run(&["ip", "netns", "exec", &self.ns_b, "sysctl", "-qw", knob]);
        }
        let c_net = format!("{}/64", Ipv6Addr::new(0xfd00, 0x79, x, 0, 0, 0, 0, 0));
        let via_b = ip6_b.to_string();
        run(&[
            "ip", "-6", "-n", &self.ns_a, "route", "replace", &c_net, "via", &via_b, "dev",
            &self.if_a,
        ]);
        let mac_b = self.get("XT_MAC_B").to_string();
        run(&[
            "ip",
            "-6",
            "-n",
            &self.ns_a,
            "neigh",
            "replace",
            &via_b,
            "lladdr",
            &mac_b,
            "dev",
            &self.if_a,
            "nud",
            "permanent",
        ]);
        let seg = ip6_a.segments();
        let a_net = format!(
            "{}/64",
            Ipv6Addr::new(seg[0], seg[1], seg[2], seg[3], 0, 0, 0, 0)
        );
        let via_bc = ip6_bc.to_string();
        let advmss = advmss.map(|m| m.to_string());
        let mut route = vec![
            "ip",
            "-6",
            "-n",
            &routed.ns_c,
            "route",
            "replace",
            &a_net,
            "via",
            &via_bc,
            "dev",
            &routed.if_c,
        ];
        if let Some(m) = &advmss {
            route.extend(["advmss", m.as_str()]);
        }
        run(&route);
        (routed, ip6_c)
    }
}
