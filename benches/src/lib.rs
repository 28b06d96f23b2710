//! Hotline's performance tooling (publish = false).
//!
//! Owns: the micro-benchmarks' fixtures and allocation counter, and the `hotline-load` load
//! generator (UAC and UAS roles over UDP and TCP, open-loop pacing, latency histograms).
//!
//! Must not: be depended on by any shipped crate, or send a packet anywhere but loopback
//! (`hotline-load` refuses targets outside 127.0.0.0/8 and ::1).
//!
//! # Layout
//! - [`alloc_count`]: counting `#[global_allocator]` for allocations-per-message figures (the
//!   only unsafe code of the package; see benches/Cargo.toml).
//! - [`fixtures`]: carrier-style INVITE / 200 OK, a generated 100,000-number config.
//! - [`load`]: the load generator's engine; `src/bin/hotline-load.rs` is its CLI.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc_count;
pub mod fixtures;
pub mod load;
