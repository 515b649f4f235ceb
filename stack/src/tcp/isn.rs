//! Initial sequence numbers (RFC 6528) and per-connection timestamp offsets (RFC 7323 §7.1).
//!
//! Both come from one keyed hash of the 4-tuple: SipHash-1-3 gives 64 bits, the low half is
//! F() of RFC 6528 §3 and the high half is the timestamp offset. SipHash is a PRF, so the two
//! halves are independent: seeing a peer's timestamps (which reveal the offset) tells nothing
//! about the ISN function. A passive open hashes once per SYN for both
//! ([`IsnGenerator::isn_and_ts_offset`]); a TIME-WAIT ACK recomputes the same offset from the
//! tuple ([`IsnGenerator::ts_offset`]).
//!
//! Why SipHash-1-3 and not -2-4: RFC 6528 §3 asks only that F be a keyed function an off-path
//! attacker cannot compute ("a pseudorandom function", MD5 given as an example, itself long
//! broken for collisions but still adequate there). The attacker's goal is to predict the
//! ISN of a tuple it does not own from the ISNs it observes on its own tuples: a key-recovery
//! or distinguishing attack on SipHash with known inputs. SipHash-1-3 (one compression round,
//! three finalization rounds) has no known such attack; it is the keyed hash of Rust's
//! `HashMap`, chosen there against the same adversary (an attacker who sees effects of the
//! outputs and picks the inputs). The key is per stack and random (`getrandom`). The 12-byte
//! message is hashed as two 64-bit words with the key schedule precomputed, 5 SipRounds
//! instead of 8: about 60 fewer instructions per SYN (`docs/lifecycle-cost.md`).

use super::{Address, FourTuple};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// Keyed generator of ISNs and timestamp offsets. One per stack; the key is secret.
#[derive(Clone)]
pub struct IsnGenerator {
    /// SipHash's initial state `v0..v3` for the key (the key schedule, done once).
    v: [u64; 4],
}

/// One SipRound (Aumasson and Bernstein, "SipHash: a fast short-input PRF", §2).
#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IsnGenerator { key: <secret> }")
    }
}

impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        IsnGenerator {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    /// SipHash-1-3 of the tuple in network order (addresses, then ports): 12 bytes for IPv4,
    /// 36 for IPv6 (RFC 6528 §3: F() over the whole connection-id). The message is read as
    /// the reference algorithm reads it: whole 8-byte little-endian blocks, then a final block
    /// with the remaining 4 bytes and the length in the top byte (the test compares with the
    /// `siphasher` crate). For IPv4 that is one block and the final one.
    #[inline(always)]
    fn hash<A: Address>(&self, t: &FourTuple<A>) -> u64 {
        let mut m = [0u8; 36];
        let n = A::tuple_bytes(t, &mut m);
        let mut v = self.v;
        let mut absorb = |block: u64| {
            v[3] ^= block;
            sip_round(&mut v);
            v[0] ^= block;
        };
        let whole = n / 8 * 8;
        for c in m[..whole].chunks_exact(8) {
            absorb(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        last[..n - whole].copy_from_slice(&m[whole..n]);
        last[7] = n as u8;
        absorb(u64::from_le_bytes(last));
        v[2] ^= 0xff;
        sip_round(&mut v);
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), with M
    /// a timer ticking every 4 µs.
    #[inline]
    fn isn_from(now: Instant, h: u64) -> SeqNumber {
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(h as u32))
    }

    /// The ISN for a new connection on `tuple` at `now` (RFC 6528 §3).
    pub fn isn<A: Address>(&self, now: Instant, tuple: &FourTuple<A>) -> SeqNumber {
        Self::isn_from(now, self.hash(tuple))
    }

    /// A per-4-tuple offset for our timestamp clock: random to observers, stable for a tuple,
    /// so a TIME-WAIT entry can recompute it instead of storing it.
    pub fn ts_offset<A: Address>(&self, tuple: &FourTuple<A>) -> u32 {
        (self.hash(tuple) >> 32) as u32
    }

    /// [`IsnGenerator::isn`] and [`IsnGenerator::ts_offset`] from one hash.
    pub fn isn_and_ts_offset<A: Address>(
        &self,
        now: Instant,
        tuple: &FourTuple<A>,
    ) -> (SeqNumber, u32) {
        let h = self.hash(tuple);
        (Self::isn_from(now, h), (h >> 32) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: port,
        }
    }

    #[test]
    fn isn_is_keyed_per_tuple_and_advances_with_time() {
        let g = IsnGenerator::new([7; 16]);
        let a = g.isn(Instant::ZERO, &tuple(1000));
        let b = g.isn(Instant::ZERO, &tuple(1001));
        assert_ne!(a, b);
        // Same tuple, 4 ms later: M advanced by 1000 ticks.
        let a2 = g.isn(Instant::from_millis(4), &tuple(1000));
        assert_eq!(a2.0.wrapping_sub(a.0), 1000);
        let other_key = IsnGenerator::new([8; 16]);
        assert_ne!(other_key.isn(Instant::ZERO, &tuple(1000)), a);
        assert_eq!(g.ts_offset(&tuple(5)), g.ts_offset(&tuple(5)));
        assert_ne!(g.ts_offset(&tuple(5)), g.ts_offset(&tuple(6)));
    }

    #[test]
    fn hash_is_reference_siphash_1_3_of_the_tuple_bytes() {
        use core::hash::Hasher;
        for (i, key) in [
            [0u8; 16],
            [7; 16],
            core::array::from_fn(|i| (i as u8).wrapping_mul(17).wrapping_add(3)),
        ]
        .into_iter()
        .enumerate()
        {
            let g = IsnGenerator::new(key);
            for port in [0u16, 1, 80, 443, 0x8001, 0xffff] {
                let t = FourTuple {
                    local_addr: Ipv4Addr::new(10, 0, i as u8, 1),
                    remote_addr: Ipv4Addr::new(192, 168, 200, 254),
                    local_port: port,
                    remote_port: port.wrapping_mul(7).wrapping_add(1),
                };
                let mut m = Vec::new();
                m.extend_from_slice(&t.local_addr.octets());
                m.extend_from_slice(&t.remote_addr.octets());
                m.extend_from_slice(&t.local_port.to_be_bytes());
                m.extend_from_slice(&t.remote_port.to_be_bytes());
                let mut h = siphasher::sip::SipHasher13::new_with_key(&key);
                h.write(&m);
                assert_eq!(g.hash(&t), h.finish(), "key {i} port {port}");
                // The same over an IPv6 tuple's 36 bytes (4 whole blocks and a final one).
                let t6 = FourTuple {
                    local_addr: core::net::Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, i as u16, 1),
                    remote_addr: core::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, port),
                    local_port: port,
                    remote_port: port.wrapping_mul(7).wrapping_add(1),
                };
                let mut m6 = Vec::new();
                m6.extend_from_slice(&t6.local_addr.octets());
                m6.extend_from_slice(&t6.remote_addr.octets());
                m6.extend_from_slice(&t6.local_port.to_be_bytes());
                m6.extend_from_slice(&t6.remote_port.to_be_bytes());
                let mut h6 = siphasher::sip::SipHasher13::new_with_key(&key);
                h6.write(&m6);
                assert_eq!(g.hash(&t6), h6.finish(), "v6 key {i} port {port}");
            }
        }
    }

    #[test]
    fn one_hash_gives_both_values() {
        let g = IsnGenerator::new([9; 16]);
        let now = Instant::from_millis(123_456);
        for port in 1000..1100 {
            let t = tuple(port);
            assert_eq!(
                g.isn_and_ts_offset(now, &t),
                (g.isn(now, &t), g.ts_offset(&t))
            );
            // The two halves are not trivially related.
            assert_ne!(g.isn(Instant::ZERO, &t).0, g.ts_offset(&t));
        }
    }

    #[test]
    fn ipv6_tuples_are_keyed_over_all_bytes() {
        use core::net::Ipv6Addr;
        let g = IsnGenerator::new([7; 16]);
        let t = |last: u16, high: u16| FourTuple {
            local_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            remote_addr: Ipv6Addr::new(high, 0xdb8, 0, 0, 0, 0, 0, last),
            local_port: 80,
            remote_port: 1000,
        };
        let a = g.isn(Instant::ZERO, &t(2, 0x2001));
        // The first and the last byte of the peer's address both count.
        assert_ne!(a, g.isn(Instant::ZERO, &t(3, 0x2001)));
        assert_ne!(a, g.isn(Instant::ZERO, &t(2, 0x2002)));
        assert_eq!(a, g.isn(Instant::ZERO, &t(2, 0x2001)));
        // An IPv4 tuple whose bytes are a prefix of an IPv6 one hashes differently.
        assert_ne!(g.ts_offset(&t(2, 0x2001)), g.ts_offset(&tuple(1000)));
    }
}
