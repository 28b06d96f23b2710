//! Raw TOML files -> `Settings` + `RouteTable`, collecting every error.

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

/// The embedded holiday calendar (data/cn_holidays.toml).
pub const EMBEDDED_CALENDAR: &str = include_str!("../../../data/cn_holidays.toml");

/// Most numbers a company may hold without `approved = true` on the extra ones.
pub const COMPANY_MAX_NUMBERS: usize = 5;

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

/// Parse a duration: `"500ms"`, `"20s"`, `"2m"`, `"1h"`, `"1h30m"`, or integer seconds.
pub fn parse_duration(raw: &DurationRaw) -> Result<Duration, String> {
    match raw {
        DurationRaw::Seconds(s) => u64::try_from(*s)
            .map(Duration::from_secs)
            .map_err(|_| format!("negative duration {s}")),
        DurationRaw::Text(t) => parse_duration_str(t),
    }
}

fn parse_duration_str(t: &str) -> Result<Duration, String> {
    let s = t.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("bad duration {t:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {t:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            _ => return Err(format!("bad duration {t:?}: unit must be ms, s, m, h or d")),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

/// Parse `HH:MM-HH:MM` (end exclusive; `24:00` allowed as an end; end before start = overnight).
pub fn parse_time_range(s: &str) -> Result<TimeRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("bad time range {s:?}: expected HH:MM-HH:MM"))?;
    let hm = |x: &str, end: bool| -> Result<u16, String> {
        let (h, m) = x
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("bad time {x:?}: expected HH:MM"))?;
        let h: u16 = h.parse().map_err(|_| format!("bad hour in {x:?}"))?;
        let m: u16 = m.parse().map_err(|_| format!("bad minute in {x:?}"))?;
        if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
            return Err(format!("time {x:?} out of range"));
        }
        Ok(h * 60 + m)
    };
    let start = hm(a, false)?;
    let end = hm(b, true)?;
    if start == end {
        return Err(format!(
            "time range {s:?} is empty (start equals end); use 00:00-24:00 for all day"
        ));
    }
    Ok(TimeRange { start, end })
}

fn parse_weekday(s: &str) -> Option<u8> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => 0,
        "tue" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        _ => return None,
    })
}

/// Parse weekday names and ranges (`mon`, `mon-fri`, `fri-mon` wraps) into a bitmask.
pub fn parse_weekdays(items: &[String]) -> Result<Weekdays, String> {
    let mut mask = 0u8;
    for it in items {
        match it.split_once('-') {
            Some((a, b)) => {
                let (Some(a), Some(b)) = (parse_weekday(a), parse_weekday(b)) else {
                    return Err(format!("bad weekday range {it:?}: use e.g. mon-fri"));
                };
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                let d = parse_weekday(it)
                    .ok_or_else(|| format!("bad weekday {it:?}: use mon, tue, ... sun"))?;
                mask |= 1 << d;
            }
        }
    }
    Ok(Weekdays(mask))
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| format!("bad date {s:?}: expected YYYY-MM-DD"))
}

/// Parse `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive).
pub fn parse_date_range(s: &str) -> Result<(Date, Date), String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_date(a)?, parse_date(b)?);
            if b < a {
                return Err(format!("date range {s:?} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let d = parse_date(s)?;
            Ok((d, d))
        }
    }
}

fn parse_region(s: &str, db: &RegionDb) -> Result<RegionPattern, String> {
    let s = s.trim();
    let split = s.split_once('/').or_else(|| s.split_once(' '));
    match split {
        Some((p, c)) => {
            let (p, c) = (p.trim(), c.trim());
            if !db.knows_pair(p, c) {
                return Err(format!("unknown region {s:?}"));
            }
            Ok(RegionPattern {
                name: p.into(),
                city: Some(c.into()),
            })
        }
        None => {
            if !db.knows(s) {
                return Err(format!("unknown region {s:?}"));
            }
            Ok(RegionPattern {
                name: s.into(),
                city: None,
            })
        }
    }
}

fn code(v: i64, low: i64, high: i64) -> Result<u16, String> {
    if (low..=high).contains(&v) {
        u16::try_from(v).map_err(|_| format!("{v} out of range"))
    } else {
        Err(format!("SIP code {v} must be between {low} and {high}"))
    }
}

/// Check a target's `sip:user@host:port;params` with the SIP core's URI parser
/// (`hotline_sip::uri::Uri`, the one the proxy forwards with), then what a target needs on top:
/// `sip:` not `sips:`, no headers, an IP-literal host (no DNS), a port other than 0, and a
/// transport Hotline speaks. Returns (next hop, transport).
pub fn parse_sip_uri(uri: &str) -> Result<(SocketAddr, Transport), (String, Option<String>)> {
    let example = || Some("write e.g. sip:1001@127.0.0.1:5070".to_string());
    if uri.starts_with("sips:") {
        return Err((
            "sips: URIs are not supported".into(),
            Some("use sip: with ;transport=tcp".into()),
        ));
    }
    if !uri.starts_with("sip:") {
        return Err((format!("{uri:?} is not a sip: URI"), example()));
    }
    if uri.contains('?') {
        return Err((
            "URI headers (?...) are not allowed in a target".into(),
            None,
        ));
    }
    let Some(u) = hotline_sip::uri::Uri::parse(uri.as_bytes()) else {
        return Err((
            format!("{uri:?} is not a valid SIP URI (check the host and the port)"),
            example(),
        ));
    };
    let Some(ip) = u.ip() else {
        return Err((
            format!(
                "host {:?} is not an IP address",
                String::from_utf8_lossy(u.host)
            ),
            Some("Hotline does no DNS: write the target's IP address".into()),
        ));
    };
    let addr = SocketAddr::new(ip, u.port.unwrap_or(5060));
    if addr.port() == 0 {
        return Err((format!("port 0 in {uri:?}"), None));
    }
    let transport = match u.transport() {
        Ok(hotline_sip::proxy::Transport::Udp) => Transport::Udp,
        Ok(hotline_sip::proxy::Transport::Tcp) => Transport::Tcp,
        Err(other) => {
            return Err((
                format!(
                    "transport {:?} is not supported",
                    String::from_utf8_lossy(other).to_ascii_lowercase()
                ),
                Some("use udp or tcp".into()),
            ))
        }
    };
    Ok((addr, transport))
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, l)) => (ip, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
        None => max,
    };
    Ok((ip, len))
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

fn dur(cx: &mut Ctx<'_>, fi: usize, key: String, v: &Spanned<DurationRaw>) -> Option<Duration> {
    match parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(m) => {
            cx.err(
                fi,
                v.span(),
                key,
                m,
                Some("write e.g. \"20s\" or \"500ms\"".into()),
            );
            None
        }
    }
}

/// Most addresses `server.listen` may name (each is a UDP socket and a TCP listener).
const MAX_LISTEN: usize = 16;

/// Why `a` cannot be bound beside the addresses already listed, and the fix: the same
/// address twice, or a wildcard (`0.0.0.0`, `[::]`) and an address of its family on the same
/// port (the first UDP socket shares its port with `SO_REUSEPORT`, so the kernel would let
/// both bind and split the datagrams between them). Port 0 picks a fresh port each time.
fn listen_clash(before: &[SocketAddr], a: SocketAddr) -> Option<(String, String)> {
    let b = before.iter().find(|b| {
        a.port() != 0
            && b.port() == a.port()
            && b.is_ipv4() == a.is_ipv4()
            && (b.ip() == a.ip() || b.ip().is_unspecified() || a.ip().is_unspecified())
    })?;
    if *b == a {
        Some((
            format!("{a} is listed twice"),
            "list each address once".into(),
        ))
    } else {
        Some((
            format!("{a} overlaps {b}: a wildcard address already covers every address of its family on that port"),
            "keep the wildcard alone, or list the addresses one by one".into(),
        ))
    }
}

/// A name made of `[A-Za-z0-9_-]` (stream names, subject tokens, node names also allow `.`).
fn token_ok(s: &str, dot: bool) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dot && c == '.'))
}

/// `nats://host:port` (host a name or IP, `[v6]` in brackets); `Err` says what is wrong.
fn check_nats_url(u: &str) -> Result<(), String> {
    let Some(rest) = u.strip_prefix("nats://") else {
        return Err(format!("{u:?} is not a nats:// url"));
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(format!("{u:?} lacks host:port")),
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{u:?}: {port:?} is not a port"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<IpAddr>().is_err()
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("{u:?}: {host:?} is not a host"));
    }
    Ok(())
}

/// `[server.cdr.ship]`; `None` when `enabled = false` (still validated).
fn build_ship(cx: &mut Ctx<'_>, fi: usize, raw: &RawShip) -> Option<ShipSettings> {
    let mut d = ShipSettings::default();
    let key = |k: &str| format!("server.cdr.ship.{k}");
    match &raw.url {
        None => cx.err(
            fi,
            raw.stream
                .as_ref()
                .map(|s| s.span())
                .or_else(|| raw.enabled.as_ref().map(|e| e.span()))
                .unwrap_or(0..0),
            key("url"),
            "missing: the NATS server(s) to ship to",
            Some("add url = \"nats://127.0.0.1:4222\" (or a list), or remove the section".into()),
        ),
        Some(u) => {
            let urls = u.get_ref().to_vec();
            if urls.is_empty() {
                cx.err(fi, u.span(), key("url"), "empty list", None);
            }
            for x in &urls {
                if let Err(m) = check_nats_url(x) {
                    cx.err(
                        fi,
                        u.span(),
                        key("url"),
                        m,
                        Some("write e.g. \"nats://127.0.0.1:4222\"".into()),
                    );
                }
            }
            d.urls = urls;
        }
    }
    if let Some(n) = &raw.node {
        if token_ok(n.get_ref(), true) {
            d.node = Some(n.get_ref().clone());
        } else {
            cx.err(
                fi,
                n.span(),
                key("node"),
                format!("{:?} is not a node name", n.get_ref()),
                Some(
                    "1 to 64 of A-Z a-z 0-9 _ - . (unique per node: it is part of every record id)"
                        .into(),
                ),
            );
        }
    }
    if let Some(s) = &raw.stream {
        if token_ok(s.get_ref(), false) {
            d.stream = s.get_ref().clone();
        } else {
            cx.err(
                fi,
                s.span(),
                key("stream"),
                format!("{:?} is not a JetStream stream name", s.get_ref()),
                Some("1 to 64 of A-Z a-z 0-9 _ -".into()),
            );
        }
    }
    if let Some(p) = &raw.subject_prefix {
        let v = p.get_ref();
        if v.split('.').all(|t| token_ok(t, false)) {
            d.subject_prefix = v.clone();
        } else {
            cx.err(
                fi,
                p.span(),
                key("subject_prefix"),
                format!("{v:?} is not a subject prefix"),
                Some("dot-separated tokens of A-Z a-z 0-9 _ -, no wildcards, e.g. \"cdr\" or \"hotline.cdr\"".into()),
            );
        }
    }
    if let Some(r) = &raw.replicas {
        match usize::try_from(*r.get_ref()) {
            Ok(n) if (1..=5).contains(&n) => d.replicas = n,
            _ => cx.err(
                fi,
                r.span(),
                key("replicas"),
                format!("{} replicas", r.get_ref()),
                Some("1 to 5 (JetStream's limit); 3 on a three-server cluster".into()),
            ),
        }
    }
    if let Some(b) = &raw.max_bytes {
        match u64::try_from(*b.get_ref()) {
            Ok(n) => d.max_bytes = n,
            Err(_) => cx.err(
                fi,
                b.span(),
                key("max_bytes"),
                "must not be negative",
                Some("0 for no size limit".into()),
            ),
        }
    }
    if let Some(b) = &raw.batch {
        match usize::try_from(*b.get_ref()) {
            Ok(n) if (1..=4096).contains(&n) => d.batch = n,
            _ => cx.err(
                fi,
                b.span(),
                key("batch"),
                format!("{} records per batch", b.get_ref()),
                Some("1 to 4096".into()),
            ),
        }
    }
    let mut duration = |v: &Option<Spanned<DurationRaw>>,
                        name: &str,
                        min: Duration,
                        max: Duration,
                        out: &mut Duration| {
        let Some(v) = v else { return };
        if let Some(x) = dur(cx, fi, key(name), v) {
            if x < min || x > max {
                cx.err(
                    fi,
                    v.span(),
                    key(name),
                    format!("{x:?} is out of range"),
                    Some(format!("between {min:?} and {max:?}")),
                );
            } else {
                *out = x;
            }
        }
    };
    let day = Duration::from_secs(86_400);
    duration(
        &raw.max_age,
        "max_age",
        Duration::ZERO,
        36_500 * day,
        &mut d.max_age,
    );
    duration(
        &raw.duplicate_window,
        "duplicate_window",
        Duration::from_secs(1),
        day,
        &mut d.duplicate_window,
    );
    duration(
        &raw.poll_interval,
        "poll_interval",
        Duration::from_millis(10),
        Duration::from_secs(10),
        &mut d.poll_interval,
    );
    duration(
        &raw.ack_timeout,
        "ack_timeout",
        Duration::from_millis(100),
        Duration::from_secs(60),
        &mut d.ack_timeout,
    );
    duration(
        &raw.retry_max,
        "retry_max",
        Duration::from_millis(100),
        Duration::from_secs(300),
        &mut d.retry_max,
    );
    if !d.max_age.is_zero() && d.duplicate_window > d.max_age {
        let span = raw
            .duplicate_window
            .as_ref()
            .map(|v| v.span())
            .or_else(|| raw.max_age.as_ref().map(|v| v.span()))
            .unwrap_or(0..0);
        cx.err(
            fi,
            span,
            key("duplicate_window"),
            "longer than max_age (JetStream refuses such a stream)",
            Some("make duplicate_window at most max_age".into()),
        );
    }
    if let Some(c) = &raw.checkpoint {
        if c.get_ref().trim().is_empty() {
            cx.err(fi, c.span(), key("checkpoint"), "empty path", None);
        } else {
            d.checkpoint = Some(PathBuf::from(c.get_ref()));
        }
    }
    if raw.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return None;
    }
    Some(d)
}

fn build_settings(cx: &mut Ctx<'_>, fi: usize, srv: &RawServer) -> Settings {
    let mut s = Settings::default();
    if let Some(listen) = &srv.listen {
        let mut out: Vec<SocketAddr> = Vec::new();
        for (i, l) in listen.iter().enumerate() {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => {
                    if let Some((msg, hint)) = listen_clash(&out, a) {
                        cx.err(fi, l.span(), format!("server.listen[{i}]"), msg, Some(hint));
                    } else if out.len() == MAX_LISTEN {
                        cx.err(
                            fi,
                            l.span(),
                            format!("server.listen[{i}]"),
                            format!("more than {MAX_LISTEN} listen addresses"),
                            Some(
                                "listen on a wildcard (\"0.0.0.0:5060\", \"[::]:5060\") instead"
                                    .into(),
                            ),
                        );
                    } else {
                        out.push(a);
                    }
                }
                Err(_) => cx.err(
                    fi,
                    l.span(),
                    format!("server.listen[{i}]"),
                    format!("{:?} is not an IP:port address", l.get_ref()),
                    Some("write e.g. \"127.0.0.1:5060\" or \"[::1]:5060\"".into()),
                ),
            }
        }
        if out.is_empty() && listen.is_empty() {
            cx.err(
                fi,
                0..0,
                "server.listen",
                "listen is empty",
                Some("give at least one address".into()),
            );
        }
        s.listen = out;
    }
    if let Some(l) = &srv.log_level {
        let v = l.get_ref().trim();
        // The same characters tracing's EnvFilter takes; the filter itself is checked when
        // it is applied (a bad one is logged and the old level stays).
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_,=:.-[]{}\"*".contains(c))
        {
            cx.err(
                fi,
                l.span(),
                "server.log_level",
                format!("{v:?} is not a log filter"),
                Some("e.g. \"info\", \"debug\" or \"info,hotline_sip=trace\"".into()),
            );
        } else {
            s.log_level = Some(v.to_string());
        }
    }
    if let Some(u) = srv.unknown_sources {
        s.unknown_sources = match u {
            UnknownSourcesRaw::Drop => UnknownSources::Drop,
            UnknownSourcesRaw::Reject => UnknownSources::Reject,
        };
    }
    if let Some(w) = &srv.workers {
        match usize::try_from(*w.get_ref()) {
            Ok(n) if n <= 256 => s.workers = n,
            _ => cx.err(
                fi,
                w.span(),
                "server.workers",
                format!("{} is not a number of shards", w.get_ref()),
                Some("0 (one per CPU core) or 1 to 256".into()),
            ),
        }
    }
    if let Some(a) = &srv.admin {
        let v = a.get_ref().trim();
        if v.is_empty() || v == "off" {
            s.admin = None;
        } else {
            match v.parse::<SocketAddr>() {
                Ok(addr) => s.admin = Some(addr),
                Err(_) => cx.err(
                    fi,
                    a.span(),
                    "server.admin",
                    format!("{v:?} is not an IP:port address"),
                    Some("write e.g. \"127.0.0.1:9060\", or \"off\"".into()),
                ),
            }
        }
    }
    if let Some(sip) = &srv.sip {
        let mut d = SipSettings::default();
        if let Some(v) = &sip.t1 {
            d.t1 = dur(cx, fi, "server.sip.t1".into(), v).unwrap_or(d.t1);
        }
        if let Some(v) = &sip.t2 {
            d.t2 = dur(cx, fi, "server.sip.t2".into(), v).unwrap_or(d.t2);
        }
        if let Some(v) = &sip.t4 {
            d.t4 = dur(cx, fi, "server.sip.t4".into(), v).unwrap_or(d.t4);
        }
        if let Some(v) = &sip.tcp_idle_timeout {
            d.tcp_idle_timeout =
                dur(cx, fi, "server.sip.tcp_idle_timeout".into(), v).unwrap_or(d.tcp_idle_timeout);
        }
        if let Some(v) = &sip.tcp_header_timeout {
            d.tcp_header_timeout = dur(cx, fi, "server.sip.tcp_header_timeout".into(), v)
                .unwrap_or(d.tcp_header_timeout);
        }
        if let Some(v) = &sip.tcp_max_connections {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => d.tcp_max_connections = n,
                _ => cx.err(
                    fi,
                    v.span(),
                    "server.sip.tcp_max_connections",
                    format!("{} is not a positive number", v.get_ref()),
                    None,
                ),
            }
        }
        if let Some(v) = &sip.max_message_bytes {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if (1024..=16 * 1024 * 1024).contains(&n) => d.max_message_bytes = n,
                _ => cx.err(
                    fi,
                    v.span(),
                    "server.sip.max_message_bytes",
                    format!("{} is out of range", v.get_ref()),
                    Some("between 1024 and 16777216".into()),
                ),
            }
        }
        if d.t1.is_zero() || d.t2 < d.t1 {
            // Point at the key that breaks the rule: t2 if it is set, else t1.
            let (span, key) = match (&sip.t2, &sip.t1) {
                (Some(v), _) if !d.t1.is_zero() => (v.span(), "server.sip.t2"),
                (_, Some(v)) => (v.span(), "server.sip.t1"),
                (Some(v), None) => (v.span(), "server.sip.t2"),
                (None, None) => (0..0, "server.sip"),
            };
            cx.err(
                fi,
                span,
                key,
                format!(
                    "t1 must be positive and t2 at least t1 (t1 = {:?}, t2 = {:?})",
                    d.t1, d.t2
                ),
                Some(
                    "RFC 3261 timers: t1 = \"500ms\", t2 = \"4s\" (t2 caps the doubling of t1)"
                        .into(),
                ),
            );
        }
        s.sip = d;
    }
    if let Some(c) = &srv.cdr {
        let mut d = CdrSettings::default();
        if let Some(dir) = &c.dir {
            d.dir = PathBuf::from(dir);
        }
        if let Some(f) = c.format {
            d.format = match f {
                CdrFormatRaw::Csv => CdrFormat::Csv,
                CdrFormatRaw::Jsonl => CdrFormat::Jsonl,
            };
        }
        if let Some(v) = &c.fsync_interval {
            d.fsync_interval =
                dur(cx, fi, "server.cdr.fsync_interval".into(), v).unwrap_or(d.fsync_interval);
        }
        if let Some(v) = &c.rotate_bytes {
            match u64::try_from(*v.get_ref()) {
                Ok(n) => d.rotate_bytes = n,
                Err(_) => cx.err(
                    fi,
                    v.span(),
                    "server.cdr.rotate_bytes",
                    "must not be negative",
                    None,
                ),
            }
        }
        if let Some(r) = c.rotate_every {
            d.rotate_every = match r {
                RotateRaw::Hourly => Rotate::Hourly,
                RotateRaw::Daily => Rotate::Daily,
                RotateRaw::Never => Rotate::Never,
            };
        }
        if let Some(raw) = &c.ship {
            d.ship = build_ship(cx, fi, raw);
        }
        s.cdr = d;
    }
    let mut names = HashSet::new();
    for (i, t) in srv.trunks.iter().enumerate() {
        let raw = t.get_ref();
        let key = format!("server.trunks[{i}]");
        if !names.insert(raw.name.clone()) {
            cx.err(
                fi,
                t.span(),
                format!("{key}.name"),
                format!("duplicate trunk name {:?}", raw.name),
                None,
            );
        }
        let mut sources = Vec::new();
        for (j, src) in raw.sources.iter().enumerate() {
            match parse_cidr(src.get_ref()) {
                Ok(c) => sources.push(c),
                Err(m) => cx.err(
                    fi,
                    src.span(),
                    format!("{key}.sources[{j}]"),
                    m,
                    Some("write e.g. \"192.0.2.0/24\" or \"127.0.0.1\"".into()),
                ),
            }
        }
        if raw.sources.is_empty() {
            cx.err(
                fi,
                t.span(),
                format!("{key}.sources"),
                "a trunk needs at least one source network",
                None,
            );
        }
        let mut limit = |v: &Option<Spanned<i64>>, what: &str| -> Option<u32> {
            let v = v.as_ref()?;
            match u32::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    cx.err(
                        fi,
                        v.span(),
                        format!("{key}.{what}"),
                        format!("{} is not a positive whole number", v.get_ref()),
                        Some("leave the key out for no limit".into()),
                    );
                    None
                }
            }
        };
        let max_cps = limit(&raw.max_cps, "max_cps");
        let max_calls = limit(&raw.max_calls, "max_calls");
        s.trunks.push(Trunk {
            name: raw.name.clone(),
            sources,
            trusted: raw.trusted,
            role: match raw.role {
                Some(TrunkRoleRaw::MediaServer) => TrunkRole::MediaServer,
                _ => TrunkRole::Carrier,
            },
            max_cps,
            max_calls,
        });
    }
    if let Some(b) = &srv.billing {
        let mut d = BillingSettings {
            file: PathBuf::from(b.file.get_ref()),
            refuse_code: 402,
            low_balance_fen: 5000,
        };
        if let Some(c) = &b.refuse_code {
            match u16::try_from(*c.get_ref()) {
                Ok(n) if (400..=699).contains(&n) => d.refuse_code = n,
                _ => cx.err(
                    fi,
                    c.span(),
                    "server.billing.refuse_code",
                    format!("{} is not a SIP failure code", c.get_ref()),
                    Some("use a code from 400 to 699, e.g. 402 or 480".into()),
                ),
            }
        }
        if let Some(l) = &b.low_balance {
            match hotline_cdr::billing::parse_yuan(l.get_ref()) {
                Ok(f) => d.low_balance_fen = f,
                Err(e) => cx.err(
                    fi,
                    l.span(),
                    "server.billing.low_balance",
                    match e {
                        hotline_cdr::billing::MoneyError::Malformed => {
                            format!("{:?} is not an amount in yuan", l.get_ref())
                        }
                        e => format!("{:?} is {e}", l.get_ref()),
                    },
                    Some("write e.g. \"50.00\"".into()),
                ),
            }
        }
        s.billing = Some(d);
    }
    s
}

fn parse_calendar_tables(
    cx: &mut Ctx<'_>,
    fi: Option<usize>,
    key: &str,
    holidays: &BTreeMap<Spanned<String>, String>,
    workdays: &BTreeMap<Spanned<String>, String>,
    out_h: &mut Vec<(Date, Box<str>)>,
    out_w: &mut Vec<(Date, Box<str>)>,
) {
    for (tbl, out, name) in [
        (holidays, &mut *out_h, "holidays"),
        (workdays, &mut *out_w, "workdays"),
    ] {
        for (d, fest) in tbl {
            match parse_date(d.get_ref()) {
                Ok(date) => out.push((date, fest.as_str().into())),
                Err(m) => match fi {
                    Some(fi) => cx.err(
                        fi,
                        d.span(),
                        format!("{key}.{name}.{}", d.get_ref()),
                        m,
                        None,
                    ),
                    None => cx.errors.push(ConfigError {
                        file: key.to_string(),
                        line: 0,
                        key: format!("{name}.{}", d.get_ref()),
                        message: m,
                        hint: None,
                    }),
                },
            }
        }
    }
}

fn build_calendar(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    read_file: FileReader<'_>,
) -> Calendar {
    let mut holidays = Vec::new();
    let mut workdays = Vec::new();
    let mut base: Option<(String, String)> = None;
    for (fi, f) in files {
        if let Some(c) = &f.calendar {
            if let Some(p) = &c.path {
                match read_file(p.get_ref()) {
                    Ok(text) => base = Some((p.get_ref().clone(), text)),
                    Err(m) => cx.err(
                        *fi,
                        p.span(),
                        "calendar.path",
                        format!("cannot read calendar {:?}: {m}", p.get_ref()),
                        Some("remove `path` to use the embedded 2004-2026 calendar".into()),
                    ),
                }
            }
        }
    }
    let (name, text) = base.unwrap_or_else(|| {
        (
            "<embedded cn_holidays.toml>".into(),
            EMBEDDED_CALENDAR.into(),
        )
    });
    match toml::from_str::<RawCalendarFile>(&text) {
        Ok(raw) => parse_calendar_tables(
            cx,
            None,
            &name,
            &raw.holidays,
            &raw.workdays,
            &mut holidays,
            &mut workdays,
        ),
        Err(e) => cx.errors.push(ConfigError {
            file: name,
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
            key: String::new(),
            message: nonempty(e.message().trim().to_string()),
            hint: Some(
                "the calendar has [holidays] and [workdays] tables of date = \"name\"".into(),
            ),
        }),
    }
    for (fi, f) in files {
        if let Some(c) = &f.calendar {
            parse_calendar_tables(
                cx,
                Some(*fi),
                "calendar",
                &c.holidays,
                &c.workdays,
                &mut holidays,
                &mut workdays,
            );
        }
    }
    Calendar::new(holidays, workdays)
}

/// The warning to give when the calendar does not list the year after `today`'s.
pub fn calendar_warning(calendar: &Calendar, today: Date) -> Option<String> {
    let next = today.year().saturating_add(1);
    if calendar.covers_year(next) {
        return None;
    }
    let last = calendar
        .last_year()
        .map(|y| y.to_string())
        .unwrap_or_else(|| "none".into());
    Some(format!(
        "the holiday calendar does not cover {next} (last year listed: {last}); workday/holiday rules will treat {next} as plain Mon-Fri weeks. Add the State Council's dates under [calendar.holidays] / [calendar.workdays] or set [calendar] path"
    ))
}

/// `forward_on = { busy = "a", ... }` of target `own` (or of a plan: `None`): each name must be
/// a target, not `own` itself.
#[allow(clippy::too_many_arguments)]
fn build_forward_on(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    raw: &RawForwardOn,
    target_ids: &HashMap<String, TargetId>,
    defined: &HashSet<String>,
    own: Option<&str>,
    used: &mut HashSet<TargetId>,
) -> ForwardOn {
    let mut one = |cause: &str, v: &Option<Spanned<String>>| -> Option<TargetId> {
        let v = v.as_ref()?;
        let name = v.get_ref();
        if own == Some(name.as_str()) {
            cx.err(
                fi,
                v.span(),
                format!("{key}.{cause}"),
                format!("target {name:?} forwards to itself"),
                Some("name another target (e.g. a colleague, a mobile, voicemail)".into()),
            );
            return None;
        }
        match target_ids.get(name) {
            Some(&id) => {
                used.insert(id);
                Some(id)
            }
            None if defined.contains(name) => None,
            None => {
                cx.err(
                    fi,
                    v.span(),
                    format!("{key}.{cause}"),
                    format!("unknown target {name:?}"),
                    names_hint("targets", target_ids.keys()),
                );
                None
            }
        }
    };
    ForwardOn {
        busy: one("busy", &raw.busy),
        no_answer: one("no_answer", &raw.no_answer),
        unreachable: one("unreachable", &raw.unreachable),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_target(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    name: &Spanned<String>,
    t: &RawTarget,
    gateways: &HashMap<String, (SocketAddr, Transport)>,
    index: usize,
) -> Option<Target> {
    let raw = t;
    let max_concurrent = match &raw.max_concurrent {
        None => None,
        Some(m) => match u32::try_from(*m.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                cx.err(
                    fi,
                    m.span(),
                    format!("{key}.max_concurrent"),
                    "must be a positive integer",
                    Some("omit it for no limit".into()),
                );
                None
            }
        },
    };
    match (&raw.uri, &raw.number, &raw.gateway) {
        (Some(uri), None, None) => match parse_sip_uri(uri.get_ref()) {
            Ok(_) if !uri_user_allowed(sip_uri_user(uri.get_ref())) => {
                cx.err(
                    fi,
                    uri.span(),
                    format!("{key}.uri"),
                    format!(
                        "{:?} calls an international or premium-rate number",
                        uri.get_ref()
                    ),
                    Some(
                        "400 service is domestic: targets must be mainland numbers (no 声讯 168 numbers)"
                            .into(),
                    ),
                );
                None
            }
            Ok((next_hop, transport)) => Some(Target {
                id: TargetId(index as u32),
                name: name.get_ref().clone(),
                uri: uri.get_ref().clone(),
                next_hop,
                transport,
                max_concurrent,
                forward_on: ForwardOn::default(),
                caller_id: raw.caller_id.map(CallerIdRaw::compile),
            }),
            Err((m, hint)) => {
                cx.err(fi, uri.span(), format!("{key}.uri"), m, hint);
                None
            }
        },
        (None, Some(num), Some(gw)) => {
            let c = normalize_caller(num.get_ref());
            let ok = match c.kind {
                CallerKind::Mobile | CallerKind::FixedLine if c.is_allowed_target() => true,
                CallerKind::Mobile | CallerKind::FixedLine => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!("{:?} is a premium-rate (声讯) number", num.get_ref()),
                        Some("400 service does not forward to premium-rate services".into()),
                    );
                    false
                }
                CallerKind::International => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!("{:?} is an international number", num.get_ref()),
                        Some("400 service is domestic: targets must be mainland numbers".into()),
                    );
                    false
                }
                CallerKind::Unknown => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!(
                            "{:?} is not a domestic mobile or fixed-line number",
                            num.get_ref()
                        ),
                        Some(
                            "write a mobile (13800138000) or area code + number (01012345678)"
                                .into(),
                        ),
                    );
                    false
                }
            };
            let g = match gateways.get(gw.get_ref()) {
                Some(g) => Some(*g),
                None => {
                    cx.err(
                        fi,
                        gw.span(),
                        format!("{key}.gateway"),
                        format!("unknown gateway {:?}", gw.get_ref()),
                        names_hint("gateways", gateways.keys()),
                    );
                    None
                }
            };
            let (addr, transport) = g?;
            if !ok {
                return None;
            }
            let host = match addr {
                SocketAddr::V4(a) => a.to_string(),
                SocketAddr::V6(a) => a.to_string(),
            };
            let uri = match transport {
                Transport::Udp => format!("sip:{}@{host}", c.normalized()),
                Transport::Tcp => format!("sip:{}@{host};transport=tcp", c.normalized()),
            };
            Some(Target {
                id: TargetId(index as u32),
                name: name.get_ref().clone(),
                uri,
                next_hop: addr,
                transport,
                max_concurrent,
                forward_on: ForwardOn::default(),
                caller_id: raw.caller_id.map(CallerIdRaw::compile),
            })
        }
        (None, Some(num), None) => {
            cx.err(
                fi,
                num.span(),
                key.to_string(),
                "a number target needs a gateway",
                Some("add gateway = \"<name of a [gateways.NAME] entry>\"".into()),
            );
            None
        }
        _ => {
            cx.err(
                fi,
                name.span(),
                key.to_string(),
                "a target is either uri = \"sip:...\" or number = \"...\" with gateway = \"...\"",
                None,
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_plan(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    name: &str,
    name_span: Range<usize>,
    p: &RawPlan,
    target_ids: &HashMap<String, TargetId>,
    defined: &HashSet<String>,
    used: &mut HashSet<TargetId>,
) -> Plan {
    let raw = p;
    let p_span = name_span;
    let mut groups = Vec::new();
    if raw.groups.is_empty() {
        cx.err(
            fi,
            p_span.clone(),
            format!("{key}.groups"),
            "plan has no groups",
            Some("add [[plans.NAME.groups]] with members".into()),
        );
    }
    if raw.groups.len() > MAX_GROUPS {
        cx.err(
            fi,
            p_span.clone(),
            format!("{key}.groups"),
            format!("plan has {} groups; at most {MAX_GROUPS}", raw.groups.len()),
            None,
        );
    }
    let mut gnames = HashSet::new();
    for (gi, g) in raw.groups.iter().enumerate() {
        let gkey = format!("{key}.groups[{gi}]");
        let rg = g.get_ref();
        let gname = rg
            .name
            .clone()
            .unwrap_or_else(|| format!("group{}", gi + 1));
        if !gnames.insert(gname.clone()) {
            cx.err(
                fi,
                g.span(),
                format!("{gkey}.name"),
                format!("duplicate group name {gname:?}"),
                None,
            );
        }
        let default_ring = match &rg.ring_timeout {
            Some(v) => {
                dur(cx, fi, format!("{gkey}.ring_timeout"), v).unwrap_or(Duration::from_secs(20))
            }
            None => Duration::from_secs(20),
        };
        if rg.members.get_ref().is_empty() {
            cx.err(
                fi,
                rg.members.span(),
                format!("{gkey}.members"),
                "empty group",
                Some("list at least one target".into()),
            );
        }
        if rg.members.get_ref().len() > MAX_MEMBERS {
            cx.err(
                fi,
                rg.members.span(),
                format!("{gkey}.members"),
                format!(
                    "group has {} members; at most {MAX_MEMBERS}",
                    rg.members.get_ref().len()
                ),
                Some("split it into several groups".into()),
            );
        }
        let mut members = Vec::new();
        let mut seen_m = HashSet::new();
        for (mi, m) in rg.members.get_ref().iter().enumerate() {
            let mkey = format!("{gkey}.members[{mi}]");
            let (tname, ring, weight) = match m {
                RawMember::Name(n) => (n.clone(), default_ring, 1),
                RawMember::Full(f) => {
                    let ring = match &f.ring_timeout {
                        Some(d) => match parse_duration(d) {
                            Ok(d) => d,
                            Err(e) => {
                                cx.err(
                                    fi,
                                    rg.members.span(),
                                    format!("{mkey}.ring_timeout"),
                                    e,
                                    None,
                                );
                                default_ring
                            }
                        },
                        None => default_ring,
                    };
                    let w = match f.weight {
                        None => 1,
                        Some(w) => match u32::try_from(w) {
                            Ok(w) => w,
                            Err(_) => {
                                cx.err(
                                    fi,
                                    rg.members.span(),
                                    format!("{mkey}.weight"),
                                    "weight must be 0 or more",
                                    None,
                                );
                                1
                            }
                        },
                    };
                    (f.target.clone(), ring, w)
                }
            };
            if ring.is_zero() {
                cx.err(
                    fi,
                    rg.members.span(),
                    format!("{mkey}.ring_timeout"),
                    "ring timeout must be positive",
                    None,
                );
            }
            match target_ids.get(&tname) {
                Some(&id) => {
                    if !seen_m.insert(id) {
                        cx.err(
                            fi,
                            rg.members.span(),
                            mkey.clone(),
                            format!("target {tname:?} appears twice in the group"),
                            None,
                        );
                    }
                    used.insert(id);
                    members.push(Member {
                        target: id,
                        ring_timeout: ring,
                        weight,
                    });
                }
                None if defined.contains(&tname) => {} // its own error is reported
                None => cx.err(
                    fi,
                    rg.members.span(),
                    mkey,
                    format!("unknown target {tname:?}"),
                    names_hint("targets", target_ids.keys()),
                ),
            }
        }
        groups.push(Group {
            key: format!("{name}/{gname}").into(),
            name: gname,
            mode: match rg.mode {
                Some(ModeRaw::Simultaneous) => Mode::Simultaneous,
                _ => Mode::Sequential,
            },
            strategy: match rg.strategy.unwrap_or(StrategyRaw::Linear) {
                StrategyRaw::Linear => Strategy::Linear,
                StrategyRaw::RoundRobin => Strategy::RoundRobin,
                StrategyRaw::Random => Strategy::Random,
                StrategyRaw::Weighted => Strategy::Weighted,
                StrategyRaw::LeastRecent => Strategy::LeastRecent,
                StrategyRaw::FewestCalls => Strategy::FewestCalls,
            },
            members,
        });
    }
    let advance_on = match &raw.advance_on {
        None => AdvanceOn::ALL,
        Some(v) => AdvanceOn {
            busy: v.contains(&CauseRaw::Busy),
            no_answer: v.contains(&CauseRaw::NoAnswer),
            unreachable: v.contains(&CauseRaw::Unreachable),
            rejected: v.contains(&CauseRaw::Rejected),
        },
    };
    let on_fail = match &raw.on_fail {
        None => Fallback::BestResponse,
        Some(f) => match f.get_ref() {
            OnFailRaw::Code(c) => match code(*c, 400, 699) {
                Ok(c) => Fallback::Code(c),
                Err(m) => {
                    cx.err(fi, f.span(), format!("{key}.on_fail"), m, None);
                    Fallback::Code(480)
                }
            },
            OnFailRaw::Target(t) => match target_ids.get(t) {
                Some(&id) => {
                    used.insert(id);
                    Fallback::Target(id)
                }
                None if defined.contains(t) => Fallback::Code(480),
                None => {
                    cx.err(
                        fi,
                        f.span(),
                        format!("{key}.on_fail"),
                        format!("unknown target {t:?}"),
                        names_hint("targets", target_ids.keys()),
                    );
                    Fallback::Code(480)
                }
            },
        },
    };
    let wait_cap = raw
        .wait_cap
        .as_ref()
        .and_then(|v| dur(cx, fi, format!("{key}.wait_cap"), v));
    let max_duration = raw
        .max_duration
        .as_ref()
        .and_then(|v| dur(cx, fi, format!("{key}.max_duration"), v));
    let forward_on = match &raw.forward_on {
        Some(f) => build_forward_on(
            cx,
            fi,
            &format!("{key}.forward_on"),
            f,
            target_ids,
            defined,
            None,
            used,
        ),
        None => ForwardOn::default(),
    };
    let wait_cap_skips_on_fail = match &raw.wait_cap_skips_on_fail {
        Some(v)
            if *v.get_ref()
                && (raw.wait_cap.is_none() || !matches!(on_fail, Fallback::Target(_))) =>
        {
            cx.err(
                fi,
                v.span(),
                format!("{key}.wait_cap_skips_on_fail"),
                "has no effect: it needs both a wait_cap and an on_fail target",
                Some("set wait_cap and on_fail = \"<target>\", or remove the key".into()),
            );
            false
        }
        Some(v) => *v.get_ref(),
        None => false,
    };
    Plan {
        name: name.to_string(),
        groups,
        ring_from: match raw.ring_from {
            Some(RingFromRaw::First18x) => RingFrom::First18x,
            _ => RingFrom::Invite,
        },
        advance_on,
        wait_cap,
        on_fail,
        wait_cap_skips_on_fail,
        forward_on,
        early_media: match raw.early_media {
            Some(EarlyMediaRaw::Suppress) => EarlyMedia::Suppress,
            _ => EarlyMedia::Relay,
        },
        max_duration,
        on_target_busy_local: match raw.on_target_busy_local {
            Some(BusyLocalRaw::TreatAsBusy) => OnTargetBusyLocal::TreatAsBusy,
            _ => OnTargetBusyLocal::Skip,
        },
    }
}

fn build_listset(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    raw: &RawList,
    list_ids: &HashMap<String, ListId>,
    db: &RegionDb,
) -> ListSet {
    let mut set = ListSet::default();
    for (i, n) in raw.numbers.iter().enumerate() {
        let c = normalize_caller(n.get_ref());
        if c.normalized().is_empty() {
            cx.err(
                fi,
                n.span(),
                format!("{key}.numbers[{i}]"),
                format!("{:?} is not a phone number", n.get_ref()),
                None,
            );
        } else {
            set.add_exact(c.normalized());
        }
    }
    for (i, p) in raw.prefixes.iter().enumerate() {
        let s = p.get_ref().trim();
        let plus = s.strip_prefix('+');
        let body = plus.unwrap_or(s);
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            cx.err(
                fi,
                p.span(),
                format!("{key}.prefixes[{i}]"),
                format!("{s:?} is not a digit prefix"),
                Some("prefixes match the normalised caller: 1380791 (号段), 0791, +1".into()),
            );
        } else {
            set.prefixes.push(s.into());
        }
    }
    set.prefixes.sort();
    for (i, a) in raw.area_codes.iter().enumerate() {
        let s = a.get_ref().trim();
        if db.area_code(s).is_none() {
            cx.err(
                fi,
                a.span(),
                format!("{key}.area_codes[{i}]"),
                format!("unknown area code {s:?}"),
                Some("write it with the leading 0: 010, 0791".into()),
            );
        } else {
            set.area_codes.push(s.into());
        }
    }
    for (i, r) in raw.regions.iter().enumerate() {
        match parse_region(r.get_ref(), db) {
            Ok(p) => set.regions.push(p),
            Err(m) => cx.err(
                fi,
                r.span(),
                format!("{key}.regions[{i}]"),
                m,
                Some("a province (江西) or province/city (江西/南昌)".into()),
            ),
        }
    }
    for (i, l) in raw.lists.iter().enumerate() {
        match list_ids.get(l.get_ref()) {
            Some(id) => set.lists.push(*id),
            None => cx.err(
                fi,
                l.span(),
                format!("{key}.lists[{i}]"),
                format!("unknown list {:?}", l.get_ref()),
                names_hint("lists", list_ids.keys()),
            ),
        }
    }
    set
}

fn build_screening(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    raw: &RawScreening,
    default_code: u16,
    list_ids: &HashMap<String, ListId>,
    db: &RegionDb,
) -> Screening {
    let mut s = Screening {
        blocked_code: default_code,
        whitelist_only: raw.whitelist_only.unwrap_or(false),
        ..Screening::default()
    };
    for (l, name, out) in [
        (&raw.blacklist, "blacklist", &mut s.black),
        (&raw.whitelist, "whitelist", &mut s.white),
    ] {
        if let Some(l) = l {
            let lkey = format!("{key}.{name}");
            if let Some(v) = &l.vip {
                cx.err(
                    fi,
                    v.span(),
                    format!("{lkey}.vip"),
                    "vip is a property of named lists",
                    Some("define [lists.NAME] with vip = true".into()),
                );
            }
            *out = build_listset(cx, fi, &lkey, l, list_ids, db);
        }
    }
    if let Some(c) = &raw.blocked_code {
        match code(*c.get_ref(), 400, 699) {
            Ok(c) => s.blocked_code = c,
            Err(m) => cx.err(fi, c.span(), format!("{key}.blocked_code"), m, None),
        }
    }
    if s.whitelist_only && s.white.is_empty() {
        cx.warn(
            fi,
            0..0,
            format!("{key}.whitelist_only"),
            "whitelist_only with an empty whitelist refuses every caller",
        );
    }
    s
}

/// The carrier of a configured number: a 400 number's is its prefix (a `carrier` key must
/// agree); a 1010 number's is the `carrier` key, which it must have.
fn number_carrier(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    span: Range<usize>,
    number: hotline_route::Number400,
    raw: &Option<Spanned<String>>,
) -> hotline_route::Carrier {
    use hotline_route::Carrier;
    let hint =
        || Some("carrier = \"unicom\" (联通), \"mobile\" (移动) or \"telecom\" (电信)".into());
    let prefix = number.carrier();
    let Some(v) = raw else {
        return prefix.unwrap_or_else(|| {
            cx.err(
                fi,
                span,
                format!("{key}.carrier"),
                format!("1010 number {number} needs its carrier: a 1010 number does not tell it"),
                hint(),
            );
            Carrier::Unicom
        });
    };
    match (Carrier::parse(v.get_ref()), prefix) {
        (None, _) => {
            cx.err(
                fi,
                v.span(),
                format!("{key}.carrier"),
                format!("unknown carrier {:?}", v.get_ref()),
                hint(),
            );
            prefix.unwrap_or(Carrier::Unicom)
        }
        (Some(c), Some(p)) if c != p => {
            cx.err(
                fi,
                v.span(),
                format!("{key}.carrier"),
                format!(
                    "{number} is a {} ({}) number by its prefix, not {c}",
                    p.name_zh(),
                    p
                ),
                Some("leave carrier out for a 400 number: its prefix says it".into()),
            );
            p
        }
        (Some(c), _) => c,
    }
}

/// `anonymous = { action, code, plan }`: what happens to callers without a usable number.
fn build_anonymous(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    raw: &Spanned<RawAnonymous>,
    plan_ids: &HashMap<String, PlanId>,
    used: &mut HashSet<PlanId>,
) -> Option<AnonymousPolicy> {
    let a = raw.get_ref();
    let action = *a.action.get_ref();
    if let (Some(c), false) = (&a.code, action == AnonymousActionRaw::Reject) {
        cx.err(
            fi,
            c.span(),
            format!("{key}.code"),
            "code has no effect unless action = \"reject\"",
            Some("remove code, or set action = \"reject\"".into()),
        );
    }
    if let (Some(p), false) = (&a.plan, action == AnonymousActionRaw::Plan) {
        cx.err(
            fi,
            p.span(),
            format!("{key}.plan"),
            "plan has no effect unless action = \"plan\"",
            Some("remove plan, or set action = \"plan\"".into()),
        );
    }
    match action {
        AnonymousActionRaw::Allow => Some(AnonymousPolicy::Allow),
        AnonymousActionRaw::Reject => {
            let Some(c) = &a.code else {
                return Some(AnonymousPolicy::Reject { code: 433 });
            };
            match code(*c.get_ref(), 400, 699) {
                Ok(code) => Some(AnonymousPolicy::Reject { code }),
                Err(m) => {
                    cx.err(
                        fi,
                        c.span(),
                        format!("{key}.code"),
                        m,
                        Some("433 Anonymity Disallowed (RFC 5079) is the usual one".into()),
                    );
                    None
                }
            }
        }
        AnonymousActionRaw::Plan => {
            let Some(p) = &a.plan else {
                cx.err(
                    fi,
                    a.action.span(),
                    format!("{key}.plan"),
                    "action = \"plan\" needs plan = \"NAME\"",
                    names_hint("plans", plan_ids.keys()),
                );
                return None;
            };
            match plan_ids.get(p.get_ref()) {
                Some(&id) => {
                    used.insert(id);
                    Some(AnonymousPolicy::Plan { plan: id })
                }
                None => {
                    cx.err(
                        fi,
                        p.span(),
                        format!("{key}.plan"),
                        format!("unknown plan {:?}", p.get_ref()),
                        names_hint("plans", plan_ids.keys()),
                    );
                    None
                }
            }
        }
    }
}

fn build_rate(
    cx: &mut Ctx<'_>,
    fi: usize,
    span: Range<usize>,
    key: &str,
    raw: &RawHarassment,
    base: Option<&RateLimit>,
) -> Option<RateLimit> {
    if raw.enabled == Some(false) {
        return None;
    }
    let window =
        |cx: &mut Ctx<'_>, w: &Option<Spanned<RawWindow>>, name: &str| -> Option<RateWindow> {
            let w = w.as_ref()?;
            let r = w.get_ref();
            let calls = match u32::try_from(r.calls) {
                Ok(c) if c > 0 => c,
                _ => {
                    cx.err(
                        fi,
                        w.span(),
                        format!("{key}.{name}.calls"),
                        "calls must be a positive integer",
                        None,
                    );
                    return None;
                }
            };
            let window = dur(cx, fi, format!("{key}.{name}.window"), &r.window)?;
            if window.is_zero() {
                cx.err(
                    fi,
                    r.window.span(),
                    format!("{key}.{name}.window"),
                    "window must be positive",
                    None,
                );
                return None;
            }
            Some(RateWindow { calls, window })
        };
    let per_caller_number = window(cx, &raw.per_caller_number, "per_caller_number")
        .or(base.and_then(|b| b.per_caller_number));
    let per_caller = window(cx, &raw.per_caller, "per_caller").or(base.and_then(|b| b.per_caller));
    let block_for = match &raw.block_for {
        Some(v) => dur(cx, fi, format!("{key}.block_for"), v).unwrap_or(Duration::from_secs(600)),
        None => base
            .map(|b| b.block_for)
            .unwrap_or(Duration::from_secs(600)),
    };
    let code_v = match &raw.code {
        Some(c) => match code(*c.get_ref(), 400, 699) {
            Ok(c) => c,
            Err(m) => {
                cx.err(fi, c.span(), format!("{key}.code"), m, None);
                603
            }
        },
        None => base.map(|b| b.code).unwrap_or(603),
    };
    if per_caller_number.is_none() && per_caller.is_none() {
        cx.err(
            fi,
            span,
            key.to_string(),
            "harassment limits need per_caller_number and/or per_caller",
            Some("e.g. per_caller_number = { calls = 5, window = \"1m\" }".into()),
        );
        return None;
    }
    Some(RateLimit {
        per_caller_number,
        per_caller,
        block_for,
        code: code_v,
    })
}

#[allow(clippy::too_many_arguments)]
fn build_rules(
    cx: &mut Ctx<'_>,
    fi: usize,
    nkey: &str,
    raw: &[Spanned<RawRule>],
    plan_ids: &HashMap<String, PlanId>,
    list_ids: &HashMap<String, ListId>,
    used_plans: &mut HashSet<PlanId>,
    db: &RegionDb,
) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut shapes: Vec<(usize, Conditions)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("{nkey}.rules[{i}]");
        let rr = r.get_ref();
        let mut c = Conditions::default();
        let mut ok = true;
        if let Some(w) = &rr.weekdays {
            match parse_weekdays(&w.get_ref().to_vec()) {
                Ok(m) => c.weekdays = Some(m),
                Err(e) => {
                    ok = false;
                    cx.err(fi, w.span(), format!("{key}.weekdays"), e, None);
                }
            }
        }
        if let Some(t) = &rr.time {
            for (j, s) in t.get_ref().to_vec().iter().enumerate() {
                match parse_time_range(s) {
                    Ok(tr) => c.times.push(tr),
                    Err(e) => {
                        ok = false;
                        cx.err(
                            fi,
                            t.span(),
                            format!("{key}.time[{j}]"),
                            e,
                            Some(
                                "write HH:MM-HH:MM, e.g. 09:00-18:00 or 22:00-06:00 (overnight)"
                                    .into(),
                            ),
                        );
                    }
                }
            }
        }
        if let Some(d) = &rr.dates {
            for (j, s) in d.get_ref().to_vec().iter().enumerate() {
                match parse_date_range(s) {
                    Ok(dr) => c.dates.push(dr),
                    Err(e) => {
                        ok = false;
                        cx.err(
                            fi,
                            d.span(),
                            format!("{key}.dates[{j}]"),
                            e,
                            Some("write 2026-10-01 or 2026-10-01..2026-10-07".into()),
                        );
                    }
                }
            }
        }
        if let Some(d) = &rr.day {
            match d.get_ref().as_str() {
                "workday" => c.day = Some(DayKind::Workday),
                "holiday" => c.day = Some(DayKind::Holiday),
                other => {
                    ok = false;
                    cx.err(
                        fi,
                        d.span(),
                        format!("{key}.day"),
                        format!("bad day kind {other:?}"),
                        Some("use \"workday\" or \"holiday\"".into()),
                    );
                }
            }
        }
        if let Some(rg) = &rr.region {
            for (j, s) in rg.get_ref().to_vec().iter().enumerate() {
                match parse_region(s, db) {
                    Ok(p) => c.regions.push(p),
                    Err(e) => {
                        ok = false;
                        cx.err(
                            fi,
                            rg.span(),
                            format!("{key}.region[{j}]"),
                            e,
                            Some("a province (江西) or province/city (江西/南昌)".into()),
                        );
                    }
                }
            }
        }
        if let Some(l) = &rr.list {
            for (j, s) in l.get_ref().to_vec().iter().enumerate() {
                match list_ids.get(s) {
                    Some(id) => c.lists.push(*id),
                    None => {
                        ok = false;
                        cx.err(
                            fi,
                            l.span(),
                            format!("{key}.list[{j}]"),
                            format!("unknown list {s:?}"),
                            names_hint("lists", list_ids.keys()),
                        );
                    }
                }
            }
        }
        c.vip = rr.vip;
        if let Some(k) = &rr.key {
            cx.ivr_rules.push((fi, k.span(), format!("{key}.key")));
            for (j, v) in k.get_ref().to_vec().iter().enumerate() {
                match u8::try_from(*v) {
                    Ok(v) if v <= 9 => c.keys.push(v),
                    _ => {
                        ok = false;
                        cx.err(
                            fi,
                            k.span(),
                            format!("{key}.key[{j}]"),
                            format!("IVR key {v} is not 0-9"),
                            None,
                        );
                    }
                }
            }
        }
        let plan = match plan_ids.get(rr.plan.get_ref()) {
            Some(p) => {
                used_plans.insert(*p);
                *p
            }
            None => {
                ok = false;
                cx.err(
                    fi,
                    rr.plan.span(),
                    format!("{key}.plan"),
                    format!("unknown plan {:?}", rr.plan.get_ref()),
                    names_hint("plans", plan_ids.keys()),
                );
                PlanId(0)
            }
        };
        if ok {
            // Unreachable: an earlier rule that always matches, or one with the same conditions.
            if let Some((pi, _)) = shapes.iter().find(|(_, s)| s.is_empty()) {
                cx.err(fi, r.span(), key.clone(), format!("rule can never match: rules[{pi}] has no conditions and always matches first"), Some("move the unconditional rule last, or use the number's `plan` as the default".into()));
            } else if let Some((pi, _)) = shapes.iter().find(|(_, s)| *s == c) {
                cx.err(
                    fi,
                    r.span(),
                    key.clone(),
                    format!("rule can never match: rules[{pi}] has the same conditions"),
                    Some("merge the two rules or make their conditions differ".into()),
                );
            }
            shapes.push((i, c.clone()));
        }
        rules.push(Rule {
            name: rr.name.clone().unwrap_or_else(|| format!("rules[{i}]")),
            when: c,
            plan,
        });
    }
    rules
}

/// The user part of a `sip:`/`sips:`/`tel:` URI string (empty when there is none).
fn sip_uri_user(uri: &str) -> &str {
    hotline_sip::uri::Uri::parse(uri.as_bytes())
        .and_then(|u| std::str::from_utf8(u.user).ok())
        .unwrap_or("")
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

#[cfg(test)]
mod billing_and_trunk_limit_tests {
    use crate::from_toml_str;

    const BASE: &str = r#"
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

    #[test]
    fn billing_and_trunk_limits_parse() -> Result<(), String> {
        let src = format!(
            "[server.billing]\nfile = \"billing.toml\"\nrefuse_code = 480\nlow_balance = \"12.5\"\n\
             [[server.trunks]]\nname = \"ct\"\nsources = [\"127.0.0.1\"]\nmax_cps = 50\nmax_calls = 200\n{BASE}"
        );
        let c = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .map_err(|e| e.to_string())?;
        let b = c.settings.billing.ok_or("billing")?;
        assert_eq!(b.refuse_code, 480);
        assert_eq!(b.low_balance_fen, 1250);
        assert_eq!(b.file, std::path::PathBuf::from("billing.toml"));
        assert_eq!(c.settings.trunks[0].max_cps, Some(50));
        assert_eq!(c.settings.trunks[0].max_calls, Some(200));
        Ok(())
    }

    #[test]
    fn bad_billing_and_limits_are_errors_with_key_paths() {
        let src = format!(
            "[server.billing]\nfile = \"b.toml\"\nrefuse_code = 200\nlow_balance = \"1.234\"\n\
             [[server.trunks]]\nname = \"ct\"\nsources = [\"127.0.0.1\"]\nmax_cps = 0\n{BASE}"
        );
        let Err(e) = from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24)) else {
            panic!("must fail");
        };
        let text = e.to_string();
        assert!(text.contains("server.billing.refuse_code"), "{text}");
        assert!(text.contains("server.billing.low_balance"), "{text}");
        assert!(text.contains("server.trunks[0].max_cps"), "{text}");
        assert!(text.contains("t.toml:3"), "line of refuse_code: {text}");
    }

    /// `low_balance` goes through the one money parser (hotline_cdr::billing::parse_yuan):
    /// a negative or oversized threshold is an error that says which, as in the rate file.
    #[test]
    fn low_balance_negative_and_overflow() {
        let msg = |v: &str| {
            let src = format!("[server.billing]\nfile = \"b.toml\"\nlow_balance = \"{v}\"\n{BASE}");
            match from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24)) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        assert_eq!(
            msg("-5"),
            "t.toml:3: server.billing.low_balance: \"-5\" is negative: amounts are 0 or more (hint: write e.g. \"50.00\")"
        );
        assert!(
            msg("99999999999999999999").contains("is too large: at most 13 digits"),
            "{}",
            msg("99999999999999999999")
        );
        assert_eq!(msg("9999999999999.99"), "");
    }
}
