//! `hotline cdr query`, `hotline cdr report` and `hotline bill`: thin wrappers over
//! `hotline_cdr`'s query / report / billing functions. The CDR directory is `--dir`, else
//! `[server.cdr] dir` of `--config`, else the embedded default's (`./cdr`).
//!
//! Exit status: 0 done, 1 the CDRs or the rate file cannot be read, 2 bad arguments.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use hotline_cdr::billing::{self, BillFormat, Month};
use hotline_cdr::query::{self, CallerMatch, OutputFormat, QueryFilter, QueryOptions};
use hotline_cdr::report::{self, ReportFormat, ReportOptions};
use hotline_cdr::Disposition;

/// Filters shared by `query` and `report`.
#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// The 400 number.
    #[arg(long)]
    pub number: Option<String>,
    /// Calls starting at or after this time (RFC 3339, `2026-11-01T08:00`, or a date; civil
    /// times are China time).
    #[arg(long)]
    pub since: Option<String>,
    /// Calls starting before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Exact caller number (normalised form, e.g. 13800138000 or 01012345678).
    #[arg(long, conflicts_with = "caller_prefix")]
    pub caller: Option<String>,
    /// Caller number prefix (e.g. 138, 010).
    #[arg(long)]
    pub caller_prefix: Option<String>,
    /// Caller province or city (广东, 深圳).
    #[arg(long)]
    pub region: Option<String>,
    /// Disposition(s), comma-separated: answered, busy, no-answer, failed, blocked-list,
    /// blocked-rate, cancelled, limit.
    #[arg(long, value_delimiter = ',')]
    pub disposition: Vec<String>,
    /// Substring of the answered target.
    #[arg(long)]
    pub target: Option<String>,
}

impl Filter {
    /// The library filter, or the first bad argument.
    pub fn to_query(&self) -> Result<QueryFilter, String> {
        let mut dispositions = Vec::new();
        for d in &self.disposition {
            let d = d.trim();
            match Disposition::parse(d) {
                Some(x) => dispositions.push(x),
                None => {
                    let all: Vec<&str> = Disposition::ALL.iter().map(|d| d.as_str()).collect();
                    return Err(format!(
                        "--disposition {d:?}: expected one of {}",
                        all.join(", ")
                    ));
                }
            }
        }
        Ok(QueryFilter {
            number: self.number.clone(),
            from: self
                .since
                .as_deref()
                .map(crate::explain::parse_at)
                .transpose()?,
            to: self
                .until
                .as_deref()
                .map(crate::explain::parse_at)
                .transpose()?,
            caller: match (&self.caller, &self.caller_prefix) {
                (Some(c), _) => Some(CallerMatch::Exact(c.clone())),
                (None, Some(p)) => Some(CallerMatch::Prefix(p.clone())),
                (None, None) => None,
            },
            region: self.region.clone(),
            dispositions,
            target: self.target.clone(),
        })
    }
}

/// `hotline cdr query` output.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFmt {
    Table,
    Csv,
    Json,
}

/// `hotline cdr report` output on stdout.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFmt {
    Text,
    Json,
    Html,
}

/// `hotline bill` output.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillFmt {
    Table,
    Csv,
    Json,
}

/// The CDR directory for `--dir` / `--config` (see the module docs).
pub fn cdr_dir(dir: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    let compiled = crate::load(config)?;
    Ok(compiled.settings.cdr.dir)
}

fn bad(e: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(code)
}

fn read_note(read: &hotline_cdr::reader::ReadStats) {
    if read.bad > 0 || read.torn_tails > 0 {
        eprintln!(
            "note: {} undecodable line(s) and {} torn tail(s) skipped",
            read.bad, read.torn_tails
        );
    }
}

/// `hotline cdr query`.
pub fn query(dir: &Path, filter: &Filter, limit: Option<usize>, format: QueryFmt) -> ExitCode {
    let f = match filter.to_query() {
        Ok(f) => f,
        Err(e) => return bad(e, 2),
    };
    let opts = QueryOptions { filter: f, limit };
    let res = match query::query(dir, &opts) {
        Ok(r) => r,
        Err(e) => return bad(format!("{}: {e}", dir.display()), 1),
    };
    let fmt = match format {
        QueryFmt::Table => OutputFormat::Table,
        QueryFmt::Csv => OutputFormat::Csv,
        QueryFmt::Json => OutputFormat::Json,
    };
    print!(
        "{}",
        query::render_calls(&res.records, fmt, &report::china_tz())
    );
    if format == QueryFmt::Table {
        eprintln!(
            "{} of {} matching call(s) shown ({} files read)",
            res.records.len(),
            res.matched,
            res.stats.files
        );
    }
    read_note(&res.stats);
    ExitCode::SUCCESS
}

/// `hotline cdr report`; `html` also writes the HTML page to that file.
pub fn report(
    dir: &Path,
    filter: &Filter,
    top: usize,
    format: ReportFmt,
    html: Option<&Path>,
) -> ExitCode {
    let f = match filter.to_query() {
        Ok(f) => f,
        Err(e) => return bad(e, 2),
    };
    let opts = ReportOptions {
        filter: f,
        top,
        ..ReportOptions::default()
    };
    let r = match report::report(dir, &opts) {
        Ok(r) => r,
        Err(e) => return bad(format!("{}: {e}", dir.display()), 1),
    };
    if let Some(path) = html {
        if let Err(e) = std::fs::write(path, report::render_report(&r, ReportFormat::Html)) {
            return bad(format!("{}: {e}", path.display()), 1);
        }
        eprintln!("HTML report written to {}", path.display());
    }
    let fmt = match format {
        ReportFmt::Text => ReportFormat::Text,
        ReportFmt::Json => ReportFormat::Json,
        ReportFmt::Html => ReportFormat::Html,
    };
    print!("{}", report::render_report(&r, fmt));
    ExitCode::SUCCESS
}

/// `hotline bill --month YYYY-MM`.
pub fn bill(dir: &Path, month: &str, rates: &Path, format: BillFmt) -> ExitCode {
    let Some(m) = Month::parse(month) else {
        return bad(
            format!("--month {month:?}: expected YYYY-MM, e.g. 2026-11"),
            2,
        );
    };
    let cfg = match billing::load_billing(rates) {
        Ok(c) => c,
        Err(e) => return bad(format!("{}: {e}", rates.display()), 1),
    };
    let b = match billing::bill(dir, &cfg, m) {
        Ok(b) => b,
        Err(e) => return bad(format!("{}: {e}", dir.display()), 1),
    };
    let fmt = match format {
        BillFmt::Table => BillFormat::Table,
        BillFmt::Csv => BillFormat::Csv,
        BillFmt::Json => BillFormat::Json,
    };
    print!("{}", billing::render_bill(&b, fmt));
    read_note(&b.read);
    ExitCode::SUCCESS
}

/// The rate file: `--rates`, else `billing.toml` beside `--config`, else `config/billing.toml`.
pub fn rates_path(rates: Option<&Path>, config: Option<&Path>) -> PathBuf {
    if let Some(r) = rates {
        return r.to_path_buf();
    }
    match config {
        Some(c) if c.is_dir() => c.join("billing.toml"),
        Some(c) => c.parent().unwrap_or(Path::new(".")).join("billing.toml"),
        None => PathBuf::from("config/billing.toml"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_arguments() {
        let f = Filter {
            number: Some("4008001234".into()),
            since: Some("2026-11-01".into()),
            caller_prefix: Some("138".into()),
            disposition: vec!["answered".into(), "no-answer".into()],
            ..Filter::default()
        };
        let q = f.to_query().unwrap_or_default();
        assert_eq!(q.number.as_deref(), Some("4008001234"));
        assert_eq!(q.caller, Some(CallerMatch::Prefix("138".into())));
        assert_eq!(
            q.dispositions,
            vec![Disposition::Answered, Disposition::NoAnswer]
        );
        assert_eq!(
            q.from.map(|t| t.to_string()).as_deref(),
            Some("2026-10-31T16:00:00Z")
        );
        let bad = Filter {
            disposition: vec!["maybe".into()],
            ..Filter::default()
        };
        assert!(bad.to_query().is_err_and(|e| e.contains("no-answer")));
    }

    #[test]
    fn query_report_and_bill_over_a_directory() {
        let Ok(tmp) = tempfile::tempdir() else {
            panic!("tempdir");
        };
        // An empty directory is a valid, empty CDR store.
        let f = Filter::default();
        assert_eq!(
            query(tmp.path(), &f, None, QueryFmt::Csv),
            ExitCode::SUCCESS
        );
        let html = tmp.path().join("r.html");
        assert_eq!(
            report(tmp.path(), &f, 5, ReportFmt::Json, Some(&html)),
            ExitCode::SUCCESS
        );
        assert!(
            std::fs::read_to_string(&html).is_ok_and(|s| s.contains("<svg") || s.contains("<html"))
        );
        assert_eq!(
            bill(tmp.path(), "2026-13", Path::new("x.toml"), BillFmt::Table),
            ExitCode::from(2)
        );
        assert_eq!(
            bill(
                tmp.path(),
                "2026-11",
                &tmp.path().join("missing.toml"),
                BillFmt::Table
            ),
            ExitCode::from(1)
        );
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/billing.toml");
        assert_eq!(
            bill(tmp.path(), "2026-11", &shipped, BillFmt::Json),
            ExitCode::SUCCESS
        );
    }

    #[test]
    fn rates_beside_the_config() {
        assert_eq!(
            rates_path(None, Some(Path::new("/etc/hotline/hotline.toml"))),
            PathBuf::from("/etc/hotline/billing.toml")
        );
        assert_eq!(rates_path(None, None), PathBuf::from("config/billing.toml"));
        assert_eq!(
            rates_path(Some(Path::new("r.toml")), None),
            PathBuf::from("r.toml")
        );
    }
}
