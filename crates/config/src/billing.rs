//! Billing rate files (`config/billing.toml`, `[server.billing] file`, `hotline bill`): the TOML
//! schema (`deny_unknown_fields`) compiled into [`hotline_cdr::billing::BillingConfig`], every
//! error at once with key path and line. The arithmetic (usage, monthly bills, balances) and the
//! one money parser ([`hotline_cdr::billing::parse_yuan`]) are the CDR crate's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hotline_cdr::billing::{parse_yuan, Account, BillingConfig, Plan, Topup};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    timezone: Option<String>,
    #[serde(default)]
    plans: BTreeMap<String, RawPlan>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    rate_per_minute: toml::Spanned<String>,
    monthly_minimum: toml::Spanned<String>,
    term_years: toml::Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    number: toml::Spanned<String>,
    plan: toml::Spanned<String>,
    start: toml::Spanned<String>,
    #[serde(default)]
    prepaid: Option<toml::Spanned<String>>,
    #[serde(default)]
    topups: Vec<RawTopup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopup {
    date: toml::Spanned<String>,
    amount: toml::Spanned<String>,
}

/// One configuration problem: key path, line (1-based, 0 if unknown) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingError {
    /// Dotted key path, e.g. `accounts[0].plan`.
    pub path: String,
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.get(..offset)
        .map_or(0, |s| s.bytes().filter(|&b| b == b'\n').count() + 1)
}

/// Parse a billing TOML; returns every error at once.
pub fn parse_billing(src: &str) -> Result<BillingConfig, Vec<BillingError>> {
    let raw: RawConfig = toml::from_str(src).map_err(|e| {
        vec![BillingError {
            path: String::new(),
            line: e.span().map_or(0, |s| line_of(src, s.start)),
            message: e.message().to_string(),
        }]
    })?;
    let mut errs = Vec::new();
    let mut bad = |path: String, span: std::ops::Range<usize>, message: String| {
        errs.push(BillingError {
            path,
            line: line_of(src, span.start),
            message,
        });
    };
    let tz = match raw.timezone.as_deref() {
        None => hotline_cdr::report::china_tz(),
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(_) => {
                bad(
                    "timezone".into(),
                    0..0,
                    format!("unknown time zone {name:?}"),
                );
                TimeZone::UTC
            }
        },
    };
    let money = |v: &toml::Spanned<String>,
                 path: String,
                 bad: &mut dyn FnMut(String, std::ops::Range<usize>, String)| {
        match parse_yuan(v.get_ref()) {
            Ok(f) => f,
            Err(e) => {
                bad(path, v.span(), format!("{:?} is {e}", v.get_ref()));
                0
            }
        }
    };
    let mut plans = BTreeMap::new();
    for (name, p) in &raw.plans {
        let rate_fen = money(
            &p.rate_per_minute,
            format!("plans.{name}.rate_per_minute"),
            &mut bad,
        );
        let monthly_minimum_fen = money(
            &p.monthly_minimum,
            format!("plans.{name}.monthly_minimum"),
            &mut bad,
        );
        let term = *p.term_years.get_ref();
        if ![1, 2, 3, 5].contains(&term) {
            bad(
                format!("plans.{name}.term_years"),
                p.term_years.span(),
                format!("{term} is not 1, 2, 3 or 5"),
            );
        }
        plans.insert(
            name.clone(),
            Plan {
                name: name.clone(),
                rate_fen,
                monthly_minimum_fen,
                term_years: term,
            },
        );
    }
    let date = |v: &toml::Spanned<String>,
                path: String,
                bad: &mut dyn FnMut(String, std::ops::Range<usize>, String)| {
        v.get_ref().parse::<Date>().unwrap_or_else(|_| {
            bad(
                path,
                v.span(),
                format!("{:?} is not a date YYYY-MM-DD", v.get_ref()),
            );
            Date::MIN
        })
    };
    let mut accounts = Vec::new();
    let mut seen = HashMap::new();
    for (i, a) in raw.accounts.iter().enumerate() {
        let p = format!("accounts[{i}]");
        let number = a.number.get_ref().clone();
        // A 400 number (10 digits) or a 1010 number (8): both are billed by their plan.
        let national = (number.len() == 10 && number.starts_with("400"))
            || (number.len() == 8 && number.starts_with("1010"));
        if !national || !number.bytes().all(|b| b.is_ascii_digit()) {
            bad(
                format!("{p}.number"),
                a.number.span(),
                format!("{number:?} is not a 400 or 1010 number (write its digits only)"),
            );
        }
        if let Some(prev) = seen.insert(number.clone(), i) {
            bad(
                format!("{p}.number"),
                a.number.span(),
                format!("{number} already billed by accounts[{prev}]"),
            );
        }
        if !plans.contains_key(a.plan.get_ref()) {
            bad(
                format!("{p}.plan"),
                a.plan.span(),
                format!("unknown plan {:?}", a.plan.get_ref()),
            );
        }
        let start = date(&a.start, format!("{p}.start"), &mut bad);
        let prepaid_fen = a
            .prepaid
            .as_ref()
            .map_or(0, |v| money(v, format!("{p}.prepaid"), &mut bad));
        let topups = a
            .topups
            .iter()
            .enumerate()
            .map(|(j, t)| Topup {
                date: date(&t.date, format!("{p}.topups[{j}].date"), &mut bad),
                amount_fen: money(&t.amount, format!("{p}.topups[{j}].amount"), &mut bad),
            })
            .collect();
        accounts.push(Account {
            number,
            plan: a.plan.get_ref().clone(),
            start,
            prepaid_fen,
            topups,
        });
    }
    if errs.is_empty() {
        Ok(BillingConfig {
            tz,
            plans,
            accounts,
        })
    } else {
        Err(errs)
    }
}

/// Read and parse a billing file; errors are joined, one per line, prefixed by the path.
pub fn load_billing(path: &Path) -> Result<BillingConfig, hotline_cdr::CdrError> {
    let src = std::fs::read_to_string(path).map_err(|e| hotline_cdr::CdrError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_billing(&src).map_err(|errs| {
        hotline_cdr::CdrError::Invalid(
            errs.iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_all_at_once_with_paths_and_lines() {
        let src = r#"
[plans.std]
rate_per_minute = "0.105"
monthly_minimum = "100"
term_years = 4

[[accounts]]
number = "4008001234"
plan = "gold"
start = "2026-13-01"
prepaid = "x"
"#;
        let errs = parse_billing(src).err().unwrap_or_default();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(
            shown[0].starts_with("line 3: plans.std.rate_per_minute"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("line 5: plans.std.term_years"),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 9: accounts[0].plan: unknown plan \"gold\"")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 10: accounts[0].start")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 11: accounts[0].prepaid")),
            "{shown:#?}"
        );
        let unknown = parse_billing("[plans.a]\nrate = \"1\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].line, 2);
    }

    /// A negative or oversized amount is refused with a message that says which it is.
    #[test]
    fn negative_and_oversized_amounts_are_named() {
        let src = |prepaid: &str| {
            format!(
                "[plans.std]\nrate_per_minute = \"0.10\"\nmonthly_minimum = \"100\"\nterm_years = 1\n\
                 [[accounts]]\nnumber = \"4008001234\"\nplan = \"std\"\nstart = \"2026-10-01\"\nprepaid = \"{prepaid}\"\n"
            )
        };
        let msg = |prepaid: &str| -> String {
            parse_billing(&src(prepaid))
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            msg("-5"),
            "line 9: accounts[0].prepaid: \"-5\" is negative: amounts are 0 or more"
        );
        assert_eq!(
            msg("99999999999999"),
            "line 9: accounts[0].prepaid: \"99999999999999\" is too large: at most 13 digits before the decimal point"
        );
        let ok = parse_billing(&src("9999999999999.99")).map(|c| c.accounts[0].prepaid_fen);
        assert_eq!(ok, Ok(999_999_999_999_999));
    }
}
