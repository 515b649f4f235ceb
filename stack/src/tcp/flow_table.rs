//! The connection lookup table: [`FourTuple`] → connection slot index (`u32`).
//!
//! Contract:
//! - Capacity is fixed at construction (`max_entries`); [`FlowTable::insert`] fails with
//!   [`InsertError::Full`] beyond it and never allocates. Nothing here allocates after
//!   [`FlowTable::with_capacity`].
//! - An existing key is never overwritten: `insert` returns [`InsertError::Exists`] with the
//!   value already stored, so a duplicate SYN can never silently steal a live slot.
//! - Values are slot indices below [`FlowTable::MAX_VALUE`] (`u32::MAX` is reserved as the
//!   internal empty marker); a larger value is a caller bug and panics.
//!
//! Design: open addressing with linear probing and backward-shift deletion (no tombstones, so
//! probe lengths do not degrade under churn). The bucket count is the smallest power of two
//! that keeps the load at or below 0.7 when the table holds `max_entries`. A bucket is 16
//! bytes (`[u64; 2]`: both addresses, then ports and `value + 1`), so a probe sequence walks
//! contiguous memory and a 64-byte cache line holds four buckets. Memory: 16 bytes ×
//! buckets, e.g. 32 MiB for 1 M entries, 256 MiB for 10 M. Buckets are allocated zeroed (an
//! all-zero bucket is empty), which the allocator serves from untouched pages: a large table
//! costs resident memory only as it fills.
//!
//! Complexity: `get`, `insert`, `remove` are O(1) expected.
//!
//! Hashing: `TupleHasher`, keyed per table from the seed. Peers choose their address and
//! port, so an unkeyed hash would let them aim every connection at one probe run; the stack
//! must seed each table from a random source. The hash is a vector multiply-shift over the
//! three 32-bit words of the tuple with random 64-bit multipliers (pairwise collision
//! probability of the 64-bit value at most 2^-32 for any two fixed tuples, Dietzfelbinger
//! 1996 / Thorup), followed by a fixed bijective finalizer so that structured key sets
//! (consecutive ports, address ranges) do not map to regular lattices, which linear probing
//! handles badly. IPv6 tables (`FlowTable::<Ipv6Addr>::new`) use 40-byte buckets (the
//! 36-byte tuple and the value, [`FlowKey`]), the same probing and deletion, the IPv6
//! hash of [`TupleHasher`]; their buckets are written at construction (not zero pages).
//! This is the same trade as Linux's keyed jhash for its established table:
//! fast and unpredictable without a secret, not a cryptographic MAC. Measured cost is printed
//! by the `hash_speed` test next to SipHash-1-3 for comparison.

use super::FourTuple;

/// A keyed hash of a [`FourTuple`] of either family, shared by the flow table and the
/// TIME-WAIT index.
#[derive(Clone, Copy)]
#[doc(hidden)]
pub struct TupleHasher {
    k: [u64; 4],
    /// IPv6: one multiplier per 32-bit word of the two addresses, then the ports.
    k6: [u64; 9],
}

impl TupleHasher {
    /// Expands a 64-bit seed into the multipliers (SplitMix64). Each is forced odd so that no
    /// input word can be multiplied away entirely. The IPv4 multipliers are drawn first, so
    /// they are what they were before IPv6.
    pub(crate) fn new(seed: u64) -> Self {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let k = [next(), next() | 1, next() | 1, next() | 1];
        let k6 = core::array::from_fn(|_| next() | 1);
        TupleHasher { k, k6 }
    }

    /// The hash of a tuple of either family.
    #[inline]
    pub(crate) fn hash<A: super::Address>(&self, t: &FourTuple<A>) -> u64 {
        <A as super::sealed::Sealed>::tuple_hash(self, t)
    }

    #[inline]
    pub(crate) fn hash_v4(&self, t: &FourTuple) -> u64 {
        let (a, p) = pack(t);
        self.hash_packed(a, p)
    }

    /// The same vector multiply-shift over the nine 32-bit words of an IPv6 tuple (eight of
    /// addresses, one of ports), then the same finalizer.
    #[inline]
    pub(crate) fn hash_v6(&self, t: &FourTuple<core::net::Ipv6Addr>) -> u64 {
        let (l, r) = (t.local_addr.octets(), t.remote_addr.octets());
        let word = |b: &[u8; 16], i: usize| {
            u64::from(u32::from_be_bytes([
                b[4 * i],
                b[4 * i + 1],
                b[4 * i + 2],
                b[4 * i + 3],
            ]))
        };
        let mut v = self.k[0];
        for i in 0..4 {
            v = v
                .wrapping_add(self.k6[i].wrapping_mul(word(&l, i)))
                .wrapping_add(self.k6[4 + i].wrapping_mul(word(&r, i)));
        }
        let ports = (u32::from(t.local_port) << 16) | u32::from(t.remote_port);
        v = v.wrapping_add(self.k6[8].wrapping_mul(u64::from(ports)));
        finalize(v)
    }

    #[inline]
    fn hash_packed(&self, addrs: u64, ports: u32) -> u64 {
        let v = self.k[0]
            .wrapping_add(self.k[1].wrapping_mul(addrs >> 32))
            .wrapping_add(self.k[2].wrapping_mul(addrs & 0xffff_ffff))
            .wrapping_add(self.k[3].wrapping_mul(u64::from(ports)));
        finalize(v)
    }
}

/// Bijective finalizer (xor-shift-multiply): keeps the collision bound of `v`, spreads its
/// well-mixed high bits into the low bits used as the bucket index.
#[inline]
fn finalize(v: u64) -> u64 {
    let mut z = v ^ (v >> 32);
    z = z.wrapping_mul(0xd6e8_feb8_6659_fd93);
    z ^ (z >> 32)
}

#[inline]
fn pack(t: &FourTuple) -> (u64, u32) {
    let addrs = (u64::from(t.local_addr.to_bits()) << 32) | u64::from(t.remote_addr.to_bits());
    let ports = (u32::from(t.local_port) << 16) | u32::from(t.remote_port);
    (addrs, ports)
}

/// A tuple's hash in one [`FlowTable`] ([`FlowTable::hash_of`]); valid for that table only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash(u64);

impl FlowHash {
    /// A placeholder where no tuple is stored yet (not the hash of anything in particular).
    pub(crate) const UNSET: FlowHash = FlowHash(0);

    /// The hash's bits (for a filter over hashes; tables take the `FlowHash` itself).
    #[inline]
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// Why [`FlowTable::insert`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table already holds `max_entries` entries.
    Full,
    /// The key is present; its current value is returned and left unchanged.
    Exists(u32),
}

impl core::fmt::Display for InsertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InsertError::Full => f.write_str("flow table full"),
            InsertError::Exists(v) => write!(f, "flow already present (slot {v})"),
        }
    }
}

impl std::error::Error for InsertError {}

/// How one family's tuples sit in the flow table's buckets. IPv4: the 12-byte key and the
/// value packed into 16 bytes (`[addrs, ports << 32 | (value + 1)]`), compared as two words.
/// IPv6: the 36-byte tuple and the value in a 40-byte bucket. Implemented by the two
/// [`super::Address`] types only (it is a supertrait of their sealed trait).
#[doc(hidden)]
pub trait FlowKey: Sized {
    /// What a probe compares: the tuple in its packed form.
    type Key: Copy;
    /// One bucket; `Self::EMPTY` (all zero) is an empty one.
    type Bucket: Copy;
    const EMPTY: Self::Bucket;
    fn key(t: &FourTuple<Self>) -> Self::Key
    where
        Self: super::Address;
    fn hash_key(h: &TupleHasher, k: &Self::Key) -> u64;
    /// The stored `value + 1`; 0 for an empty bucket.
    fn stored(b: &Self::Bucket) -> u32;
    fn set_stored(b: &mut Self::Bucket, v: u32);
    fn matches(b: &Self::Bucket, k: &Self::Key) -> bool;
    fn bucket(k: &Self::Key, stored: u32) -> Self::Bucket;
    fn key_of(b: &Self::Bucket) -> Self::Key;
}

impl FlowKey for core::net::Ipv4Addr {
    type Key = (u64, u32);
    type Bucket = [u64; 2];
    const EMPTY: [u64; 2] = [0, 0];
    #[inline(always)]
    fn key(t: &FourTuple) -> (u64, u32) {
        pack(t)
    }
    #[inline(always)]
    fn hash_key(h: &TupleHasher, k: &(u64, u32)) -> u64 {
        h.hash_packed(k.0, k.1)
    }
    #[inline(always)]
    fn stored(b: &[u64; 2]) -> u32 {
        b[1] as u32
    }
    #[inline(always)]
    fn set_stored(b: &mut [u64; 2], v: u32) {
        b[1] = (b[1] & 0xffff_ffff_0000_0000) | u64::from(v);
    }
    #[inline(always)]
    fn matches(b: &[u64; 2], k: &(u64, u32)) -> bool {
        // The ports shifted down to the key's (no mask and shifted key set up per probe).
        b[0] == k.0 && (b[1] >> 32) as u32 == k.1
    }
    #[inline(always)]
    fn bucket(k: &(u64, u32), stored: u32) -> [u64; 2] {
        [k.0, (u64::from(k.1) << 32) | u64::from(stored)]
    }
    #[inline(always)]
    fn key_of(b: &[u64; 2]) -> (u64, u32) {
        (b[0], (b[1] >> 32) as u32)
    }
}

/// An IPv6 bucket: the tuple and `value + 1` (0: empty), 40 bytes.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Bucket6 {
    tuple: FourTuple<core::net::Ipv6Addr>,
    stored: u32,
}

const _: () = assert!(core::mem::size_of::<Bucket6>() == 40);

impl FlowKey for core::net::Ipv6Addr {
    type Key = FourTuple<core::net::Ipv6Addr>;
    type Bucket = Bucket6;
    const EMPTY: Bucket6 = Bucket6 {
        tuple: FourTuple {
            local_addr: core::net::Ipv6Addr::UNSPECIFIED,
            remote_addr: core::net::Ipv6Addr::UNSPECIFIED,
            local_port: 0,
            remote_port: 0,
        },
        stored: 0,
    };
    #[inline]
    fn key(t: &Self::Key) -> Self::Key {
        *t
    }
    #[inline]
    fn hash_key(h: &TupleHasher, k: &Self::Key) -> u64 {
        h.hash_v6(k)
    }
    #[inline]
    fn stored(b: &Bucket6) -> u32 {
        b.stored
    }
    #[inline]
    fn set_stored(b: &mut Bucket6, v: u32) {
        b.stored = v;
    }
    #[inline]
    fn matches(b: &Bucket6, k: &Self::Key) -> bool {
        b.tuple == *k
    }
    #[inline]
    fn bucket(k: &Self::Key, stored: u32) -> Bucket6 {
        Bucket6 { tuple: *k, stored }
    }
    #[inline]
    fn key_of(b: &Bucket6) -> Self::Key {
        b.tuple
    }
}

/// Fixed-capacity open-addressing map from [`FourTuple`] of either family (IPv4 by
/// default) to a `u32` slot index.
pub struct FlowTable<A: super::Address = core::net::Ipv4Addr> {
    buckets: Vec<A::Bucket>,
    mask: usize,
    len: usize,
    max_entries: usize,
    hasher: TupleHasher,
}

impl FlowTable {
    /// The largest storable value.
    pub const MAX_VALUE: u32 = MAX_VALUE;

    /// An IPv4 table for up to `max_entries` flows, hashed with a key derived from `seed`
    /// (which should come from a random source). Allocates all memory now.
    pub fn with_capacity(max_entries: usize, seed: u64) -> Self {
        Self::new(max_entries, seed)
    }
}

/// The largest storable value (`u32::MAX` marks an empty bucket internally).
pub const MAX_VALUE: u32 = u32::MAX - 1;

impl<A: super::Address> FlowTable<A> {
    /// A table of this family for up to `max_entries` flows (see
    /// [`FlowTable::with_capacity`]). Allocates all memory now.
    pub fn new(max_entries: usize, seed: u64) -> Self {
        let buckets = buckets_for(max_entries);
        FlowTable {
            // Zeroed allocation: pages are only made resident when first written.
            buckets: vec![A::EMPTY; buckets],
            mask: buckets - 1,
            len: 0,
            max_entries,
            hasher: TupleHasher::new(seed),
        }
    }

    /// Number of stored flows.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configured maximum number of flows.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Number of buckets (a power of two, load ≤ 0.7 at full capacity).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Bytes of bucket storage (allocated; resident only as touched).
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * core::mem::size_of::<A::Bucket>()
    }

    /// The bucket array (see [`crate::mem`]): fixed for the table's lifetime.
    pub fn region(&self) -> crate::mem::Region {
        crate::mem::Region::of("flows", self.buckets.as_ptr(), self.buckets.len())
    }

    #[inline]
    fn home(&self, k: &A::Key) -> usize {
        A::hash_key(&self.hasher, k) as usize & self.mask
    }

    /// The hash of `key` in this table, for the `*_hashed` methods: a segment's tuple is
    /// hashed once at its lookup and the hash reused when the same segment inserts or
    /// replaces the entry.
    #[inline]
    pub fn hash_of(&self, key: &FourTuple<A>) -> FlowHash {
        FlowHash(A::hash_key(&self.hasher, &A::key(key)))
    }

    /// Bucket index holding `k` (whose hash is `hash`), or the empty bucket ending its probe
    /// run.
    #[inline]
    fn find_from(&self, k: &A::Key, hash: u64) -> (usize, bool) {
        debug_assert_eq!(hash, A::hash_key(&self.hasher, k), "hash of another key");
        let mut i = hash as usize & self.mask;
        loop {
            let b = &self.buckets[i];
            if A::stored(b) == 0 {
                return (i, false);
            }
            if A::matches(b, k) {
                return (i, true);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The slot stored for `key`.
    #[inline]
    pub fn get(&self, key: &FourTuple<A>) -> Option<u32> {
        self.get_hashed(key, self.hash_of(key))
    }

    /// [`get`](Self::get) with `key`'s [`hash_of`](Self::hash_of).
    #[inline]
    pub fn get_hashed(&self, key: &FourTuple<A>, hash: FlowHash) -> Option<u32> {
        // `find_from`'s walk, returning the value from the bucket it already holds (every
        // received segment's lookup: no second indexing of the bucket).
        let k = A::key(key);
        debug_assert_eq!(hash.0, A::hash_key(&self.hasher, &k), "hash of another key");
        let mut i = hash.0 as usize & self.mask;
        loop {
            let b = &self.buckets[i];
            let stored = A::stored(b);
            if stored == 0 {
                return None;
            }
            if A::matches(b, &k) {
                return Some(stored - 1);
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn contains_key(&self, key: &FourTuple<A>) -> bool {
        self.get(key).is_some()
    }

    /// Adds `key → value`. Fails if the key exists (value unchanged) or the table is full.
    ///
    /// # Panics
    /// If `value > MAX_VALUE` (a caller bug: slot indices never reach it).
    pub fn insert(&mut self, key: FourTuple<A>, value: u32) -> Result<(), InsertError> {
        let hash = self.hash_of(&key);
        self.insert_hashed(key, value, hash)
    }

    /// [`insert`](Self::insert) with `key`'s [`hash_of`](Self::hash_of).
    #[inline(always)]
    pub fn insert_hashed(
        &mut self,
        key: FourTuple<A>,
        value: u32,
        hash: FlowHash,
    ) -> Result<(), InsertError> {
        assert!(value <= MAX_VALUE, "flow table value out of range");
        let k = A::key(&key);
        debug_assert_eq!(hash.0, A::hash_key(&self.hasher, &k), "hash of another key");
        // `find_from`'s walk, writing the empty bucket that ends it through the reference the
        // walk holds (one bounds check, not a second indexing). The same answers in the same
        // order: a present key is `Exists` whether or not the table is full.
        let mut i = hash.0 as usize & self.mask;
        loop {
            let b = &mut self.buckets[i];
            if A::stored(b) == 0 {
                if self.len >= self.max_entries {
                    return Err(InsertError::Full);
                }
                *b = A::bucket(&k, value + 1);
                self.len += 1;
                return Ok(());
            }
            if A::matches(b, &k) {
                return Err(InsertError::Exists(A::stored(b) - 1));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Changes the value stored for an existing `key` in place, returning the old one; `None`
    /// (and nothing stored) if the key is absent. One probe, no deletion and re-insertion:
    /// for handing a flow from one owner to the next.
    ///
    /// # Panics
    /// If `value > MAX_VALUE` (a caller bug: slot indices never reach it).
    #[inline]
    pub fn replace(&mut self, key: &FourTuple<A>, value: u32) -> Option<u32> {
        self.replace_hashed(key, value, self.hash_of(key))
    }

    /// [`replace`](Self::replace) with `key`'s [`hash_of`](Self::hash_of).
    #[inline]
    pub fn replace_hashed(
        &mut self,
        key: &FourTuple<A>,
        value: u32,
        hash: FlowHash,
    ) -> Option<u32> {
        assert!(value <= MAX_VALUE, "flow table value out of range");
        match self.find_from(&A::key(key), hash.0) {
            (i, true) => {
                let b = &mut self.buckets[i];
                let old = A::stored(b) - 1;
                A::set_stored(b, value + 1);
                Some(old)
            }
            (_, false) => None,
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &FourTuple<A>) -> Option<u32> {
        self.remove_hashed(key, self.hash_of(key))
    }

    /// [`remove`](Self::remove) with `key`'s [`hash_of`](Self::hash_of) (kept by the owner
    /// of the entry since its insertion, so that the removal does not hash the tuple again).
    #[inline]
    pub fn remove_hashed(&mut self, key: &FourTuple<A>, hash: FlowHash) -> Option<u32> {
        let (hole, found) = self.find_from(&A::key(key), hash.0);
        if !found {
            return None;
        }
        let value = A::stored(&self.buckets[hole]) - 1;
        self.remove_at(hole);
        Some(value)
    }

    /// [`remove_hashed`](Self::remove_hashed) by the stored value instead of the key, for an
    /// owner that keeps its entry's value and hash but not the key at hand (a stack's slot,
    /// whose control block's tuple then stays unread when the slot is freed). Correct when
    /// no other key of `hash`'s probe run holds `value` (the stack stores each owner under
    /// its one tuple): the first bucket of the run holding it is the entry. The removed
    /// value, or None (nothing of the run holds it).
    #[inline]
    pub fn remove_value_hashed(&mut self, value: u32, hash: FlowHash) -> Option<u32> {
        let stored = value.checked_add(1)?;
        let mut i = hash.0 as usize & self.mask;
        loop {
            let s = A::stored(&self.buckets[i]);
            if s == 0 {
                return None;
            }
            if s == stored {
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.remove_at(i);
        Some(value)
    }

    /// Empties bucket `hole` (a member of a probe run).
    #[inline(always)]
    fn remove_at(&mut self, mut hole: usize) {
        // Backward-shift deletion: pull later members of the probe run into the hole when
        // their home bucket does not lie cyclically in (hole, j], so every remaining key stays
        // reachable from its home without tombstones.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let b = self.buckets[j];
            if A::stored(&b) == 0 {
                break;
            }
            let home = self.home(&A::key_of(&b));
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.buckets[hole] = b;
                hole = j;
            }
        }
        self.buckets[hole] = A::EMPTY;
        self.len -= 1;
    }

    /// Removes every entry (touches every bucket: O(buckets)).
    pub fn clear(&mut self) {
        self.buckets.fill(A::EMPTY);
        self.len = 0;
    }
}

/// Smallest power of two ≥ n / 0.7 (at least 8).
pub(crate) fn buckets_for(n: usize) -> usize {
    let want = n.saturating_mul(10).div_ceil(7).max(8);
    want.checked_next_power_of_two()
        .expect("flow table capacity overflows usize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use std::collections::HashMap;

    fn tuple(i: u32) -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::from_bits(0x0a01_0000 + (i >> 14)),
            local_port: 80,
            remote_port: 1024 + (i & 0x3fff) as u16,
        }
    }

    /// A cheap deterministic PRNG for the tests (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    /// The `*_hashed` methods with `hash_of` behave as the plain ones (one hash per
    /// segment reused by ingress: `stack/demux.rs`).
    #[test]
    fn hashed_methods_match_the_plain_ones() {
        let mut t = FlowTable::with_capacity(64, 7);
        let mut u = FlowTable::with_capacity(64, 7);
        for i in 0..40 {
            let h = t.hash_of(&tuple(i));
            assert_eq!(h, u.hash_of(&tuple(i)));
            assert_eq!(t.insert_hashed(tuple(i), i, h), u.insert(tuple(i), i));
        }
        let h = t.hash_of(&tuple(3));
        assert_eq!(t.insert_hashed(tuple(3), 9, h), Err(InsertError::Exists(3)));
        assert_eq!(t.replace_hashed(&tuple(3), 77, h), u.replace(&tuple(3), 77));
        let h99 = t.hash_of(&tuple(99));
        assert_eq!(t.replace_hashed(&tuple(99), 1, h99), None);
        for i in 0..100 {
            assert_eq!(
                t.get_hashed(&tuple(i), t.hash_of(&tuple(i))),
                u.get(&tuple(i))
            );
        }
        assert_eq!(t.len(), u.len());
    }

    /// `remove_value_hashed` (an owner's value and its key's hash) removes what
    /// `remove_hashed` (the key) removes, leaving the same buckets, under random churn with
    /// one value per key (as the stack stores them); a value absent from the probe run
    /// removes nothing.
    #[test]
    fn remove_by_value_matches_remove_by_key() {
        let mut rng = Rng(7);
        for seed in 0..50u64 {
            let mut t = FlowTable::with_capacity(11, seed); // 16 buckets, load up to 0.69
            let mut u = FlowTable::with_capacity(11, seed);
            for _ in 0..2000 {
                let i = (rng.next() % 24) as u32;
                let k = tuple(i);
                if rng.next().is_multiple_of(2) {
                    assert_eq!(t.insert(k, i), u.insert(k, i));
                } else {
                    let h = t.hash_of(&k);
                    assert_eq!(t.remove_value_hashed(i, h), u.remove_hashed(&k, h));
                }
                assert_eq!(t.len(), u.len());
                assert_eq!(t.buckets, u.buckets);
            }
            let h = t.hash_of(&tuple(0));
            assert_eq!(t.remove_value_hashed(u32::MAX, h), None);
            assert_eq!(t.remove_value_hashed(999, h), None);
            assert_eq!(t.buckets, u.buckets);
        }
    }

    #[test]
    fn replace_changes_only_the_value() {
        let mut t = FlowTable::with_capacity(64, 7);
        for i in 0..40 {
            t.insert(tuple(i), i).unwrap();
        }
        assert_eq!(t.replace(&tuple(5), 1000), Some(5));
        assert_eq!(t.replace(&tuple(99), 1), None);
        assert_eq!(t.len(), 40);
        for i in 0..40 {
            assert_eq!(t.get(&tuple(i)), Some(if i == 5 { 1000 } else { i }));
        }
        assert!(!t.contains_key(&tuple(99)));
        assert_eq!(t.remove(&tuple(5)), Some(1000));
    }

    #[test]
    fn sizing() {
        let t = FlowTable::with_capacity(1_000_000, 1);
        assert_eq!(t.bucket_count(), 1 << 21);
        assert!(1_000_000.0 / t.bucket_count() as f64 <= 0.7);
        assert_eq!(FlowTable::with_capacity(0, 1).bucket_count(), 8);
        assert_eq!(FlowTable::with_capacity(7, 1).bucket_count(), 16);
        assert_eq!(core::mem::size_of::<[u64; 2]>(), 16);
    }

    #[test]
    fn basic_ops() {
        let mut t = FlowTable::with_capacity(4, 7);
        assert_eq!(t.get(&tuple(1)), None);
        t.insert(tuple(1), 10).unwrap();
        t.insert(tuple(2), 0).unwrap();
        assert_eq!(t.insert(tuple(1), 11), Err(InsertError::Exists(10)));
        assert_eq!(t.get(&tuple(1)), Some(10));
        assert_eq!(t.get(&tuple(2)), Some(0));
        t.insert(tuple(3), FlowTable::MAX_VALUE).unwrap();
        t.insert(tuple(4), 4).unwrap();
        assert_eq!(t.insert(tuple(5), 5), Err(InsertError::Full));
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(&tuple(3)), Some(FlowTable::MAX_VALUE));
        assert_eq!(t.remove(&tuple(1)), Some(10));
        assert_eq!(t.remove(&tuple(1)), None);
        assert_eq!(t.get(&tuple(1)), None);
        t.insert(tuple(5), 5).unwrap();
        assert_eq!(t.get(&tuple(5)), Some(5));
        // A reversed tuple is a different key.
        assert_eq!(t.get(&tuple(5).reversed()), None);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.get(&tuple(5)), None);
    }

    #[test]
    #[should_panic]
    fn reserved_value_panics() {
        let mut t = FlowTable::with_capacity(4, 7);
        let _ = t.insert(tuple(1), u32::MAX);
    }

    /// An IPv6 table: the same contract (insert, duplicate, full, replace, remove with
    /// backward shift) over 36-byte keys that differ only in the low address bits or ports,
    /// checked against a HashMap through churn.
    #[test]
    fn ipv6_table_matches_hashmap() {
        use core::net::Ipv6Addr;
        let t6 = |i: u32| FourTuple {
            local_addr: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1),
            remote_addr: Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, (i >> 16) as u16, i as u16),
            local_port: 80,
            remote_port: 1024 + (i % 7) as u16,
        };
        assert_eq!(core::mem::size_of::<Bucket6>(), 40);
        let mut t = FlowTable::<Ipv6Addr>::new(1000, 9);
        let mut m = HashMap::new();
        let mut rng = Rng(0x1234);
        for _ in 0..20_000 {
            let i = (rng.next() % 1500) as u32;
            match rng.next() % 3 {
                0 | 1 => {
                    let r = t.insert(t6(i), i);
                    match m.get(&t6(i)) {
                        Some(&v) => assert_eq!(r, Err(InsertError::Exists(v))),
                        None if m.len() >= 1000 => assert_eq!(r, Err(InsertError::Full)),
                        None => {
                            r.unwrap();
                            m.insert(t6(i), i);
                        }
                    }
                }
                _ => assert_eq!(t.remove(&t6(i)), m.remove(&t6(i))),
            }
            assert_eq!(t.len(), m.len());
        }
        for i in 0..1500 {
            assert_eq!(t.get(&t6(i)), m.get(&t6(i)).copied());
        }
        let (&k, &v) = m.iter().next().unwrap();
        assert_eq!(t.replace(&k, 7), Some(v));
        assert_eq!(t.get(&k), Some(7));
        assert_eq!(t.get(&k.reversed()), None);
        t.clear();
        assert!(t.is_empty() && t.get(&k).is_none());
    }

    /// The IPv6 tuple hash: keyed, and sensitive to every 32-bit word of both addresses and
    /// to the ports (a change in any one moves the bucket almost always).
    #[test]
    fn ipv6_hash_covers_every_word() {
        use core::net::Ipv6Addr;
        let h = TupleHasher::new(5);
        let base = FourTuple {
            local_addr: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1),
            remote_addr: Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, 0, 2),
            local_port: 80,
            remote_port: 40000,
        };
        let b = h.hash(&base);
        for seg in 0..8 {
            let mut l = base.local_addr.segments();
            l[seg] ^= 1;
            let mut r = base.remote_addr.segments();
            r[seg] ^= 1;
            let lt = FourTuple {
                local_addr: Ipv6Addr::from(l),
                ..base
            };
            let rt = FourTuple {
                remote_addr: Ipv6Addr::from(r),
                ..base
            };
            assert_ne!(h.hash(&lt), b, "local segment {seg}");
            assert_ne!(h.hash(&rt), b, "remote segment {seg}");
        }
        let pt = FourTuple {
            remote_port: 40001,
            ..base
        };
        assert_ne!(h.hash(&pt), b);
        assert_ne!(TupleHasher::new(6).hash(&base), b);
        // Low 16 bits (a bucket index) over 4,096 peers differing in one address word:
        // close to uniform (no bucket holds more than a handful).
        let mut counts = vec![0u32; 1 << 12];
        for i in 0..4096u16 {
            let t = FourTuple {
                remote_addr: Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, i, 2),
                ..base
            };
            counts[(h.hash(&t) & 0xfff) as usize] += 1;
        }
        assert!(
            *counts.iter().max().unwrap() <= 8,
            "{:?}",
            counts.iter().max()
        );
    }

    #[test]
    fn seeds_change_layout() {
        let a = TupleHasher::new(1);
        let b = TupleHasher::new(2);
        let same = (0..1000)
            .filter(|&i| a.hash(&tuple(i)) & 0xffff == b.hash(&tuple(i)) & 0xffff)
            .count();
        assert!(
            same < 10,
            "{same} identical bucket indices under different seeds"
        );
    }

    /// Backward-shift deletion in a tiny, crowded table with wrap-around runs, checked
    /// against HashMap after every operation.
    #[test]
    fn dense_small_table_consistency() {
        let mut rng = Rng(99);
        for seed in 0..50u64 {
            let mut t = FlowTable::with_capacity(11, seed); // 16 buckets, load up to 0.69
            let mut m: HashMap<FourTuple, u32> = HashMap::new();
            for step in 0..2000u32 {
                let k = tuple((rng.next() % 24) as u32);
                if rng.next().is_multiple_of(2) {
                    let r = t.insert(k, step);
                    match m.get(&k) {
                        Some(&v) => assert_eq!(r, Err(InsertError::Exists(v))),
                        None if m.len() == 11 => assert_eq!(r, Err(InsertError::Full)),
                        None => {
                            assert_eq!(r, Ok(()));
                            m.insert(k, step);
                        }
                    }
                } else {
                    assert_eq!(t.remove(&k), m.remove(&k));
                }
                assert_eq!(t.len(), m.len());
                for i in 0..24 {
                    assert_eq!(t.get(&tuple(i)), m.get(&tuple(i)).copied());
                }
            }
        }
    }

    /// 1 M entries in release builds (100 K in debug): insert, look up, remove half, re-insert,
    /// with random churn, compared against `std::collections::HashMap`.
    #[test]
    fn million_entries_match_hashmap() {
        let n: u32 = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let mut t = FlowTable::with_capacity(n as usize, 0x5eed);
        let mut m: HashMap<FourTuple, u32> = HashMap::with_capacity(n as usize);
        let mut rng = Rng(12345);
        let key = |r: u64| FourTuple {
            local_addr: Ipv4Addr::from_bits(0x0a00_0001 + (r as u32 & 3)),
            remote_addr: Ipv4Addr::from_bits((r >> 8) as u32 & 0x00ff_ffff | 0x0b00_0000),
            local_port: 443,
            remote_port: (r >> 40) as u16,
        };
        let t0 = std::time::Instant::now();
        while m.len() < n as usize {
            let k = key(rng.next());
            let v = m.len() as u32;
            let r = t.insert(k, v);
            if let Some(&old) = m.get(&k) {
                assert_eq!(r, Err(InsertError::Exists(old)));
            } else {
                assert_eq!(r, Ok(()));
                m.insert(k, v);
            }
        }
        let ins = t0.elapsed();
        assert_eq!(t.len(), m.len());
        assert_eq!(t.insert(key(rng.next()), 0), Err(InsertError::Full));
        let t1 = std::time::Instant::now();
        for (k, &v) in &m {
            assert_eq!(t.get(k), Some(v));
        }
        let look = t1.elapsed();
        // Misses.
        for _ in 0..n / 10 {
            let k = key(rng.next());
            assert_eq!(t.get(&k), m.get(&k).copied());
        }
        // Remove half, then churn.
        let keys: Vec<FourTuple> = m.keys().copied().collect();
        let t2 = std::time::Instant::now();
        for k in keys.iter().step_by(2) {
            assert_eq!(t.remove(k), m.remove(k));
        }
        let rem = t2.elapsed();
        for _ in 0..n {
            let r = rng.next();
            let k = if r & 1 == 0 {
                keys[(r >> 1) as usize % keys.len()]
            } else {
                key(r)
            };
            if r & 2 == 0 {
                assert_eq!(t.remove(&k), m.remove(&k));
            } else if m.len() < n as usize {
                match m.get(&k) {
                    Some(&v) => assert_eq!(t.insert(k, 7), Err(InsertError::Exists(v))),
                    None => {
                        t.insert(k, 7).unwrap();
                        m.insert(k, 7);
                    }
                }
            }
        }
        assert_eq!(t.len(), m.len());
        for (k, &v) in &m {
            assert_eq!(t.get(k), Some(v));
        }
        for k in &keys {
            assert_eq!(t.get(k), m.get(k).copied());
        }
        println!(
            "flow_table n={n}: insert {:.1} ns/op, hit lookup {:.1} ns/op, remove {:.1} ns/op \
             (includes HashMap reference work)",
            ins.as_nanos() as f64 / n as f64,
            look.as_nanos() as f64 / n as f64,
            rem.as_nanos() as f64 / (n / 2) as f64,
        );
    }

    /// Prints the cost of the keyed tuple hash next to SipHash-1-3 on the same 12 bytes, and
    /// the lookup cost of a full table, timed without any reference-model work.
    #[test]
    fn hash_speed() {
        use core::hash::Hasher;
        let n = if cfg!(debug_assertions) {
            200_000
        } else {
            5_000_000
        };
        let h = TupleHasher::new(42);
        let tuples: Vec<FourTuple> = (0..1024).map(|i| tuple(i * 7919)).collect();
        let t0 = std::time::Instant::now();
        let mut acc = 0u64;
        for i in 0..n {
            acc ^= h.hash(core::hint::black_box(&tuples[i & 1023]));
        }
        let ours = t0.elapsed().as_nanos() as f64 / n as f64;
        let t1 = std::time::Instant::now();
        for i in 0..n {
            let t = core::hint::black_box(&tuples[i & 1023]);
            let mut s = siphasher::sip::SipHasher13::new_with_keys(1, 2);
            s.write(&t.local_addr.octets());
            s.write(&t.remote_addr.octets());
            s.write_u16(t.local_port);
            s.write_u16(t.remote_port);
            acc ^= s.finish();
        }
        let sip = t1.elapsed().as_nanos() as f64 / n as f64;
        core::hint::black_box(acc);

        let cap = if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        };
        let mut table = FlowTable::with_capacity(cap, 3);
        for i in 0..cap as u32 {
            table.insert(tuple(i), i).unwrap();
        }
        let t2 = std::time::Instant::now();
        let mut sum = 0u64;
        for i in 0..cap as u32 {
            sum += u64::from(
                table
                    .get(&tuple(i.wrapping_mul(2_654_435_761) % cap as u32))
                    .unwrap(),
            );
        }
        let lookup = t2.elapsed().as_nanos() as f64 / cap as f64;
        core::hint::black_box(sum);
        println!(
            "tuple hash {ours:.2} ns, SipHash-1-3 {sip:.2} ns, \
             lookup in full {cap}-entry table {lookup:.1} ns"
        );
        if !cfg!(debug_assertions) {
            assert!(ours < sip, "keyed tuple hash slower than SipHash-1-3");
        }
    }
}
