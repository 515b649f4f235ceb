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
//! - `rt` (feature `rt`, default): async on the engine's cores: a per-core executor,
//!   `TcpListener` / `TcpStream` with tokio's `AsyncRead` + `AsyncWrite`.
//! - `capture` (feature `pcap`, on with `afxdp`): pcap files of what a link receives and
//!   sends, as a link wrapper.
//! - [`trace`]: tracing of control-path events (feature `trace`, on by default).
//! - [`sim`]: a deterministic network simulator (virtual clock, seeded faults) for tests and
//!   benches.
//!
//! # Example (the same as in the README)
//!
//! ```
//! use std::net::SocketAddrV4;
//! use xtcp::link::memory::MemoryLink;
//! use xtcp::stack::{Stack, StackConfig};
//! use xtcp::tcp::Event;
//! use xtcp::time::Instant;
//!
//! let mut stack = Stack::new(StackConfig::default(), Instant::ZERO);
//! let listener = stack.listen(SocketAddrV4::new([10, 0, 0, 1].into(), 7)).unwrap();
//! let mut link = MemoryLink::default();
//! let now = Instant::ZERO;                // from the driver's clock
//! stack.poll(now, &mut link);             // receive, run timers, transmit
//! while let Some(h) = stack.accept(listener) { let _ = h; }
//! while let Some((h, event)) = stack.poll_event() {
//!     if event == Event::Readable {
//!         let n = stack.recv_slice(h).unwrap().len();   // borrowed, zero-copy
//!         stack.consume(h, n).unwrap();
//!     }
//! }
//! ```
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "afxdp")]
pub mod afxdp;
#[cfg(feature = "pcap")]
pub mod capture;
#[cfg(feature = "afxdp")]
pub mod engine;
pub mod link;
pub mod mem;
#[cfg(feature = "rt")]
pub mod rt;
pub mod sim;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod trace;
pub mod wire;

pub use stack::{ConnHandle, ListenerId, Stack, StackConfig, StackError};
