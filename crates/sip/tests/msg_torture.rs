//! RFC 4475 torture messages (fixtures in `tests/torture/`, CRLF line ends, bytes as in the
//! RFC). Each arrives as one UDP datagram: framed with `frame_datagram`, then parsed.
//! docs/sip-parsing.md lists which ones are covered and how each is handled.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, Framed, Limits};
use hotline_sip::msg::{Message, Method, ParseError};
use hotline_sip::uri::{NameAddr, Uri};

fn udp(raw: &'static [u8]) -> Result<Message, ParseError> {
    match frame_datagram(Bytes::from_static(raw), &Limits::default())? {
        Framed::Message(m) => Message::parse(m),
        Framed::KeepAlive => panic!("fixture framed as keep-alive"),
    }
}

fn ok(raw: &'static [u8]) -> Message {
    match udp(raw) {
        Ok(m) => m,
        Err(e) => panic!("valid torture message rejected: {e:?}"),
    }
}

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("torture/", $name, ".sip"))
    };
}

// ---- 3.1.1 valid messages -------------------------------------------------------------

#[test]
fn wsinv_short_tortuous_invite() {
    let m = ok(fixture!("wsinv"));
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        m.request_uri(),
        b"sip:vivekg@chair-dnrc.example.com;unknownparam"
    );
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.from_tag(), Some(&b"98asjd8"[..]));
    let from = NameAddr::parse(m.from_value()).unwrap();
    assert_eq!(from.display, &b"\"J Rosenberg \\\\\\\"\""[..]);
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.call_id(), b"wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.cseq(), (9, Method::Invite));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.body().len(), 150);
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport, vias[0].host, vias[0].branch),
        (&b"UDP"[..], &b"192.0.2.2"[..], Some(&b"390skdjuw"[..]))
    );
    assert_eq!(
        (vias[1].transport, vias[1].host, vias[1].branch),
        (
            &b"TCP"[..],
            &b"spindle.example.com"[..],
            Some(&b"z9hG4bK9ikj8"[..])
        )
    );
    assert_eq!(
        (vias[2].transport, vias[2].host, vias[2].branch),
        (
            &b"UDP"[..],
            &b"192.168.255.111"[..],
            Some(&b"z9hG4bK30239"[..])
        )
    );
    assert!(vias.iter().all(|v| v.port.is_none()));
    assert_eq!(
        m.routes().collect::<Vec<_>>(),
        vec![&b"<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"[..]]
    );
    let contacts: Vec<_> = m.contacts().collect();
    assert_eq!(contacts.len(), 1);
    let c = NameAddr::parse(contacts[0]).unwrap();
    assert_eq!(c.display, &b"\"Quoted string \\\"\\\"\""[..]);
    assert_eq!(c.param("newparam"), Some(&b"newvalue"[..]));
    assert_eq!(c.param("secondparam"), Some(&b""[..]));
    assert_eq!(c.param("q"), Some(&b"0.33"[..]));
    assert_eq!(m.header("Subject"), Some(&b""[..]));
    assert_eq!(
        m.header("newfangledheader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    assert_eq!(
        m.header("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    let ruri = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(ruri.param("unknownparam"), Some(&b""[..]));
}

#[test]
fn intmeth_wide_range_of_characters() {
    let m = ok(fixture!("intmeth"));
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(
        m.method_bytes(),
        &b"!interesting-Method0123456789_*+`.%indeed'~"[..]
    );
    assert_eq!(m.cseq_method_bytes(), m.method_bytes());
    assert_eq!(m.cseq().0, 139122385);
    let ruri = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(
        ruri.user,
        &b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]
    );
    assert_eq!(ruri.host, b"example.com");
    assert_eq!(m.top_via().branch, Some(&b"z9hG4bK-.!%66*_+`'~"[..]));
    assert_eq!(m.from_tag(), Some(&b"_token~1'+`*%!-."[..]));
    let from = NameAddr::parse(m.from_value()).unwrap();
    assert_eq!(from.display, &b"token1~` token2'+_ token3*%!.-"[..]);
    assert_eq!(
        from.param("fromParam''~+*_!.-%"),
        Some("\"работающий\"".as_bytes())
    );
    assert_eq!(
        m.call_id(),
        &b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..]
    );
    assert_eq!(m.max_forwards(), Some(255));
    assert_eq!(
        m.header("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電".as_bytes())
    );
    let to = NameAddr::parse(m.to_value()).unwrap();
    assert!(to.display.contains(&0u8));
}

#[test]
fn esc01_percent_escapes_kept_as_written() {
    let m = ok(fixture!("esc01"));
    let ruri = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(ruri.user, b"sips%3Auser%40example.com");
    assert_eq!(ruri.host, b"example.net");
    assert_eq!(m.call_id(), b"esc01.239409asdfakjkn23onasd0-3234");
    assert_eq!(m.header("Content-Type"), Some(&b"application/sdp"[..]));
    let c = Uri::parse_name_addr(m.contacts().next().unwrap()).unwrap();
    assert_eq!(c.user, b"cal%6Cer");
    assert_eq!(c.param("n%61me"), Some(&b"v%61lue%25%34%31"[..]));
    assert_eq!(c.param("%6C%72"), Some(&b""[..]));
}

#[test]
fn escnull_two_contacts_with_nulls() {
    let m = ok(fixture!("escnull"));
    assert_eq!(m.method(), Some(Method::Register));
    let users: Vec<_> = m
        .contacts()
        .map(|c| Uri::parse_name_addr(c).unwrap().user)
        .collect();
    assert_eq!(users, vec![&b"%00"[..], b"%00%00"]);
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn esc02_percent_is_not_an_escape_in_methods_or_names() {
    let m = ok(fixture!("esc02"));
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_bytes(), b"RE%47IST%45R");
    // "C%6Fntact" is an unknown header, not a Contact.
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(
        m.header("C%6Fntact"),
        Some(&b"<sip:alias2@host2.example.com>"[..])
    );
    assert_eq!(m.top_via().branch, Some(&b"z9hG4bK209%fzsnel234"[..]));
}

#[test]
fn lwsdisp_no_space_before_bracket() {
    let m = ok(fixture!("lwsdisp"));
    assert_eq!(m.from_tag(), Some(&b"323"[..]));
    assert_eq!(NameAddr::parse(m.from_value()).unwrap().display, b"caller");
}

#[test]
fn longreq_many_and_long_values() {
    let m = ok(fixture!("longreq"));
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 34);
    for (i, v) in vias.iter().take(33).enumerate() {
        assert_eq!(v.host, format!("sip{}.example.com", 33 - i).as_bytes());
        assert_eq!(v.transport, b"TCP");
    }
    assert_eq!(vias[33].received, Some(&b"192.0.2.5"[..]));
    assert_eq!(vias[33].branch.map(<[u8]>::len), Some(215));
    assert_eq!(m.from_tag().map(<[u8]>::len), Some(155));
    let to = Uri::parse_name_addr(m.to_value()).unwrap();
    assert_eq!(to.port, Some(6000));
    assert_eq!(m.call_id().len(), 141);
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq_extra_octets_after_body_are_dropped() {
    let raw = fixture!("dblreq");
    let framed = match frame_datagram(Bytes::from_static(raw), &Limits::default()) {
        Ok(Framed::Message(b)) => b,
        other => panic!("{other:?}"),
    };
    assert!(framed.len() < raw.len());
    assert!(framed.ends_with(b"Content-Length: 0\r\n\r\n"));
    let m = Message::parse(framed).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.call_id(), b"dblreq.0ha0isndaksdj99sdfafnl3lk233412");
    assert_eq!(m.body(), b"");
}

#[test]
fn semiuri_semicolon_in_user_part() {
    let m = ok(fixture!("semiuri"));
    let ruri = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(ruri.user, b"user;par=u%40example.net");
    assert_eq!(ruri.host, b"example.com");
    assert_eq!(
        m.header("Accept"),
        Some(
            &b"application/sdp, application/pkcs7-mime,\r\n        multipart/mixed, multipart/signed,\r\n        message/sip, message/sipfrag"[..]
        )
    );
}

#[test]
fn transports_all_known_and_unknown() {
    let m = ok(fixture!("transports"));
    let t: Vec<_> = m.vias().map(|v| v.transport).collect();
    assert_eq!(t, vec![&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);
    assert_eq!(m.call_id(), b"transports.kijh4akdnaqjkwendsasfdj");
}

#[test]
fn unreason_utf8_reason_phrase() {
    let m = ok(fixture!("unreason"));
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.reason_phrase(),
        "= 2**3 * 5**2 но сто девяносто девять - простое".as_bytes()
    );
    assert_eq!(m.to_tag(), Some(&b"2229"[..]));
    assert_eq!(m.body().len(), 154);
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = ok(fixture!("noreason"));
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason_phrase(), b"");
    assert_eq!(m.cseq(), (35, Method::Invite));
}

// ---- 3.1.2 invalid messages -----------------------------------------------------------

#[test]
fn invalid_messages_get_the_right_error() {
    let cases: &[(&str, &[u8], ParseError)] = &[
        ("badinv01", fixture!("badinv01"), ParseError::BadVia),
        (
            "clerr",
            fixture!("clerr"),
            ParseError::ContentLengthMismatch,
        ),
        ("ncl", fixture!("ncl"), ParseError::BadContentLength),
        ("scalar02", fixture!("scalar02"), ParseError::BadCSeq),
        ("scalarlg", fixture!("scalarlg"), ParseError::BadCSeq),
        ("quotbal", fixture!("quotbal"), ParseError::MissingTo),
        ("ltgtruri", fixture!("ltgtruri"), ParseError::BadStartLine),
        ("lwsruri", fixture!("lwsruri"), ParseError::BadStartLine),
        ("lwsstart", fixture!("lwsstart"), ParseError::BadStartLine),
        ("trws", fixture!("trws"), ParseError::BadStartLine),
        ("escruri", fixture!("escruri"), ParseError::BadStartLine),
        ("badaspec", fixture!("badaspec"), ParseError::MissingTo),
        ("baddn", fixture!("baddn"), ParseError::MissingFrom),
        ("badvers", fixture!("badvers"), ParseError::BadVersion),
        (
            "mismatch01",
            fixture!("mismatch01"),
            ParseError::CSeqMethodMismatch,
        ),
        (
            "mismatch02",
            fixture!("mismatch02"),
            ParseError::CSeqMethodMismatch,
        ),
        ("bigcode", fixture!("bigcode"), ParseError::BadStartLine),
        // 3.3: semantically invalid.
        ("insuf", fixture!("insuf"), ParseError::MissingFrom),
        ("mcl01", fixture!("mcl01"), ParseError::BadContentLength),
        ("multi01", fixture!("multi01"), ParseError::MissingFrom),
    ];
    for (name, raw, want) in cases {
        let got = udp(raw).err();
        assert_eq!(got.as_ref(), Some(want), "{name}");
    }
}

#[test]
fn invalid_messages_parsed_directly_too() {
    // Without datagram framing (e.g. after TCP framing) the same checks apply.
    let m = Message::parse(Bytes::from_static(fixture!("clerr")));
    assert_eq!(m.err(), Some(ParseError::ContentLengthMismatch));
    let m = Message::parse(Bytes::from_static(fixture!("ncl")));
    assert_eq!(m.err(), Some(ParseError::BadContentLength));
    assert_eq!(ParseError::BadVersion.status(), 505);
}

// ---- accepted on purpose (liberal where RFC 4475 allows it, or headers we do not read) ---

#[test]
fn accepted_liberally() {
    // baddate: Date is not read by a proxy.
    let m = ok(fixture!("baddate"));
    assert_eq!(
        m.header("Date"),
        Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
    );
    // regbadct: Contact contents are not interpreted (no registrar here).
    let m = ok(fixture!("regbadct"));
    assert_eq!(m.contacts().count(), 1);
    // badbranch: "z9hG4bK" alone parses; transaction matching decides what to do with it.
    let m = ok(fixture!("badbranch"));
    assert_eq!(m.top_via().branch, Some(&b"z9hG4bK"[..]));
}

// ---- 3.3 semantically unusual but well-formed ---------------------------------------------

#[test]
fn semantic_cases_parse() {
    let m = ok(fixture!("inv2543"));
    assert_eq!(m.top_via().branch, None);
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.content_length(), None);
    assert_eq!(m.body().len(), 105);
    assert_eq!(m.record_routes().count(), 1);

    let m = ok(fixture!("zeromf"));
    assert_eq!(m.max_forwards(), Some(0));

    let m = ok(fixture!("unkscm"));
    assert_eq!(
        m.request_uri(),
        b"nobodyKnowsThisScheme:totallyopaquecontent"
    );
    assert!(Uri::parse(m.request_uri()).is_none());

    let m = ok(fixture!("novelsc"));
    assert_eq!(m.request_uri(), b"soap.beep://192.0.2.103:3002");

    let m = ok(fixture!("unksm2"));
    assert!(Uri::parse_name_addr(m.to_value()).is_none());
    assert_eq!(m.from_tag(), Some(&b"3234233"[..]));

    let m = ok(fixture!("regescrt"));
    let c = m.contacts().next().unwrap();
    assert_eq!(Uri::parse_name_addr(c).unwrap().host, &b"example.com"[..]);

    let m = ok(fixture!("invut"));
    assert_eq!(
        m.body(),
        b"<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n"
    );
}
