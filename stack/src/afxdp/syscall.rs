//! The system calls of an AF_XDP socket: create, set and get options, bind, wake up, poll;
//! and the interface look-ups (index, MTU) that binding needs. Each wrapper checks the
//! result and returns `io::Error` with the OS error code.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::if_xdp::{AF_XDP, SOL_XDP, SockaddrXdp};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new AF_XDP socket (close-on-exec).
pub(crate) fn xdp_socket() -> io::Result<OwnedFd> {
    // Safety: plain socket(2); the result is checked before it is owned.
    let fd = check(unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // Safety: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_XDP, opt, value)`.
pub(crate) fn set_option<T: Copy>(fd: RawFd, opt: i32, value: &T) -> io::Result<()> {
    // Safety: `value` is a valid `T` for reads of `size_of::<T>()` bytes during the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `getsockopt(fd, SOL_XDP, opt)` into a `T`; fails if the kernel wrote a different size.
pub(crate) fn get_option<T: Copy + Default>(fd: RawFd, opt: i32) -> io::Result<T> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // Safety: `value` is writable for `len` bytes and `len` is a valid socklen_t; T is
    // plain old data (a #[repr(C)] struct of integers), so any bytes written are valid.
    check(unsafe { libc::getsockopt(fd, SOL_XDP, opt, (&mut value as *mut T).cast(), &mut len) })?;
    if len as usize != size_of::<T>() {
        return Err(io::Error::other(format!(
            "getsockopt({opt}) returned {len} bytes, expected {} (kernel too old?)",
            size_of::<T>()
        )));
    }
    Ok(value)
}

/// `bind(2)` to `addr`.
pub(crate) fn bind(fd: RawFd, addr: &SockaddrXdp) -> io::Result<()> {
    // Safety: `addr` is a valid sockaddr_xdp for the call, with its exact length.
    check(unsafe {
        libc::bind(
            fd,
            (addr as *const SockaddrXdp).cast(),
            size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The TX wakeup: a zero-length non-blocking `sendto`. In copy mode the kernel sends one
/// batch (32 frames) per call and answers `EAGAIN` while more remain in the ring.
pub(crate) fn wake_tx(fd: RawFd) -> io::Result<()> {
    // Safety: a zero-length sendto with null buffer and address reads nothing.
    let r = unsafe { libc::sendto(fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The RX wakeup: a zero-length non-blocking `recvfrom` (the result carries no information).
pub(crate) fn wake_rx(fd: RawFd) {
    // Safety: a zero-length recvfrom with null buffers writes nothing.
    unsafe {
        libc::recvfrom(
            fd,
            ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
}

/// `poll(2)` for `POLLIN` up to `timeout_ms` (-1: forever); `EINTR` counts as not readable.
pub(crate) fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: `pfd` is a valid pollfd for the duration of the call, count 1.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    match r {
        r if r < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(pfd.revents & libc::POLLIN != 0),
    }
}

fn check_name(iface: &str) -> io::Result<CString> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {iface:?}"),
        ));
    }
    Ok(CString::new(name).expect("no interior NUL, checked"))
}

/// The index of `iface` in the calling thread's network namespace.
pub(crate) fn if_index(iface: &str) -> io::Result<u32> {
    let c = check_name(iface)?;
    // Safety: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("interface {iface:?}: {e}"),
        ));
    }
    Ok(idx)
}

/// The MTU of `iface` in the calling thread's network namespace.
pub(crate) fn if_mtu(iface: &str) -> io::Result<usize> {
    let c = check_name(iface)?;
    // Safety: plain socket(2) call; the result is checked before use.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // Safety: `raw` is a freshly opened descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // Safety: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
        *dst = src as libc::c_char;
    }
    // Safety: SIOCGIFMTU reads `ifr_name` (NUL-terminated: the name is shorter than
    // IFNAMSIZ and the rest is zero) and writes `ifru_mtu` of the valid `req`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut req) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("interface {iface:?}: {e}"),
        ));
    }
    // Safety: a successful SIOCGIFMTU initialised the `ifru_mtu` member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as usize)
}
