//! Ephemeral port selection for active opens (RFC 6056).
//!
//! Contract:
//! - [`EphemeralPorts::allocate`] picks a local port for a connection to
//!   (`remote_addr`, `remote_port`) from `local_addr`. It asks the caller about each candidate
//!   through `in_use` and returns the first that is [`PortState::Free`] or
//!   [`PortState::TimeWait`] with `reusable: true`; in the latter case the stack must drop
//!   the TIME-WAIT entry for that 4-tuple before sending the SYN. Ports in use, and ports in
//!   TIME-WAIT that may not be reused, are skipped.
//! - If every port in the range is refused, it returns [`PortsExhausted`]; `in_use` has then
//!   been called once per port in the range.
//! - The choice depends only on the arguments, the seed and this object's counters; no
//!   clock, no I/O, no allocation.
//!
//! Algorithm (RFC 6056 §3.3.4, "double-hash port selection"): a keyed hash of
//! (local address, remote address, remote port) gives a per-destination starting offset, so
//! ports are unpredictable to third parties; a second part of the hash picks one of 256
//! counters, which advances by one for every port tried. Successive connections to the same
//! destination therefore walk the range in order from that offset, so the port chosen is the
//! one that destination saw least recently (the most likely to have left TIME-WAIT), while
//! different destinations do not disturb each other's sequences. The hash is SipHash-1-3,
//! keyed from the seed, which must come from a random source.
//!
//! Complexity: O(1) per attempt, O(range) worst case when nearly every port is taken.

use super::{Address, FourTuple};
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::RangeInclusive;

use siphasher::sip::SipHasher13;

/// Linux's default `ip_local_port_range`.
pub const DEFAULT_RANGE: RangeInclusive<u16> = 32768..=60999;

const TABLE_LEN: usize = 256;

/// What the stack knows about a candidate local port for this destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Free,
    /// A connection (or listener) uses the 4-tuple.
    InUse,
    /// The 4-tuple is in TIME-WAIT; `reusable` says whether the stack may take it over
    /// now (e.g. it will send timestamps newer than the old incarnation's, RFC 6191).
    TimeWait {
        reusable: bool,
    },
}

/// No port in the range could be used for this destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortsExhausted<A: Address = Ipv4Addr> {
    pub first: u16,
    pub last: u16,
    pub local_addr: A,
    pub remote_addr: A,
    pub remote_port: u16,
}

impl<A: Address> fmt::Display for PortsExhausted<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An IPv6 address is written in brackets before a port (RFC 5952 §6).
        let (open, close) = if A::V6 { ("[", "]") } else { ("", "") };
        write!(
            f,
            "no ephemeral port available in {}..={} from {} to {open}{}{close}:{}: all {} ports \
             to that destination are in use or in TIME-WAIT",
            self.first,
            self.last,
            self.local_addr,
            self.remote_addr,
            self.remote_port,
            u32::from(self.last) - u32::from(self.first) + 1,
        )
    }
}

impl<A: Address> std::error::Error for PortsExhausted<A> {}

/// Per-core ephemeral port allocator. See the module docs.
pub struct EphemeralPorts {
    first: u16,
    count: u32,
    hasher: SipHasher13,
    counters: [u32; TABLE_LEN],
}

impl EphemeralPorts {
    /// An allocator over `range` (e.g. [`DEFAULT_RANGE`]), keyed from `seed` (use a random
    /// seed).
    ///
    /// # Panics
    /// If `range` is empty.
    pub fn new(range: RangeInclusive<u16>, seed: u64) -> Self {
        let (first, last) = (*range.start(), *range.end());
        assert!(first <= last, "empty ephemeral port range");
        // Two 64-bit keys from one seed (SplitMix64 steps).
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let k0 = mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
        let k1 = mix(seed.wrapping_add(0x3c6e_f372_fe94_f82a));
        EphemeralPorts {
            first,
            count: u32::from(last) - u32::from(first) + 1,
            hasher: SipHasher13::new_with_keys(k0, k1),
            counters: [0; TABLE_LEN],
        }
    }

    /// The configured range.
    pub fn range(&self) -> RangeInclusive<u16> {
        self.first..=(u32::from(self.first) + self.count - 1) as u16
    }

    /// Picks a local port; see the module docs.
    /// Either family: the keyed hash covers both addresses and the remote port (10 bytes
    /// for IPv4, as before IPv6; 34 for IPv6).
    pub fn allocate<A: Address>(
        &mut self,
        local_addr: A,
        remote_addr: A,
        remote_port: u16,
        mut in_use: impl FnMut(u16) -> PortState,
    ) -> Result<u16, PortsExhausted<A>> {
        // The tuple's bytes are local address, remote address, local port, remote port:
        // the remote port goes where the local one was.
        let mut msg = [0u8; 36];
        let t = FourTuple {
            local_addr,
            remote_addr,
            local_port: remote_port,
            remote_port,
        };
        let n = A::tuple_bytes(&t, &mut msg) - 2;
        let h = self.hasher.hash(&msg[..n]);
        // F (offset) and G (counter index) of RFC 6056 §3.3.4 from independent output bits.
        let offset = (h >> 32) as u32;
        let slot = (h as usize) % TABLE_LEN;
        for _ in 0..self.count {
            let n = self.counters[slot];
            self.counters[slot] = n.wrapping_add(1);
            let port = (u64::from(self.first)
                + (u64::from(offset) + u64::from(n)) % u64::from(self.count))
                as u16;
            match in_use(port) {
                PortState::Free | PortState::TimeWait { reusable: true } => return Ok(port),
                PortState::InUse | PortState::TimeWait { reusable: false } => {}
            }
        }
        Err(PortsExhausted {
            first: self.first,
            last: (u32::from(self.first) + self.count - 1) as u16,
            local_addr,
            remote_addr,
            remote_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const L: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const R: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// The IPv4 message is the 10 bytes it was before the allocator became generic (so
    /// IPv4 port choices did not change); IPv6 destinations get their own offsets and the
    /// same range and exhaustion behaviour.
    #[test]
    fn both_families() {
        use core::net::Ipv6Addr;
        let p = EphemeralPorts::new(DEFAULT_RANGE, 3);
        let mut msg = [0u8; 10];
        msg[0..4].copy_from_slice(&L.octets());
        msg[4..8].copy_from_slice(&R.octets());
        msg[8..10].copy_from_slice(&80u16.to_be_bytes());
        let h = p.hasher.hash(&msg);
        let want = (32768 + (u64::from((h >> 32) as u32)) % p.count as u64) as u16;
        assert_eq!(
            p.clone_fresh().allocate(L, R, 80, |_| PortState::Free),
            Ok(want)
        );

        let l6: Ipv6Addr = "fd00:78::2".parse().unwrap();
        let firsts: HashSet<u16> = (1..=64u16)
            .map(|i| {
                let r6 = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, i);
                p.clone_fresh()
                    .allocate(l6, r6, 80, |_| PortState::Free)
                    .unwrap()
            })
            .collect();
        assert!(
            firsts.len() > 50,
            "offsets depend on the whole v6 destination"
        );
        let mut q = p.clone_fresh();
        let r6: Ipv6Addr = "fd00:77::1".parse().unwrap();
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let port = q
                .allocate(l6, r6, 80, |port| {
                    if seen.contains(&port) {
                        PortState::InUse
                    } else {
                        PortState::Free
                    }
                })
                .unwrap();
            assert!(DEFAULT_RANGE.contains(&port) && seen.insert(port));
        }
        let err = q.allocate(l6, r6, 80, |_| PortState::InUse).unwrap_err();
        assert_eq!(
            (err.local_addr, err.remote_addr, err.remote_port),
            (l6, r6, 80)
        );
        assert!(err.to_string().contains("fd00:77::1"));
    }

    impl EphemeralPorts {
        fn clone_fresh(&self) -> EphemeralPorts {
            EphemeralPorts {
                first: self.first,
                count: self.count,
                hasher: self.hasher,
                counters: [0; TABLE_LEN],
            }
        }
    }

    #[test]
    fn sequential_to_one_destination_cycles_the_range() {
        let mut p = EphemeralPorts::new(DEFAULT_RANGE, 1);
        assert_eq!(p.range(), DEFAULT_RANGE);
        let mut used = HashSet::new();
        let n = 60999 - 32768 + 1;
        for _ in 0..n {
            let port = p
                .allocate(L, R, 80, |port| {
                    if used.contains(&port) {
                        PortState::InUse
                    } else {
                        PortState::Free
                    }
                })
                .unwrap();
            assert!(DEFAULT_RANGE.contains(&port));
            assert!(used.insert(port));
        }
        assert_eq!(used.len(), n);
        // Everything in use: exhausted, after asking about each port once.
        let mut asked = 0;
        let err = p
            .allocate(L, R, 80, |_| {
                asked += 1;
                PortState::InUse
            })
            .unwrap_err();
        assert_eq!(asked, n);
        assert_eq!(err.first, 32768);
        assert_eq!(err.last, 60999);
        let msg = err.to_string();
        assert!(msg.contains("32768..=60999"), "{msg}");
        assert!(msg.contains("10.0.0.2:80"), "{msg}");
        assert!(msg.contains("in use or in TIME-WAIT"), "{msg}");
    }

    #[test]
    fn skips_in_use_and_unreusable_time_wait() {
        let mut p = EphemeralPorts::new(1000..=1009, 7);
        let mut states: HashMap<u16, PortState> = HashMap::new();
        for port in 1000..=1009 {
            states.insert(port, PortState::InUse);
        }
        states.insert(1003, PortState::TimeWait { reusable: false });
        states.insert(1007, PortState::TimeWait { reusable: true });
        states.insert(1005, PortState::Free);
        let mut got = HashSet::new();
        for _ in 0..10 {
            got.insert(p.allocate(L, R, 443, |port| states[&port]).unwrap());
        }
        assert_eq!(got, HashSet::from([1005, 1007]));
        states.insert(1005, PortState::InUse);
        states.insert(1007, PortState::TimeWait { reusable: false });
        assert!(p.allocate(L, R, 443, |port| states[&port]).is_err());
    }

    #[test]
    fn single_port_range() {
        let mut p = EphemeralPorts::new(5000..=5000, 3);
        assert_eq!(p.allocate(L, R, 1, |_| PortState::Free), Ok(5000));
        let e = p.allocate(L, R, 1, |_| PortState::InUse).unwrap_err();
        assert!(e.to_string().contains("all 1 ports"));
        let mut full = EphemeralPorts::new(0..=u16::MAX, 3);
        assert!(full.allocate(L, R, 1, |_| PortState::Free).is_ok());
    }

    #[test]
    fn starting_points_depend_on_destination_and_seed() {
        let first = |seed: u64, rport: u16, raddr: Ipv4Addr| {
            EphemeralPorts::new(DEFAULT_RANGE, seed)
                .allocate(L, raddr, rport, |_| PortState::Free)
                .unwrap()
        };
        let by_port: HashSet<u16> = (0..100).map(|rp| first(1, rp, R)).collect();
        assert!(by_port.len() > 90, "{} distinct of 100", by_port.len());
        let by_seed: HashSet<u16> = (0..100).map(|s| first(s, 80, R)).collect();
        assert!(by_seed.len() > 90);
        // Same inputs, same seed: same port (deterministic).
        assert_eq!(first(5, 80, R), first(5, 80, R));
        // Another destination's traffic does not advance this destination's sequence
        // (unless they share a counter; pick ones that don't).
        let mut p = EphemeralPorts::new(DEFAULT_RANGE, 9);
        let a1 = p.allocate(L, R, 80, |_| PortState::Free).unwrap();
        for rp in 1000..1010 {
            p.allocate(L, Ipv4Addr::new(192, 0, 2, 1), rp, |_| PortState::Free)
                .unwrap();
        }
        let a2 = p.allocate(L, R, 80, |_| PortState::Free).unwrap();
        let step = (u32::from(a2) + 28232 - u32::from(a1)) % 28232;
        assert!((1..=11).contains(&step), "step {step}");
    }
}
