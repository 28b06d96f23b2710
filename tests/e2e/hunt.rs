//! Serial hunt (issue 2 foundation): a failure response from one target moves the call on.

use hotline_e2e::*;
use std::time::Duration;

#[test]
fn busy_first_target_then_second_answers() {
    let busy = start(
        Sipp::uas("uas_486")
            .calls(1)
            .timeout(Duration::from_secs(20)),
    );
    let answer = start(
        Sipp::uas("uas_answer")
            .calls(1)
            .timeout(Duration::from_secs(20)),
    );
    let answer_uri = answer.uri("1002");
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("busy", &busy.uri("1001"))
            .target("answer", &answer_uri)
            .number(NUMBER, &["busy", "answer"])
            .to_toml(),
    );
    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .duration_ms(200)
        .timeout(Duration::from_secs(20)));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(
        caller.final_codes(),
        vec![200],
        "the caller is answered, not told busy"
    );
    assert!(
        caller
            .received_responses("INVITE")
            .iter()
            .all(|m| m.status() != Some(486)),
        "486 from the first target must not reach the caller"
    );

    let busy = finish(busy);
    let answer = finish(answer);
    assert_all_ok(&busy, 1, "busy target");
    assert!(busy.saw_request("ACK"), "Hotline ACKs the 486 hop by hop");
    assert_all_ok(&answer, 1, "answering target");
    // Order: the busy target got its INVITE before the answering one.
    let first = busy
        .messages
        .iter()
        .find(|m| m.message.method() == Some("INVITE"));
    let second = answer
        .messages
        .iter()
        .find(|m| m.message.method() == Some("INVITE"));
    let (Some(first), Some(second)) = (first, second) else {
        panic!("both targets must see an INVITE");
    };
    assert!(first.at <= second.at, "hunt order");

    let status = hotline.stop();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "graceful exit: {status:?}"
    );
    let calls = cdr_calls(hotline.cdr_dir());
    assert_eq!(
        calls.len(),
        1,
        "one CDR line for the hunted call: {calls:?}"
    );
    assert_eq!(calls[0].final_code, 200);
    // docs: the answered target's SIP URI; the target's config name is accepted too.
    assert!(
        calls[0].answered_target == answer_uri || calls[0].answered_target == "answer",
        "answered target is the second one: {:?}",
        calls[0].answered_target
    );
    assert_eq!(calls[0].number, NUMBER);
}

/// Target 1 has nothing listening on its port; target 2 answers. The transport error on the
/// first branch (ICMP port unreachable over UDP, a refused connect over TCP) is a 503 at
/// once (RFC 3261 §8.1.3.1): the hunt moves on without waiting out the 20 s ring timeout.
fn dead_first_target_moves_on_at_once(dead_uri_params: &str) {
    let answer = start(
        Sipp::uas("uas_answer")
            .calls(1)
            .timeout(Duration::from_secs(20)),
    );
    let dead = hotline_testkit::ports::free_port().expect("no free port");
    let dead_uri = format!("sip:1001@127.0.0.1:{dead}{dead_uri_params}");
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .ring_timeout("20s")
            .target("dead", &dead_uri)
            .target("answer", &answer.uri("1002"))
            .number(NUMBER, &["dead", "answer"])
            .to_toml(),
    );
    let began = std::time::Instant::now();
    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .duration_ms(200)
        .timeout(Duration::from_secs(30)));
    let took = began.elapsed();
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    // SIPp itself takes a moment to start and hang up; 20 s would mean the ring timeout.
    assert!(
        took < Duration::from_secs(5),
        "the dead target cost {took:?}: Hotline waited for its ring timeout"
    );
    assert_all_ok(&finish(answer), 1, "answering target");
    let status = hotline.stop();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "graceful exit: {status:?}"
    );
    let cdrs = crate::exec_support::Cdrs::read(hotline.cdr_dir());
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 200);
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let a1 = attempts[0];
    assert_eq!(a1.target, "dead", "{a1:#?}");
    assert_eq!(a1.code, 503, "a transport error counts as 503: {a1:#?}");
    assert_eq!(
        a1.reason,
        hotline_cdr::AttemptReason::Unreachable,
        "{a1:#?}"
    );
    let spent_ms = a1.end.as_millisecond() - a1.start.as_millisecond();
    assert!(spent_ms < 2000, "attempt 1 lasted {spent_ms} ms");
}

#[test]
fn unreachable_udp_target_fails_at_once_and_the_hunt_moves_on() {
    dead_first_target_moves_on_at_once("");
}

#[test]
fn refused_tcp_target_fails_at_once_and_the_hunt_moves_on() {
    dead_first_target_moves_on_at_once(";transport=tcp");
}
