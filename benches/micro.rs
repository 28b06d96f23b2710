//! Micro-benchmarks: hdrhistogram loops (no criterion: faster to build, and we want the
//! distribution, not just a mean). Run with
//!
//! ```text
//! cargo bench -p hotline-benches --bench micro            # everything
//! cargo bench -p hotline-benches --bench micro -- proxy   # only benches whose name contains "proxy"
//! ```
//!
//! Each line prints p50 / p99 / p99.9 per operation, ops/s and heap allocations per operation
//! (counted by the global allocator below). Timings are taken over batches of operations, so
//! the percentiles are of per-batch means: the tail of a single op is hidden inside a batch.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hotline_benches::alloc_count::{self, CountingAlloc};
use hotline_benches::fixtures;
use hotline_sip::frame::{frame_datagram, Framed, Limits};
use hotline_sip::proxy::{
    BranchTarget, CallHandle, Event, ForkGroup, ForkPlan, Peer, Proxy, ProxyConfig, Transport,
};
use hotline_sip::rewrite::{self, ForwardRequest};
use hotline_sip::Message;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// One result line.
struct Report {
    name: String,
    hist: Histogram<u64>,
    ops: u64,
    elapsed: Duration,
    allocs: u64,
    alloc_bytes: u64,
}

impl Report {
    fn print(&self) {
        let per_op_allocs = self.allocs as f64 / self.ops.max(1) as f64;
        let per_op_bytes = self.alloc_bytes as f64 / self.ops.max(1) as f64;
        println!(
            "{:<44} p50 {:>9} p99 {:>9} p99.9 {:>9}  {:>11.0} ops/s  allocs/op {:>6.2} ({:.0} B)",
            self.name,
            fmt_ns(self.hist.value_at_quantile(0.50)),
            fmt_ns(self.hist.value_at_quantile(0.99)),
            fmt_ns(self.hist.value_at_quantile(0.999)),
            self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9),
            per_op_allocs,
            per_op_bytes,
        );
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 10_000 {
        format!("{:.1}µs", ns as f64 / 1000.0)
    } else {
        format!("{ns}ns")
    }
}

fn hist() -> Histogram<u64> {
    // 1 ns .. 100 s, 3 significant digits. Creation cannot fail for these bounds.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
    })
}

/// Time `f` over `batches` batches of `batch` calls; each batch records its mean per op.
fn bench(name: &str, batches: u64, batch: u64, mut f: impl FnMut()) -> Report {
    // Warm-up: caches, branch predictors, lazily grown buffers.
    for _ in 0..batch.max(1) * 10 {
        f();
    }
    let mut h = hist();
    let (a0, b0) = alloc_count::snapshot();
    let start = Instant::now();
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        let ns = t.elapsed().as_nanos() as u64 / batch.max(1);
        let _ = h.record(ns.max(1));
    }
    let elapsed = start.elapsed();
    let (a1, b1) = alloc_count::snapshot();
    Report {
        name: name.to_string(),
        hist: h,
        ops: batches * batch,
        elapsed,
        allocs: a1 - a0,
        alloc_bytes: b1 - b0,
    }
}

fn wanted(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

fn parse_one(b: &Bytes, limits: &Limits) -> Option<Message> {
    match frame_datagram(b.clone(), limits) {
        Ok(Framed::Message(m)) => Message::parse(m).ok(),
        _ => None,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with `-` is a name filter.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "hotline micro-benchmarks (nproc {}, {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    if wanted(&filter, "frame") {
        frame_benches();
    }
    if wanted(&filter, "rewrite") {
        rewrite_benches();
    }
    if wanted(&filter, "proxy")
        || ["basic", "hunt"]
            .iter()
            .any(|n| filter.iter().any(|f| f == n))
    {
        proxy_benches(&filter);
    }
    if wanted(&filter, "txn") {
        txn_benches();
    }
    if wanted(&filter, "resolve") {
        resolve_benches();
    }
    if wanted(&filter, "cdr") {
        cdr_benches();
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

// ----- framing + header index ---------------------------------------------------------------

fn frame_benches() {
    let limits = Limits::default();
    for (name, text) in [
        ("frame+parse INVITE", fixtures::INVITE),
        ("frame+parse 200 OK", fixtures::OK_200),
    ] {
        let b = Bytes::from_static(text.as_bytes());
        assert!(parse_one(&b, &limits).is_some(), "{name}: fixture parses");
        let r = bench(&format!("{name} ({} B)", b.len()), 20_000, 64, || {
            black_box(parse_one(black_box(&b), &limits));
        });
        r.print();
        if r.allocs != 0 {
            println!(
                "  !! {name}: {} heap allocations in {} messages (target: 0)",
                r.allocs, r.ops
            );
        }
    }
    // The receive path as the server runs it: the datagram arrives in a fresh buffer, so
    // `Bytes::copy_from_slice` (1 allocation) precedes framing. Shown for scale.
    let raw = fixtures::INVITE.as_bytes();
    bench("copy datagram + frame+parse INVITE", 20_000, 64, || {
        let b = Bytes::copy_from_slice(black_box(raw));
        black_box(parse_one(&b, &limits));
    })
    .print();
}

// ----- forward rewrite ----------------------------------------------------------------------

fn rewrite_benches() {
    let limits = Limits::default();
    let Some(inv) = parse_one(&Bytes::from_static(fixtures::INVITE.as_bytes()), &limits) else {
        println!("rewrite: INVITE fixture does not parse");
        return;
    };
    let Some(ok) = parse_one(&Bytes::from_static(fixtures::OK_200.as_bytes()), &limits) else {
        println!("rewrite: 200 fixture does not parse");
        return;
    };
    let src: SocketAddr = "10.20.30.40:5060"
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let diversion = b"<tel:+864008001234>;reason=unconditional".as_slice();
    let add = [("Diversion", diversion)];
    let fwd = ForwardRequest {
        request_uri: Some(b"sip:1001@127.0.0.1:5070"),
        via: b"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl9f3e2d1c0b0a0908-1;rport",
        record_route: Some(b"<sip:127.0.0.1:5060;lr>"),
        pop_route: false,
        pop_second_route: false,
        source: Some(src),
        add_headers: &add,
        remove_headers: &["P-Preferred-Identity"],
    };
    bench("rewrite forward_request INVITE", 20_000, 64, || {
        black_box(rewrite::forward_request(black_box(&inv), &fwd));
    })
    .print();
    bench("rewrite forward_response 200", 20_000, 64, || {
        black_box(rewrite::forward_response(black_box(&ok)));
    })
    .print();
}

// ----- the full sans-IO call ----------------------------------------------------------------

const PROXY: &str = "127.0.0.1:5060";
const UAC: &str = "10.20.30.40:5060";
const UAS1: &str = "127.0.0.1:5070";
const UAS2: &str = "127.0.0.1:5071";

fn udp(a: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: a
            .parse()
            .unwrap_or_else(|_| unreachable!("constant address")),
        local: 0,
    }
}

fn call_invite(i: u64) -> Bytes {
    Bytes::from(
        fixtures::INVITE
            .replace(
                "z9hG4bK-524287-1---3f2c9d7a8b1e4c6d",
                &format!("z9hG4bK-b{i:x}"),
            )
            .replace(
                "ZDJhNzM5YjI0ZWQ5NDFiYzg0NmU3MmQwYjg1ZTJmMDU.",
                &format!("bench-call-{i}"),
            ),
    )
}

fn in_dialog(method: &str, cseq: u32, i: u64, uas: &str) -> Bytes {
    Bytes::from(format!(
        "{method} sip:1001@{uas} SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-{method}-{i:x};rport\r\n\
Route: <sip:127.0.0.1:5060;lr>\r\n\
Max-Forwards: 70\r\n\
From: \"13807912345\"<sip:13807912345@10.20.30.40:5060>;tag=7c3a91f2\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=as{i:x}\r\n\
Call-ID: bench-call-{i}@10.20.30.40\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

fn target(addr: &str, tag: u32) -> BranchTarget {
    BranchTarget {
        uri: Bytes::from(format!("sip:100{tag}@{addr}")),
        dest: udp(addr),
        ring_timeout: Duration::from_secs(20),
        tag,
    }
}

fn plan(targets: &[BranchTarget]) -> ForkPlan {
    ForkPlan {
        groups: vec![ForkGroup {
            parallel: false,
            targets: targets.to_vec(),
        }],
        add_headers: vec![(
            "Diversion",
            b"<tel:+864008001234>;reason=unconditional".to_vec(),
        )],
        history_info: true,
        ..Default::default()
    }
}

/// Drives one Proxy with scripted peers; accumulates only the time spent inside the proxy.
struct Driver {
    p: Proxy,
    now: Instant,
    in_core: Duration,
    out: Vec<(Peer, Bytes)>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            p: Proxy::new(ProxyConfig::new(
                PROXY.parse().unwrap_or_else(|_| unreachable!()),
            )),
            now: Instant::now(),
            in_core: Duration::ZERO,
            out: Vec::new(),
        }
    }
    /// Feed a message, then do what the server's `after_input` does; collect transmits.
    fn feed(&mut self, from: Peer, bytes: Bytes) -> Option<CallHandle> {
        let t = Instant::now();
        self.p.handle_message(self.now, from, bytes);
        let mut incoming = None;
        while let Some(ev) = self.p.poll_event() {
            if let Event::Incoming { call, .. } = ev {
                incoming = Some(call);
            }
        }
        self.p.pending_hunts(self.now, &mut |_, _| true);
        self.out.clear();
        while let Some(tx) = self.p.poll_transmit() {
            self.out.push((tx.dest, tx.bytes));
        }
        self.in_core += t.elapsed();
        incoming
    }
    fn route(&mut self, call: CallHandle, plan: ForkPlan) {
        let t = Instant::now();
        self.p.route(self.now, call, plan, &mut |_, _| true);
        while self.p.poll_event().is_some() {}
        self.out.clear();
        while let Some(tx) = self.p.poll_transmit() {
            self.out.push((tx.dest, tx.bytes));
        }
        self.in_core += t.elapsed();
    }
    fn tick(&mut self, d: Duration) {
        self.now += d;
        let t = Instant::now();
        self.p.handle_timeout(self.now);
        while self.p.poll_event().is_some() {}
        while self.p.poll_transmit().is_some() {}
        self.in_core += t.elapsed();
    }
    /// The message the proxy sent to `dest` (parsed; peer-side work, not timed as core).
    fn sent_to(&self, dest: &str) -> Option<Message> {
        let d: SocketAddr = dest.parse().ok()?;
        self.out
            .iter()
            .find(|(p, _)| p.addr == d)
            .and_then(|(_, b)| Message::parse(b.clone()).ok())
    }
}

/// A target's response to the proxy's request (peer side).
fn answer(req: &Message, code: u16, reason: &str, tag: &str, uas: &str) -> Bytes {
    let contact = format!("<sip:1001@{uas}>");
    let rr = req.record_routes().next().unwrap_or(b"").to_vec();
    let mut extra: Vec<(&str, &[u8])> = vec![("Contact", contact.as_bytes())];
    if code == 200 && !rr.is_empty() {
        extra.push(("Record-Route", &rr));
    }
    Bytes::from(rewrite::response(
        req,
        code,
        reason,
        Some(tag.as_bytes()),
        None,
        &extra,
    ))
}

/// One call; returns false if the script went off the rails.
fn one_call(d: &mut Driver, i: u64, hunt: bool) -> bool {
    let uac = udp(UAC);
    let Some(call) = d.feed(uac, call_invite(i)) else {
        return false;
    };
    let targets = if hunt {
        vec![target(UAS1, 1), target(UAS2, 2)]
    } else {
        vec![target(UAS2, 2)]
    };
    d.route(call, plan(&targets));
    let tag = format!("as{i:x}");
    if hunt {
        let Some(inv1) = d.sent_to(UAS1) else {
            return false;
        };
        d.feed(udp(UAS1), answer(&inv1, 100, "Trying", &tag, UAS1));
        d.feed(udp(UAS1), answer(&inv1, 486, "Busy Here", "busy1", UAS1));
        // The proxy ACKs the 486 and sends the INVITE to the second target.
    }
    let Some(inv) = d.sent_to(UAS2) else {
        return false;
    };
    d.feed(udp(UAS2), answer(&inv, 180, "Ringing", &tag, UAS2));
    d.feed(udp(UAS2), answer(&inv, 200, "OK", &tag, UAS2));
    if d.sent_to(UAC).is_none() {
        return false;
    }
    d.feed(uac, in_dialog("ACK", 1, i, UAS2));
    d.feed(uac, in_dialog("BYE", 2, i, UAS2));
    let Some(bye) = d.sent_to(UAS2) else {
        return false;
    };
    d.feed(udp(UAS2), answer(&bye, 200, "OK", &tag, UAS2));
    let relayed = d.sent_to(UAC).is_some();
    // 1 ms of fake time per call: 1,000 CPS of timer load (Timer K/J, dialog linger).
    d.tick(Duration::from_millis(1));
    relayed
}

/// A count from the environment (e.g. smaller runs under valgrind), else `default`.
fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `HOTLINE_BENCH_CALLS` / `HOTLINE_BENCH_WARMUP` shrink the call counts (e.g. under
/// callgrind); the filter words `basic` / `hunt` pick one of the two scripts.
fn proxy_benches(filter: &[String]) {
    let calls = env_count("HOTLINE_BENCH_CALLS", 100_000);
    let warmup = env_count("HOTLINE_BENCH_WARMUP", 40_000);
    for (name, hunt, word) in [
        ("proxy full call basic (µs in core/call)", false, "basic"),
        ("proxy full call hunt 486 (µs in core/call)", true, "hunt"),
    ] {
        let only = filter.iter().any(|f| f == "basic" || f == "hunt");
        if only && !filter.iter().any(|f| f == word) {
            continue;
        }
        let mut h = hist();
        let live0 = alloc_count::live_bytes();
        let mut d = Driver::new();
        let mut ok = true;
        // Warm-up (also fills the 32 s timer L/M/J window to steady state: 32,000 calls).
        for i in 0..warmup {
            ok &= one_call(&mut d, i, hunt);
        }
        let (a0, b0) = alloc_count::snapshot();
        let start = Instant::now();
        let mut total_core = Duration::ZERO;
        for i in warmup..warmup + calls {
            d.in_core = Duration::ZERO;
            ok &= one_call(&mut d, i, hunt);
            total_core += d.in_core;
            let _ = h.record((d.in_core.as_nanos() as u64).max(1));
        }
        let wall = start.elapsed();
        let (a1, b1) = alloc_count::snapshot();
        if !ok {
            println!("  !! {name}: the scripted call did not go as expected");
        }
        // Allocations here include the scripted peers' message building (not the core's).
        Report {
            name: name.to_string(),
            hist: h,
            ops: calls,
            elapsed: total_core,
            allocs: a1 - a0,
            alloc_bytes: b1 - b0,
        }
        .print();
        println!(
            "  core {:.2} µs/call mean, wall incl. scripted peers {:.2} µs/call, {} transactions + {} calls live",
            total_core.as_secs_f64() * 1e6 / calls as f64,
            wall.as_secs_f64() * 1e6 / calls as f64,
            d.p.transactions(),
            d.p.active_calls(),
        );
        // Memory held by the proxy in steady state (retained transactions waiting for timers
        // L/M/J/K, calls lingering, the maps and the timer set), per live transaction.
        let held = alloc_count::live_bytes().saturating_sub(live0);
        println!(
            "  held by the proxy: {:.1} MiB heap, {:.0} B per live transaction",
            held as f64 / (1024.0 * 1024.0),
            held as f64 / d.p.transactions().max(1) as f64,
        );
        // Leak check: once every timer (Timer J/K/L, dialog linger) has run, nothing is left.
        for _ in 0..200 {
            d.tick(Duration::from_secs(1));
        }
        println!(
            "  200 s of fake time later: {} transactions, {} calls live (expected 0 and 0)",
            d.p.transactions(),
            d.p.active_calls(),
        );
    }
    // Allocations of the core alone: measure the same call with peers' messages pre-built is
    // not possible (responses depend on the proxy's branch), so subtract a peers-only pass.
    let (a0, _) = alloc_count::snapshot();
    let n = 10_000u64;
    for i in 0..n {
        let inv = call_invite(i);
        let m = Message::parse(inv.clone()).ok();
        if let Some(m) = m {
            black_box(answer(&m, 180, "Ringing", "t", UAS2));
            black_box(answer(&m, 200, "OK", "t", UAS2));
            black_box(answer(&m, 200, "OK", "t", UAS2));
        }
        black_box(in_dialog("ACK", 1, i, UAS2));
        black_box(in_dialog("BYE", 2, i, UAS2));
        black_box(format!("as{i:x}"));
        black_box(plan(&[target(UAS2, 2)]));
    }
    let (a1, _) = alloc_count::snapshot();
    println!(
        "  scripted peers alone (basic): {:.1} allocs/call (subtract from the basic line's allocs/op)",
        (a1 - a0) as f64 / n as f64
    );
}

// ----- transaction lookup -------------------------------------------------------------------

fn txn_benches() {
    for live in [1_000u64, 100_000] {
        let mut d = Driver::new();
        let uac = udp(UAC);
        let mut invites = Vec::with_capacity(live as usize);
        for i in 0..live {
            let inv = call_invite(i);
            if let Some(call) = d.feed(uac, inv.clone()) {
                d.route(call, plan(&[target(UAS2, 2)]));
            }
            invites.push(inv);
        }
        // A retransmitted INVITE: frame, index, match the server transaction, re-send 100.
        let mut k = 0usize;
        bench(
            &format!("txn INVITE retransmit absorbed ({live} live)"),
            5_000,
            32,
            || {
                let inv = invites[k % invites.len()].clone();
                k += 1;
                let t = d.now;
                d.p.handle_message(t, uac, inv);
                while d.p.poll_transmit().is_some() {}
            },
        )
        .print();
    }
}

// ----- routing ------------------------------------------------------------------------------

fn resolve_benches() {
    use hotline_route::{normalize_called, resolve, CallContext, Live};
    // Compile time against table size (the shape of the curve matters more than one point).
    for n in [2_000usize, 5_000, 10_000] {
        let toml = fixtures::table_toml(fixtures::TableShape {
            numbers: n,
            ..Default::default()
        });
        let t = Instant::now();
        let ok =
            hotline_config::from_toml_str(&toml, "bench.toml", 1, jiff::civil::date(2026, 11, 24))
                .is_ok();
        println!(
            "compile {n:>6} numbers: {:>8.0} ms{}",
            t.elapsed().as_secs_f64() * 1000.0,
            if ok { "" } else { " (FAILED)" }
        );
    }
    // 100,000 numbers takes minutes to compile today (see docs/PERFORMANCE.md, Findings), so
    // the default is smaller; HOTLINE_BENCH_NUMBERS=100000 gives the issue's table size.
    let numbers: usize = std::env::var("HOTLINE_BENCH_NUMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for harassment in [false, true] {
        let shape = fixtures::TableShape {
            harassment,
            numbers,
            ..Default::default()
        };
        let toml = fixtures::table_toml(shape);
        let t = Instant::now();
        let compiled = match hotline_config::from_toml_str(
            &toml,
            "bench.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        ) {
            Ok(c) => c,
            Err(e) => {
                println!("resolve: generated config does not compile:\n{e}");
                return;
            }
        };
        let compile = t.elapsed();
        let table = compiled.table;
        println!(
            "resolve table: {} numbers, TOML {:.1} MiB, compile {:.0} ms, approx_heap_bytes {:.1} MiB ({} B/number){}",
            table.len(),
            toml.len() as f64 / 1048576.0,
            compile.as_secs_f64() * 1000.0,
            table.approx_heap_bytes() as f64 / 1048576.0,
            table.approx_heap_bytes() / table.len().max(1),
            if harassment { ", with harassment limits" } else { "" },
        );
        let live = Live::new();
        let numbers: Vec<_> = (0..shape.numbers)
            .filter_map(|i| normalize_called(&fixtures::number(i * 7919 % shape.numbers)).ok())
            .collect();
        let callers: Vec<String> = (0..4096).map(fixtures::caller).collect();
        // Wednesday 10:30 Beijing time: a workday inside the office-hours windows.
        let now =
            jiff::Timestamp::from_second(1_767_753_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut i = 0usize;
        let mut routed = 0u64;
        let name = format!(
            "resolve {}k table{}",
            shape.numbers / 1000,
            if harassment {
                " (+harassment limit)"
            } else {
                ""
            }
        );
        let r = bench(&name, 10_000, 32, || {
            let ctx = CallContext {
                called: numbers[i % numbers.len()],
                caller: &callers[i % callers.len()],
                trunk: Some("ct"),
                ivr_key: None,
                seed: i as u64,
                callback: false,
            };
            i += 1;
            if matches!(
                black_box(resolve(&table, &live, &ctx, now)),
                hotline_route::Decision::Route(_)
            ) {
                routed += 1;
            }
        });
        r.print();
        println!(
            "  {:.1} % routed (the rest: blacklist / rate limit rejections)",
            routed as f64 * 100.0 / (i.max(1)) as f64
        );
    }
}

// ----- CDR encode ---------------------------------------------------------------------------

fn cdr_benches() {
    use hotline_cdr::encode::encode;
    use hotline_cdr::{Format, Record};
    let from = jiff::Timestamp::from_second(1_767_753_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let recs: Vec<(Record, Vec<Record>)> = hotline_cdr::synth::calls(7, 4096, from, 250, 1000)
        .map(|(c, a)| {
            (
                Record::Call(c),
                a.into_iter().map(Record::Attempt).collect(),
            )
        })
        .collect();
    for (name, fmt) in [
        ("cdr encode call CSV", Format::Csv),
        ("cdr encode call JSONL", Format::Jsonl),
    ] {
        let mut out = Vec::with_capacity(1 << 20);
        let mut i = 0usize;
        let r = bench(name, 10_000, 32, || {
            if out.len() > (1 << 19) {
                out.clear();
            }
            encode(&mut out, fmt, &recs[i % recs.len()].0);
            i += 1;
        });
        r.print();
        let mut out = Vec::with_capacity(1 << 20);
        let mut j = 0usize;
        bench(&format!("{name} + its attempts"), 10_000, 32, || {
            if out.len() > (1 << 19) {
                out.clear();
            }
            let (c, a) = &recs[j % recs.len()];
            encode(&mut out, fmt, c);
            for r in a {
                encode(&mut out, fmt, r);
            }
            j += 1;
        })
        .print();
    }
}
