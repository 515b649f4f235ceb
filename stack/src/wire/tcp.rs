//! TCP header (RFC 9293 §3.1) and options (RFC 9293 §3.2, RFC 7323, RFC 2018).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number: arithmetic and comparison modulo 2^32 (RFC 9293 §3.4).
///
/// `a < b` means "a is before b" in sequence space, which holds when `b - a`, taken as a
/// signed 32-bit value, is positive. Comparing numbers more than 2^31 apart is meaningless,
/// as in the RFC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance from `other` to `self` (positive when `self` is after `other`).
    #[inline]
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// The later of two sequence numbers.
    #[inline]
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self > other { self } else { other }
    }
    /// The earlier of two sequence numbers.
    #[inline]
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other { self } else { other }
    }
}

impl PartialOrd for SeqNumber {
    #[inline]
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    #[inline]
    fn add(self, rhs: usize) -> SeqNumber {
        // Offsets within one connection's window always fit in 31 bits.
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    #[inline]
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<SeqNumber> for SeqNumber {
    type Output = usize;
    /// The forward distance from `rhs` to `self`; `self` must not be before `rhs`.
    /// Saturates at zero when it is (a caller bug, but never a panic on peer input).
    #[inline]
    fn sub(self, rhs: SeqNumber) -> usize {
        let d = self.diff(rhs);
        if d < 0 { 0 } else { d as usize }
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The control bits that drive the state machine. At most one of SYN, FIN, RST is carried by
/// a valid segment (SYN+FIN and SYN+RST are rejected as malformed; RST with FIN is a RST).
/// PSH and URG are not state: PSH is `TcpRepr::psh`, URG is ignored (RFC 9293 allows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpControl {
    #[default]
    None,
    Syn,
    Fin,
    Rst,
}

/// The timestamps option (RFC 7323 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpTimestamp {
    pub tsval: u32,
    pub tsecr: u32,
}

/// A validated, high-level TCP segment.
///
/// `parse` verifies the checksum (with the IPv4 pseudo-header) and the data offset, reads the
/// known options (MSS, window scale, SACK-permitted, SACK, timestamps, NOP, EOL) and skips
/// unknown ones by their length. `emit` writes header, options and payload and the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub control: TcpControl,
    /// PSH bit (set on emit when the segment carries the last queued data; ignored on input).
    pub psh: bool,
    pub seq_number: SeqNumber,
    /// `Some` exactly when the ACK bit is set.
    pub ack_number: Option<SeqNumber>,
    /// The raw 16-bit window field (unscaled).
    pub window_len: u16,
    /// Window scale option (RFC 7323 §2): shift count, only valid on SYN segments.
    pub window_scale: Option<u8>,
    /// Maximum segment size option, only valid on SYN segments.
    pub max_seg_size: Option<u16>,
    /// SACK-permitted option (RFC 2018 §2), only valid on SYN segments.
    pub sack_permitted: bool,
    /// Up to three SACK blocks (left edge, right edge), RFC 2018 §3; unused entries `None`.
    pub sack_ranges: [Option<(SeqNumber, SeqNumber)>; 3],
    /// Timestamps option (RFC 7323 §3).
    pub timestamp: Option<TcpTimestamp>,
    pub payload: &'a [u8],
}

impl TcpRepr<'_> {
    /// Sequence space occupied by the segment: payload length plus one for SYN and for FIN
    /// (RFC 9293 §3.4, SEG.LEN).
    #[inline]
    pub fn segment_len(&self) -> usize {
        self.payload.len() + matches!(self.control, TcpControl::Syn | TcpControl::Fin) as usize
    }
}

#[cfg(test)]
mod seq_tests {
    use super::SeqNumber;

    #[test]
    fn wraps_modulo_2_32() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b, SeqNumber(9));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 20);
        assert_eq!(a - b, 0);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }
}
