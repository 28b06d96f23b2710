//! The writer thread: bounded channel -> batched encode -> write -> group fsync -> rotate -> seal.
//!
//! # Never blocking the call path
//! [`CdrSink::submit`] does a `try_send` on a bounded `std::sync::mpsc::sync_channel`. When the
//! channel is full (disk stalled, writer behind), the record goes to a *spill*: a
//! `Mutex<VecDeque<Record>>` the writer drains as a whole (it swaps the queue out under the lock,
//! so the lock is held for a pointer swap on the writer side and a `push_back` on the submit side:
//! brief and, unless the channel is full, never touched). While the spill holds records, new
//! records also go to the spill so files keep submission order. Past `spill_limit` records the
//! record is dropped **and counted** (`overflowed`) and logged at `error!` (the 1st, 2nd, 4th,
//! 8th, ... drop, with its record id, plus a summary at each fsync tick) — never silently.
//!
//! # Durability
//! Records are written with `write(2)` in batches and `fdatasync`ed every `fsync_interval`
//! (group commit) and on shutdown/seal. On power loss at most one interval of completed calls
//! is lost; on SIGTERM (the binary calls [`WriterHandle::shutdown`]) none. After a crash, the
//! next [`spawn`] cuts any torn last line and seals the files left open.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::encode::{self, Format};
use crate::files::{self, Rotate, OPEN_SUFFIX};
use crate::record::{Kind, Record};

/// Writer settings. Build with [`WriterConfig::new`] and override fields.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// CDR directory (created if missing).
    pub dir: PathBuf,
    pub format: Format,
    /// Group-commit interval (default 200 ms).
    pub fsync_interval: Duration,
    /// Rotate a file once it reaches this many bytes (default 256 MiB).
    pub rotate_bytes: u64,
    /// Rotate by time (default hourly).
    pub rotate_every: Rotate,
    /// Bounded channel capacity in records (default 65,536).
    pub channel_capacity: usize,
    /// Records kept in the spill beyond the channel before overflow is counted (default 262,144).
    pub spill_limit: usize,
}

impl WriterConfig {
    pub fn new(dir: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            dir: dir.into(),
            format: Format::Csv,
            fsync_interval: Duration::from_millis(200),
            rotate_bytes: 256 << 20,
            rotate_every: Rotate::Hourly,
            channel_capacity: 65_536,
            spill_limit: 262_144,
        }
    }
}

/// Counters, readable at any time through [`CdrSink::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records accepted by `submit` (channel or spill).
    pub submitted: u64,
    /// Records handed to the OS (`write` returned).
    pub written: u64,
    /// Records known durable (covered by a completed fsync).
    pub synced: u64,
    /// Records that went through the spill because the channel was full.
    pub spilled: u64,
    /// Records dropped because channel and spill were full (or the writer was gone). Each is
    /// logged at error level (rate limited).
    pub overflowed: u64,
    /// Records waiting in the channel now.
    pub queue_depth: usize,
    /// Records waiting in the spill now.
    pub spill_depth: usize,
    /// Age of the oldest record covered by the last fsync when that fsync completed: how stale
    /// durable data was.
    pub last_fsync_lag: Duration,
    pub fsyncs: u64,
    pub files_sealed: u64,
    /// Torn tails cut at start-up (from a previous unclean stop).
    pub torn_recovered: u64,
    /// Failed write/fsync/rename calls (retried; see the log).
    pub write_errors: u64,
    /// Times the writer blocked because nothing came (it sleeps until a record does).
    pub idle_waits: u64,
}

#[derive(Default)]
struct Shared {
    spill: Mutex<VecDeque<Record>>,
    spill_len: AtomicUsize,
    submitted: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    spilled: AtomicU64,
    overflowed: AtomicU64,
    queue_depth: AtomicUsize,
    fsync_lag_us: AtomicU64,
    fsyncs: AtomicU64,
    files_sealed: AtomicU64,
    torn_recovered: AtomicU64,
    write_errors: AtomicU64,
    idle_waits: AtomicU64,
    shutdown: AtomicBool,
    paused: Mutex<bool>,
    unpaused: Condvar,
    /// The writer waits at its pause point (set and cleared under `paused`; `parked_cv`
    /// tells a [`PauseGuard::wait_parked`]).
    parked: AtomicBool,
    parked_cv: Condvar,
    /// The writer is (about to be) blocked in [`Shared::idle_wait`]: a submit must wake it.
    idle: AtomicBool,
    idle_lock: Mutex<()>,
    idle_wake: Condvar,
}

impl Shared {
    fn stats(&self) -> WriterStats {
        WriterStats {
            submitted: self.submitted.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            synced: self.synced.load(Ordering::Relaxed),
            spilled: self.spilled.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            spill_depth: self.spill_len.load(Ordering::Relaxed),
            last_fsync_lag: Duration::from_micros(self.fsync_lag_us.load(Ordering::Relaxed)),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            files_sealed: self.files_sealed.load(Ordering::Relaxed),
            torn_recovered: self.torn_recovered.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            idle_waits: self.idle_waits.load(Ordering::Relaxed),
        }
    }

    /// Wake the writer out of its idle wait, whether or not it is in it (pause, shutdown).
    fn wake_idle(&self) {
        let _g = self.idle_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.idle_wake.notify_all();
    }

    /// Wake the writer if it idles (a cheap atomic load when it does not: under traffic the
    /// writer never idles, so the call path pays no system call).
    fn wake_if_idle(&self) {
        if self.idle.load(Ordering::SeqCst) {
            let _g = self.idle_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.idle_wake.notify_one();
        }
    }

    fn lock_spill(&self) -> std::sync::MutexGuard<'_, VecDeque<Record>> {
        // A poisoned lock only means a thread panicked while holding it; the queue is still valid.
        self.spill.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn overflow(&self, rec: &Record, why: &str) {
        let n = self.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            let id = match rec {
                Record::Call(c) => c.record_id.as_str(),
                Record::Attempt(a) => a.record_id.as_str(),
            };
            tracing::error!(
                record_id = id,
                overflowed_total = n,
                "cdr: RECORD LOST ({why}); CDR channel and spill are full: the disk is stalled or too slow"
            );
        }
    }
}

/// The call path's handle: cheap to clone, `submit` never blocks.
#[derive(Clone)]
pub struct CdrSink {
    tx: SyncSender<Record>,
    shared: Arc<Shared>,
    spill_limit: usize,
}

impl std::fmt::Debug for CdrSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrSink")
            .field("stats", &self.stats())
            .finish()
    }
}

impl CdrSink {
    /// Hand a record to the writer. Never blocks: channel, else spill, else counted + logged drop.
    pub fn submit(&self, rec: Record) {
        let sh = &*self.shared;
        let rec = if sh.spill_len.load(Ordering::Acquire) == 0 {
            sh.queue_depth.fetch_add(1, Ordering::Relaxed);
            match self.tx.try_send(rec) {
                Ok(()) => {
                    sh.submitted.fetch_add(1, Ordering::Relaxed);
                    sh.wake_if_idle();
                    return;
                }
                Err(TrySendError::Full(r)) => {
                    sh.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    r
                }
                Err(TrySendError::Disconnected(r)) => {
                    sh.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    sh.overflow(&r, "writer stopped");
                    return;
                }
            }
        } else {
            rec
        };
        if sh.shutdown.load(Ordering::Relaxed) {
            sh.overflow(&rec, "writer stopped");
            return;
        }
        let mut q = sh.lock_spill();
        if q.len() >= self.spill_limit {
            drop(q);
            sh.overflow(&rec, "spill limit reached");
            return;
        }
        q.push_back(rec);
        sh.spill_len.store(q.len(), Ordering::Release);
        drop(q);
        sh.spilled.fetch_add(1, Ordering::Relaxed);
        sh.submitted.fetch_add(1, Ordering::Relaxed);
        sh.wake_if_idle();
    }

    pub fn stats(&self) -> WriterStats {
        self.shared.stats()
    }
}

/// Owner of the writer thread.
pub struct WriterHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle").finish_non_exhaustive()
    }
}

/// While alive, the writer thread takes nothing from the channel (tests and fault drills: it
/// behaves like a stalled disk). Dropping it resumes the writer.
pub struct PauseGuard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PauseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PauseGuard")
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let mut p = self.shared.paused.lock().unwrap_or_else(|p| p.into_inner());
        *p = false;
        self.shared.unpaused.notify_all();
    }
}

impl PauseGuard {
    /// Wait until the writer thread has reached its pause point, at most `timeout`: from then
    /// on it takes nothing until the guard is dropped. `false` if it did not get there in time.
    /// (Records submitted before that may still be taken by the turn in progress.)
    pub fn wait_parked(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut p = self.shared.paused.lock().unwrap_or_else(|p| p.into_inner());
        while !self.shared.parked.load(Ordering::SeqCst) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            p = self
                .shared
                .parked_cv
                .wait_timeout(p, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        drop(p);
        true
    }
}

impl WriterHandle {
    /// Stall the writer until the guard is dropped (see [`PauseGuard`]). An idle writer is
    /// woken to go to its pause point; [`PauseGuard::wait_parked`] waits until it is there.
    pub fn pause(&self) -> PauseGuard {
        {
            let mut p = self.shared.paused.lock().unwrap_or_else(|p| p.into_inner());
            *p = true;
        }
        self.shared.wake_idle();
        PauseGuard {
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn stats(&self) -> WriterStats {
        self.shared.stats()
    }

    /// Stop: drain channel and spill, write, fsync, seal the open files, join the thread.
    /// Records submitted after this are counted as overflow.
    pub fn shutdown(mut self) -> io::Result<WriterStats> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<WriterStats> {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake_idle();
        {
            let mut p = self.shared.paused.lock().unwrap_or_else(|p| p.into_inner());
            *p = false;
            self.shared.unpaused.notify_all();
        }
        let result = match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("cdr writer thread panicked"))?,
            None => Ok(()),
        };
        result.map(|()| self.shared.stats())
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop() {
                tracing::error!(error = %e, "cdr: writer shutdown on drop failed");
            }
        }
    }
}

/// Recover the directory (seal files left open, cut torn tails) and start the writer thread.
pub fn spawn(cfg: WriterConfig) -> io::Result<(CdrSink, WriterHandle)> {
    std::fs::create_dir_all(&cfg.dir)?;
    let recovery = files::recover_dir(&cfg.dir)?;
    let shared = Arc::new(Shared::default());
    shared
        .torn_recovered
        .store(recovery.torn, Ordering::Relaxed);
    shared
        .files_sealed
        .store(recovery.sealed, Ordering::Relaxed);
    let (tx, rx) = mpsc::sync_channel(cfg.channel_capacity.max(1));
    let spill_limit = cfg.spill_limit;
    let mut writer = Writer {
        streams: [Stream::new(Kind::Call), Stream::new(Kind::Attempt)],
        cfg,
        shared: Arc::clone(&shared),
        rx,
        unsynced_since: None,
        unsynced_records: 0,
        reported_overflow: 0,
    };
    let thread = std::thread::Builder::new()
        .name("cdr-writer".into())
        .spawn(move || writer.run())?;
    Ok((
        CdrSink {
            tx,
            shared: Arc::clone(&shared),
            spill_limit,
        },
        WriterHandle {
            shared,
            thread: Some(thread),
        },
    ))
}

const FLUSH_AT: usize = 1 << 20;
/// Above this many buffered bytes in one stream (writes failing), stop taking records so the
/// channel and spill absorb them and overflow gets counted instead of memory growing unbounded.
const BACKPRESSURE_AT: usize = 64 << 20;
const POLL: Duration = Duration::from_millis(50);
/// How long the writer sleeps between draining the channel (the batching delay of a record).
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Longest idle block of the writer with nothing to seal (a safety net: submits and shutdown
/// wake it at once).
const IDLE_MAX: Duration = Duration::from_secs(60);

struct OpenFile {
    file: File,
    path: PathBuf,
    period: i64,
    /// Bytes written + buffered.
    bytes: u64,
    records: u64,
    buf: Vec<u8>,
    buf_records: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    hasher: Sha256,
    last_record: Instant,
}

struct Stream {
    kind: Kind,
    open: Option<OpenFile>,
}

impl Stream {
    fn new(kind: Kind) -> Stream {
        Stream { kind, open: None }
    }
}

struct Writer {
    cfg: WriterConfig,
    shared: Arc<Shared>,
    rx: Receiver<Record>,
    streams: [Stream; 2],
    unsynced_since: Option<Instant>,
    unsynced_records: u64,
    reported_overflow: u64,
}

impl Writer {
    fn run(&mut self) -> io::Result<()> {
        let mut next_sync = Instant::now() + self.cfg.fsync_interval;
        let mut disconnected = false;
        loop {
            if self.shared.shutdown.load(Ordering::SeqCst) {
                break;
            }
            self.wait_while_paused();
            let now = Instant::now();
            let wait = next_sync.saturating_duration_since(now).min(POLL);
            if self.backpressured() {
                std::thread::sleep(wait);
                self.flush_all();
            } else if !disconnected {
                // Sleep, then take everything queued. The writer never blocks on the channel,
                // so a `submit` on the call path never has a thread to wake (a futex wake per
                // record cost more CPU than encoding it).
                std::thread::sleep(wait.min(BATCH_WAIT));
                let mut took = 0usize;
                loop {
                    match self.rx.try_recv() {
                        Ok(rec) => {
                            took += 1;
                            self.took(rec);
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
                took += self.shared.spill_len.load(Ordering::Acquire);
                self.drain_spill();
                if took == 0 && !disconnected && self.quiescent() {
                    // Nothing came and nothing waits for an fsync: sleep until a record comes,
                    // a file's period ends, or shutdown (a quiet switch must be idle).
                    self.idle_wait(&mut next_sync);
                }
            } else {
                self.drain_spill();
                if self.shared.spill_len.load(Ordering::Acquire) == 0 {
                    break; // every sink is gone and nothing is left
                }
            }
            if Instant::now() >= next_sync {
                self.sync_all();
                self.seal_idle();
                self.report_overflow();
                next_sync = Instant::now() + self.cfg.fsync_interval;
            }
        }
        // Shutdown: take everything left, then write, fsync and seal.
        while let Ok(rec) = self.rx.try_recv() {
            self.took(rec);
        }
        self.drain_spill();
        self.report_overflow();
        let mut result = Ok(());
        for i in 0..self.streams.len() {
            if let Err(e) = self.seal_stream(i) {
                tracing::error!(error = %e, "cdr: could not seal on shutdown; file left .open, recovered at next start");
                result = Err(e);
            }
        }
        self.sync_all();
        result
    }

    fn wait_while_paused(&self) {
        let mut p = self.shared.paused.lock().unwrap_or_else(|p| p.into_inner());
        while *p && !self.shared.shutdown.load(Ordering::SeqCst) {
            if !self.shared.parked.swap(true, Ordering::SeqCst) {
                self.shared.parked_cv.notify_all();
            }
            p = self
                .shared
                .unpaused
                .wait_timeout(p, POLL)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        self.shared.parked.store(false, Ordering::SeqCst);
    }

    /// Nothing buffered and nothing written but not yet fsynced.
    fn quiescent(&self) -> bool {
        self.unsynced_records == 0
            && !self
                .streams
                .iter()
                .any(|s| s.open.as_ref().is_some_and(|f| f.buf_records > 0))
    }

    /// Block until a submit or shutdown wakes us, or until the next time-based seal is due;
    /// records that arrive while we decide are taken, never slept over.
    fn idle_wait(&mut self, next_sync: &mut Instant) {
        let sh = Arc::clone(&self.shared);
        let guard = sh.idle_lock.lock().unwrap_or_else(|p| p.into_inner());
        sh.idle.store(true, Ordering::SeqCst);
        // Re-check after announcing the idle state (a submit in between saw `idle` false and
        // did not notify; its record is in the channel or the spill).
        let pending = self.rx.try_recv().ok();
        let wait = self.until_time_seal();
        sh.idle_waits.fetch_add(1, Ordering::Relaxed);
        // A pause asked for before the idle lock was taken is not slept over either (`pause`
        // sets the flag, then notifies under the idle lock).
        let paused = *sh.paused.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_none()
            && sh.spill_len.load(Ordering::Acquire) == 0
            && !sh.shutdown.load(Ordering::SeqCst)
            && !paused
        {
            let _unused = sh
                .idle_wake
                .wait_timeout(guard, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        } else {
            drop(guard);
        }
        sh.idle.store(false, Ordering::SeqCst);
        if let Some(rec) = pending {
            self.took(rec);
        }
        // The fsync tick restarts from the wake-up: a record taken now is synced within one
        // interval, and the seal check below runs when a period has ended.
        *next_sync = Instant::now().min(*next_sync);
    }

    /// How long until an open file's rotation period has ended and it may be sealed idle
    /// (period end + one fsync interval); [`IDLE_MAX`] when nothing is open.
    fn until_time_seal(&self) -> Duration {
        let len_ms: i64 = match self.cfg.rotate_every {
            Rotate::Hourly => 3_600_000,
            Rotate::Daily => 86_400_000,
            Rotate::Never => return IDLE_MAX,
        };
        let now = Timestamp::now().as_millisecond();
        self.streams
            .iter()
            .filter_map(|s| s.open.as_ref())
            .map(|f| {
                let end = f.period.saturating_add(1).saturating_mul(len_ms);
                let ms = u64::try_from(end.saturating_sub(now)).unwrap_or(0);
                Duration::from_millis(ms) + self.cfg.fsync_interval
            })
            .min()
            .unwrap_or(IDLE_MAX)
            .min(IDLE_MAX)
    }

    fn backpressured(&self) -> bool {
        self.streams.iter().any(|s| {
            s.open
                .as_ref()
                .is_some_and(|f| f.buf.len() >= BACKPRESSURE_AT)
        })
    }

    fn took(&mut self, rec: Record) {
        self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
        self.handle(rec);
    }

    fn drain_spill(&mut self) {
        if self.shared.spill_len.load(Ordering::Acquire) == 0 {
            return;
        }
        let batch = {
            let mut q = self.shared.lock_spill();
            let b = std::mem::take(&mut *q);
            self.shared.spill_len.store(0, Ordering::Release);
            b
        };
        for rec in batch {
            self.handle(rec);
        }
    }

    fn report_overflow(&mut self) {
        let n = self.shared.overflowed.load(Ordering::Relaxed);
        if n > self.reported_overflow {
            tracing::error!(
                lost_since_last_report = n - self.reported_overflow,
                lost_total = n,
                "cdr: RECORDS LOST: CDR channel and spill overflowed"
            );
            self.reported_overflow = n;
        }
    }

    fn handle(&mut self, rec: Record) {
        let idx = match rec.kind() {
            Kind::Call => 0,
            Kind::Attempt => 1,
        };
        let end = rec.end();
        let period = self.cfg.rotate_every.period(end);
        let needs_rotate = self.streams[idx].open.as_ref().is_some_and(|f| {
            period > f.period || (f.bytes >= self.cfg.rotate_bytes && f.records > 0)
        });
        if needs_rotate {
            if let Err(e) = self.seal_stream(idx) {
                // Keep writing to the current file; sealing is retried at the next rotation.
                self.error("seal", &e);
            }
        }
        if self.streams[idx].open.is_none() {
            match self.open_file(self.streams[idx].kind, end) {
                Ok(f) => self.streams[idx].open = Some(f),
                Err(e) => {
                    self.error("create file", &e);
                    self.shared.overflow(&rec, "cannot create CDR file");
                    return;
                }
            }
        }
        let format = self.cfg.format;
        let Some(f) = self.streams[idx].open.as_mut() else {
            return;
        };
        let before = f.buf.len();
        encode::encode(&mut f.buf, format, &rec);
        f.bytes += (f.buf.len() - before) as u64;
        f.records += 1;
        f.buf_records += 1;
        f.first = Some(f.first.map_or(end, |x| x.min(end)));
        f.last = Some(f.last.map_or(end, |x| x.max(end)));
        f.last_record = Instant::now();
        if f.buf.len() >= FLUSH_AT {
            self.flush_stream(idx);
        }
    }

    fn open_file(&self, kind: Kind, first_end: Timestamp) -> io::Result<OpenFile> {
        let dir = &self.cfg.dir;
        let stamp = self.cfg.rotate_every.stamp(first_end);
        let ext = self.cfg.format.extension();
        let prefix = kind.file_prefix();
        for seq in 0u32..100_000 {
            let name = if seq == 0 {
                format!("{prefix}-{stamp}.{ext}")
            } else {
                format!("{prefix}-{stamp}_{seq:03}.{ext}")
            };
            let open_name = format!("{name}{OPEN_SUFFIX}");
            if dir.join(&name).exists() || dir.join(&open_name).exists() {
                continue;
            }
            let path = dir.join(&open_name);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            files::sync_dir(dir)?;
            let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
            encode::write_preamble(&mut buf, self.cfg.format, kind);
            return Ok(OpenFile {
                file,
                path,
                period: self.cfg.rotate_every.period(first_end),
                bytes: buf.len() as u64,
                records: 0,
                buf,
                buf_records: 0,
                first: None,
                last: None,
                hasher: Sha256::new(),
                last_record: Instant::now(),
            });
        }
        Err(io::Error::other(format!(
            "no free file name for {prefix}-{stamp}"
        )))
    }

    /// Write the stream's buffer; on error keep what was not written for the next try.
    fn flush_stream(&mut self, idx: usize) -> bool {
        let Some(f) = self.streams[idx].open.as_mut() else {
            return true;
        };
        let mut done = 0;
        let mut failed = None;
        while done < f.buf.len() {
            match f.file.write(&f.buf[done..]) {
                Ok(0) => {
                    failed = Some(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
                    break;
                }
                Ok(n) => {
                    f.hasher.update(&f.buf[done..done + n]);
                    done += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        f.buf.drain(..done);
        if failed.is_none() && f.buf_records > 0 {
            self.shared
                .written
                .fetch_add(f.buf_records, Ordering::Relaxed);
            self.unsynced_records += f.buf_records;
            f.buf_records = 0;
            if self.unsynced_since.is_none() {
                self.unsynced_since = Some(f.last_record);
            }
        }
        if let Some(e) = failed {
            self.error("write", &e);
            return false;
        }
        true
    }

    fn flush_all(&mut self) {
        for i in 0..self.streams.len() {
            self.flush_stream(i);
        }
    }

    fn sync_all(&mut self) {
        self.flush_all();
        if self.unsynced_records == 0 {
            return;
        }
        let mut ok = true;
        for i in 0..self.streams.len() {
            if let Some(f) = self.streams[i].open.as_ref() {
                if let Err(e) = f.file.sync_data() {
                    self.error("fsync", &e);
                    ok = false;
                }
            }
        }
        if ok {
            self.mark_synced();
        }
    }

    fn mark_synced(&mut self) {
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.shared
            .synced
            .fetch_add(self.unsynced_records, Ordering::Relaxed);
        self.unsynced_records = 0;
        if let Some(t) = self.unsynced_since.take() {
            let lag = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.shared.fsync_lag_us.store(lag, Ordering::Relaxed);
        }
    }

    /// Seal files whose period is over by the wall clock and that got nothing for an interval,
    /// so an hourly file is closed soon after the hour even when traffic stops.
    fn seal_idle(&mut self) {
        if self.cfg.rotate_every == Rotate::Never {
            return;
        }
        let now_period = self.cfg.rotate_every.period(Timestamp::now());
        for i in 0..self.streams.len() {
            let idle = self.streams[i].open.as_ref().is_some_and(|f| {
                f.period < now_period && f.last_record.elapsed() >= self.cfg.fsync_interval
            });
            if idle {
                if let Err(e) = self.seal_stream(i) {
                    self.error("seal", &e);
                }
            }
        }
    }

    /// Flush, fsync, close, rename `.open` away and append the manifest line.
    fn seal_stream(&mut self, idx: usize) -> io::Result<()> {
        if self.streams[idx].open.is_none() {
            return Ok(());
        }
        if !self.flush_stream(idx) {
            return Err(io::Error::other("buffered records could not be written"));
        }
        let Some(f) = self.streams[idx].open.take() else {
            return Ok(());
        };
        if let Err(e) = f.file.sync_data() {
            self.streams[idx].open = Some(f);
            return Err(e);
        }
        let sha = files::hex(&f.hasher.finalize());
        let kind = self.streams[idx].kind;
        drop(f.file);
        let res = files::seal(
            &self.cfg.dir,
            &f.path,
            files::SealInfo {
                kind,
                records: f.records,
                bytes: f.bytes,
                first: f.first,
                last: f.last,
                sha256: sha,
            },
        );
        match res {
            Ok(name) => {
                self.shared.files_sealed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(file = %name, records = f.records, "cdr: file sealed");
                Ok(())
            }
            Err(e) => {
                // The data is safe in the .open file; the next start seals it.
                self.error("seal rename/manifest", &e);
                Ok(())
            }
        }
    }

    fn error(&self, what: &str, e: &io::Error) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(op = what, error = %e, dir = %self.cfg.dir.display(), "cdr: I/O error");
    }
}
