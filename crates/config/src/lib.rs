//! Hotline's TOML configuration: the `[server]` [`Settings`] and the routing model, compiled into
//! a [`hotline_route::RouteTable`] with every error reported at once.
//!
//! Owns: the file schema (serde, `deny_unknown_fields`), validation with file / line / key path /
//! hint, merging configs split across files, the embedded default config and holiday calendar.
//! Must not: route calls (that is `hotline-route`), touch sockets, or keep state between loads.
//! [`from_toml_str`] never touches the disk except for an explicit `[calendar] path`;
//! [`load_path`] reads files.
//!
//! # Layout
//! - [`schema`]: the raw serde structs.
//! - `compile`: raw files -> `Settings` + `TableParts` (every error at once): a short driver over
//!   one module per section (values, settings, calendar, targets, plans, rules, numbers).
//! - `recover`: every structural error of a file (unknown keys, wrong types), not just serde's first.
//! - [`settings`]: `Settings` and its parts.
//! - [`billing`]: billing rate files (`[server.billing] file`, `hotline bill`) -> `hotline_cdr::billing::BillingConfig`.
//! - [`cluster`]: `[cluster]` (`ClusterSettings`, the Redis-down policy).
//! - [`error`]: `ConfigError`, `ConfigErrors`, `Warning`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod billing;
pub mod cluster;
mod compile;
pub mod error;
mod recover;
#[allow(missing_docs)]
pub mod schema;
pub mod settings;

use std::path::{Path, PathBuf};

use hotline_route::RouteTable;
use jiff::civil::Date;

pub use cluster::{ClusterSettings, DownPolicy, RedisDown, SentinelUrl, SENTINEL_SCHEME};
pub use compile::{
    calendar_warning, parse_date_range, parse_duration, parse_sip_uri, parse_time_range,
    parse_weekdays, Source, COMPANY_MAX_NUMBERS, EMBEDDED_CALENDAR,
};
pub use error::{ConfigError, ConfigErrors, Warning};
pub use settings::{
    cidr_contains, ApiSettings, BillingSettings, CdrFormat, CdrSettings, Rotate, Settings,
    ShipSettings, SipSettings, Trunk, TrunkRole, UnknownSources, DEFAULT_COALESCE, MAX_COALESCE,
};

/// The default configuration, also shipped as `config/hotline.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/hotline.toml");

/// A compiled configuration.
#[derive(Debug)]
pub struct Compiled {
    /// `[server]` settings.
    pub settings: Settings,
    /// The routing snapshot.
    pub table: RouteTable,
    /// Things that compile but look wrong (unused targets, stale calendar ...).
    pub warnings: Vec<Warning>,
    /// What the loader did that the operator should know (a rate file in the config directory
    /// was left out ...). Not problems.
    pub notes: Vec<String>,
}

fn read_disk(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

fn finish(
    sources: &[Source],
    generation: u64,
    today: Date,
    allow_include: bool,
) -> Result<Compiled, ConfigErrors> {
    match compile::compile(sources, generation, &read_disk, allow_include) {
        Ok(out) => {
            let mut warnings = out.warnings;
            if let Some(w) = calendar_warning(&out.parts.calendar, today) {
                warnings.push(Warning {
                    file: sources.first().map(|s| s.name.clone()).unwrap_or_default(),
                    line: 0,
                    key: "calendar".into(),
                    message: w,
                });
            }
            Ok(Compiled {
                settings: out.settings,
                table: RouteTable::from_parts(out.parts),
                warnings,
                notes: Vec::new(),
            })
        }
        Err((errors, _)) => Err(ConfigErrors(errors)),
    }
}

/// Compile one config text. `file_name` is used in messages. `include` is refused here (it
/// needs a directory to resolve against): use [`load_path`]. `today` (the operator's date) is
/// the date the holiday-calendar warning is about: the calendar should list the next year.
/// Nothing here reads the clock.
pub fn from_toml_str(
    src: &str,
    file_name: &str,
    generation: u64,
    today: Date,
) -> Result<Compiled, ConfigErrors> {
    finish(
        &[Source {
            name: file_name.to_string(),
            text: src.to_string(),
        }],
        generation,
        today,
        false,
    )
}

/// Compile several texts as one config (the first is the main file). For tests and tools
/// that already hold the files; `include` keys are refused as in [`from_toml_str`].
pub fn from_sources(
    sources: &[Source],
    generation: u64,
    today: Date,
) -> Result<Compiled, ConfigErrors> {
    finish(sources, generation, today, false)
}

/// The top-level keys of a TOML text: everything before the first table header. `include`
/// can only be there, so it is found without parsing a (possibly large) whole file.
fn include_list(text: &str) -> Option<toml::Value> {
    let mut end = text.len();
    let mut off = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            end = off;
            break;
        }
        off += line.len();
    }
    let mut tbl = toml::from_str::<toml::Table>(&text[..end])
        .or_else(|_| toml::from_str::<toml::Table>(text))
        .ok()?;
    tbl.remove("include")
}

/// Load a config file (following its `include = ["companies/*.toml"]` globs, relative to the
/// file's directory) or a directory (every `*.toml` in it, sorted by name; a `hotline.toml`
/// there is the main file). `today` as in [`from_toml_str`].
pub fn load_path(path: &Path, generation: u64, today: Date) -> Result<Compiled, ConfigErrors> {
    let (sources, notes) = load_sources(path)?;
    let mut c = finish(&sources, generation, today, true)?;
    c.notes = notes;
    Ok(c)
}

/// Compile texts read by [`load_sources`] (includes allowed: they are already followed), e.g.
/// with one file replaced by its edited text, to check an edit before it is written. `today`
/// as in [`from_toml_str`].
pub fn compile_loaded(
    sources: &[Source],
    generation: u64,
    today: Date,
) -> Result<Compiled, ConfigErrors> {
    finish(sources, generation, today, true)
}

/// Read the files [`load_path`] would compile, following includes, main file first; with the
/// notes of what was left out. Each [`Source::name`] is the file's path.
pub fn load_sources(path: &Path) -> Result<(Vec<Source>, Vec<String>), ConfigErrors> {
    let io_err = |p: &Path, e: std::io::Error| {
        ConfigErrors(vec![ConfigError {
            file: p.display().to_string(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
            hint: None,
        }])
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if path.is_dir() {
        let mut v = toml_files_in(path).map_err(|e| io_err(path, e))?;
        // A rate file (`hotline bill`, `[server.billing] file`) kept beside the routing files
        // is not part of the routing config.
        v.retain(|p| {
            let rates = std::fs::read_to_string(p).is_ok_and(|t| is_rate_file(&t));
            if rates {
                notes.push(format!(
                    "{}: a rate file (plans with rate_per_minute, [[accounts]]) for `hotline bill` and [server.billing], not routing: skipped",
                    p.display()
                ));
            }
            !rates
        });
        if let Some(i) = v
            .iter()
            .position(|p| p.file_name().is_some_and(|n| n == "hotline.toml"))
        {
            let main = v.remove(i);
            v.insert(0, main);
        }
        files = v;
    } else {
        files.push(path.to_path_buf());
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let p = files[i].clone();
        i += 1;
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(io_err(&p, e).0);
                continue;
            }
        };
        // Resolve includes.
        {
            if let Some(inc) = include_list(&text) {
                let base = p.parent().unwrap_or(Path::new("."));
                let line = text
                    .lines()
                    .position(|l| l.trim_start().starts_with("include"))
                    .map(|n| n + 1)
                    .unwrap_or(0);
                let pats: Vec<String> = match &inc {
                    toml::Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect(),
                    toml::Value::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                };
                for pat in pats {
                    match expand_glob(base, &pat) {
                        Ok(found) if found.is_empty() => errors.push(ConfigError {
                            file: p.display().to_string(),
                            line,
                            key: "include".into(),
                            message: format!("{pat:?} matches no file"),
                            hint: Some("paths are relative to this file's directory".into()),
                        }),
                        Ok(found) => {
                            for f in found {
                                if !files.contains(&f) {
                                    files.push(f);
                                }
                            }
                        }
                        Err(e) => errors.push(ConfigError {
                            file: p.display().to_string(),
                            line,
                            key: "include".into(),
                            message: format!("cannot expand {pat:?}: {e}"),
                            hint: None,
                        }),
                    }
                }
            }
        }
        sources.push(Source {
            name: p.display().to_string(),
            text,
        });
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok((sources, notes))
}

/// Whether a TOML text is a billing rate file (the format of `config/billing.toml`: only
/// `timezone`, `[plans.X]` with `rate_per_minute`, `[[accounts]]`), not routing config.
pub fn is_rate_file(text: &str) -> bool {
    let Ok(t) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    let only_rate_keys = t
        .keys()
        .all(|k| matches!(k.as_str(), "timezone" | "plans" | "accounts"));
    let rated_plan = t.get("plans").and_then(|p| p.as_table()).is_some_and(|p| {
        p.values().any(|v| {
            v.as_table()
                .is_some_and(|v| v.contains_key("rate_per_minute"))
        })
    });
    only_rate_keys && (t.contains_key("accounts") || rated_plan)
}

/// The config file that includes `path`: a `*.toml` in the file's directory or the one above
/// whose `include` globs match it (`config/etc-hotline/hotline.toml` for
/// `config/etc-hotline/companies/acme.toml`). `None` when the file stands alone.
pub fn included_by(path: &Path) -> Option<PathBuf> {
    let me = path.canonicalize().ok()?;
    let dir = me.parent()?;
    let dirs = [Some(dir), dir.parent()];
    for d in dirs.into_iter().flatten() {
        let Ok(candidates) = toml_files_in(d) else {
            continue;
        };
        for c in candidates {
            if c == me {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&c) else {
                continue;
            };
            let pats: Vec<String> = match include_list(&text) {
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                Some(toml::Value::String(s)) => vec![s],
                _ => continue,
            };
            for pat in pats {
                let hit = expand_glob(d, &pat).is_ok_and(|found| {
                    found
                        .iter()
                        .any(|f| f.canonicalize().is_ok_and(|f| f == me))
                });
                if hit {
                    // Name it as the caller named the fragment: relative stays relative.
                    let shown = match path.parent() {
                        Some(p) if d == dir => p.join(c.file_name()?),
                        Some(p) => match p.parent() {
                            Some(pp) if !p.as_os_str().is_empty() => pp.join(c.file_name()?),
                            _ => p.join("..").join(c.file_name()?),
                        },
                        None => c.clone(),
                    };
                    return Some(shown);
                }
            }
        }
    }
    None
}

fn toml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

/// Expand `dir/*.toml`-style patterns: `*` and `?` in the last path component only.
fn expand_glob(base: &Path, pat: &str) -> std::io::Result<Vec<PathBuf>> {
    let full = base.join(pat);
    let name = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') && !name.contains('?') {
        return Ok(if full.is_file() {
            vec![full]
        } else {
            Vec::new()
        });
    }
    let dir = full.parent().unwrap_or(base).to_path_buf();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| wildcard(&name, &n.to_string_lossy()))
        })
        .collect();
    v.sort();
    Ok(v)
}

fn wildcard(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests;

/// The smallest routing config the section tests build on: one company, target, plan and
/// number (append or prepend the section under test).
#[cfg(test)]
pub(crate) const TEST_BASE: &str = r#"
[companies.c]
name = "C"
[targets.t]
uri = "sip:1@127.0.0.1:5070"
[plans.p]
[[plans.p.groups]]
members = ["t"]
[numbers."4008001234"]
company = "c"
plan = "p"
"#;
