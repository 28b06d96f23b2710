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
use crate::time::{write_ts, TsFormat};

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
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = Fixed::<20>::new();
    b.u64(v);
    b.append_to(out);
}

/// Append `ms` as seconds with exactly three decimals: 61001 -> `61.001`.
#[inline]
pub fn write_seconds(out: &mut Vec<u8>, ms: u64) {
    let mut b = Fixed::<24>::new();
    b.seconds(ms);
    b.append_to(out);
}

/// The decimal digits of `v`.
#[inline]
fn decimal_len(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// A record's fixed-width and numeric parts (timestamps, durations, codes, separators)
/// assembled on the stack and appended to the output at once, instead of a capacity-checked
/// push per separator and digit. `N` is sized for the longest run written through it; an
/// index past it would panic, so each use is sized by what it writes (see the callers).
struct Fixed<const N: usize> {
    b: [u8; N],
    n: usize,
    ts: TsFormat,
}

impl<const N: usize> Fixed<N> {
    #[inline]
    fn new() -> Self {
        Fixed {
            b: [0; N],
            n: 0,
            ts: TsFormat::new(),
        }
    }

    #[inline]
    fn byte(&mut self, c: u8) {
        self.b[self.n] = c;
        self.n += 1;
    }

    #[inline]
    fn bytes(&mut self, s: &[u8]) {
        self.b[self.n..self.n + s.len()].copy_from_slice(s);
        self.n += s.len();
    }

    /// `v` in decimal, digits written in place from the last.
    #[inline]
    fn u64(&mut self, mut v: u64) {
        let end = self.n + decimal_len(v);
        let mut i = end;
        loop {
            i -= 1;
            self.b[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.n = end;
    }

    /// `ms` as seconds with three decimals, as [`write_seconds`].
    #[inline]
    fn seconds(&mut self, ms: u64) {
        self.u64(ms / 1000);
        let r = (ms % 1000) as u32;
        self.bytes(&[
            b'.',
            b'0' + (r / 100) as u8,
            b'0' + (r / 10 % 10) as u8,
            b'0' + (r % 10) as u8,
        ]);
    }

    /// A timestamp as [`write_ts`]; one outside years 0000..=9999 (variable width) flushes
    /// what is assembled and goes to `out` directly.
    #[inline]
    fn ts(&mut self, out: &mut Vec<u8>, ts: Timestamp) {
        match self.ts.fixed(ts) {
            Some(t) => self.bytes(&t),
            None => {
                self.append_to(out);
                self.n = 0;
                write_ts(out, ts);
            }
        }
    }

    #[inline]
    fn opt_ts(&mut self, out: &mut Vec<u8>, ts: Option<Timestamp>) {
        if let Some(t) = ts {
            self.ts(out, t);
        }
    }

    /// Append what is assembled and start over.
    #[inline]
    fn append_to(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.b[..self.n]);
        self.n = 0;
    }
}

// ---------------------------------------------------------------- CSV

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Nonzero iff a byte of `w` is below `n` (`n` <= 0x80; exact as a yes/no, the classic
/// "has less" word test).
#[inline]
const fn has_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGHS
}

/// Nonzero iff a byte of `w` equals `c`.
#[inline]
const fn has_byte(w: u64, c: u8) -> u64 {
    has_below(w ^ (ONES * c as u64), 1)
}

/// Whether 8 bytes hold `,` `"` LF or CR. All four are below `-` (0x2D), and most words of a
/// CDR (digits, letters, `@` `.` `-` `:`, UTF-8) have no byte below it, so they take one test.
#[inline]
const fn word_needs_quotes(w: u64) -> bool {
    has_below(w, b'-') != 0
        && (has_byte(w, b',') | has_byte(w, b'"') | has_byte(w, b'\n') | has_byte(w, b'\r')) != 0
}

#[inline]
fn is_special(c: u8) -> bool {
    matches!(c, b',' | b'"' | b'\n' | b'\r')
}

#[inline]
fn load8(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Whether a field must be quoted (RFC 4180): it holds `,` `"` CR or LF. Eight bytes at a
/// time, the last word overlapping the one before (a byte seen twice changes no answer).
#[inline]
fn needs_quotes(b: &[u8]) -> bool {
    if b.len() < 8 {
        return b.iter().any(|&c| is_special(c));
    }
    let mut words = b.chunks_exact(8);
    if words.any(|w| word_needs_quotes(load8(w))) {
        return true;
    }
    !b.len().is_multiple_of(8) && word_needs_quotes(load8(&b[b.len() - 8..]))
}

/// Append one CSV field, quoted only when it has to be.
#[inline]
pub fn csv_field(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !needs_quotes(b) {
        out.extend_from_slice(b);
        return;
    }
    // Quoted, each inner `"` doubled: the runs between quotes are copied whole.
    out.push(b'"');
    let mut runs = b.split(|&c| c == b'"');
    if let Some(first) = runs.next() {
        out.extend_from_slice(first);
    }
    for run in runs {
        out.extend_from_slice(b"\"\"");
        out.extend_from_slice(run);
    }
    out.push(b'"');
}

/// [`csv_field`] then `sep`.
#[inline]
fn csv_field_then(out: &mut Vec<u8>, s: &str, sep: u8) {
    csv_field(out, s);
    out.push(sep);
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
        csv_field_then(out, s, b',');
    }
    // Widest run: four timestamps and two durations with their commas, 4 * 30 + 2 * 25.
    let mut f = Fixed::<176>::new();
    f.ts(out, c.start);
    f.byte(b',');
    f.opt_ts(out, c.first_ring);
    f.byte(b',');
    f.opt_ts(out, c.answer);
    f.byte(b',');
    f.ts(out, c.end);
    f.byte(b',');
    f.seconds(c.ring_ms());
    f.byte(b',');
    f.seconds(c.talk_ms());
    f.byte(b',');
    f.append_to(out);
    csv_field(out, &c.answered_target);
    f.byte(b',');
    f.u64(u64::from(c.final_code));
    f.byte(b',');
    f.append_to(out);
    csv_field(out, &c.reason);
    f.byte(b',');
    f.bytes(c.hangup_side.as_str().as_bytes());
    f.byte(b',');
    f.bytes(c.disposition.as_str().as_bytes());
    f.byte(b',');
    f.append_to(out);
    csv_field(out, &c.matched_rule);
    f.byte(b',');
    f.u64(c.config_generation);
    f.byte(b',');
    f.append_to(out);
    csv_field(out, &c.config_hash);
    f.byte(b',');
    f.u64(u64::from(c.attempts));
    f.byte(b'\n');
    f.append_to(out);
}

fn encode_attempt_csv(out: &mut Vec<u8>, a: &AttemptRecord) {
    csv_field_then(out, &a.record_id, b',');
    csv_field_then(out, &a.call_record_id, b',');
    csv_field(out, &a.call_id);
    // Widest run: 4 * 30 (timestamps) + 2 * 25 (durations) + 6 (code) + 20 (reason) + 1.
    let mut f = Fixed::<200>::new();
    f.byte(b',');
    f.u64(u64::from(a.attempt));
    f.byte(b',');
    f.append_to(out);
    csv_field(out, &a.target);
    f.byte(b',');
    f.ts(out, a.start);
    f.byte(b',');
    f.opt_ts(out, a.first_ring);
    f.byte(b',');
    f.opt_ts(out, a.answer);
    f.byte(b',');
    f.ts(out, a.end);
    f.byte(b',');
    f.seconds(a.ring_ms());
    f.byte(b',');
    f.seconds(a.talk_ms());
    f.byte(b',');
    f.u64(u64::from(a.code));
    f.byte(b',');
    f.bytes(a.reason.as_str().as_bytes());
    f.byte(b',');
    f.append_to(out);
    csv_field_then(out, &a.number, b'\n');
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

#[cfg(test)]
mod tests;
