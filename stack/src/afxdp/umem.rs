//! The UMEM: one anonymous mapping of `frame_count` frames of `frame_size` bytes, which the
//! kernel and this process share. Frames are named by index; a frame's UMEM address is
//! `index * frame_size`. Who may touch a frame is decided by the ledger (see `ledger`), not
//! here: these accessors are `unsafe` and their callers state why the frame is theirs.

use std::io;

use super::if_xdp::UmemReg;
use super::mmap::Mmap;

#[derive(Debug)]
pub(crate) struct Umem {
    area: Mmap,
    frame_size: u32,
    frame_count: u32,
}

impl Umem {
    /// `huge`: on huge pages (fails where none are reserved; the caller falls back).
    pub(crate) fn new(frame_count: u32, frame_size: u32, huge: bool) -> io::Result<Umem> {
        let len = frame_count as usize * frame_size as usize;
        let area = if huge {
            Mmap::anonymous_huge(len)?
        } else {
            Mmap::anonymous(len)?
        };
        Ok(Umem {
            area,
            frame_size,
            frame_count,
        })
    }

    /// The registration to pass with `XDP_UMEM_REG`: aligned chunks of `frame_size`, no
    /// extra headroom (the kernel still reserves `XDP_PACKET_HEADROOM` on receive).
    pub(crate) fn registration(&self) -> UmemReg {
        UmemReg {
            addr: self.area.as_ptr() as u64,
            // The frames only: a huge-page mapping may be rounded up beyond them.
            len: (self.frame_count as u64 * self.frame_size as u64).min(self.area.len() as u64),
            chunk_size: self.frame_size,
            ..UmemReg::default()
        }
    }

    pub(crate) fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Whether `[addr, addr + len)` lies inside one frame.
    pub(crate) fn in_one_frame(&self, addr: u64, len: u32) -> bool {
        let fs = self.frame_size as u64;
        addr / fs < self.frame_count as u64 && (addr % fs) + len as u64 <= fs
    }

    /// The bytes `[addr, addr + len)`.
    ///
    /// # Safety
    /// The range must lie in one frame ([`Self::in_one_frame`]) that the caller owns (the
    /// kernel has handed it back and no other reference to it exists) for the borrow's life.
    pub(crate) unsafe fn bytes(&self, addr: u64, len: u32) -> &[u8] {
        debug_assert!(self.in_one_frame(addr, len));
        // Safety: in bounds of the mapping (caller's contract), owned by the caller.
        unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(addr as usize), len as usize) }
    }

    /// The bytes `[addr, addr + len)`, writable.
    ///
    /// # Safety
    /// As [`Self::bytes`], and no other reference to the range exists.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self, addr: u64, len: u32) -> &mut [u8] {
        debug_assert!(self.in_one_frame(addr, len));
        // Safety: in bounds; exclusively the caller's (contract above). The mapping is
        // shared with the kernel, which is why this takes `&self`: ownership of a frame is
        // tracked by the ledger, not by Rust borrows of the whole UMEM.
        unsafe {
            std::slice::from_raw_parts_mut(self.area.as_ptr().add(addr as usize), len as usize)
        }
    }
}
