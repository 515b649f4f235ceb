//! What the xtcp backend needs to know about the interface and the next hop, asked of the
//! kernel once before the run: the interface's MAC and IPv4 address, and the next hop's MAC.
//!
//! Next-hop resolution goes through the kernel: the XDP program passes ARP to the kernel, so
//! replies to ARP requests of our own would never reach the stack. Instead one empty UDP
//! datagram is sent towards the target from a kernel socket, which makes the kernel resolve
//! the next hop, and its entry is then read from `/proc/net/arp`.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// The interface's MAC address, from sysfs.
pub fn mac(iface: &str) -> Result<[u8; 6], String> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("interface {iface}: cannot read {path}: {e}"))?;
    parse_mac(text.trim()).ok_or_else(|| format!("interface {iface}: bad MAC `{}`", text.trim()))
}

/// `aa:bb:cc:dd:ee:ff` → bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The first IPv4 address configured on `iface`, if any.
pub fn ipv4(iface: &str) -> Option<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // Safety: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
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
        // Safety: ifa_addr is non-null and points at a sockaddr of at least its family's size.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if name.to_bytes() != iface.as_bytes() || family != libc::AF_INET {
            continue;
        }
        // Safety: the family is AF_INET, so the sockaddr is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        break;
    }
    // Safety: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The gateway of the kernel's route to `dst` through `iface`, if the route has one
/// (`/proc/net/route`, longest prefix first).
fn gateway(iface: &str, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    let d = u32::from(dst);
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != iface {
            continue;
        }
        // The file prints addresses as the raw (network order) u32 in host-order hex.
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
        let (Some(net), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else {
            continue;
        };
        if d & mask != net || best.is_some_and(|(m, _)| m.count_ones() >= mask.count_ones()) {
            continue;
        }
        best = Some((mask, Ipv4Addr::from(gw)));
    }
    best.map(|(_, gw)| gw).filter(|gw| !gw.is_unspecified())
}

/// The complete entry for `ip` on `iface` in `/proc/net/arp`.
fn arp_entry(iface: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string("/proc/net/arp").ok()?;
    let ip = ip.to_string();
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device; flag 0x2 = ATF_COM (complete).
        if f.len() < 6 || f[0] != ip || f[5] != iface {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        parse_mac(f[3]).filter(|m| *m != [0; 6])
    })
}

/// The MAC of the next hop towards `target` through `iface`: the target itself when it is on
/// link, else the gateway of the kernel's route. Waits up to `timeout` for the kernel to
/// resolve it.
pub fn resolve_next_hop(
    iface: &str,
    target: Ipv4Addr,
    timeout: Duration,
) -> Result<(Ipv4Addr, [u8; 6]), String> {
    let hop = gateway(iface, target).unwrap_or(target);
    if let Some(mac) = arp_entry(iface, hop) {
        return Ok((hop, mac));
    }
    let deadline = Instant::now() + timeout;
    let mut next_probe = Instant::now();
    loop {
        if Instant::now() >= next_probe {
            // The discard port; the datagram only exists to make the kernel resolve the hop.
            probe(SocketAddrV4::new(target, 9)).map_err(|e| {
                format!("cannot send a probe to {target} to resolve its MAC address: {e}")
            })?;
            next_probe = Instant::now() + Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(5));
        if let Some(mac) = arp_entry(iface, hop) {
            return Ok((hop, mac));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no ARP answer from {hop} on {iface} within {timeout:?} (is the target reachable \
                 through {iface}? `ip route get {target}`)"
            ));
        }
    }
}

fn probe(to: SocketAddrV4) -> io::Result<()> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    match s.send_to(&[], to) {
        Ok(_) => Ok(()),
        // The kernel queues the datagram while it resolves; an unresolved hop is not an error.
        Err(e) if e.raw_os_error() == Some(libc::EHOSTUNREACH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// 32 bytes from the operating system's CSPRNG (ISNs, cookies and hash seeds of the stack).
pub fn random_secret() -> Result<[u8; 32], String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| format!("getrandom: {e}"))?;
    Ok(buf)
}

/// Waits until `fd` is readable or `timeout` passes (nanosecond resolution, unlike `poll`).
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) -> io::Result<bool> {
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
    fn macs() {
        assert_eq!(
            parse_mac("02:78:74:0a:00:01"),
            Some([2, 0x78, 0x74, 0x0a, 0, 1])
        );
        assert_eq!(parse_mac("02:78:74:0a:00"), None);
        assert_eq!(parse_mac("02:78:74:0a:00:01:05"), None);
        assert_eq!(parse_mac("zz:78:74:0a:00:01"), None);
    }

    #[test]
    fn loopback_has_an_address_and_secrets_differ() {
        assert_eq!(ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
    }
}
