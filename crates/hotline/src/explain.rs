//! `hotline explain NUMBER --from CALLER [--at TIME] [--key N] [--trunk NAME] [--json]`: what
//! routing would do with a call, step by step (`hotline_route::explain`). Reads the same config
//! as `run`. Live state starts empty (a fresh process has no rate windows or round-robin
//! cursors), so rate limits and `fewest_calls` show the first call of the day.

use std::process::ExitCode;

use hotline_route::{normalize_called, CallContext, Live};

/// Parse `--at`: RFC 3339 with or without seconds (`2026-10-01T09:30+08:00`), a civil time
/// taken in Asia/Shanghai (`2026-10-01T09:30`), or a date (midnight in Asia/Shanghai).
pub fn parse_at(s: &str) -> Result<jiff::Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let tz = hotline_cdr::report::china_tz();
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(tz)
            .map(|z| z.timestamp())
            .map_err(|e| format!("--at {s:?}: {e}"));
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(tz)
            .map(|z| z.timestamp())
            .map_err(|e| format!("--at {s:?}: {e}"));
    }
    Err(format!(
        "--at {s:?}: expected e.g. 2026-10-01T09:30+08:00, 2026-10-01T09:30 (China time) or 2026-10-01"
    ))
}

/// Run the command; exit 0 with an explanation, 1 when the config has errors, 2 on bad input.
pub fn run(
    compiled: &hotline_config::Compiled,
    number: &str,
    from: &str,
    at: Option<&str>,
    key: Option<u8>,
    trunk: Option<&str>,
    json: bool,
) -> ExitCode {
    let called = match normalize_called(number) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{number:?} is not a 400 or 1010 number: {e}");
            return ExitCode::from(2);
        }
    };
    let now = match at.map(parse_at).transpose() {
        Ok(t) => t.unwrap_or_else(jiff::Timestamp::now),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut ctx = CallContext::new(called, from);
    ctx.ivr_key = key;
    ctx.trunk = trunk;
    let live = Live::new();
    let ex = hotline_route::explain(&compiled.table, &live, &ctx, now);
    if json {
        match serde_json::to_string_pretty(&ex) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("cannot render JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{ex}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_forms() {
        let want: jiff::Timestamp = "2026-10-01T01:30:00Z".parse().unwrap_or_default();
        assert_eq!(parse_at("2026-10-01T09:30+08:00"), Ok(want));
        assert_eq!(parse_at("2026-10-01T09:30:00+08:00"), Ok(want));
        assert_eq!(parse_at("2026-10-01T09:30"), Ok(want));
        let midnight: jiff::Timestamp = "2026-09-30T16:00:00Z".parse().unwrap_or_default();
        assert_eq!(parse_at("2026-10-01"), Ok(midnight));
        assert!(parse_at("tomorrow").is_err());
    }

    #[test]
    fn explains_the_default_config() {
        let c = hotline_config::from_toml_str(hotline_config::DEFAULT_CONFIG, "default", 1);
        let Ok(c) = c else {
            panic!("the embedded default config compiles");
        };
        let ok = run(
            &c,
            "4008001234",
            "13807912345",
            Some("2026-10-01T09:30+08:00"),
            None,
            None,
            true,
        );
        assert_eq!(ok, ExitCode::SUCCESS);
        assert_eq!(
            run(&c, "12345", "13807912345", None, None, None, false),
            ExitCode::from(2)
        );
        assert_eq!(
            run(
                &c,
                "4008001234",
                "13807912345",
                Some("soon"),
                None,
                None,
                false
            ),
            ExitCode::from(2)
        );
    }
}
