//! Resource use at rest (issue 14): a switch that has gone quiet must be idle. After a basic
//! call, a hunt past a 486, a caller's CANCEL and a ring timeout, and once every transaction
//! and dialog they left has expired, Hotline's CPU over 5 s stays under 2 % of a core and its
//! threads, open fds and RSS do not grow between two samples 5 s apart — with the admin endpoint
//! used and a TCP connection held open, the config watcher polling and the CDR writer idle.

use hotline_e2e::*;
use hotline_testkit::proc;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// T1 for these tests: most RFC 3261 state lives 64 × T1, so 50 ms lets it expire in 3.2 s.
const T1: &str = "50ms";
/// Longest per-call state: Timer D of the client INVITE transactions that got a 486 or 487
/// (at least 32 s over UDP whatever T1 is, RFC 3261 §17.1.1.2), plus a margin. This is also
/// when the idle spin of issue 14 began: the shard's sleep fired for the last deadline.
const SETTLE: Duration = Duration::from_secs(35);
/// The measured window.
const WINDOW: Duration = Duration::from_secs(5);

#[test]
fn quiet_switch_is_idle_after_calls_of_every_kind() {
    idle_after_calls_of_every_kind(None);
}

/// The same with wake-up coalescing on (`server.coalesce_us`): the calls work, and once
/// they are over the shard stops pausing (it pauses only after a turn that read datagrams),
/// so it is as idle as without.
#[test]
fn quiet_switch_with_coalescing_is_idle_after_calls_of_every_kind() {
    idle_after_calls_of_every_kind(Some(300));
}

fn idle_after_calls_of_every_kind(coalesce_us: Option<u32>) {
    let t = Duration::from_secs(30);
    let answer = start(Sipp::uas("uas_answer").calls(2).timeout(t));
    let busy = start(Sipp::uas("uas_486").calls(1).timeout(t));
    let ringing = start(Sipp::uas("uas_ring_noanswer").calls(2).timeout(t));
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .t1(T1)
            .ring_timeout("2s")
            .target("answer", &answer.uri("1001"))
            .target("busy", &busy.uri("1002"))
            .target("ringing", &ringing.uri("1003"))
            // basic call
            .number(NUMBER, &["answer"])
            // hunt: 486, then answered
            .number("4008001235", &["busy", "answer"])
            // the caller CANCELs while it rings
            .number("4008001236", &["ringing"])
            // ring timeout, nobody else: 480
            .number("4008001237", &["ringing"])
            .with_admin()
            .to_toml()
            .replacen(
                "[server]\n",
                &match coalesce_us {
                    Some(us) => format!("[server]\ncoalesce_us = {us}\n"),
                    None => "[server]\n".into(),
                },
                1,
            ),
    );
    let pid = hotline.pid().expect("hotline running");

    let uac = |scenario: &str, number: &str, ms: u64| {
        run(Sipp::uac(scenario, hotline.sip_addr())
            .service(number)
            .calls(1)
            .duration_ms(ms)
            .timeout(Duration::from_secs(20)))
    };
    let basic = uac("uac", NUMBER, 200);
    assert_eq!(basic.final_codes(), vec![200], "{}", basic.summary());
    // After one call (and its records) the CDR files are open: what later calls add must be
    // nothing.
    assert_eq!(
        wait_cdr_calls(hotline.cdr_dir(), 1, Duration::from_secs(10)).len(),
        1
    );
    let base = proc::usage(pid).expect("read /proc");
    let base_fds = proc::fd_targets(pid);
    let hunt = uac("uac", "4008001235", 200);
    assert_eq!(hunt.final_codes(), vec![200], "{}", hunt.summary());
    let cancel = uac("uac_cancel", "4008001236", 200);
    assert_eq!(cancel.final_codes(), vec![487], "{}", cancel.summary());
    let timeout = uac("uac_reject", "4008001237", 200);
    assert!(
        timeout.final_codes().iter().all(|c| (400..600).contains(c))
            && !timeout.final_codes().is_empty(),
        "ring timeout gives a final error: {}",
        timeout.summary()
    );
    let calls = wait_cdr_calls(hotline.cdr_dir(), 4, Duration::from_secs(10));
    assert_eq!(calls.len(), 4, "one CDR per call");

    // The admin endpoint answered, and a TCP connection stays open through the window: its
    // task (idle timeout, outbound queue) must wait, not poll.
    let metrics = hotline.metrics().expect("GET /metrics");
    // The process series report what /proc says.
    let threads = hotline_testkit::metric_value(&metrics, "process_threads");
    let now = proc::usage(pid).expect("read /proc");
    assert_eq!(
        threads,
        Some(now.threads as f64),
        "process_threads on /metrics"
    );
    assert!(
        hotline_testkit::metric_value(&metrics, "process_resident_memory_bytes")
            .is_some_and(|b| b > 1e6),
        "process_resident_memory_bytes missing"
    );
    let mut tcp = TcpStream::connect(hotline.sip_addr()).expect("TCP connect");
    let local = tcp.local_addr().expect("local addr");
    let options = String::from_utf8_lossy(
        &RawRequest::new("OPTIONS", &format!("sip:{}", hotline.sip_addr()), local).to_bytes(),
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(options.as_bytes()).expect("TCP write");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut buf = [0u8; 2048];
    let n = tcp.read(&mut buf).expect("OPTIONS answered over TCP");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    std::thread::sleep(SETTLE);
    let (a, b) = proc::sample_pair(pid, WINDOW).expect("read /proc");
    assert_at_rest(&a, &b, "after calls");
    drop(tcp);
    // What the calls left behind is bounded: no thread or fd per call (the one TCP
    // connection still open is the only fd allowed beyond the first call's).
    assert!(
        b.threads <= base.threads && b.fds <= base.fds + 1,
        "held after the calls: threads {} -> {}, fds {} -> {}\nafter the first call: {base_fds:?}\nnow: {:?}",
        base.threads,
        b.threads,
        base.fds,
        b.fds,
        proc::fd_targets(pid)
    );
    for p in [answer, busy, ringing] {
        let _ = stop(p);
    }
}

#[test]
fn switch_that_never_had_a_call_is_idle() {
    let hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("t", "sip:1001@127.0.0.1:5999")
            .number(NUMBER, &["t"])
            .to_toml(),
    );
    let pid = hotline.pid().expect("hotline running");
    std::thread::sleep(Duration::from_secs(1));
    let (a, b) = proc::sample_pair(pid, WINDOW).expect("read /proc");
    assert_at_rest(&a, &b, "never called");
}
