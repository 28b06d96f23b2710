//! Client INVITE transaction (RFC 3261 §17.1.1, RFC 6026 §7.2) driven by a fake clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::txn::{ClientInvite, ClientVerdict, Reliability, State, TimerAction, Timers};

/// A fake clock: a fixed base plus millisecond offsets. Nothing sleeps.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }
    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

const INVITE: &[u8] = b"INVITE sip:4008001234@example.invalid SIP/2.0\r\n\r\n";
const ACK: &[u8] = b"ACK sip:4008001234@example.invalid SIP/2.0\r\n\r\n";

fn udp(c: &Clock) -> ClientInvite {
    ClientInvite::new(
        Bytes::from_static(INVITE),
        Reliability::Unreliable,
        Timers::default(),
        c.at(0),
    )
}

fn tcp(c: &Clock) -> ClientInvite {
    ClientInvite::new(
        Bytes::from_static(INVITE),
        Reliability::Reliable,
        Timers::default(),
        c.at(0),
    )
}

/// Fire every timer at exactly its deadline until the transaction ends; returns the offsets
/// (ms) at which retransmissions happened and the final action with its offset.
fn run_to_end(c: &Clock, t: &mut ClientInvite) -> (Vec<u64>, TimerAction, u64) {
    let mut fired = Vec::new();
    for _ in 0..1000 {
        let Some(at) = t.deadline() else {
            panic!("transaction stalled without a deadline in {:?}", t.state());
        };
        let offset = at.duration_since(c.at(0)).as_millis() as u64;
        match t.on_timeout(at) {
            Some(TimerAction::Retransmit(bytes)) => {
                assert_eq!(bytes, Bytes::from_static(INVITE));
                fired.push(offset);
            }
            Some(end) => return (fired, end, offset),
            None => panic!("deadline {offset} ms passed but on_timeout did nothing"),
        }
    }
    panic!("transaction never ended");
}

#[test]
fn timer_a_doubles_and_timer_b_times_out_at_64_t1() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.state(), State::Calling);
    assert_eq!(t.deadline(), Some(c.at(500)));
    let (fired, end, at) = run_to_end(&c, &mut t);
    // Intervals 0.5, 1, 2, 4, 8, 16 s; the next (32 s) would be after B.
    assert_eq!(fired, vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]);
    assert_eq!(end, TimerAction::TimedOut);
    assert_eq!(at, 32_000);
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.deadline(), None);
}

#[test]
fn early_on_timeout_does_nothing() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_timeout(c.at(499)), None);
    assert_eq!(t.state(), State::Calling);
    assert_eq!(t.deadline(), Some(c.at(500)));
}

#[test]
fn late_driver_rearms_timer_a_from_now() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(
        t.on_timeout(c.at(700)),
        Some(TimerAction::Retransmit(Bytes::from_static(INVITE)))
    );
    assert_eq!(t.deadline(), Some(c.at(1_700)));
}

#[test]
fn timed_out_wins_over_due_retransmission() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_timeout(c.at(40_000)), Some(TimerAction::TimedOut));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.on_timeout(c.at(40_001)), None);
}

#[test]
fn reliable_transport_has_no_timer_a() {
    let c = Clock::new();
    let mut t = tcp(&c);
    assert_eq!(t.deadline(), Some(c.at(32_000)));
    assert_eq!(t.on_timeout(c.at(31_999)), None);
    assert_eq!(t.on_timeout(c.at(32_000)), Some(TimerAction::TimedOut));
    assert_eq!(t.state(), State::Terminated);
}

#[test]
fn provisional_stops_a_and_b() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert!(matches!(
        t.on_timeout(c.at(500)),
        Some(TimerAction::Retransmit(_))
    ));
    assert_eq!(t.on_response(100, c.at(600)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(
        t.deadline(),
        None,
        "Proceeding has no timers (timer C is the proxy's)"
    );
    assert_eq!(t.on_timeout(c.at(60_000)), None);
    assert_eq!(t.on_response(180, c.at(700)), ClientVerdict::PassUp);
    assert_eq!(t.on_response(183, c.at(800)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Proceeding);
}

#[test]
fn success_enters_accepted_and_timer_m_ends_it() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_response(180, c.at(100)), ClientVerdict::PassUp);
    assert_eq!(t.on_response(200, c.at(2_000)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(t.deadline(), Some(c.at(34_000)), "timer M = 64*T1");
    // 2xx retransmissions (and 2xx from other forks) are passed up for the proxy to forward.
    assert_eq!(t.on_response(200, c.at(2_500)), ClientVerdict::PassUp);
    assert_eq!(t.on_response(299, c.at(3_000)), ClientVerdict::PassUp);
    // Anything else is absorbed.
    assert_eq!(t.on_response(180, c.at(3_100)), ClientVerdict::Absorb);
    assert_eq!(t.on_response(486, c.at(3_200)), ClientVerdict::Absorb);
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(t.deadline(), Some(c.at(34_000)));
    assert_eq!(t.on_timeout(c.at(33_999)), None);
    assert_eq!(t.on_timeout(c.at(34_000)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.on_response(200, c.at(34_001)), ClientVerdict::Absorb);
}

#[test]
fn success_from_calling_stops_retransmissions() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_response(200, c.at(300)), ClientVerdict::PassUp);
    assert_eq!(t.deadline(), Some(c.at(32_300)));
    assert_eq!(t.on_timeout(c.at(500)), None, "timer A was stopped");
}

#[test]
fn reliable_accepted_still_waits_timer_m() {
    let c = Clock::new();
    let mut t = tcp(&c);
    assert_eq!(t.on_response(200, c.at(1_000)), ClientVerdict::PassUp);
    assert_eq!(t.deadline(), Some(c.at(33_000)));
}

#[test]
fn failure_completes_and_stored_ack_answers_retransmissions() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_response(180, c.at(100)), ClientVerdict::PassUp);
    assert_eq!(
        t.on_response(486, c.at(1_000)),
        ClientVerdict::PassUpSendAck
    );
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.deadline(), Some(c.at(33_000)), "timer D = 32 s on UDP");
    // Before the caller stored the ACK a retransmission is absorbed.
    assert_eq!(t.on_response(486, c.at(1_001)), ClientVerdict::Absorb);
    t.set_ack(Bytes::from_static(ACK));
    assert_eq!(
        t.on_response(486, c.at(1_500)),
        ClientVerdict::Retransmit(Bytes::from_static(ACK))
    );
    // Any 300-699 retransmission is answered; other classes are absorbed.
    assert_eq!(
        t.on_response(603, c.at(1_600)),
        ClientVerdict::Retransmit(Bytes::from_static(ACK))
    );
    assert_eq!(t.on_response(200, c.at(1_700)), ClientVerdict::Absorb);
    assert_eq!(t.on_response(180, c.at(1_800)), ClientVerdict::Absorb);
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.on_timeout(c.at(32_999)), None);
    assert_eq!(t.on_timeout(c.at(33_000)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.on_response(486, c.at(33_001)), ClientVerdict::Absorb);
    assert_eq!(t.deadline(), None);
}

#[test]
fn failure_from_calling_stops_a_and_b() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.on_response(503, c.at(200)), ClientVerdict::PassUpSendAck);
    assert_eq!(t.on_timeout(c.at(500)), None);
    assert_eq!(t.deadline(), Some(c.at(32_200)));
}

#[test]
fn reliable_timer_d_is_zero() {
    let c = Clock::new();
    let mut t = tcp(&c);
    assert_eq!(t.on_response(404, c.at(700)), ClientVerdict::PassUpSendAck);
    assert_eq!(t.deadline(), Some(c.at(700)));
    assert_eq!(t.on_timeout(c.at(700)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
}

#[test]
fn timer_d_is_max_of_64_t1_and_32_s() {
    let c = Clock::new();
    let slow = Timers {
        t1: Duration::from_secs(1),
        ..Timers::default()
    };
    let mut t = ClientInvite::new(
        Bytes::from_static(INVITE),
        Reliability::Unreliable,
        slow,
        c.at(0),
    );
    t.on_response(480, c.at(0));
    assert_eq!(t.deadline(), Some(c.at(64_000)));

    let fast = Timers {
        t1: Duration::from_millis(100),
        ..Timers::default()
    };
    let mut t = ClientInvite::new(
        Bytes::from_static(INVITE),
        Reliability::Unreliable,
        fast,
        c.at(0),
    );
    t.on_response(480, c.at(0));
    assert_eq!(t.deadline(), Some(c.at(32_000)));
}

#[test]
fn custom_t1_scales_a_and_b() {
    let c = Clock::new();
    let timers = Timers {
        t1: Duration::from_millis(100),
        t2: Duration::from_secs(1),
        t4: Duration::from_secs(1),
    };
    let mut t = ClientInvite::new(
        Bytes::from_static(INVITE),
        Reliability::Unreliable,
        timers,
        c.at(0),
    );
    let (fired, end, at) = run_to_end(&c, &mut t);
    // A is not capped by T2 (only E and G are).
    assert_eq!(fired, vec![100, 300, 700, 1_500, 3_100, 6_300]);
    assert_eq!(end, TimerAction::TimedOut);
    assert_eq!(at, 6_400);
}

#[test]
fn transport_error_terminates() {
    let c = Clock::new();
    let mut t = udp(&c);
    t.on_transport_error();
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.deadline(), None);
    assert_eq!(t.on_timeout(c.at(32_000)), None);
    assert_eq!(t.on_response(200, c.at(10)), ClientVerdict::Absorb);
    assert_eq!(t.on_response(100, c.at(10)), ClientVerdict::Absorb);
}

#[test]
fn out_of_range_codes_are_absorbed_without_effect() {
    let c = Clock::new();
    let mut t = udp(&c);
    for code in [0, 1, 99, 700, 999, u16::MAX] {
        assert_eq!(t.on_response(code, c.at(10)), ClientVerdict::Absorb);
        assert_eq!(t.state(), State::Calling);
    }
    assert_eq!(t.deadline(), Some(c.at(500)));
}

#[test]
fn request_bytes_are_kept() {
    let c = Clock::new();
    let t = udp(&c);
    assert_eq!(t.request(), &Bytes::from_static(INVITE));
    assert!(!t.is_terminated());
}
