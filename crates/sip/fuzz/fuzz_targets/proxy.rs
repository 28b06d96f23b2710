//! cargo-fuzz target `proxy`: see `hotline_sip_fuzz::proxy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_sip_fuzz::proxy(data));
