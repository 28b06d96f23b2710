//! cargo-fuzz target `frame_parse`: see `hotline_sip_fuzz::frame_parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_sip_fuzz::frame_parse(data));
