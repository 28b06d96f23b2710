//! The routing snapshot: settings + compiled route table of one configuration generation.
//! Calls keep the `Arc<Snapshot>` they started with; a reload builds a new one and swaps it in
//! whole (arc-swap), so the routing read path takes no lock. The `[server.billing]` rate file
//! belongs to the generation too: a reload whose rate file does not load swaps nothing (routes
//! and rates stay as they were), and one that loads swaps both at once.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hotline_cdr::billing::BillingConfig;
use hotline_config::{Compiled, Settings};
use hotline_route::RouteTable;

/// One configuration generation.
pub struct Snapshot {
    pub settings: Settings,
    pub table: RouteTable,
    /// Addresses of configured targets: besides the trunks, the only sources Hotline takes
    /// SIP from (their responses and in-dialog requests).
    /// Looked up for every datagram: hashed with the id hasher (a multiply per byte), not
    /// SipHash; its keys come from the config, so no peer chooses what collides.
    pub target_ips: std::collections::HashSet<
        std::net::IpAddr,
        std::hash::BuildHasherDefault<hotline_sip::idmap::IdHasher>,
    >,
    /// Longest anti-harassment window of any number (what live rate entries must outlive).
    pub longest_rate_window: std::time::Duration,
    pub source: Option<PathBuf>,
    pub loaded_at: jiff::Timestamp,
    /// The rates and accounts of `settings.billing`'s file, loaded with this generation
    /// (`Some` exactly when `[server.billing]` is set).
    pub billing: Option<BillingConfig>,
}

/// The `[server.billing] file` of a new generation did not load.
#[derive(Debug)]
pub struct BillingUnloaded {
    pub file: PathBuf,
    pub error: hotline_cdr::CdrError,
}

impl BillingUnloaded {
    /// As the server reports it (`Error::Billing`).
    pub fn into_error(self) -> crate::Error {
        crate::Error::Billing {
            message: crate::core::billing_error(&self.file, &self.error),
            file: self.file,
        }
    }
}

impl Snapshot {
    /// The snapshot of a compiled config, with its billing file (if any) read and compiled.
    pub fn new(c: Compiled, source: Option<PathBuf>) -> Result<Snapshot, BillingUnloaded> {
        let billing =
            match &c.settings.billing {
                Some(b) => Some(hotline_config::billing::load_billing(&b.file).map_err(
                    |error| BillingUnloaded {
                        file: b.file.clone(),
                        error,
                    },
                )?),
                None => None,
            };
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
        Ok(Snapshot {
            target_ips,
            longest_rate_window,
            settings: c.settings,
            table: c.table,
            source,
            loaded_at: jiff::Timestamp::now(),
            billing,
        })
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

    /// Build the next generation (config and billing file) from the same source and swap it
    /// in; on any error the old snapshot stays and every error is returned.
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
        let next = Arc::new(
            Snapshot::new(compiled, old.source.clone()).map_err(|b| b.into_error().to_string())?,
        );
        live.prepare(&next.table);
        self.0.store(next.clone());
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(rate: &str) -> String {
        format!(
            "[plans.std]\nrate_per_minute = \"{rate}\"\nmonthly_minimum = \"0\"\nterm_years = 1\n\
             [[accounts]]\nnumber = \"4008001234\"\nplan = \"std\"\nstart = \"2026-10-01\"\n"
        )
    }

    fn routing(dir: &std::path::Path, target: &str) -> String {
        format!(
            "[server.cdr]\ndir = {:?}\n[server.billing]\nfile = {:?}\n\
             [companies.c]\nname = \"C\"\n[targets.t]\nuri = \"sip:{target}@127.0.0.1:5070\"\n\
             [plans.p]\n[[plans.p.groups]]\nmembers = [\"t\"]\n\
             [numbers.\"4008001234\"]\ncompany = \"c\"\nplan = \"p\"\n",
            dir.join("cdr").display().to_string(),
            dir.join("billing.toml").display().to_string(),
        )
    }

    fn rate_of(s: &Snapshot) -> Option<i64> {
        s.billing
            .as_ref()
            .and_then(|b| b.plans.get("std"))
            .map(|p| p.rate_fen)
    }

    fn first_target(s: &Snapshot) -> String {
        s.table
            .targets()
            .first()
            .map(|t| t.uri.to_string())
            .unwrap_or_default()
    }

    /// Issue 20: the rate file is part of the generation. A reload whose rate file is bad
    /// fails whole: the routes (changed in the same edit) and the rates stay as they were; a
    /// reload that loads swaps both.
    #[test]
    fn a_reload_with_a_bad_billing_file_swaps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("hotline.toml");
        let billing = dir.path().join("billing.toml");
        std::fs::write(&billing, rates("0.10")).expect("write");
        std::fs::write(&config, routing(dir.path(), "100")).expect("write");
        let today = jiff::civil::date(2026, 11, 24);
        let c = hotline_config::load_path(&config, 1, today).expect("compiles");
        let first = Arc::new(Snapshot::new(c, Some(config.clone())).expect("billing loads"));
        assert_eq!(rate_of(&first), Some(10));
        let current = Current::new(first.clone());
        let live = hotline_route::Live::new();

        std::fs::write(&config, routing(dir.path(), "200")).expect("write");
        std::fs::write(&billing, rates("-1")).expect("write");
        let Err(err) = current.reload(&live) else {
            panic!("a bad rate file fails the reload");
        };
        assert!(err.contains("cannot load the billing file"), "{err}");
        assert!(err.contains("is negative"), "{err}");
        let kept = current.load();
        assert!(Arc::ptr_eq(&kept, &first), "nothing swapped");
        assert_eq!(first_target(&kept), first_target(&first));
        assert!(
            first_target(&kept).contains("sip:100@"),
            "{}",
            first_target(&kept)
        );
        assert_eq!(rate_of(&kept), Some(10));

        std::fs::write(&billing, rates("0.25")).expect("write");
        let next = current.reload(&live).expect("reloads");
        assert_eq!(next.generation(), 2);
        assert!(
            first_target(&next).contains("sip:200@"),
            "{}",
            first_target(&next)
        );
        assert_eq!(rate_of(&next), Some(25));
        assert!(Arc::ptr_eq(&current.load(), &next));
    }

    /// #21 item 9: the calendar warning is logged once a day, not on every start or reload.
    #[test]
    fn calendar_warning_once_a_day_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
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
