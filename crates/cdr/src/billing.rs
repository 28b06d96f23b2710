//! Billing (`hotline bill --month 2026-11`): rate plans, monthly bills per 400 number. The rate
//! file's TOML is compiled by `hotline_config::billing`; the money parser and the arithmetic are here.
//!
//! Money is integer fen (分) everywhere; amounts in the TOML are decimal strings of yuan with at
//! most two decimals (`"0.10"`), parsed exactly. Rules (docs/cdr.md):
//! - usage: every *started* minute of talk time of answered calls (61 s = 2 min) × the rate;
//! - a call belongs to the month (in the billing time zone) of its start;
//! - monthly charge = max(usage, monthly minimum), except the month the plan starts (actual usage);
//! - the plan runs `term_years` from its start date; calls from the expiry date on are not billed,
//!   and months after the expiry month are not charged;
//! - the prepaid balance (plus top-ups, credited in their month) pays each month's charge in
//!   order; it may go negative (arrears); at expiry a positive balance is cleared (forfeited).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::query::table;
use crate::reader::{scan_calls, ReadStats};
use crate::record::{CallRecord, Disposition};
use crate::CdrError;

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    /// `2026-11`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.trim().split_once('-')?;
        let year: i16 = y.parse().ok()?;
        let month: i8 = m.parse().ok()?;
        ((1..=12).contains(&month) && (1..=9999).contains(&year) && y.len() == 4)
            .then_some(Month { year, month })
    }

    pub fn of(d: Date) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `12345` -> `"123.45"`, `-5` -> `"-0.05"`.
pub fn format_fen(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// The most integer digits an amount may have: 9,999,999,999,999.99 元 at most (about 10^15
/// fen), so sums and products of amounts in a bill stay far from `i64` overflow.
pub const MAX_YUAN_DIGITS: usize = 13;

/// Why a money text is not an amount ([`parse_yuan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a decimal number of yuan with at most two decimals (`"0.105"`, `"1."`, `"x"`).
    Malformed,
    /// A minus sign: no configured amount (rate, minimum, prepaid, top-up, threshold) is negative.
    Negative,
    /// More than [`MAX_YUAN_DIGITS`] integer digits.
    TooLarge,
}

impl std::fmt::Display for MoneyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MoneyError::Malformed => "not an amount of yuan with at most two decimals",
            MoneyError::Negative => "negative: amounts are 0 or more",
            MoneyError::TooLarge => "too large: at most 13 digits before the decimal point",
        })
    }
}

/// `"0.10"` / `"100"` / `"3000.5"` yuan -> fen: the workspace's one money parser (billing
/// files and `[server.billing] low_balance`). Exact: at most two decimals, no exponent, no
/// sign, surrounding blanks ignored; never overflows.
pub fn parse_yuan(s: &str) -> Result<i64, MoneyError> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return Err(MoneyError::Malformed);
    }
    if neg {
        return Err(MoneyError::Negative);
    }
    if int.trim_start_matches('0').len() > MAX_YUAN_DIGITS {
        return Err(MoneyError::TooLarge);
    }
    let mut fen = 0i64;
    for b in int.bytes().chain(format!("{frac:0<2}").bytes()) {
        // At most 15 significant digits: cannot overflow (checked all the same).
        fen = fen
            .checked_mul(10)
            .and_then(|f| f.checked_add(i64::from(b - b'0')))
            .ok_or(MoneyError::TooLarge)?;
    }
    Ok(fen)
}

// ---------------------------------------------------------------- rates and accounts
//
// Compiled from TOML by `hotline_config::billing` (strict schema, every error at once).

/// A rate plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    /// Fen per started minute of talk time.
    pub rate_fen: i64,
    /// 月最低消费, fen.
    pub monthly_minimum_fen: i64,
    /// 1, 2, 3 or 5.
    pub term_years: u32,
}

/// A credit to the prepaid balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topup {
    pub date: Date,
    pub amount_fen: i64,
}

/// A 400 number's subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub plan: String,
    /// First day of the plan (billing time zone).
    pub start: Date,
    pub prepaid_fen: i64,
    pub topups: Vec<Topup>,
}

impl Account {
    /// The day the plan ends: start + term years (not included in the plan).
    pub fn expiry(&self, plan: &Plan) -> Date {
        self.start
            .checked_add(jiff::Span::new().years(i64::from(plan.term_years)))
            .unwrap_or(Date::MAX)
    }
}

/// Parsed billing configuration.
#[derive(Clone, Debug)]
pub struct BillingConfig {
    pub tz: TimeZone,
    pub plans: BTreeMap<String, Plan>,
    pub accounts: Vec<Account>,
}

// ---------------------------------------------------------------- usage and bills

/// Billable usage of one number in one month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Answered calls.
    pub calls: u64,
    /// Started minutes of talk time.
    pub minutes: u64,
    pub talk_ms: u64,
}

/// Usage per (number, month), collected from call records.
#[derive(Clone, Debug, Default)]
pub struct UsageBook {
    pub usage: HashMap<(String, Month), Usage>,
}

impl UsageBook {
    /// Add a call if it is billable under `cfg` (answered, number has an account, within the
    /// plan's dates).
    pub fn add(&mut self, cfg: &BillingConfig, c: &CallRecord) {
        if c.disposition != Disposition::Answered || c.answer.is_none() {
            return;
        }
        let Some(acct) = cfg.accounts.iter().find(|a| a.number == c.number) else {
            return;
        };
        let Some(plan) = cfg.plans.get(&acct.plan) else {
            return;
        };
        let day = c.start.to_zoned(cfg.tz.clone()).date();
        if day < acct.start || day >= acct.expiry(plan) {
            return;
        }
        let key = (c.number.clone(), Month::of(day));
        let u = self.usage.entry(key).or_default();
        u.calls += 1;
        u.minutes += c.billable_minutes();
        u.talk_ms += c.talk_ms();
    }
}

/// Where a month stands in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MonthStatus {
    /// Before the plan's start: nothing billed.
    NotStarted,
    /// The month the plan starts: actual usage, no minimum.
    FirstMonth,
    Active,
    /// The month in which the plan expires: billed, then a positive balance is cleared.
    ExpiryMonth,
    /// After the expiry month: nothing billed, balance 0.
    Expired,
}

/// One number's bill for a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BillLine {
    pub number: String,
    pub plan: String,
    pub status: MonthStatus,
    pub expiry: String,
    pub calls: u64,
    pub minutes: u64,
    pub rate_fen: i64,
    pub usage_fen: i64,
    pub minimum_fen: i64,
    /// Charged on top of usage because of the monthly minimum.
    pub minimum_applied_fen: i64,
    pub total_fen: i64,
    /// Balance at the start of the month, top-ups of the month, balance after the charge.
    pub balance_before_fen: i64,
    pub topups_fen: i64,
    pub remaining_fen: i64,
    /// Positive balance cleared at expiry.
    pub forfeited_fen: i64,
}

/// A month's bill for every configured number.
#[derive(Clone, Debug, Serialize)]
pub struct Bill {
    pub month: Month,
    pub lines: Vec<BillLine>,
    /// Sum of `total_fen`.
    pub total_fen: i64,
    #[serde(skip)]
    pub read: ReadStats,
}

fn month_status(m: Month, start: Date, expiry: Date) -> MonthStatus {
    let first = Month::of(start);
    // The last day of the plan is the day before expiry.
    let last = Month::of(expiry.yesterday().unwrap_or(expiry));
    if m < first {
        MonthStatus::NotStarted
    } else if m == first {
        MonthStatus::FirstMonth
    } else if m < last {
        MonthStatus::Active
    } else if m == last {
        MonthStatus::ExpiryMonth
    } else {
        MonthStatus::Expired
    }
}

/// One closed month of an account, by the rules above.
struct MonthCharge {
    status: MonthStatus,
    topups: i64,
    usage_fen: i64,
    total: i64,
    min_applied: i64,
    remaining: i64,
    forfeited: i64,
}

/// Close month `m` of `acct` that started with `balance` and used `minutes`.
fn close_month(acct: &Account, plan: &Plan, m: Month, balance: i64, minutes: u64) -> MonthCharge {
    let status = month_status(m, acct.start, acct.expiry(plan));
    let topups: i64 = acct
        .topups
        .iter()
        .filter(|t| Month::of(t.date) == m)
        .map(|t| t.amount_fen)
        .sum();
    let usage_fen = i64::try_from(minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(plan.rate_fen);
    let (total, min_applied) = match status {
        MonthStatus::NotStarted | MonthStatus::Expired => (0, 0),
        MonthStatus::FirstMonth => (usage_fen, 0),
        MonthStatus::Active | MonthStatus::ExpiryMonth => {
            let t = usage_fen.max(plan.monthly_minimum_fen);
            (t, t - usage_fen)
        }
    };
    let mut forfeited = 0;
    let mut remaining = match status {
        MonthStatus::NotStarted => balance,
        MonthStatus::Expired => balance.min(0),
        _ => balance.saturating_add(topups).saturating_sub(total),
    };
    if status == MonthStatus::ExpiryMonth && remaining > 0 {
        forfeited = remaining;
        remaining = 0;
    }
    MonthCharge {
        status,
        topups,
        usage_fen,
        total,
        min_applied,
        remaining,
        forfeited,
    }
}

/// The prepaid balance of `acct` on `today`, the money the switch admits and cuts calls
/// against: every month before today's is closed exactly as its bill closes it (so a closed
/// month's minimum 月最低消费 is charged, from the plan's second month on, and a balance left
/// at expiry is cleared); in today's month the top-ups dated up to today are credited and the
/// usage so far is charged (its minimum falls due when the month closes). `minutes(m)`: the
/// started minutes of talk billed to month `m` (by call start). On the first day of a month
/// this is the previous month's bill's `remaining` plus that day's top-ups.
pub fn balance_on(acct: &Account, plan: &Plan, minutes: impl Fn(Month) -> u64, today: Date) -> i64 {
    let open = Month::of(today);
    let mut balance = acct.prepaid_fen;
    let mut m = Month::of(acct.start);
    while m < open {
        balance = close_month(acct, plan, m, balance, minutes(m)).remaining;
        m = m.next();
    }
    match month_status(open, acct.start, acct.expiry(plan)) {
        MonthStatus::NotStarted => balance,
        MonthStatus::Expired => balance.min(0),
        _ => {
            let topups: i64 = acct
                .topups
                .iter()
                .filter(|t| Month::of(t.date) == open && t.date <= today)
                .map(|t| t.amount_fen)
                .sum();
            let usage = i64::try_from(minutes(open))
                .unwrap_or(i64::MAX)
                .saturating_mul(plan.rate_fen);
            balance.saturating_add(topups).saturating_sub(usage)
        }
    }
}

/// Compute the bill for `month` from collected usage (pure; `bill` scans the CDRs first).
pub fn bill_from_usage(cfg: &BillingConfig, book: &UsageBook, month: Month) -> Bill {
    let mut lines = Vec::new();
    for acct in &cfg.accounts {
        let Some(plan) = cfg.plans.get(&acct.plan) else {
            continue;
        };
        let expiry = acct.expiry(plan);
        let mut balance = acct.prepaid_fen;
        let mut m = Month::of(acct.start).min(month);
        let line = loop {
            let before = balance;
            let u = book
                .usage
                .get(&(acct.number.clone(), m))
                .copied()
                .unwrap_or_default();
            let MonthCharge {
                status,
                topups,
                usage_fen,
                total,
                min_applied,
                remaining,
                forfeited,
            } = close_month(acct, plan, m, balance, u.minutes);
            balance = remaining;
            if m == month {
                break BillLine {
                    number: acct.number.clone(),
                    plan: plan.name.clone(),
                    status,
                    expiry: expiry.to_string(),
                    calls: u.calls,
                    minutes: u.minutes,
                    rate_fen: plan.rate_fen,
                    usage_fen: if matches!(status, MonthStatus::NotStarted | MonthStatus::Expired) {
                        0
                    } else {
                        usage_fen
                    },
                    minimum_fen: plan.monthly_minimum_fen,
                    minimum_applied_fen: min_applied,
                    total_fen: total,
                    balance_before_fen: before,
                    topups_fen: if matches!(status, MonthStatus::NotStarted | MonthStatus::Expired)
                    {
                        0
                    } else {
                        topups
                    },
                    remaining_fen: balance,
                    forfeited_fen: forfeited,
                };
            }
            m = m.next();
        };
        lines.push(line);
    }
    let total_fen = lines.iter().map(|l| l.total_fen).sum();
    Bill {
        month,
        lines,
        total_fen,
        read: ReadStats::default(),
    }
}

/// The end of `month` in the billing zone: calls starting before it feed the bill (earlier
/// months feed the balance), later ones do not.
pub fn billed_until(cfg: &BillingConfig, month: Month) -> Timestamp {
    jiff::civil::date(month.next().year, month.next().month, 1)
        .to_zoned(cfg.tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// Scan the CDRs in `dir` and compute the bill for `month`.
pub fn bill(dir: &Path, cfg: &BillingConfig, month: Month) -> Result<Bill, CdrError> {
    let mut book = UsageBook::default();
    let end = billed_until(cfg, month);
    let read = scan_calls(dir, |c| {
        if c.start < end {
            book.add(cfg, c);
        }
    })?;
    let mut b = bill_from_usage(cfg, &book, month);
    b.read = read;
    Ok(b)
}

/// Output of `bill`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillFormat {
    Table,
    Csv,
    Json,
}

/// Render a bill; money as yuan with two decimals (`123.45`).
pub fn render_bill(b: &Bill, format: BillFormat) -> String {
    let header = [
        "number",
        "plan",
        "status",
        "calls",
        "minutes",
        "rate",
        "usage",
        "minimum",
        "minimum_applied",
        "total",
        "balance_before",
        "topups",
        "remaining",
        "forfeited",
        "expiry",
    ];
    let rows: Vec<Vec<String>> = b
        .lines
        .iter()
        .map(|l| {
            vec![
                l.number.clone(),
                l.plan.clone(),
                format!("{:?}", l.status),
                l.calls.to_string(),
                l.minutes.to_string(),
                format_fen(l.rate_fen),
                format_fen(l.usage_fen),
                format_fen(l.minimum_fen),
                format_fen(l.minimum_applied_fen),
                format_fen(l.total_fen),
                format_fen(l.balance_before_fen),
                format_fen(l.topups_fen),
                format_fen(l.remaining_fen),
                format_fen(l.forfeited_fen),
                l.expiry.clone(),
            ]
        })
        .collect();
    match format {
        BillFormat::Json => serde_json::to_string_pretty(b).unwrap_or_default() + "\n",
        BillFormat::Csv => {
            let mut out = Vec::new();
            for r in std::iter::once(header.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .chain(rows)
            {
                for (i, f) in r.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    crate::encode::csv_field(&mut out, f);
                }
                out.push(b'\n');
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        BillFormat::Table => {
            let mut s = String::new();
            let _ = writeln!(s, "# Bill for {} (amounts in 元)", b.month);
            s.push_str(&table(&header, &rows));
            let _ = writeln!(s, "total {}", format_fen(b.total_fen));
            s
        }
    }
}

// ---------------------------------------------------------------- prepaid helpers

/// Whether a new call may start: the balance covers at least one minute.
pub fn can_start_call(balance_fen: i64, rate_fen: i64) -> bool {
    rate_fen <= 0 || balance_fen >= rate_fen
}

/// The longest talk time the balance pays for (whole started minutes); `None` when the rate is
/// zero (unlimited).
pub fn max_talk(balance_fen: i64, rate_fen: i64) -> Option<std::time::Duration> {
    if rate_fen <= 0 {
        return None;
    }
    let minutes = u64::try_from(balance_fen.max(0) / rate_fen).unwrap_or(0);
    Some(std::time::Duration::from_secs(minutes.saturating_mul(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parsing_is_exact() {
        assert_eq!(parse_yuan("0.10"), Ok(10));
        assert_eq!(parse_yuan("100"), Ok(10_000));
        assert_eq!(parse_yuan("3000.5"), Ok(300_050));
        assert_eq!(parse_yuan(" 50.00 "), Ok(5_000));
        assert_eq!(parse_yuan("0.105"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan("1."), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan(".5"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan("1e3"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan("+1"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan("abc"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan(""), Err(MoneyError::Malformed));
        assert_eq!(format_fen(12_345), "123.45");
        assert_eq!(format_fen(-5), "-0.05");
        assert_eq!(format_fen(0), "0.00");
    }

    /// Negatives are refused (no configured amount is negative; before, the billing file
    /// refused them and `low_balance` did not parse them, each in its own words), and so is
    /// anything past 13 integer digits instead of overflowing.
    #[test]
    fn yuan_negatives_and_overflow() {
        assert_eq!(parse_yuan("-1.05"), Err(MoneyError::Negative));
        assert_eq!(parse_yuan("-0"), Err(MoneyError::Negative));
        assert_eq!(parse_yuan("-x"), Err(MoneyError::Malformed));
        assert_eq!(parse_yuan("9999999999999.99"), Ok(999_999_999_999_999));
        assert_eq!(parse_yuan("0009999999999999"), Ok(999_999_999_999_900));
        assert_eq!(parse_yuan("10000000000000"), Err(MoneyError::TooLarge));
        assert_eq!(
            parse_yuan("92233720368547758.07"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(parse_yuan(&"9".repeat(40)), Err(MoneyError::TooLarge));
    }

    #[test]
    fn prepaid_helpers() {
        assert!(can_start_call(10, 10));
        assert!(!can_start_call(9, 10));
        assert_eq!(max_talk(95, 10), Some(std::time::Duration::from_secs(540)));
        assert_eq!(max_talk(-5, 10), Some(std::time::Duration::ZERO));
        assert_eq!(max_talk(5, 0), None);
    }
}
