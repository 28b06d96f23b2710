//! RFC 4475 torture messages (fixtures in `tests/torture/`, CRLF line ends, bytes as in the
//! RFC). Each arrives as one UDP datagram: framed with `frame_datagram`, then parsed.
//! docs/sip-parsing.md lists which ones are covered and how each is handled.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, parse_datagram, Datagram, Framed, Limits};
use hotline_sip::msg::{Message, Method, ParseError};
use hotline_sip::uri::{NameAddr, Uri};

fn udp(raw: &'static [u8]) -> Result<Message, ParseError> {
    match frame_datagram(Bytes::from_static(raw), &Limits::default())? {
        Framed::Message(m) => Message::parse(m),
        Framed::KeepAlive => panic!("fixture framed as keep-alive"),
    }
}

fn ok(raw: &'static [u8]) -> Message {
    udp(raw).expect("valid torture message rejected")
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

// ---- parse_datagram == frame_datagram + Message::parse --------------------------------

/// Everything the accessors of a message show.
fn summary(m: &Message) -> String {
    format!(
        "{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
        m.bytes(),
        m.is_request(),
        m.method(),
        m.method_bytes(),
        m.status(),
        m.reason_phrase(),
        m.request_uri(),
        m.call_id(),
        m.cseq(),
        m.cseq_method_bytes(),
        m.cseq_value(),
        m.from_value(),
        m.to_value(),
        m.from_tag(),
        m.to_tag(),
        m.max_forwards(),
        m.content_length(),
        m.top_via(),
        m.vias().collect::<Vec<_>>(),
        m.via_count(),
        m.routes().collect::<Vec<_>>(),
        m.record_routes().collect::<Vec<_>>(),
        m.contacts().collect::<Vec<_>>(),
        m.all_headers().collect::<Vec<_>>(),
        m.body(),
    )
}

/// Framing then parsing, as the server did before `parse_datagram`, in the same shape.
fn two_steps(d: &[u8], lim: &Limits) -> String {
    match frame_datagram(Bytes::copy_from_slice(d), lim) {
        Ok(Framed::KeepAlive) => "keep-alive".into(),
        Err(e) => format!("unframed {e:?}"),
        Ok(Framed::Message(b)) => match Message::parse(b.clone()) {
            Ok(m) => format!("message {}", summary(&m)),
            Err(e) => format!("unparsed {b:?} {e:?}"),
        },
    }
}

fn one_pass(d: &[u8], lim: &Limits) -> String {
    match parse_datagram(Bytes::copy_from_slice(d), lim) {
        Datagram::KeepAlive => "keep-alive".into(),
        Datagram::Unframed(e) => format!("unframed {e:?}"),
        Datagram::Unparsed(b, e) => format!("unparsed {b:?} {e:?}"),
        Datagram::Message(m) => format!("message {}", summary(&m)),
    }
}

fn assert_same(d: &[u8], lim: &Limits) {
    assert_eq!(
        two_steps(d, lim),
        one_pass(d, lim),
        "{:?}",
        String::from_utf8_lossy(d)
    );
}

fn torture_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torture");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn parse_datagram_matches_two_steps_on_torture_messages() {
    let lim = Limits::default();
    let fixtures = torture_fixtures();
    assert!(fixtures.len() >= 40, "{}", fixtures.len());
    for (name, raw) in &fixtures {
        assert_same(raw, &lim);
        // Keep-alive CRLFs before it, garbage after it, cut short, and a small size cap.
        let mut v = b"\r\n\r\n".to_vec();
        v.extend_from_slice(raw);
        assert_same(&v, &lim);
        v.extend_from_slice(b"garbage\r\n\r\n");
        assert_same(&v, &lim);
        for cut in [1, 2, 3, 10, raw.len() / 2] {
            assert_same(&raw[..raw.len().saturating_sub(cut)], &lim);
        }
        assert_same(raw, &Limits { max_message: 200 });
        assert_same(
            raw,
            &Limits {
                max_message: raw.len(),
            },
        );
        let _ = name;
    }
}

#[test]
fn parse_datagram_matches_two_steps_on_mutated_torture_messages() {
    // Deterministic mutations: a byte replaced by one that matters to the grammar, removed,
    // or doubled, at pseudo-random places.
    let lim = Limits::default();
    let specials = b"\r\n \t:;,<>\"=@\\0-aZ9\x00\x7f\xff";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (_, raw) in torture_fixtures() {
        for _ in 0..300 {
            let mut v = raw.clone();
            for _ in 0..1 + next() % 3 {
                if v.is_empty() {
                    break;
                }
                let i = (next() % v.len() as u64) as usize;
                match next() % 3 {
                    0 => v[i] = specials[(next() % specials.len() as u64) as usize],
                    1 => {
                        v.remove(i);
                    }
                    _ => v.insert(i, v[i]),
                }
            }
            assert_same(&v, &lim);
        }
    }
}

#[test]
fn parse_datagram_matches_two_steps_on_hand_made_cases() {
    let lim = Limits::default();
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n";
    let cases: Vec<String> = vec![
        format!("{base}Content-Length: 3\r\n\r\nabc"),
        // Trailing garbage after Content-Length: cut off.
        format!("{base}Content-Length: 3\r\n\r\nabcGARBAGE"),
        format!("{base}l: 0\r\n\r\nINVITE sip:x SIP/2.0\r\n\r\n"),
        // Short body.
        format!("{base}Content-Length: 9\r\n\r\nabc"),
        // No Content-Length: the rest of the datagram.
        format!("{base}\r\nabc\r\n"),
        format!("{base}\r\n"),
        // Keep-alives before the message, and alone.
        format!("\r\n\r\n{base}l: 0\r\n\r\n"),
        "\r\n".into(),
        "\r\n\r\n".into(),
        String::new(),
        "\n".into(),
        // Bad, repeated, differing Content-Length.
        format!("{base}Content-Length: x\r\n\r\n"),
        format!("{base}Content-Length: -1\r\n\r\n"),
        format!("{base}Content-Length: 4294967296\r\n\r\n"),
        format!("{base}Content-Length: 1\r\nl: 1\r\n\r\nx"),
        format!("{base}Content-Length: 1\r\nl: 2\r\n\r\nxy"),
        format!("{base}Content-Length: 99999999999\r\n\r\n"),
        // Framing errors win over parse errors.
        format!("FOO\r\n{base}Content-Length: x\r\n\r\n"),
        format!("OPTIONS sip:a@b SIP/3.0\r\nl: 5\r\n\r\nabc"),
        format!("OPTIONS sip:a@b SIP/3.0\r\nl: 1\r\n\r\nabc"),
        format!("{base}Via: ,\r\nContent-Length: 9\r\n\r\nabc"),
        format!("{base}Via: ,\r\nContent-Length: 1\r\n\r\nabc"),
        format!("{base}Via: ,\r\n bad line\r\nContent-Length: 1\r\n\r\nabc"),
        format!("{base}Via: ,\r\nbad line\r\nContent-Length: 1\r\n\r\nabc"),
        // No blank line, no LF at all, a bad header line.
        format!("{base}l: 0\r\n"),
        "OPTIONS sip:a@b SIP/2.0".into(),
        format!("{base} folded-first\r\n\r\n"),
        format!("{base}No colon here\r\n\r\n"),
        // Bare LF line ends, a blank line with only LF.
        format!("{base}\n\nbody").replace("\r\n", "\n"),
        // Missing headers (parse errors on framed bytes).
        "OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcdef".into(),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nl: 0\r\n\r\nxx".into(),
    ];
    for c in &cases {
        assert_same(c.as_bytes(), &lim);
    }
    // Over the size cap, and exactly at it (leading CRLFs count).
    let msg = format!("\r\n{base}l: 0\r\n\r\n");
    for max in [0, 10, msg.len() - 1, msg.len(), msg.len() + 1] {
        assert_same(msg.as_bytes(), &Limits { max_message: max });
    }
    // Too many Vias: an index error, after framing.
    let vias = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n".repeat(80);
    assert_same(format!("{base}{vias}l: 0\r\n\r\n").as_bytes(), &lim);
    assert_same(format!("{base}{vias}l: 1\r\n\r\n").as_bytes(), &lim);
    // Extra bytes are cut off the message the parser keeps.
    let d = format!("{base}Content-Length: 3\r\n\r\nabcGARBAGE");
    match parse_datagram(Bytes::from(d), &lim) {
        Datagram::Message(m) => {
            assert!(m.bytes().ends_with(b"\r\n\r\nabc"));
            assert_eq!(m.body(), b"abc");
        }
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn parse_datagram_matches_two_steps_on_any_bytes(
        d in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
    ) {
        assert_same(&d, &Limits::default());
    }
}

/// The Request-URI and top Via a message keeps from its parse are what parsing them again
/// gives, for every torture message that parses (and through `parse_datagram`'s one-pass
/// path too).
#[test]
fn kept_request_uri_and_vias_are_what_a_parse_gives() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/torture");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let direct = frame_datagram(Bytes::from(raw.clone()), &Limits::default())
            .ok()
            .and_then(|f| match f {
                Framed::Message(m) => Message::parse(m).ok(),
                Framed::KeepAlive => None,
            });
        let one_pass = match parse_datagram(Bytes::from(raw), &Limits::default()) {
            Datagram::Message(m) => Some(m),
            _ => None,
        };
        for m in [direct, one_pass].into_iter().flatten() {
            let want = if m.is_request() {
                Uri::parse(m.request_uri())
            } else {
                None
            };
            assert_eq!(m.request_uri_parsed(), want);
            // Vias: the top one as the parse kept it, the others parsed on demand.
            let each: Vec<_> = (0..m.via_count()).filter_map(|i| m.via(i)).collect();
            assert_eq!(m.vias().collect::<Vec<_>>(), each);
            assert_eq!(m.via(0), Some(m.top_via()));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixtures parsed");
}
