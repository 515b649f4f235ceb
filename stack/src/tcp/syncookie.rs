//! SYN cookies (RFC 4987 §3.6): answer a SYN without keeping state, and rebuild the
//! connection's essentials from the ACK that completes the handshake.
//!
//! Contract:
//! - [`SynCookies::generate`] returns our initial sequence number for the SYN-ACK and, when
//!   the SYN carried timestamps, 6 bits the stack must place in the low bits of the TSval it
//!   sends on that SYN-ACK ([`encode_tsval`] does it without moving the TSval forward).
//! - When the ACK arrives for a tuple with no state, the stack calls
//!   [`SynCookies::validate`] with `client_isn = SEG.SEQ - 1`, `cookie = SEG.ACK - 1` and the
//!   ACK's TSecr (`None` if it has no timestamps option). On success it gets the MSS and the
//!   options negotiated on the SYN.
//! - What survives: the MSS, rounded down to one of [`MSS_TABLE`] (a peer announcing less
//!   than 536 gets 536, the table's floor; the stack may prefer not to answer such SYNs with
//!   a cookie). With timestamps, also the peer's window scale and SACK-permitted. Without
//!   timestamps both are lost, and the connection runs without them, as in Linux.
//! - Lifetime: secrets rotate every [`PERIOD`] (64 s). A cookie is accepted during the period
//!   it was made in and the next one: at least 64 s and at most 128 s after it was issued.
//!   Older cookies give [`CookieError::Stale`]; a cookie that does not verify gives
//!   [`CookieError::Invalid`].
//! - Sans-I/O; no allocation. The master secret must come from a random source.
//!
//! Cookie layout (our ISN, 32 bits), most significant first:
//! - bits 31..30: the period number modulo 4 (tells which secret to check with, and lets a
//!   cookie two or more periods old be reported as stale);
//! - bits 29..28: index into [`MSS_TABLE`];
//! - bits 27..0: a MAC, the low 28 bits of SipHash-2-4 keyed with the period's secret, over
//!   the 4-tuple, the client's ISN, the MSS index and the timestamp-carried option bits. A
//!   blind forgery succeeds with probability 2^-28 per ACK.
//!
//! TSval option bits (low 6 bits of our SYN-ACK TSval, echoed back in TSecr):
//! - bits 3..0: the peer's window scale shift (0..=14; 15 = no window scale option);
//! - bit 4: SACK permitted;
//! - bit 5: reserved, zero.
//!
//! These bits are covered by the MAC, so a peer cannot change them between SYN and ACK.
//!
//! The per-period secret is derived from the master secret and the period number with
//! SipHash, so rotation needs no randomness at run time; the current and previous period
//! secrets are cached.

use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher24x128};

use super::{Address, FourTuple};
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// MSS values a cookie can carry (2 bits). The largest entry not above the peer's MSS is used.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Secret rotation period.
pub const PERIOD: Duration = Duration::from_secs(64);

/// Number of low TSval bits that carry options.
pub const TSVAL_OPTION_BITS: u32 = 6;
const TSVAL_OPTION_MASK: u32 = (1 << TSVAL_OPTION_BITS) - 1;
const NO_WSCALE: u32 = 0xf;
const SACK_BIT: u32 = 1 << 4;
const RESERVED_BIT: u32 = 1 << 5;
const MAC_BITS: u32 = 28;
const MAC_MASK: u32 = (1 << MAC_BITS) - 1;

/// Options negotiated on the SYN that a cookie can remember (with timestamps only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CookieOptions {
    /// The peer's window scale shift (values above 14 are treated as 14, RFC 7323 §2.3).
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
}

/// What to put in the SYN-ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    /// Our initial sequence number.
    pub isn: SeqNumber,
    /// When the SYN had timestamps: the value of the low [`TSVAL_OPTION_BITS`] bits of our
    /// SYN-ACK TSval (see [`encode_tsval`]).
    pub tsval_low_bits: Option<u32>,
}

/// What a valid cookie restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieResult {
    pub mss: u16,
    pub opts: CookieOptions,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// The MAC does not verify: forged, tampered, for another tuple, or not a cookie.
    Invalid,
    /// Issued two or more periods ago.
    Stale,
}

impl core::fmt::Display for CookieError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CookieError::Invalid => "invalid SYN cookie",
            CookieError::Stale => "stale SYN cookie",
        })
    }
}

impl std::error::Error for CookieError {}

/// Our TSval for a cookie SYN-ACK: `ts_now` with its low bits replaced by `low_bits`, moved
/// back by one step if that would put it ahead of `ts_now` (TSvals must not run ahead of the
/// clock the connection will use later, RFC 7323 §5.4).
pub fn encode_tsval(ts_now: u32, low_bits: u32) -> u32 {
    let v = (ts_now & !TSVAL_OPTION_MASK) | (low_bits & TSVAL_OPTION_MASK);
    if (v.wrapping_sub(ts_now) as i32) > 0 {
        v.wrapping_sub(1 << TSVAL_OPTION_BITS)
    } else {
        v
    }
}

/// The SYN cookie secret state. See the module docs.
pub struct SynCookies {
    master: [u8; 32],
    /// (period, key) for the latest period seen by `generate` and the one before it.
    cached: [(u32, [u64; 2]); 2],
}

fn period_of(now: Instant) -> u32 {
    (now.total_micros() / PERIOD.as_micros() as u64) as u32
}

impl SynCookies {
    /// `master` must be random and secret.
    pub fn new(master: [u8; 32], now: Instant) -> Self {
        let t = period_of(now);
        let mut s = SynCookies {
            master,
            cached: [(0, [0; 2]); 2],
        };
        s.cached = [
            (t, s.derive(t)),
            (t.wrapping_sub(1), s.derive(t.wrapping_sub(1))),
        ];
        s
    }

    fn derive(&self, period: u32) -> [u64; 2] {
        let mut k = [0u8; 16];
        k.copy_from_slice(&self.master[..16]);
        let mut h = SipHasher24x128::new_with_key(&k);
        core::hash::Hasher::write(&mut h, &self.master[16..]);
        core::hash::Hasher::write(&mut h, &period.to_le_bytes());
        let (a, b) = h.finish128().as_u64();
        [a, b]
    }

    fn key(&self, period: u32) -> [u64; 2] {
        match self.cached.iter().find(|(p, _)| *p == period) {
            Some((_, k)) => *k,
            None => self.derive(period),
        }
    }

    /// SipHash over the tuple in network order (12 bytes for IPv4, 36 for IPv6), the
    /// client's ISN, the MSS index and the option bits.
    fn mac<A: Address>(
        key: [u64; 2],
        tuple: &FourTuple<A>,
        client_isn: SeqNumber,
        mss_idx: u32,
        opt: u32,
    ) -> u32 {
        let mut t = [0u8; 36];
        let n = A::tuple_bytes(tuple, &mut t);
        let mut msg = [0u8; 42];
        msg[..n].copy_from_slice(&t[..n]);
        msg[n..n + 4].copy_from_slice(&client_isn.0.to_be_bytes());
        msg[n + 4] = mss_idx as u8;
        msg[n + 5] = opt as u8;
        SipHasher24::new_with_keys(key[0], key[1]).hash(&msg[..n + 6]) as u32 & MAC_MASK
    }

    /// Encodes the options into the TSval bits, or 0 without timestamps; bit 6 marks
    /// "timestamps in use" inside the MAC input.
    fn option_bits(opts: &CookieOptions) -> u32 {
        let ws = opts.wscale.map_or(NO_WSCALE, |w| u32::from(w.min(14)));
        ws | if opts.sack_permitted { SACK_BIT } else { 0 }
    }

    /// Makes the cookie for a SYN on `tuple` (our side local) with sequence number
    /// `client_isn`, announced MSS `peer_mss` (536 if absent, RFC 9293 §3.7.1) and options.
    pub fn generate<A: Address>(
        &mut self,
        now: Instant,
        tuple: &FourTuple<A>,
        client_isn: SeqNumber,
        peer_mss: u16,
        opts: CookieOptions,
    ) -> Cookie {
        let t = period_of(now);
        if self.cached[0].0 != t {
            let prev = if self.cached[0].0 == t.wrapping_sub(1) {
                self.cached[0]
            } else {
                (t.wrapping_sub(1), self.derive(t.wrapping_sub(1)))
            };
            self.cached = [(t, self.derive(t)), prev];
        }
        let mss_idx = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let bits = opts.timestamps.then(|| Self::option_bits(&opts));
        let opt = bits.map_or(0, |b| 0x40 | b);
        let mac = Self::mac(self.cached[0].1, tuple, client_isn, mss_idx, opt);
        Cookie {
            isn: SeqNumber(((t & 3) << 30) | (mss_idx << MAC_BITS) | mac),
            tsval_low_bits: bits,
        }
    }

    /// Checks the cookie carried by an ACK. `client_isn` is SEG.SEQ − 1, `cookie` is
    /// SEG.ACK − 1 and `tsecr` the ACK's TSecr, if it has a timestamps option.
    pub fn validate<A: Address>(
        &self,
        now: Instant,
        tuple: &FourTuple<A>,
        client_isn: SeqNumber,
        cookie: SeqNumber,
        tsecr: Option<u32>,
    ) -> Result<CookieResult, CookieError> {
        let t = period_of(now);
        let c = cookie.0;
        let age = t.wrapping_sub(c >> 30) & 3;
        if age > 1 {
            return Err(CookieError::Stale);
        }
        let key = self.key(t.wrapping_sub(age));
        let mss_idx = (c >> MAC_BITS) & 3;
        let bits = tsecr.map(|v| v & TSVAL_OPTION_MASK);
        let opt = bits.map_or(0, |b| 0x40 | b);
        if Self::mac(key, tuple, client_isn, mss_idx, opt) != c & MAC_MASK {
            return Err(CookieError::Invalid);
        }
        let opts = match bits {
            // Unreachable for our own cookies; refuse rather than guess.
            Some(b) if b & RESERVED_BIT != 0 => {
                return Err(CookieError::Invalid);
            }
            Some(b) => CookieOptions {
                wscale: (b & NO_WSCALE != NO_WSCALE).then_some((b & NO_WSCALE) as u8),
                sack_permitted: b & SACK_BIT != 0,
                timestamps: true,
            },
            None => CookieOptions::default(),
        };
        Ok(CookieResult {
            mss: MSS_TABLE[mss_idx as usize],
            opts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple() -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 80,
            remote_port: 40000,
        }
    }

    const SECRET: [u8; 32] = [7; 32];
    const ALL: CookieOptions = CookieOptions {
        wscale: Some(7),
        sack_permitted: true,
        timestamps: true,
    };

    #[test]
    fn round_trip_without_timestamps() {
        let now = Instant::from_secs(1000);
        let mut c = SynCookies::new(SECRET, now);
        let isn = SeqNumber(123_456);
        for (peer_mss, want) in [
            (1460, 1460),
            (9000, 1460),
            (1400, 1300),
            (1440, 1440),
            (536, 536),
            (100, 536),
        ] {
            let opts = CookieOptions {
                timestamps: false,
                ..ALL
            };
            let k = c.generate(now, &tuple(), isn, peer_mss, opts);
            assert_eq!(k.tsval_low_bits, None);
            let r = c.validate(now, &tuple(), isn, k.isn, None).unwrap();
            assert_eq!(r.mss, want, "peer mss {peer_mss}");
            // Without timestamps only the MSS survives.
            assert_eq!(r.opts, CookieOptions::default());
        }
    }

    #[test]
    fn options_round_trip_through_ts_bits() {
        let now = Instant::from_secs(5);
        let mut c = SynCookies::new(SECRET, now);
        let isn = SeqNumber(u32::MAX);
        for wscale in [None, Some(0), Some(7), Some(14), Some(15)] {
            for sack in [false, true] {
                let opts = CookieOptions {
                    wscale,
                    sack_permitted: sack,
                    timestamps: true,
                };
                let k = c.generate(now, &tuple(), isn, 1460, opts);
                let bits = k.tsval_low_bits.unwrap();
                assert!(bits < 64);
                let tsval = encode_tsval(0x1234_5678, bits);
                assert_eq!(tsval & 63, bits);
                let r = c.validate(now, &tuple(), isn, k.isn, Some(tsval)).unwrap();
                assert_eq!(r.mss, 1460);
                assert_eq!(r.opts.wscale, wscale.map(|w| w.min(14)));
                assert_eq!(r.opts.sack_permitted, sack);
                assert!(r.opts.timestamps);
                // The option bits are authenticated.
                let other = tsval ^ SACK_BIT;
                assert_eq!(
                    c.validate(now, &tuple(), isn, k.isn, Some(other)),
                    Err(CookieError::Invalid)
                );
                // Timestamps negotiated but absent on the ACK: refused (RFC 7323 §3.2).
                assert_eq!(
                    c.validate(now, &tuple(), isn, k.isn, None),
                    Err(CookieError::Invalid)
                );
                // High TSval bits are free: only the low 6 bits matter.
                assert!(
                    c.validate(now, &tuple(), isn, k.isn, Some(bits | 0xabc0_0000))
                        .is_ok()
                );
            }
        }
    }

    #[test]
    fn encode_tsval_never_runs_ahead() {
        assert_eq!(encode_tsval(1000, 5), 965); // 1000 = 0b1111101000: 960 | 5 = 965
        assert_eq!(encode_tsval(1000, 50), 1010 - 64); // 960 | 50 = 1010 > 1000: step back
        assert_eq!(encode_tsval(1000, 40), 1000);
        assert_eq!(encode_tsval(10, 20), (20u32).wrapping_sub(64)); // wraps below zero
        for now in [0u32, 63, 64, 1 << 31, u32::MAX] {
            for b in 0..64 {
                let v = encode_tsval(now, b);
                assert_eq!(v & 63, b);
                let behind = now.wrapping_sub(v);
                assert!(behind < 64, "now {now} bits {b} -> {v}");
            }
        }
    }

    #[test]
    fn tampered_and_foreign_cookies_rejected() {
        let now = Instant::from_secs(100);
        let mut c = SynCookies::new(SECRET, now);
        let isn = SeqNumber(42);
        let k = c.generate(now, &tuple(), isn, 1460, ALL);
        let ts = k.tsval_low_bits;
        assert!(c.validate(now, &tuple(), isn, k.isn, ts).is_ok());
        for bit in 0..32 {
            let bad = SeqNumber(k.isn.0 ^ (1 << bit));
            assert!(
                c.validate(now, &tuple(), isn, bad, ts).is_err(),
                "bit {bit}"
            );
        }
        // Another tuple, another client ISN, another secret.
        let mut other = tuple();
        other.remote_port += 1;
        assert_eq!(
            c.validate(now, &other, isn, k.isn, ts),
            Err(CookieError::Invalid)
        );
        assert_eq!(
            c.validate(now, &tuple().reversed(), isn, k.isn, ts),
            Err(CookieError::Invalid)
        );
        assert_eq!(
            c.validate(now, &tuple(), isn + 1, k.isn, ts),
            Err(CookieError::Invalid)
        );
        let c2 = SynCookies::new([8; 32], now);
        assert_eq!(
            c2.validate(now, &tuple(), isn, k.isn, ts),
            Err(CookieError::Invalid)
        );
        // Random guesses essentially never pass.
        let mut x = 0x9e37_79b9u32;
        let mut accepted = 0;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            accepted += c.validate(now, &tuple(), isn, SeqNumber(x), ts).is_ok() as u32;
        }
        assert_eq!(accepted, 0);
    }

    #[test]
    fn lifetime_is_one_to_two_periods() {
        let t0 = Instant::from_secs(64 * 10); // start of period 10
        let mut c = SynCookies::new(SECRET, t0);
        let isn = SeqNumber(7);
        let k = c.generate(t0, &tuple(), isn, 1460, ALL);
        let ts = k.tsval_low_bits;
        let at = |s: u64, ms: u64| Instant::from_millis(s * 1000 + ms);
        assert!(
            c.validate(at(640 + 64, 0), &tuple(), isn, k.isn, ts)
                .is_ok()
        );
        assert!(
            c.validate(at(640 + 127, 999), &tuple(), isn, k.isn, ts)
                .is_ok()
        );
        assert_eq!(
            c.validate(at(640 + 128, 0), &tuple(), isn, k.isn, ts),
            Err(CookieError::Stale)
        );
        assert_eq!(
            c.validate(at(640 + 191, 0), &tuple(), isn, k.isn, ts),
            Err(CookieError::Stale)
        );
        // Four periods later the 2-bit period number matches again, but the secret differs.
        assert_eq!(
            c.validate(at(640 + 256, 0), &tuple(), isn, k.isn, ts),
            Err(CookieError::Invalid)
        );
        // Issued at the very end of a period: still valid 64 s later, not at 64 s + 1 ms.
        let late = at(640 + 63, 999);
        let k = c.generate(late, &tuple(), isn, 1460, ALL);
        assert!(
            c.validate(at(640 + 127, 999), &tuple(), isn, k.isn, ts)
                .is_ok()
        );
        assert_eq!(
            c.validate(at(640 + 128, 0), &tuple(), isn, k.isn, ts),
            Err(CookieError::Stale)
        );
        // Validation works across rotations whether or not `generate` ran in between.
        let mut d = SynCookies::new(SECRET, t0);
        let k = d.generate(t0, &tuple(), isn, 1300, ALL);
        let later = at(640 + 64, 5);
        d.generate(later, &tuple(), isn, 1300, ALL); // rotates the cache
        assert_eq!(
            d.validate(later, &tuple(), isn, k.isn, ts).unwrap().mss,
            1300
        );
    }

    /// RFC 4987 cookies over an IPv6 tuple: they round-trip, and a cookie made for one
    /// IPv6 tuple fails on another that differs in any address byte or port.
    #[test]
    fn ipv6_cookies_bind_the_whole_tuple() {
        use core::net::Ipv6Addr;
        let now = Instant::from_secs(100);
        let mut c = SynCookies::new(SECRET, now);
        let t = FourTuple {
            local_addr: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1),
            remote_addr: Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, 0, 0x22),
            local_port: 80,
            remote_port: 40000,
        };
        let isn = SeqNumber(7);
        let k = c.generate(now, &t, isn, 1440, ALL);
        let ok = c.validate(now, &t, isn, k.isn, k.tsval_low_bits).unwrap();
        assert_eq!((ok.mss, ok.opts), (1440, ALL));
        for byte in 0..16 {
            let mut o = t.remote_addr.octets();
            o[byte] ^= 1;
            let other = FourTuple {
                remote_addr: Ipv6Addr::from(o),
                ..t
            };
            let r = c.validate(now, &other, isn, k.isn, k.tsval_low_bits);
            assert_eq!(r, Err(CookieError::Invalid), "byte {byte}");
        }
        let r = c.validate(now, &t.reversed(), isn, k.isn, k.tsval_low_bits);
        assert_eq!(r, Err(CookieError::Invalid));
    }
}
