//! `resolve(table, live, call, now) -> Decision`: screening, rules, hunt order.
//!
//! Nothing here allocates on the normal path: the caller is normalised into an inline buffer,
//! names borrow from the table, hunt orders are fixed-size arrays (see docs/routing.md).

use jiff::Timestamp;
use serde::Serialize;

pub use crate::conditions::Miss;
pub(crate) use crate::conditions::{check, Env};

use crate::live::RateVerdict;
use crate::number::{normalize_caller, Caller, CallerKind, Number400};
use crate::region::Region;
#[cfg(test)]
use crate::region::RegionDb;
use crate::state::LiveState;
use crate::table::{
    Group, ListHit, Member, NumberEntry, Plan, RouteTable, Rule, Status, Strategy, Target,
    MAX_GROUPS, MAX_MEMBERS,
};

/// What the server knows about an incoming call.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The called 400 number (from [`crate::normalize_called`]).
    pub called: Number400,
    /// The raw calling number (From / P-Asserted-Identity user part).
    pub caller: &'a str,
    /// The trunk the call came in on, if identified.
    pub trunk: Option<&'a str>,
    /// IVR key from the Request-URI `ivr` parameter (`sip:4008001234@host;ivr=2`).
    pub ivr_key: Option<u8>,
    /// Per-call seed for the `random` and `weighted` strategies (e.g. a hash of the Call-ID).
    pub seed: u64,
    /// The call is a media server's callback (IVR): the caller was screened when the call
    /// first came in, so it is not counted in the rate limits again, nor sent back to the
    /// anonymous policy's plan (that would loop an anonymous caller back to the menu).
    pub callback: bool,
}

impl<'a> CallContext<'a> {
    /// A context with no trunk, no IVR key and seed 0.
    pub fn new(called: Number400, caller: &'a str) -> CallContext<'a> {
        CallContext {
            called,
            caller,
            trunk: None,
            ivr_key: None,
            seed: 0,
            callback: false,
        }
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCause {
    /// The 400 number is not configured (404).
    UnknownNumber,
    /// The Request-URI is not a 400 number (404 "Not A 400 Number").
    NotA400,
    /// The number is suspended (480).
    Suspended,
    /// The caller is on a blacklist (configured code, default 603).
    BlockedList,
    /// The caller exceeded an anti-harassment rate limit (configured code, default 603).
    BlockedRate,
    /// The caller is outside mainland China (+86) (configured code, default 403).
    Abroad,
    /// The number takes whitelisted callers only (configured code, default 603).
    WhitelistOnly,
    /// The caller has no usable number and the policy refuses anonymous calls (default 433).
    Anonymous,
}

impl RejectCause {
    /// snake_case name for CDRs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCause::UnknownNumber => "unknown_number",
            RejectCause::NotA400 => "not_a_400",
            RejectCause::Suspended => "suspended",
            RejectCause::BlockedList => "blocked_list",
            RejectCause::BlockedRate => "blocked_rate",
            RejectCause::Abroad => "abroad",
            RejectCause::WhitelistOnly => "whitelist_only",
            RejectCause::Anonymous => "anonymous",
        }
    }
}

/// A final answer instead of routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// SIP status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Why.
    pub cause: RejectCause,
}

impl Reject {
    /// A reject with the standard reason phrase for `code`.
    pub fn new(code: u16, cause: RejectCause) -> Reject {
        let reason = match cause {
            RejectCause::NotA400 => "Not A 400 Number",
            _ => reason_phrase(code),
        };
        Reject {
            code,
            reason,
            cause,
        }
    }

    /// The reject for a Request-URI that is not a 400 number.
    pub fn not_a_400() -> Reject {
        Reject::new(404, RejectCause::NotA400)
    }
}

/// The RFC 3261 reason phrase of a final status code (`"Error"` for unknown codes).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Error",
    }
}

/// The outcome of [`resolve`].
///
/// `Route` is a few hundred bytes (the hunt orders live inline so that resolve never allocates);
/// boxing it would put an allocation on every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Decision<'t> {
    /// Answer with a final response.
    Reject(Reject),
    /// Hunt per the plan.
    Route(Routed<'t>),
}

/// Members of one group in hunt order (indices into `group.members`).
#[derive(Debug, Clone, Copy)]
pub struct GroupOrder {
    idx: [u8; MAX_MEMBERS],
    len: u8,
}

impl GroupOrder {
    const EMPTY: GroupOrder = GroupOrder {
        idx: [0; MAX_MEMBERS],
        len: 0,
    };

    /// Member indices in hunt order.
    pub fn as_slice(&self) -> &[u8] {
        &self.idx[..usize::from(self.len)]
    }
}

/// A routed call: where it goes and how.
#[derive(Debug, Clone)]
pub struct Routed<'t> {
    /// The number's entry (company, carrier, time zone ...).
    pub number: &'t NumberEntry,
    /// The matching rule's name, or `"default"`.
    pub rule: &'t str,
    /// The plan to execute.
    pub plan: &'t Plan,
    /// The normalised caller.
    pub caller: Caller,
    /// The caller's region, if known.
    pub caller_region: Option<Region>,
    /// The caller is on a VIP list.
    pub vip: bool,
    orders: [GroupOrder; MAX_GROUPS],
}

/// One group of a routed plan with its members in hunt order.
#[derive(Debug, Clone, Copy)]
pub struct HuntGroup<'r, 't> {
    /// The group.
    pub group: &'t Group,
    order: &'r GroupOrder,
}

impl<'r, 't> HuntGroup<'r, 't> {
    /// Members in the order to try them (all at once for a simultaneous group).
    pub fn members(&self) -> impl Iterator<Item = &'t Member> + 'r
    where
        't: 'r,
    {
        let members = &self.group.members;
        self.order
            .as_slice()
            .iter()
            .filter_map(move |&i| members.get(usize::from(i)))
    }
}

impl<'t> Routed<'t> {
    /// The plan's groups in order, each with its members in hunt order.
    pub fn groups<'r>(&'r self) -> impl Iterator<Item = HuntGroup<'r, 't>> + 'r {
        self.plan
            .groups
            .iter()
            .zip(self.orders.iter())
            .map(|(group, order)| HuntGroup { group, order })
    }

    /// Every (group, member, target) in hunt order, flattened.
    pub fn hunt<'r>(
        &'r self,
        table: &'t RouteTable,
    ) -> impl Iterator<Item = (&'t Group, &'t Member, &'t Target)> + 'r
    where
        't: 'r,
    {
        self.groups().flat_map(move |g| {
            let group = g.group;
            let order = g.order;
            order
                .as_slice()
                .iter()
                .filter_map(move |&i| group.members.get(usize::from(i)))
                .filter_map(move |m| table.try_target(m.target).map(|t| (group, m, t)))
        })
    }
}

/// Screening result shared by resolve and explain.
pub(crate) struct Screened<'t> {
    pub caller: Caller,
    pub region: Option<Region>,
    pub white: Option<ListHit<'t>>,
    pub black: Option<ListHit<'t>>,
    pub vip: bool,
    pub rate: RateVerdict,
    /// The caller has no usable number (see [`crate::table::AnonymousPolicy`]).
    pub anonymous: bool,
    /// The anonymous policy's plan, which replaces the rules.
    pub anonymous_plan: Option<crate::table::PlanId>,
}

pub(crate) fn screen<'t>(
    table: &'t RouteTable,
    live: &dyn LiveState,
    entry: &'t NumberEntry,
    raw_caller: &str,
    now: Timestamp,
    commit: bool,
    callback: bool,
) -> (Screened<'t>, Option<Reject>) {
    let caller = normalize_caller(raw_caller);
    let region = table.regions().lookup(&caller);
    let mut s = Screened {
        caller,
        region,
        white: None,
        black: None,
        vip: false,
        rate: RateVerdict::Allowed,
        anonymous: false,
        anonymous_plan: None,
    };
    if entry.status == Status::Suspended {
        return (s, Some(Reject::new(480, RejectCause::Suspended)));
    }
    if caller.kind == CallerKind::International {
        return (
            s,
            Some(Reject::new(table.parts.abroad_code, RejectCause::Abroad)),
        );
    }
    let lists = table.lists();
    let g = &table.parts.global;
    let n = &entry.screening;
    s.anonymous = s.caller.kind == CallerKind::Unknown;
    if s.anonymous && !callback {
        match n.anonymous.or(g.anonymous).unwrap_or_default() {
            crate::table::AnonymousPolicy::Allow => {}
            crate::table::AnonymousPolicy::Reject { code } => {
                return (s, Some(Reject::new(code, RejectCause::Anonymous)));
            }
            crate::table::AnonymousPolicy::Plan { plan } => s.anonymous_plan = Some(plan),
        }
    }
    s.white = n
        .white
        .hit(lists, &caller, region.as_ref())
        .or_else(|| g.white.hit(lists, &caller, region.as_ref()));
    s.vip = lists
        .iter()
        .any(|l| l.vip && l.set.hit(lists, &caller, region.as_ref()).is_some());
    if s.white.is_none() {
        s.black = n
            .black
            .hit(lists, &caller, region.as_ref())
            .or_else(|| g.black.hit(lists, &caller, region.as_ref()));
        if s.black.is_some() {
            return (
                s,
                Some(Reject::new(n.blocked_code, RejectCause::BlockedList)),
            );
        }
        if n.whitelist_only || g.whitelist_only {
            return (
                s,
                Some(Reject::new(n.blocked_code, RejectCause::WhitelistOnly)),
            );
        }
        if let (Some(limit), false, false) = (entry.rate.as_ref(), s.vip, callback) {
            // Every anonymous caller is one caller here.
            let key = if s.anonymous {
                crate::table::ANONYMOUS_CALLER_KEY
            } else {
                s.caller.key()
            };
            s.rate = live.rate_check(key, entry.number.as_u64(), limit, now, commit);
            if matches!(s.rate, RateVerdict::Blocked { .. }) {
                return (s, Some(Reject::new(limit.code, RejectCause::BlockedRate)));
            }
        }
    }
    (s, None)
}

/// splitmix64: a small, good-enough mixer for per-call permutations.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Order a group's members per its strategy and the live state. `commit` advances the
/// round-robin cursor.
pub(crate) fn order_group(
    table: &RouteTable,
    live: &dyn LiveState,
    group: &Group,
    seed: u64,
    salt: u64,
    commit: bool,
) -> GroupOrder {
    let n = group.members.len().min(MAX_MEMBERS);
    let mut o = GroupOrder::EMPTY;
    o.len = n as u8;
    for (i, slot) in o.idx[..n].iter_mut().enumerate() {
        *slot = i as u8;
    }
    if n <= 1 {
        return o;
    }
    let idx = &mut o.idx[..n];
    match group.strategy {
        Strategy::Linear => {}
        Strategy::RoundRobin => {
            let c = if commit {
                live.next_cursor(&group.key)
            } else {
                live.peek_cursor(&group.key)
            };
            idx.rotate_left((c % n as u64) as usize);
        }
        Strategy::Random => {
            let mut s = mix(seed ^ salt);
            for i in (1..n).rev() {
                s = mix(s);
                let j = (s % (i as u64 + 1)) as usize;
                idx.swap(i, j);
            }
        }
        Strategy::Weighted => {
            let mut s = mix(seed ^ salt);
            // Weighted draw without replacement; weight 0 members keep their order at the end.
            for pos in 0..n {
                let total: u64 = idx[pos..]
                    .iter()
                    .map(|&i| u64::from(group.members[usize::from(i)].weight))
                    .sum();
                if total == 0 {
                    break;
                }
                s = mix(s);
                let mut r = s % total;
                let mut pick = pos;
                for (k, &i) in idx.iter().enumerate().skip(pos) {
                    let w = u64::from(group.members[usize::from(i)].weight);
                    if r < w {
                        pick = k;
                        break;
                    }
                    r -= w;
                }
                idx[pos..=pick].rotate_right(1);
            }
        }
        Strategy::LeastRecent => {
            let mut keys = [0i64; MAX_MEMBERS];
            for (i, k) in keys[..n].iter_mut().enumerate() {
                *k = member_stats(table, live, group, i).last_call_ms;
            }
            idx.sort_by_key(|&i| keys[usize::from(i)]);
        }
        Strategy::FewestCalls => {
            let mut keys = [(0u32, 0u64); MAX_MEMBERS];
            for (i, k) in keys[..n].iter_mut().enumerate() {
                let s = member_stats(table, live, group, i);
                *k = (s.active, s.calls);
            }
            idx.sort_by_key(|&i| keys[usize::from(i)]);
        }
    }
    o
}

fn member_stats(
    table: &RouteTable,
    live: &dyn LiveState,
    group: &Group,
    i: usize,
) -> crate::live::TargetStats {
    group
        .members
        .get(i)
        .and_then(|m| table.try_target(m.target))
        .map(|t| live.stats(&t.name))
        .unwrap_or_default()
}

pub(crate) fn select_rule<'t>(
    table: &'t RouteTable,
    entry: &'t NumberEntry,
    env: &Env<'_>,
) -> (&'t str, Option<&'t Rule>, &'t Plan) {
    for rule in &entry.rules {
        if check(&rule.when, env).is_ok() {
            if let Some(p) = table.plan(rule.plan) {
                return (&rule.name, Some(rule), p);
            }
        }
    }
    match table.plan(entry.default_plan) {
        Some(p) => ("default", None, p),
        // The compiler guarantees a default plan; an empty fallback keeps this total.
        None => ("default", None, &EMPTY_PLAN),
    }
}

/// The plan a screened call takes: the anonymous policy's plan for a caller without a usable
/// number (when it names one), else the first rule whose conditions hold, else the number's
/// default plan. [`resolve`] routes by it and [`crate::explain`] shows it.
pub(crate) fn choose_plan<'t>(
    table: &'t RouteTable,
    entry: &'t NumberEntry,
    anonymous_plan: Option<crate::table::PlanId>,
    env: &Env<'_>,
) -> (&'t str, Option<&'t Rule>, &'t Plan) {
    match anonymous_plan.and_then(|p| table.plan(p)) {
        Some(p) => ("anonymous", None, p),
        None => select_rule(table, entry, env),
    }
}

static EMPTY_PLAN: Plan = Plan {
    name: String::new(),
    groups: Vec::new(),
    ring_from: crate::table::RingFrom::Invite,
    advance_on: crate::table::AdvanceOn::ALL,
    wait_cap: None,
    on_fail: crate::table::Fallback::BestResponse,
    early_media: crate::table::EarlyMedia::Relay,
    max_duration: None,
    on_target_busy_local: crate::table::OnTargetBusyLocal::Skip,
    wait_cap_skips_on_fail: false,
    forward_on: crate::table::ForwardOn {
        busy: None,
        no_answer: None,
        unreachable: None,
    },
};

/// Route a call: screening (status, abroad, white/black lists, whitelist-only, rate limits),
/// then rules in order (first match wins, else the number's default plan), then each group's
/// hunt order. Updates live state (rate windows, round-robin cursors); never blocks.
pub fn resolve<'t>(
    table: &'t RouteTable,
    live: &dyn LiveState,
    call: &CallContext<'_>,
    now: Timestamp,
) -> Decision<'t> {
    let Some(entry) = table.number(call.called) else {
        return Decision::Reject(Reject::new(404, RejectCause::UnknownNumber));
    };
    let (s, reject) = screen(table, live, entry, call.caller, now, true, call.callback);
    if let Some(r) = reject {
        return Decision::Reject(r);
    }
    let env = Env {
        local: entry.tz.to_datetime(now),
        calendar: table.calendar(),
        caller: &s.caller,
        region: s.region.as_ref(),
        vip: s.vip,
        key: call.ivr_key,
        table,
    };
    let (rule, _, plan) = choose_plan(table, entry, s.anonymous_plan, &env);
    let mut orders = [GroupOrder::EMPTY; MAX_GROUPS];
    for (i, (g, o)) in plan.groups.iter().zip(orders.iter_mut()).enumerate() {
        *o = order_group(table, live, g, call.seed, i as u64, true);
    }
    Decision::Route(Routed {
        number: entry,
        rule,
        plan,
        caller: s.caller,
        caller_region: s.region,
        vip: s.vip,
        orders,
    })
}

/// Hunt orders without touching live state (for explain).
pub(crate) fn peek_orders(
    table: &RouteTable,
    live: &dyn LiveState,
    plan: &Plan,
    seed: u64,
) -> [GroupOrder; MAX_GROUPS] {
    let mut orders = [GroupOrder::EMPTY; MAX_GROUPS];
    for (i, (g, o)) in plan.groups.iter().zip(orders.iter_mut()).enumerate() {
        *o = order_group(table, live, g, seed, i as u64, false);
    }
    orders
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Calendar, DayKind};
    use crate::table::{Conditions, TimeRange, Weekdays};
    use jiff::civil::date;
    use jiff::civil::{Date, DateTime};

    fn env_at<'a>(
        table: &'a RouteTable,
        cal: &'a Calendar,
        caller: &'a Caller,
        local: DateTime,
    ) -> Env<'a> {
        Env {
            local,
            calendar: cal,
            caller,
            region: None,
            vip: false,
            key: None,
            table,
        }
    }

    #[test]
    fn overnight_belongs_to_start_day() {
        let table = RouteTable::empty();
        let cal = Calendar::default();
        let caller = normalize_caller("13800138000");
        let c = Conditions {
            weekdays: Some(Weekdays(1 << 4)), // Friday
            times: vec![TimeRange {
                start: 22 * 60,
                end: 6 * 60,
            }],
            ..Conditions::default()
        };
        // 2026-01-09 is a Friday.
        let at = |d: Date, h: i8, m: i8| env_at(&table, &cal, &caller, d.at(h, m, 0, 0));
        assert_eq!(check(&c, &at(date(2026, 1, 9), 23, 59)), Ok(()));
        assert_eq!(check(&c, &at(date(2026, 1, 10), 0, 0)), Ok(()));
        assert_eq!(check(&c, &at(date(2026, 1, 10), 5, 59)), Ok(()));
        assert_eq!(check(&c, &at(date(2026, 1, 10), 6, 0)), Err(Miss::Time));
        assert_eq!(check(&c, &at(date(2026, 1, 9), 2, 0)), Err(Miss::Weekday));
        assert_eq!(
            check(&c, &at(date(2026, 1, 10), 22, 30)),
            Err(Miss::Weekday)
        );
    }

    #[test]
    fn calendar_conditions() {
        let table = RouteTable::empty();
        let cal = Calendar::new(
            vec![(date(2026, 10, 2), "国庆节".into())],
            vec![(date(2026, 2, 14), "春节".into())],
        );
        let caller = normalize_caller("13800138000");
        let workday = Conditions {
            day: Some(DayKind::Workday),
            ..Conditions::default()
        };
        let e = |d: Date| env_at(&table, &cal, &caller, d.at(10, 0, 0, 0));
        assert_eq!(check(&workday, &e(date(2026, 2, 14))), Ok(()));
        assert_eq!(
            check(&workday, &e(date(2026, 10, 2))),
            Err(Miss::Day(DayKind::Holiday))
        );
        let key = Conditions {
            keys: vec![2],
            ..Conditions::default()
        };
        let mut env = e(date(2026, 2, 14));
        assert_eq!(check(&key, &env), Err(Miss::Key));
        env.key = Some(2);
        assert_eq!(check(&key, &env), Ok(()));
    }

    #[test]
    fn empty_table_rejects_unknown() {
        let table = RouteTable::empty();
        let live = crate::Live::new();
        let n = crate::normalize_called("4008001234").unwrap_or_else(|e| panic!("{e}"));
        let d = resolve(
            &table,
            &live,
            &CallContext::new(n, "1"),
            Timestamp::UNIX_EPOCH,
        );
        match d {
            Decision::Reject(r) => {
                assert_eq!(
                    (r.code, r.reason, r.cause),
                    (404, "Not Found", RejectCause::UnknownNumber)
                )
            }
            Decision::Route(_) => panic!("routed on an empty table"),
        }
        let r = Reject::not_a_400();
        assert_eq!((r.code, r.reason), (404, "Not A 400 Number"));
    }

    proptest::proptest! {
        #[test]
        fn normalizers_never_panic(s in "\\PC{0,40}") {
            let _ = crate::normalize_called(&s);
            let c = normalize_caller(&s);
            proptest::prop_assert!(c.normalized().len() <= crate::number::CALLER_MAX);
            let _ = RegionDb::embedded().lookup(&c);
        }
    }
}
