//! The xtcp (AF_XDP) backend's plug.
//!
//! The datapath does not exist in this build yet. To plug it in, implement
//! [`super::Backend`] and [`super::Worker`] over the xtcp stack and return the backend from
//! [`backend`]; nothing else in the load generator changes. The xtcp backend must also
//! implement `syn-flood` (the kernel backend cannot spoof sources) and should return
//! `true` from `time_wait_from_gauges`, setting `Counter::TimeWait` from its own table.

use super::Backend;

/// The message users see until the xtcp backend is plugged in.
pub const NOT_AVAILABLE: &str =
    "xtcp backend not available in this build yet (use --backend kernel)";

/// Builds the xtcp backend.
pub fn backend() -> Result<Box<dyn Backend>, String> {
    Err(NOT_AVAILABLE.to_string())
}
