//! [`XskLink`]: one AF_XDP socket, its UMEM and its four rings, behind the [`Link`] trait.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::config::{BindMode, XskConfig, XskError, flatten_error};
use super::ledger::{FrameAccounting, FrameLedger};
use crate::link::Link;

/// Bytes the kernel reserves in front of every received frame (`XDP_PACKET_HEADROOM`).
/// xsk-rs places every descriptor's data after it, for TX too.
const XDP_PACKET_HEADROOM: u32 = 256;

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
/// Dropping the link closes the socket and frees the UMEM. If libxdp loaded its own XDP
/// program, dropping also detaches it, through netlink in the *dropping* thread's network
/// namespace: drop the link in the namespace it was created in.
pub struct XskLink {
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    fd: RawFd,
    /// Descriptor of frame `i` with its unshifted address; the kernel may return addresses
    /// moved within a frame (RX headroom, XDP head adjustments), and every frame we lend out
    /// again starts from this one.
    canon: Box<[FrameDesc]>,
    /// log2(frame_size): `addr >> frame_shift` is the frame index (aligned UMEM chunks).
    frame_shift: u32,
    frame_size: usize,
    ledger: FrameLedger,
    /// RX batch: descriptors read from the RX ring, valid during the callbacks.
    rx_descs: Box<[FrameDesc]>,
    /// Fill and completion ring batches.
    scratch: Box<[FrameDesc]>,
    /// Written by `transmit`, submitted to the TX ring when full or at flush.
    staged: Box<[FrameDesc]>,
    staged_len: usize,
    fill_target: u32,
    batch: usize,
    need_wakeup: bool,
    zero_copy: bool,
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
            .field("fd", &self.fd)
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
        let invalid = |e: &dyn std::error::Error| XskError::InvalidConfig(e.to_string());
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(config.frame_size).map_err(|e| invalid(&e))?)
            .fill_queue_size(QueueSize::new(config.fill_ring).map_err(|e| invalid(&e))?)
            .comp_queue_size(QueueSize::new(config.comp_ring).map_err(|e| invalid(&e))?)
            .frame_headroom(0)
            .build()
            .map_err(|e| invalid(&e))?;
        let rx_size = QueueSize::new(config.rx_ring).map_err(|e| invalid(&e))?;
        let tx_size = QueueSize::new(config.tx_ring).map_err(|e| invalid(&e))?;
        let iface: Interface = config.iface.parse().map_err(|_| {
            XskError::Interface(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name contains NUL",
            ))
        })?;
        let mtu = interface_mtu(&config.iface).map_err(XskError::Interface)?;

        let frame_count = NonZeroU32::new(config.frame_count)
            .ok_or_else(|| XskError::InvalidConfig("frame_count is 0".into()))?;
        let (umem, descs) = Umem::new(umem_config, frame_count, false)
            .map_err(|e| XskError::Umem(flatten_error(&e)))?;

        let modes: &[BindMode] = match config.bind {
            BindMode::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            BindMode::ZeroCopy => &[BindMode::ZeroCopy],
            BindMode::Copy => &[BindMode::Copy],
        };
        let mut libxdp_flags = LibxdpFlags::empty();
        if config.inhibit_prog_load {
            libxdp_flags |= LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD;
        }
        let mut last_err = None;
        let mut bound = None;
        for &mode in modes {
            let mut bind_flags = if mode == BindMode::ZeroCopy {
                BindFlags::XDP_ZEROCOPY
            } else {
                BindFlags::XDP_COPY
            };
            if config.need_wakeup {
                bind_flags |= BindFlags::XDP_USE_NEED_WAKEUP;
            }
            let socket_config = SocketConfig::builder()
                .rx_queue_size(rx_size)
                .tx_queue_size(tx_size)
                .libxdp_flags(libxdp_flags)
                .bind_flags(bind_flags)
                .build();
            // Safety: the UMEM was created above and is not shared with any other socket, so
            // the shared-UMEM double-free hazard xsk-rs warns about cannot arise. A failed
            // attempt leaves the UMEM's fill/completion rings unclaimed for the next one.
            match unsafe { Socket::new(socket_config, &umem, &iface, config.queue_id) } {
                Ok((tx, rx, Some((fq, cq)))) => {
                    bound = Some((mode, tx, rx, fq, cq));
                    break;
                }
                Ok((_, _, None)) => {
                    last_err = Some(XskError::Bind {
                        mode,
                        error: io::Error::other("UMEM fill/completion rings already claimed"),
                    });
                }
                Err(e) => {
                    last_err = Some(XskError::Bind {
                        mode,
                        error: flatten_error(&e),
                    })
                }
            }
        }
        let Some((mode, tx, rx, fq, cq)) = bound else {
            return Err(last_err.expect("at least one bind mode was tried"));
        };

        let frame_shift = config.frame_size.trailing_zeros();
        let canon = descs.into_boxed_slice();
        debug_assert!(
            canon
                .iter()
                .enumerate()
                .all(|(i, d)| d.addr() >> frame_shift == i),
            "xsk-rs hands out frame descriptors in UMEM order"
        );
        let capacity = (config.frame_size - XDP_PACKET_HEADROOM) as usize;
        let fd = tx.fd().as_raw_fd();
        let mut link = XskLink {
            umem,
            fq,
            cq,
            rx,
            tx,
            fd,
            canon,
            frame_shift,
            frame_size: config.frame_size as usize,
            ledger: FrameLedger::new(config.frame_count),
            rx_descs: vec![FrameDesc::default(); config.batch].into_boxed_slice(),
            scratch: vec![FrameDesc::default(); config.batch].into_boxed_slice(),
            staged: vec![FrameDesc::default(); config.batch].into_boxed_slice(),
            staged_len: 0,
            fill_target: config.fill_target(),
            batch: config.batch,
            need_wakeup: config.need_wakeup,
            zero_copy: mode == BindMode::ZeroCopy,
            max_frame_len: capacity.min(mtu + ETH_HLEN),
            tx_unkicked: false,
            kick_limit: config.tx_ring / 32 + 1,
            stats: XskStats::default(),
        };
        link.refill();
        Ok(link)
    }

    /// The socket's file descriptor: for the XDP loader's XSKMAP, and for `poll(2)`.
    pub fn fd(&self) -> RawFd {
        self.fd
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
            // Safety: completion descriptors name frames we submitted to the TX ring; the
            // kernel is done with them once they are on the completion ring, and `scratch`
            // holds no frame we still own (it is a write-only batch buffer).
            let n = unsafe { self.cq.consume(&mut self.scratch) };
            for k in 0..n {
                // A completion address outside the UMEM would be a kernel bug; the frame it
                // failed to name then shows up as lost in the accounting.
                if let Some(i) = self.frame_index(self.scratch[k].addr()) {
                    self.ledger.tx_completed(i);
                }
            }
            total += n;
            self.stats.tx_completed += n as u64;
            if n < self.scratch.len() {
                return total;
            }
        }
    }

    /// Blocks up to `timeout_ms` (-1: forever) until the RX ring has frames; returns whether
    /// it has. For drivers that cannot busy-poll.
    pub fn wait_readable(&mut self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
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

    fn frame_index(&self, addr: usize) -> Option<u32> {
        let i = addr >> self.frame_shift;
        (i < self.canon.len()).then_some(i as u32)
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
            // Single producer: room reported now is still there when we produce.
            let n = want.min(self.fq.nb_free(want as u32) as usize);
            if n == 0 {
                break;
            }
            for k in 0..n {
                let i = self.ledger.take_for_fill().expect("free_len checked above");
                self.scratch[k] = self.canon[i as usize];
            }
            // Safety: the `n` frames came off the free list, so neither the kernel nor any
            // descriptor of ours (TX staging, RX batch) refers to them.
            let produced = unsafe { self.fq.produce(&self.scratch[..n]) };
            debug_assert_eq!(produced, n, "fill ring room was checked");
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
            if let Some(i) = self.frame_index(self.rx_descs[k].addr()) {
                self.rx_descs[valid] = self.canon[i as usize];
                valid += 1;
            }
        }
        let room = valid.min(self.fq.nb_free(valid as u32) as usize);
        if room > 0 {
            // Safety: these frames came from the RX ring and the callbacks that borrowed
            // them have returned; no other descriptor refers to them.
            let produced = unsafe { self.fq.produce(&self.rx_descs[..room]) };
            debug_assert_eq!(produced, room, "fill ring room was checked");
            self.ledger.held_to_fill(room as u32);
        }
        for k in room..valid {
            let i = self.rx_descs[k].addr() >> self.frame_shift;
            self.ledger.held_to_free(i as u32);
        }
    }

    /// Moves staged TX descriptors into the TX ring, as many as it has room for.
    fn submit_staged(&mut self) {
        if self.staged_len == 0 {
            return;
        }
        let room = self
            .staged_len
            .min(self.tx.nb_free(self.staged_len as u32) as usize);
        if room == 0 {
            return;
        }
        // Safety: staged frames were taken off the free list and written by `transmit`;
        // nothing else refers to them until they come back on the completion ring.
        let n = unsafe { self.tx.produce(&self.staged[..room]) };
        debug_assert_eq!(n, room, "TX ring room was checked");
        self.staged.copy_within(n..self.staged_len, 0);
        self.staged_len -= n;
        self.ledger.tx_submitted(n as u32);
        self.stats.tx_frames += n as u64;
        self.tx_unkicked |= n > 0;
    }

    /// Tells the kernel to send what is in the TX ring.
    fn kick(&mut self) {
        for _ in 0..self.kick_limit {
            self.stats.kicks += 1;
            // Safety: `fd` is the AF_XDP socket this link owns (open until drop); a
            // zero-length `sendto` with null buffer and address is the kernel's TX wakeup.
            let r = unsafe {
                libc::sendto(self.fd, ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0)
            };
            if r >= 0 {
                self.tx_unkicked = false;
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                // Copy mode sent one kernel batch and more remain in the ring.
                Some(libc::EAGAIN) => continue,
                // Device busy or down, or out of skbs: frames stay in the ring and the next
                // flush kicks again.
                _ => return,
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
            // Safety: `rx_descs` holds no frame we own at this point (the previous batch
            // was recycled), so overwriting it loses nothing.
            let got = unsafe { self.rx.consume(&mut self.rx_descs[..want]) };
            if got == 0 {
                break;
            }
            self.ledger.rx_received(got as u32);
            self.stats.rx_batches += 1;
            self.stats.rx_frames += got as u64;
            for d in &self.rx_descs[..got] {
                // A length reaching past the frame end would be a kernel bug; skip rather
                // than read outside the UMEM.
                let offset = d.addr() & (self.frame_size - 1);
                if offset + d.lengths().data() > self.frame_size {
                    continue;
                }
                // Safety: the kernel handed this frame to us through the RX ring and will
                // not write it until we return it through the fill ring, which happens only
                // after the callbacks; its extent lies inside the UMEM (checked above).
                let data = unsafe { self.umem.data(d) };
                f(data.contents());
            }
            self.recycle_rx(got);
            done += got;
            if got < want {
                break;
            }
        }
        if done == 0 && self.need_wakeup && self.fq.needs_wakeup() {
            self.stats.rx_wakeups += 1;
            // Safety: `fd` is our open AF_XDP socket; a zero-length non-blocking recvfrom
            // with null buffers is the kernel's RX wakeup and writes nothing.
            unsafe {
                libc::recvfrom(
                    self.fd,
                    ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                    ptr::null_mut(),
                );
            }
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
        let mut desc = self.canon[i as usize];
        let max = self.max_frame_len;
        let len = {
            // Safety: frame `i` came off the free list: the kernel has no claim on it and no
            // other descriptor of ours names it, so this is the only reference.
            let mut data = unsafe { self.umem.data_mut(&mut desc) };
            // Expose the whole writable area (`max` <= the data capacity of the frame).
            data.cursor().set_pos(max);
            let n = f(&mut data.contents_mut()[..max]).min(max);
            data.cursor().set_pos(n);
            n
        };
        if len == 0 {
            // The kernel rejects zero-length TX descriptors; the frame goes back.
            self.ledger.tx_cancelled(i);
            return true;
        }
        self.staged[self.staged_len] = desc;
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
        if !self.need_wakeup || self.tx.needs_wakeup() {
            self.kick();
        } else {
            // The driver is polling the TX ring on its own.
            self.tx_unkicked = false;
        }
    }
}

/// The MTU of `iface` in the calling thread's network namespace (also proves it exists).
fn interface_mtu(iface: &str) -> io::Result<usize> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {iface:?}"),
        ));
    }
    // Safety: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: `raw` is a freshly opened descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // Safety: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
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
