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
        for w in &c.warnings {
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
            Some(path) => hotline_config::load_path(path, generation),
            None => hotline_config::from_toml_str(
                hotline_config::DEFAULT_CONFIG,
                "<embedded default>",
                generation,
            ),
        }
        .map_err(|e| e.to_string())?;
        let next = Arc::new(Snapshot::new(compiled, old.source.clone()));
        live.prepare(&next.table);
        self.0.store(next.clone());
        Ok(next)
    }
}
