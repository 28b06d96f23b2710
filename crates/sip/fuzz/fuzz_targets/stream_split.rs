//! cargo-fuzz target `stream_split`: see `hotline_sip_fuzz::stream_split`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_sip_fuzz::stream_split(data));
