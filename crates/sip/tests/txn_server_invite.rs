//! Server INVITE transaction (RFC 3261 §17.2.1, RFC 6026 §7.1) driven by a fake clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::txn::{Reliability, ServerInvite, State, TimerAction, Timers};

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

const R100: &[u8] = b"SIP/2.0 100 Trying\r\n\r\n";
const R180: &[u8] = b"SIP/2.0 180 Ringing\r\n\r\n";
const R200: &[u8] = b"SIP/2.0 200 OK\r\n\r\n";
const R200_B: &[u8] = b"SIP/2.0 200 OK\r\nX-Retransmission: 1\r\n\r\n";
const R486: &[u8] = b"SIP/2.0 486 Busy Here\r\n\r\n";

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

fn udp(c: &Clock) -> ServerInvite {
    ServerInvite::new(Reliability::Unreliable, Timers::default(), c.at(0))
}

fn tcp(c: &Clock) -> ServerInvite {
    ServerInvite::new(Reliability::Reliable, Timers::default(), c.at(0))
}

/// Fire timers at their deadlines until the end; returns retransmission offsets (each must be
/// `expect` bytes) and the final action with its offset.
fn run_to_end(c: &Clock, t: &mut ServerInvite, expect: &[u8]) -> (Vec<u64>, TimerAction, u64) {
    let mut fired = Vec::new();
    for _ in 0..1000 {
        let Some(at) = t.deadline() else {
            panic!("no deadline in {:?}", t.state());
        };
        let offset = c.offset(at);
        match t.on_timeout(at) {
            Some(TimerAction::Retransmit(bytes)) => {
                assert_eq!(bytes, Bytes::copy_from_slice(expect));
                fired.push(offset);
            }
            Some(end) => return (fired, end, offset),
            None => panic!("deadline {offset} ms passed but on_timeout did nothing"),
        }
    }
    panic!("transaction never ended");
}

#[test]
fn proceeding_resends_latest_provisional() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(t.deadline(), None);
    assert_eq!(t.on_retransmission(), None, "nothing sent yet");
    assert!(t.send_response(100, b(R100), c.at(10)));
    assert_eq!(t.on_retransmission(), Some(b(R100)));
    assert!(t.send_response(180, b(R180), c.at(20)));
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(t.on_retransmission(), Some(b(R180)));
    assert_eq!(t.last_response(), Some(&b(R180)));
    assert_eq!(
        t.deadline(),
        None,
        "provisionals are not retransmitted by the transaction"
    );
    assert!(
        !t.on_ack(c.at(30)),
        "ACK in Proceeding is not the transaction's"
    );
}

#[test]
fn failure_retransmits_with_timer_g_capped_at_t2_until_timer_h() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert!(t.send_response(180, b(R180), c.at(0)));
    assert!(t.send_response(486, b(R486), c.at(0)));
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.deadline(), Some(c.at(500)));
    let (fired, end, at) = run_to_end(&c, &mut t, R486);
    // G: 0.5, 1, 2, 4, 4, 4 ... (capped at T2); H = 64*T1 = 32 s.
    assert_eq!(
        fired,
        vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(end, TimerAction::TimedOut, "no ACK: timer H");
    assert_eq!(at, 32_000);
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.deadline(), None);
}

#[test]
fn completed_resends_final_and_refuses_more_responses() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert!(t.send_response(486, b(R486), c.at(0)));
    assert_eq!(t.on_retransmission(), Some(b(R486)));
    assert!(!t.send_response(180, b(R180), c.at(1)));
    assert!(!t.send_response(200, b(R200), c.at(1)));
    assert!(!t.send_response(500, b(R486), c.at(1)));
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.last_response(), Some(&b(R486)));
    assert_eq!(
        t.deadline(),
        Some(c.at(500)),
        "refused sends change no timer"
    );
}

#[test]
fn ack_confirms_stops_g_and_h_and_timer_i_ends() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert!(t.send_response(486, b(R486), c.at(0)));
    assert!(matches!(
        t.on_timeout(c.at(500)),
        Some(TimerAction::Retransmit(_))
    ));
    assert!(t.on_ack(c.at(800)));
    assert_eq!(t.state(), State::Confirmed);
    assert_eq!(t.deadline(), Some(c.at(5_800)), "timer I = T4");
    assert_eq!(t.on_timeout(c.at(1_500)), None, "G stopped");
    // ACK retransmissions are absorbed, INVITE retransmissions get nothing.
    assert!(t.on_ack(c.at(900)));
    assert_eq!(t.on_retransmission(), None);
    assert!(!t.send_response(486, b(R486), c.at(900)));
    assert_eq!(t.on_timeout(c.at(5_799)), None);
    assert_eq!(t.on_timeout(c.at(5_800)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.deadline(), None);
}

#[test]
fn reliable_has_no_g_and_zero_i() {
    let c = Clock::new();
    let mut t = tcp(&c);
    assert!(t.send_response(603, b(R486), c.at(100)));
    assert_eq!(t.deadline(), Some(c.at(32_100)), "only H");
    assert!(t.on_ack(c.at(200)));
    assert_eq!(
        t.deadline(),
        Some(c.at(200)),
        "I = 0 fires on the next on_timeout"
    );
    assert_eq!(t.on_timeout(c.at(200)), Some(TimerAction::Terminated));

    let mut t = tcp(&c);
    assert!(t.send_response(486, b(R486), c.at(0)));
    let (fired, end, at) = run_to_end(&c, &mut t, R486);
    assert!(fired.is_empty());
    assert_eq!((end, at), (TimerAction::TimedOut, 32_000));
}

#[test]
fn success_enters_accepted_with_timer_l() {
    let c = Clock::new();
    let mut t = udp(&c);
    assert!(t.send_response(180, b(R180), c.at(0)));
    assert!(t.send_response(200, b(R200), c.at(1_000)));
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(t.deadline(), Some(c.at(33_000)), "timer L = 64*T1");
    // INVITE retransmissions are absorbed: the TU retransmits the 2xx itself.
    assert_eq!(t.on_retransmission(), None);
    // A 2xx is not stored (nothing is resent in Accepted), nor is the 1xx before it.
    assert_eq!(t.last_response(), None);
    // Further 2xx from the TU are allowed (not stored either); L is not restarted.
    assert!(t.send_response(200, b(R200_B), c.at(1_500)));
    assert_eq!(t.last_response(), None);
    assert_eq!(t.deadline(), Some(c.at(33_000)));
    assert!(!t.send_response(180, b(R180), c.at(1_600)));
    assert!(!t.send_response(486, b(R486), c.at(1_600)));
    // The ACK of a 2xx belongs to the TU.
    assert!(!t.on_ack(c.at(1_700)));
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(t.on_timeout(c.at(32_999)), None);
    assert_eq!(t.on_timeout(c.at(33_000)), Some(TimerAction::Terminated));
    assert_eq!(t.state(), State::Terminated);
}

#[test]
fn reliable_accepted_still_waits_timer_l() {
    let c = Clock::new();
    let mut t = tcp(&c);
    assert!(t.send_response(200, b(R200), c.at(0)));
    assert_eq!(t.deadline(), Some(c.at(32_000)));
}

#[test]
fn custom_timers_scale_g_h_i() {
    let c = Clock::new();
    let timers = Timers {
        t1: Duration::from_millis(250),
        t2: Duration::from_millis(1_000),
        t4: Duration::from_millis(2_000),
    };
    let mut t = ServerInvite::new(Reliability::Unreliable, timers, c.at(0));
    assert!(t.send_response(480, b(R486), c.at(0)));
    let (fired, end, at) = run_to_end(&c, &mut t, R486);
    let mut expected = vec![250, 750, 1_750];
    let mut next = 2_750;
    while next < 16_000 {
        expected.push(next);
        next += 1_000;
    }
    assert_eq!(fired, expected);
    assert_eq!((end, at), (TimerAction::TimedOut, 16_000), "H = 64*T1");

    let mut t = ServerInvite::new(Reliability::Unreliable, timers, c.at(0));
    assert!(t.send_response(480, b(R486), c.at(0)));
    assert!(t.on_ack(c.at(100)));
    assert_eq!(t.deadline(), Some(c.at(2_100)), "I = T4");
}

#[test]
fn transport_error() {
    let c = Clock::new();
    let mut t = udp(&c);
    t.on_transport_error();
    assert!(t.is_terminated());
    assert!(!t.send_response(200, b(R200), c.at(1)));
    assert_eq!(t.on_retransmission(), None);
    assert!(!t.on_ack(c.at(1)));
    assert_eq!(t.deadline(), None);

    // In Accepted the TU is informed but the transaction stays (RFC 6026).
    let mut t = udp(&c);
    assert!(t.send_response(200, b(R200), c.at(0)));
    t.on_transport_error();
    assert_eq!(t.state(), State::Accepted);

    let mut t = udp(&c);
    assert!(t.send_response(486, b(R486), c.at(0)));
    t.on_transport_error();
    assert!(t.is_terminated());
}

#[test]
fn out_of_range_codes_are_refused() {
    let c = Clock::new();
    let mut t = udp(&c);
    for code in [0, 99, 700, u16::MAX] {
        assert!(!t.send_response(code, b(R200), c.at(0)));
    }
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(t.last_response(), None);
}
