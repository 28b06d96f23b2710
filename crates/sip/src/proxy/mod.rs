//! The transaction-stateful forking proxy core (RFC 3261 §16), sans-IO.
//!
//! [`Proxy`] owns every server and client transaction, the calls being set up and the dialogs
//! that were answered through it. Its user (the I/O shell) feeds it received bytes with
//! [`Proxy::handle_message`], fires timers with [`Proxy::handle_timeout`], drains what to send
//! with [`Proxy::poll_transmit`] and what happened with [`Proxy::poll_event`].
//!
//! A new INVITE produces [`Event::Incoming`]; the user answers with [`Proxy::route`] (a
//! [`ForkPlan`]: ordered groups of targets, each group rung in sequence or in parallel) or
//! [`Proxy::reject`]. The proxy then runs the hunt: ring timers, CANCEL of losing or timed-out
//! branches, moving on by cause, the best response when everything failed.
//!
//! Everything that arrives from the network is untrusted: nothing here panics on it.

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::idmap::IdMap;
use crate::msg::{Message, Method, Via};
use crate::rewrite::{self, ForwardRequest};
use crate::txn::{
    ClientInvite, ClientNonInvite, ClientVerdict, Reliability, ServerInvite, ServerNonInvite,
    State, TimerAction, Timers,
};
use crate::uri::Uri;

mod key;

pub use key::HashKey;

/// Transport protocol of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn reliability(self) -> Reliability {
        match self {
            Transport::Udp => Reliability::Unreliable,
            Transport::Tcp => Reliability::Reliable,
        }
    }
    fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Where a message came from or goes to. For TCP the shell maps the address to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Which of our listen addresses the message came in on, or is to leave from: an index
    /// into [`ProxyConfig::listen_addrs`] (0 is [`ProxyConfig::local`]). The shell sends a
    /// transmit from the socket of that address; the proxy writes that address in its Via.
    pub local: u8,
}

impl Peer {
    /// A peer reached through our first listen address.
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer {
            transport,
            addr,
            local: 0,
        }
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub dest: Peer,
    pub bytes: Bytes,
}

/// Opaque handle of a call (an INVITE server transaction and its hunt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Static configuration of the proxy core.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub timers: Timers,
    /// Our own address as written in Via and Record-Route (`host:port`): the first listen
    /// address.
    pub local: SocketAddr,
    /// Our further listen addresses (`Peer::local` 1, 2, ...). A request is Record-Routed
    /// with the address it came in on; a request we send leaves from (and names in its Via)
    /// the address it came in on when that is of the destination's IP family, else the first
    /// listen address of that family.
    pub listen_more: Vec<SocketAddr>,
    /// Extra addresses that count as "us" in Request-URIs and Route headers.
    pub aliases: Vec<SocketAddr>,
    /// Value of the Allow header in 405 and OPTIONS responses.
    pub allow: &'static str,
    /// How long a finished call's dialog is remembered for late in-dialog requests.
    pub dialog_linger: Duration,
    /// How many 3xx a call may follow (recursion depth).
    pub max_redirects: u32,
    /// Out-of-dialog requests whose User-Agent contains one of these (ASCII case-insensitive)
    /// are dropped without an answer: SIP scanners.
    pub scanner_user_agents: Vec<&'static str>,
    /// Ids (in branches, call handles) are `first, first + step, ...`: several proxies sharing
    /// one address (shards) get disjoint ids.
    pub id_first: u64,
    pub id_step: u64,
    /// A cluster's shared address (`host` or `host:port`) written in Record-Route instead of
    /// `local`, so in-dialog requests reach whichever node is alive; it counts as "us" in
    /// Request-URIs and Route headers. `None`: `local`.
    pub record_route: Option<String>,
    /// The secret of the keyed hashes behind transaction keys, the loop hash in our branch
    /// parameters and the To-tags of local responses ([`HashKey`]). [`ProxyConfig::new`] draws
    /// a random one; shards of one server share the server's; a test fixes it to make every
    /// byte sent a function of the inputs.
    pub hash_key: HashKey,
}

/// User agents of well-known SIP scanners and war-diallers.
pub const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "smap",
    "pplsip",
];

impl ProxyConfig {
    /// Every listen address, in `Peer::local` order.
    pub fn listen_addrs(&self) -> impl Iterator<Item = &SocketAddr> + '_ {
        std::iter::once(&self.local).chain(self.listen_more.iter())
    }

    pub fn new(local: SocketAddr) -> Self {
        ProxyConfig {
            timers: Timers::default(),
            local,
            listen_more: Vec::new(),
            aliases: Vec::new(),
            allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO",
            // Retransmitted BYEs are absorbed by their server transaction; the dialog itself
            // is needed only briefly after the end.
            dialog_linger: Duration::from_secs(4),
            max_redirects: 3,
            scanner_user_agents: SCANNERS.to_vec(),
            id_first: 1,
            id_step: 1,
            record_route: None,
            hash_key: HashKey::random(),
        }
    }
}

/// The user's answer when the hunt asks whether a target may be tried (its admission gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start the branch.
    Admit,
    /// Not now (concurrency limit): the attempt ends as [`Outcome::LimitReached`] (or busy).
    Refuse,
    /// The user does not know yet (it asked a shared store): the hunt stops before this step
    /// and goes on when the user calls [`Proxy::resume_hunt`]; the gate is asked again then.
    Wait,
}

impl From<bool> for Admission {
    fn from(ok: bool) -> Admission {
        if ok {
            Admission::Admit
        } else {
            Admission::Refuse
        }
    }
}

/// Whether `host` + `port` (as found in a URI or Via, brackets stripped) name the cluster
/// address `rr` (`host`, `host:port`, `[v6]`, `[v6]:port`; no port = 5060).
fn cluster_address_is(rr: &str, host: &str, port: u16) -> bool {
    let (h, p) = if let Some(rest) = rr.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').map(str::parse)),
            None => (rr, None),
        }
    } else if rr.matches(':').count() == 1 {
        match rr.split_once(':') {
            Some((h, p)) => (h, Some(p.parse())),
            None => (rr, None),
        }
    } else {
        (rr, None)
    };
    let p = match p {
        None => 5060,
        Some(Ok(p)) => p,
        Some(Err(_)) => return false,
    };
    p == port && h.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod cluster_address_tests {
    use super::*;

    #[test]
    fn cluster_address_matches_host_and_port() {
        assert!(cluster_address_is("sip.example", "SIP.example", 5060));
        assert!(!cluster_address_is("sip.example", "sip.example", 5070));
        assert!(cluster_address_is("sip.example:5070", "sip.example", 5070));
        assert!(cluster_address_is("10.0.0.9:5070", "10.0.0.9", 5070));
        assert!(cluster_address_is("[::1]:5070", "::1", 5070));
        assert!(cluster_address_is("::1", "::1", 5060));
        assert!(!cluster_address_is("a.example:x", "a.example", 5060));
    }

    #[test]
    fn record_route_names_the_cluster_address_which_counts_as_us() {
        let mut cfg = ProxyConfig::new(SocketAddr::from(([127, 0, 0, 2], 5080)));
        cfg.record_route = Some("sip.hotline.example:5090".into());
        let p = Proxy::new(cfg);
        // Every interface Record-Routes with the cluster address.
        for i in &p.ifaces {
            assert_eq!(i.rr_udp, "<sip:sip.hotline.example:5090;lr>");
            assert_eq!(i.rr_tcp, "<sip:sip.hotline.example:5090;transport=tcp;lr>");
        }
        assert!(p.uri_is_local(b"<sip:sip.hotline.example:5090;lr>"));
        assert!(p.uri_is_local(b"<sip:127.0.0.2:5080;lr>"));
        assert!(!p.uri_is_local(b"<sip:other.example:5090;lr>"));
        assert!(
            p.ifaces[0].sent_by.starts_with("127.0.0.2:5080"),
            "Via stays the node's own"
        );
    }
}

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
    fn take_for(&mut self, outcome: Outcome) -> Option<BranchTarget> {
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
    fn from_code(code: u16) -> Outcome {
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

    fn advances(self, adv: &Advance) -> bool {
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

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    Caller,
    Callee,
    /// Hotline itself (timeouts); or the call was never answered.
    System,
}

/// Timestamps of one branch (hunt attempt).
#[derive(Debug, Clone)]
pub struct AttemptInfo {
    pub call: CallHandle,
    /// 1-based index of the attempt within the call.
    pub attempt: u32,
    pub target: u32,
    pub started: Instant,
    pub first_ring: Option<Instant>,
    pub answered: Option<Instant>,
    pub ended: Instant,
    /// Final SIP code of the branch (408 when it timed out without one).
    pub code: u16,
    pub outcome: Outcome,
}

/// A finished call.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub call: CallHandle,
    pub call_id: Bytes,
    pub started: Instant,
    pub first_ring: Option<Instant>,
    pub answered: Option<Instant>,
    pub ended: Instant,
    /// Final code sent to the caller (200 when answered).
    pub code: u16,
    pub answered_target: Option<u32>,
    pub hangup: Hangup,
    pub attempts: u32,
    /// Outcome of the last attempt (why the call ended unanswered).
    pub last_outcome: Option<Outcome>,
    /// The caller cancelled before an answer.
    pub cancelled: bool,
}

/// What happened, for the user.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new INVITE that needs a decision: call [`Proxy::route`] or [`Proxy::reject`].
    Incoming {
        call: CallHandle,
        request: Box<Message>,
        source: Peer,
    },
    /// A target answered 3xx: these are its Contact URIs. The user vets them (toll fraud:
    /// domestic, known hosts only) and calls [`Proxy::add_targets`] with the ones to try.
    Redirect {
        call: CallHandle,
        contacts: Vec<Bytes>,
    },
    /// A branch is about to be sent to `target`.
    AttemptStarted {
        call: CallHandle,
        attempt: u32,
        target: u32,
    },
    /// A branch ended (answered branches end at the answer; the call goes on).
    AttemptEnded(AttemptInfo),
    /// The call was answered by `target`.
    Answered { call: CallHandle, target: u32 },
    /// A BYE for a dialog this proxy does not know was relayed by its Route (a cluster
    /// address): the call is another node's, which may be dead. The user may end its record.
    ForeignBye {
        call_id: Bytes,
        from_tag: Bytes,
        to_tag: Bytes,
    },
    /// The call ended (answered and hung up, or never answered).
    CallEnded(CallInfo),
}

/// Counters of the proxy core.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub parse_errors: u64,
    pub bad_requests: u64,
    pub dropped_responses: u64,
    pub retransmissions_absorbed: u64,
    pub retransmissions_sent: u64,
    pub loops: u64,
    pub too_many_hops: u64,
    pub extra_2xx: u64,
    pub stray_acks: u64,
    /// Requests from SIP scanners, dropped.
    pub scanners: u64,
    /// New INVITEs answered 503 because Hotline is overloaded.
    pub overload_shed: u64,
    /// Client transactions ended by a transport error ([`Proxy::transport_error`]).
    pub transport_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerRef {
    Server(u64),
    Client(u64),
    Call(u64),
}

enum ServerKind {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerTxn {
    key: u64,
    kind: ServerKind,
    /// Where responses go (Via / rport / the connection it came on).
    reply_to: Peer,
    /// The request, until a final response went out (only local responses need it; the
    /// transaction resends the stored bytes). Dropping it early keeps finished transactions
    /// waiting out timers J/L small.
    request: Option<Arc<Message>>,
    source: Peer,
    /// The call this INVITE started, or the client transaction a forwarded request went out on.
    call: Option<u64>,
    scheduled: Option<Instant>,
}

/// A finished server transaction that only waits for its last timer (INVITE: L in
/// Accepted, I in Confirmed; non-INVITE: J in Completed). Everything else (the machine, the
/// request, the call link) is dropped: about 200,000 of these are held at 2,000 calls/s.
/// What it does is what the full machine did in that state:
/// - a retransmitted request (or ACK, in Confirmed) is absorbed; a non-INVITE one gets
///   `resend` again; an ACK in Accepted (the ACK of the 2xx reusing the INVITE's branch) is
///   forwarded like any ACK of a 2xx (RFC 6026 §7.1);
/// - a 2xx the proxy relays on it still goes to `reply_to` (§16.7 step 5, RFC 6026); any
///   other response is refused;
/// - at `deadline` it is forgotten.
struct ServerTomb {
    key: u64,
    reply_to: Peer,
    /// Non-INVITE Completed: the final response resent on a retransmitted request.
    resend: Option<Bytes>,
    /// When it is forgotten; its live timer entry is exactly this instant.
    deadline: Instant,
    /// Accepted / Confirmed (INVITE) or Completed (non-INVITE), for `transaction_states`.
    state: State,
    invite: bool,
}

/// A finished client transaction that only waits for its last timer (INVITE: M in Accepted,
/// D in Completed, or the give-up of a cancelled branch; non-INVITE: K in Completed).
/// Responses are matched as before (Call-ID, CSeq method) and handled as the machine did:
/// - INVITE Accepted: a 2xx goes up to the call (`owner`), or is forwarded by its Via once
///   the call is gone; anything else is absorbed;
/// - INVITE Completed: a retransmitted 300-699 gets `ack` again (to `dest`), the rest is
///   absorbed;
/// - non-INVITE Completed: everything is absorbed.
struct ClientTomb {
    /// Keyed hash ([`HashKey`]) of the request's Call-ID: compared like the server transaction
    /// keys are (a secret key, so no peer can aim for a collision).
    call_id: u64,
    deadline: Instant,
    method: Method,
    last: ClientLast,
}

/// What a finished client transaction still needs, by its last state.
enum ClientLast {
    /// INVITE, Accepted: 2xx go up to the owner (the call of the branch).
    Accepted { owner: Owner },
    /// INVITE, Completed: the ACK resent on a retransmitted 300-699, and where.
    Completed { ack: Option<Bytes>, dest: Peer },
    /// Non-INVITE, Completed. For a CANCEL: the INVITE transaction it cancelled (its
    /// `cancels` entry goes with it).
    NonInvite { cancel_of: Option<u64> },
}

impl ClientTomb {
    fn state(&self) -> State {
        match self.last {
            ClientLast::Accepted { .. } => State::Accepted,
            ClientLast::Completed { .. } | ClientLast::NonInvite { .. } => State::Completed,
        }
    }
}

/// Finished transactions of both sides in one map (ids are unique across both): one table
/// sized for all of them wastes less than two half-filled ones.
enum Tomb {
    Server(ServerTomb),
    Client(ClientTomb),
}

enum ClientKind {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// What a client transaction sent, and what its responses are matched on (§17.1.3). Parsed
/// only when a CANCEL or an ACK has to be built from it: the common path never re-parses
/// Hotline's own output.
struct Sent {
    bytes: Bytes,
    call_id: Bytes,
    method: Method,
    /// Boxed: 520 bytes inline would make every live client transaction's map slot that
    /// much larger, and it is needed only for a CANCEL or a non-2xx ACK.
    parsed: Option<Box<Message>>,
}

impl Sent {
    fn new(bytes: Bytes, call_id: &[u8], method: Method) -> Sent {
        Sent {
            bytes,
            call_id: Bytes::copy_from_slice(call_id),
            method,
            parsed: None,
        }
    }

    fn message(&mut self) -> Option<&Message> {
        if self.parsed.is_none() {
            self.parsed = Message::parse(self.bytes.clone()).ok().map(Box::new);
        }
        self.parsed.as_deref()
    }
}

struct ClientTxn {
    kind: ClientKind,
    sent: Sent,
    dest: Peer,
    /// INVITE branches: the call. Non-INVITE: the server transaction to answer (0 = none, e.g. CANCEL).
    owner: Owner,
    scheduled: Option<Instant>,
    /// For a CANCEL: the INVITE transaction it cancels (whose branch it shares).
    cancel_of: Option<u64>,
    /// For a cancelled INVITE: when to give up waiting for its final response (§9.1: 64*T1
    /// after the CANCEL). A target that ignores our CANCEL cannot hold state forever.
    give_up_at: Option<Instant>,
}

#[derive(Clone, Copy)]
enum Owner {
    Branch {
        call: u64,
    },
    Relay {
        server: u64,
    },
    /// A CANCEL or BYE Hotline generated itself; responses are absorbed.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchState {
    /// INVITE sent, nothing back yet.
    Trying,
    /// 1xx received.
    Ringing,
    /// Final response received or given up on.
    Done,
}

struct Branch {
    client: u64,
    target: BranchTarget,
    attempt: u32,
    state: BranchState,
    started: Instant,
    first_ring: Option<Instant>,
    ring_deadline: Option<Instant>,
    /// Hotline wants it cancelled; the CANCEL goes out once a provisional arrives (§9.1).
    cancel_pending: Option<Outcome>,
    cancel_sent: bool,
    /// A 100 Trying came: a CANCEL may be sent (§9.1) though the branch is not ringing.
    trying: bool,
    /// Already reported in an `AttemptEnded` event.
    reported: bool,
    /// How it ended, once it has: outcome and the response code (408 for a ring timeout).
    ended: Option<(Outcome, u16)>,
}

impl Branch {
    /// This attempt, ended at `now` with `code` / `outcome`.
    fn info(
        &self,
        call: u64,
        now: Instant,
        answered: Option<Instant>,
        code: u16,
        outcome: Outcome,
    ) -> AttemptInfo {
        AttemptInfo {
            call: CallHandle(call),
            attempt: self.attempt,
            target: self.target.tag,
            started: self.started,
            first_ring: self.first_ring,
            answered,
            ended: now,
            code,
            outcome,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Waiting for the user's route/reject.
    Deciding,
    Hunting,
    Answered,
    Ended,
}

struct Call {
    server: u64,
    /// The caller's INVITE, needed while hunting (every branch is built from it); dropped at
    /// the answer, so an answered call of long hold keeps only what its dialog needs.
    invite: Option<Arc<Message>>,
    call_id: Bytes,
    caller_peer: Peer,
    state: CallState,
    plan: ForkPlan,
    /// Next group / member to try.
    group: usize,
    member: usize,
    branches: Vec<Branch>,
    attempts: u32,
    started: Instant,
    first_ring: Option<Instant>,
    answered: Option<Instant>,
    answered_target: Option<u32>,
    cap_deadline: Option<Instant>,
    /// Best final response so far: (code, forwarded bytes if it came from a branch).
    best: Option<(u16, Option<Bytes>)>,
    last_outcome: Option<Outcome>,
    cancelled: bool,
    caller_from_tag: Bytes,
    /// Deadline after which an ended call is forgotten.
    linger_until: Option<Instant>,
    scheduled: Option<Instant>,
    /// Sent a 180 in place of early media already (suppress mode).
    sent_ringing: bool,
    local_tag: LocalTag,
    /// Dialog state once answered: remote targets of both sides and the callee's tag, so that
    /// in-dialog requests that carry no Route (peers that ignore Record-Route) still find
    /// their way.
    dialog: Option<DialogSides>,
    /// Forward destinations (by cause of a failed branch) to try before the rest of the hunt.
    forward_next: VecDeque<BranchTarget>,
    /// The caller's From, when a branch may show the callee another: put back in responses.
    restore_from: Option<Bytes>,
    /// When an answered call is cut (max duration, prepaid balance).
    hangup_at: Option<Instant>,
    redirects: u32,
}

impl Call {
    /// The call as it ends now with `code` (answered calls: 200).
    fn info(&self, call: CallHandle, now: Instant, code: u16, hangup: Hangup) -> CallInfo {
        let answered = self.answered.is_some();
        CallInfo {
            call,
            call_id: self.call_id.clone(),
            started: self.started,
            first_ring: self.first_ring,
            answered: self.answered,
            ended: now,
            code,
            answered_target: self.answered_target,
            hangup,
            attempts: self.attempts,
            last_outcome: if answered {
                Some(Outcome::Answered)
            } else {
                self.last_outcome
            },
            cancelled: self.cancelled && !answered,
        }
    }
}

/// The dialog of an answered call. Its five byte strings share one buffer (one allocation
/// per answered call instead of five).
#[derive(Clone)]
struct DialogSides {
    /// caller_from, callee_to, caller_target, callee_tag, callee_target, back to back.
    buf: Bytes,
    /// End offsets of the five parts in `buf`.
    ends: [u32; 5],
    /// Highest CSeq each side has used in the dialog.
    caller_cseq: u32,
    callee_cseq: u32,
    caller_peer: Peer,
    callee_peer: Peer,
}

impl DialogSides {
    /// From and To header values of the caller's INVITE / the answer (tags included), the
    /// remote targets of both sides and the callee's tag.
    fn pack(
        caller_from: &[u8],
        callee_to: &[u8],
        caller_target: &[u8],
        callee_tag: &[u8],
        callee_target: &[u8],
    ) -> (Bytes, [u32; 5]) {
        let parts = [
            caller_from,
            callee_to,
            caller_target,
            callee_tag,
            callee_target,
        ];
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 5];
        for (end, p) in ends.iter_mut().zip(parts) {
            buf.extend_from_slice(p);
            // Header values of one parsed message: far below u32::MAX.
            *end = buf.len() as u32;
        }
        (Bytes::from(buf), ends)
    }
    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.buf.get(start..self.ends[i] as usize).unwrap_or(&[])
    }
    fn caller_from(&self) -> &[u8] {
        self.part(0)
    }
    fn callee_to(&self) -> &[u8] {
        self.part(1)
    }
    fn caller_target(&self) -> &[u8] {
        self.part(2)
    }
    fn callee_tag(&self) -> &[u8] {
        self.part(3)
    }
    fn callee_target(&self) -> &[u8] {
        self.part(4)
    }
}

/// The proxy core. See the module docs.
pub struct Proxy {
    cfg: ProxyConfig,
    /// `cfg.hash_key`, a field of its own so that hashing borrows nothing else.
    key: HashKey,
    /// Per listen address (by `Peer::local`): how we write it in Via and Record-Route.
    ifaces: Vec<Iface>,
    /// Our Via for the message being built (see [`Proxy::new_via`]).
    via: Vec<u8>,
    /// History-Info value for the branch being built.
    history: Vec<u8>,
    /// Diversion value for the branch being built.
    diversion: Vec<u8>,
    next_id: u64,
    server_keys: IdMap<u64>,
    servers: IdMap<ServerTxn>,
    clients: IdMap<ClientTxn>,
    /// Finished transactions waiting out their last timer, by the same ids.
    tombs: IdMap<Tomb>,
    calls: IdMap<Call>,
    /// Call-ID hash -> call, for dialogs answered through Hotline.
    dialogs: IdMap<u64>,
    /// Pending timers, earliest first. Entries are not removed when a deadline moves (the
    /// `scheduled` field of the owner tells a live entry from a stale one). A B-tree rather
    /// than a binary heap: deadlines are mostly `now + constant`, so inserts land at the right
    /// edge and pops at the left, in cache; a heap of 100,000+ entries sifts through memory
    /// at random on every pop. Duplicates collapse, which changes nothing: a popped entry
    /// acts only while its owner is scheduled at exactly that instant.
    timers: BTreeSet<(Instant, TimerRef)>,
    /// Tombstones' last timers. They are `now` + one of a few constants (64*T1 for L/M/J/D,
    /// T4 for K/I), so each stream arrives in order: a queue takes a deadline not earlier
    /// than its last one (O(1), no tree insert and pop), anything else goes to `timers`.
    /// [`Proxy::handle_timeout`] merges them in `(Instant, TimerRef)` order.
    expiries: [VecDeque<(Instant, TimerRef)>; 2],
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Calls whose hunt moves on at the next [`Proxy::pending_hunts`].
    pending: Vec<u64>,
    /// INVITE client transaction -> the CANCEL sent for it.
    cancels: IdMap<u64>,
    stats: Stats,
    /// When set, new INVITEs get 503 with this Retry-After (seconds).
    overload: Option<u32>,
}

/// One listen address as we write it (formatted once).
struct Iface {
    addr: SocketAddr,
    /// `host:port` as written in Via.
    sent_by: String,
    /// The IP as `Display` writes it (without brackets): a host written exactly like this is
    /// us without parsing it.
    ip: String,
    rr_udp: String,
    rr_tcp: String,
}

impl Iface {
    /// The interface of listen address `addr`; `rr`: the cluster address to Record-Route with
    /// instead of `addr` itself.
    fn new(addr: SocketAddr, rr: Option<&str>) -> Iface {
        let sent_by = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let route = rr.unwrap_or(&sent_by);
        Iface {
            addr,
            rr_udp: format!("<sip:{route};lr>"),
            rr_tcp: format!("<sip:{route};transport=tcp;lr>"),
            ip: addr.ip().to_string(),
            sent_by,
        }
    }
}

const BRANCH_PREFIX: &str = "z9hG4bK-hl";

/// Timer C (§16.6 step 11): no branch rings longer than this, whatever its ring timeout.
pub const TIMER_C: Duration = Duration::from_secs(180);

fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Proxy {
    pub fn new(cfg: ProxyConfig) -> Self {
        // A configured cluster address goes in Record-Route whichever interface the call uses
        // (RFC 3261 §16.6 step 4: a URI that resolves to us; in a cluster, to any live node).
        let rr = cfg.record_route.clone();
        Proxy {
            // At most 256 listen addresses (`Peer::local` is a u8).
            ifaces: cfg
                .listen_addrs()
                .take(256)
                .map(|a| Iface::new(*a, rr.as_deref()))
                .collect(),
            via: Vec::with_capacity(128),
            history: Vec::new(),
            diversion: Vec::new(),
            next_id: cfg.id_first.max(1),
            key: cfg.hash_key,
            cfg,
            server_keys: IdMap::default(),
            servers: IdMap::default(),
            clients: IdMap::default(),
            tombs: IdMap::default(),
            calls: IdMap::default(),
            dialogs: IdMap::default(),
            timers: BTreeSet::new(),
            expiries: [VecDeque::new(), VecDeque::new()],
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pending: Vec::new(),
            cancels: IdMap::default(),
            stats: Stats::default(),
            overload: None,
        }
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls being set up or answered.
    pub fn active_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state != CallState::Ended)
            .count()
    }

    /// Live server + client transactions.
    pub fn transactions(&self) -> usize {
        self.servers.len() + self.clients.len() + self.tombs.len()
    }

    /// Every live transaction as `(kind, state, next deadline)`: for leak hunting in tests
    /// and fuzz runs.
    pub fn transaction_states(&self) -> Vec<(&'static str, State, Option<Instant>)> {
        let mut v: Vec<(&'static str, State, Option<Instant>)> = Vec::new();
        for (id, s) in self.servers.iter() {
            let (k, st) = match &s.kind {
                ServerKind::Invite(t) => ("server INVITE", t.state()),
                ServerKind::NonInvite(t) => ("server non-INVITE", t.state()),
            };
            v.push((k, st, self.server_deadline(*id)));
        }
        for (id, c) in self.clients.iter() {
            let (k, st) = match &c.kind {
                ClientKind::Invite(t) => ("client INVITE", t.state()),
                ClientKind::NonInvite(t) => ("client non-INVITE", t.state()),
            };
            v.push((k, st, self.client_deadline(*id)));
        }
        for t in self.tombs.values() {
            let (k, st, at) = match t {
                Tomb::Server(t) if t.invite => ("server INVITE", t.state, t.deadline),
                Tomb::Server(t) => ("server non-INVITE", t.state, t.deadline),
                Tomb::Client(t) if t.method == Method::Invite => {
                    ("client INVITE", t.state(), t.deadline)
                }
                Tomb::Client(t) => ("client non-INVITE", t.state(), t.deadline),
            };
            v.push((k, st, Some(at)));
        }
        v
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Proxy::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(t, _)| t)
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += self.cfg.id_step.max(1);
        id
    }

    fn send(&mut self, dest: Peer, bytes: impl Into<Bytes>) {
        self.transmits.push_back(Transmit {
            dest,
            bytes: bytes.into(),
        });
    }

    fn schedule(&mut self, r: TimerRef, at: Option<Instant>) {
        let Some(at) = at else { return };
        let slot = match r {
            TimerRef::Server(id) => self.servers.get_mut(&id).map(|s| &mut s.scheduled),
            TimerRef::Client(id) => self.clients.get_mut(&id).map(|c| &mut c.scheduled),
            TimerRef::Call(id) => self.calls.get_mut(&id).map(|c| &mut c.scheduled),
        };
        let Some(slot) = slot else { return };
        if slot.is_some_and(|s| s <= at) {
            return;
        }
        *slot = Some(at);
        self.timers.insert((at, r));
    }

    /// A tombstone's deadline: onto the queue whose last deadline is the latest one not after
    /// `at` (so a 5 s and a 32 s stream each keep their own queue), else into the B-tree.
    fn schedule_expiry(&mut self, at: Instant, r: TimerRef) {
        let mut best: Option<(usize, Option<Instant>)> = None;
        for (i, q) in self.expiries.iter().enumerate() {
            let back = q.back().map(|&(b, _)| b);
            if back.is_some_and(|b| b > at) {
                continue;
            }
            // A non-empty queue that fits beats an empty one; the later back fits best.
            let better = match best {
                None => true,
                Some((_, bb)) => back > bb,
            };
            if better {
                best = Some((i, back));
            }
        }
        match best.and_then(|(i, _)| self.expiries.get_mut(i)) {
            Some(q) => q.push_back((at, r)),
            None => {
                self.timers.insert((at, r));
            }
        }
    }

    /// The earliest pending timer entry of `timers` and `expiries`.
    fn next_timer(&self) -> Option<(Instant, TimerRef)> {
        let tree = self.timers.first().copied();
        self.expiries
            .iter()
            .filter_map(|q| q.front().copied())
            .chain(tree)
            .min()
    }

    /// Remove `entry` (as returned by [`Proxy::next_timer`]) from where it is.
    fn pop_timer(&mut self, entry: (Instant, TimerRef)) {
        for q in self.expiries.iter_mut() {
            if q.front() == Some(&entry) {
                q.pop_front();
                return;
            }
        }
        self.timers.pop_first();
    }

    // ----- addressing ---------------------------------------------------------------------

    fn is_local(&self, host: &[u8], port: Option<u16>) -> bool {
        let port = port.unwrap_or(5060);
        let host = host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(host);
        if self
            .ifaces
            .iter()
            .any(|i| port == i.addr.port() && host == i.ip.as_bytes())
        {
            // What the parse below would find for our own address as we write it.
            return true;
        }
        let Ok(h) = std::str::from_utf8(host) else {
            return false;
        };
        if let Some(rr) = &self.cfg.record_route {
            if cluster_address_is(rr, h, port) {
                return true;
            }
        }
        let Ok(ip) = h.parse::<IpAddr>() else {
            return false;
        };
        self.cfg
            .listen_addrs()
            .chain(self.cfg.aliases.iter())
            .any(|a| a.port() == port && (a.ip() == ip || a.ip().is_unspecified()))
    }

    fn uri_is_local(&self, uri: &[u8]) -> bool {
        match Uri::parse_name_addr(uri) {
            Some(u) if !u.host.is_empty() => self.is_local(u.host, u.port),
            _ => false,
        }
    }

    /// Next hop for a URI: IP literal host + port, transport from `;transport=`.
    pub fn resolve_uri(uri: &[u8]) -> Option<Peer> {
        let u = Uri::parse_name_addr(uri)?;
        let host = u
            .host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(u.host);
        let ip: IpAddr = std::str::from_utf8(host).ok()?.parse().ok()?;
        let transport = match u.param("transport") {
            Some(t) if eq_ci(t, b"tcp") => Transport::Tcp,
            _ => Transport::Udp,
        };
        Some(Peer::new(
            transport,
            SocketAddr::new(ip, u.port.unwrap_or(5060)),
        ))
    }

    fn reply_peer(via: &Via<'_>, source: Peer) -> Peer {
        if source.transport == Transport::Tcp || via.rport.is_some() {
            return source;
        }
        Peer {
            transport: source.transport,
            addr: SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)),
            local: source.local,
        }
    }

    /// The listen address a request to `dest` leaves from: `prefer` (the one the call came
    /// in on) when it is of `dest`'s IP family, else the first of that family, else `prefer`
    /// (the send then fails as it would have anyway).
    fn iface_for(&self, dest: SocketAddr, prefer: u8) -> u8 {
        let fits = |i: &Iface| i.addr.is_ipv4() == dest.is_ipv4();
        if self.ifaces.get(usize::from(prefer)).is_some_and(fits) {
            return prefer;
        }
        self.ifaces
            .iter()
            .position(fits)
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(prefer)
    }

    /// `dest` with the listen address it is to be sent from (see [`Proxy::iface_for`]).
    fn leaving_from(&self, dest: Peer, prefer: u8) -> Peer {
        Peer {
            local: self.iface_for(dest.addr, prefer),
            ..dest
        }
    }

    fn iface(&self, local: u8) -> &Iface {
        // `ifaces` is never empty (it holds `cfg.local`).
        self.ifaces
            .get(usize::from(local))
            .unwrap_or(&self.ifaces[0])
    }

    /// A new branch id and our Via value carrying it
    /// (`SIP/2.0/UDP host:port;branch=z9hG4bK-hl<loop hash, 16 hex>-<id, hex>;rport`), written
    /// into `self.via` (reused: no allocation per message). `dest.local` says which of our
    /// addresses it names.
    fn new_via(&mut self, loop_hash: u64, dest: Peer) -> u64 {
        let id = self.id();
        let i = usize::from(dest.local).min(self.ifaces.len() - 1);
        let v = &mut self.via;
        v.clear();
        v.extend_from_slice(b"SIP/2.0/");
        v.extend_from_slice(dest.transport.via_name().as_bytes());
        v.push(b' ');
        v.extend_from_slice(self.ifaces[i].sent_by.as_bytes());
        v.extend_from_slice(b";branch=");
        v.extend_from_slice(BRANCH_PREFIX.as_bytes());
        rewrite::push_hex(v, loop_hash, 16);
        v.push(b'-');
        rewrite::push_hex(v, id, 1);
        v.extend_from_slice(b";rport");
        id
    }

    /// One Record-Route entry serves both sides: we listen on UDP and TCP at the same address.
    /// Across transports the entry names none, so each side reaches us over UDP by default
    /// (RFC 5658 double record-routing is not needed for that). It names the listen address
    /// the request came in on (`inbound.local`).
    fn record_route(&self, inbound: Peer, outbound: Transport) -> &str {
        let i = self.iface(inbound.local);
        if inbound.transport == Transport::Tcp && outbound == Transport::Tcp {
            &i.rr_tcp
        } else {
            &i.rr_udp
        }
    }

    /// Branch id carried in one of our branch parameters.
    fn branch_id(branch: &[u8]) -> Option<u64> {
        let rest = branch.strip_prefix(BRANCH_PREFIX.as_bytes())?;
        let dash = rest.iter().position(|&b| b == b'-')?;
        let id = std::str::from_utf8(&rest[dash + 1..]).ok()?;
        u64::from_str_radix(id, 16).ok()
    }

    fn loop_hash(&self, msg: &Message) -> u64 {
        let cseq = msg.cseq().0.to_be_bytes();
        self.key.hash(&[
            msg.request_uri(),
            msg.from_tag().unwrap_or(b""),
            msg.to_tag().unwrap_or(b""),
            msg.call_id(),
            &cseq,
        ])
    }

    fn server_key(&self, msg: &Message) -> u64 {
        let via = msg.top_via();
        let method = match msg.method() {
            Some(Method::Ack) => b"INVITE".as_slice(),
            _ => msg.method_bytes(),
        };
        self.key.hash(&[
            via.branch.unwrap_or(b""),
            via.host,
            &via.port.unwrap_or(5060).to_be_bytes(),
            method,
        ])
    }

    // ----- entry points ---------------------------------------------------------------------

    /// Handle a message its receiver already parsed (e.g. to find the shard that owns its
    /// Call-ID).
    pub fn handle_parsed(&mut self, now: Instant, source: Peer, msg: Message) {
        if msg.is_request() {
            self.on_request(now, source, msg)
        } else {
            self.on_response(now, msg)
        }
    }

    /// Handle one framed message received from `source`.
    pub fn handle_message(&mut self, now: Instant, source: Peer, bytes: Bytes) {
        match Message::parse_or_return(bytes) {
            Ok(msg) => self.handle_parsed(now, source, msg),
            Err((bytes, e)) => self.handle_unparsable(source, &bytes, &e),
        }
    }

    /// Bytes that could not be framed or parsed: a request gets the error's status (400 naming
    /// the problem, 505 for a SIP version, 513 for an oversize message); a broken response is
    /// dropped. Everything is counted.
    pub fn handle_unparsable(&mut self, source: Peer, bytes: &[u8], e: &crate::ParseError) {
        self.stats.parse_errors += 1;
        if !bytes.starts_with(b"SIP/") {
            self.stats.bad_requests += 1;
            if let Some(resp) = bad_request(bytes, e.status(), e.reason(), source.addr) {
                self.send(source, resp);
            }
        } else {
            self.stats.dropped_responses += 1;
        }
    }

    /// The transport could not deliver to `dest`: an ICMP destination unreachable for a UDP
    /// datagram sent there, a refused or failed TCP connect. Every client transaction towards
    /// `dest` that has had no response yet ends at once, as if the next hop had answered 503
    /// (RFC 3261 §8.1.3.1, §16.9, §17.1.4): an INVITE branch is reported as
    /// [`Outcome::Unreachable`] with code 503 and the hunt moves on without waiting out the
    /// ring timeout; a relayed request gets 503 back. Transactions that already had a
    /// response (the peer is alive) are left alone. Returns how many transactions ended.
    ///
    /// The scan is over the live client transactions; transport errors are rare (one per
    /// request to a dead peer), so no per-destination index is kept.
    pub fn transport_error(&mut self, now: Instant, dest: Peer) -> usize {
        let failed: Vec<(u64, Owner)> = self
            .clients
            .iter()
            .filter(|(_, ct)| {
                // Whichever of our listen addresses the branch left from.
                ct.dest.transport == dest.transport
                    && ct.dest.addr == dest.addr
                    && ct.cancel_of.is_none()
                    && match &ct.kind {
                        ClientKind::Invite(t) => t.state() == State::Calling,
                        ClientKind::NonInvite(t) => t.state() == State::Trying,
                    }
            })
            .map(|(id, ct)| (*id, ct.owner))
            .collect();
        for &(cid, owner) in &failed {
            if let Some(ct) = self.clients.get_mut(&cid) {
                match &mut ct.kind {
                    ClientKind::Invite(t) => t.on_transport_error(),
                    ClientKind::NonInvite(t) => t.on_transport_error(),
                }
            }
            self.remove_client(cid);
            self.stats.transport_errors += 1;
            // §16.7 step 6: a 503 alone is not relayed upstream as such; if it stays the
            // best response the caller gets 500.
            self.client_failed(now, cid, owner, (503, "Service Unavailable"), 500);
        }
        failed.len()
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, r)) = self.next_timer() {
            if at > now {
                break;
            }
            self.pop_timer((at, r));
            match r {
                TimerRef::Server(id) => self.server_timeout(now, id, at),
                TimerRef::Client(id) => self.client_timeout(now, id, at),
                TimerRef::Call(id) => self.call_timeout(now, id, at),
            }
        }
    }

    /// The user's decision for an [`Event::Incoming`]: run this plan.
    pub fn route(
        &mut self,
        now: Instant,
        call: CallHandle,
        plan: ForkPlan,
        gate: &mut dyn FnMut(CallHandle, u32) -> bool,
    ) {
        self.route_gated(now, call, plan, &mut |c, t| gate(c, t).into());
    }

    /// [`Proxy::route`] with a gate that may answer [`Admission::Wait`].
    pub fn route_gated(
        &mut self,
        now: Instant,
        call: CallHandle,
        plan: ForkPlan,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
    ) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Deciding {
            return;
        }
        c.cap_deadline = plan.wait_cap.map(|d| c.started + d);
        let rewrites_from = plan.caller_id.from.is_some()
            || plan
                .caller_id_by_target
                .iter()
                .any(|(_, p)| p.from.is_some());
        if rewrites_from {
            c.restore_from = c
                .invite
                .as_deref()
                .map(|i| Bytes::copy_from_slice(i.from_value()));
        }
        c.plan = plan;
        c.state = CallState::Hunting;
        self.advance_hunt(now, call.0, gate);
    }

    /// The user's decision for an [`Event::Incoming`]: answer with `code`.
    pub fn reject(&mut self, now: Instant, call: CallHandle, code: u16, reason: &str) {
        self.reject_with(now, call, code, reason, &[]);
    }

    /// [`Proxy::reject`] with extra headers on the response (e.g. `Retry-After`).
    pub fn reject_with(
        &mut self,
        now: Instant,
        call: CallHandle,
        code: u16,
        reason: &str,
        extra: &[(&str, &[u8])],
    ) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Deciding {
            return;
        }
        c.state = CallState::Hunting;
        if extra.is_empty() {
            c.best = Some((code, None));
        } else {
            let tag = c.local_tag;
            let sid = c.server;
            let bytes = self.servers.get(&sid).and_then(|s| {
                Some(Bytes::from(rewrite::response(
                    s.request.as_deref()?,
                    code,
                    reason,
                    Some(&tag),
                    Some(s.source.addr),
                    extra,
                )))
            });
            if let Some(c) = self.calls.get_mut(&call.0) {
                c.best = Some((code, bytes));
            }
        }
        self.finish_unanswered(now, call.0, Some(reason));
    }

    /// Shed new INVITEs with 503 and `Retry-After: secs` (admission control); `None` to stop.
    /// Calls in progress and in-dialog requests are not affected.
    pub fn set_overload(&mut self, retry_after: Option<u32>) {
        self.overload = retry_after;
    }

    pub fn overloaded(&self) -> bool {
        self.overload.is_some()
    }

    /// Answer a request without keeping any state (e.g. 403 to a source that may not talk to
    /// Hotline). Responses and ACKs get nothing.
    pub fn reply_stateless(&mut self, source: Peer, msg: &Message, code: u16, reason: &str) {
        if !msg.is_request() || msg.method() == Some(Method::Ack) {
            return;
        }
        let tag = msg.to_tag().is_none().then(|| local_tag(&self.key, msg));
        let bytes = rewrite::response(msg, code, reason, tag.as_deref(), Some(source.addr), &[]);
        let to = Self::reply_peer(&msg.top_via(), source);
        self.send(to, bytes);
    }

    /// Calls still waiting for a decision or hunting (not yet answered or failed).
    pub fn hunting_calls(&self) -> usize {
        self.calls
            .values()
            .filter(|c| matches!(c.state, CallState::Deciding | CallState::Hunting))
            .count()
    }

    /// End every call still hunting with `code` (shutdown past its grace period). Each gets
    /// its `CallEnded`, so no CDR is lost.
    pub fn abort_hunts(&mut self, now: Instant, code: u16, reason: &str) {
        let mut ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.state, CallState::Deciding | CallState::Hunting))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(c) = self.calls.get_mut(&id) {
                c.state = CallState::Hunting;
                c.best = Some((code, None));
                c.plan.fail_code = None;
            }
            self.cancel_branches(now, id, Outcome::CancelledByHunt);
            self.finish_unanswered(now, id, Some(reason));
        }
    }

    /// Client INVITE transactions still waiting for their final response (e.g. a cancelled
    /// branch whose 487 has not come yet): a graceful stop waits for them so that every
    /// target gets its ACK.
    pub fn pending_client_invites(&self) -> usize {
        self.clients
            .values()
            .filter(|c| match &c.kind {
                ClientKind::Invite(t) => matches!(t.state(), State::Calling | State::Proceeding),
                ClientKind::NonInvite(_) => false,
            })
            .count()
    }

    /// Handles of the calls that are answered and not yet ended.
    pub fn answered_calls(&self) -> Vec<CallHandle> {
        let mut v: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == CallState::Answered)
            .map(|(&id, _)| CallHandle(id))
            .collect();
        v.sort();
        v
    }

    /// Cut an answered call at `at` (prepaid balance, max duration): BYE to both sides then.
    pub fn limit_call(&mut self, call: CallHandle, at: Instant) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        c.hangup_at = Some(c.hangup_at.map_or(at, |t| t.min(at)));
        let dl = call_deadline(c);
        self.schedule(TimerRef::Call(call.0), dl);
    }

    /// End an answered call now: BYE to the caller and to the callee, `CallEnded` with
    /// hangup `System`. Responses to the BYEs are absorbed.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        d.caller_cseq = d.caller_cseq.saturating_add(1);
        d.callee_cseq = d.callee_cseq.saturating_add(1);
        let d = d.clone();
        let call_id = c.call_id.clone();
        c.state = CallState::Ended;
        c.linger_until = Some(now + self.cfg.dialog_linger);
        let info = c.info(call, now, 200, Hangup::System);
        // Toward the callee we speak for the caller, and the other way round.
        self.send_local_request(
            now,
            b"BYE",
            d.callee_target(),
            d.callee_peer,
            d.caller_from(),
            d.callee_to(),
            &call_id,
            d.caller_cseq,
        );
        self.send_local_request(
            now,
            b"BYE",
            d.caller_target(),
            d.caller_peer,
            d.callee_to(),
            d.caller_from(),
            &call_id,
            d.callee_cseq,
        );
        self.events.push_back(Event::CallEnded(info));
        let dl = self.calls.get(&call.0).and_then(call_deadline);
        self.schedule(TimerRef::Call(call.0), dl);
    }

    /// An answered call was ended elsewhere (a BYE went through another node of a cluster):
    /// forget it without sending anything; [`Event::CallEnded`] follows, with the caller as
    /// the side that hung up (as far as this proxy knows).
    pub fn ended_elsewhere(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Answered {
            return;
        }
        c.state = CallState::Ended;
        c.linger_until = Some(now + self.cfg.dialog_linger);
        let info = c.info(call, now, 200, Hangup::Caller);
        self.events.push_back(Event::CallEnded(info));
        let dl = self.calls.get(&call.0).and_then(call_deadline);
        self.schedule(TimerRef::Call(call.0), dl);
    }

    /// Add redirect targets (after [`Event::Redirect`]) to be tried next, one at a time.
    pub fn add_targets(&mut self, call: CallHandle, targets: Vec<BranchTarget>) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Hunting || targets.is_empty() {
            return;
        }
        let new = ForkGroup {
            parallel: false,
            targets,
        };
        let at = c.group.min(c.plan.groups.len());
        if c.member > 0 {
            // In the middle of a sequential group: the redirect goes before its remaining
            // members.
            let rest = c.plan.groups[at].targets.split_off(c.member);
            let parallel = c.plan.groups[at].parallel;
            c.plan.groups.insert(at + 1, new);
            if !rest.is_empty() {
                c.plan.groups.insert(
                    at + 2,
                    ForkGroup {
                        parallel,
                        targets: rest,
                    },
                );
            }
            c.group = at + 1;
            c.member = 0;
        } else {
            c.plan.groups.insert(at, new);
        }
        if !self.pending.contains(&call.0) {
            self.pending.push(call.0);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_local_request(
        &mut self,
        now: Instant,
        method: &[u8],
        ruri: &[u8],
        dest: Peer,
        from: &[u8],
        to: &[u8],
        call_id: &[u8],
        cseq: u32,
    ) {
        let dest = self.leaving_from(dest, dest.local);
        let id = self.new_via(0, dest);
        let via = &self.via;
        let mut out = Vec::with_capacity(256 + ruri.len() + from.len() + to.len() + call_id.len());
        for part in [method, b" ", ruri, b" SIP/2.0\r\nVia: ", via] {
            out.extend_from_slice(part);
        }
        for (name, value) in [(&b"From"[..], from), (b"To", to), (b"Call-ID", call_id)] {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b"\r\nCSeq: ");
        rewrite::push_dec(&mut out, u64::from(cseq), 1);
        out.push(b' ');
        out.extend_from_slice(method);
        out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        let out = Bytes::from(out);
        let sent = Sent::new(out, call_id, Method::from_bytes(method));
        self.start_client(now, id, sent, dest, Owner::Local, None);
    }

    /// Start a client transaction for `sent` and transmit it.
    fn start_client(
        &mut self,
        now: Instant,
        id: u64,
        sent: Sent,
        dest: Peer,
        owner: Owner,
        cancel_of: Option<u64>,
    ) {
        let rel = dest.transport.reliability();
        let bytes = sent.bytes.clone();
        let kind = if sent.method == Method::Invite {
            ClientKind::Invite(ClientInvite::new(bytes.clone(), rel, self.cfg.timers, now))
        } else {
            ClientKind::NonInvite(ClientNonInvite::new(
                bytes.clone(),
                rel,
                self.cfg.timers,
                now,
            ))
        };
        self.clients.insert(
            id,
            ClientTxn {
                kind,
                sent,
                dest,
                owner,
                scheduled: None,
                cancel_of,
                give_up_at: None,
            },
        );
        self.send(dest, bytes);
        let dl = self.client_deadline(id);
        self.schedule(TimerRef::Client(id), dl);
    }

    /// Track the highest CSeq each side used, for the BYEs Hotline may have to send.
    fn note_cseq(&mut self, msg: &Message) {
        let Some(&call) = self.dialogs.get(&self.key.hash(&[msg.call_id()])) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let from = msg.from_tag().unwrap_or(b"");
        let caller = from == c.caller_from_tag.as_ref();
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let n = msg.cseq().0;
        if caller {
            d.caller_cseq = d.caller_cseq.max(n);
        } else {
            d.callee_cseq = d.callee_cseq.max(n);
        }
    }

    // ----- requests --------------------------------------------------------------------------

    fn on_request(&mut self, now: Instant, source: Peer, msg: Message) {
        let method = msg.method().unwrap_or(Method::Other);
        let key = self.server_key(&msg);
        // Retransmission or ACK of an existing server transaction.
        if let Some(&sid) = self.server_keys.get(&key) {
            if self.on_server_match(now, sid, method) {
                // An ACK that reused the INVITE's branch, in Accepted: the ACK of the 2xx,
                // which belongs to the TU (RFC 6026 §7.1) and goes on end to end.
                self.on_ack(source, msg);
            }
            return;
        }
        match method {
            Method::Ack => self.on_ack(source, msg),
            Method::Cancel => self.on_cancel(now, source, msg, key),
            _ => {
                let in_dialog = msg.to_tag().is_some();
                if in_dialog {
                    self.forward_in_dialog(now, source, msg, key);
                } else {
                    self.on_initial(now, source, msg, key, method);
                }
            }
        }
    }

    /// A request matched server transaction `sid`: a retransmission, or an ACK. Returns true
    /// for an ACK the transaction does not absorb because it is in Accepted (the ACK of the
    /// 2xx reusing the INVITE's branch): the caller forwards it like any ACK of a 2xx.
    fn on_server_match(&mut self, now: Instant, sid: u64, method: Method) -> bool {
        let Some(s) = self.servers.get_mut(&sid) else {
            if let Some(t) = self.server_tomb(sid) {
                if method == Method::Ack && t.invite && t.state == State::Accepted {
                    return true;
                }
                // INVITE (Accepted, Confirmed): INVITE retransmissions and ACK retransmissions
                // (Confirmed) absorbed. Non-INVITE (Completed): the final response again.
                let (reply_to, resend) = (t.reply_to, t.resend.clone());
                self.stats.retransmissions_absorbed += 1;
                if let Some(b) = resend {
                    self.stats.retransmissions_sent += 1;
                    self.send(reply_to, b);
                }
            }
            return false;
        };
        let reply_to = s.reply_to;
        let resend = match (&mut s.kind, method) {
            (ServerKind::Invite(t), Method::Ack) => {
                let accepted = t.state() == State::Accepted;
                if !t.on_ack(now) && accepted {
                    return true;
                }
                None
            }
            (ServerKind::Invite(t), _) => t.on_retransmission(),
            (ServerKind::NonInvite(t), _) => t.on_retransmission(),
        };
        self.stats.retransmissions_absorbed += 1;
        if let Some(b) = resend {
            self.stats.retransmissions_sent += 1;
            self.send(reply_to, b);
        }
        self.schedule_server(sid);
        false
    }

    /// Re-read a server transaction's deadline after an event; a transaction that has only
    /// its last timer left becomes a [`ServerTomb`].
    fn schedule_server(&mut self, sid: u64) {
        let Some(s) = self.servers.get(&sid) else {
            return;
        };
        let (state, deadline, invite) = match &s.kind {
            ServerKind::Invite(t) => (t.state(), t.deadline(), true),
            ServerKind::NonInvite(t) => (t.state(), t.deadline(), false),
        };
        let retire = matches!(
            (invite, state),
            (true, State::Accepted | State::Confirmed) | (false, State::Completed)
        );
        let Some(deadline) = deadline.filter(|_| retire) else {
            self.schedule(TimerRef::Server(sid), deadline);
            return;
        };
        let Some(s) = self.servers.remove(&sid) else {
            return;
        };
        let resend = match s.kind {
            ServerKind::NonInvite(t) => t.last_response().cloned(),
            ServerKind::Invite(_) => None,
        };
        self.tombs.insert(
            sid,
            Tomb::Server(ServerTomb {
                key: s.key,
                reply_to: s.reply_to,
                resend,
                deadline,
                state,
                invite,
            }),
        );
        self.schedule_expiry(deadline, TimerRef::Server(sid));
    }

    fn server_tomb(&self, id: u64) -> Option<&ServerTomb> {
        match self.tombs.get(&id) {
            Some(Tomb::Server(t)) => Some(t),
            _ => None,
        }
    }

    fn client_tomb(&self, id: u64) -> Option<&ClientTomb> {
        match self.tombs.get(&id) {
            Some(Tomb::Client(t)) => Some(t),
            _ => None,
        }
    }

    /// As [`Proxy::schedule_server`], for a client transaction ([`ClientTomb`]).
    fn schedule_client(&mut self, cid: u64) {
        let Some(c) = self.clients.get(&cid) else {
            return;
        };
        let (state, invite) = match &c.kind {
            ClientKind::Invite(t) => (t.state(), true),
            ClientKind::NonInvite(t) => (t.state(), false),
        };
        let retire = matches!(
            (invite, state),
            (true, State::Accepted | State::Completed) | (false, State::Completed)
        );
        let deadline = self.client_deadline(cid);
        let Some(deadline) = deadline.filter(|_| retire) else {
            self.schedule(TimerRef::Client(cid), deadline);
            return;
        };
        let Some(c) = self.clients.remove(&cid) else {
            return;
        };
        let last = match (c.kind, state) {
            (ClientKind::Invite(_), State::Accepted) => ClientLast::Accepted { owner: c.owner },
            (ClientKind::Invite(t), _) => ClientLast::Completed {
                ack: t.ack().cloned(),
                dest: c.dest,
            },
            (ClientKind::NonInvite(_), _) => ClientLast::NonInvite {
                cancel_of: c.cancel_of,
            },
        };
        self.tombs.insert(
            cid,
            Tomb::Client(ClientTomb {
                call_id: self.key.hash(&[&c.sent.call_id]),
                deadline,
                method: c.sent.method,
                last,
            }),
        );
        self.schedule_expiry(deadline, TimerRef::Client(cid));
    }

    fn server_deadline(&self, sid: u64) -> Option<Instant> {
        self.servers.get(&sid).and_then(|s| match &s.kind {
            ServerKind::Invite(t) => t.deadline(),
            ServerKind::NonInvite(t) => t.deadline(),
        })
    }

    fn client_deadline(&self, cid: u64) -> Option<Instant> {
        let c = self.clients.get(&cid)?;
        let d = match &c.kind {
            ClientKind::Invite(t) => t.deadline(),
            ClientKind::NonInvite(t) => t.deadline(),
        };
        match (d, c.give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A server transaction for `msg` (shared with its call for an INVITE).
    fn new_server(&mut self, now: Instant, source: Peer, msg: Arc<Message>, key: u64) -> u64 {
        let sid = self.id();
        let rel = source.transport.reliability();
        let kind = if msg.method() == Some(Method::Invite) {
            ServerKind::Invite(ServerInvite::new(rel, self.cfg.timers, now))
        } else {
            ServerKind::NonInvite(ServerNonInvite::new(rel, self.cfg.timers, now))
        };
        let reply_to = Self::reply_peer(&msg.top_via(), source);
        self.server_keys.insert(key, sid);
        self.servers.insert(
            sid,
            ServerTxn {
                key,
                kind,
                reply_to,
                request: Some(msg),
                source,
                call: None,
                scheduled: None,
            },
        );
        sid
    }

    /// Send a response on a server transaction. `bytes` is the complete response.
    fn respond(&mut self, now: Instant, sid: u64, code: u16, bytes: impl Into<Bytes>) {
        let bytes: Bytes = bytes.into();
        let Some(s) = self.servers.get_mut(&sid) else {
            // A finished transaction refuses every response but a 2xx, which is relayed (see
            // below).
            if let Some(t) = self.server_tomb(sid) {
                if (200..300).contains(&code) {
                    let to = t.reply_to;
                    self.send(to, bytes);
                }
            }
            return;
        };
        let ok = match &mut s.kind {
            ServerKind::Invite(t) => t.record_response(code, &bytes, now),
            ServerKind::NonInvite(t) => t.record_response(code, &bytes, now),
        };
        if ok {
            if code >= 200 {
                s.request = None;
            }
            let to = s.reply_to;
            self.send(to, bytes);
        } else if (200..300).contains(&code) {
            // A 2xx for a transaction already finished: relayed anyway so the caller can
            // ACK and BYE it (§16.7 step 5, RFC 6026).
            let to = s.reply_to;
            self.send(to, bytes);
        }
        self.schedule_server(sid);
    }

    /// Answer a request statelessly-in-a-transaction with a locally generated response.
    fn respond_local(
        &mut self,
        now: Instant,
        sid: u64,
        code: u16,
        reason: &str,
        extra: &[(&str, &[u8])],
    ) {
        let Some(s) = self.servers.get(&sid) else {
            return;
        };
        let Some(request) = s.request.as_deref() else {
            return;
        };
        let tag = if code > 100 && request.to_tag().is_none() {
            Some(local_tag(&self.key, request))
        } else {
            None
        };
        let bytes = rewrite::response(
            request,
            code,
            reason,
            tag.as_deref(),
            Some(s.source.addr),
            extra,
        );
        self.respond(now, sid, code, bytes);
    }

    fn is_scanner(&self, msg: &Message) -> bool {
        let Some(ua) = msg.header("User-Agent") else {
            return false;
        };
        self.cfg.scanner_user_agents.iter().any(|s| {
            ua.windows(s.len())
                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
        })
    }

    fn on_initial(&mut self, now: Instant, source: Peer, msg: Message, key: u64, method: Method) {
        if self.is_scanner(&msg) {
            self.stats.scanners += 1;
            return;
        }
        // Parsed once. A parsed Request-URI has no white space and no '<' (Message::parse
        // checks), so this is what `uri_is_local` would find.
        let ruri = Uri::parse(msg.request_uri());
        let ruri_local = match ruri {
            Some(u) => !u.host.is_empty() && self.is_local(u.host, u.port),
            None => self.uri_is_local(msg.request_uri()),
        };
        let has_user = ruri.is_some_and(|u| !u.user.is_empty());
        let request = Arc::new(msg.clone());
        let sid = self.new_server(now, source, request.clone(), key);
        if ruri.is_none() {
            // A Request-URI that is no URI (e.g. `sip:2001:db8::10`, an unbracketed IPv6
            // address: RFC 5118 4.2) or one of a scheme Hotline does not serve.
            let ruri = msg.request_uri();
            let known = [&b"sip:"[..], b"sips:", b"tel:"]
                .iter()
                .any(|p| ruri.len() >= p.len() && eq_ci(&ruri[..p.len()], p));
            if known {
                self.respond_local(now, sid, 400, "Malformed Request-URI", &[]);
            } else {
                self.respond_local(now, sid, 416, "Unsupported URI Scheme", &[]);
            }
            return;
        }
        if method == Method::Options && (ruri_local || !has_user) {
            let allow = self.cfg.allow;
            self.respond_local(
                now,
                sid,
                200,
                "OK",
                &[("Allow", allow.as_bytes()), ("Accept", b"application/sdp")],
            );
            return;
        }
        if msg.max_forwards() == Some(0) {
            self.stats.too_many_hops += 1;
            self.respond_local(now, sid, 483, "Too Many Hops", &[]);
            return;
        }
        if self.is_loop(&msg) {
            self.stats.loops += 1;
            self.respond_local(now, sid, 482, "Loop Detected", &[]);
            return;
        }
        match method {
            Method::Invite if self.overload.is_some() => {
                self.stats.overload_shed += 1;
                let secs = self.overload.unwrap_or(5).to_string();
                self.respond_local(
                    now,
                    sid,
                    503,
                    "Service Unavailable",
                    &[("Retry-After", secs.as_bytes())],
                );
            }
            Method::Invite => self.on_invite(now, sid, source, msg, request),
            Method::Options => {
                let allow = self.cfg.allow;
                self.respond_local(now, sid, 200, "OK", &[("Allow", allow.as_bytes())]);
            }
            _ => {
                let allow = self.cfg.allow;
                self.respond_local(
                    now,
                    sid,
                    405,
                    "Method Not Allowed",
                    &[("Allow", allow.as_bytes())],
                );
            }
        }
    }

    fn is_loop(&self, msg: &Message) -> bool {
        let mut ours = msg.vias().filter(|v| self.is_local(v.host, v.port));
        let Some(first) = ours.next() else {
            return false;
        };
        let h = format!("{:016x}", self.loop_hash(msg));
        std::iter::once(first).chain(ours).any(|v| {
            v.branch
                .and_then(|b| b.strip_prefix(BRANCH_PREFIX.as_bytes()))
                .is_some_and(|rest| rest.starts_with(h.as_bytes()))
        })
    }

    fn on_invite(
        &mut self,
        now: Instant,
        sid: u64,
        source: Peer,
        msg: Message,
        shared: Arc<Message>,
    ) {
        // 100 Trying at once: this proxy always runs a hunt that may take time (§16.2).
        self.respond_local(now, sid, 100, "Trying", &[]);
        let cid = self.id();
        // Call-ID and the caller's tag in one buffer; every later clone (branches, events)
        // shares it.
        let (call_id, caller_from_tag) = {
            let (id, tag) = (msg.call_id(), msg.from_tag().unwrap_or(b""));
            let mut both = Vec::with_capacity(id.len() + tag.len());
            both.extend_from_slice(id);
            both.extend_from_slice(tag);
            let both = Bytes::from(both);
            (both.slice(..id.len()), both.slice(id.len()..))
        };
        let local_tag = local_tag(&self.key, &msg);
        self.calls.insert(
            cid,
            Call {
                server: sid,
                invite: Some(shared),
                call_id,
                caller_peer: source,
                state: CallState::Deciding,
                plan: ForkPlan::default(),
                group: 0,
                member: 0,
                branches: Vec::new(),
                attempts: 0,
                started: now,
                first_ring: None,
                answered: None,
                answered_target: None,
                cap_deadline: None,
                best: None,
                last_outcome: None,
                cancelled: false,
                caller_from_tag,
                linger_until: None,
                scheduled: None,
                sent_ringing: false,
                local_tag,
                dialog: None,
                forward_next: VecDeque::new(),
                restore_from: None,
                hangup_at: None,
                redirects: 0,
            },
        );
        if let Some(s) = self.servers.get_mut(&sid) {
            s.call = Some(cid);
        }
        self.events.push_back(Event::Incoming {
            call: CallHandle(cid),
            request: Box::new(msg),
            source,
        });
    }

    fn on_ack(&mut self, source: Peer, msg: Message) {
        // ACK for a 2xx: its own transaction, forwarded statelessly along the route set.
        if msg.to_tag().is_none() {
            self.stats.stray_acks += 1;
            return;
        }
        let (dest, pop, ruri) = match self.next_hop(&msg) {
            Some((dest, pop)) => (dest, pop, None),
            None => match self.dialog_route(&msg) {
                Some((dest, ruri)) => (dest, 0, Some(ruri)),
                None => {
                    self.stats.stray_acks += 1;
                    return;
                }
            },
        };
        let dest = self.leaving_from(dest, source.local);
        self.new_via(self.loop_hash(&msg), dest);
        let out = rewrite::forward_request(
            &msg,
            &ForwardRequest {
                request_uri: ruri.as_deref(),
                via: &self.via,
                pop_route: pop > 0,
                pop_second_route: pop > 1,
                ..Default::default()
            },
        );
        self.send(dest, out);
    }

    /// Loose routing (§16.4, §16.12): pop the Route entries that name us (one, or the two of
    /// a double Record-Route), then the next hop is the next Route entry or the Request-URI.
    /// Returns the hop and how many entries to pop.
    fn next_hop(&self, msg: &Message) -> Option<(Peer, u8)> {
        let mut routes = msg.routes();
        let first = routes.next();
        match first {
            Some(r) if self.uri_is_local(r) => {
                let mut pops = 1;
                let mut next = routes.next();
                if next.is_some_and(|n| self.uri_is_local(n)) {
                    pops = 2;
                    next = routes.next();
                }
                match next {
                    Some(next) => Some((Self::resolve_uri(next)?, pops)),
                    None => Some((Self::resolve_uri(msg.request_uri())?, pops)),
                }
            }
            _ => None,
        }
    }

    /// Route an in-dialog request that carries no Route naming us by the dialog Hotline
    /// answered: to the other side's remote target (its Contact), with the Request-URI set to
    /// it. Requests for dialogs Hotline does not know get nothing: it is no open relay.
    fn dialog_route(&self, msg: &Message) -> Option<(Peer, Bytes)> {
        let call = self.dialogs.get(&self.key.hash(&[msg.call_id()]))?;
        let c = self.calls.get(call)?;
        if c.call_id.as_ref() != msg.call_id() {
            return None;
        }
        let d = c.dialog.as_ref()?;
        let from = msg.from_tag().unwrap_or(b"");
        if from == c.caller_from_tag.as_ref() {
            Some((d.callee_peer, Bytes::copy_from_slice(d.callee_target())))
        } else if from == d.callee_tag() {
            Some((d.caller_peer, Bytes::copy_from_slice(d.caller_target())))
        } else {
            None
        }
    }

    fn forward_in_dialog(&mut self, now: Instant, source: Peer, msg: Message, key: u64) {
        let sid = self.new_server(now, source, Arc::new(msg.clone()), key);
        if msg.max_forwards() == Some(0) {
            self.respond_local(now, sid, 483, "Too Many Hops", &[]);
            return;
        }
        let (dest, pop, ruri) = match self.next_hop(&msg) {
            Some((dest, pop)) => (dest, pop, None),
            None => match self.dialog_route(&msg) {
                Some((dest, ruri)) => (dest, 0, Some(ruri)),
                None => {
                    self.respond_local(now, sid, 481, "Call/Transaction Does Not Exist", &[]);
                    return;
                }
            },
        };
        let dest = self.leaving_from(dest, source.local);
        let cid = self.new_via(self.loop_hash(&msg), dest);
        let out = rewrite::forward_request(
            &msg,
            &ForwardRequest {
                request_uri: ruri.as_deref(),
                via: &self.via,
                pop_route: pop > 0,
                pop_second_route: pop > 1,
                source: Some(source.addr),
                ..Default::default()
            },
        );
        let out = Bytes::from(out);
        let sent = Sent::new(out, msg.call_id(), msg.cseq().1);
        self.note_cseq(&msg);
        if msg.method() == Some(Method::Bye) && !self.note_bye(now, &msg) {
            self.events.push_back(Event::ForeignBye {
                call_id: Bytes::copy_from_slice(msg.call_id()),
                from_tag: Bytes::copy_from_slice(msg.from_tag().unwrap_or(b"")),
                to_tag: Bytes::copy_from_slice(msg.to_tag().unwrap_or(b"")),
            });
        }
        if let Some(s) = self.servers.get_mut(&sid) {
            s.call = Some(cid);
        }
        self.start_client(now, cid, sent, dest, Owner::Relay { server: sid }, None);
    }

    /// A BYE through us ends the call it belongs to. Returns false when no call of ours has
    /// this Call-ID (the dialog is another node's).
    fn note_bye(&mut self, now: Instant, bye: &Message) -> bool {
        let h = self.key.hash(&[bye.call_id()]);
        let Some(&call) = self.dialogs.get(&h) else {
            return false;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.call_id.as_ref() != bye.call_id() {
            return false;
        }
        if c.state != CallState::Answered {
            return true;
        }
        // Only a BYE of the answered dialog ends the call: a second 2xx (forked, racing)
        // made a dialog of its own, with the same Call-ID but another callee tag.
        let Some(callee_tag) = c.dialog.as_ref().map(|d| d.callee_tag()) else {
            return true;
        };
        let from = bye.from_tag().unwrap_or(b"");
        let to = bye.to_tag().unwrap_or(b"");
        let hangup = if from == c.caller_from_tag.as_ref() && to == callee_tag {
            Hangup::Caller
        } else if from == callee_tag && to == c.caller_from_tag.as_ref() {
            Hangup::Callee
        } else {
            return true;
        };
        c.state = CallState::Ended;
        c.linger_until = Some(now + self.cfg.dialog_linger);
        let info = c.info(CallHandle(call), now, 200, hangup);
        self.events.push_back(Event::CallEnded(info));
        let dl = c.linger_until;
        self.schedule(TimerRef::Call(call), dl);
        true
    }

    fn on_cancel(&mut self, now: Instant, source: Peer, msg: Message, key: u64) {
        // The INVITE it cancels has the same branch and sent-by (§9.2).
        let via = msg.top_via();
        let invite_key = self.key.hash(&[
            via.branch.unwrap_or(b""),
            via.host,
            &via.port.unwrap_or(5060).to_be_bytes(),
            b"INVITE",
        ]);
        let sid = self.new_server(now, source, Arc::new(msg), key);
        let Some(&inv_sid) = self.server_keys.get(&invite_key) else {
            self.respond_local(now, sid, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        };
        self.respond_local(now, sid, 200, "OK", &[]);
        let call = self.servers.get(&inv_sid).and_then(|s| s.call);
        let Some(call) = call else { return };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(c.state, CallState::Deciding | CallState::Hunting) {
            return;
        }
        c.cancelled = true;
        c.best = Some((487, None));
        c.last_outcome = Some(Outcome::CancelledByCaller);
        self.cancel_branches(now, call, Outcome::CancelledByCaller);
        self.finish_unanswered(now, call, Some("Request Terminated"));
    }

    // ----- the hunt ---------------------------------------------------------------------------

    /// Start branches until something is ringing or the plan is exhausted.
    fn advance_hunt(
        &mut self,
        now: Instant,
        call: u64,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
    ) {
        let mut capped = false;
        loop {
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            if c.state != CallState::Hunting {
                return;
            }
            if c.branches.iter().any(|b| b.state != BranchState::Done) {
                return;
            }
            if c.cap_deadline.is_some_and(|d| now >= d) {
                c.last_outcome = Some(Outcome::NoAnswer);
                capped = true;
                break;
            }
            let step = (c.group, c.member);
            // A forward by cause first, then the next target (a sequential group) or all of a
            // parallel group: no Vec for one.
            let mut forwarded = false;
            let (one, all): (Option<BranchTarget>, Vec<BranchTarget>) =
                if let Some(t) = c.forward_next.pop_front() {
                    forwarded = true;
                    (Some(t), Vec::new())
                } else if let Some(group) = c.plan.groups.get(c.group) {
                    if group.parallel {
                        let t = group.targets.clone();
                        c.group += 1;
                        c.member = 0;
                        (None, t)
                    } else if let Some(t) = group.targets.get(c.member) {
                        let t = t.clone();
                        c.member += 1;
                        if c.member >= group.targets.len() {
                            c.group += 1;
                            c.member = 0;
                        }
                        (Some(t), Vec::new())
                    } else {
                        c.group += 1;
                        c.member = 0;
                        continue;
                    }
                } else {
                    break;
                };
            // Every target of the step is asked first: if the user must wait for one, none
            // starts and the step is taken again on resume_hunt (a forward target goes back
            // to the front of its queue).
            let first = one.as_ref().map(|t| gate(CallHandle(call), t.tag));
            let rest: Vec<Admission> = all.iter().map(|t| gate(CallHandle(call), t.tag)).collect();
            if first == Some(Admission::Wait) || rest.contains(&Admission::Wait) {
                if let Some(c) = self.calls.get_mut(&call) {
                    (c.group, c.member) = step;
                    if forwarded {
                        if let Some(t) = one {
                            c.forward_next.push_front(t);
                        }
                    }
                }
                return;
            }
            let mut started = 0;
            let mut stop = false;
            for (t, admission) in one.into_iter().zip(first).chain(all.into_iter().zip(rest)) {
                if admission == Admission::Admit {
                    self.start_branch(now, call, t);
                    started += 1;
                } else if let Some(c) = self.calls.get_mut(&call) {
                    c.attempts += 1;
                    let attempt = c.attempts;
                    let outcome = if c.plan.limit_is_busy {
                        Outcome::Busy
                    } else {
                        Outcome::LimitReached
                    };
                    c.last_outcome = Some(outcome);
                    if better(486, c.best.as_ref().map(|b| b.0)) {
                        c.best = Some((486, None));
                    }
                    // Nothing else of this group rings and the plan does not move on for
                    // this cause: the hunt ends here, unless the target forwards on it.
                    if let Some(f) = take_forward(c, t.tag, outcome) {
                        c.forward_next.push_back(f);
                    } else {
                        stop = !outcome.advances(&c.plan.advance);
                    }
                    self.events.push_back(Event::AttemptEnded(AttemptInfo {
                        call: CallHandle(call),
                        attempt,
                        target: t.tag,
                        started: now,
                        first_ring: None,
                        answered: None,
                        ended: now,
                        code: 486,
                        outcome,
                    }));
                }
            }
            if started > 0 {
                return;
            }
            if stop {
                break;
            }
        }
        if self.arm_fallback(call, capped) {
            // Once: `arm_fallback` took it.
            return self.advance_hunt(now, call, gate);
        }
        self.finish_unanswered(now, call, None);
    }

    /// The hunt of `call` ended unanswered (`capped`: by the wait cap). If the plan has a
    /// fallback target not tried yet, and the caller is still there, make it the only group
    /// left (the cap no longer applies: it has its own ring timeout) and say so; the caller
    /// then resumes the hunt.
    fn arm_fallback(&mut self, call: u64, capped: bool) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.state != CallState::Hunting || c.cancelled || (capped && c.plan.cap_skips_fallback) {
            return false;
        }
        // The destination for the cause the hunt ended with, else the on_fail target.
        let cause = if capped {
            Outcome::NoAnswer
        } else {
            c.last_outcome.unwrap_or(Outcome::NoAnswer)
        };
        let Some(t) = c
            .plan
            .fallback_by_cause
            .take_for(cause)
            .or_else(|| c.plan.fallback.take())
        else {
            return false;
        };
        c.cap_deadline = None;
        c.plan.groups.push(ForkGroup {
            parallel: false,
            targets: vec![t],
        });
        c.group = c.plan.groups.len() - 1;
        c.member = 0;
        true
    }

    fn start_branch(&mut self, now: Instant, call: u64, mut target: BranchTarget) {
        let Some((lh, inbound)) = self
            .calls
            .get(&call)
            .and_then(|c| Some((self.loop_hash(c.invite.as_deref()?), c.caller_peer.local)))
        else {
            return;
        };
        target.dest = self.leaving_from(target.dest, inbound);
        let cid = self.new_via(lh, target.dest);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(invite) = c.invite.as_deref() else {
            return;
        };
        if c.plan.history_info {
            history_info(&mut self.history, invite.request_uri(), c, &target.uri);
        }
        if let Some(d) = &c.plan.diversion {
            diversion(&mut self.diversion, d, c);
        }
        let history = c.plan.history_info.then_some(self.history.as_slice());
        let diversion = c
            .plan
            .diversion
            .is_some()
            .then_some(self.diversion.as_slice());
        let rr_in = self.record_route(c.caller_peer, target.dest.transport);
        // Out through another listen address than the call came in on (another IP family,
        // another network): double Record-Route (RFC 5658), the callee's side on top, so each
        // side reaches us at the address it can.
        let rr_double;
        let rr: &str = if target.dest.local == c.caller_peer.local {
            rr_in
        } else {
            let out = self.iface(target.dest.local);
            let both_tcp = c.caller_peer.transport == Transport::Tcp
                && target.dest.transport == Transport::Tcp;
            let top = if both_tcp { &out.rr_tcp } else { &out.rr_udp };
            rr_double = format!("{top}, {rr_in}");
            &rr_double
        };
        let pop = invite.routes().next().is_some_and(|r| self.uri_is_local(r));
        // 来电显示: what this callee is shown as the caller.
        let shown = c
            .plan
            .caller_id_by_target
            .iter()
            .find(|(t, _)| *t == target.tag)
            .map_or(&c.plan.caller_id, |(_, p)| p);
        let from = shown.from.as_ref().map(|(display, user)| {
            let mut v = Vec::with_capacity(64);
            v.push(b'"');
            v.extend_from_slice(display);
            v.extend_from_slice(b"\" <sip:");
            v.extend_from_slice(user);
            v.push(b'@');
            v.extend_from_slice(self.iface(target.dest.local).sent_by.as_bytes());
            v.push(b'>');
            if let Some(tag) = invite.from_tag() {
                v.extend_from_slice(b";tag=");
                v.extend_from_slice(tag);
            }
            v
        });
        let asserted = shown.asserted.as_deref();
        let mut remove: Vec<&str> = Vec::new();
        let drop_asserted = asserted.is_some() || shown.hide_asserted;
        let remove_headers: &[&str] = if from.is_some() || drop_asserted {
            remove.extend(c.plan.remove_headers.iter().copied());
            if from.is_some() {
                remove.push("From");
            }
            if drop_asserted {
                remove.push("P-Asserted-Identity");
            }
            &remove
        } else {
            &c.plan.remove_headers
        };
        // The plan's headers plus Diversion and History-Info (and the shown caller): on the
        // stack unless the plan has many.
        let n = c.plan.add_headers.len()
            + usize::from(history.is_some())
            + usize::from(diversion.is_some())
            + usize::from(from.is_some())
            + usize::from(asserted.is_some());
        let mut inline: [(&str, &[u8]); 8] = [("", &[]); 8];
        let mut spilled: Vec<(&str, &[u8])> = Vec::new();
        let extra = c
            .plan
            .add_headers
            .iter()
            .map(|(n, v)| (*n, v.as_slice()))
            .chain(diversion.map(|d| ("Diversion", d)))
            .chain(history.map(|h| ("History-Info", h)))
            .chain(from.as_deref().map(|f| ("From", f)))
            .chain(asserted.map(|a| ("P-Asserted-Identity", a)));
        let add: &[(&str, &[u8])] = if n <= inline.len() {
            for (slot, h) in inline.iter_mut().zip(extra) {
                *slot = h;
            }
            &inline[..n]
        } else {
            spilled.extend(extra);
            &spilled
        };
        let out = rewrite::forward_request(
            invite,
            &ForwardRequest {
                request_uri: Some(&target.uri),
                via: &self.via,
                record_route: Some(rr.as_bytes()),
                pop_route: pop,
                pop_second_route: false,
                source: Some(c.caller_peer.addr),
                add_headers: add,
                remove_headers,
            },
        );
        let out = Bytes::from(out);
        // The call's Call-ID is shared (cloned), not copied, by its branches.
        let sent = Sent {
            bytes: out,
            call_id: c.call_id.clone(),
            method: Method::Invite,
            parsed: None,
        };
        self.start_client(now, cid, sent, target.dest, Owner::Branch { call }, None);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.attempts += 1;
        let attempt = c.attempts;
        let ring_deadline = if c.plan.ring_from_18x {
            None
        } else {
            Some(now + target.ring_timeout.min(TIMER_C))
        };
        self.events.push_back(Event::AttemptStarted {
            call: CallHandle(call),
            attempt,
            target: target.tag,
        });
        c.branches.push(Branch {
            client: cid,
            target,
            attempt,
            state: BranchState::Trying,
            started: now,
            first_ring: None,
            ring_deadline,
            cancel_pending: None,
            cancel_sent: false,
            trying: false,
            reported: false,
            ended: None,
        });
        let dl = call_deadline(c);
        self.schedule(TimerRef::Call(call), dl);
    }

    /// Cancel every branch of `call` that has no final response yet.
    fn cancel_branches(&mut self, now: Instant, call: u64, why: Outcome) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let mut to_cancel = Vec::new();
        for b in c.branches.iter_mut() {
            if b.state == BranchState::Done {
                continue;
            }
            b.cancel_pending = Some(why);
            if (b.state == BranchState::Ringing || b.trying) && !b.cancel_sent {
                b.cancel_sent = true;
                to_cancel.push(b.client);
            }
        }
        for cid in to_cancel {
            self.send_cancel(now, cid);
        }
        // Branches are reported as ended now: the hunt does not wait for their 487.
        self.report_pending(now, call);
    }

    fn report_pending(&mut self, now: Instant, call: u64) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        for b in c.branches.iter_mut() {
            if let (Some(why), false) = (b.cancel_pending, b.reported) {
                b.reported = true;
                b.state = BranchState::Done;
                let code = if why == Outcome::NoAnswer { 408 } else { 487 };
                b.ended = Some((why, code));
                self.events
                    .push_back(Event::AttemptEnded(b.info(call, now, None, code, why)));
            }
        }
    }

    fn send_cancel(&mut self, now: Instant, cid: u64) {
        let id = self.id();
        let give_up = now + self.cfg.timers.t1 * 64;
        let Some(ct) = self.clients.get_mut(&cid) else {
            return;
        };
        let dest = ct.dest;
        let Some(invite) = ct.sent.message() else {
            return;
        };
        let cancel = Bytes::from(rewrite::cancel_for(invite));
        let sent = Sent::new(cancel, invite.call_id(), Method::Cancel);
        ct.give_up_at = Some(give_up);
        self.schedule(TimerRef::Client(cid), Some(give_up));
        self.cancels.insert(cid, id);
        self.start_client(now, id, sent, dest, Owner::Local, Some(cid));
    }

    fn finish_unanswered(&mut self, now: Instant, call: u64, reason: Option<&str>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if matches!(c.state, CallState::Answered | CallState::Ended) {
            return;
        }
        c.state = CallState::Ended;
        c.linger_until = Some(now);
        let sid = c.server;
        let (code, bytes) = match (c.plan.fail_code, c.best.clone()) {
            (_, Some((code, b))) if c.cancelled => (code, b),
            (Some(code), _) => (code, None),
            (None, Some((code, b))) => (code, b),
            (None, None) => (480, None),
        };
        let info = c.info(CallHandle(call), now, code, Hangup::System);
        match bytes {
            Some(b) => self.respond(now, sid, code, b),
            None => {
                let reason = reason.unwrap_or_else(|| default_reason(code)).to_owned();
                let tag = self.calls.get(&call).map(|c| c.local_tag);
                let server = self.servers.get(&sid);
                let request = server.and_then(|s| s.request.as_deref());
                if let (Some(s), Some(request), Some(tag)) = (server, request, tag) {
                    let bytes = rewrite::response(
                        request,
                        code,
                        &reason,
                        Some(&tag),
                        Some(s.source.addr),
                        &[],
                    );
                    self.respond(now, sid, code, bytes);
                }
            }
        }
        self.events.push_back(Event::CallEnded(info));
        let dl = Some(now);
        self.schedule(TimerRef::Call(call), dl);
    }

    // ----- responses --------------------------------------------------------------------------

    fn on_response(&mut self, now: Instant, msg: Message) {
        let via = msg.top_via();
        let Some(cid) = via.branch.and_then(Self::branch_id) else {
            self.stats.dropped_responses += 1;
            return;
        };
        if !self.is_local(via.host, via.port) {
            self.stats.dropped_responses += 1;
            return;
        }
        let Some(code) = msg.status() else { return };
        // A CANCEL shares its INVITE's branch: the CSeq method tells them apart (§17.1.3).
        let cid = if msg.cseq().1 == Method::Cancel {
            match self.cancels.get(&cid) {
                Some(&c) => c,
                None => {
                    self.stats.dropped_responses += 1;
                    return;
                }
            }
        } else {
            cid
        };
        let Some(ct) = self.clients.get_mut(&cid) else {
            if self.client_tomb(cid).is_some() {
                self.tomb_response(now, cid, code, msg);
                return;
            }
            // No transaction: a late 2xx retransmission is still relayed upstream (§16.7).
            if (200..300).contains(&code) && msg.cseq().1 == Method::Invite {
                self.forward_stray_2xx(&msg);
            } else {
                self.stats.dropped_responses += 1;
            }
            return;
        };
        if ct.sent.call_id.as_ref() != msg.call_id() || ct.sent.method != msg.cseq().1 {
            self.stats.dropped_responses += 1;
            return;
        }
        let verdict = match &mut ct.kind {
            ClientKind::Invite(t) => t.on_response(code, now),
            ClientKind::NonInvite(t) => t.on_response(code, now),
        };
        let owner = ct.owner;
        let dest = ct.dest;
        // Timer C as a transaction guarantee: a branch that rang can never outlive this,
        // whatever happens to its call (the call logic cancels it much earlier).
        if (100..200).contains(&code) && ct.give_up_at.is_none() {
            if let ClientKind::Invite(_) = ct.kind {
                let give_up = now + TIMER_C + self.cfg.timers.t1 * 64;
                ct.give_up_at = Some(give_up);
                self.schedule(TimerRef::Client(cid), Some(give_up));
            }
        }
        match verdict {
            ClientVerdict::Absorb => {
                self.stats.retransmissions_absorbed += 1;
            }
            ClientVerdict::Retransmit(b) => {
                self.stats.retransmissions_absorbed += 1;
                self.send(dest, b);
            }
            ClientVerdict::PassUpSendAck => {
                if let Some(ct) = self.clients.get_mut(&cid) {
                    let Some(invite) = ct.sent.message() else {
                        return;
                    };
                    let ack = Bytes::from(rewrite::ack_for(invite, &msg));
                    if let ClientKind::Invite(t) = &mut ct.kind {
                        t.set_ack(ack.clone());
                    }
                    self.send(dest, ack);
                }
                self.pass_up(now, cid, owner, code, msg);
            }
            ClientVerdict::PassUp => self.pass_up(now, cid, owner, code, msg),
        }
        self.schedule_client(cid);
    }

    /// A response for a finished client transaction ([`ClientTomb`]): what the machine did in
    /// its last state.
    fn tomb_response(&mut self, now: Instant, cid: u64, code: u16, msg: Message) {
        let Some(t) = self.client_tomb(cid) else {
            return;
        };
        if t.call_id != self.key.hash(&[msg.call_id()]) || t.method != msg.cseq().1 {
            self.stats.dropped_responses += 1;
            return;
        }
        match (&t.last, code) {
            // RFC 6026 §7.2: 2xx retransmissions (or 2xx of other forks) go to the call.
            (&ClientLast::Accepted { owner }, 200..=299) => {
                self.pass_up(now, cid, owner, code, msg)
            }
            (ClientLast::Completed { ack, dest }, 300..=699) => {
                let (ack, dest) = (ack.clone(), *dest);
                self.stats.retransmissions_absorbed += 1;
                if let Some(ack) = ack {
                    self.send(dest, ack);
                }
            }
            _ => self.stats.retransmissions_absorbed += 1,
        }
    }

    fn forward_stray_2xx(&mut self, msg: &Message) {
        // Our Via is on top; the next one says where it goes.
        let Some(next) = msg.vias().nth(1) else {
            return;
        };
        let Some(ip) = std::str::from_utf8(next.received.unwrap_or(next.host))
            .ok()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        else {
            return;
        };
        let port = match next.rport {
            Some(Some(p)) => p,
            _ => next.port.unwrap_or(5060),
        };
        let transport = if eq_ci(next.transport, b"TCP") {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        self.stats.extra_2xx += 1;
        let out = rewrite::forward_response(msg);
        let dest = Peer::new(transport, SocketAddr::new(ip, port));
        let dest = self.leaving_from(dest, 0);
        self.send(dest, out);
    }

    fn pass_up(&mut self, now: Instant, cid: u64, owner: Owner, code: u16, msg: Message) {
        match owner {
            Owner::Local => {}
            Owner::Relay { server } => {
                if code == 100 {
                    return;
                }
                let out = rewrite::forward_response(&msg);
                self.respond(now, server, code, out);
            }
            Owner::Branch { call } if !self.calls.contains_key(&call) => {
                // The call is gone (it ended while this branch was still trying): a late
                // provisional means the target is ringing for nobody. Cancel it.
                if (100..200).contains(&code) && !self.cancels.contains_key(&cid) {
                    self.send_cancel(now, cid);
                } else if (200..300).contains(&code) {
                    // The call's linger is over but the branch is still in Accepted: a 2xx
                    // retransmission (the target missed the ACK) or a late 2xx after a
                    // CANCEL is still forwarded, by its Via (RFC 6026 §7.2, §16.7 step 5),
                    // as the live call did and as it is once Timer M has ended the branch.
                    self.forward_stray_2xx(&msg);
                }
            }
            Owner::Branch { call } => self.branch_response(now, call, cid, code, msg),
        }
    }

    fn branch_response(&mut self, now: Instant, call: u64, cid: u64, code: u16, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(bi) = c.branches.iter().position(|b| b.client == cid) else {
            return;
        };
        let sid = c.server;
        if code < 200 {
            if code == 100 {
                // A 100 is enough to cancel a branch Hotline gave up on (§9.1).
                let b = &mut c.branches[bi];
                b.trying = true;
                if b.cancel_pending.is_some() && !b.cancel_sent {
                    b.cancel_sent = true;
                    self.send_cancel(now, cid);
                }
                return;
            }
            let b = &mut c.branches[bi];
            let first = b.first_ring.is_none();
            if first {
                b.first_ring = Some(now);
                if c.plan.ring_from_18x && b.cancel_pending.is_none() {
                    b.ring_deadline = Some(now + b.target.ring_timeout.min(TIMER_C));
                }
            }
            if b.state == BranchState::Trying {
                b.state = BranchState::Ringing;
            }
            // A branch Hotline gave up on before it rang: cancel it now (§9.1).
            if b.cancel_pending.is_some() && !b.cancel_sent {
                b.cancel_sent = true;
                self.send_cancel(now, cid);
                return;
            }
            if b.cancel_pending.is_some() || c.state != CallState::Hunting {
                return;
            }
            if c.first_ring.is_none() {
                c.first_ring = Some(now);
            }
            let dl = call_deadline(c);
            let suppress = c.plan.suppress_early_media && !msg.body().is_empty();
            if suppress {
                if !c.sent_ringing {
                    c.sent_ringing = true;
                    let tag = c.local_tag;
                    let server = self.servers.get(&sid);
                    if let Some((s, request)) =
                        server.and_then(|s| Some((s, s.request.as_deref()?)))
                    {
                        let bytes = rewrite::response(
                            request,
                            180,
                            "Ringing",
                            Some(&tag),
                            Some(s.source.addr),
                            &[],
                        );
                        self.respond(now, sid, 180, bytes);
                    }
                }
            } else {
                let out = to_caller(&msg, c.restore_from.as_ref());
                self.respond(now, sid, code, out);
            }
            self.schedule(TimerRef::Call(call), dl);
            return;
        }
        if (200..300).contains(&code) {
            let b = &mut c.branches[bi];
            let already = c.state == CallState::Answered || b.state == BranchState::Done;
            b.state = BranchState::Done;
            let out = to_caller(&msg, c.restore_from.as_ref());
            if already || c.state != CallState::Hunting {
                // A second 2xx (another branch, or after CANCEL): relayed so the caller's
                // UA can ACK and BYE it.
                self.stats.extra_2xx += 1;
                self.respond(now, sid, code, out);
                return;
            }
            b.reported = true;
            let info = b.info(call, now, Some(now), code, Outcome::Answered);
            let target = b.target.tag;
            let callee_peer = b.target.dest;
            let callee_target = msg
                .contacts()
                .next()
                .and_then(addr_spec)
                .unwrap_or(&b.target.uri);
            // From here on only the dialog is needed: the INVITE is dropped.
            let Some(invite) = c.invite.take() else {
                return;
            };
            let caller_target = invite
                .contacts()
                .next()
                .and_then(addr_spec)
                .unwrap_or_else(|| invite.request_uri());
            let (buf, ends) = DialogSides::pack(
                invite.from_value(),
                msg.to_value(),
                caller_target,
                msg.to_tag().unwrap_or(b""),
                callee_target,
            );
            c.dialog = Some(DialogSides {
                buf,
                ends,
                caller_cseq: invite.cseq().0,
                callee_cseq: 0,
                caller_peer: c.caller_peer,
                callee_peer,
            });
            c.state = CallState::Answered;
            c.answered = Some(now);
            c.hangup_at = c.plan.max_duration.map(|d| now + d);
            // The rest of the plan is never used again.
            c.plan.groups = Vec::new();
            c.plan.add_headers = Vec::new();
            c.answered_target = Some(target);
            c.last_outcome = Some(Outcome::Answered);
            if c.first_ring.is_none() {
                c.first_ring = b.first_ring;
            }
            self.dialogs.insert(self.key.hash(&[msg.call_id()]), call);
            self.events.push_back(Event::AttemptEnded(info));
            self.events.push_back(Event::Answered {
                call: CallHandle(call),
                target,
            });
            // Hunting is over: the others lose.
            if let Some(c) = self.calls.get_mut(&call) {
                for b in c.branches.iter_mut() {
                    if b.state != BranchState::Done && b.cancel_pending.is_none() {
                        b.cancel_pending = Some(Outcome::CancelledByHunt);
                    }
                }
            }
            self.cancel_branches(now, call, Outcome::CancelledByHunt);
            self.respond(now, sid, code, out);
            let dl = self.calls.get(&call).and_then(call_deadline);
            self.schedule(TimerRef::Call(call), dl);
            return;
        }
        // Final failure on this branch.
        if c.branches[bi].state == BranchState::Done {
            return;
        }
        let mut outcome = Outcome::from_code(code);
        if outcome == Outcome::Redirected && c.state == CallState::Hunting {
            if c.redirects < self.cfg.max_redirects {
                c.redirects += 1;
                let contacts: Vec<Bytes> = msg
                    .contacts()
                    .filter_map(addr_spec)
                    .map(Bytes::copy_from_slice)
                    .collect();
                if !contacts.is_empty() {
                    self.events.push_back(Event::Redirect {
                        call: CallHandle(call),
                        contacts,
                    });
                }
            } else {
                // Too deep: the redirect counts as a rejection.
                outcome = Outcome::Rejected;
            }
        }
        let best = if (300..400).contains(&code) {
            // Hotline recurses on 3xx itself; a 3xx is never relayed upstream, where a
            // carrier might follow its Contacts (abroad). It counts as "unavailable".
            (480, None)
        } else {
            let restore = self.calls.get(&call).and_then(|c| c.restore_from.clone());
            (code, Some(Bytes::from(to_caller(&msg, restore.as_ref()))))
        };
        self.branch_failed(now, call, bi, code, outcome, best);
    }

    /// Move on after a branch failed. The user's admission gate is not at hand here (the
    /// branch ended on a response), so the call waits for [`Proxy::pending_hunts`].
    fn continue_hunt(&mut self, call: u64) {
        self.pending.push(call);
    }

    /// Resume hunts that are waiting for the next target. The user calls this after draining
    /// events, with its admission gate (per-target concurrency limits).
    pub fn pending_hunts(&mut self, now: Instant, gate: &mut dyn FnMut(CallHandle, u32) -> bool) {
        self.pending_hunts_gated(now, &mut |c, t| gate(c, t).into());
    }

    /// [`Proxy::pending_hunts`] with a gate that may answer [`Admission::Wait`].
    pub fn pending_hunts_gated(
        &mut self,
        now: Instant,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
    ) {
        while let Some(call) = self.pending.pop() {
            self.advance_hunt(now, call, gate);
        }
    }

    /// Go on with a hunt whose gate answered [`Admission::Wait`]: the gate is asked again
    /// for the step it stopped at. Does nothing for a call that is not waiting (ended,
    /// answered, or ringing a branch).
    pub fn resume_hunt(
        &mut self,
        now: Instant,
        call: CallHandle,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
    ) {
        self.advance_hunt(now, call.0, gate);
    }

    // ----- timers -----------------------------------------------------------------------------

    fn server_timeout(&mut self, now: Instant, sid: u64, at: Instant) {
        // Most entries due at steady state are tombstones' last timers: looked up first.
        if let Some(t) = self.server_tomb(sid) {
            if t.deadline == at {
                self.drop_server(sid);
            }
            return;
        }
        let Some(s) = self.servers.get_mut(&sid) else {
            return;
        };
        if s.scheduled != Some(at) {
            return;
        }
        s.scheduled = None;
        let reply_to = s.reply_to;
        let action = match &mut s.kind {
            ServerKind::Invite(t) => t.on_timeout(now),
            ServerKind::NonInvite(t) => t.on_timeout(now),
        };
        match action {
            Some(TimerAction::Retransmit(b)) => {
                self.stats.retransmissions_sent += 1;
                self.send(reply_to, b);
            }
            Some(TimerAction::TimedOut) | Some(TimerAction::Terminated) => {
                self.drop_server(sid);
                return;
            }
            None => {}
        }
        self.schedule_server(sid);
    }

    fn remove_client(&mut self, cid: u64) {
        let cancel_of = if self.client_tomb(cid).is_some() {
            match self.tombs.remove(&cid) {
                Some(Tomb::Client(ClientTomb {
                    last: ClientLast::NonInvite { cancel_of },
                    ..
                })) => cancel_of,
                _ => None,
            }
        } else {
            self.clients.remove(&cid).and_then(|ct| ct.cancel_of)
        };
        if let Some(inv) = cancel_of {
            if self.cancels.get(&inv) == Some(&cid) {
                self.cancels.remove(&inv);
            }
        }
    }

    fn drop_server(&mut self, sid: u64) {
        let key = if self.server_tomb(sid).is_some() {
            match self.tombs.remove(&sid) {
                Some(Tomb::Server(t)) => Some(t.key),
                _ => None,
            }
        } else {
            self.servers.remove(&sid).map(|s| s.key)
        };
        if let Some(key) = key {
            if self.server_keys.get(&key) == Some(&sid) {
                self.server_keys.remove(&key);
            }
        }
    }

    fn client_timeout(&mut self, now: Instant, cid: u64, at: Instant) {
        if let Some(t) = self.client_tomb(cid) {
            if t.deadline == at {
                self.remove_client(cid);
            }
            return;
        }
        let Some(ct) = self.clients.get_mut(&cid) else {
            return;
        };
        if ct.scheduled != Some(at) {
            return;
        }
        ct.scheduled = None;
        if ct.give_up_at.is_some_and(|t| t <= now) {
            // Cancelled and still no final response after 64*T1: the branch was reported
            // when it was cancelled; just forget it.
            self.remove_client(cid);
            return;
        }
        let dest = ct.dest;
        let owner = ct.owner;
        let action = match &mut ct.kind {
            ClientKind::Invite(t) => t.on_timeout(now),
            ClientKind::NonInvite(t) => t.on_timeout(now),
        };
        match action {
            Some(TimerAction::Retransmit(b)) => {
                self.stats.retransmissions_sent += 1;
                self.send(dest, b);
            }
            Some(TimerAction::TimedOut) => {
                self.remove_client(cid);
                self.client_timed_out(now, cid, owner);
                return;
            }
            Some(TimerAction::Terminated) => {
                self.remove_client(cid);
                return;
            }
            None => {}
        }
        self.schedule_client(cid);
    }

    /// Timer B / F: no final response. Acts like a 408 from the next hop (§16.7 step 2? no:
    /// §16.8 — the proxy behaves as if a 408 was received).
    fn client_timed_out(&mut self, now: Instant, cid: u64, owner: Owner) {
        self.client_failed(now, cid, owner, (408, "Request Timeout"), 408);
    }

    /// Client transaction `cid` ended without a response from its peer (timeout or transport
    /// error): a relayed request is answered `local` upstream; a hunt branch fails as
    /// unreachable with `local`'s code and `best` as its candidate final for the caller.
    fn client_failed(
        &mut self,
        now: Instant,
        cid: u64,
        owner: Owner,
        local: (u16, &'static str),
        best: u16,
    ) {
        match owner {
            Owner::Local => {}
            Owner::Relay { server } => {
                self.respond_local(now, server, local.0, local.1, &[]);
            }
            Owner::Branch { call } => {
                let bi = self
                    .calls
                    .get(&call)
                    .and_then(|c| c.branches.iter().position(|b| b.client == cid));
                if let Some(bi) = bi {
                    self.branch_failed(now, call, bi, local.0, Outcome::Unreachable, (best, None));
                }
            }
        }
    }

    /// Branch `bi` of `call` failed with `code` (`best`: its candidate for the caller's final
    /// response). Reported once; then the hunt stops (cancelling the other branches) or moves on,
    /// as the plan says for `outcome`.
    fn branch_failed(
        &mut self,
        now: Instant,
        call: u64,
        bi: usize,
        code: u16,
        outcome: Outcome,
        best: (u16, Option<Bytes>),
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(b) = c.branches.get_mut(bi) else {
            return;
        };
        if b.state == BranchState::Done {
            return;
        }
        b.state = BranchState::Done;
        b.ended = Some((outcome, code));
        let tag = b.target.tag;
        if !b.reported {
            b.reported = true;
            let info = b.info(call, now, None, code, outcome);
            self.events.push_back(Event::AttemptEnded(info));
        }
        if c.state != CallState::Hunting {
            return;
        }
        c.last_outcome = Some(outcome);
        if better(best.0, c.best.as_ref().map(|b| b.0)) {
            c.best = Some(best);
        }
        if let Some(f) = take_forward(c, tag, outcome) {
            // The target forwards on this cause: its destination is next.
            c.forward_next.push_back(f);
            self.continue_hunt(call);
            return;
        }
        if !outcome.advances(&c.plan.advance) {
            // Stop the hunt here (e.g. a 6xx): cancel the rest, then the fallback if any.
            self.cancel_branches(now, call, Outcome::CancelledByHunt);
            if self.arm_fallback(call, false) {
                self.continue_hunt(call);
            } else {
                self.finish_unanswered(now, call, None);
            }
            return;
        }
        self.continue_hunt(call);
    }

    fn call_timeout(&mut self, now: Instant, call: u64, at: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.scheduled != Some(at) {
            return;
        }
        c.scheduled = None;
        match c.state {
            CallState::Ended => {
                if c.linger_until.is_some_and(|t| t <= now) {
                    let c = self.calls.remove(&call);
                    if let Some(c) = c {
                        let h = self.key.hash(&[&c.call_id]);
                        if self.dialogs.get(&h) == Some(&call) {
                            self.dialogs.remove(&h);
                        }
                    }
                    return;
                }
            }
            CallState::Hunting => {
                if c.cap_deadline.is_some_and(|d| d <= now) {
                    // The overall wait cap ends the hunt.
                    c.last_outcome = Some(Outcome::NoAnswer);
                    if c.best.is_none() {
                        c.best = Some((480, None));
                    }
                    self.cancel_branches(now, call, Outcome::NoAnswer);
                    if self.arm_fallback(call, true) {
                        // The cap ended the hunt; the fallback target still rings.
                        self.continue_hunt(call);
                        return;
                    }
                    self.finish_unanswered(now, call, Some("Temporarily Unavailable"));
                    return;
                }
                let mut expired = false;
                let mut expired_tags: Vec<u32> = Vec::new();
                for b in c.branches.iter_mut() {
                    if b.state != BranchState::Done
                        && b.cancel_pending.is_none()
                        && b.ring_deadline.is_some_and(|d| d <= now)
                    {
                        b.cancel_pending = Some(Outcome::NoAnswer);
                        expired = true;
                        expired_tags.push(b.target.tag);
                    }
                }
                let mut forwarded = false;
                for tag in expired_tags {
                    if let Some(f) = take_forward(c, tag, Outcome::NoAnswer) {
                        c.forward_next.push_back(f);
                        forwarded = true;
                    }
                }
                if expired {
                    c.last_outcome = Some(Outcome::NoAnswer);
                    if better(480, c.best.as_ref().map(|b| b.0)) {
                        c.best = Some((480, None));
                    }
                    let advance = c.plan.advance.no_answer;
                    self.cancel_branches(now, call, Outcome::NoAnswer);
                    let all_done = self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.branches.iter().all(|b| b.state == BranchState::Done));
                    if all_done {
                        if advance || forwarded || self.arm_fallback(call, false) {
                            self.continue_hunt(call);
                        } else {
                            self.finish_unanswered(now, call, None);
                        }
                    }
                }
            }
            CallState::Answered => {
                if c.hangup_at.is_some_and(|t| t <= now) {
                    self.hangup(now, CallHandle(call));
                    return;
                }
            }
            CallState::Deciding => {}
        }
        let dl = self.calls.get(&call).and_then(call_deadline);
        self.schedule(TimerRef::Call(call), dl);
    }
}

/// A branch's response on its way to the caller, with the caller's own From if a rewritten
/// one was shown to the callee.
fn to_caller(msg: &Message, restore_from: Option<&Bytes>) -> Vec<u8> {
    match restore_from {
        Some(f) => rewrite::forward_response_with_from(msg, f),
        None => rewrite::forward_response(msg),
    }
}

/// The forward of target `tag` for the cause of `outcome`, taken (used once per call).
fn take_forward(c: &mut Call, tag: u32, outcome: Outcome) -> Option<BranchTarget> {
    c.plan
        .forwards
        .iter_mut()
        .find(|(t, _)| *t == tag)
        .and_then(|(_, f)| f.take_for(outcome))
}

/// The earlier attempts of a call that the hunt moved on from (in order): target URI, how it
/// ended, the code.
fn moved_from(c: &Call) -> impl Iterator<Item = (&[u8], Outcome, u16)> + '_ {
    c.branches.iter().filter_map(|b| match b.ended {
        Some((o, code))
            if !matches!(
                o,
                Outcome::Answered | Outcome::CancelledByCaller | Outcome::CancelledByHunt
            ) =>
        {
            Some((b.target.uri.as_ref(), o, code))
        }
        _ => None,
    })
}

/// `uri` with `;name=value` added to its parameters (before any `?headers`).
fn push_uri_with(out: &mut Vec<u8>, uri: &[u8], param: &[u8]) {
    match uri.iter().position(|&b| b == b'?') {
        Some(q) => {
            out.extend_from_slice(&uri[..q]);
            out.extend_from_slice(param);
            out.extend_from_slice(&uri[q..]);
        }
        None => {
            out.extend_from_slice(uri);
            out.extend_from_slice(param);
        }
    }
}

/// History-Info (RFC 7044) of a branch to `target` of call `c`: the 400 number as index 1,
/// every earlier target as 1.1, 1.2 ... with the response that ended it as an escaped Reason
/// header field (`?Reason=SIP%3Bcause%3D486`; 408 for a ring timeout), then `target` with the
/// RFC 4458 `cause` URI parameter of the move: the last earlier attempt's (486 busy, 408 no
/// answer, 503 unreachable, 480 deflection), or RFC 8119's 380 (service number translation)
/// for the first target. Each is `mp=1`: mapped from the 400 number.
fn history_info(v: &mut Vec<u8>, ruri: &[u8], c: &Call, target: &[u8]) {
    v.clear();
    v.push(b'<');
    v.extend_from_slice(ruri);
    v.extend_from_slice(b">;index=1");
    let mut n = 0;
    let mut cause = CAUSE_SERVICE_NUMBER;
    for (uri, outcome, code) in moved_from(c) {
        n += 1;
        v.extend_from_slice(b", <");
        let sep: &[u8] = if uri.contains(&b'?') { b"&" } else { b"?" };
        v.extend_from_slice(uri);
        v.extend_from_slice(sep);
        v.extend_from_slice(format!("Reason=SIP%3Bcause%3D{code}>;index=1.{n};mp=1").as_bytes());
        cause = outcome.diversion_reason().1;
    }
    v.extend_from_slice(b", <");
    push_uri_with(v, target, format!(";cause={cause}").as_bytes());
    v.extend_from_slice(format!(">;index=1.{};mp=1", n + 1).as_bytes());
}

/// Diversion (RFC 5806) of a branch of call `c`: one entry per diversion, most recent first:
/// every earlier target with the reason the hunt left it (`user-busy`, `no-answer`,
/// `unavailable`, `deflection`), then the 400 number with `d.reason`.
fn diversion(v: &mut Vec<u8>, d: &Diversion, c: &Call) {
    v.clear();
    let earlier: Vec<(&[u8], Outcome, u16)> = moved_from(c).collect();
    for (uri, outcome, _) in earlier.iter().rev() {
        v.push(b'<');
        v.extend_from_slice(uri);
        v.extend_from_slice(b">;reason=");
        v.extend_from_slice(outcome.diversion_reason().0.as_bytes());
        v.extend_from_slice(b";counter=1, ");
    }
    v.extend_from_slice(&d.from);
    v.extend_from_slice(b";reason=");
    v.extend_from_slice(d.reason.as_bytes());
    v.extend_from_slice(b";counter=1");
}

fn call_deadline(c: &Call) -> Option<Instant> {
    match c.state {
        CallState::Ended => c.linger_until,
        CallState::Hunting => c
            .branches
            .iter()
            .filter(|b| b.state != BranchState::Done && b.cancel_pending.is_none())
            .filter_map(|b| b.ring_deadline)
            .chain(c.cap_deadline)
            .min(),
        CallState::Answered => c.hangup_at,
        CallState::Deciding => None,
    }
}

/// §16.7 step 6: 6xx beats everything, then the lowest class; 408/480 from timeouts rank
/// below real answers of the same class.
fn better(code: u16, best: Option<u16>) -> bool {
    let Some(best) = best else { return true };
    let rank = |c: u16| -> (u8, u16) {
        match c {
            600..=699 => (0, c),
            300..=399 => (1, c),
            400..=499 => (2, c),
            500..=599 => (3, c),
            _ => (4, c),
        }
    };
    let (rc, rb) = (rank(code), rank(best));
    rc.0 < rb.0 || (rc.0 == rb.0 && code != 408 && best == 408)
}

fn default_reason(code: u16) -> &'static str {
    match code {
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Call Failed",
    }
}

/// A To-tag for responses Hotline generates itself: stable per request, so retransmitted
/// requests get the same tag.
fn local_tag(key: &HashKey, req: &Message) -> LocalTag {
    let h = key.hash(&[req.call_id(), req.from_tag().unwrap_or(b""), b"hotline"]);
    let mut tag = [0u8; 18];
    tag[..2].copy_from_slice(b"hl");
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in tag[2..].iter_mut().enumerate() {
        *slot = DIGITS[((h >> (60 - 4 * i)) & 15) as usize];
    }
    LocalTag(tag)
}

/// `hl` + 16 hex digits: a To-tag of Hotline's own, kept inline.
#[derive(Clone, Copy)]
struct LocalTag([u8; 18]);

impl std::ops::Deref for LocalTag {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A 400 (or `code`) for bytes that did not parse: copy whatever Via, From, To, Call-ID and CSeq lines can
/// be found (a lenient line scan), so the sender can match it. Without a Via there is no way
/// to address a response, and nothing is sent.
fn bad_request(bytes: &[u8], code: u16, reason: &str, source: SocketAddr) -> Option<Vec<u8>> {
    // An oversize message is answered from its first part only.
    let bytes = &bytes[..bytes.len().min(16 * 1024)];
    let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    let mut out = Vec::with_capacity(256 + head.len());
    out.extend_from_slice(format!("SIP/2.0 {code} ").as_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut have_via = false;
    let mut first_via = true;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        let keep = [
            &b"via"[..],
            b"v",
            b"from",
            b"f",
            b"to",
            b"t",
            b"call-id",
            b"i",
            b"cseq",
        ]
        .iter()
        .any(|n| eq_ci(name, n));
        if !keep || line.len() > 2048 {
            continue;
        }
        let is_via = eq_ci(name, b"via") || eq_ci(name, b"v");
        out.extend_from_slice(line);
        if is_via && first_via {
            first_via = false;
            out.extend_from_slice(format!(";received={}", source.ip()).as_bytes());
        }
        have_via |= is_via;
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    have_via.then_some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// The addr-spec of a name-addr or addr-spec header value (`"A" <sip:a@h>;tag=x` → `sip:a@h`),
/// if it parses as a URI.
fn addr_spec(v: &[u8]) -> Option<&[u8]> {
    let spec = match v.iter().position(|&b| b == b'<') {
        Some(lt) => {
            let rest = &v[lt + 1..];
            &rest[..rest.iter().position(|&b| b == b'>')?]
        }
        // Without angle brackets, header parameters start at the first ';'.
        None => trim(&v[..v.iter().position(|&b| b == b';').unwrap_or(v.len())]),
    };
    Uri::parse(spec).map(|_| spec)
}
