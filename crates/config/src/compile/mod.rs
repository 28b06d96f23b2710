//! Raw TOML files -> `Settings` + `RouteTable`, collecting every error.
//!
//! # Layout
//! - this file: the driver [`compile`] (parse every file, then each section in order, then the
//!   unused-name warnings and the hash) and what every section shares (`Ctx`, key quoting,
//!   duplicate names across files).
//! - `values`: scalar values (durations, time ranges, weekdays, dates, regions, codes, URIs).
//! - `settings`: `[server]`.
//! - `calendar`: `[calendar]`.
//! - `targets`: `[gateways]`, `[targets]`.
//! - `plans`: `[plans]`.
//! - `rules`: named lists, screening, the anonymous policy, rates, a number's rules.
//! - `numbers`: `[companies]`, `[numbers]`.

mod calendar;
mod numbers;
mod plans;
mod rules;
mod settings;
mod targets;
mod values;

use calendar::*;
pub use calendar::{calendar_warning, EMBEDDED_CALENDAR};
pub use numbers::COMPANY_MAX_NUMBERS;
use numbers::*;
use plans::*;
use rules::*;
use settings::*;
use targets::*;
use values::*;
pub use values::{
    parse_date_range, parse_duration, parse_sip_uri, parse_time_range, parse_weekdays,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use hotline_route::{
    normalize_called, normalize_caller, uri_user_allowed, AdvanceOn, AnonymousPolicy, Calendar,
    CallerKind, Conditions, DayKind, EarlyMedia, Fallback, ForwardOn, Group, ListId, ListSet,
    Member, Mode, NamedList, NumberEntry, OnTargetBusyLocal, Plan, PlanId, RateLimit, RateWindow,
    RegionDb, RegionPattern, RingFrom, Rule, Screening, Status, Strategy, TableParts, Target,
    TargetId, TimeRange, Transport, Weekdays, MAX_GROUPS, MAX_MEMBERS,
};
use jiff::civil::Date;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::error::{line_of, ConfigError, Warning};
use crate::schema::*;
use crate::settings::{
    BillingSettings, CdrFormat, CdrSettings, Rotate, Settings, ShipSettings, SipSettings, Trunk,
    TrunkRole, UnknownSources,
};

/// One config file's text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name used in messages (a path, or what the caller passed).
    pub name: String,
    /// The file's contents.
    pub text: String,
}

/// Reads an override calendar file (a path from `[calendar] path`).
pub type FileReader<'a> = &'a dyn Fn(&str) -> Result<String, String>;

struct Ctx<'a> {
    sources: &'a [Source],
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
    /// Rules with an IVR `key` (file, span, key path): they need a media-server trunk.
    ivr_rules: Vec<(usize, Range<usize>, String)>,
}

impl Ctx<'_> {
    fn err(
        &mut self,
        file: usize,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (name, line) = self.loc(file, span);
        self.errors.push(ConfigError {
            file: name,
            line,
            key: key.into(),
            message: nonempty(message.into()),
            hint,
        });
    }

    fn warn(
        &mut self,
        file: usize,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (name, line) = self.loc(file, span);
        self.warnings.push(Warning {
            file: name,
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn loc(&self, file: usize, span: Range<usize>) -> (String, usize) {
        match self.sources.get(file) {
            Some(s) => (s.name.clone(), line_of(&s.text, span.start)),
            None => (String::new(), 0),
        }
    }
}

/// Quote a key for a key path unless it is a plain identifier.
pub(crate) fn q(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.chars().all(|c| c.is_ascii_digit());
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn names_hint<'a>(kind: &str, names: impl Iterator<Item = &'a String>) -> Option<String> {
    let mut v: Vec<&String> = names.collect();
    // Sorted: the maps are hash maps, and a hint must read the same every time.
    v.sort_unstable();
    if v.is_empty() {
        return Some(format!("no {kind} are defined"));
    }
    let shown: Vec<&str> = v.iter().take(8).map(|s| s.as_str()).collect();
    let more = if v.len() > 8 { ", ..." } else { "" };
    Some(format!("defined {kind}: {}{more}", shown.join(", ")))
}

/// Output of [`compile`].
pub(crate) struct Output {
    pub settings: Settings,
    pub parts: TableParts,
    pub warnings: Vec<Warning>,
}

/// Compile parsed sources. `sources[0]` is the main file.
pub(crate) fn compile(
    sources: &[Source],
    generation: u64,
    read_file: FileReader<'_>,
    allow_include: bool,
) -> Result<Output, (Vec<ConfigError>, Vec<Warning>)> {
    let mut cx = Ctx {
        sources,
        errors: Vec::new(),
        warnings: Vec::new(),
        ivr_rules: Vec::new(),
    };
    let (files, taint) = parse_files(&mut cx, allow_include);
    let structural = cx.errors.len();
    let db = RegionDb::embedded();
    let mut settings = compile_server(&mut cx, &files);
    let calendar = build_calendar(&mut cx, &files, read_file);
    // Names are global across files: one map finds a second definition of any of them.
    let mut seen_at: HashMap<String, usize> = HashMap::new();
    let gateways = compile_gateways(&mut cx, &files, &mut seen_at);
    let mut targets = compile_targets(&mut cx, &files, &mut seen_at, &gateways);
    let (lists, list_ids) = compile_lists(&mut cx, &files, &mut seen_at, db);
    let (plans, plan_ids) = compile_plans(&mut cx, &files, &mut seen_at, &mut targets);
    let global = compile_global_screening(&mut cx, &files, &list_ids, &plan_ids, db);
    let mut used_plans = global.anonymous_plans.clone();
    let numbers = compile_numbers(
        &mut cx,
        &files,
        &mut seen_at,
        &Names {
            plans: &plan_ids,
            lists: &list_ids,
        },
        &global,
        &mut used_plans,
        db,
    );
    check_ivr_rules(&mut cx, &settings);
    warn_unused(
        &mut cx,
        &files,
        &targets,
        &plan_ids,
        &used_plans,
        numbers.is_empty(),
    );
    if !cx.errors.is_empty() {
        return Err(sorted_errors(cx, &taint, structural));
    }

    if let Some(c) = settings.cluster.as_mut() {
        c.config_hash = crate::cluster::shared_hash(sources);
    }
    Ok(Output {
        settings,
        parts: TableParts {
            generation,
            hash: source_hash(sources),
            numbers,
            targets: targets.list,
            plans,
            lists,
            global: global.screening,
            calendar,
            abroad_code: global.abroad_code,
        },
        warnings: cx.warnings,
    })
}

/// Parse every file: every structural error of each (`crate::recover`), and what could be
/// read of it is compiled too, so value errors are not hidden behind them.
fn parse_files(
    cx: &mut Ctx<'_>,
    allow_include: bool,
) -> (Vec<(usize, RawFile)>, crate::recover::Taint) {
    let sources = cx.sources;
    let mut files: Vec<(usize, RawFile)> = Vec::new();
    let mut taint = crate::recover::Taint::default();
    for (i, s) in sources.iter().enumerate() {
        let parsed = crate::recover::parse_file(&s.text);
        for p in parsed.problems {
            cx.err(i, p.span, p.key, p.message, p.hint);
        }
        taint.merge(parsed.taint);
        if let Some(f) = parsed.file {
            if let (Some(inc), false) = (&f.include, allow_include) {
                cx.err(
                    i,
                    inc.span(),
                    "include",
                    "include is only resolved when loading from a path",
                    Some("use load_path / `hotline check PATH`".into()),
                );
            }
            files.push((i, f));
        }
    }
    (files, taint)
}

/// The config hash: SHA-256 over every file's name and text, in order.
fn source_hash(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.name.as_bytes());
        h.update([0u8]);
        h.update(s.text.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Warnings for what nothing uses (targets, plans) and for a config without numbers.
fn warn_unused(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    targets: &Targets,
    plan_ids: &HashMap<String, PlanId>,
    used_plans: &HashSet<PlanId>,
    no_numbers: bool,
) {
    for (t, (fi, span)) in targets.list.iter().zip(targets.loc.iter()) {
        if !targets.used.contains(&t.id) {
            cx.warn(
                *fi,
                span.clone(),
                format!("targets.{}", q(&t.name)),
                "target is not used by any plan",
            );
        }
    }
    for (fi, f) in files {
        for name in f.plans.keys() {
            if let Some(id) = plan_ids.get(name.get_ref()) {
                if !used_plans.contains(id) {
                    cx.warn(
                        *fi,
                        name.span(),
                        format!("plans.{}", q(name.get_ref())),
                        "plan is not used by any number or rule",
                    );
                }
            }
        }
    }
    if files.len() == cx.sources.len() && no_numbers && cx.errors.is_empty() {
        cx.warn(0, 0..0, "numbers", "no 400 numbers are configured");
    }
}

/// Every error, in file and line order, without those that only follow from a structural one.
fn sorted_errors(
    cx: Ctx<'_>,
    taint: &crate::recover::Taint,
    structural: usize,
) -> (Vec<ConfigError>, Vec<Warning>) {
    let mut errors = cx.errors;
    if !taint.is_empty() {
        // Not the consequences of what recover cut (see crate::recover). The structural
        // errors themselves (the first `structural`) always stay, so some error does.
        let mut i = 0;
        errors.retain_mut(|e| {
            i += 1;
            if i <= structural {
                return true;
            }
            e.key = taint.remap(&e.key);
            !taint.explains(&e.key, &e.message)
        });
    }
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    (errors, cx.warnings)
}

/// Span of the first `[name` / `name =` / `name.` occurrence at the start of a line, for errors
/// about a whole table (tables have no reliable spans of their own).
fn header_span(text: &str, name: &str) -> Range<usize> {
    let mut off = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start().trim_start_matches('[').trim_start();
        if t.starts_with(name) {
            return off..off + line.len();
        }
        off += line.len();
    }
    0..0
}

/// Record a definition; report a duplicate (across files; within a file TOML itself refuses).
fn dup(
    cx: &mut Ctx<'_>,
    seen: &mut HashMap<String, usize>,
    fi: usize,
    name: &Spanned<String>,
    key: &str,
) -> bool {
    if let Some(&prev) = seen.get(key) {
        let pname = cx
            .sources
            .get(prev)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        cx.err(
            fi,
            name.span(),
            key.to_string(),
            format!("{key} is already defined in {pname}"),
            Some("names are global across all config files".into()),
        );
        return true;
    }
    seen.insert(key.to_string(), fi);
    false
}

/// The toml parser gives no message for some syntax errors (a control character, a missing
/// value): say at least what kind of problem it is.
fn nonempty(m: String) -> String {
    if m.trim().is_empty() {
        "invalid TOML syntax here (a missing value, or a control character the format forbids)"
            .into()
    } else {
        m
    }
}
