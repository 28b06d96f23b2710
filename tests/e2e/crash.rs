//! Crash safety of the CDRs (issue 5): SIGKILL Hotline under load, restart it on the same CDR
//! directory, and check that every call completed longer than one fsync interval before the
//! kill has exactly one call record, that no call has two, and that no line is corrupt.

use hotline_e2e::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default `server.cdr.fsync_interval`: what a power cut or SIGKILL may lose.
const FSYNC: f64 = 0.2;

#[test]
fn sigkill_under_load_loses_nothing_older_than_the_fsync_interval() {
    let cdr = tempfile::tempdir().expect("tempdir");
    let target = start(
        Sipp::uas("uas_answer")
            .calls(1000)
            .timeout(Duration::from_secs(40)),
    );
    let config = HotlineConfig::new()
        .target("desk", &target.uri("1001"))
        .number(NUMBER, &["desk"])
        .to_toml()
        .replace("@CDR_DIR@", &cdr.path().display().to_string());
    let mut first = Hotline::spawn(&config);
    let caller = start(
        Sipp::uac("uac", first.sip_addr())
            .service(NUMBER)
            .calls(1000)
            .rate(50)
            .duration_ms(100)
            .timeout(Duration::from_secs(30)),
    );
    std::thread::sleep(Duration::from_secs(4));
    let pid = first.pid().expect("hotline has no pid");
    let killed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if let Err(e) = hotline_testkit::hotline::send_signal(pid, "KILL") {
        panic!("kill -9: {e}");
    }
    let exit = first.wait_exit(Duration::from_secs(5));
    assert!(
        matches!(exit, Ok(Some(ref s)) if !s.success()),
        "hotline died of SIGKILL: {exit:?}"
    );
    let caller = stop(caller);
    let _ = stop(target);

    // Calls the caller saw completed (200 to its BYE) before the kill.
    let completed: Vec<(String, f64)> = caller
        .messages
        .iter()
        .filter(|m| {
            m.direction == Direction::Received
                && m.message.status() == Some(200)
                && m.message.cseq_method().as_deref() == Some("BYE")
        })
        .filter_map(|m| Some((m.message.header("Call-ID")?, m.at)))
        .collect();
    assert!(
        completed.len() >= 50,
        "only {} calls completed before the kill",
        completed.len()
    );

    // Restart on the same directory: recovery cuts a torn tail and seals open files.
    let mut second = Hotline::spawn(&config);
    let status = second.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");

    let mut ids: Vec<String> = Vec::new();
    let stats = hotline_cdr::reader::scan_calls(cdr.path(), |c| ids.push(c.call_id.clone()))
        .expect("reading the CDRs");
    assert_eq!(stats.bad, 0, "no corrupt line: {stats:?}");
    assert_eq!(
        stats.torn_tails, 0,
        "the restart cut every torn tail: {stats:?}"
    );
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a call with two records");
    let mut lost = Vec::new();
    for (id, at) in &completed {
        // SIPp logs local time; these machines run in UTC.
        if *at < killed_at - FSYNC - 0.1 && !ids.contains(id) {
            lost.push(id.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} calls completed > {FSYNC} s before the kill have no record: {lost:?}",
        lost.len(),
        completed.len()
    );
}
