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

    /// Driving only timers, every machine ends (or stalls with no deadline) within a bounded
    /// number of steps: no retransmission timer survives its transaction timeout.
    #[test]
    fn timers_alone_always_end(rel in reliability(),
                               t1 in 1u64..3_000, t2 in 1u64..10_000, t4 in 0u64..10_000) {
        let t = Timers {
            t1: Duration::from_millis(t1),
            t2: Duration::from_millis(t2),
            t4: Duration::from_millis(t4),
        };
        let start = Instant::now();
        let mut c = ClientNonInvite::new(Bytes::from_static(REQUEST), rel, t, start);
        let mut steps = 0u32;
        while let Some(at) = c.deadline() {
            prop_assert!(c.on_timeout(at).is_some());
            steps += 1;
            prop_assert!(steps < 100_000);
        }
        prop_assert_eq!(c.state(), State::Terminated);
        let mut c = ClientInvite::new(Bytes::from_static(REQUEST), rel, t, start);
        while let Some(at) = c.deadline() {
            prop_assert!(c.on_timeout(at).is_some());
        }
        prop_assert_eq!(c.state(), State::Terminated);
    }
}
