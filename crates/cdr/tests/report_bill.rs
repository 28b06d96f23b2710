//! Report, query and bill figures against independently computed expectations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use hotline_cdr::billing::{bill, render_bill, BillFormat, Month, MonthStatus};
use hotline_cdr::query::{
    query, render_calls, CallerMatch, OutputFormat, QueryFilter, QueryOptions,
};
use hotline_cdr::report::{render_report, report, ReportFormat, ReportOptions};
use hotline_cdr::{spawn, synth, CallRecord, Disposition, HangupSide, Record, WriterConfig};
use hotline_config::billing::parse_billing;
use jiff::tz::TimeZone;
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC)
}

fn write(dir: &Path, calls: &[CallRecord]) {
    // Daily files: ~150 of them for five months of traffic (hourly would make thousands of
    // files and fsyncs, slow for a unit test).
    let mut cfg = WriterConfig::new(dir);
    cfg.rotate_every = hotline_cdr::Rotate::Daily;
    let (sink, handle) = spawn(cfg).expect("spawn");
    for c in calls {
        sink.submit(Record::Call(c.clone()));
    }
    let s = handle.shutdown().unwrap_or_default();
    assert_eq!(s.written, calls.len() as u64);
}

fn traffic() -> Vec<CallRecord> {
    // 6000 calls, one every 37 minutes: ~5 months across a time-zone day boundary mix.
    synth::calls(11, 6000, ts("2026-09-20T00:00:00Z"), 37 * 60_000, 1500)
        .map(|(c, _)| c)
        .collect()
}

#[test]
fn report_matches_independent_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = traffic();
    write(dir.path(), &calls);
    let r = report(dir.path(), &ReportOptions::default()).expect("report");
    let tz = shanghai();
    let answered: Vec<&CallRecord> = calls
        .iter()
        .filter(|c| c.disposition == Disposition::Answered)
        .collect();
    assert_eq!(r.totals.calls, 6000);
    assert_eq!(r.totals.answered, answered.len() as u64);
    let missed = calls
        .iter()
        .filter(|c| {
            matches!(
                c.disposition,
                Disposition::Busy
                    | Disposition::NoAnswer
                    | Disposition::Failed
                    | Disposition::Cancelled
                    | Disposition::Limit
            )
        })
        .count() as u64;
    assert_eq!(r.totals.missed, missed);
    let talk: i64 = answered
        .iter()
        .map(|c| c.end.as_millisecond() - c.answer.map_or(0, |a| a.as_millisecond()))
        .sum();
    assert_eq!(r.totals.talk_ms, talk as u64);
    let acd = talk as f64 / answered.len() as f64 / 1000.0;
    assert!((r.totals.acd_seconds() - acd).abs() < 1e-9);
    assert!((r.totals.asr() - answered.len() as f64 / 6000.0).abs() < 1e-12);

    // Hour of day and day in Asia/Shanghai, via jiff's zoned conversion.
    let mut hours = [0u64; 24];
    let mut days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in &calls {
        let z = c.start.to_zoned(tz.clone());
        hours[z.hour() as usize] += 1;
        let d = days.entry(z.date().to_string()).or_default();
        d.0 += 1;
        if c.disposition == Disposition::Answered {
            d.1 += 1;
        }
    }
    assert_eq!(
        r.by_hour.iter().map(|c| c.calls).collect::<Vec<_>>(),
        hours.to_vec()
    );
    let got_days: BTreeMap<String, (u64, u64)> = r
        .by_day
        .iter()
        .map(|(d, c)| (d.clone(), (c.calls, c.answered)))
        .collect();
    assert_eq!(got_days, days);

    let mut prov: HashMap<&str, u64> = HashMap::new();
    let mut num: HashMap<&str, u64> = HashMap::new();
    let mut tgt: HashMap<&str, u64> = HashMap::new();
    let mut callers: HashMap<&str, u64> = HashMap::new();
    for c in &calls {
        *prov.entry(&c.caller_province).or_default() += 1;
        *num.entry(&c.number).or_default() += 1;
        if c.disposition == Disposition::Answered {
            *tgt.entry(&c.answered_target).or_default() += 1;
        }
        *callers.entry(&c.caller).or_default() += 1;
    }
    let as_map = |v: &Vec<(String, hotline_cdr::report::Counts)>| -> HashMap<String, u64> {
        v.iter().map(|(k, c)| (k.clone(), c.calls)).collect()
    };
    let own = |m: HashMap<&str, u64>| -> HashMap<String, u64> {
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    assert_eq!(as_map(&r.by_province), own(prov));
    assert_eq!(as_map(&r.by_number), own(num));
    assert_eq!(as_map(&r.by_target), own(tgt));
    let repeat: Vec<u64> = callers.values().copied().filter(|&n| n >= 2).collect();
    assert_eq!(r.repeat_callers, repeat.len() as u64);
    assert_eq!(r.repeat_caller_calls, repeat.iter().sum::<u64>());
    assert_eq!(r.unique_callers, callers.len() as u64);
    let max = callers.values().copied().max().unwrap_or(0);
    assert_eq!(r.top_callers.first().map(|c| c.counts.calls), Some(max));
    assert_eq!(r.top_callers.len(), 10);

    // Renderings carry the figures.
    let html = render_report(&r, ReportFormat::Html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && !html.contains("<script"));
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("广东"));
    let text = render_report(&r, ReportFormat::Text);
    assert!(text.contains(&format!(
        "calls {}  answered {}",
        r.totals.calls, r.totals.answered
    )));
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&r, ReportFormat::Json)).unwrap_or_default();
    assert_eq!(json["totals"]["calls"], 6000);
}

#[test]
fn query_filters_match_independent_selection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = traffic();
    write(dir.path(), &calls);
    let from = ts("2026-10-01T00:00:00Z");
    let to = ts("2026-11-01T00:00:00Z");
    let filter = QueryFilter {
        number: Some("4008001234".into()),
        from: Some(from),
        to: Some(to),
        caller: Some(CallerMatch::Prefix("1390000".into())),
        region: Some("广东".into()),
        dispositions: vec![Disposition::Answered, Disposition::Busy],
        target: None,
    };
    let expected: Vec<&CallRecord> = calls
        .iter()
        .filter(|c| {
            c.number == "4008001234"
                && c.start >= from
                && c.start < to
                && c.caller.starts_with("1390000")
                && c.caller_province == "广东"
                && matches!(c.disposition, Disposition::Answered | Disposition::Busy)
        })
        .collect();
    assert!(!expected.is_empty());
    let res = match query(
        dir.path(),
        &QueryOptions {
            filter: filter.clone(),
            limit: None,
        },
    ) {
        Ok(r) => r,
        Err(e) => panic!("query: {e}"),
    };
    assert_eq!(res.matched, expected.len() as u64);
    assert_eq!(res.records.iter().collect::<Vec<_>>(), expected);
    // Limit keeps the most recent.
    let res2 = query(
        dir.path(),
        &QueryOptions {
            filter,
            limit: Some(3),
        },
    )
    .unwrap_or_default();
    assert_eq!(
        res2.records.iter().collect::<Vec<_>>(),
        expected[expected.len().saturating_sub(3)..].to_vec()
    );
    // City and target filters; exact caller.
    let one = &calls[17];
    let f = QueryFilter {
        caller: Some(CallerMatch::Exact(one.caller.clone())),
        region: Some(one.caller_city.clone()).filter(|c| !c.is_empty()),
        ..QueryFilter::default()
    };
    let n = calls.iter().filter(|c| f.matches(c)).count();
    let got = query(
        dir.path(),
        &QueryOptions {
            filter: f,
            limit: None,
        },
    )
    .unwrap_or_default();
    assert_eq!(got.records.len(), n);
    assert!(got.records.iter().all(|c| c.caller == one.caller));
    let f = QueryFilter {
        target: Some("1002@".into()),
        ..QueryFilter::default()
    };
    let n = calls
        .iter()
        .filter(|c| c.answered_target.contains("1002@"))
        .count();
    assert_eq!(
        query(
            dir.path(),
            &QueryOptions {
                filter: f,
                limit: None
            }
        )
        .unwrap_or_default()
        .records
        .len(),
        n
    );

    // Renderings.
    let tz = shanghai();
    let table = render_calls(&res.records, OutputFormat::Table, &tz);
    assert_eq!(table.lines().count(), expected.len() + 1);
    assert!(table.starts_with("start"));
    let csv = render_calls(&res.records, OutputFormat::Csv, &tz);
    assert!(csv.starts_with("record_id,call_id,"));
    assert_eq!(csv.lines().count(), expected.len() + 1);
    let json: serde_json::Value =
        serde_json::from_str(&render_calls(&res.records, OutputFormat::Json, &tz))
            .unwrap_or_default();
    assert_eq!(json.as_array().map(Vec::len), Some(expected.len()));
}

const PLANS: &str = r#"
timezone = "Asia/Shanghai"

[plans.std]
rate_per_minute = "0.10"
monthly_minimum = "100.00"
term_years = 1

[[accounts]]
number = "4008001234"
plan = "std"
start = "2026-10-15"
prepaid = "500.00"
topups = [{ date = "2026-12-03", amount = "50.00" }]

[[accounts]]
number = "4008005678"
plan = "std"
start = "2026-11-01"
prepaid = "2000.00"
"#;

fn call(number: &str, start: &str, talk_ms: Option<i64>) -> CallRecord {
    let s = ts(start);
    let mut c = CallRecord::empty(s);
    c.record_id = format!("{number}-{start}");
    c.number = number.into();
    c.caller = "13900000000".into();
    match talk_ms {
        Some(ms) => {
            c.answer = Some(s);
            c.end = Timestamp::from_millisecond(s.as_millisecond() + ms).unwrap_or(s);
            c.disposition = Disposition::Answered;
            c.final_code = 200;
            c.hangup_side = HangupSide::Caller;
        }
        None => c.disposition = Disposition::NoAnswer,
    }
    c
}

#[test]
fn bill_hand_computed_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = parse_billing(PLANS).unwrap();
    let calls = vec![
        call("4008001234", "2026-10-14T03:00:00Z", Some(600_000)), // before start: not billed
        call("4008001234", "2026-10-20T02:00:00Z", Some(61_000)),  // 2 min
        call("4008001234", "2026-10-31T15:30:00Z", Some(60_000)),  // 23:30 Shanghai, Oct: 1 min
        call("4008001234", "2026-10-31T16:10:00Z", Some(500)),     // 00:10 Nov 1 Shanghai: 1 min
        call("4008001234", "2026-11-05T02:00:00Z", None),          // unanswered
        call("4008001234", "2026-11-06T02:00:00Z", Some(0)),       // answered, 0 s: 0 min
        call("4008001234", "2027-10-20T02:00:00Z", Some(120_000)), // after expiry 2027-10-15
        call("4008009999", "2026-11-06T02:00:00Z", Some(120_000)), // no account
    ];
    write(dir.path(), &calls);
    let get = |m: &str, n: &str| {
        let month = Month::parse(m).unwrap_or(Month {
            year: 1970,
            month: 1,
        });
        let b = bill(dir.path(), &cfg, month).expect("bill");
        b.lines
            .into_iter()
            .find(|l| l.number == n)
            .unwrap_or_else(|| panic!("no line for {n}"))
    };
    let oct = get("2026-10", "4008001234");
    assert_eq!(oct.status, MonthStatus::FirstMonth);
    assert_eq!(
        (
            oct.calls,
            oct.minutes,
            oct.usage_fen,
            oct.minimum_applied_fen,
            oct.total_fen
        ),
        (2, 3, 30, 0, 30)
    );
    assert_eq!(oct.remaining_fen, 50_000 - 30);
    let nov = get("2026-11", "4008001234");
    assert_eq!(nov.status, MonthStatus::Active);
    assert_eq!(
        (
            nov.calls,
            nov.minutes,
            nov.usage_fen,
            nov.minimum_applied_fen,
            nov.total_fen
        ),
        (2, 1, 10, 9_990, 10_000)
    );
    assert_eq!(nov.remaining_fen, 39_970);
    let dec = get("2026-12", "4008001234");
    assert_eq!(
        (dec.topups_fen, dec.total_fen, dec.remaining_fen),
        (5_000, 10_000, 34_970)
    );
    let sep27 = get("2027-09", "4008001234");
    assert_eq!(sep27.remaining_fen, 34_970 - 9 * 10_000);
    let oct27 = get("2027-10", "4008001234");
    assert_eq!(oct27.status, MonthStatus::ExpiryMonth);
    assert_eq!(
        (oct27.minutes, oct27.total_fen, oct27.forfeited_fen),
        (0, 10_000, 0)
    );
    assert_eq!(oct27.remaining_fen, 34_970 - 10 * 10_000);
    let nov27 = get("2027-11", "4008001234");
    assert_eq!(nov27.status, MonthStatus::Expired);
    assert_eq!(
        (nov27.total_fen, nov27.remaining_fen),
        (0, 34_970 - 10 * 10_000)
    );
    let sep26 = get("2026-09", "4008001234");
    assert_eq!(
        (sep26.status, sep26.total_fen, sep26.remaining_fen),
        (MonthStatus::NotStarted, 0, 50_000)
    );

    // Second account: balance left at expiry is cleared.
    let b_nov = get("2026-11", "4008005678");
    assert_eq!(
        (b_nov.status, b_nov.total_fen),
        (MonthStatus::FirstMonth, 0)
    );
    let b_oct27 = get("2027-10", "4008005678");
    assert_eq!(b_oct27.status, MonthStatus::ExpiryMonth);
    assert_eq!(b_oct27.forfeited_fen, 200_000 - 11 * 10_000);
    assert_eq!(b_oct27.remaining_fen, 0);

    let month = Month::parse("2026-11").unwrap_or(Month {
        year: 1970,
        month: 1,
    });
    let b = bill(dir.path(), &cfg, month).expect("bill");
    assert_eq!(b.total_fen, 10_000);
    let t = render_bill(&b, BillFormat::Table);
    assert!(
        t.contains("100.00") && t.contains("99.90") && t.contains("399.70"),
        "{t}"
    );
    let csv = render_bill(&b, BillFormat::Csv);
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().nth(1).unwrap_or("").starts_with("4008001234,std,Active,2,1,0.10,0.10,100.00,99.90,100.00,499.70,0.00,399.70,0.00,2027-10-15"), "{csv}");
}

#[test]
fn bill_reconciles_with_generated_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = parse_billing(PLANS).unwrap();
    let calls = traffic();
    write(dir.path(), &calls);
    let tz = shanghai();
    // Independent: minutes per (number, month) straight from the records.
    let starts: HashMap<&str, (jiff::civil::Date, jiff::civil::Date)> = [
        ("4008001234", ("2026-10-15", "2027-10-15")),
        ("4008005678", ("2026-11-01", "2027-11-01")),
    ]
    .into_iter()
    .map(|(n, (a, b))| {
        (
            n,
            (a.parse().unwrap_or_default(), b.parse().unwrap_or_default()),
        )
    })
    .collect();
    let mut minutes: HashMap<(String, String), u64> = HashMap::new();
    let mut months: HashSet<String> = HashSet::new();
    for c in &calls {
        let d = c.start.to_zoned(tz.clone()).date();
        months.insert(format!("{:04}-{:02}", d.year(), d.month()));
        let Some((s, e)) = starts.get(c.number.as_str()) else {
            continue;
        };
        if c.disposition != Disposition::Answered || d < *s || d >= *e {
            continue;
        }
        let talk = c.end.as_millisecond() - c.answer.map_or(0, |a| a.as_millisecond());
        let m = (talk + 59_999) / 60_000;
        *minutes
            .entry((
                c.number.clone(),
                format!("{:04}-{:02}", d.year(), d.month()),
            ))
            .or_default() += m as u64;
    }
    let mut months: Vec<String> = months.into_iter().collect();
    months.sort();
    let mut total_minutes = 0;
    let mut balance: HashMap<String, i64> = [
        ("4008001234".to_string(), 50_000),
        ("4008005678".to_string(), 200_000),
    ]
    .into();
    for m in &months {
        let month = Month::parse(m).unwrap_or(Month {
            year: 1970,
            month: 1,
        });
        let b = bill(dir.path(), &cfg, month).expect("bill");
        for l in &b.lines {
            let want = minutes
                .get(&(l.number.clone(), m.clone()))
                .copied()
                .unwrap_or(0);
            assert_eq!(l.minutes, want, "{} {m}", l.number);
            total_minutes += l.minutes;
            assert_eq!(l.usage_fen, want as i64 * 10);
            let first = (l.number == "4008001234" && m == "2026-10")
                || (l.number == "4008005678" && m == "2026-11");
            let started =
                !(l.number == "4008005678" && m.as_str() < "2026-11") && m.as_str() >= "2026-10";
            let expect_total = if !started {
                0
            } else if first {
                want as i64 * 10
            } else {
                (want as i64 * 10).max(10_000)
            };
            assert_eq!(l.total_fen, expect_total, "{} {m}", l.number);
            let bal = balance.entry(l.number.clone()).or_default();
            if m == "2026-12" && l.number == "4008001234" {
                *bal += 5_000;
            }
            *bal -= expect_total;
            assert_eq!(l.remaining_fen, *bal, "{} {m}", l.number);
        }
    }
    assert_eq!(total_minutes, minutes.values().sum::<u64>());
}

#[test]
fn shipped_example_billing_config_parses() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/billing.toml"
    ))
    .unwrap_or_default();
    let cfg = parse_billing(&src);
    assert!(cfg.is_ok(), "{:?}", cfg.err());
    let cfg = cfg.expect("checked above");
    assert_eq!(cfg.accounts.len(), 2);
    assert_eq!(
        cfg.plans
            .get("standard")
            .map(|p| (p.rate_fen, p.monthly_minimum_fen)),
        Some((10, 10_000))
    );
}

/// The report says its times are in Asia/Shanghai: the first / last call and each caller's
/// last call are local times there (with the offset), in text, HTML and JSON alike.
#[test]
fn report_times_are_local_in_the_zone_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 01:30 UTC is 09:30 in Shanghai; 16:10 UTC is 00:10 the next day there.
    write(
        dir.path(),
        &[
            call("4008001234", "2026-11-03T01:30:00Z", Some(60_000)),
            call("4008001234", "2026-11-03T16:10:00Z", None),
        ],
    );
    let r = report(dir.path(), &ReportOptions::default()).expect("report");
    assert_eq!(r.tz, "Asia/Shanghai");
    assert_eq!(r.first_call, "2026-11-03T09:30:00+08:00");
    assert_eq!(r.last_call, "2026-11-04T00:10:00+08:00");
    assert_eq!(
        r.top_callers.first().map(|c| c.last_call.as_str()),
        Some("2026-11-04T00:10:00+08:00")
    );
    let text = render_report(&r, ReportFormat::Text);
    assert!(
        text.starts_with(
            "# CDR report (2026-11-03T09:30:00+08:00 .. 2026-11-04T00:10:00+08:00, times in Asia/Shanghai)"
        ),
        "{text}"
    );
    assert!(!text.contains("01:30"), "a UTC time in the text: {text}");
    assert!(!text.contains("(UTC)"), "{text}");
    let html = render_report(&r, ReportFormat::Html);
    assert!(
        html.contains("2026-11-03T09:30:00+08:00 — 2026-11-04T00:10:00+08:00 (Asia/Shanghai)"),
        "{html}"
    );
    assert!(!html.contains("01:30"), "a UTC time in the HTML");
}

/// Issue 18 item 12: a 1010 number is billed by its own plan (rate, minimum, term), like a 400
/// number; anything else is still refused.
#[test]
fn a_1010_number_is_billed_by_its_own_plan() {
    let src = r#"
timezone = "Asia/Shanghai"
[plans.n1010]
rate_per_minute = "0.20"
monthly_minimum = "50"
term_years = 1
[[accounts]]
number = "10101234"
plan = "n1010"
start = "2026-10-01"
prepaid = "200"
"#;
    let cfg = parse_billing(src).unwrap_or_else(|e| panic!("{e:?}"));
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        &[call("10101234", "2026-11-03T02:00:00Z", Some(90_000))],
    );
    let nov = bill(
        dir.path(),
        &cfg,
        Month {
            year: 2026,
            month: 11,
        },
    )
    .expect("bill");
    let line = &nov.lines[0];
    assert_eq!(line.number, "10101234");
    assert_eq!((line.minutes, line.usage_fen), (2, 40));
    assert_eq!(
        (line.total_fen, line.remaining_fen),
        (5000, 15000),
        "{line:?}"
    );
    let bad = src.replace("10101234", "1010123");
    let errs = parse_billing(&bad).err().unwrap_or_default();
    assert!(
        errs.iter()
            .any(|e| e.message.contains("not a 400 or 1010 number")),
        "{errs:?}"
    );
}
