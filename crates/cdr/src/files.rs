//! The CDR directory on disk: file names, the MANIFEST, sealing, and start-up recovery.
//!
//! ```text
//! cdr/
//!   calls-20261124T10.csv            sealed (read-only from now on, listed in MANIFEST)
//!   calls-20261124T10_001.csv        same hour, opened after a size rotation
//!   calls-20261124T11.csv.open       being written
//!   attempts-20261124T11.csv.open
//!   MANIFEST                         one JSON line per sealed file
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decode::{self, CsvLayout, CsvRow};
use crate::encode::Format;
use crate::record::{AttemptRecord, CallRecord, Kind};
use crate::time::{civil_from_days, format_ts};

/// Name of the manifest file in the CDR directory.
pub const MANIFEST: &str = "MANIFEST";
/// Suffix of files still being written.
pub const OPEN_SUFFIX: &str = ".open";

/// How often files are rotated by time (boundaries in UTC, by each record's `end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rotate {
    Hourly,
    Daily,
    /// Only by size.
    Never,
}

impl Rotate {
    pub fn parse(s: &str) -> Option<Rotate> {
        match s {
            "hourly" => Some(Rotate::Hourly),
            "daily" => Some(Rotate::Daily),
            "never" => Some(Rotate::Never),
            _ => None,
        }
    }

    /// Index of the rotation period containing `ts`; a file is rotated when a record belongs to a
    /// later period than the file's.
    pub fn period(self, ts: Timestamp) -> i64 {
        let ms = ts.as_millisecond();
        match self {
            Rotate::Hourly => ms.div_euclid(3_600_000),
            Rotate::Daily => ms.div_euclid(86_400_000),
            Rotate::Never => 0,
        }
    }

    /// Time part of a file name: `20261124T10` (hourly), `20261124` (daily),
    /// `20261124T103012` (never: the first record's second).
    pub fn stamp(self, ts: Timestamp) -> String {
        let ms = ts.as_millisecond();
        let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
        let secs = ms.rem_euclid(86_400_000) / 1000;
        let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match self {
            Rotate::Hourly => format!("{y:04}{m:02}{d:02}T{h:02}"),
            Rotate::Daily => format!("{y:04}{m:02}{d:02}"),
            Rotate::Never => format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}"),
        }
    }
}

/// A data file found in the CDR directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// File name (with `.open` if still open).
    pub name: String,
    pub kind: Kind,
    pub format: Format,
    /// Still being written (or left open by a crash and not yet recovered).
    pub open: bool,
}

/// Recognise `calls-*.csv`, `attempts-*.jsonl.open`, ... ; anything else is not ours.
pub fn parse_name(name: &str) -> Option<(Kind, Format, bool)> {
    let (base, open) = match name.strip_suffix(OPEN_SUFFIX) {
        Some(b) => (b, true),
        None => (name, false),
    };
    let kind = if base.starts_with("calls-") {
        Kind::Call
    } else if base.starts_with("attempts-") {
        Kind::Attempt
    } else {
        return None;
    };
    let format = if base.ends_with(".csv") {
        Format::Csv
    } else if base.ends_with(".jsonl") {
        Format::Jsonl
    } else {
        return None;
    };
    Some((kind, format, open))
}

/// Every data file in `dir`, sorted by name (which sorts by time within a kind).
pub fn list_files(dir: &Path) -> io::Result<Vec<DataFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some((kind, format, open)) = parse_name(&name) {
            if entry.file_type()?.is_file() {
                out.push(DataFile {
                    path: entry.path(),
                    name,
                    kind,
                    format,
                    open,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One line of the MANIFEST: a sealed file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name in the CDR directory.
    pub file: String,
    /// `call` or `attempt`.
    pub kind: String,
    /// Complete records (lines after the header).
    pub records: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Earliest / latest record `end` in the file (empty when no record could be decoded).
    pub first: String,
    pub last: String,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// When it was sealed.
    pub sealed_at: String,
}

/// Read the manifest; malformed lines are skipped (and logged).
pub fn read_manifest(dir: &Path) -> io::Result<Vec<ManifestEntry>> {
    let text = match fs::read_to_string(dir.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ManifestEntry>(line) {
            Ok(e) => out.push(e),
            Err(e) => {
                tracing::warn!(line = n + 1, error = %e, "cdr: malformed MANIFEST line skipped")
            }
        }
    }
    Ok(out)
}

/// Append a manifest line and fsync the manifest.
pub(crate) fn append_manifest(dir: &Path, entry: &ManifestEntry) -> io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(MANIFEST))?;
    f.write_all(&line)?;
    f.sync_data()
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// What a scan of a file's bytes found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ByteScan {
    /// Complete record lines (header excluded).
    pub records: u64,
    /// Complete lines that did not decode.
    pub bad: u64,
    /// Length of the prefix that ends with the last complete record (or header).
    pub complete_len: usize,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

/// Scan a whole file's bytes: count complete records, find the first/last `end`, and where the
/// last complete record ends. A NUL byte (left by some filesystems after power loss) ends the
/// usable data.
pub fn scan_bytes(data: &[u8], kind: Kind, format: Format) -> ByteScan {
    let limit = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let data = &data[..limit];
    let mut s = ByteScan::default();
    let note = |s: &mut ByteScan, t: Timestamp| {
        s.first = Some(s.first.map_or(t, |f| f.min(t)));
        s.last = Some(s.last.map_or(t, |l| l.max(t)));
    };
    let mut call = CallRecord::empty(Timestamp::UNIX_EPOCH);
    let mut attempt = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
    match format {
        Format::Csv => {
            let mut row = CsvRow::default();
            let start = decode::skip_bom(data);
            let Some(mut pos) = decode::split_csv(data, start, &mut row) else {
                return s;
            };
            s.complete_len = pos;
            let layout = CsvLayout::from_header(kind, data, &row).ok();
            while let Some(next) = decode::split_csv(data, pos, &mut row) {
                pos = next;
                s.complete_len = pos;
                s.records += 1;
                let t = match (&layout, kind) {
                    (Some(l), Kind::Call) => decode::call_from_csv(l, &row, data, &mut call)
                        .ok()
                        .map(|()| call.end),
                    (Some(l), Kind::Attempt) => {
                        decode::attempt_from_csv(l, &row, data, &mut attempt)
                            .ok()
                            .map(|()| attempt.end)
                    }
                    (None, _) => None,
                };
                match t {
                    Some(t) => note(&mut s, t),
                    None => s.bad += 1,
                }
            }
        }
        Format::Jsonl => {
            let mut pos = 0;
            while let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') {
                let line = &data[pos..pos + nl];
                pos += nl + 1;
                s.complete_len = pos;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                s.records += 1;
                match decode::from_json_line(line, kind, &mut call, &mut attempt) {
                    Ok(decode::JsonLine::Call) => note(&mut s, call.end),
                    Ok(decode::JsonLine::Attempt) => note(&mut s, attempt.end),
                    Err(_) => s.bad += 1,
                }
            }
        }
    }
    s
}

/// Rename `open_path` (`*.open`) to its sealed name, fsync the directory, append the manifest line.
pub(crate) struct SealInfo {
    pub kind: Kind,
    pub records: u64,
    pub bytes: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub sha256: String,
}

pub(crate) fn seal(dir: &Path, open_path: &Path, info: SealInfo) -> io::Result<String> {
    let SealInfo {
        kind,
        records,
        bytes,
        first,
        last,
        sha256,
    } = info;
    let name = open_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(OPEN_SUFFIX))
        .ok_or_else(|| io::Error::other("not an .open file"))?
        .to_string();
    fs::rename(open_path, dir.join(&name))?;
    sync_dir(dir)?;
    append_manifest(
        dir,
        &ManifestEntry {
            file: name.clone(),
            kind: kind.as_str().to_string(),
            records,
            bytes,
            first: first.map(format_ts).unwrap_or_default(),
            last: last.map(format_ts).unwrap_or_default(),
            sha256,
            sealed_at: format_ts(Timestamp::now()),
        },
    )?;
    Ok(name)
}

/// What start-up recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Open files from a previous run that were sealed.
    pub sealed: u64,
    /// Files whose torn last line was cut off.
    pub torn: u64,
    /// Bytes cut off in total.
    pub torn_bytes: u64,
    /// Open files without a single complete record, removed.
    pub removed: u64,
    /// Sealed files missing from the MANIFEST (crash between rename and append), added.
    pub manifest_repaired: u64,
}

/// Seal every `*.open` file in `dir` left by a previous run, cutting a torn tail first; add
/// manifest lines for sealed files the manifest lacks. Run before the writer opens new files.
pub fn recover_dir(dir: &Path) -> io::Result<Recovery> {
    let mut rec = Recovery::default();
    for f in list_files(dir)? {
        if !f.open {
            continue;
        }
        let mut data = Vec::new();
        File::open(&f.path)?.read_to_end(&mut data)?;
        let scan = scan_bytes(&data, f.kind, f.format);
        if scan.complete_len < data.len() {
            let cut = data.len() - scan.complete_len;
            tracing::warn!(file = %f.name, bytes = cut, "cdr: torn tail from an unclean stop cut off");
            let file = OpenOptions::new().write(true).open(&f.path)?;
            file.set_len(scan.complete_len as u64)?;
            file.sync_all()?;
            data.truncate(scan.complete_len);
            rec.torn += 1;
            rec.torn_bytes += cut as u64;
        }
        if scan.records == 0 {
            tracing::info!(file = %f.name, "cdr: open file without records removed");
            fs::remove_file(&f.path)?;
            rec.removed += 1;
            continue;
        }
        if scan.bad > 0 {
            tracing::warn!(file = %f.name, bad = scan.bad, "cdr: undecodable lines in recovered file");
        }
        let sha = hex(&Sha256::digest(&data));
        let name = seal(
            dir,
            &f.path,
            SealInfo {
                kind: f.kind,
                records: scan.records,
                bytes: data.len() as u64,
                first: scan.first,
                last: scan.last,
                sha256: sha,
            },
        )?;
        tracing::info!(file = %name, records = scan.records, "cdr: file left open by a previous run sealed");
        rec.sealed += 1;
    }
    // Sealed files the manifest does not know (crash between rename and manifest append).
    let known: std::collections::HashSet<String> =
        read_manifest(dir)?.into_iter().map(|e| e.file).collect();
    for f in list_files(dir)? {
        if f.open || known.contains(&f.name) {
            continue;
        }
        let data = fs::read(&f.path)?;
        let scan = scan_bytes(&data, f.kind, f.format);
        append_manifest(
            dir,
            &ManifestEntry {
                file: f.name.clone(),
                kind: f.kind.as_str().to_string(),
                records: scan.records,
                bytes: data.len() as u64,
                first: scan.first.map(format_ts).unwrap_or_default(),
                last: scan.last.map(format_ts).unwrap_or_default(),
                sha256: hex(&Sha256::digest(&data)),
                sealed_at: format_ts(Timestamp::now()),
            },
        )?;
        tracing::warn!(file = %f.name, "cdr: sealed file missing from MANIFEST, line added");
        rec.manifest_repaired += 1;
    }
    Ok(rec)
}

/// Problems found by [`verify_dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyIssue {
    pub file: String,
    pub problem: String,
}

/// Check every sealed file against its manifest line (size, SHA-256, record count).
pub fn verify_dir(dir: &Path) -> io::Result<Vec<VerifyIssue>> {
    let manifest = read_manifest(dir)?;
    let mut issues = Vec::new();
    for f in list_files(dir)? {
        if f.open {
            continue;
        }
        let Some(entry) = manifest.iter().rev().find(|e| e.file == f.name) else {
            issues.push(VerifyIssue {
                file: f.name.clone(),
                problem: "not in MANIFEST".into(),
            });
            continue;
        };
        let data = fs::read(&f.path)?;
        let sha = hex(&Sha256::digest(&data));
        if sha != entry.sha256 || data.len() as u64 != entry.bytes {
            issues.push(VerifyIssue {
                file: f.name.clone(),
                problem: format!("SHA-256/size mismatch: file {sha} ({} bytes)", data.len()),
            });
            continue;
        }
        let scan = scan_bytes(&data, f.kind, f.format);
        if scan.records != entry.records {
            issues.push(VerifyIssue {
                file: f.name.clone(),
                problem: format!("{} records, manifest says {}", scan.records, entry.records),
            });
        }
    }
    Ok(issues)
}
