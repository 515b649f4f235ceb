//! An in-memory [`Link`]: an RX queue and a TX queue over a preallocated pool of frames.
//!
//! Used by unit tests (craft frames with [`MemoryLink::push_rx`], read the stack's output with
//! [`MemoryLink::pop_tx`]), by the simulator (`crate::sim`), and by micro-benchmarks that join
//! two links directly with [`transfer`] / [`exchange`].
//!
//! Ownership: every frame buffer of the slab is in exactly one place: the RX free list, the RX
//! queue, the TX free list or the TX queue. RX and TX have separate pools (like an AF_XDP fill
//! ring and TX ring), so a flood of received frames cannot starve transmission.
//! All memory is allocated in [`MemoryLink::new`]; nothing is allocated per frame.
//!
//! Visibility: frames written by [`Link::transmit`] become visible to [`MemoryLink::pop_tx`]
//! and [`transfer`] only after [`Link::flush`], as on a real NIC ring.
//!
//! Counters ([`MemoryLinkStats`]): `rx_*` count frames handed to the stack by
//! [`Link::receive`]; `tx_*` count non-empty frames written through [`Link::transmit`];
//! `*_dropped_*` count frames refused.

use super::Link;
use std::collections::VecDeque;

/// Sizes of a [`MemoryLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLinkConfig {
    /// Largest frame, Ethernet header included, FCS excluded. Default 1514 (1500-byte MTU).
    pub max_frame_len: usize,
    /// Frames the RX queue holds before [`MemoryLink::push_rx`] refuses more. Default 1024.
    pub rx_frames: usize,
    /// Frames the stack can transmit before they are drained. Default 1024.
    pub tx_frames: usize,
}

impl Default for MemoryLinkConfig {
    fn default() -> Self {
        MemoryLinkConfig {
            max_frame_len: 1514,
            rx_frames: 1024,
            tx_frames: 1024,
        }
    }
}

/// Frame counters of a [`MemoryLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryLinkStats {
    /// Frames handed to the stack by `receive`.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames `push_rx`/`transfer` refused because the RX queue was full.
    pub rx_dropped_no_buffer: u64,
    /// Frames `push_rx`/`transfer` refused because they exceed `max_frame_len`.
    pub rx_dropped_oversize: u64,
    /// Non-empty frames written through `transmit`.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// `transmit` calls refused because every TX frame was in use.
    pub tx_dropped_no_buffer: u64,
}

/// A frame in a queue: which slab slot, how many bytes are valid.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u32,
    len: u32,
}

/// An in-memory frame link. See the module docs.
pub struct MemoryLink {
    config: MemoryLinkConfig,
    /// `rx_frames + tx_frames` buffers of `max_frame_len` bytes each; slots below
    /// `rx_frames` belong to RX, the others to TX.
    slab: Box<[u8]>,
    rx_free: Vec<u32>,
    tx_free: Vec<u32>,
    rx: VecDeque<Slot>,
    tx: VecDeque<Slot>,
    /// The first `tx_flushed` frames of `tx` have been published by `flush`.
    tx_flushed: usize,
    stats: MemoryLinkStats,
}

impl Default for MemoryLink {
    fn default() -> Self {
        MemoryLink::new(MemoryLinkConfig::default())
    }
}

impl core::fmt::Debug for MemoryLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryLink")
            .field("config", &self.config)
            .field("rx_queued", &self.rx.len())
            .field("tx_queued", &self.tx.len())
            .field("tx_flushed", &self.tx_flushed)
            .field("stats", &self.stats)
            .finish()
    }
}

impl MemoryLink {
    /// Allocates all buffers up front.
    ///
    /// Panics if `max_frame_len` is zero or either pool is empty or has more than 2^31 slots.
    pub fn new(config: MemoryLinkConfig) -> MemoryLink {
        assert!(config.max_frame_len > 0, "max_frame_len must be positive");
        assert!(
            config.rx_frames > 0 && config.tx_frames > 0,
            "a MemoryLink needs at least one RX and one TX frame"
        );
        let slots = config.rx_frames + config.tx_frames;
        assert!(slots <= 1 << 31, "too many frames");
        let slab = vec![0u8; slots * config.max_frame_len].into_boxed_slice();
        // Reversed so that `pop` hands out the lowest slots first: easier to read in a debugger.
        let rx_free = (0..config.rx_frames as u32).rev().collect();
        let tx_free = (config.rx_frames as u32..slots as u32).rev().collect();
        MemoryLink {
            config,
            slab,
            rx_free,
            tx_free,
            rx: VecDeque::with_capacity(config.rx_frames),
            tx: VecDeque::with_capacity(config.tx_frames),
            tx_flushed: 0,
            stats: MemoryLinkStats::default(),
        }
    }

    /// A default link with a different `max_frame_len`.
    pub fn with_max_frame_len(max_frame_len: usize) -> MemoryLink {
        MemoryLink::new(MemoryLinkConfig {
            max_frame_len,
            ..MemoryLinkConfig::default()
        })
    }

    pub fn config(&self) -> MemoryLinkConfig {
        self.config
    }

    pub fn stats(&self) -> MemoryLinkStats {
        self.stats
    }

    /// Frames waiting in the RX queue.
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Published (flushed) frames waiting to be drained from the TX queue.
    pub fn tx_len(&self) -> usize {
        self.tx_flushed
    }

    /// Frames transmitted but not yet published by `flush`.
    pub fn tx_unflushed(&self) -> usize {
        self.tx.len() - self.tx_flushed
    }

    fn frame(&self, slot: Slot) -> &[u8] {
        let start = slot.index as usize * self.config.max_frame_len;
        &self.slab[start..start + slot.len as usize]
    }

    fn frame_buf_mut(&mut self, index: u32) -> &mut [u8] {
        let start = index as usize * self.config.max_frame_len;
        &mut self.slab[start..start + self.config.max_frame_len]
    }

    /// Queues a received frame, as if it had arrived from the wire. Returns `false` (and counts
    /// it) if the RX queue is full or the frame is longer than `max_frame_len`.
    pub fn push_rx(&mut self, frame: &[u8]) -> bool {
        if frame.len() > self.config.max_frame_len {
            self.stats.rx_dropped_oversize += 1;
            return false;
        }
        let Some(index) = self.rx_free.pop() else {
            self.stats.rx_dropped_no_buffer += 1;
            return false;
        };
        self.frame_buf_mut(index)[..frame.len()].copy_from_slice(frame);
        self.rx.push_back(Slot {
            index,
            len: frame.len() as u32,
        });
        true
    }

    /// Takes one received frame out of the RX queue without counting it as received by the
    /// stack: for tests that use a link as a passive endpoint.
    pub fn pop_rx<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let slot = self.rx.pop_front()?;
        let r = f(self.frame(slot));
        self.rx_free.push(slot.index);
        Some(r)
    }

    /// Transmits `frame` and publishes it (flushes, which also publishes earlier unflushed
    /// frames). For tests that use a link as a raw endpoint. Returns `false` if no TX frame is
    /// free. Panics if `frame` is longer than `max_frame_len` (a bug in the test).
    pub fn push_tx(&mut self, frame: &[u8]) -> bool {
        assert!(
            frame.len() <= self.config.max_frame_len,
            "push_tx: frame of {} bytes exceeds max_frame_len {}",
            frame.len(),
            self.config.max_frame_len
        );
        let sent = self.transmit(|buf| {
            buf[..frame.len()].copy_from_slice(frame);
            frame.len()
        });
        self.flush();
        sent
    }

    /// Removes the oldest published TX frame and passes it to `f`.
    pub fn pop_tx<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.tx_flushed == 0 {
            return None;
        }
        let slot = self.tx.pop_front()?;
        self.tx_flushed -= 1;
        let r = f(self.frame(slot));
        self.tx_free.push(slot.index);
        Some(r)
    }

    /// Removes every published TX frame, oldest first. Returns how many.
    pub fn drain_tx(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while self.pop_tx(&mut f).is_some() {
            n += 1;
        }
        n
    }

    /// Published TX frames, oldest first, copied out (tests only: allocates).
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.tx_flushed);
        self.drain_tx(|f| out.push(f.to_vec()));
        out
    }
}

impl Link for MemoryLink {
    fn max_frame_len(&self) -> usize {
        self.config.max_frame_len
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(slot) = self.rx.pop_front() else {
                break;
            };
            let start = slot.index as usize * self.config.max_frame_len;
            f(&self.slab[start..start + slot.len as usize]);
            self.rx_free.push(slot.index);
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += u64::from(slot.len);
            n += 1;
        }
        n
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        let Some(index) = self.tx_free.pop() else {
            self.stats.tx_dropped_no_buffer += 1;
            return false;
        };
        let max = self.config.max_frame_len;
        let len = f(self.frame_buf_mut(index));
        // A length beyond the buffer would describe bytes the caller never wrote: a bug in the
        // caller, not a condition to recover from.
        assert!(
            len <= max,
            "transmit callback returned {len} > max_frame_len {max}"
        );
        if len == 0 {
            self.tx_free.push(index);
        } else {
            self.tx.push_back(Slot {
                index,
                len: len as u32,
            });
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += len as u64;
        }
        true
    }

    fn flush(&mut self) {
        self.tx_flushed = self.tx.len();
    }
}

/// Moves the published TX frames of `from` into the RX queue of `to`, oldest first, by
/// copying (the two links have separate slabs). Stops when `to`'s RX queue is full, leaving the
/// rest in `from`'s TX queue: back-pressure, not loss. Frames longer than `to`'s
/// `max_frame_len` are dropped and counted in `to`'s `rx_dropped_oversize`.
/// Returns how many frames reached `to`.
pub fn transfer(from: &mut MemoryLink, to: &mut MemoryLink) -> usize {
    let mut moved = 0;
    while from.tx_flushed > 0 {
        let slot = from.tx[0];
        if slot.len as usize <= to.config.max_frame_len && to.rx_free.is_empty() {
            break;
        }
        from.tx.pop_front();
        from.tx_flushed -= 1;
        if to.push_rx(from.frame(slot)) {
            moved += 1;
        }
        from.tx_free.push(slot.index);
    }
    moved
}

/// [`transfer`] in both directions (`a` to `b` first). Returns the frames moved.
pub fn exchange(a: &mut MemoryLink, b: &mut MemoryLink) -> usize {
    transfer(a, b) + transfer(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MemoryLink {
        MemoryLink::new(MemoryLinkConfig {
            max_frame_len: 64,
            rx_frames: 4,
            tx_frames: 3,
        })
    }

    #[test]
    fn rx_fifo_budget_and_recycling() {
        let mut l = small();
        for i in 0..4u8 {
            assert!(l.push_rx(&[i; 10]));
        }
        assert!(!l.push_rx(&[9; 10]), "RX queue holds 4");
        assert_eq!(l.stats().rx_dropped_no_buffer, 1);
        let mut seen = Vec::new();
        assert_eq!(l.receive(3, |f| seen.push(f[0])), 3);
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(l.rx_len(), 1);
        // Buffers came back: three more fit.
        for i in 4..7u8 {
            assert!(l.push_rx(&[i; 20]));
        }
        assert!(!l.push_rx(&[0; 1]));
        seen.clear();
        assert_eq!(l.receive(100, |f| seen.push(f[0])), 4);
        assert_eq!(seen, [3, 4, 5, 6]);
        assert_eq!(l.stats().rx_frames, 7);
        assert_eq!(l.stats().rx_bytes, 3 * 10 + 10 + 3 * 20);
        assert_eq!(l.receive(10, |_| panic!("empty")), 0);
    }

    #[test]
    fn oversize_rx_refused() {
        let mut l = small();
        assert!(!l.push_rx(&[0; 65]));
        assert!(l.push_rx(&[0; 64]));
        assert_eq!(l.stats().rx_dropped_oversize, 1);
    }

    #[test]
    fn tx_visible_only_after_flush() {
        let mut l = small();
        assert_eq!(l.max_frame_len(), 64);
        assert!(l.transmit(|buf| {
            assert_eq!(buf.len(), 64);
            buf[..3].copy_from_slice(b"abc");
            3
        }));
        assert_eq!(l.tx_len(), 0);
        assert_eq!(l.tx_unflushed(), 1);
        assert!(l.pop_tx(|_| ()).is_none());
        l.flush();
        assert_eq!(l.pop_tx(|f| f.to_vec()), Some(b"abc".to_vec()));
        assert_eq!(l.stats().tx_frames, 1);
        assert_eq!(l.stats().tx_bytes, 3);
    }

    #[test]
    fn tx_exhaustion_and_zero_length() {
        let mut l = small();
        // A zero-length write sends nothing and keeps the buffer.
        assert!(l.transmit(|_| 0));
        assert_eq!(l.stats().tx_frames, 0);
        for i in 0..3u8 {
            assert!(l.transmit(|b| {
                b[0] = i;
                1
            }));
        }
        assert!(!l.transmit(|_| panic!("must not be called without a free frame")));
        assert_eq!(l.stats().tx_dropped_no_buffer, 1);
        l.flush();
        let mut got = Vec::new();
        assert_eq!(l.drain_tx(|f| got.push(f[0])), 3);
        assert_eq!(got, [0, 1, 2]);
        assert!(l.transmit(|_| 1), "buffers recycled after drain");
    }

    #[test]
    #[should_panic(expected = "max_frame_len")]
    fn transmit_overlong_length_panics() {
        small().transmit(|_| 65);
    }

    #[test]
    fn push_tx_and_pop_rx_for_raw_endpoints() {
        let mut l = small();
        assert!(l.push_tx(b"hello"));
        assert_eq!(l.take_tx(), vec![b"hello".to_vec()]);
        assert!(l.push_rx(b"x"));
        assert_eq!(l.pop_rx(|f| f.len()), Some(1));
        assert_eq!(l.pop_rx(|f| f.len()), None);
        assert_eq!(l.stats().rx_frames, 0, "pop_rx is not a stack receive");
    }

    #[test]
    fn transfer_moves_and_applies_back_pressure() {
        let mut a = small();
        let mut b = small();
        for i in 0..3u8 {
            assert!(a.push_tx(&[i; 8]));
        }
        // Fill three of b's four RX slots: only one more frame fits.
        for _ in 0..3 {
            assert!(b.push_rx(&[0xee]));
        }
        assert_eq!(transfer(&mut a, &mut b), 1);
        assert_eq!(a.tx_len(), 2, "the rest waits in a's TX queue");
        assert_eq!(b.receive(10, |_| ()), 4);
        assert_eq!(exchange(&mut a, &mut b), 2);
        let mut got = Vec::new();
        b.receive(10, |f| got.push(f[0]));
        assert_eq!(got, [1, 2]);
        assert_eq!(b.stats().rx_dropped_no_buffer, 0);
    }

    #[test]
    fn transfer_drops_oversize_for_receiver() {
        let mut a = MemoryLink::with_max_frame_len(9000);
        let mut b = small();
        assert!(a.push_tx(&[1; 100]));
        assert!(a.push_tx(&[2; 10]));
        assert_eq!(transfer(&mut a, &mut b), 1);
        assert_eq!(b.stats().rx_dropped_oversize, 1);
        assert_eq!(b.pop_rx(|f| f[0]), Some(2));
    }

    #[test]
    fn steady_state_ping_pong_keeps_pools_whole() {
        let mut a = MemoryLink::default();
        let mut b = MemoryLink::default();
        for round in 0..10_000u32 {
            assert!(a.transmit(|buf| {
                buf[..4].copy_from_slice(&round.to_be_bytes());
                60
            }));
            a.flush();
            assert_eq!(exchange(&mut a, &mut b), 1);
            let mut echoed = [0u8; 60];
            assert_eq!(
                b.receive(8, |f| {
                    echoed.copy_from_slice(f);
                }),
                1
            );
            assert!(b.transmit(|buf| {
                buf[..60].copy_from_slice(&echoed);
                60
            }));
            b.flush();
            assert_eq!(exchange(&mut a, &mut b), 1);
            assert_eq!(a.receive(8, |f| assert_eq!(f[..4], round.to_be_bytes())), 1);
        }
        for l in [&a, &b] {
            assert_eq!(l.rx_free.len(), l.config.rx_frames);
            assert_eq!(l.tx_free.len(), l.config.tx_frames);
        }
        assert_eq!(a.stats().tx_frames, 10_000);
        assert_eq!(b.stats().rx_frames, 10_000);
    }
}
