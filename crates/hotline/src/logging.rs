//! Logging: human-readable lines on stderr by default, JSON lines with `--log-json`. The level
//! filter comes from `HOTLINE_LOG` (EnvFilter syntax, default `info`) and can be changed at
//! runtime through the admin endpoint (`hotline log-level debug`), via a reload layer.

use std::io::IsTerminal;
use std::sync::Arc;

use hotline_server::admin::LogLevelHook;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The filter used when `HOTLINE_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Install the global subscriber; returns the hook that reads or replaces the filter.
pub fn init(json: bool) -> LogLevelHook {
    let filter =
        EnvFilter::try_from_env("HOTLINE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    // Colours only for a terminal: journald and log files get plain text (and formatting a
    // line per call without escape codes is cheaper).
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init()
    };
    if let Err(e) = installed {
        eprintln!("logging: {e}");
    }
    hook(handle)
}

fn hook(handle: reload::Handle<EnvFilter, Registry>) -> LogLevelHook {
    Arc::new(move |req: Option<&str>| {
        if let Some(spec) = req {
            let next = parse_filter(spec)?;
            handle
                .reload(next)
                .map_err(|e| format!("cannot change the log filter: {e}"))?;
        }
        handle
            .with_current(|f| f.to_string())
            .map_err(|e| format!("cannot read the log filter: {e}"))
    })
}

/// Parse an EnvFilter string strictly: a typo is an error, not a silently ignored directive.
pub fn parse_filter(spec: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .with_regex(false)
        .parse(spec.trim())
        .map_err(|e| format!("invalid log filter {spec:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_fail_loudly() {
        for ok in [
            "debug",
            "info,hotline_server=trace",
            "warn,hotline_sip::proxy=debug",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        assert!(parse_filter("info,hotline=notalevel").is_err());
        assert!(parse_filter("[[[").is_err());
    }
}
