//! The hunt: a state machine over a [`ForkPlan`] that knows no SIP text. It decides which
//! target rings next (asking the user's admission gate), what a branch's provisional, answer
//! or failure does to the call, when a ring timeout or the wait cap fires ([`Hunt::deadline`]),
//! which branches must be cancelled, and the best response for the caller (§16.7 step 6).
//!
//! The proxy feeds it what happened on the wire and carries out what it says: it builds and
//! sends the INVITE of each branch the hunt started ([`Advanced::Started`]), relays a
//! provisional or sends the branch's CANCEL ([`Provisional`]), sends a CANCEL for each branch
//! [`Hunt::take_cancel`] names, and moves on ([`Next::Continue`]) or answers the caller
//! ([`Next::Fail`]). Attempts are reported as [`Event`]s into the queue it is given; the
//! branches' client transaction ids come from the proxy.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::plan::{BranchTarget, ForkGroup, ForkPlan, Outcome};
use super::{Admission, AttemptInfo, CallHandle, Event, Peer, TIMER_C};

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
    /// The client transaction of its INVITE (an id of the proxy's).
    pub(super) client: u64,
    pub(super) target: BranchTarget,
    attempt: u32,
    pub(super) state: BranchState,
    started: Instant,
    first_ring: Option<Instant>,
    ring_deadline: Option<Instant>,
    /// Hotline wants it cancelled; the CANCEL goes out once a provisional arrives (§9.1).
    cancel_pending: Option<Outcome>,
    cancel_sent: bool,
    /// The CANCEL is to be sent now (by the proxy, through [`Hunt::take_cancel`]).
    cancel_due: bool,
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
        call: CallHandle,
        now: Instant,
        answered: Option<Instant>,
        code: u16,
        outcome: Outcome,
    ) -> AttemptInfo {
        AttemptInfo {
            call,
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

    /// A CANCEL may go out now (§9.1: once the branch had a provisional); marks it due.
    fn cancel_if_possible(&mut self) {
        if (self.state == BranchState::Ringing || self.trying) && !self.cancel_sent {
            self.cancel_sent = true;
            self.cancel_due = true;
        }
    }
}

/// What [`Hunt::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Advanced {
    /// Branches `first..` of [`Hunt::branches`] were started: the proxy sends their INVITEs.
    Started(usize),
    /// Nothing to start now: a branch is still live, or the gate said [`Admission::Wait`].
    Idle,
    /// Nothing is left to try: the hunt failed (the proxy answers the caller).
    Exhausted,
}

/// What a branch's provisional response does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provisional {
    /// It goes on to the caller.
    Relay,
    Absorb,
    /// The branch was given up on before it had a provisional: its CANCEL goes out now
    /// (§9.1), and the response stops here.
    Cancel,
}

/// What the proxy does after the hunt took in a failure or a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Stay,
    /// Move on at the next [`super::Proxy::pending_hunts`] (the gate is not at hand).
    Continue,
    /// The hunt ended unanswered; the reason phrase of a locally written final response.
    Fail(Option<&'static str>),
}

/// The hunt of one call.
pub(super) struct Hunt {
    call: CallHandle,
    pub(super) plan: ForkPlan,
    /// Next group / member to try.
    group: usize,
    member: usize,
    pub(super) branches: Vec<Branch>,
    pub(super) attempts: u32,
    /// When the caller's INVITE arrived (the wait cap counts from it).
    pub(super) started: Instant,
    pub(super) first_ring: Option<Instant>,
    pub(super) answered: Option<Instant>,
    pub(super) answered_target: Option<u32>,
    cap_deadline: Option<Instant>,
    /// Best final response so far: (code, forwarded bytes if it came from a branch).
    pub(super) best: Option<(u16, Option<Bytes>)>,
    pub(super) last_outcome: Option<Outcome>,
    /// The caller cancelled.
    pub(super) cancelled: bool,
    /// Forward destinations (by cause of a failed branch) to try before the rest of the hunt.
    forward_next: VecDeque<BranchTarget>,
    redirects: u32,
}

impl Hunt {
    /// The hunt of `call`, whose INVITE arrived at `started`; it has no plan yet.
    pub(super) fn new(call: CallHandle, started: Instant) -> Hunt {
        Hunt {
            call,
            plan: ForkPlan::default(),
            group: 0,
            member: 0,
            branches: Vec::new(),
            attempts: 0,
            started,
            first_ring: None,
            answered: None,
            answered_target: None,
            cap_deadline: None,
            best: None,
            last_outcome: None,
            cancelled: false,
            forward_next: VecDeque::new(),
            redirects: 0,
        }
    }

    /// The hunt of a call answered by `target` on another node and taken over here: over, one
    /// attempt, answered at `answered`.
    pub(super) fn adopted(
        call: CallHandle,
        started: Instant,
        answered: Instant,
        target: u32,
    ) -> Hunt {
        let mut h = Hunt::new(call, started);
        h.attempts = 1;
        h.answered = Some(answered);
        h.answered_target = Some(target);
        h.last_outcome = Some(Outcome::Answered);
        h
    }

    /// The user's plan; the wait cap starts counting from the INVITE's arrival.
    pub(super) fn route(&mut self, plan: ForkPlan) {
        self.cap_deadline = plan.wait_cap.map(|d| self.started + d);
        self.plan = plan;
    }

    /// When [`Hunt::timeout`] has work: the earliest ring timeout of a live branch, or the
    /// wait cap.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.branches
            .iter()
            .filter(|b| b.state != BranchState::Done && b.cancel_pending.is_none())
            .filter_map(|b| b.ring_deadline)
            .chain(self.cap_deadline)
            .min()
    }

    /// The branch whose INVITE went out on client transaction `client`.
    pub(super) fn branch_of(&self, client: u64) -> Option<usize> {
        self.branches.iter().position(|b| b.client == client)
    }

    /// A branch whose CANCEL is to be sent now (its client transaction), taken.
    pub(super) fn take_cancel(&mut self) -> Option<u64> {
        let b = self.branches.iter_mut().find(|b| b.cancel_due)?;
        b.cancel_due = false;
        Some(b.client)
    }

    /// The earlier attempts the hunt moved on from (in order): target URI, how it ended, the
    /// code.
    pub(super) fn moved_from(&self) -> impl Iterator<Item = (&[u8], Outcome, u16)> + '_ {
        self.branches.iter().filter_map(|b| match b.ended {
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

    /// Start branches until something is ringing or the plan is exhausted (the fallback
    /// included). `gate` is asked for every target of a step before any starts; `new_id`
    /// names each started branch's client transaction.
    pub(super) fn advance(
        &mut self,
        now: Instant,
        gate: &mut dyn FnMut(CallHandle, u32) -> Admission,
        new_id: &mut dyn FnMut() -> u64,
        events: &mut VecDeque<Event>,
    ) -> Advanced {
        let call = self.call;
        loop {
            let mut capped = false;
            loop {
                if self.branches.iter().any(|b| b.state != BranchState::Done) {
                    return Advanced::Idle;
                }
                if self.cap_deadline.is_some_and(|d| now >= d) {
                    self.last_outcome = Some(Outcome::NoAnswer);
                    capped = true;
                    break;
                }
                let step = (self.group, self.member);
                // A forward by cause first, then the next target (a sequential group) or all
                // of a parallel group: no Vec for one.
                let mut forwarded = false;
                let (one, all): (Option<BranchTarget>, Vec<BranchTarget>) =
                    if let Some(t) = self.forward_next.pop_front() {
                        forwarded = true;
                        (Some(t), Vec::new())
                    } else if let Some(group) = self.plan.groups.get(self.group) {
                        if group.parallel {
                            let t = group.targets.clone();
                            self.group += 1;
                            self.member = 0;
                            (None, t)
                        } else if let Some(t) = group.targets.get(self.member) {
                            let t = t.clone();
                            self.member += 1;
                            if self.member >= group.targets.len() {
                                self.group += 1;
                                self.member = 0;
                            }
                            (Some(t), Vec::new())
                        } else {
                            self.group += 1;
                            self.member = 0;
                            continue;
                        }
                    } else {
                        break;
                    };
                // Every target of the step is asked first: if the user must wait for one,
                // none starts and the step is taken again on resume (a forward target goes
                // back to the front of its queue).
                let first = one.as_ref().map(|t| gate(call, t.tag));
                let rest: Vec<Admission> = all.iter().map(|t| gate(call, t.tag)).collect();
                if first == Some(Admission::Wait) || rest.contains(&Admission::Wait) {
                    (self.group, self.member) = step;
                    if forwarded {
                        if let Some(t) = one {
                            self.forward_next.push_front(t);
                        }
                    }
                    return Advanced::Idle;
                }
                let before = self.branches.len();
                let mut stop = false;
                for (t, admission) in one.into_iter().zip(first).chain(all.into_iter().zip(rest)) {
                    if admission == Admission::Admit {
                        self.start(now, t, new_id(), events);
                    } else {
                        stop |= self.refused(now, t.tag, events);
                    }
                }
                if self.branches.len() > before {
                    return Advanced::Started(before);
                }
                if stop {
                    break;
                }
            }
            if !self.arm_fallback(capped) {
                return Advanced::Exhausted;
            }
            // Once: `arm_fallback` took it.
        }
    }

    /// A branch to `target` starts now on client transaction `client`.
    fn start(
        &mut self,
        now: Instant,
        target: BranchTarget,
        client: u64,
        events: &mut VecDeque<Event>,
    ) {
        self.attempts += 1;
        let attempt = self.attempts;
        let ring_deadline = if self.plan.ring_from_18x {
            None
        } else {
            Some(now + target.ring_timeout.min(TIMER_C))
        };
        events.push_back(Event::AttemptStarted {
            call: self.call,
            attempt,
            target: target.tag,
        });
        self.branches.push(Branch {
            client,
            target,
            attempt,
            state: BranchState::Trying,
            started: now,
            first_ring: None,
            ring_deadline,
            cancel_pending: None,
            cancel_sent: false,
            cancel_due: false,
            trying: false,
            reported: false,
            ended: None,
        });
    }

    /// The gate refused target `tag` (its concurrency limit): an attempt that ended at once.
    /// Returns whether the hunt stops here (the plan does not move on for this cause and the
    /// target does not forward on it).
    fn refused(&mut self, now: Instant, tag: u32, events: &mut VecDeque<Event>) -> bool {
        self.attempts += 1;
        let attempt = self.attempts;
        let outcome = if self.plan.limit_is_busy {
            Outcome::Busy
        } else {
            Outcome::LimitReached
        };
        self.last_outcome = Some(outcome);
        if better(486, self.best.as_ref().map(|b| b.0)) {
            self.best = Some((486, None));
        }
        // Nothing else of this group rings and the plan does not move on for this cause: the
        // hunt ends here, unless the target forwards on it.
        let stop = if let Some(f) = self.take_forward(tag, outcome) {
            self.forward_next.push_back(f);
            false
        } else {
            !outcome.advances(&self.plan.advance)
        };
        events.push_back(Event::AttemptEnded(AttemptInfo {
            call: self.call,
            attempt,
            target: tag,
            started: now,
            first_ring: None,
            answered: None,
            ended: now,
            code: 486,
            outcome,
        }));
        stop
    }

    /// The hunt ended unanswered (`capped`: by the wait cap). If the plan has a fallback target
    /// not tried yet, and the caller is still there, make it the only group left (the cap no
    /// longer applies: it has its own ring timeout) and say so; the hunt then goes on.
    fn arm_fallback(&mut self, capped: bool) -> bool {
        if self.cancelled || (capped && self.plan.cap_skips_fallback) {
            return false;
        }
        // The destination for the cause the hunt ended with, else the on_fail target.
        let cause = if capped {
            Outcome::NoAnswer
        } else {
            self.last_outcome.unwrap_or(Outcome::NoAnswer)
        };
        let Some(t) = self
            .plan
            .fallback_by_cause
            .take_for(cause)
            .or_else(|| self.plan.fallback.take())
        else {
            return false;
        };
        self.cap_deadline = None;
        self.plan.groups.push(ForkGroup {
            parallel: false,
            targets: vec![t],
        });
        self.group = self.plan.groups.len() - 1;
        self.member = 0;
        true
    }

    /// The forward of target `tag` for the cause of `outcome`, taken (used once per call).
    fn take_forward(&mut self, tag: u32, outcome: Outcome) -> Option<BranchTarget> {
        self.plan
            .forwards
            .iter_mut()
            .find(|(t, _)| *t == tag)
            .and_then(|(_, f)| f.take_for(outcome))
    }

    /// Redirect targets (3xx Contacts the user vetted) to be tried next, one at a time.
    /// Returns false when there is nothing to add.
    pub(super) fn add_targets(&mut self, targets: Vec<BranchTarget>) -> bool {
        if targets.is_empty() {
            return false;
        }
        let new = ForkGroup {
            parallel: false,
            targets,
        };
        let at = self.group.min(self.plan.groups.len());
        if self.member > 0 {
            // In the middle of a sequential group: the redirect goes before its remaining
            // members.
            let rest = self.plan.groups[at].targets.split_off(self.member);
            let parallel = self.plan.groups[at].parallel;
            self.plan.groups.insert(at + 1, new);
            if !rest.is_empty() {
                self.plan.groups.insert(
                    at + 2,
                    ForkGroup {
                        parallel,
                        targets: rest,
                    },
                );
            }
            self.group = at + 1;
            self.member = 0;
        } else {
            self.plan.groups.insert(at, new);
        }
        true
    }

    /// Branch `bi` had provisional `code` (`hunting`: the call is still hunting): whether it
    /// goes on to the caller, or the branch's CANCEL is due now.
    pub(super) fn provisional(
        &mut self,
        bi: usize,
        code: u16,
        now: Instant,
        hunting: bool,
    ) -> Provisional {
        let ring_from_18x = self.plan.ring_from_18x;
        let Some(b) = self.branches.get_mut(bi) else {
            return Provisional::Absorb;
        };
        if code == 100 {
            // A 100 is enough to cancel a branch Hotline gave up on (§9.1).
            b.trying = true;
            if b.cancel_pending.is_some() && !b.cancel_sent {
                b.cancel_sent = true;
                return Provisional::Cancel;
            }
            return Provisional::Absorb;
        }
        if b.first_ring.is_none() {
            b.first_ring = Some(now);
            if ring_from_18x && b.cancel_pending.is_none() {
                b.ring_deadline = Some(now + b.target.ring_timeout.min(TIMER_C));
            }
        }
        if b.state == BranchState::Trying {
            b.state = BranchState::Ringing;
        }
        // A branch Hotline gave up on before it rang: cancel it now (§9.1).
        if b.cancel_pending.is_some() && !b.cancel_sent {
            b.cancel_sent = true;
            return Provisional::Cancel;
        }
        if b.cancel_pending.is_some() || !hunting {
            return Provisional::Absorb;
        }
        if self.first_ring.is_none() {
            self.first_ring = Some(now);
        }
        Provisional::Relay
    }

    /// Branch `bi` answered with `code`. The first answer of a hunting call wins: the branch
    /// is reported, every other branch is cancelled, and its target's URI and address are
    /// returned (for the dialog). `None`: a second 2xx (another branch, or after the hunt
    /// ended), which the proxy only relays.
    pub(super) fn answered(
        &mut self,
        bi: usize,
        code: u16,
        now: Instant,
        hunting: bool,
        events: &mut VecDeque<Event>,
    ) -> Option<(Bytes, Peer)> {
        let b = self.branches.get_mut(bi)?;
        let already = b.state == BranchState::Done;
        b.state = BranchState::Done;
        if already || !hunting {
            return None;
        }
        b.reported = true;
        let info = b.info(self.call, now, Some(now), code, Outcome::Answered);
        let target = b.target.tag;
        let won = (b.target.uri.clone(), b.target.dest);
        let branch_ring = b.first_ring;
        self.answered = Some(now);
        // The rest of the plan is never used again.
        self.plan.groups = Vec::new();
        self.plan.add_headers = Vec::new();
        self.answered_target = Some(target);
        self.last_outcome = Some(Outcome::Answered);
        if self.first_ring.is_none() {
            self.first_ring = branch_ring;
        }
        events.push_back(Event::AttemptEnded(info));
        events.push_back(Event::Answered {
            call: self.call,
            target,
        });
        // Hunting is over: the others lose.
        for b in self.branches.iter_mut() {
            if b.state != BranchState::Done && b.cancel_pending.is_none() {
                b.cancel_pending = Some(Outcome::CancelledByHunt);
            }
        }
        self.cancel_all(now, Outcome::CancelledByHunt, events);
        Some(won)
    }

    /// How a final failure `code` of a branch counts. A 3xx while hunting is followed
    /// (the second value: the proxy reports its Contacts) up to `max_redirects` per call;
    /// beyond that it counts as a rejection.
    pub(super) fn failure_outcome(
        &mut self,
        code: u16,
        hunting: bool,
        max_redirects: u32,
    ) -> (Outcome, bool) {
        let outcome = Outcome::from_code(code);
        if outcome != Outcome::Redirected || !hunting {
            return (outcome, false);
        }
        if self.redirects < max_redirects {
            self.redirects += 1;
            (outcome, true)
        } else {
            // Too deep: the redirect counts as a rejection.
            (Outcome::Rejected, false)
        }
    }

    /// Whether branch `bi` has ended (a final response or a cancel already counted).
    pub(super) fn is_done(&self, bi: usize) -> bool {
        self.branches
            .get(bi)
            .is_none_or(|b| b.state == BranchState::Done)
    }

    /// Branch `bi` failed with `code` (`best`: its candidate for the caller's final response).
    /// Reported once; then the hunt stops (cancelling the other branches) or moves on, as the
    /// plan says for `outcome`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn failed(
        &mut self,
        bi: usize,
        now: Instant,
        code: u16,
        outcome: Outcome,
        best: (u16, Option<Bytes>),
        hunting: bool,
        events: &mut VecDeque<Event>,
    ) -> Next {
        let call = self.call;
        let Some(b) = self.branches.get_mut(bi) else {
            return Next::Stay;
        };
        if b.state == BranchState::Done {
            return Next::Stay;
        }
        b.state = BranchState::Done;
        b.ended = Some((outcome, code));
        let tag = b.target.tag;
        if !b.reported {
            b.reported = true;
            events.push_back(Event::AttemptEnded(b.info(call, now, None, code, outcome)));
        }
        if !hunting {
            return Next::Stay;
        }
        self.last_outcome = Some(outcome);
        if better(best.0, self.best.as_ref().map(|b| b.0)) {
            self.best = Some(best);
        }
        if let Some(f) = self.take_forward(tag, outcome) {
            // The target forwards on this cause: its destination is next.
            self.forward_next.push_back(f);
            return Next::Continue;
        }
        if !outcome.advances(&self.plan.advance) {
            // Stop the hunt here (e.g. a 6xx): cancel the rest, then the fallback if any.
            self.cancel_all(now, Outcome::CancelledByHunt, events);
            return if self.arm_fallback(false) {
                Next::Continue
            } else {
                Next::Fail(None)
            };
        }
        Next::Continue
    }

    /// The hunt's deadline came: the wait cap ends the hunt (then the fallback, if any);
    /// branches past their ring timeout are cancelled as unanswered, and the hunt moves on
    /// once none is left.
    pub(super) fn timeout(&mut self, now: Instant, events: &mut VecDeque<Event>) -> Next {
        if self.cap_deadline.is_some_and(|d| d <= now) {
            // The overall wait cap ends the hunt.
            self.last_outcome = Some(Outcome::NoAnswer);
            if self.best.is_none() {
                self.best = Some((480, None));
            }
            self.cancel_all(now, Outcome::NoAnswer, events);
            return if self.arm_fallback(true) {
                // The cap ended the hunt; the fallback target still rings.
                Next::Continue
            } else {
                Next::Fail(Some("Temporarily Unavailable"))
            };
        }
        let mut expired = false;
        let mut forwarded = false;
        for i in 0..self.branches.len() {
            let b = &mut self.branches[i];
            if b.state != BranchState::Done
                && b.cancel_pending.is_none()
                && b.ring_deadline.is_some_and(|d| d <= now)
            {
                b.cancel_pending = Some(Outcome::NoAnswer);
                expired = true;
                let tag = b.target.tag;
                if let Some(f) = self.take_forward(tag, Outcome::NoAnswer) {
                    self.forward_next.push_back(f);
                    forwarded = true;
                }
            }
        }
        if !expired {
            return Next::Stay;
        }
        self.last_outcome = Some(Outcome::NoAnswer);
        if better(480, self.best.as_ref().map(|b| b.0)) {
            self.best = Some((480, None));
        }
        let advance = self.plan.advance.no_answer;
        self.cancel_all(now, Outcome::NoAnswer, events);
        if !self.branches.iter().all(|b| b.state == BranchState::Done) {
            Next::Stay
        } else if advance || forwarded || self.arm_fallback(false) {
            Next::Continue
        } else {
            Next::Fail(None)
        }
    }

    /// Cancel every branch that has no final response yet (`why`: how it ends); each is
    /// reported as ended now: the hunt does not wait for their 487.
    pub(super) fn cancel_all(&mut self, now: Instant, why: Outcome, events: &mut VecDeque<Event>) {
        for b in self.branches.iter_mut() {
            if b.state == BranchState::Done {
                continue;
            }
            b.cancel_pending = Some(why);
            b.cancel_if_possible();
        }
        for b in self.branches.iter_mut() {
            if let (Some(why), false) = (b.cancel_pending, b.reported) {
                b.reported = true;
                b.state = BranchState::Done;
                let code = if why == Outcome::NoAnswer { 408 } else { 487 };
                b.ended = Some((why, code));
                events.push_back(Event::AttemptEnded(b.info(self.call, now, None, code, why)));
            }
        }
    }

    /// The caller cancelled: every branch is cancelled and the caller gets 487.
    pub(super) fn caller_cancelled(&mut self, now: Instant, events: &mut VecDeque<Event>) {
        self.cancelled = true;
        self.best = Some((487, None));
        self.last_outcome = Some(Outcome::CancelledByCaller);
        self.cancel_all(now, Outcome::CancelledByCaller, events);
    }

    /// The final response for the caller of a hunt that failed: the 487 of a cancelled call,
    /// else the plan's fail code, else the best response (480 when there was none).
    pub(super) fn final_response(&self) -> (u16, Option<Bytes>) {
        match (self.plan.fail_code, self.best.clone()) {
            (_, Some((code, b))) if self.cancelled => (code, b),
            (Some(code), _) => (code, None),
            (None, Some((code, b))) => (code, b),
            (None, None) => (480, None),
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::proxy::plan::ByCause;
    use crate::proxy::Transport;

    fn target(tag: u32, ring_secs: u64) -> BranchTarget {
        BranchTarget {
            uri: Bytes::from(format!("sip:100{tag}@10.0.1.{tag}")),
            dest: Peer::new(
                Transport::Udp,
                format!("10.0.1.{tag}:5060").parse().unwrap(),
            ),
            ring_timeout: Duration::from_secs(ring_secs),
            tag,
        }
    }

    fn serial(targets: Vec<BranchTarget>) -> ForkPlan {
        ForkPlan {
            groups: vec![ForkGroup {
                parallel: false,
                targets,
            }],
            ..Default::default()
        }
    }

    fn parallel(targets: Vec<BranchTarget>) -> ForkPlan {
        ForkPlan {
            groups: vec![ForkGroup {
                parallel: true,
                targets,
            }],
            ..Default::default()
        }
    }

    /// A hunt driven directly: no SIP, a fake clock, client ids 101, 102, ...
    struct Run {
        hunt: Hunt,
        events: VecDeque<Event>,
        next_id: u64,
        t0: Instant,
    }

    impl Run {
        fn new(plan: ForkPlan) -> Run {
            let t0 = Instant::now();
            let mut hunt = Hunt::new(CallHandle(7), t0);
            hunt.route(plan);
            Run {
                hunt,
                events: VecDeque::new(),
                next_id: 101,
                t0,
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn advance(&mut self, ms: u64, gate: impl Fn(u32) -> Admission) -> Advanced {
            let now = self.at(ms);
            let next_id = &mut self.next_id;
            let mut new_id = || {
                *next_id += 1;
                *next_id - 1
            };
            self.hunt
                .advance(now, &mut |_, tag| gate(tag), &mut new_id, &mut self.events)
        }
        fn admit_all(&mut self, ms: u64) -> Advanced {
            self.advance(ms, |_| Admission::Admit)
        }
        fn fail(&mut self, bi: usize, ms: u64, code: u16) -> Next {
            let now = self.at(ms);
            let outcome = Outcome::from_code(code);
            self.hunt
                .failed(bi, now, code, outcome, (code, None), true, &mut self.events)
        }
        fn timeout(&mut self, ms: u64) -> Next {
            let now = self.at(ms);
            self.hunt.timeout(now, &mut self.events)
        }
        fn cancels(&mut self) -> Vec<u64> {
            std::iter::from_fn(|| self.hunt.take_cancel()).collect()
        }
        /// The events so far, as (kind, attempt, target, outcome, code).
        fn attempts(&mut self) -> Vec<(&'static str, u32, u32, Option<Outcome>, u16)> {
            self.events
                .drain(..)
                .filter_map(|e| match e {
                    Event::AttemptStarted {
                        attempt, target, ..
                    } => Some(("start", attempt, target, None, 0)),
                    Event::AttemptEnded(a) => {
                        Some(("end", a.attempt, a.target, Some(a.outcome), a.code))
                    }
                    Event::Answered { target, .. } => Some(("answer", 0, target, None, 0)),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn a_busy_target_moves_the_hunt_on_and_a_decline_stops_it() {
        let mut r = Run::new(serial(vec![target(1, 10), target(2, 10), target(3, 10)]));
        assert_eq!(r.admit_all(0), Advanced::Started(0));
        assert_eq!(r.hunt.branches[0].client, 101);
        assert_eq!(r.fail(0, 50, 486), Next::Continue);
        assert_eq!(r.admit_all(50), Advanced::Started(1));
        assert_eq!(r.hunt.branches[1].client, 102);
        // 603 Decline: a global failure, which the default plan does not move on from.
        assert_eq!(r.fail(1, 90, 603), Next::Fail(None));
        assert_eq!(
            r.attempts(),
            vec![
                ("start", 1, 1, None, 0),
                ("end", 1, 1, Some(Outcome::Busy), 486),
                ("start", 2, 2, None, 0),
                ("end", 2, 2, Some(Outcome::GlobalFailure), 603),
            ]
        );
        // The 6xx is the best response (it beats the 486), and the third target never rang.
        assert_eq!(r.hunt.final_response(), (603, None));
        assert_eq!(r.hunt.branches.len(), 2);
        assert_eq!(r.hunt.last_outcome, Some(Outcome::GlobalFailure));
    }

    #[test]
    fn a_ring_timeout_cancels_the_branch_and_the_next_target_rings() {
        let mut r = Run::new(serial(vec![target(1, 5), target(2, 7)]));
        r.admit_all(0);
        assert_eq!(r.hunt.deadline(), Some(r.at(5_000)));
        assert_eq!(
            r.hunt.provisional(0, 180, r.at(100), true),
            Provisional::Relay
        );
        assert_eq!(r.hunt.first_ring, Some(r.at(100)));
        assert_eq!(r.timeout(4_999), Next::Stay);
        assert_eq!(r.timeout(5_000), Next::Continue);
        // It rang, so its CANCEL goes out now, once.
        assert_eq!(r.cancels(), vec![101]);
        assert_eq!(r.cancels(), Vec::<u64>::new());
        assert_eq!(r.admit_all(5_000), Advanced::Started(1));
        assert_eq!(r.hunt.deadline(), Some(r.at(12_000)));
        assert_eq!(
            r.attempts(),
            vec![
                ("start", 1, 1, None, 0),
                ("end", 1, 1, Some(Outcome::NoAnswer), 408),
                ("start", 2, 2, None, 0),
            ]
        );
        // A ring timeout ranks below the real failure that follows.
        assert_eq!(r.fail(1, 6_000, 480), Next::Continue);
        assert_eq!(r.admit_all(6_000), Advanced::Exhausted);
        assert_eq!(r.hunt.final_response().0, 480);
    }

    #[test]
    fn the_ring_timer_starts_at_the_first_18x_when_the_plan_says_so() {
        let mut plan = serial(vec![target(1, 5)]);
        plan.ring_from_18x = true;
        let mut r = Run::new(plan);
        r.admit_all(0);
        assert_eq!(r.hunt.deadline(), None);
        assert_eq!(
            r.hunt.provisional(0, 100, r.at(10), true),
            Provisional::Absorb,
            "100 is not relayed"
        );
        assert_eq!(r.hunt.deadline(), None);
        assert_eq!(
            r.hunt.provisional(0, 183, r.at(2_000), true),
            Provisional::Relay
        );
        assert_eq!(r.hunt.deadline(), Some(r.at(7_000)));
    }

    #[test]
    fn the_first_answer_cancels_the_others_once_they_can_be() {
        let mut r = Run::new(parallel(vec![target(1, 30), target(2, 30), target(3, 30)]));
        assert_eq!(r.admit_all(0), Advanced::Started(0));
        assert_eq!(r.hunt.branches.len(), 3);
        r.hunt.provisional(0, 180, r.at(100), true);
        r.hunt.provisional(2, 100, r.at(100), true);
        let won = r.hunt.answered(1, 200, r.at(900), true, &mut r.events);
        assert_eq!(
            won.map(|(uri, _)| uri),
            Some(Bytes::from("sip:1002@10.0.1.2"))
        );
        // Branch 1 rang and branch 3 sent 100: both can be cancelled now (§9.1).
        assert_eq!(r.cancels(), vec![101, 103]);
        assert_eq!(r.hunt.answered_target, Some(2));
        assert_eq!(r.hunt.first_ring, Some(r.at(100)));
        let ev = r.attempts();
        assert_eq!(
            ev[3..5],
            [
                ("end", 2, 2, Some(Outcome::Answered), 200),
                ("answer", 0, 2, None, 0)
            ]
        );
        assert_eq!(
            ev[5..],
            [
                ("end", 1, 1, Some(Outcome::CancelledByHunt), 487),
                ("end", 3, 3, Some(Outcome::CancelledByHunt), 487),
            ]
        );
        // A second 2xx is only relayed; the losers' 487s change nothing.
        assert!(r
            .hunt
            .answered(0, 200, r.at(950), false, &mut r.events)
            .is_none());
        assert_eq!(r.fail(2, 1_000, 487), Next::Stay);
        assert!(r.attempts().is_empty());
    }

    #[test]
    fn a_branch_given_up_before_any_provisional_is_cancelled_at_its_first() {
        let mut r = Run::new(parallel(vec![target(1, 3), target(2, 30)]));
        r.admit_all(0);
        r.hunt.provisional(1, 180, r.at(10), true);
        // Branch 1 never answered anything: its ring timeout cancels the call's branches, but
        // only branch 2's CANCEL may go out yet.
        assert_eq!(r.timeout(3_000), Next::Continue);
        assert_eq!(r.cancels(), vec![102]);
        assert_eq!(
            r.hunt.provisional(0, 180, r.at(3_100), true),
            Provisional::Cancel,
            "its CANCEL goes out at its first provisional, which is not relayed"
        );
        assert_eq!(
            r.hunt.provisional(0, 180, r.at(3_200), true),
            Provisional::Absorb
        );
        assert_eq!(r.cancels(), Vec::<u64>::new());
    }

    #[test]
    fn the_wait_cap_ends_the_hunt_then_the_fallback_rings_once() {
        let mut plan = serial(vec![target(1, 30)]);
        plan.wait_cap = Some(Duration::from_secs(10));
        plan.fallback = Some(target(9, 20));
        let mut r = Run::new(plan);
        r.admit_all(0);
        assert_eq!(r.hunt.deadline(), Some(r.at(10_000)));
        assert_eq!(r.timeout(10_000), Next::Continue);
        assert_eq!(r.admit_all(10_000), Advanced::Started(1));
        assert_eq!(r.hunt.branches[1].target.tag, 9);
        // The cap no longer applies: the fallback has its own ring timeout.
        assert_eq!(r.hunt.deadline(), Some(r.at(30_000)));
        assert_eq!(r.fail(1, 12_000, 486), Next::Continue);
        assert_eq!(r.admit_all(12_000), Advanced::Exhausted);
    }

    #[test]
    fn the_wait_cap_without_a_fallback_fails_the_call_with_480() {
        let mut plan = serial(vec![target(1, 30)]);
        plan.wait_cap = Some(Duration::from_secs(10));
        let mut r = Run::new(plan);
        r.admit_all(0);
        assert_eq!(
            r.timeout(10_000),
            Next::Fail(Some("Temporarily Unavailable"))
        );
        assert_eq!(r.hunt.final_response(), (480, None));
        assert_eq!(r.hunt.last_outcome, Some(Outcome::NoAnswer));
    }

    #[test]
    fn a_gate_that_must_wait_holds_the_whole_step_until_resumed() {
        let mut r = Run::new(parallel(vec![target(1, 30), target(2, 30)]));
        let gate = |tag| {
            if tag == 2 {
                Admission::Wait
            } else {
                Admission::Admit
            }
        };
        assert_eq!(r.advance(0, gate), Advanced::Idle);
        assert!(r.hunt.branches.is_empty());
        assert!(r.attempts().is_empty());
        assert_eq!(r.admit_all(40), Advanced::Started(0));
        assert_eq!(r.hunt.branches.len(), 2);
        assert_eq!(
            r.attempts(),
            vec![("start", 1, 1, None, 0), ("start", 2, 2, None, 0)]
        );
    }

    #[test]
    fn a_refused_target_counts_as_busy_and_its_busy_forward_rings() {
        let mut plan = serial(vec![target(1, 30), target(2, 30)]);
        plan.limit_is_busy = true;
        plan.forwards = vec![(
            1,
            ByCause {
                busy: Some(target(7, 30)),
                ..Default::default()
            },
        )];
        let mut r = Run::new(plan);
        let gate = |tag| {
            if tag == 1 {
                Admission::Refuse
            } else {
                Admission::Admit
            }
        };
        assert_eq!(r.advance(0, gate), Advanced::Started(0));
        assert_eq!(r.hunt.branches[0].target.tag, 7);
        assert_eq!(
            r.attempts(),
            vec![
                ("end", 1, 1, Some(Outcome::Busy), 486),
                ("start", 2, 7, None, 0),
            ]
        );
        // The forward is used once; then the plan goes on with target 2.
        assert_eq!(r.fail(0, 100, 486), Next::Continue);
        assert_eq!(r.admit_all(100), Advanced::Started(1));
        assert_eq!(r.hunt.branches[1].target.tag, 2);
    }

    #[test]
    fn redirects_are_followed_up_to_the_limit() {
        let mut r = Run::new(serial(vec![target(1, 30)]));
        assert_eq!(
            r.hunt.failure_outcome(302, true, 2),
            (Outcome::Redirected, true)
        );
        assert_eq!(
            r.hunt.failure_outcome(302, true, 2),
            (Outcome::Redirected, true)
        );
        assert_eq!(
            r.hunt.failure_outcome(302, true, 2),
            (Outcome::Rejected, false)
        );
        assert_eq!(
            r.hunt.failure_outcome(302, false, 9),
            (Outcome::Redirected, false)
        );
        // Redirect targets go before the rest of a sequential group.
        let mut r = Run::new(serial(vec![target(1, 30), target(2, 30)]));
        r.admit_all(0);
        assert!(r.hunt.add_targets(vec![target(5, 30)]));
        assert!(!r.hunt.add_targets(Vec::new()));
        r.fail(0, 10, 302);
        assert_eq!(r.admit_all(10), Advanced::Started(1));
        assert_eq!(r.hunt.branches[1].target.tag, 5);
    }

    #[test]
    fn the_caller_cancelling_ends_every_branch_and_wins_over_the_fail_code() {
        let mut plan = parallel(vec![target(1, 30), target(2, 30)]);
        plan.fail_code = Some(486);
        let mut r = Run::new(plan);
        r.admit_all(0);
        r.hunt.provisional(0, 180, r.at(5), true);
        r.hunt.caller_cancelled(r.at(10), &mut r.events);
        assert_eq!(r.cancels(), vec![101]);
        assert_eq!(r.hunt.final_response(), (487, None));
        let ended: Vec<_> = r.attempts().into_iter().filter(|a| a.0 == "end").collect();
        assert_eq!(ended.len(), 2);
        assert!(ended
            .iter()
            .all(|a| a.3 == Some(Outcome::CancelledByCaller) && a.4 == 487));
    }

    #[test]
    fn best_response_ranking() {
        assert!(better(486, None));
        assert!(better(603, Some(486)), "6xx beats everything");
        assert!(!better(486, Some(603)));
        assert!(better(486, Some(503)), "the lower class wins");
        assert!(
            better(486, Some(408)),
            "a real answer beats a timeout of its class"
        );
        assert!(!better(408, Some(486)));
        assert!(!better(480, Some(486)), "same class: the first stays");
    }
}
