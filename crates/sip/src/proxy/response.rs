//! Responses from next hops: matching to the client transaction (§17.1.3), tombstones, stray
//! 2xx relay (§16.7 step 5), relayed requests, and a hunt branch's provisional, 2xx and failure.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::{Message, Method};
use crate::rewrite;
use crate::txn::ClientVerdict;

use super::call::{call_deadline, CallState};
use super::dialog::{addr_spec, DialogSides};
use super::hunt::Provisional;
use super::txn_table::{ClientKind, ClientLast, Owner, TimerRef};
use super::{eq_ci, CallHandle, Event, Peer, Proxy, Transport, TIMER_C};

/// A branch's response on its way to the caller, with the caller's own From if a rewritten
/// one was shown to the callee.
pub(super) fn to_caller(msg: &Message, restore_from: Option<&Bytes>) -> Vec<u8> {
    match restore_from {
        Some(f) => rewrite::forward_response_with_from(msg, f),
        None => rewrite::forward_response(msg),
    }
}

impl Proxy {
    pub(super) fn on_response(&mut self, now: Instant, msg: Message) {
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
                    let Some(ack) = ct.sent.ack(&msg) else {
                        return;
                    };
                    let ack = Bytes::from(ack);
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

    /// A response for a finished client transaction ([`super::txn_table::ClientTomb`]): what
    /// the machine did in its last state.
    pub(super) fn tomb_response(&mut self, now: Instant, cid: u64, code: u16, msg: Message) {
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

    pub(super) fn forward_stray_2xx(&mut self, msg: &Message) {
        // Our Via is on top; the next one says where it goes.
        let Some(next) = msg.via(1) else {
            return;
        };
        let h = next.received.unwrap_or(next.host);
        // Brackets trimmed from both ends, as `str::trim_matches(['[', ']'])` does.
        let bracket = |c: &u8| *c == b'[' || *c == b']';
        let start = h.iter().position(|c| !bracket(c)).unwrap_or(h.len());
        let end = h.iter().rposition(|c| !bracket(c)).map_or(start, |e| e + 1);
        let Some(ip) = crate::uri::parse_ip(&h[start..end.max(start)]) else {
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

    pub(super) fn pass_up(
        &mut self,
        now: Instant,
        cid: u64,
        owner: Owner,
        code: u16,
        msg: Message,
    ) {
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

    /// A response on the INVITE of a hunt branch (client transaction `cid`) of `call`.
    pub(super) fn branch_response(
        &mut self,
        now: Instant,
        call: u64,
        cid: u64,
        code: u16,
        msg: Message,
    ) {
        if code < 200 {
            self.branch_provisional(now, call, cid, code, msg);
        } else if code < 300 {
            self.branch_answered(now, call, cid, code, msg);
        } else {
            self.branch_failure(now, call, cid, code, msg);
        }
    }

    /// A 1xx on branch `cid`: relayed to the caller while the call hunts (a 183 with early
    /// media as a plain 180 once, when the plan suppresses it); a branch Hotline gave up on is
    /// cancelled now (§9.1).
    fn branch_provisional(&mut self, now: Instant, call: u64, cid: u64, code: u16, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(bi) = c.hunt.branch_of(cid) else {
            return;
        };
        let hunting = c.state == CallState::Hunting;
        match c.hunt.provisional(bi, code, now, hunting) {
            Provisional::Relay => {}
            Provisional::Absorb => return,
            Provisional::Cancel => return self.send_cancel(now, cid),
        }
        let sid = c.server;
        let dl = call_deadline(c);
        let suppress = c.hunt.plan.suppress_early_media && !msg.body().is_empty();
        if suppress {
            if !c.sent_ringing {
                c.sent_ringing = true;
                let tag = c.local_tag;
                let server = self.servers.get(&sid);
                if let Some((s, request)) = server.and_then(|s| Some((s, s.request.as_deref()?))) {
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
    }

    /// A 2xx on branch `cid`. The first answer of a hunting call makes the dialog, cancels the
    /// other branches and goes to the caller; any later one is relayed so that the caller's
    /// UA can ACK and BYE it.
    fn branch_answered(&mut self, now: Instant, call: u64, cid: u64, code: u16, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(bi) = c.hunt.branch_of(cid) else {
            return;
        };
        let sid = c.server;
        let out = to_caller(&msg, c.restore_from.as_ref());
        let hunting = c.state == CallState::Hunting;
        let Some((callee_uri, callee_peer)) =
            c.hunt.answered(bi, code, now, hunting, &mut self.events)
        else {
            // A second 2xx (another branch, or after CANCEL).
            self.stats.extra_2xx += 1;
            self.respond(now, sid, code, out);
            return;
        };
        // From here on only the dialog is needed: the INVITE is dropped.
        if let Some(invite) = c.invite.take() {
            c.dialog = Some(DialogSides::of_answer(
                &invite,
                &msg,
                &callee_uri,
                c.caller_peer,
                callee_peer,
            ));
        }
        c.state = CallState::Answered;
        c.hangup_at = c.hunt.plan.max_duration.map(|d| now + d);
        self.dialogs.insert(self.key.hash(&[msg.call_id()]), call);
        self.send_cancels(now, call);
        self.respond(now, sid, code, out);
        let dl = self.calls.get(&call).and_then(call_deadline);
        self.schedule(TimerRef::Call(call), dl);
    }

    /// A final failure (3xx-6xx) on branch `cid`: a 3xx is followed (its Contacts go to the
    /// user) and never relayed; the hunt decides what the failure does.
    fn branch_failure(&mut self, now: Instant, call: u64, cid: u64, code: u16, msg: Message) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(bi) = c.hunt.branch_of(cid) else {
            return;
        };
        if c.hunt.is_done(bi) {
            return;
        }
        let hunting = c.state == CallState::Hunting;
        let (outcome, follow) = c
            .hunt
            .failure_outcome(code, hunting, self.cfg.max_redirects);
        if follow {
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
}
