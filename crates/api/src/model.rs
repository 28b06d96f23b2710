//! Request and response bodies of `/api/v1` (their JSON schema is in the OpenAPI document).
//! Every request body denies unknown fields: a misspelt key is an error with its path, never
//! silently ignored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One problem: where (`path`: a JSON field path for a request body, a TOML key path for a
/// config error), what, and how to fix it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// `groups[0].members[1].target`, or `targets."acme-desk".number` (config).
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The config file and line, for a config error in the company's own file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
            hint: None,
            file: None,
            line: None,
        }
    }

    pub fn hint(mut self, h: impl Into<String>) -> FieldError {
        self.hint = Some(h.into());
        self
    }
}

/// Every error answer: a machine-readable `error`, a sentence, and each problem found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `invalid_body`, `invalid_config`,
    /// `precondition_failed`, `conflict`, `too_many_requests`, `payload_too_large`, `internal`.
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Who a token belongs to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The token's id (in the token file; the audit log names it).
    pub token: String,
    /// `operator` or `company`.
    pub role: String,
    /// The company, for a company token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// A company in the list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanySummary {
    pub id: String,
    pub name: Option<String>,
    /// The TOML file the company's settings are written to.
    pub file: String,
    pub numbers: Vec<String>,
}

/// A company's settings as its file holds them (the TOML tables as JSON), with the file's
/// ETag (also in the `ETag` header).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanyView {
    pub id: String,
    pub name: Option<String>,
    pub file: String,
    pub etag: String,
    /// The config generation running now.
    pub generation: u64,
    /// `numbers."400..."` tables of this company (in any file; `editable` false when not in
    /// the company's file).
    #[schema(value_type = Object)]
    pub numbers: serde_json::Value,
    /// `targets.*` of the company's file (its phones).
    #[schema(value_type = Object)]
    pub targets: serde_json::Value,
    /// `plans.*` of the company's file (hunt groups).
    #[schema(value_type = Object)]
    pub plans: serde_json::Value,
    /// `lists.*` of the company's file (VIP and other caller lists).
    #[schema(value_type = Object)]
    pub lists: serde_json::Value,
    /// Numbers whose table is in another file (operator-managed): read-only here.
    pub read_only_numbers: Vec<String>,
}

/// After a change: the new ETag and the generation the reload produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Changed {
    pub etag: String,
    pub generation: u64,
    pub file: String,
    /// What the reload said.
    pub reload: String,
}

/// A phone (target): a phone number reached through the operator's gateway, or (when
/// allowed) a SIP URI.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// A domestic phone number: mobile `13800138000`, fixed line with area code `01088880000`.
    #[serde(default)]
    pub phone: Option<String>,
    /// `sip:1001@10.0.0.5:5060` (operator, or `[server.api] allow_sip_uri = true`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Operator only: the gateway for `phone` (default `[server.api] gateway`).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Calls this phone may carry at once.
    #[serde(default)]
    pub max_concurrent: Option<i64>,
}

/// Bind a phone into a plan's hunt: the target is created (or replaced) and appended to a
/// group.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindBody {
    /// The target's name; must start with `<company>-`.
    pub name: String,
    #[serde(flatten)]
    pub target: TargetBody,
    /// The plan to add it to.
    pub plan: String,
    /// Which group of the plan (index, default 0).
    #[serde(default)]
    pub group: Option<usize>,
    /// This member's ring time (等待时间), e.g. `"20s"`.
    #[serde(default)]
    pub ring_timeout: Option<String>,
}

/// One member of a hunt group.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    pub target: String,
    #[serde(default)]
    pub ring_timeout: Option<String>,
    #[serde(default)]
    pub weight: Option<i64>,
}

/// A hunt group: members in order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    #[serde(default)]
    pub name: Option<String>,
    /// `sequential` (default) or `simultaneous`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Distribution: `linear`, `round_robin`, `random`, `weighted`, `least_recent`, `fewest_calls`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// The group's ring time per member, e.g. `"20s"`.
    #[serde(default)]
    pub ring_timeout: Option<String>,
    pub members: Vec<MemberBody>,
}

/// The groups of a plan, replacing the old ones (reorder, ring times, strategy, members).
/// The plan's other keys (advance_on, on_fail ...) are kept.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsBody {
    pub groups: Vec<GroupBody>,
}

/// A time / region / VIP / IVR-key rule of a number (first match wins).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    #[serde(default)]
    pub name: Option<String>,
    pub plan: String,
    /// `["mon","tue"]` or `["mon-fri"]`.
    #[serde(default)]
    pub weekdays: Option<Vec<String>>,
    /// `["09:00-12:00","13:30-18:00"]`.
    #[serde(default)]
    pub time: Option<Vec<String>>,
    /// `workday` (holiday calendar with 调休) / `holiday` / `weekend`...
    #[serde(default)]
    pub day: Option<String>,
    #[serde(default)]
    pub dates: Option<Vec<String>>,
    #[serde(default)]
    pub region: Option<Vec<String>>,
    /// Caller lists of the company (`lists.NAME`).
    #[serde(default)]
    pub list: Option<Vec<String>>,
    #[serde(default)]
    pub vip: Option<bool>,
    #[serde(default)]
    pub key: Option<Vec<i64>>,
}

/// A number's routing: the default plan and its rules, in order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    /// When no rule matches.
    pub plan: String,
    pub rules: Vec<RuleBody>,
}

/// Callers by number, prefix (号段), area code or region.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    #[serde(default)]
    pub vip: Option<bool>,
    #[serde(default)]
    pub numbers: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub area_codes: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

/// A number's black and white lists.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningBody {
    #[serde(default)]
    pub blacklist: Option<ListBody>,
    #[serde(default)]
    pub whitelist: Option<ListBody>,
    /// Only whitelisted callers get through.
    #[serde(default)]
    pub whitelist_only: Option<bool>,
}

/// `hotline explain` as a request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    pub number: String,
    /// The caller's number.
    pub from: String,
    /// RFC 3339 (`2026-10-01T09:30+08:00`), a China civil time (`2026-10-01T09:30`); now when absent.
    #[serde(default)]
    pub at: Option<String>,
    /// IVR key.
    #[serde(default)]
    pub key: Option<u8>,
}

/// A call record (来电记录) of one of the company's numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallRow {
    pub record_id: String,
    pub number: String,
    pub caller: String,
    pub province: String,
    pub city: String,
    /// RFC 3339, UTC.
    pub start: String,
    pub answer: Option<String>,
    pub end: String,
    pub disposition: String,
    pub code: u16,
    pub attempts: u32,
    pub target: String,
    pub ring_seconds: f64,
    pub talk_seconds: f64,
}

/// Calls of the company's numbers, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallList {
    /// Matches before `limit`.
    pub matched: u64,
    pub calls: Vec<CallRow>,
}

/// One bucket of the statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bucket {
    pub key: String,
    pub calls: u64,
    pub answered: u64,
    pub missed: u64,
    pub talk_seconds: f64,
}

/// Statistics of the company's calls (the figures of `hotline cdr report`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    pub tz: String,
    pub calls: u64,
    pub answered: u64,
    pub asr: f64,
    pub acd_seconds: f64,
    /// Local hour `00`..`23` (China time).
    pub by_hour: Vec<Bucket>,
    pub by_day: Vec<Bucket>,
    /// By caller province (归属地).
    pub by_region: Vec<Bucket>,
    pub by_number: Vec<Bucket>,
    pub by_target: Vec<Bucket>,
}

/// One audit entry: who changed what.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub at: String,
    /// Token id.
    pub actor: String,
    pub role: String,
    pub company: String,
    pub action: String,
    pub file: String,
    pub etag_before: String,
    pub etag_after: String,
    /// The generation the reload produced.
    pub generation: u64,
    /// The request body as sent (tokens never appear in it).
    #[schema(value_type = Object)]
    pub change: serde_json::Value,
}
