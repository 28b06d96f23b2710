//! Live counters and gauges for `/metrics` (Prometheus text exposition format 0.0.4).
//!
//! Everything on the call path is a relaxed atomic add: no lock per message or per call. The
//! one map (per-trunk counters) is an `ArcSwap` read without a lock; it is written only when a
//! trunk name is seen for the first time. Labels are low-cardinality by construction: SIP
//! methods and response classes from fixed lists, dispositions and reasons from fixed enums,
//! the three carriers, and trunk names from the config (capped at [`MAX_TRUNKS`]). Nothing is
//! labelled per caller or per 400 number.
//!
//! Calls per second is not a metric of its own: it is `rate(hotline_calls_started_total[1m])`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hotline_cdr::{AttemptReason, CallRecord, CdrSink, Disposition};
use hotline_route::{Carrier, RejectCause};
use hotline_sip::proxy::Stats as ProxyStats;
use hotline_sip::Method;

use crate::snapshot::Snapshot;

use crate::transport::TransportStats;

mod families;
mod render;
pub use families::{family, Family, FAMILIES};
pub use render::{esc, render_prepaid};
use render::{fmt_f64, header};
#[cfg(test)]
use render::{process_metrics, ProcSelf};

/// SIP methods counted by name, in label order: the SIP core's [`Method`]s (`Method::from_bytes`
/// classifies; the label is `Method::as_str`), and last `other` for anything it does not name.
pub const METHODS: [Method; 15] = [
    Method::Invite,
    Method::Ack,
    Method::Bye,
    Method::Cancel,
    Method::Options,
    Method::Register,
    Method::Prack,
    Method::Update,
    Method::Info,
    Method::Refer,
    Method::Notify,
    Method::Subscribe,
    Method::Message,
    Method::Publish,
    Method::Other,
];
const OTHER_METHOD: usize = METHODS.len() - 1;

/// The label of each of [`METHODS`].
fn method_labels() -> [&'static str; METHODS.len()] {
    METHODS.map(|m| match m {
        Method::Other => "other",
        m => m.as_str(),
    })
}

/// Response classes; index 0 is `1xx`. Status lines that are not `SIP/2.0 [1-6]xx` are `other`.
pub const CLASSES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other"];
/// Carriers (`hotline_route::Carrier`, labelled by `Carrier::as_str`), then `unknown`.
pub const CARRIERS: [Option<Carrier>; 4] = [
    Some(Carrier::Unicom),
    Some(Carrier::Mobile),
    Some(Carrier::Telecom),
    None,
];
/// Routing refusals by cause (`hotline_route::RejectCause::as_str`), plus the server's own.
pub const REJECT_CAUSES: [&str; 13] = [
    "unknown_number",
    "not_a_400",
    "suspended",
    "blocked_list",
    "blocked_rate",
    "abroad",
    "whitelist_only",
    "anonymous",
    "unknown_trunk",
    "shutting_down",
    "duplicate",
    "redis_down",
    "other",
];
/// At most this many distinct trunk labels; later names are counted as `other`.
pub const MAX_TRUNKS: usize = 64;

/// Upper bounds of the hunt depth histogram (attempts per routed call).
pub const HUNT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0];
/// Upper bounds (seconds) of the time-to-answer and ring-time histograms.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0,
];

/// Who built the binary; shown by `/status` and `hotline_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: String,
    pub commit: String,
    pub date: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: "unknown".into(),
            date: "unknown".into(),
        }
    }
}

/// The loaded configuration generation, for `/status` and the config gauges.
#[derive(Debug, Clone, Default)]
pub struct ConfigInfo {
    pub generation: u64,
    pub hash: String,
    pub loaded_at: Option<jiff::Timestamp>,
    pub numbers: usize,
    /// Where it was read from (`<embedded default>` when no file).
    pub source: String,
}

impl ConfigInfo {
    pub fn of(s: &Snapshot) -> ConfigInfo {
        ConfigInfo {
            generation: s.generation(),
            hash: s.table.hash().to_owned(),
            loaded_at: Some(s.loaded_at),
            numbers: s.table.len(),
            source: s
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<embedded default>".into()),
        }
    }
}

/// A fixed-bucket histogram of atomics. The sum is kept in millionths (values are seconds or
/// attempt counts, so this is exact to the microsecond).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6).round() as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Cumulative counts per upper bound, ending with `+Inf`.
    pub fn cumulative(&self) -> Vec<(String, u64)> {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(x) => fmt_f64(*x),
                None => "+Inf".to_owned(),
            };
            out.push((le, acc));
        }
        out
    }

    fn render(&self, out: &mut String, name: &str) {
        header(out, name);
        for (le, n) in self.cumulative() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {}", fmt_f64(sum));
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Counters of one trunk.
#[derive(Debug, Default)]
pub struct TrunkCounters {
    pub calls: AtomicU64,
    pub answered: AtomicU64,
}

/// Counters of one carrier (by the 400 number's prefix).
#[derive(Debug, Default)]
pub struct CarrierCounters {
    pub calls: AtomicU64,
    pub answered: AtomicU64,
    pub talk_micros: AtomicU64,
}

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn bump(v: &[AtomicU64], i: usize) {
    if let Some(c) = v.get(i) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every live figure the admin endpoint shows. Shared as `Arc<Metrics>` between the core task
/// (writer) and the admin server (reader).
/// What one shard last reported to [`Metrics::sync_proxy`].
#[derive(Debug, Default, Clone)]
pub struct ShardSample {
    stats: ProxyStats,
    transactions: u64,
    active_calls: u64,
    unknown_sources: u64,
}

pub struct Metrics {
    /// Socket counters; the transport tasks write them directly.
    pub transport: Arc<TransportStats>,
    cdr: OnceLock<CdrSink>,
    ship: OnceLock<Arc<hotline_ship::ShipStats>>,
    /// The prepaid balances (when `[server.billing]` is on), read at each scrape.
    prepaid: OnceLock<crate::prepaid::SharedPrepaid>,
    /// `[cluster]`: the Redis link (health, leases held, nodes seen).
    cluster: OnceLock<Arc<crate::cluster::Link>>,
    pub build: BuildInfo,
    started: Instant,
    started_at: jiff::Timestamp,
    listening: AtomicBool,
    draining: AtomicBool,
    config: ArcSwap<ConfigInfo>,

    calls_started: AtomicU64,
    /// `;ivr=N` keys ignored because the call did not come from a media-server trunk.
    ivr_keys_ignored: AtomicU64,
    calls_active: AtomicU64,
    calls_talking: AtomicI64,
    calls_by_disposition: Box<[AtomicU64]>,
    attempts_by_reason: Box<[AtomicU64]>,
    rejects_by_cause: Box<[AtomicU64]>,
    talk_micros: AtomicU64,

    requests_in: Box<[AtomicU64]>,
    responses_in: Box<[AtomicU64]>,
    requests_out: Box<[AtomicU64]>,
    responses_out: Box<[AtomicU64]>,

    transactions: AtomicU64,
    proxy_parse_errors: AtomicU64,
    proxy_bad_requests: AtomicU64,
    proxy_dropped_responses: AtomicU64,
    retrans_absorbed: AtomicU64,
    retrans_sent: AtomicU64,
    loops: AtomicU64,
    too_many_hops: AtomicU64,
    extra_2xx: AtomicU64,
    stray_acks: AtomicU64,
    scanners: AtomicU64,
    unknown_sources: AtomicU64,
    proxy_overload_shed: AtomicU64,

    pub hunt_attempts: Histogram,
    pub time_to_answer: Histogram,
    pub ring_time: Histogram,

    carriers: [CarrierCounters; 4],
    trunks: ArcSwap<Vec<(Box<str>, Arc<TrunkCounters>)>>,
    trunk_other: Arc<TrunkCounters>,
    trunk_none: Arc<TrunkCounters>,

    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    overload_sheds: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("calls_started", &self.calls_started)
            .field("calls_active", &self.calls_active)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(BuildInfo::default())
    }
}

impl Metrics {
    pub fn new(build: BuildInfo) -> Metrics {
        Metrics {
            transport: Arc::new(TransportStats::default()),
            cdr: OnceLock::new(),
            ship: OnceLock::new(),
            prepaid: OnceLock::new(),
            cluster: OnceLock::new(),
            build,
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            config: ArcSwap::from_pointee(ConfigInfo::default()),
            calls_started: AtomicU64::new(0),
            ivr_keys_ignored: AtomicU64::new(0),
            calls_active: AtomicU64::new(0),
            calls_talking: AtomicI64::new(0),
            calls_by_disposition: counters(Disposition::ALL.len()),
            attempts_by_reason: counters(AttemptReason::ALL.len()),
            rejects_by_cause: counters(REJECT_CAUSES.len()),
            talk_micros: AtomicU64::new(0),
            requests_in: counters(METHODS.len()),
            responses_in: counters(CLASSES.len()),
            requests_out: counters(METHODS.len()),
            responses_out: counters(CLASSES.len()),
            transactions: AtomicU64::new(0),
            proxy_parse_errors: AtomicU64::new(0),
            proxy_bad_requests: AtomicU64::new(0),
            proxy_dropped_responses: AtomicU64::new(0),
            retrans_absorbed: AtomicU64::new(0),
            retrans_sent: AtomicU64::new(0),
            loops: AtomicU64::new(0),
            too_many_hops: AtomicU64::new(0),
            extra_2xx: AtomicU64::new(0),
            stray_acks: AtomicU64::new(0),
            scanners: AtomicU64::new(0),
            unknown_sources: AtomicU64::new(0),
            proxy_overload_shed: AtomicU64::new(0),
            hunt_attempts: Histogram::new(HUNT_BUCKETS),
            time_to_answer: Histogram::new(SECONDS_BUCKETS),
            ring_time: Histogram::new(SECONDS_BUCKETS),
            carriers: Default::default(),
            trunks: ArcSwap::from_pointee(Vec::new()),
            trunk_other: Arc::default(),
            trunk_none: Arc::default(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            overload_sheds: AtomicU64::new(0),
        }
    }

    // ---- lifecycle -------------------------------------------------------------------------

    /// The CDR sink whose queue / spill / loss the metrics report (set once at start).
    pub fn set_cdr(&self, sink: CdrSink) {
        let _ = self.cdr.set(sink);
    }

    /// The CDR shipper whose lag `/metrics` reports (set once at start, when shipping is on).
    /// Shipping never makes the instance unready: records wait in the files.
    pub fn set_ship(&self, stats: Arc<hotline_ship::ShipStats>) {
        let _ = self.ship.set(stats);
    }

    /// The shipper's counters, when shipping is on.
    pub fn ship_stats(&self) -> Option<hotline_ship::ShipSnapshot> {
        self.ship.get().map(|s| s.snapshot())
    }

    /// Show these prepaid balances on `/metrics` (read under their lock at each scrape).
    pub fn set_prepaid(&self, p: crate::prepaid::SharedPrepaid) {
        let _ = self.prepaid.set(p);
    }

    pub fn set_cluster(&self, link: Arc<crate::cluster::Link>) {
        let _ = self.cluster.set(link);
    }

    /// The cluster link, if this node is in one.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Link>> {
        self.cluster.get()
    }

    /// Ready, but not fully: Redis is down and every kind of state decides locally.
    pub fn degraded(&self) -> Option<&'static str> {
        match self.cluster.get() {
            Some(l) if !l.redis.is_up() && !l.strict() => {
                Some("redis down: deciding with this node's state ([cluster.redis_down] = local)")
            }
            _ => None,
        }
    }

    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::SeqCst);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn set_config(&self, s: &Snapshot) {
        self.config.store(Arc::new(ConfigInfo::of(s)));
    }

    pub fn config(&self) -> Arc<ConfigInfo> {
        self.config.load_full()
    }

    /// The CDR writer's counters, once the writer runs.
    pub fn cdr_stats(&self) -> Option<hotline_cdr::WriterStats> {
        self.cdr.get().map(CdrSink::stats)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn started_at(&self) -> jiff::Timestamp {
        self.started_at
    }

    /// `Ok` when the instance should get traffic; otherwise every reason it should not.
    /// Ready = listening, a config generation loaded, the CDR writer keeping up (nothing in
    /// the spill) and not draining.
    pub fn readiness(&self) -> Result<(), Vec<&'static str>> {
        let mut why = Vec::new();
        if !self.listening.load(Ordering::SeqCst) {
            why.push("not listening yet");
        }
        if self.config.load().generation == 0 {
            why.push("no configuration loaded");
        }
        match self.cdr.get().map(CdrSink::stats) {
            None => why.push("CDR writer not started"),
            Some(s) if s.spill_depth > 0 => {
                why.push("CDR writer behind: records are spilling to memory")
            }
            Some(_) => {}
        }
        if self.draining() {
            why.push("draining: shutting down");
        }
        if let Some(l) = self.cluster.get() {
            if !l.redis.is_up() && l.strict() {
                why.push(
                    "redis down: new calls that need it get 503 ([cluster.redis_down] = reject)",
                );
            }
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    // ---- call path (core task) -------------------------------------------------------------

    /// An inbound SIP message, classified from its first bytes (no parse).
    pub fn inbound(&self, bytes: &[u8]) {
        match classify(bytes) {
            Kind::Request(i) => bump(&self.requests_in, i),
            Kind::Response(i) => bump(&self.responses_in, i),
        }
    }

    /// An outbound SIP message.
    pub fn outbound(&self, bytes: &[u8]) {
        match classify(bytes) {
            Kind::Request(i) => bump(&self.requests_out, i),
            Kind::Response(i) => bump(&self.responses_out, i),
        }
    }

    /// A new INVITE became a call.
    pub fn call_started(&self) {
        self.calls_started.fetch_add(1, Ordering::Relaxed);
    }

    /// A call carried an IVR key but not from a media server: the key was ignored.
    pub fn ivr_key_ignored(&self) {
        self.ivr_keys_ignored.fetch_add(1, Ordering::Relaxed);
    }

    /// Keys ignored so far (see [`Metrics::ivr_key_ignored`]).
    pub fn ivr_keys_ignored(&self) -> u64 {
        self.ivr_keys_ignored.load(Ordering::Relaxed)
    }

    /// A call was answered (it is now talking).
    pub fn call_answered(&self) {
        self.calls_talking.fetch_add(1, Ordering::Relaxed);
    }

    /// A call ended; `record` is its finished CDR (disposition, trunk, number, attempts),
    /// `routed` whether it was hunted (refused calls do not enter the hunt histogram). The
    /// durations are measured from the INVITE: answer, first ring and end.
    pub fn call_ended(
        &self,
        record: &CallRecord,
        routed: bool,
        answer: Option<Duration>,
        first_ring: Option<Duration>,
        end: Duration,
    ) {
        if let Some(i) = Disposition::ALL
            .iter()
            .position(|d| *d == record.disposition)
        {
            bump(&self.calls_by_disposition, i);
        }
        let answered = record.disposition == Disposition::Answered;
        if answer.is_some() {
            self.calls_talking.fetch_sub(1, Ordering::Relaxed);
        }
        if routed {
            self.hunt_attempts.observe(f64::from(record.attempts));
        }
        if let Some(a) = answer {
            self.time_to_answer.observe_duration(a);
        }
        if let Some(r) = first_ring {
            let until = answer.unwrap_or(end);
            self.ring_time.observe_duration(until.saturating_sub(r));
        }
        let talk = answer.map(|a| end.saturating_sub(a)).unwrap_or_default();
        let talk_us = u64::try_from(talk.as_micros()).unwrap_or(u64::MAX);
        self.talk_micros.fetch_add(talk_us, Ordering::Relaxed);
        let c = &self.carriers[carrier_index(&record.number, &record.carrier)];
        c.calls.fetch_add(1, Ordering::Relaxed);
        if answered {
            c.answered.fetch_add(1, Ordering::Relaxed);
        }
        c.talk_micros.fetch_add(talk_us, Ordering::Relaxed);
        let t = self.trunk(&record.trunk);
        t.calls.fetch_add(1, Ordering::Relaxed);
        if answered {
            t.answered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A hunt attempt ended with `reason`.
    pub fn attempt_ended(&self, reason: AttemptReason) {
        if let Some(i) = AttemptReason::ALL.iter().position(|r| *r == reason) {
            bump(&self.attempts_by_reason, i);
        }
    }

    /// Routing refused a call.
    pub fn rejected(&self, cause: RejectCause) {
        self.rejected_as(cause.as_str());
    }

    /// A refusal by a cause name from [`REJECT_CAUSES`] (the server's own: `unknown_trunk`,
    /// `shutting_down`, `not_a_400`); unknown names count as `other`.
    pub fn rejected_as(&self, cause: &str) {
        let i = REJECT_CAUSES
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(REJECT_CAUSES.len() - 1);
        bump(&self.rejects_by_cause, i);
    }

    /// Copy the proxy core's counters and gauges (cheap: a few relaxed stores).
    /// `unknown_sources`: messages the core dropped because their source is neither a trunk
    /// nor a target.
    /// Fold one shard's proxy counters and gauges in. Each shard keeps its last values in
    /// `prev`; what changed is added, so counters and gauges sum over the shards.
    pub fn sync_proxy(
        &self,
        prev: &mut ShardSample,
        s: &ProxyStats,
        transactions: usize,
        active_calls: usize,
        unknown_sources: u64,
    ) {
        let add = |a: &AtomicU64, new: u64, old: u64| {
            if new != old {
                // Wrapping: a gauge that went down adds a "negative" amount.
                a.fetch_add(new.wrapping_sub(old), Ordering::Relaxed);
            }
        };
        let p = &prev.stats;
        add(&self.proxy_parse_errors, s.parse_errors, p.parse_errors);
        add(&self.proxy_bad_requests, s.bad_requests, p.bad_requests);
        add(
            &self.proxy_dropped_responses,
            s.dropped_responses,
            p.dropped_responses,
        );
        add(
            &self.retrans_absorbed,
            s.retransmissions_absorbed,
            p.retransmissions_absorbed,
        );
        add(
            &self.retrans_sent,
            s.retransmissions_sent,
            p.retransmissions_sent,
        );
        add(&self.loops, s.loops, p.loops);
        add(&self.too_many_hops, s.too_many_hops, p.too_many_hops);
        add(&self.extra_2xx, s.extra_2xx, p.extra_2xx);
        add(&self.stray_acks, s.stray_acks, p.stray_acks);
        add(&self.scanners, s.scanners, p.scanners);
        add(&self.proxy_overload_shed, s.overload_shed, p.overload_shed);
        add(&self.unknown_sources, unknown_sources, prev.unknown_sources);
        add(&self.transactions, transactions as u64, prev.transactions);
        add(&self.calls_active, active_calls as u64, prev.active_calls);
        *prev = ShardSample {
            stats: s.clone(),
            transactions: transactions as u64,
            active_calls: active_calls as u64,
            unknown_sources,
        };
    }

    pub fn reload_ok(&self, s: &Snapshot) {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.set_config(s);
    }

    pub fn reload_failed(&self) {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Overload protection refused work (a call or a message). Incremented by the hardening
    /// code; exported as `hotline_overload_sheds_total`.
    pub fn overload_shed(&self) {
        self.overload_sheds.fetch_add(1, Ordering::Relaxed);
    }

    pub fn active_calls(&self) -> u64 {
        self.calls_active.load(Ordering::Relaxed)
    }

    pub fn talking_calls(&self) -> i64 {
        self.calls_talking.load(Ordering::Relaxed).max(0)
    }

    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    pub fn calls_started(&self) -> u64 {
        self.calls_started.load(Ordering::Relaxed)
    }

    /// Calls ended with `d` so far.
    pub fn calls_with(&self, d: Disposition) -> u64 {
        Disposition::ALL
            .iter()
            .position(|x| *x == d)
            .and_then(|i| self.calls_by_disposition.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The counters of trunk `name` (`""` = call from no configured trunk). Lock-free after
    /// the first call of a trunk.
    pub fn trunk(&self, name: &str) -> Arc<TrunkCounters> {
        if name.is_empty() {
            return self.trunk_none.clone();
        }
        if let Some((_, c)) = self.trunks.load().iter().find(|(n, _)| &**n == name) {
            return c.clone();
        }
        let mut found = None;
        self.trunks.rcu(|v| {
            if let Some((_, c)) = v.iter().find(|(n, _)| &**n == name) {
                found = Some(c.clone());
                return v.clone();
            }
            if v.len() >= MAX_TRUNKS {
                found = Some(self.trunk_other.clone());
                return v.clone();
            }
            let c = Arc::new(TrunkCounters::default());
            found = Some(c.clone());
            let mut next = (**v).clone();
            next.push((name.into(), c));
            Arc::new(next)
        });
        found.unwrap_or_else(|| self.trunk_other.clone())
    }

    // ---- exposition ------------------------------------------------------------------------
}

/// Index into [`CARRIERS`]: the record's carrier (the call path took it from the route table:
/// a 400 number's prefix, a 1010 number's config), else the carrier `hotline_route` reads
/// from the number itself.
fn carrier_index(number: &str, carrier: &str) -> usize {
    let c = CARRIERS
        .iter()
        .flatten()
        .copied()
        .find(|c| c.name_zh() == carrier)
        .or_else(|| {
            hotline_route::normalize_called(number)
                .ok()
                .and_then(|n| n.carrier())
        });
    CARRIERS
        .iter()
        .position(|x| *x == c)
        .unwrap_or(CARRIERS.len() - 1)
}

enum Kind {
    Request(usize),
    Response(usize),
}

/// Request method or response class from the start line, without parsing the message.
fn classify(b: &[u8]) -> Kind {
    if let Some(rest) = b.strip_prefix(b"SIP/2.0 ") {
        let class = match rest.first() {
            Some(d @ b'1'..=b'6') => usize::from(d - b'1'),
            _ => CLASSES.len() - 1,
        };
        return Kind::Response(class);
    }
    let end = b.iter().take(17).position(|&c| c == b' ');
    let i = end
        .map(|e| Method::from_bytes(&b[..e]))
        .and_then(|m| METHODS.iter().position(|x| *x == m))
        .unwrap_or(OTHER_METHOD);
    Kind::Request(i)
}

#[cfg(test)]
mod tests {

    #[test]
    fn process_stat_fields_are_counted_after_the_command_name() {
        let line = "77 (hotline shard) x) S 1 77 77 0 -1 4194560 100 0 0 0 \
                    120 35 0 0 20 0 6 0 12345 1000000 250 18446744073709551615";
        assert_eq!(
            ProcSelf::parse_stat(line),
            Some(ProcSelf {
                cpu_ticks: 155,
                threads: 6,
                rss_bytes: 250 * 4096,
                fds: 0
            })
        );
        assert_eq!(ProcSelf::parse_stat("77 (x"), None);
        let mut o = String::new();
        process_metrics(&mut o);
        assert!(o.contains("\nprocess_threads "), "{o}");
        assert!(
            o.contains("# TYPE process_cpu_seconds_total counter"),
            "{o}"
        );
    }

    use super::*;

    /// The value of the sample line `series` (name + labels exactly as rendered).
    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    fn record(d: Disposition, number: &str, trunk: &str, attempts: u32) -> CallRecord {
        let mut r = CallRecord::empty(jiff::Timestamp::UNIX_EPOCH);
        r.disposition = d;
        r.number = number.into();
        r.trunk = trunk.into();
        r.attempts = attempts;
        r
    }

    #[test]
    fn classify_requests_and_responses_from_the_start_line() {
        let m = Metrics::default();
        m.inbound(b"INVITE sip:4008001234@h SIP/2.0\r\n");
        m.inbound(b"INVITE sip:x SIP/2.0\r\n");
        m.inbound(b"BYE sip:x SIP/2.0\r\n");
        m.inbound(b"FOO sip:x SIP/2.0\r\n");
        m.inbound(b"INVITEX sip:x SIP/2.0\r\n");
        m.inbound(b"");
        m.inbound(b"SIP/2.0 180 Ringing\r\n");
        m.inbound(b"SIP/2.0 486 Busy\r\n");
        m.inbound(b"SIP/2.0 999 Odd\r\n");
        m.outbound(b"SIP/2.0 100 Trying\r\n");
        m.outbound(b"CANCEL sip:x SIP/2.0\r\n");
        let t = m.render();
        let v = |s: &str| sample(&t, s);
        assert_eq!(
            v("hotline_sip_requests_received_total{method=\"INVITE\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            v("hotline_sip_requests_received_total{method=\"BYE\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_requests_received_total{method=\"other\"}").as_deref(),
            Some("3")
        );
        assert_eq!(
            v("hotline_sip_responses_received_total{class=\"1xx\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_responses_received_total{class=\"4xx\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_responses_received_total{class=\"other\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_responses_sent_total{class=\"1xx\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_requests_sent_total{method=\"CANCEL\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_sip_requests_sent_total{method=\"INVITE\"}").as_deref(),
            Some("0")
        );
    }

    /// The carrier label is hotline_route's (the record's carrier, else the number's prefix
    /// as `Number400::carrier` reads it) and the method label hotline_sip's `Method`: the
    /// metrics keep no table of prefixes or method names of their own.
    #[test]
    fn carrier_and_method_come_from_route_and_sip() {
        for (number, carrier, want) in [
            ("4008001234", "", 2),
            ("4009001234", "", 2),
            ("4000001234", "", 0),
            ("4007001234", "", 1),
            ("10101234", "", 3),
            ("10101234", "移动", 1),
            ("4008001234", "联通", 0),
            ("junk", "", 3),
        ] {
            let route = hotline_route::normalize_called(number)
                .ok()
                .and_then(|n| n.carrier());
            assert_eq!(carrier_index(number, carrier), want, "{number} {carrier}");
            if carrier.is_empty() {
                assert_eq!(CARRIERS[want], route, "{number}");
            }
        }
        let m = Metrics::default();
        m.inbound(b"PUBLISH sip:x SIP/2.0\r\n");
        m.inbound(b"invite sip:x SIP/2.0\r\n");
        let t = m.render();
        assert_eq!(
            sample(
                &t,
                "hotline_sip_requests_received_total{method=\"PUBLISH\"}"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(&t, "hotline_sip_requests_received_total{method=\"other\"}").as_deref(),
            Some("1")
        );
        // Every method the SIP core names has its own label, `Other` is last.
        assert_eq!(METHODS[OTHER_METHOD], Method::Other);
        for m in &METHODS[..OTHER_METHOD] {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), *m);
        }
    }

    #[test]
    fn calls_by_disposition_carrier_trunk_and_histograms() {
        let m = Metrics::default();
        m.call_started();
        m.call_started();
        m.call_started();
        m.call_answered();
        let s = Duration::from_secs;
        m.call_ended(
            &record(Disposition::Answered, "4008001234", "carrier-a", 2),
            true,
            Some(s(4)),
            Some(s(1)),
            s(64),
        );
        m.call_ended(
            &record(Disposition::Busy, "4001001234", "carrier-a", 1),
            true,
            None,
            None,
            s(1),
        );
        m.call_ended(
            &record(Disposition::BlockedList, "4006001234", "", 0),
            false,
            None,
            None,
            s(0),
        );
        m.rejected(RejectCause::BlockedList);
        m.rejected(RejectCause::BlockedRate);
        m.rejected_as("unknown_trunk");
        m.rejected_as("no-such-cause");
        let t = m.render();
        let v = |s: &str| sample(&t, s);
        assert_eq!(v("hotline_calls_started_total").as_deref(), Some("3"));
        assert_eq!(
            v("hotline_calls_total{disposition=\"answered\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_calls_total{disposition=\"busy\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_calls_total{disposition=\"blocked-list\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_calls_total{disposition=\"no-answer\"}").as_deref(),
            Some("0")
        );
        assert_eq!(v("hotline_calls_talking").as_deref(), Some("0"));
        assert_eq!(v("hotline_talk_seconds_total").as_deref(), Some("60"));
        assert_eq!(
            v("hotline_carrier_calls_total{carrier=\"telecom\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_carrier_calls_total{carrier=\"mobile\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_carrier_calls_total{carrier=\"unicom\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_carrier_calls_answered_total{carrier=\"telecom\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_trunk_calls_total{trunk=\"carrier-a\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            v("hotline_trunk_calls_answered_total{trunk=\"carrier-a\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_trunk_calls_total{trunk=\"none\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_blocks_total{kind=\"list\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_blocks_total{kind=\"rate\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_calls_rejected_total{cause=\"unknown_trunk\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_calls_rejected_total{cause=\"other\"}").as_deref(),
            Some("1")
        );
        // Hunt depth: routed calls only (2 and 1 attempts), cumulative buckets.
        assert_eq!(
            v("hotline_hunt_depth_bucket{le=\"0\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            v("hotline_hunt_depth_bucket{le=\"1\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_hunt_depth_bucket{le=\"2\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            v("hotline_hunt_depth_bucket{le=\"+Inf\"}").as_deref(),
            Some("2")
        );
        assert_eq!(v("hotline_hunt_depth_sum").as_deref(), Some("3"));
        assert_eq!(v("hotline_hunt_depth_count").as_deref(), Some("2"));
        // Answer after 4 s; rang from 1 s to 4 s.
        assert_eq!(
            v("hotline_time_to_answer_seconds_bucket{le=\"3\"}").as_deref(),
            Some("0")
        );
        assert_eq!(
            v("hotline_time_to_answer_seconds_bucket{le=\"5\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            v("hotline_ring_seconds_bucket{le=\"3\"}").as_deref(),
            Some("1")
        );
        assert_eq!(v("hotline_ring_seconds_sum").as_deref(), Some("3"));
    }

    /// Each family is declared once in `FAMILIES` (the renderers take HELP and TYPE from
    /// there), everything rendered is declared, and the operators' docs name every family.
    #[test]
    fn families_are_declared_once_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} declared twice", f.name);
            assert!(
                ["counter", "gauge", "histogram"].contains(&f.kind),
                "{}",
                f.name
            );
            assert!(!f.help.is_empty(), "{}", f.name);
        }
        let m = Metrics::default();
        m.set_ship(Arc::default());
        let mut t = m.render();
        render_prepaid(&mut t, None, jiff::Timestamp::UNIX_EPOCH);
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(family(name).is_some(), "{name} rendered but not declared");
            }
        }
        let docs = [
            include_str!("../../../docs/OPERATIONS.md"),
            include_str!("../../../docs/CLUSTER.md"),
        ]
        .concat();
        for f in FAMILIES {
            assert!(
                docs.contains(f.name),
                "{} is not in docs/OPERATIONS.md",
                f.name
            );
        }
    }

    #[test]
    fn every_sample_has_help_and_type_and_parses() {
        let m = Metrics::default();
        m.trunk("we\"ird\\name\n");
        m.overload_shed();
        // Shipping off: the families are declared (docs name them), with no samples.
        let off = m.render();
        assert!(
            off.contains("# TYPE hotline_cdr_ship_lag_records gauge"),
            "{off}"
        );
        assert!(
            !off.lines()
                .any(|l| !l.starts_with('#') && l.starts_with("hotline_cdr_ship_")),
            "off: no ship samples"
        );
        m.set_ship(Arc::default());
        let t = m.render();
        assert_eq!(
            sample(&t, "hotline_cdr_ship_lag_records").as_deref(),
            Some("0")
        );
        assert_eq!(
            sample(&t, "hotline_cdr_ship_lag_seconds").as_deref(),
            Some("0")
        );
        let mut typed = std::collections::HashSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let name = it.next().unwrap_or_default();
                let kind = it.next().unwrap_or_default();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned()), "TYPE twice: {name}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or(("", ""));
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf",
                "bad value in {line:?}"
            );
            let name = series.split('{').next().unwrap_or_default();
            // Ours, and the Prometheus clients' standard process series.
            assert!(
                name.starts_with("hotline_") || name.starts_with("process_"),
                "{line}"
            );
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
                .unwrap_or(name);
            assert!(typed.contains(base), "sample before its TYPE: {line}");
        }
        assert!(t.contains("hotline_trunk_calls_total{trunk=\"we\\\"ird\\\\name\\n\"} 0"));
        assert_eq!(
            sample(&t, "hotline_overload_sheds_total").as_deref(),
            Some("1")
        );
        // No CDR sink yet: not ready, and the CDR series are absent rather than zero.
        assert_eq!(sample(&t, "hotline_ready").as_deref(), Some("0"));
        assert!(!t.contains("hotline_cdr_queue_depth"));
    }

    #[test]
    fn trunk_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_TRUNKS + 5 {
            m.trunk(&format!("t{i}"))
                .calls
                .fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(m.trunks.load().len(), MAX_TRUNKS);
        assert_eq!(m.trunk_other.calls.load(Ordering::Relaxed), 5);
        // A known name keeps its counters.
        assert!(Arc::ptr_eq(&m.trunk("t3"), &m.trunk("t3")));
    }

    #[test]
    fn readiness_reasons() {
        let m = Metrics::default();
        let why = m.readiness().err().unwrap_or_default();
        assert!(why.contains(&"not listening yet"));
        assert!(why.contains(&"no configuration loaded"));
        assert!(why.contains(&"CDR writer not started"));
        m.set_listening(true);
        m.set_draining();
        let why = m.readiness().err().unwrap_or_default();
        assert!(!why.contains(&"not listening yet"));
        assert!(why.contains(&"draining: shutting down"));
    }

    #[test]
    fn histogram_edges() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(1.0);
        h.observe(f64::NAN);
        h.observe(-3.0);
        h.observe(9.0);
        assert_eq!(
            h.cumulative(),
            vec![("1".into(), 3), ("2".into(), 3), ("+Inf".into(), 4)]
        );
    }

    /// Issue 18 item 4: /metrics shows each prepaid number's balance, reservation and
    /// low-balance state (续费提醒 was a log line only), and the prepaid counters.
    #[test]
    fn prepaid_balances_on_metrics() {
        let cfg = hotline_config::billing::parse_billing(
            r#"
timezone = "Asia/Shanghai"
[plans.p]
rate_per_minute = "0.50"
monthly_minimum = "0"
term_years = 1
[[accounts]]
number = "4008001234"
plan = "p"
start = "2026-01-01"
prepaid = "100"
[[accounts]]
number = "4008005678"
plan = "p"
start = "2026-01-01"
prepaid = "20"
"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let now: jiff::Timestamp = "2026-11-24T10:00:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut p = crate::prepaid::Prepaid::from_usage(
            cfg,
            &hotline_cdr::billing::UsageBook::default(),
            5000,
            now,
        );
        let _ = p.reserve("4008001234", 0, now);
        let m = Metrics::new(BuildInfo::default());
        m.set_prepaid(std::sync::Arc::new(std::sync::Mutex::new(Some(p))));
        let text = m.render();
        for line in [
            "hotline_prepaid_balance_yuan{number=\"4008001234\"} 100",
            "hotline_prepaid_reserved_yuan{number=\"4008001234\"} 0.5",
            "hotline_prepaid_available_yuan{number=\"4008001234\"} 99.5",
            "hotline_prepaid_low_balance{number=\"4008001234\"} 0",
            "hotline_prepaid_balance_yuan{number=\"4008005678\"} 20",
            "hotline_prepaid_low_balance{number=\"4008005678\"} 1",
            "hotline_prepaid_low_balance_threshold_yuan 50",
            "hotline_prepaid_refused_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.contains("# TYPE hotline_prepaid_balance_yuan gauge"));
        // Without billing the families are declared, with no samples.
        let plain = Metrics::new(BuildInfo::default()).render();
        assert!(plain.contains("# TYPE hotline_prepaid_balance_yuan gauge"));
        assert!(
            !plain.lines().any(|l| l.starts_with("hotline_prepaid_")),
            "{plain}"
        );
    }
}
