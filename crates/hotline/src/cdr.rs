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

/// A path Hotline chose, and why: every message about it names both, and the flag that
/// sets it, so that a path relative to the current directory is never a mystery.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub path: PathBuf,
    /// Where it came from: `--dir`, `[server.cdr] dir of X` ...
    pub why: String,
    /// What to pass to choose another.
    pub set_with: &'static str,
}

impl Chosen {
    /// `path` as given on the command line.
    pub fn given(path: &Path, flag: &str) -> Chosen {
        Chosen {
            path: path.to_path_buf(),
            why: format!("given with {flag}"),
            set_with: "",
        }
    }

    /// `./cdr ([server.cdr] dir of the embedded default config ...; relative to the current
    /// directory: /srv/x/cdr)`.
    fn describe(&self) -> String {
        let shown = self.path.display();
        if self.path.is_absolute() {
            return format!("{shown} ({})", self.why);
        }
        match std::env::current_dir() {
            Ok(cwd) => {
                let abs: PathBuf = cwd
                    .components()
                    .chain(
                        self.path
                            .components()
                            .filter(|c| *c != std::path::Component::CurDir),
                    )
                    .collect();
                format!(
                    "{shown} ({}; relative to the current directory: {})",
                    self.why,
                    abs.display()
                )
            }
            Err(_) => format!("{shown} ({}; relative to the current directory)", self.why),
        }
    }

    /// A read error about this path (or a file under it): said once, with what was looked
    /// for, where, and how to point Hotline elsewhere.
    fn error(&self, what: &str, e: &hotline_cdr::CdrError) -> String {
        use hotline_cdr::CdrError;
        let set = if self.set_with.is_empty() {
            String::new()
        } else {
            format!("; {}", self.set_with)
        };
        match e {
            CdrError::Io { path, source }
                if source.kind() == std::io::ErrorKind::NotFound && path == &self.path =>
            {
                format!("no {what} at {}{set}", self.describe())
            }
            // The error names its own file (one in the directory, or the rate file).
            CdrError::Io { .. } => format!("{e} (reading the {what} {})", self.describe()),
            CdrError::Invalid(m) if m.contains(&self.path.display().to_string()) => m.clone(),
            CdrError::Invalid(m) => format!("{}: {m}", self.path.display()),
        }
    }
}

impl std::ops::Deref for Chosen {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

const SET_CDR_DIR: &str =
    "pass --dir DIR, or --config PATH to read the CDRs where that config's [server.cdr] dir says";

/// The CDR directory for `--dir` / `--config` (see the module docs).
pub fn cdr_dir(dir: Option<&Path>, config: Option<&Path>) -> Result<Chosen, String> {
    if let Some(d) = dir {
        return Ok(Chosen::given(d, "--dir"));
    }
    let compiled = crate::load(config)?;
    let why = match config {
        Some(c) => format!("[server.cdr] dir of --config {}", c.display()),
        None => {
            "[server.cdr] dir of the embedded default config, as no --dir or --config was given"
                .to_string()
        }
    };
    Ok(Chosen {
        path: compiled.settings.cdr.dir,
        why,
        set_with: SET_CDR_DIR,
    })
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
pub fn query(dir: &Chosen, filter: &Filter, limit: Option<usize>, format: QueryFmt) -> ExitCode {
    let f = match filter.to_query() {
        Ok(f) => f,
        Err(e) => return bad(e, 2),
    };
    let opts = QueryOptions { filter: f, limit };
    let res = match query::query(dir, &opts) {
        Ok(r) => r,
        Err(e) => return bad(dir.error("CDR directory", &e), 1),
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
    dir: &Chosen,
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
        Err(e) => return bad(dir.error("CDR directory", &e), 1),
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
pub fn bill(dir: &Chosen, month: &str, rates: &Chosen, format: BillFmt) -> ExitCode {
    let Some(m) = Month::parse(month) else {
        return bad(
            format!("--month {month:?}: expected YYYY-MM, e.g. 2026-11"),
            2,
        );
    };
    let cfg = match hotline_config::billing::load_billing(rates) {
        Ok(c) => c,
        Err(e) => return bad(rates.error("rate file (rate plans and accounts)", &e), 1),
    };
    let b = match billing::bill(dir, &cfg, m) {
        Ok(b) => b,
        Err(e) => return bad(dir.error("CDR directory", &e), 1),
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

const SET_RATES: &str = "pass --rates FILE (format: config/billing.toml of the source tree, docs/cdr.md \"Billing\"), or --config PATH to use the billing.toml beside that config";

/// The rate file: `--rates`, else `billing.toml` beside `--config`, else `config/billing.toml`.
pub fn rates_path(rates: Option<&Path>, config: Option<&Path>) -> Chosen {
    if let Some(r) = rates {
        return Chosen::given(r, "--rates");
    }
    let (path, why) = match config {
        Some(c) if c.is_dir() => (
            c.join("billing.toml"),
            format!("billing.toml in the --config directory {}", c.display()),
        ),
        Some(c) => (
            c.parent().unwrap_or(Path::new(".")).join("billing.toml"),
            format!("billing.toml beside --config {}", c.display()),
        ),
        None => (
            PathBuf::from("config/billing.toml"),
            "the default without --rates or --config".to_string(),
        ),
    };
    Chosen {
        path,
        why,
        set_with: SET_RATES,
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
        let tmp = tempfile::tempdir().expect("tempdir");
        // An empty directory is a valid, empty CDR store.
        let dir = Chosen::given(tmp.path(), "--dir");
        let f = Filter::default();
        assert_eq!(query(&dir, &f, None, QueryFmt::Csv), ExitCode::SUCCESS);
        let html = tmp.path().join("r.html");
        assert_eq!(
            report(&dir, &f, 5, ReportFmt::Json, Some(&html)),
            ExitCode::SUCCESS
        );
        assert!(
            std::fs::read_to_string(&html).is_ok_and(|s| s.contains("<svg") || s.contains("<html"))
        );
        assert_eq!(
            bill(
                &dir,
                "2026-13",
                &Chosen::given(Path::new("x.toml"), "--rates"),
                BillFmt::Table
            ),
            ExitCode::from(2)
        );
        assert_eq!(
            bill(
                &dir,
                "2026-11",
                &Chosen::given(&tmp.path().join("missing.toml"), "--rates"),
                BillFmt::Table
            ),
            ExitCode::from(1)
        );
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/billing.toml");
        assert_eq!(
            bill(
                &dir,
                "2026-11",
                &Chosen::given(&shipped, "--rates"),
                BillFmt::Json
            ),
            ExitCode::SUCCESS
        );
    }

    /// #14 / #21 item 7: a missing path is named once, with why it was chosen, where that is
    /// (relative paths resolved against the current directory) and the flag that sets it.
    #[test]
    fn missing_paths_are_named_once_with_why_and_the_flag() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = |c: &Chosen| {
            let e = not_found(&c.path);
            c.error("rate file (rate plans and accounts)", &e)
        };
        let rates = rates_path(None, None);
        let m = missing(&rates);
        assert_eq!(m.matches("at config/billing.toml (").count(), 1, "{m}");
        assert!(
            !m.contains("config/billing.toml: config/billing.toml"),
            "{m}"
        );
        assert!(m.starts_with("no rate file"), "{m}");
        assert!(m.contains("the default without --rates or --config"), "{m}");
        assert!(m.contains("relative to the current directory: /"), "{m}");
        assert!(
            m.contains("--rates FILE") && m.contains("--config PATH"),
            "{m}"
        );
        assert!(!m.contains("os error"), "{m}");

        let beside = tmp.path().join("hotline.toml");
        let rates = rates_path(None, Some(&beside));
        let m = missing(&rates);
        assert!(m.contains("billing.toml beside --config"), "{m}");

        // A CDR directory named by --dir: the flag is the why, nothing else to suggest.
        let gone = tmp.path().join("cdr");
        let d = Chosen::given(&gone, "--dir");
        let m = d.error("CDR directory", &not_found(&gone));
        assert_eq!(
            m,
            format!("no CDR directory at {} (given with --dir)", gone.display())
        );
        // Through the real reader: the path once, not "./x: ./x: No such file".
        let rel = Chosen {
            path: PathBuf::from("./no-such-cdr-dir"),
            why: "[server.cdr] dir of the embedded default config".into(),
            set_with: SET_CDR_DIR,
        };
        let Err(e) = hotline_cdr::report::report(&rel, &ReportOptions::default()) else {
            panic!("no such directory");
        };
        let m = rel.error("CDR directory", &e);
        assert_eq!(m.matches("./no-such-cdr-dir").count(), 1, "{m}");
        assert!(m.contains("--dir DIR"), "{m}");
    }

    fn not_found(p: &Path) -> hotline_cdr::CdrError {
        hotline_cdr::CdrError::Io {
            path: p.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn rates_beside_the_config() {
        assert_eq!(
            rates_path(None, Some(Path::new("/etc/hotline/hotline.toml"))).path,
            PathBuf::from("/etc/hotline/billing.toml")
        );
        assert_eq!(
            rates_path(None, None).path,
            PathBuf::from("config/billing.toml")
        );
        assert_eq!(
            rates_path(Some(Path::new("r.toml")), None).path,
            PathBuf::from("r.toml")
        );
    }
}
