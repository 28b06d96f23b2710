//! Pure 400-number routing: number normalisation, caller regions, the compiled [`RouteTable`],
//! live counters ([`Live`]) and [`resolve`] / [`explain`].
//!
//! Owns: the routing domain types and the decision of where a call goes and in what order.
//! Must not: do I/O (files, sockets), know SIP, read the clock (time comes in as `now`), or
//! allocate on the resolve path. Tables are built by `hotline-config` and never mutated.
//!
//! # Layout
//! - [`number`]: `normalize_called` / `Number400`, `normalize_caller` / `Caller`.
//! - [`region`]: embedded 号段 and area-code tables, `Region`.
//! - [`calendar`]: China holiday calendar with make-up workdays (调休).
//! - [`conditions`]: a rule's `Conditions`, their check at call time, their wording in `explain`.
//! - [`table`]: `RouteTable` and everything in it (targets, plans, groups, rules, lists).
//! - [`live`]: `Live`, concurrent state outside the snapshot (active calls, cursors, rates).
//! - [`state`]: `LiveState`, what routing asks of live state; `Recorder` / `Answers` to fetch
//!   it elsewhere in one batch (a cluster's Redis); `Leases`.
//! - [`resolve`]: `resolve()`, `Decision`, `Reject`, `Routed`, hunt orders.
//! - [`explain`]: `explain()`, a step-by-step account of a decision.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calendar;
pub mod conditions;
pub mod explain;
pub mod live;
pub mod number;
pub mod region;
pub mod resolve;
pub mod state;
pub mod table;

pub use calendar::{Calendar, DayKind};
pub use explain::{explain, Explanation, Outcome as ExplainOutcome};
pub use live::{Live, RateVerdict, TargetStats};
pub use number::{
    normalize_called, normalize_caller, uri_user_allowed, CalledError, Caller, CallerKind, Carrier,
    Number400,
};
pub use region::{Region, RegionDb};
pub use resolve::{
    reason_phrase, resolve, CallContext, Decision, HuntGroup, Miss, Reject, RejectCause, Routed,
};
pub use state::{Answers, Leases, LiveState, Needs, RateQuestion, Recorder};
pub use table::{
    AdvanceOn, AnonymousPolicy, CallerId, Cause, Conditions, EarlyMedia, Fallback, ForwardOn,
    Group, ListId, ListSet, Member, Mode, NamedList, NumberEntry, OnTargetBusyLocal, Plan, PlanId,
    RateLimit, RateWindow, RegionPattern, RingFrom, RouteTable, Rule, Screening, Status, Strategy,
    TableParts, Target, TargetId, TimeRange, Transport, Weekdays, ANONYMOUS_CALLER_KEY, MAX_GROUPS,
    MAX_MEMBERS,
};
