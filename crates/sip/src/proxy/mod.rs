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
//!
//! # Layout
//! - this file: the public types ([`Event`], [`Peer`], [`Stats`] ...), [`Proxy`] and its
//!   entry points.
//! - `config`: [`ProxyConfig`]; `key`: the keyed hash ([`HashKey`]).
//! - `plan`: what the user decides for a call ([`ForkPlan`], [`Outcome`]).
//! - `addr`: which addresses are us, next hops, our Via and Record-Route.
//! - `txn_table`: server and client transactions, tombstones, timers.
//! - `request`: new requests, retransmissions, CANCEL; `response`: responses from next hops.
//! - `call`: a call from its INVITE to its end; `hunt`: its hunt; `branch`: building a
//!   branch's INVITE.
//! - `dialog`: answered dialogs (ACK, in-dialog requests, BYE); `adopt`: a dialog as bytes
//!   another node takes over; `local`: messages Hotline writes itself.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::idmap::IdMap;
use crate::msg::Message;
use crate::rewrite;
use crate::txn::{Reliability, State};

mod addr;
mod adopt;
mod branch;
mod call;
mod config;
mod dialog;
mod hunt;
mod key;
mod local;
mod plan;
mod request;
mod response;
mod txn_table;

use addr::Iface;
pub use adopt::DialogState;
use call::{Call, CallState};
pub use config::{ProxyConfig, SCANNERS};
pub use key::HashKey;
use local::bad_request;
pub use plan::{
    Advance, BranchTarget, ByCause, Diversion, ForkGroup, ForkPlan, Outcome, Presentation,
    CAUSE_SERVICE_NUMBER,
};
use txn_table::{ClientKind, ClientTxn, Owner, ServerTxn, TimerRef, Tomb};

/// Transport protocol of a peer (the one `Transport` of Hotline, shared with the routing
/// library through `hotline-types`).
pub use hotline_types::Transport;

/// What the transaction layer makes of a transport.
fn reliability(t: Transport) -> Reliability {
    if t.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
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
        /// The INVITE as received (shared with its server transaction: no copy).
        request: Arc<Message>,
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
                TimerRef::Server(_) | TimerRef::Client(_) => self.txn_timeout(now, r, at),
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
        c.hunt.route(plan);
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
            c.hunt.best = Some((code, None));
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
                c.hunt.best = Some((code, bytes));
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
                c.hunt.best = Some((code, None));
                c.hunt.plan.fail_code = None;
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

    /// Add redirect targets (after [`Event::Redirect`]) to be tried next, one at a time.
    pub fn add_targets(&mut self, call: CallHandle, targets: Vec<BranchTarget>) {
        let Some(c) = self.calls.get_mut(&call.0) else {
            return;
        };
        if c.state != CallState::Hunting || !c.hunt.add_targets(targets) {
            return;
        }
        if !self.pending.contains(&call.0) {
            self.pending.push(call.0);
        }
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
}
