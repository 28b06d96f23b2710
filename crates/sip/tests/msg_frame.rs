//! Stream framing fed byte by byte and in arbitrary splits, and never-panic properties of
//! framing, parsing and rewriting on arbitrary bytes.

#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, Framed, Limits, StreamFramer};
use hotline_sip::msg::{Message, ParseError};
use hotline_sip::rewrite::{
    ack_for, cancel_for, forward_request, forward_response, response, ForwardRequest,
};
use hotline_sip::uri::{NameAddr, Uri};
use proptest::prelude::*;

const M1: &[u8] = b"INVITE sip:4008001234@hotline.example SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKs1\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=f1\r\n\
To: <sip:4008001234@hotline.example>\r\n\
Call-ID: s1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n";

const M2: &[u8] = b"SIP/2.0 200 OK\r\n\
v: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKs1\r\n\
f: <sip:alice@example.com>;tag=f1\r\n\
t: <sip:4008001234@hotline.example>;tag=t1\r\n\
i: s1\r\n\
CSeq: 1 INVITE\r\n\
l: 0\r\n\
\r\n";

/// The stream: keep-alives, M1, a keep-alive, M2, M1.
fn stream() -> Vec<u8> {
    let mut s = b"\r\n\r\n".to_vec();
    s.extend_from_slice(M1);
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(M2);
    s.extend_from_slice(M1);
    s
}

fn drain(f: &mut StreamFramer, out: &mut Vec<Bytes>) {
    while let Some(m) = f.next_message().unwrap() {
        out.push(m);
    }
}

fn expected() -> Vec<Bytes> {
    vec![
        Bytes::from_static(M1),
        Bytes::from_static(M2),
        Bytes::from_static(M1),
    ]
}

#[test]
fn stream_one_byte_at_a_time() {
    let mut f = StreamFramer::new(Limits::default());
    let mut got = Vec::new();
    for b in stream() {
        f.buffer().extend_from_slice(&[b]);
        drain(&mut f, &mut got);
    }
    assert_eq!(got, expected());
    for m in got {
        assert!(Message::parse(m).is_ok());
    }
}

#[test]
fn stream_all_at_once() {
    let mut f = StreamFramer::default();
    f.push(&stream());
    let mut got = Vec::new();
    drain(&mut f, &mut got);
    assert_eq!(got, expected());
    assert_eq!(f.buffered(), 0);
}

#[test]
fn stream_error_on_missing_content_length_is_sticky_for_the_caller() {
    let mut f = StreamFramer::default();
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n");
    assert_eq!(f.next_message(), Err(ParseError::BadContentLength));
    let mut f = StreamFramer::default();
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n");
    assert_eq!(f.next_message(), Err(ParseError::BadContentLength));
}

#[test]
fn stream_header_block_over_the_cap_without_blank_line() {
    let mut f = StreamFramer::new(Limits { max_message: 1024 });
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
    for _ in 0..100 {
        f.push(b"X-Pad: 0123456789\r\n");
    }
    assert_eq!(f.next_message(), Err(ParseError::TooLarge));
}

#[test]
fn datagram_matches_stream_framing() {
    for m in [M1, M2] {
        match frame_datagram(Bytes::from_static(m), &Limits::default()) {
            Ok(Framed::Message(b)) => assert_eq!(&b[..], m),
            other => panic!("{other:?}"),
        }
    }
}

fn fuzz_rewrites(m: &Message) {
    let fwd = ForwardRequest {
        request_uri: Some(b"sip:x@10.0.0.1"),
        via: b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKf",
        record_route: Some(b"<sip:10.0.0.1;lr>"),
        pop_route: true,
        pop_second_route: false,
        source: Some("198.51.100.1:5060".parse().unwrap()),
        add_headers: &[("X-A", b"1")],
        remove_headers: &["X-B", "v"],
    };
    let _ = forward_request(m, &fwd);
    let _ = forward_response(m);
    let _ = response(m, 400, "Bad Request", Some(b"t"), fwd.source, &[]);
    let _ = cancel_for(m);
    let _ = ack_for(m, m);
    let _ = m.header("X-B");
    let _ = m.vias().count();
    let _ = Uri::parse_name_addr(m.to_value());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn stream_arbitrary_splits(cuts in proptest::collection::vec(0usize..1000, 0..12)) {
        let s = stream();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
        cuts.push(0);
        cuts.push(s.len());
        cuts.sort_unstable();
        let mut f = StreamFramer::new(Limits::default());
        let mut got = Vec::new();
        for w in cuts.windows(2) {
            f.push(&s[w[0]..w[1]]);
            drain(&mut f, &mut got);
        }
        prop_assert_eq!(got, expected());
    }

    #[test]
    fn parse_and_frame_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let b = Bytes::from(data.clone());
        let _ = frame_datagram(b.clone(), &Limits::default());
        if let Ok(m) = Message::parse(b) {
            fuzz_rewrites(&m);
        }
        let mut f = StreamFramer::new(Limits { max_message: 512 });
        f.push(&data);
        for _ in 0..4 {
            if !matches!(f.next_message(), Ok(Some(_))) {
                break;
            }
        }
        let _ = Uri::parse(&data);
        let _ = NameAddr::parse(&data);
    }

    /// Mutations of a valid message exercise the deeper parser paths.
    #[test]
    fn mutated_messages_never_panic(
        edits in proptest::collection::vec((0usize..400, any::<u8>()), 1..8),
        cut in 0usize..400,
    ) {
        let mut data = M1.to_vec();
        for (pos, byte) in edits {
            let pos = pos % data.len();
            data[pos] = byte;
        }
        data.truncate(cut.max(1).min(data.len()));
        let b = Bytes::from(data);
        let _ = frame_datagram(b.clone(), &Limits::default());
        if let Ok(m) = Message::parse(b) {
            fuzz_rewrites(&m);
        }
    }

    /// Mutations that keep the message valid still rewrite into parsable messages.
    #[test]
    fn forwarded_messages_parse_again(tag in "[a-z0-9]{1,12}", mf in 1u32..=255, branch in "[A-Za-z0-9]{1,20}") {
        let text = String::from_utf8_lossy(M1)
            .replace("tag=f1", &format!("tag={tag}"))
            .replace("Max-Forwards: 70", &format!("Max-Forwards: {mf}"))
            .replace("z9hG4bKs1", &format!("z9hG4bK{branch}"));
        let m = Message::parse(Bytes::from(text)).unwrap();
        let out = forward_request(&m, &ForwardRequest {
            via: b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKf",
            source: Some("198.51.100.1:5060".parse().unwrap()),
            ..ForwardRequest::default()
        });
        let f = Message::parse(Bytes::from(out)).unwrap();
        prop_assert_eq!(f.max_forwards(), Some(mf - 1));
        prop_assert_eq!(f.from_tag(), Some(tag.as_bytes()));
        prop_assert_eq!(f.via_count(), 2);
        let second = f.vias().nth(1).unwrap();
        prop_assert_eq!(second.received, Some(&b"198.51.100.1"[..]));
    }
}
