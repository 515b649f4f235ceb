//! What the engine reads from the device before it starts: its channel (queue) counts and its
//! RSS configuration (`SIOCETHTOOL`: `ETHTOOL_GCHANNELS`, `ETHTOOL_GRSSH`), in the calling
//! thread's network namespace.
//!
//! Both are optional facts: a device without them (an old driver) is still served, the
//! engine then hands mis-delivered frames between cores and does not check the queue count.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

use crate::tcp::rss::Rss;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_GRSSH: u32 = 0x46;
/// `ETH_RSS_HASH_TOP`: the Toeplitz function, as the `hfunc` bit set.
const ETH_RSS_HASH_TOP: u8 = 1;

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// The fixed part of `struct ethtool_rxfh`; `rss_config[]` (the indirection table as u32s,
/// then the key bytes) follows it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolRxfh {
    cmd: u32,
    rss_context: u32,
    indir_size: u32,
    key_size: u32,
    hfunc: u8,
    input_xfrm: u8,
    rsvd8: [u8; 2],
    rsvd32: u32,
}

/// A device's receive queue counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    /// Queues that receive: `rx` + `combined` channels.
    pub rx_queues: u32,
    pub max_rx_queues: u32,
}

/// Runs `SIOCETHTOOL` on `iface` with `data` as the command buffer.
///
/// Safety: `data` must point to a buffer the command `*data` (its first u32) may read and
/// write, for as many bytes as that command uses.
unsafe fn ethtool(iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    let name = CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has NUL"))?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = super::sys::dgram_socket()?;
    // Safety: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = data.cast();
    // Safety: SIOCETHTOOL reads ifr_name and the command buffer behind ifru_data, which the
    // caller guarantees is valid for the command; `req` lives for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The device's channel counts (`ethtool -l`).
pub fn channels(iface: &str) -> io::Result<Channels> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // Safety: ETHTOOL_GCHANNELS reads and writes exactly a `struct ethtool_channels`.
    unsafe { ethtool(iface, (&mut ch as *mut EthtoolChannels).cast())? };
    Ok(Channels {
        rx_queues: ch.rx_count + ch.combined_count,
        max_rx_queues: ch.max_rx + ch.max_combined,
    })
}

/// The device's RSS key and indirection table (`ethtool -x`), when it hashes with Toeplitz;
/// `Ok(None)` for another hash function.
pub fn rss(iface: &str) -> io::Result<Option<Rss>> {
    let mut head = EthtoolRxfh {
        cmd: ETHTOOL_GRSSH,
        ..EthtoolRxfh::default()
    };
    // Safety: with zero sizes, ETHTOOL_GRSSH reads and writes only the fixed header.
    unsafe { ethtool(iface, (&mut head as *mut EthtoolRxfh).cast())? };
    let (indir, key) = (head.indir_size as usize, head.key_size as usize);
    if indir == 0 || key == 0 || indir > 1 << 16 || key > 256 {
        return Ok(None);
    }
    // The header, then `indir` u32 entries, then `key` bytes, in u32 words.
    let head_words = std::mem::size_of::<EthtoolRxfh>() / 4;
    let mut buf = vec![0u32; head_words + indir + key.div_ceil(4)];
    buf[0] = ETHTOOL_GRSSH;
    buf[2] = indir as u32;
    buf[3] = key as u32;
    // Safety: `buf` holds the header with the sizes the kernel reported, followed by room
    // for exactly that many table entries and key bytes.
    unsafe { ethtool(iface, buf.as_mut_ptr().cast())? };
    // hfunc is the first byte after the four u32 header fields.
    let hfunc = buf[4].to_ne_bytes()[0];
    if hfunc != 0 && hfunc & ETH_RSS_HASH_TOP == 0 {
        return Ok(None);
    }
    let table: Vec<u16> = buf[head_words..head_words + indir]
        .iter()
        .map(|&q| q.min(u32::from(u16::MAX)) as u16)
        .collect();
    let key_bytes: Vec<u8> = buf[head_words + indir..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(key)
        .collect();
    Ok(Rss::new(key_bytes, table).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel_headers() {
        // linux/ethtool.h: ethtool_channels is nine u32; ethtool_rxfh's fixed part 24 bytes.
        assert_eq!(std::mem::size_of::<EthtoolChannels>(), 36);
        assert_eq!(std::mem::size_of::<EthtoolRxfh>(), 24);
    }

    #[test]
    fn a_missing_interface_is_an_error_not_a_panic() {
        assert!(channels("xtcp-no-such-if0").is_err());
        assert!(rss("xtcp-no-such-if0").is_err());
    }
}
