//! Report scan speed over a large CDR directory.
//!
//! `cargo run --release -p hotline-cdr --example cdr_report_scan -- [calls] [dir]`
//!
//! Writes `calls` synthetic call records (default 10,000,000) into `dir` through the writer if
//! the directory has no call files yet, then times a full `report()` (all breakdowns) and a
//! `query()` with a selective filter over every file.

use std::time::{Duration, Instant};

use hotline_cdr::query::{query, CallerMatch, QueryFilter, QueryOptions};
use hotline_cdr::report::{report, ReportOptions};
use hotline_cdr::{spawn, synth, Kind, Record, Rotate, WriterConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(10_000_000), |s| s.parse())?;
    let dir = std::path::PathBuf::from(args.get(2).map_or("/tmp/cdr-scan", String::as_str));
    std::fs::create_dir_all(&dir)?;
    let have = hotline_cdr::reader::data_files(&dir, &[Kind::Call])?.len();
    if have == 0 {
        let mut cfg = WriterConfig::new(&dir);
        cfg.rotate_every = Rotate::Daily;
        let (sink, handle) = spawn(cfg)?;
        let t = Instant::now();
        // 10M calls over ~100 days.
        for (i, (c, _)) in
            synth::calls(7, n, "2026-08-01T00:00:00Z".parse()?, 864, 2_000_000).enumerate()
        {
            sink.submit(Record::Call(c));
            if i % 65_536 == 0 {
                while sink.stats().spill_depth > 100_000 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let s = handle.shutdown()?;
        eprintln!(
            "wrote {} records in {:.2?} (overflowed {})",
            s.written,
            t.elapsed(),
            s.overflowed
        );
    }
    let t = Instant::now();
    let r = report(&dir, &ReportOptions::default())?;
    let el = t.elapsed();
    println!(
        "report: {} records, {:.0} MB, {} files in {el:.2?} = {:.0} records/s (calls {}, ASR {:.1}%, {} unique callers)",
        r.read.records,
        r.read.bytes as f64 / 1e6,
        r.read.files,
        r.read.records as f64 / el.as_secs_f64(),
        r.totals.calls,
        r.totals.asr() * 100.0,
        r.unique_callers
    );
    let t = Instant::now();
    let q = query(
        &dir,
        &QueryOptions {
            filter: QueryFilter {
                number: Some("4008001234".into()),
                caller: Some(CallerMatch::Prefix("1390001".into())),
                ..QueryFilter::default()
            },
            limit: Some(100),
        },
    )?;
    let el = t.elapsed();
    println!(
        "query:  {} records scanned in {el:.2?} = {:.0} records/s ({} matched)",
        q.stats.records,
        q.stats.records as f64 / el.as_secs_f64(),
        q.matched
    );
    Ok(())
}
