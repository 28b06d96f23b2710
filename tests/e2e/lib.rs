//! Shared fixtures for Hotline's end-to-end tests (`tests/e2e/main.rs`, one module per feature).
//!
//! Owns: the helpers every e2e module repeats — the test numbers, starting SIPp targets,
//! reading CDRs back through `hotline-cdr`'s reader, and assertion helpers that print SIPp's
//! summary when a run fails. The process/SIPp machinery itself lives in `hotline-testkit`.
//!
//! Must not: know Hotline internals beyond its CLI, config file and CDR files; wait without a
//! deadline; bind anything but 127.0.0.1.
//!
//! # Layout
//! - constants: [`NUMBER`], [`UNKNOWN_NUMBER`], [`CALLER`].
//! - [`cdr_calls`], [`wait_cdr_calls`]: CDR call records of a directory.
//! - [`assert_all_ok`]: SIPp result assertion with a readable failure message.
//! - [`elapsed_ms`]: time between two logged SIPp messages.
//! - [`assert_at_rest`]: a quiet process is idle (CPU, threads, fds, RSS).
//! - [`wait_metric`]: wait (bounded) until a `/metrics` sample reaches a value.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::{Duration, Instant};

pub use hotline_cdr::CallRecord;
pub use hotline_testkit::{
    Direction, Hotline, HotlineConfig, RawRequest, SipMessage, SipUdpClient, Sipp, SippProcess,
    SippResult, Transport,
};

/// The 400 number most tests route.
pub const NUMBER: &str = "4008001234";
/// A well-formed 400 number that is not configured.
pub const UNKNOWN_NUMBER: &str = "4009998888";
/// The calling number the SIPp callers present.
pub const CALLER: &str = "13800138000";

/// Every call record currently readable in `dir` (empty on a read error, which is printed).
pub fn cdr_calls(dir: &Path) -> Vec<CallRecord> {
    let mut out = Vec::new();
    if let Err(e) = hotline_cdr::reader::scan_calls(dir, |c| out.push(c.clone())) {
        eprintln!("reading CDRs in {}: {e}", dir.display());
    }
    out
}

/// Polls Hotline's `/metrics` (the config needs `with_admin`) until `sample` (e.g.
/// `hotline_calls_talking`) is at least `at_least`, or `timeout` passes; whether it got there.
/// For a test that must wait for a state (calls answered ...) instead of sleeping a guess.
pub fn wait_metric(hotline: &Hotline, sample: &str, at_least: f64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let v = hotline
            .metrics()
            .ok()
            .and_then(|m| hotline_testkit::metric_value(&m, sample));
        if v.is_some_and(|v| v >= at_least) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `dir` until it holds at least `n` call records or `timeout` passes; returns them.
pub fn wait_cdr_calls(dir: &Path, n: usize, timeout: Duration) -> Vec<CallRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let calls = cdr_calls(dir);
        if calls.len() >= n || Instant::now() >= deadline {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts SIPp exited 0 with exactly `n` successful calls and none failed.
#[track_caller]
pub fn assert_all_ok(result: &SippResult, n: u64, what: &str) {
    assert!(
        result.all_ok(n),
        "{what}: expected {n} successful calls\n{}",
        result.summary()
    );
}

/// Milliseconds between two instants of SIPp's message log.
pub fn elapsed_ms(from: f64, to: f64) -> i64 {
    ((to - from) * 1000.0).round() as i64
}

/// Starts a SIPp target, panicking with the error (targets are test fixtures).
#[track_caller]
pub fn start(sipp: Sipp) -> SippProcess {
    // The `hotline` binary is found (or built, once per process) before a SIPp peer starts its
    // timeout: a build inside the test's first `Hotline::spawn` could outlast it.
    if let Err(e) = hotline_testkit::paths::hotline_bin() {
        panic!("{e}");
    }
    sipp.spawn().expect("starting SIPp failed")
}

/// Runs SIPp to completion, panicking on a harness error (not on failed calls).
#[track_caller]
pub fn run(sipp: Sipp) -> SippResult {
    sipp.run().expect("running SIPp failed")
}

/// Waits for a started SIPp to finish, panicking on a harness error.
#[track_caller]
pub fn finish(p: SippProcess) -> SippResult {
    p.wait().expect("waiting for SIPp failed")
}

/// Stops a started SIPp now (SIGUSR1) and collects its result.
#[track_caller]
pub fn stop(p: SippProcess) -> SippResult {
    p.stop().expect("stopping SIPp failed")
}

/// Idle means: < 2 % of one core, and nothing held grows.
pub fn assert_at_rest(
    a: &hotline_testkit::proc::Usage,
    b: &hotline_testkit::proc::Usage,
    what: &str,
) {
    let cpu = b.cpu_since(a);
    eprintln!(
        "{what}: at rest over {:?}: CPU {:.2} % of a core, threads {} -> {}, fds {} -> {}, RSS {} -> {} KiB",
        b.at - a.at,
        cpu * 100.0,
        a.threads,
        b.threads,
        a.fds,
        b.fds,
        a.rss_kib,
        b.rss_kib
    );
    assert!(
        cpu < 0.02,
        "{what}: {:.1} % of a core while idle ({} ticks in {:?})",
        cpu * 100.0,
        b.cpu_ticks - a.cpu_ticks,
        b.at - a.at
    );
    assert!(
        b.threads <= a.threads,
        "{what}: threads grew {} -> {}",
        a.threads,
        b.threads
    );
    assert!(b.fds <= a.fds, "{what}: fds grew {} -> {}", a.fds, b.fds);
    assert!(
        b.rss_kib <= a.rss_kib + 256,
        "{what}: RSS grew {} -> {} KiB",
        a.rss_kib,
        b.rss_kib
    );
}
