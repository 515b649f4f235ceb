//! The AF_XDP datapath: [`XskLink`], one AF_XDP socket behind the [`Link`](crate::link::Link)
//! trait.
//!
//! Pure Rust, no C library: the kernel interface is one module per kernel object, in the
//! style of s2n-quic-xdp. Modules: `if_xdp` (the ABI: constants and `#[repr(C)]` structs),
//! `syscall` (socket, options, bind, wakeups, interface look-ups), `mmap` (owned mappings),
//! `umem` (the frame area), `ring` (one type per ring: Fill, Completion, Rx, Tx, each with
//! `acquire` / `set`|`get` / `release` / `needs_wakeup`, tested on in-memory ring pairs),
//! `socket` (set-up order and bind), `busy_poll` (preferred busy polling: socket options and
//! device settings), `redirect` (a five-instruction redirect-all XDP program
//! for private test links), `config` (what to create, and why creation failed), `ledger`
//! (where each UMEM frame is), `link` (the [`Link`](crate::link::Link) over all of these).
//!
//! # Frame ownership
//! The link owns a UMEM of `frame_count` frames, and every frame is in exactly one place
//! ([`FrameAccounting`]): on the free list, lent to the kernel for receiving (fill ring →
//! RX ring), held by a receive callback, staged by `transmit`, or lent to the kernel for
//! sending (TX ring → completion ring). A fixed share of the frames
//! ([`XskConfig::fill_target`]) is kept lent for receiving; received frames go straight
//! back to the fill ring after their callback, and TX frames come back to the free list
//! through the completion ring.
//!
//! # Ring order per poll
//! 1. `receive`: top up the fill ring (UMEM FQ), read up to `batch` descriptors from the RX
//!    ring per step, call back on each frame in place, return the step's frames to the fill
//!    ring.
//! 2. `transmit`: take a free frame (reaping the completion ring, UMEM CQ, if none is free),
//!    let the caller write it, stage its descriptor; a full stage of `batch` goes to the TX
//!    ring without a kick.
//! 3. `flush`: reap completions, submit the stage to the TX ring, kick (`sendto`) if the
//!    kernel asks for it. One kick per flush; in copy mode the kernel sends at most 32 frames
//!    per kick and answers `EAGAIN`, and the kick repeats (bounded) until the ring is taken.
//!
//! No step allocates: the descriptor arrays are sized `batch` at creation.
//!
//! # Namespaces
//! [`XskLink::new`] resolves the interface in the calling thread's network namespace, and
//! the socket stays bound there whatever thread uses it later.

pub mod busy_poll;
mod config;
mod if_xdp;
mod ledger;
mod link;
mod mmap;
mod redirect;
mod ring;
mod socket;
mod syscall;
mod umem;

pub use config::{BindMode, XskConfig, XskError};
pub use ledger::FrameAccounting;
pub use link::{XskLink, XskStats};
