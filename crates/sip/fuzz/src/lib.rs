//! Fuzz harnesses for `hotline-sip`, shared by the cargo-fuzz targets (`fuzz_targets/*.rs`,
//! run by libFuzzer) and by the stable-toolchain replay test (`tests/replay.rs`, run by
//! `cargo test`): each harness takes arbitrary bytes and panics only when a property breaks.
//!
//! Owns: the properties checked on hostile input and the seed inputs. Must not: depend on
//! anything but `hotline-sip` and `bytes` (it runs outside the workspace), touch the network,
//! or read the clock except once per input as the proxy's time origin.
//!
//! Properties:
//! - [`frame_parse`]: `frame_datagram` + `Message::parse` + every accessor never panic; a
//!   parsed message's spans stay inside its buffer; the datagram framer and the stream framer
//!   agree on a message with Content-Length.
//! - [`stream_split`]: `StreamFramer` fed the same bytes in random splits yields exactly what
//!   it yields fed in one piece (same messages, same error or none).
//! - [`rewrite`]: for a parsed message, `forward_request` / `forward_response` / `response` /
//!   `cancel_for` / `ack_for` never panic and their output re-parses, with the Via count and
//!   Max-Forwards changed as RFC 3261 §16.6 says.
//! - [`proxy`]: a `Proxy` driven by an op stream (messages from a caller and two targets,
//!   timer jumps, route/reject decisions, answers built from what the proxy sent, overload,
//!   hang-ups) never panics, everything it transmits parses, and once every timer has run
//!   out it holds no call and no transaction (no state leak, whatever the peers do).
//!   `FUZZ_TRANSCRIPT_FULL=1` makes [`proxy_transcript`] record whole messages (debugging).
//!
//! # Layout
//! - [`frame_parse`], [`stream_split`], [`rewrite`], [`proxy`]: the harnesses.
//! - [`seeds`]: seed inputs (RFC 4475 torture messages, canned calls, proxy op scripts).
//! - [`Rng`]: a tiny deterministic PRNG for the replay test's mutations.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::frame::{frame_datagram, parse_datagram, Datagram, Framed, Limits, StreamFramer};
use hotline_sip::msg::{Message, Method, ParseError};
use hotline_sip::proxy::{
    BranchTarget, CallHandle, Event, ForkGroup, ForkPlan, HashKey, Peer, Proxy, ProxyConfig,
    Transport,
};
use hotline_sip::rewrite::{
    ack_for, cancel_for, forward_request, forward_response, response, ForwardRequest,
};
use hotline_sip::uri::{NameAddr, Uri};

pub mod seeds;

/// Touch every accessor of a parsed message (they must not panic on anything parse accepted).
fn exercise(m: &Message) {
    let len = m.bytes().len();
    let mut total = m.method_bytes().len()
        + m.request_uri().len()
        + m.reason_phrase().len()
        + m.call_id().len()
        + m.cseq_method_bytes().len()
        + m.cseq_value().len()
        + m.from_value().len()
        + m.to_value().len()
        + m.from_tag().map_or(0, <[u8]>::len)
        + m.to_tag().map_or(0, <[u8]>::len)
        + m.body().len();
    let _ = (m.method(), m.status(), m.cseq(), m.max_forwards());
    let _ = m.content_length();
    for v in m.vias() {
        total += v.raw.len() + v.host.len() + v.branch.map_or(0, <[u8]>::len);
    }
    let _ = m.via_count();
    for r in m.routes().chain(m.record_routes()).chain(m.contacts()) {
        total += r.len();
        let _ = Uri::parse_name_addr(r);
        let _ = NameAddr::parse(r);
    }
    for (n, v) in m.all_headers() {
        total += n.len() + v.len();
    }
    let _ = m.header("User-Agent");
    let _ = m.headers("Via").count();
    let _ = Uri::parse(m.request_uri());
    let _ = Uri::parse_name_addr(m.from_value());
    let _ = Proxy::resolve_uri(m.request_uri());
    // Every accessor is a slice of the buffer; their sum is bounded by a small multiple of it
    // (a value can be seen through several accessors, never invented).
    assert!(
        total <= len.saturating_mul(8) + 64,
        "accessors returned {total} bytes from a {len}-byte message"
    );
    let _ = format!("{m:?}");
}

/// `frame_datagram` then `Message::parse` and every accessor. A datagram with a valid
/// Content-Length frames the same way on a stream.
pub fn frame_parse(data: &[u8]) {
    let lim = Limits {
        max_message: 16 * 1024,
    };
    same_as_parse_datagram(data, &lim);
    let framed = frame_datagram(Bytes::copy_from_slice(data), &lim);
    let msg = match framed {
        Ok(Framed::Message(m)) => m,
        Ok(Framed::KeepAlive) => {
            assert!(data.iter().all(|&b| b == b'\r' || b == b'\n'));
            return;
        }
        Err(e) => {
            // Every error has a reply code and a reason phrase.
            assert!(matches!(e.status(), 400 | 505 | 513));
            assert!(!e.reason().is_empty());
            return;
        }
    };
    assert!(msg.len() <= data.len());
    if let Ok(m) = Message::parse(msg.clone()) {
        exercise(&m);
        if m.content_length().is_some() {
            // Same bytes on a stream: one message, identical.
            let mut f = StreamFramer::new(lim);
            f.push(&msg);
            match f.next_message() {
                Ok(Some(s)) => assert_eq!(s, msg, "stream and datagram framing disagree"),
                other => panic!("datagram framed, stream did not: {other:?}"),
            }
        }
    } else {
        let _ = Message::parse(msg).map_err(|e| (e.status(), e.reason()));
    }
}

/// `parse_datagram` gives what `frame_datagram` then `Message::parse` give.
fn same_as_parse_datagram(data: &[u8], lim: &Limits) {
    let one = parse_datagram(Bytes::copy_from_slice(data), lim);
    let two = match frame_datagram(Bytes::copy_from_slice(data), lim) {
        Ok(Framed::KeepAlive) => Datagram::KeepAlive,
        Err(e) => Datagram::Unframed(e),
        Ok(Framed::Message(b)) => match Message::parse(b.clone()) {
            Ok(m) => Datagram::Message(m),
            Err(e) => Datagram::Unparsed(b, e),
        },
    };
    let view = |m: &Message| {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            m.bytes(),
            m.call_id(),
            m.cseq_value(),
            m.from_tag(),
            m.to_tag(),
            m.top_via(),
            m.via_count(),
            m.content_length(),
            m.body()
        )
    };
    match (&one, &two) {
        (Datagram::KeepAlive, Datagram::KeepAlive) => {}
        (Datagram::Unframed(a), Datagram::Unframed(b)) => assert_eq!(a, b),
        (Datagram::Unparsed(x, a), Datagram::Unparsed(y, b)) => {
            assert_eq!((x, a), (y, b));
        }
        (Datagram::Message(a), Datagram::Message(b)) => assert_eq!(view(a), view(b)),
        _ => panic!("parse_datagram {one:?}, frame_datagram + parse {two:?}"),
    }
}

/// What a framer yields for a byte sequence: the messages, then whether it broke.
fn frame_all(f: &mut StreamFramer, out: &mut Vec<Bytes>) -> bool {
    loop {
        match f.next_message() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// `StreamFramer` fed in random splits agrees with one push of everything. The first two
/// bytes choose the size cap and the split pattern; the rest is the stream.
pub fn stream_split(data: &[u8]) {
    let [cap, seed, stream @ ..] = data else {
        return;
    };
    let lim = Limits {
        max_message: 64 + usize::from(*cap) * 64,
    };
    let mut whole = StreamFramer::new(lim);
    whole.push(stream);
    let mut want = Vec::new();
    let whole_broke = frame_all(&mut whole, &mut want);

    let mut split = StreamFramer::new(lim);
    let mut got = Vec::new();
    let mut broke = false;
    let mut rng = Rng::new(u64::from(*seed) | 1);
    let mut rest = stream;
    while !rest.is_empty() && !broke {
        let n = (rng.below(48) + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        split.buffer().extend_from_slice(chunk);
        rest = tail;
        broke = frame_all(&mut split, &mut got);
    }
    if broke {
        // Broken earlier than the whole stream is fine only if the whole stream broke too.
        assert!(whole_broke, "split stream broke, whole stream did not");
        assert!(got.len() <= want.len());
        assert_eq!(
            got[..],
            want[..got.len()],
            "messages before the break differ"
        );
    } else {
        assert_eq!(
            got, want,
            "split and whole framing yield different messages"
        );
        assert_eq!(whole_broke, broke, "only the whole stream broke");
    }
    for m in got {
        if let Ok(m) = Message::parse(m) {
            exercise(&m);
        }
    }
}

fn reparse(out: Vec<u8>, what: &str) -> Message {
    let text = String::from_utf8_lossy(&out).into_owned();
    match Message::parse(Bytes::from(out)) {
        Ok(m) => m,
        Err(e) => panic!("{what} output does not parse ({e:?}):\n{text}"),
    }
}

const SOURCE: &str = "192.0.2.7:5099";

/// Parse, then build every kind of outgoing message from it; each must re-parse.
pub fn rewrite(data: &[u8]) {
    let Ok(Framed::Message(bytes)) =
        frame_datagram(Bytes::copy_from_slice(data), &Limits::default())
    else {
        return;
    };
    let Ok(m) = Message::parse(bytes) else {
        return;
    };
    let source: SocketAddr = SOURCE
        .parse()
        .unwrap_or(SocketAddr::from(([192, 0, 2, 7], 5099)));
    if !m.is_request() {
        if m.via_count() >= 2 {
            let r = reparse(forward_response(&m), "forward_response");
            assert_eq!(r.via_count(), m.via_count() - 1, "one Via removed");
            assert_eq!(r.status(), m.status());
            assert_eq!(r.body(), m.body());
        }
        return;
    }
    let via = b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-hl-fuzz-1;rport";
    let add: [(&str, &[u8]); 1] = [("Diversion", b"<tel:+864008001234>;reason=unconditional")];
    let fwd = ForwardRequest {
        request_uri: Some(b"sip:13800138000@10.0.0.9:5070"),
        via,
        record_route: Some(b"<sip:10.0.0.1:5060;lr>"),
        pop_route: m.routes().next().is_some(),
        pop_second_route: false,
        source: Some(source),
        add_headers: &add,
        remove_headers: &["P-Asserted-Identity", "P-Preferred-Identity"],
    };
    let f = reparse(forward_request(&m, &fwd), "forward_request");
    assert_eq!(f.via_count(), m.via_count() + 1, "one Via added");
    assert_eq!(f.top_via().raw, &via[..]);
    assert_eq!(f.request_uri(), b"sip:13800138000@10.0.0.9:5070");
    let mf = m.max_forwards().map_or(70, |n| n.saturating_sub(1));
    assert_eq!(f.max_forwards(), Some(mf), "Max-Forwards decremented");
    assert_eq!(f.body(), m.body());
    assert!(f.header("P-Asserted-Identity").is_none());
    assert_eq!(f.call_id(), m.call_id());

    for code in [100u16, 180, 400, 487, 503] {
        let r = reparse(
            response(
                &m,
                code,
                "Reason",
                Some(b"hl1"),
                Some(source),
                &[("Retry-After", b"5")],
            ),
            "response",
        );
        assert_eq!(r.status(), Some(code));
        assert_eq!(r.via_count(), m.via_count(), "every Via copied");
        assert_eq!(r.call_id(), m.call_id());
    }
    if m.method() == Some(Method::Invite) {
        let c = reparse(cancel_for(&f), "cancel_for");
        assert_eq!(c.method(), Some(Method::Cancel));
        assert_eq!(c.via_count(), 1);
        assert_eq!(
            c.top_via().raw,
            f.top_via().raw,
            "CANCEL matches the INVITE's branch"
        );
        let resp = reparse(
            response(&f, 486, "Busy Here", Some(b"t9"), None, &[]),
            "response to forwarded",
        );
        let fwd_resp = reparse(forward_response(&resp), "forward_response of 486");
        assert_eq!(fwd_resp.via_count(), m.via_count());
        let ack = ack_for(&f, &resp);
        let a = reparse(ack, "ack_for");
        assert_eq!(a.method(), Some(Method::Ack));
        assert_eq!(
            a.to_tag(),
            resp.to_tag(),
            "ACK carries the response's To tag"
        );
    }
}

/// Deterministic xorshift PRNG (no dependency; the replay test mutates seeds with it).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

// ----- the proxy op machine -------------------------------------------------------------------

/// Peers of the proxy harness: a caller and two targets on UDP, a caller on TCP.
const LOCAL: &str = "10.0.0.1:5060";
const PEERS: [(&str, Transport); 4] = [
    ("10.0.0.2:5060", Transport::Udp),
    ("10.0.0.3:5070", Transport::Udp),
    ("10.0.0.4:5071", Transport::Udp),
    ("10.0.0.2:40000", Transport::Tcp),
];

fn peer(i: usize) -> Peer {
    let (a, t) = PEERS[i % PEERS.len()];
    Peer {
        transport: t,
        addr: a.parse().unwrap_or(SocketAddr::from(([10, 0, 0, 2], 5060))),
        local: 0,
    }
}

/// Response codes a scripted target or caller may send.
const CODES: [u16; 16] = [
    100, 180, 183, 200, 202, 301, 302, 404, 408, 480, 486, 487, 500, 503, 600, 603,
];

/// Ops of the proxy harness (first byte of each op, mod 8); see [`proxy`].
pub mod op {
    /// `[MSG, peer, len_lo, len_hi, bytes...]`: a message from a peer.
    pub const MSG: u8 = 0;
    /// `[ADVANCE, ms_lo, ms_hi]`: time moves on (×8 ms), timers fire.
    pub const ADVANCE: u8 = 1;
    /// `[DECIDE, shape]`: answer pending `Incoming` events (route or reject by `shape`).
    pub const DECIDE: u8 = 2;
    /// `[RESPOND, who, code]`: peer `who` answers the last request the proxy sent it.
    pub const RESPOND: u8 = 3;
    /// `[OVERLOAD, on]`: admission control on/off.
    pub const OVERLOAD: u8 = 4;
    /// `[SYSTEM, what]`: hang up answered calls, limit them, or abort hunts.
    pub const SYSTEM: u8 = 5;
    /// `[FOLLOW, who, what]`: peer `who` sends ACK / BYE / CANCEL for what it last saw.
    pub const FOLLOW: u8 = 6;
    /// `[SEED, index, peer]`: a canned message (torture fixtures, a valid INVITE) from a peer.
    pub const SEED: u8 = 7;
}

struct Harness {
    p: Proxy,
    now: Instant,
    /// Last request the proxy sent to each peer, and the last response.
    last_req: [Option<Message>; 4],
    last_resp: [Option<Message>; 4],
    /// Last INVITE each peer sent (for its CANCEL).
    sent_invite: [Option<Message>; 4],
    pending: Vec<CallHandle>,
    /// `"<peer index> <start line>"` of everything sent, when recording.
    transcript: Option<Vec<String>>,
}

fn peer_index(p: &Peer) -> Option<usize> {
    (0..PEERS.len()).find(|&i| peer(i) == *p)
}

impl Harness {
    fn deliver(&mut self, i: usize, bytes: Bytes) {
        if let Ok(m) = Message::parse(bytes.clone()) {
            if m.method() == Some(Method::Invite) {
                self.sent_invite[i % 4] = Some(m);
            }
        }
        self.p.handle_message(self.now, peer(i), bytes);
        self.drain();
    }

    fn drain(&mut self) {
        for _ in 0..4 {
            let mut any = false;
            while let Some(ev) = self.p.poll_event() {
                any = true;
                match ev {
                    Event::Incoming { call, request, .. } => {
                        exercise(&request);
                        self.pending.push(call);
                    }
                    Event::Redirect { call, contacts } => {
                        // Follow only contacts at the second target (a vetted next hop).
                        let t: Vec<BranchTarget> = contacts
                            .iter()
                            .filter_map(|c| {
                                let dest = Proxy::resolve_uri(c)?;
                                (dest == peer(2)).then(|| BranchTarget {
                                    uri: c.clone(),
                                    dest,
                                    ring_timeout: Duration::from_secs(5),
                                    tag: 2,
                                })
                            })
                            .collect();
                        self.p.add_targets(call, t);
                    }
                    _ => {}
                }
            }
            self.p.pending_hunts(self.now, &mut |_, tag| tag != 9);
            if !any {
                break;
            }
        }
        while let Some(t) = self.p.poll_transmit() {
            let text = String::from_utf8_lossy(&t.bytes).into_owned();
            let m = match Message::parse(t.bytes.clone()) {
                Ok(m) => m,
                // The answer to a request that failed to parse (400, or the parse error's own
                // status: 505 for a SIP version, 513 for an oversize message) copies the
                // request's Via, From, To, Call-ID and CSeq lines as they were (RFC 3261
                // §8.2.6), broken or missing ones included; only its start line must be right.
                Err(e)
                    if ["SIP/2.0 400 ", "SIP/2.0 505 ", "SIP/2.0 513 "]
                        .iter()
                        .any(|p| text.starts_with(p))
                        && e != ParseError::BadStartLine =>
                {
                    continue
                }
                Err(e) => panic!("proxy sent a message that does not parse ({e:?}):\n{text}"),
            };
            exercise(&m);
            if let Some(tr) = self.transcript.as_mut() {
                let line = if std::env::var_os("FUZZ_TRANSCRIPT_FULL").is_some() {
                    text.clone()
                } else {
                    text.lines().next().unwrap_or("").to_owned()
                };
                tr.push(format!("{} {line}", peer_index(&t.dest).map_or(9, |i| i)));
            }
            if let Some(i) = peer_index(&t.dest) {
                if m.is_request() {
                    self.last_req[i] = Some(m);
                } else {
                    self.last_resp[i] = Some(m);
                }
            }
        }
    }

    fn decide(&mut self, shape: u8) {
        let target = |i: usize, ring: u64, tag: u32| BranchTarget {
            uri: Bytes::from(format!("sip:100{tag}@{}", peer(i).addr)),
            dest: peer(i),
            ring_timeout: Duration::from_secs(ring),
            tag,
        };
        for call in std::mem::take(&mut self.pending) {
            match shape % 5 {
                0 => self.p.reject(self.now, call, 404, "Not Found"),
                1 => {
                    let plan = ForkPlan {
                        groups: vec![
                            ForkGroup {
                                parallel: false,
                                targets: vec![target(1, 2, 1)],
                            },
                            ForkGroup {
                                parallel: false,
                                targets: vec![target(2, 3, 2)],
                            },
                        ],
                        ..Default::default()
                    };
                    self.p.route(self.now, call, plan, &mut |_, _| true);
                }
                2 => {
                    let plan = ForkPlan {
                        groups: vec![ForkGroup {
                            parallel: true,
                            targets: vec![target(1, 4, 1), target(2, 4, 2), target(2, 4, 9)],
                        }],
                        wait_cap: Some(Duration::from_secs(6)),
                        ring_from_18x: true,
                        suppress_early_media: true,
                        history_info: true,
                        max_duration: Some(Duration::from_secs(10)),
                        add_headers: vec![("Diversion", b"<tel:+864008001234>".to_vec())],
                        remove_headers: vec!["P-Asserted-Identity"],
                        ..Default::default()
                    };
                    self.p.route(self.now, call, plan, &mut |_, _| true);
                }
                3 => {
                    let plan = ForkPlan {
                        groups: vec![ForkGroup {
                            parallel: false,
                            targets: vec![target(1, 1, 1), target(3, 1, 3)],
                        }],
                        fail_code: Some(480),
                        ..Default::default()
                    };
                    self.p.route(self.now, call, plan, &mut |_, _| false);
                }
                _ => self.pending.push(call),
            }
        }
        self.drain();
    }

    fn respond(&mut self, who: usize, code_sel: u8) {
        let i = who % 4;
        let Some(req) = self.last_req[i].clone() else {
            return;
        };
        let code = CODES[usize::from(code_sel) % CODES.len()];
        let contact = format!("<sip:13800138000@{}>", peer(2).addr);
        let own = format!("<sip:100{i}@{}>", peer(i).addr);
        let extra: Vec<(&str, &[u8])> = if (300..400).contains(&code) {
            vec![("Contact", contact.as_bytes())]
        } else if (200..300).contains(&code) {
            vec![("Contact", own.as_bytes())]
        } else {
            Vec::new()
        };
        let tag = format!("t{i}");
        let out = response(&req, code, "Scripted", Some(tag.as_bytes()), None, &extra);
        self.deliver(i, Bytes::from(out));
    }

    fn follow(&mut self, who: usize, what: u8) {
        let i = who % 4;
        match what % 3 {
            0 => {
                // CANCEL of the INVITE this peer sent.
                if let Some(inv) = self.sent_invite[i].clone() {
                    self.deliver(i, Bytes::from(cancel_for(&inv)));
                }
            }
            2 if i == 1 || i == 2 => {
                // A target hangs up the call it answered: BYE built from the INVITE it got.
                let Some(inv) = self.last_req[i].clone() else {
                    return;
                };
                let route = inv
                    .record_routes()
                    .next()
                    .map(|r| format!("Route: {}\r\n", String::from_utf8_lossy(r)))
                    .unwrap_or_default();
                let req = format!(
                    "BYE sip:13807912345@{} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {};branch=z9hG4bKb{what}\r\n{route}\
                     Max-Forwards: 70\r\nFrom: {};tag=t{i}\r\nTo: {}\r\nCall-ID: {}\r\n\
                     CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                    peer(0).addr,
                    peer(i).addr,
                    String::from_utf8_lossy(inv.to_value()),
                    String::from_utf8_lossy(inv.from_value()),
                    String::from_utf8_lossy(inv.call_id()),
                );
                self.deliver(i, Bytes::from(req));
            }
            w => {
                // ACK (w == 1) or BYE in the dialog of the last response this peer got.
                let Some(resp) = self.last_resp[i].clone() else {
                    return;
                };
                let method = if w == 1 { "ACK" } else { "BYE" };
                let cseq = if w == 1 {
                    resp.cseq().0
                } else {
                    resp.cseq().0 + 1
                };
                let route = resp
                    .record_routes()
                    .next()
                    .map(|r| format!("Route: {}\r\n", String::from_utf8_lossy(r)))
                    .unwrap_or_default();
                let req = format!(
                    "{method} sip:4008001234@{LOCAL} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {};branch=z9hG4bKf{}{}\r\n{route}\
                     Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
                     CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
                    peer(i).addr,
                    what,
                    resp.cseq().0,
                    String::from_utf8_lossy(resp.from_value()),
                    String::from_utf8_lossy(resp.to_value()),
                    String::from_utf8_lossy(resp.call_id()),
                );
                self.deliver(i, Bytes::from(req));
            }
        }
    }

    fn system(&mut self, what: u8) {
        match what % 3 {
            0 => {
                for c in self.p.answered_calls() {
                    self.p.hangup(self.now, c);
                }
            }
            1 => {
                for c in self.p.answered_calls() {
                    self.p.limit_call(c, self.now + Duration::from_millis(300));
                }
            }
            _ => self.p.abort_hunts(self.now, 503, "Shutting Down"),
        }
        self.drain();
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        while let Some(t) = self.p.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.p.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.p.handle_timeout(self.now);
        self.drain();
    }
}

/// Drive a [`Proxy`] with an op stream (see [`op`]); check that everything it sends parses
/// and that, once every timer has run out, no call and no transaction is left.
pub fn proxy(data: &[u8]) {
    run_proxy(data, false, true);
}

/// Same as [`proxy`] (named for the regression tests of the transaction leaks it found).
pub fn proxy_strict(data: &[u8]) {
    run_proxy(data, false, true);
}

/// What [`proxy`] made the proxy send for `data`: `"<peer index> <start line>"` per message
/// (peer 0 is the caller, 1 and 2 the targets). Tests use it to show the seeds reach deep.
pub fn proxy_transcript(data: &[u8]) -> Vec<String> {
    run_proxy(data, true, false).unwrap_or_default()
}

fn run_proxy(data: &[u8], record: bool, strict: bool) -> Option<Vec<String>> {
    let local: SocketAddr = LOCAL
        .parse()
        .unwrap_or(SocketAddr::from(([10, 0, 0, 1], 5060)));
    // A fixed hash key: a saved input replays to exactly the same bytes.
    let mut cfg = ProxyConfig::new(local);
    cfg.hash_key = HashKey::new(0x686f_746c_696e_6531, 0x6675_7a7a_2d6b_6579);
    let mut h = Harness {
        p: Proxy::new(cfg),
        now: Instant::now(),
        last_req: Default::default(),
        last_resp: Default::default(),
        sent_invite: Default::default(),
        pending: Vec::new(),
        transcript: record.then(Vec::new),
    };
    let seeds = seeds::messages();
    let mut rest = data;
    let mut ops = 0;
    while let [o, tail @ ..] = rest {
        ops += 1;
        if ops > 256 {
            break;
        }
        rest = tail;
        let mut arg = || -> u8 {
            match rest {
                [b, t @ ..] => {
                    rest = t;
                    *b
                }
                [] => 0,
            }
        };
        match o % 8 {
            op::MSG => {
                let who = usize::from(arg());
                let len = usize::from(u16::from_le_bytes([arg(), arg()]));
                let n = len.min(rest.len());
                let (msg, t) = rest.split_at(n);
                rest = t;
                h.deliver(who, Bytes::copy_from_slice(msg));
            }
            op::ADVANCE => {
                let ms = u64::from(u16::from_le_bytes([arg(), arg()])) * 8;
                h.advance(ms);
            }
            op::DECIDE => {
                let s = arg();
                h.decide(s);
            }
            op::RESPOND => {
                let (w, c) = (arg(), arg());
                h.respond(usize::from(w), c);
            }
            op::OVERLOAD => {
                let on = arg();
                h.p.set_overload((on % 2 == 1).then_some(5));
                assert_eq!(h.p.overloaded(), on % 2 == 1);
            }
            op::SYSTEM => {
                let w = arg();
                h.system(w);
            }
            op::FOLLOW => {
                let (w, x) = (arg(), arg());
                h.follow(usize::from(w), x);
            }
            _ => {
                let (idx, who) = (usize::from(arg()), usize::from(arg()));
                if let Some(s) = seeds.get(idx % seeds.len().max(1)) {
                    h.deliver(who, Bytes::copy_from_slice(s));
                }
            }
        }
    }
    // Undecided calls are rejected, then every timer runs out: the proxy forgets everything
    // (no leak of calls, transactions or dialogs).
    h.decide(0);
    h.p.set_overload(None);
    h.system(0);
    h.advance(40_000);
    h.system(2);
    for _ in 0..8 {
        h.advance(70_000);
    }
    assert_eq!(
        h.p.active_calls(),
        0,
        "calls left after every timer ran out"
    );
    if strict {
        assert_eq!(
            h.p.transactions(),
            0,
            "transactions left after every timer ran out: {:?}",
            h.p.transaction_states()
        );
    }
    h.transcript
}
