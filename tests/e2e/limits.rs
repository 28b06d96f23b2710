//! Prepaid enforcement (issue 5) and per-trunk limits (issue 6) end to end, SIPp on both
//! sides.

use hotline_e2e::*;
use std::time::Duration;

fn billing_file(dir: &std::path::Path, prepaid: &str) -> std::path::PathBuf {
    let path = dir.join("billing.toml");
    let text = format!(
        r#"timezone = "Asia/Shanghai"
[plans.p]
rate_per_minute = "0.50"
monthly_minimum = "0"
term_years = 1
[[accounts]]
number = "{NUMBER}"
plan = "p"
start = "2026-01-01"
prepaid = "{prepaid}"
"#
    );
    if let Err(e) = std::fs::write(&path, text) {
        panic!("writing {}: {e}", path.display());
    }
    path
}

fn prepaid_config(target: &str, billing: &std::path::Path) -> String {
    HotlineConfig::new()
        .with_admin()
        .target("desk", target)
        .number(NUMBER, &["desk"])
        .raw(&format!(
            "[server.billing]\nfile = {:?}\nrefuse_code = 402\nlow_balance = \"1.00\"\n",
            billing.display().to_string()
        ))
        .to_toml()
}

/// A balance that pays for one minute: the first call is cut with BYE both ways just before
/// the minute ends; a second call while the first holds the minute is refused (402).
#[test]
fn prepaid_balance_cuts_the_call_when_it_runs_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let billing = billing_file(dir.path(), "0.50");
    let target = start(
        Sipp::uas("uas_answer")
            .calls(1)
            .timeout(Duration::from_secs(90)),
    );
    let mut hotline = Hotline::spawn(&prepaid_config(&target.uri("1001"), &billing));
    // The caller would talk for two minutes.
    let caller = start(
        Sipp::uac("uac", hotline.sip_addr())
            .service(NUMBER)
            .calls(1)
            .duration_ms(120_000)
            .timeout(Duration::from_secs(90)),
    );
    // Wait for the first call to be answered (it then holds the paid minute).
    assert!(
        wait_metric(
            &hotline,
            "hotline_calls_talking",
            1.0,
            Duration::from_secs(10)
        ),
        "the first call was not answered:\n{}",
        hotline.stderr_tail(20)
    );
    // While the first call holds the only paid minute, a second one is refused.
    let second = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(10)));
    assert_eq!(second.final_codes(), vec![402], "{}", second.summary());

    let caller = stop_after(caller, Duration::from_secs(75));
    let target = finish(target);
    assert!(
        caller.saw_request("BYE"),
        "Hotline sent BYE to the caller: {}",
        caller.summary()
    );
    assert!(target.saw_request("BYE"), "and to the target");
    assert!(
        hotline.wait_for_stderr("below the low-balance threshold", Duration::from_secs(5)),
        "low-balance warning logged"
    );
    let status = hotline.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");
    let calls = cdr_calls(hotline.cdr_dir());
    let answered: Vec<_> = calls.iter().filter(|c| c.answer.is_some()).collect();
    assert_eq!(answered.len(), 1, "{calls:#?}");
    let talk = answered[0].talk_ms();
    assert!(
        (58_500..60_000).contains(&talk),
        "cut just before the paid minute ends: talked {talk} ms"
    );
    assert_eq!(answered[0].billable_minutes(), 1);
    assert_eq!(
        answered[0].hangup_side,
        hotline_cdr::HangupSide::System,
        "Hotline hung up"
    );
    let refused: Vec<_> = calls.iter().filter(|c| c.final_code == 402).collect();
    assert_eq!(refused.len(), 1, "the refused call has its CDR too");
}

/// No balance for one minute: refused at once with the configured code.
#[test]
fn prepaid_without_balance_refuses_new_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let billing = billing_file(dir.path(), "0.49");
    let hotline = Hotline::spawn(&prepaid_config("sip:1001@127.0.0.1:9", &billing));
    let caller = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(10)));
    assert_eq!(caller.final_codes(), vec![402], "{}", caller.summary());
}

/// Issue 18 item 4: the low balance is on /metrics, not only in the log: a number with ¥0.49
/// (below the ¥1.00 threshold, not enough for a minute) shows its balance, nothing reserved,
/// low-balance state 1, and the refused call.
#[test]
fn prepaid_balance_and_low_state_are_on_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let billing = billing_file(dir.path(), "0.49");
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .with_admin()
            .target("desk", "sip:1001@127.0.0.1:9")
            .number(NUMBER, &["desk"])
            .raw(&format!(
                "[server.billing]\nfile = {:?}\nrefuse_code = 402\nlow_balance = \"1.00\"\n",
                billing.display().to_string()
            ))
            .to_toml(),
    );
    let caller = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .timeout(Duration::from_secs(10)));
    assert_eq!(caller.final_codes(), vec![402], "{}", caller.summary());
    let m = hotline.metrics().expect("metrics");
    let v = |s: &str| hotline_testkit::metric_value(&m, s);
    assert_eq!(
        v(&format!(
            "hotline_prepaid_balance_yuan{{number=\"{NUMBER}\"}}"
        )),
        Some(0.49),
        "{m}"
    );
    assert_eq!(
        v(&format!(
            "hotline_prepaid_reserved_yuan{{number=\"{NUMBER}\"}}"
        )),
        Some(0.0)
    );
    assert_eq!(
        v(&format!(
            "hotline_prepaid_low_balance{{number=\"{NUMBER}\"}}"
        )),
        Some(1.0)
    );
    assert_eq!(v("hotline_prepaid_low_balance_threshold_yuan"), Some(1.0));
    assert_eq!(v("hotline_prepaid_refused_total"), Some(1.0));
}

/// A trunk's `max_calls` and `max_cps` shed new INVITEs with 503 + Retry-After.
#[test]
fn trunk_max_calls_sheds_with_503() {
    let target = start(
        Sipp::uas("uas_answer")
            .calls(2)
            .timeout(Duration::from_secs(30)),
    );
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .with_admin()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"])
            .raw("")
            .to_toml()
            .replace(
                "name = \"loopback\"\nsources = [\"127.0.0.1\"]\ntrusted = true\n",
                "name = \"loopback\"\nsources = [\"127.0.0.1\"]\ntrusted = true\nmax_calls = 2\n",
            ),
    );
    // Two long calls hold both slots.
    let long = start(
        Sipp::uac("uac", hotline.sip_addr())
            .service(NUMBER)
            .calls(2)
            .rate(50)
            .duration_ms(4000)
            .timeout(Duration::from_secs(30)),
    );
    assert!(
        wait_metric(
            &hotline,
            "hotline_calls_talking",
            2.0,
            Duration::from_secs(10)
        ),
        "the two long calls were not both answered:\n{}",
        hotline.stderr_tail(20)
    );
    let client = SipUdpClient::bind().expect("bind");
    let local = client.local_addr().expect("local addr");
    let uri = format!("sip:{NUMBER}@{}", hotline.sip_addr());
    let resp = match client.request(
        &RawRequest::invite(&uri, local),
        hotline.sip_addr(),
        Duration::from_secs(5),
    ) {
        Ok(Some(m)) => m,
        other => panic!("third call got no final response: {other:?}"),
    };
    assert_eq!(resp.status(), Some(503));
    assert_eq!(resp.header("Retry-After").as_deref(), Some("1"));
    let long = finish(long);
    assert_all_ok(&long, 2, "the two calls in progress");
}

fn stop_after(p: SippProcess, d: Duration) -> SippResult {
    p.wait_for(d).expect("SIPp caller")
}
