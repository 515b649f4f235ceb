//! IPv4 header (RFC 791).
//!
//! Panic contract: see [`crate::wire`]. After [`Ipv4Packet::new_checked`] no accessor panics,
//! the header length is at least 20 and both the header and `total_len` fit in the buffer.
//! Bytes after `total_len` are Ethernet padding (frames are padded to 60 bytes): they are
//! not part of the payload.
//!
//! [`Ipv4Repr::parse`] accepts options (skips them) but refuses fragments; [`Ipv4Repr::emit`]
//! writes a 20-byte header with DF set, since this stack does path MTU discovery by MSS and
//! never fragments (RFC 791 §3.2, RFC 1191).

use core::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result};

/// IP protocol number of TCP.
pub const PROTOCOL_TCP: u8 = 6;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Time-to-live of the datagrams this stack sends (the common Linux default).
pub const DEFAULT_TTL: u8 = 64;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and runs [`Ipv4Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the lengths so that every accessor, `payload` included, is in bounds:
    /// `Truncated` if the buffer is shorter than 20 bytes, than the header length or than
    /// `total_len`; `Malformed` if the header length is below 20 or `total_len` below the
    /// header length.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
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
    fn addr_at(&self, f: field::Field) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[f];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length field: header plus payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.addr_at(field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.addr_at(field::DST_ADDR)
    }

    /// Whether the header checksum verifies (over the header including options).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header_len = usize::from(self.header_len());
        checksum::data(&self.buffer.as_ref()[..header_len]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload (`header_len..total_len`), borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16_at(&mut self, f: field::Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (must be a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        self.set_u16_at(field::IDENT, v);
    }

    /// Sets DF and MF and the fragment offset (in bytes, a multiple of 8).
    #[inline]
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        self.set_u16_at(field::FLG_OFF, v);
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v);
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Computes and writes the header checksum (the header length field must be set).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(!sum);
    }

    /// Everything after the header (not bounded by `total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

/// A validated IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: u8,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Validates a received header. Never panics, whatever the buffer.
    ///
    /// Errors: `Truncated`/`Malformed` from [`Ipv4Packet::check_len`]; `Malformed` for a
    /// version other than 4; `Checksum` if the header checksum fails; `Unsupported` for a
    /// fragment (MF set or a non-zero offset), since this stack does no reassembly.
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        let buf = packet.buffer.as_ref();
        if let Some(h) = buf.first_chunk::<HEADER_LEN>()
            && h[field::VER_IHL] == 0x45
        {
            return Self::parse_without_options(h, buf.len());
        }
        Self::parse_other(packet)
    }

    /// [`Ipv4Repr::parse`] of any header but the common one: out of line, so that the
    /// common case inlines into the frame parse without it.
    #[cold]
    #[inline(never)]
    fn parse_other<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        let buf = packet.buffer.as_ref();
        if !buf.is_empty() && packet.version() != 4 {
            return Err(Error::Malformed);
        }
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
        })
    }

    /// [`Ipv4Repr::parse`] of the common header, version 4 without options (`h[0] == 0x45`),
    /// whose first 20 of `len` bytes are `h`: the same checks in the same order, on one
    /// fixed-size array (no bounds checks) and with a fixed-length checksum.
    #[inline(always)]
    fn parse_without_options(h: &[u8; HEADER_LEN], len: usize) -> Result<Ipv4Repr> {
        let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if total_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        if checksum::data(h) != 0xffff {
            return Err(Error::Checksum);
        }
        // MF set or a non-zero fragment offset: a fragment.
        if u16::from_be_bytes([h[6], h[7]]) & (FLAG_MF | FRAG_OFFSET_MASK) != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst_addr: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            protocol: h[field::PROTOCOL],
            payload_len: total_len - HEADER_LEN,
            ttl: h[field::TTL],
        })
    }

    /// Length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header: DSCP/ECN 0, identification 0 with DF set (RFC 6864 §4.1
    /// allows any identification on atomic datagrams), checksum filled in. The payload is the
    /// caller's to write.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes, or in debug builds if the total length exceeds
    /// 65535 (it is truncated to 16 bits in release builds).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.buffer_len() <= usize::from(u16::MAX));
        let total_len = self.buffer_len() as u16;
        let mut h = [0u8; HEADER_LEN];
        h[field::VER_IHL] = 0x40 | (HEADER_LEN / 4) as u8;
        h[field::LENGTH].copy_from_slice(&total_len.to_be_bytes());
        h[field::FLG_OFF].copy_from_slice(&FLAG_DF.to_be_bytes());
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        h[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        // The checksum from the field values (RFC 1071): the zero words (DSCP/ECN,
        // identification, checksum itself) add nothing.
        let (s, d) = (self.src_addr.to_bits(), self.dst_addr.to_bits());
        let sum = u64::from(u16::from_be_bytes([h[0], h[1]]))
            + u64::from(total_len)
            + u64::from(FLAG_DF)
            + u64::from(u16::from_be_bytes([self.ttl, self.protocol]))
            + u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff);
        let sum = checksum::combine(&[sum as u16, (sum >> 16) as u16]);
        h[field::CHECKSUM].copy_from_slice(&(!sum).to_be_bytes());
        packet.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, TCP, 40-byte datagram (a bare ACK), DF, TTL 64, then 6 bytes of
    // Ethernet padding.
    static PACKET: [u8; 46] = [
        0x45, 0x00, 0x00, 0x28, // ver/ihl, tos, total len 40
        0x00, 0x00, 0x40, 0x00, // ident 0, DF
        0x40, 0x06, 0x26, 0xce, // ttl 64, TCP, checksum
        10, 0, 0, 1, // src
        10, 0, 0, 2, // dst
        // 20 bytes of payload
        0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0xc9, 0x50, 0x10, 0xff,
        0xff, 0x00, 0x00, 0x00, 0x00, //
        // padding
        0, 0, 0, 0, 0, 0,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: PROTOCOL_TCP,
            payload_len: 20,
            ttl: 64,
        }
    }

    #[test]
    fn test_parse() {
        let packet = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 40);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.checksum(), 0x26ce);
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &PACKET[20..40]);
        assert_eq!(Ipv4Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xaau8; 40];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf[..20], PACKET[..20]);
    }

    #[test]
    fn test_emit_checksum_verifies() {
        // Extreme field values: carries out of every 16-bit word of the sum.
        let addrs = [
            Ipv4Addr::new(255, 255, 255, 255),
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 168, 1, 254),
        ];
        for src in addrs {
            for dst in addrs {
                for (ttl, payload_len) in [(255, 65515), (0, 0), (64, 1480)] {
                    let r = Ipv4Repr {
                        src_addr: src,
                        dst_addr: dst,
                        protocol: 0xff,
                        payload_len,
                        ttl,
                    };
                    let mut buf = [0x55u8; 20];
                    r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
                    let p = Ipv4Packet::new_unchecked(&buf[..]);
                    assert!(p.verify_checksum(), "{r:?}");
                    assert_eq!(
                        (p.src_addr(), p.dst_addr(), p.ttl(), p.total_len()),
                        (src, dst, ttl, 20 + payload_len as u16)
                    );
                    assert!(p.dont_frag() && !p.more_frags() && p.ident() == 0 && p.dscp() == 0);
                }
            }
        }
    }

    #[test]
    fn test_truncated() {
        for len in 0..40 {
            let p = Ipv4Packet::new_unchecked(&PACKET[..len]);
            assert_eq!(Ipv4Repr::parse(&p), Err(Error::Truncated), "len {len}");
        }
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&PACKET[..40])).is_ok());
    }

    fn with_fixed_checksum(mut bytes: [u8; 46]) -> [u8; 46] {
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    #[test]
    fn test_bad_checksum() {
        let mut bytes = PACKET;
        bytes[11] ^= 0x01;
        let p = Ipv4Packet::new_unchecked(&bytes[..]);
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Checksum));
    }

    #[test]
    fn test_malformed() {
        let mut v6 = PACKET;
        v6[0] = 0x65;
        let p = Ipv4Packet::new_unchecked(&v6[..]);
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Malformed));

        let mut short_ihl = PACKET;
        short_ihl[0] = 0x44;
        let p = Ipv4Packet::new_unchecked(&short_ihl[..]);
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Malformed));

        let mut short_total = PACKET;
        short_total[3] = 19;
        let short_total = with_fixed_checksum(short_total);
        let p = Ipv4Packet::new_unchecked(&short_total[..]);
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Malformed));
    }

    #[test]
    fn test_fragments_unsupported() {
        let mut mf = PACKET;
        mf[6] = 0x20; // MF
        let mf = with_fixed_checksum(mf);
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&mf[..])),
            Err(Error::Unsupported)
        );

        let mut off = PACKET;
        off[7] = 0x01; // offset 8 bytes, last fragment
        let off = with_fixed_checksum(off);
        let p = Ipv4Packet::new_unchecked(&off[..]);
        assert_eq!(p.frag_offset(), 8);
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn test_options_skipped() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL), payload moves back by 4.
        let mut buf = [0u8; 44];
        buf[..12].copy_from_slice(&PACKET[..12]);
        buf[0] = 0x46;
        buf[3] = 44;
        buf[12..20].copy_from_slice(&PACKET[12..20]);
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        buf[24..44].copy_from_slice(&PACKET[20..40]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &PACKET[20..40]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr());
    }

    /// The checks of `parse` made one by one through the accessors, as before the 0x45 fast
    /// path existed.
    fn parse_generic(b: &[u8]) -> Result<Ipv4Repr> {
        let p = Ipv4Packet::new_unchecked(b);
        if !b.is_empty() && p.version() != 4 {
            return Err(Error::Malformed);
        }
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        if p.more_frags() || p.frag_offset() != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - usize::from(p.header_len()),
            ttl: p.ttl(),
        })
    }

    #[test]
    fn fast_path_matches_generic_checks() {
        // Every total length around the edges, every buffer length, and flag words with MF,
        // DF, offsets; each with the checksum fixed and left wrong.
        for total in [0u16, 1, 19, 20, 21, 39, 40, 41, 46, 47, 0xffff] {
            for flags in [0u16, 0x4000, 0x2000, 0x0001, 0x1fff, 0x6001, 0x8000] {
                for fix in [true, false] {
                    let mut bytes = PACKET;
                    bytes[2..4].copy_from_slice(&total.to_be_bytes());
                    bytes[6..8].copy_from_slice(&flags.to_be_bytes());
                    if fix {
                        bytes = with_fixed_checksum(bytes);
                    }
                    for len in 0..=bytes.len() {
                        let b = &bytes[..len];
                        let got = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(b));
                        assert_eq!(
                            got,
                            parse_generic(b),
                            "total {total} flags {flags:#x} len {len}"
                        );
                    }
                }
            }
        }
    }
}
