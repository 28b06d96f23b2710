//! `hotline cdr report`: traffic figures over the call records matching a filter, bucketed in a
//! local time zone (default Asia/Shanghai), rendered as text, JSON or an HTML page with inline
//! SVG charts (see [`crate::html`]).
//!
//! Definitions (docs/cdr.md): *calls* = call records; *answered* = disposition `answered`;
//! *ASR* = answered / calls; *ACD* = talk time / answered calls; *missed* = busy, no-answer,
//! failed, cancelled or limit (blocked calls are counted as *blocked*, not missed).

use std::collections::{BTreeMap, HashMap as StdHashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::query::{table, QueryFilter};
use crate::reader::{scan_calls, ReadStats};
use crate::record::{CallRecord, Disposition};
use crate::time::civil_from_days;
use crate::CdrError;

/// FxHash-style (rustc's hasher) with a murmur3 finalizer: the report hashes short keys tens of millions of times and needs no
/// DoS resistance (keys come from our own files), so SipHash's cost is not worth paying.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        // Multiplication only carries upwards, so the low bits (the bucket index) would depend
        // on little of the key: mix with the murmur3 finalizer.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Counters for one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub calls: u64,
    pub answered: u64,
    pub missed: u64,
    pub blocked: u64,
    /// Sum of talk time, ms.
    pub talk_ms: u64,
}

impl Counts {
    fn add(&mut self, c: &CallRecord) {
        self.calls += 1;
        match c.disposition {
            Disposition::Answered => self.answered += 1,
            Disposition::BlockedList | Disposition::BlockedRate => self.blocked += 1,
            d if d.is_missed() => self.missed += 1,
            _ => {}
        }
        self.talk_ms += c.talk_ms();
    }

    /// Answered / calls, 0..=1 (0 with no calls).
    pub fn asr(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.answered as f64 / self.calls as f64
        }
    }

    /// Average talk seconds per answered call.
    pub fn acd_seconds(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.talk_ms as f64 / self.answered as f64 / 1000.0
        }
    }
}

/// One caller's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallerStat {
    pub caller: String,
    pub province: String,
    pub city: String,
    pub counts: Counts,
    pub last_call: String,
}

/// Report options.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub filter: QueryFilter,
    /// Zone for hour-of-day and day buckets.
    pub tz: TimeZone,
    /// Rows in the top-callers and repeat-callers lists.
    pub top: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            filter: QueryFilter::default(),
            tz: china_tz(),
            top: 10,
        }
    }
}

/// Asia/Shanghai (bundled tzdb), or UTC+8 if the zone is somehow unavailable.
pub fn china_tz() -> TimeZone {
    TimeZone::get("Asia/Shanghai")
        .unwrap_or_else(|_| TimeZone::fixed(jiff::tz::Offset::constant(8)))
}

/// `ts` as local time in `tz`, with the offset: what the report's "times in <zone>" says.
pub fn format_local(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The report's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub tz: String,
    /// First / last call start seen, local time in `tz` with its offset
    /// (`2026-11-03T09:30:12+08:00`; empty without calls).
    pub first_call: String,
    pub last_call: String,
    pub totals: Counts,
    /// Index = local hour 0..=23.
    pub by_hour: Vec<Counts>,
    /// Local date `YYYY-MM-DD`, ascending.
    pub by_day: Vec<(String, Counts)>,
    /// Sorted by calls, descending (empty name = unknown).
    pub by_province: Vec<(String, Counts)>,
    /// `province/city`, sorted by calls descending.
    pub by_city: Vec<(String, Counts)>,
    pub by_number: Vec<(String, Counts)>,
    /// Answering target (answered calls only), by calls descending.
    pub by_target: Vec<(String, Counts)>,
    pub by_disposition: Vec<(String, u64)>,
    /// Callers by number of calls, descending (top N).
    pub top_callers: Vec<CallerStat>,
    /// Callers with 2 or more calls: how many, and the calls they made.
    pub repeat_callers: u64,
    pub repeat_caller_calls: u64,
    /// Distinct callers.
    pub unique_callers: u64,
    /// Repeat callers who were never answered (top N by calls): the ones to call back.
    pub repeat_unanswered: Vec<CallerStat>,
    #[serde(skip)]
    pub read: ReadStats,
}

/// A caller number as a map key: digit strings up to 15 digits (every E.164 number) are packed
/// into a `u64` (length in the top byte, so leading zeros survive), which keeps the 2-million-entry
/// caller map free of a heap dereference per comparison; anything else stays text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum CallerKey {
    Num(u64),
    Text(String),
}

impl CallerKey {
    fn of(s: &str) -> CallerKey {
        let b = s.as_bytes();
        if !b.is_empty() && b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
            let v = b.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
            CallerKey::Num(((b.len() as u64) << 56) | v)
        } else {
            CallerKey::Text(s.to_string())
        }
    }

    fn text(&self) -> String {
        match self {
            CallerKey::Num(k) => {
                let len = (k >> 56) as usize;
                format!("{:0len$}", k & ((1 << 56) - 1))
            }
            CallerKey::Text(t) => t.clone(),
        }
    }
}

#[derive(Default)]
struct CallerAgg {
    province: String,
    city: String,
    counts: Counts,
    last: Option<Timestamp>,
}

/// Incremental report builder: feed records, then `finish`.
pub struct ReportBuilder {
    opts: ReportOptions,
    totals: Counts,
    by_hour: [Counts; 24],
    by_day: BTreeMap<i64, Counts>,
    by_province: HashMap<String, Counts>,
    by_city: HashMap<String, Counts>,
    by_number: HashMap<String, Counts>,
    by_target: HashMap<String, Counts>,
    by_disposition: BTreeMap<Disposition, u64>,
    callers: HashMap<CallerKey, CallerAgg>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    key: String,
    /// (UTC hour index, offset ms) of the last conversion: zone offsets change on hour
    /// boundaries in practice, so most records skip the zone lookup.
    offset_cache: (i64, i64),
}

/// Add `c` to bucket `k`, allocating the key only the first time it is seen.
fn add_to(m: &mut HashMap<String, Counts>, k: &str, c: &CallRecord) {
    if let Some(x) = m.get_mut(k) {
        x.add(c);
        return;
    }
    let mut x = Counts::default();
    x.add(c);
    m.insert(k.to_string(), x);
}

impl ReportBuilder {
    pub fn new(opts: ReportOptions) -> ReportBuilder {
        ReportBuilder {
            opts,
            totals: Counts::default(),
            by_hour: [Counts::default(); 24],
            by_day: BTreeMap::new(),
            by_province: HashMap::default(),
            by_city: HashMap::default(),
            by_number: HashMap::default(),
            by_target: HashMap::default(),
            by_disposition: BTreeMap::new(),
            callers: HashMap::default(),
            offset_cache: (i64::MIN, 0),
            first: None,
            last: None,
            key: String::new(),
        }
    }

    /// Add one record (ignored unless it matches the filter).
    pub fn add(&mut self, c: &CallRecord) {
        if !self.opts.filter.matches(c) {
            return;
        }
        self.totals.add(c);
        let ms = c.start.as_millisecond();
        let hour_idx = ms.div_euclid(3_600_000);
        if self.offset_cache.0 != hour_idx {
            let off = i64::from(self.opts.tz.to_offset(c.start).seconds()) * 1000;
            self.offset_cache = (hour_idx, off);
        }
        let local = ms + self.offset_cache.1;
        let day = local.div_euclid(86_400_000);
        let hour = (local.rem_euclid(86_400_000) / 3_600_000) as usize;
        self.by_hour[hour.min(23)].add(c);
        self.by_day.entry(day).or_default().add(c);
        add_to(&mut self.by_province, &c.caller_province, c);
        self.key.clear();
        self.key.push_str(&c.caller_province);
        self.key.push('/');
        self.key.push_str(&c.caller_city);
        add_to(&mut self.by_city, &self.key, c);
        add_to(&mut self.by_number, &c.number, c);
        if !c.answered_target.is_empty() {
            add_to(&mut self.by_target, &c.answered_target, c);
        }
        *self.by_disposition.entry(c.disposition).or_default() += 1;
        let key = CallerKey::of(&c.caller);
        if !self.callers.contains_key(&key) {
            self.callers.insert(
                key.clone(),
                CallerAgg {
                    province: c.caller_province.clone(),
                    city: c.caller_city.clone(),
                    ..CallerAgg::default()
                },
            );
        }
        if let Some(agg) = self.callers.get_mut(&key) {
            agg.counts.add(c);
            agg.last = Some(agg.last.map_or(c.start, |l| l.max(c.start)));
        }
        self.first = Some(self.first.map_or(c.start, |f| f.min(c.start)));
        self.last = Some(self.last.map_or(c.start, |l| l.max(c.start)));
    }

    pub fn finish(self, read: ReadStats) -> Report {
        let tz = self.opts.tz.clone();
        let local = |ts: Timestamp| format_local(ts, &tz);
        let sorted = |m: HashMap<String, Counts>| {
            let mut v: Vec<(String, Counts)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
            v
        };
        let caller_stat = |(caller, a): (&CallerKey, &CallerAgg)| CallerStat {
            caller: caller.text(),
            province: a.province.clone(),
            city: a.city.clone(),
            counts: a.counts,
            last_call: a.last.map(local).unwrap_or_default(),
        };
        let mut callers: Vec<(&CallerKey, &CallerAgg)> = self.callers.iter().collect();
        callers.sort_by(|a, b| {
            b.1.counts
                .calls
                .cmp(&a.1.counts.calls)
                .then_with(|| a.0.cmp(b.0))
        });
        let top = self.opts.top;
        let repeat: Vec<&(&CallerKey, &CallerAgg)> = callers
            .iter()
            .filter(|(_, a)| a.counts.calls >= 2)
            .collect();
        Report {
            tz: self.opts.tz.iana_name().unwrap_or("fixed").to_string(),
            first_call: self.first.map(local).unwrap_or_default(),
            last_call: self.last.map(local).unwrap_or_default(),
            totals: self.totals,
            by_hour: self.by_hour.to_vec(),
            by_day: self
                .by_day
                .iter()
                .map(|(d, c)| {
                    let (y, m, dd) = civil_from_days(*d);
                    (format!("{y:04}-{m:02}-{dd:02}"), *c)
                })
                .collect(),
            by_province: sorted(self.by_province),
            by_city: sorted(self.by_city),
            by_number: sorted(self.by_number),
            by_target: sorted(self.by_target),
            by_disposition: self
                .by_disposition
                .iter()
                .map(|(d, n)| (d.as_str().to_string(), *n))
                .collect(),
            top_callers: callers.iter().take(top).map(|x| caller_stat(*x)).collect(),
            repeat_callers: repeat.len() as u64,
            repeat_caller_calls: repeat.iter().map(|(_, a)| a.counts.calls).sum(),
            unique_callers: callers.len() as u64,
            repeat_unanswered: repeat
                .iter()
                .filter(|(_, a)| a.counts.answered == 0)
                .take(top)
                .map(|x| caller_stat(**x))
                .collect(),
            read,
        }
    }
}

impl Counts {
    fn merge(&mut self, o: &Counts) {
        self.calls += o.calls;
        self.answered += o.answered;
        self.missed += o.missed;
        self.blocked += o.blocked;
        self.talk_ms += o.talk_ms;
    }
}

fn merge_map(into: &mut HashMap<String, Counts>, from: HashMap<String, Counts>) {
    for (k, v) in from {
        into.entry(k).or_default().merge(&v);
    }
}

impl ReportBuilder {
    /// Fold another builder (same options) into this one.
    pub fn merge(&mut self, o: ReportBuilder) {
        self.totals.merge(&o.totals);
        for (a, b) in self.by_hour.iter_mut().zip(o.by_hour.iter()) {
            a.merge(b);
        }
        for (k, v) in o.by_day {
            self.by_day.entry(k).or_default().merge(&v);
        }
        merge_map(&mut self.by_province, o.by_province);
        merge_map(&mut self.by_city, o.by_city);
        merge_map(&mut self.by_number, o.by_number);
        merge_map(&mut self.by_target, o.by_target);
        for (k, v) in o.by_disposition {
            *self.by_disposition.entry(k).or_default() += v;
        }
        for (k, v) in o.callers {
            let a = self.callers.entry(k).or_insert_with(|| CallerAgg {
                province: v.province.clone(),
                city: v.city.clone(),
                ..CallerAgg::default()
            });
            a.counts.merge(&v.counts);
            a.last = a.last.max(v.last);
        }
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = self.last.max(o.last);
    }
}

/// Scan `dir` and build the report. Files are split over two threads (the machine class has two
/// cores) and the partial reports merged.
pub fn report(dir: &Path, opts: &ReportOptions) -> Result<Report, CdrError> {
    let files = crate::reader::data_files(dir, &[crate::Kind::Call])?;
    if files.len() < 2 {
        let mut b = ReportBuilder::new(opts.clone());
        let read = scan_calls(dir, |c| b.add(c))?;
        return Ok(b.finish(read));
    }
    let halves: [Vec<crate::files::DataFile>; 2] = [
        files.iter().step_by(2).cloned().collect(),
        files.iter().skip(1).step_by(2).cloned().collect(),
    ];
    let results: Vec<Result<(ReportBuilder, ReadStats), CdrError>> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .iter()
            .map(|part| {
                s.spawn(move || {
                    let mut b = ReportBuilder::new(opts.clone());
                    let read = crate::reader::scan_files(part, |r| {
                        if let crate::reader::RecordRef::Call(c) = r {
                            b.add(c);
                        }
                    })?;
                    Ok((b, read))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CdrError::Invalid("report worker panicked".into())))
            })
            .collect()
    });
    let mut total: Option<(ReportBuilder, ReadStats)> = None;
    for r in results {
        let (b, read) = r?;
        match total.as_mut() {
            None => total = Some((b, read)),
            Some((tb, tr)) => {
                tb.merge(b);
                tr.merge(&read);
            }
        }
    }
    let (b, read) =
        total.unwrap_or_else(|| (ReportBuilder::new(opts.clone()), ReadStats::default()));
    Ok(b.finish(read))
}

/// Output of `report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}

/// Render a report.
pub fn render_report(r: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(r).unwrap_or_default() + "\n",
        ReportFormat::Html => crate::html::render(r),
        ReportFormat::Text => render_text(r),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn counts_rows(v: &[(String, Counts)], limit: usize) -> Vec<Vec<String>> {
    v.iter()
        .take(limit)
        .map(|(k, c)| {
            vec![
                if k.is_empty() || k == "/" {
                    "(unknown)".to_string()
                } else {
                    k.clone()
                },
                c.calls.to_string(),
                c.answered.to_string(),
                c.missed.to_string(),
                pct(c.asr()),
                format!("{:.1}", c.acd_seconds()),
            ]
        })
        .collect()
}

const COUNT_HEADER: [&str; 6] = ["", "calls", "answered", "missed", "ASR", "ACD s"];

fn section(out: &mut String, title: &str, first_col: &str, rows: Vec<Vec<String>>) {
    out.push_str(&format!("\n## {title}\n"));
    let mut h = COUNT_HEADER;
    h[0] = first_col;
    out.push_str(&table(&h, &rows));
}

fn render_text(r: &Report) -> String {
    let t = &r.totals;
    let mut out = format!(
        "# CDR report ({} .. {}, times in {})\n\
         calls {}  answered {}  missed {}  blocked {}  ASR {}  ACD {:.1} s  talk {:.1} min\n\
         unique callers {}  repeat callers {} ({} calls)\n",
        r.first_call,
        r.last_call,
        r.tz,
        t.calls,
        t.answered,
        t.missed,
        t.blocked,
        pct(t.asr()),
        t.acd_seconds(),
        t.talk_ms as f64 / 60_000.0,
        r.unique_callers,
        r.repeat_callers,
        r.repeat_caller_calls,
    );
    let hours: Vec<(String, Counts)> = r
        .by_hour
        .iter()
        .enumerate()
        .map(|(h, c)| (format!("{h:02}:00"), *c))
        .collect();
    section(&mut out, "By hour of day", "hour", counts_rows(&hours, 24));
    section(
        &mut out,
        "By day",
        "day",
        counts_rows(&r.by_day, usize::MAX),
    );
    section(
        &mut out,
        "By province",
        "province",
        counts_rows(&r.by_province, usize::MAX),
    );
    section(
        &mut out,
        "By city",
        "province/city",
        counts_rows(&r.by_city, 30),
    );
    section(
        &mut out,
        "By 400 number",
        "number",
        counts_rows(&r.by_number, usize::MAX),
    );
    section(
        &mut out,
        "By answering target",
        "target",
        counts_rows(&r.by_target, usize::MAX),
    );
    out.push_str("\n## By disposition\n");
    let rows: Vec<Vec<String>> = r
        .by_disposition
        .iter()
        .map(|(d, n)| vec![d.clone(), n.to_string()])
        .collect();
    out.push_str(&table(&["disposition", "calls"], &rows));
    let callers = |v: &[CallerStat]| -> Vec<Vec<String>> {
        v.iter()
            .map(|c| {
                vec![
                    c.caller.clone(),
                    format!("{} {}", c.province, c.city).trim().to_string(),
                    c.counts.calls.to_string(),
                    c.counts.answered.to_string(),
                    c.last_call.clone(),
                ]
            })
            .collect()
    };
    let h = ["caller", "region", "calls", "answered", "last call"];
    out.push_str("\n## Top callers\n");
    out.push_str(&table(&h, &callers(&r.top_callers)));
    out.push_str("\n## Repeat callers never answered\n");
    out.push_str(&table(&h, &callers(&r.repeat_unanswered)));
    out
}
