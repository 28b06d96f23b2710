//! Call execution against real peers, part 2 (issue 4): simultaneous and mixed groups, racing
//! 200s, forwarding by cause and the best response, the wait cap, caller CANCEL across a
//! group, the concurrency limit across numbers, 3xx vetting (toll fraud), early media relay
//! and suppression, headers toward targets (Request-URI, Diversion, History-Info, PAI trust),
//! max call duration, and targets that do not listen at all.
//!
//! Every test asserts which target answered, the order and number of attempts, the caller's
//! final code, CANCELs seen by the losers, elapsed times (wide tolerances: two cores, tests in
//! parallel) and the CDR call record with its linked attempt records. Tests marked `#[ignore]`
//! document a Hotline bug (see the reason); run them with `-- --ignored`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hotline_cdr::{AttemptReason, Disposition, HangupSide};
use hotline_e2e::*;
use hotline_testkit::Plan;

use crate::exec_support::*;

/// The second 400 number (shares targets with [`NUMBER`]).
const NUMBER_B: &str = "4008005678";

fn caller(scenario: &str, hotline: &Hotline) -> Sipp {
    Sipp::uac(scenario, hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(20))
}

/// Stops Hotline (SIGTERM: CDRs flushed) and reads its CDRs.
#[track_caller]
fn stop_and_read(hotline: &mut Hotline) -> Cdrs {
    let status = hotline.stop();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "graceful exit: {status:?}"
    );
    Cdrs::read(hotline.cdr_dir())
}

// ----- simultaneous ring ------------------------------------------------------------------------

#[test]
fn simultaneous_group_first_answer_wins_and_the_other_is_cancelled() {
    let slow = start(uas("uas_ring_answer").set("ring_ms", "1000"));
    let ringing = start(uas("uas_ring_noanswer"));
    let (slow_uri, ringing_uri) = (slow.uri("1001"), ringing.uri("1002"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("slow", &slow_uri)
            .target("ringing", &ringing_uri)
            .plan(Plan::new("both").group("simultaneous", "5s", &["slow", "ringing"]))
            .number_with_plan(NUMBER, "both")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let answer_ms = ms_between(
        invite_sent_at(&caller),
        final_received_at(&caller),
        "caller INVITE -> 200",
    );
    assert_ms(answer_ms, 900..2500, "answered after the 1 s ring");

    let slow = finish(slow);
    let ringing = finish(ringing);
    assert_all_ok(&slow, 1, "answering target");
    assert_all_ok(&ringing, 1, "ringing target");
    let apart = ms_between(
        invite_received_at(&slow),
        invite_received_at(&ringing),
        "INVITEs of the group",
    );
    assert_ms(apart.abs(), 0..300, "both members rang at once");
    assert!(ringing.saw_request("CANCEL"), "the loser was CANCELled");
    let ok_sent = sent_at(&slow, |m| {
        m.status() == Some(200) && m.cseq_method().as_deref() == Some("INVITE")
    });
    let cancel_seen = received_at(&ringing, |m| m.method() == Some("CANCEL"));
    assert_ms(
        ms_between(ok_sent, cancel_seen, "winner's 200 -> loser's CANCEL"),
        0..500,
        "the loser is CANCELled as soon as the winner answers",
    );

    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 200);
    assert_eq!(call.disposition, Disposition::Answered);
    assert!(
        is_target(&call.answered_target, "slow", &slow_uri),
        "{call:?}"
    );
    assert_eq!(attempts.len(), 2, "{cdrs:#?}");
    let won = attempts
        .iter()
        .find(|a| a.reason == AttemptReason::Answered);
    let lost = attempts
        .iter()
        .find(|a| a.reason == AttemptReason::CancelledByHunt);
    let (Some(won), Some(lost)) = (won, lost) else {
        panic!("one answered and one cancelled-by-hunt attempt: {cdrs:#?}");
    };
    assert!(is_target(&won.target, "slow", &slow_uri), "{won:?}");
    assert!(is_target(&lost.target, "ringing", &ringing_uri), "{lost:?}");
    assert!(won.answer.is_some() && won.first_ring.is_some(), "{won:?}");
    assert!(lost.answer.is_none(), "{lost:?}");
}

#[test]
fn mixed_plan_busy_and_no_answer_group_then_the_next_group_answers() {
    let busy = start(uas("uas_486"));
    let ringing = start(uas("uas_ring_noanswer"));
    let answer = start(uas("uas_answer"));
    let answer_uri = answer.uri("1003");
    let (busy_uri, ringing_uri) = (busy.uri("1001"), ringing.uri("1002"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("busy", &busy_uri)
            .target("ringing", &ringing_uri)
            .target("answer", &answer_uri)
            .plan(
                Plan::new("mixed")
                    .group("simultaneous", "1s", &["busy", "ringing"])
                    .group("sequential", "5s", &["answer"]),
            )
            .number_with_plan(NUMBER, "mixed")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(
        caller.final_codes(),
        vec![200],
        "486 of the group is not relayed"
    );
    let busy = finish(busy);
    let ringing = finish(ringing);
    let answer = finish(answer);
    assert_all_ok(&busy, 1, "busy target");
    assert!(busy.saw_request("ACK"), "the 486 is ACKed hop by hop");
    assert_all_ok(&ringing, 1, "ringing target");
    assert!(ringing.saw_request("CANCEL"), "no answer in 1 s: CANCELled");
    assert_all_ok(&answer, 1, "answering target");
    let t0 = invite_received_at(&busy);
    assert_ms(
        ms_between(t0, invite_received_at(&ringing), "group INVITEs").abs(),
        0..300,
        "the first group rings together",
    );
    assert_ms(
        ms_between(t0, invite_received_at(&answer), "group 1 -> group 2"),
        900..2000,
        "the second group starts when the first group's ring timeout ends",
    );

    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert!(is_target(&call.answered_target, "answer", &answer_uri));
    assert_eq!(call.attempts, 3);
    let reason_of = |name: &str, uri: &str| {
        attempts
            .iter()
            .find(|a| is_target(&a.target, name, uri))
            .map(|a| (a.attempt, a.reason, a.code))
    };
    // Attempt 3 is the second group; the first two (in any order) are the simultaneous pair.
    let busy_a = reason_of("busy", &busy_uri);
    let ring_a = reason_of("ringing", &ringing_uri);
    let answer_a = reason_of("answer", &answer_uri);
    assert!(
        matches!(busy_a, Some((1 | 2, AttemptReason::Busy, 486))),
        "{cdrs:#?}"
    );
    assert!(
        matches!(ring_a, Some((1 | 2, AttemptReason::Timeout, _))),
        "{cdrs:#?}"
    );
    assert!(
        matches!(answer_a, Some((3, AttemptReason::Answered, 200))),
        "{cdrs:#?}"
    );
}

// ----- two 200s racing --------------------------------------------------------------------------

/// Reads what arrives for `window`, ACKing every 200 to the INVITE (each retransmission too,
/// RFC 3261 §13.2.2.4); returns everything received.
fn pump(
    client: &SipUdpClient,
    invite: &RawRequest,
    to: std::net::SocketAddr,
    window: Duration,
) -> Vec<SipMessage> {
    pump_until(client, invite, to, window, |_| false)
}

/// [`pump`] that returns as soon as `done` holds for what was received.
fn pump_until(
    client: &SipUdpClient,
    invite: &RawRequest,
    to: std::net::SocketAddr,
    window: Duration,
    done: impl Fn(&[SipMessage]) -> bool,
) -> Vec<SipMessage> {
    let deadline = Instant::now() + window;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || done(&got) {
            return got;
        }
        let m = match client.recv(left) {
            Ok(Some(m)) => m,
            Ok(None) => return got,
            Err(e) => panic!("recv: {e}"),
        };
        if m.status() == Some(200) && m.cseq_method().as_deref() == Some("INVITE") {
            let ack = invite.in_dialog("ACK", &m, invite.cseq);
            if let Err(e) = client.send_to(&ack.to_bytes(), to) {
                panic!("send ACK: {e}");
            }
        }
        got.push(m);
    }
}

/// Distinct To-tags of the 200s to INVITE in `got`, in arrival order.
fn ok_tags(got: &[SipMessage]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for m in got {
        if m.status() != Some(200) || m.cseq_method().as_deref() != Some("INVITE") {
            continue;
        }
        if let Some(t) = m.tag("To") {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
    }
    tags
}

/// What [`race`] leaves for the tests to check beyond its own assertions.
struct Race {
    /// The CDR call's talk time (answer -> end).
    talk_ms: i64,
    /// Upper bound of the kept dialog's talk time as the caller saw it.
    kept_ms: i64,
    /// How long after the answers the extra dialog was hung up (upper bound).
    extra_ms: i64,
    hangup_side: HangupSide,
}

/// Two targets of a simultaneous group answer at once; a raw caller ACKs both 200s, hangs up
/// the extra dialog at once and the first one 1.5 s later. Asserts relay, count, ACK/BYE per
/// dialog and the CDR's answered target.
fn race() -> Race {
    let a = start(uas("uas_answer_race"));
    let b = start(uas("uas_answer_race"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .with_admin()
            .target("a", &a.uri("1001"))
            .target("b", &b.uri("1002"))
            .plan(Plan::new("race").group("simultaneous", "5s", &["a", "b"]))
            .number_with_plan(NUMBER, "race")
            .to_toml(),
    );
    let client = SipUdpClient::bind().expect("bind");
    let local = client.local_addr().expect("local addr");
    let proxy = hotline.sip_addr();
    let invite = RawRequest::invite(&hotline.uri(NUMBER), local);
    if let Err(e) = client.send_to(&invite.to_bytes(), proxy) {
        panic!("send INVITE: {e}");
    }
    let sent = Instant::now();
    // Until both 200s are in (a loaded machine may delay one target), at most 5 s.
    let got = pump_until(&client, &invite, proxy, Duration::from_secs(5), |got| {
        ok_tags(got).len() >= 2
    });
    let oks: Vec<&SipMessage> = got
        .iter()
        .filter(|m| m.status() == Some(200) && m.cseq_method().as_deref() == Some("INVITE"))
        .collect();
    let tags = ok_tags(&got);
    assert_eq!(
        tags.len(),
        2,
        "both targets' 200s reach the caller (two dialogs): {got:#?}"
    );
    let first = oks[0].clone();
    let second = match oks.iter().find(|m| m.tag("To").as_ref() != Some(&tags[0])) {
        Some(m) => (*m).clone(),
        None => panic!("no second dialog"),
    };
    // The caller keeps the first dialog and hangs up the extra one at once (§13.2.2.4) ...
    let bye2 = invite.in_dialog("BYE", &second, invite.cseq + 1);
    if let Err(e) = client.send_to(&bye2.to_bytes(), proxy) {
        panic!("send BYE: {e}");
    }
    let extra_ms = i64::try_from(sent.elapsed().as_millis()).unwrap_or(i64::MAX);
    let after_bye2 = pump(&client, &invite, proxy, Duration::from_millis(1500));
    assert!(
        after_bye2.iter().any(|m| m.status() == Some(200)
            && m.cseq_method().as_deref() == Some("BYE")
            && m.tag("To") == second.tag("To")),
        "the extra dialog's BYE is answered: {after_bye2:#?}"
    );
    // ... and the first one 1.5 s later.
    let bye1 = invite.in_dialog("BYE", &first, invite.cseq + 1);
    if let Err(e) = client.send_to(&bye1.to_bytes(), proxy) {
        panic!("send BYE: {e}");
    }
    // Upper bound of the kept dialog's talk time as the caller saw it.
    let kept_ms = i64::try_from(sent.elapsed().as_millis()).unwrap_or(i64::MAX);
    let after_bye1 = pump(&client, &invite, proxy, Duration::from_millis(800));
    assert!(
        after_bye1.iter().any(|m| m.status() == Some(200)
            && m.cseq_method().as_deref() == Some("BYE")
            && m.tag("To") == first.tag("To")),
        "the kept dialog's BYE is answered: {after_bye1:#?}"
    );

    let metrics = hotline.metrics().expect("metrics");
    let extra =
        hotline_testkit::metric_value(&metrics, "hotline_sip_refused_total{reason=\"extra_2xx\"}");
    assert!(
        extra.is_some_and(|v| v >= 1.0),
        "the second 2xx is counted: {extra:?}"
    );

    let a = finish(a);
    let b = finish(b);
    for (r, name) in [(&a, "a"), (&b, "b")] {
        assert_all_ok(r, 1, name);
        assert!(r.saw_request("ACK"), "{name} got the caller's ACK");
        assert!(r.saw_request("BYE"), "{name} got the caller's BYE");
    }
    // Which target won: the one whose 200 carried the first dialog's tag.
    let a_tag = sent_tag(&a);
    let winner = if a_tag.as_ref() == Some(&tags[0]) {
        "a"
    } else {
        "b"
    };

    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 200);
    assert_eq!(attempts.len(), 2, "{cdrs:#?}");
    assert_eq!(
        call.answered_target, winner,
        "the first 200 relayed is the answer: {cdrs:#?}"
    );
    let talk_ms = match call.answer {
        Some(ans) => call.end.as_millisecond() - ans.as_millisecond(),
        None => panic!("answered call without answer time: {call:?}"),
    };
    Race {
        talk_ms,
        kept_ms,
        extra_ms,
        hangup_side: call.hangup_side,
    }
}

#[test]
fn two_200s_racing_on_a_simultaneous_group_are_both_relayed_and_counted() {
    let r = race();
    // How long the CDR says the call lasted is the ignored test below (extra-dialog BYE bug);
    // here only that it ended no later than the kept dialog's BYE.
    assert!(
        r.talk_ms >= 0 && r.talk_ms <= r.kept_ms + 500,
        "talk {} ms",
        r.talk_ms
    );
    assert_eq!(r.hangup_side, HangupSide::Caller);
}

#[test]
fn the_extra_dialogs_bye_does_not_end_the_answered_call() {
    let r = race();
    // The extra dialog was hung up at most `extra_ms` after the INVITE, the kept one 1.5 s
    // later: the call record must end with the kept dialog.
    assert_ms(
        r.talk_ms,
        (r.extra_ms + 500)..(r.kept_ms + 500),
        "the call lasts until the kept dialog's BYE, not the extra dialog's",
    );
}

fn sent_tag(r: &SippResult) -> Option<String> {
    r.sent()
        .find(|m| m.status() == Some(200) && m.cseq_method().as_deref() == Some("INVITE"))
        .and_then(|m| m.tag("To"))
}

// ----- forwarding by cause, best response -------------------------------------------------------

#[test]
fn busy_486_and_unavailable_503_move_on_in_order() {
    let busy = start(uas("uas_486"));
    let down = start(uas("uas_503"));
    let answer = start(uas("uas_answer"));
    let answer_uri = answer.uri("1003");
    let busy_uri = busy.uri("1001");
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("busy", &busy_uri)
            .target("down", &down.uri("1002"))
            .target("answer", &answer_uri)
            .number(NUMBER, &["busy", "down", "answer"])
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    assert_ms(
        ms_between(
            invite_sent_at(&caller),
            final_received_at(&caller),
            "INVITE -> 200",
        ),
        0..1000,
        "failures move on at once",
    );
    let busy = finish(busy);
    let down = finish(down);
    let answer = finish(answer);
    assert_all_ok(&busy, 1, "busy");
    assert_all_ok(&down, 1, "down");
    assert_all_ok(&answer, 1, "answer");
    let (t1, t2, t3) = (
        invite_received_at(&busy),
        invite_received_at(&down),
        invite_received_at(&answer),
    );
    assert!(ms_between(t1, t2, "busy -> down") >= 0, "hunt order");
    assert!(ms_between(t2, t3, "down -> answer") >= 0, "hunt order");

    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert!(is_target(&call.answered_target, "answer", &answer_uri));
    let got: Vec<(AttemptReason, u16)> = attempts.iter().map(|a| (a.reason, a.code)).collect();
    assert_eq!(
        got,
        vec![
            (AttemptReason::Busy, 486),
            (AttemptReason::Unreachable, 503),
            (AttemptReason::Answered, 200)
        ],
        "{cdrs:#?}"
    );
    assert!(
        is_target(&attempts[0].target, "busy", &busy_uri),
        "{cdrs:#?}"
    );
}

#[test]
fn decline_603_stops_the_hunt() {
    let decline = start(uas("uas_603"));
    let answer = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("decline", &decline.uri("1001"))
            .target("answer", &answer.uri("1002"))
            .number(NUMBER, &["decline", "answer"])
            .to_toml(),
    );
    let caller = run(caller("uac_reject", &hotline));
    assert_all_ok(&caller, 1, "caller");
    let codes = caller.final_codes();
    assert_eq!(codes.len(), 1);
    assert!(codes[0] >= 400, "the call failed: {codes:?}");
    let decline = finish(decline);
    assert_all_ok(&decline, 1, "declining target");
    let answer = answer.stop().unwrap();
    assert!(
        !answer.saw_request("INVITE"),
        "a 6xx ends the hunt: the next target is never tried"
    );
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.answer, None);
    assert_eq!(attempts.len(), 1, "{cdrs:#?}");
    assert_eq!(attempts[0].code, 603);
    assert_eq!(attempts[0].reason, AttemptReason::Rejected);
}

/// Runs a plan whose targets all fail (one target per scenario, in hunt order) and returns
/// the code the caller got.
fn all_fail(scenarios: &[&str], plan_keys: &[&str]) -> (u16, Cdrs) {
    let targets: Vec<SippProcess> = scenarios.iter().map(|s| start(uas(s))).collect();
    let names: Vec<String> = (1..=targets.len()).map(|i| format!("t{i}")).collect();
    let mut cfg = HotlineConfig::new();
    for (t, n) in targets.iter().zip(&names) {
        cfg = cfg.target(n, &t.uri("1001"));
    }
    let members: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut plan = Plan::new("p").group("sequential", "5s", &members);
    for k in plan_keys {
        plan = plan.key(k);
    }
    let mut hotline = Hotline::spawn(&cfg.plan(plan).number_with_plan(NUMBER, "p").to_toml());
    let caller = run(caller("uac_reject", &hotline));
    assert_all_ok(&caller, 1, "caller");
    for t in targets {
        let r = finish(t);
        assert_all_ok(&r, 1, "failing target");
    }
    let codes = caller.final_codes();
    assert_eq!(codes.len(), 1, "{}", caller.summary());
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(attempts.len(), names.len(), "every target tried: {cdrs:#?}");
    assert_eq!(
        call.final_code, codes[0],
        "CDR final code = what the caller got"
    );
    (codes[0], cdrs)
}

#[test]
fn all_failed_plan_sends_its_on_fail_code() {
    let (code, cdrs) = all_fail(&["uas_486", "uas_503"], &["on_fail = 404"]);
    assert_eq!(code, 404, "{cdrs:#?}");
}

#[test]
fn all_failed_caller_gets_the_best_response_486_over_503() {
    let (code, cdrs) = all_fail(&["uas_503", "uas_486"], &[]);
    assert_eq!(
        code, 486,
        "4xx beats 5xx (RFC 3261 §16.7 step 6): {cdrs:#?}"
    );
    assert_eq!(cdrs.calls[0].disposition, Disposition::Busy);
}

#[test]
fn decline_603_is_relayed_to_the_caller() {
    let (code, cdrs) = all_fail(&["uas_603"], &[]);
    assert_eq!(code, 603, "{cdrs:#?}");
}

// ----- wait cap ---------------------------------------------------------------------------------

#[test]
fn wait_cap_ends_the_hunt_with_480() {
    let first = start(uas("uas_ring_noanswer"));
    let second = start(uas("uas_ring_noanswer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("first", &first.uri("1001"))
            .target("second", &second.uri("1002"))
            .plan(Plan::new("capped").key("wait_cap = \"1800ms\"").group(
                "sequential",
                "1s",
                &["first", "second"],
            ))
            .number_with_plan(NUMBER, "capped")
            .to_toml(),
    );
    let caller = run(caller("uac_reject", &hotline));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![480]);
    let invite = invite_sent_at(&caller);
    assert_ms(
        ms_between(invite, final_received_at(&caller), "INVITE -> 480"),
        1700..2800,
        "the 1.8 s wait cap ends the hunt (not the second 1 s ring timeout)",
    );
    let first = finish(first);
    let second = finish(second);
    assert!(first.saw_request("CANCEL") && second.saw_request("CANCEL"));
    assert_ms(
        ms_between(
            invite,
            invite_received_at(&second),
            "INVITE -> second target",
        ),
        900..1600,
        "the first ring timeout (1 s) moved on",
    );
    assert_ms(
        ms_between(
            invite,
            received_at(&second, |m| m.method() == Some("CANCEL")),
            "INVITE -> CANCEL of the second",
        ),
        1700..2800,
        "the second target is CANCELled at the wait cap",
    );
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 480);
    assert_eq!(call.disposition, Disposition::NoAnswer);
    assert_eq!(attempts.len(), 2, "{cdrs:#?}");
    assert!(
        attempts.iter().all(|a| a.reason == AttemptReason::Timeout),
        "{cdrs:#?}"
    );
}

/// Issue 18 item 2: `wait_cap = "1500ms"` and `on_fail = "sales"`: the cap ends the hunt
/// (the ringing desk is CANCELled at 1.5 s), then sales is tried and answers. Before the fix
/// the caller got 480 at the cap and sales never saw the INVITE.
#[test]
fn wait_cap_then_the_on_fail_target_answers() {
    let desk = start(uas("uas_ring_noanswer"));
    let sales = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &desk.uri("1001"))
            .target("sales", &sales.uri("1002"))
            .plan(
                Plan::new("capped")
                    .key("wait_cap = \"1500ms\"")
                    .key("on_fail = \"sales\"")
                    .group("sequential", "10s", &["desk"]),
            )
            .number_with_plan(NUMBER, "capped")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200], "{}", caller.summary());
    let invite = invite_sent_at(&caller);
    let desk = finish(desk);
    assert_ms(
        ms_between(
            invite,
            received_at(&desk, |m| m.method() == Some("CANCEL")),
            "INVITE -> CANCEL of the desk",
        ),
        1400..2500,
        "the wait cap ends the hunt",
    );
    let sales = finish(sales);
    assert_all_ok(&sales, 1, "on_fail target");
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 200, "{cdrs:#?}");
    assert_eq!(attempts.len(), 2, "{cdrs:#?}");
    assert_eq!(attempts[0].reason, AttemptReason::Timeout, "{cdrs:#?}");
}

/// `wait_cap_skips_on_fail = true`: the cap ends the call with 480, sales is never tried.
#[test]
fn wait_cap_skips_on_fail_when_configured() {
    let desk = start(uas("uas_ring_noanswer"));
    let sales = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &desk.uri("1001"))
            .target("sales", &sales.uri("1002"))
            .plan(
                Plan::new("capped")
                    .key("wait_cap = \"1500ms\"")
                    .key("on_fail = \"sales\"")
                    .key("wait_cap_skips_on_fail = true")
                    .group("sequential", "10s", &["desk"]),
            )
            .number_with_plan(NUMBER, "capped")
            .to_toml(),
    );
    let caller = run(caller("uac_reject", &hotline));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![480]);
    finish(desk);
    let sales = sales.stop().unwrap();
    assert!(!sales.saw_request("INVITE"), "the cap skipped on_fail");
    let cdrs = stop_and_read(&mut hotline);
    assert_eq!(cdrs.single().0.final_code, 480);
}

// ----- caller CANCEL ----------------------------------------------------------------------------

#[test]
fn caller_cancel_cancels_every_branch_of_a_simultaneous_group() {
    let a = start(uas("uas_ring_noanswer"));
    let b = start(uas("uas_ring_noanswer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("a", &a.uri("1001"))
            .target("b", &b.uri("1002"))
            .plan(Plan::new("both").group("simultaneous", "10s", &["a", "b"]))
            .number_with_plan(NUMBER, "both")
            .to_toml(),
    );
    let caller = run(caller("uac_cancel_forked", &hotline));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![487]);
    let cancel_sent = sent_at(&caller, |m| m.method() == Some("CANCEL"));
    let a = finish(a);
    let b = finish(b);
    for (r, name) in [(&a, "a"), (&b, "b")] {
        assert_all_ok(r, 1, name);
        let seen = received_at(r, |m| m.method() == Some("CANCEL"));
        assert_ms(
            ms_between(cancel_sent, seen, "caller CANCEL -> branch CANCEL"),
            0..500,
            &format!("{name} CANCELled at once"),
        );
    }
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert_eq!(call.final_code, 487);
    assert_eq!(call.disposition, Disposition::Cancelled);
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a.reason == AttemptReason::CancelledByCaller),
        "{cdrs:#?}"
    );
}

// ----- concurrency ------------------------------------------------------------------------------

/// What [`limit_run`] produced.
struct LimitRun {
    second: SippResult,
    shared: SippResult,
    spare: SippResult,
    cdrs: Cdrs,
    shared_uri: String,
    spare_uri: String,
}

/// Target `shared` (max_concurrent = 1) is on a long call through [`NUMBER`]; then a call to
/// [`NUMBER_B`] (plan: shared, spare; `plan_keys` added) runs `second_scenario`.
fn limit_run(plan_keys: &[&str], second_scenario: &str) -> LimitRun {
    let shared = start(uas("uas_answer"));
    let spare = start(uas("uas_answer"));
    let spare_uri = spare.uri("1002");
    let shared_uri = shared.uri("1001");
    let mut plan = Plan::new("pb").group("sequential", "5s", &["shared", "spare"]);
    for k in plan_keys {
        plan = plan.key(k);
    }
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target_limited("shared", &shared_uri, 1)
            .target("spare", &spare_uri)
            .number(NUMBER, &["shared"])
            .plan(plan)
            .number_with_plan(NUMBER_B, "pb")
            .to_toml(),
    );
    // A long call through NUMBER holds the shared target's only slot ...
    let long = start(
        Sipp::uac("uac", hotline.sip_addr())
            .service(NUMBER)
            .calls(1)
            .duration_ms(3000)
            .timeout(Duration::from_secs(20)),
    );
    // (its answered attempt record is written at the answer)
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && Cdrs::read(hotline.cdr_dir()).attempts.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // ... while a call through NUMBER_B (limits are shared across numbers) comes in.
    let second = run(Sipp::uac(second_scenario, hotline.sip_addr())
        .service(NUMBER_B)
        .calls(1)
        .duration_ms(200)
        .timeout(Duration::from_secs(20)));
    let long = finish(long);
    assert_all_ok(&long, 1, "long caller");
    let shared = finish(shared);
    let spare = spare
        .wait_for(Duration::from_secs(2))
        .expect("spare target");
    assert_eq!(
        shared.received_request_calls("INVITE").len(),
        1,
        "the target at its limit gets no second INVITE"
    );
    let cdrs = stop_and_read(&mut hotline);
    assert_eq!(cdrs.calls.len(), 2, "{cdrs:#?}");
    LimitRun {
        second,
        shared,
        spare,
        cdrs,
        shared_uri,
        spare_uri,
    }
}

#[test]
fn a_target_at_max_concurrent_is_skipped_across_numbers() {
    let r = limit_run(&[], "uac");
    assert_all_ok(&r.second, 1, "second caller");
    assert_all_ok(&r.shared, 1, "shared target (the long call)");
    assert_all_ok(&r.spare, 1, "spare target");
    let cdrs = &r.cdrs;
    let Some(call_b) = cdrs.calls.iter().find(|c| c.number == NUMBER_B) else {
        panic!("no CDR for {NUMBER_B}: {cdrs:#?}");
    };
    assert!(
        is_target(&call_b.answered_target, "spare", &r.spare_uri),
        "{call_b:?}"
    );
    let attempts = cdrs.attempts_of(call_b);
    let got: Vec<AttemptReason> = attempts.iter().map(|a| a.reason).collect();
    assert_eq!(
        got,
        vec![AttemptReason::LimitReached, AttemptReason::Answered],
        "{cdrs:#?}"
    );
    assert!(
        is_target(&attempts[0].target, "shared", &r.shared_uri),
        "{cdrs:#?}"
    );
}

/// "skip" is not a failure cause: the skip happens whatever `advance_on` lists.
#[test]
fn a_skipped_member_does_not_depend_on_advance_on() {
    let r = limit_run(&["advance_on = [\"busy\"]"], "uac");
    assert_all_ok(
        &r.second,
        1,
        "second caller is answered by the spare target",
    );
    assert_all_ok(&r.spare, 1, "spare target");
}

#[test]
fn treat_as_busy_counts_a_target_at_its_limit_as_busy() {
    let r = limit_run(
        &[
            "on_target_busy_local = \"treat_as_busy\"",
            "advance_on = [\"no_answer\", \"unreachable\", \"rejected\"]",
        ],
        "uac_reject",
    );
    assert_all_ok(&r.second, 1, "second caller is refused");
    assert!(
        !r.spare.saw_request("INVITE"),
        "busy does not advance in this plan: the spare target is not called"
    );
    let codes = r.second.final_codes();
    assert!(codes.len() == 1 && codes[0] >= 400, "{codes:?}");
}

// ----- 3xx --------------------------------------------------------------------------------------

#[test]
fn redirect_302_to_a_configured_target_is_followed() {
    let answer = start(uas("uas_answer"));
    let answer_uri = answer.uri("1002");
    let redirect = start(uas("uas_302").key("contact", &answer_uri));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("redirect", &redirect.uri("1001"))
            .target("answer", &answer_uri)
            .number(NUMBER, &["redirect"])
            // `answer` is in use elsewhere too: only its address matters to the vetting.
            .number(NUMBER_B, &["answer"])
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200], "the 302 is not relayed");
    let redirect = finish(redirect);
    let answer = finish(answer);
    assert_all_ok(&redirect, 1, "redirecting target");
    assert_all_ok(&answer, 1, "redirected-to target");
    let inv = answer.received_requests("INVITE");
    assert_eq!(
        inv.first().and_then(|m| m.request_uri()),
        Some(answer_uri.as_str()),
        "the Contact of the 302 is the new Request-URI"
    );
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert!(is_target(&call.answered_target, "answer", &answer_uri));
    let got: Vec<(AttemptReason, u16)> = attempts.iter().map(|a| (a.reason, a.code)).collect();
    assert_eq!(
        got,
        vec![
            (AttemptReason::Redirected, 302),
            (AttemptReason::Answered, 200)
        ],
        "{cdrs:#?}"
    );
}

#[test]
fn redirect_to_a_host_that_is_no_configured_target_is_refused() {
    let honeypot = start(uas("uas_answer"));
    let fallback = start(uas("uas_answer"));
    let fallback_uri = fallback.uri("1003");
    let redirect = start(uas("uas_302").key("contact", &honeypot.uri("1009")));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("redirect", &redirect.uri("1001"))
            .target("fallback", &fallback_uri)
            .number(NUMBER, &["redirect", "fallback"])
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let honeypot = honeypot.stop().unwrap();
    assert!(
        !honeypot.saw_request("INVITE"),
        "a redirect to an unconfigured host is never followed"
    );
    let fallback = finish(fallback);
    assert_all_ok(&fallback, 1, "fallback target");
    assert!(hotline.wait_for_stderr("redirect refused", Duration::from_secs(2)));
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert!(is_target(&call.answered_target, "fallback", &fallback_uri));
    let got: Vec<AttemptReason> = attempts.iter().map(|a| a.reason).collect();
    assert_eq!(
        got,
        vec![AttemptReason::Redirected, AttemptReason::Answered],
        "{cdrs:#?}"
    );
}

#[test]
fn redirect_to_an_international_number_is_refused() {
    let gateway = start(uas("uas_answer"));
    // An international number at a configured target's own address: still toll fraud.
    let fraud = format!("sip:00442079460000@{}", gateway.addr());
    let redirect = start(uas("uas_302").key("contact", &fraud));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("redirect", &redirect.uri("1001"))
            .target("gateway", &gateway.uri("13800138001"))
            .number(NUMBER, &["redirect"])
            .number(NUMBER_B, &["gateway"])
            .to_toml(),
    );
    let caller = run(caller("uac_reject", &hotline));
    assert_all_ok(&caller, 1, "caller");
    let codes = caller.final_codes();
    assert!(
        codes.len() == 1 && codes[0] >= 400,
        "the call fails (and the 302 is not handed to the caller): {codes:?}"
    );
    let gateway = gateway.stop().unwrap();
    assert!(
        !gateway.saw_request("INVITE"),
        "nothing is sent to the international number"
    );
    let refused = hotline.stderr_matching("redirect refused");
    assert!(
        refused.iter().any(|l| l.contains("00442079460000")),
        "the refusal is logged with the refused contact: {refused:?}"
    );
    let cdrs = stop_and_read(&mut hotline);
    let (_call, attempts) = cdrs.single();
    assert_eq!(attempts.len(), 1, "{cdrs:#?}");
    assert_eq!(attempts[0].reason, AttemptReason::Redirected);
}

// ----- early media ------------------------------------------------------------------------------

fn early_media_run(suppress: bool) -> (SippResult, SippResult, SippResult, Cdrs) {
    let announcer = start(uas("uas_183_noanswer"));
    let answer = start(uas("uas_answer"));
    let mut plan = Plan::new("em").group("sequential", "1s", &["announcer", "answer"]);
    if suppress {
        plan = plan.key("early_media = \"suppress\"");
    }
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("announcer", &announcer.uri("1001"))
            .target("answer", &answer.uri("1002"))
            .plan(plan)
            .number_with_plan(NUMBER, "em")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(200));
    let announcer = finish(announcer);
    let answer = finish(answer);
    let cdrs = stop_and_read(&mut hotline);
    (caller, announcer, answer, cdrs)
}

#[test]
fn early_media_183_with_sdp_is_relayed_by_default() {
    let (caller, announcer, answer, cdrs) = early_media_run(false);
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let p183 = caller.received_responses("INVITE");
    let p183: Vec<_> = p183.iter().filter(|m| m.status() == Some(183)).collect();
    assert!(!p183.is_empty(), "183 relayed");
    assert!(
        p183[0].body().contains("m=audio")
            && p183[0]
                .header("Content-Type")
                .is_some_and(|c| c.contains("application/sdp")),
        "with its SDP: {:?}",
        p183[0]
    );
    assert!(announcer.saw_request("CANCEL"), "the hunt still moves on");
    assert_all_ok(&answer, 1, "answer");
    assert_ms(
        ms_between(
            invite_sent_at(&caller),
            final_received_at(&caller),
            "INVITE -> 200",
        ),
        900..2500,
        "answered after the 1 s ring timeout",
    );
    let (_call, attempts) = cdrs.single();
    assert_eq!(attempts[0].reason, AttemptReason::Timeout);
    assert!(
        attempts[0].first_ring.is_some(),
        "the 183 counts as ringing"
    );
}

#[test]
fn suppressed_early_media_rings_without_sdp_and_the_hunt_moves_on() {
    let (caller, announcer, answer, cdrs) = early_media_run(true);
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let provisional: Vec<&SipMessage> = caller
        .received_responses("INVITE")
        .into_iter()
        .filter(|m| m.status().is_some_and(|s| (101..200).contains(&s)))
        .collect();
    assert!(
        provisional
            .iter()
            .all(|m| m.status() != Some(183) || m.body().trim().is_empty()),
        "no early media reaches the caller: {provisional:#?}"
    );
    let first = provisional
        .first()
        .map(|m| (m.status(), m.body().trim().is_empty()));
    assert_eq!(
        first,
        Some((Some(180), true)),
        "the 183 with SDP becomes a 180 without SDP: {provisional:#?}"
    );
    assert!(announcer.saw_request("CANCEL"));
    assert_all_ok(&answer, 1, "answer");
    assert_ms(
        ms_between(
            invite_sent_at(&caller),
            final_received_at(&caller),
            "INVITE -> 200",
        ),
        900..2500,
        "the hunt moved on at the 1 s ring timeout",
    );
    let (call, _attempts) = cdrs.single();
    assert!(call.first_ring.is_some());
}

// ----- headers toward targets -------------------------------------------------------------------

/// Issue 18 item 12: a configured 1010 number is served like a 400 number (dialled as
/// +86 1010-1234 here), with the carrier its config names in the CDR; an unconfigured 1010
/// number is an unknown number (404), not "Not A 400 Number".
#[test]
fn a_1010_number_is_served_where_configured() {
    let desk = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &desk.uri("1001"))
            .plan(Plan::new("p").group("sequential", "5s", &["desk"]))
            .raw("[numbers.\"10101234\"]\ncompany = \"test\"\nplan = \"p\"\ncarrier = \"mobile\"")
            .to_toml(),
    );
    let c = run(Sipp::uac("uac", hotline.sip_addr())
        .service("+8610101234")
        .calls(1)
        .duration_ms(100)
        .timeout(Duration::from_secs(20)));
    assert_all_ok(&c, 1, "1010 caller");
    let r = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service("10109999")
        .calls(1)
        .timeout(Duration::from_secs(20)));
    assert_eq!(r.final_codes(), vec![404]);
    let desk = finish(desk);
    let inv = desk.received_requests("INVITE");
    let div = inv
        .first()
        .and_then(|m| m.header("Diversion"))
        .unwrap_or_default();
    assert!(div.starts_with("<tel:+8610101234>;reason="), "{div}");
    let cdrs = stop_and_read(&mut hotline);
    let mut calls = cdrs.calls.clone();
    calls.sort_by_key(|c| c.start);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        (
            calls[0].number.as_str(),
            calls[0].carrier.as_str(),
            calls[0].final_code
        ),
        ("10101234", "移动", 200)
    );
    assert_eq!(
        (calls[1].number.as_str(), calls[1].final_code),
        ("10109999", 404)
    );
    assert_eq!(
        calls[1].reason, "Not Found",
        "unknown, not Not A 400 Number"
    );
}

/// Issue 18 item 10 (来电显示): one number shows its phones the 400 number as the caller,
/// another the 400 number with the caller's number as display name and asserted identity
/// (the default test trunk is trusted). The calls complete: the caller gets its own From back.
#[test]
fn phones_are_shown_the_configured_caller_id() {
    const OTHER: &str = "4008005678";
    let desk = start(uas("uas_answer").calls(2));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &desk.uri("1001"))
            .plan(Plan::new("p").group("sequential", "5s", &["desk"]))
            .raw(&format!(
                "[numbers.\"{NUMBER}\"]\ncompany = \"test\"\nplan = \"p\"\ncaller_id = \"number\"\n\
                 [numbers.\"{OTHER}\"]\ncompany = \"test\"\nplan = \"p\"\ncaller_id = \"number_and_caller\""
            ))
            .to_toml(),
    );
    for number in [NUMBER, OTHER] {
        let c = run(Sipp::uac("uac", hotline.sip_addr())
            .service(number)
            .calls(1)
            .duration_ms(100)
            .timeout(Duration::from_secs(20)));
        assert_all_ok(&c, 1, number);
    }
    let desk = finish(desk);
    assert_all_ok(&desk, 2, "desk");
    let invites = desk.received_requests("INVITE");
    let from = |i: usize| {
        invites
            .get(i)
            .and_then(|m| m.header("From"))
            .unwrap_or_default()
    };
    let addr = hotline.sip_addr();
    assert!(
        from(0).starts_with(&format!("\"{NUMBER}\" <sip:{NUMBER}@{addr}>;tag=")),
        "{}",
        from(0)
    );
    assert!(
        from(1).starts_with(&format!("\"{CALLER}\" <sip:{OTHER}@{addr}>;tag=")),
        "{}",
        from(1)
    );
    let pai = invites.get(1).and_then(|m| m.header("P-Asserted-Identity"));
    assert_eq!(pai.as_deref(), Some(format!("<tel:+86{CALLER}>").as_str()));
    let _ = stop_and_read(&mut hotline);
}

/// Issue 18 item 9: forward by cause (遇忙转移 as platforms sell it): the desk of one number
/// is busy and forwards to A; the desk of another rings out (1 s) and forwards to B; each
/// destination answers, and is told why (Diversion user-busy / no-answer).
#[test]
fn busy_and_no_answer_forward_to_their_own_destinations() {
    const OTHER: &str = "4008005678";
    let busy_desk = start(uas("uas_486"));
    let ring_desk = start(uas("uas_ring_noanswer"));
    let a = start(uas("uas_answer"));
    let b = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .plan(Plan::new("p1").group("sequential", "5s", &["busy-desk"]))
            .plan(Plan::new("p2").group("sequential", "1s", &["ring-desk"]))
            .number_with_plan(NUMBER, "p1")
            .number_with_plan(OTHER, "p2")
            .raw(&format!(
                "[targets.busy-desk]\nuri = \"{}\"\nforward_on = {{ busy = \"a\", no_answer = \"b\" }}\n\
                 [targets.ring-desk]\nuri = \"{}\"\nforward_on = {{ busy = \"a\", no_answer = \"b\" }}\n\
                 [targets.a]\nuri = \"{}\"\n[targets.b]\nuri = \"{}\"",
                busy_desk.uri("1001"),
                ring_desk.uri("1002"),
                a.uri("2001"),
                b.uri("2002"),
            ))
            .to_toml(),
    );
    for number in [NUMBER, OTHER] {
        let c = run(Sipp::uac("uac", hotline.sip_addr())
            .service(number)
            .calls(1)
            .duration_ms(100)
            .timeout(Duration::from_secs(20)));
        assert_all_ok(&c, 1, number);
    }
    finish(busy_desk);
    finish(ring_desk);
    for (dest, reason) in [(finish(a), "user-busy"), (finish(b), "no-answer")] {
        assert_all_ok(&dest, 1, reason);
        let inv = dest.received_requests("INVITE");
        let div = inv
            .first()
            .and_then(|m| m.header("Diversion"))
            .unwrap_or_default();
        assert!(div.contains(&format!(";reason={reason};")), "{div}");
    }
    let cdrs = stop_and_read(&mut hotline);
    assert_eq!(cdrs.calls.len(), 2, "{cdrs:#?}");
    assert!(cdrs.calls.iter().all(|c| c.final_code == 200), "{cdrs:#?}");
}

/// Issue 18 item 8: the second target of a hunt is told why the call reached it: the first
/// answered 486, so Diversion says `user-busy` for it (then the 400 number, `unconditional`)
/// and History-Info lists the first with its response and the second with `cause=486`.
/// Before the fix every branch got `reason=unconditional` and no cause.
#[test]
fn second_target_sees_why_the_hunt_moved_on() {
    let busy = start(uas("uas_486"));
    let answer = start(uas("uas_answer"));
    let busy_uri = busy.uri("1001");
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("busy", &busy_uri)
            .target("answer", &answer.uri("1002"))
            .number(NUMBER, &["busy", "answer"])
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(100));
    assert_all_ok(&caller, 1, "caller");
    finish(busy);
    let answer = finish(answer);
    let invites = answer.received_requests("INVITE");
    let inv = invites.first().expect("no INVITE at the second target");
    let diversion = inv.header("Diversion").unwrap_or_default();
    assert_eq!(
        diversion,
        format!("<{busy_uri}>;reason=user-busy;counter=1, <tel:+86{NUMBER}>;reason=unconditional;counter=1"),
        "{}",
        inv.raw()
    );
    let history = inv.headers("History-Info").join(", ");
    assert!(
        history.contains(&format!(
            "<{busy_uri}?Reason=SIP%3Bcause%3D486>;index=1.1;mp=1"
        )),
        "{history}"
    );
    assert!(history.contains(";cause=486>;index=1.2;mp=1"), "{history}");
    let _ = stop_and_read(&mut hotline);
}

#[test]
fn invite_to_the_target_has_its_request_uri_diversion_and_history_info() {
    let target = start(uas("uas_answer"));
    let target_uri = target.uri("13800138001");
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target_uri)
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(100));
    assert_all_ok(&caller, 1, "caller");
    let target = finish(target);
    assert_all_ok(&target, 1, "target");
    let invites = target.received_requests("INVITE");
    let inv = invites.first().expect("no INVITE at the target");
    assert_eq!(
        inv.request_uri(),
        Some(target_uri.as_str()),
        "Request-URI rewritten"
    );
    assert_eq!(inv.header("Max-Forwards").as_deref(), Some("69"));
    assert_eq!(
        inv.headers("Via").len(),
        2,
        "Hotline's Via on top of the caller's"
    );
    assert!(
        inv.header("Record-Route")
            .is_some_and(|rr| rr.contains(&hotline.sip_addr().to_string())),
        "Hotline record-routes: {inv:?}"
    );
    let diversion = inv.header("Diversion").unwrap_or_default();
    assert!(
        diversion.contains(NUMBER),
        "Diversion (RFC 5806) names the 400 number: {diversion:?}"
    );
    let history = inv.headers("History-Info").join(", ");
    assert!(
        history.contains(NUMBER) && history.contains("index=1"),
        "History-Info (RFC 7044) carries the 400 number as the first entry: {history:?}"
    );
    assert!(
        history.contains(&target_uri) && history.contains("index=1.1"),
        "... and the target as the retargeted entry: {history:?}"
    );
    assert!(
        inv.header("To").is_some_and(|t| t.contains(NUMBER)),
        "To is untouched"
    );
}

#[test]
fn p_asserted_identity_passes_from_a_trusted_trunk_only() {
    let target = start(
        Sipp::uas("uas_486")
            .calls(2)
            .timeout(Duration::from_secs(20)),
    );
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .trunk("trusted", &["127.0.0.1/32"], true)
            .trunk("carrier", &["127.0.0.2/32"], false)
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let pai = "P-Asserted-Identity: <sip:+8613912345678@carrier.example>";
    let mut call_ids = Vec::new();
    for ip in [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)] {
        let client = SipUdpClient::bind_ip(ip).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let local = client.local_addr().unwrap();
        let req = RawRequest::invite(&hotline.uri(NUMBER), local).header(pai);
        call_ids.push(req.call_id.clone());
        let resp = client.request(&req, hotline.sip_addr(), Duration::from_secs(5));
        let code = resp.ok().flatten().and_then(|m| m.status());
        assert!(
            code.is_some_and(|c| c >= 400),
            "from {ip}: the busy target's failure comes back: {code:?}"
        );
    }
    let target = finish(target);
    assert_all_ok(&target, 2, "target");
    let invite_of = |id: &str| -> SipMessage {
        match target
            .received_requests("INVITE")
            .into_iter()
            .find(|m| m.header("Call-ID").as_deref() == Some(id))
        {
            Some(m) => m.clone(),
            None => panic!("no INVITE with Call-ID {id}"),
        }
    };
    let trusted = invite_of(&call_ids[0]);
    let untrusted = invite_of(&call_ids[1]);
    assert!(
        trusted
            .header("P-Asserted-Identity")
            .is_some_and(|v| v.contains("+8613912345678")),
        "PAI from the trusted trunk passes: {trusted:?}"
    );
    assert_eq!(
        untrusted.header("P-Asserted-Identity"),
        None,
        "PAI from the untrusted trunk is removed: {untrusted:?}"
    );
    assert!(untrusted
        .header("Diversion")
        .is_some_and(|d| d.contains(NUMBER)));
    let cdrs = stop_and_read(&mut hotline);
    let trunks: Vec<(&str, &str)> = cdrs
        .calls
        .iter()
        .map(|c| (c.call_id.as_str(), c.trunk.as_str()))
        .collect();
    assert!(
        trunks.contains(&(call_ids[0].as_str(), "trusted")),
        "{trunks:?}"
    );
    assert!(
        trunks.contains(&(call_ids[1].as_str(), "carrier")),
        "{trunks:?}"
    );
}

// ----- max call duration ------------------------------------------------------------------------

#[test]
fn max_duration_hangs_up_both_sides() {
    let target = start(uas("uas_answer"));
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .plan(Plan::new("short").key("max_duration = \"1s\"").group(
                "sequential",
                "5s",
                &["desk"],
            ))
            .number_with_plan(NUMBER, "short")
            .to_toml(),
    );
    let caller = run(caller("uac_hold_until_bye", &hotline));
    assert_all_ok(&caller, 1, "caller (answers the network's BYE)");
    let answered = final_received_at(&caller);
    assert_ms(
        ms_between(
            answered,
            received_at(&caller, |m| m.method() == Some("BYE")),
            "200 -> BYE",
        ),
        900..2000,
        "the caller gets BYE when max_duration (1 s) is reached",
    );
    let target = finish(target);
    assert_all_ok(&target, 1, "target");
    let ok_sent = sent_at(&target, |m| {
        m.status() == Some(200) && m.cseq_method().as_deref() == Some("INVITE")
    });
    assert_ms(
        ms_between(
            ok_sent,
            received_at(&target, |m| m.method() == Some("BYE")),
            "200 -> BYE",
        ),
        900..2000,
        "the target gets BYE too",
    );
    let cdrs = stop_and_read(&mut hotline);
    let (call, _attempts) = cdrs.single();
    assert_eq!(call.hangup_side, HangupSide::System);
    let talk = match call.answer {
        Some(a) => call.end.as_millisecond() - a.as_millisecond(),
        None => panic!("not answered: {call:?}"),
    };
    assert_ms(talk, 900..1500, "CDR talk time = max_duration");
}

// ----- targets that do not answer ---------------------------------------------------------------
// (A port nothing listens on is not one of them: its ICMP port unreachable moves the hunt on
// at once, see hunt.rs.)

#[test]
fn a_target_that_does_not_answer_is_left_at_its_ring_timeout() {
    let answer = start(uas("uas_answer"));
    let answer_uri = answer.uri("1002");
    let (_silent, port) = silent_port();
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("nobody", &format!("sip:1001@127.0.0.1:{port}"))
            .target("answer", &answer_uri)
            .plan(Plan::new("p").group("sequential", "1s", &["nobody", "answer"]))
            .number_with_plan(NUMBER, "p")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(100));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let answer = finish(answer);
    assert_all_ok(&answer, 1, "answer");
    assert_ms(
        ms_between(
            invite_sent_at(&caller),
            invite_received_at(&answer),
            "INVITE -> next target",
        ),
        900..2000,
        "the silent target is given up at its 1 s ring timeout (long before timer B, 32 s)",
    );
    let cdrs = stop_and_read(&mut hotline);
    let (call, attempts) = cdrs.single();
    assert!(is_target(&call.answered_target, "answer", &answer_uri));
    assert_eq!(attempts.len(), 2);
    assert!(
        matches!(
            attempts[0].reason,
            AttemptReason::Timeout | AttemptReason::Unreachable
        ),
        "{cdrs:#?}"
    );
    assert!(attempts[0].first_ring.is_none());
}

#[test]
fn a_target_that_does_not_answer_is_left_at_timer_b() {
    let answer = start(uas("uas_answer"));
    let (_silent, port) = silent_port();
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            // Timer B = 64 * T1 = 3.2 s, shorter than the 10 s ring timeout.
            .t1("50ms")
            .target("nobody", &format!("sip:1001@127.0.0.1:{port}"))
            .target("answer", &answer.uri("1002"))
            .plan(Plan::new("p").group("sequential", "10s", &["nobody", "answer"]))
            .number_with_plan(NUMBER, "p")
            .to_toml(),
    );
    let caller = run(caller("uac", &hotline).duration_ms(100));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![200]);
    let answer = finish(answer);
    assert_all_ok(&answer, 1, "answer");
    assert_ms(
        ms_between(
            invite_sent_at(&caller),
            invite_received_at(&answer),
            "INVITE -> next target",
        ),
        3000..4500,
        "timer B (64 x 50 ms) moves the hunt on",
    );
    let cdrs = stop_and_read(&mut hotline);
    let (_call, attempts) = cdrs.single();
    assert_eq!(attempts[0].reason, AttemptReason::Unreachable, "{cdrs:#?}");
}

// ----- the new SIPp scenarios on their own ------------------------------------------------------

#[test]
fn scenario_603_declines() {
    let target = start(uas("uas_603"));
    let caller = run(Sipp::uac("uac_reject", target.addr())
        .service(NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(20)));
    let target = finish(target);
    assert_all_ok(&caller, 1, "caller");
    assert_all_ok(&target, 1, "target");
    assert_eq!(caller.final_codes(), vec![603]);
}

#[test]
fn scenario_answer_race_accepts_a_cancel_after_its_200() {
    let target = start(uas("uas_answer_race"));
    let client = SipUdpClient::bind().unwrap();
    let local = client.local_addr().unwrap();
    let invite = RawRequest::invite(&format!("sip:{NUMBER}@{}", target.addr()), local);
    if let Err(e) = client.send_to(&invite.to_bytes(), target.addr()) {
        panic!("{e}");
    }
    let got = pump(&client, &invite, target.addr(), Duration::from_millis(500));
    let Some(ok) = got.iter().find(|m| m.status() == Some(200)).cloned() else {
        panic!("no 200: {got:#?}");
    };
    let mut cancel = invite.clone();
    cancel.method = "CANCEL".into();
    cancel.content_type = None;
    cancel.body.clear();
    if let Err(e) = client.send_to(&cancel.to_bytes(), target.addr()) {
        panic!("{e}");
    }
    let got = pump(&client, &invite, target.addr(), Duration::from_millis(300));
    assert!(
        got.iter()
            .any(|m| m.status() == Some(200) && m.cseq_method().as_deref() == Some("CANCEL")),
        "a CANCEL after the 200 gets its 200: {got:#?}"
    );
    let bye = invite.in_dialog("BYE", &ok, 2);
    if let Err(e) = client.send_to(&bye.to_bytes(), target.addr()) {
        panic!("{e}");
    }
    let got = pump(&client, &invite, target.addr(), Duration::from_millis(300));
    assert!(got
        .iter()
        .any(|m| m.status() == Some(200) && m.cseq_method().as_deref() == Some("BYE")));
    let target = finish(target);
    assert_all_ok(&target, 1, "race UAS");
}
