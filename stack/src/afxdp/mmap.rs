//! Owned memory mappings: the UMEM (anonymous) and the four rings (mapped from the socket).

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// A mapping owned by this value and unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// Safety: the mapping is plain memory owned by this value; which thread unmaps it does not
// matter. Access to the bytes is synchronised by the owners (rings use atomics).
unsafe impl Send for Mmap {}

impl Mmap {
    /// `len` bytes of zeroed, populated, private anonymous memory (the UMEM).
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    }

    /// As [`Mmap::anonymous`], on huge pages (`MAP_HUGETLB`, the system's default huge page
    /// size, 2 MiB on x86-64): `len` is rounded up to a multiple of 2 MiB. Fails (`ENOMEM`)
    /// where no huge pages are reserved (`vm.nr_hugepages`).
    pub(crate) fn anonymous_huge(len: usize) -> io::Result<Mmap> {
        const HUGE: usize = 2 << 20;
        Self::map(
            len.div_ceil(HUGE) * HUGE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | libc::MAP_HUGETLB,
            -1,
            0,
        )
    }

    /// The `len` bytes of `fd`'s mapping at `offset` (a ring of an AF_XDP socket), shared
    /// with the kernel.
    pub(crate) fn ring(fd: RawFd, len: usize, offset: i64) -> io::Result<Mmap> {
        Self::map(len, libc::MAP_SHARED | libc::MAP_POPULATE, fd, offset)
    }

    fn map(len: usize, flags: i32, fd: RawFd, offset: i64) -> io::Result<Mmap> {
        // Safety: a fresh mapping at an address of the kernel's choosing; no existing memory is
        // affected. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mmap { ptr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // Safety: `ptr`/`len` describe a mapping this value created and nobody else unmaps;
        // every borrower (ring views, frame slices) is owned by a struct that drops first.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
