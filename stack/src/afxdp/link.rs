//! [`XskLink`]: one AF_XDP socket, its UMEM and its four rings, behind the [`Link`] trait.

use std::io;
use std::os::fd::RawFd;

use super::config::{BindMode, XskConfig, XskError};
use super::if_xdp::{XDP_PACKET_HEADROOM, XdpDesc};
use super::ledger::{FrameAccounting, FrameLedger};
use super::redirect::RedirectProgram;
use super::socket::{SocketError, SocketParams, XdpSocket};
use super::syscall;
use super::umem::Umem;
use crate::link::Link;

/// Ethernet header bytes on top of the interface MTU (no VLAN tag: we never send one).
const ETH_HLEN: usize = 14;

/// Counters of an [`XskLink`]. They only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames handed to receive callbacks.
    pub rx_frames: u64,
    /// Frames submitted to the TX ring.
    pub tx_frames: u64,
    /// Non-empty RX ring reads (at most `batch` frames each).
    pub rx_batches: u64,
    /// `transmit` refusals because the TX ring had no room for the staged batch.
    pub tx_ring_full: u64,
    /// `transmit` refusals because no frame was free, even after reaping completions.
    pub tx_no_free_frame: u64,
    /// Receive calls after which fewer than the target number of frames were lent to the
    /// kernel for receiving (TX held the rest): the kernel may drop frames meanwhile.
    pub fill_ring_short: u64,
    /// TX wakeup syscalls (`sendto`). Copy mode sends at most a kernel batch (32 frames) per
    /// call and answers `EAGAIN` when more remain, so one flush may make several.
    pub kicks: u64,
    /// RX wakeup syscalls (`recvfrom`), made when the fill ring asks for one and nothing
    /// was received (zero-copy drivers only; copy mode never asks).
    pub rx_wakeups: u64,
    /// Frames read back from the completion ring.
    pub tx_completed: u64,
}

/// An AF_XDP socket as a [`Link`].
///
/// Created with [`XskLink::new`] on a thread that is in the interface's network namespace.
/// The XDP program that redirects into this socket is not ours to load unless
/// [`XskConfig::inhibit_prog_load`] is false; otherwise insert [`XskLink::fd`] into the
/// program's XSKMAP at [`XskConfig::queue_id`] before expecting frames.
///
/// Dropping the link closes the socket and frees the UMEM. If the link attached its own
/// redirect program ([`XskConfig::inhibit_prog_load`] false), dropping detaches it (a
/// bpf_link, so from any thread and namespace).
pub struct XskLink {
    // Field order is drop order: detach our program (if any), close the socket and unmap
    // its rings, then unmap the UMEM the kernel no longer references.
    _redirect: Option<RedirectProgram>,
    socket: XdpSocket,
    umem: Umem,
    /// log2(frame_size): `addr >> frame_shift` is the frame index (aligned UMEM chunks), and
    /// `index << frame_shift` the address every frame is lent out at. The kernel may return
    /// addresses moved within a frame (RX headroom, XDP head adjustments).
    frame_shift: u32,
    ledger: FrameLedger,
    /// RX batch: descriptors read from the RX ring, valid during the callbacks.
    rx_descs: Box<[XdpDesc]>,
    /// Written by `transmit`, submitted to the TX ring when full or at flush.
    staged: Box<[XdpDesc]>,
    staged_len: usize,
    fill_target: u32,
    batch: usize,
    need_wakeup: bool,
    zero_copy: bool,
    huge_pages: bool,
    huge_pages_fallback: Option<String>,
    max_frame_len: usize,
    /// Frames submitted to the TX ring that no kick has reported as taken.
    tx_unkicked: bool,
    /// Upper bound of `sendto` calls per flush (the ring size over the kernel's copy-mode
    /// batch, plus one).
    kick_limit: u32,
    stats: XskStats,
}

// A link is built in the interface's namespace and may then move to its worker thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<XskLink>();
};

impl std::fmt::Debug for XskLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskLink")
            .field("fd", &self.fd())
            .field("zero_copy", &self.zero_copy)
            .field("max_frame_len", &self.max_frame_len)
            .field("accounting", &self.frame_accounting())
            .field("stats", &self.stats)
            .finish()
    }
}

impl XskLink {
    /// Allocates the UMEM, binds the socket to `config.iface` queue `config.queue_id`
    /// (zero-copy, copy, or zero-copy falling back to copy), and lends
    /// [`XskConfig::fill_target`] frames to the fill ring.
    pub fn new(config: &XskConfig) -> Result<Self, XskError> {
        config.validate()?;
        let mtu = syscall::if_mtu(&config.iface).map_err(XskError::Interface)?;
        let ifindex = syscall::if_index(&config.iface).map_err(XskError::Interface)?;
        let (umem, huge_pages_fallback) = if config.huge_pages {
            match Umem::new(config.frame_count, config.frame_size, true) {
                Ok(u) => (u, None),
                Err(e) => (
                    Umem::new(config.frame_count, config.frame_size, false)
                        .map_err(XskError::Umem)?,
                    Some(e.to_string()),
                ),
            }
        } else {
            (
                Umem::new(config.frame_count, config.frame_size, false).map_err(XskError::Umem)?,
                None,
            )
        };
        let huge_pages = config.huge_pages && huge_pages_fallback.is_none();
        let params = SocketParams {
            ifindex,
            queue_id: config.queue_id,
            fill_ring: config.fill_ring,
            comp_ring: config.comp_ring,
            rx_ring: config.rx_ring,
            tx_ring: config.tx_ring,
            need_wakeup: config.need_wakeup,
        };
        let modes: &[BindMode] = match config.bind {
            BindMode::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            BindMode::ZeroCopy => &[BindMode::ZeroCopy],
            BindMode::Copy => &[BindMode::Copy],
        };
        let mut last_err = None;
        let mut bound = None;
        for &mode in modes {
            match XdpSocket::bind(&umem, &params, mode == BindMode::ZeroCopy) {
                Ok(socket) => {
                    bound = Some((mode, socket));
                    break;
                }
                Err(SocketError::Umem(e)) => return Err(XskError::Umem(e)),
                Err(SocketError::Rings(e) | SocketError::Bind(e)) => {
                    last_err = Some(XskError::Bind { mode, error: e })
                }
            }
        }
        let Some((mode, socket)) = bound else {
            return Err(last_err.expect("at least one bind mode was tried"));
        };
        let redirect = if config.inhibit_prog_load {
            None
        } else {
            Some(
                RedirectProgram::attach(ifindex, config.queue_id, socket.fd())
                    .map_err(|error| XskError::Bind { mode, error })?,
            )
        };

        let capacity = (config.frame_size - XDP_PACKET_HEADROOM) as usize;
        let mut link = XskLink {
            _redirect: redirect,
            socket,
            umem,
            frame_shift: config.frame_size.trailing_zeros(),
            ledger: FrameLedger::new(config.frame_count),
            rx_descs: vec![XdpDesc::default(); config.batch].into_boxed_slice(),
            staged: vec![XdpDesc::default(); config.batch].into_boxed_slice(),
            staged_len: 0,
            fill_target: config.fill_target(),
            batch: config.batch,
            need_wakeup: config.need_wakeup,
            zero_copy: mode == BindMode::ZeroCopy,
            huge_pages,
            huge_pages_fallback,
            max_frame_len: capacity.min(mtu + ETH_HLEN),
            tx_unkicked: false,
            kick_limit: config.tx_ring / 32 + 1,
            stats: XskStats::default(),
        };
        link.refill();
        Ok(link)
    }

    /// Whether the UMEM sits on huge pages ([`XskConfig::huge_pages`]).
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    /// Why huge pages were asked for and not used (the `mmap` error), if so.
    pub fn huge_pages_fallback(&self) -> Option<&str> {
        self.huge_pages_fallback.as_deref()
    }

    /// The socket's file descriptor: for the XDP loader's XSKMAP, and for `poll(2)`.
    pub fn fd(&self) -> RawFd {
        self.socket.fd()
    }

    /// Whether the bind ended up zero-copy (false: copy mode).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Counters since creation.
    pub fn stats(&self) -> XskStats {
        self.stats
    }

    /// Where every UMEM frame is now; the fields sum to [`XskConfig::frame_count`].
    pub fn frame_accounting(&self) -> FrameAccounting {
        self.ledger.accounting()
    }

    /// Frames submitted for transmission and not yet completed, plus those staged.
    pub fn tx_in_flight(&self) -> u32 {
        self.ledger.tx_staged() + self.ledger.tx_kernel()
    }

    /// Moves every completed TX frame back to the free list. `transmit` and `flush` do this
    /// themselves; call it to settle the accounting when idle.
    pub fn reap_completions(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.socket.comp.acquire(self.batch as u32);
            for k in 0..n {
                // A completion address outside the UMEM would be a kernel bug; the frame it
                // failed to name then shows up as lost in the accounting.
                if let Some(i) = self.frame_index(self.socket.comp.get(k)) {
                    self.ledger.tx_completed(i);
                }
            }
            self.socket.comp.release(n);
            total += n as usize;
            self.stats.tx_completed += n as u64;
            if (n as usize) < self.batch {
                return total;
            }
        }
    }

    /// Blocks up to `timeout_ms` (-1: forever) until the RX ring has frames; returns whether
    /// it has. For drivers that cannot busy-poll.
    pub fn wait_readable(&mut self, timeout_ms: i32) -> io::Result<bool> {
        syscall::poll_readable(self.fd(), timeout_ms)
    }

    fn frame_index(&self, addr: u64) -> Option<u32> {
        let i = addr >> self.frame_shift;
        (i < self.umem.frame_count() as u64).then_some(i as u32)
    }

    fn frame_addr(&self, index: u32) -> u64 {
        (index as u64) << self.frame_shift
    }

    /// Lends free frames to the fill ring until `fill_target` frames are with the kernel for
    /// receiving, or the free list runs dry.
    fn refill(&mut self) {
        while self.ledger.rx_kernel() < self.fill_target {
            let want = ((self.fill_target - self.ledger.rx_kernel()) as usize)
                .min(self.batch)
                .min(self.ledger.free_len());
            if want == 0 {
                break;
            }
            let n = self.socket.fill.acquire(want as u32);
            if n == 0 {
                break;
            }
            for k in 0..n {
                let i = self.ledger.take_for_fill().expect("free_len checked above");
                // The frame came off the free list: nothing of ours refers to it any more.
                self.socket.fill.set(k, self.frame_addr(i));
            }
            self.socket.fill.release(n);
        }
        if self.ledger.rx_kernel() < self.fill_target {
            self.stats.fill_ring_short += 1;
        }
    }

    /// Returns the first `got` RX descriptors' frames to the fill ring (the free list for any
    /// the ring has no room for).
    fn recycle_rx(&mut self, got: usize) {
        let mut valid = 0;
        for k in 0..got {
            if let Some(i) = self.frame_index(self.rx_descs[k].addr) {
                self.rx_descs[valid].addr = self.frame_addr(i);
                valid += 1;
            }
        }
        // The callbacks that borrowed these frames have returned.
        let room = self.socket.fill.acquire(valid as u32) as usize;
        for k in 0..room {
            self.socket.fill.set(k as u32, self.rx_descs[k].addr);
        }
        if room > 0 {
            self.socket.fill.release(room as u32);
            self.ledger.held_to_fill(room as u32);
        }
        for k in room..valid {
            let i = self.rx_descs[k].addr >> self.frame_shift;
            self.ledger.held_to_free(i as u32);
        }
    }

    /// Moves staged TX descriptors into the TX ring, as many as it has room for.
    fn submit_staged(&mut self) {
        if self.staged_len == 0 {
            return;
        }
        let room = self.socket.tx.acquire(self.staged_len as u32) as usize;
        if room == 0 {
            return;
        }
        // Staged frames were taken off the free list and written by `transmit`; nothing
        // else refers to them until they come back on the completion ring.
        for k in 0..room {
            self.socket.tx.set(k as u32, self.staged[k]);
        }
        self.socket.tx.release(room as u32);
        self.staged.copy_within(room..self.staged_len, 0);
        self.staged_len -= room;
        self.ledger.tx_submitted(room as u32);
        self.stats.tx_frames += room as u64;
        self.tx_unkicked = true;
    }

    /// Tells the kernel to send what is in the TX ring.
    fn kick(&mut self) {
        for _ in 0..self.kick_limit {
            self.stats.kicks += 1;
            match syscall::wake_tx(self.fd()) {
                Ok(()) => {
                    self.tx_unkicked = false;
                    return;
                }
                // Copy mode sent one kernel batch and more remain in the ring.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                // Device busy or down, or out of skbs: frames stay in the ring and the next
                // flush kicks again.
                Err(_) => return,
            }
        }
    }
}

impl Link for XskLink {
    fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Tops up the fill ring, then reads RX in batches of up to `batch`, handing each frame
    /// to `f` in place and returning the batch to the fill ring after the callbacks.
    ///
    /// If `f` panics, the frames of that batch stay `held` in the accounting: lost to the
    /// link, visibly.
    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        self.refill();
        let mut done = 0;
        while done < budget {
            let want = (budget - done).min(self.batch);
            let got = self.socket.rx.acquire(want as u32) as usize;
            if got == 0 {
                break;
            }
            // Copy the descriptors out and hand the slots back at once: the frames stay ours
            // (they return through the fill ring), the slots do not need to.
            for k in 0..got {
                self.rx_descs[k] = self.socket.rx.get(k as u32);
            }
            self.socket.rx.release(got as u32);
            self.ledger.rx_received(got as u32);
            self.stats.rx_batches += 1;
            self.stats.rx_frames += got as u64;
            for d in &self.rx_descs[..got] {
                // A descriptor reaching past its frame would be a kernel bug; skip rather
                // than read outside the UMEM.
                if !self.umem.in_one_frame(d.addr, d.len) {
                    continue;
                }
                // Safety: the kernel handed this frame to us through the RX ring and will
                // not write it until we return it through the fill ring, which happens only
                // after the callbacks; its extent lies in one frame (checked above).
                f(unsafe { self.umem.bytes(d.addr, d.len) });
            }
            self.recycle_rx(got);
            done += got;
            if got < want {
                break;
            }
        }
        if done == 0 && self.need_wakeup && self.socket.fill.needs_wakeup() {
            self.stats.rx_wakeups += 1;
            syscall::wake_rx(self.fd());
        }
        done
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        if self.staged_len == self.batch {
            self.submit_staged();
            if self.staged_len == self.batch {
                self.stats.tx_ring_full += 1;
                return false;
            }
        }
        if self.ledger.free_len() == 0 {
            self.reap_completions();
        }
        let Some(i) = self.ledger.take_for_tx() else {
            self.stats.tx_no_free_frame += 1;
            return false;
        };
        let addr = self.frame_addr(i);
        let max = self.max_frame_len;
        // Safety: frame `i` came off the free list: the kernel has no claim on it and no
        // other descriptor of ours names it, so this is the only reference; `max` is at most
        // the frame size.
        let buf = unsafe { self.umem.bytes_mut(addr, max as u32) };
        let len = f(buf).min(max);
        if len == 0 {
            // The kernel rejects zero-length TX descriptors; the frame goes back.
            self.ledger.tx_cancelled(i);
            return true;
        }
        self.staged[self.staged_len] = XdpDesc {
            addr,
            len: len as u32,
            options: 0,
        };
        self.staged_len += 1;
        true
    }

    /// Reaps completions, submits the staged frames, and kicks the kernel if it asks for it
    /// (always without `need_wakeup`).
    fn flush(&mut self) {
        self.reap_completions();
        self.submit_staged();
        if !self.tx_unkicked {
            return;
        }
        if !self.need_wakeup || self.socket.tx.needs_wakeup() {
            self.kick();
        } else {
            // The driver is polling the TX ring on its own.
            self.tx_unkicked = false;
        }
    }
}
