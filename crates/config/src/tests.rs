use super::*;
use hotline_route::{
    explain, normalize_called, resolve, CallContext, Decision, ExplainOutcome, Live, Number400,
    RejectCause,
};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn num(s: &str) -> Number400 {
    normalize_called(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn compile(src: &str) -> Compiled {
    from_toml_str(src, "test.toml", 1, jiff::civil::date(2026, 11, 24))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn errors(src: &str) -> Vec<ConfigError> {
    match from_toml_str(src, "test.toml", 1, jiff::civil::date(2026, 11, 24)) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0,
    }
}

/// Resolve and return (rule name, first target name) or the reject cause.
fn route(
    c: &Compiled,
    live: &Live,
    called: &str,
    caller: &str,
    key: Option<u8>,
    at: &str,
) -> Result<(String, String), (RejectCause, u16)> {
    let mut call = CallContext::new(num(called), caller);
    call.ivr_key = key;
    match resolve(&c.table, live, &call, ts(at)) {
        Decision::Reject(r) => Err((r.cause, r.code)),
        Decision::Route(r) => {
            let first = r
                .hunt(&c.table)
                .next()
                .map(|(_, _, t)| t.name.clone())
                .unwrap_or_default();
            Ok((r.rule.to_string(), first))
        }
    }
}

const BASE: &str = r#"
[companies.acme]
[targets.day]
uri = "sip:day@127.0.0.1:5070"
[targets.night]
uri = "sip:night@127.0.0.1:5071;transport=tcp"
[targets.vip]
uri = "sip:vip@127.0.0.1:5072"
[targets.sales]
uri = "sip:sales@127.0.0.1:5073"
[targets.support]
uri = "sip:support@127.0.0.1:5074"
[targets.jx]
uri = "sip:jx@127.0.0.1:5075"
[targets.holiday]
uri = "sip:holiday@127.0.0.1:5076"
[plans.day]
groups = [{ members = ["day"] }]
[plans.night]
groups = [{ members = ["night"] }]
[plans.vip]
groups = [{ members = ["vip"] }]
[plans.sales]
groups = [{ members = ["sales"] }]
[plans.support]
groups = [{ members = ["support"] }]
[plans.jx]
groups = [{ members = ["jx"] }]
[plans.holiday]
groups = [{ members = ["holiday"] }]
"#;

fn with(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

// Times below are UTC; Asia/Shanghai is UTC+8.

#[test]
fn default_config_compiles_and_routes() {
    let c = from_toml_str(
        DEFAULT_CONFIG,
        "hotline.toml",
        1,
        jiff::civil::date(2026, 11, 24),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.settings.listen,
        vec![std::net::SocketAddr::from(([127, 0, 0, 1], 5060))]
    );
    assert_eq!(c.settings.cdr.dir, std::path::PathBuf::from("./cdr"));
    assert_eq!(
        c.settings.admin,
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9060)))
    );
    assert!(c.settings.trunk_for([127, 0, 0, 1].into()).is_some());
    assert!(c.settings.trunk_for([10, 0, 0, 1].into()).is_none());
    assert_eq!(c.table.len(), 1);
    assert_eq!(c.table.generation(), 1);
    assert_eq!(c.table.hash().len(), 64);
    let live = Live::new();
    let call = CallContext::new(num("4008001234"), "13807912345");
    let d = resolve(&c.table, &live, &call, ts("2026-10-01T01:30:00Z"));
    let Decision::Route(r) = d else {
        panic!("{d:?}")
    };
    let uris: Vec<&str> = r.hunt(&c.table).map(|(_, _, t)| t.uri.as_str()).collect();
    assert_eq!(uris, ["sip:1001@127.0.0.1:5070", "sip:1002@127.0.0.1:5071"]);
    let timeouts: Vec<u64> = r
        .hunt(&c.table)
        .map(|(_, m, _)| m.ring_timeout.as_secs())
        .collect();
    assert_eq!(timeouts, [20, 20]);
    assert_eq!(r.caller_region.map(|g| g.city), Some("南昌"));
    assert!(r.plan.advance_on.busy && r.plan.advance_on.no_answer);
}

#[test]
fn unknown_and_suspended_numbers() {
    let c = compile(&with(
        r#"
[numbers."4008001234"]
company = "acme"
plan = "day"
status = "suspended"
"#,
    ));
    let live = Live::new();
    assert_eq!(
        route(
            &c,
            &live,
            "4009999999",
            "13800138000",
            None,
            "2026-01-05T02:00:00Z"
        ),
        Err((RejectCause::UnknownNumber, 404))
    );
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-01-05T02:00:00Z"
        ),
        Err((RejectCause::Suspended, 480))
    );
}

const CAL_RULES: &str = r#"
[numbers."4008001234"]
company = "acme"
plan = "night"
rules = [
  { name = "holiday", day = "holiday", time = "09:00-18:00", plan = "holiday" },
  { name = "office", day = "workday", time = "09:00-18:00", plan = "day" },
]
"#;

#[test]
fn saturday_make_up_workday_2026_02_14() {
    let c = compile(&with(CAL_RULES));
    let live = Live::new();
    // 2026-02-14 is a Saturday but a 调休 workday: 10:00 local is office hours.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-02-14T02:00:00Z"
        ),
        Ok(("office".into(), "day".into()))
    );
    // The next day (Sunday, during 春节) is a holiday.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-02-15T02:00:00Z"
        ),
        Ok(("holiday".into(), "holiday".into()))
    );
    // A plain Saturday is a day off.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-03-07T02:00:00Z"
        ),
        Ok(("holiday".into(), "holiday".into()))
    );
}

#[test]
fn friday_holiday_2026_10_02() {
    let c = compile(&with(CAL_RULES));
    let live = Live::new();
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-10-02T02:00:00Z"
        ),
        Ok(("holiday".into(), "holiday".into()))
    );
    // The Friday after is a plain workday.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-10-16T02:00:00Z"
        ),
        Ok(("office".into(), "day".into()))
    );
    // Outside office hours no rule matches: default plan.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-10-16T12:00:00Z"
        ),
        Ok(("default".into(), "night".into()))
    );
}

#[test]
fn overnight_window_across_midnight() {
    let c = compile(&with(
        r#"
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [{ name = "fri-night", weekdays = ["fri"], time = "22:00-06:00", plan = "night" }]
"#,
    ));
    let live = Live::new();
    let r = |at: &str| route(&c, &live, "4008001234", "13800138000", None, at).map(|x| x.0);
    // Friday 2026-01-09 23:30 local.
    assert_eq!(r("2026-01-09T15:30:00Z"), Ok("fri-night".into()));
    // Saturday 02:00 local belongs to Friday's window.
    assert_eq!(r("2026-01-09T18:00:00Z"), Ok("fri-night".into()));
    // Saturday 06:00 local: window ended (end exclusive).
    assert_eq!(r("2026-01-09T22:00:00Z"), Ok("default".into()));
    // Friday 02:00 local belongs to Thursday's window: no match.
    assert_eq!(r("2026-01-08T18:00:00Z"), Ok("default".into()));
    // Saturday 23:00 local: the window starts on Saturday, not a listed day.
    assert_eq!(r("2026-01-10T15:00:00Z"), Ok("default".into()));
}

#[test]
fn weekday_and_date_ranges() {
    let c = compile(&with(
        r#"
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { name = "golden-week", dates = "2026-10-01..2026-10-07", plan = "holiday" },
  { name = "xmas", dates = ["2026-12-25"], plan = "sales" },
  { name = "weekend", weekdays = "sat-sun", plan = "night" },
]
"#,
    ));
    let live = Live::new();
    let r = |at: &str| route(&c, &live, "4008001234", "13800138000", None, at).map(|x| x.0);
    assert_eq!(r("2026-10-07T10:00:00Z"), Ok("golden-week".into()));
    assert_eq!(r("2026-10-08T10:00:00Z"), Ok("default".into()));
    assert_eq!(r("2026-12-25T03:00:00Z"), Ok("xmas".into()));
    assert_eq!(r("2026-12-26T03:00:00Z"), Ok("weekend".into()));
    // 2026-12-31 23:30 UTC is 2027-01-01 07:30 local (a Friday).
    assert_eq!(r("2026-12-31T23:30:00Z"), Ok("default".into()));
}

#[test]
fn region_rules() {
    let c = compile(&with(
        r#"
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { name = "beijing", region = "北京", plan = "sales" },
  { name = "nanchang", region = ["江西/南昌"], plan = "jx" },
  { name = "jiangxi", region = "江西", plan = "support" },
]
"#,
    ));
    let live = Live::new();
    let r = |caller: &str| {
        route(
            &c,
            &live,
            "4008001234",
            caller,
            None,
            "2026-01-05T02:00:00Z",
        )
        .map(|x| x.0)
    };
    for nc in [
        "13807912345",
        "+8613807912345",
        "008613807912345",
        "013807912345",
        "079188123456",
        "+8679188123456",
    ] {
        assert_eq!(r(nc), Ok("nanchang".into()), "{nc}");
    }
    assert_eq!(r("01012345678"), Ok("beijing".into()));
    assert_eq!(r("+861012345678"), Ok("beijing".into()));
    // 0792 is 九江, 江西.
    assert_eq!(r("079212345678"), Ok("jiangxi".into()));
    assert_eq!(r("02112345678"), Ok("default".into()));
    assert_eq!(r("anonymous"), Ok("default".into()));
}

#[test]
fn ivr_key_rules() {
    let c = compile(&with(
        r#"
[[server.trunks]]
name = "ivr"
sources = ["10.0.0.9"]
role = "media_server"
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { name = "press-1", key = 1, plan = "sales" },
  { name = "press-2-or-3", key = [2, 3], plan = "support" },
]
"#,
    ));
    let live = Live::new();
    let r = |k: Option<u8>| {
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            k,
            "2026-01-05T02:00:00Z",
        )
        .map(|x| x.1)
    };
    assert_eq!(r(Some(1)), Ok("sales".into()));
    assert_eq!(r(Some(3)), Ok("support".into()));
    assert_eq!(r(Some(9)), Ok("day".into()));
    assert_eq!(r(None), Ok("day".into()));
}

#[test]
fn vip_and_named_lists() {
    let c = compile(&with(
        r#"
[lists.vips]
vip = true
numbers = ["+8613900000001"]
[lists.partners]
prefixes = ["1390791"]
area_codes = ["0755"]
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { name = "vip", vip = true, plan = "vip" },
  { name = "partners", list = "partners", plan = "sales" },
]
"#,
    ));
    let live = Live::new();
    let r = |caller: &str| {
        route(
            &c,
            &live,
            "4008001234",
            caller,
            None,
            "2026-01-05T02:00:00Z",
        )
        .map(|x| x.0)
    };
    assert_eq!(r("13900000001"), Ok("vip".into()));
    assert_eq!(r("013900000001"), Ok("vip".into()));
    assert_eq!(r("13907911111"), Ok("partners".into()));
    assert_eq!(r("075512345678"), Ok("partners".into()));
    assert_eq!(r("13800138000"), Ok("default".into()));
}

#[test]
fn black_and_white_lists() {
    let c = compile(&with(
        r#"
[lists.spam]
numbers = ["13800000666"]
[screening]
blacklist = { prefixes = ["170"], lists = ["spam"] }
whitelist = { numbers = ["17000000001"] }
[numbers."4008001234"]
company = "acme"
plan = "day"
screening = { blacklist = { area_codes = ["010"], regions = ["广东/深圳"] }, blocked_code = 486 }
[numbers."4008001235"]
company = "acme"
plan = "day"
screening = { whitelist_only = true, whitelist = { numbers = ["13800138000"] } }
"#,
    ));
    let live = Live::new();
    let r = |n: &str, caller: &str| {
        route(&c, &live, n, caller, None, "2026-01-05T02:00:00Z").map(|x| x.0)
    };
    assert_eq!(
        r("4008001234", "13800000666"),
        Err((RejectCause::BlockedList, 486))
    );
    assert_eq!(
        r("4008001234", "17012345678"),
        Err((RejectCause::BlockedList, 486))
    );
    assert_eq!(
        r("4008001234", "01012345678"),
        Err((RejectCause::BlockedList, 486))
    );
    assert_eq!(
        r("4008001234", "075512345678"),
        Err((RejectCause::BlockedList, 486))
    );
    // Whitelisted despite the global 170 prefix.
    assert_eq!(r("4008001234", "17000000001"), Ok("default".into()));
    assert_eq!(r("4008001234", "13800138000"), Ok("default".into()));
    // Whitelist-only number.
    assert_eq!(r("4008001235", "13800138000"), Ok("default".into()));
    assert_eq!(
        r("4008001235", "13800138001"),
        Err((RejectCause::WhitelistOnly, 603))
    );
    // Global blacklist applies to the second number with the default code.
    assert_eq!(
        r("4008001235", "13800000666"),
        Err((RejectCause::BlockedList, 603))
    );
}

#[test]
fn callers_from_abroad_are_refused() {
    let c = compile(&with(
        "[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"day\"\n",
    ));
    let live = Live::new();
    for caller in ["+14155550100", "0014155550100", "+85221234567"] {
        assert_eq!(
            route(
                &c,
                &live,
                "4008001234",
                caller,
                None,
                "2026-01-05T02:00:00Z"
            ),
            Err((RejectCause::Abroad, 403)),
            "{caller}"
        );
    }
}

#[test]
fn anti_harassment_rate_limits() {
    let c = compile(&with(
        r#"
[lists.vips]
vip = true
numbers = ["13900000001"]
[screening.harassment]
per_caller_number = { calls = 3, window = "60s" }
block_for = "10m"
[numbers."4008001234"]
company = "acme"
plan = "day"
[numbers."4008001235"]
company = "acme"
plan = "day"
screening = { harassment = { enabled = false } }
"#,
    ));
    let live = Live::new();
    let at = |s: u32| format!("2026-01-05T02:00:{s:02}Z");
    for s in 0..3 {
        assert!(route(&c, &live, "4008001234", "13800138000", None, &at(s)).is_ok());
    }
    assert_eq!(
        route(&c, &live, "4008001234", "13800138000", None, &at(3)),
        Err((RejectCause::BlockedRate, 603))
    );
    // Still blocked a few minutes later, even though the window passed.
    assert_eq!(
        route(
            &c,
            &live,
            "4008001234",
            "13800138000",
            None,
            "2026-01-05T02:05:00Z"
        ),
        Err((RejectCause::BlockedRate, 603))
    );
    // Free after block_for.
    assert!(route(
        &c,
        &live,
        "4008001234",
        "13800138000",
        None,
        "2026-01-05T02:11:00Z"
    )
    .is_ok());
    // Other callers and the unlimited number are unaffected; VIPs are exempt.
    assert!(route(&c, &live, "4008001234", "13800138001", None, &at(5)).is_ok());
    for s in 0..10 {
        assert!(route(&c, &live, "4008001235", "13800138000", None, &at(s)).is_ok());
        assert!(route(&c, &live, "4008001234", "13900000001", None, &at(s)).is_ok());
    }
    live.prune(
        ts("2026-01-05T03:00:00Z"),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(live.rate_entries(), 0);
}

const HUNT: &str = r#"
[companies.acme]
[targets.a]
uri = "sip:a@127.0.0.1:5070"
max_concurrent = 1
[targets.b]
uri = "sip:b@127.0.0.1:5071"
[targets.c]
uri = "sip:c@127.0.0.1:5072"
[plans.rr]
groups = [{ name = "g", strategy = "round_robin", members = ["a", "b", "c"] }]
[plans.lr]
groups = [{ name = "g", strategy = "least_recent", members = ["a", "b", "c"] }]
[plans.fc]
groups = [{ name = "g", strategy = "fewest_calls", members = ["a", "b", "c"] }]
[plans.w]
groups = [{ name = "g", strategy = "weighted", members = [{ target = "a", weight = 0 }, { target = "b", weight = 5 }, { target = "c", weight = 1, ring_timeout = "7s" }] }]
[plans.rnd]
groups = [{ name = "g", strategy = "random", members = ["a", "b", "c"] }, { name = "h", mode = "simultaneous", members = ["a", "b"] }]
[numbers."4008000001"]
company = "acme"
plan = "rr"
[numbers."4008000002"]
company = "acme"
plan = "lr"
[numbers."4008000003"]
company = "acme"
plan = "fc"
[numbers."4008000004"]
company = "acme"
plan = "w"
[numbers."4008000005"]
company = "acme"
plan = "rnd"
"#;

fn order(c: &Compiled, live: &Live, n: &str, seed: u64) -> Vec<String> {
    let mut call = CallContext::new(num(n), "13800138000");
    call.seed = seed;
    match resolve(&c.table, live, &call, ts("2026-01-05T02:00:00Z")) {
        Decision::Route(r) => r.hunt(&c.table).map(|(_, _, t)| t.name.clone()).collect(),
        Decision::Reject(r) => panic!("{r:?}"),
    }
}

#[test]
fn strategies() {
    let c = compile(HUNT);
    let live = Live::new();
    assert_eq!(order(&c, &live, "4008000001", 0), ["a", "b", "c"]);
    assert_eq!(order(&c, &live, "4008000001", 0), ["b", "c", "a"]);
    assert_eq!(order(&c, &live, "4008000001", 0), ["c", "a", "b"]);
    // least_recent / fewest_calls follow Live.
    let t = |n: &str| {
        c.table
            .target_by_name(n)
            .unwrap_or_else(|| panic!("{n}"))
            .clone()
    };
    assert!(live.try_acquire(&t("a"), ts("2026-01-05T01:00:00Z")));
    assert!(
        !live.try_acquire(&t("a"), ts("2026-01-05T01:00:00Z")),
        "max_concurrent 1"
    );
    assert!(live.try_acquire(&t("b"), ts("2026-01-05T00:00:00Z")));
    assert_eq!(order(&c, &live, "4008000002", 0), ["c", "b", "a"]);
    // fewest_calls: c has none; a and b tie (1 active, 1 call) and keep config order.
    assert_eq!(order(&c, &live, "4008000003", 0), ["c", "a", "b"]);
    live.release(&t("a"));
    live.release(&t("a")); // extra release never underflows
    assert_eq!(live.stats("a").active, 0);
    assert!(live.try_acquire(&t("a"), ts("2026-01-05T01:00:00Z")));
    // weighted: weight 0 always last, b (5) first more often than c (1).
    let mut b_first = 0;
    for seed in 0..200 {
        let o = order(&c, &live, "4008000004", seed);
        assert_eq!(o.last().map(String::as_str), Some("a"), "{o:?}");
        if o[0] == "b" {
            b_first += 1;
        }
    }
    assert!(b_first > 130 && b_first < 200, "{b_first}");
    // random: a permutation, deterministic per seed, and not always the same.
    let o1 = order(&c, &live, "4008000005", 42);
    assert_eq!(o1, order(&c, &live, "4008000005", 42));
    let mut sorted = o1[..3].to_vec();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"]);
    assert_eq!(o1.len(), 5);
    let distinct: std::collections::HashSet<Vec<String>> = (0..50)
        .map(|s| order(&c, &live, "4008000005", s)[..3].to_vec())
        .collect();
    assert!(distinct.len() > 3);
}

#[test]
fn live_state_survives_table_swap() {
    let c1 = compile(HUNT);
    let live = Live::new();
    live.prepare(&c1.table);
    assert_eq!(order(&c1, &live, "4008000001", 0), ["a", "b", "c"]);
    let a = c1.table.target_by_name("a").cloned().expect("a");
    assert!(live.try_acquire(&a, ts("2026-01-05T01:00:00Z")));
    // A reload that reorders targets (ids change) keeps state keyed by name.
    let reordered = HUNT.replace(
        "[targets.a]",
        "[targets.zz]\nuri = \"sip:zz@127.0.0.1:5079\"\n[targets.a]",
    );
    let c2 = from_toml_str(&reordered, "test.toml", 2, jiff::civil::date(2026, 11, 24))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c2.table.generation(), 2);
    assert_ne!(c1.table.hash(), c2.table.hash());
    live.prepare(&c2.table);
    let a2 = c2.table.target_by_name("a").cloned().expect("a");
    assert!(
        !live.try_acquire(&a2, ts("2026-01-05T01:00:01Z")),
        "slot held across the swap"
    );
    assert_eq!(
        order(&c2, &live, "4008000001", 0),
        ["b", "c", "a"],
        "cursor kept"
    );
    // Releasing by the old table's target frees the slot in the new one.
    live.release(&a);
    assert!(live.try_acquire(&a2, ts("2026-01-05T01:00:02Z")));
}

#[test]
fn number_targets_through_gateways() {
    let c = compile(
        r#"
[companies.acme]
[gateways.gw1]
address = "127.0.0.1:5080"
[gateways.gw2]
address = "[::1]:5090"
transport = "tcp"
[targets.mobile]
number = "+86 138 0013 8000"
gateway = "gw1"
[targets.desk]
number = "010-12345678"
gateway = "gw2"
[plans.p]
groups = [{ members = ["mobile", "desk"] }]
[numbers."4008001234"]
company = "acme"
plan = "p"
"#,
    );
    let m = c.table.target_by_name("mobile").expect("mobile");
    assert_eq!(m.uri, "sip:13800138000@127.0.0.1:5080");
    assert_eq!(m.transport, hotline_route::Transport::Udp);
    let d = c.table.target_by_name("desk").expect("desk");
    assert_eq!(d.uri, "sip:01012345678@[::1]:5090;transport=tcp");
    assert_eq!(
        d.next_hop,
        "[::1]:5090".parse().unwrap_or_else(|_| unreachable!())
    );
    let n = c.table.target_by_name("mobile").map(|t| t.transport);
    assert_eq!(n, Some(hotline_route::Transport::Udp));
}

#[test]
fn explain_lists_rules_and_plan() {
    let c = compile(&with(CAL_RULES));
    let live = Live::new();
    let call = CallContext::new(num("4008001234"), "13807912345");
    let e = explain(&c.table, &live, &call, ts("2026-10-01T01:30:00Z"));
    assert_eq!(e.caller.region.as_deref(), Some("江西 南昌"));
    assert_eq!(e.festival.as_deref(), Some("国庆节"));
    assert_eq!(e.rules.len(), 2);
    assert_eq!(e.rules[0].verdict, "matched");
    assert_eq!(e.rules[1].verdict, "not_checked");
    let ExplainOutcome::Route { rule, plan } = &e.outcome else {
        panic!("{e}")
    };
    assert_eq!(rule, "holiday");
    assert_eq!(plan.groups[0].members[0].target, "holiday");
    assert_eq!(plan.groups[0].members[0].ring_timeout_ms, 20_000);
    let text = e.to_string();
    assert!(text.contains("matched     holiday"), "{text}");
    assert!(text.contains("ring 20000 ms"), "{text}");
    let json = serde_json::to_value(&e).unwrap_or_default();
    assert_eq!(json["outcome"]["kind"], "route");
    assert_eq!(json["rules"][0]["verdict"], "matched");
    // At 08:00 local on a workday nothing matches; the reasons say why.
    let e = explain(&c.table, &live, &call, ts("2026-10-12T00:00:00Z"));
    assert_eq!(e.rules[0].verdict, "no");
    assert!(
        e.rules[0].reason.contains("outside every window"),
        "{}",
        e.rules[0].reason
    );
    // Explain does not consume rate windows or cursors: same answer twice.
    let e2 = explain(&c.table, &live, &call, ts("2026-10-12T00:00:00Z"));
    assert_eq!(e.to_string(), e2.to_string());
    // Unknown numbers are explained too.
    let e = explain(
        &c.table,
        &live,
        &CallContext::new(num("4009999999"), "1"),
        ts("2026-10-12T00:00:00Z"),
    );
    assert!(!e.known);
}

// ---- compile errors: file, line, key path -------------------------------------------------

fn one(errs: &[ConfigError], key: &str) -> ConfigError {
    errs.iter()
        .find(|e| e.key == key)
        .cloned()
        .unwrap_or_else(|| panic!("no error for {key}: {errs:#?}"))
}

#[test]
fn error_unknown_target() {
    let src = "[companies.a]\n[targets.t1]\nuri = \"sip:1@127.0.0.1\"\n[plans.p]\ngroups = [{ members = [\"t1\", \"sales-3\"] }]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n";
    let e = one(&errors(src), "plans.p.groups[0].members[1]");
    assert_eq!((e.file.as_str(), e.line), ("test.toml", 5));
    assert!(e.message.contains("unknown target \"sales-3\""), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("t1"));
    assert!(
        e.to_string()
            .starts_with("test.toml:5: plans.p.groups[0].members[1]: unknown target"),
        "{e}"
    );
}

#[test]
fn error_duplicate_number_across_files() {
    let a = Source { name: "main.toml".into(), text: "[companies.a]\n[targets.t]\nuri = \"sip:1@127.0.0.1\"\n[plans.p]\ngroups = [{ members = [\"t\"] }]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n".into() };
    let b = Source {
        name: "acme.toml".into(),
        text: "\n[numbers.\"400-800-1234\"]\ncompany = \"a\"\nplan = \"p\"\n".into(),
    };
    let errs = from_sources(&[a, b], 1, jiff::civil::date(2026, 11, 24))
        .map(|_| ())
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    let e = one(&errs, "numbers.\"400-800-1234\"");
    assert_eq!((e.file.as_str(), e.line), ("acme.toml", 2));
    assert!(e.message.contains("main.toml:6"), "{e}");
}

#[test]
fn error_unreachable_rules() {
    let src = with(
        r#"[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { time = "09:00-18:00", plan = "day" },
  { time = "09:00-18:00", plan = "night" },
  { plan = "sales" },
  { key = 1, plan = "support" },
]
"#,
    );
    let errs = errors(&src);
    let base = BASE.lines().count() + 1;
    let e = one(&errs, "numbers.\"4008001234\".rules[1]");
    assert!(e.message.contains("same conditions"), "{e}");
    assert_eq!(e.line, base + 6);
    let e = one(&errs, "numbers.\"4008001234\".rules[3]");
    assert!(e.message.contains("rules[2] has no conditions"), "{e}");
    assert_eq!(e.line, base + 8);
}

#[test]
fn error_empty_group_and_plan() {
    let src = "[plans.p]\ngroups = [{ members = [] }]\n[plans.q]\nring_from = \"invite\"\n";
    let errs = errors(src);
    let e = one(&errs, "plans.p.groups[0].members");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("empty group"));
    let e = one(&errs, "plans.q.groups");
    assert!(e.message.contains("no groups"));
}

#[test]
fn error_bad_time_range_and_friends() {
    let src = with(
        r#"[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [
  { time = "25:00-26:00", plan = "day" },
  { time = "09:00-09:00", plan = "day" },
  { weekdays = ["funday"], plan = "day" },
  { dates = "2026-10-07..2026-10-01", plan = "day" },
  { region = "火星", plan = "day" },
  { day = "someday", plan = "day" },
  { key = 12, plan = "day" },
  { list = "nope", plan = "nope" },
]
"#,
    );
    let errs = errors(&src);
    let base = BASE.lines().count() + 1;
    let k = |s: &str| format!("numbers.\"4008001234\".{s}");
    let e = one(&errs, &k("rules[0].time[0]"));
    assert_eq!(e.line, base + 5);
    assert!(e.message.contains("out of range"), "{e}");
    assert!(one(&errs, &k("rules[1].time[0]")).message.contains("empty"));
    assert!(one(&errs, &k("rules[2].weekdays"))
        .message
        .contains("funday"));
    assert!(one(&errs, &k("rules[3].dates[0]"))
        .message
        .contains("ends before"));
    assert!(one(&errs, &k("rules[4].region[0]"))
        .message
        .contains("unknown region"));
    assert!(one(&errs, &k("rules[5].day")).message.contains("someday"));
    assert!(one(&errs, &k("rules[6].key[0]")).message.contains("12"));
    assert!(one(&errs, &k("rules[7].list[0]"))
        .message
        .contains("unknown list"));
    assert_eq!(one(&errs, &k("rules[7].plan")).line, base + 12);
}

#[test]
fn error_sixth_number_unless_approved() {
    let mut src = String::from("[companies.acme]\n[targets.t]\nuri = \"sip:t@127.0.0.1\"\n[plans.p]\ngroups = [{ members = [\"t\"] }]\n");
    for i in 1..=7 {
        let approved = if i == 7 { "approved = true\n" } else { "" };
        src.push_str(&format!(
            "[numbers.\"400800000{i}\"]\ncompany = \"acme\"\nplan = \"p\"\n{approved}"
        ));
    }
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.key, "numbers.\"4008000006\"");
    assert_eq!(e.line, 6 + 5 * 3);
    assert!(e.message.contains("number 6"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("approved"));
}

#[test]
fn error_unknown_key() {
    let src = "[companies.a]\n\n[targets.t]\nurl = \"sip:1@127.0.0.1\"\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert_eq!((e.line, e.key.as_str()), (4, "targets.t.url"));
    assert_eq!(e.message, "unknown key `url`", "{e}");
    let hint = e.hint.as_deref().unwrap_or("");
    assert!(hint.contains("did you mean `uri`?"), "{e}");
    assert!(
        hint.contains("keys here: caller_id, forward_on, gateway, max_concurrent, number, uri"),
        "sorted: {e}"
    );
}

/// A misspelt key does not hide the value errors of the same file: one error each, with key
/// paths carrying array indices, serde's wording turned into a hint, in line order.
#[test]
fn structural_error_does_not_hide_value_errors() {
    let src = r#"[companies.a]

[targets.desk]
uri = "sip:1001@127.0.0.1:5070"
max_concurrent = "1"

[plans.office]
advance_on = ["busy", "no-answer"]

[[plans.office.groups]]
members = ["desk"]
ring_timout = "20s"

[[plans.office.groups]]
members = ["desk"]
ring_timeout = "20x"

[numbers."4008001234"]
company = "a"
plan = "office"
approved = "yes"
"#;
    let errs = errors(src);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (5, "targets.desk.max_concurrent"),
            (8, "plans.office.advance_on[1]"),
            (12, "plans.office.groups[0].ring_timout"),
            (16, "plans.office.groups[1].ring_timeout"),
            (21, "numbers.\"4008001234\".approved"),
        ],
        "{}",
        ConfigErrors(errs.clone())
    );
    let hint = |i: usize| errs[i].hint.clone().unwrap_or_default();
    assert_eq!(
        hint(0),
        "max_concurrent must be a number without quotes, e.g. 1",
        "{}",
        errs[0]
    );
    assert!(
        hint(1).contains("advance_on must be one of: busy, no_answer, unreachable, rejected"),
        "{}",
        errs[1]
    );
    assert!(
        hint(2).contains("did you mean `ring_timeout`?"),
        "{}",
        errs[2]
    );
    assert!(errs[3].message.contains("20x"), "{}", errs[3]);
    assert!(hint(4).contains("true or false"), "{}", errs[4]);
}

/// A required key whose value is cut for a type error is not also reported missing.
#[test]
fn mistyped_required_key_is_one_error() {
    let src = "[companies.a]\n[targets.t]\nuri = \"sip:1@127.0.0.1:5070\"\n\
               [plans.p]\n[[plans.p.groups]]\nmembers = \"t\"\n\
               [numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].key, "plans.p.groups[0].members");
    assert!(
        errs[0].hint.as_deref().unwrap_or("").contains("list"),
        "{}",
        errs[0]
    );
}

#[test]
fn missing_required_key_is_reported_once() {
    let src = "[companies.a]\n[targets.t]\nuri = \"sip:1@127.0.0.1:5070\"\n\
               [plans.p]\n[[plans.p.groups]]\nmembers = [\"t\"]\n\
               [numbers.\"4008001234\"]\ncompany = \"a\"\n";
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].key, "numbers.\"4008001234\"");
    assert_eq!(errs[0].message, "missing key `plan`");
}

#[test]
fn defined_names_in_hints_are_sorted() {
    let src = "[companies.a]\n\
               [targets.zeta]\nuri = \"sip:1@127.0.0.1:5070\"\n\
               [targets.alpha]\nuri = \"sip:2@127.0.0.1:5070\"\n\
               [targets.mid]\nuri = \"sip:3@127.0.0.1:5070\"\n\
               [plans.p]\n[[plans.p.groups]]\nmembers = [\"nobody\"]\n\
               [numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n";
    let errs = errors(src);
    let e = errs
        .iter()
        .find(|e| e.message.contains("nobody"))
        .unwrap_or_else(|| panic!("{}", ConfigErrors(errs.clone())));
    assert_eq!(
        e.hint.as_deref(),
        Some("defined targets: alpha, mid, zeta"),
        "{e}"
    );
}

#[test]
fn error_targets() {
    let src = r#"[companies.a]
[gateways.gw]
address = "127.0.0.1:5080"
[targets.dns]
uri = "sip:1001@pbx.example.com:5060"
[targets.intl]
number = "+14155550100"
gateway = "gw"
[targets.nogw]
number = "13800138000"
gateway = "gw9"
[targets.both]
uri = "sip:1@127.0.0.1"
number = "13800138000"
[targets.badt]
uri = "sip:1@127.0.0.1;transport=sctp"
"#;
    let errs = errors(src);
    let e = one(&errs, "targets.dns.uri");
    assert_eq!(e.line, 5);
    assert!(e.hint.as_deref().unwrap_or("").contains("no DNS"));
    let e = one(&errs, "targets.intl.number");
    assert_eq!(e.line, 7);
    assert!(e.message.contains("international"));
    assert!(one(&errs, "targets.nogw.gateway")
        .message
        .contains("unknown gateway"));
    assert_eq!(one(&errs, "targets.both").line, 12);
    assert!(one(&errs, "targets.badt.uri").message.contains("sctp"));
}

#[test]
fn error_not_a_400_number_and_unknowns() {
    let src = "[numbers.\"8008001234\"]\ncompany = \"x\"\nplan = \"p\"\n[numbers.\"4008001234\"]\ncompany = \"x\"\nplan = \"p\"\ntimezone = \"Mars/Olympus\"\n";
    let errs = errors(src);
    assert_eq!(one(&errs, "numbers.\"8008001234\"").line, 1);
    let e = one(&errs, "numbers.\"4008001234\".company");
    assert_eq!(e.line, 5);
    assert_eq!(one(&errs, "numbers.\"4008001234\".plan").line, 6);
    assert_eq!(one(&errs, "numbers.\"4008001234\".timezone").line, 7);
    // Every error is reported at once, sorted by line.
    assert!(errs.len() >= 4);
    assert!(errs.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn settings_parse_and_errors() {
    let c = compile(
        r#"
[server]
listen = ["0.0.0.0:5060", "[::1]:5062"]
admin = "off"
[server.sip]
t1 = "250ms"
t2 = 8
max_message_bytes = 32768
[server.cdr]
dir = "/var/log/hotline"
format = "jsonl"
rotate_bytes = 1000
rotate_every = "hourly"
[[server.trunks]]
name = "ct"
sources = ["192.0.2.0/24", "2001:db8::/32"]
"#,
    );
    assert_eq!(c.settings.listen.len(), 2);
    assert_eq!(c.settings.admin, None);
    assert_eq!(c.settings.sip.t1, std::time::Duration::from_millis(250));
    assert_eq!(c.settings.sip.t2, std::time::Duration::from_secs(8));
    assert_eq!(c.settings.sip.max_message_bytes, 32768);
    assert_eq!(c.settings.cdr.format, CdrFormat::Jsonl);
    assert_eq!(c.settings.cdr.rotate_every, Rotate::Hourly);
    assert_eq!(
        c.settings
            .trunk_for([192, 0, 2, 7].into())
            .map(|t| t.name.as_str()),
        Some("ct")
    );
    assert!(!c.settings.trunks[0].trusted);
    let errs = errors("[server]\nlisten = [\"localhost:5060\"]\n[server.sip]\nt1 = \"5 parsecs\"\n[[server.trunks]]\nname = \"x\"\nsources = [\"10.0.0.0/33\"]\n");
    assert_eq!(one(&errs, "server.listen[0]").line, 2);
    assert_eq!(one(&errs, "server.sip.t1").line, 4);
    assert_eq!(one(&errs, "server.trunks[0].sources[0]").line, 7);
}

/// `server.coalesce_us`: off by default, 0–1000 µs, anything else refused at its line.
#[test]
fn coalesce_window_parses_and_errors() {
    assert_eq!(compile("").settings.coalesce, DEFAULT_COALESCE);
    let c = compile("[server]\ncoalesce_us = 250\n");
    assert_eq!(c.settings.coalesce, std::time::Duration::from_micros(250));
    assert!(compile("[server]\ncoalesce_us = 0\n")
        .settings
        .coalesce
        .is_zero());
    for bad in ["-1", "1001", "1000000"] {
        let errs = errors(&format!("[server]\nworkers = 1\ncoalesce_us = {bad}\n"));
        let e = one(&errs, "server.coalesce_us");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("1000")), "{e}");
    }
    // Not a number at all: the TOML type error names the key.
    let errs = errors("[server]\ncoalesce_us = \"200us\"\n");
    assert!(
        errs.iter().any(|e| e.to_string().contains("coalesce_us")),
        "{errs:?}"
    );
}

/// Listen addresses that cannot all be bound are refused at their line: twice the same, a
/// wildcard beside an address it covers, too many. Distinct families on one port are fine.
#[test]
fn error_listen_duplicates_and_overlaps() {
    let c = compile("[server]\nlisten = [\"127.0.0.1:5060\", \"[::1]:5060\", \"127.0.0.2:5060\", \"127.0.0.1:0\", \"127.0.0.1:0\"]\n");
    assert_eq!(c.settings.listen.len(), 5);
    let errs = errors("[server]\nlisten = [\n  \"127.0.0.1:5060\",\n  \"127.0.0.1:5060\",\n  \"0.0.0.0:5060\",\n  \"[::]:5061\",\n  \"[::1]:5061\",\n]\n");
    let e = one(&errs, "server.listen[1]");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("listed twice"), "{e}");
    assert!(e.hint.is_some());
    let e = one(&errs, "server.listen[2]");
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("overlaps 127.0.0.1:5060"), "{e}");
    let e = one(&errs, "server.listen[4]");
    assert!(e.message.contains("overlaps [::]:5061"), "{e}");
    let many: Vec<String> = (1..=17).map(|i| format!("\"127.0.0.{i}:5060\"")).collect();
    let errs = errors(&format!("[server]\nlisten = [{}]\n", many.join(", ")));
    assert!(one(&errs, "server.listen[16]")
        .message
        .contains("more than 16"));
}

/// `wait_cap` with an `on_fail` target: explain says the target also runs after the cap;
/// `wait_cap_skips_on_fail` says it does not, and is refused where it cannot matter.
#[test]
fn wait_cap_and_on_fail_target() {
    let plan = |extra: &str| {
        format!("[companies.a]\n[targets.desk]\nuri = \"sip:1@127.0.0.1\"\n[targets.sales]\nuri = \"sip:2@127.0.0.1\"\n[plans.p]\n{extra}groups = [{{ members = [\"desk\"] }}]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n")
    };
    let text = |c: &Compiled| {
        let call = CallContext::new(num("4008001234"), "13807912345");
        explain(&c.table, &Live::new(), &call, ts("2026-10-12T02:00:00Z")).to_string()
    };
    let c = compile(&plan("wait_cap = \"4s\"\non_fail = \"sales\"\n"));
    assert!(!c.table.plans()[0].wait_cap_skips_on_fail);
    let t = text(&c);
    assert!(
        t.contains("on fail target sales (also after the wait cap)"),
        "{t}"
    );
    let c = compile(&plan(
        "wait_cap = \"4s\"\non_fail = \"sales\"\nwait_cap_skips_on_fail = true\n",
    ));
    let t = text(&c);
    assert!(
        t.contains("on fail target sales (not after the wait cap: 480)"),
        "{t}"
    );
    for (extra, line) in [
        ("on_fail = \"sales\"\nwait_cap_skips_on_fail = true\n", 8),
        (
            "wait_cap = \"4s\"\non_fail = 486\nwait_cap_skips_on_fail = true\n",
            9,
        ),
    ] {
        let e = one(&errors(&plan(extra)), "plans.p.wait_cap_skips_on_fail");
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains("no effect"), "{e}");
        assert!(e.hint.is_some());
    }
}

/// Issue 18 item 6: key rules need a media-server trunk (the only source whose `ivr=` key is
/// taken); without one each key rule is refused at its `key` line with a hint.
#[test]
fn error_ivr_key_without_a_media_server() {
    let rules = "[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"day\"\n[[numbers.\"4008001234\".rules]]\nname = \"press-1\"\nkey = 1\nplan = \"sales\"\n";
    let carrier = "[[server.trunks]]\nname = \"ct\"\nsources = [\"10.0.0.0/8\"]\n";
    let src = format!("{carrier}{rules}{BASE}");
    let e = one(&errors(&src), "numbers.\"4008001234\".rules[0].key");
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("media server"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("role = \"media_server\""),
        "{e}"
    );
    let c = compile(&format!(
        "[[server.trunks]]\nname = \"ivr\"\nsources = [\"10.0.0.9\"]\nrole = \"media_server\"\n{carrier}{rules}{BASE}"
    ));
    let t = c.settings.trunk_for(
        "10.0.0.9"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
    );
    assert_eq!(t.map(|t| t.role), Some(TrunkRole::MediaServer));
    let t = c.settings.trunk_for(
        "10.0.0.8"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
    );
    assert_eq!(t.map(|t| t.role), Some(TrunkRole::Carrier));
    let errs = errors(&format!(
        "[[server.trunks]]\nname = \"x\"\nsources = [\"10.0.0.9\"]\nrole = \"ivr\"\n{BASE}"
    ));
    assert!(
        errs.iter().any(|e| e.line == 4
            && e.key == "server.trunks[0].role"
            && e.message.contains("not a valid role")
            && e.hint.as_deref().unwrap_or("").contains("media_server")),
        "{errs:#?}"
    );
}

/// Issue 18 item 9: forwards by cause (遇忙转移), per target and per plan, compiled, shown by
/// explain, and refused with file, line and hint when they name an unknown target, the target
/// itself, or an unknown cause.
#[test]
fn forward_on_by_cause() {
    let cfg = |target_fwd: &str, plan_fwd: &str| {
        format!("[companies.a]\n[targets.desk]\nuri = \"sip:1@127.0.0.1\"\n{target_fwd}[targets.a]\nuri = \"sip:2@127.0.0.1\"\n[targets.b]\nuri = \"sip:3@127.0.0.1\"\n[targets.c]\nuri = \"sip:4@127.0.0.1\"\n[plans.p]\n{plan_fwd}groups = [{{ members = [\"desk\"] }}]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n")
    };
    let c = compile(&cfg(
        "forward_on = { busy = \"a\", no_answer = \"b\", unreachable = \"c\" }\n",
        "forward_on = { busy = \"c\" }\n",
    ));
    assert!(
        !c.warnings.iter().any(|w| w.message.contains("not used")),
        "forward targets count as used: {:?}",
        c.warnings
    );
    let desk = c.table.targets().iter().find(|t| t.name == "desk");
    let desk = desk.expect("no desk");
    let names: Vec<(&str, &str)> = desk
        .forward_on
        .entries()
        .map(|(cause, t)| (cause, c.table.target(t).name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("busy", "a"), ("no_answer", "b"), ("unreachable", "c")]
    );
    let call = CallContext::new(num("4008001234"), "13807912345");
    let t = explain(&c.table, &Live::new(), &call, ts("2026-10-12T02:00:00Z")).to_string();
    assert!(
        t.contains("forward busy -> a, no_answer -> b, unreachable -> c"),
        "{t}"
    );
    assert!(
        t.contains("when the hunt fails: forward busy -> c (then on fail)"),
        "{t}"
    );
    let e = one(
        &errors(&cfg("forward_on = { busy = \"nobody\" }\n", "")),
        "targets.desk.forward_on.busy",
    );
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("unknown target \"nobody\""), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("desk"), "{e}");
    let e = one(
        &errors(&cfg("forward_on = { no_answer = \"desk\" }\n", "")),
        "targets.desk.forward_on.no_answer",
    );
    assert!(e.message.contains("forwards to itself"), "{e}");
    assert!(e.hint.is_some());
    let e = one(
        &errors(&cfg("", "forward_on = { unreachable = \"x\" }\n")),
        "plans.p.forward_on.unreachable",
    );
    assert_eq!(e.line, 11, "{e}");
    let errs = errors(&cfg("forward_on = { offline = \"a\" }\n", ""));
    assert!(
        errs.iter()
            .any(|e| e.line == 4 && e.message.contains("offline")),
        "{errs:#?}"
    );
}

/// Issue 18 item 11: anonymous callers (anonymous@, restricted, empty, not a number). Allowed
/// by default but rate-limited as one caller, so changing the hidden number does not get
/// around the limit (before the fix they skipped the limits entirely); a number may refuse
/// them (433 by default) or route them to a plan; explain says which.
#[test]
fn anonymous_callers_policy_and_one_rate_limit() {
    let c = compile(&with(
        r#"
[screening.harassment]
per_caller_number = { calls = 2, window = "60s" }
[numbers."4008001234"]
company = "acme"
plan = "day"
[numbers."4008001235"]
company = "acme"
plan = "day"
screening = { anonymous = { action = "reject" } }
[numbers."4008001236"]
company = "acme"
plan = "day"
rules = [{ name = "jx", region = "江西", plan = "jx" }]
screening = { anonymous = { action = "plan", plan = "support" } }
[numbers."4008001237"]
company = "acme"
plan = "day"
screening = { anonymous = { action = "reject", code = 403 } }
"#,
    ));
    let live = Live::new();
    let at = |s: u32| format!("2026-01-05T02:00:{s:02}Z");
    assert!(route(&c, &live, "4008001234", "anonymous", None, &at(0)).is_ok());
    assert!(route(&c, &live, "4008001234", "", None, &at(1)).is_ok());
    assert_eq!(
        route(&c, &live, "4008001234", "restricted", None, &at(2)),
        Err((RejectCause::BlockedRate, 603)),
        "three anonymous calls are three calls from one caller"
    );
    assert!(route(&c, &live, "4008001234", "13800138000", None, &at(3)).is_ok());
    assert_eq!(
        route(&c, &live, "4008001235", "anonymous", None, &at(4)),
        Err((RejectCause::Anonymous, 433))
    );
    assert_eq!(
        route(&c, &live, "4008001237", "anonymous", None, &at(4)),
        Err((RejectCause::Anonymous, 403))
    );
    assert!(route(&c, &live, "4008001235", "13800138000", None, &at(4)).is_ok());
    assert_eq!(
        route(&c, &live, "4008001236", "anonymous", None, &at(5)),
        Ok(("anonymous".into(), "support".into()))
    );
    assert_eq!(
        route(&c, &live, "4008001236", "13807912345", None, &at(5)),
        Ok(("jx".into(), "jx".into()))
    );
    let call = CallContext::new(num("4008001236"), "anonymous");
    let t = explain(&c.table, &Live::new(), &call, ts(&at(6))).to_string();
    assert!(t.contains("routed to the anonymous policy's plan"), "{t}");
    assert!(t.contains("route by anonymous -> plan support"), "{t}");
}

/// A media server's callback (IVR) is the same call coming back: not counted again in the
/// caller's rate limit, and an anonymous caller is routed by the key it pressed, not sent
/// back to the anonymous policy's plan (the menu) in a loop.
#[test]
fn media_server_callbacks_are_not_screened_twice() {
    let c = compile(&with(
        r#"
[[server.trunks]]
name = "ivr"
sources = ["10.0.0.9"]
role = "media_server"
[screening.harassment]
per_caller_number = { calls = 1, window = "60s" }
[numbers."4008001234"]
company = "acme"
plan = "day"
rules = [{ name = "press-1", key = 1, plan = "sales" }]
screening = { anonymous = { action = "plan", plan = "support" } }
"#,
    ));
    let live = Live::new();
    let go = |caller: &str, key: Option<u8>, callback: bool, at: &str| {
        let mut call = CallContext::new(num("4008001234"), caller);
        call.ivr_key = key;
        call.callback = callback;
        match resolve(&c.table, &live, &call, ts(at)) {
            Decision::Route(r) => Ok(r.rule.to_string()),
            Decision::Reject(r) => Err(r.cause),
        }
    };
    // First pass (the menu), then the callback with the key: both routed, one call counted.
    assert_eq!(
        go("13800138000", None, false, "2026-01-05T02:00:00Z"),
        Ok("default".into())
    );
    assert_eq!(
        go("13800138000", Some(1), true, "2026-01-05T02:00:10Z"),
        Ok("press-1".into())
    );
    assert_eq!(
        go("13800138000", None, false, "2026-01-05T02:00:20Z"),
        Err(RejectCause::BlockedRate),
        "a second real call is over the limit"
    );
    // An anonymous caller: the policy's plan first, then its key on the callback.
    assert_eq!(
        go("anonymous", None, false, "2026-01-05T03:00:00Z"),
        Ok("anonymous".into())
    );
    assert_eq!(
        go("anonymous", Some(1), true, "2026-01-05T03:00:10Z"),
        Ok("press-1".into())
    );
}

#[test]
fn error_anonymous_policy() {
    let num = |scr: &str| {
        with(&format!(
            "[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"day\"\n[numbers.\"4008001234\".screening]\n{scr}\n"
        ))
    };
    let key = "numbers.\"4008001234\".screening.anonymous";
    for (scr, sub, what) in [
        ("anonymous = { action = \"plan\" }", "plan", "needs plan"),
        (
            "anonymous = { action = \"plan\", plan = \"nope\" }",
            "plan",
            "unknown plan",
        ),
        (
            "anonymous = { action = \"allow\", code = 433 }",
            "code",
            "no effect",
        ),
        (
            "anonymous = { action = \"reject\", plan = \"day\" }",
            "plan",
            "no effect",
        ),
        (
            "anonymous = { action = \"reject\", code = 200 }",
            "code",
            "",
        ),
    ] {
        let errs = errors(&num(scr));
        let e = one(&errs, &format!("{key}.{sub}"));
        assert!(e.message.contains(what), "{scr}: {e}");
        assert!(e.line > 0, "{e}");
        assert!(e.hint.is_some() || sub == "code", "{e}");
    }
    let errs = errors(&num("anonymous = { action = \"hang-up\" }"));
    assert!(!errs.is_empty());
}

/// Issue 18 item 10: caller-ID presentation (来电显示) per number and per target, shown by
/// explain; an unknown value is refused at its line.
#[test]
fn caller_id_per_number_and_target() {
    let cfg = |number: &str, target: &str| {
        format!("[companies.a]\n[targets.desk]\nuri = \"sip:1@127.0.0.1\"\n{target}[plans.p]\ngroups = [{{ members = [\"desk\"] }}]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n{number}")
    };
    let text = |c: &Compiled| {
        let call = CallContext::new(num("4008001234"), "13807912345");
        explain(&c.table, &Live::new(), &call, ts("2026-10-12T02:00:00Z")).to_string()
    };
    let c = compile(&cfg("", ""));
    assert_eq!(
        c.table.numbers()[0].caller_id,
        hotline_route::CallerId::Caller
    );
    let t = text(&c);
    assert!(t.contains("caller id caller"), "{t}");
    assert!(t.contains("shows caller"), "{t}");
    let c = compile(&cfg(
        "caller_id = \"number\"\n",
        "caller_id = \"number_and_caller\"\n",
    ));
    let t = text(&c);
    assert!(t.contains("caller id number"), "{t}");
    assert!(
        t.contains("shows number_and_caller"),
        "the target's own: {t}"
    );
    let errs = errors(&cfg("caller_id = \"400\"\n", ""));
    // The wording comes from the serde translator (issue 21): the value, then the choices.
    assert!(
        errs.iter().any(|e| e.line == 9
            && e.message.contains("not a valid caller_id")
            && e.hint
                .as_deref()
                .unwrap_or("")
                .contains("number_and_caller")),
        "{errs:#?}"
    );
}

/// Issue 18 item 12: a 1010 number (8 digits) is served where configured, with the carrier the
/// config names (it has no prefix that says it); a 400 number's carrier is its prefix. Missing,
/// unknown or contradicting carriers and malformed 1010 numbers are refused at their line.
#[test]
fn numbers_1010_with_their_carrier() {
    let cfg = |key: &str, extra: &str| {
        with(&format!(
            "[numbers.\"{key}\"]\ncompany = \"acme\"\nplan = \"day\"\n{extra}"
        ))
    };
    let c = compile(&cfg("1010-1234", "carrier = \"telecom\"\n"));
    let n = num("10101234");
    let e = c.table.number(n).expect("10101234 not served");
    assert_eq!(e.carrier, hotline_route::Carrier::Telecom);
    let live = Live::new();
    assert_eq!(
        route(
            &c,
            &live,
            "+8610101234",
            "13800138000",
            None,
            "2026-01-05T02:00:00Z"
        ),
        Ok(("default".into(), "day".into()))
    );
    assert_eq!(
        route(
            &c,
            &live,
            "10109999",
            "13800138000",
            None,
            "2026-01-05T02:00:00Z"
        ),
        Err((RejectCause::UnknownNumber, 404)),
        "an unconfigured 1010 number is unknown"
    );
    let call = CallContext::new(n, "13800138000");
    let t = explain(&c.table, &live, &call, ts("2026-01-05T02:00:00Z")).to_string();
    assert!(t.starts_with("number    10101234 (电信)"), "{t}");
    // A 400 number's carrier is its prefix; a key may confirm it.
    let c = compile(&cfg("4008001234", "carrier = \"telecom\"\n"));
    assert_eq!(
        c.table.numbers()[0].carrier,
        hotline_route::Carrier::Telecom
    );
    let k = "numbers.\"10101234\".carrier";
    let e = one(&errors(&cfg("10101234", "")), k);
    assert!(e.message.contains("needs its carrier"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("unicom"), "{e}");
    let e = one(&errors(&cfg("10101234", "carrier = \"cmcc\"\n")), k);
    assert!(e.message.contains("unknown carrier"), "{e}");
    let e = one(
        &errors(&cfg("4008001234", "carrier = \"unicom\"\n")),
        "numbers.\"4008001234\".carrier",
    );
    assert!(e.message.contains("电信"), "{e}");
    assert!(e.hint.is_some());
    let e = one(
        &errors(&cfg("1010123", "carrier = \"unicom\"\n")),
        "numbers.\"1010123\"",
    );
    assert!(e.message.contains("not a 400 or 1010 number"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("1010 and 4 more"),
        "{e}"
    );
}

/// The combination the transaction property test once ran with (t1 = 1588 ms, t2 = 1 ms) is
/// refused at the line of the key that breaks the rule, with the rule and a fix.
#[test]
fn error_sip_timers_t2_below_t1() {
    let errs = errors("[server.sip]\nt1 = \"1588ms\"\nt2 = \"1ms\"\n");
    let e = one(&errs, "server.sip.t2");
    assert_eq!((e.file.as_str(), e.line), ("test.toml", 3), "{e}");
    assert!(e.message.contains("t2 at least t1"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("t2 = \"4s\""),
        "{e}"
    );
    let e = one(&errors("[server.sip]\n\nt1 = \"0ms\"\n"), "server.sip.t1");
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn cdr_ship_section() {
    // Off by default: a single box needs no NATS.
    assert_eq!(compile(BASE).settings.cdr.ship, None);
    let c = compile(&with(
        r#"
[server.cdr.ship]
url = ["nats://127.0.0.1:4222", "nats://nats-2.example:4222"]
node = "sh-01"
stream = "CDR_SH"
subject_prefix = "hotline.cdr"
replicas = 3
max_age = "90d"
duplicate_window = "10m"
batch = 500
poll_interval = "100ms"
checkpoint = "/var/lib/hotline/ship.checkpoint"
"#,
    ));
    let s = c.settings.cdr.ship.unwrap_or_default();
    assert_eq!(s.urls.len(), 2);
    assert_eq!(s.node.as_deref(), Some("sh-01"));
    assert_eq!(s.stream, "CDR_SH");
    assert_eq!(s.subject_prefix, "hotline.cdr");
    assert_eq!(s.replicas, 3);
    assert_eq!(s.max_age, std::time::Duration::from_secs(90 * 86_400));
    assert_eq!(s.duplicate_window, std::time::Duration::from_secs(600));
    assert_eq!(s.batch, 500);
    assert_eq!(s.ack_timeout, std::time::Duration::from_secs(5));
    let off = compile(&with(
        r#"
[server.cdr.ship]
url = "nats://127.0.0.1:4222"
enabled = false
"#,
    ));
    assert_eq!(off.settings.cdr.ship, None);
    let errs = errors(&with(
        r#"
[server.cdr.ship]
url = "http://127.0.0.1:4222"
node = "sh 01"
stream = "CDR.X"
subject_prefix = "cdr.>"
replicas = 7
batch = 0
max_age = "1m"
duplicate_window = "2m"
"#,
    ));
    for k in [
        "url",
        "node",
        "stream",
        "subject_prefix",
        "replicas",
        "batch",
        "duplicate_window",
    ] {
        let e = one(&errs, &format!("server.cdr.ship.{k}"));
        assert!(e.line > 0, "{k}: {e}");
    }
    let unknown = errors(&with(
        r#"
[server.cdr.ship]
url = "nats://127.0.0.1:4222"
subjects = "x"
"#,
    ));
    assert!(!unknown.is_empty());
    let missing = errors(&with("[server.cdr.ship]\nstream = \"CDR\"\n"));
    assert!(one(&missing, "server.cdr.ship.url")
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("nats://")));
}

#[test]
fn calendar_override_and_warning() {
    let c = compile(&with(
        r#"
[calendar.holidays]
2027-01-01 = "元旦"
[calendar.workdays]
2027-01-04 = "test"
[numbers."4008001234"]
company = "acme"
plan = "day"
"#,
    ));
    let cal = c.table.calendar();
    assert_eq!(
        cal.day_kind(jiff::civil::date(2027, 1, 1)),
        hotline_route::DayKind::Holiday
    );
    assert!(cal.covers_year(2027));
    assert_eq!(calendar_warning(cal, jiff::civil::date(2026, 11, 24)), None);
    let base = compile(&with(
        "[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"day\"\n",
    ));
    let w = calendar_warning(base.table.calendar(), jiff::civil::date(2026, 11, 24));
    assert!(w.as_deref().unwrap_or("").contains("2027"), "{w:?}");
    assert_eq!(
        calendar_warning(base.table.calendar(), jiff::civil::date(2025, 6, 1)),
        None
    );
    let errs = errors("[calendar]\npath = \"/nonexistent/cal.toml\"\n");
    assert_eq!(one(&errs, "calendar.path").line, 2);
}

/// The calendar warning is about the date the caller passes, not the clock: the embedded
/// calendar lists 2026, so a config compiled "on" 2025-06-01 has nothing to warn about and
/// the same text compiled on 2026-11-24 warns that 2027 is missing.
#[test]
fn calendar_warning_uses_the_date_given() {
    let src = "[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"day\"\n";
    let calendar = |today| -> Vec<String> {
        from_toml_str(&with(src), "t.toml", 1, today)
            .unwrap_or_else(|e| panic!("{e}"))
            .warnings
            .into_iter()
            .filter(|w| w.key == "calendar")
            .map(|w| w.message)
            .collect()
    };
    assert!(calendar(jiff::civil::date(2025, 6, 1)).is_empty());
    let late = calendar(jiff::civil::date(2026, 11, 24));
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(late[0].contains("does not cover 2027"), "{late:?}");
}

#[test]
fn load_path_with_includes_and_directories() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    std::fs::create_dir_all(d.join("companies")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        d.join("hotline.toml"),
        "include = [\"companies/*.toml\"]\n[targets.t]\nuri = \"sip:t@127.0.0.1:5070\"\n[plans.p]\ngroups = [{ members = [\"t\"] }]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        d.join("companies/acme.toml"),
        "[companies.acme]\n[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"p\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        d.join("companies/beta.toml"),
        "[companies.beta]\n[numbers.\"4001001234\"]\ncompany = \"beta\"\nplan = \"p\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("companies/notes.txt"), "ignored").unwrap_or_else(|e| panic!("{e}"));
    let c = load_path(&d.join("hotline.toml"), 3, jiff::civil::date(2026, 11, 24))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.table.len(), 2);
    assert_eq!(c.table.generation(), 3);
    // A bad company file reports its own file and line.
    std::fs::write(
        d.join("companies/beta.toml"),
        "[companies.beta]\n[numbers.\"4001001234\"]\ncompany = \"beta\"\nplan = \"nope\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = load_path(&d.join("hotline.toml"), 4, jiff::civil::date(2026, 11, 24))
        .map(|_| ())
        .expect_err("expected error");
    let e = &e.0[0];
    assert!(e.file.ends_with("companies/beta.toml"), "{e}");
    assert_eq!((e.line, e.key.as_str()), (4, "numbers.\"4001001234\".plan"));
    // from_toml_str refuses include.
    assert!(from_toml_str(
        "include = [\"x\"]\n",
        "x.toml",
        1,
        jiff::civil::date(2026, 11, 24)
    )
    .is_err());
    // A directory loads every *.toml in it.
    let c = load_path(&d.join("companies"), 5, jiff::civil::date(2026, 11, 24));
    assert!(c.is_err(), "companies alone lack plans");
}

#[test]
fn header_style_tables_and_spans() {
    // Implicit parent tables ([[plans.p.groups]] without [plans.p]) and arrays of tables.
    let src = r#"[companies.acme]
[targets.t]
uri = "sip:t@127.0.0.1:5070"
[[plans.p.groups]]
name = "first"
members = ["t"]
[[plans.p.groups]]
members = []
[numbers."4008001234"]
company = "acme"
plan = "p"
[[numbers."4008001234".rules]]
time = "09:00-18:00"
plan = "p"
[[numbers."4008001234".rules]]
time = "9am"
plan = "p"
[numbers."4008001234".screening.harassment]
per_caller = { calls = 0, window = "1m" }
"#;
    let errs = errors(src);
    assert_eq!(one(&errs, "plans.p.groups[1].members").line, 8);
    assert_eq!(
        one(&errs, "numbers.\"4008001234\".rules[1].time[0]").line,
        16
    );
    assert_eq!(
        one(
            &errs,
            "numbers.\"4008001234\".screening.harassment.per_caller.calls"
        )
        .line,
        19
    );
}

proptest::proptest! {
    #[test]
    fn resolve_and_explain_never_panic(
        caller in "[+0-9a-z()\\-. ]{0,24}",
        key in proptest::option::of(0u8..=12),
        secs in 1_500_000_000i64..2_000_000_000i64,
        seed in proptest::prelude::any::<u64>(),
        which in 0usize..7,
    ) {
        thread_local! {
            static C: Compiled = compile(&format!("{}\n{}", HUNT.replace("[companies.acme]", ""), with(CAL_RULES).replace("[numbers.\"4008001234\"]", "[numbers.\"4008009999\"]\napproved = true")));
        }
        let numbers = ["4008000001", "4008000002", "4008000003", "4008000004", "4008000005", "4008009999", "4000000000"];
        let now = jiff::Timestamp::from_second(secs).unwrap_or_else(|_| unreachable!());
        C.with(|c| {
            let live = Live::new();
            let mut call = CallContext::new(num(numbers[which]), &caller);
            call.ivr_key = key;
            call.seed = seed;
            let d = resolve(&c.table, &live, &call, now);
            if let Decision::Route(r) = &d {
                proptest::prop_assert!(r.hunt(&c.table).count() >= 1);
            }
            let e = explain(&c.table, &live, &call, now);
            proptest::prop_assert!(!e.to_string().is_empty());
            Ok(())
        })?;
    }
}

#[test]
fn shipped_examples_compile_without_warnings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut checked = 0;
    // Routing configs only (config/ also holds other tools' files, e.g. billing.toml).
    for name in ["hotline.toml", "full-example.toml", "multi-company.toml"] {
        let p = dir.join(name);
        {
            let c = load_path(&p, 1, jiff::civil::date(2026, 11, 24))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let w: Vec<String> = c
                .warnings
                .iter()
                .filter(|w| w.key != "calendar")
                .map(|w| w.to_string())
                .collect();
            assert!(w.is_empty(), "{}: {w:#?}", p.display());
            assert!(!c.table.is_empty());
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}

/// 100,000 numbers (20,000 companies) compile; prints the time. `cargo test --release -p
/// hotline-config big_table -- --ignored --nocapture` for a meaningful figure.
#[test]
#[ignore]
fn big_table_compile_time() {
    let mut src = String::from(
        "[targets.a]\nuri = \"sip:a@127.0.0.1:5070\"\n[targets.b]\nuri = \"sip:b@127.0.0.1:5071\"\n[plans.p]\ngroups = [{ members = [\"a\", \"b\"] }]\n[plans.q]\ngroups = [{ members = [\"b\"] }]\n[lists.vip]\nvip = true\nnumbers = [\"13900000001\"]\n",
    );
    for c in 0..(std::env::var("BIG_COMPANIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000u64))
    {
        src.push_str(&format!("[companies.c{c}]\n"));
        for k in 0..5 {
            let n = 4008000000u64 + c * 5 + k;
            src.push_str(&format!(
                "[numbers.\"{n}\"]\ncompany = \"c{c}\"\nplan = \"p\"\nrules = [{{ vip = true, plan = \"q\" }}, {{ day = \"workday\", time = \"09:00-18:00\", region = \"江西\", plan = \"q\" }}]\nscreening = {{ blacklist = {{ prefixes = [\"170\"] }} }}\n"
            ));
        }
    }
    let t = std::time::Instant::now();
    let raw = toml::from_str::<toml::Table>(&src).map(|t| t.len());
    println!("toml::Table parse: {:?} ({raw:?})", t.elapsed());
    let t = std::time::Instant::now();
    let raw = toml::from_str::<crate::schema::RawFile>(&src).map(|f| f.numbers.len());
    println!("RawFile parse: {:?} ({raw:?})", t.elapsed());
    let t = std::time::Instant::now();
    let c = from_toml_str(&src, "big.toml", 1, jiff::civil::date(2026, 11, 24))
        .unwrap_or_else(|e| panic!("{e}"));
    let el = t.elapsed();
    println!(
        "{} numbers, {} KiB source: compiled in {el:?}; table ≈ {} KiB",
        c.table.len(),
        src.len() / 1024,
        c.table.approx_heap_bytes() / 1024
    );
    let total = c.table.len() as u64;
    let live = Live::new();
    let t = std::time::Instant::now();
    let mut routed = 0;
    for i in 0..total {
        let n = num(&(4008000000u64 + i).to_string());
        let call = CallContext::new(n, "13807912345");
        if matches!(
            resolve(&c.table, &live, &call, ts("2026-10-12T02:00:00Z")),
            Decision::Route(_)
        ) {
            routed += 1;
        }
    }
    println!("100k resolves in {:?}", t.elapsed());
    assert_eq!(routed, total);
}

/// A member's bad key is found inside the list (serde only says "no variant matched" for the
/// whole list), and an array element cut whole does not shift the indices of later errors.
#[test]
fn member_errors_and_indices_after_a_cut() {
    let src = r#"[companies.a]
[targets.desk]
uri = "sip:1001@127.0.0.1:5070"
[plans.p]
[[plans.p.groups]]
members = ["desk", { target = "desk", weight = "2" }]
[[plans.p.groups]]
members = 5
[[plans.p.groups]]
members = ["desk"]
ring_timeout = "20x"
[numbers."4008001234"]
company = "a"
plan = "p"
"#;
    let errs = errors(src);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (6, "plans.p.groups[0].members[1].weight"),
            (8, "plans.p.groups[1].members"),
            (11, "plans.p.groups[2].ring_timeout"),
        ],
        "{}",
        ConfigErrors(errs.clone())
    );
}

/// A decision run against a `Recorder` asks exactly what the real run asks; replayed
/// `Answers` (as a cluster node fetches them from Redis in one round trip) decide the same way
/// the in-memory state would.
#[test]
fn recorded_needs_and_replayed_answers() {
    use hotline_route::{Answers, LiveState, RateVerdict, Recorder, TargetStats};
    let c = compile(HUNT);
    let live = Live::new();
    let at = ts("2026-01-05T02:00:00Z");
    let rec = Recorder::new();
    let call = CallContext::new(num("4008000001"), "13800138000");
    assert!(matches!(
        resolve(&c.table, &rec, &call, at),
        Decision::Route(_)
    ));
    let needs = rec.into_needs();
    assert_eq!(needs.cursors.len(), 1, "{needs:?}");
    assert!(
        needs.rates.is_empty() && needs.stats.is_empty(),
        "{needs:?}"
    );
    // Cursor 4 of 3 members: the order starts at b, as with the in-memory cursor at 4.
    let key = needs.cursors[0].clone();
    let ans = Answers::new(Vec::new(), vec![(key.clone(), 4)], Vec::new(), &live);
    assert_eq!(order(&c, &Live::new(), "4008000001", 0), ["a", "b", "c"]);
    let names = |d: Decision<'_>| match d {
        Decision::Route(r) => r
            .hunt(&c.table)
            .map(|(_, _, t)| t.name.clone())
            .collect::<Vec<_>>(),
        Decision::Reject(r) => panic!("{r:?}"),
    };
    assert_eq!(names(resolve(&c.table, &ans, &call, at)), ["b", "c", "a"]);
    assert_eq!(ans.peek_cursor(&key), 4);
    // Fewest calls: the counters asked for are the group's members; replayed ones decide.
    let rec = Recorder::new();
    let call = CallContext::new(num("4008000003"), "13800138000");
    let _ = resolve(&c.table, &rec, &call, at);
    let needs = rec.into_needs();
    assert_eq!(
        needs.stats.iter().map(|s| &**s).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    let busy = TargetStats {
        active: 2,
        calls: 9,
        last_call_ms: 1,
    };
    let idle = TargetStats::default();
    let ans = Answers::new(
        Vec::new(),
        Vec::new(),
        vec![("a".into(), busy), ("b".into(), busy), ("c".into(), idle)],
        &live,
    );
    assert_eq!(names(resolve(&c.table, &ans, &call, at))[0], "c");
    // Rates: the question carries the number's limit; a Blocked answer rejects.
    let r = compile(&with(
        r#"
[screening.harassment]
per_caller_number = { calls = 3, window = "60s" }
[numbers."4008001234"]
company = "acme"
plan = "day"
"#,
    ));
    let rec = Recorder::new();
    let call = CallContext::new(num("4008001234"), "13800138000");
    let _ = resolve(&r.table, &rec, &call, at);
    let needs = rec.into_needs();
    assert_eq!(needs.rates.len(), 1);
    assert!(needs.rates[0].commit);
    assert_eq!(
        needs.rates[0].limit.per_caller_number.map(|w| w.calls),
        Some(3)
    );
    let ans = Answers::new(
        vec![RateVerdict::Blocked { until_ms: 1 }],
        Vec::new(),
        Vec::new(),
        &live,
    );
    assert!(matches!(
        resolve(&r.table, &ans, &call, at),
        Decision::Reject(x) if x.cause == RejectCause::BlockedRate
    ));
    // Nothing was written to the fallback state.
    assert_eq!(live.rate_entries(), 0);
}

/// Targets are checked with the SIP core's URI parser (`hotline_sip::uri::Uri`): what it
/// cannot parse is refused, what it parses is refused only for what a target needs on top,
/// and an unknown `transport=` is an error here as it is there (not UDP).
#[test]
fn target_uris_use_the_sip_parser() {
    let ok = |u: &str| parse_sip_uri(u).map_err(|e| e.0);
    assert_eq!(
        ok("sip:1001@127.0.0.1:5070"),
        Ok((
            "127.0.0.1:5070".parse().expect("addr"),
            hotline_route::Transport::Udp
        ))
    );
    assert_eq!(
        ok("sip:1001@[::1];lr;transport=TCP"),
        Ok((
            "[::1]:5060".parse().expect("addr"),
            hotline_route::Transport::Tcp
        ))
    );
    let err = |u: &str| parse_sip_uri(u).err().map(|e| e.0).unwrap_or_default();
    assert!(err("sip:1@127.0.0.1;transport=tls").contains("\"tls\" is not supported"));
    assert!(err("sip:1@127.0.0.1:99999").contains("is not a valid SIP URI"));
    assert!(err("sip:1@[::1:5070").contains("is not a valid SIP URI"));
    assert!(err("sip:1@pbx.example.com").contains("is not an IP address"));
    assert!(err("sip:1@127.0.0.1:0").contains("port 0"));
    assert!(err("sip:1@127.0.0.1?X=1").contains("URI headers"));
    assert!(err("sips:1@127.0.0.1").contains("sips:"));
    assert!(err("tel:+8613800138000").contains("is not a sip: URI"));
}

/// A gateway's `transport` is read straight into the route table's `Transport` (no schema copy
/// of the enum): `tcp` is taken, anything but `udp` / `tcp` is an error at its line.
#[test]
fn gateway_transport_is_the_route_transport() {
    let src = "[gateways.gw]\naddress = \"127.0.0.1:5080\"\ntransport = \"tcp\"\n[targets.t]\nnumber = \"13800138000\"\ngateway = \"gw\"\n";
    let c = from_toml_str(src, "t.toml", 1, jiff::civil::date(2026, 11, 24));
    let t = c
        .ok()
        .and_then(|c| c.table.targets().first().map(|t| t.transport));
    assert_eq!(t, Some(hotline_route::Transport::Tcp));
    let errs = errors(&src.replace("\"tcp\"", "\"sctp\""));
    let e = errs
        .iter()
        .find(|e| e.message.contains("sctp"))
        .expect("an error about sctp");
    assert_eq!(e.line, 3, "{e}");
}
