//! The shipper: its own thread and single-threaded runtime, off the call path. It never touches
//! the writer's channel: it reads what the writer has put in the files.
//!
//! One loop, per kind (calls, attempts) a *lane* with two cursors over the same files:
//! * the **ship cursor** reads records from the checkpoint on into a pending batch (at most
//!   `batch` records); the batch is published with one `Nats-Msg-Id` per record, every ack is
//!   awaited (all at once), and the checkpoint moves to the last record acknowledged without a
//!   gap, then is saved (fsynced). A record that fails (NATS down, a subject no stream takes,
//!   a refused message) stays at the head of its lane and is published again after a backoff
//!   (100 ms doubling to `retry_max`); it is logged with its id and counted, never dropped.
//! * the **scan cursor** only counts complete records, so the lag is known even while the
//!   batch waits: `lag_records` = records in the files not yet acknowledged.
//!
//! Before publishing records read from an `.open` file the shipper `fdatasync`s it, so the
//! stream never holds a record a power cut could take from the file.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use hotline_cdr::reader::RecordRef;
use hotline_cdr::Kind;
use jiff::Timestamp;

use crate::checkpoint::{self, Checkpoint};
use crate::cursor::{Cursor, Next, Position};
use crate::message;
use crate::ShipError;

/// The stream the shipper creates when it is missing (an existing stream is used as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// Stream name (default `CDR`).
    pub name: String,
    /// Replicas (1 on a single NATS server; 3 on a cluster).
    pub replicas: usize,
    /// Retention by age; zero keeps records until `max_bytes`.
    pub max_age: Duration,
    /// Retention by size in bytes; 0 = unlimited.
    pub max_bytes: i64,
    /// JetStream's dedupe window for `Nats-Msg-Id` (default 2 min).
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: "CDR".into(),
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: 0,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Shipper settings (from `[server.cdr.ship]`, docs/config.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipConfig {
    /// The CDR directory the writer writes.
    pub dir: PathBuf,
    /// NATS servers, `nats://host:port`.
    pub urls: Vec<String>,
    /// This node's name in record ids and the `Hotline-Node` header.
    pub node: String,
    /// Subjects are `<subject_prefix>.<400 number>`.
    pub subject_prefix: String,
    pub stream: StreamSettings,
    /// Records per publish batch and lane.
    pub batch: usize,
    /// How often the files are checked for new records when idle.
    pub poll_interval: Duration,
    /// How long an ack (or a JetStream API answer) may take.
    pub ack_timeout: Duration,
    /// Longest wait between two tries of a failing batch.
    pub retry_max: Duration,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
}

impl ShipConfig {
    /// Defaults for everything but the directory, servers and node.
    pub fn new(dir: impl Into<PathBuf>, urls: Vec<String>, node: &str) -> ShipConfig {
        let dir = dir.into();
        ShipConfig {
            checkpoint: dir.join(DEFAULT_CHECKPOINT),
            dir,
            urls,
            node: node.to_string(),
            subject_prefix: "cdr".into(),
            stream: StreamSettings::default(),
            batch: 1000,
            poll_interval: Duration::from_millis(200),
            ack_timeout: Duration::from_secs(5),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Name of the checkpoint file in the CDR directory unless configured.
pub const DEFAULT_CHECKPOINT: &str = "SHIP_CHECKPOINT";

/// Live counters (read by `/metrics`).
#[derive(Debug, Default)]
pub struct ShipStats {
    lag_records: AtomicU64,
    lag_ms: AtomicU64,
    published: AtomicU64,
    duplicates: AtomicU64,
    publish_errors: AtomicU64,
    undecodable: AtomicU64,
    batches: AtomicU64,
    checkpoint_errors: AtomicU64,
    read_errors: AtomicU64,
    connected: AtomicBool,
    stream_ready: AtomicBool,
    failing: AtomicBool,
}

/// A copy of [`ShipStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShipSnapshot {
    /// Records in the CDR files not yet acknowledged by JetStream.
    pub lag_records: u64,
    /// Age of the oldest of them (by its `end`), 0 when there are none.
    pub lag: Duration,
    /// Records stored by JetStream (new).
    pub published: u64,
    /// Records JetStream acknowledged as duplicates (a re-publish after a crash or a retry).
    pub duplicates: u64,
    /// Failed publishes (each is retried).
    pub publish_errors: u64,
    /// Lines in the files that did not decode (skipped, logged).
    pub undecodable: u64,
    pub batches: u64,
    pub checkpoint_errors: u64,
    pub read_errors: u64,
    pub connected: bool,
    pub stream_ready: bool,
    /// A record is failing to publish right now (retried).
    pub failing: bool,
}

impl ShipStats {
    pub fn snapshot(&self) -> ShipSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShipSnapshot {
            lag_records: l(&self.lag_records),
            lag: Duration::from_millis(l(&self.lag_ms)),
            published: l(&self.published),
            duplicates: l(&self.duplicates),
            publish_errors: l(&self.publish_errors),
            undecodable: l(&self.undecodable),
            batches: l(&self.batches),
            checkpoint_errors: l(&self.checkpoint_errors),
            read_errors: l(&self.read_errors),
            connected: self.connected.load(Ordering::Relaxed),
            stream_ready: self.stream_ready.load(Ordering::Relaxed),
            failing: self.failing.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Stop {
    requested: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    notify: tokio::sync::Notify,
}

/// The running shipper.
pub struct ShipHandle {
    stats: Arc<ShipStats>,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ShipHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipHandle")
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}

impl ShipHandle {
    pub fn stats(&self) -> Arc<ShipStats> {
        Arc::clone(&self.stats)
    }

    /// Stop: keep shipping for at most `grace` while records are left (the writer has sealed its
    /// files by then), save the checkpoint, join the thread. What is left is shipped at the
    /// next start.
    pub fn shutdown(mut self, grace: Duration) -> ShipSnapshot {
        self.stop_now(grace);
        self.stats.snapshot()
    }

    fn stop_now(&mut self, grace: Duration) {
        if let Ok(mut d) = self.stop.deadline.lock() {
            *d = Some(Instant::now() + grace);
        }
        self.stop.requested.store(true, Ordering::SeqCst);
        self.stop.notify.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("cdr ship: shipper thread panicked");
            }
        }
    }
}

impl Drop for ShipHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_now(Duration::ZERO);
        }
    }
}

/// Load the checkpoint and start the shipper thread. Errors: the checkpoint cannot be read
/// (a corrupt checkpoint is not replaced by "ship everything again": fix or remove it).
pub fn spawn(cfg: ShipConfig) -> Result<ShipHandle, ShipError> {
    let cp = checkpoint::load(&cfg.checkpoint).map_err(|source| ShipError::Io {
        path: cfg.checkpoint.clone(),
        source,
    })?;
    if cfg.urls.is_empty() {
        return Err(ShipError::Config("no NATS server url".into()));
    }
    let cp = match cp {
        Some(cp) => {
            if !cp.node.is_empty() && cp.node != cfg.node {
                tracing::warn!(
                    was = %cp.node, now = %cfg.node,
                    "cdr ship: node name changed: records re-published from this checkpoint get new ids"
                );
            }
            if let Some(age) = saved_age(&cp.saved_at) {
                if age > cfg.stream.duplicate_window {
                    tracing::warn!(
                        age_s = age.as_secs(),
                        window_s = cfg.stream.duplicate_window.as_secs(),
                        "cdr ship: checkpoint older than the JetStream duplicate window: records published after it but not acknowledged (one batch at most) may be stored twice"
                    );
                }
            }
            cp
        }
        None => Checkpoint::default(),
    };
    let stats = Arc::new(ShipStats::default());
    let stop = Arc::new(Stop::default());
    let (st, sp) = (Arc::clone(&stats), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("cdr-ship".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cdr ship: cannot start the runtime; not shipping");
                    return;
                }
            };
            rt.block_on(run(cfg, cp, st, sp));
        })
        .map_err(|source| ShipError::Io {
            path: PathBuf::from("cdr-ship thread"),
            source,
        })?;
    Ok(ShipHandle {
        stats,
        stop,
        thread: Some(thread),
    })
}

fn saved_age(saved_at: &str) -> Option<Duration> {
    let t: Timestamp = saved_at.parse().ok()?;
    let ms = Timestamp::now().as_millisecond() - t.as_millisecond();
    u64::try_from(ms).ok().map(Duration::from_millis)
}

struct Msg {
    subject: String,
    id: String,
    kind: Kind,
    payload: Bytes,
    /// Position after this record.
    pos: Position,
    end: Timestamp,
}

struct Lane {
    kind: Kind,
    ship: Cursor,
    scan: Cursor,
    pending: VecDeque<Msg>,
    /// Records (and bad lines) the ship cursor passed / the scan cursor counted, since start.
    read: u64,
    scanned: u64,
    /// Where the checkpoint stands for this lane.
    acked: Position,
    buf: Vec<u8>,
}

impl Lane {
    fn new(cfg: &ShipConfig, kind: Kind, pos: Position) -> Lane {
        Lane {
            kind,
            ship: Cursor::new(&cfg.dir, kind, pos.clone(), true),
            scan: Cursor::new(&cfg.dir, kind, pos.clone(), false),
            pending: VecDeque::new(),
            read: 0,
            scanned: 0,
            acked: pos,
            buf: Vec::with_capacity(1024),
        }
    }

    fn lag(&self) -> u64 {
        self.scanned.saturating_sub(self.read) + self.pending.len() as u64
    }

    /// Count what the writer has added since the last call.
    fn scan(&mut self, stats: &ShipStats) {
        loop {
            match self.scan.advance() {
                Ok(Next::Record(_)) | Ok(Next::Bad(_)) => self.scanned += 1,
                Ok(Next::Pending) => return,
                Err(e) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(kind = self.kind.as_str(), error = %e, "cdr ship: cannot read the CDR files");
                    return;
                }
            }
        }
    }

    /// Read records into the pending batch up to `batch`.
    fn fill(&mut self, cfg: &ShipConfig, stats: &ShipStats) {
        while self.pending.len() < cfg.batch {
            let next = match self.ship.advance() {
                Ok(n) => n,
                Err(e) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(kind = self.kind.as_str(), error = %e, "cdr ship: cannot read the CDR files");
                    return;
                }
            };
            match next {
                Next::Record(Some(rec)) => {
                    self.read += 1;
                    let msg = make_msg(cfg, rec, &mut self.buf);
                    let pos = self.ship.position().clone();
                    self.pending.push_back(Msg { pos, ..msg });
                }
                Next::Record(None) => self.read += 1,
                Next::Bad(e) => {
                    self.read += 1;
                    let n = stats.undecodable.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::error!(kind = self.kind.as_str(), at = ?self.ship.position(), error = %e, undecodable_total = n, "cdr ship: undecodable CDR line skipped (it stays in the file)");
                    }
                    if self.pending.is_empty() {
                        self.acked = self.ship.position().clone();
                    }
                }
                Next::Pending => return,
            }
        }
    }
}

fn make_msg(cfg: &ShipConfig, rec: RecordRef<'_>, buf: &mut Vec<u8>) -> Msg {
    buf.clear();
    message::payload(buf, rec);
    let end = match rec {
        RecordRef::Call(c) => c.end,
        RecordRef::Attempt(a) => a.end,
    };
    Msg {
        subject: message::subject(&cfg.subject_prefix, message::number(rec)),
        id: message::record_id(&cfg.node, rec),
        kind: message::kind(rec),
        payload: Bytes::copy_from_slice(buf),
        pos: Position::default(),
        end,
    }
}

async fn sleep_or_stop(stop: &Stop, d: Duration) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = stop.notify.notified() => {}
    }
}

fn stream_config(cfg: &ShipConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.name.clone(),
        subjects: vec![format!("{}.>", cfg.subject_prefix)],
        max_age: cfg.stream.max_age,
        max_bytes: if cfg.stream.max_bytes > 0 {
            cfg.stream.max_bytes
        } else {
            -1
        },
        num_replicas: cfg.stream.replicas,
        duplicate_window: cfg.stream.duplicate_window,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Get the stream, creating it with the configured retention and replicas when missing.
async fn ensure_stream(js: &jetstream::Context, cfg: &ShipConfig) -> Result<(), String> {
    let mut s = js
        .get_or_create_stream(stream_config(cfg))
        .await
        .map_err(|e| e.to_string())?;
    let info = s.info().await.map_err(|e| e.to_string())?;
    let want = format!("{}.>", cfg.subject_prefix);
    let covers = info.config.subjects.iter().any(|x| *x == want || x == ">");
    if !covers {
        tracing::warn!(
            stream = %cfg.stream.name, subjects = ?info.config.subjects, want = %want,
            "cdr ship: the stream exists and does not take every CDR subject: records of other numbers are refused and retried until it does"
        );
    }
    tracing::info!(
        stream = %cfg.stream.name, messages = info.state.messages,
        replicas = info.config.num_replicas, "cdr ship: stream ready"
    );
    Ok(())
}

fn backoff(fails: u32, max: Duration) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << fails.min(16).saturating_sub(1));
    Duration::from_millis(ms).min(max)
}

async fn run(cfg: ShipConfig, cp: Checkpoint, stats: Arc<ShipStats>, stop: Arc<Stop>) {
    let mut lanes = [
        Lane::new(&cfg, Kind::Call, cp.call.clone()),
        Lane::new(&cfg, Kind::Attempt, cp.attempt.clone()),
    ];
    let urls: Vec<async_nats::ServerAddr> = cfg
        .urls
        .iter()
        .filter_map(|u| match u.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(url = %u, error = %e, "cdr ship: bad NATS url ignored");
                None
            }
        })
        .collect();
    let client = async_nats::ConnectOptions::new()
        .name(format!("hotline-ship {}", cfg.node))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(1000)))
        .event_callback(|e| async move {
            tracing::info!(event = %e, "cdr ship: NATS connection");
        })
        .connect(urls)
        .await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cdr ship: cannot set up the NATS client; not shipping");
            return;
        }
    };
    // Every record of both lanes' batches is in flight before the first ack is awaited: the
    // context's in-flight permits must cover them (its default, 5,000, would stall a batch
    // above 2,500 per lane for good).
    let js = jetstream::ContextBuilder::new()
        .timeout(cfg.ack_timeout)
        .max_ack_inflight(2 * cfg.batch.max(1) + 16)
        .build(client.clone());
    tracing::info!(
        node = %cfg.node, stream = %cfg.stream.name, servers = ?cfg.urls,
        call = ?cp.call, attempt = ?cp.attempt, "cdr ship: started"
    );
    let mut saved = (cp.call.clone(), cp.attempt.clone());
    let mut fails: u32 = 0;
    let mut stream_ready = false;
    loop {
        for lane in &mut lanes {
            lane.scan(&stats);
        }
        update_lag(&lanes, &stats);
        if stop.requested.load(Ordering::SeqCst) {
            let deadline = stop.deadline.lock().ok().and_then(|d| *d);
            let past = match deadline {
                Some(d) => Instant::now() >= d,
                None => true,
            };
            if past || lanes.iter().all(|l| l.lag() == 0) {
                break;
            }
        }
        // Read the next batch even while NATS is away: its oldest record is the lag's age.
        for lane in &mut lanes {
            lane.fill(&cfg, &stats);
        }
        update_lag(&lanes, &stats);
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        stats.connected.store(connected, Ordering::Relaxed);
        if !connected {
            stream_ready = false;
            sleep_or_stop(&stop, cfg.poll_interval).await;
            continue;
        }
        if !stream_ready {
            match ensure_stream(&js, &cfg).await {
                Ok(()) => {
                    stream_ready = true;
                    stats.stream_ready.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    fails += 1;
                    if fails.is_power_of_two() {
                        tracing::error!(stream = %cfg.stream.name, error = %e, tries = fails, "cdr ship: cannot get or create the stream; retrying");
                    }
                    sleep_or_stop(&stop, backoff(fails, cfg.retry_max)).await;
                    continue;
                }
            }
        }
        if lanes.iter().all(|l| l.pending.is_empty()) {
            save_if_moved(&cfg, &lanes, &mut saved, &stats);
            update_lag(&lanes, &stats);
            if stop.requested.load(Ordering::SeqCst) {
                continue; // re-check lag / deadline at once
            }
            sleep_or_stop(&stop, cfg.poll_interval).await;
            continue;
        }
        for lane in &lanes {
            if lane.ship.in_open_file() {
                if let Err(e) = lane.ship.sync_source() {
                    tracing::warn!(error = %e, "cdr ship: fdatasync of the CDR file failed");
                }
            }
        }
        // Publish every pending record of both lanes, then await all acks together.
        let mut futs = Vec::new();
        let mut send_failed: Option<(usize, usize, String)> = None;
        'send: for (li, lane) in lanes.iter().enumerate() {
            for (mi, m) in lane.pending.iter().enumerate() {
                let p = PublishMessage::build()
                    .payload(m.payload.clone())
                    .message_id(&m.id)
                    .header("Hotline-Node", cfg.node.as_str())
                    .header("Hotline-Kind", m.kind.as_str());
                match js.send_publish(m.subject.clone(), p).await {
                    Ok(f) => futs.push((li, mi, f)),
                    Err(e) => {
                        send_failed = Some((li, mi, e.to_string()));
                        break 'send;
                    }
                }
            }
        }
        let results = futures_util::future::join_all(
            futs.into_iter()
                .map(|(li, mi, f)| async move { (li, mi, f.await) }),
        )
        .await;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        // Per lane: how many from the head were acknowledged without a gap, and the first error.
        let mut ok_prefix = [0usize; 2];
        let mut broken = [false; 2];
        let mut first_err: Option<(usize, usize, String, bool)> = None;
        for (li, mi, r) in results {
            match r {
                Ok(ack) => {
                    if ack.duplicate {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    if !broken[li] && ok_prefix[li] == mi {
                        ok_prefix[li] = mi + 1;
                    }
                }
                Err(e) => {
                    stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                    broken[li] = true;
                    let no_stream = e.kind() == PublishErrorKind::StreamNotFound;
                    if first_err.is_none() {
                        first_err = Some((li, mi, e.to_string(), no_stream));
                    }
                }
            }
        }
        if let Some((li, mi, e)) = send_failed {
            stats.publish_errors.fetch_add(1, Ordering::Relaxed);
            if first_err.is_none() {
                first_err = Some((li, mi, e, false));
            }
        }
        for (li, lane) in lanes.iter_mut().enumerate() {
            for _ in 0..ok_prefix[li] {
                if let Some(m) = lane.pending.pop_front() {
                    lane.acked = m.pos;
                }
            }
            if lane.pending.is_empty() && ok_prefix[li] > 0 {
                lane.acked = lane.ship.position().clone();
            }
        }
        save_if_moved(&cfg, &lanes, &mut saved, &stats);
        update_lag(&lanes, &stats);
        match first_err {
            None => {
                if fails > 0 {
                    tracing::info!(
                        failed_tries = fails,
                        "cdr ship: publishing again: the failing records are in the stream"
                    );
                }
                fails = 0;
                stats.failing.store(false, Ordering::Relaxed);
            }
            Some((li, mi, e, no_stream)) => {
                fails += 1;
                stats.failing.store(true, Ordering::Relaxed);
                if no_stream {
                    stream_ready = false;
                }
                let (id, subject) = lanes[li]
                    .pending
                    .get(mi.saturating_sub(ok_prefix[li]))
                    .map(|m| (m.id.clone(), m.subject.clone()))
                    .unwrap_or_default();
                if fails.is_power_of_two() {
                    tracing::error!(
                        record = %id, subject = %subject, error = %e, tries = fails,
                        lag_records = lanes.iter().map(Lane::lag).sum::<u64>(),
                        "cdr ship: record not accepted by JetStream; it stays in the files and is retried"
                    );
                }
                sleep_or_stop(&stop, backoff(fails, cfg.retry_max)).await;
            }
        }
    }
    save_if_moved(&cfg, &lanes, &mut saved, &stats);
    let _ = client.flush().await;
    tracing::info!(
        lag_records = lanes.iter().map(Lane::lag).sum::<u64>(),
        "cdr ship: stopped"
    );
}

fn update_lag(lanes: &[Lane; 2], stats: &ShipStats) {
    let lag: u64 = lanes.iter().map(Lane::lag).sum();
    stats.lag_records.store(lag, Ordering::Relaxed);
    let oldest = lanes
        .iter()
        .filter_map(|l| l.pending.front().map(|m| m.end))
        .min();
    let ms = match oldest {
        Some(t) if lag > 0 => {
            u64::try_from(Timestamp::now().as_millisecond() - t.as_millisecond()).unwrap_or(0)
        }
        _ => 0,
    };
    stats.lag_ms.store(ms, Ordering::Relaxed);
}

fn save_if_moved(
    cfg: &ShipConfig,
    lanes: &[Lane; 2],
    saved: &mut (Position, Position),
    stats: &ShipStats,
) {
    let now = (lanes[0].acked.clone(), lanes[1].acked.clone());
    if now == *saved {
        return;
    }
    let cp = Checkpoint {
        v: 1,
        node: cfg.node.clone(),
        stream: cfg.stream.name.clone(),
        call: now.0.clone(),
        attempt: now.1.clone(),
        saved_at: hotline_cdr::time::format_ts(Timestamp::now()),
    };
    match checkpoint::save(&cfg.checkpoint, &cp) {
        Ok(()) => *saved = now,
        Err(e) => {
            let n = stats.checkpoint_errors.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(path = %cfg.checkpoint.display(), error = %e, "cdr ship: cannot save the checkpoint (records shipped since may be re-published after a restart; JetStream drops them within its duplicate window)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let max = Duration::from_secs(5);
        assert_eq!(backoff(1, max), Duration::from_millis(100));
        assert_eq!(backoff(2, max), Duration::from_millis(200));
        assert_eq!(backoff(4, max), Duration::from_millis(800));
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
    }

    #[test]
    fn stream_config_from_settings() {
        let mut cfg = ShipConfig::new("/tmp/x", vec!["nats://127.0.0.1:4222".into()], "n1");
        cfg.stream.max_bytes = 0;
        cfg.stream.replicas = 3;
        let s = stream_config(&cfg);
        assert_eq!(s.subjects, vec!["cdr.>".to_string()]);
        assert_eq!(s.max_bytes, -1);
        assert_eq!(s.num_replicas, 3);
        assert_eq!(s.duplicate_window, Duration::from_secs(120));
        assert_eq!(
            cfg.checkpoint,
            PathBuf::from("/tmp/x").join(DEFAULT_CHECKPOINT)
        );
    }
}
