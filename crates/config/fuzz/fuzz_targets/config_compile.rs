//! cargo-fuzz target `config_compile`: see `hotline_config_fuzz::config_compile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotline_config_fuzz::config_compile(data));
