//! Plan translation: a routing decision ([`Routed`]) becomes the proxy's [`ForkPlan`]
//! (groups, ring timers, forwards by cause, fallback, Diversion / History-Info, caller-ID
//! presentation). Pure: testable without sockets.

use super::*;

/// Translate a routing decision into the proxy's fork plan.
pub(super) fn fork_plan(table: &RouteTable, routed: &Routed<'_>, called: &Number400) -> ForkPlan {
    let plan = routed.plan;
    let branch = |m: &hotline_route::Member| -> Option<BranchTarget> {
        let t = table.try_target(m.target)?;
        Some(BranchTarget {
            uri: Bytes::from(t.uri.clone()),
            dest: Peer::new(t.transport, t.next_hop),
            ring_timeout: m.ring_timeout,
            tag: m.target.0,
        })
    };
    let groups: Vec<ForkGroup> = routed
        .groups()
        .map(|g| ForkGroup {
            parallel: g.group.mode == Mode::Simultaneous,
            targets: g.members().filter_map(branch).collect(),
        })
        .collect();
    // 遇忙 / 无应答 / 不可达转移: per target (its destination rings as long as the member did)
    // and per plan (when the hunt has failed, like the on_fail target).
    let by_cause = |f: &hotline_route::ForwardOn, ring: Duration| -> ByCause {
        let to = |t: Option<TargetId>| {
            branch(&hotline_route::Member {
                target: t?,
                ring_timeout: ring,
                weight: 1,
            })
        };
        ByCause {
            busy: to(f.busy),
            no_answer: to(f.no_answer),
            unreachable: to(f.unreachable),
        }
    };
    // The plan's members, then (each once) the destinations their forwards lead to.
    let mut forwards: Vec<(u32, ByCause)> = Vec::new();
    let mut todo: Vec<(TargetId, Duration)> = routed
        .groups()
        .flat_map(|g| g.members().map(|m| (m.target, m.ring_timeout)))
        .collect();
    todo.reverse();
    let mut seen: Vec<u32> = Vec::new();
    while let Some((id, ring)) = todo.pop() {
        if seen.contains(&id.0) {
            continue;
        }
        seen.push(id.0);
        let Some(t) = table.try_target(id) else {
            continue;
        };
        if !t.forward_on.is_empty() {
            forwards.push((id.0, by_cause(&t.forward_on, ring)));
            todo.extend(t.forward_on.entries().map(|(_, to)| (to, ring)));
        }
    }
    let fallback_by_cause = by_cause(
        &plan.forward_on,
        plan.wait_cap.unwrap_or(Duration::from_secs(60)),
    );
    let (fail_code, fallback) = match plan.on_fail {
        Fallback::BestResponse => (None, None),
        Fallback::Code(c) => (Some(c), None),
        Fallback::Target(t) => {
            // The final target (voicemail, announcement), tried once the hunt has failed,
            // also when the wait cap ended it (unless `wait_cap_skips_on_fail`).
            let ring = plan.wait_cap.unwrap_or(Duration::from_secs(60));
            let m = hotline_route::Member {
                target: t,
                ring_timeout: ring,
                weight: 1,
            };
            (None, branch(&m))
        }
    };
    // RFC 5806 Diversion: the callee sees the call came via the 400 line, and why (a time
    // rule's plan: time-of-day); the proxy adds the hunt's earlier steps.
    let time_rule = routed
        .number
        .rules
        .iter()
        .find(|r| r.name == routed.rule)
        .is_some_and(|r| r.when.is_time_based());
    let diversion = Diversion {
        from: tel_86(called.as_str()),
        reason: if time_rule {
            "time-of-day"
        } else {
            "unconditional"
        },
    };
    ForkPlan {
        groups,
        ring_from_18x: plan.ring_from == RingFrom::First18x,
        wait_cap: plan.wait_cap,
        advance: Advance {
            busy: plan.advance_on.busy,
            no_answer: plan.advance_on.no_answer,
            unreachable: plan.advance_on.unreachable,
            rejected: plan.advance_on.rejected,
            global_failure: false,
        },
        suppress_early_media: plan.early_media == EarlyMedia::Suppress,
        fail_code,
        fallback,
        cap_skips_fallback: plan.wait_cap_skips_on_fail,
        forwards,
        fallback_by_cause,
        // Set by `set_caller_id`.
        caller_id: Presentation::default(),
        caller_id_by_target: Vec::new(),
        add_headers: Vec::new(),
        diversion: Some(diversion),
        remove_headers: Vec::new(),
        max_duration: plan.max_duration,
        history_info: true,
        limit_is_busy: plan.on_target_busy_local == OnTargetBusyLocal::TreatAsBusy,
    }
}

/// What the caller-ID presentation needs of an INVITE: whether the caller asked for privacy
/// (RFC 3323 `Privacy: id / user / header`) and whether it carries a P-Asserted-Identity.
/// Taken when the INVITE arrives, so a decision taken later (a cluster node waiting for Redis)
/// does not need the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReqIdentity {
    pub privacy: bool,
    pub has_pai: bool,
}

impl ReqIdentity {
    pub fn of(req: &Message) -> ReqIdentity {
        ReqIdentity {
            privacy: req.headers("Privacy").any(|v| {
                v.split(|&b| b == b';').any(|t| {
                    let t = t.trim_ascii();
                    t.eq_ignore_ascii_case(b"id")
                        || t.eq_ignore_ascii_case(b"user")
                        || t.eq_ignore_ascii_case(b"header")
                })
            }),
            has_pai: req.header("P-Asserted-Identity").is_some(),
        }
    }
}

/// 来电显示: what each callee of `plan` is shown as the caller, from the number's `caller_id`
/// and the targets' own. The caller's number is not shown to anyone when it asked for
/// privacy (RFC 3323 `Privacy: id` / `user` / `header`) or has none.
pub(super) fn set_caller_id(
    plan: &mut ForkPlan,
    table: &hotline_route::RouteTable,
    routed: &hotline_route::Routed<'_>,
    ident: ReqIdentity,
    trusted: bool,
) {
    use hotline_route::{CallerId, CallerKind};
    let called = routed.number.number.as_str().to_owned();
    let caller = &routed.caller;
    let private = caller.kind == CallerKind::Unknown || ident.privacy;
    let has_pai = ident.has_pai;
    let make = |mode: CallerId| -> Presentation {
        match mode {
            CallerId::Caller => Presentation::default(),
            CallerId::Number => Presentation {
                from: Some((called.clone().into_bytes(), called.clone().into_bytes())),
                asserted: None,
                hide_asserted: true,
            },
            CallerId::NumberAndCaller => {
                let shown = if private {
                    "Anonymous".to_owned()
                } else {
                    caller.normalized().to_owned()
                };
                // A trusted trunk's caller: keep its P-Asserted-Identity, or assert the number
                // it vouched for in From; an untrusted one's number is shown, never asserted.
                let asserted =
                    (trusted && !private && !has_pai).then(|| e164_tel(caller.normalized()));
                Presentation {
                    from: Some((shown.into_bytes(), called.clone().into_bytes())),
                    asserted,
                    hide_asserted: private,
                }
            }
        }
    };
    let default = routed.number.caller_id;
    plan.caller_id = make(default);
    let mut tags: Vec<u32> = plan
        .groups
        .iter()
        .flat_map(|g| g.targets.iter().map(|t| t.tag))
        .chain(plan.fallback.iter().map(|t| t.tag))
        .chain(plan.forwards.iter().flat_map(|(_, f)| {
            [&f.busy, &f.no_answer, &f.unreachable]
                .into_iter()
                .flatten()
                .map(|t| t.tag)
        }))
        .chain(
            [
                &plan.fallback_by_cause.busy,
                &plan.fallback_by_cause.no_answer,
                &plan.fallback_by_cause.unreachable,
            ]
            .into_iter()
            .flatten()
            .map(|t| t.tag),
        )
        .collect();
    tags.sort_unstable();
    tags.dedup();
    for tag in tags {
        let own = table.try_target(TargetId(tag)).and_then(|t| t.caller_id);
        if let Some(mode) = own.filter(|m| *m != default) {
            plan.caller_id_by_target.push((tag, make(mode)));
        }
    }
}

/// `<tel:+86<number>>`, written without the formatting machinery (once per call).
fn tel_86(number: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(number.len() + 9);
    v.extend_from_slice(b"<tel:+86");
    v.extend_from_slice(number.as_bytes());
    v.push(b'>');
    v
}

/// `<tel:+86...>` for a normalised mainland number (a fixed line loses its leading 0).
pub(super) fn e164_tel(n: &str) -> Vec<u8> {
    tel_86(n.strip_prefix('0').unwrap_or(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Diversion reason of the first target: `time-of-day` when a time rule chose the
    /// plan (下班转手机), `unconditional` otherwise.
    #[test]
    fn diversion_reason_follows_the_rule_that_chose_the_plan() {
        let src = r#"
[companies.a]
[targets.desk]
uri = "sip:1@127.0.0.1:5070"
[targets.mobile]
uri = "sip:2@127.0.0.1:5071"
[plans.day]
groups = [{ members = ["desk"] }]
[plans.night]
groups = [{ members = ["mobile"] }]
[numbers."4008001234"]
company = "a"
plan = "day"
rules = [{ name = "night", time = "18:00-09:00", plan = "night" }]
"#;
        let c = match hotline_config::from_toml_str(
            src,
            "t.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let live = hotline_route::Live::new();
        let called = match normalize_called("4008001234") {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        };
        let reason = |at: &str| {
            let ts: jiff::Timestamp = at.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let ctx = CallContext::new(called, "13800138000");
            match resolve(&c.table, &live, &ctx, ts) {
                Decision::Route(r) => fork_plan(&c.table, &r, &called)
                    .diversion
                    .map(|d| (r.rule.to_string(), d.reason, d.from)),
                Decision::Reject(r) => panic!("{r:?}"),
            }
        };
        // 22:00 and 10:00 in Shanghai.
        assert_eq!(
            reason("2026-10-12T14:00:00Z"),
            Some((
                "night".into(),
                "time-of-day",
                b"<tel:+864008001234>".to_vec()
            ))
        );
        assert_eq!(
            reason("2026-10-12T02:00:00Z"),
            Some((
                "default".into(),
                "unconditional",
                b"<tel:+864008001234>".to_vec()
            ))
        );
    }
}
