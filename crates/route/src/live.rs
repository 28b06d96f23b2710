//! Live state outside the snapshot: per-target active calls and call history, round-robin
//! cursors, anti-harassment rate windows.
//!
//! Keyed by target *name* and group key (`plan/group`), never by table index, so it survives a
//! table swap. Sharded maps (dashmap) with atomics inside: no global lock; a lookup takes one
//! shard's read lock for a few nanoseconds. Entries are created on first use (one small
//! allocation per new target, group or caller) — [`Live::prepare`] creates the target and group
//! entries ahead of time when a table is installed.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use dashmap::DashMap;
use jiff::Timestamp;

use crate::table::{RateLimit, RateWindow, RouteTable, Target};

#[derive(Debug, Default)]
struct TargetLive {
    active: AtomicU32,
    calls: AtomicU64,
    /// Milliseconds since the Unix epoch of the last call started; 0 = never.
    last_call_ms: AtomicI64,
}

#[derive(Debug, Clone, Copy, Default)]
struct RateState {
    window_start_ms: i64,
    count: u32,
    blocked_until_ms: i64,
}

/// A snapshot of one target's live counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TargetStats {
    /// Calls currently up or ringing through Hotline.
    pub active: u32,
    /// Calls started since the process started.
    pub calls: u64,
    /// When the last call started, ms since the Unix epoch (0 = never).
    pub last_call_ms: i64,
}

/// Outcome of a rate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateVerdict {
    /// Under every limit.
    Allowed,
    /// Blocked (already, or by this call) until this time (ms since the Unix epoch).
    Blocked {
        /// End of the block.
        until_ms: i64,
    },
}

/// Concurrent live routing state. Share one `Live` for the process lifetime.
#[derive(Debug, Default)]
pub struct Live {
    targets: DashMap<Box<str>, TargetLive>,
    cursors: DashMap<Box<str>, AtomicU64>,
    /// (caller key, number as u64, 0 for the per-caller window) -> state.
    rates: DashMap<(u64, u64), RateState>,
}

impl Live {
    /// Empty state.
    pub fn new() -> Live {
        Live::default()
    }

    /// Create entries for every target and group of `table`, so the call path does not allocate.
    /// Existing entries (from an earlier table) are kept.
    pub fn prepare(&self, table: &RouteTable) {
        for t in table.targets() {
            if !self.targets.contains_key(t.name.as_str()) {
                self.targets.entry(t.name.as_str().into()).or_default();
            }
        }
        for p in table.plans() {
            for g in &p.groups {
                if !self.cursors.contains_key(&*g.key) {
                    self.cursors.entry(g.key.clone()).or_default();
                }
            }
        }
    }

    /// Take one concurrent-call slot on `target` if it is under its `max_concurrent`; counts
    /// the call and stamps its start time. Pair every `true` with one [`Live::release`].
    pub fn try_acquire(&self, target: &Target, now: Timestamp) -> bool {
        self.with_target(&target.name, |t| {
            let ok = match target.max_concurrent {
                None => {
                    t.active.fetch_add(1, Ordering::AcqRel);
                    true
                }
                Some(max) => t
                    .active
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                        (a < max).then_some(a + 1)
                    })
                    .is_ok(),
            };
            if ok {
                t.calls.fetch_add(1, Ordering::Relaxed);
                t.last_call_ms
                    .store(now.as_millisecond(), Ordering::Relaxed);
            }
            ok
        })
    }

    /// Count a call on `target` whatever its limit (a cluster node, whose slot was leased in
    /// the shared store, keeps its own view). Pair with one [`Live::release`].
    pub fn acquire(&self, target: &Target, now: Timestamp) {
        self.with_target(&target.name, |t| {
            t.active.fetch_add(1, Ordering::AcqRel);
            t.calls.fetch_add(1, Ordering::Relaxed);
            t.last_call_ms
                .store(now.as_millisecond(), Ordering::Relaxed);
        })
    }

    /// Give back a slot taken by [`Live::try_acquire`]. Never goes below zero.
    pub fn release(&self, target: &Target) {
        self.release_name(&target.name);
    }

    /// [`Live::release`] by target name (for calls that outlive the table they started with).
    pub fn release_name(&self, name: &str) {
        if let Some(t) = self.targets.get(name) {
            let _ = t
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(1));
        }
    }

    /// Whether `target` is at its concurrency limit right now.
    pub fn at_limit(&self, target: &Target) -> bool {
        match target.max_concurrent {
            None => false,
            Some(max) => self.stats(&target.name).active >= max,
        }
    }

    /// Live counters of a target by name (zeros if never seen).
    pub fn stats(&self, name: &str) -> TargetStats {
        self.targets
            .get(name)
            .map(|t| TargetStats {
                active: t.active.load(Ordering::Acquire),
                calls: t.calls.load(Ordering::Relaxed),
                last_call_ms: t.last_call_ms.load(Ordering::Relaxed),
            })
            .unwrap_or_default()
    }

    fn with_target<R>(&self, name: &str, f: impl FnOnce(&TargetLive) -> R) -> R {
        if let Some(t) = self.targets.get(name) {
            return f(&t);
        }
        let t = self.targets.entry(name.into()).or_default();
        f(&t)
    }

    /// Advance a group's round-robin cursor, returning the value before the increment.
    pub(crate) fn next_cursor(&self, key: &str) -> u64 {
        if let Some(c) = self.cursors.get(key) {
            return c.fetch_add(1, Ordering::Relaxed);
        }
        let c = self.cursors.entry(key.into()).or_default();
        c.fetch_add(1, Ordering::Relaxed)
    }

    /// Read a group's round-robin cursor without advancing it (for `explain`).
    pub fn peek_cursor(&self, key: &str) -> u64 {
        self.cursors
            .get(key)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Record a call from `caller_key` to `number` and tell whether it is over a limit.
    /// With `commit == false` only reports the current state (for `explain`).
    pub(crate) fn rate_check(
        &self,
        caller_key: u64,
        number: u64,
        limit: &RateLimit,
        now: Timestamp,
        commit: bool,
    ) -> RateVerdict {
        let now_ms = now.as_millisecond();
        let block_ms = i64::try_from(limit.block_for.as_millis()).unwrap_or(i64::MAX);
        let mut verdict = RateVerdict::Allowed;
        let windows = [(limit.per_caller_number, number), (limit.per_caller, 0u64)];
        // Check existing blocks first so a blocked caller does not keep extending windows.
        for (w, n) in windows {
            if w.is_none() {
                continue;
            }
            if let Some(s) = self.rates.get(&(caller_key, n)) {
                if s.blocked_until_ms > now_ms {
                    return RateVerdict::Blocked {
                        until_ms: s.blocked_until_ms,
                    };
                }
            }
        }
        for (w, n) in windows {
            let Some(w) = w else { continue };
            if commit {
                let mut s = self.rates.entry((caller_key, n)).or_default();
                if let Some(until) = count(&mut s, &w, now_ms, block_ms) {
                    verdict = RateVerdict::Blocked { until_ms: until };
                }
            } else {
                let mut s = self
                    .rates
                    .get(&(caller_key, n))
                    .map(|s| *s)
                    .unwrap_or_default();
                if let Some(until) = count(&mut s, &w, now_ms, block_ms) {
                    verdict = RateVerdict::Blocked { until_ms: until };
                }
            }
        }
        verdict
    }

    /// Drop rate entries whose window and block have both expired. Call periodically
    /// (e.g. once a minute) so one-off callers do not accumulate.
    pub fn prune(&self, now: Timestamp, longest_window: std::time::Duration) {
        let now_ms = now.as_millisecond();
        let w = i64::try_from(longest_window.as_millis()).unwrap_or(i64::MAX);
        self.rates.retain(|_, s| {
            s.blocked_until_ms > now_ms || s.window_start_ms.saturating_add(w) > now_ms
        });
    }

    /// Number of callers with rate state.
    pub fn rate_entries(&self) -> usize {
        self.rates.len()
    }
}

/// Count one call in a fixed window; returns the block end when this call exceeds the limit.
fn count(s: &mut RateState, w: &RateWindow, now_ms: i64, block_ms: i64) -> Option<i64> {
    let win = i64::try_from(w.window.as_millis()).unwrap_or(i64::MAX);
    if s.count == 0 || now_ms.saturating_sub(s.window_start_ms) >= win || now_ms < s.window_start_ms
    {
        s.window_start_ms = now_ms;
        s.count = 0;
    }
    s.count = s.count.saturating_add(1);
    if s.count > w.calls {
        s.blocked_until_ms = now_ms.saturating_add(block_ms);
        s.count = 0;
        return Some(s.blocked_until_ms);
    }
    None
}
