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

mod calendar;
mod plans;
mod rules;
mod settings;
mod targets;
mod values;

use calendar::*;
pub use calendar::{calendar_warning, EMBEDDED_CALENDAR};
use plans::*;
pub use rules::COMPANY_MAX_NUMBERS;
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
    // 1. Parse every file: every structural error of each (crate::recover), and what could
    // be read of it is compiled too, so value errors are not hidden behind them.
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
    let structural = cx.errors.len();
    let db = RegionDb::embedded();

    // 2. Settings.
    let mut settings = Settings::default();
    let mut server_seen: Option<usize> = None;
    for (fi, f) in &files {
        if let Some(srv) = &f.server {
            if let Some(prev) = server_seen {
                let prev_name = sources[prev].name.clone();
                cx.err(
                    *fi,
                    header_span(&sources[*fi].text, "server"),
                    "server",
                    format!("[server] is also defined in {prev_name}"),
                    Some("keep [server] in the main file only".into()),
                );
                continue;
            }
            server_seen = Some(*fi);
            settings = build_settings(&mut cx, *fi, srv);
        }
    }

    // 2b. Cluster (main file only, like [server]).
    let mut cluster_seen: Option<usize> = None;
    for (fi, f) in &files {
        if let Some(raw) = &f.cluster {
            let header = header_span(&sources[*fi].text, "cluster");
            if let Some(prev) = cluster_seen {
                let prev_name = sources[prev].name.clone();
                cx.err(
                    *fi,
                    header,
                    "cluster",
                    format!("[cluster] is also defined in {prev_name}"),
                    Some("keep [cluster] in the main file only".into()),
                );
                continue;
            }
            cluster_seen = Some(*fi);
            let fi = *fi;
            settings.cluster = crate::cluster::build(raw, header, &mut |span, key, msg, hint| {
                cx.err(fi, span, key, msg, hint)
            });
        }
    }

    if let (Some(_), Some(_), Some(fi)) = (&settings.cluster, &settings.billing, cluster_seen) {
        let span = header_span(&sources[fi].text, "cluster");
        cx.warn(
            fi,
            span,
            "cluster",
            "prepaid balances are not shared between cluster nodes yet: each node enforces \
             [server.billing] on its own, so a balance can be spent once per node (docs/CLUSTER.md)",
        );
    }

    // 3. Calendar.
    let calendar = build_calendar(&mut cx, &files, read_file);

    // 4. Gateways.
    let mut gateways: HashMap<String, (SocketAddr, Transport)> = HashMap::new();
    let mut seen_at: HashMap<String, usize> = HashMap::new();
    for (fi, f) in &files {
        for (name, gw) in &f.gateways {
            let key = format!("gateways.{}", q(name.get_ref()));
            if dup(&mut cx, &mut seen_at, *fi, name, &key) {
                continue;
            }
            let g = gw;
            match g.address.get_ref().parse::<SocketAddr>() {
                Ok(a) => {
                    let t = match g.transport {
                        Some(TransportRaw::Tcp) => Transport::Tcp,
                        _ => Transport::Udp,
                    };
                    gateways.insert(name.get_ref().clone(), (a, t));
                }
                Err(_) => cx.err(
                    *fi,
                    g.address.span(),
                    format!("{key}.address"),
                    format!("{:?} is not an IP:port address", g.address.get_ref()),
                    Some("Hotline does no DNS: write e.g. \"10.0.0.9:5060\"".into()),
                ),
            }
        }
    }

    // 5. Targets.
    let mut targets: Vec<Target> = Vec::new();
    let mut target_ids: HashMap<String, TargetId> = HashMap::new();
    let mut target_loc: Vec<(usize, Range<usize>)> = Vec::new();
    for (fi, f) in &files {
        for (name, t) in &f.targets {
            let key = format!("targets.{}", q(name.get_ref()));
            if dup(&mut cx, &mut seen_at, *fi, name, &key) {
                continue;
            }
            if let Some(target) =
                build_target(&mut cx, *fi, &key, name, t, &gateways, targets.len())
            {
                target_ids.insert(target.name.clone(), target.id);
                target_loc.push((*fi, name.span()));
                targets.push(target);
            }
        }
    }
    // Names that failed to build still count as defined (avoid cascades of "unknown target").
    let mut defined_targets: HashSet<String> = HashSet::new();
    for (_, f) in &files {
        for name in f.targets.keys() {
            defined_targets.insert(name.get_ref().clone());
        }
    }
    // Forwards by cause between targets (names resolved once every target is known).
    let mut forward_used: HashSet<TargetId> = HashSet::new();
    for (fi, f) in &files {
        for (name, t) in &f.targets {
            let (Some(raw), Some(&id)) = (&t.forward_on, target_ids.get(name.get_ref())) else {
                continue;
            };
            let key = format!("targets.{}.forward_on", q(name.get_ref()));
            let fwd = build_forward_on(
                &mut cx,
                *fi,
                &key,
                raw,
                &target_ids,
                &defined_targets,
                Some(name.get_ref()),
                &mut forward_used,
            );
            if let Some(t) = targets.get_mut(id.0 as usize) {
                t.forward_on = fwd;
            }
        }
    }

    // 6. Named lists.
    let mut lists: Vec<NamedList> = Vec::new();
    let mut list_ids: HashMap<String, ListId> = HashMap::new();
    for (fi, f) in &files {
        for (name, l) in &f.lists {
            let key = format!("lists.{}", q(name.get_ref()));
            if dup(&mut cx, &mut seen_at, *fi, name, &key) {
                continue;
            }
            let raw = l;
            if let Some(r) = raw.lists.first() {
                cx.err(
                    *fi,
                    r.span(),
                    format!("{key}.lists"),
                    "a named list cannot include other lists",
                    Some("reference several lists from the rule or screening instead".into()),
                );
            }
            let set = build_listset(&mut cx, *fi, &key, raw, &HashMap::new(), db);
            let id = ListId(lists.len() as u32);
            list_ids.insert(name.get_ref().clone(), id);
            lists.push(NamedList {
                name: name.get_ref().clone(),
                vip: raw.vip.as_ref().is_some_and(|v| *v.get_ref()),
                set,
            });
        }
    }

    // 7. Plans.
    let mut plans: Vec<Plan> = Vec::new();
    let mut plan_ids: HashMap<String, PlanId> = HashMap::new();
    let mut used_targets: HashSet<TargetId> = forward_used;
    for (fi, f) in &files {
        for (name, p) in &f.plans {
            let key = format!("plans.{}", q(name.get_ref()));
            if dup(&mut cx, &mut seen_at, *fi, name, &key) {
                continue;
            }
            let plan = build_plan(
                &mut cx,
                *fi,
                &key,
                name.get_ref(),
                name.span(),
                p,
                &target_ids,
                &defined_targets,
                &mut used_targets,
            );
            plan_ids.insert(name.get_ref().clone(), PlanId(plans.len() as u32));
            plans.push(plan);
        }
    }

    // 8. Global screening.
    let mut anon_plans: HashSet<PlanId> = HashSet::new();
    let mut global = Screening {
        blocked_code: 603,
        ..Screening::default()
    };
    let mut abroad_code = 403u16;
    let mut global_rate: Option<RateLimit> = None;
    let mut screening_seen: Option<usize> = None;
    for (fi, f) in &files {
        if let Some(s) = &f.screening {
            if let Some(prev) = screening_seen {
                let prev_name = sources[prev].name.clone();
                cx.err(
                    *fi,
                    header_span(&sources[*fi].text, "screening"),
                    "screening",
                    format!("[screening] is also defined in {prev_name}"),
                    None,
                );
                continue;
            }
            screening_seen = Some(*fi);
            let raw = s;
            global = build_screening(&mut cx, *fi, "screening", raw, 603, &list_ids, db);
            global.anonymous = raw.anonymous.as_ref().and_then(|a| {
                build_anonymous(
                    &mut cx,
                    *fi,
                    "screening.anonymous",
                    a,
                    &plan_ids,
                    &mut anon_plans,
                )
            });
            if let Some(c) = &raw.abroad_code {
                match code(*c.get_ref(), 400, 699) {
                    Ok(c) => abroad_code = c,
                    Err(m) => cx.err(*fi, c.span(), "screening.abroad_code", m, None),
                }
            }
            if let Some(h) = &raw.harassment {
                let span = header_span(&sources[*fi].text, "harassment");
                global_rate = build_rate(&mut cx, *fi, span, "screening.harassment", h, None);
            }
        }
    }

    // 9. Companies.
    let mut companies: HashMap<String, usize> = HashMap::new();
    for (fi, f) in &files {
        for name in f.companies.keys() {
            let key = format!("companies.{}", q(name.get_ref()));
            if dup(&mut cx, &mut seen_at, *fi, name, &key) {
                continue;
            }
            companies.insert(name.get_ref().clone(), 0);
        }
    }

    // 10. Numbers, in file then source order.
    let mut raw_numbers: Vec<(usize, &Spanned<String>, &RawNumber)> = Vec::new();
    for (fi, f) in &files {
        for (k, v) in &f.numbers {
            raw_numbers.push((*fi, k, v));
        }
    }
    raw_numbers.sort_by_key(|(fi, k, _)| (*fi, k.span().start));
    let mut numbers: Vec<NumberEntry> = Vec::new();
    let mut number_seen: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut used_plans: HashSet<PlanId> = std::mem::take(&mut anon_plans);
    let mut company_count: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (fi, k, v) in raw_numbers {
        let key = format!("numbers.{:?}", k.get_ref());
        let number = match normalize_called(k.get_ref()) {
            Ok(n) => n,
            Err(_) => {
                cx.err(
                    fi,
                    k.span(),
                    key,
                    format!("{:?} is not a 400 or 1010 number", k.get_ref()),
                    Some(
                        "a 400 number is 10 digits: 400, a carrier digit (0,1,6,7,8,9), 6 more; a 1010 number is 8 digits: 1010 and 4 more"
                            .into(),
                    ),
                );
                continue;
            }
        };
        if let Some(&(pf, poff)) = number_seen.get(&number.as_u64()) {
            let pname = sources[pf].name.clone();
            // Lines are computed only on error: line_of scans the file.
            let pline = line_of(&sources[pf].text, poff);
            cx.err(
                fi,
                k.span(),
                key,
                format!("duplicate number {number}: already defined at {pname}:{pline}"),
                Some("each 400 number may be configured once".into()),
            );
            continue;
        }
        number_seen.insert(number.as_u64(), (fi, k.span().start));
        let raw = v;
        let company = raw.company.get_ref().clone();
        if !companies.contains_key(&company) {
            cx.err(
                fi,
                raw.company.span(),
                format!("{key}.company"),
                format!("unknown company {company:?}"),
                names_hint(
                    "companies",
                    companies.keys().collect::<Vec<_>>().into_iter(),
                ),
            );
        } else if !raw.approved {
            let held = company_count.entry(company.clone()).or_default();
            if held.len() >= COMPANY_MAX_NUMBERS {
                cx.err(
                    fi,
                    k.span(),
                    key.clone(),
                    format!(
                        "company {company:?} already holds {COMPANY_MAX_NUMBERS} numbers ({}); this is number {}",
                        held.join(", "),
                        held.len() + 1
                    ),
                    Some("a company may hold at most 5 numbers; mark extra numbers `approved = true` once the carrier approved them".into()),
                );
            } else {
                held.push(number.to_string());
            }
        }
        let default_plan = match plan_ids.get(raw.plan.get_ref()) {
            Some(p) => {
                used_plans.insert(*p);
                *p
            }
            None => {
                cx.err(
                    fi,
                    raw.plan.span(),
                    format!("{key}.plan"),
                    format!("unknown plan {:?}", raw.plan.get_ref()),
                    names_hint("plans", plan_ids.keys()),
                );
                PlanId(0)
            }
        };
        let (tz, tz_name) = match &raw.timezone {
            None => (
                jiff::tz::TimeZone::get("Asia/Shanghai")
                    .unwrap_or(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))),
                "Asia/Shanghai".to_string(),
            ),
            Some(t) => match jiff::tz::TimeZone::get(t.get_ref()) {
                Ok(z) => (z, t.get_ref().clone()),
                Err(_) => {
                    cx.err(
                        fi,
                        t.span(),
                        format!("{key}.timezone"),
                        format!("unknown time zone {:?}", t.get_ref()),
                        Some("use an IANA name such as Asia/Shanghai".into()),
                    );
                    (jiff::tz::TimeZone::UTC, "UTC".into())
                }
            },
        };
        let rules = build_rules(
            &mut cx,
            fi,
            &key,
            &raw.rules,
            &plan_ids,
            &list_ids,
            &mut used_plans,
            db,
        );
        let (screening, rate) = match &raw.screening {
            Some(sr) => {
                let skey = format!("{key}.screening");
                if let Some(a) = &sr.abroad_code {
                    cx.err(
                        fi,
                        a.span(),
                        format!("{skey}.abroad_code"),
                        "abroad_code is global only",
                        Some("set it in the top-level [screening] table".into()),
                    );
                }
                let mut scr =
                    build_screening(&mut cx, fi, &skey, sr, global.blocked_code, &list_ids, db);
                scr.anonymous = sr.anonymous.as_ref().and_then(|a| {
                    build_anonymous(
                        &mut cx,
                        fi,
                        &format!("{skey}.anonymous"),
                        a,
                        &plan_ids,
                        &mut used_plans,
                    )
                });
                let rate = match &sr.harassment {
                    Some(h) => build_rate(
                        &mut cx,
                        fi,
                        k.span(),
                        &format!("{skey}.harassment"),
                        h,
                        global_rate.as_ref(),
                    ),
                    None => global_rate,
                };
                (scr, rate)
            }
            None => (
                Screening {
                    blocked_code: global.blocked_code,
                    ..Screening::default()
                },
                global_rate,
            ),
        };
        let carrier = number_carrier(&mut cx, fi, &key, k.span(), number, &raw.carrier);
        numbers.push(NumberEntry {
            number,
            company,
            carrier,
            tz,
            tz_name,
            status: match raw.status {
                Some(StatusRaw::Suspended) => Status::Suspended,
                _ => Status::Active,
            },
            rules,
            default_plan,
            screening,
            rate,
            caller_id: raw.caller_id.map(CallerIdRaw::compile).unwrap_or_default(),
        });
    }

    // 10b. An IVR key is taken only from a media server: without one, key rules never match.
    if !settings
        .trunks
        .iter()
        .any(|t| t.role == TrunkRole::MediaServer)
    {
        for (fi, span, key) in std::mem::take(&mut cx.ivr_rules) {
            cx.err(
                fi,
                span,
                key,
                "an IVR key is taken only from a media server, and no [[server.trunks]] has role = \"media_server\": this rule can never match",
                Some("add [[server.trunks]] name = \"ivr\", sources = [\"<media server address>\"], role = \"media_server\" (before a carrier trunk whose networks contain it)".into()),
            );
        }
    }

    // 11. Warnings for unused things.
    for (t, (fi, span)) in targets.iter().zip(target_loc.iter()) {
        if !used_targets.contains(&t.id) {
            cx.warn(
                *fi,
                span.clone(),
                format!("targets.{}", q(&t.name)),
                "target is not used by any plan",
            );
        }
    }
    for (fi, f) in &files {
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
    if files.len() == sources.len() && numbers.is_empty() && cx.errors.is_empty() {
        cx.warn(0, 0..0, "numbers", "no 400 numbers are configured");
    }

    if !cx.errors.is_empty() {
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
        return Err((errors, cx.warnings));
    }

    let mut h = Sha256::new();
    for s in sources {
        h.update(s.name.as_bytes());
        h.update([0u8]);
        h.update(s.text.as_bytes());
        h.update([0u8]);
    }
    let hash: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(c) = settings.cluster.as_mut() {
        c.config_hash = crate::cluster::shared_hash(sources);
    }
    Ok(Output {
        settings,
        parts: TableParts {
            generation,
            hash,
            numbers,
            targets,
            plans,
            lists,
            global,
            calendar,
            abroad_code,
        },
        warnings: cx.warnings,
    })
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
