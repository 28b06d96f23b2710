//! Call control without sockets: a shard's core driven by hand-made datagrams on a fake clock
//! (the `now` each step is given), its sends read from the proxy instead of a socket, its CDRs
//! from the writer's files. Admission phases, the hunt, plan translation and CDR mapping are
//! exercised together, as a real shard runs them, in microseconds of wall time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_sip::Message;
use tokio::sync::{mpsc, watch};

use super::{Core, Shared};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::transport::{Dispatch, Tcp};

const CALLER: &str = "127.0.0.1:5999";
const T1: &str = "127.0.0.1:6001";
const T2: &str = "127.0.0.1:6002";

struct Harness {
    core: Core,
    writer: Option<hotline_cdr::WriterHandle>,
    now: Instant,
    _inbox: mpsc::Sender<crate::transport::ShardMsg>,
    _drain: watch::Sender<bool>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(routing: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = format!(
            "[server]\nlisten = [\"127.0.0.1:5060\"]\nadmin = \"off\"\n\
             [server.cdr]\ndir = {:?}\nformat = \"jsonl\"\n{routing}",
            dir.path().display().to_string()
        );
        let c = hotline_config::from_toml_str(&src, "t.toml", 1, jiff::civil::date(2026, 11, 24))
            .unwrap_or_else(|e| panic!("config: {e}"));
        let snap = Arc::new(Snapshot::new(c, None).expect("snapshot"));
        let (shared, writer) =
            Shared::new(snap, Arc::new(Metrics::new(Default::default()))).expect("shared");
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel(64);
        let dispatch = Dispatch {
            inboxes: Arc::new(vec![tx.clone()]),
            stats: Default::default(),
        };
        let (dtx, drx) = watch::channel(false);
        let listen: SocketAddr = "127.0.0.1:5060".parse().expect("addr");
        let core = Core::new(
            0,
            1,
            shared,
            &[listen],
            Arc::new(Vec::new()),
            dispatch.clone(),
            Tcp::detached(dispatch),
            rx,
            drx,
        );
        Harness {
            now: core.clock.base,
            core,
            writer: Some(writer),
            _inbox: tx,
            _drain: dtx,
            dir,
        }
    }

    /// A datagram from `from` at the current fake time; returns what the core sent.
    fn recv(&mut self, from: &str, text: &str) -> Vec<(SocketAddr, Message)> {
        let bytes = text.replace("\r\n", "\n").replace('\n', "\r\n");
        let snap = self.core.shared.current.load();
        let from = from.parse().expect("addr");
        self.core
            .on_datagram(self.now, &snap, bytes.as_bytes(), from);
        self.core.process(self.now);
        self.sent()
    }

    /// Move the fake clock on, firing the proxy's timers on the way.
    fn advance(&mut self, d: Duration) -> Vec<(SocketAddr, Message)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.core.proxy.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.core.proxy.handle_timeout(self.now);
            self.core.process(self.now);
            out.extend(self.sent());
        }
        self.now = end;
        out
    }

    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut v = Vec::new();
        while let Some(t) = self.core.proxy.poll_transmit() {
            v.push((t.dest.addr, Message::parse(t.bytes).expect("parses")));
        }
        v
    }

    /// The CDR writer's call records, once it has written everything.
    fn calls(&mut self) -> Vec<hotline_cdr::CallRecord> {
        if let Some(w) = self.writer.take() {
            w.shutdown().expect("writer");
        }
        let mut out = Vec::new();
        hotline_cdr::reader::scan_calls(self.dir.path(), |c| out.push(c.clone())).expect("read");
        out
    }
}

fn invite(call_id: &str, number: &str) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id};rport\n\
Max-Forwards: 70\n\
From: <sip:13807912345@127.0.0.1>;tag=caller1\n\
To: <sip:{number}@127.0.0.1>\n\
Call-ID: {call_id}\n\
CSeq: 1 INVITE\n\
Contact: <sip:13807912345@{CALLER}>\n\
Content-Length: 0\n\n"
    )
}

fn reply(req: &Message, code: u16, reason: &str, tag: &str, contact: &str) -> String {
    let vias: String = req
        .headers("Via")
        .map(|v| format!("Via: {}\n", String::from_utf8_lossy(v)))
        .collect();
    format!(
        "SIP/2.0 {code} {reason}\n{vias}From: {}\nTo: {};tag={tag}\nCall-ID: {}\nCSeq: {} INVITE\n\
Contact: <sip:callee@{contact}>\nContent-Length: 0\n\n",
        String::from_utf8_lossy(req.from_value()),
        String::from_utf8_lossy(req.to_value()),
        String::from_utf8_lossy(req.call_id()),
        req.cseq().0,
    )
}

const ROUTING: &str = "
[companies.c]
name = \"C\"
[targets.t1]
uri = \"sip:1001@127.0.0.1:6001\"
[targets.t2]
uri = \"sip:1002@127.0.0.1:6002\"
[plans.p]
[[plans.p.groups]]
mode = \"sequential\"
ring_timeout = \"10s\"
members = [\"t1\", \"t2\"]
[numbers.\"4008001234\"]
company = \"c\"
plan = \"p\"
";

fn to(out: &[(SocketAddr, Message)], who: &str) -> Vec<Message> {
    let who: SocketAddr = who.parse().expect("addr");
    out.iter()
        .filter(|(a, _)| *a == who)
        .map(|(_, m)| m.clone())
        .collect()
}

#[tokio::test]
async fn a_call_hunts_past_busy_and_its_cdr_has_the_fake_clocks_times() {
    let mut h = Harness::new(ROUTING);
    let out = h.recv(CALLER, &invite("c-1", "4008001234"));
    assert_eq!(to(&out, CALLER)[0].status(), Some(100));
    let inv1 = to(&out, T1).pop().expect("INVITE to t1");
    assert_eq!(inv1.request_uri(), b"sip:1001@127.0.0.1:6001");
    // t1 is busy: the hunt goes on to t2 at once.
    let out = h.recv(T1, &reply(&inv1, 486, "Busy Here", "b1", T1));
    let inv2 = to(&out, T2).pop().expect("INVITE to t2");
    // t2 rings, and answers 5 s (fake) later; the caller talks 30 s and hangs up.
    h.recv(T2, &reply(&inv2, 180, "Ringing", "a2", T2));
    h.advance(Duration::from_secs(5));
    let out = h.recv(T2, &reply(&inv2, 200, "OK", "a2", T2));
    assert_eq!(to(&out, CALLER)[0].status(), Some(200));
    h.advance(Duration::from_secs(30));
    let out = h.recv(
        CALLER,
        &format!(
            "BYE sip:callee@{T2} SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKbye1;rport\n\
Route: <sip:127.0.0.1:5060;lr>\nMax-Forwards: 70\nFrom: <sip:13807912345@127.0.0.1>;tag=caller1\n\
To: <sip:4008001234@127.0.0.1>;tag=a2\nCall-ID: c-1\nCSeq: 2 BYE\nContent-Length: 0\n\n"
        ),
    );
    assert_eq!(to(&out, T2)[0].method(), Some(hotline_sip::Method::Bye));
    let calls = h.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let c = &calls[0];
    assert_eq!(c.disposition, hotline_cdr::Disposition::Answered);
    assert_eq!((c.answered_target.as_str(), c.attempts), ("t2", 2));
    assert_eq!(c.hangup_side, hotline_cdr::HangupSide::Caller);
    assert_eq!(c.talk_ms(), 30_000, "the fake clock's 30 s of talk");
    let rang = c.answer.map(|a| millis(c.start, a));
    assert_eq!(rang, Some(5_000), "answered 5 s after the INVITE");
    assert_eq!(c.company, "c");
}

#[tokio::test]
async fn refusals_end_in_one_place_with_code_and_reason() {
    let mut h = Harness::new(ROUTING);
    // Phase 2: not a 400 number.
    let out = h.recv(CALLER, &invite("c-404", "12345"));
    let finals: Vec<u16> = to(&out, CALLER)
        .iter()
        .filter_map(|m| m.status())
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals, vec![404]);
    // Phase 4: a 400 number nobody rents (routing rejects it).
    let out = h.recv(CALLER, &invite("c-unknown", "4008009999"));
    let finals: Vec<u16> = to(&out, CALLER)
        .iter()
        .filter_map(|m| m.status())
        .filter(|s| *s >= 200)
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(finals[0] >= 400, "{finals:?}");
    let calls = h.calls();
    let r404 = calls
        .iter()
        .find(|c| c.call_id == "c-404")
        .expect("a CDR for the refused call");
    assert_eq!((r404.final_code, r404.number.as_str()), (404, "12345"));
    assert!(calls.iter().any(|c| c.call_id == "c-unknown"));
}

#[tokio::test]
async fn a_ring_timeout_on_the_fake_clock_moves_the_hunt_on() {
    let mut h = Harness::new(ROUTING);
    let out = h.recv(CALLER, &invite("c-rt", "4008001234"));
    let inv1 = to(&out, T1).pop().expect("INVITE to t1");
    h.recv(T1, &reply(&inv1, 180, "Ringing", "r1", T1));
    assert!(to(&h.advance(Duration::from_millis(9_900)), T2).is_empty());
    let out = h.advance(Duration::from_millis(200));
    assert!(
        to(&out, T1)
            .iter()
            .any(|m| m.method() == Some(hotline_sip::Method::Cancel)),
        "t1 cancelled at its 10 s ring timeout"
    );
    assert!(!to(&out, T2).is_empty(), "t2 rung");
}

fn millis(a: jiff::Timestamp, b: jiff::Timestamp) -> i64 {
    b.as_millisecond() - a.as_millisecond()
}
