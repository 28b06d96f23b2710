//! Basic calls through Hotline (issue 2): many calls over UDP, over TCP, and the README demo
//! with SIPp's built-in scenarios.

use hotline_e2e::*;
use std::time::Duration;

/// Caller → Hotline → one answering target, `n` calls over `transport`; all must succeed.
fn many_calls(transport: Transport, n: u32) {
    let target = start(
        Sipp::uas("uas_answer")
            .transport(transport)
            .calls(n)
            .timeout(Duration::from_secs(90)),
    );
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .transport(transport)
        .service(NUMBER)
        .calls(n)
        .rate(50)
        .limit(50)
        .duration_ms(100)
        .timeout(Duration::from_secs(60)));
    assert_all_ok(&caller, u64::from(n), "caller");
    assert_eq!(caller.final_codes().len(), n as usize);
    assert!(caller.final_codes().iter().all(|c| *c == 200));
    let target = finish(target);
    if transport == Transport::Udp {
        assert_all_ok(&target, u64::from(n), "target");
    } else {
        // See scenarios::answer_over_tcp: a closing connection may fail the last timewait.
        assert_eq!(
            target.received_request_calls("BYE").len(),
            n as usize,
            "{}",
            target.summary()
        );
    }
    assert_eq!(target.received_request_calls("INVITE").len(), n as usize);
    // The target saw the Request-URI rewritten to itself and Hotline in the path.
    let invite = &target.received_requests("INVITE")[0];
    assert_eq!(
        invite.request_uri().map(|u| u.starts_with("sip:1001@")),
        Some(true),
        "{}",
        invite.raw()
    );
    assert!(
        invite.headers("Via").len() >= 2,
        "Hotline adds its Via: {}",
        invite.raw()
    );
    assert!(
        !invite.headers("Record-Route").is_empty(),
        "Hotline record-routes: {}",
        invite.raw()
    );
}

#[test]
fn udp_200_calls_all_succeed() {
    many_calls(Transport::Udp, 200);
}

#[test]
fn tcp_200_calls_all_succeed() {
    many_calls(Transport::Tcp, 200);
}

/// The README demo: `sipp -sn uas` as the target, `sipp -sn uac -s 4008001234` as the caller.
#[test]
fn sipp_builtin_uac_and_uas_complete_10_calls() {
    let target = start(
        Sipp::builtin("uas", None)
            .calls(10)
            .timeout(Duration::from_secs(40)),
    );
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let caller = run(Sipp::builtin("uac", Some(hotline.sip_addr()))
        .service(NUMBER)
        .calls(10)
        .rate(10)
        .duration_ms(100)
        .timeout(Duration::from_secs(30)));
    assert_all_ok(&caller, 10, "built-in uac");
    let target = finish(target);
    assert_all_ok(&target, 10, "built-in uas");
}
