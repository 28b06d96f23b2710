//! `[plans]`: hunt groups, ring timers, strategies, fallbacks.

use super::*;

/// `[plans]`; marks the targets they hunt as used.
pub(crate) fn compile_plans(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    seen_at: &mut HashMap<String, usize>,
    targets: &mut Targets,
) -> (Vec<Plan>, HashMap<String, PlanId>) {
    let mut plans: Vec<Plan> = Vec::new();
    let mut plan_ids: HashMap<String, PlanId> = HashMap::new();
    for (fi, f) in files {
        for (name, p) in &f.plans {
            let key = format!("plans.{}", q(name.get_ref()));
            if dup(cx, seen_at, *fi, name, &key) {
                continue;
            }
            let plan = build_plan(
                cx,
                *fi,
                &key,
                name.get_ref(),
                name.span(),
                p,
                &targets.ids,
                &targets.defined,
                &mut targets.used,
            );
            plan_ids.insert(name.get_ref().clone(), PlanId(plans.len() as u32));
            plans.push(plan);
        }
    }

    (plans, plan_ids)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn build_plan(
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
