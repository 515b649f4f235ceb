//! ICMPv4 error messages (RFC 792) that matter to TCP: Destination Unreachable (with the
//! next-hop MTU of code 4, Fragmentation Needed, RFC 1191 §4) and Time Exceeded, each with
//! the IPv4 header and first 8 bytes of the TCP segment it quotes (ports and sequence
//! number, RFC 792; RFC 1812 §4.3.2.3 lets routers quote more).
//!
//! Panic contract: see [`crate::wire`]. After [`Icmpv4Packet::new_checked`] no accessor
//! panics. [`Icmpv4Repr::parse`] verifies the ICMP checksum and the quoted header's shape and
//! returns a typed [`Error`] for anything else, never panicking:
//! - `Truncated`: shorter than the 8-byte ICMP header, or the quote shorter than its IPv4
//!   header plus 8 bytes;
//! - `Checksum`: the ICMP checksum (over the whole message) does not verify;
//! - `Malformed`: the quoted header is not IPv4 or its header length is below 20;
//! - `Unsupported`: any other ICMP type (echo, redirect, ...), or a quote of something that
//!   is not the first fragment of a TCP segment: not for TCP.
//!
//! The quoted header's own checksum is not checked: the quote is what a router received,
//! and RFC 1812 §4.3.2.3 does not ask it to be intact. [`emit_error`] writes an error
//! message and [`emit_error_frame`] a whole frame around it (for tests and the fuzz seeds;
//! the stack sends no ICMP). Nothing here allocates.

use core::net::Ipv4Addr;

use super::checksum;
use super::ethernet::{self, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::tcp::SeqNumber;
use super::{Error, Result};

/// IP protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;
/// ICMP header: type, code, checksum, 4 type-specific bytes.
pub const HEADER_LEN: usize = 8;
/// Bytes of the quoted datagram past its IP header that every router returns (RFC 792).
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// ICMP types this module understands.
pub const TYPE_DST_UNREACHABLE: u8 = 3;
pub const TYPE_TIME_EXCEEDED: u8 = 11;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Destination Unreachable code 4: the next-hop MTU (RFC 1191 §4); 0 from older routers.
    pub const NEXT_HOP_MTU: Field = 6..8;
    /// Offsets inside the quoted IPv4 header.
    pub const Q_VER_IHL: usize = 0;
    pub const Q_LENGTH: Field = 2..4;
    pub const Q_FLG_OFF: Field = 6..8;
    pub const Q_PROTOCOL: usize = 9;
    pub const Q_SRC_ADDR: Field = 12..16;
    pub const Q_DST_ADDR: Field = 16..20;
    /// Offsets inside the quoted TCP header's first 8 bytes.
    pub const Q_SRC_PORT: Field = 0..2;
    pub const Q_DST_PORT: Field = 2..4;
    pub const Q_SEQ: Field = 4..8;
}

/// A zero-copy view of an ICMPv4 message (the IPv4 payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer and runs [`Icmpv4Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn u16_at(&self, f: field::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The next-hop MTU field (meaningful in Destination Unreachable code 4 only).
    pub fn next_hop_mtu(&self) -> u16 {
        self.u16_at(field::NEXT_HOP_MTU)
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// Everything after the 8-byte header: the quoted datagram of an error message.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// Destination Unreachable codes (RFC 792, RFC 1122 §3.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unreachable {
    /// Code 0.
    Net,
    /// Code 1.
    Host,
    /// Code 2.
    Protocol,
    /// Code 3.
    Port,
    /// Code 4, Fragmentation Needed and DF set: the next-hop MTU (0 from routers older than
    /// RFC 1191).
    FragNeeded { next_hop_mtu: u16 },
    /// Any other code (source route failed, administratively prohibited, ...).
    Other(u8),
}

/// The ICMP error messages this module parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    DstUnreachable(Unreachable),
    /// Time Exceeded (code 0 in transit, 1 in reassembly): parsed only to be ignored.
    TimeExceeded {
        code: u8,
    },
}

/// What an error message quotes of our TCP segment: the 4-tuple as we sent it (our side is
/// the source) and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotedTcp {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: SeqNumber,
    /// The quoted datagram's total length field (RFC 1191 §5 estimates a path MTU from it
    /// when the router reports none).
    pub total_len: u16,
}

/// A validated ICMPv4 error about one of the TCP segments of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Repr {
    pub message: Icmpv4Message,
    pub quoted: QuotedTcp,
}

impl Icmpv4Repr {
    /// Validates a received ICMP message (the IPv4 payload). Never panics; see the module
    /// docs for the errors.
    pub fn parse<T: AsRef<[u8]>>(packet: &Icmpv4Packet<T>) -> Result<Icmpv4Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let message = match (packet.msg_type(), packet.code()) {
            (TYPE_DST_UNREACHABLE, code) => Icmpv4Message::DstUnreachable(match code {
                0 => Unreachable::Net,
                1 => Unreachable::Host,
                2 => Unreachable::Protocol,
                3 => Unreachable::Port,
                4 => Unreachable::FragNeeded {
                    next_hop_mtu: packet.next_hop_mtu(),
                },
                c => Unreachable::Other(c),
            }),
            (TYPE_TIME_EXCEEDED, code) => Icmpv4Message::TimeExceeded { code },
            _ => return Err(Error::Unsupported),
        };
        let quoted = parse_quote(packet.data())?;
        Ok(Icmpv4Repr { message, quoted })
    }
}

/// The quoted IPv4 header and the first 8 bytes of the TCP header after it.
fn parse_quote(q: &[u8]) -> Result<QuotedTcp> {
    let Some(&ver_ihl) = q.get(field::Q_VER_IHL) else {
        return Err(Error::Truncated);
    };
    if ver_ihl >> 4 != 4 {
        return Err(Error::Malformed);
    }
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ihl < 20 {
        return Err(Error::Malformed);
    }
    let Some(tcp) = q.get(ihl..ihl + QUOTED_PAYLOAD_LEN) else {
        return Err(Error::Truncated);
    };
    let u16_at = |b: &[u8], f: field::Field| u16::from_be_bytes([b[f.start], b[f.start + 1]]);
    // Only a first fragment (offset 0) starts with the TCP header.
    if q[field::Q_PROTOCOL] != ipv4::PROTOCOL_TCP || u16_at(q, field::Q_FLG_OFF) & 0x1fff != 0 {
        return Err(Error::Unsupported);
    }
    let addr =
        |f: field::Field| Ipv4Addr::new(q[f.start], q[f.start + 1], q[f.start + 2], q[f.start + 3]);
    let seq = &tcp[field::Q_SEQ];
    Ok(QuotedTcp {
        src_addr: addr(field::Q_SRC_ADDR),
        dst_addr: addr(field::Q_DST_ADDR),
        src_port: u16_at(tcp, field::Q_SRC_PORT),
        dst_port: u16_at(tcp, field::Q_DST_PORT),
        seq_number: SeqNumber(u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]])),
        total_len: u16_at(q, field::Q_LENGTH),
    })
}

/// Writes an ICMP error message into `buf`: `message`'s type, code and (Fragmentation
/// Needed) next-hop MTU, then `quote` (the offending datagram from its IPv4 header; RFC 792
/// asks for its header and 8 bytes, the caller chooses how much), checksum filled in.
/// Returns the length; `Error::Truncated` if `buf` is too short.
pub fn emit_error(buf: &mut [u8], message: Icmpv4Message, quote: &[u8]) -> Result<usize> {
    let len = HEADER_LEN + quote.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(Error::Truncated);
    };
    let (msg_type, code, mtu) = match message {
        Icmpv4Message::DstUnreachable(u) => {
            let (code, mtu) = match u {
                Unreachable::Net => (0, 0),
                Unreachable::Host => (1, 0),
                Unreachable::Protocol => (2, 0),
                Unreachable::Port => (3, 0),
                Unreachable::FragNeeded { next_hop_mtu } => (4, next_hop_mtu),
                Unreachable::Other(c) => (c, 0),
            };
            (TYPE_DST_UNREACHABLE, code, mtu)
        }
        Icmpv4Message::TimeExceeded { code } => (TYPE_TIME_EXCEEDED, code, 0),
    };
    out[..HEADER_LEN].copy_from_slice(&[msg_type, code, 0, 0, 0, 0, 0, 0]);
    out[field::NEXT_HOP_MTU].copy_from_slice(&mtu.to_be_bytes());
    out[HEADER_LEN..].copy_from_slice(quote);
    let sum = !checksum::data(out);
    out[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

/// Writes a whole Ethernet/IPv4/ICMP error frame at the start of `buf` (IPv4 TTL 64, DF,
/// both checksums), from `src` to `dst` (MAC, address), [`emit_error`]'s message inside.
/// For tests and fuzz seeds: the stack sends no ICMP. `Error::Truncated` if `buf` is too
/// short.
pub fn emit_error_frame(
    buf: &mut [u8],
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    message: Icmpv4Message,
    quote: &[u8],
) -> Result<usize> {
    let icmp_len = HEADER_LEN + quote.len();
    let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + icmp_len;
    if buf.len() < len || ipv4::HEADER_LEN + icmp_len > usize::from(u16::MAX) {
        return Err(Error::Truncated);
    }
    let (eth, ip) = buf[..len].split_at_mut(ethernet::HEADER_LEN);
    EthernetRepr {
        src_addr: src.0,
        dst_addr: dst.0,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(eth));
    let (ip, icmp) = ip.split_at_mut(ipv4::HEADER_LEN);
    Ipv4Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol: PROTOCOL_ICMP,
        payload_len: icmp_len,
        ttl: ipv4::DEFAULT_TTL,
    }
    .emit(&mut Ipv4Packet::new_unchecked(ip));
    emit_error(icmp, message, quote)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fragmentation Needed, next-hop MTU 1280, quoting 10.0.0.1:49152 -> 10.0.0.2:80,
    // seq 0x01020304, a 1500-byte datagram (as Linux's router sends it, with the quoted
    // header's checksum left as it was).
    static FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x55, 0xbf, // type 3, code 4, checksum
        0x00, 0x00, 0x05, 0x00, // unused, next-hop MTU 1280
        0x45, 0x00, 0x05, 0xdc, // quoted: ver/ihl, tos, total len 1500
        0x00, 0x00, 0x40, 0x00, // ident 0, DF
        0x3f, 0x06, 0x00, 0x00, // ttl 63, TCP, checksum (not checked)
        10, 0, 0, 1, // src (us)
        10, 0, 0, 2, // dst (the peer)
        0xc0, 0x00, 0x00, 0x50, // sport 49152, dport 80
        0x01, 0x02, 0x03, 0x04, // seq
    ];

    fn quoted() -> QuotedTcp {
        QuotedTcp {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 49152,
            dst_port: 80,
            seq_number: SeqNumber(0x0102_0304),
            total_len: 1500,
        }
    }

    #[test]
    fn test_parse() {
        let p = Icmpv4Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.next_hop_mtu()), (3, 4, 1280));
        assert!(p.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr {
                message: Icmpv4Message::DstUnreachable(Unreachable::FragNeeded {
                    next_hop_mtu: 1280
                }),
                quoted: quoted(),
            }
        );
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xaau8; 64];
        let msg = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu: 1280 });
        let len = emit_error(&mut buf, msg, &FRAG_NEEDED[8..]).unwrap();
        assert_eq!(&buf[..len], &FRAG_NEEDED[..]);
        assert_eq!(
            emit_error(&mut buf[..35], msg, &FRAG_NEEDED[8..]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_codes_and_time_exceeded() {
        let cases = [
            (Icmpv4Message::DstUnreachable(Unreachable::Net), 3, 0),
            (Icmpv4Message::DstUnreachable(Unreachable::Host), 3, 1),
            (Icmpv4Message::DstUnreachable(Unreachable::Protocol), 3, 2),
            (Icmpv4Message::DstUnreachable(Unreachable::Port), 3, 3),
            (Icmpv4Message::DstUnreachable(Unreachable::Other(13)), 3, 13),
            (Icmpv4Message::TimeExceeded { code: 0 }, 11, 0),
            (Icmpv4Message::TimeExceeded { code: 1 }, 11, 1),
        ];
        for (msg, t, c) in cases {
            let mut buf = [0u8; 64];
            let len = emit_error(&mut buf, msg, &FRAG_NEEDED[8..]).unwrap();
            assert_eq!((buf[0], buf[1]), (t, c));
            let repr = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&buf[..len])).unwrap();
            assert_eq!(repr.message, msg);
            assert_eq!(repr.quoted, quoted());
        }
    }

    #[test]
    fn test_truncated() {
        for len in 0..FRAG_NEEDED.len() {
            let mut buf = [0u8; 36];
            // Re-checksum each prefix so truncation, not the checksum, is what fails.
            let p = &FRAG_NEEDED[..len];
            if len < HEADER_LEN {
                let r = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(p));
                assert_eq!(r, Err(Error::Truncated), "len {len}");
                continue;
            }
            let msg = Icmpv4Message::DstUnreachable(Unreachable::Port);
            let n = emit_error(&mut buf, msg, &FRAG_NEEDED[8..len]).unwrap();
            let r = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&buf[..n]));
            assert_eq!(r, Err(Error::Truncated), "len {len}");
        }
    }

    #[test]
    fn test_bad_checksum() {
        let mut b = FRAG_NEEDED;
        b[35] ^= 1;
        let r = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&b[..]));
        assert_eq!(r, Err(Error::Checksum));
    }

    #[test]
    fn test_unsupported_and_malformed() {
        let reemit = |quote: &[u8], t: u8| {
            let mut buf = [0u8; 64];
            let msg = Icmpv4Message::DstUnreachable(Unreachable::Host);
            let n = emit_error(&mut buf, msg, quote).unwrap();
            buf[0] = t;
            buf[2..4].fill(0);
            let sum = !checksum::data(&buf[..n]);
            buf[2..4].copy_from_slice(&sum.to_be_bytes());
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&buf[..n]))
        };
        let q = &FRAG_NEEDED[8..];
        assert!(reemit(q, 3).is_ok());
        // Echo request / reply, redirect: not errors about TCP.
        for t in [0, 5, 8, 12] {
            assert_eq!(reemit(q, t), Err(Error::Unsupported), "type {t}");
        }
        let mut udp = [0u8; 28];
        udp.copy_from_slice(q);
        udp[9] = 17;
        assert_eq!(reemit(&udp, 3), Err(Error::Unsupported));
        let mut frag = udp;
        frag[9] = 6;
        frag[7] = 1; // offset 8: no TCP header in the quote
        assert_eq!(reemit(&frag, 3), Err(Error::Unsupported));
        let mut v6 = udp;
        v6[9] = 6;
        v6[0] = 0x65;
        assert_eq!(reemit(&v6, 3), Err(Error::Malformed));
        let mut short_ihl = v6;
        short_ihl[0] = 0x44;
        assert_eq!(reemit(&short_ihl, 3), Err(Error::Malformed));
        // IHL 6 with only 8 bytes after 20: the TCP bytes are cut short.
        let mut long_ihl = v6;
        long_ihl[0] = 0x46;
        assert_eq!(reemit(&long_ihl, 3), Err(Error::Truncated));
    }
}
