//! `explain`: a step-by-step account of what [`crate::resolve`] would do, without changing
//! live state (rate windows are evaluated as if this call came in, but not recorded; round-robin
//! cursors are read, not advanced). Allocates freely: this is a tool path, not the call path.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::calendar::DayKind;
use crate::conditions::{day_name, describe, miss_reason};
use crate::live::RateVerdict;
use crate::resolve::{
    check, choose_plan, peek_orders, screen, CallContext, Env, Reject, RejectCause,
};
use crate::state::LiveState;
use crate::table::{Fallback, Plan, RouteTable};

/// The account of one routing decision. `Display` is for people, `Serialize` for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The called number.
    pub number: String,
    /// Whether the number is configured.
    pub known: bool,
    /// Owning company.
    pub company: Option<String>,
    /// What the company's phones show as the caller (来电显示), unless a target overrides it.
    pub caller_id: Option<&'static str>,
    /// Carrier from the prefix (联通 / 移动 / 电信).
    pub carrier: &'static str,
    /// `active` / `suspended`.
    pub status: Option<&'static str>,
    /// Time zone the rules use.
    pub timezone: Option<String>,
    /// `now` in that time zone.
    pub local_time: Option<String>,
    /// Working day or day off per the holiday calendar.
    pub day_kind: Option<DayKind>,
    /// Festival name if the date is listed in the calendar.
    pub festival: Option<String>,
    /// The caller.
    pub caller: CallerInfo,
    /// IVR key from the Request-URI.
    pub ivr_key: Option<u8>,
    /// Screening steps (abroad, whitelist, blacklist, whitelist-only, VIP, rate limits).
    pub screening: Vec<Step>,
    /// Every rule in order.
    pub rules: Vec<RuleCheck>,
    /// The final outcome.
    pub outcome: Outcome,
    /// Config generation and hash.
    pub generation: u64,
    /// Config hash.
    pub config_hash: String,
}

/// The caller as understood.
#[derive(Debug, Clone, Serialize)]
pub struct CallerInfo {
    /// As received.
    pub raw: String,
    /// Normalised.
    pub normalized: String,
    /// mobile / fixed_line / international / unknown.
    pub kind: &'static str,
    /// Province and city, if known.
    pub region: Option<String>,
}

/// One screening check.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked.
    pub check: &'static str,
    /// What came out.
    pub result: String,
}

/// One rule and why it did or did not match.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCheck {
    /// The rule's name.
    pub name: String,
    /// Its conditions, as written.
    pub conditions: String,
    /// Plan it selects.
    pub plan: String,
    /// `matched`, `no`, or `not_checked` (an earlier rule matched or the call was refused).
    pub verdict: &'static str,
    /// Why.
    pub reason: String,
}

/// The final outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A final response.
    Reject {
        /// SIP code.
        code: u16,
        /// Reason phrase.
        reason: &'static str,
        /// Cause.
        cause: RejectCause,
    },
    /// A hunt.
    Route {
        /// Matching rule or `default`.
        rule: String,
        /// The plan with every timer (boxed: it is much larger than a reject).
        plan: Box<PlanView>,
    },
}

/// A plan with its groups in hunt order.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    /// Name.
    pub name: String,
    /// `invite` or `first_18x`.
    pub ring_from: &'static str,
    /// Causes that move the hunt on.
    pub advance_on: Vec<&'static str>,
    /// Overall wait cap in ms.
    pub wait_cap_ms: Option<u64>,
    /// What the caller gets when all fail.
    pub on_fail: String,
    /// Whether the wait cap, when it ends the hunt, also skips an `on_fail` target.
    pub wait_cap_skips_on_fail: bool,
    /// The plan's forwards by the cause the hunt ended with: `(cause, target)`.
    pub forward_on: Vec<(&'static str, String)>,
    /// `relay` / `suppress`.
    pub early_media: &'static str,
    /// Longest call in ms.
    pub max_duration_ms: Option<u64>,
    /// `skip` / `treat_as_busy`.
    pub on_target_busy_local: &'static str,
    /// Groups in order.
    pub groups: Vec<GroupView>,
}

/// A group with members in hunt order.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// `sequential` / `simultaneous`.
    pub mode: &'static str,
    /// Strategy name.
    pub strategy: &'static str,
    /// Members in hunt order.
    pub members: Vec<MemberView>,
}

/// A member and its target.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Target name.
    pub target: String,
    /// Request-URI.
    pub uri: String,
    /// Next hop.
    pub next_hop: String,
    /// udp / tcp.
    pub transport: &'static str,
    /// Ring timeout in ms.
    pub ring_timeout_ms: u64,
    /// Weight.
    pub weight: u32,
    /// Concurrency limit.
    pub max_concurrent: Option<u32>,
    /// The target's forwards by cause: `(busy | no_answer | unreachable, target)`.
    pub forward_on: Vec<(&'static str, String)>,
    /// What this phone shows as the caller: the target's `caller_id`, else the number's.
    pub caller_id: &'static str,
    /// Calls active on the target now.
    pub active: u32,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn plan_view(
    table: &RouteTable,
    live: &dyn LiveState,
    plan: &Plan,
    seed: u64,
    caller_id: crate::table::CallerId,
) -> PlanView {
    let orders = peek_orders(table, live, plan, seed);
    let groups = plan
        .groups
        .iter()
        .zip(orders.iter())
        .map(|(g, o)| GroupView {
            name: g.name.clone(),
            mode: match g.mode {
                crate::table::Mode::Sequential => "sequential",
                crate::table::Mode::Simultaneous => "simultaneous",
            },
            strategy: strategy_name(g.strategy),
            members: o
                .as_slice()
                .iter()
                .filter_map(|&i| g.members.get(usize::from(i)))
                .filter_map(|m| {
                    let t = table.try_target(m.target)?;
                    Some(MemberView {
                        target: t.name.clone(),
                        uri: t.uri.clone(),
                        next_hop: t.next_hop.to_string(),
                        transport: t.transport.as_str(),
                        ring_timeout_ms: ms(m.ring_timeout),
                        weight: m.weight,
                        max_concurrent: t.max_concurrent,
                        active: live.stats(&t.name).active,
                        forward_on: forward_view(table, &t.forward_on),
                        caller_id: t.caller_id.unwrap_or(caller_id).as_str(),
                    })
                })
                .collect(),
        })
        .collect();
    let a = plan.advance_on;
    let mut advance_on = Vec::new();
    for (on, name) in [
        (a.busy, "busy"),
        (a.no_answer, "no_answer"),
        (a.unreachable, "unreachable"),
        (a.rejected, "rejected"),
    ] {
        if on {
            advance_on.push(name);
        }
    }
    PlanView {
        name: plan.name.clone(),
        ring_from: match plan.ring_from {
            crate::table::RingFrom::Invite => "invite",
            crate::table::RingFrom::First18x => "first_18x",
        },
        advance_on,
        wait_cap_ms: plan.wait_cap.map(ms),
        on_fail: match plan.on_fail {
            Fallback::BestResponse => {
                "the best response of the targets (RFC 3261 16.7)".to_string()
            }
            Fallback::Code(c) => format!("{c} {}", crate::resolve::reason_phrase(c)),
            Fallback::Target(t) => format!(
                "target {}",
                table.try_target(t).map(|t| t.name.as_str()).unwrap_or("?")
            ),
        },
        wait_cap_skips_on_fail: plan.wait_cap_skips_on_fail,
        forward_on: forward_view(table, &plan.forward_on),
        early_media: match plan.early_media {
            crate::table::EarlyMedia::Relay => "relay",
            crate::table::EarlyMedia::Suppress => "suppress",
        },
        max_duration_ms: plan.max_duration.map(ms),
        on_target_busy_local: match plan.on_target_busy_local {
            crate::table::OnTargetBusyLocal::Skip => "skip",
            crate::table::OnTargetBusyLocal::TreatAsBusy => "treat_as_busy",
        },
        groups,
    }
}

fn forward_view(table: &RouteTable, f: &crate::table::ForwardOn) -> Vec<(&'static str, String)> {
    f.entries()
        .map(|(c, t)| {
            (
                c,
                table
                    .try_target(t)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| "?".into()),
            )
        })
        .collect()
}

/// ` forward busy -> a, no_answer -> b` (empty without forwards).
fn forward_text(f: &[(&'static str, String)]) -> String {
    if f.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = f.iter().map(|(c, t)| format!("{c} -> {t}")).collect();
    format!(" forward {}", parts.join(", "))
}

fn strategy_name(s: crate::table::Strategy) -> &'static str {
    use crate::table::Strategy::*;
    match s {
        Linear => "linear",
        RoundRobin => "round_robin",
        Random => "random",
        Weighted => "weighted",
        LeastRecent => "least_recent",
        FewestCalls => "fewest_calls",
    }
}

/// Explain the routing of `call` at `now`. Live state is read, never written.
pub fn explain(
    table: &RouteTable,
    live: &dyn LiveState,
    call: &CallContext<'_>,
    now: Timestamp,
) -> Explanation {
    let caller = crate::number::normalize_caller(call.caller);
    let region = table.regions().lookup(&caller);
    let mut ex = Explanation {
        number: call.called.to_string(),
        known: false,
        company: None,
        caller_id: None,
        // A 1010 number's carrier is the configuration's (below); unknown until then.
        carrier: call.called.carrier().map_or("?", |c| c.name_zh()),
        status: None,
        timezone: None,
        local_time: None,
        day_kind: None,
        festival: None,
        caller: CallerInfo {
            raw: call.caller.to_string(),
            normalized: caller.normalized().to_string(),
            kind: caller.kind.as_str(),
            region: region.map(|r| r.to_string()),
        },
        ivr_key: call.ivr_key,
        screening: Vec::new(),
        rules: Vec::new(),
        outcome: Outcome::Reject {
            code: 404,
            reason: "Not Found",
            cause: RejectCause::UnknownNumber,
        },
        generation: table.generation(),
        config_hash: table.hash().to_string(),
    };
    let Some(entry) = table.number(call.called) else {
        return ex;
    };
    ex.known = true;
    ex.company = Some(entry.company.clone());
    ex.carrier = entry.carrier.name_zh();
    ex.caller_id = Some(entry.caller_id.as_str());
    ex.status = Some(match entry.status {
        crate::table::Status::Active => "active",
        crate::table::Status::Suspended => "suspended",
    });
    ex.timezone = Some(entry.tz_name.clone());
    let local = entry.tz.to_datetime(now);
    ex.local_time = Some(format!(
        "{} {:?}",
        local.strftime("%Y-%m-%d %H:%M"),
        local.date().weekday()
    ));
    ex.day_kind = Some(table.calendar().day_kind(local.date()));
    ex.festival = table.calendar().festival(local.date()).map(String::from);

    let (s, reject): (_, Option<Reject>) =
        screen(table, live, entry, call.caller, now, false, call.callback);
    ex.screening.push(Step {
        check: "status",
        result: ex.status.unwrap_or("?").to_string(),
    });
    ex.screening.push(Step {
        check: "abroad",
        result: if caller.kind == crate::number::CallerKind::International {
            "caller is outside +86: refused".into()
        } else {
            "domestic or unknown caller".into()
        },
    });
    ex.screening.push(Step {
        check: "whitelist",
        result: match s.white {
            Some(h) => format!("hit ({h}): exempt from blacklist and rate limits"),
            None => "no hit".into(),
        },
    });
    ex.screening.push(Step {
        check: "blacklist",
        result: match s.black {
            Some(h) => format!("hit ({h})"),
            None if s.white.is_some() => "skipped (whitelisted)".into(),
            None => "no hit".into(),
        },
    });
    ex.screening.push(Step {
        check: "vip",
        result: if s.vip {
            "caller is VIP".into()
        } else {
            "not VIP".into()
        },
    });
    ex.screening.push(Step {
        check: "rate",
        result: match (&entry.rate, s.rate) {
            (None, _) => "no limits configured".into(),
            (Some(_), _) if s.vip || s.white.is_some() => "exempt".into(),
            (Some(_), RateVerdict::Allowed) => "under the limits".into(),
            (Some(_), RateVerdict::Blocked { until_ms }) => format!(
                "blocked until {}",
                Timestamp::from_millisecond(until_ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ),
        },
    });
    let env = Env {
        local,
        calendar: table.calendar(),
        caller: &s.caller,
        region: s.region.as_ref(),
        vip: s.vip,
        key: call.ivr_key,
        table,
    };
    ex.screening.push(Step {
        check: "anonymous",
        result: match (s.anonymous, reject.as_ref().map(|r| r.cause)) {
            (false, _) => "the caller has a number".into(),
            (true, Some(RejectCause::Anonymous)) => {
                "no usable number: refused by the anonymous policy".into()
            }
            (true, _) if s.anonymous_plan.is_some() => {
                "no usable number: routed to the anonymous policy's plan".into()
            }
            (true, _) => "no usable number: allowed, rate-limited as one caller".into(),
        },
    });
    // The choice is resolve's own (`choose_plan`); the rules are then annotated around it.
    let chosen = reject
        .is_none()
        .then(|| choose_plan(table, entry, s.anonymous_plan, &env));
    let chosen_at = chosen
        .and_then(|(_, rule, _)| rule)
        .and_then(|r| entry.rules.iter().position(|x| std::ptr::eq(x, r)));
    for (i, rule) in entry.rules.iter().enumerate() {
        let plan_name = table
            .plan(rule.plan)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let conditions = describe(&rule.when, table);
        let (verdict, reason) = match chosen {
            None => (
                "not_checked",
                "the call is refused before rules".to_string(),
            ),
            Some(("anonymous", None, _)) => (
                "not_checked",
                "the anonymous policy chose the plan".to_string(),
            ),
            Some(_) if chosen_at == Some(i) => ("matched", "all conditions hold".to_string()),
            Some(_) if chosen_at.is_some_and(|at| at < i) => {
                ("not_checked", "an earlier rule matched".to_string())
            }
            Some(_) => match check(&rule.when, &env) {
                Ok(()) => ("no", "its plan does not exist".to_string()),
                Err(m) => ("no", miss_reason(m, &rule.when, &env)),
            },
        };
        ex.rules.push(RuleCheck {
            name: rule.name.clone(),
            conditions,
            plan: plan_name,
            verdict,
            reason,
        });
    }
    ex.outcome = match (reject, chosen) {
        (Some(r), _) => Outcome::Reject {
            code: r.code,
            reason: r.reason,
            cause: r.cause,
        },
        (None, Some((rule, _, plan))) => Outcome::Route {
            rule: rule.to_string(),
            plan: Box::new(plan_view(table, live, plan, call.seed, entry.caller_id)),
        },
        // `chosen` is `Some` whenever the call is not refused.
        (None, None) => return ex,
    };
    ex
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "number    {} ({})", self.number, self.carrier)?;
        if !self.known {
            writeln!(f, " — not configured")?;
        } else {
            writeln!(
                f,
                ", company {}, {}, caller id {}",
                self.company.as_deref().unwrap_or("?"),
                self.status.unwrap_or("?"),
                self.caller_id.unwrap_or("?")
            )?;
            writeln!(
                f,
                "time      {} ({}), {}{}",
                self.local_time.as_deref().unwrap_or("?"),
                self.timezone.as_deref().unwrap_or("?"),
                self.day_kind.map(day_name).unwrap_or("?"),
                self.festival
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "caller    {} -> {} [{}] region {}",
            if self.caller.raw.is_empty() {
                "(none)"
            } else {
                &self.caller.raw
            },
            if self.caller.normalized.is_empty() {
                "(none)"
            } else {
                &self.caller.normalized
            },
            self.caller.kind,
            self.caller.region.as_deref().unwrap_or("unknown")
        )?;
        if let Some(k) = self.ivr_key {
            writeln!(f, "ivr key   {k}")?;
        }
        if !self.screening.is_empty() {
            writeln!(f, "screening")?;
            for s in &self.screening {
                writeln!(f, "  {:<10} {}", s.check, s.result)?;
            }
        }
        if !self.rules.is_empty() {
            writeln!(f, "rules")?;
            for r in &self.rules {
                writeln!(
                    f,
                    "  {:<11} {} [{}] -> plan {}: {}",
                    r.verdict, r.name, r.conditions, r.plan, r.reason
                )?;
            }
        }
        match &self.outcome {
            Outcome::Reject {
                code,
                reason,
                cause,
            } => writeln!(f, "result    reject {code} {reason} ({})", cause.as_str()),
            Outcome::Route { rule, plan } => {
                writeln!(f, "result    route by {rule} -> plan {}", plan.name)?;
                writeln!(
                    f,
                    "  ring from {}, advance on {}, wait cap {}, on fail {}, early media {}, max duration {}, busy local {}",
                    plan.ring_from,
                    plan.advance_on.join("/"),
                    plan.wait_cap_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "none".into()),
                    match (plan.wait_cap_ms.is_some(), plan.on_fail.starts_with("target "), plan.wait_cap_skips_on_fail) {
                        (true, true, false) => format!("{} (also after the wait cap)", plan.on_fail),
                        (true, true, true) => format!("{} (not after the wait cap: 480)", plan.on_fail),
                        _ => plan.on_fail.clone(),
                    },
                    plan.early_media,
                    plan.max_duration_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "none".into()),
                    plan.on_target_busy_local
                )?;
                if !plan.forward_on.is_empty() {
                    writeln!(
                        f,
                        "  when the hunt fails:{} (then on fail)",
                        forward_text(&plan.forward_on)
                    )?;
                }
                for (i, g) in plan.groups.iter().enumerate() {
                    writeln!(
                        f,
                        "  group {} {} ({}, {})",
                        i + 1,
                        g.name,
                        g.mode,
                        g.strategy
                    )?;
                    for (j, m) in g.members.iter().enumerate() {
                        writeln!(
                            f,
                            "    {}. {} {} via {}/{} ring {} ms{}{}{}, shows {}",
                            j + 1,
                            m.target,
                            m.uri,
                            m.transport,
                            m.next_hop,
                            m.ring_timeout_ms,
                            if m.weight != 1 {
                                format!(" weight {}", m.weight)
                            } else {
                                String::new()
                            },
                            m.max_concurrent
                                .map(|c| format!(" ({} of max {c} active)", m.active))
                                .unwrap_or_default(),
                            forward_text(&m.forward_on),
                            m.caller_id
                        )?;
                    }
                }
                Ok(())
            }
        }
    }
}
