//! The routing snapshot: settings + compiled route table of one configuration generation.
//! Calls keep the `Arc<Snapshot>` they started with; a reload builds a new one and swaps it in
//! whole (arc-swap), so the routing read path takes no lock.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hotline_config::{Compiled, Settings};
use hotline_route::RouteTable;

/// One configuration generation.
pub struct Snapshot {
    pub settings: Settings,
    pub table: RouteTable,
    /// Addresses of configured targets: besides the trunks, the only sources Hotline takes
    /// SIP from (their responses and in-dialog requests).
    pub target_ips: std::collections::HashSet<std::net::IpAddr>,
    /// Longest anti-harassment window of any number (what live rate entries must outlive).
    pub longest_rate_window: std::time::Duration,
    pub source: Option<PathBuf>,
    pub loaded_at: jiff::Timestamp,
}

impl Snapshot {
    pub fn new(c: Compiled, source: Option<PathBuf>) -> Snapshot {
        for n in &c.notes {
            tracing::info!("config: {n}");
        }
        for w in &c.warnings {
            // The calendar warning holds until next year's dates are added: once a day is
            // enough (see `calendar_warning_due`); everything else every time.
            if w.key == "calendar"
                && !calendar_warning_due(&c.settings.cdr.dir, jiff::Zoned::now().date())
            {
                tracing::debug!("config: {w} (already said today)");
                continue;
            }
            tracing::warn!("config: {w}");
        }
        let target_ips = c.table.targets().iter().map(|t| t.next_hop.ip()).collect();
        let longest_rate_window = c
            .table
            .numbers()
            .iter()
            .filter_map(|n| n.rate.as_ref())
            .flat_map(|r| [r.per_caller_number, r.per_caller])
            .flatten()
            .map(|w| w.window)
            .max()
            .unwrap_or_default();
        Snapshot {
            target_ips,
            longest_rate_window,
            settings: c.settings,
            table: c.table,
            source,
            loaded_at: jiff::Timestamp::now(),
        }
    }

    pub fn generation(&self) -> u64 {
        self.table.generation()
    }

    /// Whether SIP from `ip` is taken: a trunk's network or a configured target. With no
    /// trunks configured every source is taken.
    pub fn source_allowed(&self, ip: std::net::IpAddr) -> bool {
        self.settings.trunks.is_empty()
            || self.target_ips.contains(&ip)
            || self.settings.trunks.iter().any(|t| t.contains(ip))
    }
}

/// The file in the CDR directory that holds the date the calendar warning was last logged.
pub const CALENDAR_STAMP: &str = "calendar-warned";

/// Whether to log the calendar warning today: once a day across starts and reloads. The day
/// is remembered by the process and in `CALENDAR_STAMP` in the CDR directory (writable by
/// the service, and kept across restarts; the CDR reader ignores files not named like CDRs).
/// The directory is made if it does not exist yet (a first start); if the stamp still cannot
/// be written, the process alone remembers.
fn calendar_warning_due(cdr_dir: &std::path::Path, today: jiff::civil::Date) -> bool {
    static LAST: std::sync::Mutex<Option<jiff::civil::Date>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    calendar_due(&cdr_dir.join(CALENDAR_STAMP), today, &mut last)
}

fn calendar_due(
    stamp: &std::path::Path,
    today: jiff::civil::Date,
    last: &mut Option<jiff::civil::Date>,
) -> bool {
    if *last == Some(today) {
        return false;
    }
    *last = Some(today);
    let said = std::fs::read_to_string(stamp)
        .ok()
        .and_then(|t| t.trim().parse::<jiff::civil::Date>().ok());
    if said == Some(today) {
        return false;
    }
    // On a first start the CDR directory may not exist yet: it is made here (the CDR writer
    // would make it a moment later), so that a restart the same day stays quiet too.
    if let Some(dir) = stamp.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(stamp, format!("{today}\n"));
    true
}

/// The current snapshot, swapped atomically.
pub struct Current(ArcSwap<Snapshot>);

impl Current {
    pub fn new(s: Arc<Snapshot>) -> Current {
        Current(ArcSwap::new(s))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Build the next generation from the same source and swap it in; on any error the old
    /// snapshot stays and every error is returned.
    /// `live` gets entries for the new table's targets before the swap, so the call path
    /// never allocates for them.
    pub fn reload(&self, live: &hotline_route::Live) -> Result<Arc<Snapshot>, String> {
        let old = self.load();
        let generation = old.generation() + 1;
        let compiled = match &old.source {
            Some(path) => hotline_config::load_path(path, generation, jiff::Zoned::now().date()),
            None => hotline_config::from_toml_str(
                hotline_config::DEFAULT_CONFIG,
                "<embedded default>",
                generation,
                jiff::Zoned::now().date(),
            ),
        }
        .map_err(|e| e.to_string())?;
        let next = Arc::new(Snapshot::new(compiled, old.source.clone()));
        live.prepare(&next.table);
        self.0.store(next.clone());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #21 item 9: the calendar warning is logged once a day, not on every start or reload.
    #[test]
    fn calendar_warning_once_a_day_across_restarts() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir");
        };
        let stamp = dir.path().join(CALENDAR_STAMP);
        let day = jiff::civil::date(2026, 12, 2);
        let mut process = None;
        assert!(calendar_due(&stamp, day, &mut process), "first start warns");
        assert!(
            !calendar_due(&stamp, day, &mut process),
            "a reload does not"
        );
        let mut restarted = None;
        assert!(
            !calendar_due(&stamp, day, &mut restarted),
            "a restart the same day does not (the stamp)"
        );
        assert_eq!(
            std::fs::read_to_string(&stamp).ok().as_deref(),
            Some("2026-12-02\n")
        );
        let next = jiff::civil::date(2026, 12, 3);
        assert!(
            calendar_due(&stamp, next, &mut restarted),
            "the next day warns"
        );
        assert!(!calendar_due(&stamp, next, &mut process), "once");
        // No CDR directory yet (a first start): it is made for the stamp.
        let fresh = dir.path().join("cdr").join(CALENDAR_STAMP);
        let mut p = None;
        assert!(calendar_due(&fresh, day, &mut p));
        assert!(
            !calendar_due(&fresh, day, &mut None),
            "a restart the same day"
        );
        // A stamp that cannot be written: the process alone remembers.
        let blocked = stamp.join("x").join(CALENDAR_STAMP);
        let mut p = None;
        assert!(calendar_due(&blocked, day, &mut p));
        assert!(!calendar_due(&blocked, day, &mut p));
    }
}
