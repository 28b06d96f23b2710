//! The record types (schema version 1, documented field by field in docs/cdr.md) and id helpers.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;

/// Schema version written into every JSON Lines record (`"v":1`) and documented for the CSV header.
pub const SCHEMA_VERSION: u32 = 1;

/// One record per call (an INVITE to a 400 number, whatever its outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Stable unique id, see [`RecordIds`]: `<node>-<unix ms>-<seq>`.
    pub record_id: String,
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// The called 400 number, 10 digits.
    pub number: String,
    /// Subscriber (company) owning the 400 number.
    pub company: String,
    /// Carrier of the 400 number (联通 / 移动 / 电信).
    pub carrier: String,
    /// Caller number, normalized (national form, digits only).
    pub caller: String,
    /// Caller number as received (From user part).
    pub caller_raw: String,
    /// Caller province (empty if unknown).
    pub caller_province: String,
    /// Caller city (empty if unknown).
    pub caller_city: String,
    /// Inbound trunk name.
    pub trunk: String,
    /// INVITE received.
    pub start: Timestamp,
    /// First 180/183 relayed to the caller.
    pub first_ring: Option<Timestamp>,
    /// 200 OK relayed to the caller.
    pub answer: Option<Timestamp>,
    /// Call over (BYE, final failure response, CANCEL completed).
    pub end: Timestamp,
    /// Target that answered (SIP URI), empty if none.
    pub answered_target: String,
    /// Final SIP status code sent to the caller (200 for answered calls).
    pub final_code: u16,
    /// Reason phrase / cause text.
    pub reason: String,
    /// Who hung up.
    pub hangup_side: HangupSide,
    /// Outcome class.
    pub disposition: Disposition,
    /// Name of the routing rule that matched (empty if none).
    pub matched_rule: String,
    /// Configuration generation the call was routed with.
    pub config_generation: u64,
    /// Hash of that configuration.
    pub config_hash: String,
    /// Number of hunt attempts made (attempt records carry indexes 1..=attempts).
    pub attempts: u32,
}

/// One record per hunt attempt (branch) of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Stable unique id, see [`attempt_record_id`]: `<call record id>-a<attempt>`.
    pub record_id: String,
    /// [`CallRecord::record_id`] of the call this attempt belongs to.
    pub call_record_id: String,
    /// SIP Call-ID of the inbound leg.
    pub call_id: String,
    /// Attempt index, from 1.
    pub attempt: u32,
    /// Target SIP URI.
    pub target: String,
    /// INVITE sent to the target.
    pub start: Timestamp,
    /// First 180/183 from the target.
    pub first_ring: Option<Timestamp>,
    /// 200 OK from the target.
    pub answer: Option<Timestamp>,
    /// Attempt over.
    pub end: Timestamp,
    /// Final SIP status from the target (0 if none, e.g. timeout).
    pub code: u16,
    /// Why the attempt ended.
    pub reason: AttemptReason,
    /// The called 400 number (the call's `number`), so an attempt can be routed and filtered
    /// by number on its own (the CDR shipper's subject). Empty in files written before the
    /// column existed.
    pub number: String,
}

/// What the writer accepts.
// Not boxed: a record is built once and moved into the channel; boxing would add an allocation
// per record on the call path to save a memcpy.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Call(CallRecord),
    Attempt(AttemptRecord),
}

impl Record {
    /// The record's time for rotation and the manifest: its `end` (completion time).
    pub fn end(&self) -> Timestamp {
        match self {
            Record::Call(c) => c.end,
            Record::Attempt(a) => a.end,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::Call(_) => Kind::Call,
            Record::Attempt(_) => Kind::Attempt,
        }
    }
}

/// Which stream a record belongs to; each kind has its own files (`calls-*`, `attempts-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Call,
    Attempt,
}

impl Kind {
    /// File name prefix: `calls` / `attempts`.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Kind::Call => "calls",
            Kind::Attempt => "attempts",
        }
    }

    /// Value of the JSON Lines `kind` field: `call` / `attempt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Attempt => "attempt",
        }
    }
}

fn millis_between(from: Timestamp, to: Timestamp) -> u64 {
    let d = to.as_millisecond().saturating_sub(from.as_millisecond());
    u64::try_from(d).unwrap_or(0)
}

impl CallRecord {
    /// Ringing time in ms: first ring to answer (or to end if unanswered); 0 without a ring.
    pub fn ring_ms(&self) -> u64 {
        match self.first_ring {
            Some(r) => millis_between(r, self.answer.unwrap_or(self.end)),
            None => 0,
        }
    }

    /// Talk time in ms: answer to end; 0 if unanswered.
    pub fn talk_ms(&self) -> u64 {
        self.answer.map_or(0, |a| millis_between(a, self.end))
    }

    /// Talk time in seconds (ms precision), for display.
    pub fn talk_seconds(&self) -> f64 {
        self.talk_ms() as f64 / 1000.0
    }

    /// Ring time in seconds (ms precision), for display.
    pub fn ring_seconds(&self) -> f64 {
        self.ring_ms() as f64 / 1000.0
    }

    /// Billable minutes: every started minute of talk time counts (61 s -> 2 min, 0 s -> 0).
    pub fn billable_minutes(&self) -> u64 {
        self.talk_ms().div_ceil(60_000)
    }

    /// A record with every field empty / zero and all timestamps at `at`; handy for building
    /// records field by field and for decoders that fill a reused record.
    pub fn empty(at: Timestamp) -> CallRecord {
        CallRecord {
            record_id: String::new(),
            call_id: String::new(),
            number: String::new(),
            company: String::new(),
            carrier: String::new(),
            caller: String::new(),
            caller_raw: String::new(),
            caller_province: String::new(),
            caller_city: String::new(),
            trunk: String::new(),
            start: at,
            first_ring: None,
            answer: None,
            end: at,
            answered_target: String::new(),
            final_code: 0,
            reason: String::new(),
            hangup_side: HangupSide::None,
            disposition: Disposition::Failed,
            matched_rule: String::new(),
            config_generation: 0,
            config_hash: String::new(),
            attempts: 0,
        }
    }
}

impl AttemptRecord {
    pub fn ring_ms(&self) -> u64 {
        match self.first_ring {
            Some(r) => millis_between(r, self.answer.unwrap_or(self.end)),
            None => 0,
        }
    }

    pub fn talk_ms(&self) -> u64 {
        self.answer.map_or(0, |a| millis_between(a, self.end))
    }

    pub fn empty(at: Timestamp) -> AttemptRecord {
        AttemptRecord {
            record_id: String::new(),
            call_record_id: String::new(),
            call_id: String::new(),
            attempt: 0,
            target: String::new(),
            start: at,
            first_ring: None,
            answer: None,
            end: at,
            code: 0,
            reason: AttemptReason::Error,
            number: String::new(),
        }
    }
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The spelling used in files and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }

            /// Inverse of [`Self::as_str`].
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Who ended the call.
    HangupSide {
        Caller => "caller",
        Callee => "callee",
        /// Hotline itself (timeout, prepaid cut-off, shutdown).
        System => "system",
        /// The call never connected.
        None => "none",
    }
);

str_enum!(
    /// Outcome class of a call.
    Disposition {
        Answered => "answered",
        Busy => "busy",
        NoAnswer => "no-answer",
        Failed => "failed",
        /// Refused by a black/white list.
        BlockedList => "blocked-list",
        /// Refused by a rate limit.
        BlockedRate => "blocked-rate",
        /// Caller hung up before an answer.
        Cancelled => "cancelled",
        /// Refused by a concurrency / prepaid limit.
        Limit => "limit",
    }
);

impl Disposition {
    /// A missed call: the caller wanted to talk and nobody answered
    /// (busy, no-answer, failed, cancelled, limit); blocked calls are not "missed".
    pub fn is_missed(self) -> bool {
        matches!(
            self,
            Disposition::Busy
                | Disposition::NoAnswer
                | Disposition::Failed
                | Disposition::Cancelled
                | Disposition::Limit
        )
    }
}

str_enum!(
    /// Why a hunt attempt ended.
    AttemptReason {
        Answered => "answered",
        Timeout => "timeout",
        Busy => "busy",
        Rejected => "rejected",
        Unreachable => "unreachable",
        CancelledByHunt => "cancelled-by-hunt",
        CancelledByCaller => "cancelled-by-caller",
        LimitReached => "limit-reached",
        Redirected => "redirected",
        Error => "error",
    }
);

/// Makes record ids `<node>-<unix ms>-<seq>`: unique per process (the sequence never repeats)
/// and across processes as long as node names differ. Thread-safe; share it by reference or `Arc`.
#[derive(Debug)]
pub struct RecordIds {
    node: String,
    seq: AtomicU64,
}

impl RecordIds {
    /// `node` should be a short name unique among writers of one CDR directory (host name, ...).
    /// Characters other than `[A-Za-z0-9_.]` are replaced by `_` so ids stay CSV/URL friendly.
    pub fn new(node: &str) -> RecordIds {
        let node: String = node
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        RecordIds {
            node,
            seq: AtomicU64::new(1),
        }
    }

    /// A new call record id stamped with `now`.
    pub fn next(&self, now: Timestamp) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{}", self.node, now.as_millisecond(), seq)
    }
}

/// The id of attempt `attempt` (from 1) of call `call_record_id`: `<call record id>-a<attempt>`.
pub fn attempt_record_id(call_record_id: &str, attempt: u32) -> String {
    format!("{call_record_id}-a{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_minutes() {
        let t0 = Timestamp::from_millisecond(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut c = CallRecord::empty(t0);
        c.first_ring = Some(t0);
        c.answer = Some(Timestamp::from_millisecond(1_002_500).unwrap_or(t0));
        c.end = Timestamp::from_millisecond(1_063_501).unwrap_or(t0);
        assert_eq!(c.ring_ms(), 2_500);
        assert_eq!(c.talk_ms(), 61_001);
        assert_eq!(c.billable_minutes(), 2);
        c.end = Timestamp::from_millisecond(1_062_500).unwrap_or(t0);
        assert_eq!(c.billable_minutes(), 1);
        c.answer = None;
        assert_eq!(c.talk_ms(), 0);
        assert_eq!(c.billable_minutes(), 0);
        assert_eq!(c.ring_ms(), 62_500);
    }

    #[test]
    fn ids_are_unique_and_sanitized() {
        let ids = RecordIds::new("node 1/x");
        let t = Timestamp::UNIX_EPOCH;
        let a = ids.next(t);
        let b = ids.next(t);
        assert_ne!(a, b);
        assert_eq!(a, "node_1_x-0-1");
        assert_eq!(attempt_record_id(&a, 3), "node_1_x-0-1-a3");
    }

    #[test]
    fn enum_round_trip() {
        for d in Disposition::ALL {
            assert_eq!(Disposition::parse(d.as_str()), Some(*d));
        }
        for r in AttemptReason::ALL {
            assert_eq!(AttemptReason::parse(r.as_str()), Some(*r));
        }
        for h in HangupSide::ALL {
            assert_eq!(HangupSide::parse(h.as_str()), Some(*h));
        }
        assert_eq!(Disposition::parse("nope"), None);
    }
}
