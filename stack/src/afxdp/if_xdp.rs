//! The kernel's AF_XDP ABI (`linux/if_xdp.h`): socket options, bind flags, mmap offsets and
//! the `#[repr(C)]` structs exchanged with the kernel. Plain data; no syscalls here.

/// Socket level of the AF_XDP options.
pub(crate) const SOL_XDP: i32 = 283;
/// Address family (and protocol family) of AF_XDP sockets.
pub(crate) const AF_XDP: i32 = 44;

// Socket options (level SOL_XDP).
pub(crate) const XDP_MMAP_OFFSETS: i32 = 1;
pub(crate) const XDP_RX_RING: i32 = 2;
pub(crate) const XDP_TX_RING: i32 = 3;
pub(crate) const XDP_UMEM_REG: i32 = 4;
pub(crate) const XDP_UMEM_FILL_RING: i32 = 5;
pub(crate) const XDP_UMEM_COMPLETION_RING: i32 = 6;

// `sockaddr_xdp::flags`.
pub(crate) const XDP_COPY: u16 = 1 << 1;
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// Bit of a ring's `flags` word: the kernel needs a syscall to make progress on this ring.
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

// mmap(2) page offsets selecting the ring to map.
pub(crate) const XDP_PGOFF_RX_RING: i64 = 0;
pub(crate) const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub(crate) const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub(crate) const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Bytes the kernel reserves in front of every received frame (`XDP_PACKET_HEADROOM`).
pub(crate) const XDP_PACKET_HEADROOM: u32 = 256;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_ring_offset`: byte offsets of a ring's fields inside its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets` (the v2 layout with `flags`, kernel 5.4 and later).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MmapOffsets {
    pub rx: RingOffset,
    pub tx: RingOffset,
    pub fill: RingOffset,
    pub completion: RingOffset,
}

/// `struct xdp_umem_reg` with every field up to `tx_metadata_len` (kernel 6.8); older
/// kernels read the first 28 bytes and require the rest to be zero, which it is.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_desc`: a frame on the RX or TX ring. `addr` is a byte offset into the UMEM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// Offset of the frame's first byte in the UMEM.
    pub addr: u64,
    /// Frame length in bytes.
    pub len: u32,
    /// Descriptor options (multi-buffer, TX metadata); always 0 here.
    pub options: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn layouts_match_the_kernel_headers() {
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<RingOffset>(), 32);
        assert_eq!(size_of::<MmapOffsets>(), 128);
        assert_eq!(size_of::<UmemReg>(), 32);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(AF_XDP, libc::AF_XDP);
        assert_eq!(SOL_XDP, libc::SOL_XDP);
    }
}
