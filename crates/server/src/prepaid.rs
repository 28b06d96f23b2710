//! Prepaid enforcement on the call path (issue 5).
//!
//! The CDR files are the ledger: at startup each account's usage is rebuilt per month from every
//! answered call already in the CDRs (per started minute of talk, the same rule `hotline bill`
//! uses). The balance is the bill's: [`hotline_cdr::billing::balance_on`] closes every month
//! before today's exactly as `hotline bill` does (the monthly minimum 月最低消费 of a closed
//! month is charged, from the plan's second month on) and charges today's month its usage so
//! far. While running, credit is reserved a minute at a time, the way an online charging
//! system hands out quota:
//!
//! - a new call is refused (configured code) when the balance not reserved by other calls
//!   cannot pay for one minute;
//! - at answer the call reserves its first minute; shortly before each minute boundary it
//!   reserves the next; when that fails it is cut just before the boundary, so its billed
//!   minutes never exceed what it reserved and concurrent calls can never overdraw;
//! - at the end the real charge (started minutes × rate) is taken from the balance and the
//!   reservation released;
//! - falling below the low-balance threshold is logged at warn level and counted, once per
//!   crossing.
//!
//! The minimum of the month in progress falls due when it closes: on the 1st the balance is
//! what the previous month's bill says is `remaining` (test
//! `live_balance_is_the_bills_remaining`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use hotline_cdr::billing::{BillingConfig, Month, UsageBook};
use jiff::Timestamp;

/// How long before a minute boundary the next minute is reserved.
pub const RENEW_AHEAD: Duration = Duration::from_secs(5);
/// A call whose next minute cannot be paid is cut this long before the boundary, so that
/// signalling delay cannot make it start (and be billed) one more minute.
pub const CUT_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
struct Account {
    /// The subscription (prepaid amount, top-ups, start) and its plan, as `hotline bill`
    /// reads them.
    acct: hotline_cdr::billing::Account,
    plan: hotline_cdr::billing::Plan,
    rate_fen: i64,
    /// Started minutes billed per month of call start (from the CDRs at start, then settled
    /// live): what the bill charges, at the plan's current rate.
    used_minutes: BTreeMap<Month, u64>,
    /// Reserved by answered calls in progress (whole minutes × rate).
    reserved_fen: i64,
    /// Start and end (exclusive) of the plan, in the billing time zone's days.
    start: jiff::civil::Date,
    expiry: jiff::civil::Date,
    low: bool,
    /// In a cluster: the credit Redis last said was available to new calls (balance less
    /// every node's usage and live reservations), and this node's reservations since then.
    cluster_available: Option<i64>,
    /// In a cluster: every node's usage per month (Redis's account, last seen), which the
    /// balance is computed from instead of `used_minutes` (this node's own share).
    cluster_used: Option<BTreeMap<Month, u64>>,
}

impl Account {
    /// The bill's balance on `today` (see the module docs).
    fn balance(&self, today: jiff::civil::Date) -> i64 {
        let used = self.cluster_used.as_ref().unwrap_or(&self.used_minutes);
        hotline_cdr::billing::balance_on(
            &self.acct,
            &self.plan,
            |m| used.get(&m).copied().unwrap_or(0),
            today,
        )
    }

    /// The balance without today's month's usage: what Redis's reservation script starts
    /// from (it subtracts the month's usage of every node and the live reservations).
    fn base(&self, today: jiff::civil::Date) -> i64 {
        let open = Month::of(today);
        let used = self.cluster_used.as_ref().unwrap_or(&self.used_minutes);
        hotline_cdr::billing::balance_on(
            &self.acct,
            &self.plan,
            |m| {
                if m == open {
                    0
                } else {
                    used.get(&m).copied().unwrap_or(0)
                }
            },
            today,
        )
    }
}

/// What a node asks Redis to reserve a slice of a shared prepaid account
/// ([`Prepaid::cluster_ask`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAsk {
    pub base_fen: i64,
    pub rate_fen: i64,
    pub month: String,
}

/// The grant for the slice after `minutes` reserved minutes, as [`Prepaid::reserve`] gives
/// it: `granted` → renew before the next boundary, else cut before this one.
pub fn grant_after(minutes: u32, granted: bool) -> Grant {
    let boundary = Duration::from_secs(60 * u64::from(minutes));
    if granted {
        Grant::Minute {
            renew_after: (boundary + Duration::from_secs(60)).saturating_sub(RENEW_AHEAD),
        }
    } else {
        Grant::Cut {
            cut_after: boundary.saturating_sub(CUT_MARGIN),
        }
    }
}

/// The prepaid state shared by the shards (call path) and the admin endpoint (`/metrics`).
pub type SharedPrepaid = std::sync::Arc<std::sync::Mutex<Option<Prepaid>>>;

/// One number's figures for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    pub number: String,
    /// The bill's balance today (before reservations).
    pub balance_fen: i64,
    /// Held by answered calls in progress.
    pub reserved_fen: i64,
    /// `balance_fen` is below the low-balance threshold.
    pub low: bool,
}

/// Balances of the prepaid 400 numbers.
#[derive(Debug)]
pub struct Prepaid {
    cfg: BillingConfig,
    accounts: HashMap<String, Account>,
    low_balance_fen: i64,
    /// Times a balance fell below the threshold.
    pub low_balance_warnings: u64,
    /// Calls refused for lack of balance.
    pub refused: u64,
    /// Calls cut because their next minute could not be paid.
    pub cut: u64,
}

/// What the call path is told at answer or renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Not a prepaid number: no limit.
    Unlimited,
    /// One more minute reserved: ask again at `renew_at` (seconds after answer).
    Minute { renew_after: Duration },
    /// No balance for the next minute: cut the call `cut_after` after answer.
    Cut { cut_after: Duration },
}

impl Prepaid {
    /// Build balances from the billing config and the CDRs already on disk.
    pub fn load(
        cfg: BillingConfig,
        cdr_dir: &Path,
        low_balance_fen: i64,
        now: Timestamp,
    ) -> Prepaid {
        let mut book = UsageBook::default();
        if cdr_dir.exists() {
            if let Err(e) = hotline_cdr::reader::scan_calls(cdr_dir, |c| book.add(&cfg, c)) {
                tracing::error!(error = %e, "prepaid: cannot read CDRs; balances start from the configured amounts");
            }
        }
        Prepaid::from_usage(cfg, &book, low_balance_fen, now)
    }

    /// [`Prepaid::load`] from usage already collected.
    pub fn from_usage(
        cfg: BillingConfig,
        book: &UsageBook,
        low_balance_fen: i64,
        now: Timestamp,
    ) -> Prepaid {
        let mut p = Prepaid {
            cfg: cfg.clone(),
            accounts: HashMap::new(),
            low_balance_fen,
            low_balance_warnings: 0,
            refused: 0,
            cut: 0,
        };
        p.reconfigure(cfg, low_balance_fen);
        for a in p.accounts.values_mut() {
            a.used_minutes.clear();
        }
        for ((number, month), u) in &book.usage {
            if let Some(a) = p.accounts.get_mut(number) {
                *a.used_minutes.entry(*month).or_default() += u.minutes;
            }
        }
        let today = p.today(now);
        for (n, a) in &p.accounts {
            tracing::info!(number = %n, balance = %hotline_cdr::billing::format_fen(a.balance(today)), "prepaid balance");
        }
        p
    }

    /// A new billing file (config reload): plans, prepaid amounts and top-ups change; what
    /// was used and what calls in progress hold stay.
    pub fn reconfigure(&mut self, cfg: BillingConfig, low_balance_fen: i64) {
        let mut accounts = HashMap::new();
        for a in &cfg.accounts {
            let Some(plan) = cfg.plans.get(&a.plan) else {
                continue;
            };
            let old = self.accounts.get(&a.number);
            accounts.insert(
                a.number.clone(),
                Account {
                    acct: a.clone(),
                    plan: plan.clone(),
                    rate_fen: plan.rate_fen,
                    used_minutes: old.map(|o| o.used_minutes.clone()).unwrap_or_default(),
                    reserved_fen: old.map_or(0, |o| o.reserved_fen),
                    start: a.start,
                    expiry: a.expiry(plan),
                    low: old.is_some_and(|o| o.low),
                    cluster_used: old.and_then(|o| o.cluster_used.clone()),
                    cluster_available: old.and_then(|o| o.cluster_available),
                },
            );
        }
        self.accounts = accounts;
        self.cfg = cfg;
        self.low_balance_fen = low_balance_fen;
    }

    fn today(&self, now: Timestamp) -> jiff::civil::Date {
        now.to_zoned(self.cfg.tz.clone()).date()
    }

    /// Every prepaid number's balance, reservation and low-balance state at `now`, sorted by
    /// number.
    pub fn gauges(&self, now: Timestamp) -> Vec<Gauge> {
        let today = self.today(now);
        let mut v: Vec<Gauge> = self
            .accounts
            .iter()
            .map(|(n, a)| {
                let balance_fen = a.balance(today);
                Gauge {
                    number: n.clone(),
                    balance_fen,
                    reserved_fen: a.reserved_fen,
                    low: balance_fen < self.low_balance_fen,
                }
            })
            .collect();
        v.sort_by(|a, b| a.number.cmp(&b.number));
        v
    }

    /// The low-balance threshold, fen.
    pub fn low_balance_fen(&self) -> i64 {
        self.low_balance_fen
    }

    /// The balance not reserved by calls in progress, if `number` is prepaid.
    pub fn available(&self, number: &str, now: Timestamp) -> Option<i64> {
        let today = self.today(now);
        self.accounts
            .get(number)
            .map(|a| a.balance(today) - a.reserved_fen)
    }

    /// May a new call to `number` start? (Not prepaid: yes.) Outside the plan's dates: no.
    pub fn admit(&mut self, number: &str, now: Timestamp) -> bool {
        let today = self.today(now);
        let Some(a) = self.accounts.get(number) else {
            return true;
        };
        // In a cluster, what Redis last said is available (other nodes' calls included).
        let free = a
            .cluster_available
            .unwrap_or_else(|| a.balance(today) - a.reserved_fen);
        let ok = today >= a.start
            && today < a.expiry
            && hotline_cdr::billing::can_start_call(free, a.rate_fen);
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Reserve the next minute of an answered call that has `minutes` reserved so far.
    pub fn reserve(&mut self, number: &str, minutes: u32, now: Timestamp) -> Grant {
        let today = self.today(now);
        let Some(a) = self.accounts.get_mut(number) else {
            return Grant::Unlimited;
        };
        let boundary = Duration::from_secs(60 * u64::from(minutes));
        if a.rate_fen <= 0 {
            return Grant::Unlimited;
        }
        if a.balance(today) - a.reserved_fen >= a.rate_fen {
            a.reserved_fen += a.rate_fen;
            let next = boundary + Duration::from_secs(60);
            return Grant::Minute {
                renew_after: next.saturating_sub(RENEW_AHEAD),
            };
        }
        self.cut += 1;
        Grant::Cut {
            cut_after: boundary.saturating_sub(CUT_MARGIN),
        }
    }

    /// An answered call that started at `started` ended: charge its started minutes to the
    /// month it started in (as the bill does), release what it reserved.
    /// In a cluster: what Redis needs to reserve a slice for a call to `number` (`None`: not
    /// prepaid, or a rate of zero: no limit).
    pub fn cluster_ask(&self, number: &str, now: Timestamp) -> Option<ClusterAsk> {
        let today = self.today(now);
        let a = self.accounts.get(number)?;
        if a.rate_fen <= 0 {
            return None;
        }
        let base_fen = if today >= a.start && today < a.expiry {
            a.base(today)
        } else {
            // Outside the plan: nothing to spend.
            i64::MIN / 4
        };
        Some(ClusterAsk {
            base_fen,
            rate_fen: a.rate_fen,
            month: Month::of(today).to_string(),
        })
    }

    /// In a cluster: Redis's answer says every node's usage (month `YYYY-MM`, node,
    /// minutes); the balance follows it from now on. Returns whether the number is prepaid.
    pub fn note_cluster_usage(&mut self, number: &str, usage: &[(String, String, u64)]) {
        let Some(a) = self.accounts.get_mut(number) else {
            return;
        };
        let mut sum: BTreeMap<Month, u64> = BTreeMap::new();
        for (m, _, n) in usage {
            if let Some(m) = parse_month(m) {
                *sum.entry(m).or_default() += n;
            }
        }
        a.cluster_used = Some(sum);
    }

    /// Every prepaid number's question for Redis (cluster).
    pub fn cluster_asks(&self, now: Timestamp) -> Vec<(String, ClusterAsk)> {
        let mut v: Vec<_> = self
            .accounts
            .keys()
            .filter_map(|n| Some((n.clone(), self.cluster_ask(n, now)?)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Redis's view of a number (cluster): usage of every node and the credit available to
    /// new calls, which admission uses from now on.
    pub fn note_cluster_available(&mut self, number: &str, a: &hotline_cluster::PrepaidAnswer) {
        self.note_cluster_usage(number, &a.usage);
        if let Some(acct) = self.accounts.get_mut(number) {
            acct.cluster_available = Some(a.available_fen);
        }
    }

    /// A slice Redis reserved for a call of this node: counted here too (this node's view,
    /// `/metrics`), released at the settlement.
    pub fn note_reserved(&mut self, number: &str) {
        if let Some(a) = self.accounts.get_mut(number) {
            a.reserved_fen += a.rate_fen;
            if let Some(c) = a.cluster_available.as_mut() {
                *c -= a.rate_fen;
            }
        }
    }

    /// This node's own usage, per prepaid number: (month `YYYY-MM`, minutes).
    pub fn own_usage(&self) -> Vec<(String, Vec<(String, u64)>)> {
        let mut v: Vec<_> = self
            .accounts
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    a.used_minutes
                        .iter()
                        .map(|(m, u)| (m.to_string(), *u))
                        .collect(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// This node's own minutes of `number` in the month of `started` (after a settlement:
    /// what Redis is told).
    pub fn own_month(&self, number: &str, started: Timestamp) -> Option<(String, u64)> {
        let a = self.accounts.get(number)?;
        let m = Month::of(self.today(started));
        Some((m.to_string(), a.used_minutes.get(&m).copied().unwrap_or(0)))
    }

    pub fn settle(
        &mut self,
        number: &str,
        reserved_minutes: u32,
        billed_minutes: u64,
        started: Timestamp,
        now: Timestamp,
    ) {
        let threshold = self.low_balance_fen;
        let today = self.today(now);
        let month = Month::of(self.today(started));
        let Some(a) = self.accounts.get_mut(number) else {
            return;
        };
        a.reserved_fen -= a.rate_fen * i64::from(reserved_minutes);
        a.reserved_fen = a.reserved_fen.max(0);
        *a.used_minutes.entry(month).or_default() += billed_minutes;
        if let Some(c) = a.cluster_used.as_mut() {
            // Until Redis's next answer says it.
            *c.entry(month).or_default() += billed_minutes;
        }
        let balance = a.balance(today);
        let low = balance < threshold;
        if low && !a.low {
            self.low_balance_warnings += 1;
            tracing::warn!(
                number,
                balance = %hotline_cdr::billing::format_fen(balance),
                "prepaid balance below the low-balance threshold"
            );
        }
        a.low = low;
    }
}

/// `YYYY-MM` → the month.
fn parse_month(s: &str) -> Option<Month> {
    let (y, m) = s.split_once('-')?;
    let (year, month): (i16, i8) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&month).then_some(Month { year, month })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prepaid: &str) -> Result<BillingConfig, String> {
        hotline_config::billing::parse_billing(&format!(
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
prepaid = "{prepaid}"
"#
        ))
        .map_err(|e| format!("{e:?}"))
    }

    fn now() -> Timestamp {
        "2026-11-24T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The cluster's reservation script computes base − this month's minutes × rate −
    /// reservations: that must be the bill's balance, and the grants the single box's.
    #[test]
    fn cluster_base_is_the_balance_before_this_months_usage() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut p = Prepaid::load(cfg("5.00")?, dir.path(), 0, now());
        let ask = p.cluster_ask("4008001234", now()).ok_or("prepaid")?;
        assert_eq!(
            (ask.base_fen, ask.rate_fen, ask.month.as_str()),
            (500, 50, "2026-11")
        );
        assert_eq!(p.cluster_ask("4008009999", now()), None, "not prepaid");
        // Other nodes used 3 minutes this month and 2 last month (closed: charged at rate).
        p.note_cluster_usage(
            "4008001234",
            &[
                ("2026-11".into(), "b".into(), 3),
                ("2026-10".into(), "b".into(), 2),
            ],
        );
        let ask = p.cluster_ask("4008001234", now()).ok_or("prepaid")?;
        assert_eq!(ask.base_fen, 500 - 100);
        assert_eq!(
            p.available("4008001234", now()),
            Some(ask.base_fen - 3 * ask.rate_fen)
        );
        for m in 0..3 {
            assert_eq!(grant_after(m, true), p.reserve("4008001234", m, now()));
        }
        assert_eq!(
            grant_after(2, false),
            Grant::Cut {
                cut_after: Duration::from_millis(119_500)
            }
        );
        Ok(())
    }

    #[test]
    fn refuses_when_one_minute_is_not_covered() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut p = Prepaid::load(cfg("0.40")?, dir.path(), 0, now());
        assert!(!p.admit("4008001234", now()));
        assert_eq!(p.refused, 1);
        assert!(p.admit("4008009999", now()), "not prepaid: no limit");
        let mut p = Prepaid::load(cfg("0.50")?, dir.path(), 0, now());
        assert!(p.admit("4008001234", now()));
        Ok(())
    }

    #[test]
    fn minutes_are_reserved_one_at_a_time_and_settled() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // 1.20 yuan at 0.50/min: two minutes, not three.
        let mut p = Prepaid::load(cfg("1.20")?, dir.path(), 100, now());
        assert_eq!(
            p.reserve("4008001234", 0, now()),
            Grant::Minute {
                renew_after: Duration::from_secs(55)
            }
        );
        assert_eq!(
            p.reserve("4008001234", 1, now()),
            Grant::Minute {
                renew_after: Duration::from_secs(115)
            }
        );
        assert_eq!(p.available("4008001234", now()), Some(20));
        // A second concurrent call cannot start: 0.20 left unreserved.
        assert!(!p.admit("4008001234", now()));
        assert_eq!(
            p.reserve("4008001234", 2, now()),
            Grant::Cut {
                cut_after: Duration::from_millis(119_500)
            }
        );
        // The call talked 1 min 59.5 s: two started minutes.
        p.settle("4008001234", 2, 2, now(), now());
        assert_eq!(p.available("4008001234", now()), Some(20));
        assert_eq!(p.low_balance_warnings, 1, "fell below 1.00");
        assert_eq!(p.reserve("4008009999", 0, now()), Grant::Unlimited);
        Ok(())
    }

    #[test]
    fn a_topup_counts_from_its_day_and_a_reload_keeps_what_was_used() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut p = Prepaid::load(cfg("1.00")?, dir.path(), 0, now());
        assert_eq!(
            p.reserve("4008001234", 0, now()),
            Grant::Minute {
                renew_after: Duration::from_secs(55)
            }
        );
        p.settle("4008001234", 1, 1, now(), now());
        assert_eq!(p.available("4008001234", now()), Some(50));
        let with_topup = cfg("1.00")?.accounts[0].clone();
        let mut c = cfg("1.00")?;
        c.accounts[0] = hotline_cdr::billing::Account {
            topups: vec![hotline_cdr::billing::Topup {
                date: jiff::civil::date(2026, 11, 25),
                amount_fen: 200,
            }],
            ..with_topup
        };
        p.reconfigure(c, 0);
        assert_eq!(
            p.available("4008001234", now()),
            Some(50),
            "the top-up is dated tomorrow"
        );
        let tomorrow: Timestamp = "2026-11-25T01:00:00Z".parse().map_err(|e| format!("{e}"))?;
        assert_eq!(p.available("4008001234", tomorrow), Some(250));
        Ok(())
    }

    #[test]
    fn outside_the_plan_dates_calls_are_refused() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut p = Prepaid::load(cfg("100")?, dir.path(), 0, now());
        let later: Timestamp = "2027-01-02T00:00:00Z".parse().map_err(|e| format!("{e}"))?;
        assert!(!p.admit("4008001234", later), "the 1-year term has expired");
        Ok(())
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Issue 18 item 3, the issue's case: ¥100 prepaid, ¥100 monthly minimum, plan from
    /// 2026-10-01, one 1-minute call at ¥0.60 in November. During November the switch has
    /// ¥99.40; once November closes it has what `hotline bill --month 2026-11` leaves (¥0.00)
    /// and refuses calls; once December closes, -¥100.00 as the December bill says. Before the
    /// fix the switch kept ¥99.40 and answered.
    #[test]
    fn monthly_minimum_is_charged_when_a_month_closes() -> Result<(), String> {
        let cfg = hotline_config::billing::parse_billing(
            r#"
timezone = "Asia/Shanghai"
[plans.p]
rate_per_minute = "0.60"
monthly_minimum = "100"
term_years = 1
[[accounts]]
number = "4008001234"
plan = "p"
start = "2026-10-01"
prepaid = "100"
"#,
        )
        .map_err(|e| format!("{e:?}"))?;
        let n = "4008001234";
        let mut p = Prepaid::from_usage(
            cfg.clone(),
            &UsageBook::default(),
            0,
            ts("2026-11-01T00:00:00Z"),
        );
        assert_eq!(
            p.reserve(n, 0, ts("2026-11-10T02:00:00Z")),
            Grant::Minute {
                renew_after: Duration::from_secs(55)
            }
        );
        p.settle(
            n,
            1,
            1,
            ts("2026-11-10T02:00:00Z"),
            ts("2026-11-10T02:00:40Z"),
        );
        assert_eq!(p.available(n, ts("2026-11-24T02:00:00Z")), Some(9940));
        assert!(p.admit(n, ts("2026-11-24T02:00:00Z")));
        let mut book = UsageBook::default();
        book.usage.insert(
            (
                n.to_string(),
                Month {
                    year: 2026,
                    month: 11,
                },
            ),
            hotline_cdr::billing::Usage {
                calls: 1,
                minutes: 1,
                talk_ms: 40_000,
            },
        );
        let nov = hotline_cdr::billing::bill_from_usage(
            &cfg,
            &book,
            Month {
                year: 2026,
                month: 11,
            },
        );
        let dec = hotline_cdr::billing::bill_from_usage(
            &cfg,
            &book,
            Month {
                year: 2026,
                month: 12,
            },
        );
        assert_eq!(
            (nov.lines[0].remaining_fen, dec.lines[0].remaining_fen),
            (0, -10_000)
        );
        // 2026-12-01 08:00 in Shanghai: November has closed.
        assert_eq!(
            p.available(n, ts("2026-12-01T00:00:00Z")),
            Some(nov.lines[0].remaining_fen)
        );
        assert!(
            !p.admit(n, ts("2026-12-01T00:00:00Z")),
            "nothing left after November's minimum"
        );
        assert_eq!(
            p.available(n, ts("2027-01-01T00:00:00Z")),
            Some(dec.lines[0].remaining_fen)
        );
        // Usage rebuilt from the CDRs at start gives the same money.
        let q = Prepaid::from_usage(cfg, &book, 0, ts("2026-12-01T00:00:00Z"));
        assert_eq!(q.available(n, ts("2026-12-01T00:00:00Z")), Some(0));
        Ok(())
    }

    /// The switch's balance and the bill held to each other: for plans with and without a
    /// minimum, with top-ups and usage in several months, up to and past expiry, the balance
    /// on the first day of every month is that month's top-ups of the day plus the previous
    /// month's bill's `remaining`, and mid-month it is that minus the month's usage so far.
    #[test]
    fn live_balance_is_the_bills_remaining() -> Result<(), String> {
        for (minimum, term) in [("0", 1), ("30", 1), ("100", 1), ("100", 2)] {
            let cfg = hotline_config::billing::parse_billing(&format!(
                r#"
timezone = "Asia/Shanghai"
[plans.p]
rate_per_minute = "0.10"
monthly_minimum = "{minimum}"
term_years = {term}
[[accounts]]
number = "4008001234"
plan = "p"
start = "2026-10-15"
prepaid = "250"
topups = [{{ date = "2026-12-01", amount = "40" }}, {{ date = "2027-03-10", amount = "500" }}]
"#
            ))
            .map_err(|e| format!("{e:?}"))?;
            let n = "4008001234";
            let acct = cfg.accounts[0].clone();
            let mut book = UsageBook::default();
            let mut p = Prepaid::from_usage(cfg.clone(), &book, 0, ts("2026-10-15T00:00:00Z"));
            let mut m = Month {
                year: 2026,
                month: 9,
            };
            for i in 0..30u64 {
                let next = m.next();
                // One call a month on the 16th (within the plan), settled live and put in
                // the book the bill is computed from.
                let day = jiff::civil::date(m.year, m.month, 16);
                let at = day
                    .at(10, 0, 0, 0)
                    .to_zoned(cfg.tz.clone())
                    .map_err(|e| e.to_string())?
                    .timestamp();
                let minutes = (i * 37) % 700;
                let in_plan = day >= acct.start && day < acct.expiry(&cfg.plans["p"]);
                if in_plan && minutes > 0 {
                    p.settle(n, 0, minutes, at, at);
                    let u = book.usage.entry((n.to_string(), m)).or_default();
                    u.calls += 1;
                    u.minutes += minutes;
                }
                let bill = hotline_cdr::billing::bill_from_usage(&cfg, &book, m);
                // Mid-month: the month's opening balance, its top-ups so far, minus its usage.
                let day20 = jiff::civil::date(m.year, m.month, 20);
                let at20 = day20
                    .at(12, 0, 0, 0)
                    .to_zoned(cfg.tz.clone())
                    .map_err(|e| e.to_string())?
                    .timestamp();
                let l = &bill.lines[0];
                use hotline_cdr::billing::MonthStatus::*;
                let mid = match l.status {
                    NotStarted => l.balance_before_fen,
                    Expired => l.balance_before_fen.min(0),
                    FirstMonth | Active | ExpiryMonth => {
                        let topups: i64 = acct
                            .topups
                            .iter()
                            .filter(|t| Month::of(t.date) == m && t.date <= day20)
                            .map(|t| t.amount_fen)
                            .sum();
                        l.balance_before_fen + topups - l.usage_fen
                    }
                };
                assert_eq!(
                    p.available(n, at20),
                    Some(mid),
                    "minimum {minimum}, term {term}: {day20}: {l:?}"
                );
                let topups_of = |d: jiff::civil::Date| -> i64 {
                    acct.topups
                        .iter()
                        .filter(|t| t.date == d)
                        .map(|t| t.amount_fen)
                        .sum()
                };
                let next_first = jiff::civil::date(next.year, next.month, 1);
                let at_next = next_first
                    .at(0, 30, 0, 0)
                    .to_zoned(cfg.tz.clone())
                    .map_err(|e| e.to_string())?
                    .timestamp();
                let want = match hotline_cdr::billing::bill_from_usage(&cfg, &book, next).lines[0]
                    .status
                {
                    hotline_cdr::billing::MonthStatus::Expired => {
                        bill.lines[0].remaining_fen.min(0)
                    }
                    _ => bill.lines[0].remaining_fen + topups_of(next_first),
                };
                assert_eq!(
                    p.available(n, at_next),
                    Some(want),
                    "minimum {minimum}, term {term}: 1st of {next} vs the bill of {m}: {:?}",
                    bill.lines[0]
                );
                m = next;
            }
        }
        Ok(())
    }
}
