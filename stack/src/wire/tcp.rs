//! TCP header (RFC 9293 §3.1) and options (RFC 9293 §3.2, RFC 7323, RFC 2018).
//!
//! [`TcpPacket`] is the zero-copy view, [`TcpRepr`] the validated segment, [`TcpOption`] one
//! option. Panic contract: see [`crate::wire`]; after [`TcpPacket::new_checked`] no accessor
//! panics, and [`TcpRepr::parse`] never panics on any buffer. Emitting never allocates.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

use super::checksum::{self, IpAddress};
use super::ipv4::PROTOCOL_TCP;
use super::{Error, Result};

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

/// A SYN-ACK (RFC 9293 §3.10.7.2) as the listener sends it, in the fields that differ from
/// one to the next: ports, ISS, the peer's ISN + 1, the window, and the options (MSS always;
/// window scale, SACK-permitted and timestamps when the peer's SYN offered them). A third
/// of a [`TcpRepr`]'s size, so that a SYN-ACK waits in the stack's control queue compactly;
/// [`SynAckRepr::repr`] is the same segment as a [`TcpRepr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynAckRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: SeqNumber,
    /// The ACK field: the SYN's sequence number + 1.
    pub ack_number: SeqNumber,
    pub window_len: u16,
    pub max_seg_size: u16,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<TcpTimestamp>,
}

const _: () = assert!(core::mem::size_of::<SynAckRepr>() <= 32);

/// A segment in a compact form that writes itself without [`TcpRepr::emit`]'s layout work:
/// [`SynAckRepr`] and [`BareRepr`]. The frame emitters (`wire::emit_compact_frame`,
/// `StackFamily::emit_compact_frame`) take any of them; each is monomorphised, so the trait
/// costs no call (callgrind: the same count per lifecycle as the two emitters it replaced).
pub trait CompactSegment: Copy + core::fmt::Debug {
    /// The same segment as a generic segment.
    fn repr(&self) -> TcpRepr<'static>;
    /// Length of the segment: header and options (no payload).
    fn buffer_len(&self) -> usize;
    /// Writes the bytes [`CompactSegment::repr`]'s [`TcpRepr::emit`] would write into `buf`
    /// (at least [`CompactSegment::buffer_len`] bytes), with `pseudo` the pseudo-header's
    /// native-endian sum for that length (RFC 9293 §3.1); returns the length.
    ///
    /// # Panics
    /// If `buf` is shorter than the segment.
    fn emit_segment(&self, buf: &mut [u8], pseudo: u64) -> usize;

    /// Writes a frame of `headers_len` header bytes and the segment into `buf`: `headers`
    /// writes the headers (given those bytes and the segment's length) and returns the
    /// pseudo-header's native-endian sum for it; then the segment as
    /// [`CompactSegment::emit_segment`] writes it. Returns the frame's length, or `None`
    /// (nothing written) when `buf` is too short. A segment whose length depends on an
    /// option may branch on it first, so that each branch knows its length as a constant.
    #[inline(always)]
    fn emit_after(
        &self,
        buf: &mut [u8],
        headers_len: usize,
        headers: impl FnOnce(&mut [u8], usize) -> u64,
    ) -> Option<usize> {
        emit_after_headers(self, buf, headers_len, headers)
    }
}

/// [`CompactSegment::emit_after`] with the segment's length computed at run time.
#[inline(always)]
fn emit_after_headers<S: CompactSegment>(
    segment: &S,
    buf: &mut [u8],
    headers_len: usize,
    headers: impl FnOnce(&mut [u8], usize) -> u64,
) -> Option<usize> {
    let tcp_len = segment.buffer_len();
    let len = headers_len + tcp_len;
    let (head, tcp_bytes) = buf.get_mut(..len)?.split_at_mut(headers_len);
    let pseudo = headers(head, tcp_len);
    segment.emit_segment(tcp_bytes, pseudo);
    Some(len)
}

impl SynAckRepr {
    /// The pure ACK with this SYN-ACK's ports, numbers, window and timestamps: the SYN-ACK
    /// is that segment with SYN and the SYN-only options ([`CompactSegment::repr`]).
    #[inline(always)]
    fn acked(&self) -> BareRepr {
        BareRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq_number: self.seq_number,
            ack_number: self.ack_number,
            window_len: self.window_len,
            fin: false,
            timestamp: self.timestamp,
        }
    }
}

impl CompactSegment for SynAckRepr {
    /// The same SYN-ACK as a generic segment.
    #[inline]
    fn repr(&self) -> TcpRepr<'static> {
        TcpRepr {
            window_scale: self.window_scale,
            max_seg_size: Some(self.max_seg_size),
            sack_permitted: self.sack_permitted,
            control: TcpControl::Syn,
            ..self.acked().repr()
        }
    }

    /// Length of the segment: header and options (a SYN-ACK carries no payload).
    #[inline]
    fn buffer_len(&self) -> usize {
        HEADER_LEN
            + 4
            + 4 * usize::from(self.window_scale.is_some())
            + 4 * usize::from(self.sack_permitted)
            + if self.timestamp.is_some() { 12 } else { 0 }
    }

    /// Writes the segment [`SynAckRepr::repr`]'s [`TcpRepr::emit`] would write (same options
    /// in the same order and layout), byte for byte, into `buf` (at least
    /// [`SynAckRepr::buffer_len`] bytes), with `pseudo` the pseudo-header's native-endian sum
    /// for that length (RFC 9293 §3.1); returns the length. Written directly from the
    /// SYN-ACK's fields: no layout to work out, no SACK blocks, payload or flag choices.
    /// The checksum is summed from the words as written (RFC 1071 §2(B), §2(C)), as in
    /// `TcpRepr::emit_laid_out`. The unit tests compare the two for every option set.
    ///
    /// # Panics
    /// If `buf` is shorter than the segment.
    #[inline]
    fn emit_segment(&self, buf: &mut [u8], pseudo: u64) -> usize {
        use field::*;
        // What nearly every peer offers: all four options.
        if let (Some(shift), true, Some(ts)) =
            (self.window_scale, self.sack_permitted, self.timestamp)
        {
            return self.emit_all_options(buf, pseudo, shift, ts);
        }
        let len = self.buffer_len();
        let (fixed, opts) = buf[..len].split_at_mut(HEADER_LEN);
        let [hi, lo] = self.max_seg_size.to_be_bytes();
        let mss = [OPT_MSS, 4, hi, lo];
        // Any other option set, word by word.
        let mut acc: u64 = 0;
        let mut at = 0;
        let mut put = |word: [u8; 4]| {
            opts[at..at + 4].copy_from_slice(&word);
            acc += u64::from(u32::from_ne_bytes(word));
            at += 4;
        };
        put(mss);
        put_after_mss(
            self.window_scale,
            self.sack_permitted,
            self.timestamp,
            &mut put,
        );
        // The fixed header as in `TcpRepr::emit_laid_out`: SYN and ACK.
        self.acked()
            .write_header(fixed, len, FLG_SYN | FLG_ACK, acc, pseudo);
        len
    }

    /// The options tested once: with all four the frame's length is a constant in its
    /// branch (no length computed from the options, no test of the buffer's room for them).
    #[inline(always)]
    fn emit_after(
        &self,
        buf: &mut [u8],
        headers_len: usize,
        headers: impl FnOnce(&mut [u8], usize) -> u64,
    ) -> Option<usize> {
        if let (Some(shift), true, Some(ts)) =
            (self.window_scale, self.sack_permitted, self.timestamp)
        {
            let tcp_len = Self::ALL_OPTIONS_LEN;
            let len = headers_len + tcp_len;
            let (head, tcp_bytes) = buf.get_mut(..len)?.split_at_mut(headers_len);
            let pseudo = headers(head, tcp_len);
            self.emit_all_options(tcp_bytes, pseudo, shift, ts);
            return Some(len);
        }
        emit_after_headers(self, buf, headers_len, headers)
    }
}

impl SynAckRepr {
    /// The segment's length with all four options (MSS, window scale, SACK-permitted,
    /// timestamps): six whole words after the header.
    const ALL_OPTIONS_LEN: usize = HEADER_LEN + 24;

    /// [`CompactSegment::emit_segment`] for a SYN-ACK with all four options (window scale
    /// `shift`, timestamps `ts`).
    #[inline(always)]
    fn emit_all_options(&self, buf: &mut [u8], pseudo: u64, shift: u8, ts: TcpTimestamp) -> usize {
        use field::*;
        let len = Self::ALL_OPTIONS_LEN;
        let (fixed, opts) = buf[..len].split_at_mut(HEADER_LEN);
        let [hi, lo] = self.max_seg_size.to_be_bytes();
        let words = [
            [OPT_MSS, 4, hi, lo],
            [OPT_NOP, OPT_WS, 3, shift],
            [OPT_SACKPERM, 2, OPT_NOP, OPT_NOP],
            [OPT_NOP, OPT_NOP, OPT_TSTAMP, 10],
            ts.tsval.to_be_bytes(),
            ts.tsecr.to_be_bytes(),
        ];
        // 24 bytes, known here: the words are stored without a length test each.
        let opts: &mut [u8; 24] = opts.try_into().expect("24 bytes");
        let mut acc = 0;
        for (o, w) in opts.chunks_exact_mut(4).zip(words) {
            o.copy_from_slice(&w);
            acc += u64::from(u32::from_ne_bytes(w));
        }
        self.acked()
            .write_header(fixed, len, FLG_SYN | FLG_ACK, acc, pseudo);
        len
    }
}

/// A segment with ACK and no payload whose only option is timestamps, if any: a bare FIN
/// (FIN+ACK) or a pure ACK, the fields a connection fills in. [`BareRepr::repr`] is the same
/// segment as a [`TcpRepr`]; [`BareRepr::emit_segment`] writes it without the generic
/// emitter's layout and flag choices (the connection's FIN, `Connection::poll_bare_fin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BareRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: SeqNumber,
    pub ack_number: SeqNumber,
    pub window_len: u16,
    /// FIN+ACK when set, a pure ACK otherwise.
    pub fin: bool,
    pub timestamp: Option<TcpTimestamp>,
}

const _: () = assert!(core::mem::size_of::<BareRepr>() <= 32);

impl BareRepr {
    /// The fixed header of a compact segment of `len` bytes with these ports, numbers and
    /// window, and `flags`, as in `TcpRepr::emit_laid_out`; the checksum over the options'
    /// native-endian sum `acc`, the header and the pseudo-header's sum `pseudo`.
    #[inline(always)]
    fn write_header(&self, fixed: &mut [u8], len: usize, flags: u16, acc: u64, pseudo: u64) {
        let off_flags = ((len as u32 / 4) << 12) | u32::from(flags);
        write_fixed_header(
            fixed,
            [self.src_port, self.dst_port],
            self.seq_number.0,
            self.ack_number.0,
            off_flags,
            self.window_len,
            checksum::add_ne(acc, pseudo),
        );
    }
}

impl CompactSegment for BareRepr {
    /// The same segment as a generic segment.
    #[inline]
    fn repr(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            control: if self.fin {
                TcpControl::Fin
            } else {
                TcpControl::None
            },
            seq_number: self.seq_number,
            ack_number: Some(self.ack_number),
            window_len: self.window_len,
            timestamp: self.timestamp,
            ..TcpRepr::default()
        }
    }

    /// Length of the segment: the header and, with timestamps, NOP NOP TS (12 bytes).
    #[inline]
    fn buffer_len(&self) -> usize {
        Self::len_with(self.timestamp)
    }

    /// Writes the bytes [`BareRepr::repr`]'s [`TcpRepr::emit`] would write (NOP NOP TS as
    /// the generic emitter lays it out) into `buf` (at least [`BareRepr::buffer_len`] bytes),
    /// with `pseudo` the pseudo-header's native-endian sum for that length (RFC 9293 §3.1);
    /// returns the length. The checksum is summed from the words as written (RFC 1071
    /// §2(B), §2(C)), as in `TcpRepr::emit_laid_out`; the unit tests compare the two.
    ///
    /// # Panics
    /// If `buf` is shorter than the segment.
    #[inline]
    fn emit_segment(&self, buf: &mut [u8], pseudo: u64) -> usize {
        self.emit_with(buf, pseudo, self.timestamp)
    }

    /// The timestamps tested once, the frame's headers and the segment written in two
    /// copies, each with its length a constant (not a length chosen by one test and the
    /// options by another).
    #[inline(always)]
    fn emit_after(
        &self,
        buf: &mut [u8],
        headers_len: usize,
        headers: impl FnOnce(&mut [u8], usize) -> u64,
    ) -> Option<usize> {
        #[inline(always)]
        fn emit(
            seg: &BareRepr,
            ts: Option<TcpTimestamp>,
            buf: &mut [u8],
            headers_len: usize,
            headers: impl FnOnce(&mut [u8], usize) -> u64,
        ) -> Option<usize> {
            let tcp_len = BareRepr::len_with(ts);
            let len = headers_len + tcp_len;
            let (head, tcp_bytes) = buf.get_mut(..len)?.split_at_mut(headers_len);
            let pseudo = headers(head, tcp_len);
            seg.emit_with(tcp_bytes, pseudo, ts);
            Some(len)
        }
        match self.timestamp {
            Some(ts) => emit(self, Some(ts), buf, headers_len, headers),
            None => emit(self, None, buf, headers_len, headers),
        }
    }
}

impl BareRepr {
    /// The segment's length with timestamps `ts` or without.
    #[inline(always)]
    fn len_with(ts: Option<TcpTimestamp>) -> usize {
        HEADER_LEN + if ts.is_some() { 12 } else { 0 }
    }

    /// [`CompactSegment::emit_segment`] with the timestamps given (`self.timestamp`): where
    /// the caller has tested them already, each of its branches writes its own segment.
    #[inline(always)]
    fn emit_with(&self, buf: &mut [u8], pseudo: u64, timestamp: Option<TcpTimestamp>) -> usize {
        use field::*;
        let len = Self::len_with(timestamp);
        let (fixed, opts) = buf[..len].split_at_mut(HEADER_LEN);
        let acc = match timestamp {
            Some(ts) => {
                let words = [
                    [OPT_NOP, OPT_NOP, OPT_TSTAMP, 10],
                    ts.tsval.to_be_bytes(),
                    ts.tsecr.to_be_bytes(),
                ];
                let mut sum = 0;
                for (o, w) in opts.chunks_exact_mut(4).zip(words) {
                    o.copy_from_slice(&w);
                    sum += u64::from(u32::from_ne_bytes(w));
                }
                sum
            }
            None => 0,
        };
        let flags = if self.fin { FLG_FIN | FLG_ACK } else { FLG_ACK };
        self.write_header(fixed, len, flags, acc, pseudo);
        len
    }
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

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high 4 bits) and the flag bits.
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
    pub const OPTIONS: usize = 20;

    pub const FLG_FIN: u16 = 0x001;
    pub const FLG_SYN: u16 = 0x002;
    pub const FLG_RST: u16 = 0x004;
    pub const FLG_PSH: u16 = 0x008;
    pub const FLG_ACK: u16 = 0x010;
    pub const FLG_URG: u16 = 0x020;
    pub const FLG_ECE: u16 = 0x040;
    pub const FLG_CWR: u16 = 0x080;
    /// The nine bits after the data offset and the three reserved bits.
    pub const FLG_MASK: u16 = 0x1ff;

    pub const OPT_EOL: u8 = 0;
    pub const OPT_NOP: u8 = 1;
    pub const OPT_MSS: u8 = 2;
    pub const OPT_WS: u8 = 3;
    pub const OPT_SACKPERM: u8 = 4;
    pub const OPT_SACKRNG: u8 = 5;
    pub const OPT_TSTAMP: u8 = 8;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Largest option space: the 4-bit data offset allows a 60-byte header.
pub const MAX_OPTIONS_LEN: usize = 40;
/// Largest window shift a peer may use (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// Raw TCP flag bits, as found in the low 9 bits of header bytes 12..14.
pub mod flags {
    pub const FIN: u16 = super::field::FLG_FIN;
    pub const SYN: u16 = super::field::FLG_SYN;
    pub const RST: u16 = super::field::FLG_RST;
    pub const PSH: u16 = super::field::FLG_PSH;
    pub const ACK: u16 = super::field::FLG_ACK;
    pub const URG: u16 = super::field::FLG_URG;
    pub const ECE: u16 = super::field::FLG_ECE;
    pub const CWR: u16 = super::field::FLG_CWR;
}

/// A zero-copy view of a TCP segment (header, options and payload; no IP header).
///
/// The buffer must be exactly the segment: the checksum covers all of it, and the payload is
/// everything after the header. For a received frame that is the IPv4 payload as bounded by
/// the IPv4 total length, never the rest of the Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and runs [`TcpPacket::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 20 bytes or than the data offset says;
    /// `Malformed` if the data offset is below 5 words.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            Err(Error::Malformed)
        } else if len < header_len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn u16_at(&self, f: field::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline]
    fn u32_at(&self, f: field::Field) -> u32 {
        let b = &self.buffer.as_ref()[f];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    #[inline]
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::SEQ_NUM))
    }

    /// The acknowledgment field, meaningful only when [`TcpPacket::ack`] is set.
    #[inline]
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.u32_at(field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::FLAGS.start] >> 4) * 4
    }

    /// The raw flag bits (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u16 {
        self.u16_at(field::FLAGS) & field::FLG_MASK
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & field::FLG_FIN != 0
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & field::FLG_SYN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & field::FLG_RST != 0
    }

    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & field::FLG_PSH != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & field::FLG_ACK != 0
    }

    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & field::FLG_URG != 0
    }

    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & field::FLG_ECE != 0
    }

    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & field::FLG_CWR != 0
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The option bytes (between the fixed header and the payload).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..usize::from(self.header_len())]
    }

    /// Folded sum over pseudo-header and segment; `0xffff` means the checksum verifies.
    #[inline]
    fn checksum_sum<A: IpAddress>(&self, src: A, dst: A) -> u16 {
        // One pass: the pseudo-header joins the segment's sum before the single fold.
        checksum::transport(src, dst, PROTOCOL_TCP, self.buffer.as_ref())
    }

    /// Whether the checksum verifies over the whole buffer and the pseudo-header (IPv4 or
    /// IPv6, by the address type).
    #[inline]
    pub fn verify_checksum<A: IpAddress>(&self, src: A, dst: A) -> bool {
        self.checksum_sum(src, dst) == 0xffff
    }

    /// The checksum the field should hold given the rest of the segment.
    pub fn expected_checksum<A: IpAddress>(&self, src: A, dst: A) -> u16 {
        // Remove the field's own contribution (ones' complement subtraction is adding !x).
        let sum = checksum::combine(&[self.checksum_sum(src, dst), !self.checksum()]);
        !sum
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The payload, borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// The option bytes, borrowed for the buffer's lifetime.
    #[inline]
    pub fn options_ref(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::OPTIONS..usize::from(self.header_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16_at(&mut self, f: field::Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u32_at(&mut self, f: field::Field, v: u32) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v);
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v);
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: SeqNumber) {
        self.set_u32_at(field::SEQ_NUM, v.0);
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: SeqNumber) {
        self.set_u32_at(field::ACK_NUM, v.0);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60); keeps the flags.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::FLAGS.start];
        *b = (*b & 0x0f) | ((len / 4) << 4);
    }

    /// Sets the raw flag bits (see [`flags`]); keeps the data offset.
    #[inline]
    pub fn set_flags(&mut self, flags: u16) {
        let raw = (self.u16_at(field::FLAGS) & !field::FLG_MASK) | (flags & field::FLG_MASK);
        self.set_u16_at(field::FLAGS, raw);
    }

    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        self.set_u16_at(field::WIN_SIZE, v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        self.set_u16_at(field::URGENT, v);
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over the whole buffer and the pseudo-header.
    pub fn fill_checksum<A: IpAddress>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let sum = self.checksum_sum(src, dst);
        self.set_checksum(!sum);
    }
}

/// One TCP option as found on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    /// The shift count as received (not yet clamped).
    WindowScale(u8),
    SackPermitted,
    /// The first three blocks of a SACK option; later unused entries are `None`.
    SackRange([Option<(SeqNumber, SeqNumber)>; 3]),
    Timestamp(TcpTimestamp),
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

#[inline]
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<'a> TcpOption<'a> {
    /// Parses the option at the start of `buffer` (which must be non-empty) and returns the
    /// bytes after it. An option whose length is below 2, runs past the buffer, or does not
    /// fit its kind is `Malformed`.
    #[inline]
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        let (&kind, rest) = buffer.split_first().ok_or(Error::Truncated)?;
        match kind {
            field::OPT_EOL => return Ok((rest, TcpOption::EndOfList)),
            field::OPT_NOP => return Ok((rest, TcpOption::NoOperation)),
            _ => {}
        }
        let &len = rest.first().ok_or(Error::Malformed)?;
        let len = usize::from(len);
        if len < 2 || len > buffer.len() {
            return Err(Error::Malformed);
        }
        let data = &buffer[2..len];
        let rest = &buffer[len..];
        let option = match (kind, len) {
            (field::OPT_MSS, 4) => {
                TcpOption::MaxSegmentSize(u16::from_be_bytes([data[0], data[1]]))
            }
            (field::OPT_WS, 3) => TcpOption::WindowScale(data[0]),
            (field::OPT_SACKPERM, 2) => TcpOption::SackPermitted,
            // RFC 2018 §3: 1 to 4 blocks of two 32-bit edges; at most 3 fit beside timestamps,
            // and we keep no more than that.
            (field::OPT_SACKRNG, 10 | 18 | 26 | 34) => {
                let mut ranges = [None; 3];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((
                        SeqNumber(be_u32(&block[..4])),
                        SeqNumber(be_u32(&block[4..])),
                    ));
                }
                TcpOption::SackRange(ranges)
            }
            (field::OPT_TSTAMP, 10) => TcpOption::Timestamp(TcpTimestamp {
                tsval: be_u32(&data[..4]),
                tsecr: be_u32(&data[4..]),
            }),
            (
                field::OPT_MSS
                | field::OPT_WS
                | field::OPT_SACKPERM
                | field::OPT_SACKRNG
                | field::OPT_TSTAMP,
                _,
            ) => return Err(Error::Malformed),
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok((rest, option))
    }

    /// Bytes this option occupies when emitted.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(r) => 2 + 8 * r.iter().flatten().count(),
            TcpOption::Timestamp(_) => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer` and returns the bytes after it.
    ///
    /// # Panics
    /// If `buffer` is shorter than [`TcpOption::buffer_len`] (or an unknown option's data
    /// exceeds 253 bytes).
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (out, rest) = buffer.split_at_mut(len);
        match *self {
            TcpOption::EndOfList => out[0] = field::OPT_EOL,
            TcpOption::NoOperation => out[0] = field::OPT_NOP,
            _ => {
                out[1] = u8::try_from(len).expect("TCP option longer than 255 bytes");
                match *self {
                    TcpOption::EndOfList | TcpOption::NoOperation => unreachable!(),
                    TcpOption::MaxSegmentSize(mss) => {
                        out[0] = field::OPT_MSS;
                        out[2..4].copy_from_slice(&mss.to_be_bytes());
                    }
                    TcpOption::WindowScale(shift) => {
                        out[0] = field::OPT_WS;
                        out[2] = shift;
                    }
                    TcpOption::SackPermitted => out[0] = field::OPT_SACKPERM,
                    TcpOption::SackRange(ranges) => {
                        out[0] = field::OPT_SACKRNG;
                        for (block, (l, r)) in
                            out[2..].chunks_exact_mut(8).zip(ranges.iter().flatten())
                        {
                            block[..4].copy_from_slice(&l.0.to_be_bytes());
                            block[4..].copy_from_slice(&r.0.to_be_bytes());
                        }
                    }
                    TcpOption::Timestamp(ts) => {
                        out[0] = field::OPT_TSTAMP;
                        out[2..6].copy_from_slice(&ts.tsval.to_be_bytes());
                        out[6..10].copy_from_slice(&ts.tsecr.to_be_bytes());
                    }
                    TcpOption::Unknown { kind, data } => {
                        out[0] = kind;
                        out[2..].copy_from_slice(data);
                    }
                }
            }
        }
        rest
    }
}

/// Walks an option block, yielding each option or a single final error.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> TcpOptions<'a> {
    pub fn new(options: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions {
            rest: options,
            done: false,
        }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Result<TcpOption<'a>>> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((rest, option)) => {
                // RFC 9293 §3.2: what follows End of Option List is padding.
                self.done = option == TcpOption::EndOfList;
                self.rest = rest;
                Some(Ok(option))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Big-endian `u32` at `at`; the caller has checked `at + 4 <= b.len()`.
#[inline(always)]
fn be_u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads the option block into `repr`, with the same result as folding [`TcpOptions`] over it
/// (later options of a kind override earlier ones; a malformed option is an error; EOL ends
/// the block).
///
/// The layouts almost every segment carries are matched whole first, each a few compares:
/// NOP NOP TS (every segment of a connection with timestamps), and the two SYN layouts of
/// Linux (MSS, SACK-permitted, TS, NOP, WS) and of [`TcpRepr::emit`] (MSS, NOP WS,
/// SACK-permitted NOP NOP, NOP NOP TS). Anything else takes the general walk, which writes
/// straight into `repr` instead of going through [`TcpOption`] values.
#[inline(always)]
fn parse_options<'a>(opts: &'a [u8], repr: &mut TcpRepr<'a>) -> Result<()> {
    use field::*;
    // Each layout as a fixed-size array: the reads below need no bounds checks.
    let be32 = |b: [u8; 4]| u32::from_be_bytes(b);
    if opts.is_empty() {
        return Ok(());
    }
    if let Ok(o) = <&[u8; 12]>::try_from(opts)
        && o[..4] == [OPT_NOP, OPT_NOP, OPT_TSTAMP, 10]
    {
        repr.timestamp = Some(TcpTimestamp {
            tsval: be32([o[4], o[5], o[6], o[7]]),
            tsecr: be32([o[8], o[9], o[10], o[11]]),
        });
        return Ok(());
    }
    if let Ok(o) = <&[u8; 20]>::try_from(opts)
        && o[..2] == [OPT_MSS, 4]
        && o[4..8] == [OPT_SACKPERM, 2, OPT_TSTAMP, 10]
        && o[16..19] == [OPT_NOP, OPT_WS, 3]
    {
        repr.max_seg_size = Some(u16::from_be_bytes([o[2], o[3]]));
        repr.sack_permitted = true;
        repr.timestamp = Some(TcpTimestamp {
            tsval: be32([o[8], o[9], o[10], o[11]]),
            tsecr: be32([o[12], o[13], o[14], o[15]]),
        });
        // RFC 7323 §2.3: a shift above 14 is treated as 14.
        repr.window_scale = Some(o[19].min(MAX_WINDOW_SCALE));
        return Ok(());
    }
    if let Ok(o) = <&[u8; 24]>::try_from(opts)
        && o[..2] == [OPT_MSS, 4]
        && o[4..7] == [OPT_NOP, OPT_WS, 3]
        && o[8..16]
            == [
                OPT_SACKPERM,
                2,
                OPT_NOP,
                OPT_NOP,
                OPT_NOP,
                OPT_NOP,
                OPT_TSTAMP,
                10,
            ]
    {
        repr.max_seg_size = Some(u16::from_be_bytes([o[2], o[3]]));
        repr.window_scale = Some(o[7].min(MAX_WINDOW_SCALE));
        repr.sack_permitted = true;
        repr.timestamp = Some(TcpTimestamp {
            tsval: be32([o[16], o[17], o[18], o[19]]),
            tsecr: be32([o[20], o[21], o[22], o[23]]),
        });
        return Ok(());
    }
    parse_options_general(opts, repr)
}

/// The general option walk of [`parse_options`] (out of line: the layouts above are the
/// hot path).
#[inline(never)]
fn parse_options_general<'a>(opts: &'a [u8], repr: &mut TcpRepr<'a>) -> Result<()> {
    use field::*;
    let mut i = 0;
    while i < opts.len() {
        let kind = opts[i];
        match kind {
            // RFC 9293 §3.2: what follows End of Option List is padding.
            OPT_EOL => break,
            OPT_NOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = opts.get(i + 1) else {
            return Err(Error::Malformed);
        };
        let len = usize::from(len);
        if len < 2 || len > opts.len() - i {
            return Err(Error::Malformed);
        }
        let data = &opts[i + 2..i + len];
        match (kind, len) {
            (OPT_MSS, 4) => repr.max_seg_size = Some(u16::from_be_bytes([data[0], data[1]])),
            // RFC 7323 §2.3: a shift above 14 is treated as 14.
            (OPT_WS, 3) => repr.window_scale = Some(data[0].min(MAX_WINDOW_SCALE)),
            (OPT_SACKPERM, 2) => repr.sack_permitted = true,
            // RFC 2018 §3: 1 to 4 blocks of two 32-bit edges; at most 3 fit beside timestamps,
            // and we keep no more than that.
            (OPT_SACKRNG, 10 | 18 | 26 | 34) => {
                let mut ranges = [None; 3];
                for (slot, block) in ranges.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((
                        SeqNumber(be_u32_at(block, 0)),
                        SeqNumber(be_u32_at(block, 4)),
                    ));
                }
                repr.sack_ranges = ranges;
            }
            (OPT_TSTAMP, 10) => {
                repr.timestamp = Some(TcpTimestamp {
                    tsval: be_u32_at(data, 0),
                    tsecr: be_u32_at(data, 4),
                });
            }
            (OPT_MSS | OPT_WS | OPT_SACKPERM | OPT_SACKRNG | OPT_TSTAMP, _) => {
                return Err(Error::Malformed);
            }
            _ => {} // unknown: skipped by its length
        }
        i += len;
    }
    Ok(())
}

impl<'a> TcpRepr<'a> {
    /// Parses and validates a received segment. Never panics, whatever the buffer.
    ///
    /// Errors: `Truncated`/`Malformed` from [`TcpPacket::check_len`]; `Checksum` if the
    /// checksum (with the pseudo-header of `src`, `dst`) fails; `Malformed` for SYN+FIN,
    /// SYN+RST, or a malformed option. RST+FIN is read as RST.
    #[inline]
    pub fn parse<A: IpAddress>(
        packet: &TcpPacket<&'a [u8]>,
        src: A,
        dst: A,
    ) -> Result<TcpRepr<'a>> {
        let mut repr = TcpRepr::default();
        Self::parse_into(packet, src, dst, &mut repr)?;
        Ok(repr)
    }

    /// [`TcpRepr::parse`] into `repr`, every field overwritten on success (on error `repr`
    /// holds partial values). For the hot path: the caller's `repr` is filled in place
    /// instead of a ~100-byte value being built, returned and copied.
    #[inline]
    pub fn parse_into<A: IpAddress>(
        packet: &TcpPacket<&'a [u8]>,
        src: A,
        dst: A,
        repr: &mut TcpRepr<'a>,
    ) -> Result<()> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Self::parse_checked(packet.buffer, repr)
    }

    /// [`TcpRepr::parse`] without the checksum check, for diagnostics (and for a datapath
    /// whose NIC has verified the checksum already).
    pub fn parse_unverified(packet: &TcpPacket<&'a [u8]>) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        let mut repr = TcpRepr::default();
        Self::parse_checked(packet.buffer, &mut repr)?;
        Ok(repr)
    }

    /// The fields of a segment that passed [`TcpPacket::check_len`], written into `repr`.
    /// The fixed header is read through one 20-byte array and the options through one slice,
    /// so the accessors' bounds checks happen once; the slicing here cannot fail after
    /// `check_len` (and would report `Truncated`, not panic, if it could).
    #[inline]
    fn parse_checked(data: &'a [u8], repr: &mut TcpRepr<'a>) -> Result<()> {
        let Some((h, _)) = data.split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let header_len = usize::from(h[field::FLAGS.start] >> 4) * 4;
        let (Some(options), Some(payload)) =
            (data.get(HEADER_LEN..header_len), data.get(header_len..))
        else {
            return Err(Error::Truncated);
        };
        Self::parse_fields(h, options, payload, repr)
    }

    /// The fields of a segment whose fixed header is `h`, split by its data offset into
    /// `options` and `payload` (lengths and checksum already checked), written into `repr`:
    /// the part of [`TcpRepr::parse`] after the checks.
    #[inline(always)]
    fn parse_fields(
        h: &[u8; HEADER_LEN],
        options: &'a [u8],
        payload: &'a [u8],
        repr: &mut TcpRepr<'a>,
    ) -> Result<()> {
        *repr = Self::fixed_fields(h, payload)?;
        repr.read_options(options)
    }

    /// The fixed header `h`'s fields with `payload`, no options yet (`Malformed` for SYN+FIN
    /// and SYN+RST): the first half of [`TcpRepr::parse_fields`], shared with the frame
    /// parser's fixed-offset path (`wire::frame`), which writes them straight into its slot.
    #[inline(always)]
    pub(crate) fn fixed_fields(h: &[u8; HEADER_LEN], payload: &'a [u8]) -> Result<TcpRepr<'a>> {
        let flags = u16::from_be_bytes([h[12], h[13]]) & field::FLG_MASK;
        let has = |bit: u16| flags & bit != 0;
        // By FIN, SYN, RST (bits 0, 1, 2): one load instead of a chain of tests.
        const CONTROL: [Option<TcpControl>; 8] = [
            Some(TcpControl::None),
            Some(TcpControl::Fin),
            Some(TcpControl::Syn),
            None, // SYN+FIN
            Some(TcpControl::Rst),
            // A reset ends the connection whatever else the segment says.
            Some(TcpControl::Rst), // RST+FIN
            None,                  // SYN+RST
            None,                  // SYN+RST+FIN
        ];
        let Some(control) = CONTROL[usize::from(h[13] & 0x7)] else {
            return Err(Error::Malformed);
        };
        // The ACK field read with a plain load and kept by the flag (no branch), the payload
        // first: in this order the fixed-offset frame parser stores both straight from their
        // registers (measured: 15 instructions per lifecycle fewer than `then` and the
        // payload last, which branched and spilled).
        let ack = SeqNumber(be_u32_at(h, field::ACK_NUM.start));
        Ok(TcpRepr {
            payload,
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            control,
            psh: has(field::FLG_PSH),
            seq_number: SeqNumber(be_u32_at(h, field::SEQ_NUM.start)),
            window_len: u16::from_be_bytes([h[14], h[15]]),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            ack_number: if has(field::FLG_ACK) { Some(ack) } else { None },
        })
    }

    /// The option block `options` read into a `repr` from [`TcpRepr::fixed_fields`]: the
    /// second half of [`TcpRepr::parse_fields`].
    #[inline(always)]
    pub(crate) fn read_options(&mut self, options: &'a [u8]) -> Result<()> {
        parse_options(options, self)
    }

    /// Option bytes other than SACK blocks, as `emit` lays them out (each padded to 4).
    fn fixed_options_len(&self) -> usize {
        4 * (self.max_seg_size.is_some() as usize
            + self.window_scale.is_some() as usize
            + self.sack_permitted as usize)
            + 12 * self.timestamp.is_some() as usize
    }

    /// How many SACK blocks `emit` writes: those present, as many as fit in 40 bytes.
    pub fn sack_blocks_emitted(&self) -> usize {
        let wanted = self.sack_ranges.iter().flatten().count();
        // Each SACK option costs NOP NOP kind len = 4 bytes plus 8 per block.
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_options_len() + 4) / 8;
        wanted.min(room)
    }

    /// Length of the options `emit` writes (a multiple of 4, at most 40).
    pub fn options_len(&self) -> usize {
        let blocks = self.sack_blocks_emitted();
        let sack = if blocks > 0 { 4 + 8 * blocks } else { 0 };
        self.fixed_options_len() + sack
    }

    /// Length of the header `emit` writes, options included.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Length of the segment `emit` writes: header, options and payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the segment into the first [`TcpRepr::buffer_len`] bytes of the packet buffer
    /// and fills in the checksum for the `src`, `dst` pseudo-header. Options go in the order
    /// MSS, NOP+WS, SACK-permitted+NOP+NOP, NOP+NOP+timestamps, NOP+NOP+SACK, each
    /// 4-byte aligned, and never exceed 40 bytes (SACK blocks that don't fit are dropped).
    /// URG, ECE and CWR are never set.
    ///
    /// # Panics
    /// If the buffer is shorter than [`TcpRepr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>, A: IpAddress>(
        &self,
        packet: &mut TcpPacket<T>,
        src: A,
        dst: A,
    ) {
        let (blocks, options_len) = self.layout();
        let len = HEADER_LEN + options_len + self.payload.len();
        let pseudo = A::pseudo_header_ne(src, dst, PROTOCOL_TCP, len as u32);
        self.emit_laid_out(packet.buffer.as_mut(), blocks, options_len, pseudo);
    }

    /// The SACK blocks `emit` writes and the length of its options:
    /// ([`TcpRepr::sack_blocks_emitted`], [`TcpRepr::options_len`]), worked out once.
    #[inline]
    pub(crate) fn layout(&self) -> (usize, usize) {
        if self.sack_ranges.iter().all(Option::is_none) {
            // Most segments: no SACK blocks, no room to work out for them.
            return (0, self.fixed_options_len());
        }
        let blocks = self.sack_blocks_emitted();
        let options_len = self.fixed_options_len() + if blocks > 0 { 4 + 8 * blocks } else { 0 };
        (blocks, options_len)
    }

    /// Writes the options, in the order and layout [`TcpRepr::emit`] documents, into `opts`
    /// (exactly [`TcpRepr::options_len`] bytes) and returns their native-endian sum: whole
    /// 4-byte words with fixed kind/length bytes, each added to the sum as it is stored (at
    /// most 10 words of 32 bits: no overflow in 64).
    #[inline]
    fn emit_options(&self, opts: &mut [u8], blocks: usize) -> u64 {
        use field::*;
        let mut acc: u64 = 0;
        let mut at = 0;
        let mut put = |word: [u8; 4]| {
            opts[at..at + 4].copy_from_slice(&word);
            acc += u64::from(u32::from_ne_bytes(word));
            at += 4;
        };
        if let Some(mss) = self.max_seg_size {
            let [hi, lo] = mss.to_be_bytes();
            put([OPT_MSS, 4, hi, lo]);
        }
        put_after_mss(
            self.window_scale,
            self.sack_permitted,
            self.timestamp,
            &mut put,
        );
        if blocks > 0 {
            put([OPT_NOP, OPT_NOP, OPT_SACKRNG, 2 + 8 * blocks as u8]);
            for (l, r) in self.sack_ranges.iter().flatten().take(blocks) {
                put(l.0.to_be_bytes());
                put(r.0.to_be_bytes());
            }
        }
        debug_assert_eq!(at, opts.len());
        acc
    }

    /// [`TcpRepr::emit`] into `buf` with the [`TcpRepr::layout`] and the pseudo-header's
    /// native-endian sum (`IpAddress::pseudo_header_ne`, for the segment's length) already
    /// worked out: the frame emitters need the length first, and the IPv4 one shares the
    /// addresses' sum with the IP header checksum. Returns the segment's length.
    ///
    /// The checksum (RFC 9293 §3.1) is summed from the words as they are written, not read
    /// back from the buffer: header and option words are 32-bit and 4-byte aligned in the
    /// segment, and a ones' complement sum may be taken over native-endian words of any
    /// width (RFC 1071 §2(B), §2(C)), so each word joins the sum as it is stored; only a
    /// payload is summed from memory (`checksum::sum_ne`, from a 4-byte aligned offset).
    ///
    /// # Panics
    /// If `buf` is shorter than the segment.
    #[inline]
    pub(crate) fn emit_laid_out(
        &self,
        buf: &mut [u8],
        blocks: usize,
        options_len: usize,
        pseudo: u64,
    ) -> usize {
        use field::*;
        let header_len = HEADER_LEN + options_len;
        let len = header_len + self.payload.len();
        let segment = &mut buf[..len];
        let (header, payload) = segment.split_at_mut(header_len);
        let (fixed, opts) = header.split_at_mut(HEADER_LEN);

        let mut acc = match (options_len, blocks, self.timestamp) {
            // The two layouts nearly every segment has, each in whole-word stores without the
            // generic walk's tests: NOP NOP TS alone (12 bytes with a timestamp can be
            // nothing else), and the SYN's MSS, NOP WS, SACK-permitted NOP NOP, NOP NOP TS
            // (24 bytes with a timestamp and no SACK blocks). The unit tests compare both
            // with the generic walk.
            (12, _, Some(ts)) => {
                let (tsval, tsecr) = (ts.tsval.to_be_bytes(), ts.tsecr.to_be_bytes());
                let ts_word = [OPT_NOP, OPT_NOP, OPT_TSTAMP, 10];
                let (o0, rest) = opts.split_at_mut(4);
                let (o1, o2) = rest.split_at_mut(4);
                o0.copy_from_slice(&ts_word);
                o1.copy_from_slice(&tsval);
                o2.copy_from_slice(&tsecr);
                u64::from(u32::from_ne_bytes(ts_word))
                    + u64::from(u32::from_ne_bytes(tsval))
                    + u64::from(u32::from_ne_bytes(tsecr))
            }
            (24, 0, Some(ts))
                if let (Some(mss), Some(shift), true) =
                    (self.max_seg_size, self.window_scale, self.sack_permitted) =>
            {
                let [hi, lo] = mss.to_be_bytes();
                let words = [
                    [OPT_MSS, 4, hi, lo],
                    [OPT_NOP, OPT_WS, 3, shift],
                    [OPT_SACKPERM, 2, OPT_NOP, OPT_NOP],
                    [OPT_NOP, OPT_NOP, OPT_TSTAMP, 10],
                    ts.tsval.to_be_bytes(),
                    ts.tsecr.to_be_bytes(),
                ];
                // 24 bytes, known here: the words are stored without a length test each.
                let opts: &mut [u8; 24] = (&mut opts[..24]).try_into().expect("24 bytes");
                let mut sum = 0;
                for (o, w) in opts.chunks_exact_mut(4).zip(words) {
                    o.copy_from_slice(&w);
                    sum += u64::from(u32::from_ne_bytes(w));
                }
                sum
            }
            _ => self.emit_options(opts, blocks),
        };

        // Most segments of a short connection carry nothing: no call into `memcpy` for them.
        if !self.payload.is_empty() {
            payload.copy_from_slice(self.payload);
            acc = checksum::add_ne(acc, checksum::sum_ne(self.payload));
        }

        let mut flags = match self.control {
            TcpControl::None => 0,
            TcpControl::Syn => FLG_SYN,
            TcpControl::Fin => FLG_FIN,
            TcpControl::Rst => FLG_RST,
        };
        if self.psh {
            flags |= FLG_PSH;
        }
        if self.ack_number.is_some() {
            flags |= FLG_ACK;
        }
        let off_flags = ((header_len as u32 / 4) << 12) | u32::from(flags);
        write_fixed_header(
            fixed,
            [self.src_port, self.dst_port],
            self.seq_number.0,
            self.ack_number.unwrap_or(SeqNumber(0)).0,
            off_flags,
            self.window_len,
            checksum::add_ne(acc, pseudo),
        );
        len
    }
}

/// Writes the fixed 20-byte TCP header as five 32-bit words and its checksum, finished from
/// `acc`: the ones' complement sum (native-endian, `checksum::add_ne`) of everything else
/// the checksum covers (pseudo-header, options, payload). Data offset and flags share a
/// word, which also clears the reserved bits (RFC 9293 §3.1); the urgent pointer is 0. The
/// four header words cannot overflow 64 bits, but `acc` can be anything once a payload's
/// sum is in it, so they are added with the end-around carry (RFC 1071 §2(C)).
#[inline(always)]
fn write_fixed_header(
    fixed: &mut [u8],
    [src_port, dst_port]: [u16; 2],
    seq: u32,
    ack: u32,
    off_flags: u32,
    window: u16,
    acc: u64,
) {
    let ports = ((u32::from(src_port) << 16) | u32::from(dst_port)).to_be_bytes();
    let seq = seq.to_be_bytes();
    let ack = ack.to_be_bytes();
    let off_win = ((off_flags << 16) | u32::from(window)).to_be_bytes();
    let words = u64::from(u32::from_ne_bytes(ports))
        + u64::from(u32::from_ne_bytes(seq))
        + u64::from(u32::from_ne_bytes(ack))
        + u64::from(u32::from_ne_bytes(off_win));
    let sum = !checksum::finish_ne(checksum::add_ne(acc, words));
    let ck_urg = (u32::from(sum) << 16).to_be_bytes();
    let (w, rest) = fixed.split_at_mut(4);
    w.copy_from_slice(&ports);
    let (w, rest) = rest.split_at_mut(4);
    w.copy_from_slice(&seq);
    let (w, rest) = rest.split_at_mut(4);
    w.copy_from_slice(&ack);
    let (w, rest) = rest.split_at_mut(4);
    w.copy_from_slice(&off_win);
    rest.copy_from_slice(&ck_urg);
}

/// The options after the MSS, in the order and layout [`TcpRepr::emit`] documents (window
/// scale, SACK-permitted, timestamps), each whole word handed to `put`: shared by the general
/// writer and the SYN-ACK's.
#[inline(always)]
fn put_after_mss(
    window_scale: Option<u8>,
    sack_permitted: bool,
    timestamp: Option<TcpTimestamp>,
    put: &mut impl FnMut([u8; 4]),
) {
    use field::*;
    if let Some(shift) = window_scale {
        put([OPT_NOP, OPT_WS, 3, shift]);
    }
    if sack_permitted {
        put([OPT_SACKPERM, 2, OPT_NOP, OPT_NOP]);
    }
    if let Some(ts) = timestamp {
        put([OPT_NOP, OPT_NOP, OPT_TSTAMP, 10]);
        put(ts.tsval.to_be_bytes());
        put(ts.tsecr.to_be_bytes());
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

#[cfg(test)]
mod tests;
