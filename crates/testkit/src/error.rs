//! The testkit's one error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while driving Hotline or SIPp from a test.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// An I/O operation failed; `what` says which.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The `hotline` binary could not be found or built.
    #[error("hotline binary not available: {0}")]
    NoBinary(String),
    /// The `sipp` binary is not installed.
    #[error("sipp not found on PATH (install sip-tester; tests/run.sh does): {0}")]
    NoSipp(String),
    /// Hotline did not print its `listening sip=` line in time, or exited first.
    #[error("hotline did not become ready within {timeout:?}: {reason}; stderr log: {log}")]
    NotReady {
        timeout: Duration,
        reason: String,
        log: PathBuf,
    },
    /// A child process did not finish in time (it has been killed).
    #[error("{what} did not finish within {timeout:?} (killed)")]
    Timeout { what: String, timeout: Duration },
    /// SIPp exited before it was ready to take calls.
    #[error("sipp exited during start-up (code {code:?}): {detail}")]
    SippStart { code: Option<i32>, detail: String },
    /// No free port could be found.
    #[error("no free loopback port after {0} attempts")]
    NoPort(u32),
    /// A SIP message could not be parsed.
    #[error("unparsable SIP message: {0}")]
    BadMessage(String),
}

impl TestkitError {
    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for the testkit.
pub type Result<T> = std::result::Result<T, TestkitError>;
