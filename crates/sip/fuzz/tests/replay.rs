//! Stable-toolchain fuzzing: every harness of this crate runs over its seeds, over the libFuzzer
//! corpus and crash artifacts kept in `corpus/<target>` / `artifacts/<target>` (when present),
//! then over random mutations of the seeds until a time budget is spent.
//!
//! `cargo test --release --manifest-path crates/sip/fuzz/Cargo.toml` (tests/run.sh does this).
//! Environment: `FUZZ_REPLAY_SECS` (budget per target for the random phase, default 3),
//! `FUZZ_SEED` (PRNG seed, default: time-based, printed so a failure can be replayed).

use std::path::Path;
use std::time::{Duration, Instant};

use hotline_sip_fuzz::{frame_parse, op, proxy, rewrite, seeds, stream_split, Rng};

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_REPLAY_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Files in `corpus/<target>` and `artifacts/<target>` next to this crate.
fn saved_inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("corpus").join(target),
        root.join("artifacts").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push(b);
            }
        }
    }
    out
}

/// One random mutation: flip, insert, delete, duplicate a range, splice another seed, or
/// insert an interesting token.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\r\n\r\n",
        b"\n",
        b" ",
        b";",
        b":",
        b",",
        b"<",
        b">",
        b"\"",
        b"[",
        b"]",
        b"Content-Length: ",
        b"l: 99999\r\n",
        b"Via: ",
        b"v: SIP/2.0/TCP [::1]:5060;rport\r\n",
        b"CSeq: 4294967296 INVITE",
        b"Max-Forwards: 0",
        b"Route: <sip:10.0.0.1:5060;lr>\r\n",
        b";branch=z9hG4bK",
        b"SIP/2.0 ",
        b"%00",
        b"\0",
        b"\xff",
        b"sip:",
        b"tel:",
        b"sips:",
        b"=",
        b"\t",
        b"4294967295",
        b"-1",
    ];
    let n = input.len();
    match rng.below(8) {
        0 if n > 0 => {
            let i = rng.below(n);
            input[i] ^= 1 << rng.below(8);
        }
        1 if n > 0 => {
            let i = rng.below(n);
            input[i] = rng.next_u64() as u8;
        }
        2 => {
            let t = TOKENS[rng.below(TOKENS.len())];
            let i = rng.below(n + 1);
            input.splice(i..i, t.iter().copied());
        }
        3 if n > 0 => {
            let a = rng.below(n);
            let len = rng.below((n - a).min(64) + 1);
            input.drain(a..a + len);
        }
        4 if n > 0 => {
            let a = rng.below(n);
            let len = rng.below((n - a).min(256) + 1);
            let copy = input[a..a + len].to_vec();
            let at = rng.below(input.len() + 1);
            input.splice(at..at, copy);
        }
        5 if !pool.is_empty() => {
            let other = &pool[rng.below(pool.len())];
            if !other.is_empty() {
                let a = rng.below(other.len());
                let len = rng.below(other.len() - a + 1);
                let at = rng.below(n + 1);
                input.splice(at..at, other[a..a + len].iter().copied());
            }
        }
        6 if n > 1 => input.truncate(rng.below(n)),
        _ => {
            let at = rng.below(n + 1);
            let b = rng.next_u64().to_le_bytes();
            input.splice(at..at, b[..rng.below(8) + 1].iter().copied());
        }
    }
}

fn run(target: &str, harness: fn(&[u8]), seeds: Vec<Vec<u8>>) {
    let saved = saved_inputs(target);
    for s in seeds.iter().chain(saved.iter()) {
        harness(s);
    }
    let seed = seed();
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut execs = 0u64;
    let pool: Vec<Vec<u8>> = seeds.iter().chain(saved.iter()).cloned().collect();
    while start.elapsed() < budget() {
        let mut input = match rng.below(16) {
            // Pure random bytes now and then.
            0 => (0..rng.below(512)).map(|_| rng.next_u64() as u8).collect(),
            _ => pool[rng.below(pool.len())].clone(),
        };
        for _ in 0..rng.below(6) + 1 {
            mutate(&mut rng, &mut input, &pool);
        }
        let keep = input.clone();
        let r = std::panic::catch_unwind(|| harness(&input));
        if r.is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("artifacts")
                .join(target);
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("replay-crash-{seed}-{execs}"));
            let _ = std::fs::write(&path, &keep);
            panic!(
                "{target}: property failed on a mutated input (FUZZ_SEED={seed}), saved to {}",
                path.display()
            );
        }
        execs += 1;
    }
    eprintln!(
        "{target}: {} seeds, {} saved inputs, {execs} random execs in {:?} (FUZZ_SEED={seed})",
        seeds.len(),
        saved.len(),
        start.elapsed()
    );
}

fn messages() -> Vec<Vec<u8>> {
    seeds::messages().into_iter().map(<[u8]>::to_vec).collect()
}

#[test]
fn frame_parse_replay() {
    run("frame_parse", frame_parse, messages());
}

#[test]
fn stream_split_replay() {
    run("stream_split", stream_split, seeds::streams());
}

#[test]
fn rewrite_replay() {
    run("rewrite", rewrite, messages());
}

#[test]
fn proxy_replay() {
    run("proxy", proxy, seeds::proxy_scripts());
}

/// The seeds walk the proxy through whole calls (a harness that never reached the interesting
/// states would fuzz nothing): answered then BYE, busy then the second target, a redirect
/// followed, CANCEL, overload 503.
#[test]
fn proxy_seeds_reach_deep_states() {
    let s = seeds::proxy_scripts();
    let t = |i: usize| hotline_sip_fuzz::proxy_transcript(&s[i]).join("\n");
    let answered = t(0);
    assert!(
        answered.contains("1 INVITE sip:1001@10.0.0.3:5070"),
        "{answered}"
    );
    assert!(answered.contains("0 SIP/2.0 200"), "{answered}");
    assert!(answered.contains("1 BYE "), "{answered}");
    let busy = t(1);
    assert!(busy.contains("2 INVITE sip:1002@10.0.0.4:5071"), "{busy}");
    assert!(
        busy.contains("0 BYE sip:13807912345@10.0.0.2"),
        "callee BYE relayed: {busy}"
    );
    let redirect = t(2);
    assert!(
        redirect.contains("2 INVITE sip:13800138000@10.0.0.4:5071"),
        "{redirect}"
    );
    let cancel = t(3);
    assert!(cancel.contains("1 CANCEL "), "{cancel}");
    assert!(cancel.contains("0 SIP/2.0 487"), "{cancel}");
    let overload = t(6);
    assert!(overload.contains("0 SIP/2.0 503"), "{overload}");
    assert!(
        overload.contains("0 SIP/2.0 200"),
        "OPTIONS answered: {overload}"
    );
}

/// A target that answers 180 and then nothing at all, not even our CANCEL, must not keep its
/// INVITE client transaction forever (RFC 3261 §16.6 step 11: timer C; §9.1: a CANCELled
/// INVITE with no final response is given up after 64*T1).
#[test]
fn proxy_forgets_silent_ringing_target() {
    let script = [op::SEED, 0, 0, op::DECIDE, 1, op::RESPOND, 1, 1];
    hotline_sip_fuzz::proxy_strict(&script);
}

/// A request with the same Max-Forwards twice parses (a repeated header with an equal value is
/// accepted); forwarding it must still give a message that parses.
#[test]
fn forward_request_with_repeated_max_forwards() {
    use bytes::Bytes;
    use hotline_sip::rewrite::{forward_request, ForwardRequest};
    let req = b"OPTIONS sip:1001@10.0.0.9 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKmf\r\n\
Max-Forwards: 70\r\n\
From: <sip:a@10.0.0.2>;tag=1\r\n\
To: <sip:1001@10.0.0.9>\r\n\
Call-ID: mf2\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";
    let m = hotline_sip::Message::parse(Bytes::from_static(req));
    let Ok(m) = m else {
        panic!("the request parses: {m:?}");
    };
    let out = forward_request(
        &m,
        &ForwardRequest {
            via: b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-hl-1",
            ..Default::default()
        },
    );
    let re = hotline_sip::Message::parse(Bytes::from(out));
    assert!(re.is_ok(), "forwarded request does not parse: {re:?}");
}

/// Found by the proxy harness: target 1 rings then answers 302 (Contact at target 2); the
/// redirect target and the next group's target are both tried, the caller gets the 302 while
/// those branches are outstanding, and one INVITE client transaction is never forgotten.
#[test]
fn proxy_forgets_branches_of_a_redirected_call() {
    let script: [u8; 66] = [
        7, 0, 0, 2, 1, 3, 47, 0, 3, 1, 1, 7, 0, 0, 2, 1, 3, 1, 6, 3, 2, 0, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 224, 1, 1, 1, 1, 1, 1, 1, 1, 1, 242, 1, 1, 1, 1, 1, 2, 2, 1, 3, 1, 6, 3, 130, 0, 3,
        1, 1, 1, 6, 3, 2, 0, 1,
    ];
    hotline_sip_fuzz::proxy_strict(&script);
}

/// A request whose To ends with an empty parameter (`To: sip:b@h;`) parses; the ACK built
/// for a final response to it must carry a To.
#[test]
fn ack_for_a_to_with_a_trailing_semicolon() {
    use bytes::Bytes;
    use hotline_sip::rewrite::{ack_for, response};
    let req =
        b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
From: <sip:a@example.net>;tag=1\r\nTo: sip:+16505552222@ss1.example.net;\r\nCall-ID: semi\r\n\
CSeq: 56 INVITE\r\nContent-Length: 0\r\n\r\n";
    let m = hotline_sip::Message::parse(Bytes::from_static(req));
    let Ok(m) = m else {
        panic!("request parses: {m:?}");
    };
    let resp = hotline_sip::Message::parse(Bytes::from(response(
        &m,
        486,
        "Busy",
        Some(b"t9"),
        None,
        &[],
    )));
    let Ok(resp) = resp else {
        panic!("response parses: {resp:?}");
    };
    assert!(
        !resp.to_value().is_empty(),
        "the response's To is not indexed"
    );
    let ack = hotline_sip::Message::parse(Bytes::from(ack_for(&m, &resp)));
    assert!(ack.is_ok(), "ACK does not parse: {ack:?}");
}

/// Every RFC 4475 fixture is a seed.
#[test]
fn torture_fixtures_are_all_seeds() {
    let n = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/torture"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(
        seeds::TORTURE.len(),
        n,
        "a torture fixture is missing from seeds.rs"
    );
}

/// Found by the bounded random run in CI: a request with a bad SIP version and a broken Via is
/// answered 505 with its lines copied as they were (RFC 3261 §8.2.6); that answer need not
/// parse, like the 400 for any unparsable request.
#[test]
fn answer_to_a_bad_version_request_copies_its_broken_lines() {
    let input: [u8; 73] = [
        0, 3, 64, 0, 73, 78, 86, 73, 84, 69, 32, 83, 105, 112, 58, 52, 48, 48, 56, 48, 48, 49, 50,
        51, 52, 64, 49, 48, 46, 48, 46, 48, 46, 49, 58, 53, 48, 54, 48, 32, 83, 73, 80, 47, 50, 46,
        48, 54, 10, 86, 105, 97, 58, 32, 83, 73, 80, 47, 50, 46, 48, 47, 85, 68, 80, 32, 49, 48, 2,
        3, 1, 119, 1,
    ];
    hotline_sip_fuzz::proxy(&input);
}
