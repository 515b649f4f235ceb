//! ARP (RFC 826), Ethernet/IPv4 flavour only.
//!
//! The [`ArpPacket`] view reads any hardware/protocol address lengths (the address fields sit
//! at offsets that depend on them); [`ArpRepr::parse`] accepts only Ethernet (htype 1, hlen 6)
//! over IPv4 (ptype 0x0800, plen 4) and answers `Error::Unsupported` for anything else.
//! Panic contract: see [`crate::wire`].

use core::fmt;
use core::net::Ipv4Addr;

use super::ethernet::{EtherType, EthernetAddress};
use super::{Error, Result};

/// The ARP opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> ArpOperation {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// Hardware type 1: Ethernet (RFC 826, IANA "Hardware Types").
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    /// Start of the variable-length address block.
    pub const ADDRS: usize = 8;

    pub const fn sha(hlen: u8, _plen: u8) -> Field {
        ADDRS..ADDRS + hlen as usize
    }
    pub const fn spa(hlen: u8, plen: u8) -> Field {
        let start = sha(hlen, plen).end;
        start..start + plen as usize
    }
    pub const fn tha(hlen: u8, plen: u8) -> Field {
        let start = spa(hlen, plen).end;
        start..start + hlen as usize
    }
    pub const fn tpa(hlen: u8, plen: u8) -> Field {
        let start = tha(hlen, plen).end;
        start..start + plen as usize
    }
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = field::ADDRS + 2 * (6 + 4);

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer, checking that the fixed part and all four addresses fit.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` unless the buffer holds the fixed part and the four addresses whose
    /// lengths it announces. Trailing bytes (Ethernet padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRS || len < field::tpa(self.hardware_len(), self.protocol_len()).end {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, f: field::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(self.u16_at(field::PTYPE))
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(self.u16_at(field::OPER))
    }

    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::sha(self.hardware_len(), self.protocol_len())]
    }

    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::spa(self.hardware_len(), self.protocol_len())]
    }

    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tha(self.hardware_len(), self.protocol_len())]
    }

    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tpa(self.hardware_len(), self.protocol_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set_u16_at(&mut self, f: field::Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_hardware_type(&mut self, v: u16) {
        self.set_u16_at(field::HTYPE, v);
    }

    pub fn set_protocol_type(&mut self, v: EtherType) {
        self.set_u16_at(field::PTYPE, v.into());
    }

    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    pub fn set_operation(&mut self, v: ArpOperation) {
        self.set_u16_at(field::OPER, v.into());
    }

    /// The address setters use the lengths already written by `set_*_len`.
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let f = field::sha(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[f].copy_from_slice(addr);
    }

    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let f = field::spa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[f].copy_from_slice(addr);
    }

    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let f = field::tha(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[f].copy_from_slice(addr);
    }

    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let f = field::tpa(self.hardware_len(), self.protocol_len());
        self.buffer.as_mut()[f].copy_from_slice(addr);
    }
}

fn ipv4_from(bytes: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
}

/// A validated ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpRepr {
    EthernetIpv4 {
        operation: ArpOperation,
        source_hardware_addr: EthernetAddress,
        source_protocol_addr: Ipv4Addr,
        target_hardware_addr: EthernetAddress,
        target_protocol_addr: Ipv4Addr,
    },
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet. Other hardware or protocol types (or lengths) give
    /// `Error::Unsupported`; a short buffer gives `Error::Truncated`.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        if packet.buffer.as_ref().len() < field::ADDRS {
            return Err(Error::Truncated);
        }
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        packet.check_len()?;
        Ok(ArpRepr::EthernetIpv4 {
            operation: packet.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ipv4_from(packet.source_protocol_addr()),
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ipv4_from(packet.target_protocol_addr()),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        match self {
            ArpRepr::EthernetIpv4 { .. } => ETHERNET_IPV4_LEN,
        }
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`ArpRepr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        match *self {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_hardware_addr,
                target_protocol_addr,
            } => {
                packet.set_hardware_type(HTYPE_ETHERNET);
                packet.set_protocol_type(EtherType::Ipv4);
                packet.set_hardware_len(6);
                packet.set_protocol_len(4);
                packet.set_operation(operation);
                packet.set_source_hardware_addr(&source_hardware_addr.0);
                packet.set_source_protocol_addr(&source_protocol_addr.octets());
                packet.set_target_hardware_addr(&target_hardware_addr.0);
                packet.set_target_protocol_addr(&target_protocol_addr.octets());
            }
        }
    }
}

impl fmt::Display for ArpRepr {
    /// tcpdump style: `ARP who-has 10.0.0.2 tell 10.0.0.1`, `ARP reply 10.0.0.2 is-at ..`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } => match operation {
                ArpOperation::Request => {
                    write!(
                        f,
                        "ARP who-has {target_protocol_addr} tell {source_protocol_addr}"
                    )
                }
                ArpOperation::Reply => {
                    write!(
                        f,
                        "ARP reply {source_protocol_addr} is-at {source_hardware_addr}"
                    )
                }
                ArpOperation::Unknown(op) => write!(
                    f,
                    "ARP op {op} from {source_protocol_addr} ({source_hardware_addr}) \
                     to {target_protocol_addr}"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Linux asking for 10.0.0.2's MAC (the ARP payload after the Ethernet header).
    static REQUEST: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sha
        10, 0, 0, 1, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        10, 0, 0, 2, // tpa
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn test_parse() {
        let packet = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(packet.operation(), ArpOperation::Request);
        assert_eq!(packet.target_protocol_addr(), &[10, 0, 0, 2]);
        assert_eq!(ArpRepr::parse(&packet).unwrap(), request_repr());
        assert_eq!(
            request_repr().to_string(),
            "ARP who-has 10.0.0.2 tell 10.0.0.1"
        );
    }

    #[test]
    fn test_parse_padded() {
        // A 60-byte Ethernet frame carries 18 bytes of padding after the ARP body.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        let packet = ArpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet).unwrap(), request_repr());
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xffu8; 28];
        let repr = request_repr();
        assert_eq!(repr.buffer_len(), 28);
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn test_truncated() {
        for len in 0..28 {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..len]).unwrap_err(),
                Error::Truncated
            );
            let p = ArpPacket::new_unchecked(&REQUEST[..len]);
            assert_eq!(ArpRepr::parse(&p).unwrap_err(), Error::Truncated);
        }
    }

    #[test]
    fn test_unsupported() {
        let mut ipv6 = REQUEST;
        ipv6[2..4].copy_from_slice(&[0x86, 0xdd]);
        let p = ArpPacket::new_unchecked(&ipv6[..]);
        assert_eq!(ArpRepr::parse(&p), Err(Error::Unsupported));
        let mut long_hw = REQUEST;
        long_hw[4] = 8;
        let p = ArpPacket::new_unchecked(&long_hw[..]);
        assert_eq!(ArpRepr::parse(&p), Err(Error::Unsupported));
        // The generic view still reads it (and reports the short buffer).
        assert_eq!(p.check_len(), Err(Error::Truncated));
    }

    #[test]
    fn reply_display() {
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        };
        assert_eq!(
            reply.to_string(),
            "ARP reply 10.0.0.2 is-at 02:00:00:00:00:02"
        );
    }
}
