//! A hashed hierarchical timer wheel owning per-connection deadlines.
//!
//! Contract:
//! - Time is in ticks of a fixed [`Duration`] (default 1 ms). A deadline is rounded *up* to
//!   a tick; [`TimerWheel::expire`] fires a timer once `now` has reached that tick. So a
//!   timer never fires before its deadline, and at most one tick (plus the caller's polling
//!   delay) after it.
//! - `expire` fires in tick order: every timer of an earlier tick before any of a later one.
//!   Within one tick the order is unspecified.
//! - [`TimerWheel::next_deadline`] is the earliest instant at which `expire` can have
//!   anything to do. For timers due within the current 256-tick window it is exact (the tick
//!   at which they fire); for later ones it is the start of their wheel slot, a lower bound.
//!   A driver that sleeps until it never wakes late; it may wake early and find nothing to
//!   fire (`expire` then just cascades and returns 0). It is never earlier than needed by
//!   more than the width of one slot of the level holding the earliest timer.
//! - A [`TimerId`] carries a generation: after its timer fired or was cancelled, `cancel`
//!   and `reschedule` with it return `false` and do nothing.
//! - Capacity is fixed: the node slab is preallocated, and [`TimerWheel::schedule`] fails
//!   with [`WheelFull`] when all nodes are in use. Nothing allocates after construction.
//!
//! Design: 8 levels of 256 slots; level `l` slot width is 256^l ticks, so the wheel spans the
//! whole `u64` tick range and no deadline needs clamping (at 1 ms ticks, level 2 already
//! covers 4.6 hours and level 3 49 days). A timer sits in the level given by the highest bit
//! in which its deadline differs from the wheel's current tick, so all timers of one level
//! lie in slots after the current one and the lowest non-empty level holds the earliest
//! timer. When time reaches a higher-level slot its timers cascade down (each timer cascades
//! at most once per level). Slots are intrusive doubly-linked lists through a slab of 32-byte
//! nodes with a free list; a 256-bit occupancy bitmap per level finds the next non-empty slot
//! in a few word operations.
//!
//! Complexity: `schedule`, `cancel`, `reschedule` O(1); `expire` O(fired + cascaded + levels);
//! `next_deadline` O(levels). Memory: 32 bytes per timer plus 8 KiB of slot heads.

use crate::time::{Duration, Instant};

const LEVELS: usize = 8;
const SLOT_BITS: u32 = 8;
const SLOTS: usize = 1 << SLOT_BITS;
const NIL: u32 = u32::MAX;
/// `Node::slot` of a node on the free list.
const FREE: u16 = u16::MAX;

/// The intended tick: fine enough for RTOs (≥ 200 ms) and delayed ACKs (≤ 40 ms).
pub const DEFAULT_TICK: Duration = Duration::from_millis(1);

/// Handle to a scheduled timer. Stale handles are detected and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

/// [`TimerWheel::schedule`] found no free timer node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFull;

impl core::fmt::Display for WheelFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timer wheel full: every preallocated timer is in use")
    }
}

impl std::error::Error for WheelFull {}

#[derive(Clone, Copy)]
struct Node {
    deadline: u64,
    prev: u32,
    next: u32,
    token: u32,
    generation: u32,
    /// `level * 256 + slot`, or [`FREE`].
    slot: u16,
}

/// See the module docs.
pub struct TimerWheel {
    nodes: Vec<Node>,
    free_head: u32,
    heads: Box<[u32; LEVELS * SLOTS]>,
    occupied: [[u64; SLOTS / 64]; LEVELS],
    /// The current tick: every timer with a deadline tick ≤ `elapsed` has fired.
    elapsed: u64,
    tick_micros: u64,
    len: usize,
}

impl TimerWheel {
    /// A wheel for up to `capacity` simultaneous timers, ticking every `tick` (at least 1 µs;
    /// [`DEFAULT_TICK`] is the intended value), starting at `now`.
    pub fn new(capacity: usize, tick: Duration, now: Instant) -> Self {
        assert!(
            capacity < NIL as usize,
            "timer wheel capacity must fit in u32"
        );
        let tick_micros = (tick.as_micros() as u64).max(1);
        let nodes = (0..capacity)
            .map(|i| Node {
                deadline: 0,
                prev: NIL,
                next: if i + 1 < capacity { i as u32 + 1 } else { NIL },
                token: 0,
                generation: 0,
                slot: FREE,
            })
            .collect();
        TimerWheel {
            nodes,
            free_head: if capacity > 0 { 0 } else { NIL },
            heads: Box::new([NIL; LEVELS * SLOTS]),
            occupied: [[0; SLOTS / 64]; LEVELS],
            elapsed: now.total_micros() / tick_micros,
            tick_micros,
            len: 0,
        }
    }

    /// Scheduled timers.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// Schedules `token` to fire at `deadline` (a deadline in the past fires at the next
    /// `expire`).
    #[inline]
    pub fn schedule(&mut self, deadline: Instant, token: u32) -> Result<TimerId, WheelFull> {
        let index = self.free_head;
        if index == NIL {
            return Err(WheelFull);
        }
        let tick = self.deadline_tick(deadline);
        let n = &mut self.nodes[index as usize];
        self.free_head = n.next;
        n.deadline = tick;
        n.token = token;
        let generation = n.generation;
        self.link(index);
        self.len += 1;
        Ok(TimerId { index, generation })
    }

    /// Cancels a timer. Returns false if it already fired or was cancelled.
    #[inline]
    pub fn cancel(&mut self, id: TimerId) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.unlink(id.index);
        self.release(id.index);
        true
    }

    /// Moves a live timer to a new deadline, keeping its id. Returns false (and does
    /// nothing) if it already fired or was cancelled.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        if !self.is_live(id) {
            return false;
        }
        let tick = self.deadline_tick(deadline);
        if self.nodes[id.index as usize].deadline == tick {
            return true;
        }
        self.unlink(id.index);
        self.nodes[id.index as usize].deadline = tick;
        self.link(id.index);
        true
    }

    /// Whether `id` refers to a timer that is still scheduled.
    pub fn is_live(&self, id: TimerId) -> bool {
        self.nodes
            .get(id.index as usize)
            .is_some_and(|n| n.slot != FREE && n.generation == id.generation)
    }

    /// Fires every timer whose deadline tick has been reached by `now`, in tick order,
    /// passing its token to `fire`. Returns the number fired.
    pub fn expire(&mut self, now: Instant, mut fire: impl FnMut(u32)) -> usize {
        let now_tick = now.total_micros() / self.tick_micros;
        let mut fired = 0;
        while let Some((level, slot, start)) = self.next_slot() {
            if start > now_tick {
                break;
            }
            // Time reaches this slot: everything earlier has fired.
            self.elapsed = self.elapsed.max(start);
            let b = level * SLOTS + slot;
            let mut i = core::mem::replace(&mut self.heads[b], NIL);
            self.occupied[level][slot / 64] &= !(1 << (slot % 64));
            while i != NIL {
                let next = self.nodes[i as usize].next;
                if level == 0 {
                    let token = self.nodes[i as usize].token;
                    self.release(i);
                    fire(token);
                    fired += 1;
                } else {
                    // Cascade: placed again relative to the new current tick, always lower.
                    self.link(i);
                }
                i = next;
            }
        }
        // No non-empty slot starts at or before `now_tick`, so every placement stays valid.
        self.elapsed = self.elapsed.max(now_tick);
        fired
    }

    /// The earliest instant at which [`expire`](Self::expire) may fire something (see the
    /// module docs: exact within the current 256-tick window, else a lower bound).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_slot()
            .map(|(_, _, start)| Instant::from_micros(start.saturating_mul(self.tick_micros)))
    }

    // ---- internals ---------------------------------------------------------------------

    fn deadline_tick(&self, deadline: Instant) -> u64 {
        deadline.total_micros().div_ceil(self.tick_micros)
    }

    /// (level, slot) for a deadline tick relative to `elapsed`. Past deadlines go to the
    /// current level-0 slot, which the next `expire` visits first.
    fn place(&self, deadline: u64) -> (usize, usize) {
        let d = deadline.max(self.elapsed);
        let differ = (d ^ self.elapsed) | (SLOTS as u64 - 1);
        let level = ((63 - differ.leading_zeros()) / SLOT_BITS) as usize;
        let slot = ((d >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1);
        (level, slot)
    }

    fn link(&mut self, i: u32) {
        let (level, slot) = self.place(self.nodes[i as usize].deadline);
        let b = level * SLOTS + slot;
        let head = self.heads[b];
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = head;
            n.slot = b as u16;
        }
        if head != NIL {
            self.nodes[head as usize].prev = i;
        }
        self.heads[b] = i;
        self.occupied[level][slot / 64] |= 1 << (slot % 64);
    }

    fn unlink(&mut self, i: u32) {
        let Node {
            prev, next, slot, ..
        } = self.nodes[i as usize];
        let b = slot as usize;
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[b] = next;
            if next == NIL {
                let (level, s) = (b / SLOTS, b % SLOTS);
                self.occupied[level][s / 64] &= !(1 << (s % 64));
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Returns a node to the free list and invalidates its ids.
    fn release(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        n.slot = FREE;
        n.generation = n.generation.wrapping_add(1);
        n.prev = NIL;
        n.next = self.free_head;
        self.free_head = i;
        self.len -= 1;
    }

    /// The earliest non-empty slot: (level, slot, first tick it covers). The lowest
    /// non-empty level holds it, because each level's timers lie within the current slot of
    /// the level above.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        if self.len == 0 {
            // Nothing linked: no level has an occupied slot (skips scanning all eight).
            return None;
        }
        for level in 0..LEVELS {
            let shift = level as u32 * SLOT_BITS;
            let current = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            if let Some(slot) = first_set_from(&self.occupied[level], current) {
                // Slot start: `elapsed` with this level's digit replaced and lower digits 0.
                let width_bits = shift + SLOT_BITS;
                let high = if width_bits >= 64 {
                    0
                } else {
                    (self.elapsed >> width_bits) << width_bits
                };
                let start = high | ((slot as u64) << shift);
                return Some((level, slot, start.max(self.elapsed)));
            }
        }
        None
    }
}

/// Index of the first set bit at or after `from` in a 256-bit map.
#[inline]
fn first_set_from(map: &[u64; SLOTS / 64], from: usize) -> Option<usize> {
    let mut w = from / 64;
    let mut bits = map[w] & (!0u64 << (from % 64));
    loop {
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        w += 1;
        if w == SLOTS / 64 {
            return None;
        }
        bits = map[w];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn collect(w: &mut TimerWheel, now: Instant) -> Vec<u32> {
        let mut v = Vec::new();
        w.expire(now, |t| v.push(t));
        v
    }

    #[test]
    fn node_is_32_bytes() {
        assert_eq!(core::mem::size_of::<Node>(), 32);
    }

    #[test]
    fn fires_in_order_never_early() {
        let mut w = TimerWheel::new(16, MS, Instant::ZERO);
        for (tok, d) in [(1, 30), (2, 10), (3, 20), (4, 300), (5, 70_000)] {
            w.schedule(ms(d), tok).unwrap();
        }
        assert_eq!(w.len(), 5);
        assert_eq!(w.next_deadline(), Some(ms(10)));
        assert!(collect(&mut w, Instant::from_micros(9_999)).is_empty());
        assert_eq!(collect(&mut w, ms(10)), vec![2]);
        assert_eq!(w.next_deadline(), Some(ms(20)));
        assert_eq!(collect(&mut w, ms(30)), vec![3, 1]);
        // Timer 4 (300 ms) sits on level 1: the bound is its slot's start, a safe early wakeup
        // that only cascades it.
        assert_eq!(w.next_deadline(), Some(ms(256)));
        assert!(collect(&mut w, ms(256)).is_empty());
        assert_eq!(w.next_deadline(), Some(ms(300)));
        assert!(collect(&mut w, ms(299)).is_empty());
        assert_eq!(collect(&mut w, ms(300)), vec![4]);
        assert_eq!(collect(&mut w, ms(69_999)), Vec::<u32>::new());
        assert_eq!(collect(&mut w, ms(70_000)), vec![5]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn sub_tick_deadline_rounds_up() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        w.schedule(Instant::from_micros(1_500), 7).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(2)));
        assert!(collect(&mut w, Instant::from_micros(1_999)).is_empty());
        assert_eq!(collect(&mut w, ms(2)), vec![7]);
    }

    #[test]
    fn past_deadline_fires_next_expire() {
        let mut w = TimerWheel::new(4, MS, ms(1000));
        w.schedule(ms(5), 1).unwrap();
        w.schedule(ms(1000), 2).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(1000)));
        let mut v = collect(&mut w, ms(1000));
        v.sort();
        assert_eq!(v, vec![1, 2]);
    }

    #[test]
    fn cancel_and_stale_ids() {
        let mut w = TimerWheel::new(2, MS, Instant::ZERO);
        let a = w.schedule(ms(10), 1).unwrap();
        let b = w.schedule(ms(10), 2).unwrap();
        assert_eq!(w.schedule(ms(10), 3), Err(WheelFull));
        assert!(w.cancel(a));
        assert!(!w.cancel(a));
        assert!(!w.reschedule(a, ms(5)));
        // The node is reused with a new generation: the old id stays dead.
        let c = w.schedule(ms(20), 3).unwrap();
        assert_eq!(c.index, a.index);
        assert!(!w.cancel(a));
        assert!(w.is_live(c));
        assert_eq!(collect(&mut w, ms(10)), vec![2]);
        assert!(!w.cancel(b), "fired timer cannot be cancelled");
        assert!(!w.reschedule(b, ms(30)));
        assert!(w.cancel(c));
        assert!(collect(&mut w, ms(100)).is_empty());
        assert!(w.is_empty());
        let mut z = TimerWheel::new(0, MS, Instant::ZERO);
        assert_eq!(z.schedule(ms(1), 1), Err(WheelFull));
    }

    #[test]
    fn reschedule_keeps_id() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        let a = w.schedule(ms(100_000), 1).unwrap();
        let b = w.schedule(ms(50), 2).unwrap();
        assert!(w.reschedule(a, ms(20)));
        assert!(w.reschedule(b, ms(200_000)));
        assert_eq!(w.next_deadline(), Some(ms(20)));
        assert_eq!(collect(&mut w, ms(100)), vec![1]);
        assert!(w.is_live(b));
        assert!(w.reschedule(b, ms(150)));
        assert_eq!(collect(&mut w, ms(149)), Vec::<u32>::new());
        assert_eq!(collect(&mut w, ms(150)), vec![2]);
    }

    #[test]
    fn long_deadlines_cascade() {
        let mut w = TimerWheel::new(64, MS, Instant::ZERO);
        let hour = 3_600_000;
        let deadlines = [
            255,
            256,
            65_535,
            65_536,
            hour,
            16_777_216, // 2^24: first level-3 slot
            5 * hour,
            30 * 24 * hour,
            100 * 24 * hour, // beyond 2^32 ms
            (1u64 << 40) + 3,
        ];
        for (i, &d) in deadlines.iter().enumerate() {
            w.schedule(ms(d), i as u32).unwrap();
        }
        let mut fired = Vec::new();
        let mut wakeups = 0;
        // Drive purely by next_deadline, as a driver would.
        while let Some(next) = w.next_deadline() {
            wakeups += 1;
            assert!(wakeups < 1000, "too many wakeups");
            w.expire(next, |t| {
                assert!(next >= ms(deadlines[t as usize]), "fired early");
                assert_eq!(next, ms(deadlines[t as usize]), "fired late");
                fired.push(t);
            });
        }
        assert_eq!(fired, (0..deadlines.len() as u32).collect::<Vec<_>>());
        println!(
            "{} timers over 2^40 ms in {wakeups} wakeups",
            deadlines.len()
        );
    }

    #[test]
    fn coarse_tick() {
        let mut w = TimerWheel::new(4, Duration::from_millis(10), Instant::ZERO);
        w.schedule(ms(15), 1).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(20)));
        assert!(collect(&mut w, ms(19)).is_empty());
        assert_eq!(collect(&mut w, ms(20)), vec![1]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule(u64),
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
        AdvanceToNext,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Mix of near, medium and far offsets (µs) to exercise several levels.
        let offset = prop_oneof![
            0u64..2_000,
            0u64..300_000,
            0u64..70_000_000,
            0u64..20_000_000_000,
        ];
        prop_oneof![
            4 => offset.clone().prop_map(Op::Schedule),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), offset.clone()).prop_map(|(i, d)| Op::Reschedule(i, d)),
            3 => offset.prop_map(Op::Advance),
            1 => Just(Op::AdvanceToNext),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 512 }))]

        /// Compares against a reference model: a BTreeMap of (deadline tick, token).
        #[test]
        fn matches_reference_model(ops in proptest::collection::vec(op(), 1..300)) {
            let tick = 1000u64;
            let mut w = TimerWheel::new(64, MS, Instant::ZERO);
            let mut now = 0u64; // µs
            let mut model: BTreeMap<(u64, u32), ()> = BTreeMap::new();
            let mut ids: Vec<(TimerId, u32, u64)> = Vec::new(); // (id, token, deadline tick)
            let mut next_token = 0u32;
            for op in ops {
                match op {
                    Op::Schedule(off) => {
                        let d = now + off;
                        match w.schedule(Instant::from_micros(d), next_token) {
                            Ok(id) => {
                                model.insert((d.div_ceil(tick), next_token), ());
                                ids.push((id, next_token, d.div_ceil(tick)));
                            }
                            Err(WheelFull) => prop_assert_eq!(model.len(), 64),
                        }
                        next_token += 1;
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let (id, tok, dt) = ids[i % ids.len()];
                        let live = model.remove(&(dt, tok)).is_some();
                        prop_assert_eq!(w.cancel(id), live);
                    }
                    Op::Reschedule(i, off) if !ids.is_empty() => {
                        let k = i % ids.len();
                        let (id, tok, dt) = ids[k];
                        let live = model.remove(&(dt, tok)).is_some();
                        let d = now + off;
                        prop_assert_eq!(w.reschedule(id, Instant::from_micros(d)), live);
                        if live {
                            model.insert((d.div_ceil(tick), tok), ());
                            ids[k].2 = d.div_ceil(tick);
                        }
                    }
                    Op::Cancel(_) | Op::Reschedule(..) => {}
                    Op::Advance(_) | Op::AdvanceToNext => {
                        let target = match op {
                            Op::Advance(off) => now + off,
                            _ => match w.next_deadline() {
                                Some(t) => t.total_micros().max(now),
                                None => now,
                            },
                        };
                        // next_deadline never exceeds the true next firing tick.
                        if let (Some(nd), Some(((dt, _), ()))) = (w.next_deadline(), model.first_key_value()) {
                            prop_assert!(nd.total_micros() <= (*dt).max(now / tick) * tick);
                        }
                        prop_assert_eq!(w.next_deadline().is_none(), model.is_empty());
                        now = target;
                        let mut fired = Vec::new();
                        w.expire(Instant::from_micros(now), |t| fired.push(t));
                        let due: Vec<(u64, u32)> = model
                            .range(..=(now / tick, u32::MAX))
                            .map(|(k, _)| *k)
                            .collect();
                        for k in &due {
                            model.remove(k);
                        }
                        // Same set, and in non-decreasing deadline-tick order.
                        let mut got: Vec<u32> = fired.clone();
                        got.sort();
                        let mut want: Vec<u32> = due.iter().map(|k| k.1).collect();
                        want.sort();
                        prop_assert_eq!(got, want);
                        let tick_of = |t: u32| due.iter().find(|k| k.1 == t).unwrap().0;
                        for pair in fired.windows(2) {
                            prop_assert!(tick_of(pair[0]) <= tick_of(pair[1]));
                        }
                    }
                }
                prop_assert_eq!(w.len(), model.len());
            }
        }
    }

    #[test]
    fn throughput() {
        let n = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let mut w = TimerWheel::new(n, MS, Instant::ZERO);
        let t0 = std::time::Instant::now();
        let mut ids = Vec::with_capacity(n);
        for i in 0..n as u64 {
            // RTO-like spread: 200 ms .. 1.2 s.
            let d = 200 + (i.wrapping_mul(2_654_435_761) % 1000);
            ids.push(w.schedule(ms(d), i as u32).unwrap());
        }
        let sched = t0.elapsed();
        let t1 = std::time::Instant::now();
        for id in ids.iter().step_by(2) {
            assert!(w.cancel(*id));
        }
        let cancel = t1.elapsed();
        let t2 = std::time::Instant::now();
        let mut fired = 0;
        let mut now = 0;
        while !w.is_empty() {
            now += 1;
            fired += w.expire(ms(now), |_| ());
        }
        let exp = t2.elapsed();
        assert_eq!(fired, n / 2);
        println!(
            "timer wheel n={n}: schedule {:.1} ns, cancel {:.1} ns, expire {:.1} ns/timer \
             (1 ms steps over {now} ms)",
            sched.as_nanos() as f64 / n as f64,
            cancel.as_nanos() as f64 / (n / 2) as f64,
            exp.as_nanos() as f64 / (n / 2) as f64,
        );
    }
}
