//! The sender's SACK scoreboard (RFC 6675 §3-4): which bytes above SND.UNA the peer has
//! selectively acknowledged, and from that which holes are presumed lost.
//!
//! # Contract
//! - Ranges are kept sorted, disjoint and non-adjacent, all within `(SND.UNA, SND.MAX]`;
//!   blocks outside that span (old, D-SACK, or bogus) are ignored, as are blocks that would
//!   need more than [`MAX_BLOCKS`] ranges beyond the highest remembered (the highest are
//!   dropped first: forgetting a SACK only costs a needless retransmission, never a stall).
//! - The sender never retransmits a byte inside a remembered range.
//! - Loss (RFC 6675 `IsLost`) is decided per hole: every byte of a hole has the same SACKed
//!   bytes and blocks above it, so a hole is lost as a whole or not at all.
//! - Fixed capacity. The block array lives out of line, taken on the first SACK block from a
//!   small per-thread pool (allocating only when the pool is empty: the slow path) and
//!   returned to it when the scoreboard is dropped. A connection that never sees a SACK
//!   never touches it, and the control block stays small.

use std::cell::RefCell;

use crate::wire::SeqNumber;

/// SACKed ranges remembered per connection.
pub const MAX_BLOCKS: usize = 32;

/// RFC 6675 §2: DupThresh.
pub const DUP_THRESH: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    start: SeqNumber,
    end: SeqNumber,
}

type Blocks = [Block; MAX_BLOCKS];

/// Block arrays a thread keeps for reuse at most (each is 256 bytes).
const BLOCK_POOL_LIMIT: usize = 1024;

thread_local! {
    // Boxed: a pooled box is handed out and taken back as is (no copy, no allocation).
    #[allow(clippy::vec_box)]
    static BLOCK_POOL: RefCell<Vec<Box<Blocks>>> = const { RefCell::new(Vec::new()) };
}

/// Slow path only (the first SACK block of a connection): reuses a pooled array, allocating
/// one only when the pool is empty. Stale contents are harmless: only the first `count`
/// entries are ever read.
fn take_blocks() -> Box<Blocks> {
    let pooled = BLOCK_POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
    pooled.unwrap_or_else(|| {
        Box::new(
            [Block {
                start: SeqNumber(0),
                end: SeqNumber(0),
            }; MAX_BLOCKS],
        )
    })
}

fn give_blocks(blocks: Box<Blocks>) {
    // During thread teardown the pool may be gone: the array is then simply freed.
    let _ = BLOCK_POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < BLOCK_POOL_LIMIT {
            p.push(blocks);
        }
    });
}

/// A hole: unSACKed bytes `[start, end)` below the highest SACKed byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// RFC 6675 `IsLost` for every byte of the hole.
    pub lost: bool,
}

/// The SACK scoreboard. See the module docs.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    /// Sorted, disjoint ranges: the first `count` entries; `None` until the first SACK.
    blocks: Option<Box<Blocks>>,
    count: usize,
}

impl Drop for Scoreboard {
    #[inline]
    fn drop(&mut self) {
        if let Some(b) = self.blocks.take() {
            give_blocks(b);
        }
    }
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard::new()
    }
}

impl Scoreboard {
    /// Back to [`Scoreboard::new`]'s state: the blocks, if taken, go back to their pool as a
    /// drop would return them. For a control block kept for reuse.
    #[inline]
    pub(crate) fn release(&mut self) {
        if let Some(b) = self.blocks.take() {
            give_blocks(b);
        }
        self.count = 0;
    }
    pub fn new() -> Scoreboard {
        Scoreboard {
            blocks: None,
            count: 0,
        }
    }

    /// The ranges in use.
    #[inline]
    fn used(&self) -> &[Block] {
        match &self.blocks {
            Some(b) => &b[..self.count],
            None => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Number of disjoint SACKed ranges.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The SACKed ranges, lowest first.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        self.used().iter().map(|b| (b.start, b.end))
    }

    /// Total SACKed bytes.
    pub fn sacked_bytes(&self) -> usize {
        self.used().iter().map(|b| b.end - b.start).sum()
    }

    /// One past the highest SACKed byte (RFC 6675 "HighACK" is SND.UNA; this is the top of
    /// the scoreboard), if any.
    pub fn high_sacked(&self) -> Option<SeqNumber> {
        self.used().last().map(|b| b.end)
    }

    /// Records one SACK block after checking it against `(snd_una, snd_max]`. Returns true
    /// if it SACKed bytes not known before.
    pub fn add(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
    ) -> bool {
        // RFC 2018 §4 / RFC 6675: ignore blocks at or below SND.UNA (D-SACK) and beyond what
        // was sent; clip a block straddling SND.UNA.
        if end <= start || end <= snd_una || end > snd_max || start >= snd_max {
            return false;
        }
        let start = start.max(snd_una);
        let count = self.count;
        let blocks = self.blocks.get_or_insert_with(take_blocks);
        let used = &blocks[..count];
        let first = used.partition_point(|b| b.end < start);
        let last = used.partition_point(|b| b.start <= end);
        if first == last {
            let mut count = count;
            if count == MAX_BLOCKS {
                if first == count {
                    // Above everything remembered and no room: forget it.
                    return false;
                }
                // Make room by forgetting the highest range.
                count -= 1;
            }
            blocks.copy_within(first..count, first + 1);
            blocks[first] = Block { start, end };
            self.count = count + 1;
            return true;
        }
        let merged = Block {
            start: start.min(blocks[first].start),
            end: end.max(blocks[last - 1].end),
        };
        let before: usize = blocks[first..last].iter().map(|b| b.end - b.start).sum();
        blocks[first] = merged;
        let removed = last - first - 1;
        if removed > 0 {
            blocks.copy_within(last..count, first + 1);
            self.count -= removed;
        }
        merged.end - merged.start > before
    }

    /// SND.UNA moved to `snd_una`: forget everything below it.
    pub fn advance(&mut self, snd_una: SeqNumber) {
        let count = self.count;
        let Some(blocks) = self.blocks.as_deref_mut() else {
            return;
        };
        let gone = blocks[..count].partition_point(|b| b.end <= snd_una);
        if gone > 0 {
            blocks.copy_within(gone..count, 0);
            self.count -= gone;
        }
        if self.count > 0 && blocks[0].start < snd_una {
            blocks[0].start = snd_una;
        }
    }

    /// The SACKed range containing `seq`, if any (as its end).
    pub fn sacked_end(&self, seq: SeqNumber) -> Option<SeqNumber> {
        let used = self.used();
        let i = used.partition_point(|b| b.end <= seq);
        let b = used.get(i)?;
        (b.start <= seq).then_some(b.end)
    }

    /// The start of the first SACKed range above `seq`, if any.
    pub fn next_sacked_start(&self, seq: SeqNumber) -> Option<SeqNumber> {
        let used = self.used();
        let i = used.partition_point(|b| b.end <= seq);
        used.get(i).map(|b| b.start.max(seq))
    }

    /// SACKed bytes below `seq`.
    pub fn sacked_below(&self, seq: SeqNumber) -> usize {
        self.used()
            .iter()
            .take_while(|b| b.start < seq)
            .map(|b| b.end.min(seq) - b.start)
            .sum()
    }

    /// The holes between `snd_una` and the highest SACKed byte, lowest first, with RFC 6675
    /// `IsLost`: more than `(DupThresh - 1) * mss` bytes SACKed above, or `DupThresh`
    /// discontiguous SACKed ranges above.
    pub fn holes(&self, snd_una: SeqNumber, mss: usize) -> impl Iterator<Item = Hole> + '_ {
        let mut above: usize = self.sacked_bytes();
        let mut prev = snd_una;
        self.used().iter().enumerate().filter_map(move |(i, b)| {
            let hole = (prev < b.start).then(|| Hole {
                start: prev,
                end: b.start,
                lost: above > (DUP_THRESH - 1) * mss || self.count - i >= DUP_THRESH,
            });
            above -= b.end - b.start;
            prev = b.end;
            hole
        })
    }

    /// RFC 6675 `IsLost(seq)` for an unSACKed `seq`.
    pub fn is_lost(&self, seq: SeqNumber, mss: usize) -> bool {
        let used = self.used();
        let i = used.partition_point(|b| b.end <= seq);
        let above: usize = used[i..].iter().map(|b| b.end - b.start.max(seq)).sum();
        above > (DUP_THRESH - 1) * mss || self.count - i >= DUP_THRESH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn blocks_merge_and_clip() {
        let mut sb = Scoreboard::new();
        let (una, max) = (s(100), s(1000));
        assert!(sb.add(s(300), s(400), una, max));
        assert!(sb.add(s(500), s(600), una, max));
        assert!(!sb.add(s(300), s(400), una, max), "already known");
        assert!(sb.add(s(400), s(500), una, max), "fills between: one range");
        assert_eq!(sb.ranges().collect::<Vec<_>>(), [(s(300), s(600))]);
        // Below SND.UNA (D-SACK) and beyond SND.MAX are ignored; straddling is clipped.
        assert!(!sb.add(s(50), s(100), una, max));
        assert!(!sb.add(s(900), s(1100), una, max));
        assert!(sb.add(s(50), s(150), una, max));
        assert_eq!(sb.ranges().next(), Some((s(100), s(150))));
        sb.advance(s(320));
        assert_eq!(sb.ranges().collect::<Vec<_>>(), [(s(320), s(600))]);
        assert_eq!(sb.sacked_bytes(), 280);
        assert_eq!(sb.sacked_end(s(400)), Some(s(600)));
        assert_eq!(sb.sacked_end(s(600)), None);
        assert_eq!(sb.next_sacked_start(s(310)), Some(s(320)));
        assert_eq!(sb.next_sacked_start(s(600)), None);
    }

    #[test]
    fn holes_and_is_lost_follow_rfc_6675() {
        let mss = 100;
        let mut sb = Scoreboard::new();
        let (una, max) = (s(0), s(2000));
        // Hole [0,100), SACK [100,200), hole [200,300), SACK [300,600).
        sb.add(s(100), s(200), una, max);
        sb.add(s(300), s(600), una, max);
        let holes: Vec<_> = sb.holes(una, mss).collect();
        assert_eq!(
            holes,
            [
                Hole {
                    start: s(0),
                    end: s(100),
                    lost: true // 400 bytes SACKed above > 2 * MSS
                },
                Hole {
                    start: s(200),
                    end: s(300),
                    lost: true // 300 > 200
                },
            ]
        );
        assert!(sb.is_lost(s(250), mss));
        let mut sb = Scoreboard::new();
        sb.add(s(100), s(200), una, max);
        assert!(
            !sb.is_lost(s(0), mss),
            "one segment SACKed above is not enough"
        );
        sb.add(s(300), s(310), una, max);
        sb.add(s(400), s(410), una, max);
        assert!(
            sb.is_lost(s(0), mss),
            "three discontiguous SACKed ranges above"
        );
        assert!(!sb.is_lost(s(250), mss));
        assert_eq!(sb.sacked_below(s(305)), 105);
    }

    #[test]
    fn block_arrays_are_taken_lazily_and_recycled() {
        let mut sb = Scoreboard::new();
        let (una, max) = (s(0), s(1000));
        assert!(!sb.add(s(50), s(50), una, max));
        sb.advance(s(10));
        assert!(sb.blocks.is_none(), "no SACK block yet: nothing taken");
        assert!(sb.add(s(100), s(200), una, max));
        let first = sb.blocks.as_deref().map(|b| b as *const Blocks);
        drop(sb);
        let mut sb = Scoreboard::new();
        assert!(sb.add(s(300), s(400), una, max));
        assert_eq!(sb.blocks.as_deref().map(|b| b as *const Blocks), first);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), [(s(300), s(400))]);
    }

    #[test]
    fn full_scoreboard_forgets_the_highest() {
        let mut sb = Scoreboard::new();
        let (una, max) = (s(u32::MAX - 100), s(100_000));
        for i in 0..MAX_BLOCKS as u32 {
            assert!(sb.add(s(10 * i), s(10 * i + 5), una, max));
        }
        assert!(!sb.add(s(5000), s(5005), una, max), "above all: dropped");
        assert!(sb.add(s(6), s(8), una, max), "lower: the highest goes");
        assert_eq!(sb.len(), MAX_BLOCKS);
        assert_eq!(sb.high_sacked(), Some(s(10 * 30 + 5)));
        // Sequence numbers wrapped: the block below 0 still orders first.
        assert!(sb.add(s(u32::MAX - 50), s(u32::MAX - 40), una, max));
        assert_eq!(
            sb.ranges().next(),
            Some((s(u32::MAX - 50), s(u32::MAX - 40)))
        );
    }
}
