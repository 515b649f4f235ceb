//! A fixed-capacity byte ring (never allocated per segment).
//!
//! Used for both directions: the send buffer holds unacknowledged and unsent bytes starting at
//! the sequence number of its first byte; the receive buffer holds in-order bytes the
//! application has not read yet.
//!
//! Storage is allocated lazily, on the first [`RingBuffer::enqueue`] that has bytes to store:
//! a connection that never carries data (most of a churn workload: handshake and teardown
//! only) never allocates its buffers, and [`RingBuffer::new`] is free. Once allocated, the
//! storage stays for the buffer's lifetime, and a stack recycles allocated buffers of finished
//! connections into new ones, so steady-state churn allocates nothing.

/// A byte ring buffer of fixed capacity.
#[derive(Debug, Clone)]
pub struct RingBuffer {
    /// Empty until the first byte is enqueued; then exactly `cap` bytes.
    storage: Box<[u8]>,
    cap: usize,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// A buffer of `capacity` bytes. Allocates nothing until the first byte is enqueued.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            storage: Box::default(),
            cap: capacity,
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Whether the storage has been allocated (a buffer worth recycling).
    #[inline]
    pub fn is_allocated(&self) -> bool {
        self.storage.len() == self.cap && self.cap > 0
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
        if self.storage.is_empty() {
            // First bytes: allocate now (once per buffer, see the module docs).
            self.storage = vec![0u8; cap].into_boxed_slice();
        }
        let tail = (self.head + self.len) % cap;
        let first = n.min(cap - tail);
        self.storage[tail..tail + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
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
    pub fn contiguous_at(&self, offset: usize, max: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let cap = self.capacity();
        let start = (self.head + offset) % cap;
        let avail = (self.len - offset).min(max);
        let run = avail.min(cap - start);
        &self.storage[start..start + run]
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
}
