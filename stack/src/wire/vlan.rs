//! IEEE 802.1Q VLAN tags: the 4 bytes a tagged frame carries between the source MAC and the
//! real EtherType (the outer EtherType, the tag protocol identifier or TPID, is 0x8100).
//!
//! ```text
//!  dst MAC (6) | src MAC (6) | TPID 0x8100 (2) | TCI (2) | EtherType (2) | payload
//!                                               PCP:3 DEI:1 VID:12
//! ```
//!
//! [`VlanPacket`] views the 4 bytes after the outer EtherType (TCI + inner EtherType) and
//! [`VlanRepr`] is the validated tag. Only single tags are handled: a tag whose inner
//! EtherType is another tag (802.1ad QinQ with TPID 0x88a8 outside, or a second 0x8100) is
//! `Error::Unsupported` in [`VlanRepr::parse`]; VID 4095 (reserved by 802.1Q, never sent in a
//! tag) is `Error::Malformed`.
//! VID 0 is a priority tag (802.1p only, no VLAN): it parses, and the stack treats it as
//! untagged.
//!
//! Panic contract: see [`crate::wire`]. After [`VlanPacket::new_checked`] no accessor panics.

use super::ethernet::EtherType;
use super::{Error, Result};

/// TPID of an 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad service tag (the outer tag of QinQ).
pub const TPID_8021AD: u16 = 0x88a8;
/// Length of one tag (TCI + the EtherType it pushes down).
pub const TAG_LEN: usize = 4;
/// The reserved VID 0xfff (802.1Q Table 9-2).
const VID_RESERVED: u16 = 0xfff;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// A configured VLAN: a VID in 1..=4094 (0 means "no VLAN", 4095 is reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanId(core::num::NonZeroU16);

impl VlanId {
    /// `None` unless `vid` is in 1..=4094.
    pub const fn new(vid: u16) -> Option<VlanId> {
        if vid >= VID_RESERVED {
            return None;
        }
        match core::num::NonZeroU16::new(vid) {
            Some(v) => Some(VlanId(v)),
            None => None,
        }
    }

    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl core::fmt::Display for VlanId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl core::str::FromStr for VlanId {
    type Err = String;

    fn from_str(s: &str) -> core::result::Result<VlanId, String> {
        s.parse::<u16>()
            .ok()
            .and_then(VlanId::new)
            .ok_or_else(|| format!("'{s}' is not a VLAN id (1-4094)"))
    }
}

/// Whether an outer EtherType is a VLAN tag protocol identifier (0x8100 or 0x88a8).
#[inline]
pub fn is_tag(ethertype: EtherType) -> bool {
    matches!(u16::from(ethertype), TPID_8021Q | TPID_8021AD)
}

/// A zero-copy view of one 802.1Q tag: the TCI and the inner EtherType, then the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanPacket<T> {
    /// Wraps a buffer without checks; accessors may panic if it is shorter than a tag.
    pub const fn new_unchecked(buffer: T) -> VlanPacket<T> {
        VlanPacket { buffer }
    }

    /// Wraps a buffer, checking that the tag fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<VlanPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` if the buffer is shorter than a tag.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    #[inline]
    pub fn tci(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TCI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Priority code point (802.1p), 0..=7.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier, 0..=4095.
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// The EtherType of what the tag carries.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanPacket<&'a T> {
    /// The bytes after the tag, borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanPacket<T> {
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// A validated single 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4094 (0: priority tag only).
    pub vid: u16,
    /// The EtherType of what the tag carries.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// A tag for `vid` with priority 0, carrying `ethertype`.
    pub const fn new(vid: VlanId, ethertype: EtherType) -> VlanRepr {
        VlanRepr {
            pcp: 0,
            dei: false,
            vid: vid.get(),
            ethertype,
        }
    }

    /// Reads the tag. `Err(Unsupported)` for a second tag inside (QinQ), `Err(Malformed)` for
    /// VID 4095.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &VlanPacket<T>) -> Result<VlanRepr> {
        packet.check_len()?;
        let ethertype = packet.ethertype();
        if is_tag(ethertype) {
            return Err(Error::Unsupported);
        }
        if packet.vid() == VID_RESERVED {
            return Err(Error::Malformed);
        }
        Ok(VlanRepr {
            pcp: packet.pcp(),
            dei: packet.dei(),
            vid: packet.vid(),
            ethertype,
        })
    }

    pub const fn header_len(&self) -> usize {
        TAG_LEN
    }

    /// The tag control information this tag writes (PCP and VID masked to their widths).
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// Writes the tag.
    ///
    /// # Panics
    /// If the buffer is shorter than [`TAG_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VlanPacket<T>) {
        packet.set_tci(self.tci());
        packet.set_ethertype(self.ethertype);
    }
}

impl core::fmt::Display for VlanRepr {
    /// tcpdump's words: `vlan 100, p 3, DEI` (DEI only when set).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "vlan {}, p {}", self.vid, self.pcp)?;
        if self.dei {
            f.write_str(", DEI")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The 4 bytes after an outer EtherType 0x8100: PCP 5, DEI 1, VID 0x064 (100), IPv4.
    static TAG: [u8; 6] = [0xb0, 0x64, 0x08, 0x00, 0xaa, 0xbb];

    #[test]
    fn test_parse() {
        let p = VlanPacket::new_checked(&TAG[..]).unwrap();
        assert_eq!(p.tci(), 0xb064);
        assert_eq!((p.pcp(), p.dei(), p.vid()), (5, true, 100));
        assert_eq!(p.ethertype(), EtherType::Ipv4);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        assert_eq!(
            VlanRepr::parse(&p).unwrap(),
            VlanRepr {
                pcp: 5,
                dei: true,
                vid: 100,
                ethertype: EtherType::Ipv4,
            }
        );
        assert_eq!(
            VlanRepr::parse(&p).unwrap().to_string(),
            "vlan 100, p 5, DEI"
        );
    }

    #[test]
    fn test_emit() {
        let repr = VlanRepr {
            pcp: 5,
            dei: true,
            vid: 100,
            ethertype: EtherType::Ipv4,
        };
        let mut buf = [0u8; 6];
        let mut p = VlanPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(buf, TAG);
        // The configured form: priority 0, no DEI.
        let tagged = VlanRepr::new(VlanId::new(4094).unwrap(), EtherType::Arp);
        repr.emit(&mut VlanPacket::new_unchecked(&mut buf[..]));
        tagged.emit(&mut VlanPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..4], &[0x0f, 0xfe, 0x08, 0x06]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(
            VlanPacket::new_checked(&TAG[..3]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            VlanPacket::new_checked(&TAG[..4]).unwrap().payload(),
            &[] as &[u8]
        );
        let unchecked = VlanPacket::new_unchecked(&TAG[..1]);
        assert_eq!(VlanRepr::parse(&unchecked), Err(Error::Truncated));
    }

    #[test]
    fn double_tags_unsupported_reserved_vid_malformed() {
        // A second 802.1Q tag inside, and an 802.1ad tag inside.
        for inner in [[0x81, 0x00], [0x88, 0xa8]] {
            let t = [0x00, 0x64, inner[0], inner[1]];
            assert_eq!(
                VlanRepr::parse(&VlanPacket::new_unchecked(&t[..])),
                Err(Error::Unsupported)
            );
        }
        let reserved = [0x0f, 0xff, 0x08, 0x00];
        assert_eq!(
            VlanRepr::parse(&VlanPacket::new_unchecked(&reserved[..])),
            Err(Error::Malformed)
        );
        // VID 0: a priority tag, valid.
        let prio = [0x60, 0x00, 0x08, 0x06];
        let r = VlanRepr::parse(&VlanPacket::new_unchecked(&prio[..])).unwrap();
        assert_eq!((r.pcp, r.vid, r.ethertype), (3, 0, EtherType::Arp));
    }

    #[test]
    fn vlan_id_range() {
        assert_eq!(VlanId::new(0), None);
        assert_eq!(VlanId::new(1).map(VlanId::get), Some(1));
        assert_eq!(VlanId::new(4094).map(VlanId::get), Some(4094));
        assert_eq!(VlanId::new(4095), None);
        assert_eq!("100".parse::<VlanId>().unwrap().get(), 100);
        assert!("0".parse::<VlanId>().is_err());
        assert!("4095".parse::<VlanId>().is_err());
        assert!("x".parse::<VlanId>().is_err());
        assert_eq!(
            core::mem::size_of::<Option<VlanId>>(),
            2,
            "None is the zero VID"
        );
        assert!(is_tag(EtherType::from(0x8100)) && is_tag(EtherType::from(0x88a8)));
        assert!(!is_tag(EtherType::Ipv4));
    }
}
