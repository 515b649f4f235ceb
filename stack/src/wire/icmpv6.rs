//! ICMPv6 (RFC 4443): the messages a TCP host needs. Neighbor Solicitation and Neighbor
//! Advertisement with their link-layer address options (RFC 4861 §4.3, §4.4, §4.6.1),
//! Destination Unreachable (RFC 4443 §3.1) and Packet Too Big (§3.2). Echo and router
//! discovery are not handled here.
//!
//! Panic contract: see [`crate::wire`]. [`Icmpv6Repr::parse`] never panics and verifies the
//! checksum over the IPv6 pseudo-header (RFC 4443 §2.3).
//!
//! Neighbor Discovery validation (RFC 4861 §7.1): `parse` checks what the ICMPv6 message
//! itself carries: code 0, length at least 24, a target that is not multicast, every option
//! with a non-zero length, for a Solicitation from the unspecified address a solicited-node
//! destination and no source link-layer option, for an Advertisement to a multicast
//! destination the Solicited flag clear. The IP Hop Limit of 255 (proof that the message was
//! not forwarded) is checked by [`parse_icmpv6_frame`](super::frame::parse_icmpv6_frame),
//! which sees the IPv6 header. Options other than the link-layer address options are
//! skipped, as §4.6 requires.

use core::fmt;
use core::net::Ipv6Addr;

use super::checksum;
use super::ethernet::EthernetAddress;
use super::ipv6::{self, next_header};
use super::{Error, Result};

/// Message types handled here.
pub mod msg_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// The header every ICMPv6 message starts with (type, code, checksum) plus the first
/// 32-bit word of the body, which every message type has.
pub const HEADER_LEN: usize = 8;
/// A Neighbor Solicitation or Advertisement without options.
pub const ND_LEN: usize = 24;
/// A link-layer address option for Ethernet (type, length 1, six bytes).
pub const LLADDR_OPT_LEN: usize = 8;
/// The Hop Limit every Neighbor Discovery message is sent with and must arrive with.
pub const ND_HOP_LIMIT: u8 = 255;

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A zero-copy view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Icmpv6Packet<T> {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer and runs [`Icmpv6Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Icmpv6Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes. The whole buffer is the message
    /// (the caller bounds it by the IPv6 payload length).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Whether the checksum verifies over the message and the IPv6 pseudo-header.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::transport(src, dst, next_header::ICMPV6, self.buffer.as_ref()) == 0xffff
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum over the whole buffer and the pseudo-header.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        b[2..4].fill(0);
        let sum = checksum::transport(src, dst, next_header::ICMPV6, b);
        b[2..4].copy_from_slice(&(!sum).to_be_bytes());
    }
}

/// Destination Unreachable codes (RFC 4443 §3.1).
pub mod unreachable_code {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDRESS: u8 = 3;
    pub const PORT: u8 = 4;
}

/// A validated ICMPv6 message of a type handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// RFC 4443 §3.1: a packet we sent could not be delivered, for the reason `code`
    /// ([`unreachable_code`]; any value is accepted, the receiver decides what it means).
    /// `invoking` is as much of that packet (IPv6 header first) as the sender could quote.
    DstUnreachable { code: u8, invoking: &'a [u8] },
    /// RFC 4443 §3.2: a packet we sent did not fit the next link's `mtu`. `invoking` is as
    /// much of that packet (IPv6 header first) as the sender could quote.
    PacketTooBig { mtu: u32, invoking: &'a [u8] },
    /// RFC 4861 §4.3: who has `target`? `source_lladdr` is the sender's MAC (absent from
    /// duplicate address detection, whose source is `::`).
    NeighborSolicit {
        target: Ipv6Addr,
        source_lladdr: Option<EthernetAddress>,
    },
    /// RFC 4861 §4.4: `target` is at `target_lladdr`.
    NeighborAdvert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        target_lladdr: Option<EthernetAddress>,
    },
}

/// The Ethernet address of the first option of `kind` (an 8-byte link-layer address
/// option); `Malformed` for an option of length 0 or one that runs past the message, or a
/// link-layer option of another size. Other options are skipped (RFC 4861 §4.6).
fn lladdr_option(mut opts: &[u8], kind: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !opts.is_empty() {
        let [ty, len, ..] = *opts else {
            return Err(Error::Malformed);
        };
        let bytes = usize::from(len) * 8;
        if bytes == 0 || bytes > opts.len() {
            return Err(Error::Malformed);
        }
        if ty == OPT_SOURCE_LLADDR || ty == OPT_TARGET_LLADDR {
            if bytes != LLADDR_OPT_LEN {
                return Err(Error::Malformed);
            }
            if ty == kind && found.is_none() {
                found = Some(EthernetAddress::from_bytes(&opts[2..8]));
            }
        }
        opts = &opts[bytes..];
    }
    Ok(found)
}

fn target_at(body: &[u8]) -> Result<Ipv6Addr> {
    let mut a = [0u8; 16];
    a.copy_from_slice(&body[8..24]);
    let target = Ipv6Addr::from(a);
    if target.is_multicast() {
        return Err(Error::Malformed);
    }
    Ok(target)
}

impl<'a> Icmpv6Repr<'a> {
    /// Validates a received message carried from `src` to `dst`. Never panics.
    ///
    /// Errors: `Truncated` for a message shorter than its type's fixed part; `Checksum`;
    /// `Malformed` for a Neighbor Discovery message that fails RFC 4861 §7.1 (see the module
    /// docs); `Unsupported` for any other type (echo, router discovery, errors other than
    /// Destination Unreachable and Packet Too Big).
    pub fn parse(
        packet: &Icmpv6Packet<&'a [u8]>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Icmpv6Repr<'a>> {
        packet.check_len()?;
        let b: &'a [u8] = packet.buffer;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        match packet.msg_type() {
            msg_type::DST_UNREACHABLE => Ok(Icmpv6Repr::DstUnreachable {
                code: packet.msg_code(),
                invoking: &b[HEADER_LEN..],
            }),
            msg_type::PACKET_TOO_BIG => Ok(Icmpv6Repr::PacketTooBig {
                mtu: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                invoking: &b[HEADER_LEN..],
            }),
            t @ (msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT) => {
                if b.len() < ND_LEN {
                    return Err(Error::Truncated);
                }
                if packet.msg_code() != 0 {
                    return Err(Error::Malformed);
                }
                let target = target_at(b)?;
                let opts = &b[ND_LEN..];
                if t == msg_type::NEIGHBOR_SOLICIT {
                    let source_lladdr = lladdr_option(opts, OPT_SOURCE_LLADDR)?;
                    if src.is_unspecified()
                        && (dst != ipv6::solicited_node(target) || source_lladdr.is_some())
                    {
                        return Err(Error::Malformed);
                    }
                    return Ok(Icmpv6Repr::NeighborSolicit {
                        target,
                        source_lladdr,
                    });
                }
                let flags = b[4];
                let solicited = flags & FLAG_SOLICITED != 0;
                if solicited && dst.is_multicast() {
                    return Err(Error::Malformed);
                }
                Ok(Icmpv6Repr::NeighborAdvert {
                    router: flags & FLAG_ROUTER != 0,
                    solicited,
                    override_: flags & FLAG_OVERRIDE != 0,
                    target,
                    target_lladdr: lladdr_option(opts, OPT_TARGET_LLADDR)?,
                })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// Length of the message `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. } => HEADER_LEN + invoking.len(),
            Icmpv6Repr::NeighborSolicit { source_lladdr, .. } => {
                ND_LEN
                    + if source_lladdr.is_some() {
                        LLADDR_OPT_LEN
                    } else {
                        0
                    }
            }
            Icmpv6Repr::NeighborAdvert { target_lladdr, .. } => {
                ND_LEN
                    + if target_lladdr.is_some() {
                        LLADDR_OPT_LEN
                    } else {
                        0
                    }
            }
        }
    }

    /// Writes the message into the first [`Icmpv6Repr::buffer_len`] bytes of `buf` with its
    /// checksum for `src` → `dst` and returns that length; `Error::Truncated` if `buf` is
    /// shorter. The caller limits an error's quote (Packet Too Big, Destination
    /// Unreachable) so that the whole packet fits the IPv6 minimum MTU (RFC 4443 §3.1, §3.2).
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize> {
        let len = self.buffer_len();
        let Some(b) = buf.get_mut(..len) else {
            return Err(Error::Truncated);
        };
        b[..HEADER_LEN].fill(0);
        match *self {
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                b[0] = msg_type::DST_UNREACHABLE;
                b[1] = code;
                b[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::PacketTooBig { mtu, invoking } => {
                b[0] = msg_type::PACKET_TOO_BIG;
                b[4..8].copy_from_slice(&mtu.to_be_bytes());
                b[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                b[0] = msg_type::NEIGHBOR_SOLICIT;
                emit_nd_body(b, target, OPT_SOURCE_LLADDR, source_lladdr);
            }
            Icmpv6Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                b[0] = msg_type::NEIGHBOR_ADVERT;
                b[4] = (u8::from(router) * FLAG_ROUTER)
                    | (u8::from(solicited) * FLAG_SOLICITED)
                    | (u8::from(override_) * FLAG_OVERRIDE);
                emit_nd_body(b, target, OPT_TARGET_LLADDR, target_lladdr);
            }
        }
        Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
        Ok(len)
    }
}

fn emit_nd_body(b: &mut [u8], target: Ipv6Addr, opt: u8, mac: Option<EthernetAddress>) {
    b[8..ND_LEN].copy_from_slice(&target.octets());
    if let Some(mac) = mac {
        b[ND_LEN] = opt;
        b[ND_LEN + 1] = 1;
        b[ND_LEN + 2..ND_LEN + 8].copy_from_slice(&mac.0);
    }
}

impl fmt::Display for Icmpv6Repr<'_> {
    /// tshark-like: `neighbor solicitation for 2001:db8::2 from 02:00:00:00:00:01`,
    /// `neighbor advertisement 2001:db8::2 (sol, ovr) is at 02:00:00:00:00:02`,
    /// `packet too big, mtu 1280`, `destination unreachable, code 4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Icmpv6Repr::DstUnreachable { code, .. } => {
                write!(f, "destination unreachable, code {code}")
            }
            Icmpv6Repr::PacketTooBig { mtu, .. } => write!(f, "packet too big, mtu {mtu}"),
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                write!(f, "neighbor solicitation for {target}")?;
                match source_lladdr {
                    Some(mac) => write!(f, " from {mac}"),
                    None => Ok(()),
                }
            }
            Icmpv6Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                write!(f, "neighbor advertisement {target}")?;
                let names = [(*router, "rtr"), (*solicited, "sol"), (*override_, "ovr")];
                let mut sep = " (";
                for (_, name) in names.iter().filter(|(on, _)| *on) {
                    write!(f, "{sep}{name}")?;
                    sep = ", ";
                }
                if sep == ", " {
                    f.write_str(")")?;
                }
                match target_lladdr {
                    Some(mac) => write!(f, " is at {mac}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
