//! AF_XDP preferred busy polling: the socket's own thread runs the device's receive NAPI.
//!
//! Without it the kernel runs the receive path of our frames (driver poll, XDP program, copy
//! into the UMEM) in softirq context wherever the interrupt lands; on veth that is the
//! *sender's* CPU (or the device's NAPI kthread when threaded NAPI is on), so the frames a
//! server receives are paid for by another core. With preferred busy polling (kernel ≥ 5.11,
//! see the kernel's `Documentation/networking/af_xdp.rst`, "XDP_USE_NEED_WAKEUP" and
//! "busy-poll" sections):
//! - `SO_PREFER_BUSY_POLL` = 1, `SO_BUSY_POLL` = µs, `SO_BUSY_POLL_BUDGET` = frames on the
//!   socket ([`enable_on_socket`]);
//! - the device's `napi_defer_hard_irqs` and `gro_flush_timeout` (in
//!   `/sys/class/net/<dev>/`) set so that, after a busy poll, the NAPI stays with the
//!   busy poller (interrupts deferred, a timer as the safety net) instead of being scheduled
//!   on another CPU ([`DeviceDeferral`]);
//! - the application calls `recvfrom(MSG_DONTWAIT)` or `sendto` regularly
//!   ([`drive`]): each call runs the NAPI once, on the caller's CPU, within the budget.
//!
//! If the application stops calling for longer than `gro_flush_timeout`, the timer hands the
//! NAPI back to the normal softirq path, so nothing is lost, only moved.
//!
//! # Which sockets can be busy-polled
//! A busy poll runs the NAPI instance the socket is tied to (`SO_INCOMING_NAPI_ID`). Since
//! Linux 6.13 (NAPI ids assigned late, "xsk: Bring back busy polling support") an AF_XDP
//! socket is tied to one at bind time, and only when it is zero-copy on a driver that
//! registers its queues' NAPI; a copy-mode socket, veth's included, has none and cannot be
//! busy-polled (measured on 6.18: `SO_INCOMING_NAPI_ID` stays 0 under traffic). Kernels
//! 5.11-6.12 tied it on the first received frame. The engine checks the id after bind and
//! falls back to idle waiting, with a message, when there is none.
//!
//! The device settings are global to the device; [`DeviceDeferral::apply`] returns what was
//! there before, and [`DeviceDeferral::restore`] puts it back.

use std::io;
use std::os::fd::RawFd;

/// `SO_BUSY_POLL` (asm-generic/socket.h).
pub const SO_BUSY_POLL: libc::c_int = 46;
/// `SO_INCOMING_NAPI_ID`: the NAPI instance the socket's frames last came from.
pub const SO_INCOMING_NAPI_ID: libc::c_int = 56;
/// `SO_PREFER_BUSY_POLL` (Linux 5.11).
pub const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_BUSY_POLL_BUDGET` (Linux 5.11).
pub const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// The settings of preferred busy polling. [`BusyPollConfig::default`] gives the documented
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollConfig {
    /// `SO_BUSY_POLL`: how long one busy poll may spin for frames, in µs. Default 20.
    pub busy_poll_us: u32,
    /// `SO_BUSY_POLL_BUDGET`: frames one busy poll may process. Default 64.
    pub budget: u32,
    /// The device's `napi_defer_hard_irqs`. Default 2.
    pub defer_hard_irqs: u32,
    /// The device's `gro_flush_timeout` in ns: the safety-net timer. Default 200 000 (200 µs).
    pub gro_flush_timeout_ns: u64,
}

impl Default for BusyPollConfig {
    fn default() -> Self {
        BusyPollConfig {
            busy_poll_us: 20,
            budget: 64,
            defer_hard_irqs: 2,
            gro_flush_timeout_ns: 200_000,
        }
    }
}

fn set_int(fd: RawFd, name: libc::c_int, value: u32, what: &str) -> io::Result<()> {
    let v = value.min(i32::MAX as u32) as libc::c_int;
    // Safety: setsockopt reads exactly `size_of::<c_int>()` bytes from `v`, which lives
    // across the call; `fd` is the caller's open socket.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Sets `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` on an AF_XDP socket.
/// Fails (naming the option) where the kernel lacks them (`ENOPROTOOPT`) or the caller lacks
/// `CAP_NET_ADMIN` for values above the system limits (`EPERM`).
pub fn enable_on_socket(fd: RawFd, cfg: &BusyPollConfig) -> io::Result<()> {
    set_int(fd, SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL")?;
    set_int(fd, SO_BUSY_POLL, cfg.busy_poll_us, "SO_BUSY_POLL")?;
    set_int(fd, SO_BUSY_POLL_BUDGET, cfg.budget, "SO_BUSY_POLL_BUDGET")
}

/// Runs the socket's NAPI once on the calling CPU (`recvfrom` with `MSG_DONTWAIT` and no
/// buffer, as the kernel's AF_XDP documentation prescribes). `EAGAIN`/`EBUSY`/`ENOBUFS` are
/// normal answers and not errors.
pub fn drive(fd: RawFd) -> io::Result<()> {
    // Safety: a zero-length receive with null buffers: the kernel writes nothing to user
    // memory; `fd` is the caller's open AF_XDP socket.
    let r = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {
                Ok(())
            }
            _ => Err(e),
        };
    }
    Ok(())
}

/// The NAPI id the socket's frames come from (`SO_INCOMING_NAPI_ID`); 0 until a frame
/// arrived, or where the path has no NAPI id (busy polling then has nothing to run).
pub fn incoming_napi_id(fd: RawFd) -> io::Result<u32> {
    let mut v: libc::c_uint = 0;
    let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
    // Safety: `v` and `len` are valid for writes and `len` holds the size of `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_INCOMING_NAPI_ID,
            (&mut v as *mut libc::c_uint).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// A device's `napi_defer_hard_irqs` and `gro_flush_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDeferral {
    /// The interface.
    pub iface: String,
    /// `napi_defer_hard_irqs`.
    pub defer_hard_irqs: u64,
    /// `gro_flush_timeout`, ns.
    pub gro_flush_timeout_ns: u64,
}

fn sys_path(iface: &str, file: &str) -> String {
    format!("/sys/class/net/{iface}/{file}")
}

fn read_u64(path: &str) -> io::Result<u64> {
    let t = std::fs::read_to_string(path)?;
    t.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: '{t}'")))
}

fn write_u64(path: &str, v: u64) -> io::Result<()> {
    std::fs::write(path, format!("{v}\n"))
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

impl DeviceDeferral {
    /// The current settings of `iface` (as `/sys` shows it to the calling process: its
    /// network namespace as mounted there).
    pub fn read(iface: &str) -> io::Result<DeviceDeferral> {
        Ok(DeviceDeferral {
            iface: iface.to_string(),
            defer_hard_irqs: read_u64(&sys_path(iface, "napi_defer_hard_irqs"))?,
            gro_flush_timeout_ns: read_u64(&sys_path(iface, "gro_flush_timeout"))?,
        })
    }

    /// Sets `cfg`'s values on `iface` and returns the previous ones.
    pub fn apply(iface: &str, cfg: &BusyPollConfig) -> io::Result<DeviceDeferral> {
        let before = DeviceDeferral::read(iface)?;
        write_u64(
            &sys_path(iface, "napi_defer_hard_irqs"),
            cfg.defer_hard_irqs.into(),
        )?;
        if let Err(e) = write_u64(
            &sys_path(iface, "gro_flush_timeout"),
            cfg.gro_flush_timeout_ns,
        ) {
            let _ = before.restore();
            return Err(e);
        }
        Ok(before)
    }

    /// Writes these values back.
    pub fn restore(&self) -> io::Result<()> {
        write_u64(
            &sys_path(&self.iface, "napi_defer_hard_irqs"),
            self.defer_hard_irqs,
        )?;
        write_u64(
            &sys_path(&self.iface, "gro_flush_timeout"),
            self.gro_flush_timeout_ns,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_kernel_docs() {
        let c = BusyPollConfig::default();
        assert_eq!((c.busy_poll_us, c.budget), (20, 64));
        assert_eq!((c.defer_hard_irqs, c.gro_flush_timeout_ns), (2, 200_000));
    }

    #[test]
    fn options_on_a_non_xdp_socket() {
        // The socket options are generic SOL_SOCKET ones: a UDP socket takes them too (where
        // the kernel has them), which checks the option numbers without AF_XDP.
        // Safety: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        let r = enable_on_socket(
            fd,
            &BusyPollConfig {
                busy_poll_us: 0,
                ..BusyPollConfig::default()
            },
        );
        match r {
            Ok(()) => assert_eq!(incoming_napi_id(fd).unwrap(), 0),
            // Old kernel, or no CAP_NET_ADMIN for the budget: the message names the option.
            Err(e) => assert!(e.to_string().contains("SO_"), "{e}"),
        }
        // Safety: `fd` is ours and not used after this.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn missing_device_is_an_error() {
        assert!(DeviceDeferral::read("no-such-if0").is_err());
        assert!(DeviceDeferral::apply("no-such-if0", &BusyPollConfig::default()).is_err());
    }
}
