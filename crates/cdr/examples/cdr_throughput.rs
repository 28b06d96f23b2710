//! CDR writer throughput: records/s sustained to disk, including the final fsync and sealing.
//!
//! `cargo run --release -p hotline-cdr --example cdr_throughput -- [records] [csv|jsonl] [dir]`
//!
//! Records (calls and their attempts, synthetic) are generated up front so the figure measures
//! the writer (channel -> encode -> write -> fsync every 200 ms -> rotate -> seal), not the
//! generator. Also prints the encoder alone and the reader scan speed over what was written.

use std::time::{Duration, Instant};

use hotline_cdr::reader::scan_dir;
use hotline_cdr::{encode, spawn, synth, Format, Kind, Record, WriterConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(2_000_000), |s| s.parse())?;
    let format = args
        .get(2)
        .and_then(|s| Format::parse(s))
        .unwrap_or(Format::Csv);
    let tmp;
    let dir = match args.get(3) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };

    let from: jiff::Timestamp = "2026-11-24T00:00:00Z".parse()?;
    let t = Instant::now();
    let mut records = Vec::with_capacity(n);
    for (c, attempts) in synth::calls(42, n, from, 30, 200_000) {
        for a in attempts {
            records.push(Record::Attempt(a));
        }
        records.push(Record::Call(c));
        if records.len() >= n {
            break;
        }
    }
    records.truncate(n);
    let calls = records.iter().filter(|r| r.kind() == Kind::Call).count();
    eprintln!(
        "generated {} records ({calls} calls) in {:.2?}",
        records.len(),
        t.elapsed()
    );

    // Encoder alone.
    let mut buf = Vec::with_capacity(1 << 20);
    let t = Instant::now();
    let mut bytes = 0usize;
    for r in &records {
        encode::encode(&mut buf, format, r);
        if buf.len() > 1 << 20 {
            bytes += buf.len();
            buf.clear();
        }
    }
    bytes += buf.len();
    let enc = t.elapsed();
    println!(
        "encode only:  {:>10.0} records/s  ({:.0} MB/s, {:.0} bytes/record)",
        n as f64 / enc.as_secs_f64(),
        bytes as f64 / enc.as_secs_f64() / 1e6,
        bytes as f64 / n as f64
    );

    // Writer end to end.
    let mut cfg = WriterConfig::new(&dir);
    cfg.format = format;
    cfg.spill_limit = n; // measure throughput, not overflow
    let (sink, handle) = spawn(cfg)?;
    let t = Instant::now();
    for r in records {
        sink.submit(r);
    }
    let submitted = t.elapsed();
    let stats = handle.shutdown()?;
    let total = t.elapsed();
    println!(
        "writer:       {:>10.0} records/s  ({n} records in {total:.2?}, submit loop {submitted:.2?}; \
         {} fsyncs, {} files sealed, spilled {}, overflowed {})",
        n as f64 / total.as_secs_f64(),
        stats.fsyncs,
        stats.files_sealed,
        stats.spilled,
        stats.overflowed
    );
    if stats.overflowed > 0 || stats.written != n as u64 {
        return Err(format!("lost records: {stats:?}").into());
    }

    // Reader.
    let t = Instant::now();
    let mut talk_ms = 0u64;
    let rs = scan_dir(&dir, &[Kind::Call, Kind::Attempt], |r| {
        if let hotline_cdr::reader::RecordRef::Call(c) = r {
            talk_ms += c.talk_ms();
        }
    })?;
    let scan = t.elapsed().max(Duration::from_micros(1));
    println!(
        "reader:       {:>10.0} records/s  ({} records, {:.0} MB in {scan:.2?}; talk {} h)",
        rs.records as f64 / scan.as_secs_f64(),
        rs.records,
        rs.bytes as f64 / 1e6,
        talk_ms / 3_600_000
    );
    Ok(())
}
