//! Prepaid enforcement on the call path (issue 5).
//!
//! The CDR files are the ledger: at startup each account's balance is rebuilt from its prepaid
//! amount and top-ups minus the charge of every answered call already in the CDRs (per
//! started minute of talk, the same rule `hotline bill` uses). While running, credit is
//! reserved a minute at a time, the way an online charging system hands out quota:
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
//! The monthly minimum (月最低消费) is settled by the monthly bill, not on the call path.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hotline_cdr::billing::{BillingConfig, UsageBook};
use jiff::Timestamp;

/// How long before a minute boundary the next minute is reserved.
pub const RENEW_AHEAD: Duration = Duration::from_secs(5);
/// A call whose next minute cannot be paid is cut this long before the boundary, so that
/// signalling delay cannot make it start (and be billed) one more minute.
pub const CUT_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
struct Account {
    rate_fen: i64,
    prepaid_fen: i64,
    /// Top-ups by date (a top-up counts from its day on).
    topups: Vec<(jiff::civil::Date, i64)>,
    /// Charged for finished calls (from the CDRs at start, then settled live).
    used_fen: i64,
    /// Reserved by answered calls in progress (whole minutes × rate).
    reserved_fen: i64,
    /// Start and end (exclusive) of the plan, in the billing time zone's days.
    start: jiff::civil::Date,
    expiry: jiff::civil::Date,
    low: bool,
}

impl Account {
    fn balance(&self, today: jiff::civil::Date) -> i64 {
        let topups: i64 = self
            .topups
            .iter()
            .filter(|(d, _)| *d <= today)
            .map(|(_, f)| f)
            .sum();
        self.prepaid_fen
            .saturating_add(topups)
            .saturating_sub(self.used_fen)
    }
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
            a.used_fen = 0;
        }
        for ((number, _), u) in &book.usage {
            if let Some(a) = p.accounts.get_mut(number) {
                a.used_fen = a.used_fen.saturating_add(
                    i64::try_from(u.minutes)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(a.rate_fen),
                );
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
                    rate_fen: plan.rate_fen,
                    prepaid_fen: a.prepaid_fen,
                    topups: a.topups.iter().map(|t| (t.date, t.amount_fen)).collect(),
                    used_fen: old.map_or(0, |o| o.used_fen),
                    reserved_fen: old.map_or(0, |o| o.reserved_fen),
                    start: a.start,
                    expiry: a.expiry(plan),
                    low: old.is_some_and(|o| o.low),
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
        let ok = today >= a.start
            && today < a.expiry
            && hotline_cdr::billing::can_start_call(a.balance(today) - a.reserved_fen, a.rate_fen);
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

    /// An answered call ended: charge its started minutes, release what it reserved.
    pub fn settle(
        &mut self,
        number: &str,
        reserved_minutes: u32,
        billed_minutes: u64,
        now: Timestamp,
    ) {
        let threshold = self.low_balance_fen;
        let today = self.today(now);
        let Some(a) = self.accounts.get_mut(number) else {
            return;
        };
        a.reserved_fen -= a.rate_fen * i64::from(reserved_minutes);
        a.reserved_fen = a.reserved_fen.max(0);
        let charge = i64::try_from(billed_minutes)
            .unwrap_or(i64::MAX)
            .saturating_mul(a.rate_fen);
        a.used_fen = a.used_fen.saturating_add(charge);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(prepaid: &str) -> Result<BillingConfig, String> {
        hotline_cdr::billing::parse_billing(&format!(
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
        p.settle("4008001234", 2, 2, now());
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
        p.settle("4008001234", 1, 1, now());
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
}
