//! The engine's few kernel interfaces outside AF_XDP: randomness, the interface's MAC and
//! addresses, the kick that makes the kernel resolve a neighbour, and the blocking next-hop
//! resolution for set-up code (the routing and neighbour tables come over rtnetlink, see
//! [`super::netlink`], in the calling thread's network namespace).

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::netlink::{self, Netlink};
use crate::wire::EthernetAddress;

/// Fills `buf` from the operating system's CSPRNG (the `getrandom` crate: `getrandom(2)` on
/// Linux, blocking until the pool is seeded).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))
}

pub(crate) fn dgram_socket() -> io::Result<OwnedFd> {
    // Safety: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: `fd` is a freshly opened descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An all-zero `ifreq` naming `iface` (for the `SIOC*` interface ioctls).
pub(crate) fn ifreq_named(iface: &str) -> io::Result<libc::ifreq> {
    let name = CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has NUL"))?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    // Safety: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// The MAC address of `iface` in the calling thread's network namespace (`SIOCGIFHWADDR`;
/// unlike `/sys/class/net`, this follows a thread that entered a namespace with setns).
pub fn interface_mac(iface: &str) -> io::Result<EthernetAddress> {
    let mut req = ifreq_named(iface)?;
    let sock = dgram_socket()?;
    // Safety: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr within `req`, which lives
    // for the duration of the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: after a successful SIOCGIFHWADDR the union holds ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(EthernetAddress(mac))
}

/// Sends an empty UDP datagram to `ip:9` (discard) from a kernel socket, which makes the
/// kernel resolve the next hop towards `ip` (ARP or Neighbor Discovery) and enter it in its
/// neighbour table.
pub fn kick_kernel_resolution(ip: impl Into<IpAddr>) -> io::Result<()> {
    let ip = ip.into();
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = std::net::UdpSocket::bind((any, 0))?;
    sock.set_nonblocking(true)?;
    match sock.send_to(&[], (ip, 9)) {
        // The datagram waits in the neighbour queue; EAGAIN only means the queue is full.
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(()),
    }
}

/// The first IPv4 address configured on `iface` (in the calling thread's namespace), if any.
pub fn interface_ipv4(iface: &str) -> Option<Ipv4Addr> {
    interface_addrs(iface).into_iter().find_map(|a| match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    })
}

/// The first IPv6 address configured on `iface` that is not link-local (fe80::/10), if any.
pub fn interface_ipv6(iface: &str) -> Option<std::net::Ipv6Addr> {
    interface_addrs(iface).into_iter().find_map(|a| match a {
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) != 0xfe80 => Some(a),
        _ => None,
    })
}

/// The IPv4 and IPv6 addresses configured on `iface`, in the kernel's order.
fn interface_addrs(iface: &str) -> Vec<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // Safety: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // Safety: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // Safety: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != iface.as_bytes() {
            continue;
        }
        // Safety: ifa_addr is non-null and points at a sockaddr of at least its family's size.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if family == libc::AF_INET {
            // Safety: the family is AF_INET, so the sockaddr is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
        } else if family == libc::AF_INET6 {
            // Safety: the family is AF_INET6, so the sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            found.push(IpAddr::V6(sin6.sin6_addr.s6_addr.into()));
        }
    }
    // Safety: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The next hop towards `target` through `iface` and its MAC, blocking up to `timeout` for
/// the kernel to resolve it (for set-up code outside the engine's loop, e.g. the load
/// generator; the engine's cores use the non-blocking [`super::neighbor::Resolver`]). The
/// same route choice ([`netlink::next_hop`]: the interface's main-table routes, longest
/// prefix, lowest metric), the same neighbour lookup and the same kick
/// ([`kick_kernel_resolution`]) as the engine, in the calling thread's network namespace.
pub fn resolve_next_hop(
    iface: &str,
    target: impl Into<IpAddr>,
    timeout: std::time::Duration,
) -> Result<(IpAddr, EthernetAddress), String> {
    use std::time::{Duration, Instant};
    let target = target.into();
    let nl_err = |e: io::Error| format!("netlink (routes and neighbours of {iface}): {e}");
    let index = netlink::ifindex(iface).map_err(|e| format!("interface {iface}: {e}"))?;
    let mut nl = Netlink::open().map_err(nl_err)?;
    let routes = nl.routes(index).map_err(nl_err)?;
    let hop = netlink::next_hop(&routes, target)
        .ok_or_else(|| format!("no route to {target} through {iface} (`ip route get {target}`)"))?;
    let deadline = Instant::now() + timeout;
    let mut next_kick = Instant::now();
    loop {
        if let Some(mac) = nl.neighbor(index, hop).map_err(nl_err)? {
            return Ok((hop, mac));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no ARP/ND answer from {hop} on {iface} within {timeout:?} (is the target \
                 reachable through {iface}? `ip route get {target}`)"
            ));
        }
        if Instant::now() >= next_kick {
            kick_kernel_resolution(target).map_err(|e| {
                format!("cannot send a probe to {target} to resolve its MAC address: {e}")
            })?;
            next_kick = Instant::now() + Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `fd` is readable or `timeout` passes (`ppoll`: nanosecond resolution, unlike
/// `poll`'s milliseconds). Returns whether it is readable; an interrupted wait is `false`.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // Safety: `pfd` and `ts` are valid for the call; no signal mask is passed.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(r > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_address() {
        assert_eq!(interface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("xtcp-no-such-if0"), None);
    }

    #[test]
    fn random_and_loopback_mac() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(interface_mac("lo").unwrap(), EthernetAddress([0; 6]));
        assert!(interface_mac("no-such-if0").is_err());
    }
}
