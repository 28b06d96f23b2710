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
    /// Balance after every finished call.
    balance_fen: i64,
    /// Reserved by answered calls in progress (whole minutes × rate).
    reserved_fen: i64,
    /// Start and end (exclusive) of the plan, in the billing time zone's days.
    start: jiff::civil::Date,
    expiry: jiff::civil::Date,
    low: bool,
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
        let today = now.to_zoned(cfg.tz.clone()).date();
        let mut book = UsageBook::default();
        if cdr_dir.exists() {
            match hotline_cdr::reader::scan_calls(cdr_dir, |c| book.add(&cfg, c)) {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "prepaid: cannot read CDRs; balances start from the configured amounts")
                }
            }
        }
        let mut accounts = HashMap::new();
        for a in &cfg.accounts {
            let Some(plan) = cfg.plans.get(&a.plan) else {
                continue;
            };
            let topups: i64 = a
                .topups
                .iter()
                .filter(|t| t.date <= today)
                .map(|t| t.amount_fen)
                .sum();
            let used: i64 = book
                .usage
                .iter()
                .filter(|((n, _), _)| n == &a.number)
                .map(|(_, u)| {
                    i64::try_from(u.minutes)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(plan.rate_fen)
                })
                .sum();
            accounts.insert(
                a.number.clone(),
                Account {
                    rate_fen: plan.rate_fen,
                    balance_fen: a.prepaid_fen.saturating_add(topups).saturating_sub(used),
                    reserved_fen: 0,
                    start: a.start,
                    expiry: a.expiry(plan),
                    low: false,
                },
            );
        }
        Prepaid {
            cfg,
            accounts,
            low_balance_fen,
            low_balance_warnings: 0,
            refused: 0,
            cut: 0,
        }
    }

    /// The balance not reserved by calls in progress, if `number` is prepaid.
    pub fn available(&self, number: &str) -> Option<i64> {
        self.accounts
            .get(number)
            .map(|a| a.balance_fen - a.reserved_fen)
    }

    /// May a new call to `number` start? (Not prepaid: yes.) Outside the plan's dates: no.
    pub fn admit(&mut self, number: &str, now: Timestamp) -> bool {
        let today = now.to_zoned(self.cfg.tz.clone()).date();
        let Some(a) = self.accounts.get(number) else {
            return true;
        };
        let ok = today >= a.start
            && today < a.expiry
            && hotline_cdr::billing::can_start_call(a.balance_fen - a.reserved_fen, a.rate_fen);
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Reserve the next minute of an answered call that has `minutes` reserved so far.
    pub fn reserve(&mut self, number: &str, minutes: u32) -> Grant {
        let Some(a) = self.accounts.get_mut(number) else {
            return Grant::Unlimited;
        };
        let boundary = Duration::from_secs(60 * u64::from(minutes));
        if a.rate_fen <= 0 {
            return Grant::Unlimited;
        }
        if a.balance_fen - a.reserved_fen >= a.rate_fen {
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
    pub fn settle(&mut self, number: &str, reserved_minutes: u32, billed_minutes: u64) {
        let threshold = self.low_balance_fen;
        let Some(a) = self.accounts.get_mut(number) else {
            return;
        };
        a.reserved_fen -= a.rate_fen * i64::from(reserved_minutes);
        a.reserved_fen = a.reserved_fen.max(0);
        let charge = i64::try_from(billed_minutes)
            .unwrap_or(i64::MAX)
            .saturating_mul(a.rate_fen);
        a.balance_fen = a.balance_fen.saturating_sub(charge);
        let low = a.balance_fen < threshold;
        if low && !a.low {
            self.low_balance_warnings += 1;
            tracing::warn!(
                number,
                balance = %hotline_cdr::billing::format_fen(a.balance_fen),
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
            p.reserve("4008001234", 0),
            Grant::Minute {
                renew_after: Duration::from_secs(55)
            }
        );
        assert_eq!(
            p.reserve("4008001234", 1),
            Grant::Minute {
                renew_after: Duration::from_secs(115)
            }
        );
        assert_eq!(p.available("4008001234"), Some(20));
        // A second concurrent call cannot start: 0.20 left unreserved.
        assert!(!p.admit("4008001234", now()));
        assert_eq!(
            p.reserve("4008001234", 2),
            Grant::Cut {
                cut_after: Duration::from_millis(119_500)
            }
        );
        // The call talked 1 min 59.5 s: two started minutes.
        p.settle("4008001234", 2, 2);
        assert_eq!(p.available("4008001234"), Some(20));
        assert_eq!(p.low_balance_warnings, 1, "fell below 1.00");
        assert_eq!(p.reserve("4008009999", 0), Grant::Unlimited);
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
