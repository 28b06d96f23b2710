//! Call records (来电记录) and statistics of one company, read from the CDR files. A record
//! belongs to the company its CDR names (the owner of the number when the call came in), so
//! a number that changes hands does not take its old calls along.

use std::path::Path;

use hotline_cdr::report::{china_tz, Counts, ReportBuilder, ReportOptions};
use hotline_cdr::CallRecord;
use jiff::Timestamp;

use crate::model::{Bucket, CallList, CallRow, Stats};

/// Which calls.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub company: String,
    pub number: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Filter {
    fn matches(&self, c: &CallRecord) -> bool {
        c.company == self.company
            && self.number.as_deref().map_or(true, |n| n == c.number)
            && self.since.map_or(true, |s| c.start >= s)
            && self.until.map_or(true, |u| c.start < u)
    }
}

fn row(c: &CallRecord) -> CallRow {
    CallRow {
        record_id: c.record_id.clone(),
        number: c.number.clone(),
        caller: c.caller.clone(),
        province: c.caller_province.clone(),
        city: c.caller_city.clone(),
        start: c.start.to_string(),
        answer: c.answer.map(|a| a.to_string()),
        end: c.end.to_string(),
        disposition: c.disposition.as_str().to_string(),
        code: c.final_code,
        attempts: c.attempts,
        target: c.answered_target.clone(),
        ring_seconds: c.ring_seconds(),
        talk_seconds: c.talk_seconds(),
    }
}

/// The most recent `limit` matching calls, oldest first. A missing CDR directory is no calls.
pub fn calls(dir: &Path, f: &Filter, limit: usize) -> Result<CallList, String> {
    let mut out: Vec<CallRecord> = Vec::new();
    let mut matched = 0u64;
    if dir.is_dir() {
        hotline_cdr::reader::scan_calls(dir, |c| {
            if f.matches(c) {
                matched += 1;
                out.push(c.clone());
                if out.len() > limit.saturating_mul(2).max(1024) {
                    out.sort_by(|a, b| (a.start, &a.record_id).cmp(&(b.start, &b.record_id)));
                    let cut = out.len() - limit;
                    out.drain(..cut);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    }
    out.sort_by(|a, b| (a.start, &a.record_id).cmp(&(b.start, &b.record_id)));
    let cut = out.len().saturating_sub(limit);
    out.drain(..cut);
    Ok(CallList {
        matched,
        calls: out.iter().map(row).collect(),
    })
}

fn bucket(key: String, c: &Counts) -> Bucket {
    Bucket {
        key,
        calls: c.calls,
        answered: c.answered,
        missed: c.missed,
        talk_seconds: c.talk_ms as f64 / 1000.0,
    }
}

/// The company's statistics: by local hour, day, caller province, number, target.
pub fn stats(dir: &Path, f: &Filter) -> Result<Stats, String> {
    let mut b = ReportBuilder::new(ReportOptions {
        top: 0,
        ..ReportOptions::default()
    });
    let mut read = hotline_cdr::reader::ReadStats::default();
    if dir.is_dir() {
        read = hotline_cdr::reader::scan_calls(dir, |c| {
            if f.matches(c) {
                b.add(c);
            }
        })
        .map_err(|e| e.to_string())?;
    }
    let r = b.finish(read);
    let list = |v: &[(String, Counts)]| -> Vec<Bucket> {
        v.iter()
            .map(|(k, c)| {
                bucket(
                    if k.is_empty() {
                        "unknown".into()
                    } else {
                        k.clone()
                    },
                    c,
                )
            })
            .collect()
    };
    Ok(Stats {
        tz: china_tz().iana_name().unwrap_or("UTC+08:00").to_string(),
        calls: r.totals.calls,
        answered: r.totals.answered,
        asr: r.totals.asr(),
        acd_seconds: r.totals.acd_seconds(),
        by_hour: r
            .by_hour
            .iter()
            .enumerate()
            .map(|(h, c)| bucket(format!("{h:02}"), c))
            .collect(),
        by_day: list(&r.by_day),
        by_region: list(&r.by_province),
        by_number: list(&r.by_number),
        by_target: list(&r.by_target),
    })
}
