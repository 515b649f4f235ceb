//! xtcp-loadgen: measures TCP handshake rate, teardown rate and TIME-WAIT table pressure,
//! against an xtcp server or the Linux kernel, with a kernel-socket or an xtcp client.
//!
//! Layout: [`cli`] parses, [`run`] orchestrates a measurement (workers from a
//! [`backend::Backend`], pacing from [`pace`], counting in [`metrics`], outside counters from
//! [`probe`]; the xtcp backend's interface facts from `xtcp::engine::sys`), [`report`] and [`plot`] present it; [`server`] is the Linux reference server; [`stat`]
//! is the `xtcp-stat` live counter viewer.

pub mod backend;
pub mod cli;
pub mod cpustat;
pub mod metrics;
pub mod pace;
pub mod plot;
pub mod probe;
pub mod reflector;
pub mod report;
pub mod run;
pub mod server;
pub mod stat;
pub mod sys;
pub mod util;
