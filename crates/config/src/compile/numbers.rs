//! `[companies]` and `[numbers]`: each 400 or 1010 number with its company, carrier, time zone,
//! screening, rate limits and rules.

use super::*;

/// Most numbers a company may hold without `approved = true` on the extra ones.
pub const COMPANY_MAX_NUMBERS: usize = 5;

/// The carrier of a configured number: a 400 number's is its prefix (a `carrier` key must
/// agree); a 1010 number's is the `carrier` key, which it must have.
pub(crate) fn number_carrier(
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

/// Plan and list names, for what refers to them.
pub(crate) struct Names<'a> {
    pub plans: &'a HashMap<String, PlanId>,
    pub lists: &'a HashMap<String, ListId>,
}

/// `[companies]` and `[numbers]`, in file then source order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compile_numbers(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    seen_at: &mut HashMap<String, usize>,
    names: &Names<'_>,
    global: &GlobalScreening,
    used_plans: &mut HashSet<PlanId>,
    db: &RegionDb,
) -> Vec<NumberEntry> {
    let sources = cx.sources;
    let (plan_ids, list_ids) = (names.plans, names.lists);
    let mut companies: HashMap<String, usize> = HashMap::new();
    for (fi, f) in files {
        for name in f.companies.keys() {
            let key = format!("companies.{}", q(name.get_ref()));
            if dup(cx, seen_at, *fi, name, &key) {
                continue;
            }
            companies.insert(name.get_ref().clone(), 0);
        }
    }

    let mut raw_numbers: Vec<(usize, &Spanned<String>, &RawNumber)> = Vec::new();
    for (fi, f) in files {
        for (k, v) in &f.numbers {
            raw_numbers.push((*fi, k, v));
        }
    }
    raw_numbers.sort_by_key(|(fi, k, _)| (*fi, k.span().start));
    let mut numbers: Vec<NumberEntry> = Vec::new();
    let mut number_seen: HashMap<u64, (usize, usize)> = HashMap::new();
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
        let rules = build_rules(cx, fi, &key, &raw.rules, plan_ids, list_ids, used_plans, db);
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
                let mut scr = build_screening(
                    cx,
                    fi,
                    &skey,
                    sr,
                    global.screening.blocked_code,
                    list_ids,
                    db,
                );
                scr.anonymous = sr.anonymous.as_ref().and_then(|a| {
                    build_anonymous(
                        cx,
                        fi,
                        &format!("{skey}.anonymous"),
                        a,
                        plan_ids,
                        used_plans,
                    )
                });
                let rate = match &sr.harassment {
                    Some(h) => build_rate(
                        cx,
                        fi,
                        k.span(),
                        &format!("{skey}.harassment"),
                        h,
                        global.rate.as_ref(),
                    ),
                    None => global.rate,
                };
                (scr, rate)
            }
            None => (
                Screening {
                    blocked_code: global.screening.blocked_code,
                    ..Screening::default()
                },
                global.rate,
            ),
        };
        let carrier = number_carrier(cx, fi, &key, k.span(), number, &raw.carrier);
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

    numbers
}

/// An IVR key is taken only from a media server: without one, key rules never match.
pub(crate) fn check_ivr_rules(cx: &mut Ctx<'_>, settings: &Settings) {
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
}
