//! A fixed-capacity byte ring, allocated once per connection (never per segment).
//!
//! Used for both directions: the send buffer holds unacknowledged and unsent bytes starting at
//! the sequence number of its first byte; the receive buffer holds in-order bytes the
//! application has not read yet.

/// A byte ring buffer of fixed capacity.
#[derive(Debug, Clone)]
pub struct RingBuffer {
    storage: Box<[u8]>,
    head: usize,
    len: usize,
}

impl RingBuffer {
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            storage: vec![0u8; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.len()
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
}
