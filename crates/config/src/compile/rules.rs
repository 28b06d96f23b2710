//! Who calls and which rule applies: named lists, screening (global and per number),
//! the anonymous-caller policy, anti-harassment rates, and the rules of a number.

use super::*;

/// `[lists]`: named lists that rules and screening refer to.
pub(crate) fn compile_lists(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    seen_at: &mut HashMap<String, usize>,
    db: &RegionDb,
) -> (Vec<NamedList>, HashMap<String, ListId>) {
    let mut lists: Vec<NamedList> = Vec::new();
    let mut list_ids: HashMap<String, ListId> = HashMap::new();
    for (fi, f) in files {
        for (name, l) in &f.lists {
            let key = format!("lists.{}", q(name.get_ref()));
            if dup(cx, seen_at, *fi, name, &key) {
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
            let set = build_listset(cx, *fi, &key, raw, &HashMap::new(), db);
            let id = ListId(lists.len() as u32);
            list_ids.insert(name.get_ref().clone(), id);
            lists.push(NamedList {
                name: name.get_ref().clone(),
                vip: raw.vip.as_ref().is_some_and(|v| *v.get_ref()),
                set,
            });
        }
    }

    (lists, list_ids)
}

/// The top-level `[screening]` (main file or any one file).
pub(crate) struct GlobalScreening {
    pub screening: Screening,
    pub abroad_code: u16,
    /// `[screening.harassment]`: the default of every number.
    pub rate: Option<RateLimit>,
    /// Plans the anonymous policy routes to (used).
    pub anonymous_plans: HashSet<PlanId>,
}

/// `[screening]`.
pub(crate) fn compile_global_screening(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    list_ids: &HashMap<String, ListId>,
    plan_ids: &HashMap<String, PlanId>,
    db: &RegionDb,
) -> GlobalScreening {
    let sources = cx.sources;
    let mut anon_plans: HashSet<PlanId> = HashSet::new();
    let mut global = Screening {
        blocked_code: 603,
        ..Screening::default()
    };
    let mut abroad_code = 403u16;
    let mut global_rate: Option<RateLimit> = None;
    let mut screening_seen: Option<usize> = None;
    for (fi, f) in files {
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
            global = build_screening(cx, *fi, "screening", raw, 603, list_ids, db);
            global.anonymous = raw.anonymous.as_ref().and_then(|a| {
                build_anonymous(cx, *fi, "screening.anonymous", a, plan_ids, &mut anon_plans)
            });
            if let Some(c) = &raw.abroad_code {
                match code(*c.get_ref(), 400, 699) {
                    Ok(c) => abroad_code = c,
                    Err(m) => cx.err(*fi, c.span(), "screening.abroad_code", m, None),
                }
            }
            if let Some(h) = &raw.harassment {
                let span = header_span(&sources[*fi].text, "harassment");
                global_rate = build_rate(cx, *fi, span, "screening.harassment", h, None);
            }
        }
    }

    GlobalScreening {
        screening: global,
        abroad_code,
        rate: global_rate,
        anonymous_plans: anon_plans,
    }
}

pub(crate) fn build_listset(
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

pub(crate) fn build_screening(
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

/// `anonymous = { action, code, plan }`: what happens to callers without a usable number.
pub(crate) fn build_anonymous(
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

pub(crate) fn build_rate(
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
pub(crate) fn build_rules(
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
