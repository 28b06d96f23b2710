//! Reading a CDR directory: every data file (sealed and open, in name order), chunked, records
//! decoded into reused buffers and handed to a callback. A torn tail (a record without its LF,
//! e.g. the writer is mid-write or crashed) is skipped and counted, never returned half-read;
//! undecodable lines are skipped, counted and logged (first few per file).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use jiff::Timestamp;

use crate::decode::{self, CsvLayout, CsvRow, JsonLine};
use crate::encode::Format;
use crate::files::{self, DataFile};
use crate::record::{AttemptRecord, CallRecord, Kind, Record};
use crate::CdrError;

/// What a scan went through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub files: u64,
    pub bytes: u64,
    /// Records decoded and handed to the callback.
    pub records: u64,
    /// Complete lines that did not decode (skipped).
    pub bad: u64,
    /// Files ending in an incomplete record (skipped).
    pub torn_tails: u64,
}

/// A record borrowed from the scanner's reused buffers.
#[derive(Clone, Copy, Debug)]
pub enum RecordRef<'a> {
    Call(&'a CallRecord),
    Attempt(&'a AttemptRecord),
}

impl RecordRef<'_> {
    pub fn to_owned(self) -> Record {
        match self {
            RecordRef::Call(c) => Record::Call(c.clone()),
            RecordRef::Attempt(a) => Record::Attempt(a.clone()),
        }
    }
}

const CHUNK: usize = 8 << 20;
const LOG_BAD_PER_FILE: u64 = 5;

fn io_err(path: &Path, source: std::io::Error) -> CdrError {
    CdrError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The data files of `dir` holding `kinds`.
pub fn data_files(dir: &Path, kinds: &[Kind]) -> Result<Vec<DataFile>, CdrError> {
    Ok(files::list_files(dir)
        .map_err(|e| io_err(dir, e))?
        .into_iter()
        .filter(|f| kinds.contains(&f.kind))
        .collect())
}

/// Visit every record of the given kinds in `dir`.
pub fn scan_dir(
    dir: &Path,
    kinds: &[Kind],
    mut f: impl FnMut(RecordRef<'_>),
) -> Result<ReadStats, CdrError> {
    let mut stats = ReadStats::default();
    let mut call = CallRecord::empty(Timestamp::UNIX_EPOCH);
    let mut attempt = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
    for df in data_files(dir, kinds)? {
        scan_file(&df, &mut stats, &mut call, &mut attempt, &mut f)?;
    }
    Ok(stats)
}

/// Visit every record in the given files (as listed by [`data_files`]).
pub fn scan_files(
    files: &[DataFile],
    mut f: impl FnMut(RecordRef<'_>),
) -> Result<ReadStats, CdrError> {
    let mut stats = ReadStats::default();
    let mut call = CallRecord::empty(Timestamp::UNIX_EPOCH);
    let mut attempt = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
    for df in files {
        scan_file(df, &mut stats, &mut call, &mut attempt, &mut f)?;
    }
    Ok(stats)
}

impl ReadStats {
    /// Add another scan's counters.
    pub fn merge(&mut self, o: &ReadStats) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.records += o.records;
        self.bad += o.bad;
        self.torn_tails += o.torn_tails;
    }
}

/// Visit every call record in `dir`.
pub fn scan_calls(dir: &Path, mut f: impl FnMut(&CallRecord)) -> Result<ReadStats, CdrError> {
    scan_dir(dir, &[Kind::Call], |r| {
        if let RecordRef::Call(c) = r {
            f(c);
        }
    })
}

/// Every record in `dir`, owned (small directories, tests).
pub fn read_dir(dir: &Path) -> Result<(Vec<Record>, ReadStats), CdrError> {
    let mut out = Vec::new();
    let stats = scan_dir(dir, &[Kind::Call, Kind::Attempt], |r| {
        out.push(r.to_owned())
    })?;
    Ok((out, stats))
}

fn scan_file(
    df: &DataFile,
    stats: &mut ReadStats,
    call: &mut CallRecord,
    attempt: &mut AttemptRecord,
    f: &mut impl FnMut(RecordRef<'_>),
) -> Result<(), CdrError> {
    let path = &df.path;
    let mut file = match File::open(path) {
        Ok(file) => file,
        // Sealed (renamed) between listing and opening: read it under its new name.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && df.open => {
            let sealed = path.with_extension("");
            match File::open(&sealed) {
                Ok(file) => file,
                Err(e) => return Err(io_err(&sealed, e)),
            }
        }
        Err(e) => return Err(io_err(path, e)),
    };
    stats.files += 1;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 4096);
    let mut start = 0usize;
    let mut first_chunk = true;
    let mut layout: Option<CsvLayout> = None;
    let mut row = CsvRow::default();
    let mut bad_here = 0u64;
    let mut line_no = 0u64;
    loop {
        if start > 0 {
            buf.drain(..start);
            start = 0;
        }
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let n = loop {
            match file.read(&mut buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(path, e)),
            }
        };
        buf.truncate(old + n);
        stats.bytes += n as u64;
        let eof = n == 0;
        if first_chunk && (buf.len() >= 3 || eof) {
            start = decode::skip_bom(&buf);
            first_chunk = false;
        } else if first_chunk {
            continue;
        }
        // NUL bytes (power loss on some filesystems) end the usable data.
        let limit = if eof {
            buf[start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(buf.len(), |p| start + p)
        } else {
            buf.len()
        };
        let data = &buf[..limit];
        let mut bad = |msg: &str, line: u64| {
            stats.bad += 1;
            bad_here += 1;
            if bad_here <= LOG_BAD_PER_FILE {
                tracing::warn!(file = %df.name, record = line, error = msg, "cdr: undecodable record skipped");
            }
        };
        match df.format {
            Format::Csv => {
                while let Some(next) = decode::split_csv(data, start, &mut row) {
                    start = next;
                    let Some(l) = &layout else {
                        match CsvLayout::from_header(df.kind, data, &row) {
                            Ok(l) => layout = Some(l),
                            Err(e) => {
                                tracing::warn!(file = %df.name, error = %e, "cdr: file skipped: bad header");
                                stats.bad += 1;
                                return Ok(());
                            }
                        }
                        continue;
                    };
                    line_no += 1;
                    let res = match df.kind {
                        Kind::Call => decode::call_from_csv(l, &row, data, call)
                            .map(|()| RecordRef::Call(call)),
                        Kind::Attempt => decode::attempt_from_csv(l, &row, data, attempt)
                            .map(|()| RecordRef::Attempt(attempt)),
                    };
                    match res {
                        Ok(r) => {
                            stats.records += 1;
                            f(r);
                        }
                        Err(e) => bad(&e.0, line_no),
                    }
                }
            }
            Format::Jsonl => {
                while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
                    let line = &data[start..start + nl];
                    start += nl + 1;
                    line_no += 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match decode::from_json_line(line, df.kind, call, attempt) {
                        Ok(JsonLine::Call) => {
                            stats.records += 1;
                            f(RecordRef::Call(call));
                        }
                        Ok(JsonLine::Attempt) => {
                            stats.records += 1;
                            f(RecordRef::Attempt(attempt));
                        }
                        Err(e) => bad(&e.0, line_no),
                    }
                }
            }
        }
        if eof {
            if start < buf.len() {
                stats.torn_tails += 1;
                tracing::debug!(file = %df.name, bytes = buf.len() - start, "cdr: incomplete last record skipped");
            }
            return Ok(());
        }
    }
}
