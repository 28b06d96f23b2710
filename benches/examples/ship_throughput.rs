//! CDR shipper throughput: records per second from sealed CDR files into a local JetStream
//! stream (a real `nats-server` started here on a free port with a scratch store), and CPU per
//! record of the shipper and of nats-server.
//!
//! ```text
//! cargo run --release -p hotline-benches --example ship_throughput -- 200000 [batch]
//! ```
//!
//! N synthetic calls with their attempts are written through the real CDR writer (CSV, sealed)
//! first; the clock runs from the shipper's start until JetStream has acknowledged every record.
//! Both processes share the machine's cores: on a busy box the figure is a floor.

use std::time::{Duration, Instant};

use hotline_cdr::{Record, WriterConfig};
use hotline_testkit::NatsServer;

/// utime + stime of a process or thread from its `/proc/.../stat`, in seconds.
fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15 (1-based).
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // `rest` starts at field 3 (state), so utime (14) is index 11, stime (15) index 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let from = jiff::Timestamp::from_second(1_795_860_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut cfg = WriterConfig::new(dir.path());
    cfg.rotate_every = hotline_cdr::Rotate::Never;
    let (sink, writer) = hotline_cdr::spawn(cfg).unwrap_or_else(|e| panic!("writer: {e}"));
    let mut records = 0u64;
    for (call, attempts) in hotline_cdr::synth::calls(1, calls, from, 100, 5000) {
        for a in attempts {
            sink.submit(Record::Attempt(a));
            records += 1;
        }
        sink.submit(Record::Call(call));
        records += 1;
        if records.is_multiple_of(50_000) {
            // Let the writer keep up instead of spilling.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let stats = writer.shutdown().unwrap_or_else(|e| panic!("writer: {e}"));
    assert_eq!(stats.overflowed, 0, "writer overflow: {stats:?}");
    let nats = NatsServer::start();
    let mut ship = hotline_ship::ShipConfig::new(dir.path(), vec![nats.url()], "bench");
    ship.batch = batch;
    ship.poll_interval = Duration::from_millis(10);
    let nats_stat = format!("/proc/{}/stat", nats.pid().unwrap_or(0));
    let cpu0 = cpu_seconds("/proc/self/stat");
    let ncpu0 = cpu_seconds(&nats_stat);
    let t0 = Instant::now();
    let h = hotline_ship::spawn(ship).unwrap_or_else(|e| panic!("ship: {e}"));
    loop {
        let s = h.stats().snapshot();
        if s.published + s.duplicates >= records && s.lag_records == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(600) {
            panic!("not done in 10 min: {s:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/self/stat") - cpu0;
    let ncpu = cpu_seconds(&nats_stat) - ncpu0;
    let s = h.shutdown(Duration::ZERO);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{records} records ({calls} calls + attempts), batch {batch}: {wall:.2} s, {:.0} records/s; \
         shipper CPU {:.2} us/record, nats-server CPU {:.2} us/record; {} batches; load avg {}",
        records as f64 / wall,
        cpu * 1e6 / records as f64,
        ncpu * 1e6 / records as f64,
        s.batches,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
