//! Hand-written requests (issue 2): what Hotline answers itself — OPTIONS, Max-Forwards: 0,
//! malformed requests, unknown / non-400 / suspended numbers, methods it does not serve —
//! and the number forms a trunk may dial.

use hotline_e2e::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn hotline_with(config: HotlineConfig) -> Hotline {
    Hotline::spawn(&config.to_toml())
}

/// A Hotline whose number routes to nothing reachable (requests here never leave Hotline).
fn lone_hotline() -> Hotline {
    hotline_with(
        HotlineConfig::new()
            .target("nowhere", "sip:1001@127.0.0.1:9")
            .number(NUMBER, &["nowhere"])
            .number("4008005555", &["nowhere"])
            .suspended(),
    )
}

fn client() -> (SipUdpClient, std::net::SocketAddr) {
    let c = SipUdpClient::bind().expect("bind");
    let local = c.local_addr().expect("local_addr");
    (c, local)
}

#[track_caller]
fn final_response(c: &SipUdpClient, req: &RawRequest, to: std::net::SocketAddr) -> SipMessage {
    match c.request(req, to, WAIT) {
        Ok(Some(m)) => m,
        Ok(None) => panic!(
            "no final response within {WAIT:?} to:\n{}",
            String::from_utf8_lossy(&req.to_bytes())
        ),
        Err(e) => panic!("request failed: {e}"),
    }
}

#[track_caller]
fn send_raw(c: &SipUdpClient, bytes: &[u8], to: std::net::SocketAddr) -> SipMessage {
    if let Err(e) = c.send_to(bytes, to) {
        panic!("send: {e}");
    }
    match c.recv_until_final(WAIT) {
        Ok(v) => match v.into_iter().next_back() {
            Some(m) if m.status().is_some_and(|s| s >= 200) => m,
            other => panic!("no final response, got {other:?}"),
        },
        Err(e) => panic!("recv: {e}"),
    }
}

#[test]
fn options_to_hotline_gets_200() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let addr = hotline.sip_addr();
    let req = RawRequest::new("OPTIONS", &format!("sip:{addr}"), local);
    let resp = final_response(&c, &req, addr);
    assert_eq!(resp.status(), Some(200), "{}", resp.raw());
    assert_eq!(resp.header("Call-ID"), Some(req.call_id.clone()));
    assert_eq!(resp.cseq_method().as_deref(), Some("OPTIONS"));
}

#[test]
fn max_forwards_zero_gets_483() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let req = RawRequest::invite(&hotline.uri(NUMBER), local).max_forwards(Some(0));
    let resp = final_response(&c, &req, hotline.sip_addr());
    assert_eq!(resp.status(), Some(483), "{}", resp.raw());
}

#[test]
fn unknown_400_number_gets_404() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let req = RawRequest::invite(&hotline.uri(UNKNOWN_NUMBER), local);
    let resp = final_response(&c, &req, hotline.sip_addr());
    assert_eq!(resp.status(), Some(404), "{}", resp.raw());
    // The response matches the request: same Call-ID, our Via branch, a To tag.
    assert_eq!(resp.header("Call-ID"), Some(req.call_id.clone()));
    assert!(resp.header("Via").is_some_and(|v| v.contains(&req.branch)));
    assert!(resp.header("To").is_some_and(|t| t.contains("tag=")));
}

#[test]
fn non_400_number_gets_404_saying_so() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let req = RawRequest::invite(&hotline.uri("13912345678"), local);
    let resp = final_response(&c, &req, hotline.sip_addr());
    assert_eq!(resp.status(), Some(404), "{}", resp.raw());
    let reason = resp.reason().unwrap_or("").to_ascii_lowercase();
    assert!(
        reason.contains("400"),
        "reason phrase should say it is not a 400 number: {reason:?}"
    );
}

#[test]
fn suspended_number_gets_480() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let req = RawRequest::invite(&hotline.uri("4008005555"), local);
    let resp = final_response(&c, &req, hotline.sip_addr());
    assert_eq!(resp.status(), Some(480), "{}", resp.raw());
}

#[test]
fn request_for_hotline_itself_gets_405_with_allow() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let addr = hotline.sip_addr();
    let req = RawRequest::new("REGISTER", &format!("sip:{addr}"), local);
    let resp = final_response(&c, &req, addr);
    assert_eq!(resp.status(), Some(405), "{}", resp.raw());
    assert!(
        resp.header("Allow").is_some(),
        "405 carries Allow: {}",
        resp.raw()
    );
}

#[test]
fn malformed_invites_get_400_naming_the_problem() {
    let hotline = lone_hotline();
    let (c, local) = client();
    let addr = hotline.sip_addr();
    let uri = hotline.uri(NUMBER);

    // Missing Call-ID (a response can still be routed back by Via).
    let req = RawRequest::invite(&uri, local).without("call-id");
    let resp = final_response(&c, &req, addr);
    assert_eq!(resp.status(), Some(400), "missing Call-ID: {}", resp.raw());
    assert!(!resp.reason().unwrap_or("").trim().is_empty());

    // Bad CSeq.
    let mut req = RawRequest::invite(&uri, local).without("cseq");
    req.extra_headers.push("CSeq: abc INVITE".into());
    let resp = final_response(&c, &req, addr);
    assert_eq!(resp.status(), Some(400), "bad CSeq: {}", resp.raw());

    // Content-Length larger than the datagram's body.
    let good = String::from_utf8_lossy(&RawRequest::invite(&uri, local).to_bytes()).into_owned();
    let start = good
        .find("Content-Length: ")
        .expect("template has Content-Length");
    let end = good[start..]
        .find("\r\n")
        .map(|e| start + e)
        .unwrap_or(good.len());
    let bad = format!("{}Content-Length: 900{}", &good[..start], &good[end..]);
    let resp = send_raw(&c, bad.as_bytes(), addr);
    assert_eq!(
        resp.status(),
        Some(400),
        "Content-Length mismatch: {}",
        resp.raw()
    );

    // Hotline is still alive and serving afterwards.
    let req = RawRequest::new("OPTIONS", &format!("sip:{addr}"), local);
    assert_eq!(final_response(&c, &req, addr).status(), Some(200));
}

#[test]
fn garbage_datagrams_do_not_kill_hotline() {
    let mut hotline = lone_hotline();
    let (c, local) = client();
    let addr = hotline.sip_addr();
    for junk in [
        &b"\x00\x01\x02"[..],
        b"hello",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\r\n\r\n",
    ] {
        if let Err(e) = c.send_to(junk, addr) {
            panic!("send: {e}");
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(hotline.is_running(), "hotline died on garbage");
    let req = RawRequest::new("OPTIONS", &format!("sip:{addr}"), local);
    assert_eq!(final_response(&c, &req, addr).status(), Some(200));
}

/// Every form of the called number a trunk may use reaches the target: the target (486)
/// sees one INVITE per form with the Request-URI rewritten to it, and the caller gets a final
/// failure (the 486 itself or the plan's `on_fail` code).
#[test]
fn every_number_form_routes_to_the_target() {
    let forms = ["4008001234", "+864008001234", "864008001234"];
    let target = start(
        Sipp::uas("uas_486")
            .calls(4)
            .timeout(Duration::from_secs(20)),
    );
    let hotline = hotline_with(
        HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"]),
    );
    let (c, local) = client();
    let addr = hotline.sip_addr();
    for form in forms {
        let req = RawRequest::invite(&hotline.uri(form), local);
        let resp = final_response(&c, &req, addr);
        assert!(
            resp.status().is_some_and(|s| s >= 400),
            "{form}: {}",
            resp.raw()
        );
    }
    let tel = RawRequest::invite("tel:+86-400-800-1234", local);
    let resp = final_response(&c, &tel, addr);
    assert!(
        resp.status().is_some_and(|s| s >= 400),
        "tel URI: {}",
        resp.raw()
    );
    let target = finish(target);
    assert_all_ok(&target, 4, "target: one INVITE per number form");
    for invite in target.received_requests("INVITE") {
        assert!(
            invite
                .request_uri()
                .is_some_and(|u| u.starts_with("sip:1001@127.0.0.1:")),
            "Request-URI rewritten to the target: {:?}",
            invite.request_uri()
        );
    }
}
