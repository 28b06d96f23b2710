//! A call: the caller's INVITE server transaction, its hunt and, once answered, its dialog;
//! how it ends unanswered and what its timer does in each state.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::msg::Message;
use crate::rewrite;

use super::dialog::DialogSides;
use super::hunt::{better, take_forward, Branch, BranchState};
use super::local::{default_reason, LocalTag};
use super::plan::{BranchTarget, ForkPlan, Outcome};
use super::txn_table::TimerRef;
use super::{CallHandle, CallInfo, Event, Hangup, Peer, Proxy};

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
    pub(super) plan: ForkPlan,
    /// Next group / member to try.
    pub(super) group: usize,
    pub(super) member: usize,
    pub(super) branches: Vec<Branch>,
    pub(super) attempts: u32,
    pub(super) started: Instant,
    pub(super) first_ring: Option<Instant>,
    pub(super) answered: Option<Instant>,
    pub(super) answered_target: Option<u32>,
    pub(super) cap_deadline: Option<Instant>,
    /// Best final response so far: (code, forwarded bytes if it came from a branch).
    pub(super) best: Option<(u16, Option<Bytes>)>,
    pub(super) last_outcome: Option<Outcome>,
    pub(super) cancelled: bool,
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
    /// Forward destinations (by cause of a failed branch) to try before the rest of the hunt.
    pub(super) forward_next: VecDeque<BranchTarget>,
    /// The caller's From, when a branch may show the callee another: put back in responses.
    pub(super) restore_from: Option<Bytes>,
    /// When an answered call is cut (max duration, prepaid balance).
    pub(super) hangup_at: Option<Instant>,
    pub(super) redirects: u32,
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

pub(super) fn call_deadline(c: &Call) -> Option<Instant> {
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
