//! The company API (issue 19, docs/API.md): the real binary with `[server.api]`, a config
//! split into `hotline.toml` + `companies/acme.toml` + `companies/beta.toml`, tokens made with
//! `hotline api-token`, SIPp as caller and phones.
//!
//! - a phone bound through the API rings on the next SIPp call (and the change is in the
//!   company's file, comments kept; the live feed and the call records show the call);
//! - a second company's token gets 403 on everything of the first, and changes nothing;
//! - an edit of the file is visible in the API, a stale write gets 412, bad input gets every
//!   error with its path and writes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hotline_e2e::*;
use hotline_testkit::{api_token, http_request, HttpResponse, SseStream};

pub const ACME_NUMBER: &str = "4008001234";
pub const BETA_NUMBER: &str = "4006005678";

/// A running Hotline with the API, and tokens for acme, beta and the operator.
pub struct ApiSetup {
    pub hotline: Hotline,
    pub api: SocketAddr,
    pub acme: String,
    pub beta: String,
    pub ops: String,
}

/// The acme file as ops wrote it: a desk that nothing answers (its port is closed, so the
/// hunt moves on at once), comments to keep.
fn acme_file(desk_port: u16) -> String {
    format!(
        "# Acme 示例科技 — edited by ops and by the company API; comments stay.\n\
         [companies.acme]\nname = \"Acme\"\n\n\
         # the front desk (currently unplugged)\n\
         [targets.acme-desk]\nuri = \"sip:1001@127.0.0.1:{desk_port}\"\n\n\
         [plans.acme-main]\n\
         [[plans.acme-main.groups]]\nname = \"desks\"\nmembers = [\"acme-desk\"]\nring_timeout = \"3s\"\n\n\
         [numbers.\"{ACME_NUMBER}\"]\ncompany = \"acme\"\nplan = \"acme-main\"\n"
    )
}

fn beta_file(port: u16) -> String {
    format!(
        "[companies.beta]\nname = \"Beta\"\n\n\
         [targets.beta-office]\nuri = \"sip:8000@127.0.0.1:{port}\"\n\n\
         [plans.beta-main]\n[[plans.beta-main.groups]]\nmembers = [\"beta-office\"]\nring_timeout = \"3s\"\n\n\
         [numbers.\"{BETA_NUMBER}\"]\ncompany = \"beta\"\nplan = \"beta-main\"\n"
    )
}

/// Start Hotline with the API; `phones` is where the `phones` gateway (the companies' bound
/// phone numbers) points.
pub fn setup(phones: SocketAddr) -> ApiSetup {
    let closed = match hotline_testkit::ports::free_port() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let tok = |id: &str, c: Option<&str>| match api_token(id, c) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let (acme, acme_entry) = tok("acme-1", Some("acme"));
    let (beta, beta_entry) = tok("beta-1", Some("beta"));
    let (ops, ops_entry) = tok("ops", None);
    let main = format!(
        "include = [\"companies/*.toml\"]\n\n\
         [server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n\n\
         [server.cdr]\ndir = \"{}\"\nformat = \"csv\"\nfsync_interval = \"50ms\"\n\n\
         [server.api]\nlisten = \"127.0.0.1:0\"\ntokens = \"api-tokens.toml\"\ngateway = \"phones\"\nmax_body_bytes = 4096\n\n\
         [[server.trunks]]\nname = \"loopback\"\nsources = [\"127.0.0.1\"]\ntrusted = true\n\n\
         [gateways.phones]\naddress = \"{phones}\"\n",
        hotline_testkit::hotline::CDR_DIR_PLACEHOLDER
    );
    let tokens = format!("{acme_entry}\n{beta_entry}\n{ops_entry}");
    let hotline = match Hotline::try_spawn_with(
        &main,
        &[
            ("companies/acme.toml", &acme_file(closed)),
            ("companies/beta.toml", &beta_file(closed)),
            ("api-tokens.toml", &tokens),
        ],
    ) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    let mut api = hotline.api_addr();
    for _ in 0..50 {
        if api.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        api = hotline.api_addr();
    }
    let Some(api) = api else {
        panic!("no API address in the log:\n{}", hotline.stderr_tail(30));
    };
    ApiSetup {
        hotline,
        api,
        acme,
        beta,
        ops,
    }
}

impl ApiSetup {
    pub fn acme_path(&self) -> PathBuf {
        self.hotline.dir().join("companies/acme.toml")
    }

    pub fn acme_text(&self) -> String {
        std::fs::read_to_string(self.acme_path()).unwrap_or_default()
    }

    #[track_caller]
    pub fn call(&self, token: &str, method: &str, path: &str, body: &str) -> HttpResponse {
        self.call_h(token, method, path, body, &[])
    }

    #[track_caller]
    pub fn call_h(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> HttpResponse {
        let auth = format!("Bearer {token}");
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        match http_request(self.api, method, path, &h, body.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
}

fn json(r: &HttpResponse) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

/// Issue 19's "done when": a SIPp call to a number whose phone was just bound through the
/// API rings the new phone. Before the bind the call finds no one; the bind is written to
/// acme's file (comments kept) and loaded; the next call hunts past the unplugged desk to the
/// new phone, which answers; the live feed shows it ring, answer and end; the call records
/// and statistics show it to acme and not to beta.
#[test]
fn a_phone_bound_through_the_api_rings_on_the_next_call() {
    let phone = start(Sipp::uas("uas_answer").timeout(Duration::from_secs(30)));
    let s = setup(phone.addr());
    let before = s.acme_text();

    let caller = |n: u32| {
        Sipp::uac("uac", s.hotline.sip_addr())
            .service(ACME_NUMBER)
            .calls(n)
            .duration_ms(200)
            .timeout(Duration::from_secs(15))
            .run()
    };
    let r = match caller(1) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        r.successful(),
        0,
        "nobody answers before the bind\n{}",
        r.summary()
    );

    let bind = s.call(
        &s.acme,
        "POST",
        "/api/v1/companies/acme/bind",
        r#"{"name":"acme-mobile","phone":"139 0000 1111","plan":"acme-main","ring_timeout":"10s"}"#,
    );
    assert_eq!(bind.status, 200, "{}", bind.body);
    let changed = json(&bind);
    assert!(changed["generation"].as_u64() >= Some(2), "{}", bind.body);
    assert_eq!(bind.header("etag"), changed["etag"].as_str());

    // On disk: the new target and its membership, the old text (comments) untouched.
    let after = s.acme_text();
    assert!(
        after.contains("[targets.acme-mobile]\nnumber = \"13900001111\"\ngateway = \"phones\""),
        "{after}"
    );
    assert!(
        after.contains(
            "members = [\"acme-desk\", { target = \"acme-mobile\", ring_timeout = \"10s\" }]"
        ),
        "{after}"
    );
    for line in before.lines().filter(|l| l.starts_with('#')) {
        assert!(after.contains(line), "comment {line:?} lost:\n{after}");
    }
    // The same compiler as `hotline check` accepts the result.
    let check =
        std::process::Command::new(hotline_testkit::paths::hotline_bin().unwrap_or_default())
            .arg("check")
            .arg(s.hotline.config_path())
            .output();
    assert!(
        check.is_ok_and(|o| o.status.success()),
        "hotline check fails on the written files"
    );

    let mut feed = match SseStream::open(
        s.api,
        "/api/v1/companies/acme/events",
        &[("Authorization", &format!("Bearer {}", s.acme))],
    ) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    assert!(feed.status_line.contains("200"), "{}", feed.status_line);
    let mut beta_feed = match SseStream::open(
        s.api,
        "/api/v1/companies/beta/events",
        &[("Authorization", &format!("Bearer {}", s.beta))],
    ) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };

    let r = match caller(1) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_all_ok(&r, 1, "the call after the bind");
    let phone_saw = match phone.stop() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let invites = phone_saw.received_requests("INVITE");
    assert_eq!(
        invites.len(),
        1,
        "the new phone got the call\n{}",
        phone_saw.summary()
    );
    assert!(
        invites[0].start_line().contains("sip:13900001111@"),
        "the phone number is the Request-URI: {}",
        invites[0].start_line()
    );

    let calls = wait_cdr_calls(s.hotline.cdr_dir(), 2, Duration::from_secs(5));
    let answered: Vec<_> = calls
        .iter()
        .filter(|c| c.answered_target == "acme-mobile")
        .collect();
    assert_eq!(answered.len(), 1, "{calls:?}");

    // Live feed: ringing on the desk, then the phone, answered, ended; nothing for beta.
    let events = feed.data_until(Duration::from_secs(5), |d| {
        d.iter().any(|e| e.contains("\"ended\""))
    });
    let kinds: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or("").to_string(),
                v["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("ringing".into(), "acme-mobile".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("answered".into(), "acme-mobile".into())),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|(k, _)| k == "ended"), "{kinds:?}");
    assert!(
        events.iter().all(|e| e.contains(ACME_NUMBER)),
        "only acme's number: {events:?}"
    );
    let beta_events = beta_feed.data_until(Duration::from_millis(300), |_| false);
    assert!(
        beta_events.is_empty(),
        "beta sees acme's calls: {beta_events:?}"
    );

    // Records and statistics: acme's two calls, none for beta.
    let list = s.call(&s.acme, "GET", "/api/v1/companies/acme/calls?limit=10", "");
    assert_eq!(list.status, 200, "{}", list.body);
    let list = json(&list);
    assert_eq!(list["matched"].as_u64(), Some(2), "{list}");
    assert_eq!(
        list["calls"][1]["target"].as_str(),
        Some("acme-mobile"),
        "{list}"
    );
    assert_eq!(
        list["calls"][1]["disposition"].as_str(),
        Some("answered"),
        "{list}"
    );
    let stats = json(&s.call(&s.acme, "GET", "/api/v1/companies/acme/stats", ""));
    assert_eq!(stats["calls"].as_u64(), Some(2), "{stats}");
    assert_eq!(stats["answered"].as_u64(), Some(1), "{stats}");
    assert_eq!(
        stats["by_hour"].as_array().map(Vec::len),
        Some(24),
        "{stats}"
    );
    let beta_list = json(&s.call(&s.beta, "GET", "/api/v1/companies/beta/calls", ""));
    assert_eq!(beta_list["matched"].as_u64(), Some(0), "{beta_list}");

    // The audit log names who did it.
    let audit = json(&s.call(&s.acme, "GET", "/api/v1/companies/acme/audit", ""));
    assert_eq!(audit[0]["actor"].as_str(), Some("acme-1"), "{audit}");
    assert_eq!(
        audit[0]["change"]["phone"].as_str(),
        Some("139 0000 1111"),
        "{audit}"
    );

    // Explain, against the running table.
    let ex = s.call(
        &s.acme,
        "POST",
        "/api/v1/companies/acme/explain",
        &format!(
            r#"{{"number":"{ACME_NUMBER}","from":"13812345678","at":"2026-10-01T09:30+08:00"}}"#
        ),
    );
    assert_eq!(ex.status, 200, "{}", ex.body);
    assert!(ex.body.contains("acme-mobile"), "{}", ex.body);
}

/// Every route of acme's, with beta's token: 403, and acme's file is not touched. With no
/// token: 401; the operator's: allowed.
#[test]
fn a_second_companys_token_gets_403_on_everything_of_the_first() {
    let phone = start(Sipp::uas("uas_answer").timeout(Duration::from_secs(20)));
    let s = setup(phone.addr());
    let before = s.acme_text();
    let routes: &[(&str, &str, &str)] = &[
        ("GET", "/api/v1/companies/acme", ""),
        (
            "PUT",
            "/api/v1/companies/acme/targets/acme-x",
            r#"{"phone":"13900002222"}"#,
        ),
        ("DELETE", "/api/v1/companies/acme/targets/acme-desk", ""),
        (
            "POST",
            "/api/v1/companies/acme/bind",
            r#"{"name":"beta-evil","phone":"13900002222","plan":"acme-main"}"#,
        ),
        (
            "PUT",
            "/api/v1/companies/acme/plans/acme-main/groups",
            r#"{"groups":[{"members":[{"target":"beta-office"}]}]}"#,
        ),
        (
            "PUT",
            &format!("/api/v1/companies/acme/numbers/{ACME_NUMBER}/routing"),
            r#"{"plan":"beta-main","rules":[]}"#,
        ),
        (
            "PUT",
            &format!("/api/v1/companies/acme/numbers/{ACME_NUMBER}/screening"),
            r#"{"whitelist_only":true}"#,
        ),
        (
            "PUT",
            "/api/v1/companies/acme/lists/acme-vip",
            r#"{"numbers":["13900000001"]}"#,
        ),
        ("DELETE", "/api/v1/companies/acme/lists/acme-vip", ""),
        (
            "POST",
            "/api/v1/companies/acme/explain",
            &format!(r#"{{"number":"{ACME_NUMBER}","from":"13800138000"}}"#),
        ),
        ("GET", "/api/v1/companies/acme/calls", ""),
        ("GET", "/api/v1/companies/acme/stats", ""),
        ("GET", "/api/v1/companies/acme/audit", ""),
        ("GET", "/api/v1/companies/acme/events", ""),
        // Malformed and oversized bodies too: the scope is checked before the body.
        ("POST", "/api/v1/companies/acme/bind", "{not json"),
        (
            "PUT",
            "/api/v1/companies/acme/lists/acme-big",
            &"x".repeat(10_000),
        ),
    ];
    for (m, p, b) in routes {
        let r = s.call(&s.beta, m, p, b);
        assert_eq!(r.status, 403, "beta {m} {p}: {} {}", r.status, r.body);
        assert_eq!(
            json(&r)["error"].as_str(),
            Some("forbidden"),
            "{m} {p}: {}",
            r.body
        );
        assert!(!r.body.contains("acme-desk"), "{m} {p} leaks: {}", r.body);
    }
    // Explain on acme's number from beta's own scope: still no.
    let r = s.call(
        &s.beta,
        "POST",
        "/api/v1/companies/beta/explain",
        &format!(r#"{{"number":"{ACME_NUMBER}","from":"13800138000"}}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Beta's company list holds beta alone.
    let list = json(&s.call(&s.beta, "GET", "/api/v1/companies", ""));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"].as_str(), Some("beta"), "{list}");
    assert_eq!(s.acme_text(), before, "acme's file changed");
    // No token / a wrong one: 401; the operator: 200.
    let r = http_request(s.api, "GET", "/api/v1/companies/acme", &[], b"");
    assert!(r.is_ok_and(|r| r.status == 401));
    assert_eq!(
        s.call("acme-1.deadbeef", "GET", "/api/v1/companies/acme", "")
            .status,
        401
    );
    let r = s.call(&s.ops, "GET", "/api/v1/companies/acme", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        json(&s.call(&s.ops, "GET", "/api/v1/companies", ""))
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // A company cannot reference another's target even in its own plan.
    let r = s.call(
        &s.beta,
        "PUT",
        "/api/v1/companies/beta/plans/beta-main/groups",
        r#"{"groups":[{"members":[{"target":"acme-desk"}]}]}"#,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("groups[0].members[0].target"), "{}", r.body);
    drop(phone);
}

/// The file is the source of truth: an edit by ops is visible at once; a write with the old
/// ETag gets 412; bad input gets every error with its path and leaves the file as it was.
#[test]
fn file_edits_show_in_the_api_stale_writes_412_bad_input_writes_nothing() {
    let phone = start(Sipp::uas("uas_answer").timeout(Duration::from_secs(20)));
    let s = setup(phone.addr());
    let r = s.call(&s.acme, "GET", "/api/v1/companies/acme", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let old_etag = r.header("etag").unwrap_or_default().to_string();
    assert_eq!(
        json(&r)["targets"]["acme-desk"]["uri"]
            .as_str()
            .map(|u| u.starts_with("sip:1001@")),
        Some(true)
    );

    // Ops edit the file by hand.
    let edited = format!(
        "{}\n# added by ops\n[targets.acme-fax]\nuri = \"sip:fax@127.0.0.1:5999\"\n",
        s.acme_text()
    );
    assert!(std::fs::write(s.acme_path(), &edited).is_ok());
    let r = s.call(&s.acme, "GET", "/api/v1/companies/acme", "");
    assert_eq!(
        json(&r)["targets"]["acme-fax"]["uri"].as_str(),
        Some("sip:fax@127.0.0.1:5999"),
        "{}",
        r.body
    );
    let new_etag = r.header("etag").unwrap_or_default().to_string();
    assert_ne!(old_etag, new_etag);

    // A write based on what was read before the edit: 412, nothing written.
    let r = s.call_h(
        &s.acme,
        "PUT",
        "/api/v1/companies/acme/targets/acme-desk",
        r#"{"phone":"13900003333"}"#,
        &[("If-Match", &old_etag)],
    );
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(s.acme_text(), edited);

    // Bad bodies: the JSON path of the problem, nothing written.
    let bad: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/api/v1/companies/acme/bind",
            r#"{"name":"acme-m","phone":"13900003333","plan":"acme-main","colour":"red"}"#,
            422,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/companies/acme/plans/acme-main/groups",
            r#"{"groups":[{"members":[{"target":7}]}]}"#,
            422,
            "groups[0].members[0].target",
        ),
        (
            "POST",
            "/api/v1/companies/acme/bind",
            r#"{"name":"acme-m","phone":"1390000abcd","plan":"acme-main"}"#,
            422,
            "phone",
        ),
        (
            "POST",
            "/api/v1/companies/acme/bind",
            r#"{"name":"evil","phone":"13900003333","plan":"acme-main"}"#,
            422,
            "\"name\"",
        ),
        (
            "POST",
            "/api/v1/companies/acme/bind",
            r#"{"name":"acme-m","uri":"sip:x@10.0.0.1","plan":"acme-main"}"#,
            422,
            "uri",
        ),
        (
            "POST",
            "/api/v1/companies/acme/bind",
            "{\"name\":",
            422,
            "invalid_body",
        ),
        (
            "PUT",
            "/api/v1/companies/acme/lists/acme-big",
            &format!(r#"{{"numbers":["{}"]}}"#, "1".repeat(5000)),
            413,
            "payload_too_large",
        ),
    ];
    for (m, p, b, code, needle) in bad {
        let r = s.call(&s.acme, m, p, b);
        assert_eq!(r.status, *code, "{m} {p} {b}: {}", r.body);
        assert!(
            r.body.contains(needle),
            "{m} {p}: {needle} not in {}",
            r.body
        );
    }
    // The compiler's errors, all at once, with key paths: a bad ring time and an abroad
    // phone in one request.
    let r = s.call(
        &s.acme,
        "POST",
        "/api/v1/companies/acme/bind",
        r#"{"name":"acme-m","phone":"0012025550123","plan":"acme-main","ring_timeout":"soon"}"#,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let body = json(&r);
    assert_eq!(body["error"].as_str(), Some("invalid_config"), "{}", r.body);
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("ring_timeout")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.contains("acme-m") && p.contains("number")),
        "{paths:?}"
    );
    assert_eq!(s.acme_text(), edited, "nothing written");

    // The current ETag: accepted.
    let r = s.call_h(
        &s.acme,
        "PUT",
        "/api/v1/companies/acme/targets/acme-desk",
        r#"{"phone":"13900003333","max_concurrent":2}"#,
        &[("If-Match", &new_etag)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let text = s.acme_text();
    assert!(
        text.contains("# added by ops") && text.contains("# the front desk (currently unplugged)"),
        "{text}"
    );
    assert!(text.contains("[targets.acme-desk]\nnumber = \"13900003333\"\ngateway = \"phones\"\nmax_concurrent = 2"), "{text}");
    drop(phone);
}

/// Rules and lists set through the API route the next calls: a new plan (created by its
/// groups) chosen by an all-week rule answers on the bound phone; a blacklist entry for the
/// caller then blocks the call (CDR disposition `blocked-list`).
#[test]
fn rules_and_lists_set_through_the_api_route_the_next_call() {
    let phone = start(Sipp::uas("uas_answer").timeout(Duration::from_secs(30)));
    let s = setup(phone.addr());
    let ok = |r: HttpResponse| assert_eq!(r.status, 200, "{}", r.body);
    ok(s.call(
        &s.acme,
        "PUT",
        "/api/v1/companies/acme/targets/acme-mobile",
        r#"{"phone":"13900001111"}"#,
    ));
    ok(s.call(
        &s.acme,
        "PUT",
        "/api/v1/companies/acme/plans/acme-night/groups",
        r#"{"groups":[{"name":"mobile","ring_timeout":"10s","members":[{"target":"acme-mobile"}]}]}"#,
    ));
    ok(s.call(
        &s.acme,
        "PUT",
        &format!("/api/v1/companies/acme/numbers/{ACME_NUMBER}/routing"),
        r#"{"plan":"acme-main","rules":[{"name":"always","weekdays":["mon-sun"],"time":["00:00-24:00"],"plan":"acme-night"}]}"#,
    ));
    let call = || match Sipp::uac("uac", s.hotline.sip_addr())
        .service(ACME_NUMBER)
        .calls(1)
        .duration_ms(200)
        .timeout(Duration::from_secs(15))
        .run()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_all_ok(&call(), 1, "routed by the API's rule");
    ok(s.call(
        &s.acme,
        "PUT",
        &format!("/api/v1/companies/acme/numbers/{ACME_NUMBER}/screening"),
        &format!(r#"{{"blacklist":{{"numbers":["{CALLER}"]}}}}"#),
    ));
    let r = call();
    assert_eq!(r.successful(), 0, "a blacklisted caller\n{}", r.summary());
    let calls = wait_cdr_calls(s.hotline.cdr_dir(), 2, Duration::from_secs(5));
    let mut calls: Vec<_> = calls.iter().collect();
    calls.sort_by_key(|c| c.start);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].answered_target, "acme-mobile");
    assert_eq!(calls[0].matched_rule, "always");
    assert_eq!(
        calls[1].disposition.as_str(),
        "blocked-list",
        "{:?}",
        calls[1]
    );
    let text = s.acme_text();
    assert!(
        text.contains("[[numbers.\"4008001234\".rules]]\nname = \"always\""),
        "{text}"
    );
    assert!(
        text.contains("blacklist = { numbers = [\"13800138000\"] }"),
        "{text}"
    );
    drop(phone);
}
