//! The engine's few kernel interfaces outside AF_XDP: randomness, the interface's MAC address,
//! and the kernel's routing and neighbour tables (read from `/proc/thread-self/net`, so they
//! are those of the calling thread's network namespace).

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::wire::EthernetAddress;

/// Fills `buf` from the kernel's CSPRNG (`getrandom(2)`, blocking until it is seeded).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // Safety: `rest` is valid for writes of `rest.len()` bytes for the duration of the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
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

/// The MAC address of `iface` in the calling thread's network namespace (`SIOCGIFHWADDR`;
/// unlike `/sys/class/net`, this follows a thread that entered a namespace with setns).
pub fn interface_mac(iface: &str) -> io::Result<EthernetAddress> {
    let name = CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has NUL"))?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = dgram_socket()?;
    // Safety: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
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
/// kernel resolve the next hop towards `ip` (ARP) and enter it in its neighbour table.
pub fn kick_kernel_resolution(ip: Ipv4Addr) -> io::Result<()> {
    let sock = dgram_socket()?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 9u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    // Safety: `addr` is a valid sockaddr_in of the given length; a zero-length payload needs
    // no buffer (the pointer is never read).
    let r = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        // The datagram waits in the neighbour queue; EAGAIN only means the queue is full.
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
    }
    Ok(())
}

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dest: Ipv4Addr,
    pub mask: Ipv4Addr,
    /// `0.0.0.0` for an on-link route.
    pub gateway: Ipv4Addr,
    pub metric: u32,
}

/// `/proc/net/route` prints each address as the hex of its in-memory (network order) `u32`
/// in host byte order.
fn proc_addr(hex: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

/// Parses the routes of `iface` out of the text of `/proc/net/route`. Malformed lines are
/// skipped.
pub fn parse_routes(text: &str, iface: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[0] != iface {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            // RTF_UP
            if flags & 1 == 0 {
                return None;
            }
            Some(Route {
                dest: proc_addr(f[1])?,
                gateway: proc_addr(f[2])?,
                metric: f[6].parse().ok()?,
                mask: proc_addr(f[7])?,
            })
        })
        .collect()
}

/// The next hop towards `dst`: the gateway of the longest matching route, `dst` itself when
/// that route is on-link, `None` when no route of the interface matches.
pub fn next_hop(routes: &[Route], dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let d = u32::from(dst);
    routes
        .iter()
        .filter(|r| d & u32::from(r.mask) == u32::from(r.dest) & u32::from(r.mask))
        .max_by(|a, b| {
            let (la, lb) = (
                u32::from(a.mask).count_ones(),
                u32::from(b.mask).count_ones(),
            );
            la.cmp(&lb).then(b.metric.cmp(&a.metric))
        })
        .map(|r| {
            if r.gateway.is_unspecified() {
                dst
            } else {
                r.gateway
            }
        })
}

/// The complete (`ATF_COM`) entry for `ip` on `iface` in the text of `/proc/net/arp`.
pub fn parse_arp(text: &str, iface: &str, ip: Ipv4Addr) -> Option<EthernetAddress> {
    const ATF_COM: u32 = 0x2;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != iface || f[0].parse::<Ipv4Addr>().ok()? != ip {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        let mut mac = [0u8; 6];
        let mut parts = f[3].split(':');
        for m in mac.iter_mut() {
            *m = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        let mac = EthernetAddress(mac);
        mac.is_unicast().then_some(mac)
    })
}

/// The calling thread's `/proc/net/<file>` (its own network namespace, even after setns).
pub fn read_proc_net(file: &str) -> io::Result<String> {
    std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
xt-a\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
xt-a\t00000000\t01004D0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
xt-a\tgarbage\n";

    #[test]
    fn routes_and_next_hop() {
        if cfg!(target_endian = "big") {
            return; // the fixture is little-endian text
        }
        let r = parse_routes(ROUTE, "xt-a");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dest, Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(r[0].mask, Ipv4Addr::new(255, 255, 255, 0));
        let on_link = Ipv4Addr::new(10, 77, 0, 2);
        assert_eq!(next_hop(&r, on_link), Some(on_link));
        assert_eq!(
            next_hop(&r, Ipv4Addr::new(8, 8, 8, 8)),
            Some(Ipv4Addr::new(10, 77, 0, 1))
        );
        assert_eq!(next_hop(&parse_routes(ROUTE, "lo"), on_link), None);
    }

    #[test]
    fn arp_table() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
10.77.0.2        0x1         0x2         02:78:74:00:00:02     *        xt-a\n\
10.77.0.3        0x1         0x0         00:00:00:00:00:00     *        xt-a\n\
10.77.0.4        0x1         0x2         02:78:74:00:00:04     *        other\n\
bad line\n";
        let ip = |d| Ipv4Addr::new(10, 77, 0, d);
        assert_eq!(
            parse_arp(text, "xt-a", ip(2)),
            Some(EthernetAddress([2, 0x78, 0x74, 0, 0, 2]))
        );
        assert_eq!(parse_arp(text, "xt-a", ip(3)), None, "incomplete entry");
        assert_eq!(parse_arp(text, "xt-a", ip(4)), None, "other interface");
        assert_eq!(parse_arp(text, "xt-a", ip(5)), None);
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
