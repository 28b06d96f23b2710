//! Seed inputs: the RFC 4475 torture fixtures (`crates/sip/tests/torture`), canned messages of
//! a call, and proxy op scripts that walk a call through its common paths.

use crate::op;

macro_rules! torture {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../tests/torture/", $name, ".sip")))),*]
    };
}

/// Every RFC 4475 fixture in `crates/sip/tests/torture`, by name.
pub const TORTURE: &[(&str, &[u8])] = torture!(
    "badaspec",
    "badbranch",
    "baddate",
    "baddn",
    "badinv01",
    "badvers",
    "bigcode",
    "clerr",
    "dblreq",
    "esc01",
    "esc02",
    "escnull",
    "escruri",
    "insuf",
    "intmeth",
    "inv2543",
    "invut",
    "longreq",
    "ltgtruri",
    "lwsdisp",
    "lwsruri",
    "lwsstart",
    "mcl01",
    "mismatch01",
    "mismatch02",
    "multi01",
    "ncl",
    "noreason",
    "novelsc",
    "quotbal",
    "regbadct",
    "regescrt",
    "scalar02",
    "scalarlg",
    "semiuri",
    "transports",
    "trws",
    "unkscm",
    "unksm2",
    "unreason",
    "wsinv",
    "zeromf",
);

/// A valid INVITE from the harness caller to a 400 number.
pub const INVITE: &[u8] = b"INVITE sip:4008001234@10.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKseed1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\r\n\
To: <sip:4008001234@10.0.0.1>\r\n\
Call-ID: seed-call-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:13807912345@10.0.0.2:5060>\r\n\
P-Asserted-Identity: <sip:13807912345@10.0.0.2>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n";

/// The same caller's OPTIONS to Hotline itself.
pub const OPTIONS: &[u8] = b"OPTIONS sip:10.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKseed2\r\n\
f: <sip:probe@10.0.0.2>;tag=p1\r\n\
t: <sip:10.0.0.1>\r\n\
i: seed-options-1\r\n\
CSeq: 7 OPTIONS\r\n\
l: 0\r\n\
\r\n";

/// A scanner's INVITE (dropped by User-Agent).
pub const SCANNER: &[u8] = b"INVITE sip:100@10.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKseed3\r\n\
From: <sip:100@10.0.0.2>;tag=s1\r\n\
To: <sip:100@10.0.0.1>\r\n\
Call-ID: seed-scan-1\r\n\
CSeq: 1 INVITE\r\n\
User-Agent: friendly-scanner\r\n\
Content-Length: 0\r\n\
\r\n";

/// A 200 OK with two Vias (relayable).
pub const OK_RESPONSE: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-hl0000000000000000-1;rport=5060\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKseed1;rport=5060;received=10.0.0.2\r\n\
Record-Route: <sip:10.0.0.1:5060;lr>\r\n\
From: \"13807912345\" <sip:13807912345@10.0.0.2>;tag=caller1\r\n\
To: <sip:4008001234@10.0.0.1>;tag=t1\r\n\
Call-ID: seed-call-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@10.0.0.3:5070>\r\n\
Content-Length: 0\r\n\
\r\n";

/// Canned messages plus every torture fixture (the proxy harness's `SEED` op indexes this).
pub fn messages() -> Vec<&'static [u8]> {
    let mut v: Vec<&'static [u8]> = vec![INVITE, OPTIONS, SCANNER, OK_RESPONSE];
    v.extend(TORTURE.iter().map(|(_, b)| *b));
    v
}

/// Seeds for `stream_split`: `[cap, split seed]` then a stream of framed messages.
pub fn streams() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut all = vec![255u8, 7];
    for (i, m) in [INVITE, OPTIONS, SCANNER, OK_RESPONSE].iter().enumerate() {
        let mut s = vec![255u8, i as u8 * 31 + 1];
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(m);
        s.extend_from_slice(m);
        out.push(s);
        all.extend_from_slice(m);
        all.extend_from_slice(b"\r\n");
    }
    out.push(all);
    for (_, t) in TORTURE {
        let mut s = vec![255u8, 3];
        s.extend_from_slice(t);
        out.push(s);
    }
    out
}

fn seed_op(index: u8, who: u8) -> [u8; 3] {
    [op::SEED, index, who]
}

/// Proxy op scripts: answered and hung up, busy then answered, redirected, cancelled, ring
/// timeout, overload, shutdown, malformed input in between.
pub fn proxy_scripts() -> Vec<Vec<u8>> {
    let invite = seed_op(0, 0);
    let ms = |n: u16| {
        let b = (n / 8).to_le_bytes();
        [op::ADVANCE, b[0], b[1]]
    };
    // CODES indexes: 1 = 180, 3 = 200, 6 = 302, 10 = 486.
    let mut out: Vec<Vec<u8>> = vec![
        // Serial plan: 180, 200, caller ACK, caller BYE, target answers the BYE.
        [
            &invite[..],
            &[op::DECIDE, 1],
            &[op::RESPOND, 1, 1],
            &[op::RESPOND, 1, 3],
            &[op::FOLLOW, 0, 1],
            &ms(1000),
            &[op::FOLLOW, 0, 2],
            &[op::RESPOND, 1, 3],
        ]
        .concat(),
        // Busy first target, second answers; callee hangs up.
        [
            &invite[..],
            &[op::DECIDE, 1],
            &[op::RESPOND, 1, 10],
            &[op::RESPOND, 2, 3],
            &[op::FOLLOW, 0, 1],
            &[op::FOLLOW, 2, 2],
            &[op::RESPOND, 0, 3],
        ]
        .concat(),
        // Serial plan, redirect from target 1 to a number at target 2, which answers.
        [
            &invite[..],
            &[op::DECIDE, 1],
            &[op::RESPOND, 1, 6],
            &[op::RESPOND, 2, 1],
            &ms(500),
            &[op::RESPOND, 2, 3],
            &[op::FOLLOW, 0, 1],
            &[op::SYSTEM, 0],
        ]
        .concat(),
        // Caller CANCEL while ringing; the target answers the CANCEL (200) and goes silent.
        [
            &invite[..],
            &[op::DECIDE, 1],
            &[op::RESPOND, 1, 1],
            &[op::FOLLOW, 0, 0],
            &[op::RESPOND, 1, 3],
            &ms(5000),
        ]
        .concat(),
        // Parallel group (one member refused by the gate), first 200 wins, max duration.
        [
            &invite[..],
            &[op::DECIDE, 2],
            &[op::RESPOND, 1, 1],
            &[op::RESPOND, 1, 3],
            &[op::FOLLOW, 0, 1],
            &ms(2000),
            &[op::SYSTEM, 1],
            &ms(1000),
        ]
        .concat(),
        // Ring timeouts all the way down, with retransmissions.
        [
            &invite[..],
            &[op::DECIDE, 1],
            &ms(2500),
            &invite,
            &ms(4000),
            &ms(40000),
        ]
        .concat(),
        // Overload: the INVITE gets 503; then the options ping, a scanner, malformed input.
        [
            &[op::OVERLOAD, 1][..],
            &invite,
            &[op::OVERLOAD, 0],
            &seed_op(1, 0),
            &seed_op(2, 0),
            &seed_op(20, 0),
            &seed_op(9, 1),
            &seed_op(3, 1),
        ]
        .concat(),
        // Shutdown while hunting and after an answer.
        [
            &invite[..],
            &[op::DECIDE, 2],
            &[op::RESPOND, 1, 3],
            &[op::SYSTEM, 2],
            &[op::SYSTEM, 1],
            &ms(1000),
        ]
        .concat(),
        // A raw message op with a hand-made INVITE over TCP.
        [
            &[op::MSG, 3, 0x40, 0x00][..],
            &INVITE[..0x40],
            &[op::DECIDE, 3],
            &ms(3000),
        ]
        .concat(),
    ];
    // Every canned message from every peer once.
    for i in 0..messages().len() {
        out.push(
            [
                seed_op(i as u8, 0),
                seed_op(i as u8, 1),
                [op::DECIDE, 1, op::ADVANCE],
            ]
            .concat(),
        );
    }
    out
}
