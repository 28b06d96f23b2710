//! IPv6 in SIP: the situations RFC 5118 ("SIP Torture Test Messages for IPv6") covers, with
//! messages written for this project (not the RFC's bytes): IPv6 references in URIs and Via,
//! port ambiguity, `received` with and without brackets, IPv4-mapped addresses, and an
//! unbracketed address in a Request-URI (invalid).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use hotline_sip::rewrite::{forward_request, ForwardRequest};
use hotline_sip::uri::Uri;
use hotline_sip::Message;

fn msg(ruri: &str, via: &str) -> String {
    format!(
        "OPTIONS {ruri} SIP/2.0\r\n\
Via: {via}\r\n\
Max-Forwards: 70\r\n\
From: <sip:a@[2001:db8::9:1]>;tag=v6a\r\n\
To: <sip:b@[2001:db8::10]>\r\n\
Call-ID: v6-{}@[2001:db8::9:1]\r\n\
CSeq: 1 OPTIONS\r\n\
Contact: <sip:a@[2001:db8::9:1]:5060>\r\n\
Content-Length: 0\r\n\r\n",
        ruri.len()
    )
}

fn parse(s: &str) -> Result<Message, hotline_sip::ParseError> {
    Message::parse(Bytes::from(s.to_string()))
}

#[test]
fn valid_ipv6_reference_in_request_uri_and_via() {
    let m = parse(&msg(
        "sip:[2001:db8::10]",
        "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKv6a;received=[2001:db8::9:255]",
    ))
    .unwrap();
    let u = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(u.host, b"[2001:db8::10]");
    assert_eq!(u.port, None);
    let v = m.top_via();
    assert_eq!(v.host, b"[2001:db8::9:1]");
    assert_eq!(v.port, None);
    assert_eq!(v.branch, Some(&b"z9hG4bKv6a"[..]));
    assert_eq!(v.received, Some(&b"[2001:db8::9:255]"[..]));
}

#[test]
fn port_ambiguity_is_resolved_by_the_brackets() {
    // The last group belongs to the address: no port.
    let u = Uri::parse(b"sip:[2001:db8::10:5070]").unwrap();
    assert_eq!(u.host, b"[2001:db8::10:5070]");
    assert_eq!(u.port, None);
    // Outside the brackets it is the port.
    let u = Uri::parse(b"sip:user@[2001:db8::10]:5070;transport=udp").unwrap();
    assert_eq!(u.host, b"[2001:db8::10]");
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.param("transport"), Some(&b"udp"[..]));
}

#[test]
fn received_without_brackets_is_accepted_too() {
    // RFC 3261's ABNF writes an IPv6 `received` without brackets; both forms are taken.
    let m = parse(&msg(
        "sip:[2001:db8::10]",
        "SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKv6b;received=2001:db8::9:255",
    ))
    .unwrap();
    let v = m.top_via();
    assert_eq!(v.port, Some(5060));
    assert_eq!(v.received, Some(&b"2001:db8::9:255"[..]));
}

#[test]
fn ipv4_mapped_ipv6_addresses() {
    let m = parse(&msg(
        "sip:[::ffff:192.0.2.10]",
        "SIP/2.0/UDP [::ffff:192.0.2.128];branch=z9hG4bKv6c",
    ))
    .unwrap();
    let u = Uri::parse(m.request_uri()).unwrap();
    assert_eq!(u.host, b"[::ffff:192.0.2.10]");
    assert_eq!(m.top_via().host, b"[::ffff:192.0.2.128]");
}

#[test]
fn several_ipv6_vias_on_one_line_and_a_forward_round_trip() {
    let m = parse(&msg(
        "sip:b@[2001:db8::10]:5070",
        "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKv6d, SIP/2.0/TCP [2001:db8::9:2]:5061;branch=z9hG4bKv6e",
    ))
    .unwrap();
    let vias: Vec<_> = m.vias().collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host, b"[2001:db8::9:2]");
    assert_eq!(vias[1].port, Some(5061));
    let fwd = |source: &str| {
        let out = forward_request(
            &m,
            &ForwardRequest {
                via: b"SIP/2.0/UDP [::1]:5060;branch=z9hG4bK-hlv6;rport",
                source: Some(source.parse().unwrap()),
                ..Default::default()
            },
        );
        Message::parse(Bytes::from(out)).unwrap()
    };
    // Same address as the Via (only the port differs, no rport): no `received` (§18.2.1).
    let f = fwd("[2001:db8::9:1]:5062");
    let vias: Vec<_> = f.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, b"[::1]");
    assert_eq!(vias[1].received, None);
    // Another address (NAT): `received` carries it, and the result parses again.
    let f = fwd("[2001:db8::77]:5062");
    let top = f.vias().nth(1).unwrap();
    let got = String::from_utf8_lossy(top.received.unwrap()).to_string();
    assert!(got.trim_matches(['[', ']']) == "2001:db8::77", "{got}");
}

#[test]
fn unbracketed_ipv6_request_uri_is_not_a_usable_uri() {
    // `sip:2001:db8::10` is invalid (RFC 5118 4.2): it must not be read as host "2001" with
    // a port.
    assert!(
        Uri::parse(b"sip:2001:db8::10").is_none_or(|u| u.host != b"2001" || u.port.is_none()),
        "mis-read as host 2001 with a port"
    );
    let r = parse(&msg(
        "sip:2001:db8::10",
        "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKv6f",
    ));
    match r {
        Err(_) => {}
        Ok(m) => {
            // If the message layer lets it through, the URI layer must refuse it.
            assert!(Uri::parse(m.request_uri()).is_none(), "accepted as a URI");
        }
    }
}
