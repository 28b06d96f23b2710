//! Each script against a real redis-server (started per test on a free port, see
//! `hotline_testkit::RedisServer`).

use std::time::Duration;

use hotline_route::{Live, LiveState, Needs, RateLimit, RateQuestion, RateVerdict, RateWindow};
use hotline_testkit::{RedisServer, Resp};

use super::*;

type R = Result<(), Box<dyn std::error::Error>>;

fn client(r: &RedisServer, node: &str) -> Result<RedisState, ClusterError> {
    RedisState::new(Options {
        url: r.url(),
        node: node.into(),
        lease: Duration::from_secs(10),
        timeout: Duration::from_millis(500),
    })
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn lease_respects_the_limit_is_idempotent_and_expires() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    assert!(a.lease("t1", Some(1), "call-1", T0).await?);
    assert!(!a.lease("t1", Some(1), "call-2", T0 + 1).await?, "limit 1");
    assert!(
        a.lease("t1", Some(1), "call-1", T0 + 2).await?,
        "a retry of the holder"
    );
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t1}"])?, Some(1));
    assert_eq!(
        r.int(&["HGET", "hl:tstat:{t1}", "calls"])?,
        Some(1),
        "counted once"
    );
    assert!(a.lease("t2", None, "call-2", T0).await?, "no limit");
    // A lease not renewed is gone after its lifetime: the slot is free for another call.
    assert!(a.lease("t1", Some(1), "call-3", T0 + 10_003).await?);
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t1}"])?, Some(1));
    // Release frees it at once.
    a.release("t1", "call-3").await?;
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t1}"])?, Some(0));
    assert!(a.is_up());
    Ok(())
}

#[tokio::test]
async fn two_nodes_racing_for_the_last_slot_one_wins() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    for round in 0..20 {
        let t = format!("race{round}");
        let (x, y) = tokio::join!(
            a.lease(&t, Some(1), "from-a", T0),
            b.lease(&t, Some(1), "from-b", T0)
        );
        assert!(x? ^ y?, "round {round}: exactly one wins");
    }
    Ok(())
}

#[tokio::test]
async fn renewal_extends_and_recreates_lost_leases() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    assert!(a.lease("t", Some(2), "c1", T0).await?);
    assert!(a.lease("t", Some(2), "c2", T0).await?);
    assert_eq!(a.renew(T0 + 5_000).await?, 0);
    let score = r.query(&["ZSCORE", "hl:lease:{t}", "c1"])?;
    assert_eq!(score.int(), Some(T0 + 15_000), "{score:?}");
    // Redis lost everything (restart without persistence): the owner's renewal re-creates.
    r.query(&["FLUSHALL"])?;
    assert_eq!(a.renew(T0 + 6_000).await?, 2);
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t}"])?, Some(2));
    // A lease taken locally while Redis was down is written by the next renewal.
    a.hold("t", "c3");
    assert_eq!(a.renew(T0 + 7_000).await?, 1);
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t}"])?, Some(3));
    // Released leases are not renewed.
    a.release("t", "c1").await?;
    assert_eq!(a.held(), 2);
    Ok(())
}

fn limit() -> RateLimit {
    RateLimit {
        per_caller_number: Some(RateWindow {
            calls: 3,
            window: Duration::from_secs(60),
        }),
        per_caller: Some(RateWindow {
            calls: 5,
            window: Duration::from_secs(60),
        }),
        block_for: Duration::from_secs(600),
        code: 603,
    }
}

fn rate_needs(caller: u64, number: u64, commit: bool) -> Needs {
    Needs {
        rates: vec![RateQuestion {
            caller_key: caller,
            number,
            limit: limit(),
            commit,
        }],
        ..Needs::default()
    }
}

#[tokio::test]
async fn rate_script_agrees_with_the_in_memory_windows() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let live = Live::new();
    // Calls from one caller to two numbers at these offsets (s), alternating nodes.
    let calls: [(i64, u64); 12] = [
        (0, 1),
        (1, 1),
        (2, 2),
        (3, 1),
        (4, 1), // 4th to number 1 in the window: blocked
        (5, 2),
        (70, 2),
        (700, 1),
        (701, 2),
        (702, 2),
        (703, 2),
        (704, 1),
    ];
    let mut blocked = 0;
    for (i, (s, n)) in calls.iter().enumerate() {
        let now = T0 + s * 1000;
        let node = if i % 2 == 0 { &a } else { &b };
        let got = node
            .decide(Decide {
                invite: None,
                trunk: None,
                needs: &rate_needs(42, *n, true),
                now_ms: now,
            })
            .await?;
        let ts = jiff::Timestamp::from_millisecond(now)?;
        let want = LiveState::rate_check(&live, 42, *n, &limit(), ts, true);
        assert_eq!(got.rates, vec![want], "call {i} at +{s}s to {n}");
        blocked += usize::from(matches!(want, RateVerdict::Blocked { .. }));
    }
    assert!(
        blocked >= 3 && blocked < calls.len(),
        "{blocked} blocked: the sequence tests both"
    );
    // Evaluation only (explain) counts nothing.
    let before = r.query(&["HGETALL", "hl:rate:{000000000000002a}:1"])?;
    let _ = a
        .decide(Decide {
            invite: None,
            trunk: None,
            needs: &rate_needs(42, 1, false),
            now_ms: T0 + 705_000,
        })
        .await?;
    assert_eq!(
        r.query(&["HGETALL", "hl:rate:{000000000000002a}:1"])?,
        before
    );
    // Keys expire with their window / block.
    let ttl = r
        .int(&["PTTL", "hl:rate:{000000000000002a}:all"])?
        .unwrap_or(-1);
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    Ok(())
}

#[tokio::test]
async fn decide_answers_cursors_stats_and_rates_in_order() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    assert!(a.lease("x", None, "c1", T0).await?);
    assert!(a.lease("x", None, "c2", T0 + 5).await?);
    assert!(b.lease("y", None, "c3", T0 + 9).await?);
    let mut needs = rate_needs(7, 1, true);
    needs.cursors = vec!["p/g".into()];
    needs.stats = vec!["x".into(), "y".into(), "z".into()];
    let mut seen = Vec::new();
    for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        let d = node
            .decide(Decide {
                invite: None,
                trunk: None,
                needs: &needs,
                now_ms: T0 + 100 + i as i64,
            })
            .await?;
        assert_eq!(d.rates.len(), 1);
        seen.push(d.cursors[0].1);
        if i == 0 {
            let s: Vec<_> = d
                .stats
                .iter()
                .map(|(n, s)| (&**n, s.active, s.calls, s.last_call_ms))
                .collect();
            assert_eq!(
                s,
                [("x", 2, 2, T0 + 5), ("y", 1, 1, T0 + 9), ("z", 0, 0, 0)]
            );
        }
    }
    assert_eq!(seen, [0, 1, 2, 3], "one cursor for the whole cluster");
    // A decision that meets NOSCRIPT (Redis restarted or flushed its scripts) is sent again
    // and counts once: the cursor moves by one, the rate window by one call.
    r.query(&["SCRIPT", "FLUSH"])?;
    let mut fresh = rate_needs(8, 1, true);
    fresh.cursors = needs.cursors.clone();
    let d = a
        .decide(Decide {
            invite: None,
            trunk: None,
            needs: &fresh,
            now_ms: T0 + 200,
        })
        .await?;
    assert_eq!(d.cursors[0].1, 4);
    assert_eq!(r.int(&["GET", "hl:rr:p/g"])?, Some(5));
    assert_eq!(
        r.int(&["HGET", "hl:rate:{0000000000000008}:1", "count"])?,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn invite_claim_new_mine_duplicate_takeover() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let k = InviteKey {
        call_id: "abc@carrier".into(),
        from_tag: "f1".into(),
        cseq: 1,
    };
    let none = Needs::default();
    let claim = |n: &RedisState, now: i64| {
        let n = n.clone();
        let k = k.clone();
        let none = none.clone();
        async move {
            n.decide(Decide {
                invite: Some(&k),
                trunk: None,
                needs: &none,
                now_ms: now,
            })
            .await
            .map(|d| d.claim)
        }
    };
    let info = |n: &str| NodeInfo {
        node: n.into(),
        ..NodeInfo::default()
    };
    a.heartbeat(&info("a"), T0).await?;
    assert_eq!(claim(&a, T0).await?, Some(Claim::New));
    assert_eq!(claim(&a, T0).await?, Some(Claim::Mine));
    assert_eq!(
        claim(&b, T0).await?,
        Some(Claim::Duplicate { owner: "a".into() }),
        "a is alive"
    );
    // Another CSeq (a new transaction) is a new INVITE.
    let mut k2 = k.clone();
    k2.cseq = 2;
    let d = b
        .decide(Decide {
            invite: Some(&k2),
            trunk: None,
            needs: &none,
            now_ms: T0,
        })
        .await?;
    assert_eq!(d.claim, Some(Claim::New));
    // a dies (its heartbeat expires): b takes the call over, and then it is b's.
    r.query(&["DEL", "hl:node:a"])?;
    assert_eq!(
        claim(&b, T0).await?,
        Some(Claim::TakeOver { owner: "a".into() })
    );
    assert_eq!(claim(&b, T0).await?, Some(Claim::Mine));
    // b has no heartbeat in this test, so a may take it back.
    assert_eq!(
        claim(&a, T0).await?,
        Some(Claim::TakeOver { owner: "b".into() })
    );
    Ok(())
}

#[tokio::test]
async fn heartbeats_list_nodes_with_their_config() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let info = NodeInfo {
        node: "a".into(),
        sip: "127.0.0.2:5060".into(),
        config_hash: "abc".into(),
        generation: 3,
        version: "0.1.0".into(),
        ..NodeInfo::default()
    };
    a.heartbeat(&info, T0).await?;
    a.heartbeat(
        &NodeInfo {
            node: "b".into(),
            config_hash: "def".into(),
            ..info.clone()
        },
        T0,
    )
    .await?;
    r.query(&["DEL", "hl:node:b"])?;
    let nodes = a.nodes(T0 + 1).await?;
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].node, "a");
    assert!(nodes[0].alive);
    assert_eq!(nodes[0].config_hash, "abc");
    assert_eq!(nodes[0].generation, 3);
    assert_eq!(nodes[0].seen_ms, T0);
    assert!(!nodes[1].alive, "b's heartbeat expired");
    let ttl = r.int(&["PTTL", "hl:node:a"])?.unwrap_or(-1);
    assert!(ttl > 0 && ttl <= 3000, "{ttl}");
    Ok(())
}

#[tokio::test]
async fn scripts_reload_after_flush_and_redis_restart() -> R {
    let mut r = RedisServer::start()?;
    let a = client(&r, "a")?;
    assert!(a.lease("t", Some(1), "c1", T0).await?);
    assert_eq!(r.query(&["SCRIPT", "FLUSH"])?, Resp::Simple("OK".into()));
    assert!(
        !a.lease("t", Some(1), "c2", T0).await?,
        "NOSCRIPT: loaded and run again"
    );
    // Redis gone: an error within the timeout, health down.
    r.kill();
    let t = std::time::Instant::now();
    assert!(a.lease("t", Some(1), "c3", T0).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!a.is_up());
    // Back (empty): the same client reconnects by itself and loads the scripts again.
    r.restart()?;
    let mut ok = false;
    for _ in 0..50 {
        if a.ping().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "reconnected");
    assert!(a.lease("t", Some(1), "c4", T0).await?);
    assert!(a.is_up());
    assert!(a.errors() >= 1);
    Ok(())
}

#[tokio::test]
async fn dialog_end_is_claimed_once_and_fenced() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let life = Duration::from_secs(60);
    let fence = a.dialog_put("c1", b"{rec}", "ft", life, &[]).await?;
    assert_eq!(fence, 1);
    let ttl = r.int(&["PTTL", "hl:dlg:{c1}"])?.unwrap_or(-1);
    assert!(ttl > 50_000 && ttl <= 60_000, "{ttl}");
    // The owner with a stale token cannot end it; with its token it can, once.
    assert_eq!(
        a.dialog_end("c1", Some(fence + 1)).await?,
        DialogEnd::NotHere
    );
    assert_eq!(
        a.dialog_end("c1", Some(fence)).await?,
        DialogEnd::Claimed {
            record: b"{rec}".to_vec(),
            caller_tag: "ft".into(),
            owner: "a".into()
        }
    );
    assert_eq!(
        b.dialog_end("c1", None).await?,
        DialogEnd::NotHere,
        "nobody else"
    );
    // A call Redis lost (restarted empty) is the owner's to write.
    assert_eq!(a.dialog_end("c1", Some(fence)).await?, DialogEnd::Lost);
    // A BYE that reached b ends a's call there; a (dead or not) cannot end it again.
    let fence = a.dialog_put("c2", b"{rec2}", "ft2", life, &[]).await?;
    let (tx, rx) = tokio::join!(b.dialog_end("c2", None), b.dialog_end("c2", None));
    let claimed = |d: &DialogEnd| matches!(d, DialogEnd::Claimed { .. });
    assert!(
        claimed(&tx?) ^ claimed(&rx?),
        "two racing BYE handlers: one claim"
    );
    assert_eq!(
        a.dialog_end("c2", Some(fence)).await?,
        DialogEnd::NotHere,
        "ended elsewhere, not lost"
    );
    Ok(())
}

#[tokio::test]
async fn trunk_limits_are_shared_cps_per_second_and_calls_as_leases() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let none = Needs::default();
    let ask = |id: &'static str| TrunkAsk {
        name: "ct",
        max_cps: Some(2),
        max_calls: Some(3),
        call_id: id,
    };
    let go = |n: &RedisState, id: &'static str, now: i64| {
        let n = n.clone();
        let none = none.clone();
        async move {
            n.decide(Decide {
                invite: None,
                trunk: Some(ask(id)),
                needs: &none,
                now_ms: now,
            })
            .await
            .map(|d| d.trunk)
        }
    };
    assert_eq!(go(&a, "c1", T0).await?, Some(TrunkVerdict::Admit));
    assert_eq!(go(&b, "c2", T0 + 10).await?, Some(TrunkVerdict::Admit));
    assert_eq!(
        go(&a, "c3", T0 + 20).await?,
        Some(TrunkVerdict::Cps),
        "2 per second"
    );
    assert_eq!(
        r.int(&["ZCARD", "hl:lease:{trunk:ct}"])?,
        Some(2),
        "the refused one holds no slot"
    );
    assert_eq!(
        go(&b, "c4", T0 + 1000).await?,
        Some(TrunkVerdict::Admit),
        "next second"
    );
    assert_eq!(
        go(&a, "c5", T0 + 1010).await?,
        Some(TrunkVerdict::Calls),
        "3 calls up"
    );
    a.release("trunk:ct", "c1").await?;
    assert_eq!(go(&a, "c6", T0 + 2000).await?, Some(TrunkVerdict::Admit));
    Ok(())
}

#[tokio::test]
async fn a_dead_nodes_calls_are_adopted_once_and_fenced() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let c = client(&r, "c")?;
    let life = Duration::from_secs(60);
    let info = |n: &str| NodeInfo {
        node: n.into(),
        ..NodeInfo::default()
    };
    a.heartbeat(&info("a"), crate::now_ms()).await?;
    let f1 = a
        .dialog_put("k1", b"{r1}", "t1", life, &[("dialog", b"v1 1:x".to_vec())])
        .await?;
    let f2 = a.dialog_put("k2", b"{r2}", "t2", life, &[]).await?;
    assert_eq!(
        a.dialog_fates(&["k1".into(), "k2".into(), "nope".into()])
            .await?,
        vec![DialogFate::Ours, DialogFate::Ours, DialogFate::Missing]
    );
    // While a beats, nobody takes its calls.
    assert!(b.adopt("a", 10).await?.is_empty());
    assert_eq!(r.int(&["SCARD", "hl:dlgs:a"])?, Some(2));
    // a dies: its heartbeat key goes (it expires after NODE_TTL).
    r.query(&["DEL", "hl:node:a"])?;
    let (x, y) = tokio::join!(b.adopt("a", 10), c.adopt("a", 10));
    let (x, y) = (x?, y?);
    assert_eq!(x.len() + y.len(), 2, "each call adopted once: {x:?} {y:?}");
    let all: Vec<&Adopted> = x.iter().chain(y.iter()).collect();
    let k1 = all.iter().find(|d| d.call_id == "k1").ok_or("k1 adopted")?;
    assert_eq!(k1.record, b"{r1}");
    assert_eq!(k1.caller_tag, "t1");
    assert_eq!(k1.field("dialog"), Some(&b"v1 1:x"[..]));
    assert_eq!(k1.fence, f1 + 1);
    let k1_owner = if x.iter().any(|d| d.call_id == "k1") {
        &b
    } else {
        &c
    };
    // a, come back, is fenced out: its calls are gone, it cannot end them.
    assert_eq!(
        a.dialog_fates(&["k1".into(), "k2".into()]).await?,
        vec![DialogFate::Gone, DialogFate::Gone]
    );
    assert_eq!(a.dialog_end("k1", Some(f1)).await?, DialogEnd::NotHere);
    assert_eq!(a.dialog_end("k2", Some(f2)).await?, DialogEnd::NotHere);
    assert_eq!(
        k1_owner.dialog_fates(&["k1".into()]).await?,
        vec![DialogFate::Ours]
    );
    assert!(matches!(
        k1_owner.dialog_end("k1", Some(k1.fence)).await?,
        DialogEnd::Claimed { .. }
    ));
    assert_eq!(r.int(&["SISMEMBER", "hl:dlgs:b", "k1"])?, Some(0));
    assert_eq!(r.int(&["SISMEMBER", "hl:dlgs:c", "k1"])?, Some(0));
    assert_eq!(r.int(&["EXISTS", "hl:dlgs:a"])?, Some(0));
    // A node restarted under its own name adopts the calls of its previous life.
    let f3 = b.dialog_put("k3", b"{r3}", "t3", life, &[]).await?;
    b.heartbeat(&info("b"), crate::now_ms()).await?;
    let again = b.adopt("b", 10).await?;
    let k3 = again
        .iter()
        .find(|d| d.call_id == "k3")
        .ok_or("k3 adopted again")?;
    assert_eq!(k3.fence, f3 + 1);
    // (and k2, if b was the one that adopted it from a)
    assert!(again.len() <= 2);
    assert_eq!(r.int(&["SISMEMBER", "hl:dlgs:b", "k3"])?, Some(1));
    Ok(())
}

#[tokio::test]
async fn prepaid_slices_are_shared_lapse_and_settle_once() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    // 1.50 of credit at 0.50 a minute: three minutes for the whole cluster.
    let ask = |call: Option<&'static str>, now: i64| PrepaidAsk {
        number: "4008001234",
        call_id: call,
        slice_fen: 50,
        expires_ms: now + 70_000,
        now_ms: now,
        base_fen: 150,
        rate_fen: 50,
        month: "2026-12",
    };
    assert!(a.prepaid_reserve(ask(Some("c1"), T0)).await?.granted);
    assert!(b.prepaid_reserve(ask(Some("c2"), T0)).await?.granted);
    assert!(
        a.prepaid_reserve(ask(Some("c1"), T0)).await?.granted,
        "c1's 2nd minute"
    );
    let no = b.prepaid_reserve(ask(Some("c2"), T0)).await?;
    assert!(!no.granted, "nothing left: {no:?}");
    assert_eq!(no.available_fen, 0);
    // Two nodes racing for the last slice: one wins.
    a.prepaid_settle("4008001234", "c2", "2026-12", 0).await?;
    let (x, y) = tokio::join!(
        a.prepaid_reserve(ask(Some("c3"), T0)),
        b.prepaid_reserve(ask(Some("c4"), T0))
    );
    assert!(x?.granted ^ y?.granted, "one of two");
    // c1 settles 2 minutes on a: once, however often it is sent.
    assert!(a.prepaid_settle("4008001234", "c1", "2026-12", 2).await?);
    assert!(!a.prepaid_settle("4008001234", "c1", "2026-12", 2).await?);
    let q = b.prepaid_reserve(ask(None, T0)).await?;
    assert_eq!(
        q.usage,
        vec![("2026-12".into(), "a".into(), 2)],
        "a's usage is seen by b"
    );
    assert_eq!(q.available_fen, 150 - 100 - 50, "c3/c4's slice still held");
    // A dead node's slice lapses by itself.
    let later = b.prepaid_reserve(ask(None, T0 + 71_000)).await?;
    assert_eq!(later.available_fen, 50);
    // Seeding: the files' figure at start, only larger ones later.
    b.prepaid_seed("4008001234", &[("2026-11".into(), 7)], true)
        .await?;
    b.prepaid_seed("4008001234", &[("2026-11".into(), 3)], false)
        .await?;
    let u = b.prepaid_reserve(ask(None, T0 + 71_000)).await?.usage;
    assert!(u.contains(&("2026-11".into(), "b".into(), 7)), "{u:?}");
    Ok(())
}

/// Redis behind Sentinel (`redis+sentinel://`): the node finds the primary through the
/// sentinel, and after the primary dies and the sentinel promotes the replica, the same
/// client carries on against the new primary by itself.
#[tokio::test]
async fn behind_sentinel_the_client_follows_a_failover() -> R {
    let mut primary = RedisServer::start()?;
    let replica = RedisServer::start_replica_of(&primary)?;
    let sentinel = RedisServer::start_sentinel("hl", &primary)?;
    let url = format!("redis+sentinel://127.0.0.1:{}/hl/0", sentinel.port());
    let a = RedisState::new(Options {
        url,
        node: "a".into(),
        lease: Duration::from_secs(30),
        timeout: Duration::from_millis(500),
    })?;
    assert!(
        matches!(a.ping().await, Err(ClusterError::NoPrimary)),
        "no primary known before a sentinel was asked"
    );
    let info = NodeInfo {
        node: "a".into(),
        ..NodeInfo::default()
    };
    tokio::spawn(a.clone().maintain(move || info.clone()));
    let mut ok = false;
    for _ in 0..50 {
        if a.lease("t", Some(5), "c1", T0).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "connected to the primary the sentinel named");
    assert_eq!(primary.int(&["ZCARD", "hl:lease:{t}"])?, Some(1));
    // The replica has it too (replication), then the primary dies.
    let mut synced = false;
    for _ in 0..50 {
        if replica.int(&["ZCARD", "hl:lease:{t}"])? == Some(1) {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced, "replicated");
    primary.kill();
    let t = std::time::Instant::now();
    let mut back = false;
    while t.elapsed() < Duration::from_secs(30) {
        if a.lease("t", Some(5), "c2", T0).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "no write accepted after the failover within 30 s");
    let role = replica.query(&["ROLE"])?;
    assert!(format!("{role:?}").contains("master"), "{role:?}");
    assert_eq!(
        replica.int(&["ZCARD", "hl:lease:{t}"])?,
        Some(2),
        "the new primary has both leases"
    );
    Ok(())
}

#[tokio::test]
async fn the_end_claim_gives_the_slots_back_unless_the_call_was_taken_over() -> R {
    let r = RedisServer::start()?;
    let a = client(&r, "a")?;
    let b = client(&r, "b")?;
    let life = Duration::from_secs(60);
    assert!(a.lease("t", Some(1), "k1", T0).await?);
    let f = a.dialog_put("k1", b"{r}", "tag", life, &[]).await?;
    assert!(matches!(
        a.dialog_end_releasing("k1", Some(f), &["t".into()]).await?,
        DialogEnd::Claimed { .. }
    ));
    assert_eq!(
        r.int(&["ZCARD", "hl:lease:{t}"])?,
        Some(0),
        "released with the claim"
    );
    assert_eq!(a.held(), 0, "no longer renewed");
    // Taken over by b: a's end claim leaves b's slot alone.
    assert!(a.lease("t", Some(1), "k2", T0).await?);
    let f = a.dialog_put("k2", b"{r}", "tag", life, &[]).await?;
    let adopted = b.adopt("a", 10).await?;
    assert_eq!(adopted.len(), 1);
    assert_eq!(
        a.dialog_end_releasing("k2", Some(f), &["t".into()]).await?,
        DialogEnd::NotHere
    );
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t}"])?, Some(1), "b's slot kept");
    // Ended by a BYE through b: a's claim finds it gone and still gives the slot back.
    let f = b.dialog_put("k3", b"{r}", "tag", life, &[]).await?;
    assert!(b.lease("t3", Some(1), "k3", T0).await?);
    assert!(matches!(
        a.dialog_end("k3", None).await?,
        DialogEnd::Claimed { .. }
    ));
    assert_eq!(
        b.dialog_end_releasing("k3", Some(f), &["t3".into()])
            .await?,
        DialogEnd::NotHere
    );
    assert_eq!(r.int(&["ZCARD", "hl:lease:{t3}"])?, Some(0));
    Ok(())
}
