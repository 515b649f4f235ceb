//! The stack's large allocations, for the driver to back with huge pages.
//!
//! The TIME-WAIT ring and index, the flow table and the connection slab are allocated once,
//! at construction, and never move or grow afterwards. With millions of entries a lookup
//! lands on a random 4 KiB page: a TLB miss and a page walk on top of the cache miss.
//! Transparent huge pages (2 MiB) cover the same memory with 512 times fewer TLB entries.
//!
//! The core stays sans-I/O: [`crate::Stack::large_regions`] only reports where the
//! allocations are. [`advise_huge_pages`] (feature `hugepages`, on with `afxdp`) asks the
//! kernel for huge pages over them with `madvise(MADV_HUGEPAGE)`; call it right after
//! constructing the stack, before the tables fill, so that the pages are huge when first
//! touched (the kernel's `khugepaged` collapses already-resident ranges later, in the
//! background). With `/sys/kernel/mm/transparent_hugepage/enabled` at `madvise` (Debian's
//! default) this is what turns them on; at `always` it changes nothing; at `never` it is
//! ignored.

/// One allocation: its address and length in bytes. Stable for the owner's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// What it holds, for logs.
    pub name: &'static str,
    pub addr: usize,
    pub len: usize,
}

impl Region {
    /// The region of a slice (a `Vec`'s reserved capacity is passed as its spare capacity).
    pub fn of<T>(name: &'static str, ptr: *const T, count: usize) -> Region {
        Region {
            name,
            addr: ptr as usize,
            len: count * core::mem::size_of::<T>(),
        }
    }

    /// The largest page-aligned range inside the region (`page` a power of two), or `None`
    /// when it holds no whole page.
    pub fn page_aligned(&self, page: usize) -> Option<(usize, usize)> {
        debug_assert!(page.is_power_of_two());
        let start = self.addr.checked_add(page - 1)? & !(page - 1);
        let end = self.addr.checked_add(self.len)? & !(page - 1);
        (end > start).then(|| (start, end - start))
    }
}

/// Advises huge pages (`madvise(MADV_HUGEPAGE)`) over the whole 4 KiB pages of each region
/// of at least 2 MiB (smaller ones cannot hold a huge page). Returns the bytes advised.
///
/// Errors: the first `madvise` failure (e.g. `EINVAL` on a kernel without transparent huge
/// pages); the regions before it stay advised. Advice never changes contents.
#[cfg(all(feature = "hugepages", target_os = "linux"))]
pub fn advise_huge_pages(regions: &[Region]) -> std::io::Result<usize> {
    const PAGE: usize = 4096;
    const HUGE: usize = 2 << 20;
    let mut advised = 0;
    for r in regions {
        if r.len < HUGE {
            continue;
        }
        let Some((start, len)) = r.page_aligned(PAGE) else {
            continue;
        };
        // Safety: `[start, start + len)` lies within one live allocation the caller got from
        // `large_regions` (whole pages only, rounded inward), and MADV_HUGEPAGE is advice: it
        // neither unmaps nor changes the contents of the memory, so no Rust reference to it
        // is affected.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += len;
    }
    Ok(advised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_aligned_rounds_inward() {
        let r = Region {
            name: "t",
            addr: 4096 + 10,
            len: 3 * 4096,
        };
        assert_eq!(r.page_aligned(4096), Some((8192, 8192)));
        let small = Region {
            name: "t",
            addr: 4097,
            len: 4000,
        };
        assert_eq!(small.page_aligned(4096), None);
    }

    #[cfg(all(feature = "hugepages", target_os = "linux"))]
    #[test]
    fn advice_keeps_contents() {
        let mut v = vec![7u64; 1 << 20]; // 8 MiB
        let r = [Region::of("v", v.as_ptr(), v.len())];
        match advise_huge_pages(&r) {
            // At least the whole 2 MiB-aligned part, at most the allocation.
            Ok(n) => assert!(((4 << 20)..=(8 << 20)).contains(&n), "advised {n}"),
            // A kernel without transparent huge pages refuses the advice: nothing to check.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
        }
        v[12345] = 9;
        assert_eq!(v.iter().filter(|&&x| x == 7).count(), (1 << 20) - 1);
    }
}
