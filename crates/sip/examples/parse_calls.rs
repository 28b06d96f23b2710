//! Driver for instruction counts of UDP receive parsing: the six datagrams of a basic call
//! (INVITE, 180, 200, ACK, BYE, 200 as SIPp's uac/uas scenarios send them through a proxy),
//! each copied from a receive buffer, framed and parsed `N` times.
//!
//! ```text
//! cargo build --release -p hotline-sip --example parse_calls
//! valgrind --tool=callgrind target/release/examples/parse_calls old 2000
//! ```
//! Modes: `old` = `frame_datagram` + `Message::parse` (the server before `parse_datagram`),
//! `new` = `frame::parse_datagram`. Run with two `N` and divide the difference by 6 × ΔN.

#![allow(clippy::print_stdout)]

use std::hint::black_box;

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, parse_datagram, Datagram, Framed, Limits};
use hotline_sip::msg::Message;

const INVITE: &str = "INVITE sip:4008001234@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   129\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const RINGING: &str = "SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl1a2b3c4d5e6f-1;rport=5060\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0;received=127.0.0.1;rport=5061\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=67890SIPpTag011\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n\
Content-Length: 0\r\n\
\r\n";

const OK_INVITE: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl1a2b3c4d5e6f-1;rport=5060\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0;received=127.0.0.1;rport=5061\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=67890SIPpTag011\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   129\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

const ACK: &str = "ACK sip:127.0.0.1:5070;transport=UDP SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-5\r\n\
Route: <sip:127.0.0.1:5060;lr>\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=67890SIPpTag011\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 1 ACK\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Length: 0\r\n\
\r\n";

const BYE: &str = "BYE sip:127.0.0.1:5070;transport=UDP SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-7\r\n\
Route: <sip:127.0.0.1:5060;lr>\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=67890SIPpTag011\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Length: 0\r\n\
\r\n";

const OK_BYE: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl1a2b3c4d5e6f-7;rport=5060\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-7;received=127.0.0.1;rport=5061\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=67890SIPpTag011\r\n\
Call-ID: 1-12345@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n\
Content-Length: 0\r\n\
\r\n";

/// What the server did before `parse_datagram`: frame, then parse a clone of the framed bytes.
fn old(data: &[u8], limits: &Limits) -> Option<Message> {
    match frame_datagram(Bytes::copy_from_slice(data), limits) {
        Ok(Framed::Message(b)) => Message::parse(b.clone()).ok(),
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("old", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let limits = Limits::default();
    let call = [INVITE, RINGING, OK_INVITE, ACK, BYE, OK_BYE];
    for m in call {
        assert!(old(m.as_bytes(), &limits).is_some(), "fixture parses: {m}");
        assert!(
            run_new(m.as_bytes(), &limits).is_some(),
            "fixture parses: {m}"
        );
    }
    let mut ok = 0usize;
    for _ in 0..n {
        for m in call {
            let data = black_box(m.as_bytes());
            let parsed = match mode {
                "old" => old(data, &limits),
                _ => run_new(data, &limits),
            };
            ok += usize::from(black_box(parsed).is_some());
        }
    }
    println!("{mode}: {ok} messages parsed");
}

/// The server's path since `parse_datagram`.
fn run_new(data: &[u8], limits: &Limits) -> Option<Message> {
    match parse_datagram(Bytes::copy_from_slice(data), limits) {
        Datagram::Message(m) => Some(m),
        _ => None,
    }
}
