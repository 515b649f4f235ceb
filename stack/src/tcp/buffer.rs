//! Fixed-capacity byte rings (never allocated per segment) and their pooled storage.
//!
//! [`RingBuffer`] is used for the send direction: it holds unacknowledged and unsent bytes
//! starting at the sequence number of its first byte. [`Storage`] is the memory behind a
//! ring, shared with the receive buffer.
//!
//! # Allocation
//! [`Storage`] is allocated lazily, on the first write: a connection that never carries data
//! (most of a churn workload: handshake and teardown only) never allocates its buffers, and
//! creating one is free. Dropped storage goes back to a per-thread free pool of blocks sorted
//! by size, which later storage of the same capacity takes from instead of allocating and
//! zeroing a fresh block. A stack is owned by one thread (one core), so its connections
//! recycle each other's buffers: after warm-up, churn with data allocates nothing per
//! connection ([`pool_stats`] counts fresh allocations, which tests use to check it).
//!
//! The pool is bounded ([`set_pool_limit`], default [`DEFAULT_POOL_LIMIT`] bytes per thread):
//! beyond the limit dropped blocks are freed, so a burst of connections does not pin its
//! high-water mark of memory forever. Reused blocks hold stale bytes from their previous
//! user; nothing reads past the bytes written since (rings track their valid length).

use std::cell::RefCell;

/// Bytes of free blocks a thread's pool keeps at most, unless [`set_pool_limit`] says
/// otherwise: 64 MiB (512 connections' worth of 64 KiB send and receive buffers).
pub const DEFAULT_POOL_LIMIT: usize = 64 << 20;

/// Counters of the calling thread's storage pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Blocks allocated fresh (the pool had none of that size).
    pub allocated: u64,
    /// Blocks taken from the pool.
    pub reused: u64,
    /// Blocks freed because the pool was at its limit.
    pub released: u64,
    /// Free blocks held now, and their bytes.
    pub pooled_blocks: usize,
    pub pooled_bytes: usize,
}

struct Pool {
    /// Free blocks per size class (a stack uses one or two sizes: a linear scan is fastest).
    classes: Vec<(usize, Vec<Box<[u8]>>)>,
    limit: usize,
    stats: PoolStats,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            classes: Vec::new(),
            limit: DEFAULT_POOL_LIMIT,
            stats: PoolStats {
                allocated: 0,
                reused: 0,
                released: 0,
                pooled_blocks: 0,
                pooled_bytes: 0,
            },
        })
    };
}

fn take_block(cap: usize) -> Box<[u8]> {
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let block = p
                .classes
                .iter_mut()
                .find(|(c, _)| *c == cap)
                .and_then(|(_, free)| free.pop());
            match &block {
                Some(_) => {
                    p.stats.reused += 1;
                    p.stats.pooled_blocks -= 1;
                    p.stats.pooled_bytes -= cap;
                }
                None => p.stats.allocated += 1,
            }
            block
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| vec![0u8; cap].into_boxed_slice())
}

fn give_block(block: Box<[u8]>) {
    let cap = block.len();
    // During thread teardown the pool may be gone: the block is then simply freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.stats.pooled_bytes + cap > p.limit {
            p.stats.released += 1;
            return;
        }
        p.stats.pooled_blocks += 1;
        p.stats.pooled_bytes += cap;
        match p.classes.iter_mut().find(|(c, _)| *c == cap) {
            Some((_, free)) => free.push(block),
            None => p.classes.push((cap, vec![block])),
        }
    });
}

/// The calling thread's pool counters.
pub fn pool_stats() -> PoolStats {
    POOL.try_with(|p| p.borrow().stats).unwrap_or_default()
}

/// Sets how many bytes of free blocks the calling thread's pool keeps (0 disables pooling);
/// blocks beyond a lowered limit are freed now.
pub fn set_pool_limit(bytes: usize) {
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        p.limit = bytes;
        let mut excess = Vec::new();
        while p.stats.pooled_bytes > p.limit {
            let Some(block) = p.classes.iter_mut().find_map(|(_, free)| free.pop()) else {
                break;
            };
            p.stats.pooled_bytes -= block.len();
            p.stats.pooled_blocks -= 1;
            p.stats.released += 1;
            excess.push(block);
        }
        drop(p);
        drop(excess);
    });
}

/// Byte storage of a fixed capacity, allocated on first write from the thread's pool and
/// returned to it on drop. See the module docs.
#[derive(Debug)]
pub struct Storage {
    /// Empty until first written; then exactly `cap` bytes.
    bytes: Box<[u8]>,
    cap: usize,
}

impl Storage {
    /// Storage of `capacity` bytes. Allocates nothing.
    pub fn new(capacity: usize) -> Storage {
        Storage {
            bytes: Box::default(),
            cap: capacity,
        }
    }
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Whether the block has been allocated.
    #[inline]
    pub fn is_allocated(&self) -> bool {
        self.cap > 0 && self.bytes.len() == self.cap
    }
    /// The bytes (empty if never written). Only bytes written since this storage was
    /// allocated are meaningful.
    #[inline]
    pub fn get(&self) -> &[u8] {
        &self.bytes
    }
    /// The bytes, for writing: allocates (from the pool) on first use.
    #[inline]
    pub fn get_mut(&mut self) -> &mut [u8] {
        if self.bytes.len() != self.cap {
            self.bytes = take_block(self.cap);
        }
        &mut self.bytes
    }
}

impl Clone for Storage {
    fn clone(&self) -> Storage {
        let mut s = Storage::new(self.cap);
        if self.is_allocated() {
            s.get_mut().copy_from_slice(&self.bytes);
        }
        s
    }
}

impl Drop for Storage {
    #[inline]
    fn drop(&mut self) {
        // Empty until first written, then exactly `cap` bytes: not empty is `is_allocated`,
        // one test (and the empty box left behind frees nothing).
        debug_assert_eq!(!self.bytes.is_empty(), self.is_allocated());
        if !self.bytes.is_empty() {
            give_block(core::mem::take(&mut self.bytes));
        }
    }
}

/// A byte ring buffer of fixed capacity over lazily allocated, pooled [`Storage`].
#[derive(Debug, Clone)]
pub struct RingBuffer {
    storage: Storage,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// Back to [`RingBuffer::new`]'s state (same capacity): the storage, if allocated, goes
    /// back to the pool as a drop would return it. For a control block kept for reuse.
    #[inline]
    pub(crate) fn release(&mut self) {
        // Unallocated storage never held a byte (`enqueue` allocates before the first one is
        // stored, `consume` and `dequeue_into` need one): head and length are 0 already.
        debug_assert!(self.storage.is_allocated() || (self.head == 0 && self.len == 0));
        if self.storage.is_allocated() {
            self.storage = Storage::new(self.storage.cap);
            self.head = 0;
            self.len = 0;
        }
    }
    /// A buffer of `capacity` bytes. Allocates nothing until the first byte is enqueued.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            storage: Storage::new(capacity),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.capacity()
    }
    /// Whether the storage has been allocated.
    #[inline]
    pub fn is_allocated(&self) -> bool {
        self.storage.is_allocated()
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken.
    pub fn enqueue(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let cap = self.capacity();
        if n == 0 {
            return 0;
        }
        let tail = (self.head + self.len) % cap;
        let first = n.min(cap - tail);
        // Allocates on the first bytes (once per buffer, see the module docs).
        let storage = self.storage.get_mut();
        storage[tail..tail + first].copy_from_slice(&data[..first]);
        storage[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// Drops up to `n` bytes from the front; returns how many were dropped.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        if n == 0 {
            return 0;
        }
        self.head = (self.head + n) % self.capacity();
        self.len -= n;
        if self.len == 0 {
            // Keep segments contiguous as long as possible.
            self.head = 0;
        }
        n
    }

    /// The longest contiguous run of bytes starting `offset` bytes from the front, at most
    /// `max` long. Empty when `offset >= len`.
    #[inline]
    pub fn contiguous_at(&self, offset: usize, max: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let cap = self.capacity();
        let start = (self.head + offset) % cap;
        let avail = (self.len - offset).min(max);
        let run = avail.min(cap - start);
        &self.storage.get()[start..start + run]
    }

    /// The readable bytes at the front (the first contiguous run).
    pub fn front(&self) -> &[u8] {
        self.contiguous_at(0, usize::MAX)
    }

    /// Copies up to `buf.len()` bytes from the front into `buf` and consumes them.
    pub fn dequeue_into(&mut self, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let run = self.contiguous_at(0, buf.len() - done);
            if run.is_empty() {
                break;
            }
            let n = run.len();
            buf[done..done + n].copy_from_slice(run);
            self.consume(n);
            done += n;
        }
        done
    }

    /// Discards everything.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_reads_back() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.enqueue(b"abcdef"), 6);
        assert_eq!(r.consume(4), 4);
        assert_eq!(r.enqueue(b"ghijklmn"), 6); // only 6 free
        assert_eq!(r.len(), 8);
        assert_eq!(r.free(), 0);
        assert_eq!(r.contiguous_at(0, 100), b"efgh");
        assert_eq!(r.contiguous_at(4, 100), b"ijkl");
        assert_eq!(r.contiguous_at(5, 2), b"jk");
        assert_eq!(r.contiguous_at(8, 2), b"");
        let mut out = [0u8; 8];
        assert_eq!(r.dequeue_into(&mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert!(r.is_empty());
    }

    /// `release` (which stores head and length only for allocated storage) leaves
    /// `new`'s state after any use: never written, written, emptied, cleared, part read.
    #[test]
    fn release_returns_to_the_new_state() {
        type Use = fn(&mut RingBuffer);
        let uses: [Use; 6] = [
            |_| {},
            |r| {
                r.enqueue(&[]);
            },
            |r| {
                r.enqueue(&[1; 10]);
            },
            |r| {
                r.enqueue(&[1; 10]);
                r.consume(10);
            },
            |r| {
                r.enqueue(&[1; 10]);
                r.clear();
            },
            |r| {
                r.enqueue(&[1; 14]);
                r.consume(9);
                r.enqueue(&[2; 3]);
            },
        ];
        for u in uses {
            let mut r = RingBuffer::new(16);
            u(&mut r);
            r.release();
            assert!(!r.is_allocated());
            assert_eq!((r.head, r.len, r.capacity()), (0, 0, 16));
            assert_eq!(r.enqueue(b"abc"), 3);
            assert_eq!(r.front(), b"abc");
        }
    }

    #[test]
    fn storage_is_allocated_on_first_enqueue_only() {
        let mut r = RingBuffer::new(16);
        assert!(!r.is_allocated());
        assert_eq!((r.capacity(), r.free(), r.len()), (16, 16, 0));
        assert_eq!(r.front(), b"");
        assert_eq!(r.consume(3), 0);
        let mut out = [0u8; 4];
        assert_eq!(r.dequeue_into(&mut out), 0);
        assert_eq!(r.enqueue(b""), 0);
        assert!(!r.is_allocated(), "an empty enqueue allocates nothing");
        assert_eq!(r.enqueue(b"abc"), 3);
        assert!(r.is_allocated());
        assert_eq!(r.front(), b"abc");
        r.clear();
        assert!(r.is_allocated(), "clear keeps the storage for reuse");
        assert_eq!(r.front(), b"");
        let mut z = RingBuffer::new(0);
        assert_eq!(z.enqueue(b"x"), 0);
        assert!(!z.is_allocated());
    }

    #[test]
    fn dropped_storage_is_reused_by_the_next_of_its_size() {
        // Tests run on their own threads: this pool is ours alone.
        const CAP: usize = 4096 + 17;
        let before = pool_stats();
        let mut a = RingBuffer::new(CAP);
        a.enqueue(b"secret");
        drop(a);
        let s = pool_stats();
        assert_eq!(s.allocated, before.allocated + 1);
        assert_eq!((s.pooled_blocks, s.pooled_bytes), (1, CAP));
        let mut b = RingBuffer::new(CAP);
        assert_eq!(b.front(), b"", "stale bytes are never visible");
        b.enqueue(b"xy");
        assert_eq!(b.front(), b"xy");
        let s = pool_stats();
        assert_eq!(
            (s.allocated, s.reused),
            (before.allocated + 1, before.reused + 1)
        );
        assert_eq!(s.pooled_blocks, 0);
        // Another size is allocated fresh; a clone has its own block.
        let mut c = RingBuffer::new(CAP + 1);
        c.enqueue(b"z");
        let d = b.clone();
        assert_eq!(d.front(), b"xy");
        assert_eq!(pool_stats().allocated, before.allocated + 3);
        drop((b, c, d));
        assert_eq!(pool_stats().pooled_blocks, 3);
    }

    #[test]
    fn pool_limit_bounds_the_memory_kept() {
        set_pool_limit(10_000);
        let bufs: Vec<RingBuffer> = (0..5)
            .map(|_| {
                let mut r = RingBuffer::new(4000);
                r.enqueue(b"x");
                r
            })
            .collect();
        let released = pool_stats().released;
        drop(bufs);
        let s = pool_stats();
        assert_eq!((s.pooled_blocks, s.pooled_bytes), (2, 8000));
        assert_eq!(s.released, released + 3);
        set_pool_limit(4000);
        assert_eq!(pool_stats().pooled_blocks, 1);
        set_pool_limit(0);
        assert_eq!(pool_stats().pooled_bytes, 0);
    }
}
