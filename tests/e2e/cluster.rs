//! The cluster (issue #15): two Hotline nodes on 127.0.0.2 and 127.0.0.3 sharing their live
//! state in a real redis-server started by the test; SIPp as carrier and targets.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use hotline_e2e::*;
use hotline_testkit::{http_get, metric_value, Plan, RedisServer};

/// The `[cluster]` section of node `node`.
fn cluster_toml(redis: &RedisServer, node: &str, extra: &str) -> String {
    format!(
        "\n[cluster]\nredis = \"{}\"\nnode = \"{node}\"\naddress = \"sip.hotline.test\"\n\
         lease = \"6s\"\ntimeout = \"300ms\"\n{extra}\n",
        redis.url()
    )
}

/// Node `node` listening on `ip` with the routing of `base`.
fn node(base: &HotlineConfig, redis: &RedisServer, node: &str, ip: &str, extra: &str) -> Hotline {
    let cfg = base
        .clone()
        .listen(&format!("{ip}:0"))
        .with_admin()
        .raw(&cluster_toml(redis, node, extra))
        .to_toml();
    let h = Hotline::spawn(&cfg);
    assert!(
        wait_redis_up(&h, true, Duration::from_secs(10)),
        "node {node} never saw redis up: {}",
        h.stderr_tail(30)
    );
    h
}

fn metric(h: &Hotline, sample: &str) -> Option<f64> {
    h.metrics().ok().and_then(|m| metric_value(&m, sample))
}

/// Waits until the node's `hotline_cluster_redis_up` is `up`.
fn wait_redis_up(h: &Hotline, up: bool, timeout: Duration) -> bool {
    let want = if up { 1.0 } else { 0.0 };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if metric(h, "hotline_cluster_redis_up") == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn zcard(r: &RedisServer, target: &str) -> i64 {
    let key = format!("hl:lease:{{{target}}}");
    match r.int(&["ZCARD", &key]) {
        Ok(v) => v.unwrap_or(0),
        Err(e) => panic!("ZCARD {key}: {e}"),
    }
}

/// Whether Redis has `key`.
fn exists(r: &RedisServer, key: &str) -> bool {
    r.int(&["EXISTS", key]).ok().flatten() == Some(1)
}

/// The call records of every node, together.
fn cdrs_of(nodes: &[&Hotline]) -> Vec<hotline_cdr::CallRecord> {
    nodes.iter().flat_map(|h| cdr_calls(h.cdr_dir())).collect()
}

/// Polls until `f` holds or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn uas(scenario: &str, calls: u32) -> SippProcess {
    start(
        Sipp::uas(scenario)
            .calls(calls)
            .timeout(Duration::from_secs(40)),
    )
}

fn caller(via: &Hotline, scenario: &str, ms: u64) -> Sipp {
    Sipp::uac(scenario, via.sip_addr())
        .service(NUMBER)
        .calls(1)
        .duration_ms(ms)
        .timeout(Duration::from_secs(30))
}

/// Issue test 1: target `shared` has max_concurrent = 1; two calls at the same moment, one
/// through each node: exactly one rings `shared`, the other hunts on to `spare`. The lease
/// is free once the calls are over.
#[test]
fn limit_one_two_calls_through_two_nodes_exactly_one_rings_it() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let shared = uas("uas_answer", 2);
    let spare = uas("uas_answer", 2);
    let base = HotlineConfig::new()
        .target_limited("shared", &shared.uri("1001"), 1)
        .target("spare", &spare.uri("1002"))
        .plan(Plan::new("p").group("sequential", "5s", &["shared", "spare"]))
        .number_with_plan(NUMBER, "p");
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    assert_eq!(a.sip_addr().ip().to_string(), "127.0.0.2");
    assert_eq!(b.sip_addr().ip().to_string(), "127.0.0.3");
    // Each node sees both, running the same routing (their files differ only in the node name).
    let status = |h: &Hotline| {
        h.admin_addr()
            .and_then(|addr| http_get(addr, "/status").ok())
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(6), || {
            let st = status(&b);
            st.contains("\"node\":\"a\",\"alive\":true")
                && st.contains("\"node\":\"b\",\"alive\":true")
                && st.contains("\"hashes_agree\":true")
        }),
        "{}",
        status(&b)
    );
    let ca = start(caller(&a, "uac", 2000));
    let cb = start(caller(&b, "uac", 2000));
    let (ra, rb) = (finish(ca), finish(cb));
    assert_all_ok(&ra, 1, "caller through node a");
    assert_all_ok(&rb, 1, "caller through node b");
    let (shared, spare) = (stop(shared), stop(spare));
    assert_eq!(
        shared.received_request_calls("INVITE").len(),
        1,
        "exactly one call rang the target at its limit\n{}",
        shared.summary()
    );
    assert_eq!(
        spare.received_request_calls("INVITE").len(),
        1,
        "the other hunted on"
    );
    // Record-Route carries the cluster address, not a node's own.
    let invite = &spare.received_requests("INVITE")[0];
    let rr = invite.header("Record-Route").unwrap_or_default();
    assert!(rr.contains("sip.hotline.test"), "Record-Route: {rr}");
    assert!(eventually(Duration::from_secs(3), || zcard(
        &redis, "shared"
    ) == 0
        && zcard(&redis, "spare") == 0));
    // Round trips: one decision per call; one lease per attempt (3: shared, shared refused,
    // spare), so the first target of a call costs 2 on the INVITE path; one publication and one
    // end claim per answered call.
    let trips = |kind: &str| {
        let s = format!("hotline_cluster_redis_round_trips_total{{kind=\"{kind}\"}}");
        metric(&a, &s).unwrap_or(-1.0) + metric(&b, &s).unwrap_or(-1.0)
    };
    assert_eq!(trips("decide"), 2.0);
    assert_eq!(trips("lease"), 3.0);
    assert_eq!(trips("publish"), 2.0);
    assert!(eventually(Duration::from_secs(2), || trips("end") == 2.0));
    let _ = a.stop();
    let _ = b.stop();
    let calls: Vec<_> = cdrs_of(&[&a, &b]);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let mut answered: Vec<_> = calls.iter().map(|c| c.answered_target.clone()).collect();
    answered.sort();
    assert_eq!(answered, ["shared", "spare"], "{calls:#?}");
}

/// Issue test 5: a caller over the anti-harassment limit is blocked whichever node it
/// calls through (the windows are shared).
#[test]
fn anti_harassment_limit_holds_across_nodes() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let desk = uas("uas_answer", 2);
    let base = HotlineConfig::new()
        .target("desk", &desk.uri("1001"))
        .number(NUMBER, &["desk"])
        .raw(
            "[screening.harassment]\nper_caller_number = { calls = 2, window = \"60s\" }\n\
             block_for = \"10m\"\n",
        );
    let a = node(&base, &redis, "a", "127.0.0.2", "");
    let b = node(&base, &redis, "b", "127.0.0.3", "");
    // Two calls, one through each node: within the limit.
    assert_all_ok(&run(caller(&a, "uac", 100)), 1, "1st call (node a)");
    assert_all_ok(&run(caller(&b, "uac", 100)), 1, "2nd call (node b)");
    // The third is over the limit on either node, and the caller stays blocked on both.
    for (i, via) in [&a, &b, &a].into_iter().enumerate() {
        let r = run(caller(via, "uac_reject", 0));
        assert_eq!(
            r.final_codes(),
            vec![603],
            "call {} blocked: {}",
            i + 3,
            r.summary()
        );
    }
    let desk = stop(desk);
    assert_eq!(desk.received_request_calls("INVITE").len(), 2);
    // Another caller is not affected.
    let other = run(caller(&b, "uac_reject", 0).caller("13900139000"));
    assert_ne!(other.final_codes(), vec![603], "{}", other.summary());
}

/// Issue test 7: round-robin over three targets, six calls alternating between the nodes:
/// every target gets two (one cursor for the cluster).
#[test]
fn round_robin_over_three_targets_through_two_nodes_is_even() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let t: Vec<SippProcess> = (0..3).map(|_| uas("uas_answer", 6)).collect();
    let base = HotlineConfig::new()
        .target("t1", &t[0].uri("1001"))
        .target("t2", &t[1].uri("1002"))
        .target("t3", &t[2].uri("1003"))
        .number_with_plan(NUMBER, "rr")
        .raw(
            "[plans.rr]\ngroups = [{ name = \"g\", strategy = \"round_robin\", members = [\"t1\", \"t2\", \"t3\"] }]\n",
        );
    let a = node(&base, &redis, "a", "127.0.0.2", "");
    let b = node(&base, &redis, "b", "127.0.0.3", "");
    for i in 0..6 {
        let via = if i % 2 == 0 { &a } else { &b };
        let r = run(caller(via, "uac", 50));
        assert_all_ok(&r, 1, &format!("call {i}"));
    }
    let got: Vec<usize> = t
        .into_iter()
        .map(|p| stop(p).received_request_calls("INVITE").len())
        .collect();
    assert_eq!(got.iter().sum::<usize>(), 6, "{got:?}");
    assert!(
        got.iter().all(|&n| (1..=3).contains(&n)),
        "even within one: {got:?}"
    );
    // The same order whichever node took the call: one cursor for the cluster (two cursors
    // would send calls 0 and 1 both to t1).
    let mut calls: Vec<_> = [&a, &b]
        .iter()
        .flat_map(|h| wait_cdr_calls(h.cdr_dir(), 3, Duration::from_secs(3)))
        .collect();
    calls.sort_by_key(|c| c.start);
    let order: Vec<_> = calls.iter().map(|c| c.answered_target.as_str()).collect();
    assert_eq!(order, ["t1", "t2", "t3", "t1", "t2", "t3"], "{calls:#?}");
}

/// Issue test 6: Redis is killed while calls are up and restarted empty. Both nodes notice
/// (metric, /readyz) and apply their policy while it is down: node a decides with its own
/// state (`local`), node b refuses new calls (`duplicates = "reject"` -> 503). Once Redis is
/// back both reconnect by themselves, the leases of the calls still up are re-created by their
/// owners, and the limit holds again: a new call through b does not ring the busy target.
#[test]
fn redis_restart_mid_traffic_policy_while_down_counters_right_after() {
    let mut redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let shared = uas("uas_answer", 3);
    let spare = uas("uas_answer", 3);
    let base = HotlineConfig::new()
        .target_limited("shared", &shared.uri("1001"), 1)
        .target("spare", &spare.uri("1002"))
        .plan(Plan::new("p").group("sequential", "5s", &["shared", "spare"]))
        .number_with_plan(NUMBER, "p");
    let a = node(&base, &redis, "a", "127.0.0.2", "");
    let b = node(
        &base,
        &redis,
        "b",
        "127.0.0.3",
        "[cluster.redis_down]\nduplicates = \"reject\"\n",
    );
    // Call 1 (through a) holds the shared target for a while.
    let long = start(caller(&a, "uac", 14_000));
    assert!(eventually(Duration::from_secs(5), || zcard(
        &redis, "shared"
    ) == 1));
    redis.kill();
    assert!(
        wait_redis_up(&a, false, Duration::from_secs(5)),
        "a sees redis down"
    );
    assert!(
        wait_redis_up(&b, false, Duration::from_secs(5)),
        "b sees redis down"
    );
    let ready = |h: &Hotline| {
        h.admin_addr()
            .map(|addr| match http_get(addr, "/readyz") {
                Ok(body) => body,
                Err(e) => e.to_string(),
            })
            .unwrap_or_default()
    };
    let ra = ready(&a);
    assert!(
        ra.contains("degraded") && ra.contains("redis down"),
        "a /readyz: {ra}"
    );
    let rb = ready(&b);
    assert!(rb.contains("503"), "b /readyz: {rb}");
    // While down: a admits with its own limits (shared is busy with a's own call -> spare) ...
    let during = start(caller(&a, "uac", 9_000));
    // ... and b refuses new calls.
    let refused = run(caller(&b, "uac_reject", 0));
    assert_eq!(refused.final_codes(), vec![503], "{}", refused.summary());
    std::thread::sleep(Duration::from_millis(500));
    redis.restart().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_redis_up(&a, true, Duration::from_secs(8)),
        "a reconnected"
    );
    assert!(
        wait_redis_up(&b, true, Duration::from_secs(8)),
        "b reconnected"
    );
    // The owners re-created the leases of their calls in progress (Redis came back empty).
    assert!(
        eventually(Duration::from_secs(4), || zcard(&redis, "shared") == 1
            && zcard(&redis, "spare") == 1),
        "shared {} spare {}",
        zcard(&redis, "shared"),
        zcard(&redis, "spare")
    );
    // The limit holds across nodes again: b's new call skips the busy target.
    let after = run(caller(&b, "uac", 200));
    assert_all_ok(&after, 1, "call through b after the restart");
    assert_all_ok(&finish(during), 1, "call admitted while redis was down");
    assert_all_ok(&finish(long), 1, "long call");
    let (shared, spare) = (stop(shared), stop(spare));
    assert_eq!(
        shared.received_request_calls("INVITE").len(),
        1,
        "only the first call rang the limited target\n{}",
        shared.summary()
    );
    assert_eq!(spare.received_request_calls("INVITE").len(), 2);
    assert!(eventually(Duration::from_secs(3), || zcard(
        &redis, "shared"
    ) == 0
        && zcard(&redis, "spare") == 0));
    assert!(metric(&a, "hotline_cluster_redis_errors_total").unwrap_or(0.0) >= 1.0);
    // Every cluster series docs/CLUSTER.md names is exported.
    let m = a.metrics().unwrap_or_default();
    let doc =
        std::fs::read_to_string(hotline_testkit::paths::workspace_root().join("docs/CLUSTER.md"))
            .unwrap_or_default();
    let named: std::collections::BTreeSet<&str> = doc
        .match_indices("hotline_cluster_")
        .map(|(i, _)| {
            let rest = &doc[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert_eq!(named.len(), 5, "{named:?}");
    for n in named {
        assert!(
            m.contains(&format!("# TYPE {n} ")),
            "docs/CLUSTER.md names {n}, not exported"
        );
    }
    // Every answered call has its CDR, the one up across the restart too (Redis forgot its
    // publication: its owner writes it).
    let (mut a, mut b) = (a, b);
    let _ = a.stop();
    let _ = b.stop();
    let answered: Vec<_> = cdrs_of(&[&a, &b])
        .into_iter()
        .filter(|c| c.answer.is_some())
        .collect();
    assert_eq!(answered.len(), 3, "{answered:#?}");
}

/// A response to `req` as a hand-written target sends it: Vias, From, To (+ our tag),
/// Call-ID, CSeq and Record-Route copied; a Contact for a 2xx.
fn respond(req: &SipMessage, code: u16, reason: &str, tag: &str, contact: SocketAddrV4) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for h in ["From", "Call-ID", "CSeq"] {
        s.push_str(&format!("{h}: {}\r\n", req.header(h).unwrap_or_default()));
    }
    let to = req.header("To").unwrap_or_default();
    if req.tag("To").is_some() || code == 100 {
        s.push_str(&format!("To: {to}\r\n"));
    } else {
        s.push_str(&format!("To: {to};tag={tag}\r\n"));
    }
    if (200..300).contains(&code) {
        for rr in req.headers("Record-Route") {
            s.push_str(&format!("Record-Route: {rr}\r\n"));
        }
        s.push_str(&format!("Contact: <sip:1001@{contact}>\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// Where a response to `req` goes: its top Via's sent-by.
fn via_addr(req: &SipMessage) -> SocketAddr {
    let via = req.headers("Via").into_iter().next().unwrap_or_default();
    let sent_by = via
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .to_owned();
    sent_by
        .parse()
        .unwrap_or_else(|e| panic!("Via sent-by {sent_by:?}: {e}"))
}

/// Waits for a request `method` on `sock`, skipping anything else.
fn next_request(sock: &SipUdpClient, method: &str, timeout: Duration) -> Option<SipMessage> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match sock.recv(left) {
            Ok(Some(m)) if m.method() == Some(method) => return Some(m),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => panic!("recv: {e}"),
        }
    }
    None
}

/// Issue test 2: node a is killed (SIGKILL) while target 1 rings. A copy of the INVITE on
/// node b while a lives is a duplicate (482, no second call, no CDR); a new call through b
/// finds target 1 still held by a's lease; the lease is free within its lifetime; the carrier's
/// retry of the INVITE through b (same Call-ID, From-tag, CSeq) completes the call once a's
/// heartbeat has expired, and there is one call CDR for that Call-ID.
#[test]
fn node_killed_while_target_rings_carrier_retry_through_other_node_completes() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let target = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let t_addr = match target.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let base = HotlineConfig::new()
        .target_limited("t1", &format!("sip:1001@{t_addr}"), 1)
        .plan(Plan::new("p").group("sequential", "20s", &["t1"]))
        .number_with_plan(NUMBER, "p");
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let c_addr = carrier.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let uri = format!("sip:{NUMBER}@sip.hotline.test");
    let invite = RawRequest::invite(&uri, c_addr);
    let send = |req: &RawRequest, to: &Hotline| {
        carrier
            .send_to(&req.to_bytes(), to.sip_addr())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The call rings target 1 through node a.
    send(&invite, &a);
    let Some(inv_a) = next_request(&target, "INVITE", Duration::from_secs(5)) else {
        panic!("target 1 got no INVITE from a: {}", a.stderr_tail(20));
    };
    let ring = respond(&inv_a, 180, "Ringing", "t1tag", t_addr);
    target
        .send_to(&ring, via_addr(&inv_a))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(zcard(&redis, "t1"), 1);
    // The same INVITE on node b while a lives: a merged request, no second call.
    let mut copy = invite.clone();
    copy.branch = format!("{}-b1", invite.branch);
    let r = carrier
        .request(&copy, b.sip_addr(), Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.and_then(|m| m.status()),
        Some(482),
        "duplicate while a lives"
    );
    assert!(next_request(&target, "INVITE", Duration::from_millis(300)).is_none());
    // kill -9 a.
    let pid = a.pid().unwrap_or_else(|| panic!("no pid"));
    hotline_testkit::hotline::send_signal(pid, "KILL").unwrap_or_else(|e| panic!("{e}"));
    let killed = Instant::now();
    let _ = a.wait_exit(Duration::from_secs(5));
    // A new call through b: target 1's only slot is still a's lease -> busy.
    let other = RawRequest::invite(&uri, c_addr);
    let r = carrier
        .request(&other, b.sip_addr(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.and_then(|m| m.status()),
        Some(486),
        "target 1 held by the dead node"
    );
    // The dead node's lease runs out by itself within its lifetime (6 s).
    assert!(eventually(Duration::from_secs(8), || zcard(&redis, "t1") == 0));
    assert!(
        killed.elapsed() < Duration::from_secs(7),
        "{:?}",
        killed.elapsed()
    );
    assert!(eventually(Duration::from_secs(5), || {
        redis.int(&["EXISTS", "hl:node:a"]).ok().flatten() == Some(0)
    }));
    // The carrier's retry of the INVITE through b completes the call.
    let mut retry = invite.clone();
    retry.branch = format!("{}-b2", invite.branch);
    send(&retry, &b);
    let Some(inv_b) = next_request(&target, "INVITE", Duration::from_secs(5)) else {
        panic!("target 1 got no INVITE from b: {}", b.stderr_tail(30));
    };
    assert_eq!(inv_b.header("Call-ID"), inv_a.header("Call-ID"));
    let to_b = via_addr(&inv_b);
    for (code, reason) in [(180, "Ringing"), (200, "OK")] {
        target
            .send_to(&respond(&inv_b, code, reason, "t1tag", t_addr), to_b)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let got = carrier
        .recv_until_final(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ok) = got.last().filter(|m| m.status() == Some(200)).cloned() else {
        panic!("no 200 through b: {got:?}");
    };
    send(&retry.in_dialog("ACK", &ok, retry.cseq), &b);
    assert!(next_request(&target, "ACK", Duration::from_secs(3)).is_some());
    assert_eq!(zcard(&redis, "t1"), 1, "b's lease for the answered call");
    std::thread::sleep(Duration::from_millis(1200));
    let bye = retry.in_dialog("BYE", &ok, retry.cseq + 1);
    send(&bye, &b);
    let Some(bye_t) = next_request(&target, "BYE", Duration::from_secs(3)) else {
        panic!("BYE not relayed: {}", b.stderr_tail(20));
    };
    target
        .send_to(
            &respond(&bye_t, 200, "OK", "t1tag", t_addr),
            via_addr(&bye_t),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let r = carrier
        .recv_until_final(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.last().and_then(|m| m.status()), Some(200), "{r:?}");
    assert!(eventually(Duration::from_secs(3), || zcard(&redis, "t1") == 0));
    let _ = b.stop();
    let call_id = invite.call_id.clone();
    let all: Vec<_> = cdrs_of(&[&a, &b]);
    let mine: Vec<_> = all.iter().filter(|c| c.call_id == call_id).collect();
    assert_eq!(mine.len(), 1, "one call CDR for the Call-ID: {all:#?}");
    assert!(
        mine[0].answer.is_some() && mine[0].answered_target == "t1",
        "{:?}",
        mine[0]
    );
    assert!(mine[0].talk_ms() >= 1000, "{:?}", mine[0]);
}

/// Issue test 3: node a is killed (SIGKILL) after the 200 and the ACK. The caller's BYE,
/// routed by the cluster address to node b, reaches the target and ends the call; the call's
/// CDR (published by a at the answer) is written once, by b, with the right talk time.
#[test]
fn node_killed_after_answer_bye_through_other_node_ends_call_cdr_once() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let target = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let t_addr = match target.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let base = HotlineConfig::new()
        .target("t1", &format!("sip:1001@{t_addr}"))
        .number(NUMBER, &["t1"]);
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let (invite, ok, answered) = answered_call(&carrier, &target, t_addr, &a);
    let key = format!("hl:dlg:{{{}}}", invite.call_id);
    assert!(
        eventually(Duration::from_secs(3), || exists(&redis, &key)),
        "the answered call is published"
    );
    // kill -9 a, talk on, then the caller hangs up; the cluster address leads to b.
    let pid = a.pid().unwrap_or_else(|| panic!("no pid"));
    hotline_testkit::hotline::send_signal(pid, "KILL").unwrap_or_else(|e| panic!("{e}"));
    let _ = a.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    let bye = invite.in_dialog("BYE", &ok, invite.cseq + 1);
    let route = bye.to_bytes();
    assert!(
        String::from_utf8_lossy(&route).contains("Route: <sip:sip.hotline.test;lr>"),
        "{}",
        String::from_utf8_lossy(&route)
    );
    carrier
        .send_to(&route, b.sip_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let talked = answered.elapsed();
    let Some(bye_t) = next_request(&target, "BYE", Duration::from_secs(3)) else {
        panic!("BYE not relayed by b: {}", b.stderr_tail(20));
    };
    target
        .send_to(
            &respond(&bye_t, 200, "OK", "t1tag", t_addr),
            via_addr(&bye_t),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let r = carrier
        .recv_until_final(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.last().and_then(|m| m.status()), Some(200), "{r:?}");
    assert!(eventually(Duration::from_secs(3), || !exists(&redis, &key)));
    assert!(b.wait_for_stderr("its CDR is written here", Duration::from_secs(3)));
    let _ = b.stop();
    let all: Vec<_> = cdrs_of(&[&a, &b]);
    let mine: Vec<_> = all.iter().filter(|c| c.call_id == invite.call_id).collect();
    assert_eq!(mine.len(), 1, "one CDR: {all:#?}");
    let c = mine[0];
    assert_eq!(c.hangup_side, hotline_cdr::HangupSide::Caller, "{c:?}");
    assert_eq!(c.answered_target, "t1");
    let want = talked.as_millis() as i64;
    let talk = c.talk_ms() as i64;
    assert!(
        (talk - want).abs() < 400,
        "talk {talk} ms, measured {want} ms: {c:?}"
    );
    assert!(
        cdr_calls(a.cdr_dir()).is_empty(),
        "the killed node wrote no call CDR"
    );
}

/// A BYE may reach any node (the cluster address is shared): through node b while node a,
/// which carries the call, lives. b relays it and writes the CDR once; a lets the call go
/// (no BYE of its own, no second CDR) and frees the target's slot.
#[test]
fn bye_through_the_other_node_while_the_owner_lives_ends_the_call_once() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let target = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let t_addr = match target.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let base = HotlineConfig::new()
        .target_limited("t1", &format!("sip:1001@{t_addr}"), 1)
        .plan(Plan::new("p").group("sequential", "20s", &["t1"]))
        .number_with_plan(NUMBER, "p");
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let (invite, ok, _) = answered_call(&carrier, &target, t_addr, &a);
    let key = format!("hl:dlg:{{{}}}", invite.call_id);
    assert!(eventually(Duration::from_secs(3), || exists(&redis, &key)));
    std::thread::sleep(Duration::from_millis(500));
    carrier
        .send_to(
            &invite.in_dialog("BYE", &ok, invite.cseq + 1).to_bytes(),
            b.sip_addr(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(bye_t) = next_request(&target, "BYE", Duration::from_secs(3)) else {
        panic!("BYE not relayed by b: {}", b.stderr_tail(20));
    };
    target
        .send_to(
            &respond(&bye_t, 200, "OK", "t1tag", t_addr),
            via_addr(&bye_t),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let r = carrier
        .recv_until_final(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.last().and_then(|m| m.status()), Some(200), "{r:?}");
    // a learns within a few seconds: the call goes, its slot is free, nothing more is sent.
    assert!(
        a.wait_for_stderr(
            "call ended by a BYE through another node",
            Duration::from_secs(6)
        ),
        "{}",
        a.stderr_tail(20)
    );
    assert!(eventually(Duration::from_secs(3), || zcard(&redis, "t1") == 0));
    let late = target
        .recv_for(Duration::from_millis(500))
        .unwrap_or_default();
    assert!(late.iter().all(|m| m.method() != Some("BYE")), "{late:?}");
    let _ = a.stop();
    let _ = b.stop();
    let all: Vec<_> = cdrs_of(&[&a, &b]);
    let mine: Vec<_> = all.iter().filter(|c| c.call_id == invite.call_id).collect();
    assert_eq!(mine.len(), 1, "one CDR: {all:#?}");
    assert!(cdr_calls(a.cdr_dir()).is_empty(), "written by b: {all:#?}");
}

/// The trunk's `max_cps` holds for the cluster, not per node: six INVITEs within the same
/// second, alternating between the nodes, with `max_cps = 2`: two are taken, four get 503
/// (two nodes counting alone would take four).
#[test]
fn trunk_max_cps_is_shared_by_the_nodes() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let busy = uas("uas_486", 6);
    let mut base = HotlineConfig::new()
        .trunk("elsewhere", &["127.0.0.9"], true)
        .target("desk", &busy.uri("1001"))
        .number(NUMBER, &["desk"])
        .raw("[[server.trunks]]\nname = \"ct\"\nsources = [\"127.0.0.1\"]\ntrusted = true\nmax_cps = 2\n");
    base.ring_timeout = "5s".into();
    let a = node(&base, &redis, "a", "127.0.0.2", "");
    let b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let c_addr = carrier.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // Start at the beginning of a second, so that all six fall into one.
    let ms_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    };
    while ms_now() % 1000 > 20 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = ms_now();
    let uri = format!("sip:{NUMBER}@sip.hotline.test");
    let mut ids = Vec::new();
    for i in 0..6 {
        let inv = RawRequest::invite(&uri, c_addr);
        let to = if i % 2 == 0 { &a } else { &b };
        carrier
            .send_to(&inv.to_bytes(), to.sip_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        ids.push(inv.call_id.clone());
    }
    assert!(ms_now() - started < 500, "sent within one second");
    let mut finals = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while finals.len() < 6 && Instant::now() < deadline {
        if let Ok(Some(m)) = carrier.recv(Duration::from_millis(200)) {
            if let (Some(code), Some(id)) = (m.status(), m.header("Call-ID")) {
                if code >= 200 {
                    finals.insert(id, code);
                }
            }
        }
    }
    let mut codes: Vec<u16> = ids.iter().filter_map(|i| finals.get(i).copied()).collect();
    codes.sort();
    assert_eq!(codes, [486, 486, 503, 503, 503, 503], "{finals:?}");
    let _ = stop(busy);
}

/// A node starts while Redis is down (not fatal): it says so (metric, /readyz degraded),
/// takes calls with its own state (default `local` policies), and picks Redis up by itself
/// once it is there.
#[test]
fn a_node_starts_without_redis_and_connects_when_it_comes() {
    let mut redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    redis.kill();
    let desk = uas("uas_answer", 2);
    let base = HotlineConfig::new()
        .target_limited("desk", &desk.uri("1001"), 1)
        .number(NUMBER, &["desk"]);
    let cfg = base
        .clone()
        .listen("127.0.0.2:0")
        .with_admin()
        .raw(&cluster_toml(&redis, "a", ""))
        .to_toml();
    let a = Hotline::spawn(&cfg);
    assert!(wait_redis_up(&a, false, Duration::from_secs(5)));
    let ready = a
        .admin_addr()
        .map(|addr| http_get(addr, "/readyz").unwrap_or_else(|e| e.to_string()))
        .unwrap_or_default();
    assert!(ready.contains("degraded"), "{ready}");
    assert_all_ok(&run(caller(&a, "uac", 100)), 1, "call while redis is down");
    redis.restart().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_redis_up(&a, true, Duration::from_secs(8)),
        "{}",
        a.stderr_tail(20)
    );
    assert_all_ok(&run(caller(&a, "uac", 100)), 1, "call with redis");
    let _ = stop(desk);
    assert!(
        eventually(Duration::from_secs(3), || redis
            .int(&["EXISTS", "hl:node:a"])
            .ok()
            .flatten()
            == Some(1)),
        "heartbeat written"
    );
}

/// Nodes whose routing differs are told apart: `/status` says `hashes_agree: false` and the
/// nodes log a warning naming the hashes.
#[test]
fn nodes_running_different_configurations_are_warned_about() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let base = HotlineConfig::new()
        .target("desk", "sip:1001@127.0.0.1:9")
        .number(NUMBER, &["desk"]);
    let a = node(&base, &redis, "a", "127.0.0.2", "");
    let other = base.clone().target("spare", "sip:1002@127.0.0.1:9");
    let b = node(&other, &redis, "b", "127.0.0.3", "");
    assert!(
        a.wait_for_stderr(
            "the live nodes run different configurations",
            Duration::from_secs(8)
        ),
        "{}",
        a.stderr_tail(20)
    );
    let status = || {
        b.admin_addr()
            .and_then(|addr| http_get(addr, "/status").ok())
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(6), || status()
            .contains("\"hashes_agree\":false")),
        "{}",
        status()
    );
}

/// An answered call through node `via`: INVITE from the carrier, 200 from the target, ACK.
/// Returns the INVITE, the 200 and when the call was answered.
fn answered_call(
    carrier: &SipUdpClient,
    target: &SipUdpClient,
    t_addr: SocketAddrV4,
    via: &Hotline,
) -> (RawRequest, SipMessage, Instant) {
    let c_addr = carrier.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let invite = RawRequest::invite(&format!("sip:{NUMBER}@sip.hotline.test"), c_addr);
    carrier
        .send_to(&invite.to_bytes(), via.sip_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(inv) = next_request(target, "INVITE", Duration::from_secs(5)) else {
        panic!("no INVITE: {}", via.stderr_tail(20));
    };
    target
        .send_to(&respond(&inv, 200, "OK", "t1tag", t_addr), via_addr(&inv))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = carrier
        .recv_until_final(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ok) = got.last().filter(|m| m.status() == Some(200)).cloned() else {
        panic!("no 200: {got:?}");
    };
    let answered = Instant::now();
    carrier
        .send_to(
            &invite.in_dialog("ACK", &ok, invite.cseq).to_bytes(),
            via.sip_addr(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(next_request(target, "ACK", Duration::from_secs(3)).is_some());
    (invite, ok, answered)
}

/// Both sides receive the BYE that cuts the call, within `window` of `at`; each is answered
/// 200. Returns when the callee's arrived.
fn both_get_bye(
    carrier: &SipUdpClient,
    target: &SipUdpClient,
    t_addr: SocketAddrV4,
    by: &Hotline,
    timeout: Duration,
) -> Instant {
    let Some(bye_t) = next_request(target, "BYE", timeout) else {
        panic!("no BYE to the callee: {}", by.stderr_tail(30));
    };
    let at = Instant::now();
    target
        .send_to(
            &respond(&bye_t, 200, "OK", "t1tag", t_addr),
            via_addr(&bye_t),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(bye_c) = next_request(carrier, "BYE", Duration::from_secs(3)) else {
        panic!("no BYE to the caller: {}", by.stderr_tail(30));
    };
    let c_addr = match carrier.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    carrier
        .send_to(
            &respond(&bye_c, 200, "OK", "ctag", c_addr),
            via_addr(&bye_c),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    at
}

/// Take-over of a dead owner's call: node a answers a call whose plan cuts it after 9 s and
/// is killed (SIGKILL) a second later; node b takes the call over once a's heartbeat has
/// expired and sends the BYEs both ways at 9 s; one CDR (b's) with the 9 s of talk, none
/// from a; the target's slot is held by b meanwhile and free afterwards.
#[test]
fn node_killed_after_answer_its_max_duration_cut_is_sent_by_the_other_node() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let target = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let t_addr = match target.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let base = HotlineConfig::new()
        .target_limited("t1", &format!("sip:1001@{t_addr}"), 1)
        .plan(
            Plan::new("cut")
                .group("sequential", "10s", &["t1"])
                .key("max_duration = \"9s\""),
        )
        .number_with_plan(NUMBER, "cut");
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let (invite, _ok, answered) = answered_call(&carrier, &target, t_addr, &a);
    let key = format!("hl:dlg:{{{}}}", invite.call_id);
    assert!(
        eventually(Duration::from_secs(3), || exists(&redis, &key)),
        "the answered call is published"
    );
    std::thread::sleep(Duration::from_secs(1));
    let pid = a.pid().unwrap_or_else(|| panic!("no pid"));
    hotline_testkit::hotline::send_signal(pid, "KILL").unwrap_or_else(|e| panic!("{e}"));
    let _ = a.wait_exit(Duration::from_secs(5));
    assert!(
        b.wait_for_stderr("taking over an answered call", Duration::from_secs(7)),
        "b took the call over: {}",
        b.stderr_tail(20)
    );
    // The slot stays held (by b now), past a's lease of 6 s.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(zcard(&redis, "t1"), 1, "t1 still busy with the call");
    let at = both_get_bye(&carrier, &target, t_addr, &b, Duration::from_secs(12));
    let cut = at.duration_since(answered);
    assert!(
        cut >= Duration::from_millis(8_700) && cut <= Duration::from_millis(10_000),
        "cut at {cut:?}, max duration 9 s"
    );
    assert!(eventually(Duration::from_secs(3), || zcard(&redis, "t1") == 0));
    assert!(eventually(Duration::from_secs(3), || !exists(&redis, &key)));
    let _ = b.stop();
    let mine: Vec<_> = cdrs_of(&[&a, &b])
        .into_iter()
        .filter(|c| c.call_id == invite.call_id)
        .collect();
    assert_eq!(mine.len(), 1, "one CDR: {mine:#?}");
    let c = &mine[0];
    assert_eq!(c.hangup_side, hotline_cdr::HangupSide::System, "{c:?}");
    assert_eq!(c.answered_target, "t1");
    let talk = c.talk_ms() as i64;
    assert!((talk - 9_000).abs() < 700, "talk {talk} ms: {c:?}");
    assert!(
        cdr_calls(a.cdr_dir()).is_empty(),
        "the killed node wrote none"
    );
}

/// Issue test 4: prepaid credit for one minute, shared in Redis. Node a answers the call
/// (reserving its minute) and is killed; node b takes it over and, when the next minute
/// cannot be reserved, sends the cut-off BYEs just before the minute ends. The call is
/// settled once (one minute, by b); the credit is gone for the whole cluster: a new call
/// through b is refused with the configured 402.
#[test]
fn prepaid_runs_out_while_the_owner_is_dead_the_other_node_cuts_on_time() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let billing = dir.path().join("billing.toml");
    std::fs::write(
        &billing,
        format!(
            "timezone = \"Asia/Shanghai\"\n[plans.p]\nrate_per_minute = \"0.50\"\n\
             monthly_minimum = \"0\"\nterm_years = 1\n[[accounts]]\nnumber = \"{NUMBER}\"\n\
             plan = \"p\"\nstart = \"2026-01-01\"\nprepaid = \"0.50\"\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let target = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let t_addr = match target.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        other => panic!("{other:?}"),
    };
    let base = HotlineConfig::new()
        .target("t1", &format!("sip:1001@{t_addr}"))
        .number(NUMBER, &["t1"])
        .raw(&format!(
            "[server.billing]\nfile = {:?}\nrefuse_code = 402\n",
            billing.display().to_string()
        ));
    let mut a = node(&base, &redis, "a", "127.0.0.2", "");
    let mut b = node(&base, &redis, "b", "127.0.0.3", "");
    let carrier = SipUdpClient::bind().unwrap_or_else(|e| panic!("{e}"));
    let (invite, _ok, answered) = answered_call(&carrier, &target, t_addr, &a);
    let acct = format!("hl:pp:{{{NUMBER}}}");
    let res = format!("res:{}", invite.call_id);
    assert!(
        eventually(Duration::from_secs(3), || redis
            .int(&["HEXISTS", &acct, &res])
            .ok()
            .flatten()
            == Some(1)),
        "a reserved the first minute in redis"
    );
    // While a's call holds the only paid minute, b refuses a second call (it knows of a's
    // reservation through redis, within its 2 s refresh).
    std::thread::sleep(Duration::from_millis(2500));
    let second = RawRequest::invite(
        &format!("sip:{NUMBER}@sip.hotline.test"),
        carrier.local_addr().unwrap_or_else(|e| panic!("{e}")),
    );
    carrier
        .send_to(&second.to_bytes(), b.sip_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let got = carrier
        .recv_until_final(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.last().and_then(|m| m.status()), Some(402), "{got:?}");
    carrier
        .send_to(
            &second
                .in_dialog(
                    "ACK",
                    got.last().unwrap_or_else(|| panic!("final")),
                    second.cseq,
                )
                .to_bytes(),
            b.sip_addr(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = a.pid().unwrap_or_else(|| panic!("no pid"));
    hotline_testkit::hotline::send_signal(pid, "KILL").unwrap_or_else(|e| panic!("{e}"));
    let _ = a.wait_exit(Duration::from_secs(5));
    assert!(
        b.wait_for_stderr("taking over an answered call", Duration::from_secs(8)),
        "b took the call over: {}",
        b.stderr_tail(20)
    );
    let at = both_get_bye(&carrier, &target, t_addr, &b, Duration::from_secs(70));
    let cut = at.duration_since(answered);
    assert!(
        cut >= Duration::from_millis(58_800) && cut <= Duration::from_millis(60_000),
        "cut at {cut:?}: just before the paid minute ends"
    );
    assert!(b.wait_for_stderr("prepaid balance used up", Duration::from_secs(1)));
    // Settled once, by b: one minute of usage, no reservation left.
    assert!(eventually(Duration::from_secs(3), || redis
        .int(&["HEXISTS", &acct, &res])
        .ok()
        .flatten()
        == Some(0)));
    let month = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC))
        .strftime("%Y-%m")
        .to_string();
    let used = |node: &str| match redis.query(&["HGET", &acct, &format!("used:{month}:{node}")]) {
        Ok(hotline_testkit::Resp::Bulk(Some(v))) => v.parse::<i64>().unwrap_or(-1),
        _ => 0,
    };
    assert_eq!((used("a"), used("b")), (0, 1), "one minute, settled by b");
    let _ = b.stop();
    let mine: Vec<_> = cdrs_of(&[&a, &b])
        .into_iter()
        .filter(|c| c.call_id == invite.call_id)
        .collect();
    assert_eq!(mine.len(), 1, "one CDR: {mine:#?}");
    assert_eq!(mine[0].hangup_side, hotline_cdr::HangupSide::System);
    assert_eq!(mine[0].billable_minutes(), 1);
}
