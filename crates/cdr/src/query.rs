//! `hotline cdr query`: filter call records and render them as a table, CSV or JSON.

use std::path::Path;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::encode::{self, Format};
use crate::reader::{scan_calls, ReadStats};
use crate::record::{CallRecord, Disposition, Record};
use crate::CdrError;

/// How to match the caller number (normalized form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerMatch {
    Exact(String),
    Prefix(String),
}

/// Filters; every `Some` must match. Times are half-open `[from, to)` on the call's `start`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryFilter {
    /// 400 number.
    pub number: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub caller: Option<CallerMatch>,
    /// Matches the caller's province or city exactly (`广东`, `深圳`).
    pub region: Option<String>,
    /// Any of these dispositions (empty = any).
    pub dispositions: Vec<Disposition>,
    /// Substring of the answered target (`1001`, `sip:1001@10.0.0.1`).
    pub target: Option<String>,
}

impl QueryFilter {
    pub fn matches(&self, c: &CallRecord) -> bool {
        if self.number.as_deref().is_some_and(|n| n != c.number) {
            return false;
        }
        if self.from.is_some_and(|f| c.start < f) || self.to.is_some_and(|t| c.start >= t) {
            return false;
        }
        match &self.caller {
            Some(CallerMatch::Exact(x)) if *x != c.caller => return false,
            Some(CallerMatch::Prefix(p)) if !c.caller.starts_with(p.as_str()) => return false,
            _ => {}
        }
        if self
            .region
            .as_deref()
            .is_some_and(|r| r != c.caller_province && r != c.caller_city)
        {
            return false;
        }
        if !self.dispositions.is_empty() && !self.dispositions.contains(&c.disposition) {
            return false;
        }
        if self
            .target
            .as_deref()
            .is_some_and(|t| !c.answered_target.contains(t))
        {
            return false;
        }
        true
    }
}

/// Query options.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    pub filter: QueryFilter,
    /// Keep only the most recent `limit` matches (by start time).
    pub limit: Option<usize>,
}

/// Matching call records, oldest first.
#[derive(Clone, Debug, Default)]
pub struct QueryResult {
    pub records: Vec<CallRecord>,
    /// Matches in total (before `limit`).
    pub matched: u64,
    pub stats: ReadStats,
}

fn sort_calls(v: &mut [CallRecord]) {
    v.sort_by(|a, b| (a.start, &a.record_id).cmp(&(b.start, &b.record_id)));
}

/// Scan `dir` and return the matching call records.
pub fn query(dir: &Path, opts: &QueryOptions) -> Result<QueryResult, CdrError> {
    let mut out = Vec::new();
    let mut matched = 0u64;
    let stats = scan_calls(dir, |c| {
        if opts.filter.matches(c) {
            matched += 1;
            out.push(c.clone());
            if let Some(l) = opts.limit {
                if out.len() >= l.saturating_mul(2).max(1024) {
                    sort_calls(&mut out);
                    let cut = out.len() - l;
                    out.drain(..cut);
                }
            }
        }
    })?;
    sort_calls(&mut out);
    if let Some(l) = opts.limit {
        let cut = out.len().saturating_sub(l);
        out.drain(..cut);
    }
    Ok(QueryResult {
        records: out,
        matched,
        stats,
    })
}

/// Output of `query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text columns, local times in the given zone.
    Table,
    /// The file schema (header row, no BOM), UTC times.
    Csv,
    /// A JSON array of records in the JSON Lines schema, UTC times.
    Json,
}

/// Render records as `format`; `tz` is used for the table's local times.
pub fn render_calls(records: &[CallRecord], format: OutputFormat, tz: &TimeZone) -> String {
    match format {
        OutputFormat::Csv => {
            let mut out = Vec::new();
            encode::write_preamble(&mut out, Format::Csv, crate::Kind::Call);
            out.drain(..encode::BOM.len());
            for c in records {
                encode::encode(&mut out, Format::Csv, &Record::Call(c.clone()));
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        OutputFormat::Json => {
            let mut out = Vec::from(&b"["[..]);
            for (i, c) in records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'\n');
                encode::encode(&mut out, Format::Jsonl, &Record::Call(c.clone()));
                out.pop(); // the line's LF
            }
            out.extend_from_slice(b"\n]\n");
            String::from_utf8_lossy(&out).into_owned()
        }
        OutputFormat::Table => {
            let header = [
                "start", "number", "caller", "region", "result", "ring", "talk", "target", "code",
            ];
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|c| {
                    vec![
                        local_time(c.start, tz),
                        c.number.clone(),
                        c.caller.clone(),
                        format!("{}{}", c.caller_province, region_city(c)),
                        c.disposition.as_str().to_string(),
                        format!("{:.1}", c.ring_seconds()),
                        format!("{:.1}", c.talk_seconds()),
                        c.answered_target.clone(),
                        c.final_code.to_string(),
                    ]
                })
                .collect();
            table(&header, &rows)
        }
    }
}

fn region_city(c: &CallRecord) -> String {
    if c.caller_city.is_empty() || c.caller_city == c.caller_province {
        String::new()
    } else {
        format!(" {}", c.caller_city)
    }
}

/// `2026-11-24 18:00:00` in `tz`.
pub fn local_time(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Display width: CJK and other wide characters count 2.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = u32::from(c);
            if (0x1100..=0x115F).contains(&u)
                || (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Render an aligned text table (two spaces between columns, no trailing spaces).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(display_width(c));
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            let pad = w
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(display_width(c));
            s.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}
