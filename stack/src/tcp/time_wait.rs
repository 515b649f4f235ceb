//! The TIME-WAIT table: a compact record per closed connection instead of a control block.
//!
//! After an active close a connection must linger for 2×MSL (RFC 9293 §3.6) so that old
//! duplicates die and a lost final ACK can be repeated. At high connection rates these
//! records outnumber live connections, so each is a 32-byte [`TimeWaitEntry`] (56 bytes for
//! IPv6, whose tuple is 36 bytes: same fields, generic over [`Address`]) holding just
//! what TIME-WAIT processing needs: the 4-tuple, SND.NXT and RCV.NXT (to build the ACK and to
//! judge a new SYN), the peer's last TSval (PAWS, RFC 7323 §5, and RFC 6191) and our
//! receive window. Our own TSval for the ACK is not stored: the stack derives it from `now`
//! plus its keyed per-tuple offset.
//!
//! Contract:
//! - Sans-I/O: every call that depends on time takes `now`; expiry instants are kept as
//!   `u32` milliseconds since the driver's epoch and compared with wrapping arithmetic, so
//!   entries may live up to ~24 days and the caller must call [`TimeWaitTable::expire`] at
//!   least that often (it calls it every few milliseconds in practice).
//! - Never early: an entry expires at the first millisecond boundary at or after its
//!   `expires_at`. It may expire late only if an older entry has a later expiry: expiries are
//!   kept non-decreasing in insertion order (see below), which only ever lengthens a stay.
//! - Capacity bounds the TIME-WAIT entries *created* (inserted or restarted) within the last
//!   2×MSL, not only the live ones: a removed entry leaves a tombstone in the ring until the
//!   ring's head passes it. Policy when full: the oldest entry (the one with the least time
//!   left) is evicted early and counted in [`TimeWaitStats::table_full_evictions`]. (Linux,
//!   past `tcp_max_tw_buckets`, instead lets the newest connection skip TIME-WAIT; evicting
//!   the oldest gives up the least protection.)
//! - No allocation after [`TimeWaitTable::with_capacity`].
//!
//! Design: entries live in a ring in insertion order. All entries are given the same 2×MSL
//! lifetime, so insertion order is expiry order and expiry only ever looks at the head: O(1)
//! per expired entry, no per-entry timer. An entry whose expiry would be earlier than the
//! newest entry's is clamped up to it, which keeps the ring sorted whatever the caller passes.
//! A restarted 2MSL timer (a retransmitted FIN re-ACKed, RFC 9293 §3.10.7.4) moves the entry
//! to the tail. Removal (the tuple is reused, RFC 6191) marks a tombstone in place. A separate
//! open-addressing index of `u32` ring positions (linear probing, backward-shift deletion,
//! keyed hash) finds an entry by tuple: insert, lookup, restart and removal are O(1) expected.
//!
//! Each index bucket holds the ring position + 1 in its low bits and, in the bits the
//! capacity leaves free (8 for 10 M entries), a tag taken from the tuple's hash (bits the
//! bucket number does not use). A probe reads the ring only when the tag matches; a false
//! match is 1 in 2^tag-bits. Beside the index, a byte per bucket holds a second 8-bit tag
//! (0 = empty), and a probe walks those bytes first, reading a bucket only where its byte
//! matches (1 in 255 for an occupied bucket of another tuple). So a lookup that misses
//! (every new SYN) reads one cache line of the tags, an array a quarter of the index's size
//! (16 MiB for 10 M entries) that stays in a large last-level cache where the 64 MiB index
//! does not (cachegrind, 32 MiB LL: a full table's last-level read misses per server
//! lifecycle 1.21 -> 0.77, docs/lifecycle-cost.md).
//!
//! Memory: 32 bytes per ring slot plus 5 bytes per index bucket (power of two, load ≤ 0.7):
//! 320 MB + 80 MiB ≈ 404 MB for 10 M entries, 40.4 bytes per entry. Both are allocated up front but neither is
//! touched at construction (the ring grows into reserved capacity, the index is zeroed
//! allocation), so resident memory follows the number of entries actually used.

use core::mem::size_of;

use super::flow_table::{TupleHasher, buckets_for};
use super::{Address, FourTuple};
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpTimestamp};
use core::net::{Ipv4Addr, Ipv6Addr};

const FLAG_TIMESTAMPS: u8 = 1 << 0;
const FLAG_TOMBSTONE: u8 = 1 << 1;

/// One connection in TIME-WAIT: 32 bytes for IPv4, 56 for IPv6 (the 36-byte tuple and the
/// same 20 bytes of state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitEntry<A: Address = Ipv4Addr> {
    tuple: FourTuple<A>,
    snd_nxt: SeqNumber,
    rcv_nxt: SeqNumber,
    ts_recent: u32,
    expiry_ms: u32,
    rcv_wnd: u16,
    rcv_wscale: u8,
    flags: u8,
}

const _: () = assert!(size_of::<TimeWaitEntry>() <= 32);
const _: () = assert!(size_of::<TimeWaitEntry<Ipv6Addr>>() <= 64);

impl<A: Address> TimeWaitEntry<A> {
    pub fn tuple(&self) -> FourTuple<A> {
        self.tuple
    }
    /// Our SND.NXT: the sequence number of the TIME-WAIT ACK (one past our FIN).
    pub fn snd_nxt(&self) -> SeqNumber {
        self.snd_nxt
    }
    /// RCV.NXT: one past the peer's FIN; the TIME-WAIT ACK acknowledges it.
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.rcv_nxt
    }
    /// TS.Recent: the peer's last accepted TSval, if timestamps were in use.
    pub fn ts_recent(&self) -> Option<u32> {
        (self.flags & FLAG_TIMESTAMPS != 0).then_some(self.ts_recent)
    }
    /// The window field to advertise in the TIME-WAIT ACK (already scaled down).
    pub fn rcv_wnd(&self) -> u16 {
        self.rcv_wnd
    }
    /// Our receive window scale shift, as negotiated.
    pub fn rcv_wscale(&self) -> u8 {
        self.rcv_wscale
    }
    /// Expiry in milliseconds since the driver's epoch, modulo 2^32.
    pub fn expiry_millis(&self) -> u32 {
        self.expiry_ms
    }
    /// Records a newer TSval from the peer (PAWS bookkeeping, RFC 7323 §5.3). No effect if
    /// timestamps were not in use.
    pub fn set_ts_recent(&mut self, tsval: u32) {
        if self.flags & FLAG_TIMESTAMPS != 0 {
            self.ts_recent = tsval;
        }
    }
    fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }
}

/// What a connection hands over when it enters TIME-WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitInit<A: Address = Ipv4Addr> {
    pub tuple: FourTuple<A>,
    pub snd_nxt: SeqNumber,
    pub rcv_nxt: SeqNumber,
    /// TS.Recent when timestamps were negotiated, else `None`.
    pub ts_recent: Option<u32>,
    /// Window field for the TIME-WAIT ACK (already shifted by `rcv_wscale`).
    pub rcv_wnd: u16,
    pub rcv_wscale: u8,
}

/// Result of [`TimeWaitTable::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// The tuple was already in TIME-WAIT; the old entry was replaced.
    Replaced,
    /// The table was full: the oldest entry was evicted early to make room.
    EvictedOldest,
}

/// Counters since construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeWaitStats {
    pub inserts: u64,
    /// Entries removed by [`TimeWaitTable::expire`] at their expiry.
    pub expiries: u64,
    /// Entries removed by [`TimeWaitTable::remove`] (tuple reused) or replaced by an insert.
    pub removals: u64,
    /// Entries evicted early because the table was full.
    pub table_full_evictions: u64,
    pub restarts: u64,
}

/// A 4-tuple's hash under one table's key ([`TimeWaitTable::hash_of`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwHash(u64);

impl TwHash {
    /// The hash a [`FlowTable`](super::flow_table::FlowTable) computed for a tuple, as this
    /// table's hash of it: valid only for a table built with the flow table's seed (both
    /// hash with a [`TupleHasher`] keyed from the seed; the stack builds its two tables so).
    /// [`TimeWaitTable::get_hashed`] checks it in debug builds.
    #[inline]
    pub(crate) fn from_flow(h: super::flow_table::FlowHash) -> TwHash {
        TwHash(h.get())
    }
}

/// Fixed-capacity TIME-WAIT table. See the module docs.
pub struct TimeWaitTable<A: Address = Ipv4Addr> {
    /// Ring of entries in insertion order; grows into its reserved capacity, then wraps.
    ring: Vec<TimeWaitEntry<A>>,
    cap: usize,
    /// Oldest used ring position; always a live entry when `used > 0`.
    head: usize,
    /// Ring positions in use from `head`, tombstones included.
    used: usize,
    live: usize,
    /// Per bucket: `tag | (ring position + 1)`, 0 = empty (see the module docs).
    index: Vec<u32>,
    /// Per bucket: a second, 8-bit tag (never 0), 0 = empty: what a probe reads first
    /// (see the module docs).
    tags: Vec<u8>,
    mask: usize,
    /// The bits of a bucket that hold position + 1; the rest hold the tag.
    pos_mask: u32,
    hasher: TupleHasher,
    /// Latest `now` seen, in ms: the reference for turning `u32` expiries into instants.
    last_now_ms: u64,
    stats: TimeWaitStats,
}

/// Default capacity: 10 M entries (≈ 404 MB when full).
pub const DEFAULT_CAPACITY: usize = 10_000_000;

#[inline]
fn ceil_ms(t: Instant) -> u64 {
    t.total_micros().div_ceil(1000)
}

/// `a` is at or before `b`, modulo 2^32.
#[inline]
fn ms_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

impl TimeWaitTable {
    /// An IPv4 table for `capacity` entries (at least 1), keyed from `seed` (use a random
    /// seed). [`TimeWaitTable::new`] makes a table of either family.
    pub fn with_capacity(capacity: usize, seed: u64) -> Self {
        Self::new(capacity, seed)
    }
}

impl<A: Address> TimeWaitTable<A> {
    /// A table for `capacity` entries (at least 1), keyed from `seed` (use a random seed).
    pub fn new(capacity: usize, seed: u64) -> Self {
        let cap = capacity.max(1);
        assert!(
            cap < u32::MAX as usize,
            "TIME-WAIT capacity must fit in u32"
        );
        let buckets = buckets_for(cap);
        // Positions + 1 run up to `cap`: the bits above the highest one are free for the tag.
        let pos_bits = u32::BITS - (cap as u32).leading_zeros();
        let pos_mask = u32::MAX >> (u32::BITS - pos_bits);
        TimeWaitTable {
            ring: Vec::with_capacity(cap),
            cap,
            head: 0,
            used: 0,
            live: 0,
            index: vec![0u32; buckets],
            tags: vec![0u8; buckets],
            mask: buckets - 1,
            pos_mask,
            hasher: TupleHasher::new(seed),
            last_now_ms: 0,
            stats: TimeWaitStats::default(),
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn stats(&self) -> TimeWaitStats {
        self.stats
    }
    /// Bytes reserved (ring, index and tags); resident only as used.
    pub fn memory_bytes(&self) -> usize {
        self.cap * size_of::<TimeWaitEntry<A>>() + self.index.len() * (size_of::<u32>() + 1)
    }

    /// The ring's reserved capacity and the index (see [`crate::mem`]): fixed for the
    /// table's lifetime.
    pub fn regions(&self) -> [crate::mem::Region; 3] {
        [
            crate::mem::Region::of("time_wait.ring", self.ring.as_ptr(), self.ring.capacity()),
            crate::mem::Region::of("time_wait.index", self.index.as_ptr(), self.index.len()),
            crate::mem::Region::of("time_wait.tags", self.tags.as_ptr(), self.tags.len()),
        ]
    }

    fn note_now(&mut self, now: Instant) {
        self.last_now_ms = self.last_now_ms.max(now.total_millis());
    }

    // ---- index -------------------------------------------------------------------------

    /// The hash of `t` that the table's lookups use: computed once, it can be handed to
    /// [`TimeWaitTable::get_hashed`] later (as long as the table lives; its key never
    /// changes).
    #[inline]
    pub fn hash_of(&self, t: &FourTuple<A>) -> TwHash {
        TwHash(self.hasher.hash(t))
    }

    /// Home bucket and tag of `t`. The tag comes from the hash's top bits: the bucket number
    /// uses the low ones (at most 32 of them), so the two are independent.
    #[inline]
    fn home_and_tag(&self, t: &FourTuple<A>) -> (usize, u32) {
        let (i, tag, _) = self.home_and_tags(t);
        (i, tag)
    }

    /// Home bucket, tag and 8-bit tag of `t`. The 8-bit tag comes from the bits of the hash's
    /// upper half that the position part of a bucket leaves out of the 32-bit tag (its lowest
    /// 8), mapped away from 0 (the empty mark).
    #[inline]
    fn home_and_tags(&self, t: &FourTuple<A>) -> (usize, u32, u8) {
        self.home_and_tags_of(self.hash_of(t))
    }

    /// [`Self::home_and_tags`] from the tuple's hash.
    #[inline]
    fn home_and_tags_of(&self, h: TwHash) -> (usize, u32, u8) {
        let h = h.0;
        let hi = (h >> 32) as u32;
        (
            h as usize & self.mask,
            hi & !self.pos_mask,
            (hi as u8).max(1),
        )
    }

    /// (bucket, ring position) for `t`. The probe walks the 1-byte tags (a quarter of the
    /// index's size, so they stay in the last-level cache where the index does not) and
    /// reads a bucket, and then the ring, only where its tag matches: a lookup that misses,
    /// as almost every new SYN's does, touches one line of the tags and nothing else.
    #[inline]
    fn index_find(&self, t: &FourTuple<A>) -> Option<(usize, usize)> {
        self.index_find_hashed(t, self.hash_of(t))
    }

    /// [`Self::index_find`] with `t`'s hash already computed.
    #[inline]
    fn index_find_hashed(&self, t: &FourTuple<A>, h: TwHash) -> Option<(usize, usize)> {
        let (mut i, tag, tag8) = self.home_and_tags_of(h);
        loop {
            let g = self.tags[i];
            if g == 0 {
                return None;
            }
            if g == tag8 {
                let v = self.index[i];
                if v & !self.pos_mask == tag {
                    let pos = ((v & self.pos_mask) - 1) as usize;
                    if self.ring[pos].tuple == *t {
                        return Some((i, pos));
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The bucket of the entry of `t` known to be at ring position `pos`: compares bucket
    /// values only, never reads the ring.
    fn index_bucket_of(&self, t: &FourTuple<A>, pos: usize) -> Option<usize> {
        let (mut i, tag) = self.home_and_tag(t);
        let want = tag | (pos as u32 + 1);
        loop {
            match self.index[i] {
                0 => return None,
                v if v == want => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    fn index_insert(&mut self, t: &FourTuple<A>, pos: usize) {
        let (mut i, tag, tag8) = self.home_and_tags(t);
        while self.tags[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.index[i] = tag | (pos as u32 + 1);
        self.tags[i] = tag8;
    }

    /// Backward-shift deletion (see `flow_table`): no tombstones in the index.
    fn index_remove_bucket(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let v = self.index[j];
            if v == 0 {
                break;
            }
            let home = self
                .hash_of(&self.ring[((v & self.pos_mask) - 1) as usize].tuple)
                .0 as usize
                & self.mask;
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.index[hole] = v;
                self.tags[hole] = self.tags[j];
                hole = j;
            }
        }
        self.index[hole] = 0;
        self.tags[hole] = 0;
    }

    // ---- ring --------------------------------------------------------------------------

    #[inline]
    fn wrap(&self, p: usize) -> usize {
        if p >= self.cap { p - self.cap } else { p }
    }

    /// Tombstones the entry at `pos` (already out of the index) and trims tombstones off
    /// both ends of the ring, so the head is always live.
    fn kill(&mut self, pos: usize) {
        self.ring[pos].flags |= FLAG_TOMBSTONE;
        self.live -= 1;
        while self.used > 0 && self.ring[self.head].is_tombstone() {
            self.head = self.wrap(self.head + 1);
            self.used -= 1;
        }
        while self.used > 0 && self.ring[self.wrap(self.head + self.used - 1)].is_tombstone() {
            self.used -= 1;
        }
        if self.used == 0 {
            self.head = 0;
        }
    }

    /// Appends `e` at the tail (evicting the head if the ring is full) and indexes it.
    /// Returns whether an eviction happened.
    fn push(&mut self, mut e: TimeWaitEntry<A>) -> bool {
        let mut evicted = false;
        if self.used == self.cap {
            let head = self.head;
            let t = self.ring[head].tuple;
            let b = self
                .index_bucket_of(&t, head)
                .expect("live ring head is indexed");
            self.index_remove_bucket(b);
            self.kill(head);
            self.stats.table_full_evictions += 1;
            evicted = true;
        }
        if self.used > 0 {
            let last = self.ring[self.wrap(self.head + self.used - 1)].expiry_ms;
            if !ms_le(last, e.expiry_ms) {
                e.expiry_ms = last;
            }
        }
        let pos = self.wrap(self.head + self.used);
        if pos == self.ring.len() {
            // Within reserved capacity: never reallocates.
            self.ring.push(e);
        } else {
            self.ring[pos] = e;
        }
        self.used += 1;
        self.live += 1;
        self.index_insert(&e.tuple, pos);
        evicted
    }

    // ---- public operations -------------------------------------------------------------

    /// Puts a connection into TIME-WAIT until `expires_at` (normally `now + 2×MSL`).
    pub fn insert(
        &mut self,
        now: Instant,
        init: TimeWaitInit<A>,
        expires_at: Instant,
    ) -> InsertOutcome {
        self.note_now(now);
        let replaced = self.remove_inner(&init.tuple).is_some();
        let flags = if init.ts_recent.is_some() {
            FLAG_TIMESTAMPS
        } else {
            0
        };
        let e = TimeWaitEntry {
            tuple: init.tuple,
            snd_nxt: init.snd_nxt,
            rcv_nxt: init.rcv_nxt,
            ts_recent: init.ts_recent.unwrap_or(0),
            expiry_ms: ceil_ms(expires_at) as u32,
            rcv_wnd: init.rcv_wnd,
            rcv_wscale: init.rcv_wscale,
            flags,
        };
        self.stats.inserts += 1;
        if replaced {
            self.stats.removals += 1;
        }
        if self.push(e) {
            InsertOutcome::EvictedOldest
        } else if replaced {
            InsertOutcome::Replaced
        } else {
            InsertOutcome::Inserted
        }
    }

    /// Loads the tags of the tuples' home buckets into the cache ahead of their lookups: the
    /// loads are independent, so their cache and TLB misses overlap instead of each stalling
    /// the lookup that needs it. The hashes are those [`TimeWaitTable::get_hashed`] is given
    /// afterwards. No effect on the table's contents.
    pub fn prefetch(&self, hashes: impl Iterator<Item = TwHash>) {
        let mut acc = 0u8;
        for h in hashes {
            acc ^= self.tags[h.0 as usize & self.mask];
        }
        // Keeps the loads (their values are otherwise unused).
        core::hint::black_box(acc);
    }

    /// Whether the tuple of hash `h` may be in the table: `false` means it is not. Walks
    /// only the 8-bit tags of its probe path (what [`TimeWaitTable::prefetch`] loads) and
    /// stops at the first empty bucket or the first tag that matches, so it reads neither
    /// the index nor the ring. A `true` asks for [`TimeWaitTable::get_hashed`]; a `false`
    /// stays true until the next insert (removals and restarts never make a tuple present).
    #[inline]
    pub fn may_hold(&self, h: TwHash) -> bool {
        let (mut i, _, tag8) = self.home_and_tags_of(h);
        loop {
            let g = self.tags[i];
            if g == 0 {
                return false;
            }
            if g == tag8 {
                return true;
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn get(&self, tuple: &FourTuple<A>) -> Option<&TimeWaitEntry<A>> {
        self.index_find(tuple).map(|(_, pos)| &self.ring[pos])
    }

    /// [`TimeWaitTable::get`] with the tuple's hash from [`TimeWaitTable::hash_of`] (or
    /// [`TimeWaitTable::prefetch`]) of this table.
    #[inline]
    pub fn get_hashed(&self, tuple: &FourTuple<A>, h: TwHash) -> Option<&TimeWaitEntry<A>> {
        debug_assert_eq!(h, self.hash_of(tuple));
        self.index_find_hashed(tuple, h)
            .map(|(_, pos)| &self.ring[pos])
    }

    /// Mutable access for PAWS bookkeeping ([`TimeWaitEntry::set_ts_recent`]); the tuple and
    /// expiry cannot be changed through it.
    pub fn get_mut(&mut self, tuple: &FourTuple<A>) -> Option<&mut TimeWaitEntry<A>> {
        self.index_find(tuple).map(|(_, pos)| &mut self.ring[pos])
    }

    /// Restarts the 2MSL timer (RFC 9293 §3.10.7.4: a retransmitted FIN is acknowledged and
    /// the timer restarted). The entry moves to the tail. Returns false if absent.
    pub fn restart(&mut self, tuple: &FourTuple<A>, new_expiry: Instant) -> bool {
        let Some(mut e) = self.remove_inner(tuple) else {
            return false;
        };
        e.expiry_ms = ceil_ms(new_expiry) as u32;
        self.stats.restarts += 1;
        self.push(e);
        true
    }

    /// Removes an entry, e.g. when a new connection reuses the tuple (RFC 6191).
    pub fn remove(&mut self, tuple: &FourTuple<A>) -> Option<TimeWaitEntry<A>> {
        let e = self.remove_inner(tuple)?;
        self.stats.removals += 1;
        Some(e)
    }

    fn remove_inner(&mut self, tuple: &FourTuple<A>) -> Option<TimeWaitEntry<A>> {
        let (b, pos) = self.index_find(tuple)?;
        let e = self.ring[pos];
        self.index_remove_bucket(b);
        self.kill(pos);
        Some(e)
    }

    /// Removes up to `budget` entries whose expiry is at or before `now`, oldest first,
    /// calling `on_expired` for each. Returns how many expired.
    pub fn expire(
        &mut self,
        now: Instant,
        budget: usize,
        mut on_expired: impl FnMut(&TimeWaitEntry<A>),
    ) -> usize {
        self.note_now(now);
        let now_ms = now.total_millis() as u32;
        let mut n = 0;
        while n < budget && self.used > 0 {
            let head = self.head;
            let e = self.ring[head];
            debug_assert!(!e.is_tombstone());
            if !ms_le(e.expiry_ms, now_ms) {
                break;
            }
            let b = self
                .index_bucket_of(&e.tuple, head)
                .expect("live ring head is indexed");
            self.index_remove_bucket(b);
            self.kill(head);
            on_expired(&e);
            n += 1;
        }
        self.stats.expiries += n as u64;
        n
    }

    /// When the oldest entry expires (exact, at millisecond granularity), or `None` if empty.
    pub fn next_expiry(&self) -> Option<Instant> {
        if self.used == 0 {
            return None;
        }
        let exp = self.ring[self.head].expiry_ms;
        let delta = exp.wrapping_sub(self.last_now_ms as u32) as i32;
        Some(Instant::from_millis(
            self.last_now_ms.saturating_add_signed(i64::from(delta)),
        ))
    }
}

/// May a SYN for a tuple in TIME-WAIT open a new incarnation now? (RFC 6191 §2.)
///
/// `syn_ts` is the SYN's timestamp option when timestamps would be enabled for the new
/// incarnation (pass `None` if the SYN has none or the stack would not use them).
///
/// - Old incarnation used timestamps: accept if the SYN's TSval is newer than TS.Recent; or
///   equal to it and the SYN's sequence number is above the old RCV.NXT; or, when the new
///   incarnation would not use timestamps, if the sequence number is above the old RCV.NXT.
///   An older TSval is refused whatever the sequence number.
/// - Old incarnation without timestamps: accept if the new one would use them (old
///   duplicates, which carry none, are then discarded by RFC 7323 §3.2), or if the sequence
///   number is above the old RCV.NXT (RFC 9293 §3.10.7.4, RFC 1122 §4.2.2.13).
///
/// "Above" is strict, in sequence space (and TSval comparison is modulo 2^32, RFC 7323
/// §5.3). On `false` the SYN must not reuse the tuple: RFC 6191 drops it silently, RFC 9293
/// §3.10.7.4 with RFC 5961 §4 answers with an ACK; the choice is the stack's.
pub fn syn_may_reuse<A: Address>(
    entry: &TimeWaitEntry<A>,
    syn_seq: SeqNumber,
    syn_ts: Option<TcpTimestamp>,
) -> bool {
    let isn_above = syn_seq > entry.rcv_nxt;
    match (entry.ts_recent(), syn_ts) {
        (Some(recent), Some(ts)) => {
            let d = ts.tsval.wrapping_sub(recent) as i32;
            d > 0 || (d == 0 && isn_above)
        }
        (Some(_), None) => isn_above,
        (None, Some(_)) => true,
        (None, None) => isn_above,
    }
}

#[cfg(test)]
mod tests;
