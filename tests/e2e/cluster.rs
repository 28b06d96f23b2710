//! The cluster (issue #15): two Hotline nodes on 127.0.0.2 and 127.0.0.3 sharing their live
//! state in a real redis-server started by the test; SIPp as carrier and targets.

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
    let _ = a.stop();
    let _ = b.stop();
    let calls: Vec<_> = [&a, &b]
        .iter()
        .flat_map(|h| cdr_calls(h.cdr_dir()))
        .collect();
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
}
