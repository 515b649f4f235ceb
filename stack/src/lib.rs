//! xtcp: a kernel-bypass TCP stack.
//!
//! Layers, bottom up:
//! - [`wire`]: zero-copy packet views and validated representations (Ethernet, ARP, IPv4,
//!   TCP). Knows nothing of connections.
//! - [`tcp`]: the sans-I/O TCP core. Reads no clock and does no I/O: every entry point takes
//!   `now` ([`time::Instant`]).
//! - [`link`]: the batched, zero-copy frame I/O trait with an in-memory implementation.
//! - [`stack`]: the per-core stack: flow table, listeners, SYN queue and cookies, TIME-WAIT
//!   table, timer wheel and counters over one link. Still sans-I/O.
//! - `engine` (feature `afxdp`): the AF_XDP datapath: XDP steering, one pinned polling
//!   thread per queue, and the per-core application API.
//! - [`sim`]: a deterministic network simulator (virtual clock, seeded faults) for tests and
//!   benches.
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "afxdp")]
pub mod afxdp;
#[cfg(feature = "afxdp")]
pub mod engine;
pub mod link;
pub mod sim;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod wire;

pub use stack::{ConnHandle, ListenerId, Stack, StackConfig, StackError};
