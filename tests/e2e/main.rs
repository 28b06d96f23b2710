//! Hotline end-to-end tests: the real `hotline` binary on loopback, SIPp as caller and targets.
//!
//! One module per feature. `scenarios` checks the SIPp scenario files against each other (no
//! Hotline involved), so a failure there is a harness problem, not a Hotline one.
//!
//! Run: `cargo test -p hotline-e2e` (needs `sipp`; `bash tests/run.sh` installs it).

mod api;
mod calls;
mod cdr;
mod cluster;
mod config_template;
mod console;
mod crash;
mod exec_support;
mod execution;
mod execution_plans;
mod hardening;
mod hunt;
mod idle;
mod limits;
mod ops;
mod reload;
mod requests;
mod scenarios;
mod ship;
