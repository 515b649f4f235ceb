//! The four single-producer/single-consumer rings of an AF_XDP socket, one type each:
//! [`FillRing`] and [`TxRing`] we produce into, [`CompletionRing`] and [`RxRing`] we consume
//! from. The kernel is the other side of each.
//!
//! # Protocol (the same as libxdp's `xsk.h`)
//! A ring is `size` (a power of two) slots plus a producer index, a consumer index and a
//! flags word, shared with the kernel. Indices run freely (wrapping `u32`); slot = index &
//! (size - 1). Each side keeps a cached copy of the other side's index and re-reads it
//! (`Acquire`) only when the cache says there is not enough; it publishes its own index with
//! `Release` after writing or reading the slots.
//!
//! Call order, the same on every ring: `acquire(max)` returns how many slots are usable now
//! (producer: free; consumer: filled), at most `max`; then `set(i, ..)` / `get(i)` for
//! `i < n`; then `release(k)` with `k <= n` publishes the first `k` (producer: hands them to
//! the consumer; consumer: hands the slots back). Nothing is published before `release`.
//!
//! Rings are normally mapped from the socket; [`pair`] (tests) builds an in-memory ring with
//! both ends, so the index arithmetic is tested without a kernel.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::if_xdp::{RingOffset, XDP_RING_NEED_WAKEUP, XdpDesc};
use super::mmap::Mmap;

/// What keeps a ring's memory alive.
#[derive(Debug)]
enum Backing {
    Mmap(#[allow(dead_code)] Mmap),
    #[cfg(test)]
    Heap(#[allow(dead_code)] std::sync::Arc<heap::Area>),
}

/// One end of a ring: pointers into the shared memory plus the cached indices.
#[derive(Debug)]
struct RingEnd<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    /// Producer end: our own index (published by `release`). Consumer end: the producer's
    /// index as last read.
    cached_prod: u32,
    /// Consumer end: our own index. Producer end: the consumer's index as last read.
    cached_cons: u32,
    _backing: Backing,
    _slot: PhantomData<T>,
}

// Safety: the pointers target memory owned by `_backing` (moved along with it); the shared
// indices are atomics. One end is used by one thread at a time (`&mut self` methods).
unsafe impl<T: Send> Send for RingEnd<T> {}

impl<T: Copy> RingEnd<T> {
    /// Maps ring `pgoff` of socket `fd`, laid out as `off` says, with `size` slots.
    fn map(fd: RawFd, off: &RingOffset, size: u32, pgoff: i64) -> io::Result<Self> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let area = Mmap::ring(fd, len, pgoff)?;
        let base = area.as_ptr();
        let at = |o: u64| {
            // Safety: the kernel's offsets lie inside the mapping it sized for them.
            NonNull::new(unsafe { base.add(o as usize) }).expect("mapping is non-null")
        };
        Ok(Self::new(
            at(off.producer).cast(),
            at(off.consumer).cast(),
            at(off.flags).cast(),
            at(off.desc).cast(),
            size,
            Backing::Mmap(area),
        ))
    }

    fn new(
        producer: NonNull<AtomicU32>,
        consumer: NonNull<AtomicU32>,
        flags: NonNull<AtomicU32>,
        slots: NonNull<T>,
        size: u32,
        backing: Backing,
    ) -> Self {
        debug_assert!(size.is_power_of_two());
        let mut end = RingEnd {
            producer,
            consumer,
            flags,
            slots,
            mask: size - 1,
            cached_prod: 0,
            cached_cons: 0,
            _backing: backing,
            _slot: PhantomData,
        };
        end.cached_prod = end.producer().load(Ordering::Acquire);
        end.cached_cons = end.consumer().load(Ordering::Acquire);
        end
    }

    fn producer(&self) -> &AtomicU32 {
        // Safety: points into the live backing memory, aligned (kernel or heap layout).
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // Safety: as `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    fn needs_wakeup(&self) -> bool {
        // Safety: as `producer`.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    // ---- producer end ----

    fn acquire_free(&mut self, max: u32) -> u32 {
        let mut free = self.size() - self.cached_prod.wrapping_sub(self.cached_cons);
        if free < max {
            self.cached_cons = self.consumer().load(Ordering::Acquire);
            free = self.size() - self.cached_prod.wrapping_sub(self.cached_cons);
        }
        free.min(max)
    }

    fn set(&mut self, i: u32, v: T) {
        let idx = self.cached_prod.wrapping_add(i) & self.mask;
        // Safety: `idx <= mask` is inside the slot array; the slot is free (the caller
        // acquired it), so the consumer does not read it until `release` publishes it.
        unsafe { self.slots.as_ptr().add(idx as usize).write_volatile(v) }
    }

    fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    // ---- consumer end ----

    fn acquire_filled(&mut self, max: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < max {
            self.cached_prod = self.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(max)
    }

    fn get(&self, i: u32) -> T {
        let idx = self.cached_cons.wrapping_add(i) & self.mask;
        // Safety: in the slot array; filled and published by the producer (acquired), and
        // not reused by it until `release` hands the slot back.
        unsafe { self.slots.as_ptr().add(idx as usize).read_volatile() }
    }

    fn consume(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.consumer().store(self.cached_cons, Ordering::Release);
    }
}

macro_rules! producer_ring {
    ($(#[$doc:meta])* $name:ident, $slot:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name(RingEnd<$slot>);

        impl $name {
            pub(crate) fn map(fd: RawFd, off: &RingOffset, size: u32, pgoff: i64) -> io::Result<Self> {
                RingEnd::map(fd, off, size, pgoff).map(Self)
            }
            /// Free slots now, at most `max` (re-reads the consumer index only if needed).
            pub(crate) fn acquire(&mut self, max: u32) -> u32 {
                self.0.acquire_free(max)
            }
            /// Writes the `i`-th acquired slot.
            pub(crate) fn set(&mut self, i: u32, v: $slot) {
                self.0.set(i, v)
            }
            /// Publishes the first `n` acquired slots to the kernel.
            pub(crate) fn release(&mut self, n: u32) {
                self.0.submit(n)
            }
            /// Whether the kernel asks for a wakeup syscall to process this ring.
            pub(crate) fn needs_wakeup(&self) -> bool {
                self.0.needs_wakeup()
            }
        }
    };
}

macro_rules! consumer_ring {
    ($(#[$doc:meta])* $name:ident, $slot:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name(RingEnd<$slot>);

        impl $name {
            pub(crate) fn map(fd: RawFd, off: &RingOffset, size: u32, pgoff: i64) -> io::Result<Self> {
                RingEnd::map(fd, off, size, pgoff).map(Self)
            }
            /// Filled slots now, at most `max` (re-reads the producer index only if needed).
            pub(crate) fn acquire(&mut self, max: u32) -> u32 {
                self.0.acquire_filled(max)
            }
            /// Reads the `i`-th acquired slot.
            pub(crate) fn get(&self, i: u32) -> $slot {
                self.0.get(i)
            }
            /// Hands the first `n` acquired slots back to the kernel.
            pub(crate) fn release(&mut self, n: u32) {
                self.0.consume(n)
            }
        }
    };
}

producer_ring!(
    /// UMEM fill ring: frame addresses we lend to the kernel for receiving.
    FillRing, u64
);
producer_ring!(
    /// TX ring: frames we hand to the kernel to send.
    TxRing, XdpDesc
);
consumer_ring!(
    /// UMEM completion ring: addresses of sent frames the kernel hands back.
    CompletionRing, u64
);
consumer_ring!(
    /// RX ring: received frames the kernel hands us.
    RxRing, XdpDesc
);

#[cfg(test)]
mod heap {
    use std::cell::UnsafeCell;

    /// Heap memory laid out like a kernel ring: indices and flags in the first 64 bytes,
    /// slots after.
    #[derive(Debug)]
    pub(super) struct Area(pub(super) Box<[UnsafeCell<u64>]>);

    // Safety: accessed only through the atomics and the slot protocol of `RingEnd`.
    unsafe impl Sync for Area {}
    // Safety: as above.
    unsafe impl Send for Area {}
}

/// An in-memory ring of `size` slots: (producer end, consumer end), sharing heap memory laid
/// out like a kernel ring (tests only).
#[cfg(test)]
fn pair<T: Copy>(size: u32) -> (RingEnd<T>, RingEnd<T>) {
    use std::cell::UnsafeCell;
    use std::sync::Arc;
    assert!(size.is_power_of_two());
    let words = 8 + (size as usize * std::mem::size_of::<T>()).div_ceil(8);
    let area: Arc<heap::Area> = Arc::new(heap::Area(
        (0..words).map(|_| UnsafeCell::new(0u64)).collect(),
    ));
    let make = |area: &Arc<heap::Area>| {
        let base = area.0.as_ptr() as *mut u8;
        // Safety: offsets 0, 4, 8 and 64 are inside the `words * 8`-byte area and suitably
        // aligned (the area is 8-byte aligned, slot types need at most 8).
        let at = |o: usize| NonNull::new(unsafe { base.add(o) }).expect("non-null");
        RingEnd::<T>::new(
            at(0).cast(),
            at(4).cast(),
            at(8).cast(),
            at(64).cast(),
            size,
            Backing::Heap(area.clone()),
        )
    };
    (make(&area), make(&area))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_before_release() {
        let (mut p, mut c) = pair::<u64>(8);
        assert_eq!(p.acquire_free(3), 3);
        for i in 0..3 {
            p.set(i, 100 + i as u64);
        }
        assert_eq!(c.acquire_filled(8), 0, "published before release");
        p.submit(2);
        assert_eq!(c.acquire_filled(8), 2);
        assert_eq!((c.get(0), c.get(1)), (100, 101));
        c.consume(2);
        // The unreleased third slot was never published; the producer rewrites it.
        assert_eq!(p.acquire_free(8), 8);
    }

    #[test]
    fn a_full_ring_refuses_until_the_consumer_releases() {
        let (mut p, mut c) = pair::<XdpDesc>(4);
        assert_eq!(p.acquire_free(10), 4);
        for i in 0..4 {
            p.set(
                i,
                XdpDesc {
                    addr: i as u64 * 2048,
                    len: 60 + i,
                    options: 0,
                },
            );
        }
        p.submit(4);
        assert_eq!(p.acquire_free(1), 0, "full");
        assert_eq!(c.acquire_filled(1), 1);
        assert_eq!(c.get(0).len, 60);
        c.consume(1);
        assert_eq!(p.acquire_free(4), 1, "one slot handed back");
        assert_eq!(c.acquire_filled(10), 3);
    }

    #[test]
    fn indices_wrap_around_u32_and_the_slot_array() {
        let (mut p, mut c) = pair::<u64>(4);
        // Start both ends near u32::MAX, as after ~4 billion frames.
        let start = u32::MAX - 2;
        p.cached_prod = start;
        p.cached_cons = start;
        p.producer().store(start, Ordering::Relaxed);
        p.consumer().store(start, Ordering::Relaxed);
        c.cached_prod = start;
        c.cached_cons = start;
        let mut next = 0u64;
        let mut expect = 0u64;
        for round in 0..10 {
            let n = p.acquire_free(3);
            assert_eq!(n, 3, "round {round}");
            for i in 0..n {
                p.set(i, next);
                next += 1;
            }
            p.submit(n);
            let m = c.acquire_filled(8);
            assert_eq!(m, 3);
            for i in 0..m {
                assert_eq!(c.get(i), expect);
                expect += 1;
            }
            c.consume(m);
        }
        assert!(p.cached_prod < start, "the index wrapped");
    }

    #[test]
    fn need_wakeup_reads_the_flag_word() {
        let (p, c) = pair::<u64>(4);
        assert!(!p.needs_wakeup());
        // Safety: test-only poke at the shared flags word.
        unsafe { c.flags.as_ref() }.store(XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(p.needs_wakeup());
    }

    #[test]
    fn producer_and_consumer_on_two_threads_agree() {
        let (mut p, mut c) = pair::<u64>(64);
        const N: u64 = 200_000;
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut next = 0;
                while next < N {
                    let n = p.acquire_free(16).min((N - next) as u32);
                    for i in 0..n {
                        p.set(i, next + i as u64);
                    }
                    p.submit(n);
                    next += n as u64;
                }
            });
            let mut expect = 0;
            while expect < N {
                let n = c.acquire_filled(32);
                for i in 0..n {
                    assert_eq!(c.get(i), expect);
                    expect += 1;
                }
                c.consume(n);
            }
        });
    }
}
