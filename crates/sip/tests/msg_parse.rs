//! Message parsing: compact forms, folding, multi-value lines, quoted commas, every
//! `ParseError`, and a cross-check against rsip for well-formed messages.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, Limits};
use hotline_sip::msg::{Message, Method, ParseError, MAX_ROUTES, MAX_VIAS};
use hotline_sip::uri::Uri;

/// Test text uses `\n`; the wire uses CRLF.
fn crlf(s: &str) -> Bytes {
    Bytes::from(s.replace('\n', "\r\n"))
}

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(crlf(s))
}

const BASE: &str = "INVITE sip:4008001234@hotline.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:4008001234@hotline.example>
Call-ID: base-1
CSeq: 1 INVITE
Content-Length: 0

";

/// BASE with `from` replaced by `to` (exactly once).
fn variant(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn every_compact_form_is_indexed_or_found() {
    let m = parse(
        "INVITE sip:4008001234@hotline.example SIP/2.0
v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc
f: <sip:alice@example.com>;tag=a1
t: <sip:4008001234@hotline.example>;tag=b2
i: compact-1
CSeq: 7 INVITE
m: <sip:alice@192.0.2.10>
c: application/sdp
e: gzip
k: 100rel
s: hello
o: presence
r: <sip:bob@example.com>
u: dialog
l: 0

",
    )
    .unwrap();
    assert_eq!(m.top_via().branch, Some(&b"z9hG4bKc"[..]));
    assert_eq!(m.from_tag(), Some(&b"a1"[..]));
    assert_eq!(m.to_tag(), Some(&b"b2"[..]));
    assert_eq!(m.call_id(), b"compact-1");
    assert_eq!(m.contacts().count(), 1);
    assert_eq!(m.content_length(), Some(0));
    for (long, value) in [
        ("Content-Type", &b"application/sdp"[..]),
        ("Content-Encoding", b"gzip"),
        ("Supported", b"100rel"),
        ("Subject", b"hello"),
        ("Event", b"presence"),
        ("Refer-To", b"<sip:bob@example.com>"),
        ("Allow-Events", b"dialog"),
        ("Call-ID", b"compact-1"),
        ("Content-Length", b"0"),
        ("via", b"SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc"),
    ] {
        assert_eq!(m.header(long), Some(value), "{long}");
    }
    // And the other way round: asking by compact letter finds a long-form header.
    let m = parse(BASE).unwrap();
    assert_eq!(m.header("i"), Some(&b"base-1"[..]));
    assert_eq!(m.header("F"), Some(&b"<sip:alice@example.com>;tag=a1"[..]));
    assert_eq!(m.header("X-Absent"), None);
}

#[test]
fn header_names_are_case_insensitive() {
    let m = parse(&variant("Call-ID: base-1", "cALL-iD: base-1")).unwrap();
    assert_eq!(m.call_id(), b"base-1");
    let m = parse(&variant("Via:", "VIA :")).unwrap();
    assert_eq!(m.top_via().host, b"192.0.2.10");
}

#[test]
fn folded_headers() {
    let m = parse(
        "OPTIONS sip:a@example.com SIP/2.0
Via: SIP/2.0/UDP
 192.0.2.1
\t;branch=z9hG4bKfold
From:
  <sip:b@example.com>
  ;tag=f1
To: <sip:a@example.com>
Call-ID: fold-1
CSeq: 42
 OPTIONS
Max-Forwards:
 10
X-Long: one
 two
Content-Length: 0

",
    )
    .unwrap();
    let v = m.top_via();
    assert_eq!(v.host, b"192.0.2.1");
    assert_eq!(v.branch, Some(&b"z9hG4bKfold"[..]));
    assert_eq!(m.from_tag(), Some(&b"f1"[..]));
    assert_eq!(m.cseq(), (42, Method::Options));
    assert_eq!(m.max_forwards(), Some(10));
    assert_eq!(m.header("x-long"), Some(&b"one\r\n two"[..]));
}

#[test]
fn multi_value_lines_and_repeated_lines_keep_order() {
    let m = parse(
        "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com:5070;branch=z9hG4bK2
Via: SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK3;received=2001:db8::6;rport=5099
Record-Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>
Record-Route: <sip:p3.example.com;lr>
Route: <sip:r1;lr>, <sip:r2;lr>
Route: <sip:r3;lr>
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: multi-1
CSeq: 1 INVITE
Contact: <sip:b@192.0.2.7>, \"Doe, John\" <sip:doe@192.0.2.8>;q=0.5
Content-Length: 0

",
    )
    .unwrap();
    let hosts: Vec<_> = m.vias().map(|v| v.host).collect();
    assert_eq!(
        hosts,
        vec![&b"p1.example.com"[..], b"p2.example.com", b"[2001:db8::5]"]
    );
    let v3 = m.vias().nth(2).unwrap();
    assert_eq!(v3.rport, Some(Some(5099)));
    assert_eq!(v3.received, Some(&b"2001:db8::6"[..]));
    assert_eq!(m.via_count(), 3);
    assert_eq!(
        m.record_routes().collect::<Vec<_>>(),
        vec![
            &b"<sip:p1.example.com;lr>"[..],
            b"<sip:p2.example.com;lr>",
            b"<sip:p3.example.com;lr>"
        ]
    );
    assert_eq!(
        m.routes().collect::<Vec<_>>(),
        vec![&b"<sip:r1;lr>"[..], b"<sip:r2;lr>", b"<sip:r3;lr>"]
    );
    let contacts: Vec<_> = m.contacts().collect();
    assert_eq!(contacts.len(), 2, "comma inside quotes must not split");
    assert_eq!(contacts[1], b"\"Doe, John\" <sip:doe@192.0.2.8>;q=0.5");
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.reason_phrase(), b"Ringing");
    assert_eq!(m.method(), None);
}

#[test]
fn commas_inside_quotes_and_brackets_do_not_split() {
    let m = parse(&variant(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase;x=\"a,b\"\nRoute: <sip:p1.example.com;lr;foo=a,b>",
    ))
    .unwrap();
    assert_eq!(m.via_count(), 1);
    assert_eq!(m.top_via().branch, Some(&b"z9hG4bKbase"[..]));
    assert_eq!(m.routes().count(), 1);
    // From/To are single-valued: a comma in a quoted display name is fine.
    let m = parse(&variant(
        "From: <sip:alice@example.com>;tag=a1",
        "From: \"Smith, Alice\" <sip:alice@example.com>;tag=a1",
    ))
    .unwrap();
    assert_eq!(m.from_tag(), Some(&b"a1"[..]));
}

#[test]
fn body_and_content_length() {
    let m = parse(&variant(
        "Content-Length: 0\n\n",
        "Content-Length: 7\n\nhello\n",
    ))
    .unwrap();
    assert_eq!(m.body(), b"hello\r\n");
    // Without Content-Length (UDP) the body is the rest of the message.
    let m = parse(&variant("Content-Length: 0\n\n", "\nabc")).unwrap();
    assert_eq!(m.content_length(), None);
    assert_eq!(m.body(), b"abc");
}

#[test]
fn each_parse_error() {
    use ParseError::*;
    let cases: Vec<(String, ParseError)> = vec![
        ("".into(), BadStartLine),
        ("INVITE sip:a@b SIP/2.0".into(), BadStartLine),
        (variant("INVITE sip:", "INVITE  sip:"), BadStartLine),
        (variant(" SIP/2.0\n", "\n"), BadStartLine),
        (variant("SIP/2.0\nVia", "SIP/3.0\nVia"), BadVersion),
        (variant("SIP/2.0\nVia", "SIP/2.0x\nVia"), BadStartLine),
        (
            variant("sip:4008001234@hotline.example SIP", "<sip:x@y> SIP"),
            BadStartLine,
        ),
        (variant("INVITE sip", "INV(TE sip"), BadStartLine),
        (variant("Call-ID: base-1\n", "Call-ID base-1\n"), BadHeader),
        (
            variant("Call-ID: base-1\n", "Bad Name: x\nCall-ID: base-1\n"),
            BadHeader,
        ),
        (
            variant("Content-Length: 0\n\n", "Content-Length: 0\n"),
            BadHeader,
        ),
        (variant("Call-ID: base-1\n", ""), MissingCallId),
        (variant("Call-ID: base-1\n", "Call-ID:\n"), MissingCallId),
        (
            variant("Call-ID: base-1\n", "Call-ID: base-1\ni: other\n"),
            BadHeader,
        ),
        (variant("CSeq: 1 INVITE\n", ""), BadCSeq),
        (variant("CSeq: 1 INVITE", "CSeq: one INVITE"), BadCSeq),
        (
            variant("CSeq: 1 INVITE", "CSeq: 2147483648 INVITE"),
            BadCSeq,
        ),
        (variant("CSeq: 1 INVITE", "CSeq: 1"), BadCSeq),
        (variant("CSeq: 1 INVITE", "CSeq: 1INVITE"), BadCSeq),
        (variant("CSeq: 1 INVITE", "CSeq: 1 BYE"), CSeqMethodMismatch),
        (
            variant("CSeq: 1 INVITE", "CSeq: 1 invite"),
            CSeqMethodMismatch,
        ),
        (
            variant("From: <sip:alice@example.com>;tag=a1\n", ""),
            MissingFrom,
        ),
        (
            variant(
                "From: <sip:alice@example.com>",
                "From: <sip:alice@example.com",
            ),
            MissingFrom,
        ),
        (
            variant("To: <sip:4008001234@hotline.example>\n", ""),
            MissingTo,
        ),
        (
            variant("To: <sip:4008001234@hotline.example>", "To: \"x <sip:a@b>"),
            MissingTo,
        ),
        (
            variant("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase\n", ""),
            BadVia,
        ),
        (
            variant(
                "SIP/2.0/UDP 192.0.2.10:5060",
                "SIP/2.0/UDP 192.0.2.10:70000",
            ),
            BadVia,
        ),
        (variant("z9hG4bKbase", "z9hG4bKbase, "), BadVia),
        (variant("z9hG4bKbase", "z9hG4bKbase;;x"), BadVia),
        (
            variant("Max-Forwards: 70", "Max-Forwards: seventy"),
            BadMaxForwards,
        ),
        (
            variant("Max-Forwards: 70", "Max-Forwards: 256"),
            BadMaxForwards,
        ),
        (
            variant("Max-Forwards: 70", "Max-Forwards: 70\nMax-Forwards: 69"),
            BadMaxForwards,
        ),
        (
            variant("Content-Length: 0", "Content-Length: x"),
            BadContentLength,
        ),
        (
            variant("Content-Length: 0", "Content-Length: 0\nl: 1"),
            BadContentLength,
        ),
        (
            variant("Content-Length: 0", "Content-Length: 3"),
            ContentLengthMismatch,
        ),
        (
            variant("Content-Length: 0\n\n", "Content-Length: 0\n\nxyz"),
            ContentLengthMismatch,
        ),
    ];
    for (text, want) in cases {
        let got = parse(&text).err();
        assert_eq!(got.as_ref(), Some(&want), "{text:?}");
        assert!(!want.reason().is_empty());
    }

    // Responses: status range and mandatory headers.
    let resp = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1
Call-ID: r1
CSeq: 1 INVITE
Content-Length: 0

";
    assert!(parse(resp).is_ok(), "From/To are optional in a response");
    assert_eq!(
        parse(&resp.replace("200 OK", "099 Low")).err(),
        Some(BadStartLine)
    );
    assert_eq!(
        parse(&resp.replace("200 OK", "700 High")).err(),
        Some(BadStartLine)
    );
    assert_eq!(
        parse(&resp.replace("200 OK", "2000 OK")).err(),
        Some(BadStartLine)
    );
    assert_eq!(
        parse(&resp.replace("Call-ID: r1\n", "")).err(),
        Some(MissingCallId)
    );
    assert_eq!(
        parse(&resp.replace("CSeq: 1 INVITE\n", "")).err(),
        Some(BadCSeq)
    );
    assert_eq!(
        parse(&resp.replace("Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\n", "")).err(),
        Some(BadVia)
    );

    // Message Too Large comes from framing.
    let big = Bytes::from(vec![b'x'; 70_000]);
    assert_eq!(
        frame_datagram(big, &Limits::default()).err(),
        Some(TooLarge)
    );
}

#[test]
fn too_many_indexed_values() {
    let vias: String = (0..=MAX_VIAS)
        .map(|i| format!("Via: SIP/2.0/UDP h{i}.example.com;branch=z9hG4bK{i}\n"))
        .collect();
    let text = variant(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase\n",
        &vias,
    );
    assert_eq!(parse(&text).err(), Some(ParseError::TooManyHeaders));

    // Exactly at the limit is fine, values on one line count the same.
    let one_line: Vec<String> = (0..MAX_VIAS)
        .map(|i| format!("SIP/2.0/UDP h{i}.example.com;branch=z9hG4bK{i}"))
        .collect();
    let text = variant(
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbase",
        &format!("Via: {}", one_line.join(", ")),
    );
    assert_eq!(parse(&text).unwrap().via_count(), MAX_VIAS);

    let routes: Vec<String> = (0..=MAX_ROUTES).map(|i| format!("<sip:r{i};lr>")).collect();
    let text = variant(
        "Content-Length",
        &format!("Route: {}\nContent-Length", routes.join(",")),
    );
    assert_eq!(parse(&text).err(), Some(ParseError::TooManyHeaders));
}

#[test]
fn request_uri_forms() {
    let m = parse(&variant(
        "sip:4008001234@hotline.example",
        "tel:+86-400-800-1234",
    ))
    .unwrap();
    assert_eq!(
        Uri::parse(m.request_uri()).unwrap().user,
        b"+86-400-800-1234"
    );
    let m = parse(&variant(
        "sip:4008001234@hotline.example",
        "sip:4008001234@[2001:db8::1]:5080;user=phone",
    ))
    .unwrap();
    let u = Uri::parse(m.request_uri()).unwrap();
    assert_eq!((u.host, u.port), (&b"[2001:db8::1]"[..], Some(5080)));
    // Lower-case version is accepted (SIP-Version is case-insensitive).
    assert!(parse(&variant(" SIP/2.0\n", " sip/2.0\n")).is_ok());
}

#[test]
fn bare_lf_line_ends_are_tolerated() {
    let m = Message::parse(Bytes::from(BASE.to_string())).unwrap();
    assert_eq!(m.call_id(), b"base-1");
}

#[test]
fn leading_zeros_and_limits() {
    let m = parse(&variant("CSeq: 1 INVITE", "CSeq: 2147483647 INVITE")).unwrap();
    assert_eq!(m.cseq().0, 2147483647);
    let m = parse(&variant("Max-Forwards: 70", "Max-Forwards: 0255")).unwrap();
    assert_eq!(m.max_forwards(), Some(255));
}

#[test]
fn agrees_with_rsip_on_well_formed_messages() {
    use rsip::prelude::*;
    for text in [
        BASE.to_string(),
        variant("Max-Forwards: 70", "Max-Forwards: 5"),
        variant("CSeq: 1 INVITE", "CSeq: 99 INVITE"),
    ] {
        let wire = crlf(&text);
        let ours = Message::parse(wire.clone()).unwrap();
        let theirs = rsip::Request::try_from(&wire[..]).unwrap();
        assert_eq!(
            ours.call_id(),
            theirs.call_id_header().unwrap().value().as_bytes()
        );
        assert_eq!(ours.cseq().0, theirs.cseq_header().unwrap().seq().unwrap());
        assert_eq!(
            ours.max_forwards().map(|n| n.to_string()),
            theirs
                .max_forwards_header()
                .ok()
                .map(|h| h.value().to_string())
        );
        assert_eq!(ours.request_uri(), theirs.uri.to_string().as_bytes());
    }
}
