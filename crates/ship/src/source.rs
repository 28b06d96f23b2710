//! Reading records back from the stream: the whole platform's CDRs for `hotline cdr report
//! --source`, `hotline bill --source` and `hotline cdr tail`.
//!
//! An ordered consumer (ephemeral, no acks, flow-controlled by the client) reads the stream in
//! sequence order, filtered to `<prefix>.>` or one number's subject. A scan ends at the message
//! that was last when it started, so a report over a stream that keeps growing still ends.
//! Records are counted once per `Nats-Msg-Id` even if the stream holds one twice (possible only
//! for a re-publish later than JetStream's duplicate window, docs/cdr.md), so a report from the
//! stream counts what the files hold.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use hotline_cdr::reader::RecordRef;
use hotline_cdr::{AttemptRecord, CallRecord, Kind};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::message;
use crate::ShipError;

/// Where to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    /// `nats://host:port` (several separated by commas).
    pub url: String,
    /// Stream name.
    pub stream: String,
    /// Subject filter, e.g. `cdr.>` or `cdr.4008001234`.
    pub subject: String,
    /// Longest wait for the server (connect, each answer).
    pub timeout: Duration,
}

impl SourceOptions {
    pub fn new(url: &str, stream: &str, subject: &str) -> SourceOptions {
        SourceOptions {
            url: url.to_string(),
            stream: stream.to_string(),
            subject: subject.to_string(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What a read went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Messages read from the stream.
    pub messages: u64,
    /// Records handed to the callback.
    pub records: u64,
    /// Messages skipped because their `Nats-Msg-Id` was seen before.
    pub duplicates: u64,
    /// Payloads that did not decode (skipped).
    pub bad: u64,
}

/// A record from the stream with what the message says about it.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// The node that shipped it: the first field of its `Nats-Msg-Id` (`Hotline-Node` on
    /// messages of shippers that still sent that header); empty if neither is there.
    pub node: &'a str,
    /// Stream sequence.
    pub sequence: u64,
    /// When JetStream stored it.
    pub stored: Timestamp,
}

fn nats<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> ShipError + '_ {
    move |e| ShipError::Nats(format!("{what}: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, ShipError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ShipError::Nats(format!("cannot start a runtime: {e}")))
}

/// Every record of the stream (matching the filter) up to the last message at the start, in
/// stream order, each `Nats-Msg-Id` once. Blocking.
pub fn scan(
    opts: &SourceOptions,
    mut f: impl FnMut(RecordRef<'_>, &Meta<'_>),
) -> Result<SourceStats, ShipError> {
    runtime()?.block_on(read(opts, Mode::Scan, &mut f))
}

/// Print-as-you-go reading for `hotline cdr tail`: the last `last` messages of the stream (0:
/// none), then, with `follow`, every new one until the process is stopped. Blocking.
pub fn tail(
    opts: &SourceOptions,
    last: u64,
    follow: bool,
    mut f: impl FnMut(RecordRef<'_>, &Meta<'_>),
) -> Result<SourceStats, ShipError> {
    runtime()?.block_on(read(opts, Mode::Tail { last, follow }, &mut f))
}

#[derive(Clone, Copy)]
enum Mode {
    Scan,
    Tail { last: u64, follow: bool },
}

async fn read(
    opts: &SourceOptions,
    mode: Mode,
    f: &mut dyn FnMut(RecordRef<'_>, &Meta<'_>),
) -> Result<SourceStats, ShipError> {
    let mut stats = SourceStats::default();
    let addrs: Vec<async_nats::ServerAddr> = opts
        .url
        .split(',')
        .map(|u| {
            u.trim()
                .parse()
                .map_err(|e| ShipError::Config(format!("{u:?} is not a NATS url: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(opts.timeout)
        .connect(addrs)
        .await
        .map_err(nats(&opts.url))?;
    let mut js = jetstream::new(client);
    js.set_timeout(opts.timeout);
    let mut stream = js
        .get_stream(&opts.stream)
        .await
        .map_err(nats(&format!("stream {}", opts.stream)))?;
    let info = stream
        .info()
        .await
        .map_err(nats(&format!("stream {}", opts.stream)))?
        .clone();
    let last_seq = info.state.last_sequence;
    let (deliver, follow) = match mode {
        Mode::Scan => (consumer::DeliverPolicy::All, false),
        Mode::Tail { last: 0, follow } => (consumer::DeliverPolicy::New, follow),
        Mode::Tail { last, follow } => (
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: last_seq.saturating_sub(last - 1).max(1),
            },
            follow,
        ),
    };
    if !follow && (info.state.messages == 0 || matches!(mode, Mode::Tail { last: 0, .. })) {
        return Ok(stats);
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: opts.subject.clone(),
            deliver_policy: deliver,
            ..Default::default()
        })
        .await
        .map_err(nats("create a consumer"))?;
    if !follow && consumer.cached_info().num_pending == 0 {
        return Ok(stats);
    }
    let mut messages = consumer.messages().await.map_err(nats("read"))?;
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut call = CallRecord::empty(Timestamp::UNIX_EPOCH);
    let mut attempt = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
    loop {
        let next = if follow {
            messages.next().await
        } else {
            match tokio::time::timeout(opts.timeout, messages.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(ShipError::Nats(format!(
                        "no message from the stream for {:?} (read {} of it)",
                        opts.timeout, stats.messages
                    )))
                }
            }
        };
        let Some(msg) = next else {
            return Ok(stats);
        };
        let msg = msg.map_err(nats("read"))?;
        stats.messages += 1;
        let (sequence, pending, stored) = match msg.info() {
            Ok(i) => (
                i.stream_sequence,
                i.pending,
                Timestamp::from_nanosecond(i.published.unix_timestamp_nanos())
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            ),
            Err(e) => return Err(ShipError::Nats(format!("message metadata: {e}"))),
        };
        let headers = msg.headers.as_ref();
        let header = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        // By the standard header's constant: a lookup by the string "Nats-Msg-Id" makes a custom
        // header name that never equals the standard one the client parses it into.
        let msg_id = headers
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        let fresh = match &msg_id {
            Some(id) => {
                let d = Sha256::digest(id.as_bytes());
                let mut k = [0u8; 16];
                k.copy_from_slice(&d[..16]);
                seen.insert(k)
            }
            None => true,
        };
        if !fresh {
            stats.duplicates += 1;
        } else {
            let node = header("Hotline-Node")
                .or_else(|| {
                    msg_id
                        .as_deref()
                        .map(|id| message::node_of_id(id).to_string())
                })
                .unwrap_or_default();
            let meta = Meta {
                node: &node,
                sequence,
                stored,
            };
            match hotline_cdr::decode::from_json_line(
                &msg.payload,
                Kind::Call,
                &mut call,
                &mut attempt,
            ) {
                Ok(hotline_cdr::decode::JsonLine::Call) => {
                    stats.records += 1;
                    f(RecordRef::Call(&call), &meta);
                }
                Ok(hotline_cdr::decode::JsonLine::Attempt) => {
                    stats.records += 1;
                    f(RecordRef::Attempt(&attempt), &meta);
                }
                Err(e) => {
                    stats.bad += 1;
                    if stats.bad <= 5 {
                        tracing::warn!(sequence, error = %e, "cdr source: undecodable message skipped");
                    }
                }
            }
        }
        if !follow && (pending == 0 || sequence >= last_seq) {
            return Ok(stats);
        }
    }
}
