//! The user's decision for a call: a [`ForkPlan`] of targets in groups, what moves the hunt
//! on ([`Advance`], forwards [`ByCause`]), what the callees are shown ([`Presentation`],
//! [`Diversion`]), and how a branch ended ([`Outcome`]).

use std::time::Duration;

use bytes::Bytes;

use super::Peer;

/// One target of a fork plan.
#[derive(Debug, Clone)]
pub struct BranchTarget {
    /// The Request-URI to send.
    pub uri: Bytes,
    /// Where to send it.
    pub dest: Peer,
    /// Ring timeout (等待时间) for this branch.
    pub ring_timeout: Duration,
    /// The user's id for the target; echoed in events.
    pub tag: u32,
}

/// A group of targets: rung one after another (`parallel == false`) or all at once.
#[derive(Debug, Clone, Default)]
pub struct ForkGroup {
    pub parallel: bool,
    pub targets: Vec<BranchTarget>,
}

/// Which failure causes move the hunt on to the next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    pub busy: bool,
    pub no_answer: bool,
    pub unreachable: bool,
    pub rejected: bool,
    /// 6xx other than 600 (decline everywhere) also moves on.
    pub global_failure: bool,
}

impl Default for Advance {
    fn default() -> Self {
        Advance {
            busy: true,
            no_answer: true,
            unreachable: true,
            rejected: true,
            global_failure: false,
        }
    }
}

/// What the user decided for an incoming call.
#[derive(Debug, Clone, Default)]
pub struct ForkPlan {
    pub groups: Vec<ForkGroup>,
    /// Ring timers start at the first 18x instead of when the INVITE is sent.
    pub ring_from_18x: bool,
    /// Overall cap on the hunt, from the arrival of the INVITE.
    pub wait_cap: Option<Duration>,
    pub advance: Advance,
    /// Relay 183-with-SDP as a plain 180 while hunting.
    pub suppress_early_media: bool,
    /// Code sent to the caller when everything failed (instead of the best response).
    pub fail_code: Option<u16>,
    /// Tried once when the hunt ends unanswered (all groups failed, a failure that does not
    /// move on, or the wait cap), unless the caller gave up: voicemail, an announcement.
    pub fallback: Option<BranchTarget>,
    /// The wait cap ends the call, skipping `fallback`.
    pub cap_skips_fallback: bool,
    /// Forwards by cause of single targets (by `BranchTarget::tag`): when a branch to that
    /// target fails busy / unanswered / unreachable, its destination is tried next, before
    /// the rest of the hunt and whatever `advance` says. Each is used once per call.
    pub forwards: Vec<(u32, ByCause)>,
    /// When the hunt ends unanswered, the destination for the cause of the last failure (the
    /// wait cap counts as no answer), tried before `fallback`.
    pub fallback_by_cause: ByCause,
    /// What the callees are shown as the caller, unless `caller_id_by_target` says otherwise
    /// for a target (by `BranchTarget::tag`).
    pub caller_id: Presentation,
    pub caller_id_by_target: Vec<(u32, Presentation)>,
    /// Headers added to every forwarded INVITE (Diversion, History-Info ...).
    pub add_headers: Vec<(&'static str, Vec<u8>)>,
    /// Headers removed from forwarded INVITEs (e.g. P-Asserted-Identity from untrusted trunks).
    pub remove_headers: Vec<&'static str>,
    /// Longest talk time: when reached Hotline sends BYE to both sides.
    pub max_duration: Option<Duration>,
    /// Add History-Info (RFC 7044) to each branch: the original Request-URI as index 1, every
    /// earlier target of the hunt as 1.1, 1.2 ... with the response that ended it
    /// (`?Reason=SIP;cause=486`), then this target with the RFC 4458 `cause` that moved the call
    /// to it (RFC 8119's 380, service number translation, for the first), all `mp=1`.
    pub history_info: bool,
    /// Add Diversion (RFC 5806) to each branch: every earlier target with the reason it was
    /// left (most recent first), then the 400 number with `diversion.reason`.
    pub diversion: Option<Diversion>,
    /// A target the gate refuses (at its concurrency limit) counts as busy (486, moving on
    /// only if the plan moves on for busy) instead of being skipped.
    pub limit_is_busy: bool,
}

/// What a branch's callee is shown as the caller (来电显示).
#[derive(Debug, Clone, Default)]
pub struct Presentation {
    /// Rewrite From to `"<display>" <sip:<user>@<hotline>>;tag=<the caller's tag>` (display,
    /// user); `None`: From as received. Responses get the caller's own From back.
    pub from: Option<(Vec<u8>, Vec<u8>)>,
    /// Add this P-Asserted-Identity value (any received one is removed first).
    pub asserted: Option<Vec<u8>>,
    /// Remove any received P-Asserted-Identity (the phone would show it instead of From).
    pub hide_asserted: bool,
}

/// Destinations by failure cause (遇忙 / 无应答 / 不可达转移).
#[derive(Debug, Clone, Default)]
pub struct ByCause {
    /// Busy (486, 600; a target at its limit when the plan counts that as busy).
    pub busy: Option<BranchTarget>,
    /// Ring timeout (or the wait cap).
    pub no_answer: Option<BranchTarget>,
    /// 408, 480, 5xx, timer B, transport error.
    pub unreachable: Option<BranchTarget>,
}

impl ByCause {
    /// The destination for the cause of `outcome`, taken (so it is used once).
    pub(super) fn take_for(&mut self, outcome: Outcome) -> Option<BranchTarget> {
        match outcome {
            Outcome::Busy => self.busy.take(),
            Outcome::NoAnswer => self.no_answer.take(),
            Outcome::Unreachable => self.unreachable.take(),
            _ => None,
        }
    }
}

/// The diverting 400 number of a call's Diversion header (RFC 5806).
#[derive(Debug, Clone)]
pub struct Diversion {
    /// The number as a name-addr, e.g. `<tel:+864008001234>`.
    pub from: Vec<u8>,
    /// Why it diverted to its first target: `unconditional`, or `time-of-day` when a time
    /// rule chose the plan.
    pub reason: &'static str,
}

/// RFC 8119 `cause` value: the request was retargeted by a service number translation (a 400
/// number to a company's phone).
pub const CAUSE_SERVICE_NUMBER: u16 = 380;

/// Why a branch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    /// Ring timeout: Hotline cancelled it.
    NoAnswer,
    Busy,
    Rejected,
    /// 408, 480, 5xx, timer B, transport error.
    Unreachable,
    /// A 6xx other than 600.
    GlobalFailure,
    Redirected,
    /// Cancelled because another branch answered or the hunt moved on.
    CancelledByHunt,
    CancelledByCaller,
    /// The user's gate refused it (concurrency limit).
    LimitReached,
}

impl Outcome {
    pub(super) fn from_code(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::Answered,
            300..=399 => Outcome::Redirected,
            486 | 600 => Outcome::Busy,
            408 | 480 | 500..=599 => Outcome::Unreachable,
            487 => Outcome::NoAnswer,
            601..=699 => Outcome::GlobalFailure,
            _ => Outcome::Rejected,
        }
    }
    /// Why a hunt that moved on after this outcome diverted the call: the RFC 5806
    /// `diversion-reason` and the RFC 4458 `cause` value (the mapping of RFC 7544 §5).
    pub fn diversion_reason(self) -> (&'static str, u16) {
        match self {
            Outcome::Busy | Outcome::LimitReached => ("user-busy", 486),
            Outcome::NoAnswer => ("no-answer", 408),
            Outcome::Unreachable => ("unavailable", 503),
            Outcome::Rejected | Outcome::GlobalFailure | Outcome::Redirected => ("deflection", 480),
            Outcome::Answered | Outcome::CancelledByHunt | Outcome::CancelledByCaller => {
                ("unknown", 404)
            }
        }
    }

    pub(super) fn advances(self, adv: &Advance) -> bool {
        match self {
            Outcome::Busy => adv.busy,
            Outcome::NoAnswer => adv.no_answer,
            Outcome::Unreachable => adv.unreachable,
            // Skipping a target at its limit is not a failure of the hunt.
            Outcome::LimitReached => true,
            Outcome::Rejected | Outcome::Redirected => adv.rejected,
            Outcome::GlobalFailure => adv.global_failure,
            Outcome::Answered | Outcome::CancelledByHunt | Outcome::CancelledByCaller => false,
        }
    }
}
