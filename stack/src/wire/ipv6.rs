//! IPv6 header (RFC 8200) and the walk over its extension headers.
//!
//! Panic contract: see [`crate::wire`]. After [`Ipv6Packet::new_checked`] no accessor panics:
//! the buffer holds the 40-byte fixed header and `payload_len` bytes after it. Bytes past
//! that are Ethernet padding (a frame is padded to 60 bytes), not payload.
//!
//! [`Ipv6Repr::parse`] walks the extension header chain (RFC 8200 §4) to the upper-layer
//! header and reports its protocol and length:
//! - Hop-by-Hop (0, first only), Destination Options (60) and Routing (43) with Segments Left
//!   0 are skipped. Inside an options header, Pad1/PadN and unknown options whose type's two
//!   high bits are `00` ("skip over", §4.2) are skipped; any other option discards the packet,
//!   as §4.2 requires for an unrecognized option (we send no ICMP Parameter Problem).
//! - A Fragment header (44) is rejected: this stack does no reassembly. A Routing header with
//!   Segments Left > 0 is rejected (we are not a router, §4.4). The other extension headers
//!   of the IANA registry (ESP, AH, Mobility, HIP, Shim6, the two experimental values) and
//!   No Next Header (59) are rejected. Any other Next Header ends the chain as the upper-layer
//!   protocol; the caller decides whether it handles it.
//!
//! Rejections are `Error::Unsupported`; [`rejected_extension`] names the header type that
//! caused one, for the stack's per-type counters (off the hot path).
//!
//! [`Ipv6Repr::emit`] writes the 40-byte fixed header only (traffic class and flow label 0):
//! this stack sends no extension headers and never fragments (RFC 8200 §5: no fragmentation
//! by routers; our MSS fits the path MTU).

use core::net::Ipv6Addr;

use super::ethernet::EthernetAddress;
use super::{Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Hop limit of the packets this stack sends (the common Linux default).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// The minimum link MTU every IPv6 link must support (RFC 8200 §5).
pub const MIN_MTU: u16 = 1280;

/// Next Header values (IANA "Assigned Internet Protocol Numbers").
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTIONS: u8 = 60;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXPERIMENT_1: u8 = 253;
    pub const EXPERIMENT_2: u8 = 254;
}

/// The most extension headers [`Ipv6Repr::parse`] walks before it gives up (`Unsupported`):
/// bounds the work an attacker can make us do per packet.
pub const MAX_EXTENSION_HEADERS: usize = 8;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer and runs [`Ipv6Packet::check_len`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 40 bytes or than `40 + payload_len`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn addr_at(&self, f: field::Field) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[f]);
        Ipv6Addr::from(a)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([0, b[1] & 0x0f, b[2], b[3]])
    }

    /// Bytes after the fixed header (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(field::DST_ADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// Everything after the fixed header up to `payload_len` (extension headers included),
    /// borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class and flow label (the low 20 bits of `flow_label`).
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Everything after the fixed header (not bounded by `payload_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A validated IPv6 header, extension headers walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// The upper-layer protocol: the Next Header that ends the extension header chain.
    pub next_header: u8,
    /// Length of the upper-layer data: the packet's payload minus its extension headers.
    /// The upper-layer data is the last `payload_len` bytes of [`Ipv6Packet::payload`].
    pub payload_len: usize,
    pub hop_limit: u8,
}

/// Why the extension header walk stopped without reaching an upper-layer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Err(Error),
    /// `Unsupported` because of this header type.
    Rejected(u8),
}

/// Walks the chain starting with `nh` over `payload` (the bytes after the fixed header).
/// Returns the upper-layer protocol and the offset of its header in `payload`.
#[inline]
fn walk_extensions(mut nh: u8, payload: &[u8]) -> core::result::Result<(u8, usize), Walk> {
    use next_header::*;
    let mut at = 0usize;
    let mut i = 0;
    loop {
        match nh {
            HOP_BY_HOP | DEST_OPTIONS | ROUTING => {
                if i == MAX_EXTENSION_HEADERS {
                    return Err(Walk::Rejected(nh));
                }
                // Hop-by-Hop must come first (RFC 8200 §4.3).
                if nh == HOP_BY_HOP && i != 0 {
                    return Err(Walk::Err(Error::Malformed));
                }
                let Some(h) = payload.get(at..at + 2) else {
                    return Err(Walk::Err(Error::Truncated));
                };
                let len = (usize::from(h[1]) + 1) * 8;
                let Some(body) = payload.get(at..at + len) else {
                    return Err(Walk::Err(Error::Truncated));
                };
                if nh == ROUTING {
                    // body[3] is Segments Left.
                    if body[3] != 0 {
                        return Err(Walk::Rejected(ROUTING));
                    }
                } else if !options_skippable(&body[2..]) {
                    return Err(Walk::Rejected(nh));
                }
                nh = body[0];
                at += len;
                i += 1;
            }
            FRAGMENT | NO_NEXT | ESP | AH | MOBILITY | HIP | SHIM6 | EXPERIMENT_1
            | EXPERIMENT_2 => return Err(Walk::Rejected(nh)),
            // Any other value is an upper-layer protocol: the caller decides.
            _ => return Ok((nh, at)),
        }
    }
}

/// Whether every option in a Hop-by-Hop or Destination Options body may be skipped: Pad1,
/// PadN, or an unrecognized type whose action bits are `00` (RFC 8200 §4.2). A malformed
/// option list (an option running past the header) is not skippable either.
fn options_skippable(mut opts: &[u8]) -> bool {
    while let Some((&ty, rest)) = opts.split_first() {
        if ty == 0 {
            opts = rest; // Pad1
            continue;
        }
        let Some((&len, rest)) = rest.split_first() else {
            return false;
        };
        if ty != 1 && ty >> 6 != 0 {
            return false;
        }
        let Some(rest) = rest.get(usize::from(len)..) else {
            return false;
        };
        opts = rest;
    }
    true
}

/// The extension header type that made [`Ipv6Repr::parse`] return `Unsupported` for this
/// packet (44 for a fragment), or `None` if it was not rejected for an extension header
/// (a well-formed packet, or a failure for another reason). For counters; not hot.
pub fn rejected_extension(packet: &[u8]) -> Option<u8> {
    let p = Ipv6Packet::new_checked(packet).ok()?;
    match walk_extensions(p.next_header(), p.payload()) {
        Err(Walk::Rejected(t)) => Some(t),
        _ => None,
    }
}

impl Ipv6Repr {
    /// Validates a received header and walks its extension headers (see the module docs).
    /// Never panics, whatever the buffer.
    ///
    /// Errors: `Truncated` from [`Ipv6Packet::check_len`] or an extension header running past
    /// the payload; `Malformed` for a version other than 6 or a misplaced Hop-by-Hop header;
    /// `Unsupported` for a rejected extension header (see [`rejected_extension`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Ipv6Repr> {
        if !packet.buffer.as_ref().is_empty() && packet.version() != 6 {
            return Err(Error::Malformed);
        }
        packet.check_len()?;
        let payload = packet.payload();
        let (next_header, at) = match walk_extensions(packet.next_header(), payload) {
            Ok(v) => v,
            Err(Walk::Err(e)) => return Err(e),
            Err(Walk::Rejected(_)) => return Err(Error::Unsupported),
        };
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header,
            payload_len: payload.len() - at,
            hop_limit: packet.hop_limit(),
        })
    }

    /// Length of the header `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus upper-layer payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte fixed header (traffic class and flow label 0, no extension
    /// headers). The payload is the caller's to write.
    ///
    /// # Panics
    /// If the buffer is shorter than 40 bytes, or in debug builds if the payload length
    /// exceeds 65535 (no jumbograms; truncated to 16 bits in release builds).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        let mut h = [0u8; HEADER_LEN];
        h[0] = 0x60;
        h[field::LENGTH].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        h[field::NXT_HDR] = self.next_header;
        h[field::HOP_LIMIT] = self.hop_limit;
        h[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        packet.buffer.as_mut()[..HEADER_LEN].copy_from_slice(&h);
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): `ff02::1:ff` followed
/// by the low 24 bits of `addr`. Neighbor Solicitations for `addr` go there.
pub const fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        ((o[14] as u16) << 8) | o[15] as u16,
    )
}

/// The Ethernet address an IPv6 multicast address maps to (RFC 2464 §7): `33:33` followed by
/// its low 32 bits; for a solicited-node address that is `33:33:ff:xx:xx:xx`.
pub const fn multicast_mac(addr: Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A SYN captured on a veth pair (Linux 6.18, `ethtool -K tx off`, `tcpdump -w`; the
    /// capture commands are in docs/ipv6.md), Ethernet header removed: traffic class 0, flow
    /// label 0xa1bdf, payload 40 (a SYN with 20 option bytes), TCP, hop limit 64,
    /// 2001:db8::1 → 2001:db8::2, then the segment (port 55904 → 8080).
    pub(crate) static PACKET: [u8; 80] = [
        0x60, 0x0a, 0x1b, 0xdf, 0x00, 0x28, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xda, 0x60, 0x1f, 0x90, 0x5c,
        0x14, 0xa9, 0xce, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfd, 0x20, 0x82, 0x20, 0x00, 0x00,
        0x02, 0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x30, 0x85, 0x3d, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: next_header::TCP,
            payload_len: 40,
            hop_limit: 64,
        }
    }

    #[test]
    fn parse_captured_header() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0xa1bdf);
        assert_eq!(p.payload_len(), 40);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.payload(), &PACKET[40..]);
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn emit_matches_capture_but_flow_label() {
        let mut buf = [0xaau8; 40];
        repr().emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        let mut want = [0u8; 40];
        want.copy_from_slice(&PACKET[..40]);
        want[1..4].copy_from_slice(&[0, 0, 0]); // we send flow label 0
        assert_eq!(buf, want);
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        p.set_version_tc_flow(0xb8, 0xfffff);
        p.set_payload_len(0);
        p.set_next_header(59);
        p.set_hop_limit(255);
        p.set_src_addr(SRC);
        p.set_dst_addr(DST);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0xfffff)
        );
        assert_eq!((p.src_addr(), p.dst_addr(), p.hop_limit()), (SRC, DST, 255));
    }

    #[test]
    fn truncated() {
        for len in 0..80 {
            let p = Ipv6Packet::new_unchecked(&PACKET[..len]);
            assert_eq!(Ipv6Repr::parse(&p), Err(Error::Truncated), "len {len}");
        }
        // Ethernet padding after payload_len is not payload.
        let mut padded = [0xeeu8; 90];
        padded[..80].copy_from_slice(&PACKET);
        let p = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &PACKET[40..]);
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn wrong_version_is_malformed() {
        let mut b = PACKET;
        b[0] = 0x45;
        let p = Ipv6Packet::new_unchecked(&b[..]);
        assert_eq!(Ipv6Repr::parse(&p), Err(Error::Malformed));
    }

    /// PACKET with `ext` (whole extension headers) inserted between the fixed header and the
    /// segment; the fixed header's Next Header becomes `first`.
    fn with_ext(first: u8, ext: &[u8]) -> Vec<u8> {
        let mut v = PACKET[..40].to_vec();
        v[6] = first;
        v[4..6].copy_from_slice(&((40 + ext.len()) as u16).to_be_bytes());
        v.extend_from_slice(ext);
        v.extend_from_slice(&PACKET[40..]);
        v
    }

    #[test]
    fn skippable_extension_headers() {
        use next_header::*;
        // Hop-by-Hop with PadN(4) → Destination Options with Pad1×6 → Routing (type 0,
        // Segments Left 0) → TCP.
        let hbh = [DEST_OPTIONS, 0, 1, 4, 0, 0, 0, 0];
        let dst = [ROUTING, 0, 0, 0, 0, 0, 0, 0];
        let rt = [TCP, 0, 0, 0, 0, 0, 0, 0];
        let ext: Vec<u8> = [&hbh[..], &dst, &rt].concat();
        let v = with_ext(HOP_BY_HOP, &ext);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r, repr());
        assert_eq!(
            &p.payload()[p.payload().len() - r.payload_len..],
            &PACKET[40..]
        );
        assert_eq!(rejected_extension(&v), None);
        // An unknown option with action bits 00 (type 0x1e) is skipped too; a 16-byte header
        // (Hdr Ext Len 1).
        let dst16 = [TCP, 1, 0x1e, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 0];
        let v = with_ext(DEST_OPTIONS, &dst16);
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&v[..]).unwrap()),
            Ok(repr())
        );
    }

    #[test]
    fn rejected_extension_headers() {
        use next_header::*;
        let cases: [(u8, Vec<u8>, u8); 7] = [
            // An atomic fragment (offset 0, M clear) is still a fragment header: refused.
            (FRAGMENT, vec![TCP, 0, 0, 0, 0, 0, 0, 1], FRAGMENT),
            // Routing with Segments Left 1: we are not a router.
            (ROUTING, vec![TCP, 0, 4, 1, 0, 0, 0, 0], ROUTING),
            // Destination option 0xc2 (action 11: discard): refused by its header type.
            (
                DEST_OPTIONS,
                vec![TCP, 0, 0xc2, 4, 0, 0, 0, 0],
                DEST_OPTIONS,
            ),
            // An option running past its header.
            (HOP_BY_HOP, vec![TCP, 0, 1, 5, 0, 0, 0, 0], HOP_BY_HOP),
            (NO_NEXT, vec![], NO_NEXT),
            (50, vec![0; 8], 50),                     // ESP
            (51, vec![TCP, 0, 0, 0, 0, 0, 0, 0], 51), // AH
        ];
        for (first, ext, why) in cases {
            let v = with_ext(first, &ext);
            let p = Ipv6Packet::new_checked(&v[..]).unwrap();
            assert_eq!(Ipv6Repr::parse(&p), Err(Error::Unsupported), "{first}");
            assert_eq!(rejected_extension(&v), Some(why), "{first}");
        }
        // UDP ends the chain: the caller refuses it, not the IPv6 layer.
        let v = with_ext(DEST_OPTIONS, &[17, 0, 1, 4, 0, 0, 0, 0]);
        let r = Ipv6Repr::parse(&Ipv6Packet::new_checked(&v[..]).unwrap()).unwrap();
        assert_eq!((r.next_header, r.payload_len), (17, 40));
        assert_eq!(rejected_extension(&v), None);
    }

    /// A captured MLDv2 report (Linux, at interface up): Hop-by-Hop with a Router Alert
    /// option (type 5, action bits 00: skipped) and PadN, then ICMPv6.
    #[test]
    fn captured_hop_by_hop_router_alert() {
        let frame = crate::wire::icmpv6::tests::hex(
            "33330000001602000000000286dd600000000024000100000000000000000000000000000000ff02\
             00000000000000000000000000163a000502000001008f006f880000000104000000ff0200000000\
             000000000001ff000002",
        );
        let p = Ipv6Packet::new_checked(&frame[14..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(
            (r.next_header, r.payload_len, r.hop_limit),
            (next_header::ICMPV6, 28, 1)
        );
        assert_eq!(p.payload()[8], 143); // MLDv2 report
    }

    #[test]
    fn malformed_and_truncated_chains() {
        use next_header::*;
        // Hop-by-Hop after another header.
        let v = with_ext(
            DEST_OPTIONS,
            &[HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0, TCP, 0, 1, 4, 0, 0, 0, 0],
        );
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Err(Error::Malformed));
        assert_eq!(rejected_extension(&v), None);
        // A header whose length runs past the payload: payload_len 4, header says 16.
        let mut v = PACKET[..40].to_vec();
        v[6] = DEST_OPTIONS;
        v[4..6].copy_from_slice(&4u16.to_be_bytes());
        v.extend_from_slice(&[TCP, 1, 1, 0]);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Err(Error::Truncated));
        // Nine Destination Options headers: more than we walk.
        let mut ext = Vec::new();
        for _ in 0..9 {
            ext.extend_from_slice(&[DEST_OPTIONS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let last = ext.len() - 8;
        ext[last] = TCP;
        let v = with_ext(DEST_OPTIONS, &ext);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Err(Error::Unsupported));
        assert_eq!(rejected_extension(&v), Some(DEST_OPTIONS));
    }

    #[test]
    fn solicited_node_and_multicast_mac() {
        // RFC 4291 §2.7.1 example: 4037::01:800:200e:8c6c → ff02::1:ff0e:8c6c.
        let a: Ipv6Addr = "4037::01:800:200e:8c6c".parse().unwrap();
        let s = solicited_node(a);
        assert_eq!(s, "ff02::1:ff0e:8c6c".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            multicast_mac(s),
            EthernetAddress([0x33, 0x33, 0xff, 0x0e, 0x8c, 0x6c])
        );
    }
}
