//! The raw TOML schema: what serde reads, before validation. Every struct denies unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A map whose keys carry their source span. Values are not `Spanned`: toml 0.8 cannot give
/// spans for implicit tables (`[a.b]` without `[a]`), so errors about a whole table point at
/// its key.
pub type SpannedMap<T> = BTreeMap<Spanned<String>, T>;

/// One value or a list of them (`time = "09:00-18:00"` or `time = ["..", ".."]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A duration: `"20s"`, `"500ms"`, `"2m"`, `"1h"`, or an integer number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationRaw {
    Seconds(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub include: Option<Spanned<Vec<String>>>,
    pub server: Option<RawServer>,
    pub cluster: Option<crate::cluster::RawCluster>,
    pub calendar: Option<RawCalendar>,
    pub screening: Option<RawScreening>,
    #[serde(default)]
    pub gateways: SpannedMap<RawGateway>,
    #[serde(default)]
    pub targets: SpannedMap<RawTarget>,
    #[serde(default)]
    pub plans: SpannedMap<RawPlan>,
    #[serde(default)]
    pub lists: SpannedMap<RawList>,
    #[serde(default)]
    pub companies: SpannedMap<RawCompany>,
    #[serde(default)]
    pub numbers: SpannedMap<RawNumber>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Vec<Spanned<String>>>,
    pub log_level: Option<Spanned<String>>,
    pub unknown_sources: Option<UnknownSourcesRaw>,
    pub workers: Option<Spanned<i64>>,
    pub coalesce_us: Option<Spanned<i64>>,
    pub admin: Option<Spanned<String>>,
    pub sip: Option<RawSip>,
    pub cdr: Option<RawCdr>,
    pub billing: Option<RawBilling>,
    pub api: Option<RawApi>,
    #[serde(default)]
    pub trunks: Vec<Spanned<RawTrunk>>,
}

/// `[server.api]`: the company API and web console (docs/API.md). Absent = off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: Spanned<String>,
    pub tokens: Spanned<String>,
    pub audit_log: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub allow_sip_uri: Option<bool>,
    pub gateway: Option<Spanned<String>>,
    pub console: Option<bool>,
}

/// `[server.billing]`: prepaid enforcement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBilling {
    pub file: Spanned<String>,
    pub refuse_code: Option<Spanned<i64>>,
    pub low_balance: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSip {
    pub t1: Option<Spanned<DurationRaw>>,
    pub t2: Option<Spanned<DurationRaw>>,
    pub t4: Option<Spanned<DurationRaw>>,
    pub max_message_bytes: Option<Spanned<i64>>,
    pub tcp_idle_timeout: Option<Spanned<DurationRaw>>,
    pub tcp_header_timeout: Option<Spanned<DurationRaw>>,
    pub tcp_max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSourcesRaw {
    Drop,
    Reject,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdrFormatRaw {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotateRaw {
    Hourly,
    Daily,
    Never,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCdr {
    pub dir: Option<String>,
    pub format: Option<CdrFormatRaw>,
    pub fsync_interval: Option<Spanned<DurationRaw>>,
    pub rotate_bytes: Option<Spanned<i64>>,
    pub rotate_every: Option<RotateRaw>,
    pub ship: Option<RawShip>,
}

/// `[server.cdr.ship]`: streaming the CDRs to NATS JetStream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShip {
    pub enabled: Option<Spanned<bool>>,
    pub url: Option<Spanned<OneOrMany<String>>>,
    pub node: Option<Spanned<String>>,
    pub stream: Option<Spanned<String>>,
    pub subject_prefix: Option<Spanned<String>>,
    pub replicas: Option<Spanned<i64>>,
    pub max_age: Option<Spanned<DurationRaw>>,
    pub max_bytes: Option<Spanned<i64>>,
    pub duplicate_window: Option<Spanned<DurationRaw>>,
    pub batch: Option<Spanned<i64>>,
    pub poll_interval: Option<Spanned<DurationRaw>>,
    pub ack_timeout: Option<Spanned<DurationRaw>>,
    pub retry_max: Option<Spanned<DurationRaw>>,
    pub checkpoint: Option<Spanned<String>>,
}

/// `role = "carrier"` (default) or `"media_server"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkRoleRaw {
    Carrier,
    MediaServer,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrunk {
    pub name: String,
    pub sources: Vec<Spanned<String>>,
    #[serde(default)]
    pub trusted: bool,
    pub role: Option<TrunkRoleRaw>,
    pub max_cps: Option<Spanned<i64>>,
    pub max_calls: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// Replace the embedded calendar with this file (same format as data/cn_holidays.toml).
    pub path: Option<Spanned<String>>,
    /// Extra holiday dates (added to the embedded or file calendar).
    #[serde(default)]
    pub holidays: BTreeMap<Spanned<String>, String>,
    /// Extra make-up workdays.
    #[serde(default)]
    pub workdays: BTreeMap<Spanned<String>, String>,
}

/// The shape of data/cn_holidays.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendarFile {
    #[serde(default)]
    pub holidays: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    pub workdays: BTreeMap<Spanned<String>, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScreening {
    pub blacklist: Option<RawList>,
    pub whitelist: Option<RawList>,
    pub whitelist_only: Option<bool>,
    pub blocked_code: Option<Spanned<i64>>,
    pub abroad_code: Option<Spanned<i64>>,
    pub harassment: Option<RawHarassment>,
    pub anonymous: Option<Spanned<RawAnonymous>>,
}

/// `anonymous = { action = "allow" | "reject" | "plan", code = 433, plan = "NAME" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnonymous {
    pub action: Spanned<AnonymousActionRaw>,
    pub code: Option<Spanned<i64>>,
    pub plan: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousActionRaw {
    Allow,
    Reject,
    Plan,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHarassment {
    pub per_caller_number: Option<Spanned<RawWindow>>,
    pub per_caller: Option<Spanned<RawWindow>>,
    pub block_for: Option<Spanned<DurationRaw>>,
    pub code: Option<Spanned<i64>>,
    /// `harassment = { enabled = false }` on a number switches the global limits off for it.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub calls: i64,
    pub window: Spanned<DurationRaw>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    pub vip: Option<Spanned<bool>>,
    #[serde(default)]
    pub numbers: Vec<Spanned<String>>,
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    pub area_codes: Vec<Spanned<String>>,
    #[serde(default)]
    pub regions: Vec<Spanned<String>>,
    #[serde(default)]
    pub lists: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub address: Spanned<String>,
    /// `udp` (default) or `tcp`: the route table's own `Transport`.
    pub transport: Option<hotline_route::Transport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub uri: Option<Spanned<String>>,
    pub number: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub forward_on: Option<RawForwardOn>,
    pub caller_id: Option<CallerIdRaw>,
}

/// `caller_id = "caller" | "number" | "number_and_caller"` (来电显示).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdRaw {
    Caller,
    Number,
    NumberAndCaller,
}

impl CallerIdRaw {
    pub fn compile(self) -> hotline_route::CallerId {
        match self {
            CallerIdRaw::Caller => hotline_route::CallerId::Caller,
            CallerIdRaw::Number => hotline_route::CallerId::Number,
            CallerIdRaw::NumberAndCaller => hotline_route::CallerId::NumberAndCaller,
        }
    }
}

/// `forward_on = { busy = "a", no_answer = "b", unreachable = "c" }`: target names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardOn {
    pub busy: Option<Spanned<String>>,
    pub no_answer: Option<Spanned<String>>,
    pub unreachable: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeRaw {
    Sequential,
    Simultaneous,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyRaw {
    Linear,
    RoundRobin,
    Random,
    Weighted,
    LeastRecent,
    FewestCalls,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingFromRaw {
    Invite,
    #[serde(rename = "first_18x")]
    First18x,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseRaw {
    Busy,
    NoAnswer,
    Unreachable,
    Rejected,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EarlyMediaRaw {
    Relay,
    Suppress,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyLocalRaw {
    Skip,
    TreatAsBusy,
}

/// `on_fail = 486` or `on_fail = "voicemail"` (a target name).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OnFailRaw {
    Code(i64),
    Target(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub ring_from: Option<RingFromRaw>,
    pub advance_on: Option<Vec<CauseRaw>>,
    pub wait_cap: Option<Spanned<DurationRaw>>,
    pub on_fail: Option<Spanned<OnFailRaw>>,
    pub wait_cap_skips_on_fail: Option<Spanned<bool>>,
    pub forward_on: Option<RawForwardOn>,
    pub early_media: Option<EarlyMediaRaw>,
    pub max_duration: Option<Spanned<DurationRaw>>,
    pub on_target_busy_local: Option<BusyLocalRaw>,
    #[serde(default)]
    pub groups: Vec<Spanned<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Option<String>,
    pub mode: Option<ModeRaw>,
    pub strategy: Option<StrategyRaw>,
    pub ring_timeout: Option<Spanned<DurationRaw>>,
    pub members: Spanned<Vec<RawMember>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMember {
    Name(String),
    Full(RawMemberFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemberFull {
    pub target: String,
    pub ring_timeout: Option<DurationRaw>,
    pub weight: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompany {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusRaw {
    Active,
    Suspended,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNumber {
    pub company: Spanned<String>,
    pub plan: Spanned<String>,
    pub status: Option<StatusRaw>,
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub approved: bool,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    pub screening: Option<RawScreening>,
    pub caller_id: Option<CallerIdRaw>,
    /// Required for a 1010 number; a 400 number's is its prefix.
    pub carrier: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub plan: Spanned<String>,
    pub weekdays: Option<Spanned<OneOrMany<String>>>,
    pub time: Option<Spanned<OneOrMany<String>>>,
    pub dates: Option<Spanned<OneOrMany<String>>>,
    pub day: Option<Spanned<String>>,
    pub region: Option<Spanned<OneOrMany<String>>>,
    pub list: Option<Spanned<OneOrMany<String>>>,
    pub vip: Option<bool>,
    pub key: Option<Spanned<OneOrMany<i64>>>,
}
