//! A minimal XDP program that redirects every frame of one queue into one AF_XDP socket, for
//! [`XskConfig::inhibit_prog_load`](super::XskConfig::inhibit_prog_load) = false (tests on a
//! private veth). It replaces libxdp's default program without a C toolchain: five BPF
//! instructions loaded with `bpf(2)`, an XSKMAP holding the socket, and a bpf_link attaching
//! the program (native mode, else SKB mode). Closing the link fd detaches it, so dropping
//! [`RedirectProgram`] (or the process exiting) leaves the interface clean, whichever
//! namespace the dropping thread is in.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// `struct bpf_insn`: opcode, dst (low nibble) and src (high nibble) registers, offset,
/// immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`
fn program(map_fd: RawFd) -> [Insn; 6] {
    [
        // r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index) = 16)
        insn(0x61, 2, 1, 16, 0),
        // r1 = the XSKMAP (ld_imm64, two slots)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS: the action when the queue has no socket
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // return r0
        insn(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `bpf(cmd, attr)`, returning a new descriptor for the commands that create one.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // Safety: `attr` is a valid, initialised #[repr(C)] prefix of `union bpf_attr` for this
    // command, live for the call; the kernel reads (and for some commands writes) at most
    // `size_of::<T>()` bytes of it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // Safety: `fd` was just returned by bpf(2) as a new descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// The program attached to an interface, with its map; dropping it detaches the program.
#[derive(Debug)]
pub(crate) struct RedirectProgram {
    // Drop order: the link (detach) before the program and the map.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
}

impl RedirectProgram {
    /// Loads the program, puts `xsk_fd` in its map at `queue_id`, and attaches it to
    /// `ifindex` (native mode, else SKB mode).
    pub(crate) fn attach(ifindex: u32, queue_id: u32, xsk_fd: RawFd) -> io::Result<Self> {
        let map = owned(bpf(
            BPF_MAP_CREATE,
            &mut MapCreateAttr {
                map_type: BPF_MAP_TYPE_XSKMAP,
                key_size: 4,
                value_size: 4,
                max_entries: queue_id + 1,
                map_flags: 0,
            },
        )?);
        let key = queue_id;
        let value = xsk_fd as u32;
        bpf(
            BPF_MAP_UPDATE_ELEM,
            &mut MapUpdateAttr {
                map_fd: map.as_raw_fd() as u32,
                key: &key as *const u32 as u64,
                value: &value as *const u32 as u64,
                ..MapUpdateAttr::default()
            },
        )?;
        let insns = program(map.as_raw_fd());
        let license = c"Dual MIT/GPL";
        let mut name = [0u8; 16];
        name[..12].copy_from_slice(b"xtcp_all_xsk");
        let prog = owned(bpf(
            BPF_PROG_LOAD,
            &mut ProgLoadAttr {
                prog_type: BPF_PROG_TYPE_XDP,
                insn_cnt: insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                prog_name: name,
                expected_attach_type: BPF_XDP,
                ..ProgLoadAttr::default()
            },
        )?);
        let mut last = None;
        for flags in [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE] {
            match bpf(
                BPF_LINK_CREATE,
                &mut LinkCreateAttr {
                    prog_fd: prog.as_raw_fd() as u32,
                    target_ifindex: ifindex,
                    attach_type: BPF_XDP,
                    flags,
                },
            ) {
                Ok(fd) => {
                    return Ok(RedirectProgram {
                        _link: owned(fd),
                        _prog: prog,
                        _map: map,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("two modes tried"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_union_bpf_attr() {
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(size_of::<MapUpdateAttr>(), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<LinkCreateAttr>(), 16);
    }

    #[test]
    fn program_encoding() {
        let p = program(9);
        assert_eq!(p[0].regs, 0x12, "dst r2, src r1");
        assert_eq!((p[1].regs, p[1].imm), (0x11, 9), "map fd as pseudo map");
        assert_eq!(p[4].imm, 51);
    }
}
