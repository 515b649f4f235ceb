//! Receive-side scaling: which receive queue a NIC delivers a segment on, and the choice of
//! source ports whose replies come back to the core that opened the connection.
//!
//! A NIC with RSS hashes each received packet's addresses and ports with the Toeplitz
//! function under a secret key, and the low bits of the hash index an indirection table whose
//! entries are receive queues. A per-core stack that opens a connection must get the replies
//! on its own queue; it cannot choose the peer's port or address, but it can choose its own
//! source port: [`Rss::rx_queue_v4`] tells, for a candidate port, where the reply will land
//! (mTCP and F-Stack choose ports the same way). Where the key or the table is not known
//! (veth, a NIC without RSS, a table changed at run time) the engine hands mis-delivered
//! frames to their owner instead.
//!
//! Contract: pure functions of the key, the table and the tuple; no allocation after
//! [`Rss::new`]. The Toeplitz implementation follows Microsoft's RSS specification and is
//! tested against its published verification vectors (IPv4 and IPv6, with and without
//! ports). Both families: [`Rss::rx_queue`] and [`RssSteering::accepts`] are generic over
//! [`Address`]; an IPv6 4-tuple is 36 bytes of input and needs a 40-byte key (shorter keys
//! count as zero-padded, as [`toeplitz`] says, which is not what a NIC computes).

use super::{Address, FourTuple};
use core::fmt;
use core::net::Ipv4Addr;

/// The key of Microsoft's RSS verification suite (40 bytes), also the default of many
/// drivers.
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`: for every set bit of the input (most significant
/// first), XOR in the 32 key bits starting at that bit's position. Key bits past the end of
/// `key` count as zero; a key of `input.len() + 4` bytes covers the whole input.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |i: usize| -> u32 {
        key.get(i / 8)
            .map_or(0, |b| u32::from((b >> (7 - i % 8)) & 1))
    };
    let mut window = (0..32).fold(0u32, |w, i| (w << 1) | key_bit(i));
    let mut result = 0;
    for (i, &byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | key_bit(32 + i * 8 + bit);
        }
    }
    result
}

/// The hash input of an IPv4 TCP segment as the NIC sees it: source address, destination
/// address, source port, destination port (network byte order).
pub fn ipv4_tcp_input(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[8..10].copy_from_slice(&src_port.to_be_bytes());
    b[10..12].copy_from_slice(&dst_port.to_be_bytes());
    b
}

/// The hash input of a TCP segment of either family as the NIC sees it (source address,
/// destination address, source port, destination port, network byte order) in the first
/// `2 * A::LEN + 4` bytes of `out`; returns that length (12 or 36).
pub fn tcp_input<A: Address>(
    src: A,
    dst: A,
    src_port: u16,
    dst_port: u16,
    out: &mut [u8; 36],
) -> usize {
    let t = FourTuple {
        local_addr: src,
        remote_addr: dst,
        local_port: src_port,
        remote_port: dst_port,
    };
    A::tuple_bytes(&t, out)
}

/// Why an RSS configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssError {
    /// The key is shorter than the 16 bytes an IPv4 4-tuple needs.
    KeyTooShort(usize),
    /// The indirection table has no entries.
    EmptyTable,
}

impl fmt::Display for RssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RssError::KeyTooShort(n) => {
                write!(f, "RSS key of {n} bytes: an IPv4 4-tuple needs at least 16")
            }
            RssError::EmptyTable => f.write_str("RSS indirection table is empty"),
        }
    }
}

impl std::error::Error for RssError {}

/// A device's RSS configuration: the Toeplitz key and the indirection table (entry `i` is
/// the receive queue of hashes whose value modulo the table length is `i`; tables are a
/// power of two long, so this is the hash's low bits, as NICs use them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rss {
    key: Vec<u8>,
    table: Vec<u16>,
}

impl Rss {
    pub fn new(key: Vec<u8>, table: Vec<u16>) -> Result<Rss, RssError> {
        if key.len() < 16 {
            return Err(RssError::KeyTooShort(key.len()));
        }
        if table.is_empty() {
            return Err(RssError::EmptyTable);
        }
        Ok(Rss { key, table })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn table(&self) -> &[u16] {
        &self.table
    }

    /// The queue of a hash value.
    pub fn queue_of(&self, hash: u32) -> u16 {
        self.table[hash as usize % self.table.len()]
    }

    /// The queue on which a TCP segment from `remote` to `local` arrives.
    pub fn rx_queue_v4(
        &self,
        local: Ipv4Addr,
        local_port: u16,
        remote: Ipv4Addr,
        remote_port: u16,
    ) -> u16 {
        let input = ipv4_tcp_input(remote, local, remote_port, local_port);
        self.queue_of(toeplitz(&self.key, &input))
    }

    /// [`Rss::rx_queue_v4`] for either family.
    pub fn rx_queue<A: Address>(
        &self,
        local: A,
        local_port: u16,
        remote: A,
        remote_port: u16,
    ) -> u16 {
        let mut input = [0u8; 36];
        let n = tcp_input(remote, local, remote_port, local_port, &mut input);
        self.queue_of(toeplitz(&self.key, &input[..n]))
    }
}

/// Active opens of one core under RSS: the ports it may choose are those whose replies the
/// NIC delivers on `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSteering {
    pub rss: Rss,
    pub queue: u16,
}

impl RssSteering {
    /// Whether a reply to `(local, local_port)` from `(remote, remote_port)` reaches us.
    pub fn accepts<A: Address>(
        &self,
        local: A,
        local_port: u16,
        remote: A,
        remote_port: u16,
    ) -> bool {
        self.rss.rx_queue(local, local_port, remote, remote_port) == self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (source, source port, destination, destination port, hash with ports, hash of the
    /// addresses alone).
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);

    /// Microsoft's "Verifying the RSS Hash Calculation" vectors.
    const VECTORS: [Vector; 5] = [
        (
            [66, 9, 149, 187],
            2794,
            [161, 142, 100, 80],
            1766,
            0x51cc_c178,
            0x323e_8fc2,
        ),
        (
            [199, 92, 111, 2],
            14230,
            [65, 69, 140, 83],
            4739,
            0xc626_b0ea,
            0xd718_262a,
        ),
        (
            [24, 19, 198, 95],
            12898,
            [12, 22, 207, 184],
            38024,
            0x5c2b_394a,
            0xd2d0_a5de,
        ),
        (
            [38, 27, 205, 30],
            48228,
            [209, 142, 163, 6],
            2217,
            0xafc7_327f,
            0x8298_9176,
        ),
        (
            [153, 39, 163, 191],
            44251,
            [202, 188, 127, 2],
            1303,
            0x10e8_28a2,
            0x5d18_09c5,
        ),
    ];

    #[test]
    fn microsoft_vectors_ipv4_with_ports() {
        for (src, sp, dst, dp, with_ports, _) in VECTORS {
            let input = ipv4_tcp_input(src.into(), dst.into(), sp, dp);
            assert_eq!(toeplitz(&MICROSOFT_KEY, &input), with_ports, "{src:?}:{sp}");
        }
    }

    #[test]
    fn microsoft_vectors_ipv4_addresses_only() {
        for (src, _, dst, _, _, addrs) in VECTORS {
            let input = ipv4_tcp_input(src.into(), dst.into(), 0, 0);
            assert_eq!(toeplitz(&MICROSOFT_KEY, &input[..8]), addrs, "{src:?}");
        }
    }

    /// Microsoft's IPv6 vectors: (source, source port, destination, destination port, hash
    /// with ports, hash of the addresses alone).
    const VECTORS_V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:1fff::7",
            2794,
            "3ffe:2501:200:3::1",
            1766,
            0x4020_7d3d,
            0x2cc1_8cd5,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            "ff02::1",
            4739,
            0xdde5_1bbf,
            0x0f0c_461c,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            "fe80::200:f8ff:fe21:67cf",
            38024,
            0x02d1_feef,
            0x4b61_e985,
        ),
    ];

    #[test]
    fn microsoft_vectors_ipv6() {
        use core::net::Ipv6Addr;
        let rss = Rss::new(MICROSOFT_KEY.to_vec(), (0..128).collect()).unwrap();
        for (src, sp, dst, dp, with_ports, addrs) in VECTORS_V6 {
            let (s6, d6): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
            let mut input = [0u8; 36];
            assert_eq!(tcp_input(s6, d6, sp, dp, &mut input), 36);
            assert_eq!(toeplitz(&MICROSOFT_KEY, &input), with_ports, "{src}:{sp}");
            assert_eq!(toeplitz(&MICROSOFT_KEY, &input[..32]), addrs, "{src}");
            // Seen from the destination's side.
            assert_eq!(rss.rx_queue(d6, dp, s6, sp), (with_ports % 128) as u16);
        }
        // The generic input is the IPv4 one for IPv4.
        for (src, sp, dst, dp, _, _) in VECTORS {
            let mut input = [0u8; 36];
            let n = tcp_input(Ipv4Addr::from(src), Ipv4Addr::from(dst), sp, dp, &mut input);
            assert_eq!(input[..n], ipv4_tcp_input(src.into(), dst.into(), sp, dp));
        }
    }

    #[test]
    fn the_queue_is_the_table_entry_of_the_low_bits() {
        let rss = Rss::new(MICROSOFT_KEY.to_vec(), vec![0, 1, 2, 3]).unwrap();
        let (src, sp, dst, dp, h, _) = VECTORS[0];
        assert_eq!(rss.queue_of(h), (h % 4) as u16);
        // A segment from `src` to `dst`, seen from `dst`'s side.
        assert_eq!(
            rss.rx_queue_v4(dst.into(), dp, src.into(), sp),
            (h % 4) as u16
        );
        assert_eq!(Rss::new(vec![0; 8], vec![0]), Err(RssError::KeyTooShort(8)));
        assert_eq!(Rss::new(vec![0; 40], vec![]), Err(RssError::EmptyTable));
    }
}
