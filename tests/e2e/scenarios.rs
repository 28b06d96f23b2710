//! The SIPp scenarios in tests/sipp, run SIPp-to-SIPp without Hotline: proves the targets and
//! callers behave as documented before any Hotline test relies on them.

use hotline_e2e::*;
use std::time::Duration;

fn uas(name: &str) -> Sipp {
    Sipp::uas(name).timeout(Duration::from_secs(20))
}

fn uac(name: &str, target: &SippProcess) -> Sipp {
    Sipp::uac(name, target.addr())
        .service(NUMBER)
        .timeout(Duration::from_secs(20))
}

#[test]
fn answer_completes_calls_and_logs_what_it_received() {
    let target = start(uas("uas_answer").calls(3));
    let caller = run(uac("uac", &target).calls(3).rate(20).duration_ms(100));
    let target = finish(target);
    assert_all_ok(&caller, 3, "caller");
    assert_all_ok(&target, 3, "target");
    assert_eq!(target.received_request_calls("INVITE").len(), 3);
    assert_eq!(target.received_request_calls("ACK").len(), 3);
    assert_eq!(target.received_request_calls("BYE").len(), 3);
    assert_eq!(caller.final_codes(), vec![200, 200, 200]);
    let invite = &target.received_requests("INVITE")[0];
    assert_eq!(
        invite.header("From").map(|f| f.contains(CALLER)),
        Some(true),
        "caller number is presented in From"
    );
}

#[test]
fn answer_over_tcp() {
    let target = start(uas("uas_answer").calls(2).transport(Transport::Tcp));
    let caller = run(uac("uac", &target)
        .calls(2)
        .rate(20)
        .duration_ms(100)
        .transport(Transport::Tcp));
    let target = finish(target);
    assert_all_ok(&caller, 2, "caller");
    // The caller closes its connection when done, which SIPp counts against the target's
    // last call if it is still in its timewait; the BYEs prove the calls completed.
    assert_eq!(
        target.received_request_calls("BYE").len(),
        2,
        "{}",
        target.summary()
    );
    assert!(target.messages.iter().all(|m| m.transport == "TCP"));
}

#[test]
fn ring_then_answer_waits_the_ring_time() {
    let target = start(uas("uas_ring_answer").calls(1).set("ring_ms", "1000"));
    let caller = run(uac("uac", &target).calls(1).duration_ms(100));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    let sent: Vec<_> = target
        .messages
        .iter()
        .filter(|m| m.direction == Direction::Sent)
        .collect();
    let ring = sent.iter().find(|m| m.message.status() == Some(180));
    let ok = sent.iter().find(|m| {
        m.message.status() == Some(200) && m.message.cseq_method().as_deref() == Some("INVITE")
    });
    let (Some(ring), Some(ok)) = (ring, ok) else {
        panic!("no 180/200 sent\n{}", target.summary());
    };
    let ms = elapsed_ms(ring.at, ok.at);
    // The scenario polls for a CANCEL in 100 ms steps: allow its scheduling overshoot.
    assert!((950..1400).contains(&ms), "ring lasted {ms} ms");
}

#[test]
fn ring_then_answer_accepts_a_cancel_while_ringing() {
    let target = start(uas("uas_ring_answer").calls(1).set("ring_ms", "5000"));
    let caller = run(uac("uac_cancel", &target).calls(1).duration_ms(300));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    assert!(target.saw_request("CANCEL"));
    assert!(target.saw_request("ACK"));
    assert_eq!(caller.final_codes(), vec![487]);
}

#[test]
fn ring_no_answer_waits_for_cancel() {
    let target = start(uas("uas_ring_noanswer").calls(2));
    let caller = run(uac("uac_cancel", &target)
        .calls(2)
        .rate(10)
        .duration_ms(300));
    let target = finish(target);
    assert_all_ok(&caller, 2, "caller");
    assert_all_ok(&target, 2, "target");
    assert_eq!(target.received_request_calls("CANCEL").len(), 2);
    assert_eq!(caller.final_codes(), vec![487, 487]);
}

#[test]
fn ring_loop_sends_180_every_500ms_until_cancel() {
    let target = start(uas("uas_ring_loop").calls(1));
    let caller = run(uac("uac_cancel", &target).calls(1).duration_ms(1800));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    let rings: Vec<f64> = target
        .messages
        .iter()
        .filter(|m| m.direction == Direction::Sent && m.message.status() == Some(180))
        .map(|m| m.at)
        .collect();
    assert!(rings.len() >= 4, "only {} 180s", rings.len());
    for pair in rings.windows(2) {
        let ms = elapsed_ms(pair[0], pair[1]);
        assert!((450..800).contains(&ms), "180s {ms} ms apart");
    }
    assert!(target.saw_request("CANCEL"));
}

#[test]
fn early_media_183_carries_sdp_and_never_answers() {
    let target = start(uas("uas_183_noanswer").calls(1));
    let caller = run(uac("uac_cancel", &target).calls(1).duration_ms(300));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    let early = caller.received_responses("INVITE");
    let Some(p183) = early.iter().find(|m| m.status() == Some(183)) else {
        panic!("no 183\n{}", caller.summary());
    };
    assert!(p183.body().contains("m=audio"), "183 has SDP");
    assert_eq!(caller.final_codes(), vec![487]);
}

#[test]
fn rejections_486_and_503_are_acked() {
    for (scenario, code) in [("uas_486", 486u16), ("uas_503", 503)] {
        let target = start(uas(scenario).calls(1));
        let caller = run(uac("uac_reject", &target).calls(1));
        let target = finish(target);
        assert_all_ok(&caller, 1, scenario);
        assert_all_ok(&target, 1, scenario);
        assert_eq!(caller.final_codes(), vec![code]);
        assert!(target.saw_request("ACK"));
    }
}

#[test]
fn redirect_302_carries_the_contact_from_the_command_line() {
    let contact = "sip:1002@127.0.0.1:5071";
    let target = start(uas("uas_302").calls(1).key("contact", contact));
    let caller = run(uac("uac_reject", &target).calls(1));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    assert_eq!(caller.final_codes(), vec![302]);
    let responses = caller.received_responses("INVITE");
    let contacts: Vec<String> = responses
        .iter()
        .filter_map(|m| m.header("Contact"))
        .collect();
    assert_eq!(contacts, vec![format!("<{contact}>")]);
}
