//! Thin safe wrappers over the Linux socket and epoll calls the engines use.
//!
//! Every function returns `io::Result` with the raw `errno` preserved, because the client
//! classifies failures by it (`ECONNREFUSED`, `ETIMEDOUT`, `EADDRNOTAVAIL`). File descriptors are
//! plain `RawFd`s owned by the caller: the engines keep hundreds of thousands of short-lived
//! sockets in slabs and close them explicitly, so an owning wrapper per socket would only add
//! drops to the hot path.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

pub fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

pub fn sockaddr_in6(addr: SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: addr.port().to_be(),
        sin6_flowinfo: addr.flowinfo().to_be(),
        sin6_addr: libc::in6_addr {
            s6_addr: addr.ip().octets(),
        },
        sin6_scope_id: addr.scope_id(),
    }
}

/// `addr` as the socket address of its family, for the syscalls that take one.
enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawAddr {
    fn new(addr: SocketAddr) -> RawAddr {
        match addr {
            SocketAddr::V4(a) => RawAddr::V4(sockaddr_in(a)),
            SocketAddr::V6(a) => RawAddr::V6(sockaddr_in6(a)),
        }
    }

    /// The pointer and exact length to pass; valid while `self` lives.
    fn as_raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            RawAddr::V4(sa) => (
                (sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            RawAddr::V6(sa) => (
                (sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

/// A non-blocking, close-on-exec IPv4 TCP socket.
pub fn tcp_socket() -> io::Result<RawFd> {
    tcp_socket_for(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A non-blocking, close-on-exec TCP socket of `ip`'s family.
pub fn tcp_socket_for(ip: IpAddr) -> io::Result<RawFd> {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // Safety: plain syscall with constant arguments; the returned fd is owned by the caller.
    cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
}

pub fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // Safety: `value` lives across the call and its size is passed exactly.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub fn get_int_opt(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // Safety: `value` and `len` are valid for writes and `len` holds the buffer size.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) })?;
    Ok(value)
}

pub fn bind(fd: RawFd, addr: SocketAddr) -> io::Result<()> {
    let sa = RawAddr::new(addr);
    let (ptr, len) = sa.as_raw();
    // Safety: `ptr` points at a valid sockaddr of `len` bytes that outlives the call.
    cvt(unsafe { libc::bind(fd, ptr, len) }).map(drop)
}

/// Starts a connect; `Ok(true)` if it completed at once, `Ok(false)` if in progress.
pub fn connect(fd: RawFd, addr: SocketAddr) -> io::Result<bool> {
    let sa = RawAddr::new(addr);
    let (ptr, len) = sa.as_raw();
    // Safety: `ptr` points at a valid sockaddr of `len` bytes that outlives the call.
    let ret = unsafe { libc::connect(fd, ptr, len) };
    if ret == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(false)
    } else {
        Err(err)
    }
}

pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // Safety: plain syscall on a caller-owned fd.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// Accepts one connection as a non-blocking socket; `Ok(None)` when the queue is empty.
pub fn accept(fd: RawFd) -> io::Result<Option<RawFd>> {
    // Safety: null address pointers are allowed by accept4(2) when the peer is not wanted.
    let ret = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if ret >= 0 {
        return Ok(Some(ret));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) => Ok(None),
        _ => Err(err),
    }
}

pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // Safety: an all-zero sockaddr_in6 is a valid value of the type.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // Safety: `sa` and `len` are valid for writes and `len` holds the buffer size (a
    // sockaddr_in6 is large enough for either family).
    cvt(unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in6).cast(), &mut len) })?;
    if i32::from(sa.sin6_family) == libc::AF_INET6 {
        return Ok(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(sa.sin6_addr.s6_addr),
            u16::from_be(sa.sin6_port),
            u32::from_be(sa.sin6_flowinfo),
            sa.sin6_scope_id,
        )));
    }
    // Safety: the family is AF_INET, so the first bytes are a sockaddr_in.
    let sin = unsafe { &*(&sa as *const libc::sockaddr_in6).cast::<libc::sockaddr_in>() };
    Ok(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    )))
}

/// Reads into `buf`; `Ok(None)` means the socket would block.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // Safety: `buf` is valid for writes of `buf.len()` bytes.
    let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    would_block(cvt_size(ret))
}

/// Writes from `buf`; `Ok(None)` means the socket would block.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // Safety: `buf` is valid for reads of `buf.len()` bytes. MSG_NOSIGNAL turns a write to a
    // reset connection into EPIPE instead of killing the process with SIGPIPE.
    let ret = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    would_block(cvt_size(ret))
}

fn would_block(r: io::Result<usize>) -> io::Result<Option<usize>> {
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // Safety: plain syscall on a caller-owned fd.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(drop)
}

pub fn close(fd: RawFd) {
    // Safety: the caller owns `fd` and never uses it again. close(2) errors are not actionable
    // here (the fd is released either way on Linux).
    unsafe {
        libc::close(fd);
    }
}

/// Raises the soft open-file limit to the hard limit: a load generator keeps many sockets.
pub fn raise_nofile_limit() {
    // Safety: an all-zero rlimit is valid and getrlimit only writes into it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // Safety: `lim` is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max
    {
        lim.rlim_cur = lim.rlim_max;
        // Safety: `lim` is a valid rlimit; failure only leaves the old limit in place.
        unsafe {
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// An epoll instance, closed on drop.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(max_events: usize) -> io::Result<Epoll> {
        // Safety: plain syscall; the fd is owned by the returned value.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max_events.max(1)],
        })
    }

    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // Safety: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
    }

    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // Safety: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_MOD, fd, &mut ev) }).map(drop)
    }

    /// Waits up to `timeout` (nanosecond resolution through epoll_pwait2, Linux ≥ 5.11) and
    /// returns the ready `(events, token)` pairs. Pacing at tens of thousands of connections
    /// per second needs sub-millisecond sleeps, which epoll_wait's millisecond timeout lacks.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<&[libc::epoll_event]> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // Safety: the events buffer is valid for `len` entries; `ts` outlives the call; a null
        // sigmask means "do not change the mask".
        let ret = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        let n = if ret < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => 0,
                Some(libc::ENOSYS) => {
                    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                    // Safety: as above, with epoll_wait's millisecond timeout.
                    let r = unsafe {
                        libc::epoll_wait(
                            self.fd,
                            self.events.as_mut_ptr(),
                            self.events.len() as i32,
                            ms,
                        )
                    };
                    if r < 0 { 0 } else { r as usize }
                }
                _ => return Err(err),
            }
        } else {
            ret as usize
        };
        Ok(&self.events[..n])
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// Pins the calling thread to `core` when given; a failure is reported, not fatal.
pub fn pin_to(core: Option<usize>) {
    if let Some(id) = core
        && !core_affinity::set_for_current(core_affinity::CoreId { id })
    {
        eprintln!("xtcp-loadgen: warning: could not pin thread to core {id}");
    }
}

/// Makes the calling thread's timed sleeps precise: the default 50 µs timer slack would shift
/// every paced start by up to that much, which shows up as latency in open-loop runs.
pub fn tight_timer_slack() {
    // Safety: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
