//! The compiled, immutable route table and the domain types it holds.
//!
//! `hotline-config` builds a [`TableParts`] and calls [`RouteTable::from_parts`]; after that the
//! table is only read (shared behind an `Arc`, swapped whole on reload).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::conditions::Conditions;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::calendar::Calendar;
use crate::number::{caller_key, Caller, Carrier, Number400};
use crate::region::{Region, RegionDb};

/// Most members a group may have (hunt orders are built in fixed-size arrays).
pub const MAX_MEMBERS: usize = 32;
/// Most groups a plan may have.
pub const MAX_GROUPS: usize = 8;

/// Index of a target in [`RouteTable`]. Only meaningful for the table that issued it; live
/// state is keyed by target name so that it survives reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TargetId(pub u32);

/// Index of a plan in [`RouteTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PlanId(pub u32);

/// Index of a named caller list in [`RouteTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ListId(pub u32);

/// Transport towards a target (also the config's `transport = "udp" | "tcp"` of a gateway):
/// the SIP core's own (`hotline-types`).
pub use hotline_types::Transport;

/// Where a branch goes: a SIP URI, or a domestic number through a gateway.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// This target's index.
    pub id: TargetId,
    /// The configured name (`desk-1001`); live state is keyed by it.
    pub name: String,
    /// The Request-URI to send, e.g. `sip:1001@127.0.0.1:5070` or `sip:13800138000@10.0.0.9:5060`.
    pub uri: String,
    /// Where to send it: an IP literal and port (no DNS).
    pub next_hop: SocketAddr,
    /// Transport to the next hop.
    pub transport: Transport,
    /// Concurrent calls allowed to this target across all numbers (`None` = unlimited).
    pub max_concurrent: Option<u32>,
    /// Where a branch to this target goes next when it fails by cause (遇忙转移 ...).
    pub forward_on: ForwardOn,
    /// What this phone shows as the caller (来电显示); `None`: the number's setting.
    pub caller_id: Option<CallerId>,
}

/// What the called phone shows as the caller (来电显示).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerId {
    /// The caller's own number: From as received (the default).
    #[default]
    Caller,
    /// The 400 number: From rewritten to it (staff know it is a 400 call).
    Number,
    /// The 400 number in From with the caller's number as its display name, and the caller
    /// in P-Asserted-Identity (kept from a trusted trunk, or added for a trusted trunk's
    /// caller); a caller who asked for privacy is shown as `Anonymous`.
    NumberAndCaller,
}

impl CallerId {
    /// `caller` / `number` / `number_and_caller`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerId::Caller => "caller",
            CallerId::Number => "number",
            CallerId::NumberAndCaller => "number_and_caller",
        }
    }
}

/// Destinations by failure cause (遇忙 / 无应答 / 不可达转移): busy, no answer, unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForwardOn {
    /// Busy (486, 600, a target at its limit counted as busy).
    pub busy: Option<TargetId>,
    /// Ring timeout (or the wait cap, for a plan).
    pub no_answer: Option<TargetId>,
    /// 408, 480, 5xx, no response, transport error.
    pub unreachable: Option<TargetId>,
}

impl ForwardOn {
    /// No destination for any cause.
    pub fn is_empty(&self) -> bool {
        *self == ForwardOn::default()
    }

    /// `(cause name, destination)` for each cause that has one, in a fixed order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, TargetId)> {
        [
            ("busy", self.busy),
            ("no_answer", self.no_answer),
            ("unreachable", self.unreachable),
        ]
        .into_iter()
        .filter_map(|(c, t)| Some((c, t?)))
    }
}

/// How a group rings its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One member rings at a time, in hunt order.
    Sequential,
    /// All members ring at once; the first to answer wins.
    Simultaneous,
}

/// Where the hunt starts and in what order members are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Configured order, every time.
    Linear,
    /// Configured order rotated by a per-group cursor that advances on every call.
    RoundRobin,
    /// A permutation drawn from the call's seed.
    Random,
    /// Weighted draw without replacement from the call's seed (weight 0 = last resort).
    Weighted,
    /// Member whose last call started longest ago first.
    LeastRecent,
    /// Member with the fewest active, then fewest total calls first.
    FewestCalls,
}

/// One member of a group.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// The target rung.
    pub target: TargetId,
    /// How long it rings before the hunt moves on (等待时间).
    #[serde(with = "duration_ms")]
    pub ring_timeout: Duration,
    /// Weight for [`Strategy::Weighted`] (default 1).
    pub weight: u32,
}

/// An ordered set of members rung together or in turn.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The group's name within its plan.
    pub name: String,
    /// `plan/group`: the key of this group's round-robin cursor in [`crate::Live`].
    pub key: Box<str>,
    /// Sequential or simultaneous.
    pub mode: Mode,
    /// Distribution strategy.
    pub strategy: Strategy,
    /// Members in configured order (1..=[`MAX_MEMBERS`]).
    pub members: Vec<Member>,
}

/// When a member's ring timer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RingFrom {
    /// From sending the INVITE.
    Invite,
    /// From the first provisional 18x (ringing) response.
    First18x,
}

/// Why a branch failed, as far as moving on is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// 486 / 600 (遇忙).
    Busy,
    /// Ring timeout expired, or 480 / 408 (无应答).
    NoAnswer,
    /// Transport error, timer B/F, 5xx, 404/410.
    Unreachable,
    /// Any other 4xx / 603.
    Rejected,
}

/// The set of causes on which the hunt moves to the next member or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdvanceOn {
    /// Move on when busy.
    pub busy: bool,
    /// Move on when not answered.
    pub no_answer: bool,
    /// Move on when unreachable.
    pub unreachable: bool,
    /// Move on when rejected.
    pub rejected: bool,
}

impl AdvanceOn {
    /// All four causes.
    pub const ALL: AdvanceOn = AdvanceOn {
        busy: true,
        no_answer: true,
        unreachable: true,
        rejected: true,
    };

    /// Whether `cause` moves the hunt on.
    pub fn contains(&self, cause: Cause) -> bool {
        match cause {
            Cause::Busy => self.busy,
            Cause::NoAnswer => self.no_answer,
            Cause::Unreachable => self.unreachable,
            Cause::Rejected => self.rejected,
        }
    }
}

/// What the caller gets when every group failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// The best of the targets' own final responses (RFC 3261 §16.7: 6xx first, then the
    /// lowest class); 480 when no target answered at all. The default.
    BestResponse,
    /// Answer with this SIP status.
    Code(u16),
    /// Send the call to a final target (voicemail, announcement).
    Target(TargetId),
}

/// What to do with early media (183 with SDP) from targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyMedia {
    /// Relay provisional responses with SDP to the caller.
    Relay,
    /// Relay 180 without SDP only.
    Suppress,
}

/// What to do with a member whose target is already at `max_concurrent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTargetBusyLocal {
    /// Skip it silently and go to the next member.
    Skip,
    /// Treat it as a busy response (subject to `advance_on`).
    TreatAsBusy,
}

/// How a call is hunted.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The plan's name.
    pub name: String,
    /// Groups tried one after another (1..=[`MAX_GROUPS`]).
    pub groups: Vec<Group>,
    /// When ring timers start.
    pub ring_from: RingFrom,
    /// Which failures move the hunt on; any other ends it with `on_fail`.
    pub advance_on: AdvanceOn,
    /// Overall cap on the caller's wait before an answer.
    #[serde(with = "opt_duration_ms")]
    pub wait_cap: Option<Duration>,
    /// What the caller gets when everything failed.
    pub on_fail: Fallback,
    /// When the hunt ends unanswered, the destination for the cause of the last failure
    /// (the wait cap counts as no answer), before `on_fail`.
    pub forward_on: ForwardOn,
    /// When the wait cap ends the hunt, the `on_fail` target is not tried either (the
    /// caller gets 480 at the cap). Default false: the cap ends the hunt, then `on_fail` runs.
    pub wait_cap_skips_on_fail: bool,
    /// Early media handling.
    pub early_media: EarlyMedia,
    /// Longest allowed call after answer (the server sends BYE both ways).
    #[serde(with = "opt_duration_ms")]
    pub max_duration: Option<Duration>,
    /// Members at their concurrency limit: skip, or count as busy.
    pub on_target_busy_local: OnTargetBusyLocal,
}

/// Whether a number takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Routing normally.
    Active,
    /// Answered with 480.
    Suspended,
}

/// A weekday bitmask, bit 0 = Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Weekdays(pub u8);

impl Weekdays {
    /// Whether `day` is in the set.
    pub fn contains(self, day: jiff::civil::Weekday) -> bool {
        let bit = day.to_monday_zero_offset();
        self.0 & (1 << bit) != 0
    }
}

/// A time-of-day range in minutes since midnight, end exclusive; `end <= start` wraps past
/// midnight (22:00-06:00). `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TimeRange {
    /// Start minute, 0..1440.
    pub start: u16,
    /// End minute (exclusive), 0..=1440.
    pub end: u16,
}

impl TimeRange {
    /// Whether the range crosses midnight.
    pub fn overnight(&self) -> bool {
        self.end <= self.start
    }
}

impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A province, or a province and city, to match a caller's region against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RegionPattern {
    /// Province or city name; matches either field when `city` is `None`.
    pub name: Box<str>,
    /// When set, `name` is the province and this must equal the city.
    pub city: Option<Box<str>>,
}

impl RegionPattern {
    /// Whether `region` matches.
    pub fn matches(&self, region: &Region) -> bool {
        match &self.city {
            Some(c) => region.province == &*self.name && region.city == &**c,
            None => region.province == &*self.name || region.city == &*self.name,
        }
    }
}

impl std::fmt::Display for RegionPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.city {
            Some(c) => write!(f, "{}/{}", self.name, c),
            None => f.write_str(&self.name),
        }
    }
}

/// A rule: first match wins.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The rule's name (or `rules[i]`).
    pub name: String,
    /// When it matches.
    pub when: Conditions,
    /// The plan used when it matches.
    pub plan: PlanId,
}

/// A set of caller patterns: exact numbers, prefixes (号段 are 7-digit prefixes), area codes,
/// regions, and references to named lists.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    /// FNV keys of exact normalised numbers (see [`crate::number::caller_key`]).
    pub exact: HashSet<u64>,
    /// The exact numbers as written (normalised), for explanations.
    pub exact_names: Vec<Box<str>>,
    /// Prefixes of the normalised number, sorted.
    pub prefixes: Vec<Box<str>>,
    /// Fixed-line area codes with their `0`.
    pub area_codes: Vec<Box<str>>,
    /// Regions.
    pub regions: Vec<RegionPattern>,
    /// Named lists included by reference.
    pub lists: Vec<ListId>,
}

/// Which entry of a list matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ListHit<'t> {
    /// An exact number.
    Exact,
    /// A number prefix / 号段.
    Prefix(&'t str),
    /// An area code.
    AreaCode(&'t str),
    /// A region.
    Region(&'t RegionPattern),
    /// A named list (by name).
    Named(&'t str),
}

impl std::fmt::Display for ListHit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListHit::Exact => f.write_str("exact number"),
            ListHit::Prefix(p) => write!(f, "prefix {p}"),
            ListHit::AreaCode(a) => write!(f, "area code {a}"),
            ListHit::Region(r) => write!(f, "region {r}"),
            ListHit::Named(n) => write!(f, "list {n}"),
        }
    }
}

impl ListSet {
    /// Whether the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.prefixes.is_empty()
            && self.area_codes.is_empty()
            && self.regions.is_empty()
            && self.lists.is_empty()
    }

    /// Add an exact normalised number.
    pub fn add_exact(&mut self, normalized: &str) {
        self.exact.insert(caller_key(normalized));
        self.exact_names.push(normalized.into());
    }

    /// The first entry matching `caller` (own entries first, then referenced lists, one level).
    pub fn hit<'t>(
        &'t self,
        table_lists: &'t [NamedList],
        caller: &Caller,
        region: Option<&Region>,
    ) -> Option<ListHit<'t>> {
        if let Some(h) = self.own_hit(caller, region) {
            return Some(h);
        }
        for id in &self.lists {
            if let Some(l) = table_lists.get(id.0 as usize) {
                if l.set.own_hit(caller, region).is_some() {
                    return Some(ListHit::Named(&l.name));
                }
            }
        }
        None
    }

    fn own_hit<'t>(&'t self, caller: &Caller, region: Option<&Region>) -> Option<ListHit<'t>> {
        let n = caller.normalized_bytes();
        if n.is_empty() {
            return None;
        }
        if self.exact.contains(&caller.key()) {
            return Some(ListHit::Exact);
        }
        for p in &self.prefixes {
            if n.starts_with(p.as_bytes()) {
                return Some(ListHit::Prefix(p));
            }
        }
        if let Some(ac) = caller.area_code() {
            if let Some(a) = self.area_codes.iter().find(|a| &***a == ac) {
                return Some(ListHit::AreaCode(a));
            }
        }
        if let Some(r) = region {
            if let Some(p) = self.regions.iter().find(|p| p.matches(r)) {
                return Some(ListHit::Region(p));
            }
        }
        None
    }
}

/// A named caller list shared across numbers (`[lists.NAME]`).
#[derive(Debug, Clone)]
pub struct NamedList {
    /// The list's name.
    pub name: String,
    /// Members are VIPs: matched by `vip = true` rules and exempt from rate limits.
    pub vip: bool,
    /// The entries (its `lists` references are ignored: one level only).
    pub set: ListSet,
}

/// Black and white lists of a number, or the global ones.
#[derive(Debug, Clone, Default)]
pub struct Screening {
    /// Callers refused.
    pub black: ListSet,
    /// Callers always let through (exempt from the blacklist and rate limits).
    pub white: ListSet,
    /// Only whitelisted callers get through.
    pub whitelist_only: bool,
    /// Code for blocked callers (default 603).
    pub blocked_code: u16,
    /// Callers without a usable number; `None`: the global policy (allow when none).
    pub anonymous: Option<AnonymousPolicy>,
}

/// What happens to a call whose caller has no usable number (`anonymous@anonymous.invalid`,
/// `restricted`, an empty or malformed From user): 匿名来电. Whatever the policy, such calls
/// count as one caller (`ANONYMOUS_CALLER_KEY`) in the anti-harassment limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum AnonymousPolicy {
    /// Screened and routed like any call (the default).
    #[default]
    Allow,
    /// Refused with this code (default 433 Anonymity Disallowed, RFC 5079).
    Reject {
        /// SIP code.
        code: u16,
    },
    /// Routed to this plan, whatever the rules say.
    Plan {
        /// The plan.
        plan: PlanId,
    },
}

/// The one rate-limit key every anonymous caller shares: they cannot get around the
/// anti-harassment limits by hiding their number.
pub const ANONYMOUS_CALLER_KEY: u64 = 0x616e_6f6e_796d_6f75;

/// One call-rate window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateWindow {
    /// Calls allowed per window.
    pub calls: u32,
    /// Window length.
    #[serde(with = "duration_ms")]
    pub window: Duration,
}

/// Anti-harassment limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Per (caller, number).
    pub per_caller_number: Option<RateWindow>,
    /// Per caller across all numbers.
    pub per_caller: Option<RateWindow>,
    /// How long a caller over a limit stays blocked.
    #[serde(with = "duration_ms")]
    pub block_for: Duration,
    /// Code for blocked callers (default 603).
    pub code: u16,
}

/// A configured 400 number.
#[derive(Debug, Clone)]
pub struct NumberEntry {
    /// The number.
    pub number: Number400,
    /// The owning company's key.
    pub company: String,
    /// Carrier, from the prefix.
    pub carrier: Carrier,
    /// Time zone rules are evaluated in (default Asia/Shanghai).
    pub tz: TimeZone,
    /// The time zone's name.
    pub tz_name: String,
    /// Active or suspended.
    pub status: Status,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Plan used when no rule matches.
    pub default_plan: PlanId,
    /// Per-number black/white lists.
    pub screening: Screening,
    /// Anti-harassment limits (number's own, else the global ones).
    pub rate: Option<RateLimit>,
    /// What the company's phones show as the caller, unless a target says otherwise.
    pub caller_id: CallerId,
}

/// Everything [`RouteTable::from_parts`] needs; built by `hotline-config`.
#[derive(Debug, Default)]
pub struct TableParts {
    /// Config generation (increments on every successful reload).
    pub generation: u64,
    /// Hex SHA-256 of the source files.
    pub hash: String,
    /// Numbers.
    pub numbers: Vec<NumberEntry>,
    /// Targets; `targets[i].id == TargetId(i)`.
    pub targets: Vec<Target>,
    /// Plans; indexed by [`PlanId`].
    pub plans: Vec<Plan>,
    /// Named lists; indexed by [`ListId`].
    pub lists: Vec<NamedList>,
    /// Global black/white lists.
    pub global: Screening,
    /// Holiday calendar.
    pub calendar: Calendar,
    /// Code for callers from abroad (default 403).
    pub abroad_code: u16,
}

/// The compiled routing snapshot. Immutable; share it behind an `Arc` and swap it whole.
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) parts: TableParts,
    pub(crate) by_number: HashMap<Number400, u32>,
    pub(crate) regions: &'static RegionDb,
}

impl RouteTable {
    /// Index the parts. Duplicate numbers keep the first entry (the compiler reports them).
    pub fn from_parts(parts: TableParts) -> RouteTable {
        let mut by_number = HashMap::with_capacity(parts.numbers.len());
        for (i, n) in parts.numbers.iter().enumerate() {
            by_number.entry(n.number).or_insert(i as u32);
        }
        RouteTable {
            parts,
            by_number,
            regions: RegionDb::embedded(),
        }
    }

    /// An empty table (every number is unknown).
    pub fn empty() -> RouteTable {
        RouteTable::from_parts(TableParts {
            abroad_code: 403,
            ..TableParts::default()
        })
    }

    /// Config generation this table was built from.
    pub fn generation(&self) -> u64 {
        self.parts.generation
    }

    /// Hex SHA-256 of the config source.
    pub fn hash(&self) -> &str {
        &self.parts.hash
    }

    /// Number of 400 numbers.
    pub fn len(&self) -> usize {
        self.parts.numbers.len()
    }

    /// Whether the table has no numbers.
    pub fn is_empty(&self) -> bool {
        self.parts.numbers.is_empty()
    }

    /// A target by id. Panics on an id from another table (ids are table-local; an invariant
    /// of the caller, never of input).
    pub fn target(&self, id: TargetId) -> &Target {
        &self.parts.targets[id.0 as usize]
    }

    /// A target by id, or `None` for an id out of range.
    pub fn try_target(&self, id: TargetId) -> Option<&Target> {
        self.parts.targets.get(id.0 as usize)
    }

    /// All targets.
    pub fn targets(&self) -> &[Target] {
        &self.parts.targets
    }

    /// A target by name.
    pub fn target_by_name(&self, name: &str) -> Option<&Target> {
        self.parts.targets.iter().find(|t| t.name == name)
    }

    /// A plan by id (ids from this table's rules).
    pub fn plan(&self, id: PlanId) -> Option<&Plan> {
        self.parts.plans.get(id.0 as usize)
    }

    /// All plans.
    pub fn plans(&self) -> &[Plan] {
        &self.parts.plans
    }

    /// A configured number.
    pub fn number(&self, n: Number400) -> Option<&NumberEntry> {
        let i = *self.by_number.get(&n)?;
        self.parts.numbers.get(i as usize)
    }

    /// All numbers, in config order.
    pub fn numbers(&self) -> &[NumberEntry] {
        &self.parts.numbers
    }

    /// Named lists.
    pub fn lists(&self) -> &[NamedList] {
        &self.parts.lists
    }

    /// Global black/white lists.
    pub fn global_screening(&self) -> &Screening {
        &self.parts.global
    }

    /// The holiday calendar.
    pub fn calendar(&self) -> &Calendar {
        &self.parts.calendar
    }

    /// The region tables.
    pub fn regions(&self) -> &'static RegionDb {
        self.regions
    }

    /// Rough heap size of the table in bytes (not counting the shared region tables).
    pub fn approx_heap_bytes(&self) -> usize {
        let p = &self.parts;
        let numbers: usize = p
            .numbers
            .iter()
            .map(|n| {
                std::mem::size_of::<NumberEntry>()
                    + n.company.capacity()
                    + n.rules.capacity() * std::mem::size_of::<Rule>()
            })
            .sum();
        let targets: usize = p
            .targets
            .iter()
            .map(|t| std::mem::size_of::<Target>() + t.name.capacity() + t.uri.capacity())
            .sum();
        numbers
            + targets
            + p.plans.len() * std::mem::size_of::<Plan>()
            + self.by_number.capacity() * (std::mem::size_of::<Number400>() + 4)
    }
}

pub(crate) mod duration_ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

pub(crate) mod opt_duration_ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
}
