//! Tracing of control-path events (feature `trace`, on by default): state transitions,
//! drops with their reason (malformed: checksum / truncated / malformed; no listener; SYN
//! queue full; PAWS; out of window; RFC 5961 challenge ACKs), retransmission timeouts, a
//! listener's SYN-cookie mode turning on and off.
//!
//! The call sites use these macros, never `tracing` directly:
//! - [`debug!`](crate::trace::debug): control-path events, at most a few per connection
//!   (or per dropped segment). Built only with feature `trace`; without it they expand to
//!   nothing, so the sans-I/O core builds without the `tracing` crate. With it and no
//!   subscriber (or a filter that rejects them), each costs one load of `tracing`'s global
//!   max level and a predictable branch.
//! - [`segment!`](crate::trace::segment): per-segment events on the fast path, at `trace`
//!   level. Compiled in only with feature `trace-packets`, so a normal build, `trace` or not,
//!   has no call site at all on the per-packet path.
//!
//! Targets are module paths (`xtcp::stack`, `xtcp::tcp::connection`), so
//! `RUST_LOG=xtcp=debug` selects all of them; the examples install a `tracing-subscriber`
//! with an `EnvFilter` from `RUST_LOG` (see `docs/observability.md`).

#[cfg(feature = "trace")]
macro_rules! debug {
    ($($t:tt)*) => { ::tracing::debug!($($t)*) };
}
#[cfg(not(feature = "trace"))]
macro_rules! debug {
    ($($t:tt)*) => {};
}

#[cfg(feature = "trace-packets")]
macro_rules! segment {
    ($($t:tt)*) => { ::tracing::trace!($($t)*) };
}
#[cfg(not(feature = "trace-packets"))]
macro_rules! segment {
    ($($t:tt)*) => {};
}

pub(crate) use {debug, segment};
