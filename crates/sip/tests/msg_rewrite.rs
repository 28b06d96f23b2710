//! Byte-for-byte output of forward_request / forward_response / response / cancel_for /
//! ack_for. Expected messages are written out literally, CRLF and all.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::net::SocketAddr;

use bytes::Bytes;
use hotline_sip::msg::Message;
use hotline_sip::rewrite::{
    ack_for, cancel_for, forward_request, forward_response, response, ForwardRequest,
};

fn msg(raw: &[u8]) -> Message {
    match Message::parse(Bytes::copy_from_slice(raw)) {
        Ok(m) => m,
        Err(e) => panic!("{e:?}: {}", String::from_utf8_lossy(raw)),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn nat_source() -> SocketAddr {
    "203.0.113.5:40000".parse().unwrap()
}

const INVITE: &[u8] = b"INVITE sip:4008001234@hotline.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:hotline.example;lr>, <sip:next.example;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
P-Asserted-Identity: <sip:alice@example.com>\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n";

const FORWARDED_INVITE: &[u8] = b"INVITE sip:13800000000@10.0.0.9:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport\r\n\
Record-Route: <sip:10.0.0.1:5060;lr>\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=40000;received=203.0.113.5\r\n\
Max-Forwards: 69\r\n\
Route: <sip:next.example;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
X-Hotline-Route: r1\r\n\
\r\n\
v=0\r\n";

fn forward_invite() -> Vec<u8> {
    let m = msg(INVITE);
    let add: &[(&str, &[u8])] = &[("X-Hotline-Route", b"r1")];
    forward_request(
        &m,
        &ForwardRequest {
            request_uri: Some(b"sip:13800000000@10.0.0.9:5060"),
            via: b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport",
            record_route: Some(b"<sip:10.0.0.1:5060;lr>"),
            pop_route: true,
            pop_second_route: false,
            source: Some(nat_source()),
            add_headers: add,
            remove_headers: &["P-Asserted-Identity"],
        },
    )
}

#[test]
fn forward_request_full_splice() {
    let out = forward_invite();
    assert_eq!(text(&out), text(FORWARDED_INVITE));
    let m = msg(&out);
    assert_eq!(m.max_forwards(), Some(69));
    assert_eq!(m.via_count(), 2);
}

#[test]
fn forward_request_adds_missing_max_forwards_and_content_length() {
    let m = msg(b"OPTIONS sip:4008001234@hotline.example SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKo1\r\n\
Route: <sip:hotline.example;lr>\r\n\
f: <sip:alice@example.com>;tag=f2\r\n\
t: <sip:4008001234@hotline.example>\r\n\
i: opt-1\r\n\
CSeq: 2 OPTIONS\r\n\
\r\n");
    let out = forward_request(
        &m,
        &ForwardRequest {
            via: b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp2",
            pop_route: true,
            pop_second_route: false,
            // Same address as the Via host, no rport: nothing to add.
            source: Some("192.0.2.10:5060".parse().unwrap()),
            ..ForwardRequest::default()
        },
    );
    let want = b"OPTIONS sip:4008001234@hotline.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp2\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKo1\r\n\
f: <sip:alice@example.com>;tag=f2\r\n\
t: <sip:4008001234@hotline.example>\r\n\
i: opt-1\r\n\
CSeq: 2 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\
\r\n";
    assert_eq!(text(&out), text(want));
}

#[test]
fn forward_request_received_and_rport_rules() {
    let base = "OPTIONS sip:a@hotline.example SIP/2.0\r\n\
Via: VIA\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:a@hotline.example>\r\n\
Call-ID: rr-1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 3\r\n\
Content-Length: 0\r\n\r\n";
    let cases = [
        // (received Via, source, Via after forwarding)
        (
            "SIP/2.0/UDP pc.example.com;branch=z9hG4bK1",
            "198.51.100.7:5060",
            "SIP/2.0/UDP pc.example.com;branch=z9hG4bK1;received=198.51.100.7",
        ),
        (
            "SIP/2.0/UDP 198.51.100.7:5060;rport;branch=z9hG4bK2",
            "198.51.100.7:5060",
            "SIP/2.0/UDP 198.51.100.7:5060;rport=5060;branch=z9hG4bK2;received=198.51.100.7",
        ),
        (
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK3",
            "[2001:db8::1]:5060",
            "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK3",
        ),
        (
            "SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK4;received=10.9.9.9;rport=1234",
            "198.51.100.7:5060",
            "SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK4;received=10.9.9.9;rport=1234",
        ),
    ];
    for (via, src, want_via) in cases {
        let m = msg(base.replace("VIA", via).as_bytes());
        let out = forward_request(
            &m,
            &ForwardRequest {
                via: b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx",
                source: Some(src.parse().unwrap()),
                ..ForwardRequest::default()
            },
        );
        let want = base
            .replace(
                "Via: VIA\r\n",
                &format!("Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nVia: {want_via}\r\n"),
            )
            .replace("Max-Forwards: 3", "Max-Forwards: 2");
        assert_eq!(text(&out), want, "{via}");
    }
}

#[test]
fn forward_response_removes_only_the_top_via_value() {
    // Two values on one line: the second stays on that line.
    let m = msg(b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport=5060, SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=40000;received=203.0.113.5\r\n\
From: <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>;tag=t9\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n");
    assert_eq!(
        text(&forward_response(&m)),
        text(
            b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=40000;received=203.0.113.5\r\n\
From: <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>;tag=t9\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );

    // Sized exactly: no spare capacity.
    let out = forward_response(&m);
    assert_eq!(out.len(), out.capacity());

    // One value per line: the whole first line goes.
    let m = msg(b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Call-ID: c2\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 3\r\n\
\r\n\
abc");
    assert_eq!(
        text(&forward_response(&m)),
        text(
            b"SIP/2.0 486 Busy Here\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1\r\n\
Call-ID: c2\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 3\r\n\
\r\n\
abc"
        )
    );
}

#[test]
fn local_response_copies_dialog_headers_and_adds_to_tag() {
    let m = msg(INVITE);
    let out = response(
        &m,
        486,
        "Busy Here",
        Some(b"uas-tag"),
        Some(nat_source()),
        &[("Retry-After", b"60")],
    );
    assert_eq!(
        text(&out),
        text(
            b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=40000;received=203.0.113.5\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>;tag=uas-tag\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Retry-After: 60\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );
    assert_eq!(msg(&out).status(), Some(486));

    // 100 Trying never gets a To tag; no source means the Via is copied untouched.
    let out = response(&m, 100, "Trying", Some(b"uas-tag"), None, &[]);
    assert_eq!(
        text(&out),
        text(
            b"SIP/2.0 100 Trying\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );
}

#[test]
fn local_response_keeps_existing_to_tag_and_every_via() {
    let m = msg(b"BYE sip:alice@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb1, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKb0\r\n\
Via: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKbz\r\n\
From: <sip:4008001234@hotline.example>;tag=t9\r\n\
To: <sip:alice@example.com>;tag=f1\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 2 BYE\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\
\r\n");
    let out = response(
        &m,
        481,
        "Call/Transaction Does Not Exist",
        Some(b"new"),
        None,
        &[],
    );
    assert_eq!(
        text(&out),
        text(
            b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n\
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb1, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKb0\r\n\
Via: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKbz\r\n\
From: <sip:4008001234@hotline.example>;tag=t9\r\n\
To: <sip:alice@example.com>;tag=f1\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );
}

#[test]
fn cancel_for_forwarded_invite() {
    let sent = msg(&forward_invite());
    assert_eq!(
        text(&cancel_for(&sent)),
        text(
            b"CANCEL sip:13800000000@10.0.0.9:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport\r\n\
Route: <sip:next.example;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );
}

#[test]
fn ack_for_non_2xx_final_response() {
    let sent = msg(&forward_invite());
    let resp = msg(b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport=5060\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1;rport=40000;received=203.0.113.5\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>;tag=callee-9\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\
\r\n");
    let ack = ack_for(&sent, &resp);
    assert_eq!(
        text(&ack),
        text(
            b"ACK sip:13800000000@10.0.0.9:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp1;rport\r\n\
Route: <sip:next.example;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>;tag=callee-9\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\
\r\n"
        )
    );
    let a = msg(&ack);
    assert_eq!(a.top_via().branch, sent.top_via().branch);
}
