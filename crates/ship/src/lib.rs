//! Hotline CDR shipping: every call and attempt record, as the writer puts it into the local CDR
//! files, streamed to NATS JetStream, and read back from there for platform-wide reports.
//!
//! Owns: the shipper thread (reads the sealed and current CDR files from a saved position,
//! publishes to `<prefix>.<400 number>` in a sliding window of acks, saves the checkpoint over
//! the acknowledged prefix), the checkpoint
//! file, the message format (subject, `Nats-Msg-Id`, JSON payload), the stream's creation, and
//! reading the stream back (`hotline cdr report|tail --source`, `hotline bill --source`).
//!
//! Must not: know SIP or routing; touch the call path or the writer's channel (it only reads the
//! files; when NATS is slow or down, records wait in the files); drop a record (one that cannot
//! be published is logged, counted and retried); change the files (the writer owns them: the
//! local files are the source of truth, the stream a copy that may lag).
//!
//! Guarantees (docs/cdr.md): at least once into the stream, exactly once after JetStream's
//! dedupe by `Nats-Msg-Id` (a stable record id) within its duplicate window.
//!
//! # Layout
//! - [`cursor`]: a position in one kind's files and the reader that moves it over complete records.
//! - [`checkpoint`]: the saved positions, replaced atomically and fsynced as acks come in.
//! - [`message`]: subject, record id (`Nats-Msg-Id`) and payload of one record.
//! - [`shipper`]: [`spawn`], [`ShipConfig`], [`ShipHandle`], [`ShipStats`]: the shipping loop.
//! - [`source`]: reading the stream back ([`source::scan`], [`source::tail`]).
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cursor;
pub mod message;
pub mod shipper;
pub mod source;

pub use shipper::{
    spawn, ShipConfig, ShipHandle, ShipSnapshot, ShipStats, StreamSettings, DEFAULT_CHECKPOINT,
};

/// Errors of the shipping crate.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS: {0}")]
    Nats(String),
    #[error("{0}")]
    Config(String),
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `/etc/hostname`), sanitised to
/// `[A-Za-z0-9_.-]`; `node` when neither can be read. The default node name.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "node".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_a_usable_token() {
        let h = super::hostname();
        assert!(!h.is_empty());
        assert!(h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
    }
}
