//! Initial sequence numbers (RFC 6528) and per-connection timestamp offsets (RFC 7323 §7.1).

use core::hash::Hasher;

use siphasher::sip::SipHasher24;

use super::FourTuple;
use crate::time::Instant;
use crate::wire::SeqNumber;

/// Keyed generator of ISNs and timestamp offsets. One per stack; the key is secret.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IsnGenerator { key: <secret> }")
    }
}

impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator { key }
    }

    fn hash(&self, domain: u8, t: &FourTuple) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write_u8(domain);
        h.write(&t.local_addr.octets());
        h.write(&t.remote_addr.octets());
        h.write_u16(t.local_port);
        h.write_u16(t.remote_port);
        h.finish()
    }

    /// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), with M
    /// a timer ticking every 4 µs.
    pub fn isn(&self, now: Instant, tuple: &FourTuple) -> SeqNumber {
        let m = (now.total_micros() / 4) as u32;
        SeqNumber(m.wrapping_add(self.hash(0, tuple) as u32))
    }

    /// A per-4-tuple offset for our timestamp clock: random to observers, stable for a tuple,
    /// so a TIME-WAIT entry can recompute it instead of storing it.
    pub fn ts_offset(&self, tuple: &FourTuple) -> u32 {
        self.hash(1, tuple) as u32
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
}
