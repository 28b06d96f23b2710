//! Operations (issue 7): the admin endpoint of a real `hotline` process. `/metrics` counters
//! checked against the calls SIPp made and the CDRs written; `/readyz` flipping to 503 while
//! draining after SIGTERM; `hotline reload` / `status` / `log-level` against the running
//! instance, including a broken config that is reported while the old one keeps serving;
//! `hotline check` exit codes on the shipped configs; `systemd-analyze verify` on the unit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hotline_e2e::*;

/// The testkit template turns the admin endpoint off (parallel tests would fight over 9060);
/// these tests want it, on an ephemeral port.
fn with_admin(cfg: HotlineConfig) -> String {
    let toml = cfg.to_toml();
    assert!(
        toml.contains("admin = \"off\""),
        "template changed:\n{toml}"
    );
    toml.replacen("admin = \"off\"", "admin = \"127.0.0.1:0\"", 1)
}

/// The admin address from the `admin endpoint http://ADDR` log line.
fn admin_addr(h: &Hotline) -> SocketAddr {
    assert!(
        h.wait_for_stderr("admin endpoint http://", Duration::from_secs(5)),
        "no admin log line:\n{}",
        h.stderr_tail(20)
    );
    h.stderr_matching("admin endpoint http://")
        .iter()
        .find_map(|l| {
            let rest = &l[l.find("http://")? + 7..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("cannot parse the admin address:\n{}", h.stderr_tail(20)))
}

/// One HTTP request; `(status, body)`. `None` when nothing answers.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, "").unwrap_or_else(|| panic!("GET {path}: no answer from {addr}"))
}

/// The value of one sample line (`name{labels}` exactly as rendered).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[track_caller]
fn metric(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
}

/// Polls `/metrics` until `series` reaches `want` (or the timeout), returning the last scrape.
fn scrape_until(addr: SocketAddr, series: &str, want: f64, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, m) = get(addr, "/metrics");
        if sample(&m, series) == Some(want) || Instant::now() >= deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hotline_bin() -> PathBuf {
    hotline_testkit::paths::hotline_bin().expect("hotline binary")
}

/// Runs the `hotline` CLI with `args`.
fn cli(args: &[&str]) -> Output {
    Command::new(hotline_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running hotline {args:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn metrics_match_the_calls_made_and_the_cdrs() {
    const ANSWERED: u32 = 20;
    const UNKNOWN: u32 = 3;
    let target = start(
        Sipp::uas("uas_answer")
            .calls(ANSWERED)
            .timeout(Duration::from_secs(60)),
    );
    let hotline = Hotline::spawn(&with_admin(
        HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"]),
    ));
    let admin = admin_addr(&hotline);
    let (code, body) = get(admin, "/readyz");
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    let before = get(admin, "/metrics").1;
    assert_eq!(metric(&before, "hotline_calls_started_total"), 0.0);
    assert_eq!(metric(&before, "hotline_ready"), 1.0);

    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(ANSWERED)
        .rate(20)
        .limit(20)
        .duration_ms(100)
        .timeout(Duration::from_secs(60)));
    assert_all_ok(&caller, u64::from(ANSWERED), "caller");
    let rejected = run(Sipp::uac("uac_reject", hotline.sip_addr())
        .service(UNKNOWN_NUMBER)
        .calls(UNKNOWN)
        .timeout(Duration::from_secs(30)));
    assert_all_ok(&rejected, u64::from(UNKNOWN), "caller of an unknown number");
    let total = f64::from(ANSWERED + UNKNOWN);

    let m = scrape_until(
        admin,
        "hotline_carrier_calls_total{carrier=\"telecom\"}",
        total,
        Duration::from_secs(10),
    );
    let answered = f64::from(ANSWERED);
    let unknown = f64::from(UNKNOWN);
    let eq = |series: &str, want: f64| {
        assert_eq!(metric(&m, series), want, "{series}\n{m}");
    };
    eq("hotline_calls_started_total", total);
    eq("hotline_calls_total{disposition=\"answered\"}", answered);
    eq("hotline_calls_total{disposition=\"failed\"}", unknown);
    eq("hotline_calls_total{disposition=\"busy\"}", 0.0);
    eq(
        "hotline_calls_rejected_total{cause=\"unknown_number\"}",
        unknown,
    );
    eq("hotline_calls_active", 0.0);
    eq("hotline_calls_talking", 0.0);
    // Every call came from 127.0.0.1 (trunk "loopback"); both numbers are 电信 (4008 / 4009).
    eq("hotline_trunk_calls_total{trunk=\"loopback\"}", total);
    eq(
        "hotline_trunk_calls_answered_total{trunk=\"loopback\"}",
        answered,
    );
    eq(
        "hotline_carrier_calls_answered_total{carrier=\"telecom\"}",
        answered,
    );
    eq("hotline_carrier_calls_total{carrier=\"unicom\"}", 0.0);
    // One attempt per answered call; refused calls do not enter the hunt histogram.
    eq("hotline_hunt_depth_count", answered);
    eq("hotline_hunt_depth_bucket{le=\"1\"}", answered);
    eq("hotline_hunt_attempts_total{reason=\"answered\"}", answered);
    eq("hotline_time_to_answer_seconds_count", answered);
    // uas_answer answers at once: every answer within half a second on loopback.
    eq(
        "hotline_time_to_answer_seconds_bucket{le=\"0.5\"}",
        answered,
    );
    // SIP: each caller INVITE / BYE arrived (retransmissions may add INVITEs, never remove).
    assert!(metric(&m, "hotline_sip_requests_received_total{method=\"INVITE\"}") >= total);
    eq(
        "hotline_sip_requests_received_total{method=\"BYE\"}",
        answered,
    );
    // Forwarded INVITEs to the target, and its 200s back.
    assert!(metric(&m, "hotline_sip_requests_sent_total{method=\"INVITE\"}") >= answered);
    assert!(metric(&m, "hotline_sip_responses_received_total{class=\"2xx\"}") >= answered * 2.0);
    assert!(metric(&m, "hotline_sip_responses_sent_total{class=\"4xx\"}") >= unknown);
    eq("hotline_sip_parse_errors_total", 0.0);
    eq("hotline_config_generation", 1.0);

    // The CDR writer saw the same calls (call + attempt records) and the files agree.
    let cdrs = wait_cdr_calls(
        hotline.cdr_dir(),
        (ANSWERED + UNKNOWN) as usize,
        Duration::from_secs(5),
    );
    assert_eq!(cdrs.len(), (ANSWERED + UNKNOWN) as usize);
    let cdr_answered = cdrs
        .iter()
        .filter(|c| c.disposition == hotline_cdr::Disposition::Answered)
        .count();
    assert_eq!(cdr_answered as f64, answered);
    let m = scrape_until(
        admin,
        "hotline_cdr_records_total{stage=\"synced\"}",
        total + answered,
        Duration::from_secs(5),
    );
    eq_in(
        &m,
        "hotline_cdr_records_total{stage=\"submitted\"}",
        total + answered,
    );
    eq_in(&m, "hotline_cdr_records_total{stage=\"lost\"}", 0.0);
    eq_in(&m, "hotline_cdr_spill_depth", 0.0);

    // Every series the dashboard and docs/OPERATIONS.md name is exported.
    let exported: Vec<&str> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect();
    let root = hotline_testkit::paths::workspace_root();
    for doc in ["config/grafana-dashboard.json", "docs/OPERATIONS.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap_or_default();
        let names = metric_names(&text);
        assert!(names.len() > 20, "{doc}: only {names:?}");
        for n in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| exported.contains(b)))
                .unwrap_or(&n);
            assert!(
                exported.contains(&base),
                "{doc} names {n}, which is not exported"
            );
        }
    }

    // /status agrees.
    let (code, status) = get(admin, "/status");
    assert_eq!(code, 200);
    assert!(
        status.contains(&format!("\"started_total\":{}", ANSWERED + UNKNOWN)),
        "{status}"
    );
    assert!(status.contains("\"ready\":true"), "{status}");
    drop(finish(target));
}

/// `hotline_*` metric names in a document (log filters like `hotline_sip=trace` excluded).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hotline_") {
        let after = &rest[i..];
        let end = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        let next = after[end..].chars().next();
        let preceded = rest[..i].chars().last();
        if !name.ends_with('_')
            && !matches!(next, Some('=' | ':'))
            && !matches!(preceded, Some('_' | '.'))
        {
            out.insert(name.to_owned());
        }
        rest = &after[end..];
    }
    out
}

#[track_caller]
fn eq_in(m: &str, series: &str, want: f64) {
    assert_eq!(metric(m, series), want, "{series}\n{m}");
}

#[test]
fn readyz_is_503_while_draining_and_health_stays_200() {
    // The target rings and never answers: the call holds the drain open for the ring time.
    let ringing = start(
        Sipp::uas("uas_ring_noanswer")
            .calls(1)
            .timeout(Duration::from_secs(30)),
    );
    let mut hotline = Hotline::spawn(&with_admin(
        HotlineConfig::new()
            .ring_timeout("4s")
            .target("ringing", &ringing.uri("1001"))
            .number(NUMBER, &["ringing"]),
    ));
    let admin = admin_addr(&hotline);
    assert_eq!(get(admin, "/readyz").0, 200);
    let caller = start(
        Sipp::uac("uac_reject", hotline.sip_addr())
            .service(NUMBER)
            .calls(1)
            .timeout(Duration::from_secs(30)),
    );
    let m = scrape_until(admin, "hotline_calls_active", 1.0, Duration::from_secs(5));
    assert_eq!(metric(&m, "hotline_calls_active"), 1.0, "{m}");

    let pid = hotline.pid().expect("hotline has no pid");
    if let Err(e) = hotline_testkit::hotline::send_signal(pid, "TERM") {
        panic!("SIGTERM: {e}");
    }
    // Draining: not ready, still alive, and says why.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut ready = get(admin, "/readyz");
    while ready.0 != 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        ready = get(admin, "/readyz");
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(ready.1.contains("draining"), "{}", ready.1);
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_owned()));
    let (_, status) = get(admin, "/status");
    assert!(status.contains("\"draining\":true"), "{status}");
    let m = get(admin, "/metrics").1;
    assert_eq!(metric(&m, "hotline_draining"), 1.0);
    assert_eq!(metric(&m, "hotline_ready"), 0.0);
    assert_eq!(
        metric(&m, "hotline_calls_active"),
        1.0,
        "the call is still ringing"
    );

    // The hunt ends (ring timeout), the process flushes and exits 0; the admin port closes.
    let status = hotline.stop().expect("stop");
    assert!(status.success(), "exit {status}");
    assert!(
        http(admin, "GET", "/healthz", "").is_none(),
        "admin still answers after exit"
    );
    let caller = finish(caller);
    assert_eq!(caller.final_codes().len(), 1, "{}", caller.summary());
    // The target is stopped rather than awaited: the drain can end before the target's 487 is
    // ACKed (see the report of issue 7), and its scenario would wait for its own timeout.
    let ringing = stop(ringing);
    assert!(ringing.saw_request("CANCEL"), "{}", ringing.summary());
    assert_eq!(
        cdr_calls(hotline.cdr_dir()).len(),
        1,
        "the drained call has its CDR"
    );
}

#[test]
fn cli_reload_status_and_log_level_against_the_running_instance() {
    let target = start(
        Sipp::uas("uas_answer")
            .calls(1)
            .timeout(Duration::from_secs(40)),
    );
    let hotline = Hotline::spawn(&with_admin(
        HotlineConfig::new()
            .target("desk", &target.uri("1001"))
            .number(NUMBER, &["desk"]),
    ));
    let admin = admin_addr(&hotline).to_string();
    let a = ["--admin", admin.as_str()];

    let out = cli(&[&["status"], &a[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("state:     ready"), "{s}");
    assert!(s.contains("generation 1 "), "{s}");

    let out = cli(&[&["reload"], &a[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("generation 2 loaded"),
        "{}",
        text(&out.stdout)
    );

    // Runtime log level: debug lines appear after the change.
    assert!(hotline.stderr_matching("admin request").is_empty());
    let out = cli(&[&["log-level", "debug"], &a[..]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "log filter: debug\n");
    let _ = get(admin_addr(&hotline), "/healthz");
    assert!(hotline.wait_for_stderr("admin request", Duration::from_secs(3)));
    let out = cli(&[&["log-level", "info,hotline=loud"], &a[..]].concat());
    assert_eq!(out.status.code(), Some(1), "a bad filter is refused");
    assert!(
        text(&out.stderr).contains("invalid log filter"),
        "{}",
        text(&out.stderr)
    );

    // Break the config: reload reports every error (exit 1) and the old config keeps serving.
    let path = hotline.dir().join("hotline.toml");
    let good = std::fs::read_to_string(&path).unwrap_or_default();
    let broken = format!("{good}\n[targets.\"ghost\"]\nuri = \"not a uri\"\n[numbers.\"4008009999\"]\ncompany = \"test\"\nplan = \"nope\"\n");
    if let Err(e) = std::fs::write(&path, broken) {
        panic!("write {}: {e}", path.display());
    }
    let out = cli(&[&["reload"], &a[..]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("reload failed"), "{err}");
    assert!(err.contains("hotline.toml"), "errors name the file: {err}");
    assert!(err.contains("nope"), "errors name the bad plan: {err}");
    let adm = admin_addr(&hotline);
    assert_eq!(
        get(adm, "/readyz").0,
        200,
        "a failed reload keeps the instance ready"
    );
    let m = get(adm, "/metrics").1;
    assert_eq!(metric(&m, "hotline_config_generation"), 2.0);
    assert!(metric(&m, "hotline_config_reloads_total{result=\"failed\"}") >= 1.0);
    assert_eq!(
        metric(&m, "hotline_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    let caller = run(Sipp::uac("uac", hotline.sip_addr())
        .service(NUMBER)
        .calls(1)
        .duration_ms(100)
        .timeout(Duration::from_secs(20)));
    assert_all_ok(&caller, 1, "call after a failed reload");
    drop(finish(target));

    // Unreachable instance: exit 2.
    drop(hotline);
    let out = cli(&[&["status"], &a[..]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

fn config_dir() -> PathBuf {
    hotline_testkit::paths::workspace_root().join("config")
}

#[test]
fn check_exit_codes_on_shipped_and_broken_configs() {
    let dir = config_dir();
    for f in [
        "hotline.toml",
        "full-example.toml",
        "multi-company.toml",
        "etc-hotline/hotline.toml",
    ] {
        let p = dir.join(f);
        let out = cli(&["check", &p.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(0), "{f}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(": ok ("), "{f}");
    }
    let tmp = tempfile_dir().expect("cannot make a temporary directory");
    let bad = tmp.join("bad.toml");
    let _ = std::fs::write(&bad, "[server]\nlisten = [\"nowhere\"]\nbogus = 1\n");
    let out = cli(&["check", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    let out = cli(&["check", &tmp.join("missing.toml").to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Every shipped file checks on its own terms: the /etc/hotline directory as a whole (its rate
/// file is recognised and left out, not read as routing), company fragments with the file
/// that includes them, rate files with the billing parser.
#[test]
fn check_takes_shipped_directories_fragments_and_rate_files() {
    let dir = config_dir();
    let out = cli(&["check", &dir.join("etc-hotline").to_string_lossy()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("billing.toml: a rate file") && stdout.contains("skipped"),
        "{stdout}"
    );
    assert!(stdout.contains(": ok (2 numbers"), "{stdout}");
    for (fragment, main) in [
        (
            "etc-hotline/companies/acme.toml",
            "etc-hotline/hotline.toml",
        ),
        (
            "etc-hotline/companies/beta.toml",
            "etc-hotline/hotline.toml",
        ),
        ("companies/acme.toml", "multi-company.toml"),
        ("companies/beta.toml", "multi-company.toml"),
    ] {
        let out = cli(&["check", &dir.join(fragment).to_string_lossy()]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{fragment}: {stdout}{}",
            text(&out.stderr)
        );
        let main_path = dir.join(main);
        assert!(
            stdout.contains(&format!(
                "a fragment included by {}",
                main_path.to_string_lossy()
            )),
            "{fragment}: {stdout}"
        );
        assert!(stdout.contains(": ok ("), "{fragment}: {stdout}");
    }
    for rates in ["billing.toml", "etc-hotline/billing.toml"] {
        let out = cli(&["check", &dir.join(rates).to_string_lossy()]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{rates}: {}", text(&out.stderr));
        assert!(stdout.contains("ok: a rate file"), "{rates}: {stdout}");
    }
    // A broken rate file is an error (exit 1) naming the file and line once.
    let tmp = tempfile_dir().expect("cannot make a temporary directory");
    let bad = tmp.join("billing.toml");
    let _ = std::fs::write(
        &bad,
        "[plans.std]\nrate_per_minute = \"x\"\nmonthly_minimum = \"1.00\"\nterm_years = 1\n",
    );
    let out = cli(&["check", &bad.to_string_lossy()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("billing.toml").count(), 1, "path once: {err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A fresh directory under the system temp dir (the e2e crate has no tempfile dependency).
fn tempfile_dir() -> Option<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let p = std::env::temp_dir().join(format!("hotline-ops-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).ok()?;
    Some(p)
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = config_dir().join("systemd/hotline.service");
    let text_unit = match std::fs::read_to_string(&unit) {
        Ok(t) => t,
        Err(e) => panic!("{}: {e}", unit.display()),
    };
    // What the unit promises, checked even where systemd-analyze is missing.
    for needle in [
        "User=hotline",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=hotline",
        "LogsDirectory=hotline",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(text_unit.contains(needle), "unit lacks {needle}");
    }
    let has_tool = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tool {
        eprintln!(
            "SKIPPED systemd-analyze verify: the systemd-analyze tool is not installed here \
             (apt-get install systemd); the unit's contents were checked above"
        );
        return;
    }
    // verify insists the ExecStart binary exists: point it at the one just built.
    let tmp = tempfile_dir().expect("cannot make a temporary directory");
    let copy = tmp.join("hotline.service");
    let bin = hotline_bin();
    let _ = std::fs::write(
        &copy,
        text_unit.replace("/usr/local/bin/hotline", &bin.to_string_lossy()),
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let _ = std::fs::remove_dir_all(&tmp);
    // Unknown keys are only warnings (exit 0): any complaint about our file fails the test.
    let complaints: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("hotline.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: exit {:?}\n{all}",
        out.status.code()
    );
}

/// `server.log_level` is applied at start and again on every reload (issue 7: levels change
/// at runtime, by `hotline log-level` or on reload).
#[test]
fn log_level_from_the_config_applies_at_start_and_on_reload() {
    let base = HotlineConfig::new()
        .with_admin()
        .target("desk", "sip:1001@127.0.0.1:9")
        .number(NUMBER, &["desk"])
        .to_toml();
    let with_level =
        |l: &str| base.replacen("[server]\n", &format!("[server]\nlog_level = \"{l}\"\n"), 1);
    // INFO stays on for hotline_server: the harness learns the port from its `listening` line.
    let hotline = Hotline::spawn(&with_level("info,hotline_sip=warn"));
    let admin = hotline.admin_addr().expect("no admin address");
    let level = hotline_testkit::http_get(admin, "/log-level").unwrap_or_else(|e| panic!("{e}"));
    assert!(level.contains("hotline_sip=warn"), "at start: {level}");
    if let Err(e) = hotline.write_config(&with_level("debug")) {
        panic!("rewrite config: {e}");
    }
    if let Err(e) = hotline.reload() {
        panic!("SIGHUP: {e}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let level = hotline_testkit::http_get(admin, "/log-level").unwrap_or_default();
        if level.contains("debug") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after reload: {level:?}\n{}",
            hotline.stderr_tail(30)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
