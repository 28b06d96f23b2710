//! Property tests: random event sequences against all four transaction machines. No event may
//! panic, timers never move into the past relative to the `now` given, and termination is final.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::txn::{
    ClientInvite, ClientNonInvite, Reliability, ServerInvite, ServerNonInvite, State, TimerAction,
    Timers,
};
use proptest::prelude::*;

const REQUEST: &[u8] = b"INVITE sip:x@example.invalid SIP/2.0\r\n\r\n";

#[derive(Debug, Clone)]
enum Ev {
    /// Move the clock forward by this many milliseconds.
    Advance(u32),
    /// Move the clock to the current deadline (if later) and call `on_timeout`.
    ToDeadline,
    /// Call `on_timeout` at the current time.
    Timeout,
    /// Client: a response arrives. Server: the TU sends a response.
    Response(u16),
    /// Client INVITE: the caller stores an ACK. Server INVITE: an ACK arrives.
    Ack,
    /// Server: a request retransmission arrives.
    Retransmission,
    TransportError,
}

fn code() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(100u16),
        Just(180),
        Just(200),
        Just(486),
        Just(603),
        0u16..=800,
        any::<u16>(),
    ]
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (0u32..40_000).prop_map(Ev::Advance),
        3 => Just(Ev::ToDeadline),
        1 => Just(Ev::Timeout),
        3 => code().prop_map(Ev::Response),
        1 => Just(Ev::Ack),
        1 => Just(Ev::Retransmission),
        1 => Just(Ev::TransportError),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (0u64..12_000).prop_map(Duration::from_millis),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
    ]
}

/// Any timer set, including ones the configuration refuses (zero, T2 < T1, `Duration::MAX`): no
/// machine may panic or move a deadline into the past whatever it is given.
fn timers() -> impl Strategy<Value = Timers> {
    (duration(), duration(), duration()).prop_map(|(t1, t2, t4)| Timers { t1, t2, t4 })
}

fn reliability() -> impl Strategy<Value = Reliability> {
    prop_oneof![Just(Reliability::Unreliable), Just(Reliability::Reliable)]
}

/// Uniform driver over the four machines.
trait Machine {
    fn state(&self) -> State;
    fn deadline(&self) -> Option<Instant>;
    fn on_timeout(&mut self, now: Instant) -> Option<TimerAction>;
    /// A non-timer event.
    fn event(&mut self, ev: &Ev, now: Instant);
    /// The bytes a timer retransmission must carry.
    fn retransmits(&self) -> Option<Bytes>;
}

impl Machine for ClientInvite {
    fn state(&self) -> State {
        ClientInvite::state(self)
    }
    fn deadline(&self) -> Option<Instant> {
        ClientInvite::deadline(self)
    }
    fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        ClientInvite::on_timeout(self, now)
    }
    fn event(&mut self, ev: &Ev, now: Instant) {
        match ev {
            Ev::Response(code) => {
                let _ = self.on_response(*code, now);
            }
            Ev::Ack => self.set_ack(Bytes::from_static(b"ACK")),
            Ev::TransportError => self.on_transport_error(),
            _ => {}
        }
    }
    fn retransmits(&self) -> Option<Bytes> {
        Some(self.request().clone())
    }
}

impl Machine for ClientNonInvite {
    fn state(&self) -> State {
        ClientNonInvite::state(self)
    }
    fn deadline(&self) -> Option<Instant> {
        ClientNonInvite::deadline(self)
    }
    fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        ClientNonInvite::on_timeout(self, now)
    }
    fn event(&mut self, ev: &Ev, now: Instant) {
        match ev {
            Ev::Response(code) => {
                let _ = self.on_response(*code, now);
            }
            Ev::TransportError => self.on_transport_error(),
            _ => {}
        }
    }
    fn retransmits(&self) -> Option<Bytes> {
        Some(self.request().clone())
    }
}

impl Machine for ServerInvite {
    fn state(&self) -> State {
        ServerInvite::state(self)
    }
    fn deadline(&self) -> Option<Instant> {
        ServerInvite::deadline(self)
    }
    fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        ServerInvite::on_timeout(self, now)
    }
    fn event(&mut self, ev: &Ev, now: Instant) {
        match ev {
            Ev::Response(code) => {
                let body = Bytes::from(format!("SIP/2.0 {code} X\r\n\r\n"));
                let before = self.last_response().cloned();
                if !self.send_response(*code, body.clone(), now) {
                    assert_eq!(
                        self.last_response().cloned(),
                        before,
                        "refused send changed state"
                    );
                } else if (200..300).contains(code) {
                    // A 2xx is never stored: nothing is resent in Accepted.
                    assert_eq!(self.last_response(), None);
                } else {
                    assert_eq!(self.last_response(), Some(&body));
                }
            }
            Ev::Ack => {
                let _ = self.on_ack(now);
            }
            Ev::Retransmission => {
                if let Some(resend) = self.on_retransmission() {
                    assert_eq!(Some(&resend), self.last_response());
                }
            }
            Ev::TransportError => self.on_transport_error(),
            _ => {}
        }
    }
    fn retransmits(&self) -> Option<Bytes> {
        self.last_response().cloned()
    }
}

impl Machine for ServerNonInvite {
    fn state(&self) -> State {
        ServerNonInvite::state(self)
    }
    fn deadline(&self) -> Option<Instant> {
        ServerNonInvite::deadline(self)
    }
    fn on_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        ServerNonInvite::on_timeout(self, now)
    }
    fn event(&mut self, ev: &Ev, now: Instant) {
        match ev {
            Ev::Response(code) => {
                let _ = self.send_response(*code, Bytes::from(format!("{code}")), now);
            }
            Ev::Retransmission => {
                if let Some(resend) = self.on_retransmission() {
                    assert_eq!(Some(&resend), self.last_response());
                }
            }
            Ev::TransportError => self.on_transport_error(),
            _ => {}
        }
    }
    fn retransmits(&self) -> Option<Bytes> {
        self.last_response().cloned()
    }
}

fn check<M: Machine>(mut m: M, start: Instant, events: &[Ev]) -> Result<(), TestCaseError> {
    let mut now = start;
    for ev in events {
        let was_terminated = m.state() == State::Terminated;
        let before = m.deadline();
        match ev {
            Ev::Advance(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                continue;
            }
            Ev::ToDeadline | Ev::Timeout => {
                if let (Ev::ToDeadline, Some(at)) = (ev, before) {
                    now = now.max(at);
                }
                let state_before = m.state();
                let action = m.on_timeout(now);
                let due = matches!(before, Some(at) if at <= now);
                if !due {
                    prop_assert_eq!(&action, &None, "on_timeout before the deadline acted");
                    prop_assert_eq!(m.state(), state_before);
                    prop_assert_eq!(m.deadline(), before);
                }
                match &action {
                    Some(TimerAction::TimedOut | TimerAction::Terminated) => {
                        prop_assert_eq!(m.state(), State::Terminated);
                    }
                    Some(TimerAction::Retransmit(bytes)) => {
                        prop_assert_eq!(Some(bytes.clone()), m.retransmits());
                        prop_assert_ne!(m.state(), State::Terminated);
                    }
                    None => {}
                }
                if let Some(at) = m.deadline() {
                    prop_assert!(at > now, "deadline not after now once on_timeout ran");
                }
            }
            other => {
                m.event(other, now);
                if let Some(at) = m.deadline() {
                    let floor = before.map_or(now, |b| b.min(now));
                    prop_assert!(at >= floor, "an event moved the deadline into the past");
                }
            }
        }
        if was_terminated {
            prop_assert_eq!(m.state(), State::Terminated, "left Terminated");
        }
        if m.state() == State::Terminated {
            prop_assert_eq!(m.deadline(), None, "terminated with a pending timer");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_invite_random(rel in reliability(), t in timers(),
                            events in prop::collection::vec(event(), 0..60)) {
        let start = Instant::now();
        check(ClientInvite::new(Bytes::from_static(REQUEST), rel, t, start), start, &events)?;
    }

    #[test]
    fn client_non_invite_random(rel in reliability(), t in timers(),
                                events in prop::collection::vec(event(), 0..60)) {
        let start = Instant::now();
        check(ClientNonInvite::new(Bytes::from_static(REQUEST), rel, t, start), start, &events)?;
    }

    #[test]
    fn server_invite_random(rel in reliability(), t in timers(),
                            events in prop::collection::vec(event(), 0..60)) {
        let start = Instant::now();
        check(ServerInvite::new(rel, t, start), start, &events)?;
    }

    #[test]
    fn server_non_invite_random(rel in reliability(), t in timers(),
                                events in prop::collection::vec(event(), 0..60)) {
        let start = Instant::now();
        check(ServerNonInvite::new(rel, t, start), start, &events)?;
    }

    /// Driving only timers, both client machines end within a bound that follows from the timer
    /// rules: every retransmission interval is at least T1 (it starts at T1 and doubles, capped at
    /// T2 >= T1), so at most 64 retransmissions fit before the 64*T1 timeout (Timer F); Timer A
    /// doubles without a cap, so at most 6 fit before Timer B. The transaction times out at
    /// exactly 64*T1.
    #[test]
    fn timers_alone_always_end(rel in reliability(), t in valid_timers()) {
        let start = Instant::now();
        let timeout = start + t.t1x64();
        let (retransmits, on_time) = drive_timers(
            ClientNonInvite::new(Bytes::from_static(REQUEST), rel, t, start),
            timeout,
        )?;
        prop_assert!(retransmits <= retransmit_bound(rel, 63), "{} retransmissions", retransmits);
        prop_assert!(on_time, "did not time out at 64*T1");
        let (retransmits, on_time) = drive_timers(
            ClientInvite::new(Bytes::from_static(REQUEST), rel, t, start),
            timeout,
        )?;
        prop_assert!(retransmits <= retransmit_bound(rel, 6), "{} retransmissions", retransmits);
        prop_assert!(on_time, "did not time out at 64*T1");
    }
}

/// Timer sets the configuration accepts (`server.sip`: T1 positive, T2 at least T1), the only
/// ones the switch runs with. T2 = T1 (the most retransmissions) comes up often.
fn valid_timers() -> impl Strategy<Value = Timers> {
    let above_t1 = prop_oneof![1 => Just(0u64), 4 => 0u64..10_000];
    (1u64..3_000, above_t1, 0u64..10_000).prop_map(|(t1, above, t4)| Timers {
        t1: Duration::from_millis(t1),
        t2: Duration::from_millis(t1 + above),
        t4: Duration::from_millis(t4),
    })
}

/// The most retransmissions a client transaction may send before its timeout.
fn retransmit_bound(rel: Reliability, unreliable: u32) -> u32 {
    match rel {
        Reliability::Unreliable => unreliable,
        Reliability::Reliable => 0,
    }
}

/// Fire every deadline until none is left. Returns the retransmissions counted before the
/// timeout and whether the transaction timed out exactly at `timeout`. Gives up (fails) after
/// 1000 steps, far above any bound, so a runaway timer cannot hang the suite.
fn drive_timers<M: Machine>(mut m: M, timeout: Instant) -> Result<(u32, bool), TestCaseError> {
    let mut retransmits = 0u32;
    let mut timed_out_at = None;
    for _ in 0..1000 {
        let Some(at) = m.deadline() else {
            prop_assert_eq!(m.state(), State::Terminated);
            return Ok((retransmits, timed_out_at == Some(timeout)));
        };
        match m.on_timeout(at) {
            Some(TimerAction::Retransmit(_)) => retransmits += 1,
            Some(TimerAction::TimedOut) => timed_out_at = Some(at),
            Some(TimerAction::Terminated) => {}
            None => prop_assert!(false, "a due deadline did nothing"),
        }
    }
    Err(TestCaseError::fail("still armed after 1000 timer steps"))
}
