//! Hotline call detail records: the record schema, pure encoders (CSV / JSON Lines), the writer
//! thread (bounded channel -> batched writes -> group fsync -> rotation -> sealing), start-up
//! recovery, and the reader behind `hotline cdr query|report` and `hotline bill`.
//!
//! Owns: everything under the CDR directory (data files, `MANIFEST`), the record schema
//! (docs/cdr.md) and the billing arithmetic. Must not: know SIP or routing (the server maps its
//! events to [`CallRecord`] / [`AttemptRecord`]), block the call path ([`CdrSink::submit`] never
//! blocks), drop a record silently, or use floating point for money (integer fen, 分).
//!
//! # Layout
//! - [`record`]: `CallRecord`, `AttemptRecord`, `Record`, enums, id helpers.
//! - `civil`: days since 1970 <-> (year, month, day), shared with the binary's build script.
//! - [`time`]: fast fixed-format UTC timestamps (`2026-11-24T10:00:00.123+00:00`).
//! - [`encode`]: record -> bytes (CSV with BOM + header, JSON Lines).
//! - [`decode`]: bytes -> records (CSV by header name, JSON Lines), torn-tail aware.
//! - [`files`]: file names, rotation periods, `MANIFEST`, sealing, recovery, verification.
//! - [`writer`]: `spawn`, `CdrSink`, `WriterHandle`, `WriterStats`.
//! - [`reader`]: scan a directory (sealed + open files) with a callback; torn-tail safe.
//! - [`query`]: filters and rendering for `hotline cdr query` (table / CSV / JSON).
//! - [`report`]: figures for `hotline cdr report` (ASR, ACD, by hour/day/region/number/target, callers).
//! - [`html`]: the HTML report page with inline SVG charts (no JavaScript).
//! - [`billing`]: rate plans and accounts (compiled from TOML by `hotline_config::billing`), the
//!   money parser, usage per started minute, monthly bills in fen, prepaid helpers.
//! - [`synth`]: deterministic synthetic traffic for tests and benchmarks.
#![forbid(unsafe_code)]

pub mod billing;
mod civil;
pub mod decode;
pub mod encode;
pub mod files;
pub mod html;
pub mod query;
pub mod reader;
pub mod record;
pub mod report;
pub mod synth;
pub mod time;
pub mod writer;

pub use encode::Format;
pub use files::Rotate;
pub use record::{
    attempt_record_id, AttemptReason, AttemptRecord, CallRecord, Disposition, HangupSide, Kind,
    Record, RecordIds, SCHEMA_VERSION,
};
pub use writer::{spawn, CdrSink, PauseGuard, WriterConfig, WriterHandle, WriterStats};

/// Errors of the CDR crate.
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
