//! What the client's calls ask and answer (plain data).

use hotline_route::{Needs, RateVerdict, TargetStats};

/// The identity of an INVITE across nodes: a carrier's retry of it carries the same three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteKey {
    /// Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// CSeq number.
    pub cseq: u32,
}

/// What the duplicate claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First sight of this INVITE: it is this node's.
    New,
    /// This node claimed it before (a retransmission).
    Mine,
    /// Another node, alive, has this INVITE: do not start a second call.
    Duplicate {
        /// That node.
        owner: String,
    },
    /// Another node had it but is dead: the call is now this node's.
    TakeOver {
        /// The dead node.
        owner: String,
    },
}

/// A trunk's limits for a new call from it, shared by the nodes.
#[derive(Debug, Clone, Copy)]
pub struct TrunkAsk<'a> {
    /// The trunk's name.
    pub name: &'a str,
    /// `max_cps`.
    pub max_cps: Option<u32>,
    /// `max_calls` (a lease per call, like a target's slot).
    pub max_calls: Option<u32>,
    /// The call (owner of the lease).
    pub call_id: &'a str,
}

/// What a trunk's shared limits said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkVerdict {
    /// Admitted (and counted; the `max_calls` lease, if any, is held).
    Admit,
    /// Over `max_cps`.
    Cps,
    /// At `max_calls`.
    Calls,
}

/// One routing decision's questions (see `hotline_route::Recorder`) plus the INVITE claim.
#[derive(Debug, Clone, Copy)]
pub struct Decide<'a> {
    /// Claim the INVITE against duplicates on other nodes.
    pub invite: Option<&'a InviteKey>,
    /// The trunk's shared limits.
    pub trunk: Option<TrunkAsk<'a>>,
    /// Rate windows, cursors, counters the decision asked for.
    pub needs: &'a Needs,
    /// Wall clock, ms since the Unix epoch.
    pub now_ms: i64,
}

/// The answers, in the order of the questions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decided {
    /// The claim, if one was asked for.
    pub claim: Option<Claim>,
    /// The trunk's verdict, if asked for.
    pub trunk: Option<TrunkVerdict>,
    /// One verdict per rate question.
    pub rates: Vec<RateVerdict>,
    /// Cursor before the advance, per group key.
    pub cursors: Vec<(Box<str>, u64)>,
    /// Counters per target.
    pub stats: Vec<(Box<str>, TargetStats)>,
}

/// The answer to a claim of a call's end ([`RedisState::dialog_end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEnd {
    /// The end is this node's: write the CDR (`record` is the published one).
    Claimed {
        /// The CDR as published at the answer (a JSON line).
        record: Vec<u8>,
        /// The caller's From tag.
        caller_tag: String,
        /// The node that published it.
        owner: String,
    },
    /// Not this node's to end: another node ended it (and wrote the CDR) or took it over.
    NotHere,
    /// Redis does not know the call (it restarted empty): the owner writes its own CDR.
    Lost,
}

/// A call taken over from a dead node ([`RedisState::adopt`]): this node's from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The call's Call-ID.
    pub call_id: String,
    /// The new fencing token (this node's).
    pub fence: u64,
    /// The CDR as published at the answer (a JSON line).
    pub record: Vec<u8>,
    /// The caller's From tag.
    pub caller_tag: String,
    /// The other fields published with the call ([`RedisState::dialog_put`]'s `fields`).
    pub fields: Vec<(String, Vec<u8>)>,
}

impl Adopted {
    /// A published field.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A prepaid question ([`RedisState::prepaid_reserve`]).
#[derive(Debug, Clone, Copy)]
pub struct PrepaidAsk<'a> {
    /// The prepaid 400 number.
    pub number: &'a str,
    /// The call reserving, or `None` to ask only (is a minute available?).
    pub call_id: Option<&'a str>,
    /// Credit asked for (fen).
    pub slice_fen: i64,
    /// When the slice lapses unless renewed or settled (ms since the epoch).
    pub expires_ms: i64,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// The account's balance without the usage of `month` (fen): computed by the node from
    /// the usage of the other months (closed months, minimum charges, top-ups).
    pub base_fen: i64,
    /// The plan's rate (fen per started minute).
    pub rate_fen: i64,
    /// This month, `YYYY-MM`.
    pub month: &'a str,
}

/// The answer to a [`PrepaidAsk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepaidAnswer {
    /// The slice is reserved.
    pub granted: bool,
    /// Credit available before this reservation (fen).
    pub available_fen: i64,
    /// Every node's usage: (month `YYYY-MM`, node, minutes).
    pub usage: Vec<(String, String, u64)>,
}

/// What became of a call this node published ([`RedisState::dialog_fates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogFate {
    /// Still this node's.
    Ours,
    /// Ended by a BYE through another node, or taken over by one: let it go, no CDR here.
    Gone,
    /// Redis does not know it (restarted empty): publish it again.
    Missing,
}

/// What a node publishes about itself (`hotline status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `[cluster] node`.
    pub node: String,
    /// Its SIP address.
    pub sip: String,
    /// Hash of the config it runs.
    pub config_hash: String,
    /// Config generation.
    pub generation: u64,
    /// Hotline version.
    pub version: String,
    /// Last heartbeat, ms since the Unix epoch.
    pub seen_ms: i64,
    /// Whether its heartbeat is current.
    pub alive: bool,
}
