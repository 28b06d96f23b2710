//! The shipper against a real `nats-server` (started by the test on a free port with a scratch
//! store): every record once, restart from the checkpoint, a crash between publish and
//! checkpoint (no duplicate), a refused subject (reported, retried, not dropped), NATS stopped
//! and started again (lag rises and returns to 0).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hotline_cdr::reader::RecordRef;
use hotline_cdr::{Format, Kind, Record, WriterConfig};
use hotline_ship::cursor::{Cursor, Next, Position};
use hotline_ship::source::{self, SourceOptions};
use hotline_ship::{ShipConfig, ShipHandle, ShipSnapshot};
use hotline_testkit::NatsServer;
use jiff::Timestamp;

fn records(n: usize, seed: u64, from_s: i64) -> Vec<Record> {
    let from = Timestamp::from_second(from_s).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut out = Vec::new();
    for (call, attempts) in hotline_cdr::synth::calls(seed, n, from, 1000, 50) {
        out.extend(attempts.into_iter().map(Record::Attempt));
        out.push(Record::Call(call));
    }
    out
}

/// Write records through the real writer (small files: many rotations) and seal them.
fn write(dir: &Path, recs: &[Record], format: Format) {
    let mut cfg = WriterConfig::new(dir);
    cfg.format = format;
    cfg.rotate_every = hotline_cdr::Rotate::Never;
    cfg.rotate_bytes = 64 * 1024;
    let (sink, handle) = hotline_cdr::spawn(cfg).expect("writer");
    for r in recs {
        sink.submit(r.clone());
    }
    let _ = handle.shutdown();
}

fn config(dir: &Path, nats: &NatsServer, node: &str) -> ShipConfig {
    let mut c = ShipConfig::new(dir, vec![nats.url()], node);
    c.poll_interval = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(300);
    c.ack_timeout = Duration::from_secs(2);
    c.batch = 200;
    c
}

fn wait(h: &ShipHandle, what: &str, timeout: Duration, ok: impl Fn(&ShipSnapshot) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let s = h.stats().snapshot();
        if ok(&s) {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}: {s:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (calls, attempts, record ids → count, subjects → count) in the stream.
fn stream_contents(nats: &NatsServer) -> (u64, u64, HashMap<String, u32>, source::SourceStats) {
    let opts = SourceOptions::new(&nats.url(), "CDR", "cdr.>");
    let (mut calls, mut attempts) = (0, 0);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let stats = source::scan(&opts, |r, meta| {
        assert!(
            meta.node.starts_with('n'),
            "node from the Nats-Msg-Id: {}",
            meta.node
        );
        let id = match r {
            RecordRef::Call(c) => {
                calls += 1;
                c.record_id.clone()
            }
            RecordRef::Attempt(a) => {
                attempts += 1;
                assert!(!a.number.is_empty(), "attempt carries its number");
                a.record_id.clone()
            }
        };
        *ids.entry(id).or_default() += 1;
    })
    .expect("reading the stream");
    (calls, attempts, ids, stats)
}

/// Every record id of `kind` in `dir` with the position after it, in the shipper's order.
fn ids_in_file_order(dir: &Path, kind: Kind) -> Vec<(String, Position)> {
    let mut cur = Cursor::new(dir, kind, Position::default(), true);
    let mut out = Vec::new();
    loop {
        let id = match cur.advance().unwrap_or_else(|e| panic!("{e}")) {
            Next::Record(Some(RecordRef::Call(c))) => c.record_id.clone(),
            Next::Record(Some(RecordRef::Attempt(a))) => a.record_id.clone(),
            Next::Record(None) | Next::Bad(_) => continue,
            Next::Pending => return out,
        };
        out.push((id, cur.position().clone()));
    }
}

fn count(recs: &[Record]) -> (u64, u64) {
    let calls = recs.iter().filter(|r| r.kind() == Kind::Call).count() as u64;
    (calls, recs.len() as u64 - calls)
}

#[test]
fn every_record_once_then_nothing_again_after_a_restart_or_a_lost_checkpoint() {
    let nats = NatsServer::start();
    for (i, format) in [Format::Csv, Format::Jsonl].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let recs = records(3000, 11 + i as u64, 1_795_860_000 + i as i64 * 10_000);
        write(dir.path(), &recs, format);
        let total = recs.len() as u64;
        let before = if i == 0 {
            0
        } else {
            stream_contents(&nats).3.records
        };

        // The largest batch the config allows (all of a batch is in flight at once).
        let mut big = config(dir.path(), &nats, &format!("n{i}"));
        big.batch = 4096;
        let h = hotline_ship::spawn(big).unwrap_or_else(|e| panic!("{e}"));
        wait(&h, "all shipped", Duration::from_secs(20), |s| {
            s.published == total && s.lag_records == 0
        });
        let s = h.shutdown(Duration::from_secs(1));
        assert_eq!(s.duplicates, 0, "{s:?}");

        // Restart from the checkpoint: nothing to publish.
        let h = hotline_ship::spawn(config(dir.path(), &nats, &format!("n{i}")))
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(300));
        let s = h.shutdown(Duration::from_secs(1));
        assert_eq!(
            (s.published, s.duplicates, s.lag_records),
            (0, 0, 0),
            "{s:?}"
        );

        // A crash after publishing, before the checkpoint was saved: everything is published
        // again and JetStream drops every copy (same Nats-Msg-Id within the duplicate window).
        let cp = dir.path().join(hotline_ship::DEFAULT_CHECKPOINT);
        std::fs::remove_file(&cp).unwrap_or_else(|e| panic!("{e}"));
        let h = hotline_ship::spawn(config(dir.path(), &nats, &format!("n{i}")))
            .unwrap_or_else(|e| panic!("{e}"));
        wait(&h, "all re-published", Duration::from_secs(20), |s| {
            s.duplicates == total && s.lag_records == 0
        });
        let s = h.shutdown(Duration::from_secs(1));
        assert_eq!(s.published, 0, "{s:?}");

        let (calls, attempts, ids, stats) = stream_contents(&nats);
        assert_eq!(stats.records - before, total, "{stats:?}");
        assert_eq!(stats.duplicates, 0, "the stream holds no copy: {stats:?}");
        let (want_calls, want_attempts) = count(&recs);
        assert!(calls >= want_calls && attempts >= want_attempts);
        for r in &recs {
            let id = match r {
                Record::Call(c) => &c.record_id,
                Record::Attempt(a) => &a.record_id,
            };
            assert_eq!(ids.get(id), Some(&1), "{id} once in the stream");
        }
    }
}

#[test]
fn a_refused_subject_is_reported_and_retried_until_the_stream_takes_it() {
    let nats = NatsServer::start();
    // The operator's stream takes only one number's subject.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = nats.url();
    let js = rt.block_on(async {
        let client = async_nats::connect(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "CDR".into(),
            subjects: vec!["cdr.4008001234".into()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        js
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let recs = records(60, 5, 1_795_870_000);
    write(dir.path(), &recs, Format::Csv);
    let total = recs.len() as u64;
    let h = hotline_ship::spawn(config(dir.path(), &nats, "n1")).unwrap_or_else(|e| panic!("{e}"));
    wait(
        &h,
        "publish errors reported",
        Duration::from_secs(20),
        |s| s.publish_errors >= 3 && s.failing && s.lag_records > 0,
    );
    let stuck = h.stats().snapshot();
    assert!(stuck.published < total, "{stuck:?}");
    // Records of the one number the stream takes are stored past the refused ones in the same
    // window; the checkpoint still stops before the first refused record of each kind.
    let (_, _, in_stream, _) = stream_contents(&nats);
    let cp = hotline_ship::checkpoint::load(&dir.path().join(hotline_ship::DEFAULT_CHECKPOINT))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    let mut behind = 0;
    for (kind, at) in [(Kind::Call, &cp.call), (Kind::Attempt, &cp.attempt)] {
        let all = ids_in_file_order(dir.path(), kind);
        let first_refused = all.iter().position(|(id, _)| !in_stream.contains_key(id));
        for (id, pos) in &all {
            if (pos.file.as_str(), pos.offset) <= (at.file.as_str(), at.offset) {
                assert!(
                    in_stream.contains_key(id),
                    "{id} is behind the checkpoint {at:?} and not in the stream"
                );
            } else if in_stream.contains_key(id) {
                behind += 1;
            }
        }
        assert!(first_refused.is_some(), "{kind:?}: a record is refused");
    }
    assert!(
        behind > 0,
        "records after a refused one were stored (acks past a failure)"
    );
    // Fix the stream: the waiting records go in, none lost, none twice.
    rt.block_on(async {
        js.update_stream(async_nats::jetstream::stream::Config {
            name: "CDR".into(),
            subjects: vec!["cdr.>".into()],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    });
    wait(&h, "shipped after the fix", Duration::from_secs(20), |s| {
        s.lag_records == 0 && !s.failing
    });
    let s = h.shutdown(Duration::from_secs(1));
    assert_eq!(s.published, total, "{s:?}");
    let (_, _, ids, stats) = stream_contents(&nats);
    assert_eq!(stats.records, total);
    assert!(ids.values().all(|n| *n == 1));
}

#[test]
fn nats_stopped_then_back_lag_rises_and_returns_to_zero() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = records(50, 21, 1_795_880_000);
    let mut cfg = WriterConfig::new(dir.path());
    cfg.rotate_every = hotline_cdr::Rotate::Never;
    cfg.fsync_interval = Duration::from_millis(20);
    let (sink, writer) = hotline_cdr::spawn(cfg).unwrap_or_else(|e| panic!("{e}"));
    for r in &first {
        sink.submit(r.clone());
    }
    let h = hotline_ship::spawn(config(dir.path(), &nats, "n1")).unwrap_or_else(|e| panic!("{e}"));
    wait(&h, "first part shipped", Duration::from_secs(20), |s| {
        s.published == first.len() as u64 && s.lag_records == 0
    });
    nats.stop().unwrap_or_else(|e| panic!("{e}"));
    // The writer keeps writing (the open file grows) while NATS is away.
    let second = records(80, 22, 1_795_890_000);
    for r in &second {
        sink.submit(r.clone());
    }
    wait(&h, "lag rises", Duration::from_secs(10), |s| {
        s.lag_records == second.len() as u64 && !s.connected
    });
    wait(&h, "lag grows past 1 s", Duration::from_secs(10), |s| {
        s.lag >= Duration::from_secs(1)
    });
    let during = h.stats().snapshot();
    assert!(during.lag >= Duration::from_secs(1), "{during:?}");
    nats.start_again().unwrap_or_else(|e| panic!("{e}"));
    wait(&h, "lag back to 0", Duration::from_secs(30), |s| {
        s.lag_records == 0 && s.lag.is_zero()
    });
    let s = h.shutdown(Duration::from_secs(1));
    let _ = writer.shutdown();
    let total = (first.len() + second.len()) as u64;
    assert_eq!(s.published, total, "{s:?}");
    let (_, _, ids, stats) = stream_contents(&nats);
    assert_eq!(stats.records, total, "{stats:?}");
    assert!(ids.values().all(|n| *n == 1));
}

#[test]
fn reading_an_empty_stream_or_a_number_without_records_ends_at_once() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // No stream yet: a clear error, not a hang.
    let opts = SourceOptions::new(&nats.url(), "CDR", "cdr.>");
    let err = source::scan(&opts, |_, _| {}).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("stream")),
        "{err:?}"
    );
    // The shipper creates it (empty: no CDR files yet).
    let h = hotline_ship::spawn(config(dir.path(), &nats, "n1")).unwrap_or_else(|e| panic!("{e}"));
    wait(&h, "stream created", Duration::from_secs(10), |s| {
        s.stream_ready
    });
    let t0 = Instant::now();
    let s = source::scan(&opts, |_, _| panic!("no record expected"));
    assert_eq!(s.ok().map(|s| s.records), Some(0));
    write(dir.path(), &records(20, 9, 1_795_900_000), Format::Csv);
    wait(&h, "shipped", Duration::from_secs(20), |s| {
        s.published > 0 && s.lag_records == 0
    });
    let none = SourceOptions::new(&nats.url(), "CDR", "cdr.4009999999");
    let s = source::scan(&none, |_, _| panic!("no record of that number"));
    assert_eq!(s.ok().map(|s| s.records), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let _ = h.shutdown(Duration::ZERO);
}
