//! Sans-IO scenario tests of the proxy core: a caller, the proxy and scripted targets, driven
//! by a fake clock. Every test runs in microseconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::proxy::{
    Admission, BranchTarget, ByCause, CallHandle, Diversion, Event, ForkGroup, ForkPlan, Hangup,
    Outcome, Peer, Presentation, Proxy, ProxyConfig, Transport,
};
use hotline_sip::rewrite;
use hotline_sip::{Message, Method};

fn udp(s: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: s.parse().expect("test address"),
        local: 0,
    }
}

const PROXY: &str = "10.0.0.1:5060";
const UAC: &str = "10.0.0.2:5060";
const T1: &str = "10.0.0.3:5070";
const T2: &str = "10.0.0.4:5071";

struct H {
    p: Proxy,
    now: Instant,
}

impl H {
    fn new() -> H {
        let local: SocketAddr = PROXY.parse().expect("addr");
        H {
            p: Proxy::new(ProxyConfig::new(local)),
            now: Instant::now(),
        }
    }
    fn send(&mut self, from: &str, msg: &str) {
        let bytes = Bytes::from(msg.replace("\r\n", "\n").replace('\n', "\r\n"));
        self.p.handle_message(self.now, udp(from), bytes);
    }
    fn send_bytes(&mut self, from: &str, bytes: Bytes) {
        self.p.handle_message(self.now, udp(from), bytes);
    }
    /// Everything the proxy sent, parsed.
    fn out(&mut self) -> Vec<(Peer, Message)> {
        let mut v = Vec::new();
        while let Some(t) = self.p.poll_transmit() {
            let m = Message::parse(t.bytes.clone()).expect("proxy output parses");
            v.push((t.dest, m));
        }
        v
    }
    fn events(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = self.p.poll_event() {
            v.push(e);
        }
        v
    }
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        // Fire timers in order, as a real driver would.
        while let Some(t) = self.p.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.p.handle_timeout(self.now);
            self.p.pending_hunts(self.now, &mut |_, _| true);
        }
        self.now = end;
    }
    fn pump(&mut self) {
        self.p.pending_hunts(self.now, &mut |_, _| true);
    }
    fn incoming(&mut self) -> CallHandle {
        self.events()
            .into_iter()
            .find_map(|e| match e {
                Event::Incoming { call, .. } => Some(call),
                _ => None,
            })
            .expect("an Incoming event")
    }
}

fn invite(branch: &str, call_id: &str, mf: u32) -> String {
    format!(
        "INVITE sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch={branch};rport\n\
Max-Forwards: {mf}\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>\n\
Call-ID: {call_id}\n\
CSeq: 1 INVITE\n\
Contact: <sip:13807912345@10.0.0.2:5060>\n\
Content-Type: application/sdp\n\
Content-Length: 5\n\
\n\
v=0\n"
    )
    .replace("v=0\n", "v=0\r\n")
}

fn target(addr: &str, tag: u32, ring: u64) -> BranchTarget {
    BranchTarget {
        uri: Bytes::from(format!("sip:100{tag}@{addr}")),
        dest: udp(addr),
        ring_timeout: Duration::from_secs(ring),
        tag,
    }
}

fn serial(targets: Vec<BranchTarget>) -> ForkPlan {
    ForkPlan {
        groups: targets
            .into_iter()
            .map(|t| ForkGroup {
                parallel: false,
                targets: vec![t],
            })
            .collect(),
        ..Default::default()
    }
}

/// A response from a target to a request the proxy sent it.
fn reply(req: &Message, code: u16, reason: &str, tag: &str) -> Bytes {
    let contact = format!("<sip:callee@{}>", T1);
    let extra: Vec<(&str, &[u8])> = if (200..300).contains(&code) {
        vec![("Contact", contact.as_bytes())]
    } else {
        vec![]
    };
    let mut r = rewrite::response(req, code, reason, Some(tag.as_bytes()), None, &extra);
    // Targets echo Record-Route in 2xx (RFC 3261 §12.1.1).
    if (200..300).contains(&code) {
        if let Some(rr) = req.record_routes().next() {
            let line = format!("Record-Route: {}\r\n", String::from_utf8_lossy(rr));
            let pos = r
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("end of head")
                + 2;
            r.splice(pos..pos, line.bytes());
        }
    }
    Bytes::from(r)
}

fn only<'a>(out: &'a [(Peer, Message)], dest: &str) -> Vec<&'a Message> {
    out.iter()
        .filter(|(p, _)| p.addr == dest.parse::<SocketAddr>().expect("addr"))
        .map(|(_, m)| m)
        .collect()
}

#[test]
fn basic_call_is_forwarded_answered_and_hung_up() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc1", "call-1", 70));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(100));
    assert_eq!(out[0].0, udp(UAC));
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let out = h.out();
    assert_eq!(out.len(), 1, "one INVITE to the target");
    let (dest, inv) = &out[0];
    assert_eq!(*dest, udp(T1));
    assert_eq!(inv.method(), Some(Method::Invite));
    assert_eq!(inv.request_uri(), format!("sip:1001@{T1}").as_bytes());
    assert_eq!(inv.max_forwards(), Some(69));
    let vias: Vec<_> = inv.vias().collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host, b"10.0.0.1");
    assert!(vias[0].branch.is_some_and(|b| b.starts_with(b"z9hG4bK")));
    assert_eq!(vias[1].received, Some(&b"10.0.0.2"[..]));
    assert_eq!(vias[1].rport, Some(Some(5060)));
    let rr: Vec<_> = inv.record_routes().collect();
    assert_eq!(rr, vec![&b"<sip:10.0.0.1:5060;lr>"[..]]);
    assert_eq!(inv.body(), b"v=0\r\n");

    // 180 then 200 are relayed with our Via removed.
    let inv = inv.clone();
    h.send_bytes(T1, reply(&inv, 180, "Ringing", "callee1"));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(out[0].1.status(), Some(180));
    assert_eq!(out[0].1.vias().count(), 1);
    h.send_bytes(T1, reply(&inv, 200, "OK", "callee1"));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(200));
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Answered { target: 1, .. })));
    assert!(ev.iter().any(|e| matches!(e,
        Event::AttemptEnded(a) if a.outcome == Outcome::Answered && a.attempt == 1)));

    // ACK for 2xx: loose-routed through us to the callee's Contact, statelessly.
    h.send(
        UAC,
        &format!(
            "ACK sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKack1;rport\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=callee1\n\
Call-ID: call-1\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n"
        ),
    );
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(T1));
    assert_eq!(out[0].1.method(), Some(Method::Ack));
    assert_eq!(out[0].1.routes().count(), 0, "our Route entry was popped");

    // BYE from the caller ends the call.
    h.send(
        UAC,
        &format!(
            "BYE sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKbye1;rport\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=callee1\n\
Call-ID: call-1\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\n"
        ),
    );
    let out = h.out();
    assert_eq!(out.len(), 1);
    let bye = out[0].1.clone();
    assert_eq!(bye.method(), Some(Method::Bye));
    let ended = h.events().into_iter().find_map(|e| match e {
        Event::CallEnded(c) => Some(c),
        _ => None,
    });
    let ended = ended.expect("CallEnded on BYE");
    assert_eq!(ended.hangup, Hangup::Caller);
    assert_eq!(ended.answered_target, Some(1));
    h.send_bytes(T1, reply(&bye, 200, "OK", "callee1"));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.cseq().1, Method::Bye);
}

#[test]
fn busy_first_target_hunts_to_the_second() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc2", "call-2", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.pump();
    let out = h.out();
    // ACK to the 486, hop by hop; INVITE to target 2.
    let to_t1 = only(&out, T1);
    assert_eq!(to_t1.len(), 1);
    assert_eq!(to_t1[0].method(), Some(Method::Ack));
    assert_eq!(to_t1[0].to_tag(), Some(&b"t1"[..]));
    let to_t2 = only(&out, T2);
    assert_eq!(to_t2.len(), 1);
    assert_eq!(to_t2[0].method(), Some(Method::Invite));
    assert!(only(&out, UAC).is_empty(), "the 486 is not relayed");
    let inv2 = to_t2[0].clone();
    h.send_bytes(T2, reply(&inv2, 200, "OK", "t2"));
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(200));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::AttemptEnded(a)
        if a.attempt == 1 && a.outcome == Outcome::Busy && a.code == 486)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Answered { target: 2, .. })));
}

#[test]
fn ring_timeout_cancels_and_moves_on_and_repeated_180_do_not_restart_it() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc3", "call-3", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 5), target(T2, 2, 5)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    // 180 every 500 ms for 4.5 s: the ring timer keeps running from the INVITE.
    for _ in 0..9 {
        h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
        h.advance(Duration::from_millis(500));
    }
    let out = h.out();
    assert!(only(&out, T2).is_empty(), "still ringing target 1 at 4.5 s");
    h.advance(Duration::from_millis(500));
    let out = h.out();
    let to_t1 = only(&out, T1);
    assert_eq!(to_t1.len(), 1);
    assert_eq!(to_t1[0].method(), Some(Method::Cancel));
    assert_eq!(to_t1[0].top_via().branch, inv1.top_via().branch);
    let to_t2 = only(&out, T2);
    assert_eq!(to_t2.len(), 1);
    assert_eq!(to_t2[0].method(), Some(Method::Invite));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::AttemptEnded(a)
        if a.attempt == 1 && a.outcome == Outcome::NoAnswer)));
    // The target's 487 is ACKed and not relayed.
    h.send_bytes(T1, reply(&inv1, 487, "Request Terminated", "t1"));
    let out = h.out();
    assert!(only(&out, UAC).is_empty());
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Ack));
}

#[test]
fn ring_timer_from_first_18x() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc3b", "call-3b", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 5), target(T2, 2, 5)]);
    plan.ring_from_18x = true;
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    h.advance(Duration::from_secs(3));
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.advance(Duration::from_millis(4900));
    assert!(
        only(&h.out(), T2).is_empty(),
        "5 s from the 180 not yet over"
    );
    h.advance(Duration::from_millis(200));
    assert_eq!(only(&h.out(), T2).len(), 1);
}

#[test]
fn silent_target_is_not_cancelled_before_a_provisional_and_hunt_moves_on() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc4", "call-4", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 2), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    // Timer A retransmits at 0.5 s and 1.5 s.
    h.advance(Duration::from_millis(1600));
    let out = h.out();
    assert_eq!(only(&out, T1).len(), 2, "two retransmissions");
    h.advance(Duration::from_millis(500));
    let out = h.out();
    assert!(
        only(&out, T1)
            .iter()
            .all(|m| m.method() != Some(Method::Cancel)),
        "no CANCEL before a provisional (§9.1)"
    );
    assert_eq!(only(&out, T2).len(), 1, "hunt moved on at the ring timeout");
    // A late 180 from target 1 now triggers the CANCEL.
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    let out = h.out();
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    assert!(only(&out, UAC).is_empty(), "the late 180 is not relayed");
}

#[test]
fn timer_b_counts_as_unreachable_and_advances() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc5", "call-5", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 120), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    h.out();
    h.advance(Duration::from_millis(31_900));
    assert!(only(&h.out(), T2).is_empty());
    h.advance(Duration::from_millis(200));
    assert_eq!(
        only(&h.out(), T2).len(),
        1,
        "timer B (64*T1) moved the hunt on"
    );
    assert!(h.events().iter().any(|e| matches!(e, Event::AttemptEnded(a)
        if a.outcome == Outcome::Unreachable && a.code == 408)));
}

#[test]
fn all_fail_best_response_is_relayed() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc6", "call-6", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.pump();
    let out = h.out();
    let inv2 = only(&out, T2)[0].clone();
    h.send_bytes(T2, reply(&inv2, 503, "Service Unavailable", "t2"));
    h.pump();
    let out = h.out();
    let to_uac = only(&out, UAC);
    assert_eq!(to_uac.len(), 1);
    assert_eq!(to_uac[0].status(), Some(486), "4xx beats 5xx (§16.7)");
    // The caller's ACK is absorbed by the server transaction.
    h.send(
        UAC,
        "ACK sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc6;rport\n\
Max-Forwards: 70\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\n\
Call-ID: call-6\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n",
    );
    assert!(h.out().is_empty());
    let ended = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CallEnded(c) => Some(c),
            _ => None,
        })
        .expect("call ended");
    assert_eq!(ended.code, 486);
    assert_eq!(ended.attempts, 2);
}

#[test]
fn six_xx_stops_the_hunt() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc6x", "call-6x", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 603, "Decline", "t1"));
    h.pump();
    let out = h.out();
    assert!(only(&out, T2).is_empty());
    assert_eq!(only(&out, UAC)[0].status(), Some(603));
}

#[test]
fn caller_cancel_before_answer() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc7", "call-7", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.send(
        UAC,
        "CANCEL sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc7;rport\n\
Max-Forwards: 70\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>\n\
Call-ID: call-7\n\
CSeq: 1 CANCEL\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    let to_uac = only(&out, UAC);
    let codes: Vec<_> = to_uac.iter().map(|m| (m.status(), m.cseq().1)).collect();
    assert!(codes.contains(&(Some(200), Method::Cancel)));
    assert!(codes.contains(&(Some(487), Method::Invite)));
    let to_t1 = only(&out, T1);
    assert_eq!(to_t1.len(), 1);
    assert_eq!(to_t1[0].method(), Some(Method::Cancel));
    let ended = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CallEnded(c) => Some(c),
            _ => None,
        })
        .expect("call ended");
    assert!(ended.cancelled);
    assert_eq!(ended.code, 487);
}

#[test]
fn cancel_after_200_changes_nothing() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc8", "call-8", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    h.out();
    h.events();
    h.send(
        UAC,
        "CANCEL sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKc8;rport\n\
Max-Forwards: 70\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>\n\
Call-ID: call-8\n\
CSeq: 1 CANCEL\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    assert_eq!(out.len(), 1, "only the 200 to the CANCEL");
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.cseq().1, Method::Cancel);
    assert!(only(&out, T1).is_empty(), "no CANCEL to an answered branch");
    assert!(!h.events().iter().any(|e| matches!(e, Event::CallEnded(_))));
}

#[test]
fn max_forwards_zero_gets_483() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc9", "call-9", 0));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(483));
    assert!(h.events().is_empty());
}

#[test]
fn request_looping_back_gets_482() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc10", "call-10", 70));
    h.out();
    let call = h.incoming();
    // A target that is the very same Request-URI at Hotline itself: a loop.
    let me = BranchTarget {
        uri: Bytes::from_static(b"sip:4008001234@10.0.0.1:5060"),
        dest: udp(PROXY),
        ring_timeout: Duration::from_secs(5),
        tag: 9,
    };
    h.p.route(h.now, call, serial(vec![me]), &mut |_, _| true);
    let looped = h.out().remove(0);
    assert_eq!(looped.0, udp(PROXY));
    h.send_bytes(PROXY, looped.1.bytes().clone());
    let out = h.out();
    assert!(out
        .iter()
        .any(|(p, m)| *p == udp(PROXY) && m.status() == Some(482)));
}

#[test]
fn retransmitted_invite_gets_the_last_response_again() {
    let mut h = H::new();
    let inv = invite("z9hG4bKc11", "call-11", 70);
    h.send(UAC, &inv);
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    h.send(UAC, &inv);
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(100));
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.send(UAC, &inv);
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(180));
    assert!(h
        .events()
        .iter()
        .all(|e| !matches!(e, Event::Incoming { .. })));
}

#[test]
fn options_to_us_is_200_and_register_is_405() {
    let mut h = H::new();
    h.send(
        UAC,
        "OPTIONS sip:10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKo1\n\
Max-Forwards: 70\n\
From: <sip:ping@10.0.0.2>;tag=p1\n\
To: <sip:10.0.0.1>\n\
Call-ID: opt-1\n\
CSeq: 1 OPTIONS\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(200));
    assert!(out[0].1.header("Allow").is_some());
    assert!(out[0].1.to_tag().is_some());
    h.send(
        UAC,
        "REGISTER sip:10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKr1\n\
Max-Forwards: 70\n\
From: <sip:a@10.0.0.2>;tag=r1\n\
To: <sip:a@10.0.0.1>\n\
Call-ID: reg-1\n\
CSeq: 1 REGISTER\n\
Contact: <sip:a@10.0.0.2>\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(405));
    assert!(out[0]
        .1
        .header("Allow")
        .is_some_and(|a| a.windows(6).any(|w| w == b"INVITE")));
}

#[test]
fn malformed_request_gets_400_naming_the_problem() {
    let mut h = H::new();
    h.send(
        UAC,
        "INVITE sip:4008001234@10.0.0.1 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKm1\n\
Max-Forwards: 70\n\
From: <sip:a@10.0.0.2>;tag=m1\n\
To: <sip:4008001234@10.0.0.1>\n\
CSeq: 1 INVITE\n\
Content-Length: 0\n\n",
    );
    // The reply cannot carry the Call-ID the request lacked, so read it raw.
    let t = h.p.poll_transmit().expect("a 400");
    assert_eq!(t.dest, udp(UAC));
    let text = String::from_utf8_lossy(&t.bytes).to_string();
    assert!(
        text.starts_with("SIP/2.0 400 Missing Call-ID\r\n"),
        "{text}"
    );
    assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKm1;received=10.0.0.2\r\n"));
    assert!(text.contains("CSeq: 1 INVITE\r\n"));
    assert!(h.p.poll_transmit().is_none());
    assert_eq!(h.p.stats().bad_requests, 1);
    // A broken response is dropped and counted.
    h.send(UAC, "SIP/2.0 200 OK\nVia: nonsense\n\n");
    assert!(h.out().is_empty());
    assert_eq!(h.p.stats().dropped_responses, 1);
}

#[test]
fn parallel_group_first_200_wins_and_the_other_is_cancelled() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc12", "call-12", 70));
    h.out();
    let call = h.incoming();
    let plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: true,
            targets: vec![target(T1, 1, 20), target(T2, 2, 20)],
        }],
        ..Default::default()
    };
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let out = h.out();
    let inv1 = only(&out, T1)[0].clone();
    let inv2 = only(&out, T2)[0].clone();
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.send_bytes(T2, reply(&inv2, 180, "Ringing", "t2"));
    h.out();
    h.send_bytes(T2, reply(&inv2, 200, "OK", "t2"));
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(200));
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    // A racing 200 from target 1 is relayed too, so the caller can ACK and BYE it.
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(200));
    assert_eq!(h.p.stats().extra_2xx, 1);
}

#[test]
fn gate_refusal_skips_the_target() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc13", "call-13", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, tag| tag != 1,
    );
    let out = h.out();
    assert!(only(&out, T1).is_empty());
    assert_eq!(only(&out, T2).len(), 1);
    assert!(h.events().iter().any(|e| matches!(e, Event::AttemptEnded(a)
        if a.target == 1 && a.outcome == Outcome::LimitReached)));
}

/// A gate that must ask a shared store answers Wait: nothing is sent until the user resumes
/// the hunt with the answer; a busy first target then hunts on through another Wait; a
/// parallel group waits until every member is decided.
#[test]
fn gate_wait_holds_the_step_until_resume() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKw1", "call-w1", 70));
    h.out();
    let call = h.incoming();
    let mut asked = Vec::new();
    h.p.route_gated(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, tag| {
            asked.push(tag);
            Admission::Wait
        },
    );
    assert_eq!(asked, [1]);
    let out = h.out();
    assert!(only(&out, T1).is_empty() && only(&out, T2).is_empty());
    assert_eq!(h.p.hunting_calls(), 1);
    // Resumed: target 1 is admitted, rings, is busy; the hunt asks for target 2 and waits.
    h.p.resume_hunt(h.now, call, &mut |_, _| Admission::Admit);
    let out = h.out();
    let inv1 = only(&out, T1)[0].clone();
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.out();
    let mut asked = Vec::new();
    h.p.pending_hunts_gated(h.now, &mut |_, tag| {
        asked.push(tag);
        Admission::Wait
    });
    assert_eq!(asked, [2]);
    assert!(only(&h.out(), T2).is_empty());
    // Refused after the wait: the attempt ends as LimitReached and the hunt is over.
    h.p.resume_hunt(h.now, call, &mut |_, _| Admission::Refuse);
    assert!(only(&h.out(), T2).is_empty());
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::AttemptEnded(a)
        if a.target == 2 && a.outcome == Outcome::LimitReached)));
    assert!(ev.iter().any(|e| matches!(e, Event::CallEnded(_))));

    // Parallel: one member decided, one not -> nothing starts; both decided -> both ring.
    h.send(UAC, &invite("z9hG4bKw2", "call-w2", 70));
    h.out();
    let call = h.incoming();
    let plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: true,
            targets: vec![target(T1, 1, 20), target(T2, 2, 20)],
        }],
        ..Default::default()
    };
    h.p.route_gated(h.now, call, plan, &mut |_, tag| {
        if tag == 1 {
            Admission::Admit
        } else {
            Admission::Wait
        }
    });
    let out = h.out();
    assert!(only(&out, T1).is_empty() && only(&out, T2).is_empty());
    h.p.resume_hunt(h.now, call, &mut |_, _| Admission::Admit);
    let out = h.out();
    assert_eq!(only(&out, T1).len(), 1);
    assert_eq!(only(&out, T2).len(), 1);
    // A resume of a call that is ringing changes nothing.
    h.p.resume_hunt(h.now, call, &mut |_, _| Admission::Admit);
    assert!(h.out().is_empty());
}

/// A BYE of a dialog another node answered (its Route names our address, e.g. a cluster
/// address) is relayed by its route and reported, so the user can end that call's record.
#[test]
fn bye_of_an_unknown_dialog_routed_to_us_is_relayed_and_reported() {
    let mut h = H::new();
    let bye = format!(
        "BYE sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKfb1;rport\n\
Route: <sip:{PROXY};lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller9\n\
To: <sip:4008001234@10.0.0.1>;tag=callee9\n\
Call-ID: other-node-call\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\
\n"
    );
    h.send(UAC, &bye);
    let out = h.out();
    assert_eq!(only(&out, T1).len(), 1, "relayed by its route");
    let ev = h.events();
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::ForeignBye { call_id, from_tag, to_tag }
            if &call_id[..] == b"other-node-call" && &from_tag[..] == b"caller9"
                && &to_tag[..] == b"callee9")
        ),
        "{ev:?}"
    );
}

#[test]
fn a_call_ended_elsewhere_is_forgotten_silently() {
    let mut h = H::new();
    let plan = serial(vec![target(T1, 1, 20)]);
    let _ = answer(&mut h, plan, "call-else");
    h.events();
    let call =
        h.p.answered_calls()
            .into_iter()
            .next()
            .expect("an answered call");
    h.p.ended_elsewhere(h.now, call);
    assert!(h.out().is_empty(), "no BYE sent");
    assert!(h.events().iter().any(|e| matches!(e, Event::CallEnded(c)
        if c.hangup == Hangup::Caller)));
    assert!(h.p.answered_calls().is_empty());
}

#[test]
fn wait_cap_ends_the_hunt() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc14", "call-14", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
    plan.wait_cap = Some(Duration::from_secs(8));
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.advance(Duration::from_secs(8));
    let out = h.out();
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    assert_eq!(only(&out, UAC)[0].status(), Some(480));
    assert!(only(&out, T2).is_empty());
}

const VOICEMAIL: &str = "10.0.0.9:5079";

/// Issue 18 item 2: the wait cap ends the hunt, then the fallback (`on_fail` target) still
/// rings, and answers; before the fix the caller got 480 at the cap.
#[test]
fn wait_cap_then_the_fallback_target_rings() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc14f", "call-14f", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
    plan.wait_cap = Some(Duration::from_secs(4));
    plan.fallback = Some(target(VOICEMAIL, 9, 30));
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.advance(Duration::from_secs(4));
    let out = h.out();
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    assert!(only(&out, UAC).is_empty(), "no final at the cap: {out:?}");
    assert!(only(&out, T2).is_empty(), "the cap ends the hunt");
    let vm = only(&out, VOICEMAIL);
    assert_eq!(vm.len(), 1, "{out:?}");
    assert_eq!(vm[0].method(), Some(Method::Invite));
    // The fallback is not cut by the cap that has passed: it rings past 8 s and answers.
    h.advance(Duration::from_secs(5));
    assert!(only(&h.out(), UAC).is_empty());
    let vm_invite = vm[0].clone();
    h.send_bytes(VOICEMAIL, reply(&vm_invite, 200, "OK", "vm"));
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(200));
}

/// `wait_cap_skips_on_fail`: the cap ends the call with 480, the fallback is not tried.
#[test]
fn wait_cap_can_skip_the_fallback() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc14g", "call-14g", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20)]);
    plan.wait_cap = Some(Duration::from_secs(4));
    plan.fallback = Some(target(VOICEMAIL, 9, 30));
    plan.cap_skips_fallback = true;
    h.p.route(h.now, call, plan, &mut |_, _| true);
    h.out();
    h.advance(Duration::from_secs(4));
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(480));
    assert!(only(&out, VOICEMAIL).is_empty());
}

/// A failure the plan does not move on for (here busy) ends the hunt with the fallback, as
/// docs/config.md says of `advance_on`; the fallback after every group failed still works.
#[test]
fn non_advancing_failure_and_exhaustion_go_to_the_fallback() {
    for busy_moves_on in [false, true] {
        let mut h = H::new();
        h.send(UAC, &invite("z9hG4bKc14h", "call-14h", 70));
        h.out();
        let call = h.incoming();
        let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
        plan.advance.busy = busy_moves_on;
        plan.fallback = Some(target(VOICEMAIL, 9, 30));
        h.p.route(h.now, call, plan, &mut |_, _| true);
        let inv1 = h.out().remove(0).1;
        h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
        h.pump();
        let out = h.out();
        if busy_moves_on {
            let inv2 = only(&out, T2)[0].clone();
            h.send_bytes(T2, reply(&inv2, 486, "Busy Here", "t2"));
            h.pump();
            let out = h.out();
            assert_eq!(only(&out, VOICEMAIL).len(), 1, "{out:?}");
        } else {
            assert!(only(&out, T2).is_empty());
            assert_eq!(only(&out, VOICEMAIL).len(), 1, "{out:?}");
        }
        assert!(only(&out, UAC).iter().all(|m| m.status() != Some(486)));
    }
}

/// Issue 18 item 9: forwards by cause of a target (遇忙转移): T1 busy -> FA, before the
/// rest of the hunt; T1 unanswered -> FB. After the forward the hunt goes on (T2).
#[test]
fn a_target_forwards_by_cause() {
    const FA: &str = "10.0.0.7:5077";
    const FB: &str = "10.0.0.8:5078";
    for busy in [true, false] {
        let mut h = H::new();
        h.send(UAC, &invite("z9hG4bKfw1", "call-fw1", 70));
        h.out();
        let call = h.incoming();
        let mut plan = serial(vec![target(T1, 1, 5), target(T2, 2, 20)]);
        plan.forwards = vec![(
            1,
            ByCause {
                busy: Some(target(FA, 7, 5)),
                no_answer: Some(target(FB, 8, 5)),
                unreachable: None,
            },
        )];
        // A busy outcome would stop this hunt: the forward is taken all the same.
        plan.advance.busy = false;
        plan.diversion = Some(Diversion {
            from: b"<tel:+864008001234>".to_vec(),
            reason: "unconditional",
        });
        h.p.route(h.now, call, plan, &mut |_, _| true);
        let inv1 = h.out().remove(0).1;
        let (to, reason) = if busy {
            h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
            h.pump();
            (FA, "user-busy")
        } else {
            h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
            h.out();
            h.advance(Duration::from_secs(5));
            (FB, "no-answer")
        };
        let out = h.out();
        assert!(
            only(&out, T2).is_empty(),
            "the forward comes first: {out:?}"
        );
        let fwd: Vec<&Message> = only(&out, to)
            .into_iter()
            .filter(|m| m.method() == Some(Method::Invite))
            .collect();
        assert_eq!(fwd.len(), 1, "{out:?}");
        let fwd = fwd[0].clone();
        let div = String::from_utf8_lossy(fwd.header("Diversion").unwrap_or_default()).into_owned();
        assert!(
            div.starts_with(&format!("<sip:1001@{T1}>;reason={reason};counter=1")),
            "{div}"
        );
        // The forward destination is unreachable (a cause the plan moves on for): the hunt
        // goes on to T2.
        h.send_bytes(to, reply(&fwd, 503, "Service Unavailable", "f"));
        h.pump();
        let out = h.out();
        assert_eq!(only(&out, T2).len(), 1, "{out:?}");
    }
}

/// A plan's forwards by the cause the hunt ended with come before its fallback: busy -> A;
/// no answer (no entry for it) -> the fallback.
#[test]
fn a_plan_forwards_by_the_cause_the_hunt_ended_with() {
    const A: &str = "10.0.0.7:5077";
    for busy in [true, false] {
        let mut h = H::new();
        h.send(UAC, &invite("z9hG4bKfw2", "call-fw2", 70));
        h.out();
        let call = h.incoming();
        let mut plan = serial(vec![target(T1, 1, 5)]);
        plan.fallback_by_cause.busy = Some(target(A, 7, 5));
        plan.fallback = Some(target(VOICEMAIL, 9, 30));
        h.p.route(h.now, call, plan, &mut |_, _| true);
        let inv1 = h.out().remove(0).1;
        if busy {
            h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
            h.pump();
        } else {
            h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
            h.out();
            h.advance(Duration::from_secs(5));
        }
        let out = h.out();
        let (yes, no) = if busy { (A, VOICEMAIL) } else { (VOICEMAIL, A) };
        assert_eq!(only(&out, yes).len(), 1, "{out:?}");
        assert!(only(&out, no).is_empty(), "{out:?}");
    }
}

/// Issue 18 item 10 (来电显示): T1 is shown the 400 number as the caller (From rewritten,
/// the caller's tag kept, any P-Asserted-Identity removed); T2 the 400 number with the caller
/// as display name and an asserted identity. The caller gets its own From back in every
/// response.
#[test]
fn callee_is_shown_the_configured_caller_id() {
    let mut h = H::new();
    let inv = invite("z9hG4bKcid", "call-cid", 70).replace(
        "Contact:",
        "P-Asserted-Identity: <sip:13807912345@10.0.0.2>\nContact:",
    );
    h.send(UAC, &inv);
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
    plan.caller_id = Presentation {
        from: Some((b"4008001234".to_vec(), b"4008001234".to_vec())),
        asserted: None,
        hide_asserted: true,
    };
    plan.caller_id_by_target = vec![(
        2,
        Presentation {
            from: Some((b"13807912345".to_vec(), b"4008001234".to_vec())),
            asserted: Some(b"<tel:+8613807912345>".to_vec()),
            hide_asserted: false,
        },
    )];
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    assert_eq!(
        inv1.header("From"),
        Some(&b"\"4008001234\" <sip:4008001234@10.0.0.1:5060>;tag=caller1"[..])
    );
    assert_eq!(inv1.header("P-Asserted-Identity"), None);
    assert_eq!(inv1.from_tag(), Some(&b"caller1"[..]));
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    let out = h.out();
    let ringing = only(&out, UAC)[0];
    assert_eq!(
        ringing.header("From"),
        Some(&b"\"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1"[..]),
        "the caller's own From comes back"
    );
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.pump();
    let out = h.out();
    let inv2 = only(&out, T2)
        .into_iter()
        .find(|m| m.method() == Some(Method::Invite))
        .cloned()
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(
        inv2.header("From"),
        Some(&b"\"13807912345\" <sip:4008001234@10.0.0.1:5060>;tag=caller1"[..])
    );
    assert_eq!(
        inv2.headers("P-Asserted-Identity").collect::<Vec<_>>(),
        vec![&b"<tel:+8613807912345>"[..]]
    );
    h.send_bytes(T2, reply(&inv2, 200, "OK", "t2"));
    let out = h.out();
    let ok = only(&out, UAC)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(
        ok.header("From"),
        Some(&b"\"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1"[..])
    );
}

/// Issue 18 item 1: a call that leaves by another listen address than it came in on (IPv4
/// caller, IPv6 callee) is double Record-Routed (RFC 5658): the callee's side first. The
/// INVITE leaves from the IPv6 address and names it in its Via; the callee's BYE, routed by
/// both entries, has both popped and reaches the caller from the IPv4 address.
#[test]
fn a_call_across_listen_addresses_is_double_record_routed() {
    const V6: &str = "[fd00::3]:5070";
    let mut cfg = ProxyConfig::new(PROXY.parse().expect("addr"));
    cfg.listen_more = vec!["[fd00::1]:5060".parse().expect("addr")];
    let mut h = H {
        p: Proxy::new(cfg),
        now: Instant::now(),
    };
    h.send(UAC, &invite("z9hG4bKrr2", "call-rr2", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(V6, 1, 20)]), &mut |_, _| {
        true
    });
    let (peer, inv) = h.out().remove(0);
    assert_eq!(peer.local, 1, "leaves from the IPv6 address");
    let via = String::from_utf8_lossy(inv.header("Via").unwrap_or_default()).into_owned();
    assert!(via.starts_with("SIP/2.0/UDP [fd00::1]:5060;"), "{via}");
    assert_eq!(
        inv.header("Record-Route"),
        Some(&b"<sip:[fd00::1]:5060;lr>, <sip:10.0.0.1:5060;lr>"[..])
    );
    h.send_bytes(V6, reply(&inv, 200, "OK", "callee6"));
    h.out();
    let bye = "BYE sip:13807912345@10.0.0.2:5060 SIP/2.0\n\
Via: SIP/2.0/UDP [fd00::3]:5070;branch=z9hG4bKbye6;rport\n\
Max-Forwards: 70\n\
Route: <sip:[fd00::1]:5060;lr>, <sip:10.0.0.1:5060;lr>\n\
From: <sip:1001@[fd00::3]>;tag=callee6\n\
To: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
Call-ID: call-rr2\n\
CSeq: 1 BYE\n\
Content-Length: 0\n\n"
        .replace('\n', "\r\n");
    let from = Peer {
        transport: Transport::Udp,
        addr: V6.parse().expect("addr"),
        local: 1,
    };
    h.p.handle_message(h.now, from, Bytes::from(bye));
    let out = h.out();
    let (peer, fwd) = out
        .iter()
        .find(|(p, m)| p.addr == UAC.parse().expect("addr") && m.method() == Some(Method::Bye))
        .unwrap_or_else(|| panic!("no BYE to the caller: {out:?}"));
    assert_eq!(peer.local, 0, "reaches the caller from the IPv4 address");
    assert_eq!(fwd.header("Route"), None, "both of our entries popped");
    let via = String::from_utf8_lossy(fwd.header("Via").unwrap_or_default()).into_owned();
    assert!(via.starts_with("SIP/2.0/UDP 10.0.0.1:5060;"), "{via}");
    // One entry per line is popped the same way.
    let m = Message::parse(Bytes::from(
        "BYE sip:a@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP [fd00::3]:5070;branch=z9hG4bKx\r\nRoute: <sip:[fd00::1]:5060;lr>\r\nRoute: <sip:10.0.0.1:5060;lr>, <sip:10.0.0.9;lr>\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nFrom: <sip:b@h>;tag=1\r\nTo: <sip:a@h>;tag=2\r\nContent-Length: 0\r\n\r\n",
    ))
    .expect("parses");
    let out = rewrite::forward_request(
        &m,
        &rewrite::ForwardRequest {
            via: b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKy",
            pop_route: true,
            pop_second_route: true,
            ..Default::default()
        },
    );
    let out = Message::parse(Bytes::from(out)).expect("parses");
    assert_eq!(
        out.routes().collect::<Vec<_>>(),
        vec![&b"<sip:10.0.0.9;lr>"[..]]
    );
}

#[test]
fn reject_sends_the_code() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc15", "call-15", 70));
    h.out();
    let call = h.incoming();
    h.p.reject(h.now, call, 404, "Not Found");
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(404));
    assert!(out[0].1.to_tag().is_some());
    let ended = h.events().into_iter().find_map(|e| match e {
        Event::CallEnded(c) => Some(c),
        _ => None,
    });
    assert_eq!(ended.map(|c| c.code), Some(404));
}

#[test]
fn finished_calls_are_forgotten() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKc16", "call-16", 70));
    h.out();
    let call = h.incoming();
    h.p.reject(h.now, call, 404, "Not Found");
    h.out();
    h.advance(Duration::from_secs(64));
    assert_eq!(h.p.active_calls(), 0);
    assert_eq!(
        h.p.transactions(),
        0,
        "timer H/ACK wait ends the server transaction"
    );
}

/// Peers that ignore Record-Route (SIPp's built-in scenarios) send ACK and BYE to Hotline
/// without a Route header: the dialog Hotline answered routes them.
#[test]
fn in_dialog_requests_without_route_follow_the_dialog() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKd1", "call-d1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    // The target answers without echoing Record-Route, Contact sip:callee@T1.
    let ok = rewrite::response(
        &inv1,
        200,
        "OK",
        Some(b"t1"),
        None,
        &[("Contact", format!("<sip:callee@{T1}>").as_bytes())],
    );
    h.send_bytes(T1, Bytes::from(ok));
    h.out();
    let ack = "ACK sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKd1ack\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\n\
Call-ID: call-d1\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n";
    h.send(UAC, ack);
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(T1));
    assert_eq!(
        out[0].1.request_uri(),
        format!("sip:callee@{T1}").as_bytes()
    );
    // BYE from the callee goes to the caller's Contact.
    h.send(
        T1,
        "BYE sip:13807912345@10.0.0.2:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKd1bye\n\
Max-Forwards: 70\n\
From: <sip:4008001234@10.0.0.1>;tag=t1\n\
To: <sip:13807912345@10.0.0.2>;tag=caller1\n\
Call-ID: call-d1\n\
CSeq: 1 BYE\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(out[0].1.method(), Some(Method::Bye));
    let ended = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CallEnded(c) => Some(c),
            _ => None,
        })
        .expect("ended");
    assert_eq!(ended.hangup, Hangup::Callee);
    // A request for a dialog Hotline does not know is refused: no open relay.
    h.send(
        UAC,
        "BYE sip:x@10.0.0.9 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKd1x\n\
Max-Forwards: 70\n\
From: <sip:a@10.0.0.2>;tag=zz\n\
To: <sip:b@10.0.0.1>;tag=yy\n\
Call-ID: unknown-call\n\
CSeq: 1 BYE\n\
Content-Length: 0\n\n",
    );
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(481));
}

fn answer(h: &mut H, plan: ForkPlan, call_id: &str) -> Message {
    h.send(UAC, &invite(&format!("z9hG4bK{call_id}"), call_id, 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    h.out();
    h.events();
    inv1
}

#[test]
fn max_duration_sends_bye_both_ways() {
    let mut h = H::new();
    let mut plan = serial(vec![target(T1, 1, 20)]);
    plan.max_duration = Some(Duration::from_secs(60));
    answer(&mut h, plan, "call-md");
    h.advance(Duration::from_millis(59_900));
    assert!(h.out().is_empty());
    h.advance(Duration::from_millis(200));
    let out = h.out();
    let to_t1 = only(&out, T1);
    let to_uac = only(&out, UAC);
    assert_eq!(to_t1.len(), 1);
    assert_eq!(to_uac.len(), 1);
    let (b1, b2) = (to_t1[0], to_uac[0]);
    assert_eq!(b1.method(), Some(Method::Bye));
    assert_eq!(b2.method(), Some(Method::Bye));
    // Toward the callee Hotline speaks for the caller: caller's tag in From, callee's in To.
    assert_eq!(b1.from_tag(), Some(&b"caller1"[..]));
    assert_eq!(b1.to_tag(), Some(&b"t1"[..]));
    assert_eq!(b1.request_uri(), format!("sip:callee@{T1}").as_bytes());
    assert_eq!(
        b1.cseq(),
        (2, Method::Bye),
        "above the caller's INVITE CSeq"
    );
    assert_eq!(b2.from_tag(), Some(&b"t1"[..]));
    assert_eq!(b2.to_tag(), Some(&b"caller1"[..]));
    assert_eq!(b2.request_uri(), b"sip:13807912345@10.0.0.2:5060");
    let ended = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CallEnded(c) => Some(c),
            _ => None,
        })
        .expect("ended");
    assert_eq!(ended.hangup, Hangup::System);
    assert!(ended.answered.is_some());
    // Their 200s are absorbed.
    let r1 = reply(b1, 200, "OK", "t1");
    h.send_bytes(T1, r1);
    assert!(h.out().is_empty());
}

#[test]
fn limit_call_cuts_an_answered_call_early() {
    let mut h = H::new();
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "call-lim");
    let call = h.p.answered_calls()[0];
    h.p.limit_call(call, h.now + Duration::from_secs(5));
    h.advance(Duration::from_secs(5));
    let out = h.out();
    assert_eq!(
        out.iter()
            .filter(|(_, m)| m.method() == Some(Method::Bye))
            .count(),
        2
    );
    assert!(h.p.answered_calls().is_empty());
}

#[test]
fn redirect_adds_the_vetted_contacts_to_the_hunt() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKr1", "call-r1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target("10.0.0.5:5072", 3, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    let r = rewrite::response(
        &inv1,
        302,
        "Moved Temporarily",
        Some(b"t1"),
        None,
        &[("Contact", format!("<sip:1002@{T2}>").as_bytes())],
    );
    h.send_bytes(T1, Bytes::from(r));
    let out = h.out();
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Ack));
    let contacts = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Redirect { contacts, .. } => Some(contacts),
            _ => None,
        })
        .expect("a Redirect event");
    assert_eq!(contacts, vec![Bytes::from(format!("sip:1002@{T2}"))]);
    h.p.add_targets(call, vec![target(T2, 2, 20)]);
    h.pump();
    let out = h.out();
    assert_eq!(only(&out, T2).len(), 1, "the redirect target is tried next");
    assert!(only(&out, "10.0.0.5:5072").is_empty());
    let inv2 = only(&out, T2)[0].clone();
    h.send_bytes(T2, reply(&inv2, 486, "Busy Here", "t2"));
    h.pump();
    let out = h.out();
    assert_eq!(
        only(&out, "10.0.0.5:5072").len(),
        1,
        "then the rest of the plan"
    );
}

#[test]
fn redirect_depth_is_bounded() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKr2", "call-r2", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let mut inv = h.out().remove(0).1;
    let mut redirects = 0;
    for _ in 0..5 {
        let r = rewrite::response(
            &inv,
            302,
            "Moved",
            Some(b"t"),
            None,
            &[("Contact", format!("<sip:1001@{T1}>").as_bytes())],
        );
        h.send_bytes(T1, Bytes::from(r));
        let ev = h.events();
        if ev.iter().any(|e| matches!(e, Event::Redirect { .. })) {
            redirects += 1;
            h.p.add_targets(call, vec![target(T1, 1, 20)]);
        }
        h.pump();
        let out = h.out();
        match only(&out, T1)
            .into_iter()
            .find(|m| m.method() == Some(Method::Invite))
        {
            Some(m) => inv = m.clone(),
            None => break,
        }
    }
    assert_eq!(redirects, 3, "max_redirects");
    assert_eq!(
        h.p.hunting_calls(),
        0,
        "the call ended after the last redirect"
    );
}

#[test]
fn history_info_and_added_headers_reach_the_target() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKh1", "call-h1", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20)]);
    plan.history_info = true;
    plan.add_headers = vec![(
        "Diversion",
        b"<tel:+864008001234>;reason=unconditional".to_vec(),
    )];
    plan.remove_headers = vec!["Contact-Me-Not"];
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv = h.out().remove(0).1;
    assert_eq!(
        inv.header("History-Info"),
        Some(
            format!(
                "<sip:4008001234@10.0.0.1:5060>;index=1, <sip:1001@{T1};cause=380>;index=1.1;mp=1"
            )
            .as_bytes()
        )
    );
    assert_eq!(
        inv.header("Diversion"),
        Some(&b"<tel:+864008001234>;reason=unconditional"[..])
    );
}

/// Issue 18 item 8: each branch says why the call reached it. T1 answers 486, T2 rings out
/// (ring timeout), the third target gets Diversion entries for T2 (no-answer), T1 (user-busy)
/// and the 400 number (time-of-day here), most recent first, and History-Info with each
/// earlier step and its response (RFC 7044 Reason), then itself with the RFC 4458 cause of
/// the last move (408). Before the fix: `reason=unconditional` and `index=1.1` only.
#[test]
fn diversion_and_history_info_give_the_reason_of_each_move() {
    const T3: &str = "10.0.0.5:5072";
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKh2", "call-h2", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 5), target(T3, 3, 20)]);
    plan.history_info = true;
    plan.diversion = Some(Diversion {
        from: b"<tel:+864008001234>".to_vec(),
        reason: "time-of-day",
    });
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv1 = h.out().remove(0).1;
    assert_eq!(
        inv1.header("Diversion"),
        Some(&b"<tel:+864008001234>;reason=time-of-day;counter=1"[..])
    );
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.pump();
    let out = h.out();
    let inv2 = only(&out, T2)[0].clone();
    assert_eq!(
        inv2.header("Diversion"),
        Some(format!("<sip:1001@{T1}>;reason=user-busy;counter=1, <tel:+864008001234>;reason=time-of-day;counter=1").as_bytes())
    );
    h.send_bytes(T2, reply(&inv2, 180, "Ringing", "t2"));
    h.out();
    h.advance(Duration::from_secs(5));
    let out = h.out();
    let inv3 = only(&out, T3)
        .into_iter()
        .find(|m| m.method() == Some(Method::Invite))
        .cloned()
        .unwrap_or_else(|| panic!("no INVITE to T3: {out:?}"));
    assert_eq!(
        inv3.header("Diversion"),
        Some(format!("<sip:1002@{T2}>;reason=no-answer;counter=1, <sip:1001@{T1}>;reason=user-busy;counter=1, <tel:+864008001234>;reason=time-of-day;counter=1").as_bytes())
    );
    assert_eq!(
        inv3.header("History-Info"),
        Some(format!("<sip:4008001234@10.0.0.1:5060>;index=1, <sip:1001@{T1}?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1, <sip:1002@{T2}?Reason=SIP%3Bcause%3D408>;index=1.2;mp=1, <sip:1003@{T3};cause=408>;index=1.3;mp=1").as_bytes())
    );
}

#[test]
fn abort_hunts_ends_every_hunting_call_with_an_event() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKab1", "call-ab1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.events();
    h.p.abort_hunts(h.now, 503, "Service Unavailable");
    let out = h.out();
    assert_eq!(only(&out, UAC)[0].status(), Some(503));
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::CallEnded(c) if c.code == 503)));
    assert_eq!(h.p.hunting_calls(), 0);
}

#[test]
fn scanners_are_dropped_silently() {
    let mut h = H::new();
    let inv = invite("z9hG4bKs1", "call-s1", 70).replace(
        "Max-Forwards: 70",
        "User-Agent: friendly-scanner\nMax-Forwards: 70",
    );
    h.send(UAC, &inv);
    assert!(h.out().is_empty());
    assert!(h.events().is_empty());
    assert_eq!(h.p.stats().scanners, 1);
    let opt = "OPTIONS sip:100@10.0.0.1 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKs2\n\
Max-Forwards: 70\n\
From: <sip:100@10.0.0.2>;tag=s2\n\
To: <sip:100@10.0.0.1>\n\
Call-ID: s2\n\
CSeq: 1 OPTIONS\n\
User-Agent: SIPVicious 0.3\n\
Content-Length: 0\n\n";
    h.send(UAC, opt);
    assert!(h.out().is_empty());
    assert_eq!(h.p.stats().scanners, 2);
}

#[test]
fn overload_sheds_new_invites_but_not_calls_in_progress() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKo1", "call-o1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    h.events();
    h.p.set_overload(Some(7));
    h.send(UAC, &invite("z9hG4bKo2", "call-o2", 70));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(503));
    assert_eq!(out[0].1.header("Retry-After"), Some(&b"7"[..]));
    assert!(h.events().is_empty(), "no call created");
    // The call already ringing completes.
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    assert_eq!(only(&h.out(), UAC)[0].status(), Some(200));
    assert_eq!(h.p.stats().overload_shed, 1);
    h.p.set_overload(None);
    h.send(UAC, &invite("z9hG4bKo3", "call-o3", 70));
    assert_eq!(h.out()[0].1.status(), Some(100));
}

/// The 200 to Hotline's CANCEL carries the INVITE's branch; only the CSeq method tells it
/// apart. It must be absorbed (not relayed as an answer), the CANCEL must stop
/// retransmitting, and the 487 that follows must be ACKed.
#[test]
fn target_answers_our_cancel_then_487_is_acked() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKx1", "call-x1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 2), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.out();
    h.advance(Duration::from_secs(2));
    let out = h.out();
    let cancel = only(&out, T1)[0].clone();
    assert_eq!(cancel.method(), Some(Method::Cancel));
    h.send_bytes(T1, reply(&cancel, 200, "OK", "t1"));
    let out = h.out();
    assert!(out.is_empty(), "the 200 to the CANCEL is absorbed: {out:?}");
    h.send_bytes(T1, reply(&inv1, 487, "Request Terminated", "t1"));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(T1));
    assert_eq!(out[0].1.method(), Some(Method::Ack));
    // No CANCEL retransmissions later (its transaction completed).
    h.advance(Duration::from_secs(10));
    let out = h.out();
    assert!(
        only(&out, T1).is_empty(),
        "nothing more to target 1: {:?}",
        only(&out, T1)
            .iter()
            .map(|m| m.method())
            .collect::<Vec<_>>()
    );
}

#[test]
fn target_at_its_limit_treated_as_busy_ends_the_hunt_when_busy_does_not_advance() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKtb1", "call-tb1", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
    plan.limit_is_busy = true;
    plan.advance.busy = false;
    h.p.route(h.now, call, plan, &mut |_, tag| tag != 1);
    let out = h.out();
    assert!(
        only(&out, T2).is_empty(),
        "busy does not advance in this plan"
    );
    assert_eq!(only(&out, UAC)[0].status(), Some(486));
    // Skip (the default) moves on whatever the causes say.
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKtb2", "call-tb2", 70));
    h.out();
    let call = h.incoming();
    let mut plan = serial(vec![target(T1, 1, 20), target(T2, 2, 20)]);
    plan.advance.busy = false;
    plan.advance.unreachable = false;
    h.p.route(h.now, call, plan, &mut |_, tag| tag != 1);
    assert_eq!(only(&h.out(), T2).len(), 1);
}

/// Two 200s raced on a parallel group: the caller BYEs the extra dialog first. That must not
/// end the answered call (its CDR, its target's concurrency slot).
#[test]
fn bye_of_the_extra_2xx_dialog_does_not_end_the_call() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKe1", "call-e1", 70));
    h.out();
    let call = h.incoming();
    let plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: true,
            targets: vec![target(T1, 1, 20), target(T2, 2, 20)],
        }],
        ..Default::default()
    };
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let out = h.out();
    let inv1 = only(&out, T1)[0].clone();
    let inv2 = only(&out, T2)[0].clone();
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    h.send_bytes(T2, reply(&inv2, 200, "OK", "t2"));
    h.out();
    h.events();
    let bye = |tag: &str, branch: &str| {
        format!(
            "BYE sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch={branch}\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag={tag}\n\
Call-ID: call-e1\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\n"
        )
    };
    h.send(UAC, &bye("t2", "z9hG4bKe1b2"));
    assert_eq!(h.out().len(), 1, "the BYE is forwarded");
    assert!(
        !h.events().iter().any(|e| matches!(e, Event::CallEnded(_))),
        "the extra dialog's BYE does not end the answered call"
    );
    assert_eq!(h.p.answered_calls().len(), 1);
    h.send(UAC, &bye("t1", "z9hG4bKe1b1"));
    h.out();
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::CallEnded(c) if c.answered_target == Some(1))));
}

/// A target that answers only 100 Trying is cancelled as soon as its ring timer fires (a
/// CANCEL may follow any provisional, §9.1), not left in Proceeding.
#[test]
fn branch_with_only_100_trying_is_cancelled_at_its_ring_timeout() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKt100", "call-t100", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 3), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 100, "Trying", "t1"));
    h.out();
    h.advance(Duration::from_secs(3));
    let out = h.out();
    assert_eq!(only(&out, T1)[0].method(), Some(Method::Cancel));
    assert_eq!(only(&out, T2).len(), 1, "the hunt moved on");
    // Even if the target never answers the CANCEL, nothing is kept forever.
    h.send_bytes(
        T2,
        reply(&only(&out, T2)[0].clone(), 486, "Busy Here", "t2"),
    );
    h.pump();
    h.advance(Duration::from_secs(300));
    h.out();
    assert_eq!(h.p.transactions(), 0, "{:?}", h.p.transaction_states());
}

/// A 3xx whose Contacts were all refused (or not followed) is never relayed to the caller:
/// a carrier could follow them itself. The caller gets 480.
#[test]
fn an_unfollowed_3xx_is_never_relayed() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bK3x", "call-3x", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    let inv1 = h.out().remove(0).1;
    let r = rewrite::response(
        &inv1,
        302,
        "Moved",
        Some(b"t1"),
        None,
        &[("Contact", b"<sip:00442079460000@10.0.0.3:5070>")],
    );
    h.send_bytes(T1, Bytes::from(r));
    // The user refuses every Contact: adds nothing.
    h.events();
    h.p.add_targets(call, Vec::new());
    h.pump();
    let out = h.out();
    let to_uac = only(&out, UAC);
    assert_eq!(to_uac.len(), 1);
    assert_eq!(to_uac[0].status(), Some(480));
    assert!(to_uac[0].header("Contact").is_none());
}

#[test]
fn unusable_request_uris_get_400_or_416() {
    let mut h = H::new();
    for (ruri, code) in [("sip:2001:db8::10", 400), ("urn:service:sos", 416)] {
        let inv = invite(&format!("z9hG4bKu{code}"), &format!("call-u{code}"), 70).replace(
            "INVITE sip:4008001234@10.0.0.1:5060 SIP/2.0",
            &format!("INVITE {ruri} SIP/2.0"),
        );
        h.send(UAC, &inv);
        let out = h.out();
        assert_eq!(out.len(), 1, "{ruri}");
        assert_eq!(out[0].1.status(), Some(code), "{ruri}");
        assert!(h.events().is_empty(), "{ruri} must not become a call");
    }
}

/// Timer B on one branch of a parallel group, with a plan that does not move on when a target
/// is unreachable: the hunt ends and the other, ringing branch is CANCELled (not left ringing).
#[test]
fn timer_b_ending_the_hunt_cancels_the_other_branches() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKtb", "call-tb", 70));
    h.out();
    let call = h.incoming();
    let mut plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: true,
            targets: vec![target(T1, 1, 120), target(T2, 2, 120)],
        }],
        ..Default::default()
    };
    plan.advance.unreachable = false;
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let out = h.out();
    let inv2 = only(&out, T2)[0].clone();
    h.send_bytes(T2, reply(&inv2, 180, "Ringing", "t2"));
    h.out();
    // T1 never answers: timer B (64*T1 = 32 s).
    h.advance(Duration::from_millis(32_100));
    let out = h.out();
    assert_eq!(only(&out, UAC).last().and_then(|m| m.status()), Some(408));
    assert!(
        only(&out, T2)
            .iter()
            .any(|m| m.method() == Some(Method::Cancel)),
        "the ringing branch is cancelled"
    );
}

// ----- retained (finished) transactions --------------------------------------------------

fn raw_out(h: &mut H) -> Vec<(Peer, Bytes)> {
    let mut v = Vec::new();
    while let Some(t) = h.p.poll_transmit() {
        v.push((t.dest, t.bytes));
    }
    v
}

fn bye_from_caller(branch: &str, call_id: &str) -> String {
    format!(
        "BYE sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch={branch};rport\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\n\
Call-ID: {call_id}\n\
CSeq: 2 BYE\n\
Content-Length: 0\n\n"
    )
}

fn states(h: &H, kind: &str) -> Vec<hotline_sip::txn::State> {
    h.p.transaction_states()
        .into_iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, s, _)| s)
        .collect()
}

#[test]
fn retransmitted_bye_after_the_200_gets_the_same_bytes_until_timer_j() {
    use hotline_sip::txn::State;
    let mut h = H::new();
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "ret-1");
    h.send(UAC, &bye_from_caller("z9hG4bKbyeR", "ret-1"));
    let bye = h.out().remove(0).1;
    h.send_bytes(T1, reply(&bye, 200, "OK", "t1"));
    let first = raw_out(&mut h);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, udp(UAC));
    assert_eq!(states(&h, "server non-INVITE"), vec![State::Completed]);
    assert_eq!(states(&h, "client non-INVITE"), vec![State::Completed]);
    // A retransmitted 200 from the callee is absorbed by the BYE's client transaction.
    h.send_bytes(T1, reply(&bye, 200, "OK", "t1"));
    assert!(raw_out(&mut h).is_empty());
    // The retransmitted BYE gets exactly the bytes of the first 200, and goes nowhere else.
    h.advance(Duration::from_secs(10));
    h.send(UAC, &bye_from_caller("z9hG4bKbyeR", "ret-1"));
    let again = raw_out(&mut h);
    assert_eq!(again, first);
    // Timer K (5 s) ended the client side; timer J (32 s) ends the server side.
    assert!(states(&h, "client non-INVITE").is_empty());
    h.advance(Duration::from_secs(23));
    assert!(states(&h, "server non-INVITE").is_empty());
    // Now the same BYE is a new request (the call is long gone: forwarded by its Route).
    h.send(UAC, &bye_from_caller("z9hG4bKbyeR", "ret-1"));
    let out = h.out();
    assert_eq!(only(&out, T1).len(), 1);
}

#[test]
fn accepted_invite_absorbs_invite_retransmissions_and_relays_2xx_retransmissions() {
    use hotline_sip::txn::State;
    let mut h = H::new();
    let inv1 = answer(&mut h, serial(vec![target(T1, 1, 20)]), "ret-2");
    assert_eq!(states(&h, "server INVITE"), vec![State::Accepted]);
    assert_eq!(states(&h, "client INVITE"), vec![State::Accepted]);
    // The caller's INVITE retransmission is absorbed: nothing goes anywhere.
    h.send(UAC, &invite("z9hG4bKret-2", "ret-2", 70));
    assert!(h.out().is_empty());
    // The callee's 2xx retransmission still reaches the caller (RFC 6026 §7.2).
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.vias().count(), 1, "our Via removed");
    // A 1xx or a non-2xx final in Accepted is absorbed.
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    assert!(h.out().is_empty());
    // A response with another Call-ID on our branch is dropped.
    let before = h.p.stats().dropped_responses;
    let other = String::from_utf8(reply(&inv1, 200, "OK", "t1").to_vec())
        .expect("utf8")
        .replace("Call-ID: ret-2", "Call-ID: someone-else");
    h.send(T1, &other);
    assert!(h.out().is_empty());
    assert_eq!(h.p.stats().dropped_responses, before + 1);
    // Timers L and M (64*T1) end both; the call itself is still answered.
    h.advance(Duration::from_secs(33));
    assert!(states(&h, "server INVITE").is_empty());
    assert!(states(&h, "client INVITE").is_empty());
    assert_eq!(h.p.transactions(), 0);
    assert_eq!(h.p.answered_calls().len(), 1);
    // Afterwards a 2xx retransmission is relayed statelessly by its Via.
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    let out = h.out();
    assert_eq!(only(&out, UAC).len(), 1);
}

#[test]
fn a_2xx_retransmission_after_the_call_ended_is_relayed_until_timer_m() {
    use hotline_sip::txn::State;
    let mut h = H::new();
    let inv1 = answer(&mut h, serial(vec![target(T1, 1, 20)]), "ret-6");
    // The caller hangs up; the callee's 200 for the BYE goes back.
    h.send(UAC, &bye_from_caller("z9hG4bKbye6", "ret-6"));
    let bye = h.out().remove(0).1;
    h.send_bytes(T1, reply(&bye, 200, "OK", "t1"));
    assert_eq!(only(&h.out(), UAC).len(), 1);
    // Past the call's 4 s linger, before Timer M (64*T1): the call is gone, the INVITE's
    // client transaction is still in Accepted.
    h.advance(Duration::from_secs(10));
    assert!(h.p.answered_calls().is_empty());
    assert_eq!(states(&h, "client INVITE"), vec![State::Accepted]);
    // A 2xx retransmission (the callee never saw the ACK) still reaches the caller, by the
    // Via below ours (RFC 6026 §7.2, RFC 3261 §16.7 step 5), and nothing else is sent.
    h.send_bytes(T1, reply(&inv1, 200, "OK", "t1"));
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(out[0].1.status(), Some(200));
    assert_eq!(out[0].1.vias().count(), 1, "our Via removed");
    // A late 180 for the ended call is still absorbed, not relayed.
    h.send_bytes(T1, reply(&inv1, 180, "Ringing", "t1"));
    assert!(h.out().is_empty());
}

#[test]
fn an_ack_of_the_2xx_reusing_the_invite_branch_is_forwarded_not_absorbed() {
    use hotline_sip::txn::State;
    // RFC 6026 §7.1: in Accepted an ACK matching the INVITE server transaction belongs to the
    // TU; a proxy forwards it end to end like any ACK of a 2xx. Some UAs (RFC 2543 habits)
    // reuse the INVITE's branch for it.
    let ack = |branch: &str| {
        format!(
            "ACK sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch={branch};rport\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\n\
Call-ID: ret-7\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n"
        )
    };
    let mut h = H::new();
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "ret-7");
    assert_eq!(states(&h, "server INVITE"), vec![State::Accepted]);
    // Matches the server transaction (same branch and sent-by), and still goes to the callee.
    h.send(UAC, &ack("z9hG4bKret-7"));
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, udp(T1));
    assert_eq!(out[0].1.method(), Some(Method::Ack));
    assert_eq!(out[0].1.routes().count(), 0, "our Route entry was popped");
    // The INVITE retransmission with that branch is still absorbed.
    h.send(UAC, &invite("z9hG4bKret-7", "ret-7", 70));
    assert!(h.out().is_empty());
    // Its retransmission later (the transaction is a tombstone by now) is forwarded too.
    h.advance(Duration::from_secs(1));
    h.send(UAC, &ack("z9hG4bKret-7"));
    assert_eq!(only(&h.out(), T1).len(), 1);
    assert_eq!(states(&h, "server INVITE"), vec![State::Accepted]);
}

#[test]
fn retransmitted_486_gets_the_same_ack_until_timer_d() {
    use hotline_sip::txn::State;
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKret3", "ret-3", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv1 = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    h.pump();
    let out = raw_out(&mut h);
    let ack: Vec<_> = out.iter().filter(|(p, _)| *p == udp(T1)).collect();
    assert_eq!(ack.len(), 1);
    let st = states(&h, "client INVITE");
    assert_eq!(st.len(), 2);
    assert!(st.contains(&State::Completed) && st.contains(&State::Calling));
    h.advance(Duration::from_millis(100));
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    let again = raw_out(&mut h);
    assert_eq!(again, vec![ack[0].clone()]);
    h.advance(Duration::from_secs(32));
    assert!(!states(&h, "client INVITE").contains(&State::Completed));
    h.send_bytes(T1, reply(&inv1, 486, "Busy Here", "t1"));
    assert!(
        only(&h.out(), T1).is_empty(),
        "no ACK once timer D has fired"
    );
}

#[test]
fn confirmed_invite_absorbs_acks_and_invites_until_timer_i() {
    use hotline_sip::txn::State;
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKret4", "ret-4", 70));
    h.out();
    let call = h.incoming();
    h.p.reject(h.now, call, 404, "Not Found");
    let out = h.out();
    assert_eq!(out[0].1.status(), Some(404));
    let ack = "ACK sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKret4;rport\n\
Max-Forwards: 70\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=x\n\
Call-ID: ret-4\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n";
    h.send(UAC, ack);
    assert!(h.out().is_empty());
    assert_eq!(states(&h, "server INVITE"), vec![State::Confirmed]);
    let absorbed = h.p.stats().retransmissions_absorbed;
    h.send(UAC, ack);
    h.send(UAC, &invite("z9hG4bKret4", "ret-4", 70));
    assert!(h.out().is_empty());
    assert_eq!(h.p.stats().retransmissions_absorbed, absorbed + 2);
    h.advance(Duration::from_secs(6));
    assert!(states(&h, "server INVITE").is_empty());
}

#[test]
fn tombstones_expire_in_deadline_order_even_when_time_is_fed_out_of_order() {
    let mut h = H::new();
    let t0 = h.now;
    h.advance(Duration::from_secs(2));
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "ord-a");
    // A driver that feeds an earlier `now` (two clocks, a handover): the later call's
    // tombstones are due before the first one's.
    h.now = t0;
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "ord-b");
    // And earlier still: due before both.
    let Some(t_1) = t0.checked_sub(Duration::from_secs(1)) else {
        return;
    };
    h.now = t_1;
    answer(&mut h, serial(vec![target(T1, 1, 20)]), "ord-c");
    assert_eq!(states(&h, "server INVITE").len(), 3);
    assert_eq!(states(&h, "client INVITE").len(), 3);
    h.advance(Duration::from_millis(32_500));
    assert_eq!(
        states(&h, "server INVITE").len(),
        2,
        "ord-c's L fired at 31 s"
    );
    assert_eq!(
        states(&h, "client INVITE").len(),
        2,
        "ord-c's M fired at 31 s"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        states(&h, "server INVITE").len(),
        1,
        "ord-b's L fired at 32 s"
    );
    assert_eq!(
        states(&h, "client INVITE").len(),
        1,
        "ord-b's M fired at 32 s"
    );
    h.advance(Duration::from_secs(2));
    assert!(states(&h, "server INVITE").is_empty());
    assert!(states(&h, "client INVITE").is_empty());
}

#[test]
fn transport_error_is_a_503_at_once_and_the_hunt_moves_on() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKte1", "call-te1", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    assert_eq!(only(&h.out(), T1).len(), 1);
    h.events();
    // An error about another peer, or about T1 over the other transport, changes nothing.
    let tcp_t1 = Peer::new(Transport::Tcp, T1.parse().expect("addr"));
    assert_eq!(h.p.transport_error(h.now, udp(T2)), 0);
    assert_eq!(h.p.transport_error(h.now, tcp_t1), 0);
    // 5 ms later ICMP says nothing listens on T1: no waiting for the 20 s ring timeout.
    h.now += Duration::from_millis(5);
    assert_eq!(h.p.transport_error(h.now, udp(T1)), 1);
    h.pump();
    let out = h.out();
    assert_eq!(only(&out, T2).len(), 1, "the hunt moved on to target 2");
    assert!(only(&out, T1).is_empty(), "no CANCEL to a dead peer");
    let ended = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::AttemptEnded(a) if a.target == 1 => Some(a),
            _ => None,
        })
        .expect("attempt 1 ended");
    assert_eq!(ended.outcome, Outcome::Unreachable);
    assert_eq!(ended.code, 503);
    // A second report for the same peer finds nothing left to fail.
    assert_eq!(h.p.transport_error(h.now, udp(T1)), 0);
    assert_eq!(h.p.stats().transport_errors, 1);
}

#[test]
fn transport_error_after_a_provisional_is_ignored() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKte2", "call-te2", 70));
    h.out();
    let call = h.incoming();
    h.p.route(
        h.now,
        call,
        serial(vec![target(T1, 1, 20), target(T2, 2, 20)]),
        &mut |_, _| true,
    );
    let inv = h.out().remove(0).1;
    h.send_bytes(T1, reply(&inv, 180, "Ringing", "t1"));
    h.out();
    assert_eq!(h.p.transport_error(h.now, udp(T1)), 0, "T1 answered: alive");
    h.pump();
    assert!(only(&h.out(), T2).is_empty());
}

#[test]
fn transport_error_on_the_last_target_ends_the_call_with_500_not_503() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKte3", "call-te3", 70));
    h.out();
    let call = h.incoming();
    h.p.route(h.now, call, serial(vec![target(T1, 1, 20)]), &mut |_, _| {
        true
    });
    h.out();
    assert_eq!(h.p.transport_error(h.now, udp(T1)), 1);
    h.pump();
    let out = h.out();
    let to_uac = only(&out, UAC);
    assert_eq!(to_uac.len(), 1);
    assert_eq!(
        to_uac[0].status(),
        Some(500),
        "§16.7 step 6: a lone 503 becomes 500"
    );
}

/// Cluster take-over: node A answered the call; node B adopts its published dialog state and
/// cuts it (max duration / prepaid of a dead owner) with a BYE to each side that fits the
/// dialog; a BYE from the caller through B ends the adopted call like any other.
#[test]
fn an_adopted_dialog_is_cut_and_ended_like_our_own() {
    let mut a = H::new();
    answer(&mut a, serial(vec![target(T1, 1, 20)]), "call-adopt");
    let call = a.p.answered_calls()[0];
    let state = a.p.dialog_state(call).expect("answered call has a dialog");
    let wire = state.encode();
    let state = hotline_sip::proxy::DialogState::decode(&wire).expect("decodes");
    assert_eq!(state.caller, (Transport::Udp, UAC.parse().expect("addr")));
    assert_eq!(state.callee, (Transport::Udp, T1.parse().expect("addr")));

    let mut b = H::new();
    let adopted =
        b.p.adopt(b"call-adopt", b"caller1", &state, b.now, b.now, 1)
            .expect("adopted");
    assert!(
        b.p.adopt(b"call-adopt", b"caller1", &state, b.now, b.now, 1)
            .is_none(),
        "a dialog is adopted once"
    );
    assert_eq!(b.p.answered_calls(), vec![adopted]);
    b.p.limit_call(adopted, b.now + Duration::from_secs(3));
    b.advance(Duration::from_millis(2_900));
    assert!(b.out().is_empty(), "not before its time");
    b.advance(Duration::from_millis(200));
    let out = b.out();
    let to_t1 = only(&out, T1);
    let to_uac = only(&out, UAC);
    assert_eq!((to_t1.len(), to_uac.len()), (1, 1), "one BYE each way");
    let (bye_t1, bye_uac) = (to_t1[0], to_uac[0]);
    assert_eq!(bye_t1.method(), Some(Method::Bye));
    assert_eq!(bye_t1.request_uri(), format!("sip:callee@{T1}").as_bytes());
    assert_eq!(bye_t1.call_id(), b"call-adopt");
    assert_eq!(bye_t1.from_tag(), Some(&b"caller1"[..]));
    assert_eq!(bye_t1.to_tag(), Some(&b"t1"[..]));
    assert!(bye_t1.cseq().0 > 1, "above the INVITE's CSeq");
    assert_eq!(bye_uac.from_tag(), Some(&b"t1"[..]));
    assert_eq!(bye_uac.to_tag(), Some(&b"caller1"[..]));
    let ended = b
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CallEnded(c) => Some(c),
            _ => None,
        })
        .expect("CallEnded");
    assert_eq!(ended.hangup, Hangup::System);
    assert_eq!(ended.answered_target, Some(1));

    // A second adoption: the caller's BYE through B ends it.
    let mut b = H::new();
    b.p.adopt(b"call-adopt", b"caller1", &state, b.now, b.now, 1)
        .expect("adopted");
    b.send(
        UAC,
        &format!(
            "BYE sip:callee@{T1} SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKbyeadopt;rport\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\n\
Call-ID: call-adopt\n\
CSeq: 5 BYE\n\
Content-Length: 0\n\n"
        ),
    );
    let out = b.out();
    assert_eq!(only(&out, T1).len(), 1, "BYE relayed to the callee");
    assert!(b.events().iter().any(|e| matches!(e, Event::CallEnded(c)
        if c.hangup == Hangup::Caller)));
}

/// A 2xx without a transaction goes statelessly to the Via below ours (§16.7); with that
/// Via malformed it is dropped, not sent elsewhere.
#[test]
fn stray_2xx_goes_to_the_second_via_and_not_past_a_malformed_one() {
    let mut h = H::new();
    h.send(UAC, &invite("z9hG4bKs1", "call-s1", 70));
    h.out();
    let call = h.incoming();
    let plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: false,
            targets: vec![target(T1, 1, 20)],
        }],
        ..Default::default()
    };
    h.p.route(h.now, call, plan, &mut |_, _| true);
    let inv = only(&h.out(), T1)[0].clone();
    let ok = String::from_utf8_lossy(&reply(&inv, 200, "OK", "t1")).into_owned();
    // Another branch id of ours (hex, one digit more): no transaction has it.
    let ours = String::from_utf8_lossy(inv.top_via().branch.expect("our branch")).into_owned();
    let stray = ok.replacen(&ours, &format!("{ours}0"), 1);
    h.send(T1, &stray);
    let out = h.out();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, udp(UAC));
    assert_eq!(h.p.stats().extra_2xx, 1);
    // The same with the caller's Via (the second) broken: dropped, not relayed.
    let broken = stray.replacen("SIP/2.0/UDP 10.0.0.2:5060;", "SIP/2.0/UDP ;;", 1);
    assert_ne!(broken, stray);
    h.send(T1, &broken);
    assert!(h.out().is_empty());
    assert_eq!(h.p.stats().extra_2xx, 1);
}
