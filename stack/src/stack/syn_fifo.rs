//! The first SYN-ACK retransmission deadline of every SYN-RECEIVED entry, in a FIFO instead
//! of a timer-wheel node each.
//!
//! Every entry's first deadline is `now + initial_rto` with a non-decreasing `now`, so the
//! deadlines arrive in deadline order and a ring queue keeps them sorted: scheduling is a
//! push, expiry pops from the front. Cancelling is lazy: the entry forgets its ticket (see
//! [`SynTimer`]), expiry skips stale tickets, and [`SynFifo::trim`] (run with the timers on
//! every `receive`) drops those at the front, so that [`SynFifo::next_deadline`] is exact
//! when `poll_at` reads it after a `receive`; in between it is a lower bound, as the wheel's
//! own deadline may be. Later
//! retransmissions (RFC 6298 §5.5 backoff: different delays) go to the wheel as before.
//!
//! The queue is preallocated (`max_syn_recv` tickets, rounded up to a power of two) and never grows; when it is full
//! (stale tickets waiting behind a long-lived one), [`SynFifo::push`] refuses and the caller
//! schedules on the wheel instead, which has a node for every SYN-RECEIVED entry. Deadlines
//! are rounded to the wheel's tick the way the wheel rounds them, so an entry fires at the
//! same `expire` either way.

use crate::tcp::timer_wheel::TimerId;
use crate::time::{Duration, Instant};

/// Where a SYN-RECEIVED entry's retransmission timer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SynTimer {
    None,
    Wheel(TimerId),
    /// A ticket in [`SynFifo`]; live while the entry still holds this number.
    Fifo(u32),
}

/// A ticket's number is its position in the stream of pushes (`head`..`tail`), not stored.
#[derive(Clone, Copy, Default)]
struct Ticket {
    tick: u64,
    index: u32,
}

/// The tick in microseconds: the timer wheel's (`TIMER_TICK`), a constant, so that rounding
/// a deadline is a multiplication, not a division.
const TICK_MICROS: u64 = {
    let t = super::TIMER_TICK.as_micros() as u64;
    assert!(t > 0);
    t
};

/// See the module docs. A ring of a power-of-two number of tickets, allocated once.
pub(super) struct SynFifo {
    ring: Box<[Ticket]>,
    mask: usize,
    /// The front ticket's number (tickets popped so far); its place is `head & mask`.
    head: u32,
    /// The next ticket's number (tickets pushed so far); `tail - head` are queued.
    tail: u32,
    /// The last queued ticket's tick (meaningful while `len != 0`): the order check reads
    /// it here instead of from the ring.
    back_tick: u64,
    /// Every deadline is `now + delay` (the initial RTO).
    delay: Duration,
    /// `now + delay` rounded up to a tick, for `now` = `memo_now` (microseconds): the SYNs
    /// of one receive batch share `now`, so the rounding is done once per batch.
    memo_now: u64,
    memo_tick: u64,
}

impl SynFifo {
    /// A queue of at least `capacity` tickets (rounded up to a power of two) for deadlines
    /// `delay` after the time of each push.
    pub(super) fn new(capacity: usize, delay: Duration) -> Self {
        let size = capacity.max(1).next_power_of_two();
        SynFifo {
            ring: vec![Ticket::default(); size].into_boxed_slice(),
            mask: size - 1,
            head: 0,
            tail: 0,
            back_tick: 0,
            delay,
            memo_now: 0,
            memo_tick: Self::deadline_tick(Instant::ZERO, delay),
        }
    }

    /// The tick of `now + delay`, rounded up as the wheel rounds it.
    #[inline]
    fn deadline_tick(now: Instant, delay: Duration) -> u64 {
        (now + delay).total_micros().div_ceil(TICK_MICROS)
    }

    /// Tickets queued (at most `mask + 1`, so the `u32` numbers never lap).
    #[inline]
    fn queued(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    /// The front ticket and its number, if any.
    #[inline]
    fn front(&self) -> Option<(Ticket, u32)> {
        (self.head != self.tail).then(|| (self.ring[self.head as usize & self.mask], self.head))
    }

    #[inline]
    fn pop_front(&mut self) {
        self.head = self.head.wrapping_add(1);
    }

    /// Queues entry `index` for `now + delay`, which must be no earlier than any queued
    /// deadline. `None` when the queue is full or the deadline would break the order; the
    /// caller then uses the wheel.
    #[inline]
    pub(super) fn push(&mut self, now: Instant, index: u32) -> Option<SynTimer> {
        if now.total_micros() != self.memo_now {
            self.memo_now = now.total_micros();
            self.memo_tick = Self::deadline_tick(now, self.delay);
        }
        let tick = self.memo_tick;
        let queued = self.queued();
        if queued > self.mask {
            return None;
        }
        if queued != 0 && self.back_tick > tick {
            return None;
        }
        let seq = self.tail;
        self.ring[seq as usize & self.mask] = Ticket { tick, index };
        self.tail = seq.wrapping_add(1);
        self.back_tick = tick;
        Some(SynTimer::Fifo(seq))
    }

    /// Drops stale tickets from the front: `live(index, seq)` says whether entry `index`
    /// still holds ticket `seq`.
    #[inline]
    pub(super) fn trim(&mut self, mut live: impl FnMut(u32, u32) -> bool) {
        while let Some((t, seq)) = self.front() {
            if live(t.index, seq) {
                return;
            }
            self.pop_front();
        }
    }

    /// Pops the front ticket if its deadline tick has been reached by `now` (stale ones
    /// included: the caller checks and calls again). Returns (index, seq).
    #[inline]
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(u32, u32)> {
        let now_tick = now.total_micros() / TICK_MICROS;
        match self.front() {
            Some((t, seq)) if t.tick <= now_tick => {
                self.pop_front();
                Some((t.index, seq))
            }
            _ => None,
        }
    }

    /// The front ticket's deadline: exact once [`trim`](Self::trim) has run, else a lower
    /// bound (a stale ticket's deadline).
    #[inline]
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.front()
            .map(|(t, _)| Instant::from_micros(t.tick.saturating_mul(TICK_MICROS)))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queued()
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn pops_in_order_and_refuses_when_full_or_out_of_order() {
        let t0 = Instant::from_millis(10);
        let mut f = SynFifo::new(2, Duration::ZERO);
        assert_eq!(f.push(t0, 7), Some(SynTimer::Fifo(0)));
        // Earlier than the back: refused (the caller uses the wheel).
        assert_eq!(f.push(Instant::from_millis(9), 8), None);
        assert_eq!(
            f.push(t0 + Duration::from_micros(1), 9),
            Some(SynTimer::Fifo(1))
        );
        assert_eq!(f.push(t0 + Duration::from_millis(5), 10), None, "full");
        assert_eq!(f.next_deadline(), Some(t0));
        assert_eq!(f.pop_due(Instant::from_micros(9_999)), None);
        assert_eq!(f.pop_due(t0), Some((7, 0)));
        // 10.001 ms rounds up to the 11 ms tick, as the wheel rounds it.
        assert_eq!(f.next_deadline(), Some(Instant::from_millis(11)));
        assert_eq!(f.pop_due(Instant::from_micros(10_999)), None);
        assert_eq!(f.pop_due(Instant::from_millis(11)), Some((9, 1)));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn deadlines_are_now_plus_delay_rounded_up_once_per_now() {
        let mut f = SynFifo::new(8, Duration::from_micros(1_500));
        let t0 = Instant::from_millis(10);
        assert_eq!(f.push(t0, 1), Some(SynTimer::Fifo(0)));
        assert_eq!(f.push(t0, 2), Some(SynTimer::Fifo(1)));
        // 11.5 ms rounds up to the 12 ms tick.
        assert_eq!(f.next_deadline(), Some(Instant::from_millis(12)));
        // 10.5 ms + 1.5 ms is exactly the 12 ms tick; 10.501 ms + 1.5 ms rounds up to 13 ms.
        let t1 = Instant::from_micros(10_500);
        assert_eq!(f.push(t1, 3), Some(SynTimer::Fifo(2)));
        assert_eq!(
            f.push(Instant::from_micros(10_501), 4),
            Some(SynTimer::Fifo(3))
        );
        // An earlier `now` than the last push (its deadline behind the back): refused.
        assert_eq!(f.push(Instant::from_millis(9), 5), None);
        assert_eq!(f.pop_due(Instant::from_millis(12)), Some((1, 0)));
        assert_eq!(f.pop_due(Instant::from_millis(12)), Some((2, 1)));
        assert_eq!(f.pop_due(Instant::from_millis(12)), Some((3, 2)));
        assert_eq!(f.pop_due(Instant::from_micros(12_999)), None);
        assert_eq!(f.pop_due(Instant::from_millis(13)), Some((4, 3)));
        // From `Instant::ZERO` (the memo's starting point) too.
        let mut g = SynFifo::new(2, Duration::from_micros(1_500));
        assert_eq!(g.push(Instant::ZERO, 0), Some(SynTimer::Fifo(0)));
        assert_eq!(g.next_deadline(), Some(Instant::from_millis(2)));
    }

    /// Ticket numbers are positions in the stream of pushes: they wrap past `u32::MAX` with
    /// the ring's places, and stay the numbers the entries were given.
    #[test]
    fn ticket_numbers_wrap() {
        let t0 = Instant::from_millis(10);
        let mut f = SynFifo::new(4, Duration::ZERO);
        f.head = u32::MAX - 2;
        f.tail = u32::MAX - 2;
        let pushed: Vec<_> = (0..4).map(|i| f.push(t0, 10 + i)).collect();
        assert_eq!(
            pushed,
            [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0].map(|s| Some(SynTimer::Fifo(s)))
        );
        assert_eq!(f.len(), 4);
        assert_eq!(f.push(t0, 99), None, "full");
        f.trim(|_, seq| seq != u32::MAX - 2);
        assert_eq!(f.len(), 3);
        assert_eq!(f.pop_due(t0), Some((11, u32::MAX - 1)));
        assert_eq!(f.push(t0, 14), Some(SynTimer::Fifo(1)));
        assert_eq!(f.pop_due(t0), Some((12, u32::MAX)));
        assert_eq!(f.pop_due(t0), Some((13, 0)));
        assert_eq!(f.pop_due(t0), Some((14, 1)));
        assert_eq!((f.len(), f.pop_due(t0)), (0, None));
    }

    #[test]
    fn trim_drops_only_stale_front_tickets() {
        let t0 = Instant::from_millis(10);
        let mut f = SynFifo::new(8, Duration::ZERO);
        for i in 0..4 {
            f.push(t0, i);
        }
        // Tickets 0 and 2 cancelled: trim drops 0, stops at live 1.
        f.trim(|_, seq| seq != 0 && seq != 2);
        assert_eq!(f.len(), 3);
        assert_eq!(f.pop_due(t0), Some((1, 1)));
        f.trim(|_, seq| seq != 2);
        assert_eq!(f.pop_due(t0), Some((3, 3)));
    }
}
