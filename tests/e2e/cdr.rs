//! CDRs (issue 2): one line per call, written off the call path, flushed on SIGTERM.

use hotline_e2e::*;
use std::time::Duration;

#[test]
fn one_cdr_line_per_answered_call() {
    const N: u32 = 10;
    let target = start(
        Sipp::uas("uas_answer")
            .calls(N)
            .timeout(Duration::from_secs(30)),
    );
    let target_uri = target.uri("1001");
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target_uri)
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(N)
        .rate(20)
        .duration_ms(1200)
        .timeout(Duration::from_secs(30)));
    assert_all_ok(&caller, u64::from(N), "caller");
    let target = finish(target);
    assert_all_ok(&target, u64::from(N), "target");

    let status = hotline.stop();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "SIGTERM → exit 0: {status:?}"
    );
    let calls = cdr_calls(hotline.cdr_dir());
    assert_eq!(calls.len(), N as usize, "one line per call: {calls:#?}");

    let mut caller_ids: Vec<String> = caller
        .sent()
        .filter(|m| m.method() == Some("INVITE"))
        .filter_map(|m| m.header("Call-ID"))
        .collect();
    caller_ids.sort();
    caller_ids.dedup();
    let mut cdr_ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    cdr_ids.sort();
    assert_eq!(
        cdr_ids, caller_ids,
        "CDR call ids are the caller's Call-IDs"
    );

    for c in &calls {
        assert_eq!(c.number, NUMBER);
        assert!(
            c.caller_raw.contains(CALLER) || c.caller.contains(CALLER),
            "caller: {c:?}"
        );
        assert_eq!(c.final_code, 200);
        // docs: the answered target's SIP URI; the target's config name is accepted too.
        assert!(
            c.answered_target == target_uri || c.answered_target == "desk",
            "answered target {:?} is neither {target_uri:?} nor \"desk\"",
            c.answered_target
        );
        let (Some(answer), end) = (c.answer, c.end) else {
            panic!("answered call without answer time: {c:?}");
        };
        assert!(
            c.start <= answer && answer <= end,
            "start <= answer <= end: {c:?}"
        );
        let talk_ms = end.as_millisecond() - answer.as_millisecond();
        assert!(
            (1000..5000).contains(&talk_ms),
            "talk time {talk_ms} ms (caller paused 1200 ms)"
        );
    }
}

#[test]
fn rejected_call_gets_a_cdr_line_with_its_code() {
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("nowhere", "sip:1001@127.0.0.1:9")
            .number(NUMBER, &["nowhere"])
            .to_toml(),
    );
    let caller = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service(UNKNOWN_NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(20)));
    assert_all_ok(&caller, 1, "caller");
    assert_eq!(caller.final_codes(), vec![404]);
    let status = hotline.stop();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "SIGTERM → exit 0: {status:?}"
    );
    let calls = cdr_calls(hotline.cdr_dir());
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].final_code, 404);
    assert!(calls[0].answer.is_none());
}

/// Issue 18 item 5: a refused call's record says where the caller is, like an answered one's:
/// a blacklisted Zhejiang (温州) mobile gets 603, another one calls a number Hotline does not
/// serve (404); both records carry 浙江/温州, and the report's by-province figures count them
/// (one as blocked). Before the fix
/// caller_province was empty on every refused call.
#[test]
fn refused_calls_carry_the_caller_region() {
    const BLOCKED: &str = "13000670001";
    const OTHER: &str = "13000670002";
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("nowhere", "sip:1001@127.0.0.1:9")
            .number(NUMBER, &["nowhere"])
            .raw(&format!("[screening.blacklist]\nnumbers = [\"{BLOCKED}\"]"))
            .to_toml(),
    );
    for (number, caller, code) in [(NUMBER, BLOCKED, 603), (UNKNOWN_NUMBER, OTHER, 404)] {
        let r = run(Sipp::uac("uac_reject", hotline.sip_addr())
            .service(number)
            .caller(caller)
            .calls(1)
            .timeout(Duration::from_secs(20)));
        assert_all_ok(&r, 1, "caller");
        assert_eq!(r.final_codes(), vec![code]);
    }
    let status = hotline.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");
    let calls = cdr_calls(hotline.cdr_dir());
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for c in &calls {
        assert_eq!(
            (c.caller_province.as_str(), c.caller_city.as_str()),
            ("浙江", "温州"),
            "{c:#?}"
        );
        assert!(c.caller == BLOCKED || c.caller == OTHER, "{c:#?}");
    }
    let report = hotline_cdr::report::report(
        hotline.cdr_dir(),
        &hotline_cdr::report::ReportOptions::default(),
    )
    .expect("report");
    let zj = report
        .by_province
        .iter()
        .find(|(p, _)| p == "浙江")
        .map(|(_, c)| *c);
    let zj = zj.unwrap_or_else(|| panic!("no 浙江 row: {:?}", report.by_province));
    assert_eq!((zj.calls, zj.blocked), (2, 1), "{zj:?}");
}
