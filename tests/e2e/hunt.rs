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
