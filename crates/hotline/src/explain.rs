//! `hotline explain NUMBER --from CALLER [--at TIME] [--key N] [--trunk NAME] [--json]`: what
//! routing would do with a call, step by step (`hotline_route::explain`). Reads the same config
//! as `run`. Live state starts empty (a fresh process has no rate windows or round-robin
//! cursors), so rate limits and `fewest_calls` show the first call of the day.

use std::process::ExitCode;

use hotline_route::{normalize_called, CallContext, Live};

/// Parse `--at`: RFC 3339 with or without seconds (`2026-10-01T09:30+08:00`), a civil time
/// taken in Asia/Shanghai (`2026-10-01T09:30`), or a date (midnight in Asia/Shanghai).
pub fn parse_at(s: &str) -> Result<jiff::Timestamp, String> {
    parse_at_noted(s).map(|(t, _)| t)
}

/// [`parse_at`], plus what was assumed when the text did not say it all (no time: 00:00;
/// no offset: China time), for the user to read.
pub fn parse_at_noted(s: &str) -> Result<(jiff::Timestamp, Option<String>), String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok((t, None));
    }
    let tz = hotline_cdr::report::china_tz();
    let zone = tz.iana_name().unwrap_or("UTC+08:00").to_string();
    let shown = |z: &jiff::Zoned| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    // A date alone (jiff would also read the date part of a date and time as a date).
    let date_only = !s.contains(['T', 't', ' ']);
    if let (true, Ok(d)) = (date_only, s.parse::<jiff::civil::Date>()) {
        return d
            .to_zoned(tz)
            .map(|z| {
                let note = format!(
                    "--at {s} has no time: taken as 00:00 {zone} time, {} (add e.g. T09:30 for another time)",
                    shown(&z)
                );
                (z.timestamp(), Some(note))
            })
            .map_err(|e| format!("--at {s:?}: {e}"));
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(tz)
            .map(|z| {
                let note = format!(
                    "--at {s} has no UTC offset: taken as {zone} time, {}",
                    shown(&z)
                );
                (z.timestamp(), Some(note))
            })
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
    let now = match at.map(parse_at_noted).transpose() {
        Ok(Some((t, note))) => {
            // On stderr: it must be seen, and must not spoil --json on stdout.
            if let Some(n) = note {
                eprintln!("note: {n}");
            }
            t
        }
        Ok(None) => jiff::Timestamp::now(),
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
        // What was assumed is said: a date alone is 00:00, a civil time is China time.
        let (_, note) = parse_at_noted("2026-10-01").unwrap_or_default();
        assert_eq!(
            note.as_deref(),
            Some("--at 2026-10-01 has no time: taken as 00:00 Asia/Shanghai time, 2026-10-01T00:00:00+08:00 (add e.g. T09:30 for another time)")
        );
        let (_, note) = parse_at_noted("2026-10-01T09:30").unwrap_or_default();
        assert!(
            note.as_deref()
                .is_some_and(|n| n.contains("Asia/Shanghai time, 2026-10-01T09:30:00+08:00")),
            "{note:?}"
        );
        assert_eq!(
            parse_at_noted("2026-10-01T09:30+08:00").map(|x| x.1),
            Ok(None)
        );
    }

    #[test]
    fn explains_the_default_config() {
        let c = hotline_config::from_toml_str(
            hotline_config::DEFAULT_CONFIG,
            "default",
            1,
            jiff::Zoned::now().date(),
        );
        let c = c.expect("the embedded default config compiles");
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
