//! A read position in one record kind's files (`calls-*` or `attempts-*`) and the reader that
//! moves it forward over complete records: through sealed files in name order, then along the
//! current `.open` file as the writer appends to it, then on to the next file once that one is
//! sealed.
//!
//! A record is taken only when it is complete (its LF, outside CSV quotes, is in the file), so
//! a position is always a record boundary: the writer's recovery after a crash only ever cuts
//! bytes after the last complete record, and never appends to a file it sealed, so a saved
//! position stays valid across crashes of the writer.
//!
//! A position names the file by its sealed name (without `.open`): sealing renames the file and
//! keeps its bytes, so the offset stays right.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use hotline_cdr::decode::{self, CsvLayout, CsvRow, JsonLine};
use hotline_cdr::files::{self, OPEN_SUFFIX};
use hotline_cdr::reader::RecordRef;
use hotline_cdr::{AttemptRecord, CallRecord, Format, Kind};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a cursor stands: the sealed name of a data file and the byte offset of the next record
/// in it. `file` empty: before the first file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub offset: u64,
}

/// What [`Cursor::next`] found.
#[derive(Debug)]
pub enum Next<'a> {
    /// A complete record (decoded unless the cursor only counts: then `None`).
    Record(Option<RecordRef<'a>>),
    /// A complete line that does not decode (skipped; the reason).
    Bad(String),
    /// Nothing complete to read now: wait for the writer.
    Pending,
}

const CHUNK: usize = 1 << 20;

struct Current {
    base: String,
    format: Format,
    file: File,
    /// The file was sealed when it was last checked (no more bytes will come).
    sealed: bool,
    layout: Option<CsvLayout>,
    /// Unconsumed bytes; `buf[0]` is at file offset `pos.offset`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of `buf` already checked for a complete record without finding one.
    eof: bool,
}

/// Reads one kind's records from a position on. See the module docs.
pub struct Cursor {
    dir: PathBuf,
    kind: Kind,
    decode: bool,
    pos: Position,
    /// `pos.file` has been read to its end and was sealed: go on with the next file.
    done: bool,
    cur: Option<Current>,
    row: CsvRow,
    call: CallRecord,
    attempt: AttemptRecord,
    /// Undecodable lines and torn tails skipped (for logs).
    pub skipped: u64,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("kind", &self.kind)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl Cursor {
    /// A cursor over `kind`'s files in `dir` starting at `pos`. `decode = false` only counts
    /// records (the lag scanner): lines are split, not decoded.
    pub fn new(dir: &Path, kind: Kind, pos: Position, decode: bool) -> Cursor {
        Cursor {
            dir: dir.to_path_buf(),
            kind,
            decode,
            pos,
            done: false,
            cur: None,
            row: CsvRow::default(),
            call: CallRecord::empty(Timestamp::UNIX_EPOCH),
            attempt: AttemptRecord::empty(Timestamp::UNIX_EPOCH),
            skipped: 0,
        }
    }

    /// The position after the last record returned.
    pub fn position(&self) -> &Position {
        &self.pos
    }

    /// Whether the file the cursor reads is still being written.
    pub fn in_open_file(&self) -> bool {
        self.cur.as_ref().is_some_and(|c| !c.sealed)
    }

    /// `fdatasync` the file being read, so what was read from it survives a power cut (the
    /// shipper calls it before publishing records read from an `.open` file).
    pub fn sync_source(&self) -> io::Result<()> {
        match &self.cur {
            Some(c) if !c.sealed => c.file.sync_data(),
            _ => Ok(()),
        }
    }

    /// The next complete record, a skipped bad line, or `Pending`.
    pub fn advance(&mut self) -> io::Result<Next<'_>> {
        loop {
            if self.cur.is_none() && !self.open_next()? {
                return Ok(Next::Pending);
            }
            let Some(cur) = self.cur.as_mut() else {
                return Ok(Next::Pending);
            };
            // A complete record in the buffer?
            if !cur.eof {
                match take_record(
                    cur,
                    self.kind,
                    self.decode,
                    &mut self.row,
                    &mut self.call,
                    &mut self.attempt,
                ) {
                    Taken::Record(len, ok) => {
                        cur.start += len;
                        self.pos.offset += len as u64;
                        return Ok(match ok {
                            Ok(true) => Next::Record(Some(match self.kind {
                                Kind::Call => RecordRef::Call(&self.call),
                                Kind::Attempt => RecordRef::Attempt(&self.attempt),
                            })),
                            Ok(false) => Next::Record(None),
                            Err(e) => {
                                self.skipped += 1;
                                Next::Bad(e)
                            }
                        });
                    }
                    Taken::Blank(len) => {
                        cur.start += len;
                        self.pos.offset += len as u64;
                        continue;
                    }
                    Taken::Incomplete => cur.eof = true,
                }
            }
            // Need more bytes.
            if cur.start > 0 {
                cur.buf.drain(..cur.start);
                cur.start = 0;
            }
            let old = cur.buf.len();
            cur.buf.resize(old + CHUNK, 0);
            let n = read_retry(&mut cur.file, &mut cur.buf[old..]);
            cur.buf.truncate(old + n.as_ref().map_or(0, |n| *n));
            let n = n?;
            if n > 0 {
                cur.eof = false;
                continue;
            }
            if cur.sealed {
                if !cur.buf.is_empty() {
                    // A sealed file ending in an incomplete record (recovery normally cuts these).
                    self.skipped += 1;
                    tracing::warn!(file = %cur.base, bytes = cur.buf.len(), "cdr ship: incomplete last record of a sealed file skipped");
                    self.pos.offset += cur.buf.len() as u64;
                }
                self.cur = None;
                self.done = true;
                continue;
            }
            // The open file is at its end for now: sealed meanwhile? Then read on: a seal
            // happens after the last bytes are written, so everything is there now.
            if self.dir.join(&cur.base).exists() {
                cur.sealed = true;
                cur.eof = false;
                continue;
            }
            if !self.dir.join(format!("{}{OPEN_SUFFIX}", cur.base)).exists() {
                // Neither name exists: removed (an operator archived it). Go on.
                tracing::warn!(file = %cur.base, "cdr ship: file removed while being read");
                self.cur = None;
                self.done = true;
                continue;
            }
            return Ok(Next::Pending);
        }
    }

    /// Open the file at the position (or the next one). `false`: no file to read yet.
    fn open_next(&mut self) -> io::Result<bool> {
        let mut names: Vec<(String, Format)> = files::list_files(&self.dir)?
            .into_iter()
            .filter(|f| f.kind == self.kind)
            .map(|f| {
                let base = f
                    .name
                    .strip_suffix(OPEN_SUFFIX)
                    .unwrap_or(&f.name)
                    .to_string();
                (base, f.format)
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        let pick = names.into_iter().find(|(base, _)| {
            if self.pos.file.is_empty() {
                true
            } else if self.done {
                *base > self.pos.file
            } else {
                *base >= self.pos.file
            }
        });
        let Some((base, format)) = pick else {
            return Ok(false);
        };
        if base != self.pos.file {
            self.pos = Position {
                file: base.clone(),
                offset: 0,
            };
        }
        self.done = false;
        let sealed_path = self.dir.join(&base);
        let (mut file, sealed) = match File::open(&sealed_path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match File::open(self.dir.join(format!("{base}{OPEN_SUFFIX}"))) {
                    Ok(f) => (f, false),
                    // Sealed between the listing and now.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        (File::open(&sealed_path)?, true)
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let mut layout = None;
        if format == Format::Csv {
            let (l, header_end) = read_header(&mut file, self.kind)?;
            match l {
                Some(l) => layout = Some(l),
                None if header_end == 0 => {
                    // Not even a header yet (just created): wait.
                    if sealed {
                        self.done = true;
                    }
                    return Ok(false);
                }
                None => {
                    tracing::warn!(file = %base, "cdr ship: file skipped: bad CSV header");
                    self.done = true;
                    self.skipped += 1;
                    return Ok(false);
                }
            }
            if self.pos.offset < header_end {
                self.pos.offset = header_end;
            }
        }
        file.seek(SeekFrom::Start(self.pos.offset))?;
        self.cur = Some(Current {
            base,
            format,
            file,
            sealed,
            layout,
            buf: Vec::with_capacity(CHUNK + 4096),
            start: 0,
            eof: false,
        });
        Ok(true)
    }
}

fn read_retry(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match f.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The CSV header's layout and the offset after it; `(None, 0)` when the header is not complete
/// yet, `(None, n)` when it is there but unusable.
fn read_header(file: &mut File, kind: Kind) -> io::Result<(Option<CsvLayout>, u64)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        let n = read_retry(file, &mut buf[len..])?;
        len += n;
        let data = &buf[..len];
        let start = decode::skip_bom(data);
        let mut row = CsvRow::default();
        if let Some(end) = decode::split_csv(data, start, &mut row) {
            let layout = CsvLayout::from_header(kind, data, &row).ok();
            return Ok((layout, end as u64));
        }
        if n == 0 || len == buf.len() {
            return Ok((None, if len == buf.len() { len as u64 } else { 0 }));
        }
    }
}

enum Taken {
    /// Bytes consumed; `Ok(true)` decoded, `Ok(false)` counted only, `Err` undecodable.
    Record(usize, Result<bool, String>),
    Blank(usize),
    Incomplete,
}

fn take_record(
    cur: &Current,
    kind: Kind,
    decode: bool,
    row: &mut CsvRow,
    call: &mut CallRecord,
    attempt: &mut AttemptRecord,
) -> Taken {
    let data = &cur.buf[..];
    let start = cur.start;
    match cur.format {
        Format::Csv => {
            let Some(end) = decode::split_csv(data, start, row) else {
                return Taken::Incomplete;
            };
            let len = end - start;
            if !decode {
                return Taken::Record(len, Ok(false));
            }
            let Some(layout) = &cur.layout else {
                return Taken::Record(len, Err("no CSV header".into()));
            };
            let r = match kind {
                Kind::Call => decode::call_from_csv(layout, row, data, call),
                Kind::Attempt => decode::attempt_from_csv(layout, row, data, attempt),
            };
            Taken::Record(len, r.map(|()| true).map_err(|e| e.0))
        }
        Format::Jsonl => {
            let Some(nl) = data[start..].iter().position(|&b| b == b'\n') else {
                return Taken::Incomplete;
            };
            let line = &data[start..start + nl];
            let len = nl + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                return Taken::Blank(len);
            }
            if !decode {
                return Taken::Record(len, Ok(false));
            }
            match decode::from_json_line(line, kind, call, attempt) {
                Ok(JsonLine::Call) if kind == Kind::Call => Taken::Record(len, Ok(true)),
                Ok(JsonLine::Attempt) if kind == Kind::Attempt => Taken::Record(len, Ok(true)),
                Ok(_) => Taken::Record(len, Err("record of the other kind".into())),
                Err(e) => Taken::Record(len, Err(e.0)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` synthetic calls (from 2026-11-24T10:00Z, one per second), attempts before their call
    /// as the server submits them.
    pub(crate) fn synth_records(n: usize, seed: u64) -> Vec<hotline_cdr::Record> {
        let from = Timestamp::from_second(1_795_860_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut out = Vec::new();
        for (call, attempts) in hotline_cdr::synth::calls(seed, n, from, 1000, 50) {
            out.extend(attempts.into_iter().map(hotline_cdr::Record::Attempt));
            out.push(hotline_cdr::Record::Call(call));
        }
        out
    }

    fn write_dir(format: Format, n: usize) -> (tempfile::TempDir, u64, u64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = hotline_cdr::WriterConfig::new(dir.path());
        cfg.format = format;
        cfg.rotate_every = hotline_cdr::Rotate::Never;
        cfg.rotate_bytes = 4096; // many files
        let Ok((sink, handle)) = hotline_cdr::spawn(cfg) else {
            panic!("writer");
        };
        let (mut calls, mut attempts) = (0, 0);
        for r in synth_records(n, 7) {
            match &r {
                hotline_cdr::Record::Call(_) => calls += 1,
                hotline_cdr::Record::Attempt(_) => attempts += 1,
            }
            sink.submit(r);
        }
        let _ = handle.shutdown();
        (dir, calls, attempts)
    }

    fn drain(c: &mut Cursor) -> (u64, Vec<String>) {
        let mut n = 0;
        let mut ids = Vec::new();
        loop {
            match c.advance() {
                Ok(Next::Record(Some(RecordRef::Call(r)))) => {
                    n += 1;
                    ids.push(r.record_id.clone());
                }
                Ok(Next::Record(Some(RecordRef::Attempt(r)))) => {
                    n += 1;
                    ids.push(r.record_id.clone());
                }
                Ok(Next::Record(None)) => n += 1,
                Ok(Next::Bad(e)) => panic!("bad line: {e}"),
                Ok(Next::Pending) => return (n, ids),
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    #[test]
    fn reads_every_record_across_files_and_resumes_at_a_position() {
        for format in [Format::Csv, Format::Jsonl] {
            let (dir, calls, attempts) = write_dir(format, 500);
            let files = files::list_files(dir.path()).unwrap_or_default();
            assert!(
                files.len() > 4,
                "{format:?}: several files: {}",
                files.len()
            );
            let mut c = Cursor::new(dir.path(), Kind::Call, Position::default(), true);
            let (n, ids) = drain(&mut c);
            assert_eq!(n, calls, "{format:?}");
            let mut a = Cursor::new(dir.path(), Kind::Attempt, Position::default(), false);
            assert_eq!(drain(&mut a).0, attempts, "{format:?}: counting");
            // Stop half way, resume from the saved position: the rest, nothing twice.
            let mut first = Cursor::new(dir.path(), Kind::Call, Position::default(), true);
            let mut seen = Vec::new();
            for _ in 0..calls / 2 {
                if let Ok(Next::Record(Some(RecordRef::Call(r)))) = first.advance() {
                    seen.push(r.record_id.clone());
                }
            }
            let pos = first.position().clone();
            let mut second = Cursor::new(dir.path(), Kind::Call, pos, true);
            let (_, rest) = drain(&mut second);
            seen.extend(rest);
            assert_eq!(seen, ids, "{format:?}: resumed read = one full read");
        }
    }

    #[test]
    fn follows_the_open_file_and_takes_complete_records_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let recs: Vec<hotline_cdr::Record> = synth_records(20, 3)
            .into_iter()
            .filter(|r| r.kind() == Kind::Call)
            .take(3)
            .collect();
        let mut bytes = Vec::new();
        hotline_cdr::encode::write_preamble(&mut bytes, Format::Csv, Kind::Call);
        let header = bytes.len();
        let mut ends = Vec::new();
        for r in &recs {
            hotline_cdr::encode::encode(&mut bytes, Format::Csv, r);
            ends.push(bytes.len());
        }
        let open = dir.path().join("calls-20261124T10.csv.open");
        // Header and a record and a half.
        let cut = ends[0] + 10;
        let _ = std::fs::write(&open, &bytes[..cut]);
        let mut c = Cursor::new(dir.path(), Kind::Call, Position::default(), true);
        assert!(matches!(c.advance(), Ok(Next::Record(Some(_)))));
        assert!(
            matches!(c.advance(), Ok(Next::Pending)),
            "half a record waits"
        );
        assert_eq!(c.position().offset, ends[0] as u64);
        assert!(c.in_open_file());
        let _ = std::fs::write(&open, &bytes);
        assert!(matches!(c.advance(), Ok(Next::Record(Some(_)))));
        assert!(matches!(c.advance(), Ok(Next::Record(Some(_)))));
        assert!(matches!(c.advance(), Ok(Next::Pending)));
        // Sealed (renamed) and a next file appears: the cursor moves on.
        let _ = std::fs::rename(&open, dir.path().join("calls-20261124T10.csv"));
        let _ = std::fs::write(dir.path().join("calls-20261124T11.csv.open"), &bytes);
        let (n, _) = drain(&mut c);
        assert_eq!(n, 3);
        assert_eq!(c.position().file, "calls-20261124T11.csv");
        assert!(header > 0);
    }
}
