//! `--source nats://...` for `hotline cdr report` and `hotline bill`, and `hotline cdr tail`:
//! the whole platform's records from the JetStream stream the nodes ship to (`hotline-ship`),
//! with the same figures and output as from a CDR directory. Stream name and subject prefix
//! come from `--stream` / `[server.cdr.ship]` of `--config`, else `CDR` / `cdr`.
//!
//! Exit status: 0 done, 1 the stream cannot be read, 2 bad arguments.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;
use hotline_cdr::billing::{self, BillFormat, Month, UsageBook};
use hotline_cdr::reader::{ReadStats, RecordRef};
use hotline_cdr::report::{self, ReportBuilder, ReportFormat, ReportOptions};
use hotline_cdr::Format;
use hotline_ship::source::{self, Meta, SourceOptions, SourceStats};

use crate::cdr::{BillFmt, Filter, ReportFmt};

/// The stream to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub url: String,
    pub name: String,
    pub prefix: String,
}

/// `--source` with `--stream` or the config's `[server.cdr.ship]` (defaults `CDR`, `cdr`).
pub fn stream_of(url: &str, stream: Option<&str>, config: Option<&Path>) -> Result<Stream, String> {
    let ship = match config {
        Some(_) => crate::load(config)?.settings.cdr.ship,
        None => None,
    };
    let (name, prefix) = match &ship {
        Some(s) => (s.stream.clone(), s.subject_prefix.clone()),
        None => ("CDR".to_string(), "cdr".to_string()),
    };
    Ok(Stream {
        url: url.to_string(),
        name: stream.map_or(name, str::to_string),
        prefix,
    })
}

impl Stream {
    fn options(&self, number: Option<&str>) -> SourceOptions {
        let subject = match number {
            Some(n) => hotline_ship::message::subject(&self.prefix, n),
            None => format!("{}.>", self.prefix),
        };
        SourceOptions::new(&self.url, &self.name, &subject)
    }
}

fn fail(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(code)
}

fn note(s: &SourceStats) {
    if s.bad > 0 || s.duplicates > 0 {
        eprintln!(
            "note: {} undecodable message(s) and {} duplicate(s) skipped",
            s.bad, s.duplicates
        );
    }
}

fn read_stats(s: &SourceStats) -> ReadStats {
    ReadStats {
        records: s.records,
        bad: s.bad,
        ..ReadStats::default()
    }
}

/// `hotline cdr report --source`.
pub fn report(
    src: &Stream,
    filter: &Filter,
    top: usize,
    format: ReportFmt,
    html: Option<&Path>,
) -> ExitCode {
    let f = match filter.to_query() {
        Ok(f) => f,
        Err(e) => return fail(e, 2),
    };
    let opts = ReportOptions {
        filter: f,
        top,
        ..ReportOptions::default()
    };
    let mut b = ReportBuilder::new(opts);
    let read = source::scan(&src.options(filter.number.as_deref()), |r, _| {
        if let RecordRef::Call(c) = r {
            b.add(c);
        }
    });
    let stats = match read {
        Ok(s) => s,
        Err(e) => return fail(format!("{}: {e}", src.url), 1),
    };
    let r = b.finish(read_stats(&stats));
    if let Some(path) = html {
        if let Err(e) = std::fs::write(path, report::render_report(&r, ReportFormat::Html)) {
            return fail(format!("{}: {e}", path.display()), 1);
        }
        eprintln!("HTML report written to {}", path.display());
    }
    let fmt = match format {
        ReportFmt::Text => ReportFormat::Text,
        ReportFmt::Json => ReportFormat::Json,
        ReportFmt::Html => ReportFormat::Html,
    };
    print!("{}", report::render_report(&r, fmt));
    note(&stats);
    ExitCode::SUCCESS
}

/// `hotline bill --source`.
pub fn bill(src: &Stream, month: &str, rates: &Path, format: BillFmt) -> ExitCode {
    let Some(m) = Month::parse(month) else {
        return fail(
            format!("--month {month:?}: expected YYYY-MM, e.g. 2026-11"),
            2,
        );
    };
    let cfg = match hotline_config::billing::load_billing(rates) {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", rates.display()), 1),
    };
    let end = billing::billed_until(&cfg, m);
    let mut book = UsageBook::default();
    let read = source::scan(&src.options(None), |r, _| {
        if let RecordRef::Call(c) = r {
            if c.start < end {
                book.add(&cfg, c);
            }
        }
    });
    let stats = match read {
        Ok(s) => s,
        Err(e) => return fail(format!("{}: {e}", src.url), 1),
    };
    let mut b = billing::bill_from_usage(&cfg, &book, m);
    b.read = read_stats(&stats);
    let fmt = match format {
        BillFmt::Table => BillFormat::Table,
        BillFmt::Csv => BillFormat::Csv,
        BillFmt::Json => BillFormat::Json,
    };
    print!("{}", billing::render_bill(&b, fmt));
    note(&stats);
    ExitCode::SUCCESS
}

/// `hotline cdr tail` output.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailFmt {
    /// One line per record: local time, node, kind, number and the outcome.
    Text,
    /// The records as JSON Lines (the stream's payload).
    Jsonl,
}

/// One record as a `tail` line.
pub fn tail_line(r: RecordRef<'_>, meta: &Meta<'_>, format: TailFmt, out: &mut Vec<u8>) {
    out.clear();
    match format {
        TailFmt::Jsonl => match r {
            RecordRef::Call(c) => hotline_cdr::encode::encode_call(out, Format::Jsonl, c),
            RecordRef::Attempt(a) => hotline_cdr::encode::encode_attempt(out, Format::Jsonl, a),
        },
        TailFmt::Text => {
            let tz = report::china_tz();
            let line = match r {
                RecordRef::Call(c) => format!(
                    "{}  {:<10} call     {:<10}  {:<13} {:<12} {:>3} talk {:>7.1}s  {}\n",
                    hotline_cdr::query::local_time(c.end, &tz),
                    meta.node,
                    c.number,
                    c.caller,
                    c.disposition.as_str(),
                    c.final_code,
                    c.talk_seconds(),
                    c.answered_target
                ),
                RecordRef::Attempt(a) => format!(
                    "{}  {:<10} attempt  {:<10}  #{:<12} {:<12} {:>3} {}\n",
                    hotline_cdr::query::local_time(a.end, &tz),
                    meta.node,
                    a.number,
                    a.attempt,
                    a.reason.as_str(),
                    a.code,
                    a.target
                ),
            };
            out.extend_from_slice(line.as_bytes());
        }
    }
}

/// `hotline cdr tail [--follow]`: the last `last` records of the stream, then (with `follow`)
/// every new one as it arrives, until interrupted.
pub fn tail(
    src: &Stream,
    number: Option<&str>,
    last: u64,
    follow: bool,
    format: TailFmt,
) -> ExitCode {
    let stdout = std::io::stdout();
    let mut buf = Vec::new();
    let mut broken = false;
    let res = source::tail(&src.options(number), last, follow, |r, meta| {
        if broken {
            return;
        }
        tail_line(r, meta, format, &mut buf);
        let mut o = stdout.lock();
        // A closed pipe (`| head`) ends the output, not the process with a panic.
        if o.write_all(&buf).and_then(|()| o.flush()).is_err() {
            broken = true;
        }
    });
    match res {
        Ok(s) => {
            note(&s);
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{}: {e}", src.url), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_cdr::{AttemptRecord, CallRecord, Disposition};

    #[test]
    fn stream_defaults_and_subjects() {
        let s = stream_of("nats://127.0.0.1:4222", None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.name.as_str(), s.prefix.as_str()), ("CDR", "cdr"));
        assert_eq!(s.options(None).subject, "cdr.>");
        assert_eq!(s.options(Some("4008001234")).subject, "cdr.4008001234");
        let s = stream_of("nats://x:1", Some("OTHER"), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.name, "OTHER");
    }

    #[test]
    fn tail_lines() {
        let t = "2026-11-24T10:00:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut c = CallRecord::empty(t);
        c.number = "4008001234".into();
        c.caller = "13800138000".into();
        c.disposition = Disposition::Answered;
        c.final_code = 200;
        let meta = Meta {
            node: "n1",
            sequence: 1,
            stored: t,
        };
        let mut out = Vec::new();
        tail_line(RecordRef::Call(&c), &meta, TailFmt::Text, &mut out);
        let line = String::from_utf8_lossy(&out);
        assert!(line.starts_with("2026-11-24 18:00:00"), "{line}");
        assert!(line.contains("n1") && line.contains("4008001234") && line.contains("answered"));
        let a = AttemptRecord::empty(t);
        tail_line(RecordRef::Attempt(&a), &meta, TailFmt::Jsonl, &mut out);
        assert!(out.starts_with(b"{\"v\":1,\"kind\":\"attempt\""));
    }
}
