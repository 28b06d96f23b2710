//! Client non-INVITE transaction (RFC 3261 §17.1.2) driven by a fake clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::txn::{ClientNonInvite, ClientVerdict, Reliability, State, TimerAction, Timers};

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }
    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
    fn offset(&self, at: Instant) -> u64 {
        at.duration_since(self.0).as_millis() as u64
    }
}

const BYE: &[u8] = b"BYE sip:alice@example.invalid SIP/2.0\r\n\r\n";

fn new(c: &Clock, rel: Reliability, timers: Timers) -> ClientNonInvite {
    ClientNonInvite::new(Bytes::from_static(BYE), rel, timers, c.at(0))
}

/// Fire timers at their deadlines until `until` ms (exclusive) or the end; returns the
/// retransmission offsets and the final action, if one happened.
fn run(c: &Clock, t: &mut ClientNonInvite, until: u64) -> (Vec<u64>, Option<(TimerAction, u64)>) {
    let mut fired = Vec::new();
    while let Some(at) = t.deadline() {
        let offset = c.offset(at);
        if offset >= until {
            break;
        }
        match t.on_timeout(at) {
            Some(TimerAction::Retransmit(bytes)) => {
                assert_eq!(bytes, Bytes::from_static(BYE));
                fired.push(offset);
            }
            Some(end) => return (fired, Some((end, offset))),
            None => panic!("deadline {offset} ms passed but on_timeout did nothing"),
        }
    }
    (fired, None)
}

#[test]
fn timer_e_doubles_up_to_t2_and_timer_f_times_out() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert_eq!(t.state(), State::Trying);
    assert_eq!(t.deadline(), Some(c.at(500)));
    let (fired, end) = run(&c, &mut t, u64::MAX);
    // Intervals 0.5, 1, 2, 4, 4, 4, ... (capped at T2 = 4 s).
    assert_eq!(
        fired,
        vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(end, Some((TimerAction::TimedOut, 32_000)));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.deadline(), None);
}

#[test]
fn provisional_keeps_e_running_at_t2() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    let (fired, _) = run(&c, &mut t, 600);
    assert_eq!(fired, vec![500]);
    assert_eq!(t.on_response(100, c.at(600)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Proceeding);
    // The pending E (armed with 1 s at 500 ms) keeps its deadline; afterwards every 4 s.
    assert_eq!(t.deadline(), Some(c.at(1_500)));
    let (fired, end) = run(&c, &mut t, u64::MAX);
    assert_eq!(
        fired,
        vec![1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
    );
    assert_eq!(
        end,
        Some((TimerAction::TimedOut, 32_000)),
        "F also fires in Proceeding"
    );
}

#[test]
fn provisional_before_first_e() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert_eq!(t.on_response(180, c.at(100)), ClientVerdict::PassUp);
    assert_eq!(t.deadline(), Some(c.at(500)));
    let (fired, _) = run(&c, &mut t, 10_000);
    assert_eq!(fired, vec![500, 4_500, 8_500]);
    assert_eq!(t.on_response(183, c.at(10_000)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Proceeding);
}

#[test]
fn final_completes_with_timer_k_and_absorbs_retransmissions() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert_eq!(t.on_response(200, c.at(800)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.deadline(), Some(c.at(5_800)), "timer K = T4");
    assert_eq!(t.on_timeout(c.at(1_500)), None, "E stopped");
    assert_eq!(t.on_response(200, c.at(900)), ClientVerdict::Absorb);
    assert_eq!(t.on_response(481, c.at(900)), ClientVerdict::Absorb);
    assert_eq!(t.on_response(100, c.at(900)), ClientVerdict::Absorb);
    assert_eq!(t.on_timeout(c.at(5_799)), None);
    assert_eq!(t.on_timeout(c.at(5_800)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.on_response(200, c.at(6_000)), ClientVerdict::Absorb);
    assert_eq!(t.deadline(), None);
}

#[test]
fn failure_from_proceeding_is_passed_up() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert_eq!(t.on_response(100, c.at(10)), ClientVerdict::PassUp);
    assert_eq!(t.on_response(408, c.at(20)), ClientVerdict::PassUp);
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.deadline(), Some(c.at(5_020)));
}

#[test]
fn reliable_has_no_e_and_zero_k() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Reliable, Timers::default());
    assert_eq!(t.deadline(), Some(c.at(32_000)), "only F");
    assert_eq!(t.on_response(200, c.at(3_000)), ClientVerdict::PassUp);
    assert_eq!(t.deadline(), Some(c.at(3_000)));
    assert_eq!(t.on_timeout(c.at(3_000)), Some(TimerAction::Terminated));

    let mut t = new(&c, Reliability::Reliable, Timers::default());
    let (fired, end) = run(&c, &mut t, u64::MAX);
    assert!(fired.is_empty());
    assert_eq!(end, Some((TimerAction::TimedOut, 32_000)));
}

#[test]
fn custom_timers_scale_e_f_k() {
    let c = Clock::new();
    let timers = Timers {
        t1: Duration::from_millis(200),
        t2: Duration::from_millis(1_000),
        t4: Duration::from_millis(1_500),
    };
    let mut t = new(&c, Reliability::Unreliable, timers);
    let (fired, end) = run(&c, &mut t, u64::MAX);
    // 0.2, 0.4, 0.8, then capped at 1 s; F = 64 * 0.2 = 12.8 s.
    let mut expected = vec![200, 600, 1_400];
    let mut at = 1_400;
    while at + 1_000 < 12_800 {
        at += 1_000;
        expected.push(at);
    }
    assert_eq!(fired, expected);
    assert_eq!(end, Some((TimerAction::TimedOut, 12_800)));

    let mut t = new(&c, Reliability::Unreliable, timers);
    assert_eq!(t.on_response(202, c.at(100)), ClientVerdict::PassUp);
    assert_eq!(t.deadline(), Some(c.at(1_600)), "K = T4 = 1.5 s");
}

#[test]
fn transport_error_terminates() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    t.on_transport_error();
    assert!(t.is_terminated());
    assert_eq!(t.deadline(), None);
    assert_eq!(t.on_response(200, c.at(1)), ClientVerdict::Absorb);
    assert_eq!(t.on_timeout(c.at(40_000)), None);
}

#[test]
fn out_of_range_codes_are_absorbed() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    for code in [0, 42, 99, 700, u16::MAX] {
        assert_eq!(t.on_response(code, c.at(1)), ClientVerdict::Absorb);
    }
    assert_eq!(t.state(), State::Trying);
    assert_eq!(t.request(), &Bytes::from_static(BYE));
}
