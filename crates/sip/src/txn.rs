//! RFC 3261 §17 transaction state machines (with RFC 6026 Accepted states), sans-IO.
//!
//! Each machine takes `now` and returns what to do; `deadline()` says when to call
//! `on_timeout(now)` next. Nothing here parses: the caller passes status codes and the bytes to
//! (re)transmit. Matching messages to transactions (§17.1.3 / §17.2.3) is the caller's job.
//!
//! The machines never read the clock and never panic: codes outside 100..=699 are absorbed or
//! refused, events that make no sense in the current state are absorbed, and timer arithmetic
//! saturates (a deadline that would overflow `Instant` is simply never armed).
//!
//! Timer rules common to all four machines:
//! - `deadline()` is the earliest armed timer, or `None` when nothing is pending (always `None`
//!   once [`State::Terminated`]).
//! - `on_timeout(now)` handles every timer due at `now` (deadline `<= now`) and returns the most
//!   significant action: [`TimerAction::TimedOut`] beats [`TimerAction::Terminated`] beats
//!   [`TimerAction::Retransmit`]. Calling it early returns `None` and changes nothing.
//! - After `on_timeout(now)` the deadline is `None` or strictly later than `now`.
//! - A zero-duration timer (timers D, I, J, K on a reliable transport) is armed at the time of
//!   the event, so `deadline() == now` of that event and it fires on the next `on_timeout`.
//! - A retransmission timer (A, E, G) is re-armed from the `now` it fired at, so a late driver
//!   does not cause a burst of retransmissions. Its interval is floored at
//!   [`MIN_RETRANSMIT_INTERVAL`] so a zero T1/T2 cannot make a busy loop.
//!
//! See `docs/transactions.md` for the state diagrams, the timer table and the caller's duties.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// Smallest interval a retransmission timer (A, E, G) is re-armed with.
pub const MIN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(1);

/// Floor of timer D on an unreliable transport (§17.1.1.2: "at least 32 seconds").
pub const TIMER_D_MIN_UNRELIABLE: Duration = Duration::from_secs(32);

/// T1/T2/T4 (defaults 500 ms / 4 s / 5 s). Timer values derive from these (§17, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, L, M (and J on an unreliable transport). Saturating.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D (client INVITE, Completed): `max(64*T1, 32 s)` unreliable, zero reliable.
    pub fn timer_d(&self, rel: Reliability) -> Duration {
        match rel {
            Reliability::Unreliable => self.t1x64().max(TIMER_D_MIN_UNRELIABLE),
            Reliability::Reliable => Duration::ZERO,
        }
    }

    /// Timers I and K (server INVITE Confirmed, client non-INVITE Completed): T4 unreliable,
    /// zero reliable.
    pub fn t4_or_zero(&self, rel: Reliability) -> Duration {
        match rel {
            Reliability::Unreliable => self.t4,
            Reliability::Reliable => Duration::ZERO,
        }
    }

    /// Timer J (server non-INVITE, Completed): 64*T1 unreliable, zero reliable.
    pub fn timer_j(&self, rel: Reliability) -> Duration {
        match rel {
            Reliability::Unreliable => self.t1x64(),
            Reliability::Reliable => Duration::ZERO,
        }
    }
}

/// Whether the transport is reliable (TCP: no retransmissions, some timers zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    Unreliable,
    Reliable,
}

/// What a client transaction says about a received response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerdict {
    /// Pass the response to the transaction user.
    PassUp,
    /// Non-2xx final received for the first time (INVITE): pass it up; the caller must build the
    /// ACK, transmit it and hand it over with `ClientInvite::set_ack`.
    PassUpSendAck,
    /// Retransmitted final response: transmit these bytes (the stored ACK), do not pass up.
    Retransmit(Bytes),
    /// Absorb silently.
    Absorb,
}

/// What a timer firing means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    /// Transmit these bytes again (timers A, E, G).
    Retransmit(Bytes),
    /// The transaction timed out (B, F: no final response; H: no ACK). It is now terminated.
    TimedOut,
    /// The transaction ended normally (D, I, J, K, L, M); forget it.
    Terminated,
}

/// Transaction states of §17 plus RFC 6026's Accepted. Each machine uses a subset:
/// client INVITE: Calling, Proceeding, Accepted, Completed, Terminated;
/// client non-INVITE: Trying, Proceeding, Completed, Terminated;
/// server INVITE: Proceeding, Accepted, Completed, Confirmed, Terminated;
/// server non-INVITE: Trying, Proceeding, Completed, Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// Status-code classes the machines care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

fn classify(code: u16) -> Option<Class> {
    match code {
        100..=199 => Some(Class::Provisional),
        200..=299 => Some(Class::Success),
        300..=699 => Some(Class::Failure),
        _ => None,
    }
}

/// `now + d`, or `None` (timer never fires) if that overflows `Instant`.
fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// `Some(at)` with `at <= now`.
fn due(timer: Option<Instant>, now: Instant) -> bool {
    matches!(timer, Some(at) if at <= now)
}

fn earliest<const N: usize>(timers: [Option<Instant>; N]) -> Option<Instant> {
    timers.into_iter().flatten().min()
}

/// A retransmission timer: when it fires next and the interval it was armed with.
#[derive(Debug, Clone, Copy)]
struct Retrans {
    at: Instant,
    interval: Duration,
}

impl Retrans {
    fn arm(now: Instant, interval: Duration) -> Option<Retrans> {
        let interval = interval.max(MIN_RETRANSMIT_INTERVAL);
        after(now, interval).map(|at| Retrans { at, interval })
    }

    fn is_due(this: &Option<Retrans>, now: Instant) -> bool {
        matches!(this, Some(r) if r.at <= now)
    }

    fn at(this: &Option<Retrans>) -> Option<Instant> {
        this.map(|r| r.at)
    }
}

/// Client INVITE transaction (§17.1.1, RFC 6026 §7.2). Created when the INVITE is sent.
///
/// Calling (A retransmits, B times out) → 1xx → Proceeding (no timers: the proxy's timer C
/// covers it) → 2xx → Accepted (M; further 2xx are passed up) or 300-699 → Completed (D; the
/// stored ACK answers retransmitted finals) → Terminated.
#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    rel: Reliability,
    timers: Timers,
    request: Bytes,
    ack: Option<Bytes>,
    timer_a: Option<Retrans>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

impl ClientInvite {
    /// Start in Calling: the caller has just transmitted `request`. Arms A (unreliable only)
    /// and B.
    pub fn new(request: Bytes, rel: Reliability, timers: Timers, now: Instant) -> Self {
        let timer_a = match rel {
            Reliability::Unreliable => Retrans::arm(now, timers.t1),
            Reliability::Reliable => None,
        };
        ClientInvite {
            state: State::Calling,
            rel,
            timers,
            request,
            ack: None,
            timer_a,
            timer_b: after(now, timers.t1x64()),
            timer_d: None,
            timer_m: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once the transaction is over and can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The request bytes this transaction (re)transmits.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matched this transaction. 1xx → Proceeding, 2xx → Accepted (timer M),
    /// 300-699 → Completed (timer D, `PassUpSendAck`). In Accepted further 2xx are `PassUp`; in
    /// Completed further 300-699 are answered with the stored ACK. Everything else is absorbed.
    pub fn on_response(&mut self, code: u16, now: Instant) -> ClientVerdict {
        let Some(class) = classify(code) else {
            return ClientVerdict::Absorb;
        };
        match (self.state, class) {
            (State::Calling | State::Proceeding, Class::Provisional) => {
                self.state = State::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                ClientVerdict::PassUp
            }
            (State::Calling | State::Proceeding, Class::Success) => {
                self.state = State::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = after(now, self.timers.t1x64());
                ClientVerdict::PassUp
            }
            (State::Calling | State::Proceeding, Class::Failure) => {
                self.state = State::Completed;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_d = after(now, self.timers.timer_d(self.rel));
                ClientVerdict::PassUpSendAck
            }
            // RFC 6026 §7.2: 2xx retransmissions (or 2xx from other forks) go to the TU.
            (State::Accepted, Class::Success) => ClientVerdict::PassUp,
            (State::Completed, Class::Failure) => match &self.ack {
                Some(ack) => ClientVerdict::Retransmit(ack.clone()),
                None => ClientVerdict::Absorb,
            },
            _ => ClientVerdict::Absorb,
        }
    }

    /// Store the ACK sent for a non-2xx final (retransmitted on retransmitted finals).
    pub fn set_ack(&mut self, ack: Bytes) {
        self.ack = Some(ack);
    }

    /// The ACK stored with `set_ack`, if any.
    pub fn ack(&self) -> Option<&Bytes> {
        self.ack.as_ref()
    }

    /// The transport reported an error sending the request: the transaction terminates.
    pub fn on_transport_error(&mut self) {
        self.terminate();
    }

    /// The earliest armed timer; call `on_timeout` once it has passed. Re-read after every call.
    pub fn deadline(&self) -> Option<Instant> {
        earliest([
            Retrans::at(&self.timer_a),
            self.timer_b,
            self.timer_d,
            self.timer_m,
        ])
    }

    /// Handle every timer due at `now`; `None` if none was due.
    pub fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if due(self.timer_b, now) {
            self.terminate();
            return Some(TimerAction::TimedOut);
        }
        if due(self.timer_d, now) || due(self.timer_m, now) {
            self.terminate();
            return Some(TimerAction::Terminated);
        }
        if let Some(a) = self.timer_a.filter(|a| a.at <= now) {
            self.timer_a = Retrans::arm(now, a.interval.saturating_mul(2));
            return Some(TimerAction::Retransmit(self.request.clone()));
        }
        None
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

/// Client non-INVITE transaction (§17.1.2).
///
/// Trying (E retransmits doubling up to T2, F times out) → 1xx → Proceeding (E continues, re-armed
/// at T2) → 200-699 → Completed (K; retransmitted finals absorbed) → Terminated.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    rel: Reliability,
    timers: Timers,
    request: Bytes,
    timer_e: Option<Retrans>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl ClientNonInvite {
    /// Start in Trying: the caller has just transmitted `request`. Arms E (unreliable only)
    /// and F.
    pub fn new(request: Bytes, rel: Reliability, timers: Timers, now: Instant) -> Self {
        let timer_e = match rel {
            Reliability::Unreliable => Retrans::arm(now, timers.t1),
            Reliability::Reliable => None,
        };
        ClientNonInvite {
            state: State::Trying,
            rel,
            timers,
            request,
            timer_e,
            timer_f: after(now, timers.t1x64()),
            timer_k: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once the transaction is over and can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The request bytes this transaction (re)transmits.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matched this transaction. 1xx → Proceeding, 200-699 → Completed (timer K);
    /// both `PassUp`. Responses in Completed or Terminated are absorbed.
    pub fn on_response(&mut self, code: u16, now: Instant) -> ClientVerdict {
        let Some(class) = classify(code) else {
            return ClientVerdict::Absorb;
        };
        match (self.state, class) {
            (State::Trying | State::Proceeding, Class::Provisional) => {
                // Timer E keeps its pending deadline; it is re-armed with T2 when it fires.
                self.state = State::Proceeding;
                ClientVerdict::PassUp
            }
            (State::Trying | State::Proceeding, Class::Success | Class::Failure) => {
                self.state = State::Completed;
                self.timer_e = None;
                self.timer_f = None;
                self.timer_k = after(now, self.timers.t4_or_zero(self.rel));
                ClientVerdict::PassUp
            }
            _ => ClientVerdict::Absorb,
        }
    }

    /// The transport reported an error sending the request: the transaction terminates.
    pub fn on_transport_error(&mut self) {
        self.terminate();
    }

    /// The earliest armed timer; call `on_timeout` once it has passed. Re-read after every call.
    pub fn deadline(&self) -> Option<Instant> {
        earliest([Retrans::at(&self.timer_e), self.timer_f, self.timer_k])
    }

    /// Handle every timer due at `now`; `None` if none was due.
    pub fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if due(self.timer_f, now) {
            self.terminate();
            return Some(TimerAction::TimedOut);
        }
        if due(self.timer_k, now) {
            self.terminate();
            return Some(TimerAction::Terminated);
        }
        if let Some(e) = self.timer_e.filter(|e| e.at <= now) {
            let next = match self.state {
                State::Proceeding => self.timers.t2,
                _ => e.interval.saturating_mul(2).min(self.timers.t2),
            };
            self.timer_e = Retrans::arm(now, next);
            return Some(TimerAction::Retransmit(self.request.clone()));
        }
        None
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}

/// Server INVITE transaction (§17.2.1, RFC 6026 §7.1). Created when an INVITE arrives.
///
/// Proceeding (1xx sent, no timers) → 2xx → Accepted (L; the TU retransmits 2xx itself, INVITE
/// retransmissions absorbed) or 300-699 → Completed (G retransmits the final doubling up to T2,
/// H times out) → ACK → Confirmed (I) → Terminated.
#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    rel: Reliability,
    timers: Timers,
    last: Option<Bytes>,
    timer_g: Option<Retrans>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
}

impl ServerInvite {
    /// Start in Proceeding. No timer runs until a final response is sent (`now` is accepted
    /// for symmetry). The caller sends 100 Trying and records it with `send_response`.
    pub fn new(rel: Reliability, timers: Timers, now: Instant) -> Self {
        let _ = now;
        ServerInvite {
            state: State::Proceeding,
            rel,
            timers,
            last: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once the transaction is over and can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The response an INVITE retransmission would get (the last 1xx in Proceeding, the
    /// final in Completed/Confirmed); `None` in Accepted: a 2xx is never stored, since a
    /// proxy does not retransmit it (RFC 6026 §7.1: the TU does, end to end).
    pub fn last_response(&self) -> Option<&Bytes> {
        self.last.as_ref()
    }

    /// Record a response the TU is sending (the caller transmits `bytes`). Returns false (and
    /// changes nothing) if the state does not allow sending it (e.g. a 1xx after a final).
    pub fn send_response(&mut self, code: u16, bytes: Bytes, now: Instant) -> bool {
        self.record_response(code, &bytes, now)
    }

    /// [`ServerInvite::send_response`] for bytes the caller also transmits: cloned only if
    /// kept (1xx and 300-699; a 2xx is not).
    pub fn record_response(&mut self, code: u16, bytes: &Bytes, now: Instant) -> bool {
        let Some(class) = classify(code) else {
            return false;
        };
        match (self.state, class) {
            (State::Proceeding, Class::Provisional) => {}
            (State::Proceeding | State::Accepted, Class::Success) => {
                if self.state == State::Proceeding {
                    self.state = State::Accepted;
                    self.timer_l = after(now, self.timers.t1x64());
                }
                // Nothing is resent in Accepted: the last 1xx goes too.
                self.last = None;
                return true;
            }
            (State::Proceeding, Class::Failure) => {
                self.state = State::Completed;
                self.timer_g = match self.rel {
                    Reliability::Unreliable => Retrans::arm(now, self.timers.t1),
                    Reliability::Reliable => None,
                };
                self.timer_h = after(now, self.timers.t1x64());
            }
            _ => return false,
        }
        self.last = Some(bytes.clone());
        true
    }

    /// A retransmitted INVITE arrived: the last provisional/final response to resend, if any.
    pub fn on_retransmission(&mut self) -> Option<Bytes> {
        match self.state {
            State::Proceeding | State::Completed => self.last.clone(),
            _ => None,
        }
    }

    /// An ACK matched this transaction (non-2xx case). Returns true if it was absorbed.
    ///
    /// Completed → Confirmed (timer I); ACK retransmissions in Confirmed are absorbed too. In
    /// any other state (notably Accepted: the ACK of a 2xx belongs to the TU) returns false.
    pub fn on_ack(&mut self, now: Instant) -> bool {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                self.timer_i = after(now, self.timers.t4_or_zero(self.rel));
                true
            }
            State::Confirmed => true,
            _ => false,
        }
    }

    /// The transport reported an error sending a response. Proceeding/Completed terminate (the
    /// caller informs the TU); in Accepted the TU is informed and the transaction stays (RFC
    /// 6026 §7.1); otherwise nothing changes.
    pub fn on_transport_error(&mut self) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            self.terminate();
        }
    }

    /// The earliest armed timer; call `on_timeout` once it has passed. Re-read after every call.
    pub fn deadline(&self) -> Option<Instant> {
        earliest([
            Retrans::at(&self.timer_g),
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }

    /// Handle every timer due at `now`; `None` if none was due.
    pub fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if due(self.timer_h, now) {
            self.terminate();
            return Some(TimerAction::TimedOut);
        }
        if due(self.timer_i, now) || due(self.timer_l, now) {
            self.terminate();
            return Some(TimerAction::Terminated);
        }
        if Retrans::is_due(&self.timer_g, now) {
            if let (Some(g), Some(last)) = (self.timer_g, self.last.clone()) {
                let next = g.interval.saturating_mul(2).min(self.timers.t2);
                self.timer_g = Retrans::arm(now, next);
                return Some(TimerAction::Retransmit(last));
            }
            // Unreachable in practice (G is only armed together with a stored final); disarm.
            self.timer_g = None;
        }
        None
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }
}

/// Server non-INVITE transaction (§17.2.2).
///
/// Trying (request retransmissions absorbed) → 1xx → Proceeding (retransmissions answered with
/// the last 1xx) → 200-699 → Completed (J; retransmissions answered with the final) → Terminated.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    rel: Reliability,
    timers: Timers,
    last: Option<Bytes>,
    timer_j: Option<Instant>,
}

impl ServerNonInvite {
    /// Start in Trying. No timer runs until a final response is sent (`now` is accepted for
    /// symmetry).
    pub fn new(rel: Reliability, timers: Timers, now: Instant) -> Self {
        let _ = now;
        ServerNonInvite {
            state: State::Trying,
            rel,
            timers,
            last: None,
            timer_j: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once the transaction is over and can be forgotten.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The last response recorded with `send_response`, if any.
    pub fn last_response(&self) -> Option<&Bytes> {
        self.last.as_ref()
    }

    /// Record a response the TU is sending (the caller transmits `bytes`). Returns false (and
    /// changes nothing) after a final response or for a code outside 100..=699.
    pub fn send_response(&mut self, code: u16, bytes: Bytes, now: Instant) -> bool {
        self.record_response(code, &bytes, now)
    }

    /// [`ServerNonInvite::send_response`] for bytes the caller also transmits (cloned when
    /// kept).
    pub fn record_response(&mut self, code: u16, bytes: &Bytes, now: Instant) -> bool {
        let Some(class) = classify(code) else {
            return false;
        };
        match (self.state, class) {
            (State::Trying | State::Proceeding, Class::Provisional) => {
                self.state = State::Proceeding;
            }
            (State::Trying | State::Proceeding, Class::Success | Class::Failure) => {
                self.state = State::Completed;
                self.timer_j = after(now, self.timers.timer_j(self.rel));
            }
            _ => return false,
        }
        self.last = Some(bytes.clone());
        true
    }

    /// A retransmitted request arrived: the last response to resend (none in Trying).
    pub fn on_retransmission(&mut self) -> Option<Bytes> {
        match self.state {
            State::Proceeding | State::Completed => self.last.clone(),
            _ => None,
        }
    }

    /// The transport reported an error sending a response: Proceeding/Completed terminate.
    pub fn on_transport_error(&mut self) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            self.terminate();
        }
    }

    /// The earliest armed timer; call `on_timeout` once it has passed. Re-read after every call.
    pub fn deadline(&self) -> Option<Instant> {
        self.timer_j
    }

    /// Handle every timer due at `now`; `None` if none was due.
    pub fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if due(self.timer_j, now) {
            self.terminate();
            return Some(TimerAction::Terminated);
        }
        None
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_j = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn classify_bounds() {
        assert_eq!(classify(99), None);
        assert_eq!(classify(100), Some(Class::Provisional));
        assert_eq!(classify(199), Some(Class::Provisional));
        assert_eq!(classify(200), Some(Class::Success));
        assert_eq!(classify(299), Some(Class::Success));
        assert_eq!(classify(300), Some(Class::Failure));
        assert_eq!(classify(699), Some(Class::Failure));
        assert_eq!(classify(700), None);
    }

    #[test]
    fn derived_timer_values() {
        let t = Timers::default();
        assert_eq!(t.t1x64(), Duration::from_secs(32));
        assert_eq!(t.timer_d(Reliability::Unreliable), Duration::from_secs(32));
        assert_eq!(t.timer_d(Reliability::Reliable), Duration::ZERO);
        assert_eq!(
            t.t4_or_zero(Reliability::Unreliable),
            Duration::from_secs(5)
        );
        assert_eq!(t.t4_or_zero(Reliability::Reliable), Duration::ZERO);
        assert_eq!(t.timer_j(Reliability::Unreliable), Duration::from_secs(32));
        assert_eq!(t.timer_j(Reliability::Reliable), Duration::ZERO);
        let big = Timers {
            t1: Duration::from_secs(1),
            ..t
        };
        assert_eq!(
            big.timer_d(Reliability::Unreliable),
            Duration::from_secs(64)
        );
        let small = Timers { t1: ms(100), ..t };
        assert_eq!(
            small.timer_d(Reliability::Unreliable),
            Duration::from_secs(32)
        );
        let huge = Timers {
            t1: Duration::MAX,
            ..t
        };
        assert_eq!(huge.t1x64(), Duration::MAX);
    }

    #[test]
    fn overflowing_deadline_is_never_armed() {
        let now = Instant::now();
        let t = Timers {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        };
        let mut c = ClientInvite::new(
            Bytes::from_static(b"INVITE"),
            Reliability::Unreliable,
            t,
            now,
        );
        assert_eq!(c.deadline(), None);
        assert_eq!(c.on_timeout(now), None);
        assert_eq!(c.state(), State::Calling);
    }

    #[test]
    fn zero_t1_retransmits_with_floor_interval() {
        let now = Instant::now();
        let t = Timers {
            t1: Duration::ZERO,
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        };
        let mut c =
            ClientNonInvite::new(Bytes::from_static(b"BYE"), Reliability::Unreliable, t, now);
        // E and F are both due at `now`: F wins.
        assert_eq!(c.deadline(), Some(now));
        assert_eq!(c.on_timeout(now), Some(TimerAction::TimedOut));
        assert_eq!(c.deadline(), None);
        let t = Timers {
            t1: ms(1),
            t2: Duration::ZERO,
            t4: Duration::ZERO,
        };
        let mut c =
            ClientNonInvite::new(Bytes::from_static(b"BYE"), Reliability::Unreliable, t, now);
        let at = now + ms(1);
        assert!(matches!(c.on_timeout(at), Some(TimerAction::Retransmit(_))));
        assert_eq!(c.deadline(), Some(at + MIN_RETRANSMIT_INTERVAL));
    }
}
