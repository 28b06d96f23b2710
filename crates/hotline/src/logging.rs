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
            .with(fmt::layer().json().with_writer(Lines))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_ansi(ansi).with_writer(Lines))
            .try_init()
    };
    if let Err(e) = installed {
        eprintln!("logging: {e}");
    }
    hook(handle)
}

/// stderr, through `hotline_server::logbuf`: a shard thread's info/debug/trace lines are
/// written in batches by its loop; warn and error lines, and every other thread's, at once.
struct Lines;

/// One formatted event (the fmt layer writes each one with a single `write_all`).
struct LineWriter {
    urgent: bool,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // `Stderr` locks only when it writes: a buffered line takes no lock.
        hotline_server::logbuf::write(buf, self.urgent, &mut std::io::stderr())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> fmt::MakeWriter<'a> for Lines {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: true }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter {
            urgent: urgent(meta.level()),
        }
    }
}

/// Lines that are never held back: warn and error.
fn urgent(level: &tracing::Level) -> bool {
    *level <= tracing::Level::WARN
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
    fn only_warn_and_error_lines_are_urgent() {
        use tracing::Level;
        assert!(urgent(&Level::ERROR));
        assert!(urgent(&Level::WARN));
        assert!(!urgent(&Level::INFO));
        assert!(!urgent(&Level::DEBUG));
        assert!(!urgent(&Level::TRACE));
    }

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
