//! `Stack::receive` against a listener and established connections: see `xtcp_fuzz::Harness`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = xtcp_fuzz::Harness::new();
    h.run(data);
});
