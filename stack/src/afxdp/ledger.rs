//! Where every UMEM frame is: the free list and the counts of the other places.
//!
//! A frame is always in exactly one place, and only the transitions below move it, so
//! `FrameAccounting::total()` equals the frame count by construction:
//!
//! ```text
//!  free ──take_for_fill──▶ rx_kernel ──rx_received──▶ held ──held_to_fill──▶ rx_kernel
//!   ▲                                                  │
//!   └───────────────────────held_to_free───────────────┘
//!  free ──take_for_tx──▶ tx_staged ──tx_submitted──▶ tx_kernel ──tx_completed──▶ free
//!   ▲                       │
//!   └──────tx_cancelled─────┘
//! ```
//!
//! The ledger knows frames by index (`addr / frame_size`), so it is plain data and is tested
//! without a kernel. Moving a count below zero is a bug in the caller: debug builds panic,
//! release builds saturate (and the accounting test then fails).

/// A snapshot of where the UMEM frames are. The fields sum to the configured frame count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameAccounting {
    /// On the free list, available to `transmit`.
    pub free: u32,
    /// Lent to the kernel for receiving: in the fill ring, being written by the kernel, or
    /// waiting in the RX ring. The kernel moves frames between those without telling user
    /// space, so they are one count.
    pub rx_kernel: u32,
    /// Taken from the RX ring and not yet recycled: non-zero only inside a receive
    /// callback (or after one panicked).
    pub held: u32,
    /// Written by `transmit`, not yet submitted to the TX ring (the next flush does).
    pub tx_staged: u32,
    /// Submitted for transmission: in the TX ring, being sent, or waiting in the completion
    /// ring.
    pub tx_kernel: u32,
}

impl FrameAccounting {
    /// Sum of all places: equals the frame count unless frames leaked.
    pub fn total(&self) -> u32 {
        self.free + self.rx_kernel + self.held + self.tx_staged + self.tx_kernel
    }
}

#[derive(Debug)]
pub(crate) struct FrameLedger {
    free: Vec<u32>,
    rx_kernel: u32,
    held: u32,
    tx_staged: u32,
    tx_kernel: u32,
}

fn dec(v: &mut u32, n: u32) {
    debug_assert!(*v >= n, "frame ledger underflow: {} - {n}", *v);
    *v = v.saturating_sub(n);
}

impl FrameLedger {
    /// All `frame_count` frames start on the free list; popping takes the lowest index first.
    pub(crate) fn new(frame_count: u32) -> Self {
        FrameLedger {
            free: (0..frame_count).rev().collect(),
            rx_kernel: 0,
            held: 0,
            tx_staged: 0,
            tx_kernel: 0,
        }
    }

    pub(crate) fn accounting(&self) -> FrameAccounting {
        FrameAccounting {
            free: self.free.len() as u32,
            rx_kernel: self.rx_kernel,
            held: self.held,
            tx_staged: self.tx_staged,
            tx_kernel: self.tx_kernel,
        }
    }

    pub(crate) fn free_len(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn rx_kernel(&self) -> u32 {
        self.rx_kernel
    }

    pub(crate) fn tx_staged(&self) -> u32 {
        self.tx_staged
    }

    pub(crate) fn tx_kernel(&self) -> u32 {
        self.tx_kernel
    }

    /// free → rx_kernel: the caller puts the frame in the fill ring.
    pub(crate) fn take_for_fill(&mut self) -> Option<u32> {
        let i = self.free.pop()?;
        self.rx_kernel += 1;
        Some(i)
    }

    /// rx_kernel → held: `n` frames taken from the RX ring.
    pub(crate) fn rx_received(&mut self, n: u32) {
        dec(&mut self.rx_kernel, n);
        self.held += n;
    }

    /// held → rx_kernel: `n` received frames recycled straight into the fill ring.
    pub(crate) fn held_to_fill(&mut self, n: u32) {
        dec(&mut self.held, n);
        self.rx_kernel += n;
    }

    /// held → free: a received frame the fill ring had no room for.
    pub(crate) fn held_to_free(&mut self, frame: u32) {
        dec(&mut self.held, 1);
        self.free.push(frame);
    }

    /// free → tx_staged: a frame handed to a transmit callback.
    pub(crate) fn take_for_tx(&mut self) -> Option<u32> {
        let i = self.free.pop()?;
        self.tx_staged += 1;
        Some(i)
    }

    /// tx_staged → free: the callback wrote nothing.
    pub(crate) fn tx_cancelled(&mut self, frame: u32) {
        dec(&mut self.tx_staged, 1);
        self.free.push(frame);
    }

    /// tx_staged → tx_kernel: `n` frames submitted to the TX ring.
    pub(crate) fn tx_submitted(&mut self, n: u32) {
        dec(&mut self.tx_staged, n);
        self.tx_kernel += n;
    }

    /// tx_kernel → free: a frame read from the completion ring.
    pub(crate) fn tx_completed(&mut self, frame: u32) {
        dec(&mut self.tx_kernel, 1);
        self.free.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_all_free_and_walks_both_cycles() {
        let mut l = FrameLedger::new(4);
        assert_eq!(l.accounting().free, 4);
        let a = l.take_for_fill().unwrap();
        let b = l.take_for_fill().unwrap();
        assert_eq!((a, b), (0, 1));
        l.rx_received(2);
        assert_eq!(l.accounting().held, 2);
        l.held_to_fill(1);
        l.held_to_free(b);
        let t = l.take_for_tx().unwrap();
        assert_eq!(
            t, b,
            "most recently freed frame is reused first (cache-warm)"
        );
        l.tx_submitted(1);
        let acc = l.accounting();
        assert_eq!(
            acc,
            FrameAccounting {
                free: 2,
                rx_kernel: 1,
                held: 0,
                tx_staged: 0,
                tx_kernel: 1
            }
        );
        l.tx_completed(t);
        assert_eq!(l.accounting().total(), 4);
        assert_eq!(l.accounting().tx_kernel, 0);
    }

    #[test]
    fn empty_free_list_refuses() {
        let mut l = FrameLedger::new(1);
        assert!(l.take_for_tx().is_some());
        assert!(l.take_for_tx().is_none());
        assert!(l.take_for_fill().is_none());
        assert_eq!(l.accounting().total(), 1);
    }

    // Random legal walks (the link only ever makes legal moves) keep the total and never
    // hand out a frame twice.
    proptest! {
        #[test]
        fn random_walk_conserves_frames(ops in proptest::collection::vec(0u8..7, 0..400)) {
            const N: u32 = 16;
            let mut l = FrameLedger::new(N);
            let mut staged: Vec<u32> = Vec::new();
            let mut in_tx: Vec<u32> = Vec::new();
            let mut held: Vec<u32> = Vec::new();
            let mut rx: Vec<u32> = Vec::new();
            for op in ops {
                match op {
                    0 => if let Some(i) = l.take_for_fill() { rx.push(i) },
                    1 => if let Some(i) = rx.pop() { l.rx_received(1); held.push(i) },
                    2 => if let Some(i) = held.pop() { l.held_to_fill(1); rx.push(i) },
                    3 => if let Some(i) = held.pop() { l.held_to_free(i) },
                    4 => if let Some(i) = l.take_for_tx() { staged.push(i) },
                    5 => if let Some(i) = staged.pop() { l.tx_submitted(1); in_tx.push(i) },
                    _ => if let Some(i) = in_tx.pop() { l.tx_completed(i) },
                }
                let acc = l.accounting();
                prop_assert_eq!(acc.total(), N);
                prop_assert_eq!(acc.rx_kernel as usize, rx.len());
                prop_assert_eq!(acc.held as usize, held.len());
                prop_assert_eq!(acc.tx_staged as usize, staged.len());
                prop_assert_eq!(acc.tx_kernel as usize, in_tx.len());
                let mut all: Vec<u32> = l.free.iter().chain(&rx).chain(&held)
                    .chain(&staged).chain(&in_tx).copied().collect();
                all.sort_unstable();
                all.dedup();
                prop_assert_eq!(all.len() as u32, N, "a frame is in two places");
            }
        }
    }
}
