//! An AF_XDP socket bound to one queue, with its UMEM registered and its four rings mapped.
//!
//! Set-up order (the kernel's requirement): create the socket, register the UMEM
//! (`XDP_UMEM_REG`), size the fill, completion, RX and TX rings, read their mmap offsets,
//! map them, then bind. A failed bind leaves the socket unusable; a retry in another mode
//! starts again from a fresh socket (the UMEM mapping is reused).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::if_xdp::{
    AF_XDP, MmapOffsets, SockaddrXdp, XDP_COPY, XDP_MMAP_OFFSETS, XDP_PGOFF_RX_RING,
    XDP_PGOFF_TX_RING, XDP_RX_RING, XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING,
    XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_REG, XDP_USE_NEED_WAKEUP,
    XDP_ZEROCOPY,
};
use super::ring::{CompletionRing, FillRing, RxRing, TxRing};
use super::syscall;
use super::umem::Umem;

/// What to bind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketParams {
    pub ifindex: u32,
    pub queue_id: u32,
    pub fill_ring: u32,
    pub comp_ring: u32,
    pub rx_ring: u32,
    pub tx_ring: u32,
    pub need_wakeup: bool,
}

/// Which set-up step failed.
#[derive(Debug)]
pub(crate) enum SocketError {
    /// Creating the socket or registering the UMEM.
    Umem(io::Error),
    /// Sizing or mapping a ring.
    Rings(io::Error),
    /// `bind(2)`.
    Bind(io::Error),
}

/// A bound AF_XDP socket. Field order is drop order: the ring mappings go before the
/// socket closes.
#[derive(Debug)]
pub(crate) struct XdpSocket {
    pub(crate) fill: FillRing,
    pub(crate) comp: CompletionRing,
    pub(crate) rx: RxRing,
    pub(crate) tx: TxRing,
    fd: OwnedFd,
}

impl XdpSocket {
    /// Creates a socket on `umem` and binds it to `p.ifindex` queue `p.queue_id`, zero-copy
    /// or copy mode as asked.
    pub(crate) fn bind(
        umem: &Umem,
        p: &SocketParams,
        zero_copy: bool,
    ) -> Result<Self, SocketError> {
        let fd = syscall::xdp_socket().map_err(SocketError::Umem)?;
        let raw = fd.as_raw_fd();
        syscall::set_option(raw, XDP_UMEM_REG, &umem.registration()).map_err(SocketError::Umem)?;
        for (opt, size) in [
            (XDP_UMEM_FILL_RING, p.fill_ring),
            (XDP_UMEM_COMPLETION_RING, p.comp_ring),
            (XDP_RX_RING, p.rx_ring),
            (XDP_TX_RING, p.tx_ring),
        ] {
            syscall::set_option(raw, opt, &size).map_err(SocketError::Rings)?;
        }
        let off: MmapOffsets =
            syscall::get_option(raw, XDP_MMAP_OFFSETS).map_err(SocketError::Rings)?;
        let fill = FillRing::map(raw, &off.fill, p.fill_ring, XDP_UMEM_PGOFF_FILL_RING)
            .map_err(SocketError::Rings)?;
        let comp = CompletionRing::map(
            raw,
            &off.completion,
            p.comp_ring,
            XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(SocketError::Rings)?;
        let rx =
            RxRing::map(raw, &off.rx, p.rx_ring, XDP_PGOFF_RX_RING).map_err(SocketError::Rings)?;
        let tx =
            TxRing::map(raw, &off.tx, p.tx_ring, XDP_PGOFF_TX_RING).map_err(SocketError::Rings)?;

        let mut flags = if zero_copy { XDP_ZEROCOPY } else { XDP_COPY };
        if p.need_wakeup {
            flags |= XDP_USE_NEED_WAKEUP;
        }
        let addr = SockaddrXdp {
            family: AF_XDP as u16,
            flags,
            ifindex: p.ifindex,
            queue_id: p.queue_id,
            shared_umem_fd: 0,
        };
        syscall::bind(raw, &addr).map_err(SocketError::Bind)?;
        Ok(XdpSocket {
            fill,
            comp,
            rx,
            tx,
            fd,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
