//! The shipper: its own thread and single-threaded runtime, off the call path. It never touches
//! the writer's channel: it reads what the writer has put in the files.
//!
//! One loop, per kind (calls, attempts) a *lane* with two cursors over the same files:
//! * the **ship cursor** reads records from the checkpoint on into the lane's publish window
//!   (at most `batch` records read and not yet acknowledged). Each record is published as one
//!   core NATS message with its `Nats-Msg-Id` and a reply subject of its own
//!   (`<inbox>.c<index>`), while the acks of earlier ones come in on one wildcard
//!   subscription; JetStream's ack JSON is parsed here. Acks may come in any order: the
//!   checkpoint moves only over the acknowledged prefix of the lane, and is saved (fsynced) at
//!   most every `checkpoint_every`, at once when nothing is left, and at a stop. A record that
//!   fails (NATS down, a subject no stream takes, a refused message, no ack in `ack_timeout`)
//!   holds the checkpoint before it; nothing new is published until every ack in flight is in,
//!   then after a backoff (100 ms doubling to `retry_max`) the records without an ack are
//!   published again. It is logged with its id and counted, never dropped.
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

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
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
    /// This node's name in record ids (`Nats-Msg-Id`).
    pub node: String,
    /// Subjects are `<subject_prefix>.<400 number>`.
    pub subject_prefix: String,
    pub stream: StreamSettings,
    /// The publish window: records per lane published and not yet acknowledged, at most.
    pub batch: usize,
    /// How often the files are checked for new records when idle.
    pub poll_interval: Duration,
    /// How long an ack (or a JetStream API answer) may take.
    pub ack_timeout: Duration,
    /// Longest wait between two tries of a failing batch.
    pub retry_max: Duration,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// How often the checkpoint is saved (fsynced) at most while records are acknowledged; it
    /// is saved at once when nothing is left to publish, and at a stop.
    pub checkpoint_every: Duration,
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
            checkpoint_every: Duration::from_millis(100),
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
                        "cdr ship: checkpoint older than the JetStream duplicate window: records published after it (the publish window and 100 ms of acks, normally) may be stored twice"
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

/// Where a read record stands in the publish window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Read, not published yet (or to be published again after a failure).
    Unsent,
    /// Published, its ack not in yet.
    InFlight,
    /// Acknowledged by JetStream (stored or a duplicate).
    Acked,
    /// Refused, timed out or not sent: published again after the backoff.
    Failed,
}

struct Msg {
    subject: async_nats::Subject,
    id: String,
    payload: Bytes,
    /// Position after this record.
    pos: Position,
    end: Timestamp,
    state: State,
}

/// What an ack did to a lane's window (see [`Lane::on_ack`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckEffect {
    /// The record was waiting for this ack: count it.
    Counted,
    /// Already acknowledged or already behind the checkpoint (a late ack of an earlier send).
    Ignored,
}

/// One kind's records from the checkpoint on: the publish window is `pending`, in file order.
/// `pending[i]` has the index `base + i` (records read into the window since start); a record
/// leaves the window only from the front, once it and every record before it are acknowledged,
/// and the checkpoint (`acked`) moves with it: never past a record that is not acknowledged.
struct Lane {
    kind: Kind,
    ship: Cursor,
    scan: Cursor,
    pending: VecDeque<Msg>,
    /// Index of `pending[0]`.
    base: u64,
    /// `pending[..next]` have been published once since the last rewind (in flight, acked or
    /// failed); from `next` on they wait for room in the window.
    next: usize,
    in_flight: usize,
    /// Index of the last record that failed; the lane is failing until the checkpoint passes it.
    failed_upto: Option<u64>,
    /// Records read from an `.open` file since its last `fdatasync`.
    unsynced: bool,
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
            base: 0,
            next: 0,
            in_flight: 0,
            failed_upto: None,
            unsynced: false,
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

    /// Read records into the window up to `window` records.
    fn fill(&mut self, cfg: &ShipConfig, window: usize, stats: &ShipStats) {
        while self.pending.len() < window {
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
                    if self.ship.in_open_file() {
                        self.unsynced = true;
                    }
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

    /// The next record to publish, if the window has room for it (`limit` in flight at most),
    /// with its index; it is in flight from now on. Acknowledged records are skipped (after a
    /// rewind only the failed ones are published again).
    fn next_to_send(&mut self, limit: usize) -> Option<(u64, &Msg)> {
        while self.next < self.pending.len() && self.in_flight < limit {
            let i = self.next;
            self.next += 1;
            if self.pending[i].state == State::Unsent {
                self.pending[i].state = State::InFlight;
                self.in_flight += 1;
                return Some((self.base + i as u64, &self.pending[i]));
            }
        }
        None
    }

    fn is_in_flight(&self, idx: u64) -> bool {
        idx.checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.pending.get(i))
            .is_some_and(|m| m.state == State::InFlight)
    }

    fn slot(&mut self, idx: u64) -> Option<&mut Msg> {
        let i = usize::try_from(idx.checked_sub(self.base)?).ok()?;
        self.pending.get_mut(i)
    }

    /// JetStream acknowledged record `idx` (any send of it: a late ack of a timed-out send
    /// counts too, the record is stored).
    fn on_ack(&mut self, idx: u64) -> AckEffect {
        let Some(m) = self.slot(idx) else {
            return AckEffect::Ignored;
        };
        match m.state {
            State::InFlight => {
                m.state = State::Acked;
                self.in_flight -= 1;
                AckEffect::Counted
            }
            State::Failed | State::Unsent => {
                m.state = State::Acked;
                AckEffect::Counted
            }
            State::Acked => AckEffect::Ignored,
        }
    }

    /// Record `idx` failed (refused, timed out, not sent). `false`: it was not in flight (a late
    /// error of an earlier send, or already acknowledged): nothing changes.
    fn on_fail(&mut self, idx: u64) -> bool {
        let Some(m) = self.slot(idx) else {
            return false;
        };
        if m.state != State::InFlight {
            return false;
        }
        m.state = State::Failed;
        self.in_flight -= 1;
        self.failed_upto = Some(self.failed_upto.map_or(idx, |f| f.max(idx)));
        true
    }

    /// Move the checkpoint over the acknowledged prefix. `true` if it moved.
    fn advance(&mut self) -> bool {
        let mut moved = false;
        while self
            .pending
            .front()
            .is_some_and(|m| m.state == State::Acked)
        {
            if let Some(m) = self.pending.pop_front() {
                self.acked = m.pos;
                self.base += 1;
                self.next = self.next.saturating_sub(1);
                moved = true;
            }
        }
        if moved && self.pending.is_empty() {
            self.acked = self.ship.position().clone();
        }
        if self.failed_upto.is_some_and(|f| self.base > f) {
            self.failed_upto = None;
        }
        moved
    }

    /// After a failure, once nothing is in flight: every record not acknowledged is published
    /// again, from the head of the lane.
    fn rewind(&mut self) {
        for m in self.pending.iter_mut() {
            if m.state == State::Failed {
                m.state = State::Unsent;
            }
        }
        self.next = 0;
    }

    /// The record `idx` (for logs).
    fn describe(&self, idx: u64) -> (String, String) {
        usize::try_from(idx.saturating_sub(self.base))
            .ok()
            .and_then(|i| self.pending.get(i))
            .map(|m| (m.id.clone(), m.subject.to_string()))
            .unwrap_or_default()
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
        subject: message::subject(&cfg.subject_prefix, message::number(rec)).into(),
        id: message::record_id(&cfg.node, rec),
        payload: Bytes::copy_from_slice(buf),
        pos: Position::default(),
        end,
        state: State::Unsent,
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
    let window = cfg.batch.max(1);
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
    let js = jetstream::ContextBuilder::new()
        .timeout(cfg.ack_timeout)
        .build(client.clone());
    // Records are published with core NATS, each with a reply subject of its own under one
    // wildcard subscription (`<inbox>.c<index>` / `<inbox>.a<index>`): JetStream's ack comes
    // there and is matched to the record by lane and index, without per-message request
    // machinery. The client re-subscribes after a reconnect; acks lost meanwhile time out.
    let inbox = client.new_inbox();
    let mut replies = match client.subscribe(format!("{inbox}.*")).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cdr ship: cannot subscribe to the ack subject; not shipping");
            return;
        }
    };
    tracing::info!(
        node = %cfg.node, stream = %cfg.stream.name, servers = ?cfg.urls,
        call = ?cp.call, attempt = ?cp.attempt, "cdr ship: started"
    );
    let mut saved = (cp.call.clone(), cp.attempt.clone());
    let mut saved_at = Instant::now();
    let mut fails: u32 = 0;
    let mut stream_ready = false;
    // A record failed: nothing new is published until every ack in flight is in, then the
    // backoff, then the failed records are published again. The first failure, for the log.
    let mut halted: Option<(usize, u64, String)> = None;
    // (sent at, lane, index) of every publish, in send order: the acks' deadlines.
    let mut sent_at: VecDeque<(Instant, usize, u64)> = VecDeque::new();
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
        // Read on even while NATS is away: the window's oldest record is the lag's age.
        for lane in &mut lanes {
            lane.fill(&cfg, window, &stats);
        }
        update_lag(&lanes, &stats);
        let in_flight: usize = lanes.iter().map(|l| l.in_flight).sum();
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        stats.connected.store(connected, Ordering::Relaxed);
        if in_flight == 0 {
            if let Some((li, idx, e)) = halted.take() {
                // Every ack of the window is in: log, wait, then publish the failed ones again.
                let (id, subject) = lanes[li].describe(idx);
                if fails.is_power_of_two() {
                    tracing::error!(
                        record = %id, subject = %subject, error = %e, tries = fails,
                        lag_records = lanes.iter().map(Lane::lag).sum::<u64>(),
                        "cdr ship: record not accepted by JetStream; it stays in the files and is retried"
                    );
                }
                save_if_moved(&cfg, &lanes, &mut saved, &stats);
                saved_at = Instant::now();
                sleep_or_stop(&stop, backoff(fails, cfg.retry_max)).await;
                for lane in &mut lanes {
                    lane.rewind();
                }
                sent_at.clear();
                continue;
            }
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
                        stats.failing.store(true, Ordering::Relaxed);
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
                saved_at = Instant::now();
                update_lag(&lanes, &stats);
                if stop.requested.load(Ordering::SeqCst) {
                    continue; // re-check lag / deadline at once
                }
                sleep_or_stop(&stop, cfg.poll_interval).await;
                continue;
            }
        }
        // Publish what the windows have room for.
        if halted.is_none() && connected && stream_ready {
            let mut sent = 0usize;
            'send: for (li, lane) in lanes.iter_mut().enumerate() {
                if lane.unsynced && lane.next < lane.pending.len() {
                    lane.unsynced = false;
                    if let Err(e) = lane.ship.sync_source() {
                        tracing::warn!(error = %e, "cdr ship: fdatasync of the CDR file failed");
                    }
                }
                let now = Instant::now();
                while let Some((idx, m)) = lane.next_to_send(window) {
                    let mut headers = HeaderMap::new();
                    headers.insert("Nats-Msg-Id", m.id.as_str());
                    let reply = reply_subject(&inbox, li, idx);
                    match client
                        .publish_with_reply_and_headers(
                            m.subject.clone(),
                            reply,
                            headers,
                            m.payload.clone(),
                        )
                        .await
                    {
                        Ok(()) => {
                            sent += 1;
                            sent_at.push_back((now, li, idx));
                        }
                        Err(e) => {
                            stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                            lane.on_fail(idx);
                            fails += 1;
                            stats.failing.store(true, Ordering::Relaxed);
                            halted = Some((li, idx, e.to_string()));
                            break 'send;
                        }
                    }
                }
            }
            if sent > 0 {
                stats.batches.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Wait for acks (or the oldest ack's deadline, or the poll interval: the files may have
        // grown, a stop may come).
        let in_flight: usize = lanes.iter().map(|l| l.in_flight).sum();
        let wake = sent_at
            .front()
            .map(|(t, _, _)| *t + cfg.ack_timeout)
            .unwrap_or_else(|| Instant::now() + cfg.poll_interval)
            .min(Instant::now() + cfg.poll_interval);
        let first = tokio::select! {
            m = replies.next(), if in_flight > 0 => match m {
                Some(m) => Some(m),
                None => {
                    tracing::error!("cdr ship: the ack subscription ended; not shipping");
                    break;
                }
            },
            () = tokio::time::sleep_until(wake.into()) => None,
            () = stop.notify.notified() => None,
        };
        let mut next = first;
        let mut taken = 0usize;
        while let Some(m) = next {
            taken += 1;
            if let Some((li, idx)) = parse_reply(&inbox, m.subject.as_str()) {
                let lane = &mut lanes[li];
                match parse_ack(m.status, &m.payload) {
                    Ok(duplicate) => {
                        if lane.on_ack(idx) == AckEffect::Counted {
                            if duplicate {
                                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                            } else {
                                stats.published.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) => {
                        if lane.on_fail(idx) {
                            stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                            if e.no_stream {
                                stream_ready = false;
                            }
                            if halted.is_none() {
                                fails += 1;
                                stats.failing.store(true, Ordering::Relaxed);
                                halted = Some((li, idx, e.text));
                            }
                        }
                    }
                }
            }
            next = if taken < 4 * window {
                replies.next().now_or_never().flatten()
            } else {
                None
            };
        }
        // Acks not in within the timeout: those records failed (a resend is safe: dedupe).
        let now = Instant::now();
        while let Some(&(t, li, idx)) = sent_at.front() {
            let lane = &mut lanes[li];
            if lane.is_in_flight(idx) {
                if now < t + cfg.ack_timeout {
                    break;
                }
                lane.on_fail(idx);
                stats.publish_errors.fetch_add(1, Ordering::Relaxed);
                if halted.is_none() {
                    fails += 1;
                    stats.failing.store(true, Ordering::Relaxed);
                    halted = Some((li, idx, "timed out waiting for the ack".into()));
                }
            }
            sent_at.pop_front();
        }
        let mut moved = false;
        for lane in &mut lanes {
            moved |= lane.advance();
        }
        if moved && halted.is_none() && fails > 0 && lanes.iter().all(|l| l.failed_upto.is_none()) {
            tracing::info!(
                failed_tries = fails,
                "cdr ship: publishing again: the failing records are in the stream"
            );
            fails = 0;
            stats.failing.store(false, Ordering::Relaxed);
        }
        if moved && saved_at.elapsed() >= cfg.checkpoint_every {
            save_if_moved(&cfg, &lanes, &mut saved, &stats);
            saved_at = Instant::now();
        }
        update_lag(&lanes, &stats);
    }
    save_if_moved(&cfg, &lanes, &mut saved, &stats);
    let _ = client.flush().await;
    tracing::info!(
        lag_records = lanes.iter().map(Lane::lag).sum::<u64>(),
        "cdr ship: stopped"
    );
}

/// The reply subject of a record's publish: `<inbox>.c<index>` (calls) or `.a<index>`.
fn reply_subject(inbox: &str, lane: usize, idx: u64) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(inbox.len() + 24);
    s.push_str(inbox);
    s.push_str(if lane == 0 { ".c" } else { ".a" });
    let _ = write!(s, "{idx}");
    s
}

/// Lane and index from a reply subject of [`reply_subject`]; `None` for anything else.
fn parse_reply(inbox: &str, subject: &str) -> Option<(usize, u64)> {
    let token = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let lane = match token.as_bytes().first()? {
        b'c' => 0,
        b'a' => 1,
        _ => return None,
    };
    let digits = token.get(1..)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|idx| (lane, idx))
}

/// Why JetStream did not store a record.
#[derive(Debug, PartialEq, Eq)]
struct AckError {
    /// No stream takes the subject (no responders): the stream is looked up again.
    no_stream: bool,
    text: String,
}

#[derive(serde::Deserialize)]
struct AckJson {
    #[serde(default)]
    stream: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<AckJsonError>,
}

#[derive(serde::Deserialize)]
struct AckJsonError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's answer to a publish: `{"stream":"CDR","seq":5}` (stored),
/// `{..,"duplicate":true}` (a duplicate, dropped), `{"error":{..}}` (refused), or a
/// no-responders status (no stream takes the subject). `Ok(duplicate)`.
fn parse_ack(status: Option<StatusCode>, payload: &[u8]) -> Result<bool, AckError> {
    if let Some(st) = status {
        if st == StatusCode::NO_RESPONDERS {
            return Err(AckError {
                no_stream: true,
                text: "no stream takes the subject (no responders)".into(),
            });
        }
        if !st.is_success() {
            return Err(AckError {
                no_stream: false,
                text: format!("status {st}"),
            });
        }
    }
    match serde_json::from_slice::<AckJson>(payload) {
        Ok(AckJson { error: Some(e), .. }) => Err(AckError {
            no_stream: false,
            text: format!(
                "JetStream error {} ({}): {}",
                e.code, e.err_code, e.description
            ),
        }),
        Ok(AckJson {
            stream: Some(_),
            duplicate,
            ..
        }) => Ok(duplicate),
        Ok(_) => Err(AckError {
            no_stream: false,
            text: "ack without a stream".into(),
        }),
        Err(e) => Err(AckError {
            no_stream: false,
            text: format!("undecodable ack: {e}"),
        }),
    }
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

#[cfg(test)]
mod window_tests {
    use super::*;

    fn lane(n: usize) -> Lane {
        let cfg = ShipConfig::new("/nonexistent", vec!["nats://127.0.0.1:1".into()], "n1");
        let mut l = Lane::new(&cfg, Kind::Call, Position::default());
        for i in 0..n {
            l.pending.push_back(Msg {
                subject: "cdr.4008001234".into(),
                id: format!("r{i}"),
                payload: Bytes::new(),
                pos: at(i),
                end: Timestamp::UNIX_EPOCH,
                state: State::Unsent,
            });
        }
        l
    }

    /// The position after record `i`.
    fn at(i: usize) -> Position {
        Position {
            file: "calls-x.csv".into(),
            offset: 100 * (i as u64 + 1),
        }
    }

    fn send_all(l: &mut Lane, limit: usize) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some((idx, _)) = l.next_to_send(limit) {
            v.push(idx);
        }
        v
    }

    #[test]
    fn out_of_order_acks_move_the_checkpoint_over_the_acknowledged_prefix_only() {
        let mut l = lane(6);
        assert_eq!(send_all(&mut l, 100), vec![0, 1, 2, 3, 4, 5]);
        for i in [2, 4, 3] {
            assert_eq!(l.on_ack(i), AckEffect::Counted);
        }
        assert!(!l.advance(), "record 0 is not acknowledged");
        assert_eq!(l.acked, Position::default());
        assert_eq!(l.on_ack(0), AckEffect::Counted);
        assert!(l.advance());
        assert_eq!(l.acked, at(0), "never past record 1, in flight");
        assert_eq!(l.on_ack(1), AckEffect::Counted);
        assert!(l.advance());
        assert_eq!(l.acked, at(4), "5 is still in flight");
        assert_eq!((l.base, l.pending.len(), l.in_flight), (5, 1, 1));
        // A second ack of a record behind the checkpoint changes nothing.
        assert_eq!(l.on_ack(3), AckEffect::Ignored);
        assert_eq!(l.lag(), 1);
    }

    #[test]
    fn a_failure_mid_window_holds_the_checkpoint_before_it_and_only_it_is_sent_again() {
        let mut l = lane(5);
        send_all(&mut l, 100);
        assert_eq!(l.on_ack(0), AckEffect::Counted);
        assert!(l.on_fail(2));
        for i in [1, 3, 4] {
            assert_eq!(l.on_ack(i), AckEffect::Counted);
        }
        l.advance();
        assert_eq!(l.acked, at(1), "stops before the failed record");
        assert_eq!(l.failed_upto, Some(2));
        assert_eq!(l.in_flight, 0);
        // Nothing is sent again before the rewind; after it only the failed record.
        assert_eq!(send_all(&mut l, 100), Vec::<u64>::new());
        l.rewind();
        assert_eq!(send_all(&mut l, 100), vec![2]);
        // A late error of an earlier send of an acknowledged record is ignored.
        assert!(!l.on_fail(3));
        assert_eq!(l.on_ack(2), AckEffect::Counted);
        l.advance();
        assert!(l.pending.is_empty());
        assert_eq!(l.failed_upto, None);
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_a_late_ack_after_a_timeout_counts() {
        let mut l = lane(5);
        assert_eq!(send_all(&mut l, 2), vec![0, 1]);
        assert!(l.on_fail(0), "timed out");
        // The timed-out record's ack comes after all: it is stored.
        assert_eq!(l.on_ack(0), AckEffect::Counted);
        assert_eq!(l.on_ack(0), AckEffect::Ignored);
        assert_eq!(send_all(&mut l, 2), vec![2]);
        assert_eq!(l.in_flight, 2);
        assert_eq!(l.on_ack(1), AckEffect::Counted);
        l.advance();
        assert_eq!(l.acked, at(1));
        assert_eq!(send_all(&mut l, 2), vec![3]);
        assert_eq!(l.on_ack(7), AckEffect::Ignored, "not read yet");
    }

    #[test]
    fn reply_subjects_round_trip_and_foreign_subjects_are_ignored() {
        let inbox = "_INBOX.abc";
        assert_eq!(reply_subject(inbox, 0, 42), "_INBOX.abc.c42");
        assert_eq!(
            parse_reply(inbox, &reply_subject(inbox, 1, u64::MAX)),
            Some((1, u64::MAX))
        );
        assert_eq!(parse_reply(inbox, "_INBOX.abc.c7"), Some((0, 7)));
        for bad in [
            "_INBOX.abd.c7",
            "_INBOX.abc.x7",
            "_INBOX.abc.c",
            "_INBOX.abc.c-1",
            "_INBOX.abc.c1x",
            "_INBOX.abcc7",
            "_INBOX.abc.c99999999999999999999999",
        ] {
            assert_eq!(parse_reply(inbox, bad), None, "{bad}");
        }
    }

    #[test]
    fn jetstream_acks_stored_duplicate_refused_and_no_stream() {
        assert_eq!(parse_ack(None, br#"{"stream":"CDR","seq":5}"#), Ok(false));
        assert_eq!(
            parse_ack(
                None,
                br#"{"stream":"CDR","domain":"x","seq":5,"duplicate":true}"#
            ),
            Ok(true)
        );
        let e = parse_ack(
            None,
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        );
        assert!(
            matches!(&e, Err(AckError { no_stream: false, text }) if text.contains("maximum messages exceeded")),
            "{e:?}"
        );
        let e = parse_ack(Some(StatusCode::NO_RESPONDERS), b"");
        assert!(
            matches!(
                e,
                Err(AckError {
                    no_stream: true,
                    ..
                })
            ),
            "{e:?}"
        );
        assert!(parse_ack(Some(StatusCode::TIMEOUT), b"").is_err());
        assert!(parse_ack(None, b"").is_err());
        assert!(parse_ack(None, b"{not json").is_err());
        assert!(
            parse_ack(None, br#"{"seq":5}"#).is_err(),
            "no stream: not an ack"
        );
    }
}
