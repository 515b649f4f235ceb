//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Contract: [`data`], [`combine`], [`pseudo_header_v4`] and [`pseudo_header_v6`] return the *folded* 16-bit ones'
//! complement sum, not its complement. A header's checksum field holds `!combine(..)`; a
//! received header verifies when the folded sum over it, checksum field included, is `0xffff`.
//! Nothing here allocates or panics.

use core::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator of 16-bit words into a 16-bit ones' complement sum.
///
/// Each halving adds the two halves with end-around carry in one add (RFC 1071 §2(C)): in
/// `x + x.rotate_left(32)` the upper half is `hi + lo` plus the carry out of the lower half,
/// which is `lo + hi` again, so the carry is exactly the end-around carry of `hi + lo`
/// (Linux's `csum_fold` uses the same trick). Like repeated folding, the result is 0 only
/// for a zero input.
#[inline]
fn fold(acc: u64) -> u16 {
    let acc = (acc.wrapping_add(acc.rotate_left(32)) >> 32) as u32;
    (acc.wrapping_add(acc.rotate_left(16)) >> 16) as u16
}

/// Folded ones' complement sum of `bytes` taken as big-endian 16-bit words; an odd trailing
/// byte is padded with a zero byte (RFC 1071 §4.1).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    u16::from_be(fold(sum_ne(bytes)))
}

/// Unfolded ones' complement sum of `bytes` read as *native-endian* 16-bit words, for
/// [`data`] and the one-pass segment checksums.
///
/// Two facts make this equal to the big-endian word sum (RFC 1071 §2): the sum is byte-order
/// independent (summing byte-swapped words gives the byte-swapped sum, §2(B)), so words are
/// read natively and the folded result converted once; and it may be taken over wider words
/// (§2(C)): a 64-bit word is four 16-bit words, and a carry out of bit 63 is added back in
/// at bit 0 (end-around carry), which is what folding it from bit 64 would do.
#[inline]
pub(crate) fn sum_ne(bytes: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, carry) = acc.overflowing_add(w);
        acc = s + u64::from(carry);
    }
    let rest = chunks.remainder();
    let tail = if rest.is_empty() {
        0
    } else if let Some(last) = bytes.last_chunk::<8>() {
        // At least 8 bytes: read the last 8 (overlapping the final chunk) and drop the
        // `8 - rest.len()` already summed, leaving the tail's bytes at the positions they
        // have at the start of a word read from `rest`: even offsets stay lane-aligned and an
        // odd byte is zero-padded, as below. One unaligned load instead of up to three.
        let drop = 8 * (8 - rest.len()) as u32;
        (u64::from_le_bytes(*last) >> drop).to_le()
    } else {
        tail_short(rest)
    };
    let (s, carry) = acc.overflowing_add(tail);
    s + u64::from(carry)
}

/// The native-endian sum of a buffer shorter than 8 bytes: whole 16-bit lanes plus an odd
/// byte, which is the high-order byte of its (zero-padded) word (RFC 1071 §4.1). `< 2^33`.
#[inline]
fn tail_short(rest: &[u8]) -> u64 {
    let mut tail: u64 = 0;
    let mut at = 0;
    if rest.len() >= 4 {
        tail += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        at = 4;
    }
    if rest.len() - at >= 2 {
        tail += u64::from(u16::from_ne_bytes([rest[at], rest[at + 1]]));
        at += 2;
    }
    if rest.len() > at {
        tail += u64::from(u16::from_ne_bytes([rest[at], 0]));
    }
    tail
}

/// Folds an unfolded native-endian sum of [`sum_ne`] (plus any further native-endian
/// terms, which the caller adds with end-around carry) into the big-endian folded sum.
#[inline]
pub(crate) fn finish_ne(acc: u64) -> u16 {
    u16::from_be(fold(acc))
}

/// Whether an unfolded native-endian sum over a header (or a segment and its
/// pseudo-header), checksum field included, verifies: its folded sum is `0xffff` (the same
/// in either byte order, so no conversion).
///
/// Without folding: `acc` keeps its value modulo `2^64 - 1` through the end-around carries,
/// and `0xffff` divides `2^64 - 1`, so `acc ≡` the word sum `(mod 0xffff)`; the fold is a
/// 16-bit value congruent to it and 0 only for `acc == 0`. So the sum verifies exactly when
/// `acc` is a non-zero multiple of `0xffff`, tested with one multiplication by the inverse
/// of `0xffff` modulo `2^64` (a multiple maps to at most `u64::MAX / 0xffff`, anything else
/// above it).
#[inline]
pub(crate) fn verifies_ne(acc: u64) -> bool {
    acc != 0 && acc.wrapping_mul(INV_FFFF) <= u64::MAX / 0xffff
}

/// The inverse of `0xffff` modulo `2^64` (Newton's iteration, each step doubling the bits
/// that are right).
const INV_FFFF: u64 = {
    let mut x: u64 = 0xffff; // right to 3 bits (d * d ≡ 1 mod 8 for odd d)
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(0xffffu64.wrapping_mul(x)));
        i += 1;
    }
    x
};

const _: () = assert!(INV_FFFF.wrapping_mul(0xffff) == 1);

/// Adds `b` to `a` in ones' complement arithmetic on 64-bit words (end-around carry).
#[inline]
pub(crate) fn add_ne(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// The IPv4 pseudo-header (RFC 9293 §3.1) as native-endian terms for [`add_ne`]: source,
/// destination, zero byte, protocol and the transport length.
#[inline]
pub(crate) fn pseudo_header_v4_ne(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u64 {
    // A length above 16 bits (never on the wire, possible for an oversized test buffer)
    // contributes both halves, as in `pseudo_header_v4`.
    u64::from(u32::from_ne_bytes(src.octets()))
        + u64::from(u32::from_ne_bytes(dst.octets()))
        + u64::from(u16::from_ne_bytes([0, protocol]))
        + u64::from(u32::from_ne_bytes(length.to_be_bytes()))
}

/// The pseudo-header sum of the transport checksums, per address family: IPv4 (RFC 9293
/// §3.1) or IPv6 (RFC 8200 §8.1). The TCP and ICMPv6 code is generic over it, so each family
/// compiles to its own code and the IPv4 path is what it was before IPv6.
pub trait IpAddress: Copy + sealed::Sealed {
    /// The pseudo-header as native-endian terms for [`add_ne`] (see [`sum_ne`]).
    #[doc(hidden)]
    fn pseudo_header_ne(src: Self, dst: Self, protocol: u8, length: u32) -> u64;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for core::net::Ipv4Addr {}
    impl Sealed for core::net::Ipv6Addr {}
}

impl IpAddress for Ipv4Addr {
    #[inline(always)]
    fn pseudo_header_ne(src: Self, dst: Self, protocol: u8, length: u32) -> u64 {
        pseudo_header_v4_ne(src, dst, protocol, length)
    }
}

impl IpAddress for Ipv6Addr {
    #[inline(always)]
    fn pseudo_header_ne(src: Self, dst: Self, protocol: u8, length: u32) -> u64 {
        pseudo_header_v6_ne(src, dst, protocol, length)
    }
}

/// The IPv6 pseudo-header (RFC 8200 §8.1) as native-endian terms for [`add_ne`]: source,
/// destination, the 32-bit upper-layer length, three zero bytes and the next header.
#[inline]
pub(crate) fn pseudo_header_v6_ne(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    length: u32,
) -> u64 {
    let (s, d) = (src.octets(), dst.octets());
    let word = |b: &[u8; 16], i: usize| {
        u64::from_ne_bytes([
            b[i],
            b[i + 1],
            b[i + 2],
            b[i + 3],
            b[i + 4],
            b[i + 5],
            b[i + 6],
            b[i + 7],
        ])
    };
    // The last two 32-bit fields share one 64-bit lane-aligned term: < 2^33, no overflow.
    let tail = u64::from(u32::from_ne_bytes(length.to_be_bytes()))
        + u64::from(u32::from_ne_bytes([0, 0, 0, next_header]));
    let a = add_ne(word(&s, 0), word(&s, 8));
    let b = add_ne(word(&d, 0), word(&d, 8));
    add_ne(add_ne(a, b), tail)
}

/// Folded sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc: u64 = 0;
    for w in src.segments().iter().chain(dst.segments().iter()) {
        acc += u64::from(*w);
    }
    fold(acc + u64::from(length >> 16) + u64::from(length & 0xffff) + u64::from(next_header))
}

/// The folded sum over `data` and the pseudo-header of `src`, `dst`, `protocol` and
/// `data.len()`: `0xffff` when a received checksum verifies; `!` of it (with the field
/// zeroed) is the checksum to write.
#[inline]
pub fn transport<A: IpAddress>(src: A, dst: A, protocol: u8, data: &[u8]) -> u16 {
    let pseudo = A::pseudo_header_ne(src, dst, protocol, data.len() as u32);
    finish_ne(add_ne(sum_ne(data), pseudo))
}

/// Folded ones' complement sum of partial sums (each itself a folded sum).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Folded sum of the IPv4 pseudo-header (RFC 9293 §3.1): source, destination, zero byte,
/// protocol and the transport length (header plus payload).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let acc = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(length >> 16)
        + u64::from(length & 0xffff);
    fold(acc)
}

/// Incrementally updates a stored checksum field after one 16-bit word of the covered data
/// changed from `old_word` to `new_word`.
///
/// RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, and not eqn. 2 (`HC - ~m - m'`), because eqn. 2
/// can produce `0x0000` where a full recomputation yields `0xffff` (RFC 1624 §3).
#[inline]
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    !fold(u64::from(!old_checksum) + u64::from(!old_word) + u64::from(new_word))
}

/// [`update`] for a 32-bit field (an address, a sequence number): both halves at once.
#[inline]
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!old_checksum)
        + u64::from(!(old >> 16) & 0xffff)
        + u64::from(!old & 0xffff)
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward 16-bit-at-a-time reference, as RFC 1071 §4.1 writes it.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
            i += 2;
        }
        if i < bytes.len() {
            sum += u32::from(bytes[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn carries_on_all_lengths_and_offsets() {
        // All-ones words make every lane carry; odd offsets exercise unaligned reads.
        let ones = [0xffu8; 80];
        let bytes: Vec<u8> = (0..90u32).map(|i| (i * 97 + 200) as u8).collect();
        for start in 0..8 {
            for len in 0..(ones.len() - start) {
                let s = &ones[start..start + len];
                assert_eq!(data(s), reference(s), "ones {start}+{len}");
                let s = &bytes[start..start + len];
                assert_eq!(data(s), reference(s), "bytes {start}+{len}");
            }
        }
    }

    #[test]
    fn native_pseudo_header_matches() {
        let src = Ipv4Addr::new(192, 168, 255, 1);
        let dst = Ipv4Addr::new(255, 254, 0, 2);
        for len in [0u32, 20, 40, 1480, 65535, 65536, 70_000] {
            let ne = pseudo_header_v4_ne(src, dst, 6, len);
            assert_eq!(
                finish_ne(ne),
                pseudo_header_v4(src, dst, 6, len),
                "len {len}"
            );
        }
        let seg = [0xfeu8, 0xff, 0x12, 0x01, 0xff, 0x80, 0x77];
        let both = finish_ne(add_ne(sum_ne(&seg), pseudo_header_v4_ne(src, dst, 6, 7)));
        assert_eq!(
            both,
            combine(&[pseudo_header_v4(src, dst, 6, 7), data(&seg)])
        );
    }

    #[test]
    fn v6_pseudo_header_native_matches_folded() {
        let addrs: [Ipv6Addr; 4] = [
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
            ),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0x00ff, 0xfe00, 0xff00, 0x0002),
        ];
        for s in addrs {
            for d in addrs {
                for (nh, len) in [(6, 20), (58, 0xffff), (255, 0x1_0000), (0, 0xffff_ffff)] {
                    let mut bytes = Vec::new();
                    bytes.extend_from_slice(&s.octets());
                    bytes.extend_from_slice(&d.octets());
                    bytes.extend_from_slice(&u32::to_be_bytes(len));
                    bytes.extend_from_slice(&[0, 0, 0, nh]);
                    let want = reference(&bytes);
                    assert_eq!(pseudo_header_v6(s, d, nh, len), want);
                    assert_eq!(finish_ne(pseudo_header_v6_ne(s, d, nh, len)), want);
                }
            }
        }
    }

    /// Folding 16 bits at a time with end-around carry until nothing is left over.
    fn fold_reference(mut acc: u128) -> u16 {
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn verifies_ne_is_a_fold_to_all_ones() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = vec![
            0,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            u64::MAX,
        ];
        values.extend((0..4096u64).map(|k| k * 0xffff));
        values.extend((0..4096u64).map(|k| u64::MAX - k * 0xffff));
        values.extend((0..4096u64).map(|k| k * 0xffff + 1));
        for _ in 0..100_000 {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            values.push(x.wrapping_mul(0x2545_f491_4f6c_dd1d));
            values.push((x % 0x1_0000_0000) * 0xffff);
        }
        for v in values {
            assert_eq!(verifies_ne(v), fold(v) == 0xffff, "{v:#x}");
        }
    }

    #[test]
    fn fold_matches_repeated_folding() {
        let mut edge = vec![
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_ffff,
            0xffff_ffff,
            0x1_0000_0000,
            0xffff_0000_0000_0000,
            0xffff_ffff_0000_0000,
            0x0000_0001_ffff_ffff,
            0x8000_0000_8000_0000,
            0xffff_fffe_0000_0001,
            u64::MAX - 1,
            u64::MAX,
        ];
        // A fixed-seed LCG for a few thousand more, biased to many all-ones lanes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..4000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            edge.push(x);
            edge.push(x | 0xffff_0000_ffff_0000);
            edge.push(x >> (x % 64));
        }
        for v in edge {
            assert_eq!(fold(v), fold_reference(u128::from(v)), "{v:#x}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3's example bytes: 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn matches_reference_on_all_lengths() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 151 + 7) as u8 | 0x80).collect();
        for len in 0..bytes.len() {
            assert_eq!(data(&bytes[..len]), reference(&bytes[..len]), "len {len}");
        }
    }

    #[test]
    fn ipv4_header_checksum() {
        // A captured header: 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!data(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(data(&hdr), 0xffff);
    }

    #[test]
    fn combine_equals_concatenation() {
        let a = [0x45, 0x00, 0x12, 0x34, 0xff, 0xff];
        let b = [0x80, 0x01, 0xfe, 0xdc];
        let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(combine(&[data(&a), data(&b)]), data(&whole));
    }

    #[test]
    fn pseudo_header() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let bytes = [10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 40];
        assert_eq!(pseudo_header_v4(src, dst, 6, 40), data(&bytes));
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 changes to m' = 0x3285; eqn. 3 gives 0x0000.
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_ttl_decrement_matches_recompute() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old_word = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] -= 1;
        let new_word = u16::from_be_bytes([hdr[8], hdr[9]]);
        let inc = update(0xb861, old_word, new_word);
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, !data(&hdr));
    }

    #[test]
    fn incremental_u32_matches_recompute() {
        let mut seg = [0u8; 20];
        seg[0] = 0x45;
        seg[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let before = !data(&seg);
        seg[4..8].copy_from_slice(&0x0102_f304u32.to_be_bytes());
        assert_eq!(update_u32(before, 0xdead_beef, 0x0102_f304), !data(&seg));
    }
}
