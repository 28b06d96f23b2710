//! The hunt: which target rings next, what a branch's failure or ring timeout does to the call,
//! CANCEL of branches that lost, the best response (§16.7 step 6).

use std::time::Instant;

use bytes::Bytes;

use super::call::{Call, CallState};
use super::plan::{BranchTarget, ForkGroup, Outcome};
use super::{Admission, AttemptInfo, CallHandle, Event, Proxy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BranchState {
    /// INVITE sent, nothing back yet.
    Trying,
    /// 1xx received.
    Ringing,
    /// Final response received or given up on.
    Done,
}

pub(super) struct Branch {
    pub(super) client: u64,
    pub(super) target: BranchTarget,
    pub(super) attempt: u32,
    pub(super) state: BranchState,
    pub(super) started: Instant,
    pub(super) first_ring: Option<Instant>,
    pub(super) ring_deadline: Option<Instant>,
    /// Hotline wants it cancelled; the CANCEL goes out once a provisional arrives (§9.1).
    pub(super) cancel_pending: Option<Outcome>,
    pub(super) cancel_sent: bool,
    /// A 100 Trying came: a CANCEL may be sent (§9.1) though the branch is not ringing.
    pub(super) trying: bool,
    /// Already reported in an `AttemptEnded` event.
    pub(super) reported: bool,
    /// How it ended, once it has: outcome and the response code (408 for a ring timeout).
    pub(super) ended: Option<(Outcome, u16)>,
}

impl Branch {
    /// This attempt, ended at `now` with `code` / `outcome`.
    pub(super) fn info(
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

/// The forward of target `tag` for the cause of `outcome`, taken (used once per call).
pub(super) fn take_forward(c: &mut Call, tag: u32, outcome: Outcome) -> Option<BranchTarget> {
    c.plan
        .forwards
        .iter_mut()
        .find(|(t, _)| *t == tag)
        .and_then(|(_, f)| f.take_for(outcome))
}

/// §16.7 step 6: 6xx beats everything, then the lowest class; 408/480 from timeouts rank
/// below real answers of the same class.
pub(super) fn better(code: u16, best: Option<u16>) -> bool {
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

impl Proxy {
    /// Start branches until something is ringing or the plan is exhausted.
    pub(super) fn advance_hunt(
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
    pub(super) fn arm_fallback(&mut self, call: u64, capped: bool) -> bool {
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

    /// Cancel every branch of `call` that has no final response yet.
    pub(super) fn cancel_branches(&mut self, now: Instant, call: u64, why: Outcome) {
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

    pub(super) fn report_pending(&mut self, now: Instant, call: u64) {
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

    /// Branch `bi` of `call` failed with `code` (`best`: its candidate for the caller's final
    /// response). Reported once; then the hunt stops (cancelling the other branches) or moves on,
    /// as the plan says for `outcome`.
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

    /// Move on after a branch failed. The user's admission gate is not at hand here (the
    /// branch ended on a response), so the call waits for [`Proxy::pending_hunts`].
    pub(super) fn continue_hunt(&mut self, call: u64) {
        self.pending.push(call);
    }
}
