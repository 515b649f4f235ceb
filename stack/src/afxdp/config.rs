//! Configuration of an [`XskLink`](super::XskLink) and the errors of creating one.

use std::fmt;
use std::io;

/// How the socket binds to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy first, copy mode if the driver refuses zero-copy (veth does, with
    /// `EOPNOTSUPP`).
    Auto,
    /// Zero-copy only: creation fails where the driver has no zero-copy support.
    ZeroCopy,
    /// Copy mode only: works on every driver, costs one copy per frame in each direction.
    Copy,
}

/// Configuration of one AF_XDP socket and the UMEM it owns.
///
/// Ring and frame sizes must be powers of two (the kernel's requirement); `frame_size` at
/// least 2048. Of the UMEM, `min(fill_ring, frame_count / 2)` frames are kept lent to the
/// kernel for receiving; the rest form the free list that `transmit` draws from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Interface name, resolved in the network namespace of the creating thread.
    pub iface: String,
    /// Hardware queue the socket binds to; the XDP program must redirect this queue's frames
    /// into the socket (XSKMAP key = `queue_id`).
    pub queue_id: u32,
    /// UMEM frames. Default 4096.
    pub frame_count: u32,
    /// Bytes per UMEM frame (one frame per packet, no multi-buffer). Default 2048; the
    /// kernel reserves 256 bytes of headroom in each, so the largest frame is 1792 bytes
    /// (and at most the interface MTU plus the Ethernet header).
    pub frame_size: u32,
    /// RX ring descriptors. Default 2048.
    pub rx_ring: u32,
    /// TX ring descriptors. Default 2048.
    pub tx_ring: u32,
    /// Fill ring descriptors. Default 4096: as many as could ever be lent for receiving.
    pub fill_ring: u32,
    /// Completion ring descriptors. Default 4096: it must hold every frame in flight on TX,
    /// or the kernel stalls transmission.
    pub comp_ring: u32,
    /// Descriptors moved per ring operation (RX consume, fill, TX submit, completion reap).
    /// Default 64. The descriptor arrays of this size are allocated once, at creation.
    pub batch: usize,
    /// Zero-copy, copy, or try both. Default [`BindMode::Auto`].
    pub bind: BindMode,
    /// Allocate the UMEM on huge pages (`MAP_HUGETLB`: fewer TLB misses on the frame
    /// accesses), falling back to normal pages where none are reserved (`vm.nr_hugepages`);
    /// [`XskLink::huge_pages_fallback`](super::XskLink::huge_pages_fallback) then says why.
    /// Default false.
    pub huge_pages: bool,
    /// Bind with `XDP_USE_NEED_WAKEUP` and kick only when the kernel asks for it. Default
    /// true. Without it every flush with pending frames makes a `sendto` syscall.
    pub need_wakeup: bool,
    /// Do not attach a program of the link's own. Default true: the project's XDP program
    /// steers our flows into this socket, and its loader inserts [`XskLink::fd`] into its
    /// XSKMAP at `queue_id`. Set false to have the link attach a minimal program that
    /// redirects every frame of the queue to the socket (tests on a private veth do this);
    /// it is detached when the link is dropped.
    ///
    /// [`XskLink::fd`]: super::XskLink::fd
    pub inhibit_prog_load: bool,
}

impl XskConfig {
    /// The defaults listed on each field, for interface `iface`, queue 0.
    pub fn new(iface: impl Into<String>) -> Self {
        XskConfig {
            iface: iface.into(),
            queue_id: 0,
            frame_count: 4096,
            frame_size: 2048,
            rx_ring: 2048,
            tx_ring: 2048,
            fill_ring: 4096,
            comp_ring: 4096,
            batch: 64,
            bind: BindMode::Auto,
            huge_pages: false,
            need_wakeup: true,
            inhibit_prog_load: true,
        }
    }

    /// Frames kept lent to the kernel for receiving.
    pub fn fill_target(&self) -> u32 {
        self.fill_ring.min(self.frame_count / 2)
    }

    pub(crate) fn validate(&self) -> Result<(), XskError> {
        let bad = |what: &str| Err(XskError::InvalidConfig(what.to_string()));
        for (name, v) in [
            ("rx_ring", self.rx_ring),
            ("tx_ring", self.tx_ring),
            ("fill_ring", self.fill_ring),
            ("comp_ring", self.comp_ring),
            ("frame_size", self.frame_size),
        ] {
            if !v.is_power_of_two() {
                return bad(&format!("{name} = {v} is not a power of two"));
            }
        }
        if self.frame_size < 2048 {
            return bad("frame_size must be at least 2048 (XDP_UMEM_MIN_CHUNK_SIZE)");
        }
        if self.frame_count < 2 {
            return bad("frame_count must be at least 2 (one for RX, one for TX)");
        }
        if self.batch == 0 {
            return bad("batch must be at least 1");
        }
        // Frames in flight on TX are at most those not lent for receiving; the completion ring
        // must be able to hold them all.
        if self.comp_ring < self.frame_count - self.fill_target() {
            return bad("comp_ring must hold frame_count - min(fill_ring, frame_count / 2) frames");
        }
        Ok(())
    }
}

/// Why an [`XskLink`](super::XskLink) could not be created.
#[derive(Debug)]
pub enum XskError {
    /// A field of [`XskConfig`] is out of range.
    InvalidConfig(String),
    /// The UMEM could not be allocated or registered.
    Umem(io::Error),
    /// The interface name is not usable or the interface does not exist.
    Interface(io::Error),
    /// Binding the socket failed in `mode` ([`BindMode::Copy`] after a zero-copy refusal in
    /// [`BindMode::Auto`]).
    Bind {
        /// The mode of the failed attempt.
        mode: BindMode,
        /// The kernel's reason.
        error: io::Error,
    },
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XskError::InvalidConfig(why) => write!(f, "invalid AF_XDP config: {why}"),
            XskError::Umem(e) => write!(f, "AF_XDP UMEM: {e}"),
            XskError::Interface(e) => write!(f, "AF_XDP interface: {e}"),
            XskError::Bind { mode, error } => write!(f, "AF_XDP bind ({mode:?}): {error}"),
        }
    }
}

impl std::error::Error for XskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            XskError::InvalidConfig(_) => None,
            XskError::Umem(e) | XskError::Interface(e) | XskError::Bind { error: e, .. } => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = XskConfig::new("eth0");
        c.validate().unwrap();
        assert_eq!(c.fill_target(), 2048);
    }

    #[test]
    fn rejects_bad_sizes() {
        let mut c = XskConfig::new("eth0");
        c.rx_ring = 1000;
        assert!(matches!(c.validate(), Err(XskError::InvalidConfig(_))));
        let mut c = XskConfig::new("eth0");
        c.frame_size = 1024;
        assert!(c.validate().is_err());
        let mut c = XskConfig::new("eth0");
        c.batch = 0;
        assert!(c.validate().is_err());
        let mut c = XskConfig::new("eth0");
        c.comp_ring = 1024;
        assert!(c.validate().is_err());
    }
}
