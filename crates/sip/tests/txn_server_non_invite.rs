//! Server non-INVITE transaction (RFC 3261 §17.2.2) driven by a fake clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::txn::{Reliability, ServerNonInvite, State, TimerAction, Timers};

struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Clock(Instant::now())
    }
    fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

const R100: &[u8] = b"SIP/2.0 100 Trying\r\n\r\n";
const R200: &[u8] = b"SIP/2.0 200 OK\r\n\r\n";
const R481: &[u8] = b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n\r\n";

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn new(c: &Clock, rel: Reliability, timers: Timers) -> ServerNonInvite {
    ServerNonInvite::new(rel, timers, c.at(0))
}

#[test]
fn trying_absorbs_retransmissions() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert_eq!(t.state(), State::Trying);
    assert_eq!(t.deadline(), None);
    assert_eq!(t.on_retransmission(), None);
    assert_eq!(t.on_timeout(c.at(100_000)), None);
    assert_eq!(t.state(), State::Trying);
}

#[test]
fn provisional_then_final_with_timer_j() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert!(t.send_response(100, b(R100), c.at(10)));
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(t.on_retransmission(), Some(b(R100)));
    assert_eq!(t.deadline(), None);
    assert!(t.send_response(200, b(R200), c.at(1_000)));
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.on_retransmission(), Some(b(R200)));
    assert_eq!(
        t.on_retransmission(),
        Some(b(R200)),
        "every retransmission is answered"
    );
    assert_eq!(t.deadline(), Some(c.at(33_000)), "timer J = 64*T1 on UDP");
    assert!(!t.send_response(100, b(R100), c.at(1_001)));
    assert!(!t.send_response(481, b(R481), c.at(1_001)));
    assert_eq!(t.last_response(), Some(&b(R200)));
    assert_eq!(t.on_timeout(c.at(32_999)), None);
    assert_eq!(t.on_timeout(c.at(33_000)), Some(TimerAction::Terminated));
    assert!(t.is_terminated());
    assert_eq!(t.on_retransmission(), None);
    assert!(!t.send_response(200, b(R200), c.at(33_001)));
    assert_eq!(t.deadline(), None);
}

#[test]
fn final_straight_from_trying() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    assert!(t.send_response(481, b(R481), c.at(5)));
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.on_retransmission(), Some(b(R481)));
}

#[test]
fn reliable_timer_j_is_zero() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Reliable, Timers::default());
    assert!(t.send_response(200, b(R200), c.at(700)));
    assert_eq!(t.deadline(), Some(c.at(700)));
    assert_eq!(t.on_timeout(c.at(700)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
}

#[test]
fn custom_t1_scales_timer_j() {
    let c = Clock::new();
    let timers = Timers {
        t1: Duration::from_millis(50),
        ..Timers::default()
    };
    let mut t = new(&c, Reliability::Unreliable, timers);
    assert!(t.send_response(200, b(R200), c.at(0)));
    assert_eq!(t.deadline(), Some(c.at(3_200)));
}

#[test]
fn transport_error_terminates_after_a_response() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    t.on_transport_error();
    assert_eq!(t.state(), State::Trying, "nothing was sent in Trying");
    assert!(t.send_response(100, b(R100), c.at(0)));
    t.on_transport_error();
    assert!(t.is_terminated());
    assert_eq!(t.on_retransmission(), None);
}

#[test]
fn out_of_range_codes_are_refused() {
    let c = Clock::new();
    let mut t = new(&c, Reliability::Unreliable, Timers::default());
    for code in [0, 99, 700, u16::MAX] {
        assert!(!t.send_response(code, b(R200), c.at(0)));
    }
    assert_eq!(t.state(), State::Trying);
    assert_eq!(t.last_response(), None);
}
