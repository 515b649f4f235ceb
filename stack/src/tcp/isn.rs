//! Initial sequence numbers (RFC 6528) and per-connection timestamp offsets (RFC 7323 §7.1).
//!
//! Both come from one keyed hash of the 4-tuple: SipHash-2-4 gives 64 bits, the low half is
//! F() of RFC 6528 §3 and the high half is the timestamp offset. SipHash is a PRF, so the two
//! halves are independent: seeing a peer's timestamps (which reveal the offset) tells nothing
//! about the ISN function. A passive open hashes once per SYN for both
//! ([`IsnGenerator::isn_and_ts_offset`]); a TIME-WAIT ACK recomputes the same offset from the
//! tuple ([`IsnGenerator::ts_offset`]).

use siphasher::sip::SipHasher24;

use super::{Address, FourTuple};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// Keyed generator of ISNs and timestamp offsets. One per stack; the key is secret.
#[derive(Clone)]
pub struct IsnGenerator {
    sip: SipHasher24,
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IsnGenerator { key: <secret> }")
    }
}

impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator {
            sip: SipHasher24::new_with_key(&key),
        }
    }

    /// SipHash-2-4 of the tuple's 12 bytes (addresses, then ports, in network order): one
    /// message block plus the final one.
    /// SipHash of the tuple in network order: 12 bytes for IPv4 (as before IPv6), 36 for
    /// IPv6 (RFC 6528 §3: F() over the whole connection-id).
    #[inline]
    fn hash<A: Address>(&self, t: &FourTuple<A>) -> u64 {
        let mut m = [0u8; 36];
        let n = A::tuple_bytes(t, &mut m);
        self.sip.hash(&m[..n])
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
