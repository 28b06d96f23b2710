//! cargo-fuzz target `rewrite`: see `hotline_sip_fuzz::rewrite`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_sip_fuzz::rewrite(data));
