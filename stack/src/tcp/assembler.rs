//! The receive buffer with bounded out-of-order reassembly.
//!
//! One byte ring holds both the in-order bytes the application has not read yet and, past
//! them, out-of-order bytes written at their offset from RCV.NXT (the end of the in-order
//! data). A small fixed array of ranges ([`MAX_RANGES`]) records which out-of-order bytes are
//! present; when a write fills the gap at RCV.NXT, every byte that became contiguous is
//! committed at once.
//!
//! # Contract
//! - Offsets passed to [`RecvBuffer::write`] are relative to RCV.NXT; the caller trims every
//!   segment to its receive window first, and the window never exceeds [`RecvBuffer::free`],
//!   so a write never overruns unread data.
//! - Duplicate and overlapping data is stored again at the same place (the bytes are the
//!   same, by TCP's rules); the ranges are merged, so overlap never double-counts.
//! - When a segment would need a new range and all [`MAX_RANGES`] are in use, the segment is
//!   refused (the caller drops it and the peer retransmits): memory stays bounded.
//! - The bytes live in a [`Storage`] (see [`super::buffer`]): allocated from the thread's
//!   pool on the first write (a connection that never receives data never allocates) and
//!   returned to it on drop; nothing allocates per segment.
//! - The out-of-order range table lives out of line ([`RangeTable`]), taken on the first
//!   out-of-order segment from a small per-thread pool (allocating only when the pool is
//!   empty: the slow path) and returned to it when the buffer is dropped. In-order traffic
//!   never touches it, and it keeps the control block small.

use std::cell::RefCell;

use super::buffer::Storage;

/// Out-of-order ranges remembered per connection.
pub const MAX_RANGES: usize = 32;

/// One out-of-order range `[start, end)` in bytes after RCV.NXT, with the time it last grew
/// (a counter) so SACK can report the most recent first (RFC 2018 §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
    stamp: u32,
}

/// Range tables a thread keeps for reuse at most (each is under 400 bytes).
const TABLE_POOL_LIMIT: usize = 1024;

type Table = [Range; MAX_RANGES];

thread_local! {
    // Boxed: a pooled box is handed out and taken back as is (no copy, no allocation).
    #[allow(clippy::vec_box)]
    static TABLE_POOL: RefCell<Vec<Box<Table>>> = const { RefCell::new(Vec::new()) };
}

/// Slow path only (the first out-of-order segment of a connection): reuses a pooled range
/// table, allocating one only when the pool is empty. Stale contents are harmless: only the
/// first `count` entries are ever read.
fn take_table() -> Box<Table> {
    let pooled = TABLE_POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
    pooled.unwrap_or_else(|| Box::new([Range::default(); MAX_RANGES]))
}

fn give_table(table: Box<Table>) {
    // During thread teardown the pool may be gone: the table is then simply freed.
    let _ = TABLE_POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < TABLE_POOL_LIMIT {
            p.push(table);
        }
    });
}

/// Why [`RecvBuffer::write`] refused a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// It would need a new out-of-order range and all are in use.
    TooManyRanges,
    /// It does not fit in the free space (a caller bug: segments are trimmed to the window).
    OutOfSpace,
}

/// A fixed-capacity receive ring with out-of-order reassembly. See the module docs.
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    storage: Storage,
    head: usize,
    /// In-order bytes not read yet.
    len: usize,
    /// Out-of-order ranges in use (the first `count` entries of `ranges`).
    count: u32,
    clock: u32,
    /// Sorted, disjoint, non-touching ranges; `None` until the first out-of-order segment.
    ranges: Option<Box<Table>>,
}

impl Drop for RecvBuffer {
    #[inline]
    fn drop(&mut self) {
        if let Some(t) = self.ranges.take() {
            give_table(t);
        }
    }
}

impl RecvBuffer {
    /// Back to [`RecvBuffer::new`]'s state (same capacity): the storage and the reassembly
    /// table, if taken, go back to their pools as a drop would return them. For a control
    /// block kept for reuse.
    #[inline]
    pub(crate) fn release(&mut self) {
        // Unallocated storage never held a byte, and the range table is taken (and the clock
        // moved) only by a write whose bytes are then copied in, which allocates: nothing
        // else to reset then.
        debug_assert!(
            self.storage.is_allocated()
                || (self.ranges.is_none()
                    && (self.head, self.len, self.count, self.clock) == (0, 0, 0, 0))
        );
        if self.storage.is_allocated() {
            self.storage = Storage::new(self.storage.capacity());
            if let Some(t) = self.ranges.take() {
                give_table(t);
            }
            self.head = 0;
            self.len = 0;
            self.count = 0;
            self.clock = 0;
        }
    }
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            storage: Storage::new(capacity),
            head: 0,
            len: 0,
            count: 0,
            clock: 0,
            ranges: None,
        }
    }

    /// The ranges in use.
    #[inline]
    fn used(&self) -> &[Range] {
        match &self.ranges {
            Some(t) => &t[..self.count as usize],
            None => &[],
        }
    }

    /// The range table, taken from the pool on first use (the out-of-order slow path).
    fn table(&mut self) -> &mut Table {
        self.ranges.get_or_insert_with(take_table)
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.capacity()
    }
    /// In-order bytes waiting to be read.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Space after the in-order data: the most the receive window may cover.
    #[inline]
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }
    /// True when out-of-order data is held (a hole exists at RCV.NXT).
    #[inline]
    pub fn has_out_of_order(&self) -> bool {
        self.count > 0
    }
    /// Out-of-order bytes held (excluding the in-order ones).
    pub fn out_of_order_bytes(&self) -> usize {
        self.used().iter().map(|r| (r.end - r.start) as usize).sum()
    }
    /// End offset (from RCV.NXT) of the highest out-of-order byte held, or 0.
    pub fn out_of_order_end(&self) -> usize {
        self.used().last().map_or(0, |r| r.end as usize)
    }

    /// Stores `data` at `offset` bytes after RCV.NXT and returns how many bytes became
    /// readable in order (the new RCV.NXT is the old one plus that count).
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<usize, WriteError> {
        if data.is_empty() {
            return Ok(0);
        }
        let end = offset + data.len();
        if end > self.free() {
            return Err(WriteError::OutOfSpace);
        }
        if offset == 0 && self.count == 0 {
            // The common case: in order, nothing buffered beyond.
            self.copy_in(0, data);
            self.len += data.len();
            return Ok(data.len());
        }
        self.insert_range(offset as u32, end as u32)?;
        self.copy_in(offset, data);
        // Commit the front range if it now starts at RCV.NXT.
        let count = self.count as usize;
        let ranges = self.table();
        if ranges[0].start != 0 {
            return Ok(0);
        }
        let n = ranges[0].end;
        ranges.copy_within(1..count, 0);
        for r in &mut ranges[..count - 1] {
            r.start -= n;
            r.end -= n;
        }
        self.count -= 1;
        self.len += n as usize;
        Ok(n as usize)
    }

    /// Records `[start, end)`, merging with every range it overlaps or touches.
    fn insert_range(&mut self, start: u32, end: u32) -> Result<(), WriteError> {
        self.clock = self.clock.wrapping_add(1);
        let stamp = self.clock;
        let count = self.count as usize;
        let table = self.table();
        let ranges = &table[..count];
        // First range that ends at or after `start` (touching counts: it merges).
        let first = ranges.partition_point(|r| r.end < start);
        // One past the last range that starts at or before `end`.
        let last = ranges.partition_point(|r| r.start <= end);
        if first == last {
            // No overlap: a new range at `first`.
            if count == MAX_RANGES {
                return Err(WriteError::TooManyRanges);
            }
            table.copy_within(first..count, first + 1);
            table[first] = Range { start, end, stamp };
            self.count += 1;
            return Ok(());
        }
        let merged = Range {
            start: start.min(table[first].start),
            end: end.max(table[last - 1].end),
            stamp,
        };
        table[first] = merged;
        let removed = last - first - 1;
        if removed > 0 {
            table.copy_within(last..count, first + 1);
            self.count -= removed as u32;
        }
        Ok(())
    }

    fn copy_in(&mut self, offset: usize, data: &[u8]) {
        let cap = self.capacity();
        let start = (self.head + self.len + offset) % cap;
        let first = data.len().min(cap - start);
        let bytes = self.storage.get_mut();
        bytes[start..start + first].copy_from_slice(&data[..first]);
        bytes[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Up to `max` out-of-order ranges as `(start, end)` offsets from RCV.NXT, the most
    /// recently grown first (RFC 2018 §4: the first SACK block reports the latest segment).
    pub fn recent_ranges(&self, max: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        // At most MAX_RANGES entries: pick the `max` largest stamps without allocating.
        let mut taken = [usize::MAX; 4];
        let ranges = self.used();
        let n = max.min(taken.len()).min(ranges.len());
        for slot in 0..n {
            let mut best: Option<usize> = None;
            for i in 0..ranges.len() {
                if taken[..slot].contains(&i) {
                    continue;
                }
                // Stamps wrap: compare by distance from the current clock.
                let age = self.clock.wrapping_sub(ranges[i].stamp);
                if best.is_none_or(|b| age < self.clock.wrapping_sub(ranges[b].stamp)) {
                    best = Some(i);
                }
            }
            taken[slot] = best.unwrap_or(usize::MAX);
        }
        taken
            .into_iter()
            .take(n)
            .filter_map(move |i| ranges.get(i))
            .map(|r| (r.start as usize, r.end as usize))
    }

    /// The longest contiguous run of readable bytes at the front.
    pub fn front(&self) -> &[u8] {
        let cap = self.capacity();
        if self.len == 0 {
            return &[];
        }
        let run = self.len.min(cap - self.head);
        &self.storage.get()[self.head..self.head + run]
    }

    /// Marks `n` readable bytes as read; returns how many were.
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        if n == 0 {
            return 0;
        }
        self.head = (self.head + n) % self.capacity();
        self.len -= n;
        if self.len == 0 && self.count == 0 {
            // Nothing is stored past RCV.NXT: restart at the beginning so that reads stay
            // contiguous as long as possible.
            self.head = 0;
        }
        n
    }

    /// Copies up to `buf.len()` readable bytes into `buf` and consumes them.
    pub fn dequeue_into(&mut self, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let run = self.front();
            let n = run.len().min(buf.len() - done);
            if n == 0 {
                break;
            }
            buf[done..done + n].copy_from_slice(&run[..n]);
            self.consume(n);
            done += n;
        }
        done
    }

    /// Discards everything, in-order and out-of-order.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = vec![0u8; b.len()];
        let n = b.dequeue_into(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn in_order_fast_path() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.write(0, b"abc"), Ok(3));
        assert_eq!(b.free(), 5);
        assert_eq!(read_all(&mut b), b"abc");
        assert!(b.ranges.is_none(), "in-order data needs no range table");
    }

    /// `release` (which resets the rest only for allocated storage) leaves `new`'s state after
    /// any use: never written, an empty write, in order, out of order (a range table taken),
    /// a hole filled, cleared, part read.
    #[test]
    fn release_returns_to_the_new_state() {
        type Use = fn(&mut RecvBuffer);
        let uses: [Use; 7] = [
            |_| {},
            |b| {
                b.write(5, &[]).unwrap();
            },
            |b| {
                b.write(0, &[1; 10]).unwrap();
            },
            |b| {
                b.write(4, &[1; 3]).unwrap();
            },
            |b| {
                b.write(4, &[1; 3]).unwrap();
                b.write(0, &[2; 4]).unwrap();
            },
            |b| {
                b.write(4, &[1; 3]).unwrap();
                b.clear();
            },
            |b| {
                b.write(0, &[1; 12]).unwrap();
                b.consume(7);
                b.write(9, &[3; 2]).unwrap();
            },
        ];
        for u in uses {
            let mut b = RecvBuffer::new(16);
            u(&mut b);
            b.release();
            assert!(!b.storage.is_allocated());
            assert!(b.ranges.is_none());
            assert_eq!((b.head, b.len, b.count, b.clock), (0, 0, 0, 0));
            assert_eq!(b.capacity(), 16);
            assert_eq!(b.write(0, b"abc").unwrap(), 3);
            assert_eq!(b.front(), b"abc");
        }
    }

    #[test]
    fn range_tables_are_recycled() {
        let mut b = RecvBuffer::new(64);
        assert_eq!(b.write(4, b"x"), Ok(0));
        let first = b.ranges.as_deref().map(|t| t as *const Table);
        assert!(first.is_some());
        drop(b);
        // The next buffer on this thread takes the same table back from the pool.
        let mut b = RecvBuffer::new(64);
        assert_eq!(b.write(8, b"y"), Ok(0));
        assert_eq!(b.ranges.as_deref().map(|t| t as *const Table), first);
        assert_eq!(b.recent_ranges(4).collect::<Vec<_>>(), [(8, 9)]);
    }

    #[test]
    fn hole_then_fill_commits_everything() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.write(4, b"efgh"), Ok(0));
        assert_eq!(b.write(10, b"kl"), Ok(0));
        assert_eq!(b.len(), 0);
        assert_eq!(b.out_of_order_bytes(), 6);
        // Most recent first.
        let r: Vec<_> = b.recent_ranges(3).collect();
        assert_eq!(r, [(10, 12), (4, 8)]);
        assert_eq!(b.write(0, b"abcd"), Ok(8));
        assert_eq!(read_all(&mut b), b"abcdefgh");
        // The remaining range shifted by 8.
        assert_eq!(b.recent_ranges(3).collect::<Vec<_>>(), [(2, 4)]);
        assert_eq!(b.write(0, b"ij"), Ok(4));
        assert_eq!(read_all(&mut b), b"ijkl");
        assert!(!b.has_out_of_order());
    }

    #[test]
    fn overlapping_and_duplicate_segments_merge() {
        let mut b = RecvBuffer::new(32);
        assert_eq!(b.write(5, b"fghij"), Ok(0));
        // Overlaps the left part, extends left.
        assert_eq!(b.write(3, b"def"), Ok(0));
        // Exact duplicate.
        assert_eq!(b.write(5, b"fghij"), Ok(0));
        // Spans two ranges and the gap between them.
        assert_eq!(b.write(12, b"mn"), Ok(0));
        assert_eq!(b.write(9, b"jklm"), Ok(0));
        assert_eq!(b.recent_ranges(4).collect::<Vec<_>>(), [(3, 14)]);
        assert_eq!(b.out_of_order_bytes(), 11);
        // Fill overlapping the front of the range.
        assert_eq!(b.write(0, b"abcde"), Ok(14));
        assert_eq!(read_all(&mut b), b"abcdefghijklmn");
    }

    #[test]
    fn range_limit_refuses_new_holes_but_accepts_merges() {
        let mut b = RecvBuffer::new(1024);
        for i in 0..MAX_RANGES {
            assert_eq!(b.write(2 + 2 * i, b"x"), Ok(0));
        }
        assert_eq!(b.write(200, b"y"), Err(WriteError::TooManyRanges));
        // Touching an existing range is a merge, not a new range.
        assert_eq!(b.write(3, b"x"), Ok(0));
        assert_eq!(b.write(0, b"zz"), Ok(5));
        assert_eq!(b.write(1000, &[0; 30]), Err(WriteError::OutOfSpace));
    }

    #[test]
    fn out_of_order_data_survives_wrap_and_reads() {
        let mut b = RecvBuffer::new(8);
        assert_eq!(b.write(0, b"abcdef"), Ok(6));
        let mut tmp = [0u8; 5];
        assert_eq!(b.dequeue_into(&mut tmp), 5);
        // head = 5, len = 1; free = 7. Store OOO at offsets 3..6 (wraps the ring).
        assert_eq!(b.write(3, b"XYZ"), Ok(0));
        // Reading the last in-order byte must not move the ring under the OOO data.
        assert_eq!(b.dequeue_into(&mut tmp[..1]), 1);
        assert_eq!(b.write(0, b"uvw"), Ok(6));
        assert_eq!(read_all(&mut b), b"uvwXYZ");
    }
}
