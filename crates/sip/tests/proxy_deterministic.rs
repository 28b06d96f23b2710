//! With a fixed [`HashKey`] in its config the proxy is a function of its inputs: the same
//! messages at the same (fake) instants make the same bytes, branch parameters and To-tags
//! included; another key changes those and nothing else.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_sip::proxy::{
    BranchTarget, Event, ForkGroup, ForkPlan, HashKey, Peer, Proxy, ProxyConfig, Transport,
};
use hotline_sip::rewrite;
use hotline_sip::Message;

const PROXY: &str = "10.0.0.1:5060";
const UAC: &str = "10.0.0.2:5060";
const T1: &str = "10.0.0.3:5070";
const T2: &str = "10.0.0.4:5071";

fn udp(s: &str) -> Peer {
    Peer::new(Transport::Udp, s.parse().expect("test address"))
}

fn crlf(s: &str) -> Bytes {
    Bytes::from(s.replace('\n', "\r\n"))
}

fn invite(call_id: &str) -> Bytes {
    crlf(&format!(
        "INVITE sip:4008001234@10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-{call_id};rport\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>\n\
Call-ID: {call_id}\n\
CSeq: 1 INVITE\n\
Contact: <sip:13807912345@10.0.0.2:5060>\n\
Content-Length: 0\n\n"
    ))
}

fn target(addr: &str, tag: u32) -> BranchTarget {
    BranchTarget {
        uri: Bytes::from(format!("sip:100{tag}@{addr}")),
        dest: udp(addr),
        ring_timeout: Duration::from_secs(10),
        tag,
    }
}

/// A call that exercises every kind of byte the proxy writes from its key: a local reject
/// (To-tag of its own), a hunt whose first target is busy and whose second answers (branches
/// with the loop hash, the CANCEL-free path, ACK relay), a local 100 Trying, and an OPTIONS
/// answered by Hotline itself. Returns every transmit (destination and bytes), in order.
fn run(key: HashKey) -> Vec<(Peer, Bytes)> {
    let mut cfg = ProxyConfig::new(PROXY.parse::<SocketAddr>().expect("addr"));
    cfg.hash_key = key;
    let mut p = Proxy::new(cfg);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let sent = |p: &mut Proxy, out: &mut Vec<(Peer, Bytes)>| -> Vec<Message> {
        let mut msgs = Vec::new();
        while let Some(t) = p.poll_transmit() {
            msgs.push(Message::parse(t.bytes.clone()).expect("proxy output parses"));
            out.push((t.dest, t.bytes));
        }
        msgs
    };
    let incoming = |p: &mut Proxy| {
        std::iter::from_fn(|| p.poll_event())
            .find_map(|e| match e {
                Event::Incoming { call, .. } => Some(call),
                _ => None,
            })
            .expect("an Incoming event")
    };

    // 1. Rejected: 100 Trying, then a 404 with Hotline's To-tag.
    p.handle_message(t0, udp(UAC), invite("reject-1"));
    let call = incoming(&mut p);
    p.reject(t0, call, 404, "Not Found");
    sent(&mut p, &mut out);

    // 2. Hunted: T1 busy, T2 answers; the caller ACKs through the Record-Route.
    let now = t0 + Duration::from_millis(5);
    p.handle_message(now, udp(UAC), invite("hunt-1"));
    let call = incoming(&mut p);
    let plan = ForkPlan {
        groups: vec![ForkGroup {
            parallel: false,
            targets: vec![target(T1, 1), target(T2, 2)],
        }],
        ..Default::default()
    };
    p.route(now, call, plan, &mut |_, _| true);
    let first = sent(&mut p, &mut out);
    let inv1 = first.last().expect("INVITE to T1").clone();
    let busy = rewrite::response(&inv1, 486, "Busy Here", Some(b"t1"), None, &[]);
    p.handle_message(now, udp(T1), Bytes::from(busy));
    p.pending_hunts(now, &mut |_, _| true);
    let second = sent(&mut p, &mut out);
    let inv2 = second.last().expect("INVITE to T2").clone();
    let contact = format!("<sip:callee@{T2}>");
    let ok = rewrite::response(
        &inv2,
        200,
        "OK",
        Some(b"t2"),
        None,
        &[
            ("Contact", contact.as_bytes()),
            ("Record-Route", b"<sip:10.0.0.1:5060;lr>"),
        ],
    );
    p.handle_message(now, udp(T2), Bytes::from(ok));
    sent(&mut p, &mut out);
    p.handle_message(
        now,
        udp(UAC),
        crlf(
            "ACK sip:callee@10.0.0.4:5071 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-ack1;rport\n\
Route: <sip:10.0.0.1:5060;lr>\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:4008001234@10.0.0.1>;tag=t2\n\
Call-ID: hunt-1\n\
CSeq: 1 ACK\n\
Content-Length: 0\n\n",
        ),
    );
    sent(&mut p, &mut out);

    // 3. OPTIONS to Hotline itself: 200 with a To-tag of its own.
    p.handle_message(
        now,
        udp(UAC),
        crlf(
            "OPTIONS sip:10.0.0.1:5060 SIP/2.0\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-opt1;rport\n\
Max-Forwards: 70\n\
From: <sip:13807912345@10.0.0.2>;tag=caller1\n\
To: <sip:10.0.0.1:5060>\n\
Call-ID: options-1\n\
CSeq: 1 OPTIONS\n\
Content-Length: 0\n\n",
        ),
    );
    sent(&mut p, &mut out);
    out
}

#[test]
fn same_inputs_and_same_key_send_identical_bytes() {
    let key = HashKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    let a = run(key);
    let b = run(key);
    // 100 + 404; 100 + INVITE, ACK of the 486 + INVITE, 200; ACK; 200 to OPTIONS.
    let lines: Vec<String> = a
        .iter()
        .map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(a.len(), 9, "{:#?}", lines);
    for (i, ((da, ba), (db, bb))) in a.iter().zip(&b).enumerate() {
        assert_eq!(da, db, "destination of transmit {i}");
        assert_eq!(
            ba,
            bb,
            "transmit {i} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(ba),
            String::from_utf8_lossy(bb)
        );
    }
}

#[test]
fn another_key_changes_branches_and_tags_only() {
    let a = run(HashKey::new(1, 2));
    let b = run(HashKey::new(3, 4));
    assert_eq!(a.len(), b.len());
    let mut differ = 0;
    for ((da, ba), (db, bb)) in a.iter().zip(&b) {
        assert_eq!(da, db);
        let (ma, mb) = (
            Message::parse(ba.clone()).expect("parses"),
            Message::parse(bb.clone()).expect("parses"),
        );
        assert_eq!(ma.status(), mb.status());
        assert_eq!(ma.method(), mb.method());
        assert_eq!(ma.call_id(), mb.call_id());
        if ba != bb {
            differ += 1;
            // What the key decides: our branch (loop hash) and our To-tags.
            let branch = |m: &Message| m.top_via().branch.map(<[u8]>::to_vec);
            assert!(
                branch(&ma) != branch(&mb) || ma.to_tag() != mb.to_tag(),
                "differs elsewhere:\n{}\n---\n{}",
                String::from_utf8_lossy(ba),
                String::from_utf8_lossy(bb)
            );
        }
    }
    // The local 404 and 200 carry a To-tag of Hotline's; forwarded INVITEs and the ACK carry
    // our branch.
    assert!(differ >= 4, "only {differ} transmits depend on the key");
}
