#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xtcp_fuzz::wire::icmpv4(data));
