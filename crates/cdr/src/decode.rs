//! Pure decoders, the inverse of [`crate::encode`]: bytes -> records, filling reused records so a
//! scan allocates only when a field grows past anything seen before.
//!
//! CSV files are read by header name (columns may be reordered or added in later schema versions);
//! JSON Lines by key. A record is complete only when its terminating LF (outside quotes) is
//! present: anything after the last complete record is a torn tail.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;

use crate::encode::{ATTEMPT_COLUMNS, BOM, CALL_COLUMNS};
use crate::record::{AttemptReason, AttemptRecord, CallRecord, Disposition, HangupSide, Kind};
use crate::time::parse_ts;

/// Why one line could not be decoded (the reader counts and skips it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

// ---------------------------------------------------------------- CSV splitting

#[derive(Clone, Copy, Debug)]
struct Field {
    scratch: bool,
    start: usize,
    end: usize,
}

/// One split CSV row: fields point into the input, or into `scratch` when they had to be unescaped.
#[derive(Default, Debug)]
pub struct CsvRow {
    fields: Vec<Field>,
    scratch: Vec<u8>,
}

impl CsvRow {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Field `i` as bytes (`data` is the slice the row was split from).
    pub fn field<'a>(&'a self, data: &'a [u8], i: usize) -> &'a [u8] {
        match self.fields.get(i) {
            Some(f) if f.scratch => &self.scratch[f.start..f.end],
            Some(f) => &data[f.start..f.end],
            None => b"",
        }
    }
}

/// Split the CSV record starting at `data[pos..]` into `row`. Returns the position after its
/// terminating LF, or `None` when the record is not complete (no LF outside quotes yet).
/// A CR before the LF is dropped. Lenient on stray quotes inside unquoted fields (kept as data).
pub fn split_csv(data: &[u8], pos: usize, row: &mut CsvRow) -> Option<usize> {
    row.fields.clear();
    row.scratch.clear();
    let n = data.len();
    let mut i = pos;
    loop {
        // start of a field
        if i < n && data[i] == b'"' {
            // quoted field: unescape into scratch
            let s = row.scratch.len();
            i += 1;
            loop {
                // copy up to the next quote
                let rest = &data[i.min(n)..];
                let q = rest.iter().position(|&c| c == b'"')?;
                row.scratch.extend_from_slice(&rest[..q]);
                i += q + 1;
                if i < n && data[i] == b'"' {
                    row.scratch.push(b'"');
                    i += 1;
                    continue;
                }
                if i >= n {
                    return None;
                }
                break;
            }
            row.fields.push(Field {
                scratch: true,
                start: s,
                end: row.scratch.len(),
            });
            // after the closing quote: skip anything up to the delimiter (lenient)
            while i < n && !matches!(data[i], b',' | b'\n') {
                i += 1;
            }
        } else {
            let s = i;
            while i < n && !matches!(data[i], b',' | b'\n') {
                i += 1;
            }
            let mut e = i;
            if i < n && data[i] == b'\n' && e > s && data[e - 1] == b'\r' {
                e -= 1;
            }
            row.fields.push(Field {
                scratch: false,
                start: s,
                end: e,
            });
        }
        if i >= n {
            return None;
        }
        if data[i] == b'\n' {
            return Some(i + 1);
        }
        i += 1; // comma
    }
}

/// Where the first record starts: after a BOM, if any.
pub fn skip_bom(data: &[u8]) -> usize {
    if data.starts_with(BOM) {
        BOM.len()
    } else {
        0
    }
}

/// Column positions of a CSV file's header, per record kind.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    pub kind: Kind,
    /// For each column of [`CALL_COLUMNS`] / [`ATTEMPT_COLUMNS`], its index in the file.
    idx: Vec<Option<usize>>,
}

impl CsvLayout {
    /// Build from a split header row.
    pub fn from_header(kind: Kind, data: &[u8], header: &CsvRow) -> Result<CsvLayout, DecodeError> {
        let names = match kind {
            Kind::Call => CALL_COLUMNS,
            Kind::Attempt => ATTEMPT_COLUMNS,
        };
        let mut idx = vec![None; names.len()];
        for i in 0..header.len() {
            let h = header.field(data, i);
            if let Some(p) = names.iter().position(|n| n.as_bytes() == h) {
                idx[p] = Some(i);
            }
        }
        for required in ["record_id", "start", "end"] {
            let p = names.iter().position(|n| *n == required).unwrap_or(0);
            if idx[p].is_none() {
                return err(format!("header lacks column {required:?}"));
            }
        }
        Ok(CsvLayout { kind, idx })
    }

    fn get<'a>(&self, row: &'a CsvRow, data: &'a [u8], col: usize) -> &'a [u8] {
        match self.idx.get(col).copied().flatten() {
            Some(i) => row.field(data, i),
            None => b"",
        }
    }
}

fn utf8(b: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(b).or_else(|_| err("field is not UTF-8"))
}

fn set(dst: &mut String, b: &[u8]) -> Result<(), DecodeError> {
    dst.clear();
    dst.push_str(utf8(b)?);
    Ok(())
}

fn ts(b: &[u8], name: &str) -> Result<Timestamp, DecodeError> {
    parse_ts(utf8(b)?).map_or_else(|| err(format!("bad timestamp in {name}")), Ok)
}

fn opt_ts(b: &[u8], name: &str) -> Result<Option<Timestamp>, DecodeError> {
    if b.is_empty() {
        Ok(None)
    } else {
        ts(b, name).map(Some)
    }
}

fn num<T: std::str::FromStr>(b: &[u8], name: &str) -> Result<T, DecodeError> {
    if b.is_empty() {
        return "0"
            .parse::<T>()
            .or_else(|_| err(format!("bad number in {name}")));
    }
    utf8(b)?
        .parse::<T>()
        .or_else(|_| err(format!("bad number in {name}")))
}

/// Fill `rec` from a split CSV row of a `calls-*` file.
pub fn call_from_csv(
    layout: &CsvLayout,
    row: &CsvRow,
    data: &[u8],
    rec: &mut CallRecord,
) -> Result<(), DecodeError> {
    let g = |c: usize| layout.get(row, data, c);
    set(&mut rec.record_id, g(0))?;
    set(&mut rec.call_id, g(1))?;
    set(&mut rec.number, g(2))?;
    set(&mut rec.company, g(3))?;
    set(&mut rec.carrier, g(4))?;
    set(&mut rec.caller, g(5))?;
    set(&mut rec.caller_raw, g(6))?;
    set(&mut rec.caller_province, g(7))?;
    set(&mut rec.caller_city, g(8))?;
    set(&mut rec.trunk, g(9))?;
    rec.start = ts(g(10), "start")?;
    rec.first_ring = opt_ts(g(11), "first_ring")?;
    rec.answer = opt_ts(g(12), "answer")?;
    rec.end = ts(g(13), "end")?;
    // 14, 15: ring_seconds / talk_seconds are derived from the timestamps.
    set(&mut rec.answered_target, g(16))?;
    rec.final_code = num(g(17), "final_code")?;
    set(&mut rec.reason, g(18))?;
    rec.hangup_side = parse_enum(g(19), HangupSide::parse, "hangup_side")?;
    rec.disposition = parse_enum(g(20), Disposition::parse, "disposition")?;
    set(&mut rec.matched_rule, g(21))?;
    rec.config_generation = num(g(22), "config_generation")?;
    set(&mut rec.config_hash, g(23))?;
    rec.attempts = num(g(24), "attempts")?;
    Ok(())
}

/// Fill `rec` from a split CSV row of an `attempts-*` file.
pub fn attempt_from_csv(
    layout: &CsvLayout,
    row: &CsvRow,
    data: &[u8],
    rec: &mut AttemptRecord,
) -> Result<(), DecodeError> {
    let g = |c: usize| layout.get(row, data, c);
    set(&mut rec.record_id, g(0))?;
    set(&mut rec.call_record_id, g(1))?;
    set(&mut rec.call_id, g(2))?;
    rec.attempt = num(g(3), "attempt")?;
    set(&mut rec.target, g(4))?;
    rec.start = ts(g(5), "start")?;
    rec.first_ring = opt_ts(g(6), "first_ring")?;
    rec.answer = opt_ts(g(7), "answer")?;
    rec.end = ts(g(8), "end")?;
    rec.code = num(g(11), "code")?;
    rec.reason = parse_enum(g(12), AttemptReason::parse, "reason")?;
    set(&mut rec.number, g(13))?;
    Ok(())
}

fn parse_enum<T>(b: &[u8], f: fn(&str) -> Option<T>, name: &str) -> Result<T, DecodeError> {
    let s = utf8(b)?;
    f(s).map_or_else(|| err(format!("unknown {name} {s:?}")), Ok)
}

// ---------------------------------------------------------------- JSON Lines

#[derive(Deserialize, Default)]
#[serde(default)]
struct JsonRec<'a> {
    v: u32,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    record_id: Cow<'a, str>,
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[serde(borrow)]
    number: Cow<'a, str>,
    #[serde(borrow)]
    company: Cow<'a, str>,
    #[serde(borrow)]
    carrier: Cow<'a, str>,
    #[serde(borrow)]
    caller: Cow<'a, str>,
    #[serde(borrow)]
    caller_raw: Cow<'a, str>,
    #[serde(borrow)]
    caller_province: Cow<'a, str>,
    #[serde(borrow)]
    caller_city: Cow<'a, str>,
    #[serde(borrow)]
    trunk: Cow<'a, str>,
    #[serde(borrow)]
    start: Cow<'a, str>,
    #[serde(borrow)]
    first_ring: Option<Cow<'a, str>>,
    #[serde(borrow)]
    answer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end: Cow<'a, str>,
    #[serde(borrow)]
    answered_target: Cow<'a, str>,
    final_code: u16,
    #[serde(borrow)]
    reason: Cow<'a, str>,
    #[serde(borrow)]
    hangup_side: Cow<'a, str>,
    #[serde(borrow)]
    disposition: Cow<'a, str>,
    #[serde(borrow)]
    matched_rule: Cow<'a, str>,
    config_generation: u64,
    #[serde(borrow)]
    config_hash: Cow<'a, str>,
    attempts: u32,
    #[serde(borrow)]
    call_record_id: Cow<'a, str>,
    attempt: u32,
    #[serde(borrow)]
    target: Cow<'a, str>,
    code: u16,
    // ring_seconds / talk_seconds are derived; accepted and ignored.
    #[serde(rename = "ring_seconds")]
    _ring: f64,
    #[serde(rename = "talk_seconds")]
    _talk: f64,
}

/// A decoded JSON line, either kind.
pub enum JsonLine {
    Call,
    Attempt,
}

fn opt_ts_str(s: &Option<Cow<'_, str>>, name: &str) -> Result<Option<Timestamp>, DecodeError> {
    match s {
        Some(s) if !s.is_empty() => ts(s.as_bytes(), name).map(Some),
        _ => Ok(None),
    }
}

/// Decode one JSON line into `call` or `attempt` (by its `kind`; `default_kind` when absent).
pub fn from_json_line(
    line: &[u8],
    default_kind: Kind,
    call: &mut CallRecord,
    attempt: &mut AttemptRecord,
) -> Result<JsonLine, DecodeError> {
    let j: JsonRec<'_> = serde_json::from_slice(line).or_else(|e| err(format!("bad JSON: {e}")))?;
    if j.v > crate::record::SCHEMA_VERSION {
        return err(format!("schema version {} is newer than this reader", j.v));
    }
    let kind = match &*j.kind {
        "" => default_kind,
        "call" => Kind::Call,
        "attempt" => Kind::Attempt,
        other => return err(format!("unknown kind {other:?}")),
    };
    if j.record_id.is_empty() {
        return err("record_id missing");
    }
    match kind {
        Kind::Call => {
            let c = call;
            set(&mut c.record_id, j.record_id.as_bytes())?;
            set(&mut c.call_id, j.call_id.as_bytes())?;
            set(&mut c.number, j.number.as_bytes())?;
            set(&mut c.company, j.company.as_bytes())?;
            set(&mut c.carrier, j.carrier.as_bytes())?;
            set(&mut c.caller, j.caller.as_bytes())?;
            set(&mut c.caller_raw, j.caller_raw.as_bytes())?;
            set(&mut c.caller_province, j.caller_province.as_bytes())?;
            set(&mut c.caller_city, j.caller_city.as_bytes())?;
            set(&mut c.trunk, j.trunk.as_bytes())?;
            c.start = ts(j.start.as_bytes(), "start")?;
            c.first_ring = opt_ts_str(&j.first_ring, "first_ring")?;
            c.answer = opt_ts_str(&j.answer, "answer")?;
            c.end = ts(j.end.as_bytes(), "end")?;
            set(&mut c.answered_target, j.answered_target.as_bytes())?;
            c.final_code = j.final_code;
            set(&mut c.reason, j.reason.as_bytes())?;
            c.hangup_side = parse_enum(j.hangup_side.as_bytes(), HangupSide::parse, "hangup_side")?;
            c.disposition =
                parse_enum(j.disposition.as_bytes(), Disposition::parse, "disposition")?;
            set(&mut c.matched_rule, j.matched_rule.as_bytes())?;
            c.config_generation = j.config_generation;
            set(&mut c.config_hash, j.config_hash.as_bytes())?;
            c.attempts = j.attempts;
            Ok(JsonLine::Call)
        }
        Kind::Attempt => {
            let a = attempt;
            set(&mut a.record_id, j.record_id.as_bytes())?;
            set(&mut a.call_record_id, j.call_record_id.as_bytes())?;
            set(&mut a.call_id, j.call_id.as_bytes())?;
            a.attempt = j.attempt;
            set(&mut a.target, j.target.as_bytes())?;
            a.start = ts(j.start.as_bytes(), "start")?;
            a.first_ring = opt_ts_str(&j.first_ring, "first_ring")?;
            a.answer = opt_ts_str(&j.answer, "answer")?;
            a.end = ts(j.end.as_bytes(), "end")?;
            a.code = j.code;
            a.reason = parse_enum(j.reason.as_bytes(), AttemptReason::parse, "reason")?;
            set(&mut a.number, j.number.as_bytes())?;
            Ok(JsonLine::Attempt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(data: &[u8]) -> (Vec<Vec<String>>, usize) {
        let mut row = CsvRow::default();
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(next) = split_csv(data, pos, &mut row) {
            out.push(
                (0..row.len())
                    .map(|i| String::from_utf8_lossy(row.field(data, i)).into_owned())
                    .collect(),
            );
            pos = next;
        }
        (out, pos)
    }

    #[test]
    fn splits_quoted_fields_and_detects_incomplete_tail() {
        let data = b"a,\"b,c\",\"d \"\"q\"\"\"\n\"multi\nline\",,x\r\ntorn,\"unterminated";
        let (rows, end) = split_all(data);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], vec!["a", "b,c", "d \"q\""]);
        assert_eq!(rows[1], vec!["multi\nline", "", "x"]);
        assert_eq!(&data[end..], b"torn,\"unterminated");
    }

    #[test]
    fn unterminated_last_line_is_incomplete() {
        let (rows, end) = split_all(b"a,b\nc,d");
        assert_eq!(rows.len(), 1);
        assert_eq!(end, 4);
    }
}
