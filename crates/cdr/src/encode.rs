//! Pure encoders: a record -> bytes appended to a reusable `Vec<u8>`. No I/O, no allocation
//! beyond the buffer's growth.
//!
//! * CSV: UTF-8 with a byte-order mark and a header row at the top of each file (Excel needs the
//!   BOM to read Chinese province/city names as UTF-8); RFC 4180 quoting (a field containing `,`,
//!   `"`, CR or LF is wrapped in `"` with inner quotes doubled); lines end in LF.
//! * JSON Lines: one object per line, `"v":1` schema version and `"kind"` first; absent
//!   timestamps are `null`; durations are numbers of seconds with millisecond precision.

use jiff::Timestamp;

use crate::record::{AttemptRecord, CallRecord, Kind, Record, SCHEMA_VERSION};
use crate::time::write_ts;

/// Output format of the CDR files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// File extension without the dot: `csv` / `jsonl`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" | "json-lines" | "jsonlines" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// UTF-8 byte-order mark written at the start of every CSV file.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Column names of call records, in file order (schema version 1).
pub const CALL_COLUMNS: &[&str] = &[
    "record_id",
    "call_id",
    "number",
    "company",
    "carrier",
    "caller",
    "caller_raw",
    "caller_province",
    "caller_city",
    "trunk",
    "start",
    "first_ring",
    "answer",
    "end",
    "ring_seconds",
    "talk_seconds",
    "answered_target",
    "final_code",
    "reason",
    "hangup_side",
    "disposition",
    "matched_rule",
    "config_generation",
    "config_hash",
    "attempts",
];

/// Column names of attempt records, in file order (schema version 1).
pub const ATTEMPT_COLUMNS: &[&str] = &[
    "record_id",
    "call_record_id",
    "call_id",
    "attempt",
    "target",
    "start",
    "first_ring",
    "answer",
    "end",
    "ring_seconds",
    "talk_seconds",
    "code",
    "reason",
    "number",
];

/// Columns of a record kind.
pub fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Call => CALL_COLUMNS,
        Kind::Attempt => ATTEMPT_COLUMNS,
    }
}

/// Bytes that start a new file: BOM + header row for CSV, nothing for JSON Lines.
pub fn write_preamble(out: &mut Vec<u8>, format: Format, kind: Kind) {
    if format == Format::Csv {
        out.extend_from_slice(BOM);
        for (i, c) in columns(kind).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(c.as_bytes());
        }
        out.push(b'\n');
    }
}

/// Append one record (with its line terminator) in `format`.
pub fn encode(out: &mut Vec<u8>, format: Format, rec: &Record) {
    match (format, rec) {
        (Format::Csv, Record::Call(c)) => encode_call_csv(out, c),
        (Format::Csv, Record::Attempt(a)) => encode_attempt_csv(out, a),
        (Format::Jsonl, Record::Call(c)) => encode_call_json(out, c),
        (Format::Jsonl, Record::Attempt(a)) => encode_attempt_json(out, a),
    }
}

/// [`encode`] for a borrowed call record (readers that decode into reused records).
pub fn encode_call(out: &mut Vec<u8>, format: Format, c: &CallRecord) {
    match format {
        Format::Csv => encode_call_csv(out, c),
        Format::Jsonl => encode_call_json(out, c),
    }
}

/// [`encode`] for a borrowed attempt record.
pub fn encode_attempt(out: &mut Vec<u8>, format: Format, a: &AttemptRecord) {
    match format {
        Format::Csv => encode_attempt_csv(out, a),
        Format::Jsonl => encode_attempt_json(out, a),
    }
}

/// Append an unsigned integer in decimal.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Append `ms` as seconds with exactly three decimals: 61001 -> `61.001`.
#[inline]
pub fn write_seconds(out: &mut Vec<u8>, ms: u64) {
    write_u64(out, ms / 1000);
    let r = (ms % 1000) as u32;
    out.push(b'.');
    out.push(b'0' + (r / 100) as u8);
    out.push(b'0' + (r / 10 % 10) as u8);
    out.push(b'0' + (r % 10) as u8);
}

// ---------------------------------------------------------------- CSV

/// Append one CSV field, quoted only when it has to be.
#[inline]
pub fn csv_field(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !b.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.extend_from_slice(b);
        return;
    }
    out.push(b'"');
    for &c in b {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

#[inline]
fn csv_opt_ts(out: &mut Vec<u8>, ts: Option<Timestamp>) {
    if let Some(t) = ts {
        write_ts(out, t);
    }
}

fn encode_call_csv(out: &mut Vec<u8>, c: &CallRecord) {
    for s in [
        &c.record_id,
        &c.call_id,
        &c.number,
        &c.company,
        &c.carrier,
        &c.caller,
        &c.caller_raw,
        &c.caller_province,
        &c.caller_city,
        &c.trunk,
    ] {
        csv_field(out, s);
        out.push(b',');
    }
    write_ts(out, c.start);
    out.push(b',');
    csv_opt_ts(out, c.first_ring);
    out.push(b',');
    csv_opt_ts(out, c.answer);
    out.push(b',');
    write_ts(out, c.end);
    out.push(b',');
    write_seconds(out, c.ring_ms());
    out.push(b',');
    write_seconds(out, c.talk_ms());
    out.push(b',');
    csv_field(out, &c.answered_target);
    out.push(b',');
    write_u64(out, u64::from(c.final_code));
    out.push(b',');
    csv_field(out, &c.reason);
    out.push(b',');
    out.extend_from_slice(c.hangup_side.as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(c.disposition.as_str().as_bytes());
    out.push(b',');
    csv_field(out, &c.matched_rule);
    out.push(b',');
    write_u64(out, c.config_generation);
    out.push(b',');
    csv_field(out, &c.config_hash);
    out.push(b',');
    write_u64(out, u64::from(c.attempts));
    out.push(b'\n');
}

fn encode_attempt_csv(out: &mut Vec<u8>, a: &AttemptRecord) {
    csv_field(out, &a.record_id);
    out.push(b',');
    csv_field(out, &a.call_record_id);
    out.push(b',');
    csv_field(out, &a.call_id);
    out.push(b',');
    write_u64(out, u64::from(a.attempt));
    out.push(b',');
    csv_field(out, &a.target);
    out.push(b',');
    write_ts(out, a.start);
    out.push(b',');
    csv_opt_ts(out, a.first_ring);
    out.push(b',');
    csv_opt_ts(out, a.answer);
    out.push(b',');
    write_ts(out, a.end);
    out.push(b',');
    write_seconds(out, a.ring_ms());
    out.push(b',');
    write_seconds(out, a.talk_ms());
    out.push(b',');
    write_u64(out, u64::from(a.code));
    out.push(b',');
    out.extend_from_slice(a.reason.as_str().as_bytes());
    out.push(b',');
    csv_field(out, &a.number);
    out.push(b'\n');
}

// ---------------------------------------------------------------- JSON Lines

/// Append a JSON string literal (quotes included). Non-ASCII is written as raw UTF-8.
#[inline]
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[inline]
fn json_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

#[inline]
fn json_kv_str(out: &mut Vec<u8>, key: &str, v: &str) {
    json_key(out, key);
    json_str(out, v);
}

#[inline]
fn json_kv_ts(out: &mut Vec<u8>, key: &str, v: Option<Timestamp>) {
    json_key(out, key);
    match v {
        Some(t) => {
            out.push(b'"');
            write_ts(out, t);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[inline]
fn json_kv_u64(out: &mut Vec<u8>, key: &str, v: u64) {
    json_key(out, key);
    write_u64(out, v);
}

#[inline]
fn json_kv_secs(out: &mut Vec<u8>, key: &str, ms: u64) {
    json_key(out, key);
    write_seconds(out, ms);
}

fn json_head(out: &mut Vec<u8>, kind: Kind) {
    out.extend_from_slice(b"{\"v\":");
    write_u64(out, u64::from(SCHEMA_VERSION));
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'"');
}

fn encode_call_json(out: &mut Vec<u8>, c: &CallRecord) {
    json_head(out, Kind::Call);
    json_kv_str(out, "record_id", &c.record_id);
    json_kv_str(out, "call_id", &c.call_id);
    json_kv_str(out, "number", &c.number);
    json_kv_str(out, "company", &c.company);
    json_kv_str(out, "carrier", &c.carrier);
    json_kv_str(out, "caller", &c.caller);
    json_kv_str(out, "caller_raw", &c.caller_raw);
    json_kv_str(out, "caller_province", &c.caller_province);
    json_kv_str(out, "caller_city", &c.caller_city);
    json_kv_str(out, "trunk", &c.trunk);
    json_kv_ts(out, "start", Some(c.start));
    json_kv_ts(out, "first_ring", c.first_ring);
    json_kv_ts(out, "answer", c.answer);
    json_kv_ts(out, "end", Some(c.end));
    json_kv_secs(out, "ring_seconds", c.ring_ms());
    json_kv_secs(out, "talk_seconds", c.talk_ms());
    json_kv_str(out, "answered_target", &c.answered_target);
    json_kv_u64(out, "final_code", u64::from(c.final_code));
    json_kv_str(out, "reason", &c.reason);
    json_kv_str(out, "hangup_side", c.hangup_side.as_str());
    json_kv_str(out, "disposition", c.disposition.as_str());
    json_kv_str(out, "matched_rule", &c.matched_rule);
    json_kv_u64(out, "config_generation", c.config_generation);
    json_kv_str(out, "config_hash", &c.config_hash);
    json_kv_u64(out, "attempts", u64::from(c.attempts));
    out.extend_from_slice(b"}\n");
}

fn encode_attempt_json(out: &mut Vec<u8>, a: &AttemptRecord) {
    json_head(out, Kind::Attempt);
    json_kv_str(out, "record_id", &a.record_id);
    json_kv_str(out, "call_record_id", &a.call_record_id);
    json_kv_str(out, "call_id", &a.call_id);
    json_kv_u64(out, "attempt", u64::from(a.attempt));
    json_kv_str(out, "target", &a.target);
    json_kv_ts(out, "start", Some(a.start));
    json_kv_ts(out, "first_ring", a.first_ring);
    json_kv_ts(out, "answer", a.answer);
    json_kv_ts(out, "end", Some(a.end));
    json_kv_secs(out, "ring_seconds", a.ring_ms());
    json_kv_secs(out, "talk_seconds", a.talk_ms());
    json_kv_u64(out, "code", u64::from(a.code));
    json_kv_str(out, "reason", a.reason.as_str());
    json_kv_str(out, "number", &a.number);
    out.extend_from_slice(b"}\n");
}
