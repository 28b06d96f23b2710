//! Reload under traffic (issue 3): the config file is rewritten while SIPp places calls at a
//! steady rate. Hotline polls its config files every second (and reloads on SIGHUP); a good
//! file is swapped in whole with the next generation, a broken one is reported on stderr with
//! every error and the running table keeps serving. No call may fail either way, and every
//! CDR names the generation it was routed with.

use std::time::{Duration, Instant};

use hotline_e2e::*;

use crate::exec_support::*;

/// Calls per second and calls per run: 4 s of traffic.
const RATE: u32 = 10;
const CALLS: u32 = 40;

/// The config routing [`NUMBER`] to `to` (targets `old` and `new` are both defined, so the
/// file differs only in the plan's member).
fn config(old_uri: &str, new_uri: &str, to: &str) -> String {
    HotlineConfig::new()
        .target("old", old_uri)
        .target("new", new_uri)
        .number(NUMBER, &[to])
        // Keep the target that is not routed in use, so the file has no warnings.
        .number("4008005678", &[if to == "old" { "new" } else { "old" }])
        .to_toml()
}

/// A target that answers any number of calls until stopped.
fn answering_target() -> SippProcess {
    start(Sipp::uas("uas_answer").timeout(Duration::from_secs(30)))
}

fn traffic(hotline: &Hotline) -> SippProcess {
    start(
        Sipp::uac("uac", hotline.sip_addr())
            .service(NUMBER)
            .calls(CALLS)
            .rate(RATE)
            .duration_ms(100)
            .timeout(Duration::from_secs(30)),
    )
}

#[track_caller]
fn write(hotline: &Hotline, toml: &str) {
    if let Err(e) = hotline.write_config(toml) {
        panic!("rewriting the config: {e}");
    }
}

#[track_caller]
fn stop_target(p: SippProcess) -> SippResult {
    p.stop().expect("sipp stop")
}

/// (generation, answered target) of every call, ordered by call start.
fn generations(cdrs: &[CallRecord]) -> Vec<(u64, String)> {
    let mut v: Vec<&CallRecord> = cdrs.iter().collect();
    v.sort_by_key(|c| c.start);
    v.iter()
        .map(|c| (c.config_generation, c.answered_target.clone()))
        .collect()
}

#[test]
fn config_change_under_traffic_reroutes_new_calls_and_fails_none() {
    let old = answering_target();
    let new = answering_target();
    let (old_uri, new_uri) = (old.uri("1001"), new.uri("1002"));
    let mut hotline = Hotline::spawn(&config(&old_uri, &new_uri, "old"));
    let caller = traffic(&hotline);
    std::thread::sleep(Duration::from_millis(1500));
    write(&hotline, &config(&old_uri, &new_uri, "new"));
    let written = Instant::now();
    assert!(
        hotline.wait_for_stderr("generation 2 loaded", Duration::from_secs(3)),
        "the file watcher reloads within its 1 s poll:\n{}",
        hotline.stderr_tail(20)
    );
    let picked_up = written.elapsed();
    assert!(
        picked_up < Duration::from_millis(2500),
        "reload took {picked_up:?}"
    );
    let caller = finish(caller);
    assert_all_ok(&caller, u64::from(CALLS), "no call fails across the reload");
    let old = stop_target(old);
    let new = stop_target(new);
    let (n_old, n_new) = (
        old.received_request_calls("INVITE").len(),
        new.received_request_calls("INVITE").len(),
    );
    assert_eq!(
        n_old + n_new,
        CALLS as usize,
        "every call reached a target once"
    );
    assert!(n_old > 0 && n_new > 0, "old {n_old}, new {n_new}");

    let status = hotline.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");
    let calls = cdr_calls(hotline.cdr_dir());
    assert_eq!(calls.len(), CALLS as usize);
    let gens = generations(&calls);
    for (g, target) in &gens {
        let want = if *g == 1 {
            ("old", &old_uri)
        } else {
            ("new", &new_uri)
        };
        assert!(
            *g <= 2 && is_target(target, want.0, want.1),
            "generation {g} routes to {}, got {target:?}: {gens:?}",
            want.0
        );
    }
    let switch = gens.iter().position(|(g, _)| *g == 2).unwrap_or(gens.len());
    assert!(
        gens[switch..].iter().all(|(g, _)| *g == 2),
        "once the new generation serves, no later call uses the old one: {gens:?}"
    );
    assert_eq!(
        switch, n_old,
        "CDR generations agree with the targets: {gens:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| c.disposition == hotline_cdr::Disposition::Answered),
        "{calls:#?}"
    );
    let hashes: std::collections::BTreeSet<&str> =
        calls.iter().map(|c| c.config_hash.as_str()).collect();
    assert_eq!(hashes.len(), 2, "each generation has its own config hash");
}

#[test]
fn broken_config_under_traffic_is_reported_and_the_old_table_keeps_serving() {
    let old = answering_target();
    let new = answering_target();
    let (old_uri, new_uri) = (old.uri("1001"), new.uri("1002"));
    let mut hotline = Hotline::spawn(&config(&old_uri, &new_uri, "old"));
    let caller = traffic(&hotline);
    std::thread::sleep(Duration::from_millis(1000));
    // Routes to the new target but names a target that does not exist, and the other number
    // names a plan that does not exist: both errors must be reported at once, with file and
    // line, and nothing of the file applied.
    let good = config(&old_uri, &new_uri, "new");
    let broken = good
        .replace("members = [\"new\"]", "members = [\"new\", \"desk-9\"]")
        .replace("plan = \"p4008005678\"", "plan = \"nope\"");
    assert!(
        broken.contains("desk-9") && broken.contains("nope"),
        "the edits applied"
    );
    write(&hotline, &broken);
    assert!(
        hotline.wait_for_stderr("reload failed", Duration::from_secs(3)),
        "the failed reload is reported:\n{}",
        hotline.stderr_tail(20)
    );
    // The report is several lines: wait for both errors, not a guessed 100 ms.
    for needle in ["\"desk-9\"", "\"nope\""] {
        assert!(
            hotline.wait_for_stderr(needle, Duration::from_secs(3)),
            "{needle} not reported:\n{}",
            hotline.stderr_tail(40)
        );
    }
    let report = hotline.stderr_tail(40);
    assert!(
        report.contains("\"desk-9\"") && report.contains("\"nope\""),
        "every error is reported:\n{report}"
    );
    assert!(
        report.contains("hotline.toml:"),
        "the report names the file and line:\n{report}"
    );
    let caller = finish(caller);
    assert_all_ok(
        &caller,
        u64::from(CALLS),
        "no call fails on a broken reload",
    );

    // Fixed file: picked up as generation 2.
    write(&hotline, &config(&old_uri, &new_uri, "new"));
    assert!(
        hotline.wait_for_stderr("generation 2 loaded", Duration::from_secs(3)),
        "the fixed file loads as the next generation:\n{}",
        hotline.stderr_tail(20)
    );
    let after = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .duration_ms(100)
        .timeout(Duration::from_secs(20)));
    assert_all_ok(&after, 1, "call after the fix");

    let old = stop_target(old);
    let new = stop_target(new);
    assert_eq!(
        old.received_request_calls("INVITE").len(),
        CALLS as usize,
        "every call of the run stayed on the old table"
    );
    assert_eq!(
        new.received_request_calls("INVITE").len(),
        1,
        "only the call after the fix"
    );
    let status = hotline.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");
    let calls = cdr_calls(hotline.cdr_dir());
    let gens = generations(&calls);
    assert_eq!(gens.len(), CALLS as usize + 1);
    assert!(
        gens[..CALLS as usize].iter().all(|(g, _)| *g == 1),
        "the broken file never became a generation: {gens:?}"
    );
    assert_eq!(gens[CALLS as usize].0, 2, "{gens:?}");
}

#[test]
fn sighup_reloads_at_once() {
    let target = start(
        Sipp::uas("uas_answer")
            .calls(2)
            .timeout(Duration::from_secs(20)),
    );
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"])
            .to_toml(),
    );
    let addr = hotline.sip_addr();
    let call = || {
        run(Sipp::uac("uac", addr)
            .service(NUMBER)
            .calls(1)
            .duration_ms(100)
            .timeout(Duration::from_secs(20)))
    };
    // The first call also makes sure the signal handlers are installed.
    assert_all_ok(&call(), 1, "call before the reload");
    let sent = Instant::now();
    if let Err(e) = hotline.reload() {
        panic!("SIGHUP: {e}");
    }
    // The file did not change, so the 1 s poll cannot be what reloads it.
    assert!(
        hotline.wait_for_stderr("generation 2 loaded", Duration::from_millis(900)),
        "SIGHUP reloads at once:\n{}",
        hotline.stderr_tail(20)
    );
    assert!(sent.elapsed() < Duration::from_millis(900));
    assert!(hotline.is_running(), "SIGHUP does not stop Hotline");
    assert_all_ok(&call(), 1, "call after the reload");
    let target = finish(target);
    assert_all_ok(&target, 2, "target");
    let status = hotline.stop();
    assert!(matches!(status, Ok(s) if s.success()), "{status:?}");
    let gens: Vec<u64> = generations(&cdr_calls(hotline.cdr_dir()))
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    assert_eq!(gens, vec![1, 2], "each CDR carries its generation");
}

/// A SIGHUP that comes the moment the switch says it listens (logrotate, an eager operator)
/// is a reload, never the default action (which kills the process). The handlers are
/// installed before anything listens. Before that fix, `ops::log_level_from_the_config_…`
/// (which sends SIGHUP right after start) died this way in 1 of 4 runs on a loaded box.
#[test]
fn sighup_right_after_start_reloads_and_does_not_kill() {
    let mut hotline = Hotline::spawn(
        &HotlineConfig::new()
            .target("t", "sip:1001@127.0.0.1:9")
            .number(NUMBER, &["t"])
            .to_toml(),
    );
    for _ in 0..3 {
        if let Err(e) = hotline.reload() {
            panic!("SIGHUP: {e}");
        }
    }
    assert!(
        hotline.wait_for_stderr("reload:", Duration::from_secs(10)),
        "no reload after an early SIGHUP\n{}",
        hotline.stderr_tail(20)
    );
    assert!(
        hotline.is_running(),
        "an early SIGHUP stopped the switch\n{}",
        hotline.stderr_tail(20)
    );
}
