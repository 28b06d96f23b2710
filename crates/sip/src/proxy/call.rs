//! A call: the caller's INVITE server transaction, its hunt and, once answered, its dialog;
//! how it ends unanswered and what its timer does in each state.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::Message;
use crate::rewrite;

use super::dialog::DialogSides;
use super::hunt::{Advanced, Hunt, Next};
use super::local::{default_reason, LocalTag};
use super::plan::Outcome;
use super::txn_table::TimerRef;
use super::{Admission, CallHandle, CallInfo, Event, Hangup, Peer, Proxy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// Waiting for the user's route/reject.
    Deciding,
    Hunting,
    Answered,
    Ended,
}

pub(super) struct Call {
    pub(super) server: u64,
    /// The caller's INVITE, needed while hunting (every branch is built from it); dropped at
    /// the answer, so an answered call of long hold keeps only what its dialog needs.
    pub(super) invite: Option<Arc<Message>>,
    pub(super) call_id: Bytes,
    pub(super) caller_peer: Peer,
    pub(super) state: CallState,
    /// The hunt (plan, branches, attempts, best response so far).
    pub(super) hunt: Hunt,
    pub(super) caller_from_tag: Bytes,
    /// Deadline after which an ended call is forgotten.
    pub(super) linger_until: Option<Instant>,
    pub(super) scheduled: Option<Instant>,
    /// Sent a 180 in place of early media already (suppress mode).
    pub(super) sent_ringing: bool,
    pub(super) local_tag: LocalTag,
    /// Dialog state once answered: remote targets of both sides and the callee's tag, so that
    /// in-dialog requests that carry no Route (peers that ignore Record-Route) still find
    /// their way.
    pub(super) dialog: Option<DialogSides>,
    /// The caller's From, when a branch may show the callee another: put back in responses.
    pub(super) restore_from: Option<Bytes>,
    /// When an answered call is cut (max duration, prepaid balance).
    pub(super) hangup_at: Option<Instant>,
}

impl Call {
    /// The call as it ends now with `code` (answered calls: 200).
    pub(super) fn info(
        &self,
        call: CallHandle,
        now: Instant,
        code: u16,
        hangup: Hangup,
    ) -> CallInfo {
        let h = &self.hunt;
        let answered = h.answered.is_some();
        CallInfo {
            call,
            call_id: self.call_id.clone(),
            started: h.started,
            first_ring: h.first_ring,
            answered: h.answered,
            ended: now,
            code,
            answered_target: h.answered_target,
            hangup,
            attempts: h.attempts,
            last_outcome: if answered {
                Some(Outcome::Answered)
            } else {
                h.last_outcome
            },
            cancelled: h.cancelled && !answered,
        }
    }
}

pub(super) fn call_deadline(c: &Call) -> Option<Instant> {
    match c.state {
        CallState::Ended => c.linger_until,
        CallState::Hunting => c.hunt.deadline(),
        CallState::Answered => c.hangup_at,
        CallState::Deciding => None,
    }
}

impl Proxy {
    pub(super) fn finish_unanswered(&mut self, now: Instant, call: u64, reason: Option<&str>) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if matches!(c.state, CallState::Answered | CallState::Ended) {
            return;
        }
        c.state = CallState::Ended;
        c.linger_until = Some(now);
        let sid = c.server;
        let (code, bytes) = c.hunt.final_response();
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

    pub(super) fn call_timeout(&mut self, now: Instant, call: u64, at: Instant) {
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
                let next = c.hunt.timeout(now, &mut self.events);
                self.hunt_next(now, call, next);
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

    /// Start branches until something is ringing or the plan is exhausted; the INVITE of each
    /// branch the hunt starts is built and sent here.
    pub(super) fn advance_hunt(
        &mut self,
        now: Instant,
        call: u64,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Hunting {
            return;
        }
        let step = self.cfg.id_step.max(1);
        let next_id = &mut self.next_id;
        let mut new_id = || {
            let id = *next_id;
            *next_id += step;
            id
        };
        match c.hunt.advance(now, gate, &mut new_id, &mut self.events) {
            Advanced::Started(first) => {
                let n = c.hunt.branches.len();
                for bi in first..n {
                    self.start_branch(now, call, bi);
                }
            }
            Advanced::Idle => {}
            Advanced::Exhausted => self.finish_unanswered(now, call, None),
        }
    }

    /// Send the CANCELs the hunt of `call` asks for.
    pub(super) fn send_cancels(&mut self, now: Instant, call: u64) {
        while let Some(cid) = self.calls.get_mut(&call).and_then(|c| c.hunt.take_cancel()) {
            self.send_cancel(now, cid);
        }
    }

    /// Cancel every branch of `call` that has no final response yet.
    pub(super) fn cancel_branches(&mut self, now: Instant, call: u64, why: Outcome) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.hunt.cancel_all(now, why, &mut self.events);
        }
        self.send_cancels(now, call);
    }

    /// Carry out what the hunt of `call` said after a failure or a timeout.
    pub(super) fn hunt_next(&mut self, now: Instant, call: u64, next: Next) {
        self.send_cancels(now, call);
        match next {
            Next::Stay => {}
            Next::Continue => self.continue_hunt(call),
            Next::Fail(reason) => self.finish_unanswered(now, call, reason),
        }
    }

    /// Branch `bi` of `call` failed with `code` (`best`: its candidate for the caller's final
    /// response); the hunt says what follows.
    pub(super) fn branch_failed(
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
        let hunting = c.state == CallState::Hunting;
        let next = c
            .hunt
            .failed(bi, now, code, outcome, best, hunting, &mut self.events);
        self.hunt_next(now, call, next);
    }

    /// Move on after a branch failed. The user's admission gate is not at hand here (the
    /// branch ended on a response), so the call waits for [`Proxy::pending_hunts`].
    pub(super) fn continue_hunt(&mut self, call: u64) {
        self.pending.push(call);
    }
}
