//! The transaction table: live server and client transactions (RFC 3261 §17 machines from
//! [`crate::txn`]), the tombstones finished ones shrink to while their last timer runs, the
//! timer queues, and the one timeout routine both sides share.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::{Message, Method};
use crate::rewrite;
use crate::txn::{
    ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, State, TimerAction,
};

use super::plan::Outcome;
use super::{Peer, Proxy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum TimerRef {
    Server(u64),
    Client(u64),
    Call(u64),
}

impl TimerRef {
    fn id(self) -> u64 {
        match self {
            TimerRef::Server(id) | TimerRef::Client(id) | TimerRef::Call(id) => id,
        }
    }
}

/// What a live transaction's timer did.
enum Fired {
    Retransmit(Bytes),
    /// Timer B / F / H: no answer; a client transaction's owner learns of it.
    TimedOut(Option<Owner>),
    /// Its last timer ran out (or a cancelled branch was given up on).
    Ended,
    /// Nothing to do but wait for its next deadline.
    Waiting,
}

impl Fired {
    fn of(action: Option<TimerAction>, owner: Option<Owner>) -> Fired {
        match action {
            Some(TimerAction::Retransmit(b)) => Fired::Retransmit(b),
            Some(TimerAction::TimedOut) => Fired::TimedOut(owner),
            Some(TimerAction::Terminated) => Fired::Ended,
            None => Fired::Waiting,
        }
    }
}

pub(super) enum ServerKind {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

pub(super) struct ServerTxn {
    pub(super) key: u64,
    pub(super) kind: ServerKind,
    /// Where responses go (Via / rport / the connection it came on).
    pub(super) reply_to: Peer,
    /// The request, until a final response went out (only local responses need it; the
    /// transaction resends the stored bytes). Dropping it early keeps finished transactions
    /// waiting out timers J/L small.
    pub(super) request: Option<Arc<Message>>,
    pub(super) source: Peer,
    /// The call this INVITE started, or the client transaction a forwarded request went out on.
    pub(super) call: Option<u64>,
    pub(super) scheduled: Option<Instant>,
}

impl ServerTxn {
    /// Its timer, due at `at`: run if that is its live entry; responses go to `reply_to`.
    fn fire(&mut self, now: Instant, at: Instant) -> Option<(Fired, Peer)> {
        if self.scheduled != Some(at) {
            return None;
        }
        self.scheduled = None;
        let action = match &mut self.kind {
            ServerKind::Invite(t) => t.on_timeout(now),
            ServerKind::NonInvite(t) => t.on_timeout(now),
        };
        Some((Fired::of(action, None), self.reply_to))
    }
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
pub(super) struct ServerTomb {
    pub(super) key: u64,
    pub(super) reply_to: Peer,
    /// Non-INVITE Completed: the final response resent on a retransmitted request.
    pub(super) resend: Option<Bytes>,
    /// When it is forgotten; its live timer entry is exactly this instant.
    pub(super) deadline: Instant,
    /// Accepted / Confirmed (INVITE) or Completed (non-INVITE), for `transaction_states`.
    pub(super) state: State,
    pub(super) invite: bool,
}

/// A finished client transaction that only waits for its last timer (INVITE: M in Accepted,
/// D in Completed, or the give-up of a cancelled branch; non-INVITE: K in Completed).
/// Responses are matched as before (Call-ID, CSeq method) and handled as the machine did:
/// - INVITE Accepted: a 2xx goes up to the call (`owner`), or is forwarded by its Via once
///   the call is gone; anything else is absorbed;
/// - INVITE Completed: a retransmitted 300-699 gets `ack` again (to `dest`), the rest is
///   absorbed;
/// - non-INVITE Completed: everything is absorbed.
pub(super) struct ClientTomb {
    /// Keyed hash ([`super::HashKey`]) of the request's Call-ID: compared like the server transaction
    /// keys are (a secret key, so no peer can aim for a collision).
    pub(super) call_id: u64,
    pub(super) deadline: Instant,
    pub(super) method: Method,
    pub(super) last: ClientLast,
}

/// What a finished client transaction still needs, by its last state.
pub(super) enum ClientLast {
    /// INVITE, Accepted: 2xx go up to the owner (the call of the branch).
    Accepted { owner: Owner },
    /// INVITE, Completed: the ACK resent on a retransmitted 300-699, and where.
    Completed { ack: Option<Bytes>, dest: Peer },
    /// Non-INVITE, Completed. For a CANCEL: the INVITE transaction it cancelled (its
    /// `cancels` entry goes with it).
    NonInvite { cancel_of: Option<u64> },
}

impl ClientTomb {
    pub(super) fn state(&self) -> State {
        match self.last {
            ClientLast::Accepted { .. } => State::Accepted,
            ClientLast::Completed { .. } | ClientLast::NonInvite { .. } => State::Completed,
        }
    }
}

/// Finished transactions of both sides in one map (ids are unique across both): one table
/// sized for all of them wastes less than two half-filled ones.
pub(super) enum Tomb {
    Server(ServerTomb),
    Client(ClientTomb),
}

pub(super) enum ClientKind {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// What a client transaction sent, and what its responses are matched on (§17.1.3). Parsed
/// only when a CANCEL or an ACK has to be built from it: the common path never re-parses
/// Hotline's own output.
pub(super) struct Sent {
    pub(super) bytes: Bytes,
    pub(super) call_id: Bytes,
    pub(super) method: Method,
    /// Boxed: 520 bytes inline would make every live client transaction's map slot that
    /// much larger, and it is needed only for a CANCEL or a non-2xx ACK.
    pub(super) parsed: Option<Box<Message>>,
}

impl Sent {
    pub(super) fn new(bytes: Bytes, call_id: &[u8], method: Method) -> Sent {
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

    /// The CANCEL of this sent INVITE (§9.1): built from its bytes, parsed only if they are
    /// unusual; `None` if they do not parse either.
    pub(super) fn cancel(&mut self) -> Option<Vec<u8>> {
        rewrite::cancel_for_sent(&self.bytes).or_else(|| self.message().map(rewrite::cancel_for))
    }

    /// The ACK of this sent INVITE for the non-2xx `response` (§17.1.1.3), the same way.
    pub(super) fn ack(&mut self, response: &Message) -> Option<Vec<u8>> {
        rewrite::ack_for_sent(&self.bytes, response)
            .or_else(|| self.message().map(|m| rewrite::ack_for(m, response)))
    }
}

pub(super) struct ClientTxn {
    pub(super) kind: ClientKind,
    pub(super) sent: Sent,
    pub(super) dest: Peer,
    /// INVITE branches: the call. Non-INVITE: the server transaction to answer (0 = none, e.g. CANCEL).
    pub(super) owner: Owner,
    pub(super) scheduled: Option<Instant>,
    /// For a CANCEL: the INVITE transaction it cancels (whose branch it shares).
    pub(super) cancel_of: Option<u64>,
    /// For a cancelled INVITE: when to give up waiting for its final response (§9.1: 64*T1
    /// after the CANCEL). A target that ignores our CANCEL cannot hold state forever.
    pub(super) give_up_at: Option<Instant>,
}

impl ClientTxn {
    /// Its timer, due at `at`: run if that is its live entry; retransmissions go to `dest`.
    fn fire(&mut self, now: Instant, at: Instant) -> Option<(Fired, Peer)> {
        if self.scheduled != Some(at) {
            return None;
        }
        self.scheduled = None;
        if self.give_up_at.is_some_and(|t| t <= now) {
            // Cancelled and still no final response after 64*T1: the branch was reported
            // when it was cancelled; just forget it.
            return Some((Fired::Ended, self.dest));
        }
        let action = match &mut self.kind {
            ClientKind::Invite(t) => t.on_timeout(now),
            ClientKind::NonInvite(t) => t.on_timeout(now),
        };
        Some((Fired::of(action, Some(self.owner)), self.dest))
    }
}

#[derive(Clone, Copy)]
pub(super) enum Owner {
    Branch {
        call: u64,
    },
    Relay {
        server: u64,
    },
    /// A CANCEL or BYE Hotline generated itself; responses are absorbed.
    Local,
}

impl Proxy {
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

    pub(super) fn schedule(&mut self, r: TimerRef, at: Option<Instant>) {
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
    pub(super) fn schedule_expiry(&mut self, at: Instant, r: TimerRef) {
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
    pub(super) fn next_timer(&self) -> Option<(Instant, TimerRef)> {
        let tree = self.timers.first().copied();
        self.expiries
            .iter()
            .filter_map(|q| q.front().copied())
            .chain(tree)
            .min()
    }

    /// Remove `entry` (as returned by [`Proxy::next_timer`]) from where it is.
    pub(super) fn pop_timer(&mut self, entry: (Instant, TimerRef)) {
        for q in self.expiries.iter_mut() {
            if q.front() == Some(&entry) {
                q.pop_front();
                return;
            }
        }
        self.timers.pop_first();
    }

    /// A server transaction for `msg` (shared with its call for an INVITE).
    pub(super) fn new_server(
        &mut self,
        now: Instant,
        source: Peer,
        msg: Arc<Message>,
        key: u64,
    ) -> u64 {
        let sid = self.id();
        let rel = super::reliability(source.transport);
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

    /// Start a client transaction for `sent` and transmit it.
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        id: u64,
        sent: Sent,
        dest: Peer,
        owner: Owner,
        cancel_of: Option<u64>,
    ) {
        let rel = super::reliability(dest.transport);
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

    /// A request matched server transaction `sid`: a retransmission, or an ACK. Returns true
    /// for an ACK the transaction does not absorb because it is in Accepted (the ACK of the
    /// 2xx reusing the INVITE's branch): the caller forwards it like any ACK of a 2xx.
    pub(super) fn on_server_match(&mut self, now: Instant, sid: u64, method: Method) -> bool {
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

    /// Send a response on a server transaction. `bytes` is the complete response.
    pub(super) fn respond(&mut self, now: Instant, sid: u64, code: u16, bytes: impl Into<Bytes>) {
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

    /// Re-read a server transaction's deadline after an event; a transaction that has only
    /// its last timer left becomes a [`ServerTomb`].
    pub(super) fn schedule_server(&mut self, sid: u64) {
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

    pub(super) fn server_tomb(&self, id: u64) -> Option<&ServerTomb> {
        match self.tombs.get(&id) {
            Some(Tomb::Server(t)) => Some(t),
            _ => None,
        }
    }

    pub(super) fn client_tomb(&self, id: u64) -> Option<&ClientTomb> {
        match self.tombs.get(&id) {
            Some(Tomb::Client(t)) => Some(t),
            _ => None,
        }
    }

    /// As [`Proxy::schedule_server`], for a client transaction ([`ClientTomb`]).
    pub(super) fn schedule_client(&mut self, cid: u64) {
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

    pub(super) fn server_deadline(&self, sid: u64) -> Option<Instant> {
        self.servers.get(&sid).and_then(|s| match &s.kind {
            ServerKind::Invite(t) => t.deadline(),
            ServerKind::NonInvite(t) => t.deadline(),
        })
    }

    pub(super) fn client_deadline(&self, cid: u64) -> Option<Instant> {
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

    pub(super) fn send_cancel(&mut self, now: Instant, cid: u64) {
        let id = self.id();
        let give_up = now + self.cfg.timers.t1 * 64;
        let Some(ct) = self.clients.get_mut(&cid) else {
            return;
        };
        let dest = ct.dest;
        let Some(cancel) = ct.sent.cancel() else {
            return;
        };
        let sent = Sent::new(Bytes::from(cancel), &ct.sent.call_id, Method::Cancel);
        ct.give_up_at = Some(give_up);
        self.schedule(TimerRef::Client(cid), Some(give_up));
        self.cancels.insert(cid, id);
        self.start_client(now, id, sent, dest, Owner::Local, Some(cid));
    }

    pub(super) fn remove_client(&mut self, cid: u64) {
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

    pub(super) fn drop_server(&mut self, sid: u64) {
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

    /// Timer `r` of a server or client transaction, due at `at`. One routine for both sides:
    /// a tombstone is forgotten at its deadline; a live machine whose live entry this is runs
    /// its timer and retransmits, or ends (a client's timer B/F also fails the request it
    /// carried), or waits for its next deadline.
    pub(super) fn txn_timeout(&mut self, now: Instant, r: TimerRef, at: Instant) {
        // Most entries due at steady state are tombstones' last timers: looked up first.
        let tomb = match (r, self.tombs.get(&r.id())) {
            (TimerRef::Server(_), Some(Tomb::Server(t))) => Some(t.deadline),
            (TimerRef::Client(_), Some(Tomb::Client(t))) => Some(t.deadline),
            _ => None,
        };
        if let Some(deadline) = tomb {
            if deadline == at {
                self.forget(r);
            }
            return;
        }
        let fired = match r {
            TimerRef::Server(id) => self.servers.get_mut(&id).and_then(|s| s.fire(now, at)),
            TimerRef::Client(id) => self.clients.get_mut(&id).and_then(|c| c.fire(now, at)),
            TimerRef::Call(_) => None,
        };
        let Some((fired, dest)) = fired else {
            return;
        };
        match fired {
            Fired::Retransmit(b) => {
                self.stats.retransmissions_sent += 1;
                self.send(dest, b);
            }
            Fired::TimedOut(owner) => {
                self.forget(r);
                if let (TimerRef::Client(cid), Some(owner)) = (r, owner) {
                    self.client_timed_out(now, cid, owner);
                }
                return;
            }
            Fired::Ended => return self.forget(r),
            Fired::Waiting => {}
        }
        match r {
            TimerRef::Server(sid) => self.schedule_server(sid),
            TimerRef::Client(cid) => self.schedule_client(cid),
            TimerRef::Call(_) => {}
        }
    }

    /// Forget transaction `r` (live or tombstone) and its index entries.
    fn forget(&mut self, r: TimerRef) {
        match r {
            TimerRef::Server(sid) => self.drop_server(sid),
            TimerRef::Client(cid) => self.remove_client(cid),
            TimerRef::Call(_) => {}
        }
    }

    /// Timer B / F: no final response. Acts like a 408 from the next hop (§16.7 step 2? no:
    /// §16.8 — the proxy behaves as if a 408 was received).
    pub(super) fn client_timed_out(&mut self, now: Instant, cid: u64, owner: Owner) {
        self.client_failed(now, cid, owner, (408, "Request Timeout"), 408);
    }

    /// Client transaction `cid` ended without a response from its peer (timeout or transport
    /// error): a relayed request is answered `local` upstream; a hunt branch fails as
    /// unreachable with `local`'s code and `best` as its candidate final for the caller.
    pub(super) fn client_failed(
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
                let bi = self.calls.get(&call).and_then(|c| c.hunt.branch_of(cid));
                if let Some(bi) = bi {
                    self.branch_failed(now, call, bi, local.0, Outcome::Unreachable, (best, None));
                }
            }
        }
    }
}
